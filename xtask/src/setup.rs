//! Installs what a fresh machine lacks, idempotently: the nightly toolchain
//! with `rust-src`, `bpf-linker`, and the Debian packages tests, demo and
//! benchmarks call. Every step checks first and does nothing when present.

use std::process::Command;

use anyhow::{Context as _, bail};

use crate::sh;

/// The one bpf-linker that builds with this toolchain's own LLVM.
const BPF_LINKER: &str = "0.10.3";

/// (program looked up on PATH, Debian package that provides it).
pub const TEST_PACKAGES: &[(&str, &str)] = &[
    ("ip", "iproute2"),
    ("tc", "iproute2"),
    ("nft", "nftables"),
    ("ethtool", "ethtool"),
    ("ping", "iputils-ping"),
    ("curl", "curl"),
    ("python3", "python3"),
    ("setpriv", "util-linux"),
    ("unshare", "util-linux"),
    ("mount", "mount"),
    ("bpftool", "bpftool"),
    ("dnsmasq", "dnsmasq-base"),
    ("python3", "python3"),
    ("chromium", "chromium"),
    ("node", "nodejs"),
    ("npm", "npm"),
];

pub const BENCH_PACKAGES: &[(&str, &str)] = &[("iperf3", "iperf3"), ("pmacctd", "pmacct")];

/// Programs the import tests call: tcpdump records the captures, npm
/// installs Azurite, python3 runs pyarrow and DuckDB.
pub const IMPORT_PACKAGES: &[(&str, &str)] = &[
    ("tcpdump", "tcpdump"),
    ("npm", "npm"),
    ("python3", "python3"),
    ("editcap", "wireshark-common"),
];

/// PyPI packages of the import tests and benchmark, in a project-local venv.
const PYTHON_PACKAGES: &[(&str, &str)] = &[
    ("pyarrow", "pyarrow"),
    ("duckdb", "duckdb"),
    ("azure.storage.blob", "azure-storage-blob"),
];

/// Where the project-local tools live: `target/tools/{venv,npm}`.
pub fn tools_dir() -> std::path::PathBuf {
    crate::workspace_root().join("target/tools")
}

/// A Python venv with pyarrow and DuckDB under `target/tools/venv`
/// (created and filled only when something is missing); returns its python.
pub fn python_tools() -> anyhow::Result<std::path::PathBuf> {
    let venv = tools_dir().join("venv");
    let python = venv.join("bin/python");
    if !python.is_file() {
        eprintln!("xtask: creating {}", venv.display());
        sh(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    }
    let missing: Vec<&str> = PYTHON_PACKAGES
        .iter()
        .filter(|(module, _)| {
            !Command::new(&python)
                .args(["-c", &format!("import {module}")])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(|(_, package)| *package)
        .collect();
    if !missing.is_empty() {
        eprintln!("xtask: pip install {}", missing.join(" "));
        sh(Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(&missing))?;
    }
    Ok(python)
}

/// Azurite (Microsoft's Azure Storage emulator, npm package `azurite`)
/// under `target/tools/npm`; returns its `azurite-blob` launcher.
pub fn azurite() -> anyhow::Result<std::path::PathBuf> {
    let prefix = tools_dir().join("npm");
    let bin = prefix.join("node_modules/.bin/azurite-blob");
    if !bin.is_file() {
        eprintln!("xtask: npm install azurite into {}", prefix.display());
        std::fs::create_dir_all(&prefix)?;
        sh(Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--silent", "--prefix"])
            .arg(&prefix)
            .arg("azurite"))?;
    }
    Ok(bin)
}

/// Everything the import tests need; the paths go to the tests through
/// `OBSERVER_PYTHON` and `OBSERVER_AZURITE`.
pub fn import_tools() -> anyhow::Result<(std::path::PathBuf, std::path::PathBuf)> {
    packages(IMPORT_PACKAGES)?;
    Ok((python_tools()?, azurite()?))
}

/// Rust side: nightly, rust-src, bpf-linker.
pub fn toolchain() -> anyhow::Result<()> {
    let nightly_ok = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !nightly_ok {
        eprintln!("xtask: installing the nightly toolchain (for the BPF target)");
        sh(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
            "--component",
            "rust-src",
        ]))?;
    }
    let sysroot = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--print", "sysroot"])
        .output()?;
    let sysroot = String::from_utf8(sysroot.stdout)?;
    if !std::path::Path::new(sysroot.trim())
        .join("lib/rustlib/src/rust/library/core")
        .is_dir()
    {
        eprintln!("xtask: adding rust-src to nightly");
        sh(Command::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            "nightly",
        ]))?;
    }
    let linker = Command::new("bpf-linker").arg("--version").output();
    let have = linker
        .as_ref()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if !have.contains(BPF_LINKER) {
        eprintln!("xtask: installing bpf-linker {BPF_LINKER} (a few minutes, once)");
        sh(Command::new("cargo").args([
            "+stable",
            "install",
            &format!("bpf-linker@{BPF_LINKER}"),
            "--locked",
            "--force",
        ]))?;
    }
    Ok(())
}

