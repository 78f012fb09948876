//! The report: ONE summary model of classified flows, and one renderer per
//! output format. Renderers only read the model.
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | [`Summary`]: connections (both directions and every observation point of one conversation grouped like an RFC 5103 biflow, judged once), verdict counts, DNS findings, capture loss; [`FailOn`] |
//! | [`text`] | the report for people: problems first, then counts |
//! | [`json`] | one JSON document (field names are a contract, see the README) |
//! | [`junit`] | JUnit XML for CI test reporters: one test case per connection |
//! | [`html`] | one self-contained HTML page: leaks first, Sankey, topology, DNS, table, time (ECharts embedded) |

pub mod html;
pub mod json;
pub mod junit;
pub mod text;

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    str::FromStr,
    sync::Arc,
};

use serde::Serialize;

use crate::{
    dns::DnsAnswer,
    flow::{Direction, FlowRecord},
    verdict::Verdict,
};

/// What makes `observer report --fail-on` (and `lab exec`) exit non-zero.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FailOn {
    pub verdicts: BTreeSet<Verdict>,
    /// Any record or DNS message lost by the capture.
    pub lost: bool,
    /// Any DNS answer judged other than `ok`.
    pub dns: bool,
}

impl FromStr for FailOn {
    type Err = String;

    /// A comma-separated list: `leak` (every leak verdict), `any` (every
    /// verdict but ok), `lost`, `dns`, or verdict names.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut fail = Self::default();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            match item {
                "leak" => fail
                    .verdicts
                    .extend(Verdict::ALL.into_iter().filter(|v| v.is_leak())),
                "any" => fail
                    .verdicts
                    .extend(Verdict::ALL.into_iter().filter(|v| *v != Verdict::Ok)),
                "lost" => fail.lost = true,
                "dns" => fail.dns = true,
                verdict => {
                    fail.verdicts.insert(
                        verdict
                            .parse()
                            .map_err(|e: String| format!("{e}; or leak, any, lost, dns"))?,
                    );
                }
            }
        }
        Ok(fail)
    }
}

impl FailOn {
    /// The default of `lab exec`: every leak verdict.
    pub fn leaks() -> Self {
        "leak".parse().expect("`leak` is a valid list")
    }

    /// Whether a connection with `verdict` fails the run.
    pub fn fails(&self, verdict: Option<&str>) -> bool {
        verdict
            .and_then(|v| v.parse::<Verdict>().ok())
            .is_some_and(|v| self.verdicts.contains(&v))
    }
}

/// Packets and bytes one way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub packets: u64,
    pub bytes: u64,
}

impl Counts {
    fn add(&mut self, r: &FlowRecord) {
        self.packets += r.packets;
        self.bytes += r.bytes;
    }
}

/// One side of a connection.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Endpoint {
    pub addr: IpAddr,
    /// TCP/UDP port (none for ICMP and other protocols).
    pub port: Option<u16>,
    /// The DNS name the client resolved to reach it, when known.
    pub name: Option<String>,
}

/// What one observation point (an interface) saw of a connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PointCounts {
    pub host: String,
    pub netns: Option<String>,
    pub iface: String,
    /// The interface's role label (`workload`, `vnet`, `internet`, ...).
    pub role: Option<String>,
    /// Client to server.
    pub forward: Counts,
    /// Server to client.
    pub reverse: Counts,
    pub records: usize,
}

