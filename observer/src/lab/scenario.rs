//! `lab run`: build a topology, capture with two observers (the workload's
//! interface, and the VNet router's role-labelled legs where the path
//! decision is visible before any NAT), send the scenario's traffic,
//! classify, and check each flow's verdict against the file's `expect`.

use std::{
    fmt::Write as _,
    net::IpAddr,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use crate::{
    files::reader,
    flow::{Direction, FlowRecord},
    report::{self, Summary},
    topology::Topology,
};
use anyhow::{Context as _, bail};

use crate::lab::{
    build::Lab,
    helpers::{LabOptions, die_with_parent},
    netns::Process,
    plan::Role,
    traffic::{self, Outcome},
};

#[derive(Clone, Debug)]
pub struct RunConfig {
    /// The `observer` binary (built with its eBPF program).
    pub observer: PathBuf,
    /// Results go to `OUT/<topology name>/{workload,router}`.
    pub out: PathBuf,
    /// Only the `[[lab.traffic]]` entry with this name.
    pub scenario: Option<String>,
}

/// One traffic entry's expected and observed verdict.
#[derive(Clone, Debug)]
pub struct Check {
    pub traffic: String,
    pub expected: Option<String>,
    pub verdict: Option<String>,
    pub reason: Option<String>,
}

impl Check {
    pub fn passed(&self) -> bool {
        self.expected.is_none() || self.expected == self.verdict
    }
}

#[derive(Debug)]
pub struct ScenarioResult {
    pub topology: String,
    /// The lab's namespace prefix (all torn down when this is returned).
    pub lab: String,
    pub description: Option<String>,
    pub out: PathBuf,
    pub outcomes: Vec<Outcome>,
    pub checks: Vec<Check>,
    pub records: Vec<FlowRecord>,
    pub summary: Summary,
}

impl ScenarioResult {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(Check::passed)
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "━━ {} ━━ {}",
            self.topology,
            self.description.as_deref().unwrap_or("")
        );
        let _ = writeln!(s, "traffic from the workload:");
        for (o, c) in self.outcomes.iter().zip(&self.checks) {
            let mark = if c.passed() { "ok  " } else { "FAIL" };
            let _ = writeln!(
                s,
                "  {mark} {:<16} {:<18} {:<22} verdict {:<24} (expected {})",
                o.name,
                o.resolved
                    .map(|a| a.to_string())
                    .unwrap_or_else(|| "-".into()),
                o.result,
                c.verdict.as_deref().unwrap_or("(no record)"),
                c.expected.as_deref().unwrap_or("-"),
            );
        }
        let _ = writeln!(
            s,
            "\n{}",
            report::render(&self.summary, &report::Format::Text)
        );
        let _ = writeln!(s, "Parquet: {}", self.out.display());
        s
    }
}

