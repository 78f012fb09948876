//! `observer import`: recorded data from elsewhere.
//!
//! - pcap and pcapng recorded by tcpdump while the observer captures the
//!   same traffic: the imported records equal the live ones.
//! - Azurite round trip: VNet flow logs in a container laid out as Azure
//!   does, imported for one hour, written back as hour-partitioned Parquet,
//!   read as one table by DuckDB (hive_partitioning). The flow-log faults
//!   (hourly windows, other kinds, unreadable blobs, ...) are in `flow_log.rs`.
//! - Parquet rewritten by pyarrow with snappy, gzip and lz4 is classified.
//!
//! The Python (pyarrow, DuckDB, azure-storage-blob) and Azurite these need
//! are installed project-locally by `cargo xtask setup`/`test`, which pass
//! their paths in `OBSERVER_PYTHON` and `OBSERVER_NODE_MODULES`.

use std::{
    collections::BTreeMap,
    fs,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, ensure};
use observer::lab::netns::Process;
use observer_tests::{
    A4, A6, B4, B6, Flow, Observer, Pair, Scratch,
    azure::{Azurite, DOWNLOAD, UPLOAD, py, vnet_blob},
    mac, observer_bin, read_flows, sa,
    traffic::{self, drain_udp, udp_socket},
};

