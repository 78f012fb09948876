//! `observer import` of Azure flow logs as users meet them, each fault of
//! issue 20 driven through the real binary and checked by the exit status,
//! the message and the Parquet read back:
//!
//! - back-to-back hourly windows over Azure's blob layout (each minute's
//!   tuples logged after the minute, in the blob of the next hour at the
//!   top of the hour) take every tuple exactly once (Azurite);
//! - a window lists only its hours' prefixes (Azurite's access log), and a
//!   blob named in full imports (Azurite and a local path);
//! - a blob of the other kind names the right KIND and exits 2;
//! - 40,000 malformed tuples are each counted, the first located by
//!   `line:column`, and the good ones convert;
//! - an unreadable blob is counted and reported, the rest imported, exit 2,
//!   no temporary file left;
//! - importing the same hour again replaces its files;
//! - a byte-order mark (UTF-8 or UTF-16) is accepted;
//! - VNet tuple times in seconds land in their year and are reported;
//! - `aclID` is kept as `acl_id`;
//! - tuples dropped by virtual network encryption are not NSG denies.

use std::{
    collections::BTreeMap,
    fs,
    os::unix::{fs::PermissionsExt as _, process::CommandExt as _},
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::ensure;
use observer_tests::{
    Flow, Scratch,
    azure::{
        Azurite, DOWNLOAD, FLOW_LOG, Logged, UPLOAD, blob_path, files_below, py, read_tree, run,
        run_command, vnet_blob, write_layout,
    },
    observer_bin,
};

/// 2024-05-01T08:00:00Z in ms.
const H08: i64 = 1_714_550_400_000;
const HOUR: i64 = 3_600_000;
const MACS: [&str; 2] = ["00224871C205", "00224871C206"];

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../observer/testdata/flow-logs")
        .join(name)
}

fn topology() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../lab/topologies/default.toml")
}

/// Each imported tuple's NIC and source port (unique per written tuple), counted.
fn imported(flows: &[Flow]) -> BTreeMap<(String, u16), usize> {
    let mut seen = BTreeMap::new();
    for f in flows {
        *seen
            .entry((f.iface.clone(), f.src_port.unwrap_or_default()))
            .or_default() += 1;
    }
    seen
}

fn expected(written: &[Logged], from_ms: i64, to_ms: i64) -> BTreeMap<(String, u16), usize> {
    written
        .iter()
        .filter(|t| (from_ms..to_ms).contains(&t.time_ms))
        .map(|t| ((t.mac.to_owned(), t.port), 1))
        .collect()
}

