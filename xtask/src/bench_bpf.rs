//! The kernel program's part of `cargo xtask bench`: what the BPF program
//! costs per packet (`--only bpf`) and what the verifier spends loading it
//! (`--only verifier`). With `--baseline PATH` (an `observer` binary built
//! from another commit) each figure is measured for both builds in
//! alternating rounds on the same namespaces, and the bench prints the
//! medians and their ratio (this build / baseline).

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, ensure};
use serde_json::{Value, json};

use super::{Bench, median};
use crate::interrupted;

/// A load the BPF cost is measured under; returns its own figure (ignored here).
type Load = fn(&Bench) -> anyhow::Result<f64>;

/// The verifier-statistics shim (see the C file's header).
const SHIM_SOURCE: &str = include_str!("verifier_stats.c");

/// One observer binary under test.
#[derive(Clone)]
struct Build {
    label: &'static str,
    binary: PathBuf,
}

impl Bench {
    /// This build, then the baseline when there is one.
    fn builds(&self) -> Vec<Build> {
        let mut builds = vec![Build {
            label: "this build",
            binary: self.observer.clone(),
        }];
        if let Some(baseline) = &self.baseline {
            builds.push(Build {
                label: "baseline",
                binary: baseline.clone(),
            });
        }
        builds
    }

    /// BPF cost per packet under a small-packet load and a TCP load, per build.
    pub(super) fn bpf_costs(&mut self, rounds: u32) -> anyhow::Result<Vec<Value>> {
        let loads: [(&str, Load); 2] = [
            ("64-byte UDP, 256 flows", |b| b.small_packets(256)),
            ("iperf3 TCP", |b| b.iperf_tcp()),
        ];
        let builds = self.builds();
        let rounds = if builds.len() == 1 { 1 } else { rounds };
        let mut rows = Vec::new();
        for (name, load) in loads {
            let mut samples = vec![Vec::new(); builds.len()];
            for round in 0..rounds {
                ensure!(!interrupted(), "interrupted");
                for i in alternating(round, builds.len()) {
                    let ns = self.bpf_cost(&builds[i].binary, load)?;
                    eprintln!(
                        "xtask: BPF cost, {name}, round {round}, {}: {ns:.1} ns",
                        builds[i].label
                    );
                    samples[i].push(ns);
                }
            }
            rows.push(compare(name, "ns per packet", &builds, samples));
        }
        Ok(rows)
    }

    /// BPF cost per packet of `binary` under `load`, in a run of its own:
    /// the statistics (`kernel.bpf_stats_enabled`) add two clock reads per
    /// program run, so they stay off while the ratios are measured.
    fn bpf_cost(&mut self, binary: &Path, load: Load) -> anyhow::Result<f64> {
        let observer = self.start_observer_with(binary, &[], &[])?;
        let stats = BpfStats::enable()?;
        let (ns0, cnt0) = bpf_prog_stats()?;
        load(self)?;
        let (ns1, cnt1) = bpf_prog_stats()?;
        drop(stats);
        observer.stop()?;
        let (ns, cnt) = (ns1 - ns0, cnt1 - cnt0);
        ensure!(cnt > 0, "the BPF program did not run under the load");
        Ok(ns as f64 / cnt as f64)
    }

