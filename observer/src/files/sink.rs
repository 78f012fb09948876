//! Streaming flow output for `import` and `classify`: records arrive in
//! batches and leave as Parquet row groups, so memory is bounded by row
//! groups (times open partitions), not by the input. Files go to a local
//! directory or a blob prefix ([`Location`]), optionally in Hive-style
//! partitions (`date=YYYY-MM-DD/hour=HH/`, by each record's start time),
//! each file complete or absent: locally a temporary file renamed when
//! closed, in Blob Storage one put of the finished file.
//!
//! Encoding runs on a thread of its own ([`FlowSink::spawn`]), so the
//! caller's parsing and classification overlap with Arrow conversion,
//! compression and I/O.

use std::{
    collections::HashMap,
    fs::{self, File},
    io::{self, BufWriter, Write},
    path::PathBuf,
    sync::mpsc,
    thread,
};

use arrow::array::RecordBatch;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;

use super::{
    schema,
    writer::{ENCODE_ROWS, ROW_GROUP_ROWS, WriteError, properties},
};
use crate::{
    flow::{FlowRecord, clock::thread_cpu_time},
    storage::Location,
};

/// Rows per file before it is closed and the next one opened (8 row groups):
/// bounds what a blob upload holds in memory.
pub const FILE_ROWS: usize = 8 * ROW_GROUP_ROWS;

/// How output files are laid out (`--partition none|day|hour`).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    strum::EnumString,
    strum::VariantNames,
    strum::VariantArray,
)]
#[strum(
    serialize_all = "lowercase",
    parse_err_ty = String,
    parse_err_fn = crate::vocabulary::unknown::<Self>
)]
pub enum Partition {
    /// All files in the output directory.
    #[default]
    None,
    /// `date=YYYY-MM-DD/` by start time (UTC).
    Day,
    /// `date=YYYY-MM-DD/hour=HH/` by start time (UTC).
    Hour,
}

impl crate::vocabulary::Vocabulary for Partition {
    const WHAT: &'static str = "partitioning";
}

impl Partition {
    /// The directory (relative, `/`-terminated, empty for none) of a record
    /// starting at `start_ns`.
    pub fn dir_of(self, start_ns: i64) -> String {
        if self == Self::None {
            return String::new();
        }
        let secs = start_ns.div_euclid(1_000_000_000);
        let time = chrono::DateTime::from_timestamp(secs, 0).unwrap_or_default();
        match self {
            Self::None => String::new(),
            Self::Day => format!("date={}/", time.format("%Y-%m-%d")),
            Self::Hour => format!(
                "date={}/hour={}/",
                time.format("%Y-%m-%d"),
                time.format("%H")
            ),
        }
    }

    /// The partition key: equal for records of one directory.
    fn key(self, start_ns: i64) -> i64 {
        let hour = start_ns.div_euclid(3_600_000_000_000);
        match self {
            Self::None => 0,
            Self::Day => hour.div_euclid(24),
            Self::Hour => hour,
        }
    }
}

/// Where an open file's bytes go until it is closed.
enum Target {
    Local { tmp: PathBuf, path: PathBuf },
    Blob { relative: String },
}

enum Sink {
    File(BufWriter<File>),
    Memory(Vec<u8>),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::File(f) => f.write(buf),
            Self::Memory(m) => m.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::File(f) => f.flush(),
            Self::Memory(m) => m.flush(),
        }
    }
}

struct OpenFile {
    writer: ArrowWriter<Sink>,
    target: Target,
    rows: usize,
    pending: Vec<FlowRecord>,
}

/// Writes flow records as partitioned Parquet files (synchronously; see
/// [`FlowSink::spawn`] for the threaded form).
pub struct FlowWriter {
    out: Location,
    partition: Partition,
    run_id: String,
    metadata: Vec<(String, String)>,
    open: HashMap<i64, (String, OpenFile)>,
    sequence: u32,
    written_rows: u64,
    files: Vec<String>,
    busy: std::time::Duration,
    /// An emptied batch vector, handed back for reuse by [`FlowWriter::take_spare`].
    spare: Option<Vec<FlowRecord>>,
}

impl std::fmt::Debug for FlowWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowWriter")
            .field("out", &self.out)
            .field("partition", &self.partition)
            .field("open", &self.open.len())
            .field("written_rows", &self.written_rows)
            .finish()
    }
}

fn write_error(out: &Location, relative: &str, source: impl std::fmt::Display) -> WriteError {
    WriteError::Io {
        path: PathBuf::from(format!(
            "{}/{relative}",
            out.to_string().trim_end_matches('/')
        )),
        source: io::Error::other(source.to_string()),
    }
}

