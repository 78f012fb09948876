//! `cargo xtask fuzz`: builds the cargo-fuzz targets of `fuzz/` (nightly,
//! AddressSanitizer, debug assertions) and runs each for a while with
//! libFuzzer's limits, seeded from the project's real inputs. `cargo xtask
//! test` runs every target for a few seconds ([`SMOKE_SECONDS`]).
//!
//! Limits, per input: [`TIMEOUT_SECS`] seconds (a hang is a crash), one
//! allocation or the whole process above [`RSS_LIMIT_MB`] MB (unbounded
//! allocation is a crash). A crash fails the task with the path of the
//! input that caused it (under `target/fuzz/artifacts/TARGET/`).

use std::{
    path::Path,
    process::{Command, Stdio},
};

use anyhow::{Context as _, bail};

use crate::{sh, workspace_root};

/// cargo-fuzz, the version that builds (and drives) with this nightly.
const CARGO_FUZZ: &str = "0.13.1";

/// Seconds each target runs in `cargo xtask test`.
pub(crate) const SMOKE_SECONDS: u64 = 5;

/// libFuzzer's `-timeout`: seconds one input may take.
pub(crate) const TIMEOUT_SECS: u64 = 10;

/// libFuzzer's `-rss_limit_mb` (and, by default, `-malloc_limit_mb`).
pub(crate) const RSS_LIMIT_MB: u64 = 2048;

#[derive(Debug, clap::Args)]
pub(crate) struct FuzzArgs {
    /// Seconds each target runs.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Only these targets (repeatable; default: every target).
    #[arg(long = "target", value_name = "NAME")]
    pub targets: Vec<String>,
}

/// One fuzz target and where its seeds come from (paths from the
/// workspace root; libFuzzer reads directories recursively).
struct Target {
    name: &'static str,
    seeds: &'static [&'static str],
}

const TARGETS: &[Target] = &[
    Target {
        name: "vnet_flow_log",
        seeds: &["observer/testdata/flow-logs"],
    },
    Target {
        name: "nsg_flow_log",
        seeds: &["observer/testdata/flow-logs"],
    },
    Target {
        name: "flow_log_tuple",
        seeds: &["fuzz/seeds/flow_log_tuple"],
    },
    Target {
        name: "capture",
        seeds: &["tests/corpus"],
    },
    Target {
        name: "frames",
        seeds: &["fuzz/seeds/frames"],
    },
    Target {
        name: "dns",
        seeds: &["fuzz/seeds/dns"],
    },
    Target {
        name: "topology",
        seeds: &["lab/topologies"],
    },
    Target {
        name: "azure_export",
        seeds: &["tests/fixtures/azure", "fuzz/seeds/azure_export"],
    },
];

/// What one run did, from libFuzzer's final statistics.
#[derive(Debug, Default)]
struct Stats {
    executions: u64,
    per_second: u64,
}

