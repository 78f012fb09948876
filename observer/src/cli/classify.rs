//! `observer classify`: classify recorded flows (observer Parquet) against a
//! topology, using the capture's `dns` table when present, and write them
//! with the classification columns filled.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use clap::Args;

use crate::{
    dns::{self, DnsAnswer, DnsTracker},
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
        let classifier = super::load_classifier(&self.topology, &self.catalog)?;
        check_writable(&self.out)?;
        let files = reader::read_flows(&self.inputs)?;
        let mut dns = dns::read_recorded(&self.inputs)?;
        let mut tracker = DnsTracker::new(usize::MAX >> 1, dns::GRACE_NS);
        for answer in &mut dns {
            classifier.judge_dns(answer);
            tracker.record(answer);
        }
        let mut metadata = files
            .first()
            .map(|f| f.metadata.clone())
            .unwrap_or_default();
        metadata.topology = Some(classifier.topology().name.clone());
        let metadata = metadata.to_pairs();
        let lost = reader::lost_packets(&files);

        let mut records: Vec<FlowRecord> = files.into_iter().flat_map(|f| f.records).collect();
        for r in &mut records {
            if r.dst_name.is_none() {
                tracker.enrich(r);
            }
        }
        classifier.classify_all(&mut records);

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
pub fn read_inputs(inputs: &[PathBuf]) -> anyhow::Result<(Vec<FlowRecord>, Vec<DnsAnswer>, u64)> {
    let files = reader::read_flows(inputs).context("reading flow files")?;
    let lost = reader::lost_packets(&files);
    let dns = dns::read_recorded(inputs)?;
    Ok((
        files.into_iter().flat_map(|f| f.records).collect(),
        dns,
        lost,
    ))
}