impl FlowWriter {
    pub fn new(
        out: Location,
        partition: Partition,
        run_id: &str,
        metadata: Vec<(String, String)>,
    ) -> Result<Self, WriteError> {
        if let Some(dir) = out.local_path() {
            super::check_writable(dir)?;
        }
        Ok(Self {
            out,
            partition,
            run_id: run_id.to_owned(),
            metadata,
            open: HashMap::new(),
            sequence: 0,
            written_rows: 0,
            files: Vec::new(),
            busy: std::time::Duration::ZERO,
            spare: None,
        })
    }

    pub fn written_rows(&self) -> u64 {
        self.written_rows
    }

    /// Relative names of the files written, in the order they were closed.
    pub fn files(&self) -> &[String] {
        &self.files
    }

    /// CPU time spent converting, encoding and writing (the encoder's busy
    /// time; its thread's CPU time, so a shared CPU does not inflate it).
    pub fn busy(&self) -> std::time::Duration {
        self.busy
    }

    /// An empty vector with the capacity of a batch pushed earlier, if one
    /// is free: the producer fills it instead of allocating (and faulting
    /// in) a fresh one per batch.
    pub fn take_spare(&mut self) -> Option<Vec<FlowRecord>> {
        self.spare.take()
    }

    /// Adds records; full row groups are encoded, full files closed.
    pub fn push(&mut self, records: Vec<FlowRecord>) -> Result<(), WriteError> {
        let started = thread_cpu_time();
        let result = self.push_timed(records);
        self.busy += thread_cpu_time() - started;
        result
    }

    fn push_timed(&mut self, records: Vec<FlowRecord>) -> Result<(), WriteError> {
        if self.partition == Partition::None {
            return self.push_to(0, String::new(), records);
        }
        let mut groups: std::collections::BTreeMap<i64, Vec<FlowRecord>> = Default::default();
        for record in records {
            groups
                .entry(self.partition.key(record.start_ns))
                .or_default()
                .push(record);
        }
        for (key, group) in groups {
            let dir = self.partition.dir_of(group[0].start_ns);
            self.push_to(key, dir, group)?;
        }
        Ok(())
    }

    fn push_to(
        &mut self,
        key: i64,
        dir: String,
        mut records: Vec<FlowRecord>,
    ) -> Result<(), WriteError> {
        while !records.is_empty() {
            if !self.open.contains_key(&key) {
                let file = self.open_file(&dir)?;
                self.open.insert(key, (dir.clone(), file));
            }
            let (_, file) = self.open.get_mut(&key).expect("just opened");
            let room = FILE_ROWS - file.rows - file.pending.len();
            let rest = if records.len() > room {
                records.split_off(room)
            } else {
                Vec::new()
            };
            if file.pending.is_empty() {
                // The common case: the batch becomes the pending rows
                // without a copy, and the emptied vector is kept for reuse.
                std::mem::swap(&mut file.pending, &mut records);
                if records.capacity() > 0 && self.spare.is_none() {
                    self.spare = Some(records);
                }
            } else {
                file.pending.append(&mut records);
            }
            records = rest;
            if file.pending.len() >= ROW_GROUP_ROWS {
                self.encode(key)?;
            }
            let (_, file) = self.open.get_mut(&key).expect("open");
            if file.rows + file.pending.len() >= FILE_ROWS {
                self.close(key)?;
            }
        }
        Ok(())
    }

    fn open_file(&mut self, dir: &str) -> Result<OpenFile, WriteError> {
        self.sequence += 1;
        let name = format!("{dir}flows-{}-{:06}.parquet", self.run_id, self.sequence);
        let (sink, target) = match &self.out {
            Location::Local(root) => {
                let path = root.join(&name);
                let parent = path.parent().expect("a file name").to_owned();
                fs::create_dir_all(&parent).map_err(|source| WriteError::Directory {
                    dir: parent.clone(),
                    source,
                })?;
                let file_name = path.file_name().expect("named").to_string_lossy();
                let tmp = parent.join(format!(".{file_name}.tmp"));
                let file = File::create(&tmp).map_err(|source| WriteError::Io {
                    path: tmp.clone(),
                    source,
                })?;
                (
                    Sink::File(BufWriter::with_capacity(1 << 20, file)),
                    Target::Local { tmp, path },
                )
            }
            Location::Blob(_) => (
                Sink::Memory(Vec::with_capacity(8 << 20)),
                Target::Blob { relative: name },
            ),
        };
        let writer = ArrowWriter::try_new(
            sink,
            schema::flow_schema(),
            Some(properties(&self.metadata)),
        )
        .map_err(|e| write_error(&self.out, dir, e))?;
        Ok(OpenFile {
            writer,
            target,
            rows: 0,
            pending: Vec::new(),
        })
    }

