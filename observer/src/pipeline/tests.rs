//! The live loop against a fake kernel ([`super::fake`]) on tokio's paused
//! clock: no root, no BPF, every timer on virtual time. Each test reads
//! back the Parquet files the pipeline wrote.

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use hickory_proto::{
    op::{Message, MessageType, OpCode, Query},
    rr::{Name, RData, Record, RecordType, rdata},
};
use observer_common::{
    DIRECTION_EGRESS, DnsEventHeader, FlowEvent, FlowKey, FlowStats, proto, tcp_flag,
    user::addr_to_bytes,
};
use tokio::time::{Instant, sleep, sleep_until};

use super::{
    RunError, RunOptions, RunSummary, event_loop,
    fake::{self, bytes_of},
    setup::{self, Start},
};
use crate::{
    capture::{CaptureConfig, Interface, LinkKind},
    catalog::Catalog,
    classify::Classifier,
    files::{reader::read_flows, writer::ROW_GROUP_ROWS},
    flow::{FlowRecord, TableConfig, WallClock, clock::Clock},
    topology::Topology,
};

/// Kernel monotonic time at the start of a test, and the UTC it maps to.
const BASE_NS: u64 = 1_000 * 1_000_000_000;
const UTC_BASE_NS: i64 = 1_700_000_000 * 1_000_000_000;

/// A clock that follows tokio's (paused) time from `BASE_NS`.
struct TestClock {
    start: Instant,
}

impl Clock for TestClock {
    fn monotonic_ns(&self) -> u64 {
        BASE_NS + self.start.elapsed().as_nanos() as u64
    }

    fn wall(&self) -> WallClock {
        WallClock::with_offset(UTC_BASE_NS - BASE_NS as i64)
    }
}

fn interface(name: &str, role: &str, ifindex: u32) -> Interface {
    Interface {
        name: name.into(),
        role: Some(role.into()),
        ifindex,
        link: LinkKind::Ethernet,
    }
}

fn options(out: &Path, classifier: Option<Arc<Classifier>>) -> RunOptions {
    RunOptions {
        interfaces: Vec::new(),
        netns: None,
        out: out.to_owned(),
        duration: Some(Duration::from_secs(10)),
        table: TableConfig {
            idle_timeout: Duration::from_secs(1),
            ..TableConfig::default()
        },
        capture: CaptureConfig::default(),
        drain_interval: Duration::from_millis(500),
        flush_interval: Duration::from_secs(2),
        status_interval: None,
        ready_file: None,
        classifier,
        dns_capacity: 1024,
        metrics: None,
    }
}

/// Runs the loop on `kernel` until the duration ends or no interface is left.
async fn run(
    kernel: fake::FakeKernel,
    interfaces: Vec<Interface>,
    options: &RunOptions,
) -> Result<RunSummary, RunError> {
    let start = Start {
        interfaces,
        namespace: None,
        metrics_listener: None,
    };
    let clock = Box::new(TestClock {
        start: Instant::now(),
    });
    let (pipeline, sources) = setup::start(kernel, start, options, clock)?;
    event_loop::run(pipeline, sources, options, std::future::pending()).await
}

/// Kernel time now, by the test clock.
fn now_ns(started: Instant) -> u64 {
    BASE_NS + started.elapsed().as_nanos() as u64
}

fn tcp_key(ifindex: u32, src: IpAddr, dst: IpAddr, src_port: u16, dst_port: u16) -> FlowKey {
    FlowKey {
        src_addr: addr_to_bytes(src),
        dst_addr: addr_to_bytes(dst),
        ifindex,
        src_port,
        dst_port,
        direction: DIRECTION_EGRESS,
        ip_version: 4,
        protocol: proto::TCP,
        ..FlowKey::default()
    }
}

