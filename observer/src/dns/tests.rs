use hickory_proto::{
    op::{Message, MessageType, OpCode, Query, ResponseCode},
    rr::{Name, RData, Record, RecordType, rdata},
};

use super::*;
use crate::files::Rows;

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn response(query: &str, records: &[(&str, u32, RData)], code: ResponseCode) -> Vec<u8> {
    let mut m = Message::new(7, MessageType::Response, OpCode::Query);
    m.metadata.response_code = code;
    m.add_query(Query::query(name(query), RecordType::A));
    for (owner, ttl, data) in records {
        m.add_answer(Record::from_rdata(name(owner), *ttl, data.clone()));
    }
    m.to_vec().unwrap()
}

fn cname(target: &str) -> RData {
    RData::CNAME(rdata::CNAME(name(target)))
}

fn a(addr: &str) -> RData {
    RData::A(rdata::A(addr.parse().unwrap()))
}

/// The Key Vault chain of the private-link docs, zone not linked.
fn public_chain() -> Vec<u8> {
    response(
        "contoso-kv.vault.azure.net.",
        &[
            (
                "contoso-kv.vault.azure.net.",
                300,
                cname("contoso-kv.privatelink.vaultcore.azure.net."),
            ),
            (
                "contoso-kv.privatelink.vaultcore.azure.net.",
                60,
                cname("data-prod-weu.vaultcore.azure.net."),
            ),
            ("data-prod-weu.vaultcore.azure.net.", 120, a("203.0.113.20")),
        ],
        ResponseCode::NoError,
    )
}

#[test]
fn privatelink_chains_are_followed_in_order() {
    let p = parse_response(&public_chain()).unwrap();
    assert_eq!(
        p.chain,
        [
            "contoso-kv.vault.azure.net",
            "contoso-kv.privatelink.vaultcore.azure.net",
            "data-prod-weu.vaultcore.azure.net"
        ]
    );
    assert_eq!(p.addresses, ["203.0.113.20".parse::<IpAddr>().unwrap()]);
    assert_eq!(
        (p.ttl, p.rcode, p.query_type.as_str()),
        (60, Rcode::NOERROR, "A")
    );

    // Zone linked: Azure DNS stops at the privatelink alias.
    let linked = response(
        "contoso-kv.vault.azure.net.",
        &[
            (
                "contoso-kv.vault.azure.net.",
                300,
                cname("contoso-kv.privatelink.vaultcore.azure.net."),
            ),
            (
                "contoso-kv.privatelink.vaultcore.azure.net.",
                10,
                a("10.0.2.5"),
            ),
        ],
        ResponseCode::NoError,
    );
    let p = parse_response(&linked).unwrap();
    assert_eq!(p.addresses, ["10.0.2.5".parse::<IpAddr>().unwrap()]);
    assert_eq!(p.chain.len(), 2);
}

#[test]
fn nxdomain_and_queries_are_told_apart() {
    let p = parse_response(&response(
        "nope.database.windows.net.",
        &[],
        ResponseCode::NXDomain,
    ))
    .unwrap();
    assert_eq!(p.rcode, Rcode::NXDOMAIN);
    assert_eq!(p.rcode.to_string(), "NXDOMAIN");
    assert!(p.addresses.is_empty());
    let query = query_message(1, "example.com.", RecordType::A).unwrap();
    assert_eq!(parse_response(&query), Err(Skip::Query));
}

#[test]
fn cname_loops_end() {
    let looped = response(
        "a.example.",
        &[
            ("a.example.", 5, cname("b.example.")),
            ("b.example.", 5, cname("a.example.")),
        ],
        ResponseCode::NoError,
    );
    let p = parse_response(&looped).unwrap();
    assert_eq!(p.chain, ["a.example", "b.example"]);
}

/// A chain as long as a TCP message holds, listed backwards: each step
/// found by its owner (each step used to scan every record again: seconds
/// for one message of a TCP capture).
#[test]
fn long_chains_are_followed_whatever_the_record_order() {
    const STEPS: usize = 1_500;
    let owners: Vec<String> = (0..=STEPS).map(|i| format!("n{i}.example.")).collect();
    let mut records: Vec<(&str, u32, RData)> = (0..STEPS)
        .rev()
        .map(|i| {
            (
                owners[i].as_str(),
                600 - (i % 7) as u32,
                cname(&owners[i + 1]),
            )
        })
        .collect();
    records.push((owners[STEPS].as_str(), 900, a("192.0.2.1")));
    // A second CNAME of a name in the chain is ignored, as is a record of
    // a name outside it.
    records.push((owners[5].as_str(), 1, cname("elsewhere.example.")));
    records.push(("elsewhere.example.", 1, a("192.0.2.9")));
    let bytes = response(&owners[0], &records, ResponseCode::NoError);
    assert!(bytes.len() <= 65_535, "one TCP message");
    let p = parse_response(&bytes).unwrap();
    assert_eq!(p.chain.len(), STEPS + 1);
    assert_eq!(p.chain[STEPS], format!("n{STEPS}.example"));
    assert_eq!(p.addresses, ["192.0.2.1".parse::<IpAddr>().unwrap()]);
    assert_eq!(p.ttl, 594);
}

