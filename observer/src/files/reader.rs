//! Reading observer flow files back (for `classify` and `report`): a file,
//! or a directory of `flows-*.parquet`, into [`FlowRecord`]s plus the file
//! metadata.

use std::{
    collections::BTreeMap,
    fs::File,
    io,
    path::{Path, PathBuf},
};

use arrow::array::RecordBatch;
use parquet::{arrow::arrow_reader::ParquetRecordBatchReaderBuilder, errors::ParquetError};
use thiserror::Error;

use super::schema::{self, SchemaError};
use crate::flow::FlowRecord;

#[derive(Debug, Error)]
pub enum ReadError {
    #[error("cannot open `{}`", path.display())]
    Open { path: PathBuf, source: io::Error },
    #[error("`{}` is not a readable Parquet file", path.display())]
    Parquet { path: PathBuf, source: ParquetError },
    #[error("`{}`: {source}", path.display())]
    Schema { path: PathBuf, source: SchemaError },
    #[error("`{}` holds no flow files (flows-*.parquet)", path.display())]
    EmptyDirectory { path: PathBuf },
    #[error("`{}`: {message}", path.display())]
    Dns { path: PathBuf, message: String },
}

/// The records and key/value metadata of one file.
#[derive(Debug)]
pub struct FlowFile {
    pub path: PathBuf,
    pub records: Vec<FlowRecord>,
    pub metadata: BTreeMap<String, String>,
}

/// Opens a Parquet file, hands each record batch to `each`, and returns the
/// file's key/value metadata.
fn read_batches(
    path: &Path,
    mut each: impl FnMut(&RecordBatch) -> Result<(), ReadError>,
) -> Result<BTreeMap<String, String>, ReadError> {
    let file = File::open(path).map_err(|source| ReadError::Open {
        path: path.to_owned(),
        source,
    })?;
    let parquet = |source| ReadError::Parquet {
        path: path.to_owned(),
        source,
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(parquet)?;
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

/// Reads one flow file.
pub fn read_flow_file(path: &Path) -> Result<FlowFile, ReadError> {
    let mut records = Vec::new();
    let metadata = read_batches(path, |batch| {
        records.extend(
            schema::from_batch(batch).map_err(|source| ReadError::Schema {
                path: path.to_owned(),
                source,
            })?,
        );
        Ok(())
    })?;
    Ok(FlowFile {
        path: path.to_owned(),
        records,
        metadata,
    })
}

/// Packets the captures behind `files` lost: each run's last (largest)
/// cumulative count, summed over runs.
pub fn lost_packets(files: &[FlowFile]) -> u64 {
    let mut by_run: BTreeMap<&str, u64> = BTreeMap::new();
    for file in files {
        let lost = file
            .metadata
            .get("observer.lost_packets")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        let run = file
            .metadata
            .get("observer.run_id")
            .map_or("", String::as_str);
        let entry = by_run.entry(run).or_default();
        *entry = (*entry).max(lost);
    }
    by_run.values().sum()
}

/// `DIR/KIND-*.parquet`, in name order.
fn files_of_kind(dir: &Path, kind: &str) -> Result<Vec<PathBuf>, ReadError> {
    let entries = std::fs::read_dir(dir).map_err(|source| ReadError::Open {
        path: dir.to_owned(),
        source,
    })?;
    let prefix = format!("{kind}-");
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".parquet"))
        })
        .collect();
    found.sort();
    Ok(found)
}

/// The flow files named by `inputs`: files as given, directories expanded
/// to their `flows-*.parquet` in name order.
pub fn flow_paths(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, ReadError> {
    let mut paths = Vec::new();
    for input in inputs {
        if !input.is_dir() {
            paths.push(input.clone());
            continue;
        }
        let found = files_of_kind(input, "flows")?;
        if found.is_empty() {
            return Err(ReadError::EmptyDirectory {
                path: input.clone(),
            });
        }
        paths.extend(found);
    }
    Ok(paths)
}

/// The `dns-*.parquet` files next to the inputs: in each input directory,
/// or in the directory of each input file.
pub fn dns_paths(inputs: &[PathBuf]) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = inputs
        .iter()
        .map(|i| {
            if i.is_dir() {
                i.clone()
            } else {
                i.parent()
                    .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
            }
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs.iter()
        .filter_map(|d| files_of_kind(d, "dns").ok())
        .flatten()
        .collect()
}

/// Reads the DNS answers recorded next to `inputs` (none is fine).
pub fn read_dns(inputs: &[PathBuf]) -> Result<Vec<crate::dns::DnsAnswer>, ReadError> {
    let mut answers = Vec::new();
    for path in dns_paths(inputs) {
        read_batches(&path, |batch| {
            answers.extend(
                crate::dns::from_batch(batch).map_err(|message| ReadError::Dns {
                    path: path.clone(),
                    message,
                })?,
            );
            Ok(())
        })?;
    }
    answers.sort_by_key(|a| a.time_ns);
    Ok(answers)
}

/// Reads every flow file named by `inputs` (see [`flow_paths`]).
pub fn read_flows(inputs: &[PathBuf]) -> Result<Vec<FlowFile>, ReadError> {
    flow_paths(inputs)?
        .iter()
        .map(|p| read_flow_file(p))
        .collect()
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
        assert_eq!(read[1].metadata["observer.schema_version"], "1");
        assert_eq!(files.written_rows(), 3);
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