fn delta(at_ns: u64, packets: u64) -> FlowStats {
    FlowStats {
        packets,
        bytes: packets * 60,
        first_seen_ns: at_ns,
        last_seen_ns: at_ns,
        tcp_flags: u64::from(tcp_flag::SYN | tcp_flag::ACK),
        syn_count: 1,
        ..FlowStats::default()
    }
}

fn flow_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("flows-") && name.ends_with(".parquet")
        })
        .collect();
    files.sort();
    files
}

fn records(files: &[PathBuf]) -> Vec<FlowRecord> {
    read_flows(files)
        .unwrap()
        .into_iter()
        .flat_map(|f| f.records)
        .collect()
}

/// A DNS response from 168.63.129.16 to `client` on `ifindex`: the Key
/// Vault name through its privatelink zone to a public address.
fn privatelink_answer(ifindex: u32, client: IpAddr, at_ns: u64) -> Vec<u8> {
    let name = |s: &str| Name::from_ascii(s).unwrap();
    let mut m = Message::new(7, MessageType::Response, OpCode::Query);
    m.add_query(Query::query(
        name("contoso-kv.vault.azure.net."),
        RecordType::A,
    ));
    for (owner, data) in [
        (
            "contoso-kv.vault.azure.net.",
            RData::CNAME(rdata::CNAME(name(
                "contoso-kv.privatelink.vaultcore.azure.net.",
            ))),
        ),
        (
            "contoso-kv.privatelink.vaultcore.azure.net.",
            RData::CNAME(rdata::CNAME(name("data-prod-kv.vaultcore.azure.net."))),
        ),
        (
            "data-prod-kv.vaultcore.azure.net.",
            RData::A(rdata::A("203.0.113.20".parse().unwrap())),
        ),
    ] {
        m.add_answer(Record::from_rdata(name(owner), 300, data));
    }
    let payload = m.to_vec().unwrap();
    let server: IpAddr = "168.63.129.16".parse().unwrap();
    let header = DnsEventHeader {
        timestamp_ns: at_ns,
        src_addr: addr_to_bytes(server),
        dst_addr: addr_to_bytes(client),
        ifindex,
        src_port: 53,
        dst_port: 40053,
        message_len: payload.len() as u16,
        captured_len: payload.len() as u16,
        direction: 0,
        ip_version: 4,
        protocol: proto::UDP,
        _pad: 0,
    };
    let mut item = bytes_of(&header);
    item.extend_from_slice(&payload);
    item
}

fn scenario(file: &str) -> Arc<Classifier> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../lab/topologies")
        .join(file);
    let topology = Topology::load(&path).unwrap();
    let catalog = Catalog::load(topology.cloud, &[]).unwrap();
    Arc::new(Classifier::new(&topology, &catalog))
}

