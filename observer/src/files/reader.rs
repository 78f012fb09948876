//! Reading flow files back (for `classify`, `report` and `import`): files
//! or directory trees, local or `az://CONTAINER/PREFIX`, written by observer
//! or by any Parquet writer (every codec: snappy, gzip, lz4, brotli, zstd),
//! into [`FlowRecord`]s plus the file metadata.
//!
//! A directory (or blob prefix) stands for every `*.parquet` below it,
//! recursively (Hive-style `date=.../hour=.../` trees included), except the
//! `dns-*.parquet` tables: their batches go to a reader the caller passes
//! ([`read_dns_tables`]; `dns::read_recorded` makes DNS answers of them).

use std::{
    collections::BTreeMap,
    fs::File,
    path::{Path, PathBuf},
};

use arrow::array::RecordBatch;
use parquet::{
    arrow::arrow_reader::ParquetRecordBatchReaderBuilder, errors::ParquetError,
    file::reader::ChunkReader,
};
use thiserror::Error;

use super::{
    metadata::FileMetadata,
    schema::{self, SchemaError},
};
use crate::{
    flow::FlowRecord,
    storage::{Location, StorageError},
};

#[derive(Debug, Error)]
pub enum ReadError {
    #[error("cannot open `{}`", path.display())]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("`{}` is not a readable Parquet file", path.display())]
    Parquet { path: PathBuf, source: ParquetError },
    #[error("`{}`: {source}", path.display())]
    Schema { path: PathBuf, source: SchemaError },
    #[error("`{}` holds no flow files (*.parquet other than dns-*.parquet)", path.display())]
    EmptyDirectory { path: PathBuf },
    /// A table's reader (the `dns` module's, for `dns-*.parquet`)
    /// rejected a batch.
    #[error("`{}`: {source}", path.display())]
    Table {
        path: PathBuf,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// The records and key/value metadata of one file.
#[derive(Debug)]
pub struct FlowFile {
    pub path: PathBuf,
    pub records: Vec<FlowRecord>,
    pub metadata: FileMetadata,
}

/// One Parquet file, local or in Blob Storage.
#[derive(Clone, Debug)]
pub struct FileRef {
    location: Location,
    relative: String,
}

impl FileRef {
    /// The file's name as the user would write it.
    pub fn path(&self) -> PathBuf {
        match (&self.location, self.relative.is_empty()) {
            (Location::Local(dir), false) => dir.join(&self.relative),
            (Location::Local(file), true) => file.clone(),
            (blob, true) => PathBuf::from(blob.to_string()),
            (blob, false) => PathBuf::from(format!(
                "{}/{}",
                blob.to_string().trim_end_matches('/'),
                self.relative
            )),
        }
    }

    fn name(&self) -> String {
        self.path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// Hands each record batch of `reader` to `each`; returns the key/value metadata.
fn batches_of<R: ChunkReader + 'static>(
    reader: R,
    path: &Path,
    mut each: impl FnMut(&RecordBatch) -> Result<(), ReadError>,
) -> Result<BTreeMap<String, String>, ReadError> {
    let parquet = |source| ReadError::Parquet {
        path: path.to_owned(),
        source,
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(reader).map_err(parquet)?;
    let metadata = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .map(|kv| {
            kv.iter()
                .map(|e| (e.key.clone(), e.value.clone().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    for batch in builder.build().map_err(parquet)? {
        each(&batch.map_err(|e| parquet(e.into()))?)?;
    }
    Ok(metadata)
}

/// Opens a Parquet file (streamed from disk; a blob is fetched whole), hands
/// each record batch to `each`, and returns the file's key/value metadata.
fn read_batches(
    file: &FileRef,
    each: impl FnMut(&RecordBatch) -> Result<(), ReadError>,
) -> Result<BTreeMap<String, String>, ReadError> {
    let path = file.path();
    if file.location.is_remote() {
        let bytes = file.location.read(&file.relative)?;
        batches_of(bytes, &path, each)
    } else {
        let opened = File::open(&path).map_err(|source| ReadError::Open {
            path: path.clone(),
            source,
        })?;
        batches_of(opened, &path, each)
    }
}

/// Reads one flow file batch by batch: `each` gets the records of one
/// record batch (memory stays bounded by the file's row groups).
pub fn for_each_batch(
    file: &FileRef,
    mut each: impl FnMut(Vec<FlowRecord>) -> Result<(), ReadError>,
) -> Result<BTreeMap<String, String>, ReadError> {
    let path = file.path();
    read_batches(file, |batch| {
        each(
            schema::from_batch(batch).map_err(|source| ReadError::Schema {
                path: path.clone(),
                source,
            })?,
        )
    })
}

/// Reads one flow file.
pub fn read_flow_file(file: &FileRef) -> Result<FlowFile, ReadError> {
    let mut records = Vec::new();
    let metadata = for_each_batch(file, |batch| {
        records.extend(batch);
        Ok(())
    })?;
    Ok(FlowFile {
        path: file.path(),
        records,
        metadata: FileMetadata::from_pairs(metadata),
    })
}

/// Packets the captures behind `files` lost: each run's last (largest)
/// cumulative count, summed over runs.
pub fn lost_packets(files: &[FlowFile]) -> u64 {
    let mut by_run: BTreeMap<&str, u64> = BTreeMap::new();
    for file in files {
        let lost = file.metadata.lost_packets.unwrap_or(0);
        let run = file.metadata.run_id.as_deref().unwrap_or_default();
        let entry = by_run.entry(run).or_default();
        *entry = (*entry).max(lost);
    }
    by_run.values().sum()
}

fn is_parquet(name: &str) -> bool {
    name.ends_with(".parquet") && !name.starts_with('.')
}

/// Parquet files below `input` (itself when it is a file), in name order.
fn parquet_below(input: &Path) -> Result<(Location, Vec<String>), ReadError> {
    let location = Location::parse(&input.to_string_lossy())?;
    let listed = location.list().map_err(|e| match e {
        StorageError::LocalRead { path, source } => ReadError::Open { path, source },
        other => other.into(),
    })?;
    let names = listed
        .into_iter()
        .filter(|e| {
            let name = e.relative.rsplit('/').next().unwrap_or_default();
            e.relative.is_empty() || is_parquet(name)
        })
        .map(|e| e.relative)
        .collect();
    Ok((location, names))
}

/// The flow files named by `inputs`: files as given, directories and blob
/// prefixes expanded to the `*.parquet` below them (not `dns-*`), in name order.
pub fn flow_files(inputs: &[PathBuf]) -> Result<Vec<FileRef>, ReadError> {
    let mut files = Vec::new();
    for input in inputs {
        let (location, names) = parquet_below(input)?;
        let found: Vec<FileRef> = names
            .into_iter()
            .map(|relative| FileRef {
                location: location.clone(),
                relative,
            })
            .filter(|f| f.relative.is_empty() || !f.name().starts_with("dns-"))
            .collect();
        if found.is_empty() {
            return Err(ReadError::EmptyDirectory {
                path: input.clone(),
            });
        }
        files.extend(found);
    }
    Ok(files)
}

/// The flow files named by `inputs`, as paths (see [`flow_files`]).
pub fn flow_paths(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, ReadError> {
    Ok(flow_files(inputs)?.iter().map(FileRef::path).collect())
}

/// The metadata of a local Parquet file, from its footer alone (`None`
/// when it cannot be opened or is no Parquet file).
pub fn footer_metadata(path: &Path) -> Option<FileMetadata> {
    use parquet::file::reader::{FileReader as _, SerializedFileReader};
    let reader = SerializedFileReader::new(File::open(path).ok()?).ok()?;
    let pairs = reader
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .into_iter()
        .flatten()
        .map(|e| (e.key.clone(), e.value.clone().unwrap_or_default()));
    Some(FileMetadata::from_pairs(pairs))
}

/// The `dns-*.parquet` files of the inputs: below each input directory, or
/// in the directory of each local input file.
fn dns_files(inputs: &[PathBuf]) -> Vec<FileRef> {
    let mut dirs: Vec<PathBuf> = inputs
        .iter()
        .map(|i| {
            if crate::storage::is_blob(&i.to_string_lossy()) || i.is_dir() {
                i.clone()
            } else {
                i.parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
            }
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    let mut found = Vec::new();
    for dir in dirs {
        let Ok((location, names)) = parquet_below(&dir) else {
            continue;
        };
        found.extend(
            names
                .into_iter()
                .map(|relative| FileRef {
                    location: location.clone(),
                    relative,
                })
                .filter(|f| f.name().starts_with("dns-")),
        );
    }
    found
}

/// Paths of the DNS tables next to `inputs` (see [`read_dns_tables`]).
pub fn dns_paths(inputs: &[PathBuf]) -> Vec<PathBuf> {
    dns_files(inputs).iter().map(FileRef::path).collect()
}

/// Reads the `dns-*.parquet` tables next to `inputs` (none is fine): each
/// record batch goes to `rows`, which turns it into rows (the `dns`
/// module's reader, so `files` never learns what a DNS answer is); what
/// `rows` rejects is reported with the file's path.
pub fn read_dns_tables<T, E>(
    inputs: &[PathBuf],
    mut rows: impl FnMut(&RecordBatch) -> Result<Vec<T>, E>,
) -> Result<Vec<T>, ReadError>
where
    E: std::error::Error + Send + Sync + 'static,
{
    let mut out = Vec::new();
    for file in dns_files(inputs) {
        let path = file.path();
        read_batches(&file, |batch| {
            out.extend(rows(batch).map_err(|source| ReadError::Table {
                path: path.clone(),
                source: source.into(),
            })?);
            Ok(())
        })?;
    }
    Ok(out)
}

/// Reads every flow file named by `inputs` (see [`flow_files`]).
///
/// # Errors
///
/// A [`ReadError`] naming the file: an input that cannot be listed or
/// read, a file that is not Parquet, or a column that is missing or has
/// another type than the flow schema's (written by another tool).
///
/// # Example
///
/// ```no_run
/// let files = observer::files::read_flows(&["out".into()])?;
/// let leaks = files
///     .iter()
///     .flat_map(|f| &f.records)
///     .filter(|r| r.verdict.as_deref().is_some_and(|v| v.starts_with("leak-")))
///     .count();
/// println!("{leaks} leaking flow(s)");
/// # Ok::<(), observer::files::ReadError>(())
/// ```
pub fn read_flows(inputs: &[PathBuf]) -> Result<Vec<FlowFile>, ReadError> {
    flow_files(inputs)?.iter().map(read_flow_file).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::{ParquetFiles, schema::tests::sample};

    #[test]
    fn files_are_complete_renamed_and_read_back_with_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = ParquetFiles::<FlowRecord>::new(dir.path(), "run1");
        assert_eq!(files.flush(&[]).unwrap(), None, "no rows, no file");
        files.push(sample(1));
        files.push(sample(2));
        let meta = vec![("observer.schema_version".to_owned(), "1".to_owned())];
        let first = files.flush(&meta).unwrap().unwrap();
        files.push(sample(3));
        files.flush(&meta).unwrap();
        assert_eq!(first.file_name().unwrap(), "flows-run1-000001.parquet");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "no temporary files left: {names:?}");

        let read = read_flows(&[dir.path().to_owned()]).unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!(read[0].records, vec![sample(1), sample(2)]);
        assert_eq!(read[1].metadata.schema_version.as_deref(), Some("1"));
        assert_eq!(files.written_rows(), 3);
    }

    #[test]
    fn every_codec_and_nested_directories_are_read() {
        use parquet::{
            arrow::ArrowWriter,
            basic::{BrotliLevel, Compression, GzipLevel},
            file::properties::WriterProperties,
        };
        let dir = tempfile::tempdir().unwrap();
        let codecs = [
            ("snappy", Compression::SNAPPY),
            ("gzip", Compression::GZIP(GzipLevel::default())),
            ("lz4", Compression::LZ4_RAW),
            ("lz4-hadoop", Compression::LZ4),
            ("brotli", Compression::BROTLI(BrotliLevel::default())),
        ];
        for (i, (name, codec)) in codecs.iter().enumerate() {
            let sub = dir.path().join(format!("date=2024-01-0{}", i + 1));
            std::fs::create_dir_all(&sub).unwrap();
            // Names as other writers choose them (not flows-*).
            let file = std::fs::File::create(sub.join(format!("part-{name}.parquet"))).unwrap();
            let props = WriterProperties::builder().set_compression(*codec).build();
            let mut writer =
                ArrowWriter::try_new(file, schema::flow_schema(), Some(props)).unwrap();
            writer
                .write(&schema::to_batch(&[sample(i as u16)]))
                .unwrap();
            writer.close().unwrap();
        }
        // A DNS table beside them is not a flow file.
        std::fs::write(dir.path().join("dns-x.parquet"), b"not read as flows").unwrap();
        let read = read_flows(&[dir.path().to_owned()]).unwrap();
        assert_eq!(read.len(), codecs.len());
        let ports: Vec<_> = read.iter().map(|f| f.records[0].src_port).collect();
        assert_eq!(ports, (0..5).map(Some).collect::<Vec<_>>());
    }

    #[test]
    fn unreadable_inputs_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_flows(&[dir.path().to_owned()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("holds no flow files"), "{err}");
        let junk = dir.path().join("flows-junk.parquet");
        std::fs::write(&junk, b"not parquet").unwrap();
        let err = read_flows(&[junk]).unwrap_err().to_string();
        assert!(err.contains("is not a readable Parquet file"), "{err}");
    }
}