    /// The verifier's work for the two programs one observer loads, from the
    /// kernel's own statistics, and the observer's start-up (spawn to ready
    /// file, and its CPU time by then), per build.
    pub(super) fn verifier(&mut self, rounds: u32) -> anyhow::Result<Vec<Value>> {
        let shim = build_shim(&self.scratch)?;
        let builds = self.builds();
        let figures = [
            "verification time (ms)",
            "processed insns",
            "peak states",
            "total states",
            "start-up wall (ms)",
            "start-up CPU (ms)",
        ];
        let mut samples = vec![vec![Vec::new(); builds.len()]; figures.len()];
        for round in 0..rounds {
            ensure!(!interrupted(), "interrupted");
            for i in alternating(round, builds.len()) {
                let log = self.scratch.join("verifier.log");
                let _ = std::fs::remove_file(&log);
                let env = [
                    ("LD_PRELOAD", shim.as_os_str()),
                    ("OBSERVER_BENCH_VERIFIER_LOG", log.as_os_str()),
                ];
                let started = Instant::now();
                let observer = self.start_observer_with(&builds[i].binary, &[], &env)?;
                let wall = started.elapsed();
                let cpu = cpu_time(observer.pid())?;
                observer.stop()?;
                let loads = parse_log(&std::fs::read_to_string(&log).with_context(|| {
                    format!("no verifier log at {}: was the shim loaded?", log.display())
                })?)?;
                let observed: Vec<&ProgramLoad> = loads
                    .iter()
                    .filter(|l| l.name.starts_with("observe_"))
                    .collect();
                ensure!(
                    !observed.is_empty(),
                    "the verifier log names no observe_* program"
                );
                let sum = |f: fn(&ProgramLoad) -> f64| observed.iter().map(|l| f(l)).sum::<f64>();
                let values = [
                    sum(|l| l.verification_us) / 1e3,
                    sum(|l| l.processed),
                    observed.iter().map(|l| l.peak_states).fold(0.0, f64::max),
                    sum(|l| l.total_states),
                    wall.as_secs_f64() * 1e3,
                    cpu.as_secs_f64() * 1e3,
                ];
                eprintln!(
                    "xtask: verifier round {round}, {}: {} programs, {:.0} ms verifying, {:.0} insns processed, start-up {:.0} ms wall / {:.0} ms CPU",
                    builds[i].label,
                    observed.len(),
                    values[0],
                    values[1],
                    values[4],
                    values[5]
                );
                for (figure, value) in samples.iter_mut().zip(values) {
                    figure[i].push(value);
                }
            }
        }
        Ok(figures
            .iter()
            .zip(samples)
            .map(|(name, samples)| compare(name, "", &builds, samples))
            .collect())
    }
}

/// Build indexes in round order: A B, then B A, so a drift in the host's
/// load hits both builds alike.
fn alternating(round: u32, builds: usize) -> Vec<usize> {
    let order: Vec<usize> = (0..builds).collect();
    if round.is_multiple_of(2) {
        order
    } else {
        order.into_iter().rev().collect()
    }
}

/// Medians per build and, with a baseline, this build's median over the baseline's.
fn compare(name: &str, unit: &str, builds: &[Build], mut samples: Vec<Vec<f64>>) -> Value {
    let medians: Vec<f64> = samples.iter_mut().map(|s| median(s)).collect();
    let ratio = (medians.len() == 2).then(|| medians[0] / medians[1]);
    json!({
        "name": name,
        "unit": unit,
        "this_build": medians[0],
        "baseline": medians.get(1),
        "ratio": ratio,
        "samples": builds.iter().zip(&samples).map(|(b, s)| json!({ "build": b.label, "binary": b.binary, "values": s })).collect::<Vec<_>>(),
    })
}

/// Prints the rows as a Markdown table.
pub(super) fn print_table(title: &str, rows: &[Value]) {
    println!("\n| {title} | this build | baseline | ratio |\n|---|---|---|---|");
    for row in rows {
        let cell = |v: &Value| v.as_f64().map_or("-".into(), |v| format!("{v:.1}"));
        let unit = row["unit"].as_str().unwrap_or("");
        println!(
            "| {}{} | {} | {} | {} |",
            row["name"].as_str().unwrap_or(""),
            if unit.is_empty() {
                String::new()
            } else {
                format!(" ({unit})")
            },
            cell(&row["this_build"]),
            cell(&row["baseline"]),
            row["ratio"]
                .as_f64()
                .map_or("-".into(), |r| format!("{r:.3}")),
        );
    }
}

/// One BPF_PROG_LOAD as the shim logged it.
#[derive(Debug, PartialEq)]
struct ProgramLoad {
    name: String,
    verification_us: f64,
    processed: f64,
    total_states: f64,
    peak_states: f64,
}

