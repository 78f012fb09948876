//! `observer import`: recorded data from elsewhere turned into the same flow
//! records the capture produces, so `classify`, `report` and the lab see one
//! table. One file per source:
//!
//! | kind | file | input |
//! |---|---|---|
//! | `azure-vnet-flow-log` | [`vnet_flow_log`] | VNet flow log blobs (flowLogVersion 4) |
//! | `azure-nsg-flow-log` | [`nsg_flow_log`] | NSG flow log blobs (version 2, and 1) |
//! | `pcap` | [`capture`] | pcap and pcapng captures (gzipped or not), through the flow table |
//!
//! This module owns what they share: walking the inputs (local trees or
//! `az://` prefixes in Azure's `y=/m=/d=/h=/m=` layout, restricted to the
//! hours of `--since`/`--until`), the streaming JSON walk of Azure's
//! `{"records": [...]}` blobs, and the [`Summary`] of records in, out and
//! skipped, with the file and position of every bad input.

pub mod capture;
pub mod nsg_flow_log;
pub mod vnet_flow_log;

use std::{collections::BTreeMap, fmt, marker::PhantomData, net::IpAddr, str::FromStr};

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use thiserror::Error;

use crate::{
    flow::FlowRecord,
    storage::{Location, StorageError},
};

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
const PROBLEMS_KEPT: usize = 100;

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
    /// Other things read and not converted, or converted with a caveat,
    /// that are no fault of the input (unknown pcapng blocks, packets
    /// without a timestamp), by what they are.
    pub notes: BTreeMap<&'static str, u64>,
}

impl Summary {
    /// Counts one input record not converted.
    pub fn skip(&mut self, reason: &'static str, problem: Option<Problem>) {
        *self.skipped.entry(reason).or_default() += 1;
        if let Some(p) = problem {
            self.problem(p);
        }
    }

    pub fn problem(&mut self, problem: Problem) {
        self.problem_count += 1;
        if self.problems.len() < PROBLEMS_KEPT {
            self.problems.push(problem);
        }
    }

    /// Counts one flow-log tuple (`records_in`) and its outcome: a record
    /// for `emit`, one outside `window`, or a malformed tuple located by
    /// `line:column` in the blob `text` and by its JSON `path`.
    pub fn tuple(
        &mut self,
        outcome: Result<FlowRecord, String>,
        window: Window,
        (file, text, tuple): (&str, &[u8], &str),
        path: impl FnOnce() -> String,
        emit: &mut dyn FnMut(FlowRecord),
    ) {
        self.records_in += 1;
        match outcome {
            Ok(r) if !window.contains(r.start_ns) => self.skip("outside --since/--until", None),
            Ok(r) => {
                self.records_out += 1;
                emit(r);
            }
            Err(message) => {
                let path = path();
                let position = match position_of(text, tuple) {
                    Some(lc) => format!("{lc} ({path})"),
                    None => path,
                };
                self.skip(
                    "malformed tuple",
                    Some(Problem {
                        file: file.to_owned(),
                        position,
                        message: format!("{message} in `{tuple}`"),
                    }),
                );
            }
        }
    }