    /// Encodes the pending rows of one open file.
    fn encode(&mut self, key: i64) -> Result<(), WriteError> {
        let (dir, file) = self.open.get_mut(&key).expect("open");
        if file.pending.is_empty() {
            return Ok(());
        }
        // Arrow batches of a few thousand rows: the conversion's buffers
        // stay small and in cache; the encoder gathers them into the row group.
        for chunk in file.pending.chunks(ENCODE_ROWS) {
            let batch: RecordBatch = schema::to_batch(chunk);
            file.writer
                .write(&batch)
                .map_err(|e| write_error(&self.out, dir, e))?;
        }
        file.rows += file.pending.len();
        file.pending.clear();
        Ok(())
    }

    fn close(&mut self, key: i64) -> Result<(), WriteError> {
        self.encode(key)?;
        let (dir, mut file) = self.open.remove(&key).expect("open");
        // The emptied pending vector: the next file's batch can reuse it.
        let pending = std::mem::take(&mut file.pending);
        if pending.capacity() > 0 && self.spare.is_none() {
            self.spare = Some(pending);
        }
        let rows = file.rows;
        let sink = file
            .writer
            .into_inner()
            .map_err(|e| write_error(&self.out, &dir, e))?;
        let relative = match (sink, file.target) {
            (Sink::File(buffered), Target::Local { tmp, path }) => {
                let result = buffered
                    .into_inner()
                    .map_err(|e| e.into_error())
                    .and_then(|f| f.sync_all())
                    .and_then(|()| fs::rename(&tmp, &path));
                if let Err(source) = result {
                    let _ = fs::remove_file(&tmp);
                    return Err(WriteError::Io { path, source });
                }
                let root = self.out.local_path().expect("local");
                path.strip_prefix(root)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .into_owned()
            }
            (Sink::Memory(bytes), Target::Blob { relative }) => {
                self.out
                    .write(&relative, Bytes::from(bytes))
                    .map_err(|e| write_error(&self.out, &relative, e))?;
                relative
            }
            _ => unreachable!("sinks match their targets"),
        };
        self.written_rows += rows as u64;
        self.files.push(relative);
        Ok(())
    }

    /// Writes what is pending and closes every file.
    pub fn finish(mut self) -> Result<Self, WriteError> {
        let started = thread_cpu_time();
        let mut keys: Vec<i64> = self.open.keys().copied().collect();
        keys.sort_unstable();
        for key in keys {
            self.close(key)?;
        }
        self.busy += thread_cpu_time() - started;
        Ok(self)
    }
}

/// A [`FlowWriter`] on a thread of its own: [`FlowSink::send`] hands over a
/// batch and returns at once (up to a few batches in flight, so memory
/// stays bounded when encoding is the slower side).
#[derive(Debug)]
pub struct FlowSink {
    sender: Option<mpsc::SyncSender<Vec<FlowRecord>>>,
    /// Emptied batch vectors coming back from the encoder.
    spares: mpsc::Receiver<Vec<FlowRecord>>,
    thread: Option<thread::JoinHandle<Result<FlowWriter, WriteError>>>,
}

impl FlowSink {
    pub fn spawn(mut writer: FlowWriter) -> Self {
        let (sender, receiver) = mpsc::sync_channel::<Vec<FlowRecord>>(1);
        let (give_back, spares) = mpsc::sync_channel::<Vec<FlowRecord>>(1);
        let thread = thread::Builder::new()
            .name("parquet-encode".into())
            .spawn(move || {
                for batch in receiver {
                    writer.push(batch)?;
                    if let Some(spare) = writer.take_spare() {
                        // Full when the producer has not taken the last one: drop it.
                        let _ = give_back.try_send(spare);
                    }
                }
                writer.finish()
            })
            .expect("spawning the encoder thread");
        Self {
            sender: Some(sender),
            spares,
            thread: Some(thread),
        }
    }

