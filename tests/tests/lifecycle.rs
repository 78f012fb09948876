//! The observer's life cycle: stopped by SIGTERM mid-capture, killed by
//! SIGKILL, and refused by the errors a user meets. Every path must leave
//! complete files (or none) and nothing attached.

use std::{
    process::{Command, Stdio},
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::{Duration, Instant},
};

use observer_tests::{
    A4, B4, Observer, Pair, Scratch, bpf_attachments, counter, observer_bin, observer_output,
    read_flows, sa, summary, total, traffic,
};

fn udp_to(flows: &[observer_tests::Flow], port: u16) -> (u64, u64) {
    total(flows, |f| {
        f.direction == "egress" && f.protocol == 17 && f.dst_port == Some(port)
    })
}

fn clsact_present(pair: &Pair) -> anyhow::Result<bool> {
    Ok(pair
        .a
        .exec("tc", ["qdisc", "show", "dev", "veth0"])?
        .contains("clsact"))
}

/// SIGTERM while traffic flows: the final drain still accounts every packet
/// sent before it (no periodic drain ever ran), the files are complete, and
/// nothing stays attached, with TCX links and with clsact filters.
#[test]
fn sigterm_mid_capture_leaves_complete_files_and_nothing_attached() -> anyhow::Result<()> {
    let pair = Pair::addressed(false)?;
    for mode in ["tcx", "tc"] {
        let scratch = Scratch::new("sigterm");
        let out = scratch.path().join(mode);
        let observer = Observer::start(
            &pair.a,
            &out,
            &[
                "--iface",
                "veth0",
                "--attach",
                mode,
                "--drain-interval",
                "3600",
                // No flush either: it drains (and snapshots) too.
                "--flush-interval",
                "3600",
                "--quiet",
            ],
        )?;
        assert!(!bpf_attachments(&pair.a)?.is_empty(), "{mode}: attached");
        assert_eq!(clsact_present(&pair)?, mode == "tc");

        // A burst that only the final drain can see ...
        assert_eq!(
            traffic::udp(&pair.a, sa(A4, 42000), sa(B4, 7100), 1000, 100)?,
            1000
        );
        // ... and a stream still running when SIGTERM arrives.
        // SIGTERM goes once 1000 datagrams are out, however fast the host.
        let running = AtomicBool::new(true);
        let progress = AtomicU64::new(0);
        let streamed = std::thread::scope(|scope| -> anyhow::Result<u64> {
            let sender = scope.spawn(|| {
                pair.a.enter(|| -> anyhow::Result<u64> {
                    let socket = std::net::UdpSocket::bind(sa(A4, 42001))?;
                    let deadline = Instant::now() + Duration::from_secs(60);
                    let mut sent = 0;
                    while running.load(Ordering::Relaxed) && Instant::now() < deadline {
                        socket.send_to(&[9; 64], sa(B4, 7101))?;
                        sent += 1;
                        progress.store(sent, Ordering::Relaxed);
                    }
                    Ok(sent)
                })
            });
            let deadline = Instant::now() + Duration::from_secs(30);
            while progress.load(Ordering::Relaxed) < 1000
                && !sender.is_finished()
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            let stopped = observer.stop();
            running.store(false, Ordering::Relaxed);
            let sent = sender.join().expect("sender thread")??;
            stopped?;
            Ok(sent)
        })?;

        assert_eq!(bpf_attachments(&pair.a)?, "", "{mode}: nothing attached");
        assert!(
            !clsact_present(&pair)?,
            "{mode}: the qdisc it added is gone"
        );
        let flows = read_flows(&out)?;
        let run = summary(&out)?;
        assert_eq!(run["stop_reason"], "SIGTERM");
        assert_eq!(
            udp_to(&flows, 7100),
            (1000, 1000 * 128),
            "{mode}: the burst"
        );
        let (seen, _) = udp_to(&flows, 7101);
        assert!(
            seen >= 1000 && seen <= streamed,
            "{mode}: {seen} of {streamed} streamed packets recorded before the detach"
        );
        assert_eq!(counter(&run, "flow_events_lost"), (0, 0));
        assert_eq!(run["lost_packets"], 0);
        assert!(
            flows.iter().all(|f| f.end_reason == "forced-end"),
            "{mode}: flows ended by the shutdown are marked so"
        );
    }
    Ok(())
}

