//! `cargo xtask demo`: the observer on the built-in default lab topology.
//! Builds, runs every scenario of `lab/topologies/default.toml` through
//! `observer lab run`, which captures, classifies, writes Parquet and
//! prints the report, then tears the lab down (also on Ctrl-C).

use std::{path::PathBuf, process::Command};

use crate::{build_observer, setup, sh, sweep, workspace_root};

pub fn run(out: Option<PathBuf>) -> anyhow::Result<()> {
    let observer = build_observer()?;
    setup::packages(setup::TEST_PACKAGES)?;
    anyhow::ensure!(
        setup::is_root(),
        "the demo builds network namespaces and loads BPF: run it as root"
    );
    sweep();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let out = out.unwrap_or_else(|| workspace_root().join(format!("target/demo/{stamp}")));
    let topology = workspace_root().join("lab/topologies/default.toml");
    let result = sh(Command::new(&observer)
        .arg("lab")
        .arg("run")
        .arg(&topology)
        .arg("--out")
        .arg(&out));
    sweep();
    result?;
    eprintln!("xtask: Parquet files are in {}", out.display());
    Ok(())
}
