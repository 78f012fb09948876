//! `cargo xtask bench`: the capture path measured against itself, observer
//! attached vs not, on one veth pair between two namespaces, alternating
//! rounds. Every load is bounded in time and count and stays inside the
//! pair. Results go to stdout (a Markdown table) and `target/bench/capture.json`;
//! `docs/BENCHMARKS.md` explains the method. The kernel program's figures
//! (BPF cost, verifier), with their comparison to a baseline build, live in
//! `bench_bpf.rs`.

#[path = "bench_bpf.rs"]
mod bpf;
#[path = "bench_readings.rs"]
mod readings;

use std::{
    net::{SocketAddr, UdpSocket},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, ensure};
use observer::lab::netns::{Netns, Process, veth};
use serde_json::{Value, json};

use self::readings::{children_cpu_seconds, flow_map_bytes, median, rss_bytes, rx_packets};
use crate::{build_observer, interrupted, setup, workspace_root};

#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    /// Short runs (seconds instead of minutes) for a smoke check.
    #[arg(long)]
    quick: bool,
    /// Alternating baseline/observed rounds per ratio (default 5, 1 with `--quick`).
    #[arg(long)]
    rounds: Option<u32>,
    /// Run only these parts (repeatable); all of them by default.
    #[arg(long, value_enum)]
    only: Vec<Part>,
    /// Flow-log tuples the import benchmark generates and imports.
    #[arg(long, default_value_t = 10_000_000)]
    tuples: u64,
    /// Flow-log tuples the Spark benchmark generates (imported, then
    /// classified by Spark).
    #[arg(long, default_value_t = 2_000_000)]
    spark_tuples: u64,
    /// An `observer` binary built from another commit (e.g. main): the
    /// `bpf`, `verifier`, `labexec` and `import` parts measure it too, in
    /// alternating rounds, and print this build's figures over its.
    #[arg(long)]
    baseline: Option<PathBuf>,
}

/// The parts of the capture benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Part {
    /// iperf3 TCP throughput ratio.
    Tcp,
    /// 64-byte UDP rate ratios (256 flows and 1 flow).
    Udp,
    /// BPF cost per packet (UDP and TCP loads).
    Bpf,
    /// The verifier's work loading the program, and the observer's start-up.
    Verifier,
    /// pmacctd side by side.
    Pmacct,
    /// New-flow rate with exact records.
    Churn,
    /// Kernel and userspace memory, and RSS over a steady load.
    Memory,
    /// `observer lab exec default -- true` end to end (build, attach, run,
    /// drain, classify, report, teardown).
    Labexec,
    /// Flow-log import end to end and Parquet writing vs DuckDB (no root).
    Import,
    /// The Python wheel on Spark local[cores] vs the native CLI (no root).
    Spark,
}

const A: &str = "10.88.0.1";
const B: &str = "10.88.0.2";
/// 18 bytes of UDP payload: 14 + 20 + 8 + 18 = 60-byte frames, 64 on the wire with FCS.
const SMALL_PAYLOAD: usize = 18;
/// UDP destination ports the churn load spreads over (dropped by nft in B).
const CHURN_PORTS: std::ops::Range<u16> = 2000..62000;

struct Bench {
    observer: PathBuf,
    baseline: Option<PathBuf>,
    a: Netns,
    b: Netns,
    scratch: PathBuf,
    seconds: u64,
    runs: u32,
}

