//! Post-hoc classification of recorded flows, as `observer classify` and
//! the Python wheel (`observer_py.Classifier`) run it: a classifier for one
//! topology and its catalogs, loaded once, with the DNS answers recorded
//! beside the flows (judged, and naming the flows they resolved); records
//! are classified in place, any number of batches with one state.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
};

use thiserror::Error;

use super::Classifier;
use crate::{
    catalog::Catalog,
    dns::{self, DnsAnswer, DnsTracker},
    files::ReadError,
    flow::FlowRecord,
    topology::{Topology, TopologyError},
};

/// Why a classifier could not be set up.
#[derive(Debug, Error)]
pub enum LoadError {
    #[error(transparent)]
    Topology(#[from] TopologyError),
    #[error("{0}")]
    Catalog(String),
    #[error("reading the dns tables")]
    Dns(#[from] ReadError),
}

impl Classifier {
    /// The classifier of a topology file, with extra catalog files tried
    /// before the built-in catalog.
    pub fn load(topology: &Path, catalogs: &[PathBuf]) -> Result<Self, LoadError> {
        let topology = Topology::load(topology)?;
        let extra: Vec<&Path> = catalogs.iter().map(PathBuf::as_path).collect();
        let catalog = Catalog::load(topology.cloud, &extra).map_err(LoadError::Catalog)?;
        Ok(Self::new(&topology, &catalog))
    }

    /// The files a classifier loaded from `topology` and `catalogs` (as
    /// [`Classifier::load`]) was built from, as `(name, path)`: the
    /// topology (`name`: its file name), the service tags file it names
    /// (`name` as the topology writes it, relative to the topology), each
    /// catalog (`name`: `catalog-N-FILE`). Written under those names in
    /// one directory, they load the same classifier elsewhere.
    pub fn source_files(&self, topology: &Path, catalogs: &[PathBuf]) -> Vec<(String, PathBuf)> {
        let name = |path: &Path| {
            path.file_name().map_or_else(
                || "topology.toml".into(),
                |n| n.to_string_lossy().into_owned(),
            )
        };
        let mut files = vec![(name(topology), topology.to_owned())];
        if let Some((relative, _)) = &self.topology.service_tags_file {
            let dir = topology.parent().unwrap_or(Path::new("."));
            files.push((relative.clone(), dir.join(relative)));
        }
        for (i, catalog) in catalogs.iter().enumerate() {
            files.push((
                format!("catalog-{}-{}", i + 1, name(catalog)),
                catalog.clone(),
            ));
        }
        files
    }

    /// The topology's name (the `observer.topology` file metadata).
    pub fn topology_name(&self) -> &str {
        &self.topology.name
    }
}

/// A classifier with the DNS answers recorded beside the flows.
#[derive(Debug)]
pub struct Recorded {
    classifier: Classifier,
    answers: Vec<DnsAnswer>,
    tracker: DnsTracker,
}

impl Recorded {
    /// `topology` and `catalogs` as [`Classifier::load`]; `dns`: files or
    /// directories whose `dns-*.parquet` tables (below a directory, beside
    /// a file) name the flows (none is fine).
    pub fn load(topology: &Path, catalogs: &[PathBuf], dns: &[PathBuf]) -> Result<Self, LoadError> {
        let classifier = Classifier::load(topology, catalogs)?;
        let answers = if dns.is_empty() {
            Vec::new()
        } else {
            dns::read_recorded(dns)?
        };
        Ok(Self::new(classifier, answers))
    }

    /// Judges `answers` (in time order) and remembers what they resolved.
    pub fn new(classifier: Classifier, mut answers: Vec<DnsAnswer>) -> Self {
        let mut tracker = DnsTracker::new(usize::MAX >> 1, dns::GRACE_NS);
        for answer in &mut answers {
            classifier.judge_dns(answer);
            tracker.record(answer);
        }
        Self {
            classifier,
            answers,
            tracker,
        }
    }

    pub fn classifier(&self) -> &Classifier {
        &self.classifier
    }

    /// The recorded answers, judged.
    pub fn answers(&self) -> &[DnsAnswer] {
        &self.answers
    }

    pub fn into_answers(self) -> Vec<DnsAnswer> {
        self.answers
    }

    /// Names the records' destinations from the recorded answers (where
    /// the record has no name yet) and classifies them, pairing directions
    /// among `records` and on the interfaces in `both_ways` (see
    /// [`Classifier::classify_part`]; empty for a whole set).
    pub fn classify(&self, records: &mut [FlowRecord], both_ways: &HashSet<String>) {
        if !self.answers.is_empty() {
            for record in records.iter_mut() {
                if record.dst_name.is_none() {
                    self.tracker.enrich(record);
                }
            }
        }
        self.classifier.classify_part(records, both_ways);
    }
}
