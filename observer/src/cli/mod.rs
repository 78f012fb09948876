//! Command line: one file per subcommand, `///` comments are the help text.

mod check;
mod classify;
pub(crate) mod import;
mod lab;
mod nsg;
mod report;
mod route;
mod run;
mod topology;
mod verify;

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use clap::{Args, Parser, Subcommand};
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// eBPF flow observer for Azure ASE network labs: captures every flow,
/// classifies it against the topology, and flags traffic that leaks to the
/// internet instead of staying in the VNet.
#[derive(Debug, Parser)]
#[command(name = "observer", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Only warnings and errors (no periodic status line). RUST_LOG overrides.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Log lines as JSON objects.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Capture flows on interfaces and write them as Parquet.
    Run(run::RunArgs),
    /// Classify recorded flow files against a topology.
    Classify(classify::ClassifyArgs),
    /// Summarise classified flows; `--fail-on` for CI.
    Report(report::ReportArgs),
    /// Convert Azure VNet/NSG flow logs or pcap files into flow records
    /// (optionally classified), as local or Blob Parquet.
    Import(import::ImportArgs),
    /// Show the route Azure picks for a destination (effective routes).
    Route(route::RouteArgs),
    /// Emulated ASE networks in namespaces: list, up, down, status, run,
    /// and exec (your own command in the lab, as a CI gate).
    Lab(lab::LabArgs),
    /// Verify one flow against the NSGs (like Network Watcher's IP flow
    /// verify): Allow or Deny, the rule that decided, the route.
    Verify(verify::VerifyArgs),
    /// Show the effective security rules of the topology's subnets.
    Nsg(nsg::NsgArgs),
    /// Audit a topology before any traffic: every documented requirement
    /// against its routes, NSGs and DNS; exit 1 if the ASE would not work.
    Check(check::CheckArgs),
    /// Topologies from Azure's exports: `topology import`.
    Topology(topology::TopologyArgs),
}

impl Command {
    pub fn execute(&self, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
        match self {
            Self::Run(args) => args.execute(global),
            Self::Classify(args) => args.execute(),
            Self::Report(args) => args.execute(),
            Self::Import(args) => args.execute(),
            Self::Route(args) => args.execute(),
            Self::Lab(args) => args.execute(),
            Self::Verify(args) => args.execute(),
            Self::Nsg(args) => args.execute(),
            Self::Check(args) => args.execute(),
            Self::Topology(args) => args.execute(),
        }
    }
}

/// Loads a topology and the catalogs into a classifier.
fn load_classifier(
    topology: &Path,
    catalogs: &[PathBuf],
) -> anyhow::Result<crate::classify::Classifier> {
    Ok(crate::classify::Classifier::load(topology, catalogs)?)
}

impl Cli {
    /// Logs to stderr through tracing; `log` records (aya's) are bridged in.
    pub fn init_logging(&self) {
        let default = if self.global.quiet { "warn" } else { "info" };
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
        let registry = tracing_subscriber::registry().with(filter);
        let result = if self.global.json {
            registry
                .with(fmt::layer().json().with_writer(std::io::stderr))
                .try_init()
        } else {
            registry
                .with(fmt::layer().with_target(false).with_writer(std::io::stderr))
                .try_init()
        };
        if let Err(error) = result {
            eprintln!("observer: logging not initialised: {error}");
        }
    }
}
