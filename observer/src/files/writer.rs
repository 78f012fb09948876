//! Writing Parquet files that are complete or absent: each flush writes
//! every pending row to `.NAME.tmp` (zstd, buffered, row groups of at most
//! 128 Ki rows), syncs it and renames it to `NAME`. A crash loses at most the
//! rows of one flush interval and never leaves a half-written file under a
//! final name.
//!
//! Memory: the pending rows are at most about one row group (the pipeline
//! flushes when [`ParquetFiles::is_full`]), and a flush converts them to
//! Arrow [`ENCODE_ROWS`] at a time, so the in-flight write holds one small
//! batch plus the encoder's compressed pages of the row group, not a
//! second columnar copy of every pending row.

use std::{
    fs::{self, File},
    io::{self, BufWriter},
    marker::PhantomData,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use arrow::{array::RecordBatch, datatypes::SchemaRef};
use parquet::{
    arrow::ArrowWriter,
    basic::{Compression, ZstdLevel},
    errors::ParquetError,
    file::{
        metadata::KeyValue,
        properties::{EnabledStatistics, WriterProperties},
    },
};
use thiserror::Error;

use crate::flow::FlowRecord;

/// Rows per Parquet row group, and the pending rows that make a table full.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;

/// Rows converted to one Arrow batch at a time while writing; the encoder
/// gathers the batches of a row group as compressed pages.
pub const ENCODE_ROWS: usize = 8 * 1024;

#[derive(Debug, Error)]
pub enum WriteError {
    #[error("output directory `{}` is not writable (choose another --out or fix its permissions)", dir.display())]
    Directory { dir: PathBuf, source: io::Error },
    #[error("disk full while writing `{}`; free some space or point --out at another filesystem", path.display())]
    DiskFull { path: PathBuf },
    #[error("cannot write `{}`", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("cannot write `{}`", path.display())]
    Parquet { path: PathBuf, source: ParquetError },
}

impl WriteError {
    fn io(path: &Path, source: io::Error) -> Self {
        if source.kind() == io::ErrorKind::StorageFull {
            Self::DiskFull {
                path: path.to_owned(),
            }
        } else {
            Self::Io {
                path: path.to_owned(),
                source,
            }
        }
    }

    fn parquet(path: &Path, source: ParquetError) -> Self {
        match &source {
            ParquetError::External(inner)
                if inner
                    .downcast_ref::<io::Error>()
                    .is_some_and(|e| e.kind() == io::ErrorKind::StorageFull) =>
            {
                Self::DiskFull {
                    path: path.to_owned(),
                }
            }
            _ => Self::Parquet {
                path: path.to_owned(),
                source,
            },
        }
    }
}

/// Creates `dir` if needed and proves it writable, before any capture starts.
pub fn check_writable(dir: &Path) -> Result<(), WriteError> {
    let error = |source| WriteError::Directory {
        dir: dir.to_owned(),
        source,
    };
    // Encoder threads check their directories at once: a probe per call.
    static PROBES: AtomicU64 = AtomicU64::new(0);
    fs::create_dir_all(dir).map_err(error)?;
    let probe = dir.join(format!(
        ".observer-probe-{}-{}",
        std::process::id(),
        PROBES.fetch_add(1, Ordering::Relaxed)
    ));
    File::create(&probe).map_err(error)?;
    fs::remove_file(&probe).map_err(error)
}

/// A row type with a Parquet table of its own.
pub trait Rows: Sized {
    /// File name prefix, e.g. `flows` for `flows-RUN-000001.parquet`.
    const KIND: &'static str;
    fn schema() -> SchemaRef;
    fn to_batch(rows: &[Self]) -> RecordBatch;
}

impl Rows for FlowRecord {
    const KIND: &'static str = "flows";

    fn schema() -> SchemaRef {
        super::schema::flow_schema()
    }

    fn to_batch(rows: &[Self]) -> RecordBatch {
        super::schema::to_batch(rows)
    }
}

/// The files of one table of one run: `DIR/KIND-RUN-SEQ.parquet`.
#[derive(Debug)]
pub struct ParquetFiles<T> {
    dir: PathBuf,
    run_id: String,
    pending: Vec<T>,
    written_rows: u64,
    files: Vec<PathBuf>,
    _rows: PhantomData<T>,
}

impl<T: Rows> ParquetFiles<T> {
    pub fn new(dir: &Path, run_id: &str) -> Self {
        Self {
            dir: dir.to_owned(),
            run_id: run_id.to_owned(),
            pending: Vec::new(),
            written_rows: 0,
            files: Vec::new(),
            _rows: PhantomData,
        }
    }

    pub fn push(&mut self, row: T) {
        self.pending.push(row);
    }

    /// Rows waiting for the next flush, for a last pass before writing.
    pub fn pending_mut(&mut self) -> &mut [T] {
        &mut self.pending
    }

    /// Rows waiting for the next flush.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Whether a full row group is waiting: write it now rather than hold
    /// more in memory until the next flush tick.
    pub fn is_full(&self) -> bool {
        self.pending.len() >= ROW_GROUP_ROWS
    }

    pub fn written_rows(&self) -> u64 {
        self.written_rows
    }

    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Writes the pending rows to a new complete file, with `metadata` as
    /// file-level key/values. Nothing is written when no row is pending.
    pub fn flush(&mut self, metadata: &[(String, String)]) -> Result<Option<PathBuf>, WriteError> {
        if self.pending.is_empty() {
            return Ok(None);
        }
        let name = format!(
            "{}-{}-{:06}.parquet",
            T::KIND,
            self.run_id,
            self.files.len() + 1
        );
        let path = self.dir.join(&name);
        write_atomically(
            &path,
            &T::schema(),
            self.pending.chunks(ENCODE_ROWS).map(T::to_batch),
            metadata,
        )?;
        self.written_rows += self.pending.len() as u64;
        // Drop the rows and their capacity: a burst's row group is not held
        // after it is written.
        self.pending = Vec::new();
        self.files.push(path.clone());
        Ok(Some(path))
    }
}

/// Encodes `batches` as one Parquet file in memory (for blob uploads and
/// small tables).
pub fn encode(
    schema: &SchemaRef,
    batches: impl Iterator<Item = RecordBatch>,
    metadata: &[(String, String)],
) -> Result<bytes::Bytes, WriteError> {
    let path = Path::new("<memory>");
    let mut writer = ArrowWriter::try_new(Vec::new(), schema.clone(), Some(properties(metadata)))
        .map_err(|e| WriteError::parquet(path, e))?;
    for batch in batches {
        writer
            .write(&batch)
            .map_err(|e| WriteError::parquet(path, e))?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| WriteError::parquet(path, e))?;
    Ok(bytes.into())
}

/// Writes `batches` to `path` via a synced temporary file and a rename.
pub fn write_atomically(
    path: &Path,
    schema: &SchemaRef,
    batches: impl Iterator<Item = RecordBatch>,
    metadata: &[(String, String)],
) -> Result<(), WriteError> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("out.parquet");
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let result = write_file(&tmp, schema, batches, metadata)
        .and_then(|()| fs::rename(&tmp, path).map_err(|e| WriteError::io(path, e)));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The writer settings of every file: zstd level 3, row groups of at most
/// [`ROW_GROUP_ROWS`], `metadata` as file key/values.
pub fn properties(metadata: &[(String, String)]) -> WriterProperties {
    let mut builder = WriterProperties::builder();
    for column in [
        "start_time",
        "end_time",
        "bytes",
        "reverse_bytes",
        "packets",
        "reverse_packets",
        "src_port",
    ] {
        builder = builder.set_column_dictionary_enabled(column.into(), false);
    }
    // Text nobody filters a row group by: min/max of these cost ~6 % of an
    // import's instructions (two comparisons per value) and prune nothing.
    for column in [
        "reason",
        "nsg_rule",
        "expected_next_hop",
        "observed_path",
        "end_reason",
        "flow_type",
        "encryption",
        "direction_basis",
        "acl_id",
        "iface_role",
        "source",
    ] {
        builder = builder.set_column_statistics_enabled(column.into(), EnabledStatistics::None);
    }
    builder
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("valid level"),
        ))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_key_value_metadata(Some(
            metadata
                .iter()
                .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
                .collect(),
        ))
        .build()
}