/// A DNS answer, then a flow to the address it gave (one through the map,
/// one through the overflow ring): drained, ended at the idle timeout,
/// emitted with the name the answer gave, classified with that name
/// (`leak-dns` needs the privatelink chain; without it the same flow is
/// `leak-public-endpoint`) and written at the flush tick, not at the end.
#[tokio::test(start_paused = true)]
async fn records_are_drained_named_classified_then_flushed() {
    let classifier = scenario("pe-zone-not-linked.toml");
    let workload = IpAddr::V4(classifier.topology().workload_address());
    let vault: IpAddr = "203.0.113.20".parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut options = options(dir.path(), Some(classifier));
    options.duration = Some(Duration::from_secs(4));
    let (kernel, handle) = fake::kernel(&[3]);
    let started = Instant::now();
    let driver = async {
        sleep(Duration::from_millis(100)).await;
        handle
            .dns_events
            .send(privatelink_answer(3, workload, now_ns(started)))
            .unwrap();
        sleep(Duration::from_millis(100)).await;
        handle.account(
            tcp_key(3, workload, vault, 40000, 443),
            delta(now_ns(started), 5),
        );
        let event = FlowEvent {
            key: tcp_key(3, workload, vault, 40001, 443),
            stats: delta(now_ns(started), 2),
        };
        handle.flow_events.send(bytes_of(&event)).unwrap();
        // Drained at 0.5 s, idle from 1.2 s, ended by the drain at 1.5 s,
        // written by the flush at 2 s.
        sleep_until(started + Duration::from_millis(1900)).await;
        assert!(
            flow_files(dir.path()).is_empty(),
            "nothing before the flush"
        );
        sleep_until(started + Duration::from_millis(2100)).await;
        let files = flow_files(dir.path());
        assert_eq!(files.len(), 1, "the flush tick wrote the ended records");
        records(&files)
    };
    let (summary, flushed) = tokio::join!(
        run(kernel, vec![interface("eth0", "workload", 3)], &options),
        driver
    );
    let summary = summary.unwrap();

    assert_eq!(flushed.len(), 2);
    for record in &flushed {
        assert_eq!(record.end_reason.as_str(), "idle-timeout");
        assert_eq!(
            record.dst_name.as_deref(),
            Some("contoso-kv.vault.azure.net")
        );
        assert_eq!(
            record.dns_chain.as_ref().unwrap()[1],
            "contoso-kv.privatelink.vaultcore.azure.net"
        );
        assert_eq!(
            record.verdict.as_deref(),
            Some("leak-dns"),
            "{:?}",
            record.reason
        );
        assert_eq!(&*record.point.iface, "eth0");
        // Times are the test clock's, converted to UTC.
        assert_eq!(record.start_ns, UTC_BASE_NS + 200_000_000);
    }
    let packets: Vec<u64> = {
        let mut p: Vec<u64> = flushed.iter().map(|r| r.packets).collect();
        p.sort_unstable();
        p
    };
    assert_eq!(packets, [2, 5], "the map's flow and the ring's");
    assert_eq!(
        (summary.records, summary.packets, summary.dns_answers),
        (2, 7, 1)
    );
    assert_eq!(summary.stop_reason, "duration");
    assert_eq!(summary.files.len(), 1, "nothing left for the last flush");
    assert_eq!(summary.dns_files.len(), 1);
    assert!(handle.state.borrow().detached);
    // The summary is on disk as well.
    let json =
        std::fs::read_to_string(dir.path().join(format!("run-{}.json", summary.run_id))).unwrap();
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["records"], 2);
}

/// A burst that fills a row group is written at the next drain, long
/// before the flush interval.
#[tokio::test(start_paused = true)]
async fn a_full_row_group_is_flushed_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = options(dir.path(), None);
    options.flush_interval = Duration::from_secs(3600);
    options.duration = Some(Duration::from_secs(3));
    let (kernel, handle) = fake::kernel(&[3]);
    let started = Instant::now();
    let flows = ROW_GROUP_ROWS as u32 + 10;
    let driver = async {
        sleep(Duration::from_millis(100)).await;
        let (src, dst): (IpAddr, IpAddr) =
            ("10.0.0.4".parse().unwrap(), "10.0.1.6".parse().unwrap());
        for n in 0..flows {
            let key = tcp_key(
                3,
                src,
                dst,
                (n % 60_000) as u16 + 1024,
                1433 + (n / 60_000) as u16,
            );
            handle.account(key, delta(now_ns(started), 1));
        }
        // Ended by the drain at 1.5 s (idle 1 s), written by the same turn.
        sleep_until(started + Duration::from_millis(1600)).await;
        let files = flow_files(dir.path());
        assert_eq!(files.len(), 1, "written without a flush tick");
        records(&files).len()
    };
    let (summary, written) = tokio::join!(
        run(kernel, vec![interface("eth0", "workload", 3)], &options),
        driver
    );
    let summary = summary.unwrap();
    assert_eq!(written, flows as usize);
    assert_eq!(summary.records, u64::from(flows));
    assert_eq!(
        summary.files.len(),
        1,
        "the last flush had nothing to write"
    );
}

