//! A DNS flood: many answers per second, each naming a new address, for a
//! bounded time. Every message is accounted (parsed, skipped as malformed,
//! or counted lost in the kernel), the tracker stays at its capacity, and
//! memory does not grow with the number of names.

use std::{
    net::{SocketAddr, UdpSocket},
    time::{Duration, Instant},
};

use hickory_proto::{
    op::{Message, MessageType, OpCode, Query},
    rr::{Name, RData, Record, RecordType, rdata},
};
use observer_tests::{A4, B4, Observer, Pair, Scratch, counter, summary};

const CAPACITY: u64 = 1000;
const PHASE: Duration = Duration::from_secs(2);
/// Upper bound on messages per phase, whatever the host's speed.
const PHASE_MAX: u64 = 400_000;
/// One message in this many is hostile (a compression-pointer loop).
const HOSTILE_EVERY: u64 = 50;

/// An answer `nXXXXXXX.blob.core.windows.net` -> CNAME
/// `nXXXXXXX.privatelink.blob.core.windows.net` -> A, as a template whose
/// label digits and address are patched per message.
struct Template {
    bytes: Vec<u8>,
    label_at: Vec<usize>,
}

impl Template {
    fn new() -> Self {
        let name = |s: &str| Name::from_ascii(s).unwrap();
        let mut m = Message::new(0x4d4d, MessageType::Response, OpCode::Query);
        m.add_query(Query::query(
            name("n0000000.blob.core.windows.net."),
            RecordType::A,
        ));
        m.add_answer(Record::from_rdata(
            name("n0000000.blob.core.windows.net."),
            300,
            RData::CNAME(rdata::CNAME(name(
                "n0000000.privatelink.blob.core.windows.net.",
            ))),
        ));
        m.add_answer(Record::from_rdata(
            name("n0000000.privatelink.blob.core.windows.net."),
            60,
            RData::A(rdata::A("198.18.0.0".parse().unwrap())),
        ));
        let bytes = m.to_vec().unwrap();
        let label_at = bytes
            .windows(8)
            .enumerate()
            .filter(|(_, w)| w == b"n0000000")
            .map(|(i, _)| i + 1)
            .collect();
        Self { bytes, label_at }
    }

    /// Message `i`: a unique name and a unique address (198.18.0.0/15 + i).
    fn message(&mut self, i: u64) -> &[u8] {
        let digits = format!("{:07}", i % 10_000_000);
        for &at in &self.label_at {
            self.bytes[at..at + 7].copy_from_slice(digits.as_bytes());
        }
        let address = 0xc612_0000u32 + (i as u32 & 0x1_ffff);
        let len = self.bytes.len();
        self.bytes[len - 4..].copy_from_slice(&address.to_be_bytes());
        &self.bytes
    }
}

/// A response whose question name points at itself.
const HOSTILE: [u8; 14] = [0x13, 0x37, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0, 0xc0, 0x0c];

/// Floods from the peer's port 53 for one phase; returns (sent, hostile).
fn flood(
    server: &UdpSocket,
    template: &mut Template,
    next: &mut u64,
) -> anyhow::Result<(u64, u64)> {
    let client: SocketAddr = format!("{A4}:35353").parse()?;
    let (mut sent, mut hostile) = (0, 0);
    let end = Instant::now() + PHASE;
    while sent < PHASE_MAX && (sent % 256 != 0 || Instant::now() < end) {
        *next += 1;
        if (*next).is_multiple_of(HOSTILE_EVERY) {
            server.send_to(&HOSTILE, client)?;
            hostile += 1;
        } else {
            server.send_to(template.message(*next), client)?;
        }
        sent += 1;
    }
    Ok((sent, hostile))
}

/// (VmRSS, VmHWM) of a process in KiB.
fn memory_kib(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .ok_or_else(|| anyhow::anyhow!("no {name}"))?;
        Ok(line.split_whitespace().nth(1).unwrap_or("0").parse()?)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

#[test]
fn a_dns_flood_is_accounted_and_memory_stays_bounded() -> anyhow::Result<()> {
    let pair = Pair::addressed(false)?;
    let scratch = Scratch::new("dns-flood");
    let out = scratch.path().join("out");
    let capacity = CAPACITY.to_string();
    let observer = Observer::start(
        &pair.a,
        &out,
        &[
            "--iface",
            "veth0",
            "--dns-capacity",
            &capacity,
            "--flush-interval",
            "60",
            "--quiet",
        ],
    )?;
    let server = pair.b.enter(|| UdpSocket::bind(format!("{B4}:53")))??;
    let _sink = pair.a.enter(|| UdpSocket::bind(format!("{A4}:35353")))??;
    let mut template = Template::new();
    let mut next = 0;

    let started = Instant::now();
    let (sent1, hostile1) = flood(&server, &mut template, &mut next)?;
    let (_, peak1) = memory_kib(observer.pid())?;
    let (sent2, hostile2) = flood(&server, &mut template, &mut next)?;
    let elapsed = started.elapsed();
    let (_, peak2) = memory_kib(observer.pid())?;
    std::thread::sleep(Duration::from_millis(500));
    observer.stop()?;

    let run = summary(&out)?;
    let sent = sent1 + sent2;
    let hostile = hostile1 + hostile2;
    let field = |name: &str| run[name].as_u64().unwrap_or_default();
    let (seen, seen_bytes) = counter(&run, "dns_messages");
    let (lost, _) = counter(&run, "dns_events_lost");
    let (answers, malformed, queries) = (
        field("dns_answers"),
        field("dns_malformed"),
        field("dns_queries"),
    );
    eprintln!(
        "DNS flood: {sent} messages in {elapsed:.1?} ({:.0}/s), {answers} answers parsed, \
         {malformed} malformed, {lost} lost in the kernel, peak RSS {peak1} KiB after phase 1, {peak2} KiB after phase 2",
        sent as f64 / elapsed.as_secs_f64()
    );
    assert!(sent > 20_000, "the flood sent {sent} messages");
    assert_eq!(seen, sent, "the kernel saw every message");
    assert!(seen_bytes > 0);
    assert_eq!(
        answers + malformed + queries,
        seen - lost,
        "every message not counted lost reached userspace and was accounted"
    );
    assert_eq!(queries, 0);
    assert!(
        malformed > 0 && malformed <= hostile,
        "{malformed} of {hostile} hostile messages reached userspace"
    );

    // Each answer added one resolution; the tracker kept the newest CAPACITY.
    assert_eq!(
        field("dns_evicted"),
        answers.saturating_sub(CAPACITY),
        "the tracker stayed at {CAPACITY} entries"
    );

    let rows: usize = observer_tests::table_rows(&out, "dns-")?;
    assert_eq!(rows as u64, answers, "every parsed answer is a dns row");

    // The second phase added as many new names again; peak memory does not
    // follow. With a 60 s flush interval only the row-group threshold
    // flushes, so this also shows it bounds what is held, not the interval.
    assert!(
        peak2 <= peak1 + peak1 / 4 + 8 * 1024,
        "peak RSS grew from {peak1} KiB to {peak2} KiB"
    );
    Ok(())
}
