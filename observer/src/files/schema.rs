//! The flow-record Parquet schema: column names and types are a contract
//! (snake_case, one row per flow per observation point per interval), and
//! the conversions between [`FlowRecord`]s and Arrow record batches.

use std::{net::IpAddr, sync::Arc};

use arrow::{
    array::{
        Array, ArrayBuilder, ArrayRef, AsArray, ListBuilder, RecordBatch, StringArray,
        StringBuilder, TimestampNanosecondArray, UInt8Array, UInt8Builder, UInt16Builder,
        UInt64Array, UInt64Builder,
    },
    datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit, UInt8Type, UInt16Type, UInt64Type},
};
use thiserror::Error;

use crate::flow::{FlowRecord, Interner, ObservationPoint, Origin};

/// Version of the flow file layout, written to the file metadata.
pub const SCHEMA_VERSION: &str = "2";

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
        expected: DataType,
    },
    #[error("column `{column}`, row {row}: {message}")]
    BadValue {
        column: &'static str,
        row: usize,
        message: String,
    },
}

fn utc() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
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
        Field::new("packets", DataType::UInt64, false),
        Field::new("bytes", DataType::UInt64, false),
        Field::new("tcp_flags", DataType::UInt8, false),
        Field::new("syn_count", DataType::UInt64, false),
        Field::new("fin_count", DataType::UInt64, false),
        Field::new("rst_count", DataType::UInt64, false),
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
        Field::new("reverse_packets", DataType::UInt64, true),
        Field::new("reverse_bytes", DataType::UInt64, true),
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
    let [mut reverse_packets, mut reverse_bytes] = [(); 2].map(|_| UInt64Builder::with_capacity(n));
    let [
        mut flow_state,
        mut nsg_rule,
        mut nsg_decision,
        mut encryption,
        mut direction_basis,
        mut acl_id,
    ] = [8; 6].map(text);

    for r in records {
        start.push(r.start_ns);
        end.push(r.end_ns);
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
        packets.push(r.packets);
        bytes.push(r.bytes);
        tcp_flags.push(r.tcp_flags);
        syn.push(r.syn_count);
        fin.push(r.fin_count);
        rst.push(r.rst_count);
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
        reverse_packets.append_option(o.reverse_packets);
        reverse_bytes.append_option(o.reverse_bytes);
        flow_state.append_option(o.flow_state.map(|s| s.as_str()));
        nsg_rule.append_option(o.nsg_rule.as_deref());
        nsg_decision.append_option(o.nsg_decision.map(|d| d.as_str()));
        encryption.append_option(o.encryption.as_deref());
        direction_basis.append_option(o.direction_basis.map(|b| b.as_str()));
        acl_id.append_option(o.acl_id.as_deref());
    }

    let time = |values: Vec<i64>| -> ArrayRef {
        Arc::new(TimestampNanosecondArray::from(values).with_timezone("UTC"))
    };
    let u8s = |values: Vec<u8>| -> ArrayRef { Arc::new(UInt8Array::from(values)) };
    let u64s = |values: Vec<u64>| -> ArrayRef { Arc::new(UInt64Array::from(values)) };
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
        u64s(packets),
        u64s(bytes),
        u8s(tcp_flags),
        u64s(syn),
        u64s(fin),
        u64s(rst),
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

/// Looks up a column by name and checks its type.
fn column<'a>(
    batch: &'a RecordBatch,
    name: &'static str,
    expected: &DataType,
) -> Result<&'a ArrayRef, SchemaError> {
    let column = batch
        .column_by_name(name)
        .ok_or_else(|| SchemaError::Missing {
            column: name,
            expected: expected.to_string(),
        })?;
    // Timestamps from other writers may carry another zone spelling; the unit is what matters.
    let same = match (column.data_type(), expected) {
        (DataType::Timestamp(unit, Some(_)), DataType::Timestamp(want, Some(_))) => unit == want,
        // Writers name list items differently (pyarrow: `element`).
        (DataType::List(found), DataType::List(want)) => found.data_type() == want.data_type(),
        (found, want) => found == want,
    };
    if !same {
        return Err(SchemaError::WrongType {
            column: name,
            found: column.data_type().clone(),
            expected: expected.clone(),
        });
    }
    Ok(column)
}