#[test]
fn malformed_messages_are_skipped_not_fatal() {
    let good = public_chain();
    // Truncated at every length: never a panic, always a clean result.
    for len in 0..good.len() {
        let _ = parse_response(&good[..len]);
    }
    assert!(matches!(
        parse_response(&good[..20]),
        Err(Skip::Malformed(_))
    ));
    // A compression pointer that points at itself.
    let mut looped = good[..12].to_vec();
    looped[5] = 1; // one question
    looped.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    assert!(matches!(parse_response(&looped), Err(Skip::Malformed(_))));
    // Absurd counts: 65535 answers announced, none present.
    let mut absurd = good.clone();
    absurd[6] = 0xff;
    absurd[7] = 0xff;
    assert!(matches!(parse_response(&absurd), Err(Skip::Malformed(_))));
}

fn answer(client: &str, addr: &str, name: &str, time_s: i64, ttl: u32) -> DnsAnswer {
    DnsAnswer {
        time_ns: time_s * 1_000_000_000,
        iface: "eth0".into(),
        client: client.parse().unwrap(),
        server: "168.63.129.16".parse().unwrap(),
        query: name.into(),
        query_type: "A".into(),
        rcode: Rcode::NOERROR,
        chain: vec![name.into()],
        addresses: vec![addr.parse().unwrap()],
        ttl,
        verdict: None,
        reason: None,
    }
}

#[test]
fn tracker_honours_ttl_grace_and_client() {
    let mut t = DnsTracker::new(100, 5_000_000_000);
    t.record(&answer(
        "10.0.0.4",
        "203.0.113.30",
        "a.blob.core.windows.net",
        100,
        30,
    ));
    let at = |s: i64| s * 1_000_000_000;
    let c: IpAddr = "10.0.0.4".parse().unwrap();
    let addr: IpAddr = "203.0.113.30".parse().unwrap();
    assert!(t.lookup(c, addr, at(110)).is_some());
    assert!(
        t.lookup(c, addr, at(134)).is_some(),
        "within the grace period"
    );
    assert!(t.lookup(c, addr, at(136)).is_none(), "expired");
    assert!(t.lookup(c, addr, at(90)).is_none(), "before the answer");
    assert!(
        t.lookup("10.0.0.5".parse().unwrap(), addr, at(110))
            .is_none(),
        "other client"
    );
    // A later answer for the same address wins from its time on.
    t.record(&answer(
        "10.0.0.4",
        "203.0.113.30",
        "b.blob.core.windows.net",
        120,
        30,
    ));
    assert_eq!(
        t.lookup(c, addr, at(121)).unwrap().chain[0],
        "b.blob.core.windows.net"
    );
    assert_eq!(
        t.lookup(c, addr, at(110)).unwrap().chain[0],
        "a.blob.core.windows.net"
    );
}

#[test]
fn tracker_memory_is_bounded() {
    let mut t = DnsTracker::new(1000, 0);
    for i in 0..100_000u32 {
        let addr = std::net::Ipv4Addr::from(0xcb00_0000 + i).to_string();
        t.record(&answer("10.0.0.4", &addr, "x.example", 1, 60));
    }
    assert_eq!(t.len(), 1000);
    assert_eq!(t.evicted(), 99_000);
    assert!(t.entries.len() <= 1000);
}

#[test]
fn the_dns_table_round_trips() {
    let mut rows = vec![answer("10.0.0.4", "203.0.113.30", "a.example", 1, 60)];
    rows[0].verdict = Some(DnsVerdict::Ok);
    let batch = DnsAnswer::to_batch(&rows);
    assert_eq!(table::from_batch(&batch).unwrap(), rows);
    let missing = batch.project(&[0, 1]).unwrap();
    assert_eq!(
        table::from_batch(&missing).unwrap_err().to_string(),
        "dns table: column `ttl` is missing"
    );
}

