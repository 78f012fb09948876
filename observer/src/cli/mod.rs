//! Command line: one file per subcommand, `///` comments are the help text.

mod run;

use std::process::ExitCode;

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
    Run(run::RunArgs),
}

impl Command {
    pub fn execute(&self, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
        match self {
            Self::Run(args) => args.execute(global),
        }
    }
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
