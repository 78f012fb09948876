//! What the two Azure flow-log readers ([`super::vnet_flow_log`],
//! [`super::nsg_flow_log`]) share:
//!
//! - [`decode`]: a blob's bytes as UTF-8 JSON; a UTF-8 byte-order mark
//!   (PowerShell's `Out-File -Encoding utf8`) is skipped, UTF-16 with a
//!   byte-order mark (Windows PowerShell's default) converted;
//! - [`for_each_record`]: the streaming walk of Azure's
//!   `{"records": [...]}`, one record in memory at a time, which a reader
//!   can stop (a blob of the other kind);
//! - [`Shape`]: what a record's fields say it is, so a blob of the other
//!   kind is named, not read as zero tuples;
//! - [`BlobText`]: one blob being read, with a forward-only cursor that
//!   turns byte offsets into `line:column` in one pass over the blob
//!   (tuples are met in order, so each bad tuple costs only the bytes since
//!   the previous one), and the count of each tuple's outcome;
//! - the tuple field parsers, times in seconds or milliseconds included.

use std::{borrow::Cow, cell::Cell, fmt, marker::PhantomData, net::IpAddr, ops::ControlFlow};

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{Kind, OtherKind, PROBLEMS_KEPT, Problem, Summary, Window};
use crate::flow::FlowRecord;

// ---- bytes to JSON text -------------------------------------------------------

/// What [`decode`] did to a blob, for the summary's notes.
pub const NOTE_BOM: &str = "blob(s) starting with a UTF-8 byte-order mark (skipped)";
pub const NOTE_UTF16: &str = "blob(s) in UTF-16 (converted to UTF-8)";

/// The JSON text of a blob: as it is, without a UTF-8 byte-order mark, or
/// converted from UTF-16 (little- or big-endian, with a byte-order mark).
/// The note says which, for the summary.
pub fn decode(bytes: &[u8]) -> Result<(Cow<'_, [u8]>, Option<&'static str>), String> {
    let utf16 = |rest: &[u8], unit: fn([u8; 2]) -> u16| -> Result<Cow<'_, [u8]>, String> {
        if !rest.len().is_multiple_of(2) {
            return Err("UTF-16 text of an odd number of bytes (cut short?)".into());
        }
        let units = rest.chunks_exact(2).map(|c| unit([c[0], c[1]]));
        char::decode_utf16(units)
            .collect::<Result<String, _>>()
            .map(|text| Cow::Owned(text.into_bytes()))
            .map_err(|e| format!("not valid UTF-16: {e}"))
    };
    match bytes {
        [0xEF, 0xBB, 0xBF, rest @ ..] => Ok((Cow::Borrowed(rest), Some(NOTE_BOM))),
        [0xFF, 0xFE, rest @ ..] => Ok((utf16(rest, u16::from_le_bytes)?, Some(NOTE_UTF16))),
        [0xFE, 0xFF, rest @ ..] => Ok((utf16(rest, u16::from_be_bytes)?, Some(NOTE_UTF16))),
        _ => Ok((Cow::Borrowed(bytes), None)),
    }
}

// ---- Azure's `{"records": [...]}` blobs, one record at a time -------------

/// Deserializes `{"records": [R, ...]}` and hands each record (with its
/// index) to `each` as soon as it is read: memory holds one record at a
/// time. `each` returns [`ControlFlow::Break`] to stop reading the blob
/// (what follows is not parsed). On a malformed or truncated blob, the
/// records before the fault have been handed over and the error says where
/// the fault is.
pub fn for_each_record<'de, R, F>(text: &'de [u8], each: F) -> Result<(), serde_json::Error>
where
    R: de::Deserialize<'de>,
    F: FnMut(usize, R) -> ControlFlow<()>,
{
    struct Top<'s, R, F>(F, &'s Cell<bool>, PhantomData<R>);
    struct Records<'a, 's, R, F>(&'a mut F, &'s Cell<bool>, PhantomData<R>);

    impl<'de, R, F> Visitor<'de> for Top<'_, R, F>
    where
        R: de::Deserialize<'de>,
        F: FnMut(usize, R) -> ControlFlow<()>,
    {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(r#"an object {"records": [...]}"#)
        }
        fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
            let mut seen = false;
            while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                if key == "records" {
                    map.next_value_seed(Records(&mut self.0, self.1, PhantomData))?;
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
    impl<'de, R, F> DeserializeSeed<'de> for Records<'_, '_, R, F>
    where
        R: de::Deserialize<'de>,
        F: FnMut(usize, R) -> ControlFlow<()>,
    {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_seq(self)
        }
    }
    impl<'de, R, F> Visitor<'de> for Records<'_, '_, R, F>
    where
        R: de::Deserialize<'de>,
        F: FnMut(usize, R) -> ControlFlow<()>,
    {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an array of records")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let mut index = 0;
            while let Some(record) = seq.next_element::<R>()? {
                if (self.0)(index, record).is_break() {
                    self.1.set(true);
                    // Unwinds the deserializer; `stopped` tells it from a fault.
                    return Err(de::Error::custom("stopped"));
                }
                index += 1;
            }
            Ok(())
        }
    }

    let stopped = Cell::new(false);
    let mut deserializer = serde_json::Deserializer::from_slice(text);
    match deserializer.deserialize_map(Top(each, &stopped, PhantomData)) {
        Err(_) if stopped.get() => Ok(()),
        Err(e) => Err(e),
        Ok(()) => deserializer.end(),
    }
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