/// Times are written in microseconds (what Spark reads), rounded down;
/// what Spark writes back (times in another zone's spelling, `ttl` as a
/// `long`) reads as the same answers, and a negative `ttl` is named.
#[test]
fn the_dns_table_is_spark_readable_and_read_from_spark_types() {
    use std::sync::Arc;

    use arrow::{
        array::{AsArray, Int64Array, RecordBatch, TimestampMicrosecondArray},
        datatypes::{DataType, Field, Schema, TimeUnit, TimestampMicrosecondType},
    };

    let mut rows = vec![answer("10.0.0.4", "203.0.113.30", "a.example", 1, 60)];
    rows[0].time_ns += 123_456_789;
    let batch = DnsAnswer::to_batch(&rows);
    let time = batch.column_by_name("time").unwrap();
    assert_eq!(
        time.data_type(),
        &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    );
    assert_eq!(
        time.as_primitive::<TimestampMicrosecondType>().value(0),
        1_123_456
    );
    rows[0].time_ns = 1_123_456_000;
    assert_eq!(table::from_batch(&batch).unwrap(), rows);

    let spark = |ttl: i64| {
        let mut fields: Vec<Field> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| (**f).clone())
            .collect();
        let mut columns = batch.columns().to_vec();
        let zone = DataType::Timestamp(TimeUnit::Microsecond, Some("Etc/UTC".into()));
        fields[0] = Field::new("time", zone, true);
        columns[0] =
            Arc::new(TimestampMicrosecondArray::from(vec![1_123_456]).with_timezone("Etc/UTC"));
        let ttl_index = batch.schema().index_of("ttl").unwrap();
        fields[ttl_index] = Field::new("ttl", DataType::Int64, true);
        columns[ttl_index] = Arc::new(Int64Array::from(vec![ttl]));
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
    };
    assert_eq!(table::from_batch(&spark(60)).unwrap(), rows);
    assert_eq!(
        table::from_batch(&spark(-1)).unwrap_err().to_string(),
        "dns table: column `ttl`, row 0: -1 is not an integer from 0 to 4294967295"
    );
}

#[test]
fn typed_columns_are_written_as_their_names_and_read_back() {
    use arrow::array::AsArray;
    use strum::VariantArray;

    // Every verdict, an unjudged answer, and rcodes with and without a name.
    let mut rows: Vec<DnsAnswer> = DnsVerdict::VARIANTS
        .iter()
        .map(|v| {
            let mut a = answer("10.0.0.4", "203.0.113.30", "a.example", 1, 60);
            a.verdict = Some(*v);
            a.reason = Some(format!("because {v}"));
            a
        })
        .collect();
    rows.push(answer("10.0.0.4", "203.0.113.31", "b.example", 2, 60));
    let rcodes = [
        (Rcode::NOERROR, "NOERROR"),
        (Rcode(2), "SERVFAIL"),
        (Rcode::NXDOMAIN, "NXDOMAIN"),
        (Rcode(5), "REFUSED"),
        (Rcode(11), "RCODE11"),
    ];
    for (i, (rcode, _)) in rcodes.iter().enumerate() {
        rows[i].rcode = *rcode;
    }
    let batch = DnsAnswer::to_batch(&rows);
    let text = |name: &str| -> Vec<Option<String>> {
        batch
            .column_by_name(name)
            .unwrap()
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_owned))
            .collect()
    };
    // The strings in the file are the vocabulary's names, as before.
    let verdicts = text("verdict");
    assert_eq!(
        verdicts,
        [
            Some("ok".to_owned()),
            Some("unexpected-server".to_owned()),
            Some("privatelink-public".to_owned()),
            Some("nxdomain-dependency".to_owned()),
            None,
        ]
    );
    let written: Vec<_> = text("rcode").into_iter().take(rcodes.len()).collect();
    let expected: Vec<_> = rcodes.iter().map(|(_, n)| Some((*n).to_owned())).collect();
    assert_eq!(written, expected);
    assert_eq!(table::from_batch(&batch).unwrap(), rows);
}

#[test]
fn names_outside_the_vocabulary_are_named_with_the_valid_ones() {
    use std::sync::Arc;

    use arrow::array::{RecordBatch, StringArray};

    let rows = vec![answer("10.0.0.4", "203.0.113.30", "a.example", 1, 60)];
    let batch = DnsAnswer::to_batch(&rows);
    let with = |column: &str, value: &str| {
        let index = batch.schema().index_of(column).unwrap();
        let mut columns = batch.columns().to_vec();
        columns[index] = Arc::new(StringArray::from(vec![value]));
        let batch = RecordBatch::try_new(batch.schema(), columns).unwrap();
        table::from_batch(&batch).unwrap_err().to_string()
    };
    assert_eq!(
        with("verdict", "leaky"),
        "dns table: column `verdict`: unknown DNS verdict `leaky` (ok, unexpected-server, privatelink-public or nxdomain-dependency)"
    );
    let err = with("rcode", "MAYBE");
    assert!(
        err.starts_with("dns table: column `rcode`: unknown rcode `MAYBE` (NOERROR,"),
        "{err}"
    );
    assert_eq!("RCODE11".parse::<Rcode>().unwrap(), Rcode(11));
    assert_eq!("SERVFAIL".parse::<Rcode>().unwrap(), Rcode(2));
}
