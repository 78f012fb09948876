//! `observer report`: one line per connection (both directions, every
//! observation point), problems first, counts by verdict, dependency and
//! path; `--format text|json|junit`; `--fail-on` turns findings into a
//! non-zero exit for CI.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use clap::{Args, ValueEnum};

use crate::report::{self, FailOn, Summary};

/// Output formats of the report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// For people: problems first, then counts.
    #[default]
    Text,
    /// One JSON document (fields documented in the README).
    Json,
    /// JUnit XML: one test case per connection.
    Junit,
}

impl Format {
    /// Renders `summary`; JUnit failures follow `fail` (default: leaks).
    pub fn render(self, summary: &Summary, fail: Option<&FailOn>) -> String {
        match self {
            Self::Text => report::text::render(summary),
            Self::Json => report::json::render(summary),
            Self::Junit => report::junit::render(summary, fail.unwrap_or(&FailOn::leaks())),
        }
    }
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Flow files or directories (classified by `run --topology` or `classify`).
    #[arg(value_name = "DIR", required = true)]
    inputs: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Write the report to FILE instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Exit with status 1 when any of these is found: `leak` (every leak
    /// verdict), `any` (every verdict but ok), `lost` (capture loss), `dns`
    /// (DNS problems), or verdict names, comma-separated. Also what a JUnit
    /// test case fails on (default there: `leak`).
    #[arg(long, value_name = "LIST")]
    fail_on: Option<FailOn>,
}

impl ReportArgs {
    pub fn execute(&self) -> anyhow::Result<ExitCode> {
        let (records, dns, lost) = super::classify::read_inputs(&self.inputs)?;
        let summary = Summary::build(&records, &dns, lost);
        let rendered = self.format.render(&summary, self.fail_on.as_ref());
        match &self.output {
            Some(path) => std::fs::write(path, rendered)
                .with_context(|| format!("writing the report to {}", path.display()))?,
            None => print!("{rendered}"),
        }
        if let Some(fail) = &self.fail_on {
            let failures = summary.failures(fail);
            if !failures.is_empty() {
                eprintln!("observer report: failing ({} findings):", failures.len());
                for line in &failures {
                    eprintln!("  {line}");
                }
                return Ok(ExitCode::from(1));
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
