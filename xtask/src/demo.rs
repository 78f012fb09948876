//! `cargo xtask demo`: set-up, build, then every scenario topology under
//! `lab/topologies` (the default one first) in its own lab: capture,
//! traffic, classification, Parquet, report, teardown (also on Ctrl-C).

use std::path::PathBuf;

use crate::{lab, workspace_root};

pub fn run(out: Option<PathBuf>) -> anyhow::Result<()> {
    anyhow::ensure!(
        crate::setup::is_root(),
        "the demo builds network namespaces and loads BPF: run it as root"
    );
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let out = out.unwrap_or_else(|| workspace_root().join(format!("target/demo/{stamp}")));
    let results = lab::run_files(&lab::all_topologies()?, None, Some(out.clone()))?;
    lab::finish(&results)?;
    eprintln!("xtask: demo done; Parquet files are in {}", out.display());
    Ok(())
}
