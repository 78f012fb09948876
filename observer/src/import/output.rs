//! Where imported records go: classified in batches (with `--topology`),
//! then written as Parquet by encoder threads of their own (parsing and
//! classification overlap with encoding), through one
//! [`FlowWriter`] per output name.
//!
//! Encoders. One per CPU the process may run on (its affinity mask, so
//! `taskset -c 0` gives one), each a thread with its own queue. A file is
//! encoded whole by one encoder: the output names are assigned to the
//! encoders in turn as they are opened, and every batch of a name goes to
//! the encoder that opened it, so each file's bytes are those a single
//! encoder would write, whatever the number of encoders. Memory: each
//! encoder holds at most one queued batch and the one it encodes.
//!
//! Names. A flow-log blob's records are written as
//! `flows-{HOUR}-{BLOB}-{NNNNNN}.parquet` (in the `--partition` directory
//! of their start time): `HOUR` is the UTC hour of the records' start
//! (`20240501T08`), `BLOB` names the input blob ([`blob_tag`]: its blob
//! hour, MAC address and a hash of its path from Azure's
//! `flowLogResourceID=`/`resourceId=` segment on, so the blob read from its
//! container and from a local copy of the layout get one name). Importing
//! the same blob again writes the same names, so the new files replace the
//! old ones (a local rename, a Blob put) instead of adding copies; a
//! blob's records of two hours (the blob of hour h holds the last minute
//! of hour h-1) are two files, so back-to-back hourly windows write
//! different files. A window that cuts an hour (`--since 08:30`) adds the
//! cut to the hour (`20240501T08-s1800-3600`, seconds into the hour), so
//! two halves of an hour do not replace each other. Other inputs (packet
//! captures) are written under the run's name, as before.

use std::{
    collections::{BTreeMap, HashMap},
    fmt::Write as _,
    hash::Hasher as _,
    sync::mpsc,
    thread,
};

use super::{InputFile, Window, blob_hour};
use crate::{
    classify::Classifier,
    files::{
        FileMetadata, WriteError,
        sink::{FlowWriter, Partition},
    },
    flow::{FlowRecord, clock::thread_cpu_time},
    storage::Location,
};

const HOUR_NS: i64 = 3_600_000_000_000;

/// How the current input's records are named.
#[derive(Clone, Debug)]
enum Naming {
    /// Under one name (the run id): packet captures.
    Run(String),
    /// By input blob and record hour.
    Blob { tag: String, display: String },
}

/// Records of one output name waiting for their batch to fill.
#[derive(Debug)]
struct Pending {
    /// The hour (since the epoch) of the records, or 0 under [`Naming::Run`].
    hour: i64,
    stem: String,
    records: Vec<FlowRecord>,
    /// When a record was last added (a count of pushes), to close the
    /// least recently used name first.
    used: u64,
}

/// Hours of one input open at a time. An Azure blob holds records of two
/// hours; one that holds more (a concatenation, a hand-made file) closes
/// the least recently used hour's file to open another, so memory stays
/// bounded; records of that hour met later go to a further part
/// (`...-part2`), named in the order met, so the same input still gives
/// the same names.
const OPEN_HOURS: usize = 4;

enum Message {
    Open {
        stem: String,
        input: Option<String>,
    },
    Batch {
        stem: String,
        records: Vec<FlowRecord>,
    },
    Close {
        stem: String,
    },
}

/// What the encoders wrote.
#[derive(Debug, Default)]
pub struct Written {
    pub rows: u64,
    /// Relative names of the files written, sorted.
    pub files: Vec<String>,
    /// The encoder threads' CPU time, summed.
    pub busy: std::time::Duration,
    /// How many encoder threads wrote.
    pub encoders: usize,
}

impl Written {
    fn add(&mut self, writer: &FlowWriter) {
        self.rows += writer.written_rows();
        self.files.extend_from_slice(writer.files());
        self.busy += writer.busy();
    }

    fn merge(&mut self, other: Self) {
        self.rows += other.rows;
        self.files.extend(other.files);
        self.busy += other.busy;
        self.encoders += other.encoders;
    }
}