fn write_file(
    tmp: &Path,
    schema: &SchemaRef,
    batches: impl Iterator<Item = RecordBatch>,
    metadata: &[(String, String)],
) -> Result<(), WriteError> {
    let file = File::create(tmp).map_err(|e| WriteError::io(tmp, e))?;
    let mut writer = ArrowWriter::try_new(
        BufWriter::with_capacity(1 << 20, file),
        schema.clone(),
        Some(properties(metadata)),
    )
    .map_err(|e| WriteError::parquet(tmp, e))?;
    for batch in batches {
        writer
            .write(&batch)
            .map_err(|e| WriteError::parquet(tmp, e))?;
    }
    let buffered = writer
        .into_inner()
        .map_err(|e| WriteError::parquet(tmp, e))?;
    let file = buffered
        .into_inner()
        .map_err(|e| WriteError::io(tmp, e.into_error()))?;
    file.sync_all().map_err(|e| WriteError::io(tmp, e))
}

#[cfg(test)]
mod tests {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use super::*;
    use crate::files::{reader::read_flows, schema::tests::sample};

    /// Rows go to the encoder `ENCODE_ROWS` at a time, yet a file's row
    /// groups hold `ROW_GROUP_ROWS` rows each, every row in order.
    #[test]
    fn small_encode_batches_still_make_full_row_groups() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = ParquetFiles::<FlowRecord>::new(dir.path(), "run1");
        let rows = ROW_GROUP_ROWS + ENCODE_ROWS / 2 + 3;
        for i in 0..rows {
            files.push(sample(i as u16));
            assert_eq!(files.is_full(), i + 1 >= ROW_GROUP_ROWS);
        }
        let path = files.flush(&[]).unwrap().unwrap();
        assert_eq!(files.pending_len(), 0);
        let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap()).unwrap();
        let groups: Vec<i64> = builder
            .metadata()
            .row_groups()
            .iter()
            .map(|g| g.num_rows())
            .collect();
        assert_eq!(
            groups,
            [ROW_GROUP_ROWS as i64, (rows - ROW_GROUP_ROWS) as i64]
        );
        let read = read_flows(&[path]).unwrap();
        assert_eq!(read[0].records.len(), rows);
        assert_eq!(
            read[0].records[ROW_GROUP_ROWS + 1],
            sample((ROW_GROUP_ROWS + 1) as u16)
        );
    }

    /// Columns a query filters by keep their min/max; free text does not
    /// (no row group is pruned by a reason, and its min/max costs CPU).
    #[test]
    fn filter_columns_keep_statistics_and_free_text_has_none() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = ParquetFiles::<FlowRecord>::new(dir.path(), "run1");
        files.push(sample(1));
        let path = files.flush(&[]).unwrap().unwrap();
        let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap()).unwrap();
        let group = &builder.metadata().row_groups()[0];
        let has_statistics = |name: &str| {
            group
                .columns()
                .iter()
                .find(|c| c.column_path().string() == name)
                .unwrap_or_else(|| panic!("no column {name}"))
                .statistics()
                .is_some_and(|s| s.min_bytes_opt().is_some())
        };
        for name in ["start_time", "dst_addr", "dst_port", "verdict"] {
            assert!(has_statistics(name), "{name} lost its statistics");
        }
        for name in ["reason", "source", "end_reason"] {
            assert!(!has_statistics(name), "{name} has statistics");
        }
    }

    /// Several encoder threads prove one directory writable at once; none
    /// removes another's probe (each once failed with "not writable").
    #[test]
    fn threads_check_one_directory_at_once() {
        let dir = tempfile::tempdir().unwrap();
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..200 {
                        check_writable(dir.path()).unwrap();
                    }
                });
            }
        });
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