/// Runs the scenario of one topology file.
pub fn run(path: &Path, config: &RunConfig) -> anyhow::Result<ScenarioResult> {
    // A topology error fails before anything is built.
    let mut topology = Topology::load(path)?;
    if let Some(name) = &config.scenario {
        topology.lab.traffic.retain(|t| &t.name == name);
        if topology.lab.traffic.is_empty() {
            bail!("{}: no [[lab.traffic]] named `{name}`", path.display());
        }
    }
    let out = config.out.join(&topology.name);
    for dir in observation_dirs(&out) {
        std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }

    let (lab, observers) = Observers::with_lab(
        &topology,
        &LabOptions::new(&config.observer),
        &config.observer,
        path,
        &out,
        None,
    )?;
    let lab_name = lab.base().to_string();

    let outcomes: Vec<Outcome> = topology
        .lab
        .traffic
        .iter()
        .map(|t| traffic::send(&lab, t))
        .collect();
    let inbound: Vec<Outcome> = topology
        .lab
        .inbound
        .iter()
        .map(|i| traffic::inbound(&lab, i))
        .collect();
    // Let the last FIN/ACK exchanges reach the capture.
    std::thread::sleep(Duration::from_millis(300));
    let dirs = observers.stop()?;
    let workload_ns = lab.ns(Role::APP).name().to_string();
    drop(lab);

    let (records, dns, lost) = read_back(&dirs)?;
    let checks = topology
        .lab
        .traffic
        .iter()
        .zip(&outcomes)
        .map(|(t, o)| {
            // The workload's own interfaces: `eth0`, and `out` with Route All off.
            let record = records.iter().find(|r| {
                matches!(r.point.iface.as_ref(), "eth0" | "out")
                    && r.point.netns.as_deref() == Some(workload_ns.as_str())
                    && r.direction == Direction::Egress
                    && Some(r.dst_addr) == o.resolved
                    && r.dst_port == Some(t.port)
                    && r.protocol == t.protocol.number()
            });
            Check {
                traffic: t.name.clone(),
                expected: t.expect.clone(),
                verdict: record.and_then(|r| r.verdict.as_deref().map(str::to_owned)),
                reason: record.and_then(|r| r.reason.as_deref().map(str::to_owned)),
            }
        })
        .chain(topology.lab.inbound.iter().map(|i| {
            // The workload's ingress record of the management connection.
            let record = records.iter().find(|r| {
                r.point.iface.as_ref() == "eth0"
                    && r.direction == Direction::Ingress
                    && r.src_addr == IpAddr::V4(i.from)
                    && r.dst_port == Some(i.port)
                    && r.protocol == 6
            });
            Check {
                traffic: i.name.clone(),
                expected: i.expect.clone(),
                verdict: record.and_then(|r| r.verdict.as_deref().map(str::to_owned)),
                reason: record.and_then(|r| r.reason.as_deref().map(str::to_owned)),
            }
        }))
        .collect();
    let mut outcomes = outcomes;
    outcomes.extend(inbound);
    Ok(ScenarioResult {
        topology: topology.name.clone(),
        lab: lab_name,
        description: topology.description.clone(),
        out,
        outcomes,
        checks,
        summary: Summary::build(&records, &dns, lost),
        records,
    })
}

/// Observation directories under `out` from an earlier run.
fn observation_dirs(out: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(out)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n == "router" || n.starts_with("workload"))
        })
        .collect()
}

/// One `observer run --topology` per observation point of a lab: each app
/// instance's interfaces (`workload`, `workload2`, ...) and the VNet
/// router's role-labelled legs (`router`), where the path decision is
/// visible before any NAT.
#[derive(Debug)]
pub(crate) struct Observers {
    running: Vec<(Process, PathBuf)>,
}

impl Observers {
    /// Builds a lab with its observers started as soon as its interfaces
    /// exist (their start-up overlaps the rest of the build), and waits
    /// until they capture. `base`: an exact lab name (else ephemeral).
    pub(crate) fn with_lab(
        topology: &Topology,
        options: &LabOptions,
        observer: &Path,
        topology_file: &Path,
        out: &Path,
        base: Option<String>,
    ) -> anyhow::Result<(Lab, Self)> {
        let mut observers = None;
        let mut hook = |lab: &Lab| {
            observers = Some(Self::spawn(lab, observer, topology_file, out)?);
            Ok(())
        };
        let lab = match base {
            Some(base) => Lab::build_with(topology, base, options, &mut hook)?,
            None => Lab::up_with(topology, options, &mut hook)?,
        };
        let mut observers = observers.expect("the lab runs its after-links step");
        observers.wait_ready()?;
        Ok((lab, observers))
    }