/// Parses the shim's log: a `prog NAME ...` line, then the kernel's
/// statistics lines for that load.
fn parse_log(log: &str) -> anyhow::Result<Vec<ProgramLoad>> {
    let mut loads: Vec<ProgramLoad> = Vec::new();
    for line in log.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let after = |key: &str| -> anyhow::Result<f64> {
            let at = words
                .iter()
                .position(|w| *w == key)
                .with_context(|| format!("verifier log line without {key:?}: {line}"))?;
            let word = words
                .get(at + 1)
                .with_context(|| format!("verifier log line ends after {key:?}: {line}"))?;
            word.parse()
                .with_context(|| format!("verifier log: {key} {word:?} is not a number"))
        };
        match words.first() {
            Some(&"prog") => loads.push(ProgramLoad {
                name: words.get(1).map_or("", |n| *n).to_owned(),
                verification_us: 0.0,
                processed: 0.0,
                total_states: 0.0,
                peak_states: 0.0,
            }),
            Some(&"verification") => {
                if let Some(load) = loads.last_mut() {
                    load.verification_us = after("time")?;
                }
            }
            Some(&"processed") => {
                if let Some(load) = loads.last_mut() {
                    load.processed = after("processed")?;
                    load.total_states = after("total_states")?;
                    load.peak_states = after("peak_states")?;
                }
            }
            _ => {}
        }
    }
    Ok(loads)
}

/// Compiles the shim into `dir` (needs a C compiler).
fn build_shim(dir: &Path) -> anyhow::Result<PathBuf> {
    crate::setup::packages(&[("cc", "gcc")])?;
    let source = dir.join("verifier_stats.c");
    let shim = dir.join("verifier_stats.so");
    std::fs::write(&source, SHIM_SOURCE)?;
    crate::sh(
        Command::new("cc")
            .args(["-O2", "-shared", "-fPIC", "-Wall", "-o"])
            .arg(&shim)
            .arg(&source)
            .arg("-ldl"),
    )?;
    Ok(shim)
}

/// User + system CPU time of a running process (all its threads).
fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start at state (3).
    let rest = stat.rsplit_once(')').context("/proc/PID/stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(Duration::from_secs_f64(ticks as f64 / per_second as f64))
}

/// run_time_ns and run_cnt summed over the loaded `observe_*` programs.
fn bpf_prog_stats() -> anyhow::Result<(u64, u64)> {
    let out = Command::new("bpftool")
        .args(["prog", "show", "--json"])
        .output()?;
    let progs: Value = serde_json::from_slice(&out.stdout)?;
    Ok(progs
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| {
            p["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("observe_"))
        })
        .fold((0, 0), |(ns, cnt), p| {
            (
                ns + p["run_time_ns"].as_u64().unwrap_or(0),
                cnt + p["run_cnt"].as_u64().unwrap_or(0),
            )
        }))
}

/// `kernel.bpf_stats_enabled` on for the benchmark, restored after.
struct BpfStats(String);

impl BpfStats {
    fn enable() -> anyhow::Result<Self> {
        let path = "/proc/sys/kernel/bpf_stats_enabled";
        let old = std::fs::read_to_string(path)?;
        std::fs::write(path, "1")?;
        Ok(Self(old))
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        let _ = std::fs::write("/proc/sys/kernel/bpf_stats_enabled", self.0.trim());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shim_log_parses_into_loads() {
        let log = "prog aya_name_check ret 3 syscall_us 73\n\
                   verification time 36 usec\nstack depth 0\n\
                   processed 2 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0\n\
                   prog observe_egress ret 16 syscall_us 698215\n\
                   verification time 698170 usec\nstack depth 248+0\n\
                   processed 628133 insns (limit 1000000) max_states_per_insn 28 total_states 25023 peak_states 992 mark_read 0\n";
        let loads = parse_log(log).unwrap();
        assert_eq!(loads.len(), 2);
        assert_eq!(
            loads[1],
            ProgramLoad {
                name: "observe_egress".into(),
                verification_us: 698_170.0,
                processed: 628_133.0,
                total_states: 25_023.0,
                peak_states: 992.0,
            }
        );
    }

    #[test]
    fn a_garbled_statistics_line_is_an_error() {
        let log = "prog observe_egress ret 16 syscall_us 1\nprocessed many insns\n";
        let error = parse_log(log).unwrap_err().to_string();
        assert!(error.contains("\"many\" is not a number"), "{error}");
    }

    #[test]
    fn rounds_alternate_the_order_of_builds() {
        assert_eq!(alternating(0, 2), [0, 1]);
        assert_eq!(alternating(1, 2), [1, 0]);
        assert_eq!(alternating(1, 1), [0]);
    }
}
