//! The flow-record Parquet schema: column names and types are a contract
//! (snake_case, one row per flow per observation point per interval), and
//! the conversions between [`FlowRecord`]s and Arrow record batches.
//!
//! Schema 3 is what every Spark reads without flags: times are
//! `TIMESTAMP(MICROS, UTC)` (Spark's `TimestampType`; the sub-microsecond
//! part of a record's nanosecond times is dropped, rounding down), counters
//! signed 64-bit. The small unsigned columns stay `UInt8`/`UInt16` (Spark
//! reads them as `short`/`int`; DuckDB, pyarrow and pandas as before).
//! Reading accepts schemas 1 and 2 (nanosecond times, `UInt64` counters)
//! and whatever type another writer chose for a column, when its values fit
//! (see [`super::conform`]).

use std::{net::IpAddr, sync::Arc};

use arrow::{
    array::{
        Array, ArrayBuilder, ArrayRef, AsArray, Int64Array, Int64Builder, ListBuilder, RecordBatch,
        StringArray, StringBuilder, TimestampMicrosecondArray, UInt8Array, UInt8Builder,
        UInt16Builder,
    },
    datatypes::{
        DataType, Field, Schema, SchemaRef, TimeUnit, TimestampNanosecondType, UInt8Type,
        UInt16Type, UInt64Type,
    },
};
use thiserror::Error;

use super::conform::{Mismatch, UnsignedWidth, Want, conform};
use crate::flow::{FlowRecord, Interner, ObservationPoint, Origin};

/// Version of the flow file layout, written to the file metadata.
pub const SCHEMA_VERSION: &str = "3";

#[derive(Debug, Error)]
pub enum SchemaError {
    #[error("missing column `{column}` (expected {expected}); is this an observer flow file?")]
    Missing {
        column: &'static str,
        expected: String,
    },
    #[error("column `{column}` has type {found}, expected {expected}")]
    WrongType {
        column: &'static str,
        found: DataType,
        expected: &'static str,
    },
    #[error("column `{column}`, row {row}: {message}")]
    BadValue {
        column: &'static str,
        row: usize,
        message: String,
    },
}

fn utc() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// A record's nanosecond time as written: microseconds, rounded down (so
/// the order of times is kept, ties aside).
pub fn micros(ns: i64) -> i64 {
    ns.div_euclid(1_000)
}

