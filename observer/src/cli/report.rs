//! `observer report`: counts by verdict, dependency and path, the leaking
//! flows first; `--fail-on` turns findings into a non-zero exit for CI.

use std::{path::PathBuf, process::ExitCode};

use clap::Args;

use crate::report::{FailOn, Report};

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Flow files or directories (classified by `run --topology` or `classify`).
    #[arg(value_name = "DIR", required = true)]
    inputs: Vec<PathBuf>,
    /// Exit with status 1 when any of these is found: `leak` (every leak
    /// verdict), `any` (every verdict but ok), `lost` (capture loss), `dns`
    /// (DNS problems), or verdict names, comma-separated.
    #[arg(long, value_name = "LIST")]
    fail_on: Option<FailOn>,
}

impl ReportArgs {
    pub fn execute(&self) -> anyhow::Result<ExitCode> {
        let (records, dns, lost) = super::classify::read_inputs(&self.inputs)?;
        let report = Report::build(&records, &dns, lost);
        print!("{}", report.render());
        if let Some(fail) = &self.fail_on {
            let failures = report.failures(fail);
            if !failures.is_empty() {
                eprintln!("observer report: failing: {}", failures.join("; "));
                return Ok(ExitCode::from(1));
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
