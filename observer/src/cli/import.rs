//! `observer import KIND INPUT... --out DIR`: Azure VNet or NSG flow logs,
//! or pcap/pcapng captures (`-` reads one from stdin), into flow records in the observer's schema
//! (optionally classified against a topology), streamed to Parquet in a
//! local directory or `az://CONTAINER/PREFIX`, optionally partitioned by
//! day or hour. Prints what was read, written and skipped, and why.

use std::{collections::BTreeMap, path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use clap::Args;

use crate::{
    capture::InterfaceSpec,
    classify::Classifier,
    dns::{DnsAnswer, DnsTracker},
    files::{
        Rows as _,
        sink::{FlowSink, FlowWriter, Partition},
        writer::{ROW_GROUP_ROWS, encode},
    },
    flow::{FlowRecord, TableConfig, clock::thread_cpu_time},
    import::{
        self, Interner, Kind, Problem, Summary, Window,
        capture::{self, Local, PcapOptions, Sides},
        nsg_flow_log, vnet_flow_log,
    },
    storage::Location,
};

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// What the inputs are.
    #[arg(value_enum)]
    kind: Kind,
    /// Files, directories or `az://CONTAINER/PREFIX` blob prefixes (walked
    /// recursively; flow logs: `*.json`, captures: `*.pcap`, `*.pcapng`,
    /// `*.cap`, also gzipped); `-` reads one capture from stdin.
    #[arg(value_name = "INPUT", required = true)]
    inputs: Vec<String>,
    /// Output directory or `az://CONTAINER/PREFIX` (created if missing).
    #[arg(long, value_name = "DIR")]
    out: String,
    /// Output layout: all files in OUT, or Hive-style `date=YYYY-MM-DD/`
    /// (day) or `date=YYYY-MM-DD/hour=HH/` (hour) by flow start time.
    #[arg(long, value_name = "none|day|hour", default_value = "none")]
    partition: Partition,
    /// Only flows starting at or after this UTC time (2024-05-01T13:00:00Z,
    /// 2024-05-01T13 or 2024-05-01); blobs in Azure's y=/m=/d=/h= layout
    /// outside the window are not read at all.
    #[arg(long, value_name = "TIME", value_parser = import::parse_time)]
    since: Option<i64>,
    /// Only flows starting before this UTC time.
    #[arg(long, value_name = "TIME", value_parser = import::parse_time)]
    until: Option<i64>,
    /// Classify the records against this topology file.
    #[arg(long, value_name = "FILE")]
    topology: Option<PathBuf>,
    /// Extra dependency catalog (with --topology). Repeatable.
    #[arg(long, value_name = "FILE")]
    catalog: Vec<PathBuf>,
    /// pcap: the captured host's address, CIDR range or MAC address; a
    /// packet sent from one is egress. Only for captures that do not record
    /// the direction (Linux cooked captures and pcapng with `epb_flags` do);
    /// without it the topology's ASE and VNet (`--topology`), then the side
    /// that opened each connection, are taken as the captured host.
    /// Repeatable.
    #[arg(long, value_name = "ADDR|CIDR|MAC")]
    local: Vec<Local>,
    /// pcap: interface name and topology role of the capture, as
    /// `run --iface` takes them (e.g. `eth0=workload`); the name replaces
    /// the file's own (pcapng `if_name`, `ifindex N` of `tcpdump -i any`).
    #[arg(long, value_name = "NAME[=ROLE]")]
    iface: Option<InterfaceSpec>,
    /// pcap: end a flow record after this long without packets (packet time).
    #[arg(long, value_name = "SECS", default_value_t = 15.0)]
    idle_timeout: f64,
    /// pcap: emit an interim record for flows older than this.
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    active_timeout: f64,
    /// Records classified and handed to the encoder at a time (memory is
    /// bounded by this and the Parquet row group size).
    #[arg(long, value_name = "N", default_value_t = ROW_GROUP_ROWS)]
    batch_rows: usize,
}

/// Classifies and hands over full batches; remembers the first write error.
struct Batches<'a> {
    classifier: Option<&'a Classifier>,
    sink: FlowSink,
    batch: Vec<FlowRecord>,
    batch_rows: usize,
    verdicts: BTreeMap<String, u64>,
    error: Option<crate::files::WriteError>,
    /// CPU time spent in classification (for `cargo xtask bench --only import`).
    classifying: std::time::Duration,
}

impl Batches<'_> {
    fn push(&mut self, record: FlowRecord) {
        self.batch.push(record);
        if self.batch.len() >= self.batch_rows {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.error.is_some() || self.batch.is_empty() {
            self.batch.clear();
            return;
        }
        let mut batch = std::mem::replace(&mut self.batch, self.sink.batch(self.batch_rows));
        if let Some(classifier) = self.classifier {
            let started = thread_cpu_time();
            classifier.classify_all(&mut batch);
            self.classifying += thread_cpu_time() - started;
            for r in &batch {
                if let Some(v) = &r.verdict {
                    match self.verdicts.get_mut(&**v) {
                        Some(n) => *n += 1,
                        None => {
                            self.verdicts.insert(v.to_string(), 1);
                        }
                    }
                }
            }
        }
        if let Err(e) = self.sink.send(batch) {
            self.error = Some(e);
        }
    }
}