    /// An empty vector for the next batch: one the encoder gave back, else
    /// a new one of `capacity`.
    pub fn batch(&self, capacity: usize) -> Vec<FlowRecord> {
        self.spares
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(capacity))
    }

    /// Queues records; an error of the encoder shows up here or at [`finish`](Self::finish).
    pub fn send(&mut self, records: Vec<FlowRecord>) -> Result<(), WriteError> {
        if records.is_empty() {
            return Ok(());
        }
        let sent = self.sender.as_ref().map(|s| s.send(records));
        match sent {
            Some(Ok(())) => Ok(()),
            // The encoder stopped: its error says why.
            _ => self.finish().map(drop),
        }
    }

    /// Waits for the encoder to write everything; returns the writer (file
    /// names, row count).
    pub fn finish(&mut self) -> Result<FlowWriter, WriteError> {
        self.sender = None;
        let thread = self.thread.take().ok_or_else(|| WriteError::Io {
            path: PathBuf::from("<encoder>"),
            source: io::Error::other("the encoder already finished"),
        })?;
        thread.join().unwrap_or_else(|_| {
            Err(WriteError::Io {
                path: PathBuf::from("<encoder>"),
                source: io::Error::other("the encoder thread panicked"),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::{reader, schema::tests::sample};

    #[test]
    fn hour_partitions_are_hive_directories_read_back_as_one_table() {
        let dir = tempfile::tempdir().unwrap();
        let out = Location::Local(dir.path().to_owned());
        let writer = FlowWriter::new(out, Partition::Hour, "t", Vec::new()).unwrap();
        let mut sink = FlowSink::spawn(writer);
        let hour = 3_600_000_000_000i64;
        let base = 1_700_000_000_000_000_000i64 / hour * hour; // 2023-11-14T22:00Z
        let mut records = Vec::new();
        for i in 0..5u16 {
            let mut r = sample(i);
            r.start_ns = base + i64::from(i) * hour / 2;
            records.push(r);
        }
        sink.send(records.clone()).unwrap();
        let writer = sink.finish().unwrap();
        assert_eq!(writer.written_rows(), 5);
        let mut files = writer.files().to_vec();
        files.sort();
        assert_eq!(
            files,
            [
                "date=2023-11-14/hour=22/flows-t-000001.parquet",
                "date=2023-11-14/hour=23/flows-t-000002.parquet",
                "date=2023-11-15/hour=00/flows-t-000003.parquet",
            ]
        );
        let read = reader::read_flows(&[dir.path().to_owned()]).unwrap();
        let mut back: Vec<FlowRecord> = read.into_iter().flat_map(|f| f.records).collect();
        back.sort_by_key(|r| r.start_ns);
        assert_eq!(back, records);
    }

    #[test]
    fn full_batches_are_written_whole_and_their_vectors_given_back_empty() {
        let dir = tempfile::tempdir().unwrap();
        let out = Location::Local(dir.path().to_owned());
        let mut writer = FlowWriter::new(out, Partition::None, "t", Vec::new()).unwrap();
        let batch = |first: usize| -> Vec<FlowRecord> {
            (first..first + ROW_GROUP_ROWS)
                .map(|i| FlowRecord {
                    start_ns: i as i64,
                    ..sample(i as u16)
                })
                .collect()
        };
        writer.push(batch(0)).unwrap();
        // The first batch became the pending rows; nothing emptied yet.
        assert!(writer.take_spare().is_none());
        writer.push(batch(ROW_GROUP_ROWS)).unwrap();
        let spare = writer
            .take_spare()
            .expect("the first batch's emptied vector");
        assert!(spare.is_empty() && spare.capacity() >= ROW_GROUP_ROWS);
        let writer = writer.finish().unwrap();
        assert_eq!(writer.written_rows(), 2 * ROW_GROUP_ROWS as u64);
        let read = reader::read_flows(&[dir.path().to_owned()]).unwrap();
        let starts: Vec<i64> = read
            .iter()
            .flat_map(|f| f.records.iter().map(|r| r.start_ns))
            .collect();
        assert_eq!(starts, (0..2 * ROW_GROUP_ROWS as i64).collect::<Vec<_>>());
    }

    #[test]
    fn a_closed_files_batch_vector_is_given_back_empty() {
        let dir = tempfile::tempdir().unwrap();
        let out = Location::Local(dir.path().to_owned());
        let mut writer = FlowWriter::new(out, Partition::None, "t", Vec::new()).unwrap();
        writer.push(vec![sample(1), sample(2)]).unwrap();
        assert!(
            writer.take_spare().is_none(),
            "the batch is the pending rows"
        );
        let mut writer = writer.finish().unwrap();
        let spare = writer.take_spare().expect("the closed file's vector");
        assert!(spare.is_empty() && spare.capacity() >= 2);
        assert_eq!(writer.written_rows(), 2);
    }

    #[test]
    fn partition_names_parse() {
        for (name, partition) in [
            ("none", Partition::None),
            ("day", Partition::Day),
            ("hour", Partition::Hour),
        ] {
            assert_eq!(name.parse::<Partition>(), Ok(partition));
        }
        assert_eq!(
            "week".parse::<Partition>().unwrap_err(),
            "unknown partitioning `week` (none, day or hour)"
        );
        assert_eq!(Partition::Day.dir_of(0), "date=1970-01-01/");
    }
}