fn text(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

#[test]
fn back_to_back_hourly_windows_over_azures_layout_take_every_tuple_once() -> anyhow::Result<()> {
    let azurite = Azurite::start()?;
    let env = azurite.env();
    let scratch = Scratch::new("hourly");
    let upload = scratch.path().join("upload");
    // Two NICs, a tuple every 7 s from 07:58 to 11:02: blobs h=07..h=11,
    // each holding the last minute of the hour before.
    let written = write_layout(
        &upload,
        &MACS,
        H08 - 120_000,
        H08 + 3 * HOUR + 120_000,
        7_000,
    )?;
    py(
        UPLOAD,
        &[text(&upload), "insights-logs-flowlogflowevent", "flows"],
        &env,
    )?;
    let input = format!("az://insights-logs-flowlogflowevent/{FLOW_LOG}");
    let hours = [
        "2024-05-01T08",
        "2024-05-01T09",
        "2024-05-01T10",
        "2024-05-01T11",
    ];
    let import = |since: &str, until: &str| {
        run(
            &[
                "import",
                "azure-vnet-flow-log",
                &input,
                "--since",
                since,
                "--until",
                until,
                "--out",
                "az://flows/hourly",
                "--partition",
                "hour",
            ],
            &env,
        )
    };
    for pair in hours.windows(2) {
        let run = import(pair[0], pair[1])?;
        ensure!(run.code() == Some(0), "{run}");
        // The hour's blobs and the next hour's, for both NICs.
        ensure!(run.stdout.contains("read 4 file(s)"), "{run}");
    }
    let download = |dest: &Path| -> anyhow::Result<usize> {
        Ok(py(DOWNLOAD, &["flows", "hourly", text(dest)], &env)?
            .trim()
            .parse()?)
    };
    let first = scratch.path().join("first");
    let blobs = download(&first)?;
    let flows = read_tree(&first)?;
    let want = expected(&written, H08, H08 + 3 * HOUR);
    assert_eq!(want.len(), flows.len(), "tuples of 08:00-11:00 written");
    assert_eq!(imported(&flows), want, "every tuple once");
    // The tuples of 08:59 came from the h=09 blob, in the first import.
    let last_minute = written
        .iter()
        .filter(|t| (H08 + HOUR - 60_000..H08 + HOUR).contains(&t.time_ms))
        .count();
    assert!(last_minute > 0);

    // The middle hour again: the same blobs, no copies.
    let again = import(hours[1], hours[2])?;
    ensure!(again.code() == Some(0), "{again}");
    let second = scratch.path().join("second");
    assert_eq!(download(&second)?, blobs, "the same blob names");
    assert_eq!(files_below(&second)?, files_below(&first)?);
    assert_eq!(imported(&read_tree(&second)?), want);
    Ok(())
}

#[test]
fn a_window_lists_only_its_hours_prefixes() -> anyhow::Result<()> {
    let azurite = Azurite::start()?;
    let env = azurite.env();
    let scratch = Scratch::new("listing");
    let upload = scratch.path().join("upload");
    // Three days of hours (72 blobs), one tuple every 10 minutes.
    let day1 = H08 - 8 * HOUR;
    write_layout(&upload, &MACS[..1], day1, day1 + 72 * HOUR, 600_000)?;
    py(UPLOAD, &[text(&upload), "logs"], &env)?;
    let before = azurite.requests()?.len();
    let out = scratch.path().join("out");
    let run = run(
        &[
            "import",
            "azure-vnet-flow-log",
            &format!("az://logs/{FLOW_LOG}"),
            "--since",
            "2024-05-02T10",
            "--until",
            "2024-05-02T12",
            "--out",
            text(&out),
        ],
        &env,
    )?;
    ensure!(run.code() == Some(0), "{run}");
    ensure!(run.stdout.contains("read 3 file(s)"), "{run}");
    let requests = azurite.requests()?;
    let listings = Azurite::listings(&requests[before..]);
    let day = format!("{FLOW_LOG}/y=2024/m=05/d=02/");
    // One level each down to the day, then the three hours whole.
    assert_eq!(
        listings,
        [
            (format!("{FLOW_LOG}/"), true),
            (format!("{FLOW_LOG}/y=2024/"), true),
            (format!("{FLOW_LOG}/y=2024/m=05/"), true),
            (day.clone(), true),
            (format!("{day}h=10/"), false),
            (format!("{day}h=11/"), false),
            (format!("{day}h=12/"), false),
        ],
        "{requests:#?}"
    );
    assert!(
        run.stdout
            .contains("directories not listed 23: y=/m=/d=/h= outside"),
        "two days not entered, 21 hours of the third not listed: {run}"
    );
    // 10:00-12:00, six tuples an hour.
    assert_eq!(read_tree(&out)?.len(), 12);
    Ok(())
}

#[test]
fn a_blob_named_in_full_imports_from_a_container_or_a_path() -> anyhow::Result<()> {
    let azurite = Azurite::start()?;
    let env = azurite.env();
    let scratch = Scratch::new("single");
    let upload = scratch.path().join("upload");
    // 08:01 to 08:49, all logged in the h=08 blob.
    let written = write_layout(&upload, &MACS[..1], H08 + 60_000, H08 + 50 * 60_000, 60_000)?;
    py(UPLOAD, &[text(&upload), "logs"], &env)?;
    let blob = blob_path(MACS[0], H08);
    for (input, out) in [
        (
            format!("az://logs/{blob}"),
            scratch.path().join("from-blob"),
        ),
        (
            text(&upload.join(&blob)).to_owned(),
            scratch.path().join("from-path"),
        ),
    ] {
        let run = run(
            &["import", "azure-vnet-flow-log", &input, "--out", text(&out)],
            &env,
        )?;
        ensure!(run.code() == Some(0), "{input}: {run}");
        ensure!(run.stdout.contains("read 1 file(s)"), "{run}");
        let flows = read_tree(&out)?;
        assert_eq!(
            imported(&flows),
            expected(&written, i64::MIN, i64::MAX),
            "{input}"
        );
    }
    Ok(())
}

#[test]
fn a_blob_of_the_other_kind_names_the_right_kind_and_exits_2() -> anyhow::Result<()> {
    let scratch = Scratch::new("kinds");
    for (kind, blob, right, names) in [
        (
            "azure-vnet-flow-log",
            "nsg-flow-log-v2-docs-sample.json",
            "azure-nsg-flow-log",
            "is an NSG flow log, not a VNet flow log (records[0] is an NSG flow log record: category NetworkSecurityGroupFlowEvent",
        ),
        (
            "azure-nsg-flow-log",
            "vnet-flow-log-docs-sample.json",
            "azure-vnet-flow-log",
            "is a VNet flow log, not an NSG flow log (records[0] is a VNet flow log record: category FlowLogFlowEvent",
        ),
    ] {
        let out = scratch.path().join(kind);
        let input = testdata(blob);
        let run = run(&["import", kind, text(&input), "--out", text(&out)], &[])?;
        assert_eq!(run.code(), Some(2), "{run}");
        let error = format!("error: `{}` {names}", input.display());
        assert!(run.stderr.starts_with(&error), "{run}");
        assert!(
            run.stderr
                .contains(&format!("): import it with `observer import {right} ...`")),
            "{run}"
        );
        assert!(
            run.stdout.contains("stopped at a blob of another kind"),
            "{run}"
        );
        assert!(read_tree(&out)?.is_empty());
    }
    Ok(())
}

#[test]
fn malformed_tuples_are_each_counted_the_first_located_and_the_rest_converts() -> anyhow::Result<()>
{
    let scratch = Scratch::new("malformed");
    // One tuple a line, as Azure's blobs are pretty-printed: 40,000 with a
    // bad address, then 10 good ones.
    let mut lines = vec![
        r#"{"records": [{"category": "FlowLogFlowEvent", "flowRecords": {"flows": [{"aclID": "a", "flowGroups": [{"rule": "r", "flowTuples": ["#
            .to_owned(),
    ];
    for i in 0..40_000 {
        lines.push(format!(
            "    \"1714550400000,10.0.0.6,999.0.{}.{},{},443,6,O,E,NX,1,60,1,60\",",
            i / 256 % 256,
            i % 256,
            1000 + i % 50_000
        ));
    }
    for i in 0..10 {
        let comma = if i < 9 { "," } else { "" };
        lines.push(format!(
            "    \"1714550400000,10.0.0.6,10.0.1.4,{},443,6,O,E,NX,1,60,1,60\"{comma}",
            60_000 + i
        ));
    }
    lines.push("]}]}]}}]}".to_owned());
    let blob = scratch.path().join("PT1H.json");
    fs::write(&blob, lines.join("\n"))?;
    let out = scratch.path().join("out");
    let run = run(
        &[
            "import",
            "azure-vnet-flow-log",
            text(&blob),
            "--out",
            text(&out),
        ],
        &[],
    )?;
    // Bad tuples are reported, not failed: the good ones converted.
    assert_eq!(run.code(), Some(0), "{run}");
    assert!(
        run.stdout.contains(
            "read 1 file(s): 40010 record(s) in, 10 flow record(s) out, 40000 skipped\n  skipped 40000: malformed tuple\n"
        ),
        "{run}"
    );
    // Tuple k is on line k + 2, after four spaces and a quote.
    for k in [0usize, 1, 99] {
        let line = format!(
            "  {}:{}:6 (records[0].flowRecords.flows[0].flowGroups[0].flowTuples[{k}]): destination address `999.0.0.{k}` is not valid in `",
            blob.display(),
            k + 2
        );
        assert!(run.stdout.contains(&line), "{line}\n{run}");
    }
    assert!(
        run.stdout.contains("  ... and 39900 more problem(s)"),
        "{run}"
    );
    assert_eq!(read_tree(&out)?.len(), 10);
    Ok(())
}

#[test]
fn an_unreadable_blob_is_counted_and_the_import_goes_on() -> anyhow::Result<()> {
    let scratch = Scratch::new("unreadable");
    let logs = scratch.path().join("logs");
    let written = write_layout(&logs, &MACS[..1], H08, H08 + 3 * HOUR, 60_000)?;
    // The middle hour cannot be read by the importing user (as with a blob
    // the storage refuses); root reads anything, so the import runs as nobody.
    let locked = logs.join(blob_path(MACS[0], H08 + HOUR));
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o000))?;
    let bin = scratch.path().join("observer");
    fs::copy(observer_bin(), &bin)?;
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755))?;
    let out = scratch.path().join("out");
    fs::create_dir(&out)?;
    fs::set_permissions(&out, fs::Permissions::from_mode(0o777))?;
    let mut command = Command::new(&bin);
    command.uid(65534).gid(65534);
    let run = run_command(
        &mut command,
        &[
            "import",
            "azure-vnet-flow-log",
            text(&logs),
            "--out",
            text(&out),
            "--partition",
            "hour",
        ],
        &[],
    )?;
    assert_eq!(run.code(), Some(2), "{run}");
    assert!(
        run.stdout
            .contains("read 3 file(s): 120 record(s) in, 120 flow record(s) out"),
        "{run}"
    );
    assert!(
        run.stdout.contains(
            "1 file(s) could not be read (deleted since the listing? no permission?): nothing of them converted"
        ),
        "{run}"
    );
    let problem = format!(
        "  {}:-: cannot read `{}`: Permission denied",
        locked.display(),
        locked.display()
    );
    assert!(run.stdout.contains(&problem), "{problem}\n{run}");
    assert!(
        run.stderr
            .contains("error: 1 file(s) could not be read; the rest was imported"),
        "{run}"
    );
    // The other blobs' tuples are there in full (the locked h=09 blob held
    // 08:59 to 09:58), and no temporary file.
    let got = imported(&read_tree(&out)?);
    let mut readable = expected(&written, H08, H08 + HOUR - 60_000);
    readable.extend(expected(&written, H08 + 2 * HOUR - 60_000, H08 + 3 * HOUR));
    assert_eq!(got, readable);
    assert!(
        !files_below(&out)?.iter().any(|f| f.ends_with(".tmp")),
        "no temporary file"
    );
    Ok(())
}

