//! The report's fixtures (records of a leak and an ok connection, seen
//! at two observation points) and the tests of the summary and the writers.

use std::sync::Arc;

use super::*;
use crate::{
    flow::{Direction, EndReason, FlowRecord, ObservationPoint},
    verdict::Verdict,
};

/// A classified record at `iface` of `netns`.
pub(crate) fn record(
    netns: &str,
    iface: &str,
    (src, sport): (&str, u16),
    (dst, dport): (&str, u16),
    packets: u64,
    verdict: &str,
) -> FlowRecord {
    FlowRecord {
        start_ns: 1_000 + i64::from(sport % 7),
        end_ns: 2_000,
        point: ObservationPoint {
            host: Arc::from("lab"),
            netns: Some(Arc::from(netns)),
            iface: Arc::from(iface),
            iface_role: Some(Arc::from("workload")),
        },
        direction: Direction::Egress,
        ip_version: 4,
        protocol: 6,
        src_addr: src.parse().unwrap(),
        dst_addr: dst.parse().unwrap(),
        src_port: Some(sport),
        dst_port: Some(dport),
        icmp_type: None,
        icmp_code: None,
        vlan_id: None,
        packets,
        bytes: packets * 100,
        tcp_flags: 0x12,
        syn_count: 1,
        fin_count: 0,
        rst_count: 0,
        end_reason: EndReason::EndOfFlow,
        dst_name: None,
        dns_chain: None,
        category: None,
        dependency: None,
        expected_next_hop: None,
        observed_path: None,
        flow_type: None,
        verdict: Some(verdict.into()),
        reason: Some(format!("{verdict} because").into()),
        ..FlowRecord::default()
    }
}

/// A refused connection to a public address seen at the workload and
/// the router: request and reply at both points.
pub(crate) fn refused_and_ok() -> Vec<FlowRecord> {
    let c = ("10.0.0.4", 40000);
    let s = ("203.0.113.6", 1433);
    let mut reply = record("ase", "eth0", s, c, 1, "leak-public-endpoint");
    reply.direction = Direction::Ingress;
    let mut named = record(
        "ase",
        "eth0",
        ("10.0.0.4", 40001),
        ("10.0.2.5", 443),
        5,
        "ok",
    );
    named.dst_name = Some("contoso-kv.vault.azure.net".into());
    vec![
        record("ase", "eth0", c, s, 1, "leak-public-endpoint"),
        reply,
        record("vnet", "ase", c, s, 1, "leak-public-endpoint"),
        record("vnet", "ase", s, c, 1, "leak-public-endpoint"),
        named,
        record(
            "ase",
            "eth0",
            ("10.0.2.5", 443),
            ("10.0.0.4", 40001),
            4,
            "ok",
        ),
    ]
}

#[test]
fn both_directions_and_every_point_make_one_connection_judged_once() {
    let s = Summary::build(&refused_and_ok(), &[], 3);
    assert_eq!(s.records, 6);
    assert_eq!(s.connections.len(), 2, "{:#?}", s.connections);
    let leak = &s.connections[0];
    assert_eq!(leak.verdict, Some(Verdict::LeakPublicEndpoint));
    assert_eq!(leak.client.addr.to_string(), "10.0.0.4");
    assert_eq!(leak.server.port, Some(1433));
    assert_eq!(leak.points.len(), 2);
    assert_eq!((leak.forward.packets, leak.reverse.packets), (1, 1));
    assert_eq!(leak.records, 4);
    let ok = &s.connections[1];
    assert_eq!((ok.forward.packets, ok.reverse.bytes), (5, 400));
    assert_eq!(
        ok.server.name.as_deref(),
        Some("contoso-kv.vault.azure.net")
    );
    assert_eq!(
        s.by_verdict[&Judgement::Verdict(Verdict::LeakPublicEndpoint)],
        1
    );
    assert_eq!(s.by_verdict[&Judgement::Verdict(Verdict::Ok)], 1);
    let fail = FailOn::leaks();
    let lines = s.failures(&fail);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("leak-public-endpoint: tcp 10.0.0.4:40000 -> 203.0.113.6:1433"),
        "{lines:?}"
    );
    let all: FailOn = "any,lost".parse().unwrap();
    assert_eq!(s.failures(&all).len(), 2);
}

