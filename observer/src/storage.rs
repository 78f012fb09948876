//! Where files live: a local directory or an Azure Blob Storage / ADLS
//! Gen2 container (`az://CONTAINER/PREFIX`), both through one interface
//! ([`Location`]) so readers and writers do not care which.
//!
//! Blob access goes through the `object_store` crate. Credentials come from
//! the standard Azure environment variables (`AZURE_STORAGE_ACCOUNT_NAME`,
//! `AZURE_STORAGE_ACCOUNT_KEY`, `AZURE_STORAGE_SAS_TOKEN`,
//! `AZURE_CLIENT_ID`/`AZURE_CLIENT_SECRET`/`AZURE_TENANT_ID`, managed
//! identity, ...); `AZURE_STORAGE_USE_EMULATOR=true` targets Azurite at
//! `AZURITE_BLOB_STORAGE_URL` (default `http://127.0.0.1:10000`).
//!
//! The calls are blocking: each runs on a small private tokio runtime, so
//! the synchronous subcommands can use them directly.

use std::{
    fmt, fs,
    path::{Path, PathBuf},
    sync::Arc,
};

use bytes::Bytes;
use futures::TryStreamExt as _;
use object_store::{
    ObjectStore, ObjectStoreExt as _, PutPayload, azure::MicrosoftAzureBuilder,
    path::Path as BlobPath,
};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StorageError {
    #[error(
        "`{url}` is not a blob location: write az://CONTAINER/PREFIX (the container, then the folder inside it)"
    )]
    BadUrl { url: String },
    #[error(
        "cannot open container `{container}`: {source} (set AZURE_STORAGE_ACCOUNT_NAME and a credential such as AZURE_STORAGE_ACCOUNT_KEY or AZURE_STORAGE_SAS_TOKEN, or AZURE_STORAGE_USE_EMULATOR=true for Azurite)"
    )]
    Connect {
        container: String,
        source: object_store::Error,
    },
    #[error("cannot list `{location}`")]
    List {
        location: String,
        source: object_store::Error,
    },
    #[error("cannot read `{location}`")]
    Read {
        location: String,
        source: object_store::Error,
    },
    #[error("cannot write `{location}`")]
    Write {
        location: String,
        source: object_store::Error,
    },
    #[error("cannot read `{}`", path.display())]
    LocalRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write `{}`", path.display())]
    LocalWrite {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start the I/O runtime")]
    Runtime(#[source] std::io::Error),
}

/// A local directory or file, or a blob container with a prefix.
#[derive(Clone)]
pub enum Location {
    Local(PathBuf),
    Blob(Blob),
}

/// A prefix in one blob container.
#[derive(Clone)]
pub struct Blob {
    store: Arc<dyn ObjectStore>,
    container: String,
    prefix: BlobPath,
}

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "az://{}/{}", self.container, self.prefix)
    }
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local(path) => write!(f, "{}", path.display()),
            Self::Blob(blob) => write!(f, "az://{}/{}", blob.container, blob.prefix),
        }
    }
}

/// One object found under a location: its full name (for messages and
/// `Location::read`) and size.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    /// Path relative to the location (`/`-separated), empty for the location itself.
    pub relative: String,
    pub size: u64,
}

fn runtime() -> Result<tokio::runtime::Runtime, StorageError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(StorageError::Runtime)
}

/// Whether `text` names a blob location.
pub fn is_blob(text: &str) -> bool {
    text.starts_with("az://") || text.starts_with("abfs://") || text.starts_with("abfss://")
}

