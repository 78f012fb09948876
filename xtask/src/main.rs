//! `cargo xtask`: the project's automation. Every command first installs
//! what is missing (see `setup`), so the README's two commands work on a
//! fresh machine.

mod bench;
mod bench_import;
mod bench_spark;
mod demo;
mod fuzz;
mod lab;
mod setup;
mod spark;
mod wheel;

use std::{
    path::{Path, PathBuf},
    process::{Command, ExitCode},
    sync::atomic::{AtomicBool, Ordering},
};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Install the toolchain pieces and Debian packages that are missing.
    Setup,
    /// Build the observer (release, with its eBPF program).
    Build,
    /// Every test: unprivileged unit tests, each fuzz target for a few
    /// seconds, then the network-namespace suite and the Python wheel's
    /// pytest on Spark 4.0 and 3.5 (need root). Arguments after `--`
    /// filter the namespace tests; `-- spark` runs the unit tests and the
    /// Python step only.
    Test {
        #[arg(last = true)]
        filter: Vec<String>,
    },
    /// Build, bring up the default lab topology, run every scenario, print
    /// the report, tear everything down.
    Demo {
        /// Where the Parquet files go (default: a new folder under target/demo).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Benchmarks of the capture path (needs root); writes target/bench/*.json.
    Bench(bench::BenchArgs),
    /// The Python wheel (`observer_py`: classifier and Spark helpers) into
    /// target/wheels/, with maturin; stable Rust and Python only.
    Wheel,
    /// Fuzz every parser of outside input (cargo-fuzz, nightly): each
    /// target for --seconds, seeded from the project's real inputs; fails
    /// with the crashing input's path.
    Fuzz(fuzz::FuzzArgs),
    /// `observer lab ARGS...` with the release observer (needs root):
    /// list, up, down, status, run, exec.
    Lab {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

/// Set by SIGINT/SIGTERM. Children get the terminal's signal themselves;
/// xtask stays alive to tear down what they leave.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

fn main() -> ExitCode {
    // SAFETY: the handler only stores to an atomic (async-signal-safe).
    // Handlers, unlike SIG_IGN, reset to default in exec'd children.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Task::Setup => setup::toolchain()
            .and_then(|()| setup::packages(&[setup::TEST_PACKAGES, setup::BENCH_PACKAGES].concat()))
            .and_then(|()| setup::test_tools().map(drop)),
        Task::Build => build_observer().map(drop),
        Task::Test { filter } => test(&filter),
        Task::Demo { out } => demo::run(out),
        Task::Bench(args) => bench::run(&args),
        Task::Fuzz(args) => fuzz::run(&args),
        Task::Lab { args } => lab::run(&args),
        Task::Wheel => wheel::build().map(drop),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Runs a command, failing with its command line when it fails.
pub fn sh(command: &mut Command) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("cannot start {command:?}"))?;
    if !status.success() {
        bail!("{:?} failed ({status})", command.get_program());
    }
    Ok(())
}

fn cargo() -> Command {
    let mut cargo = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cargo
        .current_dir(workspace_root())
        .env("OBSERVER_REQUIRE_EBPF", "1");
    cargo
}

/// Release build of the observer with its eBPF program; returns the binary.
pub fn build_observer() -> anyhow::Result<PathBuf> {
    setup::toolchain()?;
    sh(cargo().args(["build", "--release", "--locked", "--package", "observer"]))?;
    Ok(workspace_root().join("target/release/observer"))
}

/// Namespace prefixes the tests, the demo and benchmarks use.
pub const NETNS_PREFIXES: &[&str] = &["obt", "obdemo", "obbench", "oblab"];

fn sweep() {
    for prefix in NETNS_PREFIXES {
        for name in observer::lab::netns::sweep_stale(prefix) {
            eprintln!("xtask: removed stale namespace {name}");
        }
    }
}

fn test(filter: &[String]) -> anyhow::Result<()> {
    setup::toolchain()?;
    let mut failed = Vec::new();
    eprintln!("xtask: unprivileged tests");
    if let Err(error) = sh(cargo().args(["test", "--locked"])) {
        failed.push(format!("unprivileged tests: {error:#}"));
    }
    if !interrupted() {
        eprintln!("xtask: fuzz targets, {} s each", fuzz::SMOKE_SECONDS);
        let smoke = fuzz::FuzzArgs {
            seconds: fuzz::SMOKE_SECONDS,
            targets: Vec::new(),
        };
        if let Err(error) = fuzz::run(&smoke) {
            failed.push(format!("fuzzing: {error:#}"));
        }
    }
    if !setup::is_root() {
        failed.push(
            "namespace tests: need root (network namespaces, BPF); run `sudo -E cargo xtask test`"
                .into(),
        );
    } else if !interrupted() {
        setup::packages(setup::TEST_PACKAGES)?;
        let (python, node_modules) = setup::test_tools()?;
        sweep();
        let observer = build_observer()?;
        let spark_only = filter == ["spark"];
        eprintln!("xtask: namespace tests");
        let result = if spark_only {
            Ok(())
        } else {
            sh(cargo()
                .args([
                    "test",
                    "--release",
                    "--locked",
                    "--package",
                    "observer-tests",
                    "--",
                ])
                .args(filter)
                .env("OBSERVER_BIN", &observer)
                .env("OBSERVER_PYTHON", &python)
                .env("OBSERVER_NODE_MODULES", &node_modules))
        };
        if let Err(error) = result {
            failed.push(format!("namespace tests: {error:#}"));
        }
        // The Python step: with no filter, or asked for by name.
        if (filter.is_empty() || spark_only) && !interrupted() {
            eprintln!("xtask: Python wheel on Spark");
            failed.extend(spark::test(&observer, &node_modules));
        }
        sweep();
        let left: Vec<String> = std::fs::read_dir("/run/netns")
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| {
                NETNS_PREFIXES
                    .iter()
                    .any(|p| n.starts_with(&format!("{p}-")))
            })
            .collect();
        if !left.is_empty() {
            failed.push(format!("namespaces left behind: {}", left.join(", ")));
        }
    }
    if interrupted() {
        failed.push("interrupted".into());
    }
    if failed.is_empty() {
        eprintln!("xtask: all tests passed");
        return Ok(());
    }
    bail!("{}", failed.join("\n  "))
}