/// cls_bpf filters outlive a SIGKILLed observer; the next run removes them
/// (whatever it attaches with) and the qdisc they hung on. TCX links go
/// with the killed process by themselves.
#[test]
fn the_next_run_cleans_up_after_sigkill() -> anyhow::Result<()> {
    let pair = Pair::addressed(false)?;
    let scratch = Scratch::new("sigkill");

    let tcx = Observer::start(
        &pair.a,
        &scratch.path().join("tcx"),
        &["--iface", "veth0", "--attach", "tcx", "--quiet"],
    )?;
    tcx.kill();
    assert_eq!(
        bpf_attachments(&pair.a)?,
        "",
        "TCX links are released with the process"
    );

    let tc = Observer::start(
        &pair.a,
        &scratch.path().join("tc"),
        &["--iface", "veth0", "--attach", "tc", "--quiet"],
    )?;
    tc.kill();
    let left = bpf_attachments(&pair.a)?;
    assert_eq!(
        left.lines().count(),
        2,
        "the killed run left its two filters:\n{left}"
    );
    assert!(clsact_present(&pair)?);

    let out = scratch.path().join("next");
    let next = Observer::start(&pair.a, &out, &["--iface", "veth0", "--quiet"])?;
    let now = bpf_attachments(&pair.a)?;
    assert!(
        now.lines().count() == 2 && now.lines().all(|l| l.starts_with("tcx ")),
        "only the new run's two TCX programs, the stale filters are gone:\n{now}"
    );
    assert_eq!(
        traffic::udp(&pair.a, sa(A4, 42002), sa(B4, 7102), 10, 50)?,
        10
    );
    let log = next.stop()?;
    assert!(
        log.contains("stale"),
        "the run says what it removed:\n{log}"
    );
    assert_eq!(bpf_attachments(&pair.a)?, "");
    assert!(
        !clsact_present(&pair)?,
        "the orphaned clsact qdisc is gone too"
    );
    assert_eq!(udp_to(&read_flows(&out)?, 7102), (10, 10 * 78));
    Ok(())
}

