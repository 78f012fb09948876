//! `cargo xtask lab up|down|status|run`: the lab crate with the release
//! observer. `demo` runs every scenario topology through `run`.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::Subcommand;
use observer::lab::{
    build::{Lab, PERSISTENT_PREFIX},
    scenario::{self, RunConfig, ScenarioResult},
};
use observer::topology::Topology;

use crate::{build_observer, interrupted, setup, sweep, workspace_root};

#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Build a topology into namespaces and keep it (until `lab down`).
    Up {
        file: PathBuf,
        /// Lab name (default: the topology's name).
        #[arg(long)]
        name: Option<String>,
    },
    /// Remove a lab kept by `lab up`.
    Down { name: String },
    /// List lab namespaces on this host.
    Status,
    /// Build, capture, send the scenario traffic, classify, report, tear down.
    Run {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Only this `[[lab.traffic]]` entry.
        #[arg(long)]
        scenario: Option<String>,
        /// Where the Parquet files go (default: target/lab/<time>).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

pub fn run(command: LabCommand) -> anyhow::Result<()> {
    anyhow::ensure!(
        setup::is_root(),
        "the lab builds network namespaces: run it as root"
    );
    match command {
        LabCommand::Up { file, name } => {
            setup::packages(setup::TEST_PACKAGES)?;
            let topology = Topology::load(&file)?;
            let name = name.unwrap_or_else(|| topology.name.clone());
            let _ = observer::lab::build::down(&name);
            let built = Lab::build(&topology, format!("{PERSISTENT_PREFIX}-{name}"))?;
            println!("lab {name} is up: {}", built.namespace_names().join(", "));
            println!("try: ip netns exec {PERSISTENT_PREFIX}-{name}-ase ping -c1 168.63.129.16");
            built.persist();
            Ok(())
        }
        LabCommand::Down { name } => {
            let removed = observer::lab::build::down(&name)?;
            if removed.is_empty() {
                bail!("no lab named {name} (see `cargo xtask lab status`)");
            }
            println!("removed {}", removed.join(", "));
            Ok(())
        }
        LabCommand::Status => {
            let names = observer::lab::build::list();
            if names.is_empty() {
                println!("no lab namespaces");
            }
            for n in names {
                println!("{n}");
            }
            Ok(())
        }
        LabCommand::Run {
            files,
            scenario,
            out,
        } => {
            let results = run_files(&files, scenario, out)?;
            finish(&results)
        }
    }
}

/// Runs each topology file in its own lab; stops early on Ctrl-C.
pub fn run_files(
    files: &[PathBuf],
    scenario: Option<String>,
    out: Option<PathBuf>,
) -> anyhow::Result<Vec<ScenarioResult>> {
    let observer = build_observer()?;
    setup::packages(setup::TEST_PACKAGES)?;
    sweep();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let config = RunConfig {
        observer,
        out: out.unwrap_or_else(|| workspace_root().join(format!("target/lab/{stamp}"))),
        scenario,
    };
    let mut results = Vec::new();
    for file in files {
        if interrupted() {
            bail!("interrupted");
        }
        let result =
            scenario::run(file, &config).with_context(|| format!("lab run {}", file.display()));
        sweep();
        let result = result?;
        println!("{}", result.render());
        results.push(result);
    }
    Ok(results)
}

/// Prints the roll-up and fails if any expectation failed.
pub fn finish(results: &[ScenarioResult]) -> anyhow::Result<()> {
    println!("━━ summary ━━");
    let mut failed = 0;
    for r in results {
        for c in &r.checks {
            let mark = if c.passed() { "ok  " } else { "FAIL" };
            if !c.passed() {
                failed += 1;
            }
            println!(
                "  {mark} {:<28} {:<16} {:<24} {}",
                r.topology,
                c.traffic,
                c.verdict.as_deref().unwrap_or("(no record)"),
                c.reason.as_deref().unwrap_or("")
            );
        }
    }
    if let Some(r) = results.first() {
        println!(
            "\nParquet under {}",
            r.out.parent().unwrap_or(Path::new(".")).display()
        );
    }
    if failed > 0 {
        bail!("{failed} flows did not get their expected verdict");
    }
    Ok(())
}

/// Every topology under lab/topologies, default first.
pub fn all_topologies() -> anyhow::Result<Vec<PathBuf>> {
    let dir = workspace_root().join("lab/topologies");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort_by_key(|p| (p.file_stem().is_none_or(|s| s != "default"), p.clone()));
    Ok(files)
}