/// One encoder thread and its queue.
#[derive(Debug)]
struct Encoder {
    sender: Option<mpsc::SyncSender<Message>>,
    thread: Option<thread::JoinHandle<Result<Written, WriteError>>>,
}

/// Encoder threads to start: the CPUs this process may run on.
fn encoder_count() -> usize {
    thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// Classifies and hands over full batches; remembers the first write error.
#[derive(Debug)]
pub struct Output<'a> {
    classifier: Option<&'a Classifier>,
    window: Window,
    batch_rows: usize,
    naming: Naming,
    pending: Vec<Pending>,
    /// Per hour of the current input: how many files were opened for it.
    parts: BTreeMap<i64, u32>,
    pushes: u64,
    encoders: Vec<Encoder>,
    /// The encoder of each open name.
    routes: HashMap<String, usize>,
    /// The encoder the next name opened goes to.
    next_encoder: usize,
    /// Emptied batch vectors coming back from the encoders.
    spares: mpsc::Receiver<Vec<FlowRecord>>,
    error: Option<WriteError>,
    /// Records by verdict, when classified.
    pub verdicts: BTreeMap<String, u64>,
    /// CPU time spent in classification (for `cargo xtask bench --only import`).
    pub classifying: std::time::Duration,
}

impl<'a> Output<'a> {
    /// Starts the encoder writing to `out`; records are named after the
    /// run (`run_id`) until [`Output::begin_blob`].
    pub fn new(
        out: Location,
        partition: Partition,
        metadata: FileMetadata,
        run_id: &str,
        classifier: Option<&'a Classifier>,
        window: Window,
        batch_rows: usize,
    ) -> Result<Self, WriteError> {
        let config = (out, partition, metadata);
        Self::start(
            config,
            run_id,
            classifier,
            window,
            batch_rows,
            encoder_count(),
        )
    }

    /// [`Output::new`] with `count` encoder threads.
    fn start(
        (out, partition, metadata): (Location, Partition, FileMetadata),
        run_id: &str,
        classifier: Option<&'a Classifier>,
        window: Window,
        batch_rows: usize,
        count: usize,
    ) -> Result<Self, WriteError> {
        if let Some(dir) = out.local_path() {
            crate::files::check_writable(dir)?;
        }
        let count = count.max(1);
        let (give_back, spares) = mpsc::sync_channel::<Vec<FlowRecord>>(count);
        let encoders = (0..count)
            .map(|i| {
                let (sender, receiver) = mpsc::sync_channel::<Message>(1);
                let (out, metadata, give_back) = (out.clone(), metadata.clone(), give_back.clone());
                let thread = thread::Builder::new()
                    .name(format!("parquet-encode-{i}"))
                    .spawn(move || encode(&out, partition, &metadata, &receiver, &give_back))
                    .expect("spawning an encoder thread");
                Encoder {
                    sender: Some(sender),
                    thread: Some(thread),
                }
            })
            .collect();
        Ok(Self {
            classifier,
            window,
            batch_rows: batch_rows.max(1),
            naming: Naming::Run(run_id.to_owned()),
            pending: Vec::new(),
            parts: BTreeMap::new(),
            pushes: 0,
            encoders,
            routes: HashMap::new(),
            next_encoder: 0,
            spares,
            error: None,
            verdicts: BTreeMap::new(),
            classifying: std::time::Duration::ZERO,
        })
    }

    /// The first write error, if any (the import stops reading).
    pub fn failed(&self) -> bool {
        self.error.is_some()
    }

    /// Records from now on come from `file` and are named after it.
    pub fn begin_blob(&mut self, file: &InputFile) {
        self.end_input();
        self.naming = Naming::Blob {
            tag: blob_tag(file),
            display: file.display.clone(),
        };
    }

    /// Flushes the current input's records and closes its files.
    pub fn end_input(&mut self) {
        for index in 0..self.pending.len() {
            self.flush(index, false);
        }
        for pending in std::mem::take(&mut self.pending) {
            self.send(Message::Close { stem: pending.stem });
        }
        self.parts.clear();
    }

