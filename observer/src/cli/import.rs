//! `observer import KIND INPUT... --out DIR`: Azure VNet or NSG flow logs,
//! or pcap/pcapng captures (`-` reads one from stdin), into flow records in the observer's schema
//! (optionally classified against a topology), streamed to Parquet in a
//! local directory or `az://CONTAINER/PREFIX`, optionally partitioned by
//! day or hour. Prints what was read, written and skipped, and why.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use clap::Args;

use crate::{
    capture::InterfaceSpec,
    dns::{DnsAnswer, DnsTracker},
    files::{
        Rows as _,
        sink::Partition,
        writer::{ROW_GROUP_ROWS, encode},
    },
    flow::TableConfig,
    import::{
        self, Interner, Kind, Problem, Summary, Window,
        blobs::Blob,
        capture::{self, Local, PcapOptions, Sides},
        flow_log::{BlobText, decode},
        nsg_flow_log,
        output::Output,
        vnet_flow_log,
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
    /// 2024-05-01T13 or 2024-05-01); in Azure's y=/m=/d=/h= layout only the
    /// blobs of the window's hours and of the hour after it are listed and
    /// read (an hour's blob holds the last minute of the hour before).
    #[arg(long, value_name = "TIME", value_parser = import::parse_time)]
    since: Option<i64>,
    /// Only flows starting before this UTC time (exclusive, so
    /// back-to-back windows take each tuple once).
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
        let metadata = crate::files::FileMetadata {
            source: Some(self.kind.name().to_owned()),
            topology: classifier.as_ref().map(|c| c.topology().name.clone()),
            ..crate::files::FileMetadata::of_run(run_id.clone())
        };
        let mut output = Output::new(
            out.clone(),
            self.partition,
            metadata.clone(),
            &run_id,
            classifier.as_ref(),
            window,
            self.batch_rows,
        )?;

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
        if matches!(self.kind, Kind::AzureVnetFlowLog | Kind::AzureNsgFlowLog) {
            // Blobs read and parsed on several threads; their records are
            // classified and written here in input order.
            let kind = self.kind;
            let mut begun = None;
            import::blobs::parse_in_order(
                &files,
                import::blobs::parser_count(),
                |file, summary, interner, emit| {
                    // Deleted since the listing, no permission: counted,
                    // reported, and on.
                    match file.location.read(&file.relative) {
                        Ok(bytes) => {
                            read_flow_log(
                                kind,
                                &file.display,
                                &bytes,
                                window,
                                summary,
                                interner,
                                emit,
                            );
                            true
                        }
                        Err(error) => {
                            summary.unreadable(&file.display, &error);
                            false
                        }
                    }
                },
                &mut |index, blob| match blob {
                    Blob::Record(record) => {
                        if begun != Some(index) {
                            output.begin_blob(&files[index]);
                            begun = Some(index);
                        }
                        output.push(record);
                        true
                    }
                    Blob::Done {
                        summary: part,
                        read,
                    } => {
                        if read {
                            output.end_input();
                        }
                        summary.absorb(part);
                        !(output.failed() || summary.other_kind.is_some())
                    }
                },
            );
        } else {
            // Streamed; one unreadable capture is reported, the rest read.
            for file in &files {
                match capture::open_input(file) {
                    Ok(input) => capture::read_file(
                        &file.display,
                        input,
                        &pcap_options,
                        window,
                        &mut summary,
                        &mut tracker,
                        &mut answers,
                        &mut |r| output.push(r),
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
                }
                if output.failed() {
                    break;
                }
            }
        }
        let verdicts = std::mem::take(&mut output.verdicts);
        let classifying = output.classifying;
        let written = output.finish().context("writing the imported records")?;

        if !answers.is_empty() {
            if let Some(c) = &classifier {
                answers.iter_mut().for_each(|a| c.judge_dns(a));
            }
            let bytes = encode(
                &DnsAnswer::schema(),
                std::iter::once(DnsAnswer::to_batch(&answers)),
                &metadata.to_pairs(),
            )?;
            out.write(&format!("dns-{run_id}-000001.parquet"), bytes)?;
        }

        print!("{}", summary.render());
        for (verdict, n) in &verdicts {
            println!("  verdict {verdict}: {n}");
        }
        if classifier.is_some() {
            println!(
                "classified {} record(s) in {:.3} s of CPU time",
                summary.records_out,
                classifying.as_secs_f64()
            );
        }
        println!(
            "wrote {} record(s) in {} file(s) to {out}{} (encoder CPU time {:.3} s)",
            written.rows,
            written.files.len(),
            if answers.is_empty() {
                String::new()
            } else {
                format!(" and {} DNS answer(s)", answers.len())
            },
            written.busy.as_secs_f64()
        );
        // Bad tuples are reported, not fatal; an incomplete import is
        // (see `Summary::exit_status`), with one line on stderr saying why.
        let status = summary.exit_status();
        if let Some(other) = &summary.other_kind {
            eprintln!("error: {other}");
        } else if summary.unreadable > 0 {
            eprintln!(
                "error: {} file(s) could not be read; the rest was imported (see above)",
                summary.unreadable
            );
        } else if status != 0 {
            eprintln!("error: nothing converted: every input had problems (see above)");
        }
        Ok(ExitCode::from(status))
    }
}

/// Reads one flow-log blob of `kind`: decodes it (byte-order marks) and
/// hands it to its reader.
fn read_flow_log(
    kind: Kind,
    file: &str,
    bytes: &[u8],
    window: Window,
    summary: &mut Summary,
    interner: &mut Interner,
    emit: &mut dyn FnMut(crate::flow::FlowRecord),
) {
    let text = match decode(bytes) {
        Ok((text, note)) => {
            if let Some(note) = note {
                summary.note(note, 1);
            }
            text
        }
        Err(message) => {
            summary.files += 1;
            summary.broken_files += 1;
            summary.problem(import::Problem {
                file: file.to_owned(),
                position: "1:1".into(),
                message,
            });
            return;
        }
    };
    let mut blob = BlobText::new(file, &text, window);
    match kind {
        Kind::AzureVnetFlowLog => vnet_flow_log::read_blob(&mut blob, summary, interner, emit),
        Kind::AzureNsgFlowLog => nsg_flow_log::read_blob(&mut blob, summary, interner, emit),
        Kind::Pcap => unreachable!("flow-log kinds only"),
    }
}
