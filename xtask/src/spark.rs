//! The Python step of `cargo xtask test`: the wheel crate's Rust unit
//! tests, then the `observer_py` wheel built once, installed in one venv
//! per pyspark line ([`setup::PYSPARK_LINES`]), and pytest of
//! `observer-py/tests` run in each: the classifier on pyarrow, and
//! `observer_py.spark` on Spark `local[2]` (offline, on 127.0.0.1, UI off;
//! Azurite for Blob Storage), compared with the observer CLI.

use std::{path::Path, process::Command};

use crate::{setup, sh, workspace_root};

/// Runs the suite on every pyspark line; returns what failed.
pub(crate) fn test(observer: &Path, node_modules: &Path) -> Vec<String> {
    let mut failed = Vec::new();
    // Not a default member (it links Python): its unit tests run here.
    if let Err(error) = sh(Command::new(
        std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()),
    )
    .current_dir(workspace_root())
    .args(["test", "--locked", "--package", "observer-py"]))
    {
        failed.push(format!("observer-py unit tests: {error:#}"));
    }
    let wheel = match crate::wheel::build() {
        Ok(wheel) => wheel,
        Err(error) => return vec![format!("wheel: {error:#}")],
    };
    for (name, spec) in setup::PYSPARK_LINES {
        if crate::interrupted() {
            break;
        }
        let result = setup::spark_tools(name, spec).and_then(|python| {
            sh(setup::pip_install(&python)
                .args(["--force-reinstall", "--no-deps"])
                .arg(&wheel))?;
            eprintln!("xtask: pytest on {spec}");
            sh(Command::new(&python)
                .current_dir(workspace_root())
                .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
                .arg(workspace_root().join("observer-py/tests"))
                .env("OBSERVER_BIN", observer)
                .env("OBSERVER_NODE_MODULES", node_modules)
                .env("PYSPARK_PYTHON", &python)
                .env("PYSPARK_DRIVER_PYTHON", &python)
                .env("SPARK_LOCAL_IP", "127.0.0.1"))
        });
        if let Err(error) = result {
            failed.push(format!("pytest on {spec}: {error:#}"));
        }
    }
    failed
}
