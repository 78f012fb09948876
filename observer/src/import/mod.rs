//! `observer import`: recorded data from elsewhere turned into the same flow
//! records the capture produces, so `classify`, `report` and the lab see one
//! table. One file per source, and the parts they share:
//!
//! | file | owns |
//! |---|---|
//! | [`vnet_flow_log`] | `azure-vnet-flow-log`: VNet flow log blobs (flowLogVersion 4) |
//! | [`nsg_flow_log`] | `azure-nsg-flow-log`: NSG flow log blobs (version 2, and 1) |
//! | [`capture`] | `pcap`: pcap and pcapng captures (gzipped or not), streamed through the flow table |
//! | [`flow_log`] | what the flow-log readers share: decoding, the streaming `{"records": [...]}` walk, record shapes, positions, tuple fields |
//! | [`inputs`] | walking the inputs (local trees, `az://` prefixes), in Azure's `y=/m=/d=/h=` layout only the hours `--since`/`--until` need |
//! | [`blobs`] | flow-log blobs parsed on several threads, their records handed over in input order |
//! | [`output`] | where records go: classified in batches, Parquet named after each input blob and record hour |
//! | [`run`] | one import start to end, as the CLI and the Python wheel run it; the blob-hour prefixes of a distributed import |
//! | `mod.rs` | the kinds, the time window, and the [`Summary`] of records in, out and skipped, with the file and position of every bad input, and the exit status |

pub mod blobs;
pub mod capture;
pub mod flow_log;
pub mod inputs;
pub mod nsg_flow_log;
pub mod output;
pub mod run;
pub mod vnet_flow_log;

use std::{collections::BTreeMap, fmt};

use thiserror::Error;

pub use self::inputs::{InputFile, blob_hour, input_files};
pub use crate::flow::Interner;
use crate::storage::StorageError;

/// What `observer import` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// Azure VNet flow logs (JSON blobs, flowLogVersion 4).
    AzureVnetFlowLog,
    /// Azure NSG flow logs (JSON blobs, version 2; version 1 without counters).
    AzureNsgFlowLog,
    /// Packet captures (pcap or pcapng, as tcpdump or tshark write them).
    Pcap,
}

impl Kind {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::AzureVnetFlowLog => "azure-vnet-flow-log",
            Self::AzureNsgFlowLog => "azure-nsg-flow-log",
            Self::Pcap => "pcap",
        }
    }

    /// The kind in words, with its article.
    pub fn title(self) -> &'static str {
        match self {
            Self::AzureVnetFlowLog => "a VNet flow log",
            Self::AzureNsgFlowLog => "an NSG flow log",
            Self::Pcap => "a packet capture",
        }
    }

    /// File names this kind reads when walking a directory or prefix.
    fn wants(self, name: &str) -> bool {
        match self {
            Self::AzureVnetFlowLog | Self::AzureNsgFlowLog => name.ends_with(".json"),
            Self::Pcap => capture::is_capture_name(name),
        }
    }
}

#[derive(Debug, Error)]
pub enum ImportError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("`{input}` holds no {what} files")]
    NothingToRead { input: String, what: &'static str },
    #[error("writing the output")]
    Write(#[from] crate::files::WriteError),
    #[error("{0}")]
    Options(String),
}

/// One bad piece of input: where it is and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The file or blob.
    pub file: String,
    /// `line:column` and/or the JSON path or packet number.
    pub position: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.position, self.message)
    }
}

/// Problems kept verbatim; beyond this they are only counted.
pub const PROBLEMS_KEPT: usize = 100;

/// A blob of the other flow-log kind: the import stops there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtherKind {
    pub file: String,
    /// The kind it is.
    pub kind: Kind,
    /// The kind asked for.
    pub reading: Kind,
    /// Which fields say so.
    pub evidence: String,
}

impl fmt::Display for OtherKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is {}, not {} ({}): import it with `observer import {} ...`",
            self.file,
            self.kind.title(),
            self.reading.title(),
            self.evidence,
            self.kind.name()
        )
    }
}