/// One conversation: every record of the same protocol and address/port
/// pair, both directions, every observation point. Judged once: its
/// verdict is the most severe one of the client-to-server records (the
/// classifier judges replies too; they only decide when nothing else did).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Connection {
    /// `tcp`, `udp`, `icmp` or `ip-N`.
    pub protocol: String,
    /// The side that spoke first.
    pub client: Endpoint,
    pub server: Endpoint,
    /// Client to server, as the observation point that saw most of it.
    pub forward: Counts,
    /// Server to client, likewise.
    pub reverse: Counts,
    /// Every observation point that saw the connection.
    pub points: Vec<PointCounts>,
    pub verdict: Option<String>,
    pub reason: Option<String>,
    pub dependency: Option<String>,
    pub category: Option<String>,
    pub expected_next_hop: Option<String>,
    pub observed_path: Option<String>,
    pub flow_type: Option<String>,
    /// The query name and every CNAME target the client's lookup followed.
    pub dns_chain: Option<Vec<String>>,
    /// First and last packet, UTC nanoseconds since the epoch.
    pub start_ns: i64,
    pub end_ns: i64,
    /// Flow records grouped into this connection.
    pub records: usize,
}

impl Connection {
    /// Whether the verdict is one of the leak verdicts.
    pub fn is_leak(&self) -> bool {
        self.verdict_enum().is_some_and(Verdict::is_leak)
    }

    pub fn verdict_enum(&self) -> Option<Verdict> {
        self.verdict.as_deref().and_then(|v| v.parse().ok())
    }

    /// `tcp 10.0.0.4:50000 -> 203.0.113.6:1433 (name)`.
    pub fn title(&self) -> String {
        let side = |e: &Endpoint| match e.port {
            Some(p) => format!("{}:{p}", e.addr),
            None => e.addr.to_string(),
        };
        let name = self
            .server
            .name
            .as_deref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        format!(
            "{} {} -> {}{name}",
            self.protocol,
            side(&self.client),
            side(&self.server)
        )
    }
}

/// DNS answers seen by the capture, judged by the classifier.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DnsSummary {
    pub answers: usize,
    pub by_verdict: BTreeMap<String, usize>,
    /// `verdict: reason` of every answer judged other than ok, deduplicated.
    pub problems: Vec<String>,
}

/// What the capture could not account for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Loss {
    /// Packets the capture lost (flow events dropped), summed over runs.
    pub packets: u64,
}

/// Connections by expected next hop and observed path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PathCount {
    pub expected_next_hop: String,
    pub observed_path: String,
    pub connections: usize,
}

/// The one summary every renderer reads.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Flow records read.
    pub records: usize,
    /// Records without a verdict (captured without `--topology`).
    pub unclassified: usize,
    /// Problems first (most severe verdict first), then by start time.
    pub connections: Vec<Connection>,
    /// Connections per verdict (`unclassified` for none).
    pub by_verdict: BTreeMap<String, usize>,
    /// Connections per dependency, then per verdict.
    pub by_dependency: BTreeMap<String, BTreeMap<String, usize>>,
    pub by_path: Vec<PathCount>,
    pub dns: DnsSummary,
    pub loss: Loss,
}

fn protocol_name(p: u8) -> String {
    match p {
        6 => "tcp".into(),
        17 => "udp".into(),
        1 | 58 => "icmp".into(),
        n => format!("ip-{n}"),
    }
}

/// A port a client picks (Linux's ephemeral range starts at 32768).
fn ephemeral(port: Option<u16>) -> bool {
    port.is_some_and(|p| p >= 32768)
}

type Side = (IpAddr, Option<u16>);

