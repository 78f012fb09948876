//! What a crash costs: each flush writes the live flows' packets so far
//! (interim records, `active-timeout`), so `kill -9` loses at most one
//! flush interval, and since each interim record counts only what came
//! after the previous one, a normal run's rows add up to exactly what was
//! sent.

use std::{
    path::Path,
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::{Duration, Instant},
};

use observer_tests::{
    A4, B4, Flow, Observer, Pair, Scratch, read_flows, sa, summary, total,
    traffic::{drain_udp, udp_socket},
};

const PORT: u16 = 7300;

fn sent_to_port(flows: &[Flow]) -> u64 {
    total(flows, |f| {
        f.direction == "egress" && f.protocol == 17 && f.dst_port == Some(PORT)
    })
    .0
}

fn flow_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .filter(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.starts_with("flows-") && name.ends_with(".parquet")
            })
            .count()
    })
}

/// Sends one datagram every 2 ms from A to B:`PORT` until `running` is
/// cleared (or 60 s pass), counting each in `sent` once the kernel took it
/// (the egress hook has then counted it).
fn steady_sender(
    pair: &Pair,
    running: &AtomicBool,
    sent: &AtomicU64,
) -> impl FnOnce() -> anyhow::Result<()> {
    let socket = udp_socket(&pair.a, sa(A4, 42300));
    move || {
        let socket = socket?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while running.load(Ordering::Relaxed) && Instant::now() < deadline {
            socket.send_to(&[3; 64], sa(B4, PORT))?;
            sent.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    }
}

/// Waits (at most 30 s) until `done` holds.
fn wait_for(what: &str, done: impl Fn() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        anyhow::ensure!(Instant::now() < deadline, "{what} within 30 s");
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// `kill -9` after more than a flush interval: the files on disk hold at
/// least every packet sent before the last flush that began after the
/// count was taken (and no more than was sent).
#[test]
fn kill_9_loses_at_most_one_flush_interval() -> anyhow::Result<()> {
    let pair = Pair::addressed(false)?;
    let scratch = Scratch::new("kill9");
    let out = scratch.path().join("out");
    let sink = udp_socket(&pair.b, sa(B4, PORT))?;
    let observer = Observer::start(
        &pair.a,
        &out,
        &[
            "--iface",
            "veth0",
            "--quiet",
            "--flush-interval",
            "1",
            "--idle-timeout",
            "60",
        ],
    )?;
    let running = AtomicBool::new(true);
    let sent = AtomicU64::new(0);
    let (before, total_sent) = std::thread::scope(|scope| -> anyhow::Result<(u64, u64)> {
        let sender = scope.spawn(steady_sender(&pair, &running, &sent));
        let result = (|| -> anyhow::Result<u64> {
            wait_for("500 datagrams sent", || sent.load(Ordering::Relaxed) >= 500)?;
            // Every packet counted in `before` was counted by the kernel
            // before `files` was read. The file that makes `files + 1` may
            // come from a flush already under way; the one after it comes
            // from a flush that began later, so it holds them all.
            let before = sent.load(Ordering::Relaxed);
            let files = flow_files(&out);
            wait_for("two more flushes", || flow_files(&out) >= files + 2)?;
            Ok(before)
        })();
        observer.kill();
        running.store(false, Ordering::Relaxed);
        sender.join().expect("sender thread")?;
        Ok((result?, sent.load(Ordering::Relaxed)))
    })?;
    drain_udp(&sink);
    // A write the kill cut short leaves its temporary file, never a
    // partial file under a final name; the reader refuses leftovers.
    for entry in std::fs::read_dir(&out)? {
        let path = entry?.path();
        if path.to_string_lossy().ends_with(".tmp") {
            std::fs::remove_file(path)?;
        }
    }
    let on_disk = sent_to_port(&read_flows(&out)?);
    assert!(
        before <= on_disk && on_disk <= total_sent,
        "{on_disk} packets on disk after kill -9; {before} were sent before the last flush \
         began, {total_sent} in all"
    );
    Ok(())
}

/// A normal run across several flushes: interim records of the one flow,
/// then its last record at the stop, adding up to exactly what was sent.
#[test]
fn interim_records_add_up_to_what_was_sent() -> anyhow::Result<()> {
    let pair = Pair::addressed(false)?;
    let scratch = Scratch::new("interim");
    let out = scratch.path().join("out");
    let sink = udp_socket(&pair.b, sa(B4, PORT))?;
    let observer = Observer::start(
        &pair.a,
        &out,
        &[
            "--iface",
            "veth0",
            "--quiet",
            "--flush-interval",
            "1",
            "--idle-timeout",
            "60",
        ],
    )?;
    let running = AtomicBool::new(true);
    let sent = AtomicU64::new(0);
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let sender = scope.spawn(steady_sender(&pair, &running, &sent));
        let files = flow_files(&out);
        let waited = wait_for("three flushes", || flow_files(&out) >= files + 3);
        running.store(false, Ordering::Relaxed);
        sender.join().expect("sender thread")?;
        waited
    })?;
    observer.stop()?;
    drain_udp(&sink);

    let flows: Vec<Flow> = read_flows(&out)?
        .into_iter()
        .filter(|f| f.direction == "egress" && f.dst_port == Some(PORT))
        .collect();
    let sent = sent.load(Ordering::Relaxed);
    assert_eq!(sent_to_port(&flows), sent, "every packet once");
    let interim = flows
        .iter()
        .filter(|f| f.end_reason == "active-timeout")
        .count();
    assert!(
        interim >= 2,
        "the flushes wrote interim records: {:?}",
        flows.iter().map(|f| &f.end_reason).collect::<Vec<_>>()
    );
    // End times count kernel ticks from the exact start: within one tick
    // (10 ms at HZ >= 100) of the last packet.
    let tick = 10_000_000;
    let mut spans: Vec<(i64, i64)> = flows.iter().map(|f| (f.start_ns, f.end_ns)).collect();
    spans.sort_unstable();
    assert!(
        spans.windows(2).all(|w| w[0].1 < w[1].0 + tick),
        "records of one flow do not overlap: {spans:?}"
    );
    let run = summary(&out)?;
    assert_eq!(run["lost_packets"], 0);
    Ok(())
}