    pub fn push(&mut self, record: FlowRecord) {
        let hour = match self.naming {
            Naming::Run(_) => 0,
            Naming::Blob { .. } => record.start_ns.div_euclid(HOUR_NS),
        };
        let index = match self.pending.iter().position(|p| p.hour == hour) {
            Some(i) => i,
            None => {
                if self.pending.len() >= OPEN_HOURS {
                    self.close_least_used();
                }
                self.open(hour)
            }
        };
        self.pushes += 1;
        let pending = &mut self.pending[index];
        pending.used = self.pushes;
        pending.records.push(record);
        if pending.records.len() >= self.batch_rows {
            self.flush(index, true);
        }
    }

    fn close_least_used(&mut self) {
        let Some(index) = (0..self.pending.len()).min_by_key(|&i| self.pending[i].used) else {
            return;
        };
        self.flush(index, false);
        let closed = self.pending.swap_remove(index);
        self.send(Message::Close { stem: closed.stem });
    }

    /// A name for the records of `hour` of the current input.
    fn open(&mut self, hour: i64) -> usize {
        let (stem, input) = match &self.naming {
            Naming::Run(run_id) => (run_id.clone(), None),
            Naming::Blob { tag, display } => {
                let part = self.parts.entry(hour).or_default();
                *part += 1;
                let part = match *part {
                    1 => String::new(),
                    n => format!("-part{n}"),
                };
                (
                    format!("{}{part}-{tag}", hour_name(hour, self.window)),
                    Some(display.clone()),
                )
            }
        };
        self.send(Message::Open {
            stem: stem.clone(),
            input,
        });
        let records = self.fresh();
        self.pending.push(Pending {
            hour,
            stem,
            records,
            used: self.pushes,
        });
        self.pending.len() - 1
    }

