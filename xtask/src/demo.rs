//! `cargo xtask demo`: set-up, build, then `observer lab run` over every
//! topology shipped in the binary (the default one first), each in its own
//! lab: capture, traffic, classification, Parquet, report (text, and one
//! HTML page per scenario with an index), teardown (also on Ctrl-C).

use std::{ffi::OsString, path::PathBuf};

use crate::{lab, workspace_root};

pub(crate) fn run(out: Option<PathBuf>) -> anyhow::Result<()> {
    anyhow::ensure!(
        crate::setup::is_root(),
        "the demo builds network namespaces and loads BPF: run it as root"
    );
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let out = out.unwrap_or_else(|| workspace_root().join(format!("target/demo/{stamp}")));
    let mut args: Vec<OsString> = vec!["run".into()];
    args.extend(
        observer::lab::topologies::names()
            .into_iter()
            .map(OsString::from),
    );
    args.extend(["--out".into(), out.clone().into_os_string()]);
    args.extend(["--html".into(), out.join("html").into_os_string()]);
    lab::run(&args)?;
    eprintln!(
        "xtask: demo done; Parquet files are in {}, HTML reports in {}",
        out.display(),
        out.join("html/index.html").display()
    );
    Ok(())
}