#[test]
fn importing_the_same_hours_again_replaces_their_files() -> anyhow::Result<()> {
    let scratch = Scratch::new("again");
    let logs = scratch.path().join("logs");
    let written = write_layout(&logs, &MACS, H08 - 120_000, H08 + 2 * HOUR, 30_000)?;
    let out = scratch.path().join("out");
    let import = |window: &[&str]| {
        let mut args = vec![
            "import",
            "azure-vnet-flow-log",
            text(&logs),
            "--out",
            text(&out),
            "--partition",
            "hour",
        ];
        args.extend_from_slice(window);
        run(&args, &[])
    };
    let hour = ["--since", "2024-05-01T08", "--until", "2024-05-01T09"];
    let first = import(&hour)?;
    assert_eq!(first.code(), Some(0), "{first}");
    let files = files_below(&out)?;
    let want = expected(&written, H08, H08 + HOUR);
    assert_eq!(imported(&read_tree(&out)?), want);
    let second = import(&hour)?;
    assert_eq!(second.code(), Some(0), "{second}");
    assert_eq!(files_below(&out)?, files, "the same names");
    assert_eq!(imported(&read_tree(&out)?), want, "no record twice");
    // Everything, no window: the hours' files are replaced, the rest added.
    let all = import(&[])?;
    assert_eq!(all.code(), Some(0), "{all}");
    let got = imported(&read_tree(&out)?);
    assert_eq!(got, expected(&written, i64::MIN, i64::MAX));
    assert!(got.values().all(|&n| n == 1));
    Ok(())
}