    /// Counts `n` of something worth a line in the summary.
    pub fn note(&mut self, what: &'static str, n: u64) {
        *self.notes.entry(what).or_default() += n;
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
        for (what, n) in &self.notes {
            let _ = writeln!(s, "  note {n}: {what}");
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
}

/// A UTC time window, `[since, until)` in nanoseconds.
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

/// The hour a blob covers in Azure's layout
/// (`.../y=2024/m=05/d=01/h=13/m=00/...`), as `[start, end)` in ns.
pub fn blob_hour(path: &str) -> Option<(i64, i64)> {
    let mut y = None;
    let mut mo = None;
    let mut d = None;
    let mut h = None;
    for segment in path.split('/') {
        let Some((key, value)) = segment.split_once('=') else {
            continue;
        };
        let value: u32 = match value.parse() {
            Ok(v) => v,
            Err(_) => continue,
        };
        match key {
            "y" => y = Some(value),
            // The first `m=` is the month, the one after `h=` the minute.
            "m" if h.is_none() => mo = Some(value),
            "d" => d = Some(value),
            "h" => h = Some(value),
            _ => {}
        }
    }
    let date = chrono::NaiveDate::from_ymd_opt(y? as i32, mo?, d?)?;
    let start = date
        .and_hms_opt(h?, 0, 0)?
        .and_utc()
        .timestamp_nanos_opt()?;
    Some((start, start + 3_600_000_000_000))
}

/// One input file or blob.
#[derive(Clone, Debug)]
pub struct InputFile {
    pub location: Location,
    pub relative: String,
    /// The name for messages.
    pub display: String,
}

/// The files of `inputs` that `kind` reads, restricted to the blob hours
/// that meet `window`; the rest are counted in `summary`.
pub fn input_files(
    kind: Kind,
    inputs: &[String],
    window: Window,
    summary: &mut Summary,
) -> Result<Vec<InputFile>, ImportError> {
    let mut files = Vec::new();
    for input in inputs {
        if kind == Kind::Pcap && input == capture::STDIN {
            files.push(capture::stdin_input());
            continue;
        }
        let location = Location::parse(input)?;
        let listed = location.list()?;
        let mut found = 0;
        for entry in listed {
            let display = if entry.relative.is_empty() {
                input.clone()
            } else {
                format!("{}/{}", input.trim_end_matches('/'), entry.relative)
            };
            let name = display.rsplit('/').next().unwrap_or_default();
            // A file named on the command line is read whatever its name.
            if !entry.relative.is_empty() && !kind.wants(name) {
                summary.skip_file("not a file of this kind (by name)");
                continue;
            }
            found += 1;
            if let Some((start, end)) = blob_hour(&display)
                && !window.overlaps(start, end)
            {
                summary.skip_file("blob hour outside --since/--until");
                continue;
            }
            files.push(InputFile {
                location: location.clone(),
                relative: entry.relative,
                display,
            });
        }
        if found == 0 {
            return Err(ImportError::NothingToRead {
                input: input.clone(),
                what: match kind {
                    Kind::Pcap => "pcap or pcapng (.pcap, .pcapng, .cap, also .gz)",
                    _ => "flow log (.json)",
                },
            });
        }
    }
    Ok(files)
}

// ---- Azure's `{"records": [...]}` blobs, one record at a time -------------

/// The 1-based line and column of byte `offset` of `text`.
pub fn line_column(text: &[u8], offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
    (line, column)
}

/// Where `part` (a slice borrowed from `text`) sits in `text`, as
/// `line:column`, or `None` when it was not borrowed (JSON escapes).
pub fn position_of(text: &[u8], part: &str) -> Option<String> {
    let start = text.as_ptr() as usize;
    let at = part.as_ptr() as usize;
    (at >= start && at < start + text.len()).then(|| {
        let (l, c) = line_column(text, at - start);
        format!("{l}:{c}")
    })
}

/// Deserializes `{"records": [R, ...]}` and hands each record (with its
/// index) to `each` as soon as it is read: memory holds one record at a
/// time. On a malformed or truncated blob, the records before the fault
/// have been handed over and the error says where the fault is.
pub fn for_each_record<'de, R, F>(text: &'de [u8], each: F) -> Result<(), serde_json::Error>
where
    R: de::Deserialize<'de>,
    F: FnMut(usize, R),
{
    struct Top<R, F>(F, PhantomData<R>);
    struct Records<'a, R, F>(&'a mut F, PhantomData<R>);

    impl<'de, R: de::Deserialize<'de>, F: FnMut(usize, R)> Visitor<'de> for Top<R, F> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(r#"an object {"records": [...]}"#)
        }
        fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
            let mut seen = false;
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                if key == "records" {
                    map.next_value_seed(Records(&mut self.0, PhantomData))?;
                    seen = true;
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            if seen {
                Ok(())
            } else {
                Err(de::Error::missing_field("records"))
            }
        }
    }
    impl<'de, R: de::Deserialize<'de>, F: FnMut(usize, R)> DeserializeSeed<'de> for Records<'_, R, F> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_seq(self)
        }
    }
    impl<'de, R: de::Deserialize<'de>, F: FnMut(usize, R)> Visitor<'de> for Records<'_, R, F> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an array of records")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let mut index = 0;
            while let Some(record) = seq.next_element::<R>()? {
                (self.0)(index, record);
                index += 1;
            }
            Ok(())
        }
    }

    let mut deserializer = serde_json::Deserializer::from_slice(text);
    deserializer.deserialize_map(Top(each, PhantomData))?;
    deserializer.end()
}

