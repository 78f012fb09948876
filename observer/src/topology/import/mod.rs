//! `observer topology import`: Azure's own exports of a customer's network
//! read into the same [`Topology`] the TOML loader builds, and written back
//! as commented TOML that every command accepts unchanged.
//!
//! | file | owns |
//! |---|---|
//! | `json.rs` | input files as JSON trees with byte offsets (comments allowed), [`Origin`] (file, JSON path, line:column) |
//! | `expr.rs` | the ARM expression subset (`parameters()`, `variables()`, `resourceId()`, `concat()`, `format()`, `subscription()`, `resourceGroup()`) |
//! | `arm.rs` | ARM templates ("Export template", `az group export`, `az bicep build`) |
//! | `az.rs` | `az ... -o json` output and REST bodies: one resource, lists, `{"value": [...]}` |
//! | `resource.rs` | one resource with its identity (ids with or without subscription and group compare equal) |
//! | `build.rs` | resources to a topology: the environment and the ASE subnet, the VNet and its subnets, the summary |
//! | `network.rs` | peerings, the ASE subnet's route table, gateway and on-premises prefixes, custom DNS, the cloud |
//! | `nsg.rs` | NSGs and their rules (inline and child resources deduplicated, Azure's spellings) |
//! | `endpoints.rs` | private endpoints, private DNS zones (A records, VNet links), backends (NICs) |
//! | `effective.rs` | `az network nic show-effective-route-table` (BGP routes) and `list-effective-nsg` |
//! | `lab.rs` | `--lab`: endpoints and scenario traffic for every dependency, backend, private endpoint and on-premises prefix |
//! | `write.rs` | a [`Topology`] back to TOML, each item under a comment naming the resource it came from |
//!
//! Nothing outside this folder learns about ARM: the rest of the program
//! reads the TOML (or the [`Topology`]) as it always has.

mod arm;
mod az;
mod build;
mod effective;
mod endpoints;
mod expr;
mod json;
mod lab;
mod network;
mod nsg;
mod resource;
mod write;

use std::{
    collections::BTreeMap,
    fmt,
    path::{Path, PathBuf},
};

pub use self::json::Origin;
pub use self::write::write;
use super::{Environment, Topology, TopologyError};
use resource::Resource;

/// How the import runs.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Topology name (default: the ASE's, the web app's or the VNet's name).
    pub name: Option<String>,
    /// Overrides the environment read from the ASE or web app.
    pub environment: Option<Environment>,
    /// Microsoft's weekly service-tags JSON.
    pub service_tags: Option<PathBuf>,
    /// Add endpoints and scenario traffic for `observer lab run`.
    pub lab: bool,
}