/// A counter as written: signed 64-bit. No real counter reaches 2^63; one
/// that did would be written as the largest value, not wrapped.
fn signed(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// The required (measured) columns, in file order.
pub fn capture_fields() -> Vec<Field> {
    vec![
        Field::new("start_time", utc(), false),
        Field::new("end_time", utc(), false),
        Field::new("host", DataType::Utf8, false),
        Field::new("netns", DataType::Utf8, true),
        Field::new("iface", DataType::Utf8, false),
        Field::new("iface_role", DataType::Utf8, true),
        Field::new("direction", DataType::Utf8, false),
        Field::new("ip_version", DataType::UInt8, false),
        Field::new("protocol", DataType::UInt8, false),
        Field::new("src_addr", DataType::Utf8, false),
        Field::new("dst_addr", DataType::Utf8, false),
        Field::new("src_port", DataType::UInt16, true),
        Field::new("dst_port", DataType::UInt16, true),
        Field::new("icmp_type", DataType::UInt8, true),
        Field::new("icmp_code", DataType::UInt8, true),
        Field::new("vlan_id", DataType::UInt16, true),
        Field::new("packets", DataType::Int64, false),
        Field::new("bytes", DataType::Int64, false),
        Field::new("tcp_flags", DataType::UInt8, false),
        Field::new("syn_count", DataType::Int64, false),
        Field::new("fin_count", DataType::Int64, false),
        Field::new("rst_count", DataType::Int64, false),
        Field::new("end_reason", DataType::Utf8, false),
    ]
}

/// Enrichment columns (DNS names, classification); null until filled.
pub fn enrichment_fields() -> Vec<Field> {
    let text = |name: &str| Field::new(name, DataType::Utf8, true);
    vec![
        text("dst_name"),
        Field::new(
            "dns_chain",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            true,
        ),
        text("category"),
        text("dependency"),
        text("expected_next_hop"),
        text("observed_path"),
        text("flow_type"),
        text("verdict"),
        text("reason"),
    ]
}

/// Provenance columns (added in schema 2): where the record comes from and
/// what an imported source knows beyond the capture columns. `source` is
/// always written; the rest are null for the observer's own capture. Files
/// written before these columns existed read as `source = observer`.
/// `acl_id` came later (an extension, same schema version): files without
/// it read with `acl_id` null.
pub fn origin_fields() -> Vec<Field> {
    vec![
        Field::new("source", DataType::Utf8, false),
        Field::new("reverse_packets", DataType::Int64, true),
        Field::new("reverse_bytes", DataType::Int64, true),
        Field::new("flow_state", DataType::Utf8, true),
        Field::new("nsg_rule", DataType::Utf8, true),
        Field::new("nsg_decision", DataType::Utf8, true),
        Field::new("encryption", DataType::Utf8, true),
        Field::new("direction_basis", DataType::Utf8, true),
        Field::new("acl_id", DataType::Utf8, true),
    ]
}

pub fn flow_schema() -> SchemaRef {
    static SCHEMA: std::sync::LazyLock<SchemaRef> = std::sync::LazyLock::new(|| {
        let mut fields = capture_fields();
        fields.extend(enrichment_fields());
        fields.extend(origin_fields());
        Arc::new(Schema::new(fields))
    });
    SCHEMA.clone()
}

/// Dotted-quad text of an IPv4 address, as `Ipv4Addr`'s `Display` writes it
/// but without the formatting machinery (a third of the cost per address).
fn ipv4_text(octets: [u8; 4], buf: &mut [u8; 15]) -> &str {
    let mut n = 0;
    for (i, octet) in octets.into_iter().enumerate() {
        if i > 0 {
            buf[n] = b'.';
            n += 1;
        }
        if octet >= 100 {
            buf[n] = b'0' + octet / 100;
            n += 1;
        }
        if octet >= 10 {
            buf[n] = b'0' + octet / 10 % 10;
            n += 1;
        }
        buf[n] = b'0' + octet % 10;
        n += 1;
    }
    std::str::from_utf8(&buf[..n]).expect("ASCII digits and dots")
}

fn append_addr(builder: &mut StringBuilder, addr: &IpAddr) {
    use std::fmt::Write as _;
    match addr {
        IpAddr::V4(v4) => builder.append_value(ipv4_text(v4.octets(), &mut [0; 15])),
        IpAddr::V6(_) => {
            write!(builder, "{addr}").expect("writing to memory");
            builder.append_value("");
        }
    }
}

/// Builds one record batch of `records` in [`flow_schema`] order, in one
/// pass over the records (a record is read once, not once per column).
pub fn to_batch(records: &[FlowRecord]) -> RecordBatch {
    let n = records.len();
    // Byte capacities are guesses (short names, longer reasons); builders grow.
    let text = |bytes_per_row: usize| StringBuilder::with_capacity(n, n * bytes_per_row);
    let (mut start, mut end) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let [mut host, mut netns, mut iface, mut role, mut direction] = [8; 5].map(text);
    let (mut ip_version, mut protocol, mut tcp_flags) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let [mut src_addr, mut dst_addr] = [12; 2].map(text);
    let [mut src_port, mut dst_port, mut vlan_id] =
        [(); 3].map(|_| UInt16Builder::with_capacity(n));
    let [mut icmp_type, mut icmp_code] = [(); 2].map(|_| UInt8Builder::with_capacity(n));
    let [mut packets, mut bytes, mut syn, mut fin, mut rst] =
        [(); 5].map(|_| Vec::with_capacity(n));
    let mut end_reason = text(8);
    let mut dst_name = text(24);
    let mut chain = ListBuilder::new(StringBuilder::new());
    let [
        mut category,
        mut dependency,
        mut expected,
        mut observed,
        mut flow_type,
        mut verdict,
    ] = [12; 6].map(text);
    let mut reason = text(64);
    let mut source = text(8);
    let [mut reverse_packets, mut reverse_bytes] = [(); 2].map(|_| Int64Builder::with_capacity(n));
    let [
        mut flow_state,
        mut nsg_rule,
        mut nsg_decision,
        mut encryption,
        mut direction_basis,
        mut acl_id,
    ] = [8; 6].map(text);

    for r in records {
        start.push(micros(r.start_ns));
        end.push(micros(r.end_ns));
        host.append_value(&r.point.host);
        netns.append_option(r.point.netns.as_deref());
        iface.append_value(&r.point.iface);
        role.append_option(r.point.iface_role.as_deref());
        direction.append_value(r.direction.as_str());
        ip_version.push(r.ip_version);
        protocol.push(r.protocol);
        append_addr(&mut src_addr, &r.src_addr);
        append_addr(&mut dst_addr, &r.dst_addr);
        src_port.append_option(r.src_port);
        dst_port.append_option(r.dst_port);
        icmp_type.append_option(r.icmp_type);
        icmp_code.append_option(r.icmp_code);
        vlan_id.append_option(r.vlan_id);
        packets.push(signed(r.packets));
        bytes.push(signed(r.bytes));
        tcp_flags.push(r.tcp_flags);
        syn.push(signed(r.syn_count));
        fin.push(signed(r.fin_count));
        rst.push(signed(r.rst_count));
        end_reason.append_value(r.end_reason.as_str());
        dst_name.append_option(r.dst_name.as_deref());
        match &r.dns_chain {
            Some(names) => chain.append_value(names.iter().map(Some)),
            None => chain.append_null(),
        }
        category.append_option(r.category.as_deref());
        dependency.append_option(r.dependency.as_deref());
        expected.append_option(r.expected_next_hop.as_deref());
        observed.append_option(r.observed_path.as_deref());
        flow_type.append_option(r.flow_type.as_deref());
        verdict.append_option(r.verdict.as_deref());
        reason.append_option(r.reason.as_deref());
        let o = &r.origin;
        source.append_value(o.source.as_str());
        reverse_packets.append_option(o.reverse_packets.map(signed));
        reverse_bytes.append_option(o.reverse_bytes.map(signed));
        flow_state.append_option(o.flow_state.map(|s| s.as_str()));
        nsg_rule.append_option(o.nsg_rule.as_deref());
        nsg_decision.append_option(o.nsg_decision.map(|d| d.as_str()));
        encryption.append_option(o.encryption.as_deref());
        direction_basis.append_option(o.direction_basis.map(|b| b.as_str()));
        acl_id.append_option(o.acl_id.as_deref());
    }

    let time = |values: Vec<i64>| -> ArrayRef {
        Arc::new(TimestampMicrosecondArray::from(values).with_timezone("UTC"))
    };
    let u8s = |values: Vec<u8>| -> ArrayRef { Arc::new(UInt8Array::from(values)) };
    let i64s = |values: Vec<i64>| -> ArrayRef { Arc::new(Int64Array::from(values)) };
    let done = |b: &mut dyn ArrayBuilder| b.finish();
    let columns: Vec<ArrayRef> = vec![
        time(start),
        time(end),
        done(&mut host),
        done(&mut netns),
        done(&mut iface),
        done(&mut role),
        done(&mut direction),
        u8s(ip_version),
        u8s(protocol),
        done(&mut src_addr),
        done(&mut dst_addr),
        done(&mut src_port),
        done(&mut dst_port),
        done(&mut icmp_type),
        done(&mut icmp_code),
        done(&mut vlan_id),
        i64s(packets),
        i64s(bytes),
        u8s(tcp_flags),
        i64s(syn),
        i64s(fin),
        i64s(rst),
        done(&mut end_reason),
        done(&mut dst_name),
        done(&mut chain),
        done(&mut category),
        done(&mut dependency),
        done(&mut expected),
        done(&mut observed),
        done(&mut flow_type),
        done(&mut verdict),
        done(&mut reason),
        done(&mut source),
        done(&mut reverse_packets),
        done(&mut reverse_bytes),
        done(&mut flow_state),
        done(&mut nsg_rule),
        done(&mut nsg_decision),
        done(&mut encryption),
        done(&mut direction_basis),
        done(&mut acl_id),
    ];
    RecordBatch::try_new(flow_schema(), columns).expect("columns built in schema order")
}

/// Looks up a column by name and reads it as `want` (see [`conform`]).
fn column(
    batch: &RecordBatch,
    name: &'static str,
    want: Want,
    required: bool,
) -> Result<ArrayRef, SchemaError> {
    optional(batch, name, want, required)?.ok_or_else(|| SchemaError::Missing {
        column: name,
        expected: want.describe().to_owned(),
    })
}

/// A column that may be absent (older layouts, other writers).
fn optional(
    batch: &RecordBatch,
    name: &'static str,
    want: Want,
    required: bool,
) -> Result<Option<ArrayRef>, SchemaError> {
    let Some(found) = batch.column_by_name(name) else {
        return Ok(None);
    };
    conform(found, want, required)
        .map(Some)
        .map_err(|mismatch| match mismatch {
            Mismatch::Type { found } => SchemaError::WrongType {
                column: name,
                found,
                expected: want.describe(),
            },
            Mismatch::Value { row, message } => SchemaError::BadValue {
                column: name,
                row,
                message,
            },
        })
}

/// Reads the records of one batch. The capture columns are required; the
/// enrichment and provenance columns are read when present. Any layout
/// observer wrote (schemas 1 to 3) and any type another writer chose for a
/// column is read when the values fit (see [`conform`]).
pub fn from_batch(batch: &RecordBatch) -> Result<Vec<FlowRecord>, SchemaError> {
    const U8: Want = Want::Unsigned(UnsignedWidth::U8);
    const U16: Want = Want::Unsigned(UnsignedWidth::U16);
    const U64: Want = Want::Unsigned(UnsignedWidth::U64);
    let (start, end) = (
        column(batch, "start_time", Want::Time, true)?,
        column(batch, "end_time", Want::Time, true)?,
    );
    let (start, end) = (
        start.as_primitive::<TimestampNanosecondType>(),
        end.as_primitive::<TimestampNanosecondType>(),
    );
    let text = |name, required| column(batch, name, Want::Text, required);
    let [host, iface, direction, src_addr, dst_addr, end_reason] = [
        "host",
        "iface",
        "direction",
        "src_addr",
        "dst_addr",
        "end_reason",
    ]
    .map(|name| text(name, true));
    let [netns, role] = ["netns", "iface_role"].map(|name| text(name, false));
    let (host, iface, direction) = (host?, iface?, direction?);
    let (src_addr, dst_addr, end_reason) = (src_addr?, dst_addr?, end_reason?);
    let (netns, role) = (netns?, role?);
    let [
        host,
        iface,
        direction,
        src_addr,
        dst_addr,
        end_reason,
        netns,
        role,
    ] = [
        &host,
        &iface,
        &direction,
        &src_addr,
        &dst_addr,
        &end_reason,
        &netns,
        &role,
    ]
    .map(|a| a.as_string::<i32>());
    let number = |name, want, required| column(batch, name, want, required);
    let [ip_version, protocol, tcp_flags] =
        ["ip_version", "protocol", "tcp_flags"].map(|name| number(name, U8, true));
    let [icmp_type, icmp_code] = ["icmp_type", "icmp_code"].map(|name| number(name, U8, false));
    let [src_port, dst_port, vlan_id] =
        ["src_port", "dst_port", "vlan_id"].map(|name| number(name, U16, false));
    let [packets, bytes, syn, fin, rst] =
        ["packets", "bytes", "syn_count", "fin_count", "rst_count"]
            .map(|name| number(name, U64, true));
    let (ip_version, protocol, tcp_flags) = (ip_version?, protocol?, tcp_flags?);
    let (icmp_type, icmp_code) = (icmp_type?, icmp_code?);
    let (src_port, dst_port, vlan_id) = (src_port?, dst_port?, vlan_id?);
    let (packets, bytes, syn, fin, rst) = (packets?, bytes?, syn?, fin?, rst?);
    let [ip_version, protocol, tcp_flags, icmp_type, icmp_code] =
        [&ip_version, &protocol, &tcp_flags, &icmp_type, &icmp_code]
            .map(|a| a.as_primitive::<UInt8Type>());
    let [src_port, dst_port, vlan_id] =
        [&src_port, &dst_port, &vlan_id].map(|a| a.as_primitive::<UInt16Type>());
    let [packets, bytes, syn, fin, rst] =
        [&packets, &bytes, &syn, &fin, &rst].map(|a| a.as_primitive::<UInt64Type>());

    let dns_chain = optional(batch, "dns_chain", Want::TextList, false)?;
    let dns_chain = dns_chain.as_ref().map(|c| c.as_list::<i32>());
    let opt_text = |name| optional(batch, name, Want::Text, false);
    let enrich = [
        "dst_name",
        "category",
        "dependency",
        "expected_next_hop",
        "observed_path",
        "flow_type",
        "verdict",
        "reason",
        "source",
        "flow_state",
        "nsg_rule",
        "nsg_decision",
        "encryption",
        "direction_basis",
        "acl_id",
    ]
    .map(opt_text);
    let [
        dst_name,
        category,
        dependency,
        expected,
        observed,
        flow_type,
        verdict,
        reason,
        source,
        flow_state,
        nsg_rule,
        nsg_decision,
        encryption,
        direction_basis,
        acl_id,
    ] = enrich;
    let (dst_name, category, dependency) = (dst_name?, category?, dependency?);
    let (expected, observed, flow_type, verdict, reason) =
        (expected?, observed?, flow_type?, verdict?, reason?);
    let (source, flow_state, nsg_rule, nsg_decision, encryption, direction_basis, acl_id) = (
        source?,
        flow_state?,
        nsg_rule?,
        nsg_decision?,
        encryption?,
        direction_basis?,
        acl_id?,
    );
    fn strings(a: &Option<ArrayRef>) -> Option<&StringArray> {
        a.as_ref().map(|a| a.as_string::<i32>())
    }
    let [
        dst_name,
        category,
        dependency,
        expected,
        observed,
        flow_type,
        verdict,
        reason,
    ] = [
        &dst_name,
        &category,
        &dependency,
        &expected,
        &observed,
        &flow_type,
        &verdict,
        &reason,
    ]
    .map(strings);
    let [
        source,
        flow_state,
        nsg_rule,
        nsg_decision,
        encryption,
        direction_basis,
        acl_id,
    ] = [
        &source,
        &flow_state,
        &nsg_rule,
        &nsg_decision,
        &encryption,
        &direction_basis,
        &acl_id,
    ]
    .map(strings);
    let [reverse_packets, reverse_bytes] =
        ["reverse_packets", "reverse_bytes"].map(|name| optional(batch, name, U64, false));
    let (reverse_packets, reverse_bytes) = (reverse_packets?, reverse_bytes?);
    let reverse_packets = reverse_packets
        .as_ref()
        .map(|a| a.as_primitive::<UInt64Type>());
    let reverse_bytes = reverse_bytes
        .as_ref()
        .map(|a| a.as_primitive::<UInt64Type>());
    let opt_u64 = |a: Option<&arrow::array::PrimitiveArray<UInt64Type>>, i: usize| {
        a.filter(|a| a.is_valid(i)).map(|a| a.value(i))
    };

    let opt =
        |a: &arrow::array::PrimitiveArray<UInt8Type>, i: usize| a.is_valid(i).then(|| a.value(i));
    let opt16 =
        |a: &arrow::array::PrimitiveArray<UInt16Type>, i: usize| a.is_valid(i).then(|| a.value(i));
    let opt_text = |interner: &mut Interner, a: Option<&StringArray>, i: usize| {
        a.filter(|a| a.is_valid(i))
            .map(|a| interner.get(a.value(i)))
    };
    let bad = |column: &'static str, row: usize, message: String| SchemaError::BadValue {
        column,
        row,
        message,
    };
    let addr = |a: &StringArray, column: &'static str, i: usize| -> Result<IpAddr, SchemaError> {
        a.value(i).parse().map_err(|e| {
            bad(
                column,
                i,
                format!("`{}` is not an IP address ({e})", a.value(i)),
            )
        })
    };

    let mut interner = Interner::default();
    let mut records = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let point = ObservationPoint {
            host: interner.get(host.value(i)),
            netns: netns.is_valid(i).then(|| interner.get(netns.value(i))),
            iface: interner.get(iface.value(i)),
            iface_role: role.is_valid(i).then(|| interner.get(role.value(i))),
        };
        records.push(FlowRecord {
            start_ns: start.value(i),
            end_ns: end.value(i),
            point,
            direction: direction
                .value(i)
                .parse()
                .map_err(|e| bad("direction", i, e))?,
            ip_version: ip_version.value(i),
            protocol: protocol.value(i),
            src_addr: addr(src_addr, "src_addr", i)?,
            dst_addr: addr(dst_addr, "dst_addr", i)?,
            src_port: opt16(src_port, i),
            dst_port: opt16(dst_port, i),
            icmp_type: opt(icmp_type, i),
            icmp_code: opt(icmp_code, i),
            vlan_id: opt16(vlan_id, i),
            packets: packets.value(i),
            bytes: bytes.value(i),
            tcp_flags: tcp_flags.value(i),
            syn_count: syn.value(i),
            fin_count: fin.value(i),
            rst_count: rst.value(i),
            end_reason: end_reason
                .value(i)
                .parse()
                .map_err(|e| bad("end_reason", i, e))?,
            dst_name: opt_text(&mut interner, dst_name, i),
            dns_chain: dns_chain.filter(|c| c.is_valid(i)).map(|c| {
                let names = c.value(i);
                names
                    .as_string::<i32>()
                    .iter()
                    .flatten()
                    .map(str::to_owned)
                    .collect()
            }),
            category: opt_text(&mut interner, category, i),
            dependency: opt_text(&mut interner, dependency, i),
            expected_next_hop: opt_text(&mut interner, expected, i),
            observed_path: opt_text(&mut interner, observed, i),
            flow_type: opt_text(&mut interner, flow_type, i),
            verdict: opt_text(&mut interner, verdict, i),
            reason: opt_text(&mut interner, reason, i),
            origin: Origin {
                source: match source.filter(|a| a.is_valid(i)) {
                    Some(a) => a.value(i).parse().map_err(|e| bad("source", i, e))?,
                    None => Default::default(),
                },
                reverse_packets: opt_u64(reverse_packets, i),
                reverse_bytes: opt_u64(reverse_bytes, i),
                flow_state: match flow_state.filter(|a| a.is_valid(i)) {
                    Some(a) => Some(a.value(i).parse().map_err(|e| bad("flow_state", i, e))?),
                    None => None,
                },
                nsg_rule: nsg_rule
                    .filter(|a| a.is_valid(i))
                    .map(|a| interner.get(a.value(i))),
                nsg_decision: match nsg_decision.filter(|a| a.is_valid(i)) {
                    Some(a) => Some(a.value(i).parse().map_err(|e| bad("nsg_decision", i, e))?),
                    None => None,
                },
                encryption: encryption
                    .filter(|a| a.is_valid(i))
                    .map(|a| interner.get(a.value(i))),
                direction_basis: match direction_basis.filter(|a| a.is_valid(i)) {
                    Some(a) => Some(
                        a.value(i)
                            .parse()
                            .map_err(|e| bad("direction_basis", i, e))?,
                    ),
                    None => None,
                },
                acl_id: acl_id
                    .filter(|a| a.is_valid(i))
                    .map(|a| interner.get(a.value(i))),
            },
        });
    }
    Ok(records)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::flow::{Direction, EndReason};

    pub(crate) fn sample(port: u16) -> FlowRecord {
        FlowRecord {
            start_ns: 1_700_000_000_000_000_000,
            end_ns: 1_700_000_001_000_000_000,
            point: ObservationPoint {
                host: "lab".into(),
                netns: Some("ase".into()),
                iface: "eth0".into(),
                iface_role: None,
            },
            direction: Direction::Egress,
            ip_version: 4,
            protocol: 6,
            src_addr: "10.0.0.4".parse().unwrap(),
            dst_addr: "10.0.1.6".parse().unwrap(),
            src_port: Some(port),
            dst_port: Some(1433),
            icmp_type: None,
            icmp_code: None,
            vlan_id: Some(100),
            packets: 10,
            bytes: 1500,
            tcp_flags: 0x1b,
            syn_count: 1,
            fin_count: 1,
            rst_count: 0,
            end_reason: EndReason::EndOfFlow,
            dst_name: Some("sql.contoso.internal".into()),
            dns_chain: Some(vec!["a.example".into(), "b.privatelink.example".into()]),
            category: Some("vnet".into()),
            dependency: None,
            expected_next_hop: Some("VnetLocal".into()),
            observed_path: None,
            flow_type: Some("IntraVNet".into()),
            verdict: Some("ok".into()),
            reason: Some("stays in the VNet".into()),
            origin: Default::default(),
        }
    }

    #[test]
    fn ipv4_text_matches_display() {
        let mut buf = [0u8; 15];
        // Every octet value in every position.
        for o in 0..=255u8 {
            for octets in [
                [o, 0, 255, 9],
                [10, o, 99, 100],
                [1, 20, o, 7],
                [255, 255, 255, o],
            ] {
                let addr = std::net::Ipv4Addr::from(octets);
                assert_eq!(ipv4_text(octets, &mut buf), addr.to_string());
            }
        }
    }

    #[test]
    fn records_round_trip_through_a_batch() {
        let mut plain = sample(40001);
        plain.dns_chain = None;
        plain.dst_name = None;
        plain.src_addr = "fd00::4".parse().unwrap();
        let records = vec![sample(40000), plain];
        let batch = to_batch(&records);
        assert_eq!(batch.schema(), flow_schema());
        assert_eq!(from_batch(&batch).unwrap(), records);
    }

    #[test]
    fn a_missing_or_mistyped_column_is_named() {
        let batch = to_batch(&[sample(1)]);
        let without = batch
            .project(&(1..batch.num_columns()).collect::<Vec<_>>())
            .unwrap();
        let err = from_batch(&without).unwrap_err().to_string();
        assert!(err.contains("missing column `start_time`"), "{err}");

        let err = from_batch(&replace(
            &batch,
            "bytes",
            Arc::new(StringArray::from(vec!["1500"])),
        ))
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "column `bytes` has type Utf8, expected a non-negative integer"
        );
        let err = from_batch(&replace(
            &batch,
            "packets",
            Arc::new(Int64Array::from(vec![-1])),
        ))
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "column `packets`, row 0: -1 is not a non-negative integer"
        );
        let err = from_batch(&replace(
            &batch,
            "protocol",
            Arc::new(Int64Array::from(vec![None])),
        ))
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "column `protocol`, row 0: null where a value is required"
        );
    }

    /// `batch` with the column `name` replaced (its field typed and
    /// nullable as the new array).
    fn replace(batch: &RecordBatch, name: &str, array: ArrayRef) -> RecordBatch {
        let index = batch.schema().index_of(name).unwrap();
        let mut columns = batch.columns().to_vec();
        let mut fields: Vec<Field> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields[index] = Field::new(name, array.data_type().clone(), true);
        columns[index] = array;
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
    }

    /// The columns every Spark reads without flags: microsecond UTC times,
    /// signed counters, nothing it widens to a decimal.
    #[test]
    fn the_schema_is_what_spark_reads() {
        for field in flow_schema().fields() {
            let ok = match field.data_type() {
                DataType::Timestamp(unit, zone) => {
                    *unit == TimeUnit::Microsecond && zone.as_deref() == Some("UTC")
                }
                DataType::UInt64 | DataType::UInt32 => false,
                _ => true,
            };
            assert!(ok, "{field}");
        }
        assert_eq!(SCHEMA_VERSION, "3");
    }

    #[test]
    fn times_are_written_in_microseconds_rounded_down() {
        let mut record = sample(1);
        record.start_ns = 1_700_000_000_123_456_789;
        record.end_ns = -1_001; // before the epoch: still rounded down
        let batch = to_batch(&[record]);
        let written = batch
            .column_by_name("start_time")
            .unwrap()
            .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
            .value(0);
        assert_eq!(written, 1_700_000_000_123_456);
        let read = &from_batch(&batch).unwrap()[0];
        assert_eq!(
            (read.start_ns, read.end_ns),
            (1_700_000_000_123_456_000, -2_000)
        );
    }

    /// What Spark hands `mapInArrow` (and writes back): `short`/`int`/`long`
    /// for the integers, microsecond times in the session's zone, large
    /// strings; read as the same records.
    #[test]
    fn spark_types_read_as_the_same_records() {
        let records = vec![sample(40000), sample(40001)];
        let batch = to_batch(&records);
        let spark = |name: &str, to: DataType| {
            arrow::compute::cast(batch.column_by_name(name).unwrap(), &to).unwrap()
        };
        let mut widened = batch.clone();
        for (name, to) in [
            ("ip_version", DataType::Int16),
            ("protocol", DataType::Int16),
            ("tcp_flags", DataType::Int16),
            ("src_port", DataType::Int32),
            ("dst_port", DataType::Int32),
            ("vlan_id", DataType::Int32),
            ("icmp_type", DataType::Int16),
            (
                "start_time",
                DataType::Timestamp(TimeUnit::Microsecond, Some("Europe/Amsterdam".into())),
            ),
            ("end_time", DataType::Timestamp(TimeUnit::Microsecond, None)),
            ("host", DataType::LargeUtf8),
            ("verdict", DataType::Utf8View),
        ] {
            widened = replace(&widened, name, spark(name, to));
        }
        assert_eq!(from_batch(&widened).unwrap(), records);
    }

    #[test]
    fn enrichment_columns_are_optional_on_input() {
        let batch = to_batch(&[sample(1)]);
        let capture_only = batch
            .project(&(0..capture_fields().len()).collect::<Vec<_>>())
            .unwrap();
        let records = from_batch(&capture_only).unwrap();
        assert_eq!(
            (records[0].verdict.as_deref(), records[0].bytes),
            (None, 1500)
        );
    }

    #[test]
    fn acl_id_round_trips_and_files_written_before_it_read_as_null() {
        let mut record = sample(2);
        record.origin.source = crate::flow::Source::AzureVnetFlowLog;
        record.origin.acl_id = Some("00000000-1234-abcd-ef00-c1c2c3c4c5c6".into());
        let batch = to_batch(std::slice::from_ref(&record));
        assert_eq!(from_batch(&batch).unwrap(), [record.clone()]);
        // A file of schema 2 as written before the column existed.
        let index = batch.schema().index_of("acl_id").unwrap();
        let older: Vec<usize> = (0..batch.num_columns()).filter(|&i| i != index).collect();
        let older = batch.project(&older).unwrap();
        let read = from_batch(&older).unwrap();
        assert_eq!(read[0].origin.acl_id, None);
        assert_eq!(read[0].origin.source, crate::flow::Source::AzureVnetFlowLog);
    }
}