impl Summary {
    pub fn build(records: &[FlowRecord], dns: &[DnsAnswer], lost: u64) -> Self {
        let mut summary = Self {
            records: records.len(),
            unclassified: records.iter().filter(|r| r.verdict.is_none()).count(),
            loss: Loss { packets: lost },
            ..Self::default()
        };
        // Group by protocol and the unordered pair of sides.
        let mut groups: BTreeMap<(u8, Side, Side), Vec<&FlowRecord>> = BTreeMap::new();
        for r in records {
            let a = (r.src_addr, r.src_port);
            let b = (r.dst_addr, r.dst_port);
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            groups.entry((r.protocol, lo, hi)).or_default().push(r);
        }
        summary.connections = groups
            .into_values()
            .map(|group| connection(&group))
            .collect();
        summary.connections.sort_by(|a, b| {
            let rank = |c: &Connection| c.verdict_enum().unwrap_or(Verdict::Ok);
            rank(a)
                .cmp(&rank(b))
                .then(a.start_ns.cmp(&b.start_ns))
                .then_with(|| a.client.cmp(&b.client))
        });
        let mut paths: BTreeMap<(String, String), usize> = BTreeMap::new();
        for c in &summary.connections {
            let verdict = c.verdict.clone().unwrap_or_else(|| "unclassified".into());
            *summary.by_verdict.entry(verdict.clone()).or_default() += 1;
            if let Some(dep) = &c.dependency {
                *summary
                    .by_dependency
                    .entry(dep.clone())
                    .or_default()
                    .entry(verdict)
                    .or_default() += 1;
            }
            let key = (
                c.expected_next_hop.clone().unwrap_or_else(|| "-".into()),
                c.observed_path.clone().unwrap_or_else(|| "-".into()),
            );
            *paths.entry(key).or_default() += 1;
        }
        summary.by_path = paths
            .into_iter()
            .map(
                |((expected_next_hop, observed_path), connections)| PathCount {
                    expected_next_hop,
                    observed_path,
                    connections,
                },
            )
            .collect();
        summary.dns.answers = dns.len();
        for a in dns {
            let verdict: String = a.verdict.map_or("unjudged", |v| v.as_str()).into();
            if verdict != "ok" && verdict != "unjudged" {
                summary.dns.problems.push(format!(
                    "{verdict}: {}",
                    a.reason.as_deref().unwrap_or(&a.query)
                ));
            }
            *summary.dns.by_verdict.entry(verdict).or_default() += 1;
        }
        summary.dns.problems.sort();
        summary.dns.problems.dedup();
        summary
    }

    /// The connections `fail` fails on.
    pub fn offending<'a>(&'a self, fail: &'a FailOn) -> impl Iterator<Item = &'a Connection> {
        self.connections
            .iter()
            .filter(|c| fail.fails(c.verdict.as_deref()))
    }

    /// One line per finding of `fail` (empty: pass): each offending
    /// connection with its verdict and reason, then loss and DNS.
    pub fn failures(&self, fail: &FailOn) -> Vec<String> {
        let mut out: Vec<String> = self
            .offending(fail)
            .map(|c| {
                format!(
                    "{}: {} — {}",
                    c.verdict.as_deref().unwrap_or("-"),
                    c.title(),
                    c.reason.as_deref().unwrap_or("no reason recorded")
                )
            })
            .collect();
        if fail.lost && self.loss.packets > 0 {
            out.push(format!(
                "lost: {} packets lost by the capture",
                self.loss.packets
            ));
        }
        if fail.dns {
            out.extend(self.dns.problems.iter().map(|p| format!("dns {p}")));
        }
        out
    }
}

