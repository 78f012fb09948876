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
    build::{Lab, die_with_parent},
    netns::Process,
    traffic::{self, Outcome, Servers},
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
        let _ = writeln!(s, "\n{}", report::text::render(&self.summary));
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
    let (workload_dir, router_dir) = (out.join("workload"), out.join("router"));
    for dir in [&workload_dir, &router_dir] {
        if dir.exists() {
            std::fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
        }
    }

    let lab = Lab::up(&topology)?;
    let lab_name = lab.base.clone();
    let servers = Servers::start(&lab)?;
    let mut workload_ifaces = vec!["eth0=workload"];
    if lab.bypasses_vnet() {
        workload_ifaces.push("out=internet");
    }
    let mut router_ifaces = vec!["ase=workload", "vnet=vnet", "inet=internet"];
    if lab.has("gw") {
        router_ifaces.push("gw=gateway");
    }
    if lab.has("nva") {
        router_ifaces.push("nva=appliance");
    }
    let workload = observe(
        config,
        path,
        lab.ns("ase").name(),
        &workload_ifaces,
        &workload_dir,
    )?;
    let router = observe(
        config,
        path,
        lab.ns("vnet").name(),
        &router_ifaces,
        &router_dir,
    )?;

    let outcomes: Vec<Outcome> = topology
        .lab
        .traffic
        .iter()
        .map(|t| traffic::send(&lab, t))
        .collect();
    let vip = lab.vip();
    let inbound: Vec<Outcome> = topology
        .lab
        .inbound
        .iter()
        .map(|i| crate::lab::inbound::send(&lab, vip, i))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    for (observer, dir) in [(workload, &workload_dir), (router, &router_dir)] {
        let label = observer.label().to_string();
        match observer.terminate(Duration::from_secs(20)) {
            Some(status) if status.success() => {}
            other => bail!(
                "{label} did not stop cleanly ({other:?}); see {}",
                dir.display()
            ),
        }
    }
    drop(servers);
    drop(lab);

    let mut files = Vec::new();
    for dir in [&workload_dir, &router_dir] {
        match reader::read_flows(std::slice::from_ref(dir)) {
            // An observation point that saw no traffic wrote no flow file.
            Err(reader::ReadError::EmptyDirectory { .. }) => {}
            other => files.extend(other?),
        }
    }
    let lost = reader::lost_packets(&files);
    let records: Vec<FlowRecord> = files.into_iter().flat_map(|f| f.records).collect();
    let dns = reader::read_dns(&[workload_dir.clone(), router_dir.clone()])?;
    let checks = topology
        .lab
        .traffic
        .iter()
        .zip(&outcomes)
        .map(|(t, o)| {
            // The workload's own interfaces: `eth0`, and `out` with Route All off.
            let record = records.iter().find(|r| {
                matches!(r.point.iface.as_ref(), "eth0" | "out")
                    && r.direction == Direction::Egress
                    && Some(r.dst_addr) == o.resolved
                    && r.dst_port == Some(t.port)
                    && r.protocol == t.protocol.number()
            });
            Check {
                traffic: t.name.clone(),
                expected: t.expect.clone(),
                verdict: record.and_then(|r| r.verdict.clone()),
                reason: record.and_then(|r| r.reason.clone()),
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
                verdict: record.and_then(|r| r.verdict.clone()),
                reason: record.and_then(|r| r.reason.clone()),
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

/// Starts `observer run --topology` in a namespace and waits until it captures.
fn observe(
    config: &RunConfig,
    topology: &Path,
    netns: &str,
    ifaces: &[&str],
    out: &Path,
) -> anyhow::Result<Process> {
    std::fs::create_dir_all(out)?;
    let ready = out.join(".ready");
    let mut command = Command::new(&config.observer);
    command
        .arg("--quiet")
        .arg("run")
        .args(["--netns", netns])
        .arg("--topology")
        .arg(topology)
        .arg("--out")
        .arg(out)
        .arg("--ready-file")
        .arg(&ready)
        .args(["--flush-interval", "1", "--idle-timeout", "30"]);
    for iface in ifaces {
        command.args(["--iface", iface]);
    }
    command.stderr(
        std::fs::File::create(out.join("observer.log")).context("creating the observer log")?,
    );
    die_with_parent(&mut command);
    let mut process = Process::spawn(&mut command, &format!("observer in {netns}"))?;
    let started = Instant::now();
    while !ready.exists() {
        if !process.is_running() || started.elapsed() > Duration::from_secs(30) {
            let log = std::fs::read_to_string(out.join("observer.log")).unwrap_or_default();
            bail!("observer in {netns} did not start:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_file(&ready);
    Ok(process)
}
