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
//! Listing comes in two forms: [`Location::list_under`] (everything below a
//! directory or prefix, one paged call) and [`Location::list_level`] (one
//! level: objects and sub-directory names, one call with a delimiter), so
//! a walker can enter only the parts of a tree it needs. A location that
//! names one blob in full (`az://CONTAINER/.../PT1H.json`) lists as itself,
//! as a local file does.
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

/// One level of a location's tree: the objects directly in it and the
/// names of its sub-directories (blob prefixes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Level {
    pub files: Vec<Entry>,
    pub dirs: Vec<String>,
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
    /// A local file, or a blob named in full, lists as itself (relative
    /// name empty).
    pub fn list(&self) -> Result<Vec<Entry>, StorageError> {
        self.list_under("")
    }

    /// Every object below `relative` (recursively), named relative to the
    /// location, sorted. Below the location itself a missing directory or
    /// prefix lists as empty; the location itself must exist.
    pub fn list_under(&self, relative: &str) -> Result<Vec<Entry>, StorageError> {
        let mut found = match self {
            Self::Local(root) => {
                let path = local_join(root, relative);
                let mut found = Vec::new();
                match list_local(root, &path, &mut found) {
                    Err(StorageError::LocalRead { source, .. })
                        if !relative.is_empty()
                            && source.kind() == std::io::ErrorKind::NotFound =>
                    {
                        Vec::new()
                    }
                    Err(e) => return Err(e),
                    Ok(()) => found,
                }
            }
            Self::Blob(blob) => {
                let rt = runtime()?;
                let prefix = blob.key(relative);
                let listed: Vec<_> = rt
                    .block_on(blob.store.list(Some(&prefix)).try_collect())
                    .map_err(|source| self.list_error(relative, source))?;
                let mut found: Vec<Entry> = listed
                    .into_iter()
                    .map(|meta| blob.entry(&meta.location, meta.size))
                    .collect();
                if found.is_empty() && relative.is_empty() {
                    found.extend(self.blob_itself(&rt, blob)?);
                }
                found
            }
        };
        found.sort();
        Ok(found)
    }

    /// The objects directly in `relative` and the names of its
    /// sub-directories (blob prefixes), one listing call: for walking a
    /// tree one level at a time instead of listing all of it.
    pub fn list_level(&self, relative: &str) -> Result<Level, StorageError> {
        let mut level = Level::default();
        match self {
            Self::Local(root) => {
                let path = local_join(root, relative);
                let error = |source| StorageError::LocalRead {
                    path: path.clone(),
                    source,
                };
                let meta = fs::metadata(&path).map_err(error)?;
                if !meta.is_dir() {
                    level.files.push(Entry {
                        relative: relative.to_owned(),
                        size: meta.len(),
                    });
                    return Ok(level);
                }
                for entry in fs::read_dir(&path).map_err(error)? {
                    let entry = entry.map_err(error)?;
                    let name = entry.file_name().to_string_lossy().into_owned();
                    let meta = fs::metadata(entry.path()).map_err(error)?;
                    if meta.is_dir() {
                        level.dirs.push(name);
                    } else {
                        level.files.push(Entry {
                            relative: join_relative(relative, &name),
                            size: meta.len(),
                        });
                    }
                }
            }
            Self::Blob(blob) => {
                let rt = runtime()?;
                let prefix = blob.key(relative);
                let listed = rt
                    .block_on(blob.store.list_with_delimiter(Some(&prefix)))
                    .map_err(|source| self.list_error(relative, source))?;
                level.files = listed
                    .objects
                    .iter()
                    .map(|meta| blob.entry(&meta.location, meta.size))
                    .collect();
                level.dirs = listed
                    .common_prefixes
                    .iter()
                    .filter_map(|p| p.filename().map(str::to_owned))
                    .collect();
                if level.files.is_empty() && level.dirs.is_empty() && relative.is_empty() {
                    level.files.extend(self.blob_itself(&rt, blob)?);
                }
            }
        }
        level.files.sort();
        level.dirs.sort();
        Ok(level)
    }

    /// The location's prefix as one blob, when it names one in full
    /// (`az://CONTAINER/.../PT1H.json`): listing below it finds nothing.
    fn blob_itself(
        &self,
        rt: &tokio::runtime::Runtime,
        blob: &Blob,
    ) -> Result<Option<Entry>, StorageError> {
        if blob.prefix.as_ref().is_empty() {
            return Ok(None);
        }
        match rt.block_on(blob.store.head(&blob.prefix)) {
            Ok(meta) => Ok(Some(Entry {
                relative: String::new(),
                size: meta.size,
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(source) => Err(self.list_error("", source)),
        }
    }

    fn list_error(&self, relative: &str, source: object_store::Error) -> StorageError {
        StorageError::List {
            location: if relative.is_empty() {
                self.to_string()
            } else {
                format!("{}/{relative}", self.to_string().trim_end_matches('/'))
            },
            source,
        }
    }

    /// The bytes of the object `relative` below the location (empty: the
    /// location itself).
    pub fn read(&self, relative: &str) -> Result<Bytes, StorageError> {
        match self {
            Self::Local(path) => {
                let path = local_join(path, relative);
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
    /// An object found by listing, named relative to the prefix.
    fn entry(&self, location: &BlobPath, size: u64) -> Entry {
        let full = location.as_ref();
        let relative = full
            .strip_prefix(self.prefix.as_ref())
            .unwrap_or(full)
            .trim_start_matches('/');
        Entry {
            relative: relative.to_owned(),
            size,
        }
    }

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

/// `root` itself for an empty `relative`, else the path below it.
fn local_join(root: &Path, relative: &str) -> PathBuf {
    if relative.is_empty() {
        root.to_owned()
    } else {
        root.join(relative)
    }
}

/// `dir/name`, or `name` at the top.
fn join_relative(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{}/{name}", dir.trim_end_matches('/'))
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
    fn levels_list_one_directory_and_missing_subdirectories_are_empty() {
        let dir = tempfile::tempdir().unwrap();
        let location = Location::Local(dir.path().to_owned());
        location
            .write("a/x.json", Bytes::from_static(b"1"))
            .unwrap();
        location
            .write("a/b/y.json", Bytes::from_static(b"22"))
            .unwrap();
        location.write("top.json", Bytes::new()).unwrap();
        let level = location.list_level("").unwrap();
        assert_eq!(level.dirs, ["a"]);
        assert_eq!(level.files.len(), 1);
        assert_eq!(level.files[0].relative, "top.json");
        let level = location.list_level("a").unwrap();
        assert_eq!(level.dirs, ["b"]);
        assert_eq!(
            level.files,
            [Entry {
                relative: "a/x.json".into(),
                size: 1
            }]
        );
        let under = location.list_under("a/b").unwrap();
        assert_eq!(under[0].relative, "a/b/y.json");
        assert!(location.list_under("a/none").unwrap().is_empty());
        assert!(Location::Local(dir.path().join("none")).list().is_err());
        // A file named in full lists as itself, one level too.
        let file = location.join("a/x.json");
        assert_eq!(file.list_level("").unwrap().files[0].relative, "");
    }

    #[test]
    fn blob_urls_need_a_container() {
        let err = Location::parse("az:///prefix").unwrap_err().to_string();
        assert!(err.contains("az://CONTAINER/PREFIX"), "{err}");
    }
}
