//! `observer classify`: classify recorded flows (observer Parquet) against a
//! topology, using the capture's `dns` table when present, and write them
//! with the classification columns filled.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use clap::Args;

use crate::{
    classify::{Classifier, Recorded},
    dns::{self, DnsAnswer},
    files::{ParquetFiles, check_writable, reader},
    flow::FlowRecord,
    report::{self, Summary},
};

#[derive(Debug, Args)]
pub struct ClassifyArgs {
    /// The topology file.
    #[arg(long, value_name = "FILE")]
    topology: PathBuf,
    /// Extra dependency catalog (tried before the built-in one). Repeatable.
    #[arg(long, value_name = "FILE")]
    catalog: Vec<PathBuf>,
    /// Directory for the classified files (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Flow files or directories of `flows-*.parquet`.
    #[arg(value_name = "INPUT", required = true)]
    inputs: Vec<PathBuf>,
}

impl ClassifyArgs {
    pub fn execute(&self) -> anyhow::Result<ExitCode> {
        let classifier = Classifier::load(&self.topology, &self.catalog)?;
        check_writable(&self.out)?;
        let files = reader::read_flows(&self.inputs)?;
        let recorded = Recorded::new(classifier, dns::read_recorded(&self.inputs)?);
        // The input's metadata (run, host, loss), but this version's schema
        // (older files are read, the output is written as this version's).
        let mut metadata = files
            .first()
            .map(|f| f.metadata.clone())
            .unwrap_or_default();
        metadata.topology = Some(recorded.classifier().topology_name().to_owned());
        metadata.schema_version = Some(crate::files::schema::SCHEMA_VERSION.to_owned());
        let metadata = metadata.to_pairs();
        let lost = reader::lost_packets(&files);

        let mut records: Vec<FlowRecord> = files.into_iter().flat_map(|f| f.records).collect();
        recorded.classify(&mut records, &Default::default());
        let dns = recorded.into_answers();

        let run_id = format!("classified-{}", chrono::Utc::now().format("%Y%m%dT%H%M%SZ"));
        let mut out = ParquetFiles::<FlowRecord>::new(&self.out, &run_id);
        let summary = Summary::build(&records, &dns, lost);
        for r in records {
            out.push(r);
        }
        let written = out.flush(&metadata)?;
        let mut dns_out = ParquetFiles::<DnsAnswer>::new(&self.out, &run_id);
        for a in dns {
            dns_out.push(a);
        }
        dns_out.flush(&metadata)?;
        report::write(&summary, &report::Format::Text, None)?;
        if let Some(path) = written {
            println!("\nwrote {}", path.display());
        } else {
            println!("\nno flow records in the input");
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Reads `inputs` for `report`: records, DNS answers and the capture's loss.
pub(super) fn read_inputs(
    inputs: &[PathBuf],
) -> anyhow::Result<(Vec<FlowRecord>, Vec<DnsAnswer>, u64)> {
    let files = reader::read_flows(inputs).context("reading flow files")?;
    let lost = reader::lost_packets(&files);
    let dns = dns::read_recorded(inputs)?;
    Ok((
        files.into_iter().flat_map(|f| f.records).collect(),
        dns,
        lost,
    ))
}