    /// An empty vector for a batch: one the encoder gave back, else a small new one.
    fn fresh(&self) -> Vec<FlowRecord> {
        self.spares
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(self.batch_rows.min(1024)))
    }

    /// Classifies the pending records of `index` and hands them to the
    /// encoder; `refill`: with a vector for the next ones.
    fn flush(&mut self, index: usize, refill: bool) {
        if self.pending[index].records.is_empty() {
            return;
        }
        if self.error.is_some() {
            self.pending[index].records.clear();
            return;
        }
        let next = if refill { self.fresh() } else { Vec::new() };
        let mut batch = std::mem::replace(&mut self.pending[index].records, next);
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
        let stem = self.pending[index].stem.clone();
        self.send(Message::Batch {
            stem,
            records: batch,
        });
    }

    /// Hands `message` to the encoder of its name (a name being opened
    /// gets the next encoder in turn).
    fn send(&mut self, message: Message) {
        if self.error.is_some() {
            return;
        }
        let index = match &message {
            Message::Open { stem, .. } => {
                let index = self.next_encoder;
                self.next_encoder = (index + 1) % self.encoders.len();
                self.routes.insert(stem.clone(), index);
                index
            }
            Message::Batch { stem, .. } => self.routes[stem],
            Message::Close { stem } => self.routes.remove(stem).expect("opened before closed"),
        };
        let sent = self.encoders[index]
            .sender
            .as_ref()
            .map(|s| s.send(message));
        if !matches!(sent, Some(Ok(()))) {
            // An encoder stopped: its error says why.
            self.error = Some(match self.join() {
                Err(e) => e,
                Ok(_) => stopped(),
            });
        }
    }

    /// Stops every encoder (each closes what it has open) and waits for
    /// them; the first error, else what they wrote together.
    fn join(&mut self) -> Result<Written, WriteError> {
        for encoder in &mut self.encoders {
            encoder.sender = None;
        }
        let mut written = Written::default();
        let mut error = None;
        let mut joined = 0;
        for encoder in &mut self.encoders {
            let Some(thread) = encoder.thread.take() else {
                continue;
            };
            joined += 1;
            let result = thread.join().unwrap_or_else(|_| {
                Err(WriteError::Io {
                    path: "<encoder>".into(),
                    source: std::io::Error::other("an encoder thread panicked"),
                })
            });
            match result {
                Ok(part) => written.merge(part),
                Err(e) => {
                    error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = error {
            return Err(e);
        }
        if joined == 0 {
            return Err(stopped());
        }
        written.files.sort();
        Ok(written)
    }

    /// Writes what is pending, closes every file and waits for the encoder.
    pub fn finish(mut self) -> Result<Written, WriteError> {
        self.end_input();
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.join()
    }
}

impl Drop for Output<'_> {
    /// Leaves no file half-written when an import ends early: the encoder
    /// closes what it has.
    fn drop(&mut self) {
        if self.encoders.iter().any(|e| e.thread.is_some()) {
            let _ = self.join();
        }
    }
}

fn stopped() -> WriteError {
    WriteError::Io {
        path: "<encoder>".into(),
        source: std::io::Error::other("the encoder already stopped"),
    }
}

/// An encoder thread: one writer per open name of its own; files closed
/// when their input ends, the rest at the end, in name order.
fn encode(
    out: &Location,
    partition: Partition,
    metadata: &FileMetadata,
    receiver: &mpsc::Receiver<Message>,
    give_back: &mpsc::SyncSender<Vec<FlowRecord>>,
) -> Result<Written, WriteError> {
    let mut open: BTreeMap<String, FlowWriter> = BTreeMap::new();
    let mut written = Written {
        encoders: 1,
        ..Written::default()
    };
    let result = (|| {
        for message in receiver {
            match message {
                Message::Open { stem, input } => {
                    let metadata = FileMetadata {
                        input,
                        ..metadata.clone()
                    };
                    let writer =
                        FlowWriter::new(out.clone(), partition, &stem, metadata.to_pairs())?;
                    open.insert(stem, writer);
                }
                Message::Batch { stem, records } => {
                    let writer = open.get_mut(&stem).expect("opened before its batches");
                    writer.push(records)?;
                    if let Some(spare) = writer.take_spare() {
                        // Full when the producer has not taken the last one: drop it.
                        let _ = give_back.try_send(spare);
                    }
                }
                Message::Close { stem } => {
                    if let Some(writer) = open.remove(&stem) {
                        let mut writer = writer.finish()?;
                        written.add(&writer);
                        if let Some(spare) = writer.take_spare() {
                            let _ = give_back.try_send(spare);
                        }
                    }
                }
            }
        }
        Ok(())
    })();
    // Close what is open, also after an error, so no temporary file stays.
    for (_, writer) in std::mem::take(&mut open) {
        match writer.finish() {
            Ok(writer) => written.add(&writer),
            Err(e) if result.is_ok() => return Err(e),
            Err(_) => {}
        }
    }
    result.map(|()| written)
}

/// The record hour's part of a name: `20240501T08`, with the part of the
/// hour the window keeps when it cuts the hour (`-s1800-3600`, seconds
/// into the hour; nanoseconds when not whole seconds).
fn hour_name(hour: i64, window: Window) -> String {
    let start = hour * HOUR_NS;
    let end = start + HOUR_NS;
    let from = window.since_ns.map_or(start, |s| s.clamp(start, end));
    let to = window.until_ns.map_or(end, |u| u.clamp(start, end));
    let time = chrono::DateTime::from_timestamp_nanos(start);
    let mut name = time.format("%Y%m%dT%H").to_string();
    if (from, to) != (start, end) {
        let offset = |t: i64| {
            let ns = t - start;
            if ns % 1_000_000_000 == 0 {
                (ns / 1_000_000_000).to_string()
            } else {
                format!("{ns}ns")
            }
        };
        let _ = write!(name, "-s{}-{}", offset(from), offset(to));
    }
    name
}

/// An input blob's part of its output names: the blob hour and MAC address
/// of Azure's layout (or the file name), and a hash (FNV-1a, 64 bits) of
/// the blob's identity: its path from the `flowLogResourceID=` or
/// `resourceId=` segment on when it has one (the same in the container
/// and in a local copy of the layout), else its absolute path or URL.
pub fn blob_tag(file: &InputFile) -> String {
    let identity = identity(file);
    let mut hasher = fnv::FnvHasher::default();
    hasher.write(identity.as_bytes());
    let mut tag = String::new();
    if let Some((start, _)) = blob_hour(&identity) {
        let time = chrono::DateTime::from_timestamp_nanos(start);
        let _ = write!(tag, "b{}-", time.format("%Y%m%dT%H"));
    }
    let mac = identity
        .split('/')
        .find_map(|s| s.strip_prefix("macAddress="));
    let name = mac.unwrap_or_else(|| {
        let last = identity.rsplit('/').next().unwrap_or_default();
        last.rsplit_once('.').map_or(last, |(stem, _)| stem)
    });
    tag.extend(name.chars().take(40).map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        }
    }));
    let _ = write!(tag, "-{:016x}", hasher.finish());
    tag
}