/// A blob that could not be read to the end, as a problem.
pub fn blob_problem(file: &str, error: &serde_json::Error) -> Problem {
    let hint = if error.is_eof() {
        "the blob ends early (truncated: an interrupted download or a blob still being written?)"
    } else {
        "malformed JSON"
    };
    Problem {
        file: file.to_owned(),
        position: format!("{}:{}", error.line(), error.column()),
        message: format!("{hint}: {error}; the records before this point were converted"),
    }
}

/// A JSON string borrowed from the blob when it has no escapes (so its
/// position in the blob is known and nothing is copied), owned otherwise.
#[derive(Debug)]
pub struct Text<'a>(pub std::borrow::Cow<'a, str>);

impl std::ops::Deref for Text<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de: 'a, 'a> de::Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'a>, E> {
                Ok(Text(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'a>, E> {
                Ok(Text(std::borrow::Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V(PhantomData))
    }
}

pub use crate::flow::Interner;

/// The last path segment of an Azure resource id (`.../virtualNetworks/NAME`).
pub fn resource_name(id: &str) -> &str {
    id.trim_end_matches('/').rsplit('/').next().unwrap_or(id)
}

/// Parses one comma-separated tuple field, naming it on error.
pub fn field<T: FromStr>(value: &str, name: &'static str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("{name} `{value}` is not valid"))
}

/// A counter field: empty means none reported (0).
pub fn counter(value: &str, name: &'static str) -> Result<u64, String> {
    if value.is_empty() {
        Ok(0)
    } else {
        field(value, name)
    }
}

/// Source and destination addresses of one version.
pub fn addresses(src: &str, dst: &str) -> Result<(IpAddr, IpAddr, u8), String> {
    let src: IpAddr = field(src, "source address")?;
    let dst: IpAddr = field(dst, "destination address")?;
    match (src, dst) {
        (IpAddr::V4(_), IpAddr::V4(_)) => Ok((src, dst, 4)),
        (IpAddr::V6(_), IpAddr::V6(_)) => Ok((src, dst, 6)),
        _ => Err(format!(
            "source {src} and destination {dst} are of different IP versions"
        )),
    }
}

/// Ports of a protocol that has them.
pub fn ports(protocol: u8, src: u16, dst: u16) -> (Option<u16>, Option<u16>) {
    match protocol {
        6 | 17 | 132 => (Some(src), Some(dst)),
        _ => (None, None),
    }
}

/// Makes a record from the fields every source has; the caller fills the rest.
pub fn base_record(
    start_ns: i64,
    src: IpAddr,
    dst: IpAddr,
    ip_version: u8,
    protocol: u8,
) -> FlowRecord {
    FlowRecord {
        start_ns,
        end_ns: start_ns,
        ip_version,
        protocol,
        src_addr: src,
        dst_addr: dst,
        ..FlowRecord::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_hours_follow_azures_layout() {
        let path = "insights-logs-flowlogflowevent/flowLogResourceID=/SUBSCRIPTIONS/X/y=2024/m=05/d=01/h=13/m=00/macAddress=00224871C205/PT1H.json";
        let (start, end) = blob_hour(path).unwrap();
        assert_eq!(start, parse_time("2024-05-01T13:00:00Z").unwrap());
        assert_eq!(end - start, 3_600_000_000_000);
        assert_eq!(blob_hour("plain/file.json"), None);
    }

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

    #[test]
    fn positions_are_lines_and_columns() {
        let text = b"{\n  \"a\": 1,\n  \"b\"";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 4), (2, 3));
    }
}