/// An import problem. Located ones name the file, the JSON path and the
/// line:column of the value at fault.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: not valid JSON: {message}", path.display())]
    Json {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{origin}: expression `{expression}`: {message}")]
    Expression {
        origin: Origin,
        expression: String,
        message: String,
    },
    #[error("{origin}: {message}\n  hint: {hint}")]
    Shape {
        origin: Origin,
        message: String,
        hint: String,
    },
    #[error("{message}\n  hint: {hint}")]
    Network { message: String, hint: String },
    #[error("cannot read the service tags: {0}")]
    ServiceTags(String),
    #[error("the imported topology does not load: {error}{}", from.as_deref().map(|f| format!("\n  the item came from {f}")).unwrap_or_default())]
    Written {
        error: TopologyError,
        from: Option<String>,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ImportError {
    pub(crate) fn shape(origin: Origin, message: impl Into<String>, hint: &str) -> Self {
        Self::Shape {
            origin,
            message: message.into(),
            hint: hint.into(),
        }
    }

    pub(crate) fn network(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::Network {
            message: message.into(),
            hint: hint.into(),
        }
    }
}

/// Every resource read from the inputs, and what the readers noticed.
#[derive(Debug, Default)]
pub(crate) struct Inputs {
    pub resources: Vec<Resource>,
    pub notes: Vec<String>,
    pub files: Vec<PathBuf>,
}

impl Inputs {
    pub(crate) fn push(&mut self, resource: Resource) {
        self.resources.push(resource);
    }

    pub(crate) fn note(&mut self, note: String) {
        self.notes.push(note);
    }

    /// Reads one input file (an ARM template or `az` JSON).
    pub(crate) fn read(&mut self, path: &Path) -> Result<(), ImportError> {
        self.add(json::Doc::read(path)?, path)
    }

    /// Reads one input's text; `path` only labels it.
    pub(crate) fn read_text(&mut self, path: &Path, text: String) -> Result<(), ImportError> {
        self.add(json::Doc::parse(path, text)?, path)
    }

    fn add(&mut self, doc: json::Doc, path: &Path) -> Result<(), ImportError> {
        let doc = std::sync::Arc::new(doc);
        self.files.push(path.to_path_buf());
        if arm::is_template(&doc.root) {
            arm::read(&doc, self)
        } else {
            az::read(&doc, self)
        }
    }
}

/// Where one topology item came from: the resource and where it was
/// written (kept for comments now and for located reports later).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// `Microsoft.Network/networkSecurityGroups ase-nsg`
    pub resource: String,
    pub origin: Origin,
    /// The resource group, when the export names it (`az` output does,
    /// an ARM template does not): `check` puts it in its `az` commands.
    pub resource_group: Option<String>,
    /// What was read or assumed, when it is not obvious.
    pub detail: Option<String>,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.resource, self.origin)?;
        if let Some(group) = &self.resource_group {
            write!(f, " in resource group {group}")?;
        }
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

/// The sources of every item, keyed like `nsg:ase-nsg`, `rule:ase-nsg/allow-sql`,
/// `subnet:ase`, `route:to-internet`, `private_endpoint:kv`, `traffic:azure-sql`.
#[derive(Clone, Debug, Default)]
pub struct Provenance {
    items: BTreeMap<String, Vec<Source>>,
    /// Lines for the item that are not sources (assumptions, stand-ins).
    remarks: BTreeMap<String, Vec<String>>,
}

impl Provenance {
    pub fn add(&mut self, item: impl Into<String>, source: Source) {
        let sources = self.items.entry(item.into()).or_default();
        if !sources.contains(&source) {
            sources.push(source);
        }
    }

    pub fn remark(&mut self, item: impl Into<String>, text: impl Into<String>) {
        self.remarks
            .entry(item.into())
            .or_default()
            .push(text.into());
    }

    pub fn sources(&self, item: &str) -> &[Source] {
        self.items.get(item).map_or(&[], Vec::as_slice)
    }

    pub fn remarks(&self, item: &str) -> &[String] {
        self.remarks.get(item).map_or(&[], Vec::as_slice)
    }
}

/// What the import read, what it ignored and what it had to assume.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub files: Vec<PathBuf>,
    /// Resource type -> count, for types that became topology items.
    pub read: BTreeMap<String, usize>,
    /// Resource type -> count, for types the topology does not model.
    pub ignored: BTreeMap<String, usize>,
    pub notes: Vec<String>,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |map: &BTreeMap<String, usize>| {
            map.iter()
                .map(|(k, n)| format!("{n} {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !self.read.is_empty() {
            writeln!(f, "read: {}", list(&self.read))?;
        }
        if !self.ignored.is_empty() {
            writeln!(f, "ignored: {}", list(&self.ignored))?;
        }
        for note in &self.notes {
            writeln!(f, "note: {note}")?;
        }
        Ok(())
    }
}

/// The result of an import: the topology (before the TOML round trip),
/// where each item came from, and the summary.
#[derive(Debug)]
pub struct Imported {
    pub topology: Topology,
    pub provenance: Provenance,
    pub summary: Summary,
}

/// Reads `inputs` (any mix and order of ARM templates and `az` JSON) into
/// a topology. `out` is where the TOML will be written: the service-tag
/// file is named relative to it.
///
/// # Errors
///
/// Unreadable or malformed files, unsupported expressions, and networks
/// the topology cannot describe (no ASE subnet, no VNet), each located
/// and with a hint.
pub fn import(inputs: &[PathBuf], out: &Path, options: &Options) -> Result<Imported, ImportError> {
    let mut read = Inputs::default();
    for path in inputs {
        read.read(path)?;
    }
    import_read(&read, out, options)
}

/// [`import`] of texts already in memory, each labelled by its path (the
/// fuzz targets' entry point: the same readers without the file system).
pub(crate) fn import_texts(
    texts: Vec<(PathBuf, String)>,
    out: &Path,
    options: &Options,
) -> Result<Imported, ImportError> {
    let mut read = Inputs::default();
    for (path, text) in texts {
        read.read_text(&path, text)?;
    }
    import_read(&read, out, options)
}

fn import_read(read: &Inputs, out: &Path, options: &Options) -> Result<Imported, ImportError> {
    let mut imported = build::build(read, out, options)?;
    if options.lab {
        let tags = match &options.service_tags {
            Some(path) => super::ServiceTags::load(path).map_err(ImportError::ServiceTags)?,
            None => super::ServiceTags::default(),
        };
        lab::generate(&mut imported, &tags)?;
    }
    Ok(imported)
}

/// Writes `imported` as TOML to `out` and loads it back with the topology
/// loader (the file is only kept when it loads).
///
/// # Errors
///
/// A write failure, or a topology the loader refuses (with the resource
/// the offending line came from).
pub fn save(imported: &Imported, out: &Path) -> Result<Topology, ImportError> {
    let text = write(&imported.topology, &imported.provenance, &imported.summary);
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        out.file_name()
            .map_or("topology.toml".into(), |n| n.to_string_lossy())
    ));
    std::fs::write(&tmp, &text).map_err(|source| ImportError::Write {
        path: tmp.clone(),
        source,
    })?;
    match Topology::load(&tmp) {
        Ok(topology) => {
            std::fs::rename(&tmp, out).map_err(|source| ImportError::Write {
                path: out.to_path_buf(),
                source,
            })?;
            Ok(topology)
        }
        Err(mut error) => {
            let _ = std::fs::remove_file(&tmp);
            let from = write::source_above(&text, error.line);
            error.path = out.to_path_buf();
            Err(ImportError::Written { error, from })
        }
    }
}

#[cfg(test)]
mod tests;