pub(crate) fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let baseline =
        match &args.baseline {
            Some(path) => Some(path.canonicalize().with_context(|| {
                format!("--baseline {}: no such observer binary", path.display())
            })?),
            None => None,
        };
    let import = args.only.is_empty() || args.only.contains(&Part::Import);
    if import {
        let tuples = if args.quick { 1_000_000 } else { args.tuples };
        crate::bench_import::run(tuples, baseline.as_deref())?;
    }
    if args.only.is_empty() || args.only.contains(&Part::Spark) {
        let tuples = if args.quick {
            200_000
        } else {
            args.spark_tuples
        };
        crate::bench_spark::run(tuples, if args.quick { 1 } else { 3 })?;
    }
    if args
        .only
        .iter()
        .all(|p| matches!(p, Part::Import | Part::Spark))
        && !args.only.is_empty()
    {
        return Ok(());
    }
    let observer = build_observer()?;
    setup::packages(&[setup::TEST_PACKAGES, setup::BENCH_PACKAGES].concat())?;
    ensure!(
        setup::is_root(),
        "benchmarks load BPF and build namespaces: run as root"
    );
    let scratch = workspace_root().join("target/bench");
    std::fs::create_dir_all(&scratch)?;
    let (a, b) = (Netns::new("obbench")?, Netns::new("obbench")?);
    veth(&a, "veth0", &b, "veth0")?;
    for (ns, addr) in [(&a, A), (&b, B)] {
        // A quiet link: no IPv6 link-local address, so no router
        // solicitations (retried for hours with backoff) or MLD reports
        // land in the counted loads.
        ns.ip(["link", "set", "veth0", "addrgenmode", "none"])?;
        ns.ip(["addr", "add", &format!("{addr}/24"), "dev", "veth0"])?;
        ns.ip(["link", "set", "veth0", "up"])?;
    }
    // Churn and small-packet loads are dropped at B's input: no replies, no ICMP.
    b.exec("nft", ["add table inet bench; add chain inet bench input { type filter hook input priority 0; policy accept; }; add rule inet bench input udp dport 2000-62000 drop"])?;
    let bench = Bench {
        observer,
        baseline,
        a,
        b,
        scratch,
        seconds: if args.quick { 3 } else { 10 },
        runs: 0,
    };
    let results = bench.all(args)?;
    let path = workspace_root().join("target/bench/capture.json");
    std::fs::write(&path, serde_json::to_string_pretty(&results)?)?;
    eprintln!("xtask: results in {}", path.display());
    Ok(())
}

impl Bench {
    fn all(mut self, args: &BenchArgs) -> anyhow::Result<Value> {
        let rounds = args.rounds.unwrap_or(if args.quick { 1 } else { 5 }).max(1);
        let wanted = |part: Part| args.only.is_empty() || args.only.contains(&part);
        let iperf = Process::spawn(
            self.b
                .command("iperf3")
                .args(["-s", "-B", B])
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            "iperf3 -s",
        )?;
        std::thread::sleep(Duration::from_millis(300));
        let mut rows = Vec::new();
        if wanted(Part::Tcp) {
            rows.push(self.ratio(rounds, "iperf3 TCP", |b| b.iperf_tcp())?);
        }
        if wanted(Part::Udp) {
            rows.push(self.ratio(rounds, "64-byte UDP, 256 flows", |b| b.small_packets(256))?);
            rows.push(self.ratio(rounds, "64-byte UDP, 1 flow", |b| b.small_packets(1))?);
        }
        let bpf = if wanted(Part::Bpf) {
            self.bpf_costs(rounds)?
        } else {
            Vec::new()
        };
        let verifier = if wanted(Part::Verifier) {
            self.verifier(rounds)?
        } else {
            Vec::new()
        };
        let pmacct = if wanted(Part::Pmacct) {
            self.pmacct()?
        } else {
            Value::Null
        };
        drop(iperf);
        let churn = if wanted(Part::Churn) {
            self.churn(if args.quick {
                &[20_000, 50_000, 100_000]
            } else {
                &[25_000, 50_000, 100_000, 150_000, 200_000, 300_000]
            })?
        } else {
            Value::Null
        };
        let memory = if wanted(Part::Memory) {
            self.memory(
                if args.quick { 200_000 } else { 1_000_000 },
                Duration::from_secs(if args.quick { 60 } else { 600 }),
            )?
        } else {
            Value::Null
        };

        let labexec = if wanted(Part::Labexec) {
            self.lab_exec(rounds.max(5))?
        } else {
            Value::Null
        };

        println!("\n| measure | baseline | observed | ratio |\n|---|---|---|---|");
        for row in &rows {
            println!(
                "| {} | {:.0} | {:.0} | {:.3} |",
                row["name"].as_str().unwrap_or(""),
                row["baseline"].as_f64().unwrap_or(0.0),
                row["observed"].as_f64().unwrap_or(0.0),
                row["ratio"].as_f64().unwrap_or(0.0)
            );
        }
        bpf::print_table("BPF cost per packet (run_time_ns / run_cnt)", &bpf);
        bpf::print_table("verifier, per observer start", &verifier);
        println!("pmacct: {pmacct}");
        println!("churn: {churn}");
        println!("memory: {memory}");
        println!("lab exec default -- true: {labexec}");
        Ok(
            json!({ "ratios": rows, "bpf_cost": bpf, "verifier": verifier, "pmacct": pmacct, "churn": churn, "memory": memory, "lab_exec": labexec }),
        )
    }

