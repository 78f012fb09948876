//! The key/value metadata of every Parquet file observer writes: one typed
//! struct whose fields name the keys once. Writers turn it into the file's
//! key/value pairs ([`FileMetadata::to_pairs`]); readers get it back
//! ([`FileMetadata::from_pairs`]), keeping keys of other writers as they
//! were.
//!
//! | key | who writes it |
//! |---|---|
//! | `observer.schema_version`, `observer.version`, `observer.run_id` | every writer |
//! | `observer.host`, `observer.netns`, `observer.interfaces`, `observer.attach`, `observer.capture_started`, `observer.dns_malformed`, `observer.counters`, `observer.lost_packets` | `observer run` (as of each flush) |
//! | `observer.source`, `observer.input` | `observer import` (the kind; the input blob of the file) |
//! | `observer.topology` | whoever classified the records (`run`, `import`, `classify`) |

use std::collections::BTreeMap;

/// What a Parquet file says about the run that wrote it; `None` is a key
/// the file does not carry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileMetadata {
    /// The flow schema's version ([`super::schema::SCHEMA_VERSION`]).
    pub schema_version: Option<String>,
    /// observer's version.
    pub version: Option<String>,
    pub run_id: Option<String>,
    pub host: Option<String>,
    /// The network namespace of the capture (empty: the host's).
    pub netns: Option<String>,
    /// The watched interfaces, as JSON.
    pub interfaces: Option<String>,
    /// `tcx` or `tc`.
    pub attach: Option<String>,
    /// The name of the topology the records were classified by.
    pub topology: Option<String>,
    pub capture_started: Option<String>,
    pub dns_malformed: Option<u64>,
    /// The kernel program's counters by reason, as JSON.
    pub counters: Option<String>,
    /// Packets the capture lost so far (cumulative within a run).
    pub lost_packets: Option<u64>,
    /// The import's kind (`azure-vnet-flow-log`, ...).
    pub source: Option<String>,
    /// The input blob or file an import's file holds the records of.
    pub input: Option<String>,
    /// Keys of other writers, as they were.
    pub other: BTreeMap<String, String>,
}

impl FileMetadata {
    /// The metadata every file of run `run_id` carries: this schema and
    /// this observer's version.
    pub fn of_run(run_id: impl Into<String>) -> Self {
        Self {
            schema_version: Some(super::schema::SCHEMA_VERSION.to_owned()),
            version: Some(env!("CARGO_PKG_VERSION").to_owned()),
            run_id: Some(run_id.into()),
            ..Self::default()
        }
    }

    /// The file's key/value pairs, in key order.
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        let mut pairs: BTreeMap<String, String> = self.other.clone();
        let mut put = |key: &str, value: Option<String>| {
            if let Some(value) = value {
                pairs.insert(format!("observer.{key}"), value);
            }
        };
        put("schema_version", self.schema_version.clone());
        put("version", self.version.clone());
        put("run_id", self.run_id.clone());
        put("host", self.host.clone());
        put("netns", self.netns.clone());
        put("interfaces", self.interfaces.clone());
        put("attach", self.attach.clone());
        put("topology", self.topology.clone());
        put("capture_started", self.capture_started.clone());
        put("dns_malformed", self.dns_malformed.map(|n| n.to_string()));
        put("counters", self.counters.clone());
        put("lost_packets", self.lost_packets.map(|n| n.to_string()));
        put("source", self.source.clone());
        put("input", self.input.clone());
        pairs.into_iter().collect()
    }

    /// The metadata of a file's key/value pairs; a count that is not a
    /// number is kept under [`FileMetadata::other`].
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut m = Self::default();
        for (key, value) in pairs {
            let count = |value: &str| value.parse::<u64>().ok();
            let field = match key.strip_prefix("observer.") {
                Some("schema_version") => &mut m.schema_version,
                Some("version") => &mut m.version,
                Some("run_id") => &mut m.run_id,
                Some("host") => &mut m.host,
                Some("netns") => &mut m.netns,
                Some("interfaces") => &mut m.interfaces,
                Some("attach") => &mut m.attach,
                Some("topology") => &mut m.topology,
                Some("capture_started") => &mut m.capture_started,
                Some("counters") => &mut m.counters,
                Some("source") => &mut m.source,
                Some("input") => &mut m.input,
                Some("dns_malformed") if count(&value).is_some() => {
                    m.dns_malformed = count(&value);
                    continue;
                }
                Some("lost_packets") if count(&value).is_some() => {
                    m.lost_packets = count(&value);
                    continue;
                }
                // The Arrow schema belongs to the file, not to the run:
                // the writer of a new file writes its own.
                None if key == "ARROW:schema" => continue,
                _ => {
                    m.other.insert(key, value);
                    continue;
                }
            };
            *field = Some(value);
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_round_trip_and_keep_other_writers_keys() {
        let mut m = FileMetadata::of_run("run-1");
        m.topology = Some("default".into());
        m.lost_packets = Some(7);
        m.other.insert("duckdb.version".into(), "x".into());
        let pairs = m.to_pairs();
        assert!(pairs.contains(&("observer.run_id".into(), "run-1".into())));
        assert!(pairs.contains(&("observer.lost_packets".into(), "7".into())));
        assert!(pairs.contains(&("duckdb.version".into(), "x".into())));
        assert!(!pairs.iter().any(|(k, _)| k == "observer.host"));
        assert_eq!(FileMetadata::from_pairs(pairs.clone()), m);
        let with_arrow = pairs
            .into_iter()
            .chain([("ARROW:schema".into(), "..".into())]);
        assert_eq!(FileMetadata::from_pairs(with_arrow), m, "the file's own");
    }

    #[test]
    fn a_count_that_is_no_number_is_kept_as_it_was() {
        let m = FileMetadata::from_pairs([("observer.lost_packets".into(), "many".into())]);
        assert_eq!(m.lost_packets, None);
        assert_eq!(m.other["observer.lost_packets"], "many");
    }
}