/// What an import read, wrote and skipped, and why.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Files or blobs read.
    pub files: u64,
    /// Files or blobs skipped whole (outside the time window, other names).
    pub files_skipped: BTreeMap<&'static str, u64>,
    /// Tuples or packets read.
    pub records_in: u64,
    /// Flow records produced.
    pub records_out: u64,
    /// Tuples or packets not converted, by reason.
    pub skipped: BTreeMap<&'static str, u64>,
    /// Blobs or files that could not be read to the end (malformed or
    /// truncated): what came before the fault was converted.
    pub broken_files: u64,
    /// The first problems, with file and position.
    pub problems: Vec<Problem>,
    /// All problems, kept or not.
    pub problem_count: u64,
    /// Input converted after an adjustment (a byte-order mark skipped,
    /// seconds read where milliseconds were documented) or read and not
    /// converted through no fault of the input (unknown pcapng blocks),
    /// by what it is.
    pub notes: BTreeMap<&'static str, u64>,
    /// Files or blobs listed but not readable (deleted since the listing,
    /// no permission): nothing of them converted.
    pub unreadable: u64,
    /// Directories of Azure's `y=/m=/d=/h=` layout that cannot hold
    /// records of `--since`/`--until`, not listed.
    pub dirs_skipped: u64,
    /// A blob of the other flow-log kind, which stopped the import.
    pub other_kind: Option<OtherKind>,
}

impl Summary {
    /// Counts one input record not converted.
    pub fn skip(&mut self, reason: &'static str, problem: Option<Problem>) {
        *self.skipped.entry(reason).or_default() += 1;
        if let Some(p) = problem {
            self.problem(p);
        }
    }

    /// Adds what another part of the input counted (the next blob's
    /// summary, in input order): the problems kept are still the first ones.
    pub fn absorb(&mut self, other: Self) {
        let add = |into: &mut BTreeMap<&'static str, u64>, from: BTreeMap<&'static str, u64>| {
            for (k, n) in from {
                *into.entry(k).or_default() += n;
            }
        };
        self.files += other.files;
        add(&mut self.files_skipped, other.files_skipped);
        self.records_in += other.records_in;
        self.records_out += other.records_out;
        add(&mut self.skipped, other.skipped);
        self.broken_files += other.broken_files;
        let room = PROBLEMS_KEPT.saturating_sub(self.problems.len());
        self.problems.extend(other.problems.into_iter().take(room));
        self.problem_count += other.problem_count;
        add(&mut self.notes, other.notes);
        self.unreadable += other.unreadable;
        self.dirs_skipped += other.dirs_skipped;
        if self.other_kind.is_none() {
            self.other_kind = other.other_kind;
        }
    }

    pub fn problem(&mut self, problem: Problem) {
        self.problem_count += 1;
        if self.problems.len() < PROBLEMS_KEPT {
            self.problems.push(problem);
        }
    }

    /// Counts `n` of something worth a line in the summary.
    pub fn note(&mut self, what: &'static str, n: u64) {
        *self.notes.entry(what).or_default() += n;
    }

    /// Counts a file that could not be read, with the error's whole chain.
    pub fn unreadable(&mut self, file: &str, error: &dyn std::error::Error) {
        self.unreadable += 1;
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(e) = source {
            message.push_str(": ");
            message.push_str(&e.to_string());
            source = e.source();
        }
        self.problem(Problem {
            file: file.to_owned(),
            position: "-".into(),
            message: format!("{message}; nothing of it was converted"),
        });
    }

