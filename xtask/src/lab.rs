//! `cargo xtask lab ARGS...`: a thin caller of `observer lab ARGS...` with
//! the release observer (built first) and the lab's Debian packages
//! installed. Everything the lab does lives in the binary.

use std::{ffi::OsString, process::Command};

use anyhow::{Context as _, bail};

use crate::{build_observer, setup, sweep};

/// Runs `observer lab ARGS...`; fails when it does (exit status kept in the message).
pub(crate) fn run(args: &[OsString]) -> anyhow::Result<()> {
    anyhow::ensure!(
        setup::is_root(),
        "the lab builds network namespaces: run it as root"
    );
    let observer = build_observer()?;
    setup::packages(setup::TEST_PACKAGES)?;
    sweep();
    let status = Command::new(&observer)
        .arg("lab")
        .args(args)
        .status()
        .with_context(|| format!("starting {}", observer.display()))?;
    sweep();
    if !status.success() {
        bail!("observer lab failed ({status})");
    }
    Ok(())
}