    /// Wall and CPU time of `observer lab exec default -- true`, `rounds`
    /// times (the first one included: nothing is cached between runs);
    /// with `--baseline`, that binary in alternating rounds.
    fn lab_exec(&mut self, rounds: u32) -> anyhow::Result<Value> {
        let mut binaries = vec![("observer", self.observer.clone())];
        if let Some(baseline) = &self.baseline {
            binaries.push(("baseline", baseline.clone()));
        }
        let mut results = Vec::new();
        let mut samples = vec![(Vec::new(), Vec::new()); binaries.len()];
        for round in 0..rounds {
            if interrupted() {
                break;
            }
            for ((name, binary), (seconds, cpu)) in binaries.iter().zip(&mut samples) {
                let (elapsed, cpu_used) = self.lab_exec_once(binary, round)?;
                eprintln!(
                    "xtask: lab exec round {round} ({name}): {elapsed:.3} s wall, {cpu_used:.3} s CPU"
                );
                seconds.push(elapsed);
                cpu.push(cpu_used);
            }
        }
        for ((name, _), (mut seconds, mut cpu)) in binaries.iter().zip(samples) {
            let (all, all_cpu) = (seconds.clone(), cpu.clone());
            results.push(json!({
                "binary": name,
                "rounds": all,
                "median_s": median(&mut seconds),
                "cpu_rounds": all_cpu,
                "median_cpu_s": median(&mut cpu),
            }));
        }
        for r in &results {
            println!(
                "lab exec default -- true ({}): median {:.3} s wall, {:.3} s CPU (targets <= 1.2 s, <= 1.5 s)",
                r["binary"].as_str().unwrap_or_default(),
                r["median_s"].as_f64().unwrap_or(f64::NAN),
                r["median_cpu_s"].as_f64().unwrap_or(f64::NAN),
            );
        }
        let mut result = results[0].clone();
        result["baseline"] = results.get(1).cloned().unwrap_or(Value::Null);
        result["load_average"] = json!(
            std::fs::read_to_string("/proc/loadavg")
                .unwrap_or_default()
                .trim()
        );
        Ok(result)
    }

