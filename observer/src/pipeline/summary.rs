//! What a run did: [`RunSummary`], written to `run-ID.json` and printed at
//! the end, and the figures it is made of.

use std::{collections::BTreeMap, path::PathBuf};

use observer_common::counter;
use serde::Serialize;

use crate::capture::{Counters, Interface, LinkKind};

/// `stop_reason` of a run that ended because every watched interface disappeared.
pub(crate) const INTERFACES_GONE: &str = "interfaces-gone";

/// `stop_reason` of a run that ended because a file could not be written
/// (disk full, I/O error): see [`RunSummary::write_failures`].
pub(crate) const WRITE_FAILED: &str = "write-failed";

/// What a run did, written to `run-ID.json` and printed at the end.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct RunSummary {
    pub run_id: String,
    pub host: String,
    pub netns: Option<String>,
    pub interfaces: Vec<InterfaceInfo>,
    pub attach: &'static str,
    pub started: String,
    pub stopped: String,
    pub stop_reason: String,
    /// Flow records emitted, packets and bytes in them (written or in
    /// [`RunSummary::unwritten`]).
    pub records: u64,
    pub packets: u64,
    pub bytes: u64,
    pub files: Vec<PathBuf>,
    /// Writes that failed; the run stops at the first (`write-failed`).
    pub write_failures: Vec<WriteFailure>,
    /// What is in no file because its write failed.
    pub unwritten: Unwritten,
    /// Per-reason kernel counters (see `observer_common::counter`).
    pub counters: BTreeMap<&'static str, CounterValue>,
    /// Packets that reached no record (ring buffer full): must be 0.
    pub lost_packets: u64,
    /// DNS responses parsed into the `dns` table.
    pub dns_answers: u64,
    /// DNS messages that could not be decoded (counted, skipped).
    pub dns_malformed: u64,
    /// DNS queries seen (skipped: only responses name flows).
    pub dns_queries: u64,
    /// Resolutions the DNS tracker dropped to stay within `--dns-capacity`
    /// (oldest first).
    pub dns_evicted: u64,
    /// DNS answers written to `dns-*.parquet`.
    pub dns_files: Vec<PathBuf>,
    /// Why `run-ID.json` could not be written (the summary then goes to
    /// stderr).
    #[serde(skip)]
    pub summary_error: Option<String>,
}

/// A write that failed: the file it was for, why, and the rows it held
/// (still pending afterwards: the last flush tries them again).
#[derive(Clone, Debug, Serialize)]
pub(crate) struct WriteFailure {
    pub file: PathBuf,
    pub error: String,
    pub rows: usize,
}

/// Rows that reached no file.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub(crate) struct Unwritten {
    pub records: u64,
    pub packets: u64,
    pub bytes: u64,
    pub dns_answers: u64,
    /// DNS messages left in the ring, unread, once a write had failed.
    pub dns_messages: u64,
}

/// An error and its sources, as one line.
pub(super) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub(crate) struct CounterValue {
    pub packets: u64,
    pub bytes: u64,
}

/// A watched interface as the summary and the file metadata show it.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct InterfaceInfo {
    pub name: String,
    pub role: Option<String>,
    pub ifindex: u32,
    pub link: &'static str,
    /// When the interface disappeared mid-capture (RFC 3339), if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vanished: Option<String>,
}

impl From<&Interface> for InterfaceInfo {
    fn from(i: &Interface) -> Self {
        Self {
            name: i.name.clone(),
            role: i.role.clone(),
            ifindex: i.ifindex,
            link: match i.link {
                LinkKind::Ethernet => "ethernet",
                LinkKind::RawIp => "raw-ip",
            },
            vanished: None,
        }
    }
}

/// The kernel counters by name.
pub(super) fn counter_values(counters: &Counters) -> BTreeMap<&'static str, CounterValue> {
    counter::NAMES
        .iter()
        .zip(counters)
        .map(|(name, c)| {
            (
                *name,
                CounterValue {
                    packets: c.packets,
                    bytes: c.bytes,
                },
            )
        })
        .collect()
}

/// Packets that reached no record: their flow event found the ring buffer full.
pub(super) fn lost_packets(counters: &Counters) -> u64 {
    counters[counter::FLOW_EVENTS_LOST as usize].packets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_packets_count_only_the_ring_buffer_overflow() {
        let mut counters: Counters = [Default::default(); counter::LEN as usize];
        counters[counter::FLOW_MAP_FULL as usize].packets = 10;
        counters[counter::NON_IP as usize].packets = 3;
        assert_eq!(lost_packets(&counters), 0);
        counters[counter::FLOW_EVENTS_LOST as usize].packets = 2;
        assert_eq!(lost_packets(&counters), 2);
    }
}
