//! `cargo xtask bench --only spark` (no root): the wheel on Spark against
//! the native CLI, on generated VNet flow logs (the import benchmark's
//! generator) laid out as Azure's blob-hour tree:
//!
//! - native: `observer import --topology` (JSON to classified Parquet) and
//!   `observer classify` of the unclassified Hive tree; rows per CPU-second
//!   (user + system time of the process: rows/s per core);
//! - Spark `local[CORES]` with the wheel (`observer-py/bench/spark_bench.py`):
//!   identity `mapInArrow` (the floor), `observer_py.spark.classify`, and
//!   `observer_py.spark.import_flow_logs`; rows / (wall seconds x cores).
//!
//! Results: stdout and `target/bench/spark.json`.

use std::{fs, path::Path, process::Command};

use anyhow::{Context as _, ensure};
use serde_json::{Value, json};

use crate::{bench_import::measure, build_observer, setup, sh, workspace_root};

/// The generated blobs as Azure's tree: blob N under hour N mod 24.
fn layout(blobs: &Path, tree: &Path) -> anyhow::Result<()> {
    let _ = fs::remove_dir_all(tree);
    let mut names: Vec<_> = fs::read_dir(blobs)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    names.sort();
    for (n, blob) in names.iter().enumerate() {
        let dir = tree.join(format!(
            "y=2024/m=05/d=01/h={:02}/m=00/macAddress=0022487{n:05X}",
            n % 24
        ));
        fs::create_dir_all(&dir)?;
        fs::hard_link(blob, dir.join("PT1H.json"))?;
    }
    Ok(())
}

/// The Spark benchmark; returns its JSON result.
pub(crate) fn run(tuples: u64, runs: u32) -> anyhow::Result<Value> {
    let observer = build_observer()?;
    let wheel = crate::wheel::build()?;
    let (name, spec) = setup::PYSPARK_LINES[0];
    let python = setup::spark_tools(name, spec)?;
    sh(setup::pip_install(&python)
        .args(["--force-reinstall", "--no-deps"])
        .arg(&wheel))?;
    let root = workspace_root().join("target/bench/spark");
    let blobs = workspace_root().join(format!("target/bench/import/json-{tuples}"));
    eprintln!(
        "xtask: generating {tuples} flow-log tuples in {}",
        blobs.display()
    );
    crate::bench_import::generate(&blobs, tuples)?;
    let tree = root.join("tree");
    layout(&blobs, &tree)?;
    let topology = workspace_root().join("lab/topologies/default.toml");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    // Native: the import (classified), the unclassified Hive tree Spark
    // reads, and `observer classify` of that tree.
    let fresh = |dir: &str| {
        let path = root.join(dir);
        let _ = fs::remove_dir_all(&path);
        path
    };
    let import_out = fresh("cli-import");
    let import = measure(
        Command::new(&observer)
            .args(["import", "azure-vnet-flow-log"])
            .arg(&tree)
            .arg("--out")
            .arg(&import_out)
            .args(["--partition", "hour", "--quiet", "--topology"])
            .arg(&topology),
        &root.join("cli-import.log"),
    )?;
    let (import_wall, import_cpu) = (import.wall_s, import.cpu_s);
    let hive = fresh("hive");
    sh(Command::new(&observer)
        .args(["import", "azure-vnet-flow-log"])
        .arg(&tree)
        .arg("--out")
        .arg(&hive)
        .args(["--partition", "hour", "--quiet"])
        .stdout(std::process::Stdio::null()))?;
    let classify_out = fresh("cli-classify");
    let classify = measure(
        Command::new(&observer)
            .arg("classify")
            .arg("--topology")
            .arg(&topology)
            .arg("--out")
            .arg(&classify_out)
            .arg(&hive),
        &root.join("cli-classify.log"),
    )?;
    let (classify_wall, classify_cpu) = (classify.wall_s, classify.cpu_s);

    eprintln!("xtask: Spark local[{cores}] ({spec})");
    let output = Command::new(&python)
        .arg(workspace_root().join("observer-py/bench/spark_bench.py"))
        .arg(&hive)
        .arg(&tree)
        .arg(&topology)
        .arg(root.join("spark-import"))
        .arg(cores.to_string())
        .arg(runs.max(1).to_string())
        .env("SPARK_LOCAL_IP", "127.0.0.1")
        .output()?;
    ensure!(
        output.status.success(),
        "spark_bench.py: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let spark: Value = serde_json::from_slice(
        output
            .stdout
            .split(|b| *b == b'\n')
            .rfind(|l| l.starts_with(b"{"))
            .context("spark_bench.py printed no result")?,
    )?;
    let rows = spark["rows"].as_f64().context("rows")?;
    let per_core = |key: &str| rows / (spark[key].as_f64().unwrap_or(f64::NAN) * cores as f64);
    let result = json!({
        "tuples": tuples,
        "rows": rows,
        "cores": cores,
        "spark": spark,
        "rows_per_s_per_core": {
            "cli_import": tuples as f64 / import_cpu,
            "cli_classify": rows / classify_cpu,
            "spark_identity_map_in_arrow": per_core("identity_s"),
            "spark_classify": per_core("classify_s"),
            "spark_import_flow_logs": tuples as f64 / (spark["import_s"].as_f64().unwrap_or(f64::NAN) * cores as f64),
        },
        "wall_s": {
            "cli_import": import_wall,
            "cli_classify": classify_wall,
            "spark_identity_map_in_arrow": spark["identity_s"],
            "spark_classify": spark["classify_s"],
            "spark_import_flow_logs": spark["import_s"],
        },
        "cpu_s": {"cli_import": import_cpu, "cli_classify": classify_cpu},
    });
    let path = workspace_root().join("target/bench/spark.json");
    fs::write(&path, serde_json::to_string_pretty(&result)?)?;
    println!("{}", serde_json::to_string_pretty(&result)?);
    eprintln!("xtask: results in {}", path.display());
    Ok(result)
}
