//! `observer check`: the static audit (`crate::audit`) of a topology before
//! any traffic, as text (one block per problem: what breaks, why, the fix
//! with `az` commands and TOML), JSON, SARIF 2.1.0 (code scanning) or an
//! HTML page; exit 1 when a problem is an error (the environment would not
//! work), 0 when there are only warnings.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::Context as _;
use clap::{Args, ValueEnum};

use crate::{
    audit::{Audit, Located, html, sarif},
    catalog::Catalog,
    topology::Topology,
};

/// The output of `check`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(super) enum CheckFormat {
    /// For people: one block per problem, then a summary line.
    Text,
    /// One JSON document (`problems[]` with `level`, `rule`, `fix`, `az`, `toml`, places).
    Json,
    /// SARIF 2.1.0 for GitHub code scanning and Azure DevOps.
    Sarif,
    /// One self-contained HTML page.
    Html,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The topology file.
    #[arg(long, value_name = "FILE")]
    topology: PathBuf,
    /// Extra dependency catalogs (same shape as the built-in one).
    #[arg(long, value_name = "FILE")]
    catalog: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = CheckFormat::Text)]
    format: CheckFormat,
    /// Same as `--format json`.
    #[arg(long, conflicts_with = "format")]
    json: bool,
    /// Write the output to FILE instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    out: Option<PathBuf>,
}

impl CheckArgs {
    pub fn execute(&self) -> anyhow::Result<ExitCode> {
        let topology = Topology::load(&self.topology)?;
        let text = std::fs::read_to_string(&self.topology)
            .with_context(|| format!("cannot read {}", self.topology.display()))?;
        let located = Located::read(&self.topology, &text);
        let extra: Vec<&Path> = self.catalog.iter().map(PathBuf::as_path).collect();
        let catalog = Catalog::load(topology.cloud, &extra).map_err(anyhow::Error::msg)?;
        let audit = Audit::run_located(&topology, &catalog, &located);
        let format = if self.json {
            CheckFormat::Json
        } else {
            self.format
        };
        let output = match format {
            CheckFormat::Text => audit.to_string(),
            CheckFormat::Json => {
                let mut s = serde_json::to_string_pretty(&audit)?;
                s.push('\n');
                s
            }
            CheckFormat::Sarif => sarif::render(&audit, &self.topology, &sarif::root()),
            CheckFormat::Html => html::render(&audit, topology.description.as_deref()),
        };
        match &self.out {
            Some(path) => std::fs::write(path, &output).with_context(|| {
                format!(
                    "cannot write {}; check that its directory exists and is writable",
                    path.display()
                )
            })?,
            None => print!("{output}"),
        }
        Ok(if audit.ase_works() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab(file: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../lab/topologies")
            .join(file)
    }

    /// Runs `check` on `text` (written next to the lab's service tags) in
    /// `format`, and returns its exit status and output.
    fn check(dir: &Path, text: &str, format: CheckFormat) -> (ExitCode, String) {
        std::fs::copy(lab("service-tags.json"), dir.join("service-tags.json")).unwrap();
        let topology = dir.join("t.toml");
        std::fs::write(&topology, text).unwrap();
        let out = dir.join("out");
        let args = CheckArgs {
            topology,
            catalog: vec![],
            format,
            json: false,
            out: Some(out.clone()),
        };
        let code = args.execute().unwrap();
        (code, std::fs::read_to_string(out).unwrap())
    }

    #[test]
    fn warnings_do_not_change_the_exit_status_errors_do() {
        let dir = tempfile::tempdir().unwrap();
        let seed = std::fs::read_to_string(lab("seed-004-nsg.toml")).unwrap();
        let (code, text) = check(dir.path(), &seed, CheckFormat::Text);
        assert_eq!(code, ExitCode::SUCCESS, "{text}");
        assert!(text.contains("0 errors, 0 warnings"), "{text}");

        // System monitoring (12000) blocked: a warning, still exit 0.
        let start = seed
            .find("[[nsg.rule]]\nname = \"allow-monitoring\"")
            .unwrap();
        let end = start + seed[start..].find("\n\n").unwrap() + 2;
        let warned = format!("{}{}", &seed[..start], &seed[end..]);
        let (code, text) = check(dir.path(), &warned, CheckFormat::Text);
        assert_eq!(code, ExitCode::SUCCESS, "{text}");
        assert!(
            text.contains("warning[outbound/system-monitoring]"),
            "{text}"
        );
        let (code, json) = check(dir.path(), &warned, CheckFormat::Json);
        assert_eq!(code, ExitCode::SUCCESS);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["warnings"], 1);
        assert_eq!(v["errors"], 0);
        assert_eq!(v["problems"][0]["level"], "warning");
        let (_, page) = check(dir.path(), &warned, CheckFormat::Html);
        assert!(page.contains(r#"data-level="warning""#), "{page}");
        assert!(!page.contains(r#"data-level="error""#), "{page}");
        let (code, log) = check(dir.path(), &warned, CheckFormat::Sarif);
        assert_eq!(code, ExitCode::SUCCESS);
        let v: serde_json::Value = serde_json::from_str(&log).unwrap();
        assert_eq!(v["runs"][0]["results"][0]["level"], "warning");

        // The missing SQL rule is an error: exit 1, in every format.
        let broken = std::fs::read_to_string(lab("seed-004-nsg-missing-sql.toml")).unwrap();
        for format in [CheckFormat::Text, CheckFormat::Json, CheckFormat::Sarif] {
            let (code, out) = check(dir.path(), &broken, format);
            assert_eq!(code, ExitCode::FAILURE, "{out}");
        }
    }
}