/// Runs the observer with `env`, requiring success; returns stdout.
fn observer(args: &[&str], env: &[(&str, String)]) -> anyhow::Result<String> {
    let output = Command::new(observer_bin())
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    ensure!(
        output.status.success(),
        "observer {args:?} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(stdout)
}

// ---- pcap vs live ----------------------------------------------------------

type Key = (String, u8, String, String, Option<u16>, Option<u16>);

/// Per direction and 5-tuple: packets, bytes, OR of TCP flags, first start, last end.
fn by_key(flows: &[Flow]) -> BTreeMap<Key, (u64, u64, u8, i64, i64)> {
    let mut sums: BTreeMap<Key, (u64, u64, u8, i64, i64)> = BTreeMap::new();
    for f in flows {
        let key = (
            f.direction.clone(),
            f.protocol,
            f.src_addr.clone(),
            f.dst_addr.clone(),
            f.src_port.or(f.icmp_type.map(u16::from)),
            f.dst_port.or(f.icmp_code.map(u16::from)),
        );
        let e = sums.entry(key).or_insert((0, 0, 0, i64::MAX, i64::MIN));
        e.0 += f.packets;
        e.1 += f.bytes;
        e.2 |= f.tcp_flags;
        e.3 = e.3.min(f.start_ns);
        e.4 = e.4.max(f.end_ns);
    }
    sums
}

fn tick_ns() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec out-pointer.
    unsafe { libc::clock_getres(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// Offloads off (each skb one wire packet, as a capture file sees it).
#[test]
fn pcap_and_pcapng_recorded_by_tcpdump_import_as_the_live_records() -> anyhow::Result<()> {
    let pair = Pair::addressed(false)?;
    let scratch = Scratch::new("pcap");
    let live = scratch.path().join("live");
    let capture = scratch.path().join("veth0.pcap");
    let observer_run = Observer::start(&pair.a, &live, &["--iface", "veth0=test", "--quiet"])?;
    let log = scratch.path().join("tcpdump.log");
    let mut tcpdump = pair.a.command("tcpdump");
    tcpdump
        .args([
            "-i",
            "veth0",
            "-s",
            "0",
            "-U",
            "-n",
            "--immediate-mode",
            "-w",
        ])
        .arg(&capture)
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log)?);
    let tcpdump = Process::spawn(&mut tcpdump, "tcpdump")?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !fs::read_to_string(&log)?.contains("listening on") {
        ensure!(
            Instant::now() < deadline,
            "tcpdump did not start: {}",
            fs::read_to_string(&log)?
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let sink4 = udp_socket(&pair.b, sa(B4, 6001))?;
    let sink6 = udp_socket(&pair.b, sa(B6, 6002))?;
    assert_eq!(
        traffic::udp(&pair.a, sa(A4, 41001), sa(B4, 6001), 40, 200)?,
        40
    );
    assert_eq!(
        traffic::udp(&pair.a, sa(A6, 41002), sa(B6, 6002), 20, 300)?,
        20
    );
    assert_eq!(drain_udp(&sink4), (40, 40 * 200));
    assert_eq!(drain_udp(&sink6), (20, 20 * 300));
    traffic::tcp(&pair.a, &pair.b, sa(B4, 6003), 100_000)?;
    traffic::ping(&pair.a, B4, 3)?;
    // Let tcpdump write the last packets before it is stopped.
    std::thread::sleep(Duration::from_millis(1500));

    let status = tcpdump
        .terminate(Duration::from_secs(10))
        .context("tcpdump vanished")?;
    ensure!(
        status.success() || status.code().is_none(),
        "tcpdump: {status}"
    );
    observer_run.stop()?;

    let pcapng = scratch.path().join("veth0.pcapng");
    let status = Command::new("editcap")
        .args(["-F", "pcapng"])
        .arg(&capture)
        .arg(&pcapng)
        .status()?;
    ensure!(status.success(), "editcap -F pcapng failed");

    let ours = |f: &Flow| {
        f.src_port
            .is_some_and(|p| [41001, 41002, 6003].contains(&p))
            || f.dst_port.is_some_and(|p| [6001, 6002, 6003].contains(&p))
            || (f.protocol == 1 && [A4, B4].contains(&f.src_addr.as_str()))
    };
    let live_flows: Vec<Flow> = read_flows(&live)?.into_iter().filter(ours).collect();
    let expected = by_key(&live_flows);
    ensure!(
        expected.len() == 6,
        "live capture missed traffic: {expected:?}"
    );
    let mac_a = mac(&pair.a, "veth0")?;
    let tick = tick_ns();
    for input in [&capture, &pcapng] {
        let out = scratch.path().join(format!(
            "imported-{}",
            input.extension().unwrap().to_string_lossy()
        ));
        let printed = observer(
            &[
                "import",
                "pcap",
                input.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                "--local",
                &mac_a,
                "--iface",
                "veth0=test",
            ],
            &[],
        )?;
        let imported: Vec<Flow> = read_flows(&out)?.into_iter().filter(ours).collect();
        assert!(imported.iter().all(|f| f.text("source") == Some("pcap")
            && f.iface == "veth0"
            && f.iface_role.as_deref() == Some("test")));
        let got = by_key(&imported);
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>(),
            "{printed}"
        );
        for (key, want) in &expected {
            let have = got[key];
            assert_eq!(
                (have.0, have.1, have.2),
                (want.0, want.1, want.2),
                "packets, bytes, flags of {key:?} from {}",
                input.display()
            );
            assert!(
                (have.3 - want.3).abs() <= tick && (have.4 - want.4).abs() <= 2 * tick,
                "times of {key:?}: imported {}..{}, live {}..{} (tick {tick} ns)",
                have.3,
                have.4,
                want.3,
                want.4
            );
        }
    }
    Ok(())
}

// ---- Azurite ----------------------------------------------------------------

const DUCKDB: &str = r#"
import sys, duckdb
con = duckdb.connect()
rows = con.execute(
    "SELECT date::VARCHAR, hour::INTEGER, count(*), sum(bytes), sum(reverse_bytes), "
    "count(DISTINCT source), min(verdict) "
    "FROM read_parquet(?, hive_partitioning = true) GROUP BY ALL ORDER BY 1, 2",
    [sys.argv[1] + "/**/*.parquet"],
).fetchall()
for r in rows:
    print("|".join(str(v) for v in r))
"#;

#[test]
fn azurite_round_trip_reads_the_hours_asked_and_writes_hive_partitions() -> anyhow::Result<()> {
    let azurite = Azurite::start()?;
    let env = azurite.env();
    let scratch = Scratch::new("azurite-data");
    // Three hours of blobs in Azure's layout; only 13:00-14:00 is asked for.
    let layout = scratch.path().join("upload");
    let prefix = "flowLogResourceID=/SUBSCRIPTIONS/0/RESOURCEGROUPS/NW/PROVIDERS/MICROSOFT.NETWORK/NETWORKWATCHERS/NW/FLOWLOGS/ASE";
    let hour_start = 1_714_568_400_000i64; // 2024-05-01T13:00:00Z in ms
    let mut expected_bytes = 0u64;
    for (h, offset) in [(12, -3_600_000i64), (13, 0), (14, 3_600_000)] {
        let mut tuples = Vec::new();
        for i in 0..10i64 {
            let t = hour_start + offset + i * 60_000;
            let bytes = 100 + i as u64;
            tuples.push(format!(
                "{t},10.0.0.6,52.239.184.{i},{},443,6,O,E,NX,2,{bytes},2,{}",
                40000 + i,
                bytes * 2
            ));
            if h == 13 {
                expected_bytes += bytes;
            }
        }
        let dir = layout.join(format!(
            "{prefix}/y=2024/m=05/d=01/h={h:02}/m=00/macAddress=00224871C205"
        ));
        fs::create_dir_all(&dir)?;
        fs::write(dir.join("PT1H.json"), vnet_blob("00224871C205", &tuples))?;
    }
    py(
        UPLOAD,
        &[
            layout.to_str().unwrap(),
            "insights-logs-flowlogflowevent",
            "flows",
        ],
        &env,
    )?;

    let topology = Path::new(env!("CARGO_MANIFEST_DIR")).join("../lab/topologies/default.toml");
    let printed = observer(
        &[
            "import",
            "azure-vnet-flow-log",
            &format!("az://insights-logs-flowlogflowevent/{prefix}"),
            "--since",
            "2024-05-01T13:00:00Z",
            "--until",
            "2024-05-01T14",
            "--out",
            "az://flows/imported",
            "--partition",
            "hour",
            "--topology",
            topology.to_str().unwrap(),
        ],
        &env,
    )?;
    // The hour asked for and the one after it (which holds the hour's
    // last minute in Azure's logs; here its tuples are all later).
    assert!(
        printed.contains("read 2 file(s): 20 record(s) in, 10 flow record(s) out, 10 skipped"),
        "{printed}"
    );
    assert!(
        printed.contains("skipped 10: outside --since/--until"),
        "{printed}"
    );
    assert!(
        printed.contains("directories not listed 1: y=/m=/d=/h= outside"),
        "{printed}"
    );

    // Read the Blob output back with the observer (report) ...
    let report = observer(&["report", "az://flows/imported"], &env)?;
    assert!(report.contains("10"), "{report}");
    // ... and, downloaded as the tree it is, with DuckDB as one table.
    let local = scratch.path().join("download");
    let n: usize = py(
        DOWNLOAD,
        &["flows", "imported", local.to_str().unwrap()],
        &env,
    )?
    .trim()
    .parse()?;
    assert_eq!(n, 1, "one partition, one file");
    let rows = py(DUCKDB, &[local.to_str().unwrap()], &[])?;
    let rows: Vec<&str> = rows.lines().collect();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let fields: Vec<&str> = rows[0].split('|').collect();
    assert_eq!(
        &fields[..6],
        &[
            "2024-05-01",
            "13",
            "10",
            &expected_bytes.to_string(),
            &(2 * expected_bytes).to_string(),
            "1"
        ]
    );
    assert_ne!(fields[6], "None", "classified");
    Ok(())
}

// ---- other writers' Parquet ---------------------------------------------------

const REWRITE: &str = r#"
import sys, pyarrow.parquet as pq
table = pq.read_table(sys.argv[1])
for codec in sys.argv[3:]:
    pq.write_table(table, f"{sys.argv[2]}/{codec}.parquet", compression=codec)
print(table.num_rows)
"#;

#[test]
fn parquet_rewritten_by_pyarrow_with_snappy_gzip_and_lz4_is_classified() -> anyhow::Result<()> {
    let scratch = Scratch::new("pyarrow");
    let blob = scratch.path().join("PT1H.json");
    let tuples: Vec<String> = (0..25)
        .map(|i| {
            format!(
                "1714568400000,10.0.0.6,203.0.113.{i},{},443,6,O,E,NX,3,300,3,900",
                40000 + i
            )
        })
        .collect();
    fs::write(&blob, vnet_blob("00224871C205", &tuples))?;
    let imported = scratch.path().join("imported");
    observer(
        &[
            "import",
            "azure-vnet-flow-log",
            blob.to_str().unwrap(),
            "--out",
            imported.to_str().unwrap(),
        ],
        &[],
    )?;
    let file = fs::read_dir(&imported)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "parquet"))
        .context("an imported file")?;
    let rewritten = scratch.path().join("rewritten");
    fs::create_dir_all(&rewritten)?;
    let rows = py(
        REWRITE,
        &[
            file.to_str().unwrap(),
            rewritten.to_str().unwrap(),
            "snappy",
            "gzip",
            "lz4",
        ],
        &[],
    )?;
    assert_eq!(rows.trim(), "25");
    let topology = Path::new(env!("CARGO_MANIFEST_DIR")).join("../lab/topologies/default.toml");
    for codec in ["snappy", "gzip", "lz4"] {
        let out = scratch.path().join(format!("classified-{codec}"));
        let input = rewritten.join(format!("{codec}.parquet"));
        observer(
            &[
                "classify",
                "--topology",
                topology.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                input.to_str().unwrap(),
            ],
            &[],
        )?;
        let flows = read_flows(&out)?;
        assert_eq!(flows.len(), 25, "{codec}");
        assert_eq!(flows.iter().map(|f| f.bytes).sum::<u64>(), 25 * 300);
        assert!(flows.iter().all(
            |f| f.text("verdict").is_some() && f.text("source") == Some("azure-vnet-flow-log")
        ));
    }
    // The directory of all three reads as one input.
    let out = scratch.path().join("classified-all");
    observer(
        &[
            "classify",
            "--topology",
            topology.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            rewritten.to_str().unwrap(),
        ],
        &[],
    )?;
    assert_eq!(read_flows(&out)?.len(), 75);
    Ok(())
}
