//! `cargo xtask wheel`: the Python wheel of `observer-py` (package
//! `observer_py`), built by maturin (installed in the tools venv) into
//! `target/wheels/`. It needs stable Rust and Python only: the wheel links
//! the library without its capture side, so no eBPF toolchain or root.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::{setup, sh, workspace_root};

/// Builds the wheel (release) and returns its path.
pub(crate) fn build() -> anyhow::Result<PathBuf> {
    let python = setup::python_tools()?;
    let maturin = python.with_file_name("maturin");
    let out = workspace_root().join("target/wheels");
    // One wheel of this name in the folder: the one built now.
    for old in wheels(&out) {
        std::fs::remove_file(&old).with_context(|| format!("removing {}", old.display()))?;
    }
    eprintln!("xtask: building the observer_py wheel");
    sh(Command::new(&maturin)
        .current_dir(workspace_root())
        .args([
            "build",
            "--release",
            "--locked",
            "--quiet",
            "--manifest-path",
        ])
        .arg(workspace_root().join("observer-py/Cargo.toml"))
        .arg("--interpreter")
        .arg(&python)
        .arg("--out")
        .arg(&out))?;
    match wheels(&out).as_slice() {
        [wheel] => {
            eprintln!("xtask: wheel {}", wheel.display());
            Ok(wheel.clone())
        }
        found => bail!(
            "maturin left {} observer_py wheels in {}",
            found.len(),
            out.display()
        ),
    }
}

fn wheels(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("observer_py-") && n.ends_with(".whl"))
        })
        .collect()
}