/// Runs `observer run --netns NS ARGS...`, expecting a failure whose
/// message contains `needle`, and checks nothing is left attached.
fn refused(pair: &Pair, args: &[&str], needle: &str) -> anyhow::Result<()> {
    let mut all = vec![
        "run",
        "--netns",
        pair.a.name(),
        "--duration",
        "2",
        "--quiet",
    ];
    all.extend_from_slice(args);
    let (status, stderr) = observer_output(&all);
    assert!(!status.success(), "{args:?} must fail");
    assert_eq!(status.code(), Some(1), "{args:?}: {stderr}");
    assert!(
        stderr.contains(needle),
        "{args:?}: expected `{needle}` in:\n{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "one clear line:\n{stderr}");
    assert_eq!(bpf_attachments(&pair.a)?, "", "{args:?}: nothing attached");
    assert!(!clsact_present(pair)?, "{args:?}: no qdisc left");
    Ok(())
}

/// Runs a shell script in a private mount namespace (its mounts vanish with it).
fn in_private_mounts(script: &str) -> std::process::Output {
    Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-ec", script])
        .stdin(Stdio::null())
        .output()
        .expect("unshare")
}

#[test]
fn user_errors_fail_cleanly_with_nothing_attached() -> anyhow::Result<()> {
    let pair = Pair::addressed(false)?;
    let scratch = Scratch::new("errors");
    let out = scratch.path().join("out");
    let out = out.to_str().unwrap();

    refused(
        &pair,
        &["--iface", "nosuch0", "--out", out],
        "interface `nosuch0` not found",
    )?;
    // Map sizes the kernel would refuse are refused with the command line:
    // the flag, the value and the limit.
    for (flag, value, needle) in [
        ("--flow-cache-slots", "1000", "must be a power of two"),
        (
            "--flow-cache-slots",
            "2147483648",
            "is more than the kernel accepts here",
        ),
        (
            "--flow-map-size",
            "200000000",
            "must be 1 to 134217728 (the kernel's limit for a hash map)",
        ),
        ("--event-ring-mib", "4096", "a power of two from 1 to 2048"),
        ("--dns-ring-mib", "3", "a power of two from 1 to 2048"),
    ] {
        let (status, stderr) = observer_output(&[
            "run",
            "--netns",
            pair.a.name(),
            "--iface",
            "veth0",
            "--out",
            out,
            flag,
            value,
        ]);
        assert_eq!(
            status.code(),
            Some(2),
            "{flag} {value}: a usage error\n{stderr}"
        );
        assert!(
            stderr.contains(&format!("invalid value '{value}' for '{flag} "))
                && stderr.contains(needle),
            "{flag} {value}: expected `{needle}` in:\n{stderr}"
        );
        assert_eq!(
            bpf_attachments(&pair.a)?,
            "",
            "{flag} {value}: nothing attached"
        );
    }
    // The good interface is not attached when a later one is missing.
    refused(
        &pair,
        &["--iface", "veth0", "--iface", "nosuch1", "--out", out],
        "interface `nosuch1` not found",
    )?;
    let (status, stderr) = observer_output(&[
        "run",
        "--netns",
        "obt-no-such-ns",
        "--iface",
        "lo",
        "--out",
        out,
    ]);
    assert!(!status.success());
    assert!(
        stderr.contains("network namespace `obt-no-such-ns` not found"),
        "{stderr}"
    );

    // No privileges: an unprivileged user, and root without CAP_BPF.
    let bin = observer_bin();
    let run = |setpriv: &[&str]| {
        let output = Command::new("setpriv")
            .args(setpriv)
            .arg(&bin)
            .args(["run", "--iface", "lo", "--duration", "1", "--out"])
            .arg(scratch.path().join("unprivileged"))
            .output()
            .expect("setpriv");
        (
            output.status,
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (status, stderr) = run(&[
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
    ]);
    assert!(!status.success());
    assert!(
        stderr.contains("missing CAP_BPF and CAP_NET_ADMIN"),
        "{stderr}"
    );
    assert!(
        stderr.contains("setcap"),
        "says how to grant them: {stderr}"
    );
    let (status, stderr) = run(&["--inh-caps=-all", "--bounding-set=-bpf,-sys_admin,-perfmon"]);
    assert!(!status.success());
    assert!(
        stderr.contains("missing CAP_BPF and CAP_PERFMON"),
        "{stderr}"
    );

    // A read-only output directory.
    let ro = scratch.path().join("ro");
    std::fs::create_dir_all(&ro)?;
    let output = in_private_mounts(&format!(
        "mount -t tmpfs -o ro,size=1m observer-test {ro} && exec {bin} run --netns {ns} --iface veth0 --duration 2 --quiet --out {ro}/flows",
        ro = ro.display(),
        bin = bin.display(),
        ns = pair.a.name(),
    ));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("is not writable"), "{stderr}");
    assert_eq!(bpf_attachments(&pair.a)?, "");
    Ok(())
}

/// A disk that fills up mid-capture: a clear error, a non-zero exit,
/// nothing attached, no half-written file, and still a summary (the file,
/// or stderr when even that does not fit) that names the file that could
/// not be written and accounts for every packet: in complete files or
/// counted as unwritten.
#[test]
fn disk_full_stops_the_run_cleanly_with_a_summary() -> anyhow::Result<()> {
    let pair = Pair::addressed(false)?;
    let scratch = Scratch::new("full");
    let dir = scratch.path().join("small");
    let kept = scratch.path().join("kept");
    std::fs::create_dir_all(&dir)?;
    std::fs::create_dir_all(&kept)?;
    let ready = scratch.path().join("ready");
    // The tmpfs lives in a private mount namespace: what it holds is
    // copied out before the namespace (and the mount) goes.
    let script = format!(
        "mount -t tmpfs -o size=64k observer-test {dir} && {bin} run --netns {ns} --iface veth0 \
         --duration 30 --idle-timeout 0.1 --flush-interval 0.2 --quiet --ready-file {ready} --out {dir}; \
         rc=$?; ls -a {dir}; cp {dir}/*.parquet {dir}/run-*.json {kept}/ 2>/dev/null; exit $rc",
        dir = dir.display(),
        kept = kept.display(),
        bin = observer_bin().display(),
        ns = pair.a.name(),
        ready = ready.display(),
    );
    let child = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready.exists() {
        assert!(Instant::now() < deadline, "observer did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Many small flows: their records outgrow 64 KiB within a few flushes.
    pair.a.enter(|| -> anyhow::Result<()> {
        let socket = std::net::UdpSocket::bind(sa(A4, 42003))?;
        for port in 0..60_000u16 {
            socket.send_to(&[1; 8], sa(B4, 1024 + port))?;
            if port % 5000 == 4999 {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(())
    })??;
    let output = child.wait_with_output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let listing = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("disk full while writing"), "{stderr}");
    assert!(
        stderr.contains("could not be written") && stderr.contains("so the capture stopped"),
        "says what was lost: {stderr}"
    );
    assert!(
        !listing.contains(".tmp"),
        "no half-written file:\n{listing}"
    );
    assert_eq!(bpf_attachments(&pair.a)?, "");
    assert!(!clsact_present(&pair)?);

    // The summary: the file when it fit, else the JSON on stderr.
    let run = match summary(&kept) {
        Ok(run) => run,
        Err(_) => {
            let (start, end) = (stderr.find('{'), stderr.rfind('}'));
            let json = start
                .zip(end)
                .map(|(s, e)| &stderr[s..=e])
                .unwrap_or_else(|| panic!("no summary file and none on stderr:\n{stderr}"));
            serde_json::from_str(json)?
        }
    };
    assert_eq!(run["stop_reason"], "write-failed");
    let failed = run["write_failures"][0]["file"]
        .as_str()
        .unwrap_or_default();
    assert!(
        failed.starts_with(&dir.display().to_string())
            && failed.contains("/flows-")
            && failed.ends_with(".parquet"),
        "names the file that could not be written: {run}"
    );
    assert!(run["write_failures"][0]["rows"].as_u64() > Some(0));
    let unwritten = run["unwritten"]["packets"].as_u64().unwrap_or_default();
    assert!(unwritten > 0, "{run}");
    let written = total(&read_flows(&kept)?, |_| true).0;
    assert_eq!(
        written + unwritten,
        run["packets"].as_u64().unwrap_or_default(),
        "every record is in a complete file or counted as unwritten"
    );
    assert_eq!(
        run["packets"].as_u64(),
        Some(counter(&run, "flow_packets").0),
        "and every packet the kernel counted is in a record"
    );
    Ok(())
}