fn identity(file: &InputFile) -> String {
    let display = &file.display;
    let mut at = 0;
    for segment in display.split('/') {
        if segment.to_ascii_lowercase().ends_with("resourceid=") {
            return display[at..].to_owned();
        }
        at += segment.len() + 1;
    }
    match &file.location {
        Location::Local(root) => {
            let path = if file.relative.is_empty() {
                root.clone()
            } else {
                root.join(&file.relative)
            };
            std::fs::canonicalize(&path)
                .unwrap_or(path)
                .to_string_lossy()
                .into_owned()
        }
        Location::Blob(_) => display.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::parse_time;

    fn input(location: &str, relative: &str) -> InputFile {
        InputFile {
            location: Location::Local(location.into()),
            relative: relative.into(),
            display: if relative.is_empty() {
                location.into()
            } else {
                format!("{location}/{relative}")
            },
        }
    }

    #[test]
    fn a_blob_is_named_alike_in_its_container_and_in_a_local_copy() {
        let layout = "flowLogResourceID=/SUBSCRIPTIONS/S/RESOURCEGROUPS/NETWORKWATCHERRG/PROVIDERS/MICROSOFT.NETWORK/NETWORKWATCHERS/NW/FLOWLOGS/F/y=2024/m=05/d=01/h=09/m=00/macAddress=00224871C205/PT1H.json";
        let local = input("/tmp/copy", layout);
        let tag = blob_tag(&local);
        assert!(
            tag.starts_with("b20240501T09-00224871C205-") && tag.len() == 26 + 16,
            "{tag}"
        );
        let mut in_container = input("/elsewhere", layout);
        in_container.display = format!("az://insights-logs-flowlogflowevent/{layout}");
        assert_eq!(blob_tag(&in_container), tag);
        let other_hour = input("/tmp/copy", &layout.replace("h=09", "h=10"));
        assert_ne!(blob_tag(&other_hour), tag);
        // Outside the layout: the file's own name and path.
        let plain = blob_tag(&input("/tmp/x", "flow logs/PT1H.json"));
        assert!(plain.starts_with("PT1H-"), "{plain}");
        assert_ne!(plain, blob_tag(&input("/tmp/y", "flow logs/PT1H.json")));
    }

    #[test]
    fn a_blob_of_many_hours_keeps_few_files_open_and_names_parts_in_order() {
        use crate::files::schema::tests::sample;
        let dir = tempfile::tempdir().unwrap();
        let blob = input("/logs", "many-hours.json");
        let write = || {
            let mut output = Output::new(
                Location::Local(dir.path().to_owned()),
                Partition::None,
                FileMetadata::default(),
                "run",
                None,
                Window::default(),
                1000,
            )
            .unwrap();
            output.begin_blob(&blob);
            // Hours 0..6, then hour 0 again: six hours do not fit in
            // four open files; hour 0 was closed and gets a second part.
            let base = parse_time("2024-05-01").unwrap();
            for (i, h) in [0, 1, 2, 3, 4, 5, 0].into_iter().enumerate() {
                let mut r = sample(i as u16);
                r.start_ns = base + h * HOUR_NS;
                output.push(r);
                assert!(output.pending.len() <= OPEN_HOURS);
            }
            let mut files = output.finish().unwrap().files;
            files.sort();
            files
        };
        let files = write();
        let tag = blob_tag(&blob);
        assert_eq!(files.len(), 7, "{files:?}");
        assert!(files.contains(&format!("flows-20240501T00-{tag}-000001.parquet")));
        assert!(files.contains(&format!("flows-20240501T00-part2-{tag}-000001.parquet")));
        assert_eq!(write(), files, "the same names again");
        let read = crate::files::read_flows(&[dir.path().to_owned()]).unwrap();
        assert_eq!(read.iter().map(|f| f.records.len()).sum::<usize>(), 7);
    }

    #[test]
    fn hour_names_say_when_a_window_cuts_the_hour() {
        let at = |t: &str| parse_time(t).unwrap();
        let hour = at("2024-05-01T08").div_euclid(HOUR_NS);
        let whole = Window {
            since_ns: Some(at("2024-05-01T08")),
            until_ns: Some(at("2024-05-01T09")),
        };
        assert_eq!(hour_name(hour, whole), "20240501T08");
        assert_eq!(hour_name(hour, Window::default()), "20240501T08");
        let half = Window {
            since_ns: Some(at("2024-05-01T08:30:00Z")),
            until_ns: None,
        };
        assert_eq!(hour_name(hour, half), "20240501T08-s1800-3600");
        let odd = Window {
            since_ns: None,
            until_ns: Some(at("2024-05-01T08:00:00.5Z")),
        };
        assert_eq!(hour_name(hour, odd), "20240501T08-s0-500000000ns");
    }

    #[test]
    fn the_same_blob_written_twice_gives_the_same_files() {
        use crate::files::schema::tests::sample;
        let dir = tempfile::tempdir().unwrap();
        let blob = input(
            "/logs",
            "resourceId=/S/y=2024/m=05/d=01/h=09/m=00/macAddress=AB/PT1H.json",
        );
        let write = || {
            let mut output = Output::new(
                Location::Local(dir.path().to_owned()),
                Partition::Hour,
                FileMetadata::default(),
                "run",
                None,
                Window::default(),
                2,
            )
            .unwrap();
            output.begin_blob(&blob);
            // The last minute of hour 08 and three records of hour 09.
            for (i, t) in ["08:59:49", "09:00:03", "09:10:00", "09:59:00"]
                .iter()
                .enumerate()
            {
                let mut r = sample(i as u16);
                r.start_ns = parse_time(&format!("2024-05-01T{t}Z")).unwrap();
                output.push(r);
            }
            output.end_input();
            let mut files = output.finish().unwrap().files;
            files.sort();
            files
        };
        let first = write();
        let tag = blob_tag(&blob);
        assert_eq!(
            first,
            [
                format!("date=2024-05-01/hour=08/flows-20240501T08-{tag}-000001.parquet"),
                format!("date=2024-05-01/hour=09/flows-20240501T09-{tag}-000001.parquet"),
            ]
        );
        assert_eq!(write(), first);
        let read = crate::files::read_flows(&[dir.path().to_owned()]).unwrap();
        assert_eq!(read.iter().map(|f| f.records.len()).sum::<usize>(), 4);
    }

    /// Several encoders write the very bytes one encoder writes: each file
    /// is encoded whole by one of them, whichever it is.
    #[test]
    fn several_encoders_write_the_files_one_encoder_writes() {
        use crate::files::schema::tests::sample;
        let base = parse_time("2024-05-01T09").unwrap();
        let write = |encoders: usize| {
            let dir = tempfile::tempdir().unwrap();
            let mut output = Output::start(
                (
                    Location::Local(dir.path().to_owned()),
                    Partition::None,
                    FileMetadata::default(),
                ),
                "run",
                None,
                Window::default(),
                7,
                encoders,
            )
            .unwrap();
            for blob in 0..5u16 {
                output.begin_blob(&input("/logs", &format!("PT1H-{blob}.json")));
                // 20 records a blob in batches of 7, over two hours.
                for i in 0..20u16 {
                    let mut r = sample(blob * 100 + i);
                    r.start_ns = base + i64::from(i % 2) * HOUR_NS + i64::from(i);
                    output.push(r);
                }
            }
            let written = output.finish().unwrap();
            assert_eq!((written.rows, written.encoders), (100, encoders));
            let mut files = written.files.clone();
            files.sort();
            assert_eq!(files, written.files, "names come sorted");
            let bytes: Vec<(String, Vec<u8>)> = files
                .iter()
                .map(|f| (f.clone(), std::fs::read(dir.path().join(f)).unwrap()))
                .collect();
            (bytes, dir)
        };
        let (one, _a) = write(1);
        let (three, _b) = write(3);
        assert_eq!(one.len(), 10);
        assert!(one == three, "three encoders wrote other bytes than one");
    }
}