// ---- which kind a record is -----------------------------------------------------

/// What a record's fields say it is. The `category` decides when present
/// (Azure writes it in every record); otherwise the container of the
/// tuples does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// `category` `FlowLogFlowEvent`, `flowLogVersion`,
    /// `flowRecords.flows[].flowGroups[].flowTuples`.
    Vnet,
    /// `category` `NetworkSecurityGroupFlowEvent`,
    /// `properties.flows[].flows[].flowTuples`.
    Nsg,
    /// Neither: not a flow-log record.
    Unknown,
}

impl Shape {
    /// From the record's `category`, whether it has a VNet flow log's
    /// fields (`flowRecords`, `flowLogVersion`) and whether it has an NSG
    /// flow log's (`properties`).
    pub fn of(category: Option<&str>, vnet_fields: bool, nsg_fields: bool) -> Self {
        match category {
            Some(c) if c.eq_ignore_ascii_case("FlowLogFlowEvent") => Self::Vnet,
            Some(c) if c.eq_ignore_ascii_case("NetworkSecurityGroupFlowEvent") => Self::Nsg,
            _ if vnet_fields => Self::Vnet,
            _ if nsg_fields => Self::Nsg,
            _ => Self::Unknown,
        }
    }

    fn kind(self) -> Option<Kind> {
        match self {
            Self::Vnet => Some(Kind::AzureVnetFlowLog),
            Self::Nsg => Some(Kind::AzureNsgFlowLog),
            Self::Unknown => None,
        }
    }

    /// The shape's name and fields, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Vnet => {
                "a VNet flow log record: category FlowLogFlowEvent, flowRecords.flows[].flowGroups[].flowTuples"
            }
            Self::Nsg => {
                "an NSG flow log record: category NetworkSecurityGroupFlowEvent, properties.flows[].flows[].flowTuples"
            }
            Self::Unknown => {
                "not a flow-log record (neither flowRecords, as in VNet flow logs, nor properties, as in NSG flow logs)"
            }
        }
    }
}

// ---- one blob being read ---------------------------------------------------------

/// Line and column of byte offsets in one text, for offsets met mostly in
/// increasing order (as the walk meets tuples): a call scans only the bytes
/// since the previous one; an earlier offset starts over from the top.
#[derive(Clone, Debug)]
pub struct Positions<'a> {
    text: &'a [u8],
    at: usize,
    line: usize,
    line_start: usize,
}

impl<'a> Positions<'a> {
    pub fn new(text: &'a [u8]) -> Self {
        Self {
            text,
            at: 0,
            line: 1,
            line_start: 0,
        }
    }

    /// The 1-based line and column (in bytes) of `offset`.
    pub fn line_column(&mut self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        if offset < self.at {
            *self = Self::new(self.text);
        }
        for (i, &byte) in self.text[self.at..offset].iter().enumerate() {
            if byte == b'\n' {
                self.line += 1;
                self.line_start = self.at + i + 1;
            }
        }
        self.at = offset;
        (self.line, offset - self.line_start + 1)
    }

    /// Where `part` (a slice borrowed from the text) starts, as
    /// `line:column`, or `None` when it is not borrowed from it (a JSON
    /// string with escapes is a copy).
    pub fn of(&mut self, part: &str) -> Option<String> {
        let start = self.text.as_ptr() as usize;
        let at = part.as_ptr() as usize;
        (at >= start && at < start + self.text.len()).then(|| {
            let (l, c) = self.line_column(at - start);
            format!("{l}:{c}")
        })
    }
}