/// A watched interface that disappears: its live flows end at once
/// (`forced-end`) and are written at the next flush while the other
/// interface goes on (its flow only snapshotted); when the last one goes
/// (here through an overflowed event socket), the run stops with
/// `interfaces-gone`.
#[tokio::test(start_paused = true)]
async fn vanished_interfaces_end_their_flows_and_stop_the_run_when_none_is_left() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = options(dir.path(), None);
    options.table.idle_timeout = Duration::from_secs(60);
    options.duration = Some(Duration::from_secs(600));
    let (kernel, handle) = fake::kernel(&[3, 4]);
    let started = Instant::now();
    let (a, b): (IpAddr, IpAddr) = ("10.0.0.4".parse().unwrap(), "10.0.1.6".parse().unwrap());
    let driver = async {
        sleep(Duration::from_millis(100)).await;
        handle.account(tcp_key(3, a, b, 40000, 443), delta(now_ns(started), 3));
        handle.account(tcp_key(4, a, b, 40001, 443), delta(now_ns(started), 4));
        sleep_until(started + Duration::from_millis(700)).await;
        // Packets the drain has not seen yet when veth0 goes.
        handle.account(tcp_key(3, a, b, 40000, 443), delta(now_ns(started), 1));
        handle.delete_interface(3, false);
        sleep_until(started + Duration::from_millis(2100)).await;
        let written = records(&flow_files(dir.path()));
        sleep_until(started + Duration::from_secs(5)).await;
        handle.delete_interface(4, true);
        written
    };
    let (summary, written) = tokio::join!(
        run(
            kernel,
            vec![
                interface("veth0", "vnet", 3),
                interface("veth1", "internet", 4)
            ],
            &options
        ),
        driver
    );
    let summary = summary.unwrap();

    let on = |iface: &str| {
        let found: Vec<&FlowRecord> = written
            .iter()
            .filter(|r| &*r.point.iface == iface)
            .collect();
        assert_eq!(found.len(), 1, "{iface}: {written:?}");
        (found[0].end_reason.as_str(), found[0].packets)
    };
    assert_eq!(
        on("veth0"),
        ("forced-end", 4),
        "ended at once, its last packets drained first"
    );
    assert_eq!(on("veth1"), ("active-timeout", 4), "live: snapshotted");

    assert_eq!(summary.stop_reason, super::INTERFACES_GONE);
    assert!(summary.interfaces.iter().all(|i| i.vanished.is_some()));
    assert_eq!(
        summary.interfaces[0].vanished.as_deref(),
        Some("2023-11-14T22:13:20.700+00:00"),
        "the test clock's time"
    );
    let all = records(&summary.files);
    assert_eq!(all.len(), 2);
    assert_eq!(all.iter().map(|r| r.packets).sum::<u64>(), 8);
    let state = handle.state.borrow();
    assert_eq!(state.forgotten, [3, 4]);
    assert!(state.detached);
}

