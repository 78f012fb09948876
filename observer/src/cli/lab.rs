//! `observer lab list|up|down|status|run|exec`: emulated ASE networks in
//! network namespaces, from a built-in topology name or a topology file.
//! `lab exec` runs the user's own command in one, as a CI gate.

use std::{
    ffi::OsString,
    fmt::Write as _,
    net::IpAddr,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};

use crate::{
    lab::{
        build::Lab,
        exec::{self, ExecConfig},
        helpers::LabOptions,
        netns::NETNS_ETC,
        plan::{PERSISTENT_PREFIX, Role},
        scenario::{self, RunConfig, ScenarioResult},
        serve::{self, ServeConfig},
        teardown, topologies,
    },
    report::{self, FailOn, junit},
    topology::Topology,
};

#[derive(Debug, Args)]
pub struct LabArgs {
    #[command(subcommand)]
    command: LabCommand,
}

#[derive(Debug, Subcommand)]
enum LabCommand {
    /// List the topologies shipped in this binary.
    List,
    /// Build a topology and keep it live (DNS, servers) until `lab down`.
    Up {
        /// A built-in topology name (`observer lab list`) or a topology file.
        topology: String,
        /// Lab name (default: the topology's name); namespaces are `obup-NAME-ROLE`.
        #[arg(long)]
        name: Option<String>,
    },
    /// Remove a lab kept by `lab up` (or `lab exec --keep`).
    Down { name: String },
    /// List lab namespaces on this host.
    Status,
    /// Build, capture, send each topology's scenario traffic, classify,
    /// check the expected verdicts, tear down.
    Run {
        /// Built-in topology names or topology files.
        #[arg(required = true)]
        topologies: Vec<String>,
        /// Only this `[[lab.traffic]]` entry.
        #[arg(long)]
        scenario: Option<String>,
        /// Where the Parquet files go (default: observer-lab/run-TIME).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also write JUnit XML: one test case per expected scenario flow.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Also write one HTML report per topology into DIR
        /// (`TOPOLOGY.html`) and an `index.html` linking them.
        #[arg(long, value_name = "DIR")]
        html: Option<PathBuf>,
    },
    /// Run COMMAND in the lab's workload namespace with capture at every
    /// observation point; report its connections; exit with COMMAND's
    /// non-zero status, else 1 when a `--fail-on` verdict was seen, else 0.
    Exec(ExecArgs),
    /// Removes an ephemeral lab once its process has ended (started by the
    /// lab itself).
    #[command(hide = true)]
    Guard { base: String },
    /// The lab's servers in one namespace (started by the lab itself).
    #[command(hide = true)]
    Serve {
        #[arg(long)]
        tcp: Vec<u16>,
        #[arg(long)]
        udp: Vec<u16>,
        /// ADDR=NAME: what answers from ADDR call themselves.
        #[arg(long)]
        name: Vec<String>,
        /// ADDR=KIND (key-vault, cognitive-services, other): ADDR is the
        /// public address of a resource with public network access
        /// disabled, and answers 403 as that service does.
        #[arg(long)]
        refuse: Vec<String>,
    },
}

#[derive(Debug, Args)]
struct ExecArgs {
    /// A built-in topology name (`observer lab list`) or a topology file.
    topology: String,
    /// Exit 1 when any of these is seen: `leak` (every leak verdict), `any`
    /// (every verdict but ok), `lost`, `dns`, or verdict names, comma-separated.
    #[arg(long, value_name = "LIST", default_value = "leak")]
    fail_on: FailOn,
    /// Output directory for Parquet and reports (default:
    /// observer-lab/TOPOLOGY-TIME-PID).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also write JUnit XML: one test case per connection, plus COMMAND.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Also write the HTML report (one self-contained page, opens offline).
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Leave the lab up afterwards for inspection (says how to remove it).
    #[arg(long)]
    keep: bool,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<OsString>,
}

fn need_root() -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "the lab builds network namespaces and loads BPF: run it as root (sudo observer lab ...)"
        );
    }
    Ok(())
}

fn this_binary() -> anyhow::Result<PathBuf> {
    std::env::current_exe().context("finding the observer binary (for the lab's helpers)")
}