#[test]
fn a_server_port_below_the_ephemeral_range_marks_the_server() {
    // The reply was seen first (only the router saw the request late).
    let mut reply = record(
        "vnet",
        "ase",
        ("10.0.1.6", 1433),
        ("10.0.0.4", 50000),
        2,
        "ok",
    );
    reply.start_ns = 10;
    let request = record(
        "vnet",
        "ase",
        ("10.0.0.4", 50000),
        ("10.0.1.6", 1433),
        3,
        "ok",
    );
    let s = Summary::build(&[reply, request], &[], 0);
    let c = &s.connections[0];
    assert_eq!(c.client.port, Some(50000));
    assert_eq!((c.forward.packets, c.reverse.packets), (3, 2));
}

#[test]
fn a_verdict_name_this_observer_does_not_know_is_counted_not_dropped() {
    let mut records = refused_and_ok();
    for r in &mut records[4..] {
        r.verdict = Some("leak-quantum".into());
    }
    let s = Summary::build(&records, &[], 0);
    assert_eq!(s.unknown_verdicts["leak-quantum"], 2);
    assert_eq!(s.unclassified, 0, "the records have a verdict");
    let ok = &s.connections[1];
    assert_eq!(ok.verdict, None);
    assert_eq!(
        ok.reason.as_deref(),
        Some("ok because"),
        "the record's reason is kept"
    );
    assert_eq!(s.by_verdict[&Judgement::Unclassified], 1);
    let text = text::render(&s);
    assert!(
        text.contains("2 records carry verdicts this observer does not know (leak-quantum 2)"),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(&json::render(&s)).unwrap();
    assert_eq!(json["summary"]["unknown_verdicts"]["leak-quantum"], 2);
}

#[test]
fn judgements_order_like_the_report_and_serialise_by_name() {
    let mut all: Vec<Judgement> = Verdict::ALL.map(Judgement::Verdict).to_vec();
    all.insert(0, Judgement::Unclassified);
    all.sort();
    assert_eq!(
        all.first(),
        Some(&Judgement::Verdict(Verdict::LeakPublicEndpoint))
    );
    assert_eq!(all.last(), Some(&Judgement::Unclassified));
    let counts: std::collections::BTreeMap<Judgement, usize> = [
        (Judgement::Unclassified, 1),
        (Judgement::Verdict(Verdict::DeniedByNsg), 2),
    ]
    .into();
    assert_eq!(
        serde_json::to_string(&counts).unwrap(),
        r#"{"denied-by-nsg":2,"unclassified":1}"#
    );
}

#[test]
fn write_puts_each_format_in_its_file_and_says_what_failed() {
    let s = Summary::build(&refused_and_ok(), &[], 0);
    let dir = tempfile::tempdir().unwrap();
    let fail = FailOn::leaks();
    let command = [junit::Suite {
        name: "observer.command".into(),
        cases: vec![],
    }];
    let formats = [
        (
            "report.txt",
            Format::Text,
            "2 connections from 6 flow records",
        ),
        (
            "report.json",
            Format::Json,
            "\"format\": \"observer-report/1\"",
        ),
        (
            "junit.xml",
            Format::Junit {
                fail: &fail,
                first: &command,
            },
            "<testsuites name=\"observer\" tests=\"4\" failures=\"1\"",
        ),
        (
            "report.html",
            Format::Html(html::Context::new(Some("default"), None)),
            "<title>observer report — default</title>",
        ),
    ];
    for (file, format, needle) in &formats {
        let path = dir.path().join(file);
        write(&s, format, Some(&path)).unwrap();
        let written = std::fs::read_to_string(&path).unwrap();
        assert!(written.contains(needle), "{file}: {written}");
        assert_eq!(written, render(&s, format), "{file}");
    }
    let xml = std::fs::read_to_string(dir.path().join("junit.xml")).unwrap();
    assert!(
        xml.find("observer.command").unwrap() < xml.find("observer.connections").unwrap(),
        "the given suites come first"
    );

    let missing = dir.path().join("no-such-dir/report.txt");
    let err = write(&s, &Format::Text, Some(&missing))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!(
            "cannot write the report to {}: ",
            missing.display()
        )) && err.ends_with("check that its directory exists and is writable"),
        "{err}"
    );
}
