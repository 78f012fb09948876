//! One import run, start to end: the inputs walked (restricted to the time
//! window), converted, classified (with a topology), streamed to Parquet
//! (local or `az://`, optionally Hive-partitioned), the DNS answers of a
//! capture written beside them. `observer import` and the Python wheel
//! (`observer_py.import_flow_logs`, one Spark task per blob-hour prefix)
//! both call [`run`].

use std::{collections::BTreeMap, time::Duration};

use super::{
    ImportError, Interner, Kind, Problem, Summary, Window,
    blobs::Blob,
    capture::{self, PcapOptions, Sides},
    flow_log::{BlobText, decode},
    input_files, nsg_flow_log,
    output::Output,
    vnet_flow_log,
};
use crate::{
    classify::Classifier,
    dns::{DnsAnswer, DnsTracker},
    files::{
        FileMetadata, Rows as _,
        sink::Partition,
        writer::{ROW_GROUP_ROWS, encode},
    },
    flow::FlowRecord,
    storage::Location,
};

/// What to import, from where, to where.
#[derive(Debug)]
pub struct Options<'a> {
    pub kind: Kind,
    /// Files, directories or `az://CONTAINER/PREFIX` prefixes (`-`: a
    /// capture on stdin).
    pub inputs: Vec<String>,
    pub out: Location,
    pub partition: Partition,
    pub window: Window,
    /// Classify the records (and judge a capture's DNS answers) with this.
    pub classifier: Option<&'a Classifier>,
    /// Settings of capture imports (`sides` from the classifier's
    /// topology when not set).
    pub pcap: PcapOptions,
    /// Records classified and handed to the encoder at a time.
    pub batch_rows: usize,
    /// Names the output (`flows-...-RUN_ID` before the first blob, the DNS
    /// table) and goes into the file metadata.
    pub run_id: String,
}

impl Options<'_> {
    /// A run id from the current time (`import-YYYYMMDDTHHMMSS.mmmZ`).
    pub fn run_id_now() -> String {
        format!("import-{}", chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ"))
    }

    /// The default batch size: one Parquet row group.
    pub const BATCH_ROWS: usize = ROW_GROUP_ROWS;
}

/// What a run did.
#[derive(Debug)]
pub struct Outcome {
    /// Records in, out, skipped and why; [`Summary::exit_status`].
    pub summary: Summary,
    /// Records per verdict (with a classifier).
    pub verdicts: BTreeMap<String, u64>,
    /// CPU time spent classifying.
    pub classifying: Duration,
    pub written_rows: u64,
    /// The flow files written, relative to the output.
    pub files: Vec<String>,
    /// DNS answers written (captures), in `dns-RUN_ID-000001.parquet`.
    pub dns_answers: usize,
    /// The encoder's CPU time.
    pub encoder_busy: Duration,
}

/// Runs the import. Bad input is counted and located in the summary, not
/// fatal (see [`Summary::exit_status`]); an input that cannot be listed
/// and a write failure are errors.
pub fn run(options: &Options<'_>) -> Result<Outcome, ImportError> {
    let window = options.window;
    if let (Some(s), Some(u)) = (window.since_ns, window.until_ns)
        && s >= u
    {
        return Err(ImportError::Options(
            "--since must be before --until".into(),
        ));
    }
    let classifier = options.classifier;
    let mut summary = Summary::default();
    let files = input_files(options.kind, &options.inputs, window, &mut summary)?;
    let metadata = FileMetadata {
        source: Some(options.kind.name().to_owned()),
        topology: classifier.map(|c| c.topology().name.clone()),
        ..FileMetadata::of_run(options.run_id.clone())
    };
    let mut output = Output::new(
        options.out.clone(),
        options.partition,
        metadata.clone(),
        &options.run_id,
        classifier,
        window,
        options.batch_rows,
    )?;
    let mut pcap_options = options.pcap.clone();
    if pcap_options.sides.is_none() {
        pcap_options.sides = classifier.map(|c| Sides::from_topology(c.topology()));
    }
    let mut tracker = DnsTracker::new(1 << 20, crate::dns::GRACE_NS);
    let mut answers: Vec<DnsAnswer> = Vec::new();
    if matches!(options.kind, Kind::AzureVnetFlowLog | Kind::AzureNsgFlowLog) {
        // Blobs read and parsed on several threads; their records are
        // classified and written here in input order.
        let kind = options.kind;
        let mut begun = None;
        super::blobs::parse_in_order(
            &files,
            super::blobs::parser_count(),
            |file, summary, interner, emit| {
                // Deleted since the listing, no permission: counted,
                // reported, and on.
                match file.location.read(&file.relative) {
                    Ok(bytes) => {
                        read_flow_log(kind, &file.display, &bytes, window, summary, interner, emit);
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
    let written = output.finish()?;

    if !answers.is_empty() {
        if let Some(c) = classifier {
            answers.iter_mut().for_each(|a| c.judge_dns(a));
        }
        let bytes = encode(
            &DnsAnswer::schema(),
            std::iter::once(DnsAnswer::to_batch(&answers)),
            &metadata.to_pairs(),
        )?;
        options
            .out
            .write(&format!("dns-{}-000001.parquet", options.run_id), bytes)?;
    }
    Ok(Outcome {
        summary,
        verdicts,
        classifying,
        written_rows: written.rows,
        files: written.files,
        dns_answers: answers.len(),
        encoder_busy: written.busy,
    })
}

pub(crate) fn read_flow_log(
    kind: Kind,
    file: &str,
    bytes: &[u8],
    window: Window,
    summary: &mut Summary,
    interner: &mut Interner,
    emit: &mut dyn FnMut(FlowRecord),
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
            summary.problem(Problem {
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

/// The units a distributed import schedules: the blob-hour prefixes of
/// `inputs` (`.../y=YYYY/m=MM/d=DD/h=HH`, in Azure's layout) that meet
/// `window`, each an input of its own for [`run`]; an input with files
/// outside that layout is one unit itself. Sorted, each once. Listing
/// reads names only (no blob contents).
pub fn hour_prefixes(
    kind: Kind,
    inputs: &[String],
    window: Window,
) -> Result<Vec<String>, ImportError> {
    let mut summary = Summary::default();
    let mut units = std::collections::BTreeSet::new();
    for input in inputs {
        for file in input_files(kind, std::slice::from_ref(input), window, &mut summary)? {
            units.insert(hour_prefix(&file.display).unwrap_or_else(|| input.clone()));
        }
    }
    Ok(units.into_iter().collect())
}

/// `path` up to and including its `h=HH` segment, if it has a whole
/// `y=/m=/d=/h=` run of segments.
fn hour_prefix(path: &str) -> Option<String> {
    super::blob_hour(path)?;
    let mut end = 0;
    for segment in path.split_inclusive('/') {
        end += segment.len();
        if segment.trim_end_matches('/').starts_with("h=") {
            return Some(path[..end].trim_end_matches('/').to_owned());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::hour_prefix;

    #[test]
    fn hour_prefixes_end_at_the_hour() {
        assert_eq!(
            hour_prefix("az://logs/x/y=2024/m=05/d=01/h=13/m=00/macAddress=00/PT1H.json")
                .as_deref(),
            Some("az://logs/x/y=2024/m=05/d=01/h=13")
        );
        assert_eq!(hour_prefix("/data/flows/PT1H.json"), None);
        assert_eq!(hour_prefix("/data/h=13/PT1H.json"), None);
    }
}