impl LabArgs {
    pub fn execute(&self) -> anyhow::Result<ExitCode> {
        match &self.command {
            LabCommand::List => {
                for (name, text) in topologies::BUILTIN {
                    println!("{name:<28} {}", topologies::description(text).unwrap_or(""));
                }
                Ok(ExitCode::SUCCESS)
            }
            LabCommand::Up { topology, name } => up(topology, name.as_deref()),
            LabCommand::Down { name } => {
                need_root()?;
                let down = teardown::down(name)?;
                if !down.stale.is_empty() {
                    println!("removed stale {}", down.stale.join(", "));
                }
                if down.removed.is_empty() {
                    bail!("no lab named {name} (see `observer lab status`)");
                }
                println!("removed {}", down.removed.join(", "));
                Ok(ExitCode::SUCCESS)
            }
            LabCommand::Status => {
                let names = teardown::list();
                if names.is_empty() {
                    println!("no lab namespaces");
                }
                for n in names {
                    println!("{n}");
                }
                Ok(ExitCode::SUCCESS)
            }
            LabCommand::Run {
                topologies,
                scenario,
                out,
                junit,
                html,
            } => run(
                topologies,
                scenario.clone(),
                out.clone(),
                junit.as_deref(),
                html.as_deref(),
            ),
            LabCommand::Exec(args) => Ok(args.execute()),
            LabCommand::Guard { base } => {
                teardown::guard(base)?;
                Ok(ExitCode::SUCCESS)
            }
            LabCommand::Serve {
                tcp,
                udp,
                name,
                refuse,
            } => {
                let mut names = std::collections::BTreeMap::new();
                for n in name {
                    let (addr, label) = n
                        .split_once('=')
                        .with_context(|| format!("--name {n}: expected ADDR=NAME"))?;
                    names.insert(
                        addr.parse::<IpAddr>()
                            .with_context(|| format!("--name {n}: bad address"))?,
                        label.to_string(),
                    );
                }
                let mut refused = std::collections::BTreeMap::new();
                for r in refuse {
                    let (addr, kind) = r
                        .split_once('=')
                        .with_context(|| format!("--refuse {r}: expected ADDR=KIND"))?;
                    refused.insert(
                        addr.parse::<IpAddr>()
                            .with_context(|| format!("--refuse {r}: bad address"))?,
                        kind.parse::<serve::Refusal>().map_err(|_| {
                            anyhow::anyhow!(
                                "--refuse {r}: unknown kind `{kind}` (key-vault, cognitive-services, other)"
                            )
                        })?,
                    );
                }
                let config = ServeConfig {
                    bind: std::net::Ipv4Addr::UNSPECIFIED,
                    tcp: tcp.clone(),
                    udp: udp.clone(),
                    names,
                    refused,
                };
                serve::serve(&config, || println!("ready"))?;
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

fn up(topology: &str, name: Option<&str>) -> anyhow::Result<ExitCode> {
    need_root()?;
    let scratch = std::env::temp_dir().join(format!("observer-lab-up-{}", std::process::id()));
    let path = topologies::resolve(topology, &scratch)?;
    let loaded = Topology::load(&path);
    let _ = std::fs::remove_dir_all(&scratch);
    let topology = loaded?;
    let name = name.unwrap_or(&topology.name).to_string();
    let _ = teardown::down(&name);
    let options = LabOptions {
        helper: this_binary()?,
        persistent: true,
    };
    let lab = Lab::build(&topology, format!("{PERSISTENT_PREFIX}-{name}"), &options)?;
    let ase = lab.ns(Role::APP).name().to_string();
    println!("lab {name} is up: {}", lab.namespace_names().join(", "));
    println!(
        "resolver: {}/{ase}/resolv.conf (search {})",
        NETNS_ETC,
        lab.search_domain()
    );
    let example = topology
        .private_endpoints
        .first()
        .map(|p| format!("{}:{}", p.fqdn, p.ports.first().copied().unwrap_or(443)))
        .unwrap_or_else(|| "168.63.129.16:53".into());
    println!("try:    sudo ip netns exec {ase} curl -s http://{example}/");
    println!("remove: sudo observer lab down {name}");
    lab.persist();
    Ok(ExitCode::SUCCESS)
}

fn run(
    topologies_args: &[String],
    scenario: Option<String>,
    out: Option<PathBuf>,
    junit_file: Option<&Path>,
    html_dir: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    need_root()?;
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S");
    let out = out.unwrap_or_else(|| PathBuf::from(format!("observer-lab/run-{stamp}")));
    let config = RunConfig {
        observer: this_binary()?,
        out: out.clone(),
        scenario,
    };
    let mut results = Vec::new();
    let mut pages = Vec::new();
    for arg in topologies_args {
        let path = topologies::resolve(arg, &out.join("topology"))?;
        let result = scenario::run(&path, &config).with_context(|| format!("lab run {arg}"))?;
        println!("{}", result.render());
        if let Some(dir) = html_dir {
            pages.push(html_page(dir, &path, &result)?);
        }
        results.push(result);
    }
    if let Some(dir) = html_dir {
        let index = dir.join("index.html");
        report::write_index(&pages, &index)?;
        println!("HTML reports: {}", index.display());
    }
    let (text, failed) = roll_up(&results);
    print!("{text}");
    println!("\nParquet under {}", out.display());
    if let Some(file) = junit_file {
        report::write_suites(&scenario_suites(&results), file)?;
    }
    if failed > 0 {
        eprintln!("observer lab run: {failed} flows did not get their expected verdict");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes `DIR/TOPOLOGY.html` for one scenario; its entry in the index.
fn html_page(
    dir: &Path,
    topology_file: &Path,
    result: &ScenarioResult,
) -> anyhow::Result<report::html::IndexEntry> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let topology = Topology::load(topology_file)?;
    let context = report::html::Context::new(Some(&topology.name), Some(&topology));
    let file = format!("{}.html", result.topology);
    report::write(
        &result.summary,
        &report::Format::Html(context),
        Some(&dir.join(&file)),
    )?;
    let checks_failed = result.checks.iter().filter(|c| !c.passed()).count();
    Ok(report::html::IndexEntry::new(
        file,
        result.topology.clone(),
        result.description.clone(),
        &result.summary,
        (result.checks.len(), checks_failed),
    ))
}

/// The roll-up of several scenario runs, and how many checks failed.
pub(super) fn roll_up(results: &[ScenarioResult]) -> (String, usize) {
    let mut s = String::from("━━ summary ━━\n");
    let mut failed = 0;
    for r in results {
        for c in &r.checks {
            let mark = if c.passed() { "ok  " } else { "FAIL" };
            if !c.passed() {
                failed += 1;
            }
            let _ = writeln!(
                s,
                "  {mark} {:<28} {:<16} {:<24} {}",
                r.topology,
                c.traffic,
                c.verdict.as_deref().unwrap_or("(no record)"),
                c.reason.as_deref().unwrap_or("")
            );
        }
    }
    (s, failed)
}

/// One JUnit suite per topology, one case per expected scenario flow.
fn scenario_suites(results: &[ScenarioResult]) -> Vec<junit::Suite> {
    results
        .iter()
        .map(|r| junit::Suite {
            name: format!("observer.lab.{}", r.topology),
            cases: r
                .checks
                .iter()
                .map(|c| junit::Case {
                    classname: format!("observer.lab.{}", r.topology),
                    name: c.traffic.clone(),
                    failure: (!c.passed()).then(|| {
                        let got = c.verdict.as_deref().unwrap_or("(no record)");
                        (
                            got.to_string(),
                            format!(
                                "expected {}, got {got}",
                                c.expected.as_deref().unwrap_or("-")
                            ),
                            c.reason.clone().unwrap_or_default(),
                        )
                    }),
                    system_out: c.reason.clone(),
                })
                .collect(),
        })
        .collect()
}

impl ExecArgs {
    /// Runs `lab exec`; errors of the lab itself (not COMMAND's) exit 2.
    fn execute(&self) -> ExitCode {
        match self.run() {
            Ok(code) => ExitCode::from(code),
            Err(error) => {
                eprintln!("observer lab exec: error: {error:#}");
                ExitCode::from(2)
            }
        }
    }

    fn run(&self) -> anyhow::Result<u8> {
        need_root()?;
        let config = ExecConfig {
            observer: this_binary()?,
            topology: self.topology.clone(),
            out: self.out.clone(),
            fail_on: self.fail_on.clone(),
            junit: self.junit.clone(),
            html: self.html.clone(),
            keep: self.keep,
            command: self.command.clone(),
        };
        let outcome = exec::exec(&config)?;
        let phases: Vec<String> = outcome
            .phases
            .iter()
            .map(|(name, s)| format!("{name} {s:.3} s"))
            .collect();
        tracing::info!("lab exec phases: {}", phases.join(", "));
        eprint!(
            "\n{}",
            report::render(&outcome.summary, &report::Format::Text)
        );
        if let Some(signal) = outcome.signal {
            eprintln!(
                "\nobserver lab exec: interrupted by signal {signal}; the lab is torn down and the capture written"
            );
        }
        match outcome.status.map(exec::exit_code_of) {
            Some(0) | None => {}
            Some(code) => eprintln!("\nobserver lab exec: COMMAND exited with status {code}"),
        }
        if !outcome.failures.is_empty() {
            eprintln!("\nobserver lab exec: FAILED by --fail-on:");
            for line in &outcome.failures {
                eprintln!("  {line}");
            }
        }
        eprintln!(
            "\nParquet and reports (report.txt, report.json): {}",
            outcome.out.display()
        );
        if let Some(name) = &outcome.kept {
            eprintln!(
                "the lab is left up (--keep): sudo ip netns exec {PERSISTENT_PREFIX}-{name}-ase ...; remove it with: sudo observer lab down {name}"
            );
        }
        Ok(outcome.exit_code())
    }
}
