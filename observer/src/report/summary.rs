//! The one summary model every renderer reads: connections (both
//! directions and every observation point of one conversation grouped like
//! an RFC 5103 biflow, judged once), verdict counts, DNS findings, capture
//! loss. Verdict names are parsed here, once, when the records are read;
//! the renderers see [`Verdict`]s and [`Judgement`]s, never names.

use std::{collections::BTreeMap, fmt, net::IpAddr, sync::Arc};

use serde::Serialize;

use super::FailOn;
use crate::{
    dns::{DnsAnswer, DnsVerdict},
    flow::{Direction, FlowRecord},
    protocol::IpProtocol,
    verdict::Verdict,
};

/// A connection's verdict as the report counts it: one of the vocabulary,
/// or none (records captured without `--topology`, or judged with a name
/// this observer does not know). Ordered like the report: most severe
/// first, unclassified last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Judgement {
    Verdict(Verdict),
    Unclassified,
}

impl Judgement {
    pub fn of(verdict: Option<Verdict>) -> Self {
        verdict.map_or(Self::Unclassified, Self::Verdict)
    }

    /// The verdict's name, or `unclassified`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Verdict(v) => v.as_str(),
            Self::Unclassified => "unclassified",
        }
    }

    /// Position in the report's order: 0 for the most severe verdict,
    /// unclassified last.
    pub fn rank(self) -> usize {
        match self {
            Self::Verdict(v) => v as usize,
            Self::Unclassified => Verdict::ALL.len(),
        }
    }

    pub fn verdict(self) -> Option<Verdict> {
        match self {
            Self::Verdict(v) => Some(v),
            Self::Unclassified => None,
        }
    }
}

impl fmt::Display for Judgement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Serialised by name (also as a JSON object key).
impl Serialize for Judgement {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
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
    /// None: unclassified.
    pub verdict: Option<Verdict>,
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
        self.verdict.is_some_and(Verdict::is_leak)
    }

    /// Whether the connection was judged anything but ok (leaks included).
    pub fn is_problem(&self) -> bool {
        self.verdict.is_some_and(|v| v != Verdict::Ok)
    }

    pub fn judgement(&self) -> Judgement {
        Judgement::of(self.verdict)
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
    /// Records whose verdict name this observer does not know (classified
    /// by a newer one), per name; their connections count as unclassified
    /// unless another record judges them.
    pub unknown_verdicts: BTreeMap<String, usize>,
    /// Problems first (most severe verdict first), then by start time.
    pub connections: Vec<Connection>,
    /// Connections per verdict, most severe first.
    pub by_verdict: BTreeMap<Judgement, usize>,
    /// Connections per dependency, then per verdict.
    pub by_dependency: BTreeMap<String, BTreeMap<Judgement, usize>>,
    pub by_path: Vec<PathCount>,
    pub dns: DnsSummary,
    pub loss: Loss,
}

/// A port a client picks (Linux's ephemeral range starts at 32768).
fn ephemeral(port: Option<u16>) -> bool {
    port.is_some_and(|p| p >= 32768)
}

type Side = (IpAddr, Option<u16>);

impl Summary {
    /// The summary of classified `records` (any order), the `dns` answers
    /// seen with them and the packets the capture `lost`.
    pub fn build(records: &[FlowRecord], dns: &[DnsAnswer], lost: u64) -> Self {
        let mut summary = Self {
            records: records.len(),
            unclassified: records.iter().filter(|r| r.verdict.is_none()).count(),
            loss: Loss { packets: lost },
            ..Self::default()
        };
        for r in records {
            if let Some(name) = r.verdict.as_deref()
                && name.parse::<Verdict>().is_err()
            {
                *summary.unknown_verdicts.entry(name.to_owned()).or_default() += 1;
            }
        }
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
            let rank = |c: &Connection| c.verdict.unwrap_or(Verdict::Ok);
            rank(a)
                .cmp(&rank(b))
                .then(a.start_ns.cmp(&b.start_ns))
                .then_with(|| a.client.cmp(&b.client))
        });
        let mut paths: BTreeMap<(String, String), usize> = BTreeMap::new();
        for c in &summary.connections {
            let verdict = c.judgement();
            *summary.by_verdict.entry(verdict).or_default() += 1;
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
            let verdict = a.verdict.map_or("unjudged", DnsVerdict::as_str);
            if a.verdict.is_some_and(|v| v != DnsVerdict::Ok) {
                summary.dns.problems.push(format!(
                    "{verdict}: {}",
                    a.reason.as_deref().unwrap_or(&a.query)
                ));
            }
            *summary.dns.by_verdict.entry(verdict.into()).or_default() += 1;
        }
        summary.dns.problems.sort();
        summary.dns.problems.dedup();
        summary
    }

    /// The connections `fail` fails on.
    pub(crate) fn offending<'a>(
        &'a self,
        fail: &'a FailOn,
    ) -> impl Iterator<Item = &'a Connection> {
        self.connections.iter().filter(|c| fail.fails(c.verdict))
    }

    /// One line per finding of `fail` (empty: pass): each offending
    /// connection with its verdict and reason, then loss and DNS.
    pub(crate) fn failures(&self, fail: &FailOn) -> Vec<String> {
        let mut out: Vec<String> = self
            .offending(fail)
            .map(|c| {
                format!(
                    "{}: {} — {}",
                    c.verdict.map_or("-", Verdict::as_str),
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
    };
    let verdict = judged(true).or_else(|| judged(false));
    // Unjudged (or judged with unknown names): still the reason of a record
    // that has one.
    let judge = verdict
        .map(|(_, r)| r)
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
        protocol: IpProtocol(first.protocol).lower().into_owned(),
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
        verdict: verdict.map(|(v, _)| v),
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