pub(crate) fn run(args: &FuzzArgs) -> anyhow::Result<()> {
    let targets: Vec<&Target> = if args.targets.is_empty() {
        TARGETS.iter().collect()
    } else {
        args.targets
            .iter()
            .map(|name| {
                TARGETS.iter().find(|t| t.name == name).with_context(|| {
                    format!(
                        "no fuzz target `{name}`; the targets are {}",
                        TARGETS
                            .iter()
                            .map(|t| t.name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })
            })
            .collect::<anyhow::Result<_>>()?
    };
    crate::setup::toolchain()?;
    install_cargo_fuzz()?;
    eprintln!("xtask: building the fuzz targets (nightly, AddressSanitizer)");
    sh(cargo_fuzz().arg("build").args(BUILD_FLAGS))?;
    let mut failed = Vec::new();
    let mut table = Vec::new();
    for target in targets {
        if crate::interrupted() {
            failed.push("interrupted".to_owned());
            break;
        }
        match run_target(target, args.seconds) {
            Ok(stats) => table.push((target.name, stats)),
            Err(error) => failed.push(format!("{}: {error:#}", target.name)),
        }
    }
    for (name, stats) in &table {
        eprintln!(
            "xtask: fuzz {name:<16} {:>12} executions, {:>7}/s, no crash",
            stats.executions, stats.per_second
        );
    }
    if failed.is_empty() {
        return Ok(());
    }
    bail!("{}", failed.join("\n  "))
}

/// `cargo fuzz build` and `run` take the same flags, so `run` reuses the build.
const BUILD_FLAGS: &[&str] = &["--debug-assertions"];

fn cargo_fuzz() -> Command {
    let mut command = Command::new("cargo");
    command
        .args(["+nightly", "fuzz"])
        .current_dir(workspace_root());
    command
}

/// cargo-fuzz [`CARGO_FUZZ`], installed only when another or none is.
fn install_cargo_fuzz() -> anyhow::Result<()> {
    let list = Command::new("cargo")
        .args(["install", "--list"])
        .output()
        .context("cannot run `cargo install --list`")?;
    if String::from_utf8_lossy(&list.stdout).contains(&format!("cargo-fuzz v{CARGO_FUZZ}:")) {
        return Ok(());
    }
    eprintln!("xtask: installing cargo-fuzz {CARGO_FUZZ} (a minute, once)");
    sh(Command::new("cargo").args([
        "+stable",
        "install",
        &format!("cargo-fuzz@{CARGO_FUZZ}"),
        "--locked",
        "--force",
    ]))
}

/// Runs one target for `seconds`; its corpus grows in
/// `target/fuzz/corpus/NAME`, crashes go to `target/fuzz/artifacts/NAME/`.
fn run_target(target: &Target, seconds: u64) -> anyhow::Result<Stats> {
    let root = workspace_root();
    let corpus = root.join("target/fuzz/corpus").join(target.name);
    let artifacts = root.join("target/fuzz/artifacts").join(target.name);
    std::fs::create_dir_all(&corpus)?;
    std::fs::create_dir_all(&artifacts)?;
    if target.name == "azure_export" {
        joined_exports(&root.join("tests/fixtures/azure"), &corpus)?;
    }
    let log = root
        .join("target/fuzz")
        .join(format!("{}.log", target.name));
    eprintln!(
        "xtask: fuzz {} for {seconds} s (log {})",
        target.name,
        log.display()
    );
    let status = cargo_fuzz()
        .arg("run")
        .args(BUILD_FLAGS)
        .arg(target.name)
        .arg(&corpus)
        .args(target.seeds.iter().map(|s| root.join(s)))
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-timeout={TIMEOUT_SECS}"))
        .arg(format!("-rss_limit_mb={RSS_LIMIT_MB}"))
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg("-print_final_stats=1")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .status()
        .context("cannot start cargo fuzz")?;
    let text = std::fs::read_to_string(&log)?;
    if !status.success() {
        let input = text
            .lines()
            .find_map(|l| l.split_once("Test unit written to ").map(|(_, p)| p.trim()));
        let cause = text
            .lines()
            .find(|l| l.contains("ERROR: libFuzzer") || l.contains("panicked at"))
            .unwrap_or("see the log");
        match input {
            Some(input) => bail!(
                "{cause}\n    crashing input: {input}\n    reproduce: cargo +nightly fuzz run {} {} {input}\n    log: {}",
                BUILD_FLAGS.join(" "),
                target.name,
                log.display()
            ),
            None => bail!(
                "cargo fuzz failed ({status}): {cause}; log: {}",
                log.display()
            ),
        }
    }
    Ok(Stats {
        executions: stat(&text, "stat::number_of_executed_units:"),
        per_second: stat(&text, "stat::average_exec_per_sec:"),
    })
}

fn stat(log: &str, name: &str) -> u64 {
    log.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

/// The `azure_export` target reads several exports joined by NUL bytes:
/// one seed per fixture folder (every export below it, service-tag files
/// left out), so imports that need the VNet, the ASE and the NSGs from
/// different files are seeded too.
fn joined_exports(fixtures: &Path, corpus: &Path) -> anyhow::Result<()> {
    let mut folders = vec![fixtures.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let mut files = Vec::new();
        let mut below = vec![folder.clone()];
        while let Some(dir) = below.pop() {
            for entry in std::fs::read_dir(&dir)? {
                let path = entry?.path();
                if path.is_dir() {
                    below.push(path.clone());
                    if dir == folder {
                        folders.push(path);
                    }
                } else if path.extension().is_some_and(|e| e == "json")
                    && !path.to_string_lossy().contains("service-tags")
                {
                    files.push(path);
                }
            }
        }
        files.sort();
        if files.len() < 2 {
            continue;
        }
        let mut joined = Vec::new();
        for file in &files {
            if !joined.is_empty() {
                joined.push(0);
            }
            joined.extend(std::fs::read(file)?);
        }
        let name = folder
            .strip_prefix(fixtures)
            .unwrap_or(&folder)
            .to_string_lossy()
            .replace('/', "-");
        std::fs::write(corpus.join(format!("joined-{name}")), joined)?;
    }
    Ok(())
}
