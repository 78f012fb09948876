//! Installs what a fresh machine lacks, idempotently: the nightly toolchain
//! with `rust-src`, `bpf-linker`, and the Debian packages tests, demo and
//! benchmarks call. Every step checks first and does nothing when present.

use std::process::Command;

use anyhow::{Context as _, bail};

use crate::sh;

/// The one bpf-linker that builds with this toolchain's own LLVM.
const BPF_LINKER: &str = "0.10.3";

/// (program looked up on PATH, Debian package that provides it).
pub(crate) const TEST_PACKAGES: &[(&str, &str)] = &[
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

pub(crate) const BENCH_PACKAGES: &[(&str, &str)] = &[("iperf3", "iperf3"), ("pmacctd", "pmacct")];

/// Programs the import tests call: tcpdump records the captures, npm
/// installs Azurite, python3 runs pyarrow and DuckDB.
pub(crate) const IMPORT_PACKAGES: &[(&str, &str)] = &[
    ("tcpdump", "tcpdump"),
    ("npm", "npm"),
    ("python3", "python3"),
    ("editcap", "wireshark-common"),
];

/// PyPI packages the tests and benchmarks use, in a project-local venv:
/// pyarrow, DuckDB and the Blob client (import), Prometheus' own parser
/// (the metrics test).
const PYTHON_PACKAGES: &[(&str, &str)] = &[
    ("pyarrow", "pyarrow"),
    ("duckdb", "duckdb"),
    ("azure.storage.blob", "azure-storage-blob"),
    ("prometheus_client", "prometheus_client"),
    // Builds the observer_py wheel (`cargo xtask wheel`).
    ("maturin", "maturin"),
];

/// npm packages the tests use, under `target/tools/npm`: Azurite (the
/// import tests) and playwright-core (the HTML report test drives Debian's
/// chromium with it; 1.55.1 is the last that runs on Debian 12's Node 18).
const NPM_PACKAGES: &[(&str, &str)] = &[("azurite", "3"), ("playwright-core", "1.55.1")];

/// The pyspark lines the wheel is tested on, one venv each (they cannot
/// share one): 4.0 is Databricks 17.3 LTS's Spark, 3.5 Fabric runtime
/// 1.3's and Synapse's.
pub(crate) const PYSPARK_LINES: &[(&str, &str)] = &[
    ("spark40", "pyspark>=4.0,<4.1"),
    ("spark35", "pyspark>=3.5,<3.6"),
];

/// What the Spark tests import besides pyspark (pandas: pyspark's Arrow
/// paths check for it; the Blob client fills Azurite).
const SPARK_PACKAGES: &[(&str, &str)] = &[
    ("pyarrow", "pyarrow"),
    ("pandas", "pandas"),
    ("pytest", "pytest"),
    ("azure.storage.blob", "azure-storage-blob"),
];

/// A venv `target/tools/NAME` with pyspark of `spec` and [`SPARK_PACKAGES`]
/// (filled only when something is missing; Java for Spark from Debian);
/// returns its python.
pub(crate) fn spark_tools(name: &str, spec: &str) -> anyhow::Result<std::path::PathBuf> {
    packages(&[("java", "openjdk-17-jre-headless")])?;
    let venv = tools_dir().join(name);
    let python = venv.join("bin/python");
    if !python.is_file() {
        eprintln!("xtask: creating {}", venv.display());
        sh(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    }
    let imports = |module: &str| {
        Command::new(&python)
            .args(["-c", &format!("import {module}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let mut missing: Vec<&str> = SPARK_PACKAGES
        .iter()
        .filter(|(module, _)| !imports(module))
        .map(|(_, package)| *package)
        .collect();
    // The installed pyspark must be of the line asked for.
    let line = spec
        .split(">=")
        .nth(1)
        .and_then(|v| v.split(',').next())
        .unwrap_or_default();
    let pyspark_ok = Command::new(&python)
        .args(["-c", "import pyspark; print(pyspark.__version__)"])
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).starts_with(line));
    if !pyspark_ok {
        missing.push(spec);
    }
    if !missing.is_empty() {
        eprintln!(
            "xtask: pip install {} into {}",
            missing.join(" "),
            venv.display()
        );
        sh(pip_install(&python).args(&missing))?;
    }
    Ok(python)
}

/// `python -m pip install --quiet` (packages to be added as arguments).
pub(crate) fn pip_install(python: &std::path::Path) -> Command {
    let mut command = Command::new(python);
    command.args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ]);
    command
}

/// Where the project-local tools live: `target/tools/{venv,npm}`.
pub(crate) fn tools_dir() -> std::path::PathBuf {
    crate::workspace_root().join("target/tools")
}

/// A Python venv with [`PYTHON_PACKAGES`] under `target/tools/venv`
/// (created and filled only when something is missing); returns its python.
pub(crate) fn python_tools() -> anyhow::Result<std::path::PathBuf> {
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
        sh(pip_install(&python).args(&missing))?;
    }
    Ok(python)
}

/// [`NPM_PACKAGES`] under `target/tools/npm` (installed when one is
/// missing or of another major/exact version; no browser is downloaded);
/// returns its `node_modules`.
pub(crate) fn node_tools() -> anyhow::Result<std::path::PathBuf> {
    let prefix = tools_dir().join("npm");
    let modules = prefix.join("node_modules");
    let missing: Vec<String> = NPM_PACKAGES
        .iter()
        .filter(|(package, version)| {
            let manifest = std::fs::read_to_string(modules.join(package).join("package.json"))
                .unwrap_or_default();
            !manifest.contains(&format!("\"version\": \"{version}"))
        })
        .map(|(package, version)| format!("{package}@{version}"))
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "xtask: npm install {} into {}",
            missing.join(" "),
            prefix.display()
        );
        std::fs::create_dir_all(&prefix)?;
        sh(Command::new("npm")
            .args([
                "install",
                "--save-exact",
                "--no-audit",
                "--no-fund",
                "--silent",
                "--prefix",
            ])
            .arg(&prefix)
            .args(&missing)
            .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1"))
        .context("npm install")?;
    }
    Ok(modules)
}

/// Everything the namespace tests run besides the observer; the paths go
/// to them as `OBSERVER_PYTHON` and `OBSERVER_NODE_MODULES`.
pub(crate) fn test_tools() -> anyhow::Result<(std::path::PathBuf, std::path::PathBuf)> {
    packages(IMPORT_PACKAGES)?;
    Ok((python_tools()?, node_tools()?))
}

/// Rust side: nightly, rust-src, bpf-linker.
pub(crate) fn toolchain() -> anyhow::Result<()> {
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
pub(crate) fn packages(wanted: &[(&str, &str)]) -> anyhow::Result<()> {
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
pub(crate) fn apt_install(missing: &[&str]) -> anyhow::Result<()> {
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

pub(crate) fn on_path(program: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .any(|dir| dir.join(program).is_file())
}

pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