/// Debian packages for the given programs; `apt-get update` runs once, only
/// when something is missing.
pub fn packages(wanted: &[(&str, &str)]) -> anyhow::Result<()> {
    let mut missing: Vec<&str> = wanted
        .iter()
        .filter(|(bin, _)| !on_path(bin))
        .map(|(_, pkg)| *pkg)
        .collect();
    missing.sort_unstable();
    missing.dedup();
    apt_install(&missing)
}

/// `apt-get install` of `missing` (nothing when empty; root only).
pub fn apt_install(missing: &[&str]) -> anyhow::Result<()> {
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        bail!(
            "missing Debian packages: {}; run as root or `apt-get install {}`",
            missing.join(", "),
            missing.join(" ")
        );
    }
    eprintln!("xtask: installing {}", missing.join(" "));
    sh(Command::new("apt-get").args(["update", "-q"]))?;
    sh(Command::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(missing))
    .context("apt-get install")
}

/// Python modules the tests import (the metrics test parses the endpoint's
/// text with Prometheus' own parser): pip when it works, else Debian's
/// package (a system Python that refuses pip installs).
pub fn python_modules() -> anyhow::Result<()> {
    let importable = |module: &str| {
        Command::new("python3")
            .args(["-c", &format!("import {module}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    for (module, pip, debian) in [(
        "prometheus_client",
        "prometheus_client",
        "python3-prometheus-client",
    )] {
        if importable(module) {
            continue;
        }
        eprintln!("xtask: installing the Python module {module}");
        let pip_ok = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", pip])
            .status()
            .is_ok_and(|s| s.success());
        if !pip_ok || !importable(module) {
            apt_install(&[debian])?;
        }
        if !importable(module) {
            bail!("the Python module {module} is still missing; install {pip} for python3");
        }
    }
    Ok(())
}

/// The version of `playwright-core` that drives Chromium in the HTML
/// report test (the last that runs on Debian 12's Node 18).
const PLAYWRIGHT_CORE: &str = "1.55.1";

/// `playwright-core` under `target/node` (project-local; it downloads no
/// browser: the test uses Debian's chromium).
pub fn node_modules() -> anyhow::Result<()> {
    let prefix = crate::workspace_root().join("target/node");
    let installed = prefix.join("node_modules/playwright-core/package.json");
    let have = std::fs::read_to_string(&installed).unwrap_or_default();
    if have.contains(&format!("\"version\": \"{PLAYWRIGHT_CORE}\"")) {
        return Ok(());
    }
    eprintln!("xtask: installing playwright-core {PLAYWRIGHT_CORE} under target/node");
    std::fs::create_dir_all(&prefix)?;
    sh(Command::new("npm")
        .args([
            "install",
            "--no-save",
            "--no-audit",
            "--no-fund",
            "--prefix",
        ])
        .arg(&prefix)
        .arg(format!("playwright-core@{PLAYWRIGHT_CORE}"))
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1"))
    .context("npm install playwright-core")
}

pub fn on_path(program: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .any(|dir| dir.join(program).is_file())
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