/// Folds the records of one conversation into a connection.
fn connection(group: &[&FlowRecord]) -> Connection {
    let first = group
        .iter()
        .min_by_key(|r| (r.start_ns, r.direction != Direction::Egress))
        .expect("groups are never empty");
    // The client: the side with an ephemeral port when only one has one,
    // otherwise the sender of the earliest record.
    let (a, b) = (
        (first.src_addr, first.src_port),
        (first.dst_addr, first.dst_port),
    );
    let (client, server) = match (ephemeral(a.1), ephemeral(b.1)) {
        (false, true) => (b, a),
        _ => (a, b),
    };
    let is_forward = |r: &FlowRecord| (r.src_addr, r.src_port) == client;

    let mut points: Vec<PointCounts> = Vec::new();
    for r in group {
        let netns = r.point.netns.as_deref().map(str::to_string);
        let index = points
            .iter()
            .position(|p| p.host == *r.point.host && p.netns == netns && p.iface == *r.point.iface)
            .unwrap_or_else(|| {
                points.push(PointCounts {
                    host: r.point.host.to_string(),
                    netns: netns.clone(),
                    iface: r.point.iface.to_string(),
                    role: r.point.iface_role.as_deref().map(str::to_string),
                    forward: Counts::default(),
                    reverse: Counts::default(),
                    records: 0,
                });
                points.len() - 1
            });
        let point = &mut points[index];
        point.records += 1;
        if is_forward(r) {
            point.forward.add(r);
        } else {
            point.reverse.add(r);
        }
    }
    points.sort_by(|x, y| (&x.netns, &x.iface).cmp(&(&y.netns, &y.iface)));

    // The judging record: the most severe verdict among client-to-server
    // records, else among all.
    let judged = |forward_only: bool| {
        group
            .iter()
            .filter(|r| !forward_only || is_forward(r))
            .filter_map(|r| Some((r.verdict.as_deref()?.parse::<Verdict>().ok()?, *r)))
            .min_by_key(|(v, r)| (*v, r.start_ns))
            .map(|(_, r)| r)
    };
    let judge = judged(true)
        .or_else(|| judged(false))
        .or_else(|| group.iter().find(|r| r.verdict.is_some()).copied());
    // Enrichment (names, categories) from any forward record that has it.
    let pick = |f: &dyn Fn(&FlowRecord) -> Option<&Arc<str>>| {
        judge
            .and_then(f)
            .or_else(|| {
                group
                    .iter()
                    .filter(|r| is_forward(r))
                    .chain(group.iter())
                    .find_map(|r| f(r))
            })
            .map(|text| text.to_string())
    };
    let name = group
        .iter()
        .filter(|r| is_forward(r))
        .find_map(|r| r.dst_name.as_deref().map(str::to_owned));
    Connection {
        protocol: protocol_name(first.protocol),
        client: Endpoint {
            addr: client.0,
            port: client.1,
            name: None,
        },
        server: Endpoint {
            addr: server.0,
            port: server.1,
            name,
        },
        forward: points
            .iter()
            .map(|p| p.forward)
            .max_by_key(|c| (c.packets, c.bytes))
            .unwrap_or_default(),
        reverse: points
            .iter()
            .map(|p| p.reverse)
            .max_by_key(|c| (c.packets, c.bytes))
            .unwrap_or_default(),
        points,
        verdict: judge.and_then(|r| r.verdict.as_deref().map(str::to_owned)),
        reason: judge.and_then(|r| r.reason.as_deref().map(str::to_owned)),
        dependency: pick(&|r| r.dependency.as_ref()),
        category: pick(&|r| r.category.as_ref()),
        expected_next_hop: pick(&|r| r.expected_next_hop.as_ref()),
        observed_path: pick(&|r| r.observed_path.as_ref()),
        flow_type: pick(&|r| r.flow_type.as_ref()),
        dns_chain: group
            .iter()
            .filter(|r| is_forward(r))
            .find_map(|r| r.dns_chain.clone()),
        start_ns: group.iter().map(|r| r.start_ns).min().unwrap_or_default(),
        end_ns: group.iter().map(|r| r.end_ns).max().unwrap_or_default(),
        records: group.len(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::flow::{EndReason, ObservationPoint};

    #[test]
    fn fail_on_parses_groups_and_names() {
        let f: FailOn = "leak".parse().unwrap();
        assert!(f.verdicts.contains(&Verdict::LeakDns) && !f.verdicts.contains(&Verdict::Blocked));
        let f: FailOn = "blocked, lost".parse().unwrap();
        assert_eq!(f.verdicts.len(), 1);
        assert!(f.lost);
        let err = "leek".parse::<FailOn>().unwrap_err();
        assert!(err.contains("unknown verdict `leek`"), "{err}");
    }

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
        assert_eq!(leak.verdict.as_deref(), Some("leak-public-endpoint"));
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
        assert_eq!(s.by_verdict["leak-public-endpoint"], 1);
        assert_eq!(s.by_verdict["ok"], 1);
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
}