fn optional<'a>(
    batch: &'a RecordBatch,
    name: &'static str,
    expected: &DataType,
) -> Result<Option<&'a ArrayRef>, SchemaError> {
    match batch.column_by_name(name) {
        None => Ok(None),
        Some(_) => column(batch, name, expected).map(Some),
    }
}

/// Reads the records of one batch. The capture columns are required; the
/// enrichment columns are read when present.
pub fn from_batch(batch: &RecordBatch) -> Result<Vec<FlowRecord>, SchemaError> {
    let utf8 = DataType::Utf8;
    let times = |name| {
        column(batch, name, &utc())
            .map(|c| c.as_primitive::<arrow::datatypes::TimestampNanosecondType>())
    };
    let texts = |name| column(batch, name, &utf8).map(|c| c.as_string::<i32>());
    let u8s = |name| column(batch, name, &DataType::UInt8).map(|c| c.as_primitive::<UInt8Type>());
    let u16s =
        |name| column(batch, name, &DataType::UInt16).map(|c| c.as_primitive::<UInt16Type>());
    let u64s =
        |name| column(batch, name, &DataType::UInt64).map(|c| c.as_primitive::<UInt64Type>());
    let opt_texts = |name| optional(batch, name, &utf8).map(|c| c.map(|c| c.as_string::<i32>()));

    let (start, end) = (times("start_time")?, times("end_time")?);
    let (host, netns, iface, role) = (
        texts("host")?,
        texts("netns")?,
        texts("iface")?,
        texts("iface_role")?,
    );
    let direction = texts("direction")?;
    let (ip_version, protocol) = (u8s("ip_version")?, u8s("protocol")?);
    let (src_addr, dst_addr) = (texts("src_addr")?, texts("dst_addr")?);
    let (src_port, dst_port) = (u16s("src_port")?, u16s("dst_port")?);
    let (icmp_type, icmp_code, vlan_id) = (u8s("icmp_type")?, u8s("icmp_code")?, u16s("vlan_id")?);
    let (packets, bytes, tcp_flags) = (u64s("packets")?, u64s("bytes")?, u8s("tcp_flags")?);
    let (syn, fin, rst) = (u64s("syn_count")?, u64s("fin_count")?, u64s("rst_count")?);
    let end_reason = texts("end_reason")?;
    let chain_type = enrichment_fields()
        .into_iter()
        .find(|f| f.name() == "dns_chain")
        .expect("listed")
        .data_type()
        .clone();
    let dns_chain = optional(batch, "dns_chain", &chain_type)?.map(|c| c.as_list::<i32>());
    let enrich = [
        "dst_name",
        "category",
        "dependency",
        "expected_next_hop",
        "observed_path",
        "flow_type",
        "verdict",
        "reason",
    ]
    .map(opt_texts);
    let [
        dst_name,
        category,
        dependency,
        expected,
        observed,
        flow_type,
        verdict,
        reason,
    ] = enrich;
    let (dst_name, category, dependency) = (dst_name?, category?, dependency?);
    let (expected, observed, flow_type, verdict, reason) =
        (expected?, observed?, flow_type?, verdict?, reason?);
    let [
        source,
        flow_state,
        nsg_rule,
        nsg_decision,
        encryption,
        direction_basis,
        acl_id,
    ] = [
        "source",
        "flow_state",
        "nsg_rule",
        "nsg_decision",
        "encryption",
        "direction_basis",
        "acl_id",
    ]
    .map(opt_texts);
    let (source, flow_state, nsg_rule, nsg_decision, encryption, direction_basis, acl_id) = (
        source?,
        flow_state?,
        nsg_rule?,
        nsg_decision?,
        encryption?,
        direction_basis?,
        acl_id?,
    );
    let opt_u64s = |name| {
        optional(batch, name, &DataType::UInt64).map(|c| c.map(|c| c.as_primitive::<UInt64Type>()))
    };
    let (reverse_packets, reverse_bytes) =
        (opt_u64s("reverse_packets")?, opt_u64s("reverse_bytes")?);
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

        let index = batch.schema().index_of("bytes").unwrap();
        let mut columns = batch.columns().to_vec();
        columns[index] = Arc::new(arrow::array::Int64Array::from(vec![1500]));
        let mut fields: Vec<Field> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields[index] = Field::new("bytes", DataType::Int64, false);
        let mistyped = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
        let err = from_batch(&mistyped).unwrap_err().to_string();
        assert_eq!(err, "column `bytes` has type Int64, expected UInt64");
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