impl Location {
    /// `az://CONTAINER/PREFIX` (also `abfs[s]://CONTAINER@ACCOUNT.dfs.core.windows.net/PREFIX`)
    /// or a local path.
    pub fn parse(text: &str) -> Result<Self, StorageError> {
        if !is_blob(text) {
            return Ok(Self::Local(PathBuf::from(text)));
        }
        let bad = || StorageError::BadUrl {
            url: text.to_owned(),
        };
        let rest = text.split_once("://").map(|(_, r)| r).ok_or_else(bad)?;
        let (authority, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let (container, account) = match authority.split_once('@') {
            Some((c, host)) => (c, host.split('.').next()),
            None => (authority, None),
        };
        if container.is_empty() {
            return Err(bad());
        }
        let mut builder = MicrosoftAzureBuilder::from_env().with_container_name(container);
        if let Some(account) = account {
            builder = builder.with_account(account);
        }
        let store = builder.build().map_err(|source| StorageError::Connect {
            container: container.to_owned(),
            source,
        })?;
        Ok(Self::Blob(Blob {
            store: Arc::new(store),
            container: container.to_owned(),
            prefix: BlobPath::from(prefix.trim_matches('/')),
        }))
    }

    pub fn is_remote(&self) -> bool {
        matches!(self, Self::Blob(_))
    }

    /// The location `relative` below this one.
    pub fn join(&self, relative: &str) -> Self {
        match self {
            Self::Local(path) => Self::Local(path.join(relative)),
            Self::Blob(blob) => Self::Blob(Blob {
                prefix: blob.key(relative),
                ..blob.clone()
            }),
        }
    }

    /// Every object below the location (recursively), by relative name.
    /// A local file lists as itself (relative name empty).
    pub fn list(&self) -> Result<Vec<Entry>, StorageError> {
        match self {
            Self::Local(path) => {
                let mut found = Vec::new();
                list_local(path, path, &mut found)?;
                found.sort();
                Ok(found)
            }
            Self::Blob(blob) => {
                let rt = runtime()?;
                let listed: Vec<_> = rt
                    .block_on(blob.store.list(Some(&blob.prefix)).try_collect())
                    .map_err(|source| StorageError::List {
                        location: self.to_string(),
                        source,
                    })?;
                let base = blob.prefix.as_ref();
                let mut found: Vec<Entry> = listed
                    .into_iter()
                    .map(|meta| {
                        let full = meta.location.as_ref();
                        let relative = full
                            .strip_prefix(base)
                            .unwrap_or(full)
                            .trim_start_matches('/');
                        Entry {
                            relative: relative.to_owned(),
                            size: meta.size,
                        }
                    })
                    .collect();
                found.sort();
                Ok(found)
            }
        }
    }

    /// The bytes of the object `relative` below the location (empty: the
    /// location itself).
    pub fn read(&self, relative: &str) -> Result<Bytes, StorageError> {
        match self {
            Self::Local(path) => {
                let path = if relative.is_empty() {
                    path.clone()
                } else {
                    path.join(relative)
                };
                fs::read(&path)
                    .map(Bytes::from)
                    .map_err(|source| StorageError::LocalRead { path, source })
            }
            Self::Blob(blob) => {
                let key = blob.key(relative);
                let rt = runtime()?;
                rt.block_on(async { blob.store.get(&key).await?.bytes().await })
                    .map_err(|source| StorageError::Read {
                        location: format!("az://{}/{key}", blob.container),
                        source,
                    })
            }
        }
    }

    /// The object `relative` below the location as a stream: a local file
    /// read as it is consumed, a blob in the chunks the service sends, so
    /// memory holds one chunk whatever the object's size.
    pub fn open(&self, relative: &str) -> Result<Box<dyn std::io::Read + Send>, StorageError> {
        match self {
            Self::Local(path) => {
                let path = if relative.is_empty() {
                    path.clone()
                } else {
                    path.join(relative)
                };
                match fs::File::open(&path) {
                    Ok(file) => Ok(Box::new(file)),
                    Err(source) => Err(StorageError::LocalRead { path, source }),
                }
            }
            Self::Blob(blob) => {
                let key = blob.key(relative);
                let location = format!("az://{}/{key}", blob.container);
                let rt = runtime()?;
                let stream = match rt.block_on(blob.store.get(&key)) {
                    Ok(got) => got.into_stream(),
                    Err(source) => return Err(StorageError::Read { location, source }),
                };
                Ok(Box::new(BlobReader {
                    rt,
                    stream,
                    chunk: Bytes::new(),
                }))
            }
        }
    }

    /// Stores `bytes` as `relative` below the location, complete or absent:
    /// locally through a synced temporary file and a rename, in Blob Storage
    /// as one put (a blob is only visible once committed).
    pub fn write(&self, relative: &str, bytes: Bytes) -> Result<(), StorageError> {
        match self {
            Self::Local(dir) => {
                let path = dir.join(relative);
                let error = |source| StorageError::LocalWrite {
                    path: path.clone(),
                    source,
                };
                if let Some(parent) = path.parent() {
                    fs::create_dir_all(parent).map_err(error)?;
                }
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("out")
                    .to_owned();
                let tmp = path.with_file_name(format!(".{name}.tmp"));
                let result = (|| {
                    let mut file = fs::File::create(&tmp)?;
                    std::io::Write::write_all(&mut file, &bytes)?;
                    file.sync_all()?;
                    fs::rename(&tmp, &path)
                })();
                if result.is_err() {
                    let _ = fs::remove_file(&tmp);
                }
                result.map_err(error)
            }
            Self::Blob(blob) => {
                let key = blob.key(relative);
                let rt = runtime()?;
                rt.block_on(blob.store.put(&key, PutPayload::from_bytes(bytes)))
                    .map(drop)
                    .map_err(|source| StorageError::Write {
                        location: format!("az://{}/{key}", blob.container),
                        source,
                    })
            }
        }
    }

    /// The local path, if this is one.
    pub fn local_path(&self) -> Option<&Path> {
        match self {
            Self::Local(path) => Some(path),
            Self::Blob(_) => None,
        }
    }
}

impl Blob {
    fn key(&self, relative: &str) -> BlobPath {
        let relative = relative.trim_matches('/');
        match (self.prefix.as_ref().is_empty(), relative.is_empty()) {
            (_, true) => self.prefix.clone(),
            (true, false) => BlobPath::from(relative),
            (false, false) => BlobPath::from(format!("{}/{relative}", self.prefix)),
        }
    }
}

/// A blob read chunk by chunk, as [`std::io::Read`].
struct BlobReader {
    rt: tokio::runtime::Runtime,
    stream: futures::stream::BoxStream<'static, object_store::Result<Bytes>>,
    chunk: Bytes,
}

impl std::io::Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rt.block_on(self.stream.try_next()) {
                Ok(Some(chunk)) => self.chunk = chunk,
                Ok(None) => return Ok(0),
                Err(e) => return Err(std::io::Error::other(e)),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}

fn list_local(root: &Path, path: &Path, found: &mut Vec<Entry>) -> Result<(), StorageError> {
    let error = |source| StorageError::LocalRead {
        path: path.to_owned(),
        source,
    };
    let meta = fs::metadata(path).map_err(error)?;
    if !meta.is_dir() {
        let relative = path
            .strip_prefix(root)
            .unwrap_or(path)
            .to_string_lossy()
            .into_owned();
        found.push(Entry {
            relative,
            size: meta.len(),
        });
        return Ok(());
    }
    for entry in fs::read_dir(path).map_err(error)? {
        let entry = entry.map_err(error)?;
        list_local(root, &entry.path(), found)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_locations_list_recursively_and_write_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let location = Location::parse(dir.path().to_str().unwrap()).unwrap();
        assert!(!location.is_remote());
        location
            .write("date=2024-01-01/hour=03/a.bin", Bytes::from_static(b"abc"))
            .unwrap();
        location.write("b.bin", Bytes::from_static(b"z")).unwrap();
        let listed = location.list().unwrap();
        assert_eq!(
            listed,
            vec![
                Entry {
                    relative: "b.bin".into(),
                    size: 1
                },
                Entry {
                    relative: "date=2024-01-01/hour=03/a.bin".into(),
                    size: 3
                },
            ]
        );
        assert_eq!(
            location.read("date=2024-01-01/hour=03/a.bin").unwrap(),
            Bytes::from_static(b"abc")
        );
        let file = location.join("b.bin");
        assert_eq!(file.list().unwrap()[0].relative, "");
        let mut streamed = String::new();
        std::io::Read::read_to_string(
            &mut location.open("date=2024-01-01/hour=03/a.bin").unwrap(),
            &mut streamed,
        )
        .unwrap();
        assert_eq!(streamed, "abc");
    }

    #[test]
    fn blob_urls_need_a_container() {
        let err = Location::parse("az:///prefix").unwrap_err().to_string();
        assert!(err.contains("az://CONTAINER/PREFIX"), "{err}");
    }
}