    pub fn skip_file(&mut self, reason: &'static str) {
        *self.files_skipped.entry(reason).or_default() += 1;
    }

    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }

    /// The summary for people.
    pub fn render(&self) -> String {
        use fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "read {} file(s): {} record(s) in, {} flow record(s) out, {} skipped",
            self.files,
            self.records_in,
            self.records_out,
            self.skipped_total()
        );
        for (reason, n) in &self.skipped {
            let _ = writeln!(s, "  skipped {n}: {reason}");
        }
        for (reason, n) in &self.files_skipped {
            let _ = writeln!(s, "  file(s) not read {n}: {reason}");
        }
        if self.dirs_skipped > 0 {
            let _ = writeln!(
                s,
                "  directories not listed {}: y=/m=/d=/h= outside --since/--until (and not the hour after)",
                self.dirs_skipped
            );
        }
        for (what, n) in &self.notes {
            let _ = writeln!(s, "  note {n}: {what}");
        }
        if self.unreadable > 0 {
            let _ = writeln!(
                s,
                "  {} file(s) could not be read (deleted since the listing? no permission?): nothing of them converted",
                self.unreadable
            );
        }
        if let Some(other) = &self.other_kind {
            let _ = writeln!(
                s,
                "  stopped at a blob of another kind (nothing after it was read): {other}"
            );
        }
        if self.broken_files > 0 {
            let _ = writeln!(
                s,
                "  {} file(s) malformed or truncated: converted up to the fault",
                self.broken_files
            );
        }
        for p in &self.problems {
            let _ = writeln!(s, "  {p}");
        }
        if self.problem_count > self.problems.len() as u64 {
            let _ = writeln!(
                s,
                "  ... and {} more problem(s)",
                self.problem_count - self.problems.len() as u64
            );
        }
        s
    }

    /// The exit status the summary calls for: 2 when the import is
    /// incomplete in a way to act on (a blob of the other kind stopped it,
    /// a file could not be read, or the input had problems and nothing
    /// converted), else 0. Malformed tuples and truncated blobs alone are
    /// reported, not failed: what they held is gone, the rest converted.
    pub fn exit_status(&self) -> u8 {
        let nothing = self.records_out == 0 && self.problem_count > 0;
        if self.other_kind.is_some() || self.unreadable > 0 || nothing {
            2
        } else {
            0
        }
    }
}

/// A UTC time window, `[since, until)` in nanoseconds: `--since` inclusive,
/// `--until` exclusive, so back-to-back windows take each instant once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Window {
    pub since_ns: Option<i64>,
    pub until_ns: Option<i64>,
}

impl Window {
    pub fn contains(&self, t_ns: i64) -> bool {
        self.since_ns.is_none_or(|s| t_ns >= s) && self.until_ns.is_none_or(|u| t_ns < u)
    }

    /// Whether `[start, end)` meets the window.
    pub fn overlaps(&self, start_ns: i64, end_ns: i64) -> bool {
        self.since_ns.is_none_or(|s| end_ns > s) && self.until_ns.is_none_or(|u| start_ns < u)
    }
}

/// Parses `--since`/`--until`: RFC 3339 (`2024-05-01T13:00:00Z`), a date
/// and hour (`2024-05-01T13`), or a date (`2024-05-01`), all UTC.
pub fn parse_time(text: &str) -> Result<i64, String> {
    use chrono::{NaiveDate, NaiveDateTime};
    let ns = |t: chrono::DateTime<chrono::Utc>| t.timestamp_nanos_opt().unwrap_or(i64::MAX);
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(ns(t.with_timezone(&chrono::Utc)));
    }
    for format in ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(ns(t.and_utc()));
        }
    }
    if let Some((date, hour)) = text.split_once('T')
        && let (Ok(d), Ok(h)) = (
            NaiveDate::parse_from_str(date, "%Y-%m-%d"),
            hour.parse::<u32>(),
        )
        && let Some(t) = d.and_hms_opt(h, 0, 0)
    {
        return Ok(ns(t.and_utc()));
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(ns(d.and_hms_opt(0, 0, 0).expect("midnight").and_utc()));
    }
    Err(format!(
        "`{text}` is not a UTC time: write 2024-05-01T13:00:00Z, 2024-05-01T13 or 2024-05-01"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_in_three_spellings() {
        let full = parse_time("2024-05-01T13:00:00Z").unwrap();
        assert_eq!(parse_time("2024-05-01T13").unwrap(), full);
        assert_eq!(
            parse_time("2024-05-01").unwrap(),
            full - 13 * 3_600_000_000_000
        );
        assert!(
            parse_time("yesterday")
                .unwrap_err()
                .contains("2024-05-01T13")
        );
    }
}
