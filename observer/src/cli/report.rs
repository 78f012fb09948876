//! `observer report`: one line per connection (both directions, every
//! observation point), problems first, counts by verdict, dependency and
//! path; `--format text|json|junit|html`, written by `report::write`;
//! `--fail-on` turns findings into a non-zero exit for CI.

use std::{path::PathBuf, process::ExitCode};

use clap::{Args, ValueEnum};

use crate::report::{self, FailOn, Summary};

/// The formats of `--format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    /// For people: problems first, then counts.
    #[default]
    Text,
    /// One JSON document (fields documented in the README).
    Json,
    /// JUnit XML: one test case per connection.
    Junit,
    /// One self-contained HTML page (charts embedded; opens offline).
    Html,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Flow files or directories (classified by `run --topology` or `classify`).
    #[arg(value_name = "DIR", required = true)]
    inputs: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    format: OutputFormat,
    /// Write the report to FILE instead of standard output.
    #[arg(long, short, visible_alias = "out", value_name = "FILE")]
    output: Option<PathBuf>,
    /// The topology file the flows were classified against: the HTML
    /// report then draws its subnets, private endpoints, gateway and
    /// appliance (without it, only what the connections show).
    #[arg(long, value_name = "FILE")]
    topology: Option<PathBuf>,
    /// Exit with status 1 when any of these is found: `leak` (every leak
    /// verdict), `any` (every verdict but ok), `lost` (capture loss), `dns`
    /// (DNS problems), or verdict names, comma-separated. Also what a JUnit
    /// test case fails on (default there: `leak`).
    #[arg(long, value_name = "LIST")]
    fail_on: Option<FailOn>,
}

/// The topology names the flow files were classified against (file
/// metadata `observer.topology`; footers only), joined with `, `.
fn topology_names(inputs: &[PathBuf]) -> String {
    let mut names = std::collections::BTreeSet::new();
    for path in crate::files::reader::flow_paths(inputs).unwrap_or_default() {
        if let Some(topology) = crate::files::reader::footer_metadata(&path)
            .and_then(|m| m.topology)
            .filter(|t| !t.is_empty())
        {
            names.insert(topology);
        }
    }
    names.into_iter().collect::<Vec<_>>().join(", ")
}

impl ReportArgs {
    pub fn execute(&self) -> anyhow::Result<ExitCode> {
        let (records, dns, lost) = super::classify::read_inputs(&self.inputs)?;
        let summary = Summary::build(&records, &dns, lost);
        let topology = self
            .topology
            .as_deref()
            .map(crate::topology::Topology::load)
            .transpose()?;
        let names = topology_names(&self.inputs);
        let leaks = FailOn::leaks();
        let format = match self.format {
            OutputFormat::Text => report::Format::Text,
            OutputFormat::Json => report::Format::Json,
            OutputFormat::Junit => report::Format::Junit {
                fail: self.fail_on.as_ref().unwrap_or(&leaks),
                first: &[],
            },
            OutputFormat::Html => report::Format::Html(report::html::Context::new(
                (!names.is_empty()).then_some(names.as_str()),
                topology.as_ref(),
            )),
        };
        report::write(&summary, &format, self.output.as_deref())?;
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
