//! One import run, start to end: the inputs walked (restricted to the time
//! window), converted, classified (with a topology), streamed to Parquet
//! (local or `az://`, optionally Hive-partitioned), the DNS answers of a
//! capture written beside them. `observer import` and the Python wheel
//! (`observer_py.import_flow_logs`, one Spark task per blob-hour prefix)
//! both call [`run`].

use std::{collections::BTreeMap, time::Duration};

use super::{
    ImportError, Interner, Kind, Summary, Window, input_files, nsg_flow_log,
    pcap::{self, PcapOptions},
    vnet_flow_log,
};
use crate::{
    classify::Classifier,
    dns::{DnsAnswer, DnsTracker},
    files::{
        Rows as _,
        sink::{FlowSink, FlowWriter, Partition},
        writer::{ROW_GROUP_ROWS, encode},
    },
    flow::{FlowRecord, clock::thread_cpu_time},
    storage::Location,
};

/// What to import, from where, to where.
#[derive(Debug)]
pub struct Options<'a> {
    pub kind: Kind,
    /// Files, directories or `az://CONTAINER/PREFIX` prefixes.
    pub inputs: Vec<String>,
    pub out: Location,
    pub partition: Partition,
    pub window: Window,
    /// Classify the records (and judge a capture's DNS answers) with this.
    pub classifier: Option<&'a Classifier>,
    /// Settings of `pcap` imports.
    pub pcap: PcapOptions,
    /// Records classified and handed to the encoder at a time.
    pub batch_rows: usize,
    /// Names the output files (`flows-RUN_ID-N.parquet`) and goes into
    /// their metadata; runs writing to one output need distinct ids.
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
    pub summary: Summary,
    /// Records per verdict (with a classifier).
    pub verdicts: BTreeMap<String, u64>,
    /// CPU time spent classifying.
    pub classifying: Duration,
    pub written_rows: u64,
    /// The flow files written, relative to the output.
    pub files: Vec<String>,
    /// DNS answers written (pcap imports), in `dns-RUN_ID-000001.parquet`.
    pub dns_answers: usize,
    /// The encoder's CPU time.
    pub encoder_busy: Duration,
}

/// Classifies and hands over full batches; remembers the first write error.
struct Batches<'a> {
    classifier: Option<&'a Classifier>,
    sink: FlowSink,
    batch: Vec<FlowRecord>,
    batch_rows: usize,
    verdicts: BTreeMap<String, u64>,
    error: Option<crate::files::WriteError>,
    classifying: Duration,
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

/// The file metadata of a run: schema version, run id, source, topology.
fn metadata(options: &Options<'_>) -> Vec<(String, String)> {
    let mut metadata = vec![
        (
            "observer.schema_version".to_owned(),
            crate::files::schema::SCHEMA_VERSION.to_owned(),
        ),
        ("observer.run_id".to_owned(), options.run_id.clone()),
        (
            "observer.source".to_owned(),
            match options.kind {
                Kind::AzureVnetFlowLog => "azure-vnet-flow-log",
                Kind::AzureNsgFlowLog => "azure-nsg-flow-log",
                Kind::Pcap => "pcap",
            }
            .to_owned(),
        ),
    ];
    if let Some(c) = options.classifier {
        metadata.push(("observer.topology".into(), c.topology_name().to_owned()));
    }
    metadata
}

/// Runs the import. Bad input is counted and located in the summary, not
/// fatal; unreadable inputs and write failures are errors.
pub fn run(options: &Options<'_>) -> Result<Outcome, ImportError> {
    let window = options.window;
    if let (Some(s), Some(u)) = (window.since_ns, window.until_ns)
        && s >= u
    {
        return Err(ImportError::Options(
            "--since must be before --until".into(),
        ));
    }
    let mut summary = Summary::default();
    let files = input_files(options.kind, &options.inputs, window, &mut summary)?;
    let metadata = metadata(options);
    let writer = FlowWriter::new(
        options.out.clone(),
        options.partition,
        &options.run_id,
        metadata.clone(),
    )?;
    let batch_rows = options.batch_rows.max(1);
    let mut batches = Batches {
        classifier: options.classifier,
        sink: FlowSink::spawn(writer),
        batch: Vec::with_capacity(batch_rows),
        batch_rows,
        verdicts: BTreeMap::new(),
        error: None,
        classifying: Duration::ZERO,
    };

    let mut tracker = DnsTracker::new(1 << 20, crate::dns::GRACE_NS);
    let mut answers: Vec<DnsAnswer> = Vec::new();
    let mut interner = Interner::default();
    for file in &files {
        let bytes = match file.location.read(&file.relative) {
            Ok(bytes) => bytes,
            Err(e) => {
                // Stop the encoder before giving up.
                let _ = batches.sink.finish();
                return Err(e.into());
            }
        };
        let emit = &mut |r| batches.push(r);
        match options.kind {
            Kind::AzureVnetFlowLog => vnet_flow_log::read_blob(
                &file.display,
                &bytes,
                window,
                &mut summary,
                &mut interner,
                emit,
            ),
            Kind::AzureNsgFlowLog => nsg_flow_log::read_blob(
                &file.display,
                &bytes,
                window,
                &mut summary,
                &mut interner,
                emit,
            ),
            Kind::Pcap => pcap::read_file(
                &file.display,
                &bytes,
                &options.pcap,
                window,
                &mut summary,
                &mut tracker,
                &mut answers,
                emit,
            ),
        }
        if batches.error.is_some() {
            break;
        }
    }
    batches.flush();
    let finished = batches.sink.finish();
    if let Some(e) = batches.error {
        return Err(e.into());
    }
    let writer = finished?;

    if !answers.is_empty() {
        if let Some(c) = options.classifier {
            answers.iter_mut().for_each(|a| c.judge_dns(a));
        }
        let bytes = encode(
            &DnsAnswer::schema(),
            std::iter::once(DnsAnswer::to_batch(&answers)),
            &metadata,
        )?;
        options
            .out
            .write(&format!("dns-{}-000001.parquet", options.run_id), bytes)?;
    }
    Ok(Outcome {
        summary,
        verdicts: batches.verdicts,
        classifying: batches.classifying,
        written_rows: writer.written_rows(),
        files: writer.files().to_vec(),
        dns_answers: answers.len(),
        encoder_busy: writer.busy(),
    })
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
