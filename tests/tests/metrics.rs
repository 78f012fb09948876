//! Live metrics and vanished interfaces: `observer run --metrics` scraped
//! during a capture (parsed by Prometheus' own Python parser) must agree
//! with the run summary and with what was sent; a watched interface deleted
//! mid-capture is reported at once, the others go on, and losing the last
//! one ends the run with a clear message and complete files.

use std::{
    collections::BTreeMap,
    io::{Read as _, Write as _},
    net::{TcpListener, TcpStream},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail, ensure};
use hickory_proto::{
    op::{Message, MessageType, OpCode, Query},
    rr::{Name, RData, Record, RecordType, rdata},
};
use observer::lab::netns::{Netns, veth};
use observer_tests::{
    A4, B4, NS_PREFIX, Observer, Pair, Scratch, bpf_attachments, counter, frames, mac, read_flows,
    sa, summary, total,
    traffic::{self, drain_udp, udp_socket},
};

/// Sorted (name, value) label pairs.
type Labels = Vec<(String, String)>;
/// One sample: (name, labels) -> value.
type Samples = BTreeMap<(String, Labels), f64>;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// GET /metrics; the body, after checking the status and content type.
fn scrape(port: u16) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").context("no header end")?;
    ensure!(head.starts_with("HTTP/1.1 200"), "{head}");
    ensure!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    Ok(body.to_owned())
}