/// The 1-based line and column of byte `offset` of `text` (one scan).
pub fn line_column(text: &[u8], offset: usize) -> (usize, usize) {
    Positions::new(text).line_column(offset)
}

/// A tuple turned into a record, with a note when its input needed an
/// adjustment (a time in seconds where milliseconds were expected).
#[derive(Debug)]
pub struct Parsed {
    pub record: FlowRecord,
    pub note: Option<&'static str>,
}

/// One blob being read: its name for messages, its text, the time window
/// and the position cursor.
#[derive(Debug)]
pub struct BlobText<'a> {
    pub file: &'a str,
    pub text: &'a [u8],
    pub window: Window,
    positions: Positions<'a>,
}

impl<'a> BlobText<'a> {
    pub fn new(file: &'a str, text: &'a [u8], window: Window) -> Self {
        Self {
            file,
            text,
            window,
            positions: Positions::new(text),
        }
    }

    /// Counts one tuple (`records_in`) and its outcome: a record for
    /// `emit`, one outside the window, or a malformed tuple, located by
    /// `line:column` (for the problems kept) and by its JSON `path`.
    pub fn tuple(
        &mut self,
        summary: &mut Summary,
        outcome: Result<Parsed, String>,
        tuple: &str,
        path: impl FnOnce() -> String,
        emit: &mut dyn FnMut(FlowRecord),
    ) {
        summary.records_in += 1;
        match outcome {
            Ok(parsed) => {
                if let Some(note) = parsed.note {
                    summary.note(note, 1);
                }
                if self.window.contains(parsed.record.start_ns) {
                    summary.records_out += 1;
                    emit(parsed.record);
                } else {
                    summary.skip(OUTSIDE_WINDOW, None);
                }
            }
            Err(message) => {
                // Only problems kept verbatim need their place.
                let problem = (summary.problems.len() < PROBLEMS_KEPT).then(|| {
                    let path = path();
                    Problem {
                        file: self.file.to_owned(),
                        position: match self.positions.of(tuple) {
                            Some(lc) => format!("{lc} ({path})"),
                            None => path,
                        },
                        message: format!("{message} in `{tuple}`"),
                    }
                });
                summary.skip("malformed tuple", None);
                match problem {
                    Some(p) => summary.problem(p),
                    None => summary.problem_count += 1,
                }
            }
        }
    }

    /// A record that is not of this kind: the first one stops the blob as
    /// one of the other kind (when it is one); a later one is skipped with
    /// a problem. Returns whether to stop.
    pub fn wrong_record(
        &mut self,
        summary: &mut Summary,
        index: usize,
        found: Shape,
        reading: Kind,
    ) -> ControlFlow<()> {
        if index == 0
            && let Some(kind) = found.kind()
        {
            summary.other_kind = Some(OtherKind {
                file: self.file.to_owned(),
                kind,
                reading,
                evidence: format!("records[0] is {}", found.describe()),
            });
            return ControlFlow::Break(());
        }
        summary.skip(
            "record of another shape (its tuples not read)",
            Some(Problem {
                file: self.file.to_owned(),
                position: format!("records[{index}]"),
                message: format!("{}, in {} blob", found.describe(), reading.title()),
            }),
        );
        ControlFlow::Continue(())
    }
}

/// The skip reason of tuples outside `--since`/`--until`.
pub const OUTSIDE_WINDOW: &str = "outside --since/--until";

/// A JSON string borrowed from the blob when it has no escapes (so its
/// position in the blob is known and nothing is copied), owned otherwise.
#[derive(Debug)]
pub struct Text<'a>(pub Cow<'a, str>);

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
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V(PhantomData))
    }
}

// ---- tuple fields --------------------------------------------------------------

/// The last path segment of an Azure resource id (`.../virtualNetworks/NAME`).
pub fn resource_name(id: &str) -> &str {
    id.trim_end_matches('/').rsplit('/').next().unwrap_or(id)
}

/// Parses one comma-separated tuple field, naming it on error.
pub fn field<T: std::str::FromStr>(value: &str, name: &'static str) -> Result<T, String> {
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

/// The unit a flow-log kind writes its tuple times in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeUnit {
    /// VNet flow logs (13 digits).
    Millis,
    /// NSG flow logs (10 digits).
    Seconds,
}

/// Below this a tuple time is seconds since the epoch, from it on
/// milliseconds: 10^11 ms is 1973-03-03, 10^11 s the year 5138, so the
/// two never meet for times a flow log can hold.
const SECONDS_BELOW: i64 = 100_000_000_000;

pub const NOTE_VNET_SECONDS: &str =
    "VNet tuple time(s) in seconds (10 digits), not milliseconds: read as seconds";