    /// Starts every observer of `lab` without waiting.
    pub(crate) fn spawn(
        lab: &Lab,
        observer: &Path,
        topology: &Path,
        out: &Path,
    ) -> anyhow::Result<Self> {
        let mut points: Vec<(&str, Vec<&str>, PathBuf)> = Vec::new();
        for (i, ns) in lab.workloads().into_iter().enumerate() {
            let mut ifaces = vec!["eth0=workload"];
            if lab.bypasses_vnet() {
                ifaces.push("out=internet");
            }
            let dir = if i == 0 {
                out.join("workload")
            } else {
                out.join(format!("workload{}", i + 1))
            };
            points.push((ns.name(), ifaces, dir));
        }
        let mut router = vec!["ase=workload", "vnet=vnet", "inet=internet"];
        if lab.has(Role::Gw) {
            router.push("gw=gateway");
        }
        if lab.has(Role::Nva) {
            router.push("nva=appliance");
        }
        points.push((lab.ns(Role::Vnet).name(), router, out.join("router")));
        let mut observers = Self {
            running: Vec::new(),
        };
        for (netns, ifaces, dir) in points {
            let process = spawn_observer(observer, topology, netns, &ifaces, &dir)?;
            observers.running.push((process, dir));
        }
        Ok(observers)
    }

    /// Waits until every observer captures (its ready file exists).
    pub(crate) fn wait_ready(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        for (process, dir) in &mut self.running {
            let ready = dir.join(".ready");
            while !ready.exists() {
                if !process.is_running() || started.elapsed() > Duration::from_secs(30) {
                    let log = std::fs::read_to_string(dir.join("observer.log")).unwrap_or_default();
                    bail!("{} did not start:\n{log}", process.label());
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = std::fs::remove_file(&ready);
        }
        Ok(())
    }

    /// Stops every observer (SIGTERM: a last drain, then Parquet) and
    /// returns their output directories.
    pub(crate) fn stop(mut self) -> anyhow::Result<Vec<PathBuf>> {
        for (process, _) in &self.running {
            process.signal(libc::SIGTERM);
        }
        let mut dirs = Vec::new();
        let mut failed = Vec::new();
        for (process, dir) in self.running.drain(..) {
            let label = process.label().to_string();
            match process.terminate(Duration::from_secs(20)) {
                Some(status) if status.success() => {}
                other => failed.push(format!(
                    "{label} did not stop cleanly ({other:?}); see {}",
                    dir.join("observer.log").display()
                )),
            }
            dirs.push(dir);
        }
        if !failed.is_empty() {
            bail!("{}", failed.join("\n"));
        }
        Ok(dirs)
    }
}

/// Records, DNS answers and loss written by the observers into `dirs`.
pub(crate) fn read_back(
    dirs: &[PathBuf],
) -> anyhow::Result<(Vec<FlowRecord>, Vec<crate::dns::DnsAnswer>, u64)> {
    let mut files = Vec::new();
    for dir in dirs {
        match reader::read_flows(std::slice::from_ref(dir)) {
            // An observation point that saw no traffic wrote no flow file.
            Err(reader::ReadError::EmptyDirectory { .. }) => {}
            other => files.extend(other?),
        }
    }
    let lost = reader::lost_packets(&files);
    let records: Vec<FlowRecord> = files.into_iter().flat_map(|f| f.records).collect();
    let dns = crate::dns::read_recorded(dirs)?;
    Ok((records, dns, lost))
}

/// Starts `observer run --topology` in a namespace (readiness: `DIR/.ready`).
fn spawn_observer(
    observer: &Path,
    topology: &Path,
    netns: &str,
    ifaces: &[&str],
    out: &Path,
) -> anyhow::Result<Process> {
    std::fs::create_dir_all(out)?;
    let mut command = Command::new(observer);
    command
        .arg("--quiet")
        .arg("run")
        .args(["--netns", netns])
        .arg("--topology")
        .arg(topology)
        .arg("--out")
        .arg(out)
        .arg("--ready-file")
        .arg(out.join(".ready"))
        .args(["--flush-interval", "1", "--idle-timeout", "30"]);
    for iface in ifaces {
        command.args(["--iface", iface]);
    }
    command.stderr(
        std::fs::File::create(out.join("observer.log")).context("creating the observer log")?,
    );
    // SIGTERM: a killed lab's observers still write complete Parquet.
    die_with_parent(&mut command, libc::SIGTERM);
    Ok(Process::spawn(
        &mut command,
        &format!("observer in {netns}"),
    )?)
}