    /// One `lab exec default -- true`: wall seconds and the CPU seconds of
    /// every descendant.
    fn lab_exec_once(&self, binary: &Path, round: u32) -> anyhow::Result<(f64, f64)> {
        let out = self.scratch.join(format!("labexec-{round}"));
        let _ = std::fs::remove_dir_all(&out);
        let cpu_before = children_cpu_seconds();
        let started = Instant::now();
        let status = Command::new(binary)
            .args(["--quiet", "lab", "exec", "default", "--out"])
            .arg(&out)
            .args(["--", "true"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        let elapsed = started.elapsed().as_secs_f64();
        let cpu_used = children_cpu_seconds() - cpu_before;
        ensure!(
            status.success(),
            "{} lab exec default -- true failed ({status})",
            binary.display()
        );
        Ok((elapsed, cpu_used))
    }

    /// Alternates baseline and observed runs of `load`; returns medians and their ratio.
    fn ratio(
        &mut self,
        rounds: u32,
        name: &str,
        load: impl Fn(&Self) -> anyhow::Result<f64>,
    ) -> anyhow::Result<Value> {
        let (mut base, mut seen) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            ensure!(!interrupted(), "interrupted");
            base.push(load(self)?);
            let observer = self.start_observer(&[])?;
            seen.push(load(self)?);
            observer.stop()?;
            eprintln!(
                "xtask: {name} round {round}: baseline {:.0}, observed {:.0}",
                base.last().unwrap_or(&0.0),
                seen.last().unwrap_or(&0.0)
            );
        }
        let (b, o) = (median(&mut base), median(&mut seen));
        Ok(json!({ "name": name, "baseline": b, "observed": o, "ratio": o / b, "rounds": rounds }))
    }

    fn start_observer(&mut self, extra: &[&str]) -> anyhow::Result<RunningObserver> {
        let observer = self.observer.clone();
        self.start_observer_with(&observer, extra, &[])
    }

    /// `binary` observing the bench link, with `env` added to its environment.
    fn start_observer_with(
        &mut self,
        binary: &Path,
        extra: &[&str],
        env: &[(&str, &std::ffi::OsStr)],
    ) -> anyhow::Result<RunningObserver> {
        self.runs += 1;
        let out = self
            .scratch
            .join(format!("run-{}-{}", std::process::id(), self.runs));
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(&out)?;
        let ready = out.join("ready");
        let mut command = Command::new(binary);
        command
            .envs(env.iter().copied())
            .args([
                "--quiet",
                "run",
                "--netns",
                self.a.name(),
                "--iface",
                "veth0=bench",
                "--ready-file",
            ])
            .arg(&ready)
            .arg("--out")
            .arg(&out)
            .args(extra);
        let mut process = Process::spawn(&mut command, "observer run")?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ready.exists() {
            ensure!(
                process.is_running() && Instant::now() < deadline,
                "observer did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(RunningObserver { process, out })
    }

    /// iperf3 TCP for `seconds`, bits per second received.
    fn iperf_tcp(&self) -> anyhow::Result<f64> {
        let out = self
            .a
            // Client and server pinned to different CPUs: on a small VM the
            // scheduler's placement otherwise moves the result by +-10 %.
            .exec(
                "iperf3",
                ["-c", B, "-J", "-A", "0,1", "-t", &self.seconds.to_string()],
            )?;
        let v: Value = serde_json::from_str(&out).context("iperf3 JSON")?;
        v["end"]["sum_received"]["bits_per_second"]
            .as_f64()
            .context("iperf3: no sum_received")
    }

    /// 64-byte frames from `flows` sockets (distinct source ports) for
    /// `seconds`, as fast as one core sends; packets per second B received.
    fn small_packets(&self, flows: u16) -> anyhow::Result<f64> {
        let before = rx_packets(&self.b)?;
        let seconds = self.seconds;
        let start = Instant::now();
        self.a.enter(move || -> anyhow::Result<()> {
            let sockets: Vec<UdpSocket> = (0..flows)
                .map(|i| UdpSocket::bind((A, 30000 + i)))
                .collect::<Result<_, _>>()?;
            let dst: SocketAddr = format!("{B}:2000").parse()?;
            let payload = [0x5au8; SMALL_PAYLOAD];
            let end = Instant::now() + Duration::from_secs(seconds);
            'send: loop {
                for socket in &sockets {
                    for _ in 0..64 {
                        let _ = socket.send_to(&payload, dst);
                    }
                    if Instant::now() >= end {
                        break 'send;
                    }
                }
            }
            Ok(())
        })??;
        let elapsed = start.elapsed().as_secs_f64();
        Ok((rx_packets(&self.b)? - before) as f64 / elapsed)
    }

    /// pmacctd (libpcap) on the same interface under the same loads: its
    /// throughput ratio and how far its packet count is from what was sent.
    fn pmacct(&mut self) -> anyhow::Result<Value> {
        let conf = self.scratch.join("pmacctd.conf");
        let pipe = self.scratch.join("pmacct.pipe");
        std::fs::write(
            &conf,
            format!(
                "daemonize: false\npcap_interface: veth0\nplugins: memory\naggregate: src_host, dst_host, src_port, dst_port, proto\nimt_path: {}\n",
                pipe.display()
            ),
        )?;
        let base = self.iperf_tcp()?;
        let pmacctd = Process::spawn(
            self.a
                .command("pmacctd")
                .arg("-f")
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            "pmacctd",
        )?;
        std::thread::sleep(Duration::from_secs(2));
        let with = self.iperf_tcp()?;
        // Accounting error on a counted load: a known number of 64-byte datagrams.
        let _ = Command::new("pmacct")
            .arg("-p")
            .arg(&pipe)
            .arg("-e")
            .output();
        let sent = self.counted_udp(200_000, 100_000)?;
        std::thread::sleep(Duration::from_secs(2));
        let query = Command::new("pmacct")
            .arg("-p")
            .arg(&pipe)
            .args(["-s", "-O", "json"])
            .output()?;
        drop(pmacctd);
        let seen: u64 = String::from_utf8_lossy(&query.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["ip_proto"] == "udp" && v["ip_dst"] == B)
            .map(|v| v["packets"].as_u64().unwrap_or(0))
            .sum();
        // The same counted load through the observer.
        let observer = self.start_observer(&[])?;
        let ours_sent = self.counted_udp(200_000, 100_000)?;
        let summary = observer.stop()?;
        Ok(json!({
            "tcp_ratio": with / base,
            "pmacct_packets": seen, "pmacct_sent": sent, "pmacct_error": (sent as f64 - seen as f64) / sent as f64,
            "observer_packets": summary["packets"], "observer_sent": ours_sent,
            "observer_error": (ours_sent as f64 - summary["packets"].as_f64().unwrap_or(0.0) + summary["counters"]["not_accounted"]["packets"].as_f64().unwrap_or(0.0)) / ours_sent as f64,
        }))
    }

    /// Sends `count` 64-byte datagrams of one flow at `rate` per second.
    fn counted_udp(&self, count: u64, rate: u64) -> anyhow::Result<u64> {
        self.a
            .enter(move || paced(count, rate, |_| (30000, 2000)))?
    }

    /// New flows at rising rates: each step one observer run of unique
    /// 5-tuples (one packet each); the step passes when every flow came
    /// back as exactly one record with exact packets and bytes, no loss.
    fn churn(&mut self, rates: &[u64]) -> anyhow::Result<Value> {
        let mut steps = Vec::new();
        let mut best = 0;
        for &rate in rates {
            ensure!(!interrupted(), "interrupted");
            let count = rate * self.seconds.min(5);
            let observer = self.start_observer(&[
                "--idle-timeout",
                "120",
                "--active-timeout",
                "300",
                "--max-flows",
                "4000000",
            ])?;
            let start = Instant::now();
            let sent = self.a.enter(move || paced(count, rate, churn_tuple))??;
            let achieved = sent as f64 / start.elapsed().as_secs_f64();
            let summary = observer.stop()?;
            let exact = summary["records"] == sent
                && summary["packets"] == sent
                && summary["bytes"] == sent * (SMALL_PAYLOAD as u64 + 28)
                && summary["lost_packets"] == 0;
            eprintln!(
                "xtask: churn {rate}/s: sent {sent} at {achieved:.0}/s, records {}, exact: {exact}",
                summary["records"]
            );
            if exact && achieved >= rate as f64 * 0.95 {
                best = best.max(rate);
            }
            steps.push(json!({ "target_rate": rate, "achieved_rate": achieved, "sent": sent, "records": summary["records"], "packets": summary["packets"], "bytes": summary["bytes"], "exact": exact, "flow_map_full": summary["counters"]["flow_map_full"]["packets"] }));
        }
        Ok(json!({ "best_exact_rate": best, "steps": steps }))
    }

    /// Userspace RSS per live flow with `flows` live flows; kernel map
    /// bytes per slot from bpftool; RSS over a steady load of `steady`.
    fn memory(&mut self, flows: u64, steady: Duration) -> anyhow::Result<Value> {
        let observer = self.start_observer(&[
            "--idle-timeout",
            "900",
            "--active-timeout",
            "1800",
            "--max-flows",
            "4000000",
            "--status-interval",
            "3600",
        ])?;
        std::thread::sleep(Duration::from_secs(1));
        let idle_rss = rss_bytes(observer.pid())?;
        let map = flow_map_bytes()?;
        self.a.enter(move || paced(flows, 200_000, churn_tuple))??;
        std::thread::sleep(Duration::from_secs(2));
        let full_rss = rss_bytes(observer.pid())?;
        // Steady load: the same flows again and again, so live flows stay flat.
        let mut samples = Vec::new();
        let end = Instant::now() + steady;
        while Instant::now() < end && !interrupted() {
            let n = flows.min(100_000);
            self.a.enter(move || paced(n, 50_000, churn_tuple))??;
            samples.push(rss_bytes(observer.pid())?);
        }
        let summary = observer.stop()?;
        Ok(json!({
            "live_flows": flows, "idle_rss": idle_rss, "full_rss": full_rss,
            "rss_per_flow": (full_rss.saturating_sub(idle_rss)) as f64 / flows as f64,
            "kernel_map": map, "steady_rss_samples": samples, "steady_seconds": steady.as_secs(),
            "records": summary["records"],
        }))
    }
}

fn churn_tuple(i: u64) -> (u16, u16) {
    let ports = u64::from(CHURN_PORTS.end - CHURN_PORTS.start);
    (
        40000 + (i / ports) as u16,
        CHURN_PORTS.start + (i % ports) as u16,
    )
}

/// Sends `count` datagrams at `rate`/s (1 ms batches), the i-th from source
/// port `tuple(i).0` to B's port `tuple(i).1`. Returns how many were sent.
fn paced(count: u64, rate: u64, tuple: impl Fn(u64) -> (u16, u16)) -> anyhow::Result<u64> {
    use std::collections::HashMap;
    let mut sockets: HashMap<u16, UdpSocket> = HashMap::new();
    let payload = [0x5au8; SMALL_PAYLOAD];
    let start = Instant::now();
    let mut sent = 0;
    while sent < count {
        let due = ((start.elapsed().as_secs_f64() * rate as f64) as u64 + 1).min(count);
        while sent < due {
            let (src, dst) = tuple(sent);
            let socket = match sockets.entry(src) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(UdpSocket::bind((A, src))?)
                }
            };
            // A full socket buffer would not be a sent packet: retry.
            while socket.send_to(&payload, (B, dst)).is_err() {
                std::thread::yield_now();
            }
            sent += 1;
        }
        if sent < count && due == sent {
            std::thread::sleep(Duration::from_micros(500));
        }
    }
    Ok(sent)
}

struct RunningObserver {
    process: Process,
    out: PathBuf,
}

impl RunningObserver {
    fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// SIGTERM; returns the run summary.
    fn stop(self) -> anyhow::Result<Value> {
        let status = self
            .process
            .terminate(Duration::from_secs(60))
            .context("observer vanished")?;
        ensure!(status.success(), "observer failed: {status}");
        summary(&self.out)
    }
}

fn summary(out: &Path) -> anyhow::Result<Value> {
    let path = std::fs::read_dir(out)?
        .filter_map(|e| Some(e.ok()?.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("run-") && n.ends_with(".json"))
        })
        .context("no run summary")?;
    Ok(serde_json::from_str(&std::fs::read_to_string(path)?)?)
}