impl ImportArgs {
    pub fn execute(&self) -> anyhow::Result<ExitCode> {
        let window = Window {
            since_ns: self.since,
            until_ns: self.until,
        };
        if let (Some(s), Some(u)) = (self.since, self.until)
            && s >= u
        {
            anyhow::bail!("--since must be before --until");
        }
        let classifier = match &self.topology {
            Some(path) => Some(super::load_classifier(path, &self.catalog)?),
            None => None,
        };
        let out = Location::parse(&self.out)?;
        let mut summary = Summary::default();
        let files = import::input_files(self.kind, &self.inputs, window, &mut summary)?;

        let run_id = format!("import-{}", chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ"));
        let mut metadata = vec![
            (
                "observer.schema_version".to_owned(),
                crate::files::schema::SCHEMA_VERSION.to_owned(),
            ),
            ("observer.run_id".to_owned(), run_id.clone()),
            (
                "observer.source".to_owned(),
                match self.kind {
                    Kind::AzureVnetFlowLog => "azure-vnet-flow-log",
                    Kind::AzureNsgFlowLog => "azure-nsg-flow-log",
                    Kind::Pcap => "pcap",
                }
                .to_owned(),
            ),
        ];
        if let Some(c) = &classifier {
            metadata.push(("observer.topology".into(), c.topology().name.clone()));
        }
        let writer = FlowWriter::new(out.clone(), self.partition, &run_id, metadata.clone())?;
        let mut batches = Batches {
            classifier: classifier.as_ref(),
            sink: FlowSink::spawn(writer),
            batch: Vec::with_capacity(self.batch_rows.max(1)),
            batch_rows: self.batch_rows.max(1),
            verdicts: BTreeMap::new(),
            error: None,
            classifying: std::time::Duration::ZERO,
        };

        let pcap_options = PcapOptions {
            table: TableConfig {
                idle_timeout: std::time::Duration::from_secs_f64(self.idle_timeout),
                active_timeout: std::time::Duration::from_secs_f64(self.active_timeout),
                ..TableConfig::default()
            },
            local: self.local.clone(),
            sides: classifier
                .as_ref()
                .map(|c| Sides::from_topology(c.topology())),
            iface: self.iface.as_ref().map(|i| i.name.clone()),
            iface_role: self.iface.as_ref().and_then(|i| i.role.clone()),
            host: None,
        };
        let mut tracker = DnsTracker::new(1 << 20, crate::dns::GRACE_NS);
        let mut answers: Vec<DnsAnswer> = Vec::new();
        let mut interner = Interner::default();
        for file in &files {
            let emit = &mut |r| batches.push(r);
            match self.kind {
                Kind::AzureVnetFlowLog => vnet_flow_log::read_blob(
                    &file.display,
                    &file.location.read(&file.relative)?,
                    window,
                    &mut summary,
                    &mut interner,
                    emit,
                ),
                Kind::AzureNsgFlowLog => nsg_flow_log::read_blob(
                    &file.display,
                    &file.location.read(&file.relative)?,
                    window,
                    &mut summary,
                    &mut interner,
                    emit,
                ),
                // Streamed; one unreadable capture is reported, the rest read.
                Kind::Pcap => match capture::open_input(file) {
                    Ok(input) => capture::read_file(
                        &file.display,
                        input,
                        &pcap_options,
                        window,
                        &mut summary,
                        &mut tracker,
                        &mut answers,
                        emit,
                    ),
                    Err(e) => {
                        summary.files += 1;
                        summary.broken_files += 1;
                        summary.problem(Problem {
                            file: file.display.clone(),
                            position: "byte 0".into(),
                            message: format!("{:#}", anyhow::Error::from(e)),
                        });
                    }
                },
            }
            if batches.error.is_some() {
                break;
            }
        }
        batches.flush();
        let finished = batches.sink.finish();
        if let Some(e) = batches.error {
            return Err(e).context("writing the imported records");
        }
        let writer = finished.context("writing the imported records")?;

        if !answers.is_empty() {
            if let Some(c) = &classifier {
                answers.iter_mut().for_each(|a| c.judge_dns(a));
            }
            let bytes = encode(
                &DnsAnswer::schema(),
                std::iter::once(DnsAnswer::to_batch(&answers)),
                &metadata,
            )?;
            out.write(&format!("dns-{run_id}-000001.parquet"), bytes)?;
        }

        print!("{}", summary.render());
        for (verdict, n) in &batches.verdicts {
            println!("  verdict {verdict}: {n}");
        }
        if classifier.is_some() {
            println!(
                "classified {} record(s) in {:.3} s of CPU time",
                summary.records_out,
                batches.classifying.as_secs_f64()
            );
        }
        println!(
            "wrote {} record(s) in {} file(s) to {out}{} (encoder CPU time {:.3} s)",
            writer.written_rows(),
            writer.files().len(),
            if answers.is_empty() {
                String::new()
            } else {
                format!(" and {} DNS answer(s)", answers.len())
            },
            writer.busy().as_secs_f64()
        );
        // Bad input is reported, not fatal; but input that yielded nothing
        // while having problems is a failure.
        if summary.records_out == 0 && summary.problem_count > 0 {
            return Ok(ExitCode::from(2));
        }
        Ok(ExitCode::SUCCESS)
    }
}