pub const NOTE_NSG_MILLIS: &str =
    "NSG tuple time(s) in milliseconds (13 digits), not seconds: read as milliseconds";

/// A tuple's time in ns since the epoch. The documented unit is
/// `expected`, but Azure's own examples show VNet tuples in seconds too:
/// the magnitude decides (see [`SECONDS_BELOW`]) and a note says when it
/// was not the documented unit.
pub fn tuple_time(text: &str, expected: TimeUnit) -> Result<(i64, Option<&'static str>), String> {
    let value: i64 = field(text, "time (since the epoch)")?;
    if value < 0 {
        return Err(format!("time `{text}` is before 1970"));
    }
    let (unit, note) = match (value < SECONDS_BELOW, expected) {
        (true, TimeUnit::Seconds) => (1_000_000_000, None),
        (true, TimeUnit::Millis) => (1_000_000_000, Some(NOTE_VNET_SECONDS)),
        (false, TimeUnit::Millis) => (1_000_000, None),
        (false, TimeUnit::Seconds) => (1_000_000, Some(NOTE_NSG_MILLIS)),
    };
    let ns = value
        .checked_mul(unit)
        .ok_or_else(|| format!("time `{text}` is out of range"))?;
    Ok((ns, note))
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
    fn positions_are_lines_and_columns_in_one_pass() {
        let text = b"{\n  \"a\": 1,\n  \"b\"";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 4), (2, 3));
        let mut positions = Positions::new(text);
        assert_eq!(positions.line_column(4), (2, 3));
        assert_eq!(positions.line_column(14), (3, 3));
        // Backwards starts over and still agrees.
        assert_eq!(positions.line_column(1), (1, 2));
        assert_eq!(positions.line_column(99), line_column(text, text.len()));
    }

    #[test]
    fn byte_order_marks_are_skipped_or_converted() {
        let json = br#"{"records":[]}"#;
        let (text, note) = decode(json).unwrap();
        assert_eq!((&*text, note), (&json[..], None));
        let with_bom = [&[0xEF, 0xBB, 0xBF][..], json].concat();
        let (text, note) = decode(&with_bom).unwrap();
        assert_eq!((&*text, note), (&json[..], Some(NOTE_BOM)));
        let utf16le: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain(json.iter().flat_map(|&b| [b, 0]))
            .collect();
        let (text, note) = decode(&utf16le).unwrap();
        assert_eq!((&*text, note), (&json[..], Some(NOTE_UTF16)));
        let utf16be: Vec<u8> = [0xFE, 0xFF]
            .into_iter()
            .chain(json.iter().flat_map(|&b| [0, b]))
            .collect();
        assert_eq!(&*decode(&utf16be).unwrap().0, &json[..]);
        assert!(decode(&utf16le[..5]).unwrap_err().contains("odd number"));
    }

    #[test]
    fn tuple_times_in_either_unit_are_told_apart() {
        let ms = 1_663_146_003_599i64;
        assert_eq!(
            tuple_time("1663146003599", TimeUnit::Millis).unwrap(),
            (ms * 1_000_000, None)
        );
        // The docs' bandwidth example: a VNet tuple in seconds.
        assert_eq!(
            tuple_time("1493763938", TimeUnit::Millis).unwrap(),
            (1_493_763_938_000_000_000, Some(NOTE_VNET_SECONDS))
        );
        assert_eq!(
            tuple_time("1542110402", TimeUnit::Seconds).unwrap(),
            (1_542_110_402_000_000_000, None)
        );
        assert_eq!(
            tuple_time("1542110402000", TimeUnit::Seconds).unwrap(),
            (1_542_110_402_000_000_000, Some(NOTE_NSG_MILLIS))
        );
        assert!(
            tuple_time("-1", TimeUnit::Millis)
                .unwrap_err()
                .contains("before 1970")
        );
        assert!(
            tuple_time("99999999999999999", TimeUnit::Millis)
                .unwrap_err()
                .contains("out of range")
        );
    }

    #[test]
    fn a_reader_can_stop_a_blob_without_a_fault() {
        let text = br#"{"records": [1, 2, 3, "not a number"], "after": 1}"#;
        let mut seen = Vec::new();
        for_each_record(text, |_, n: u32| {
            seen.push(n);
            if n == 2 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
        assert_eq!(seen, [1, 2]);
        let err = for_each_record(text, |_, _: u32| ControlFlow::Continue(())).unwrap_err();
        assert!(err.to_string().contains("expected u32"), "{err}");
    }
}