/// Parses the exposition text with `prometheus_client.parser` (installed by
/// `cargo xtask test`); fails on anything it rejects.
fn parse(text: &str) -> anyhow::Result<Samples> {
    const SCRIPT: &str = "
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append([s.name, sorted(s.labels.items()), s.value])
print(json.dumps(out))
";
    let mut child = Command::new(observer_tests::python())
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("the venv python (cargo xtask test installs prometheus_client)")?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(text.as_bytes())?;
    let output = child.wait_with_output()?;
    ensure!(
        output.status.success(),
        "prometheus_client rejected the text: {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rows: Vec<(String, Labels, f64)> = serde_json::from_slice(&output.stdout)?;
    Ok(rows
        .into_iter()
        .map(|(name, labels, value)| ((name, labels), value))
        .collect())
}

fn scrape_parsed(port: u16) -> anyhow::Result<Samples> {
    parse(&scrape(port)?)
}

/// The value of one sample, 0 when absent.
fn value(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut labels: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    labels.sort();
    samples
        .get(&(name.to_owned(), labels))
        .copied()
        .unwrap_or(0.0)
}

/// The sum over every label set of one metric.
fn sum(samples: &Samples, name: &str) -> f64 {
    samples
        .iter()
        .filter(|((n, _), _)| n == name)
        .map(|(_, v)| v)
        .sum()
}

/// Scrapes until `done` holds (up to 20 s); returns the last scrape.
fn scrape_until(port: u16, done: impl Fn(&Samples) -> bool) -> anyhow::Result<Samples> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let samples = scrape_parsed(port)?;
        if done(&samples) {
            return Ok(samples);
        }
        if Instant::now() > deadline {
            bail!("metrics never reached the expected state:\n{samples:#?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A DNS response for `name` -> `addr`, as the lab's resolver would send.
fn dns_answer(id: u16, name: &str, addr: &str) -> Vec<u8> {
    let name = Name::from_ascii(name).expect("a DNS name");
    let mut m = Message::new(id, MessageType::Response, OpCode::Query);
    m.add_query(Query::query(name.clone(), RecordType::A));
    m.add_answer(Record::from_rdata(
        name,
        60,
        RData::A(rdata::A(addr.parse().expect("an address"))),
    ));
    m.to_vec().expect("encodes")
}

/// The summary counter name of each kernel metric: (name, packets metric,
/// bytes metric), the "not accounted" reasons being labels.
const KERNEL: [(&str, &str, &str); 7] = [
    (
        "flow_packets",
        "observer_kernel_flow_packets_total",
        "observer_kernel_flow_bytes_total",
    ),
    (
        "flow_map_full",
        "observer_flow_map_full_packets_total",
        "observer_flow_map_full_bytes_total",
    ),
    (
        "flow_events_lost",
        "observer_lost_packets_total",
        "observer_lost_bytes_total",
    ),
    (
        "fragments",
        "observer_fragments_total",
        "observer_fragment_bytes_total",
    ),
    (
        "dns_messages",
        "observer_dns_messages_total",
        "observer_dns_message_bytes_total",
    ),
    (
        "dns_events_lost",
        "observer_dns_events_lost_total",
        "observer_dns_events_lost_bytes_total",
    ),
    (
        "dns_truncated",
        "observer_dns_truncated_total",
        "observer_dns_truncated_bytes_total",
    ),
];
const NOT_ACCOUNTED: [&str; 9] = [
    "non_ip",
    "eth_truncated",
    "vlan_too_deep",
    "ipv4_truncated",
    "ipv4_bad_header",
    "ipv6_truncated",
    "ipv6_bad_header",
    "ipv6_ext_chain",
    "l4_truncated",
];

/// Scraped during the capture, the counters follow the traffic; once the
/// capture is idle, every figure equals the run summary written at the end.
#[test]
fn metrics_follow_the_capture_and_match_the_run_summary() -> anyhow::Result<()> {
    let pair = Pair::addressed(false)?;
    let scratch = Scratch::new("metrics");
    let out = scratch.path().join("out");
    let port = free_port();
    let port_arg = format!("127.0.0.1:{port}");
    let observer = Observer::start(
        &pair.a,
        &out,
        &[
            "--iface",
            "veth0=vnet",
            "--metrics",
            &port_arg,
            "--drain-interval",
            "0.2",
            "--flush-interval",
            "1",
            "--idle-timeout",
            "1",
        ],
    )?;
    let first = scrape_parsed(port)?;
    assert_eq!(
        value(
            &first,
            "observer_interface_up",
            &[("iface", "veth0"), ("role", "vnet")]
        ),
        1.0
    );
    assert_eq!(sum(&first, "observer_packets_total"), 0.0);

    // Live: the counters move while the capture runs.
    let sink = udp_socket(&pair.b, sa(B4, 6001))?;
    assert_eq!(
        traffic::udp(&pair.a, sa(A4, 41001), sa(B4, 6001), 200, 100)?,
        200
    );
    let egress = [("iface", "veth0"), ("direction", "egress")];
    let live = scrape_until(port, |s| {
        value(s, "observer_packets_total", &egress) >= 200.0
    })?;
    assert_eq!(value(&live, "observer_packets_total", &egress), 200.0);
    assert_eq!(value(&live, "observer_bytes_total", &egress), 200.0 * 128.0);
    assert_eq!(drain_udp(&sink), (200, 200 * 100));
    // Frames no stack parses: "not accounted", counted as such.
    let (a_mac, b_mac) = (
        frames::mac(&mac(&pair.a, "veth0")?),
        frames::mac(&mac(&pair.b, "veth0")?),
    );
    let odd = frames::ethernet(b_mac, a_mac, &[], frames::EXPERIMENTAL.0, &[1; 46]);
    traffic::send_frames(&pair.a, "veth0", &vec![odd; 5])?;
    // DNS: three answers and one message that does not decode, from port 53.
    let client = udp_socket(&pair.a, sa(A4, 41500))?;
    pair.b.enter(|| -> anyhow::Result<()> {
        let server = std::net::UdpSocket::bind(sa(B4, 53))?;
        for (i, name) in ["a.example.", "b.example.", "c.example."]
            .iter()
            .enumerate()
        {
            server.send_to(&dns_answer(i as u16, name, "192.0.2.7"), sa(A4, 41500))?;
        }
        server.send_to(&[0x13, 0x37, 0x81, 0x80, 0, 1], sa(A4, 41500))?;
        Ok(())
    })??;
    assert_eq!(drain_udp(&client).0, 4);

    // Idle: every flow ended and written, the counters stop moving.
    let settled = scrape_until(port, |s| {
        value(
            s,
            "observer_not_accounted_packets_total",
            &[("reason", "non_ip")],
        ) >= 5.0
            && sum(s, "observer_dns_answers_total") >= 3.0
            && value(s, "observer_dns_malformed_total", &[]) >= 1.0
            && value(s, "observer_flows_active", &[]) == 0.0
            && value(s, "observer_records_pending", &[]) == 0.0
            && sum(s, "observer_flow_records_total") > 0.0
            && value(s, "observer_records_written_total", &[("table", "flows")])
                == sum(s, "observer_flow_records_total")
    })?;
    std::thread::sleep(Duration::from_millis(600));
    let last = scrape_parsed(port)?;
    observer.stop()?;
    let run = summary(&out)?;

    let u = |v: &serde_json::Value| v.as_u64().unwrap_or(0) as f64;
    assert_eq!(
        sum(&last, "observer_flow_records_total"),
        u(&run["records"])
    );
    assert_eq!(
        value(
            &last,
            "observer_records_written_total",
            &[("table", "flows")]
        ),
        u(&run["records"])
    );
    assert_eq!(sum(&last, "observer_packets_total"), u(&run["packets"]));
    assert_eq!(sum(&last, "observer_bytes_total"), u(&run["bytes"]));
    assert_eq!(
        value(&last, "observer_files_written_total", &[("table", "flows")]),
        run["files"].as_array().map_or(0, Vec::len) as f64
    );
    for reason in NOT_ACCOUNTED {
        let (packets, bytes) = counter(&run, reason);
        let label = [("reason", reason)];
        assert_eq!(
            value(&last, "observer_not_accounted_packets_total", &label),
            packets as f64,
            "{reason}"
        );
        assert_eq!(
            value(&last, "observer_not_accounted_bytes_total", &label),
            bytes as f64,
            "{reason}"
        );
    }
    assert_eq!(counter(&run, "non_ip").0, 5);
    assert_eq!(counter(&run, "dns_messages").0, 4);
    assert_eq!(
        (u(&run["dns_answers"]), u(&run["dns_malformed"])),
        (3.0, 1.0)
    );
    assert_eq!(
        value(&last, "observer_dns_answers_total", &[("iface", "veth0")]),
        3.0
    );
    assert_eq!(
        value(&last, "observer_records_written_total", &[("table", "dns")]),
        3.0
    );
    for (name, packets_metric, bytes_metric) in KERNEL {
        let (packets, bytes) = counter(&run, name);
        assert_eq!(value(&last, packets_metric, &[]), packets as f64, "{name}");
        assert_eq!(value(&last, bytes_metric, &[]), bytes as f64, "{name}");
    }
    assert_eq!(
        value(&last, "observer_lost_packets_total", &[]),
        u(&run["lost_packets"])
    );
    for (metric, field) in [
        ("observer_dns_malformed_total", "dns_malformed"),
        ("observer_dns_queries_total", "dns_queries"),
        ("observer_dns_evicted_total", "dns_evicted"),
    ] {
        assert_eq!(value(&last, metric, &[]), u(&run[field]), "{metric}");
    }
    assert_eq!(
        sum(&last, "observer_dns_answers_total"),
        u(&run["dns_answers"])
    );
    // The run's own clocks moved.
    assert!(value(&last, "observer_drain_duration_seconds_count", &[]) > 0.0);
    assert!(
        value(&last, "observer_last_flush_timestamp_seconds", &[])
            >= value(&last, "observer_start_time_seconds", &[])
    );
    assert!(
        value(&settled, "observer_last_drain_timestamp_seconds", &[])
            <= value(&last, "observer_last_drain_timestamp_seconds", &[])
    );
    // And the records hold exactly what was sent.
    let flows = read_flows(&out)?;
    assert_eq!(
        total(&flows, |f| f.direction == "egress"
            && f.dst_port == Some(6001)),
        (200, 200 * 128)
    );
    assert_eq!(
        observer_tests::table_rows(&out, "dns-")?,
        3,
        "the dns table holds the three answers"
    );
    Ok(())
}

/// A second namespace `c` joined to `a` by `veth1` (a) <-> `veth0` (c),
/// addressed 10.78.0.1/24 and 10.78.0.2/24 with permanent neighbours.
fn second_link(a: &Netns) -> anyhow::Result<Netns> {
    let c = Netns::new(NS_PREFIX)?;
    veth(a, "veth1", &c, "veth0")?;
    for (ns, iface) in [(a, "veth1"), (&c, "veth0")] {
        ns.ip(["link", "set", iface, "addrgenmode", "none"])?;
        ns.exec(
            "ethtool",
            ["-K", iface, "tso", "off", "gso", "off", "gro", "off"],
        )?;
        ns.ip(["link", "set", iface, "up"])?;
    }
    let (mac_a, mac_c) = (mac(a, "veth1")?, mac(&c, "veth0")?);
    for (ns, iface, own, peer, peer_mac) in [
        (a, "veth1", "10.78.0.1", "10.78.0.2", &mac_c),
        (&c, "veth0", "10.78.0.2", "10.78.0.1", &mac_a),
    ] {
        ns.ip(["addr", "add", &format!("{own}/24"), "dev", iface])?;
        ns.ip([
            "neigh",
            "replace",
            peer,
            "lladdr",
            peer_mac,
            "dev",
            iface,
            "nud",
            "permanent",
        ])?;
    }
    Ok(c)
}

/// Deleting one of two watched interfaces mid-capture: the log and the
/// metrics say so at once, capture on the other goes on (traffic sent after
/// the deletion is counted exactly), what the deleted one carried before is
/// kept, the files are complete and nothing stays attached; with TCX links
/// and with clsact filters.
#[test]
fn a_deleted_interface_is_reported_and_capture_goes_on_on_the_others() -> anyhow::Result<()> {
    let pair = Pair::addressed(false)?;
    for mode in ["tcx", "tc"] {
        let c = second_link(&pair.a)?;
        let scratch = Scratch::new("vanish");
        let out = scratch.path().join(mode);
        let port = free_port();
        let port_arg = format!("127.0.0.1:{port}");
        let observer = Observer::start(
            &pair.a,
            &out,
            &[
                "--iface",
                "veth0=vnet",
                "--iface",
                "veth1=internet",
                "--attach",
                mode,
                "--metrics",
                &port_arg,
                "--drain-interval",
                "0.2",
            ],
        )?;
        let sink_c = udp_socket(&c, sa("10.78.0.2", 6200))?;
        let sink_b = udp_socket(&pair.b, sa(B4, 6201))?;
        assert_eq!(
            traffic::udp(
                &pair.a,
                sa("10.78.0.1", 41200),
                sa("10.78.0.2", 6200),
                100,
                60
            )?,
            100
        );
        assert_eq!(
            traffic::udp(&pair.a, sa(A4, 41201), sa(B4, 6201), 50, 60)?,
            50
        );
        assert_eq!(drain_udp(&sink_c).0, 100);
        let veth1_egress = [("iface", "veth1"), ("direction", "egress")];
        scrape_until(port, |s| {
            value(s, "observer_packets_total", &veth1_egress) == 100.0
        })?;

        pair.a.ip(["link", "del", "veth1"])?;
        drop(c);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !observer.log().contains("interface veth1 disappeared") {
            ensure!(
                Instant::now() < deadline,
                "{mode}: no message about veth1:\n{}",
                observer.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let log = observer.log();
        assert!(
            log.contains("capture goes on on veth0"),
            "{mode}: the message names what is left:\n{log}"
        );
        let gone = scrape_parsed(port)?;
        assert_eq!(
            value(
                &gone,
                "observer_interface_up",
                &[("iface", "veth1"), ("role", "internet")]
            ),
            0.0,
            "{mode}"
        );
        assert_eq!(
            value(
                &gone,
                "observer_interface_up",
                &[("iface", "veth0"), ("role", "vnet")]
            ),
            1.0,
            "{mode}"
        );

        // Sent after the deletion, on the interface that is left.
        assert_eq!(drain_udp(&sink_b).0, 50);
        // In batches the receiver's socket buffer holds.
        for _ in 0..3 {
            assert_eq!(
                traffic::udp(&pair.a, sa(A4, 41202), sa(B4, 6201), 100, 60)?,
                100
            );
            assert_eq!(drain_udp(&sink_b).0, 100);
        }
        scrape_until(port, |s| {
            value(
                s,
                "observer_packets_total",
                &[("iface", "veth0"), ("direction", "egress")],
            ) == 350.0
        })?;
        observer.stop()?;

        let flows = read_flows(&out)?;
        let udp = |iface: &str, src_port: u16| {
            total(&flows, |f| {
                f.iface == iface && f.direction == "egress" && f.src_port == Some(src_port)
            })
        };
        assert_eq!(udp("veth0", 41202), (300, 300 * 88), "{mode}: after");
        assert_eq!(udp("veth0", 41201), (50, 50 * 88), "{mode}: before");
        assert_eq!(udp("veth1", 41200), (100, 100 * 88), "{mode}: the gone one");
        let run = summary(&out)?;
        assert_eq!(run["stop_reason"], "SIGTERM");
        let interfaces = run["interfaces"].as_array().context("interfaces")?;
        assert!(interfaces[0].get("vanished").is_none(), "{mode}");
        assert!(interfaces[1]["vanished"].is_string(), "{mode}: {run}");
        assert_eq!(run["lost_packets"], 0);
        assert_eq!(bpf_attachments(&pair.a)?, "", "{mode}: nothing attached");
    }
    Ok(())
}

/// When the last watched interface disappears, the run ends by itself:
/// one clear message, a non-zero exit, complete files and the summary.
#[test]
fn losing_the_last_interface_ends_the_run_with_a_clear_message() -> anyhow::Result<()> {
    let pair = Pair::addressed(false)?;
    let scratch = Scratch::new("lastgone");
    let out = scratch.path().join("out");
    let observer = Observer::start(
        &pair.a,
        &out,
        &["--iface", "veth0", "--quiet", "--drain-interval", "0.2"],
    )?;
    let sink = udp_socket(&pair.b, sa(B4, 6300))?;
    assert_eq!(
        traffic::udp(&pair.a, sa(A4, 41300), sa(B4, 6300), 40, 60)?,
        40
    );
    assert_eq!(drain_udp(&sink).0, 40);
    pair.a.ip(["link", "del", "veth0"])?;

    let (status, log) = observer.wait(Duration::from_secs(20))?;
    assert_eq!(status.code(), Some(1), "{log}");
    let last = log.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: every watched interface disappeared (veth0)")
            && last.contains("summary in"),
        "one closing line says what happened:\n{log}"
    );
    let run = summary(&out)?;
    assert_eq!(run["stop_reason"], "interfaces-gone");
    assert!(run["interfaces"][0]["vanished"].is_string(), "{run}");
    let flows = read_flows(&out)?;
    assert_eq!(
        total(&flows, |f| f.direction == "egress"
            && f.src_port == Some(41300)),
        (40, 40 * 88)
    );
    assert_eq!(bpf_attachments(&pair.a)?, "");
    Ok(())
}