#[test]
fn a_byte_order_mark_is_accepted() -> anyhow::Result<()> {
    let scratch = Scratch::new("bom");
    let sample = fs::read(testdata("vnet-flow-log-docs-sample.json"))?;
    let text_sample = String::from_utf8(sample.clone())?;
    let utf8 = [&[0xEF, 0xBB, 0xBF][..], &sample].concat();
    let utf16: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain(text_sample.encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    for (name, bytes, note) in [
        (
            "utf8.json",
            utf8,
            "note 1: blob(s) starting with a UTF-8 byte-order mark (skipped)",
        ),
        (
            "utf16.json",
            utf16,
            "note 1: blob(s) in UTF-16 (converted to UTF-8)",
        ),
    ] {
        let blob = scratch.path().join(name);
        fs::write(&blob, bytes)?;
        let out = scratch.path().join(format!("out-{name}"));
        let run = run(
            &[
                "import",
                "azure-vnet-flow-log",
                text(&blob),
                "--out",
                text(&out),
            ],
            &[],
        )?;
        assert_eq!(run.code(), Some(0), "{run}");
        assert!(
            run.stdout
                .contains("19 record(s) in, 19 flow record(s) out, 0 skipped"),
            "{run}"
        );
        assert!(run.stdout.contains(note), "{run}");
        assert_eq!(read_tree(&out)?.len(), 19);
    }
    Ok(())
}

#[test]
fn vnet_tuple_times_in_seconds_land_in_their_year_and_are_reported() -> anyhow::Result<()> {
    let scratch = Scratch::new("seconds");
    // The overview's bandwidth example writes VNet tuples in seconds.
    let blob = scratch.path().join("PT1H.json");
    fs::write(
        &blob,
        vnet_blob(
            "00224871C205",
            &[
                "1493763938,185.170.185.105,10.2.0.4,35370,23,6,I,B,NX,,,,".into(),
                "1493695838,185.170.185.105,10.2.0.4,35370,23,6,I,C,NX,1021,588096,8005,4610880"
                    .into(),
                "1493696138,185.170.185.105,10.2.0.4,35370,23,6,I,E,NX,52,29952,47,27072".into(),
                "1714550400000,10.0.0.6,10.0.1.4,40000,443,6,O,E,NX,1,60,1,60".into(),
            ],
        ),
    )?;
    let out = scratch.path().join("out");
    let run = run(
        &[
            "import",
            "azure-vnet-flow-log",
            text(&blob),
            "--out",
            text(&out),
        ],
        &[],
    )?;
    assert_eq!(run.code(), Some(0), "{run}");
    assert!(
        run.stdout.contains(
            "note 3: VNet tuple time(s) in seconds (10 digits), not milliseconds: read as seconds"
        ),
        "{run}"
    );
    let mut starts: Vec<i64> = read_tree(&out)?.iter().map(|f| f.start_ns).collect();
    starts.sort_unstable();
    assert_eq!(
        starts,
        [
            1_493_695_838_000_000_000,
            1_493_696_138_000_000_000,
            1_493_763_938_000_000_000,
            1_714_550_400_000_000_000
        ],
        "2017 and 2024, not 1970"
    );
    Ok(())
}

#[test]
fn the_acl_id_is_kept_as_a_column() -> anyhow::Result<()> {
    let scratch = Scratch::new("acl");
    let out = scratch.path().join("out");
    let input = testdata("vnet-flow-log-docs-sample.json");
    let run = run(
        &[
            "import",
            "azure-vnet-flow-log",
            text(&input),
            "--out",
            text(&out),
        ],
        &[],
    )?;
    assert_eq!(run.code(), Some(0), "{run}");
    let mut by_acl: BTreeMap<String, usize> = BTreeMap::new();
    for f in read_tree(&out)? {
        *by_acl
            .entry(f.text("acl_id").unwrap_or("null").to_owned())
            .or_default() += 1;
    }
    assert_eq!(
        by_acl,
        BTreeMap::from([
            ("00000000-1234-abcd-ef00-c1c2c3c4c5c6".to_owned(), 10),
            ("01020304-abcd-ef00-1234-102030405060".to_owned(), 9),
        ])
    );
    Ok(())
}

#[test]
fn tuples_dropped_by_encryption_are_not_nsg_denies() -> anyhow::Result<()> {
    let scratch = Scratch::new("encryption");
    // Per the overview: a flow denied because of encryption has aclID and
    // rule `unspecified`; beside it an NSG deny of the same destination.
    let blob = scratch.path().join("PT1H.json");
    let tuples = |acl: &str, rule: &str, tuple: &str| {
        format!(
            r#"{{"aclID":"{acl}","flowGroups":[{{"rule":"{rule}","flowTuples":["{tuple}"]}}]}}"#
        )
    };
    fs::write(
        &blob,
        format!(
            r#"{{"records":[{{"category":"FlowLogFlowEvent","flowLogVersion":4,"macAddress":"00224871C205","flowRecords":{{"flows":[{},{}]}}}}]}}"#,
            tuples(
                "unspecified",
                "unspecified",
                "1714550400000,10.0.0.4,10.0.1.4,40001,1433,6,O,D,NX_NOT_ACCEPTED,0,0,0,0"
            ),
            tuples(
                "nsg-1",
                "DenyAll",
                "1714550400000,10.0.0.4,10.0.1.4,40002,1433,6,O,D,NX,0,0,0,0"
            ),
        ),
    )?;
    let out = scratch.path().join("out");
    let run = run(
        &[
            "import",
            "azure-vnet-flow-log",
            text(&blob),
            "--out",
            text(&out),
            "--topology",
            text(&topology()),
        ],
        &[],
    )?;
    assert_eq!(run.code(), Some(0), "{run}");
    let flows = read_tree(&out)?;
    let by_port = |port| {
        flows
            .iter()
            .find(|f| f.src_port == Some(port))
            .expect("imported")
    };
    let dropped = by_port(40001);
    assert_eq!(dropped.text("flow_state"), Some("denied"));
    assert_eq!(dropped.text("nsg_decision"), None, "no NSG decided");
    assert_eq!(dropped.text("encryption"), Some("NX_NOT_ACCEPTED"));
    assert_eq!(dropped.text("acl_id"), Some("unspecified"));
    let reason = dropped.text("reason").unwrap_or_default();
    assert_eq!(
        dropped.text("verdict"),
        Some("dropped-unencrypted"),
        "{reason}"
    );
    assert!(
        reason.contains("dropped by virtual network encryption (NX_NOT_ACCEPTED")
            && reason.contains("not by an NSG"),
        "{reason}"
    );
    assert!(!reason.contains("differ from what is deployed"), "{reason}");
    assert!(
        run.stdout.contains("verdict dropped-unencrypted: 1"),
        "{run}"
    );
    let denied = by_port(40002);
    assert_eq!(denied.text("nsg_decision"), Some("deny"));
    assert_eq!(denied.text("verdict"), Some("denied-by-nsg"));
    Ok(())
}