/// At every flush interval the live flows' packets so far are written as
/// interim records (`active-timeout`), so a crash loses at most one
/// interval; each record counts only what came after the previous one, so
/// the records of a run add up to exactly what was sent.
#[tokio::test(start_paused = true)]
async fn every_flush_writes_the_live_flows_so_far_and_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = options(dir.path(), None);
    options.table.idle_timeout = Duration::from_secs(60);
    options.duration = Some(Duration::from_millis(7_050));
    let (kernel, handle) = fake::kernel(&[3]);
    let started = Instant::now();
    let key = tcp_key(
        3,
        "10.0.0.4".parse().unwrap(),
        "10.0.1.6".parse().unwrap(),
        40000,
        443,
    );
    let driver = async {
        // A packet every 100 ms, between the ticks (at 50 ms, 150 ms, ...);
        // just after each flush (2, 4, 6 s), the files hold every packet
        // accounted before it.
        let mut sent = 0;
        let mut checked = Vec::new();
        for tenth in 0..70u64 {
            sleep_until(started + Duration::from_millis(100 * tenth + 50)).await;
            if tenth % 20 == 0 && tenth > 0 {
                let on_disk: u64 = records(&flow_files(dir.path()))
                    .iter()
                    .map(|r| r.packets)
                    .sum();
                checked.push((sent, on_disk));
            }
            handle.account(key, delta(now_ns(started), 1));
            sent += 1;
        }
        (sent, checked)
    };
    let (summary, (sent, checked)) = tokio::join!(
        run(kernel, vec![interface("eth0", "workload", 3)], &options),
        driver
    );
    let summary = summary.unwrap();
    assert_eq!(checked.len(), 3);
    for (before, on_disk) in &checked {
        assert_eq!(
            on_disk, before,
            "the flush wrote every packet accounted before it"
        );
    }
    let all = records(&summary.files);
    let reasons: Vec<&str> = all.iter().map(|r| r.end_reason.as_str()).collect();
    assert_eq!(
        reasons,
        [
            "active-timeout",
            "active-timeout",
            "active-timeout",
            "forced-end"
        ]
    );
    assert_eq!(
        all.iter().map(|r| r.packets).sum::<u64>(),
        sent,
        "nothing counted twice"
    );
    assert!(
        all.windows(2).all(|w| w[0].end_ns < w[1].start_ns),
        "interim records do not overlap"
    );
}

/// A write that fails stops the run (`write-failed`) instead of ending it
/// without a summary: the last flush tries the rows again, and the summary
/// says which file failed, what stayed unwritten, and (the directory being
/// gone) that it could not be written itself.
#[tokio::test(start_paused = true)]
async fn a_failed_write_stops_the_run_with_a_summary_of_what_was_lost() {
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let mut options = options(&out, None);
    options.table.idle_timeout = Duration::from_secs(60);
    options.duration = Some(Duration::from_secs(600));
    let (kernel, handle) = fake::kernel(&[3]);
    let started = Instant::now();
    let (a, b): (IpAddr, IpAddr) = ("10.0.0.4".parse().unwrap(), "10.0.1.6".parse().unwrap());
    let driver = async {
        sleep(Duration::from_millis(100)).await;
        for port in 0..3 {
            handle.account(
                tcp_key(3, a, b, 40000 + port, 443),
                delta(now_ns(started), 2),
            );
        }
        sleep(Duration::from_millis(500)).await;
        // The output directory goes away before the flush at 2 s.
        std::fs::remove_dir_all(&out).unwrap();
        handle.account(tcp_key(3, a, b, 40000, 443), delta(now_ns(started), 1));
    };
    let (summary, ()) = tokio::join!(
        run(kernel, vec![interface("eth0", "workload", 3)], &options),
        driver
    );
    let summary = summary.unwrap();
    assert_eq!(summary.stop_reason, super::WRITE_FAILED);
    assert_eq!(
        summary.write_failures.len(),
        2,
        "the flush at 2 s, then the last one: {:?}",
        summary.write_failures
    );
    let first = &summary.write_failures[0];
    assert_eq!(
        first.file,
        out.join(format!("flows-{}-000001.parquet", summary.run_id))
    );
    assert_eq!(first.rows, 3);
    assert!(first.error.contains("cannot write"), "{}", first.error);
    assert_eq!(
        (summary.unwritten.records, summary.unwritten.packets),
        (3, 7),
        "nothing written, everything counted"
    );
    assert_eq!((summary.records, summary.packets), (3, 7));
    assert!(summary.files.is_empty());
    assert!(
        summary
            .summary_error
            .as_deref()
            .is_some_and(|e| e.contains(&format!("run-{}.json", summary.run_id))),
        "{:?}",
        summary.summary_error
    );
    assert!(handle.state.borrow().detached);
}
