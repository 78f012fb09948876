//! The HTML report: one self-contained file that opens offline by
//! double-click. The text (summary, leaking and failing connections with
//! reason and fix, DNS problems, the table of every connection) is rendered
//! here, escaped, so it reads and prints without scripts; the charts (a
//! Sankey of category/dependency -> expected next hop -> observed path, the
//! topology as a graph with each path coloured by verdict, traffic over
//! time) are Apache ECharts, embedded from `assets/echarts`, fed with the
//! aggregates computed here. `assets/report/` holds the page's CSS (light,
//! dark, print) and the small script that feeds ECharts and sorts/filters
//! the table. Reads only the [`Summary`] model.

use std::{
    collections::{BTreeMap, HashMap},
    fmt::Write as _,
    net::IpAddr,
};

use serde::Serialize;

use super::{Connection, Summary};
use crate::{
    classify::Verdict,
    topology::{NextHop, SubnetRole, Topology},
};

/// Apache ECharts 6.1.0 (`dist/echarts.min.js`, Apache-2.0), vendored.
static ECHARTS: &str = include_str!("../../assets/echarts/echarts.min.js");
static STYLE: &str = include_str!("../../assets/report/report.css");
static SCRIPT: &str = include_str!("../../assets/report/report.js");

/// What the report knows besides the summary.
#[derive(Clone, Copy, Debug, Default)]
pub struct Context<'a> {
    /// The topology's name (from the files' metadata or the topology).
    pub topology_name: Option<&'a str>,
    /// The topology itself, when given: the drawing then shows its subnets,
    /// private endpoints, gateway and appliance.
    pub topology: Option<&'a Topology>,
    /// When the report was made (RFC 3339).
    pub generated: &'a str,
}

/// The colour of a verdict, shared by badges and charts.
pub fn colour(verdict: &str) -> &'static str {
    match verdict {
        "leak-public-endpoint" => "#d62728",
        "leak-dns" => "#e8467c",
        "leak-route" => "#b3122e",
        "misroute-forced-tunnel" => "#f0642d",
        "blocked" => "#e0a800",
        "same-subnet-unreachable" => "#c98a00",
        "dropped-no-route" => "#8c6d1f",
        "undocumented" => "#8e5cc4",
        "ok" => "#2ca02c",
        _ => "#8a8f98",
    }
}

/// What to do about a verdict, one sentence (the reason says why).
pub fn fix(verdict: &str) -> &'static str {
    match verdict {
        "leak-public-endpoint" => {
            "Reach the service by its private address: use the backend's private IP or a private endpoint, and resolve its name to that address."
        }
        "leak-dns" => {
            "Link the privatelink DNS zone to the VNet (or forward the zone from your DNS servers to 168.63.129.16) so the name resolves to the private endpoint."
        }
        "leak-route" => {
            "Fix the route table: add a route that keeps this prefix in the VNet (VnetLocal, peering or gateway) instead of the Internet next hop."
        }
        "misroute-forced-tunnel" => {
            "Add Internet routes (UDRs) for the ASE's platform dependencies so forced tunnelling does not send them on-premises."
        }
        "blocked" => {
            "Allow the ASE's source (its outbound VIP or subnet) in the destination's firewall or ACL, or reach it by the path it admits."
        }
        "same-subnet-unreachable" => {
            "Move the destination out of the ASE subnet (ASEv1/v2 cannot reach hosts in their own subnet)."
        }
        "dropped-no-route" => {
            "Add a route for the destination (a UDR with next hop None drops it) or remove the one that drops it."
        }
        "undocumented" => {
            "Check whether this destination is needed; if it is, add it to a catalog (--catalog) with the path it should take."
        }
        _ => "",
    }
}

/// HTML-escapes text and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn verdict_of(c: &Connection) -> &str {
    c.verdict.as_deref().unwrap_or("unclassified")
}

/// Severity rank for ordering and "worst of" (leaks first, unclassified last).
fn rank(verdict: &str) -> usize {
    verdict
        .parse::<Verdict>()
        .map_or(Verdict::ALL.len(), |v| v as usize)
}

fn utc(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns)
        .format("%Y-%m-%d %H:%M:%S%.3f UTC")
        .to_string()
}

fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = b as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{b} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn badge(verdict: &str) -> String {
    format!(
        r#"<span class="badge" style="--c:{}">{}</span>"#,
        colour(verdict),
        esc(verdict)
    )
}

/// One Sankey node: `id` is unique per column, `label` is shown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SankeyNode {
    pub id: String,
    pub label: String,
    pub column: u8,
}

/// One Sankey link, coloured by the worst verdict of its connections.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SankeyLink {
    pub source: String,
    pub target: String,
    pub connections: usize,
    pub verdict: String,
    /// Connections per verdict (tooltip).
    pub verdicts: BTreeMap<String, usize>,
    /// Expected next hop and observed path differ.
    pub mismatch: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Sankey {
    pub nodes: Vec<SankeyNode>,
    pub links: Vec<SankeyLink>,
}

/// Category (or dependency) -> expected next hop -> observed path.
pub fn sankey(summary: &Summary) -> Sankey {
    let mut nodes: Vec<SankeyNode> = Vec::new();
    let mut links: BTreeMap<(String, String), SankeyLink> = BTreeMap::new();
    let node = |nodes: &mut Vec<SankeyNode>, column: u8, label: &str| {
        let id = format!(
            "{}:{label}",
            ["what", "expected", "observed"][usize::from(column)]
        );
        if !nodes.iter().any(|n| n.id == id) {
            nodes.push(SankeyNode {
                id: id.clone(),
                label: label.to_owned(),
                column,
            });
        }
        id
    };
    for c in &summary.connections {
        let what = c
            .dependency
            .clone()
            .or_else(|| c.category.clone())
            .unwrap_or_else(|| "unclassified".into());
        let expected = c.expected_next_hop.as_deref().unwrap_or("-");
        let observed = c.observed_path.as_deref().unwrap_or("not observed");
        let verdict = verdict_of(c);
        let a = node(&mut nodes, 0, &what);
        let b = node(&mut nodes, 1, expected);
        let o = node(&mut nodes, 2, observed);
        for (source, target, mismatch) in [
            (a.clone(), b.clone(), false),
            (b, o, expected != observed && c.observed_path.is_some()),
        ] {
            let link = links
                .entry((source.clone(), target.clone()))
                .or_insert_with(|| SankeyLink {
                    source,
                    target,
                    connections: 0,
                    verdict: verdict.to_owned(),
                    verdicts: BTreeMap::new(),
                    mismatch,
                });
            link.connections += 1;
            *link.verdicts.entry(verdict.to_owned()).or_default() += 1;
            if rank(verdict) < rank(&link.verdict) {
                link.verdict = verdict.to_owned();
            }
        }
    }
    Sankey {
        nodes,
        links: links.into_values().collect(),
    }
}

/// One element of the topology drawing.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GraphNode {
    pub id: String,
    pub label: String,
    /// workload, vnet, subnet, private-endpoint, backend, gateway, onprem,
    /// internet, appliance, azure, dns, peering, dropped, unknown.
    pub kind: &'static str,
    /// Addresses and other detail (tooltip).
    pub detail: String,
    /// Layout column (0 workload, 1 path, 2 destination) and row.
    pub x: f64,
    pub y: f64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GraphLink {
    pub source: String,
    pub target: String,
    pub connections: usize,
    /// The worst verdict of the connections on this edge (its colour).
    pub verdict: String,
    pub verdicts: BTreeMap<String, usize>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Graph {
    pub nodes: Vec<GraphNode>,
    pub links: Vec<GraphLink>,
}

/// Where a connection's server sits in the drawing: (id, label, kind, detail).
fn destination(
    c: &Connection,
    topology: Option<&Topology>,
) -> (String, String, &'static str, String) {
    let addr = c.server.addr;
    let name = c.server.name.clone();
    let category = c.category.as_deref().unwrap_or("unknown");
    if let Some(t) = topology
        && let IpAddr::V4(v4) = addr
    {
        if let Some(pe) = t
            .private_endpoints
            .iter()
            .find(|p| p.private_ip == v4 || p.public_ip == v4)
        {
            return (
                format!("pe:{}", pe.name),
                format!("{} (private endpoint)", pe.name),
                "private-endpoint",
                format!(
                    "{} private {} public {}",
                    pe.fqdn, pe.private_ip, pe.public_ip
                ),
            );
        }
        if let Some(b) = t
            .backends
            .iter()
            .find(|b| b.private_ip == v4 || b.public_ip == Some(v4))
            && category != "internet"
        {
            return (
                format!("backend:{}", b.name),
                b.name.clone(),
                "backend",
                format!(
                    "private {}{}",
                    b.private_ip,
                    b.public_ip
                        .map(|p| format!(", public {p}"))
                        .unwrap_or_default()
                ),
            );
        }
        if matches!(category, "vnet" | "ase-internal")
            && let Some(s) = t.vnet.subnets.iter().find(|s| s.prefix.contains(&v4))
        {
            return (
                format!("subnet:{}", s.name),
                format!("subnet {}", s.name),
                "subnet",
                s.prefix.to_string(),
            );
        }
    }
    match category {
        "dependency" => {
            let dep = c.dependency.clone().unwrap_or_else(|| "azure".into());
            (
                format!("azure:{dep}"),
                dep,
                "azure",
                name.unwrap_or_else(|| addr.to_string()),
            )
        }
        "onprem" => (
            "onprem".into(),
            "on-premises".into(),
            "onprem",
            String::new(),
        ),
        "dns" => ("dns".into(), "DNS".into(), "dns", addr.to_string()),
        "private-endpoint" => (
            format!("pe:{addr}"),
            name.unwrap_or_else(|| addr.to_string()),
            "private-endpoint",
            addr.to_string(),
        ),
        "vnet" | "ase-internal" => (
            "vnet-hosts".into(),
            "VNet hosts".into(),
            "subnet",
            String::new(),
        ),
        "internet" => (
            "public".into(),
            "public internet".into(),
            "internet",
            String::new(),
        ),
        _ => ("unknown".into(), "unknown".into(), "unknown", String::new()),
    }
}

/// The path element of an observed next hop: (id, label, kind).
fn hop(observed: Option<&str>) -> (String, String, &'static str) {
    match observed.and_then(|o| o.parse::<NextHop>().ok()) {
        Some(NextHop::VnetLocal | NextHop::VirtualNetworkServiceEndpoint) => {
            ("hop:vnet".into(), "VNet routing".into(), "vnet")
        }
        Some(NextHop::VnetPeering) => ("hop:peering".into(), "VNet peering".into(), "peering"),
        Some(NextHop::VirtualNetworkGateway) => (
            "hop:gateway".into(),
            "VPN / ExpressRoute gateway".into(),
            "gateway",
        ),
        Some(NextHop::VirtualAppliance) => (
            "hop:appliance".into(),
            "virtual appliance".into(),
            "appliance",
        ),
        Some(NextHop::Internet) => (
            "hop:internet".into(),
            "Internet (SNAT to the VIP)".into(),
            "internet",
        ),
        Some(NextHop::None) => ("hop:dropped".into(), "dropped".into(), "dropped"),
        None => (
            "hop:unobserved".into(),
            "path not observed".into(),
            "unknown",
        ),
    }
}

/// Kinds in drawing order, top to bottom, per column.
const KIND_ORDER: [&str; 14] = [
    "workload",
    "subnet",
    "backend",
    "private-endpoint",
    "vnet",
    "peering",
    "dns",
    "appliance",
    "gateway",
    "onprem",
    "internet",
    "azure",
    "dropped",
    "unknown",
];

/// The topology drawing: the workload, the paths its connections took and
/// their destinations; with the topology, its subnets, private endpoints,
/// gateway and appliance appear even when no connection used them.
pub fn graph(summary: &Summary, topology: Option<&Topology>) -> Graph {
    let mut nodes: Vec<(u8, GraphNode)> = Vec::new();
    let add = |nodes: &mut Vec<(u8, GraphNode)>,
               column: u8,
               id: String,
               label: String,
               kind: &'static str,
               detail: String| {
        if !nodes.iter().any(|(_, n)| n.id == id) {
            nodes.push((
                column,
                GraphNode {
                    id: id.clone(),
                    label,
                    kind,
                    detail,
                    x: 0.0,
                    y: 0.0,
                },
            ));
        }
        id
    };
    let workload_detail = topology
        .map(|t| {
            let s = t.ase_subnet();
            format!("subnet {} {}", s.name, s.prefix)
        })
        .unwrap_or_default();
    let workload = add(
        &mut nodes,
        0,
        "workload".into(),
        "ASE workload".into(),
        "workload",
        workload_detail,
    );
    if let Some(t) = topology {
        let space: Vec<String> = t
            .vnet
            .address_space
            .iter()
            .map(ToString::to_string)
            .collect();
        add(
            &mut nodes,
            1,
            "hop:vnet".into(),
            format!("VNet {}", t.vnet.name),
            "vnet",
            space.join(", "),
        );
        for s in &t.vnet.subnets {
            if s.role == SubnetRole::Ase {
                continue;
            }
            add(
                &mut nodes,
                2,
                format!("subnet:{}", s.name),
                format!("subnet {}", s.name),
                "subnet",
                s.prefix.to_string(),
            );
        }
        for pe in &t.private_endpoints {
            add(
                &mut nodes,
                2,
                format!("pe:{}", pe.name),
                format!("{} (private endpoint)", pe.name),
                "private-endpoint",
                format!(
                    "{} private {} public {}",
                    pe.fqdn, pe.private_ip, pe.public_ip
                ),
            );
        }
        if let Some(onprem) = &t.onprem {
            add(
                &mut nodes,
                1,
                "hop:gateway".into(),
                "VPN / ExpressRoute gateway".into(),
                "gateway",
                format!("{:?}", onprem.gateway).to_lowercase(),
            );
            let prefixes: Vec<String> = onprem.prefixes.iter().map(ToString::to_string).collect();
            add(
                &mut nodes,
                2,
                "onprem".into(),
                "on-premises".into(),
                "onprem",
                prefixes.join(", "),
            );
        }
        if let Some(route) = t
            .route_table
            .routes
            .iter()
            .find(|r| r.next_hop == NextHop::VirtualAppliance)
        {
            add(
                &mut nodes,
                1,
                "hop:appliance".into(),
                "virtual appliance".into(),
                "appliance",
                route
                    .next_hop_ip
                    .map(|ip| ip.to_string())
                    .unwrap_or_default(),
            );
        }
        add(
            &mut nodes,
            1,
            "hop:internet".into(),
            "Internet (SNAT to the VIP)".into(),
            "internet",
            t.outbound_vip
                .map(|v| format!("outbound VIP {v}"))
                .unwrap_or_default(),
        );
    }
    let mut links: BTreeMap<(String, String), GraphLink> = BTreeMap::new();
    for c in &summary.connections {
        let verdict = verdict_of(c);
        let (hop_id, hop_label, hop_kind) = hop(c.observed_path.as_deref());
        let hop_id = add(&mut nodes, 1, hop_id, hop_label, hop_kind, String::new());
        let (id, label, kind, detail) = destination(c, topology);
        let dest = add(&mut nodes, 2, id, label, kind, detail);
        for (source, target) in [(workload.clone(), hop_id.clone()), (hop_id, dest)] {
            let link = links
                .entry((source.clone(), target.clone()))
                .or_insert_with(|| GraphLink {
                    source,
                    target,
                    connections: 0,
                    verdict: verdict.to_owned(),
                    verdicts: BTreeMap::new(),
                });
            link.connections += 1;
            *link.verdicts.entry(verdict.to_owned()).or_default() += 1;
            if rank(verdict) < rank(&link.verdict) {
                link.verdict = verdict.to_owned();
            }
        }
    }
    // Lay out: three columns, each sorted by kind, evenly spaced.
    let order = |kind: &str| KIND_ORDER.iter().position(|k| *k == kind).unwrap_or(99);
    nodes.sort_by(|(ca, a), (cb, b)| {
        (ca, order(a.kind), &a.label).cmp(&(cb, order(b.kind), &b.label))
    });
    let mut per_column: HashMap<u8, usize> = HashMap::new();
    for (column, _) in &nodes {
        *per_column.entry(*column).or_default() += 1;
    }
    let mut seen: HashMap<u8, usize> = HashMap::new();
    let graph_nodes = nodes
        .into_iter()
        .map(|(column, mut node)| {
            let index = seen.entry(column).or_default();
            let count = per_column[&column];
            node.x = f64::from(column) * 400.0;
            node.y = (*index as f64 + 0.5) / count as f64 * 600.0;
            *index += 1;
            node
        })
        .collect();
    Graph {
        nodes: graph_nodes,
        links: links.into_values().collect(),
    }
}

/// Connections active per time bucket, by verdict.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Timeline {
    /// Bucket starts, milliseconds since the epoch.
    pub buckets_ms: Vec<i64>,
    pub bucket_seconds: f64,
    /// Verdict -> connections active in each bucket.
    pub active: BTreeMap<String, Vec<usize>>,
    /// Bytes both ways per bucket, each connection's bytes spread evenly
    /// over its lifetime.
    pub bytes: Vec<f64>,
}

/// Buckets of a round size, at most 60 over the run.
pub fn timeline(summary: &Summary) -> Timeline {
    let (Some(start), Some(end)) = (
        summary.connections.iter().map(|c| c.start_ns).min(),
        summary.connections.iter().map(|c| c.end_ns).max(),
    ) else {
        return Timeline::default();
    };
    const STEPS_MS: [i64; 17] = [
        100, 200, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000,
        600_000, 900_000, 1_800_000, 3_600_000, 7_200_000,
    ];
    let span_ns = (end - start).max(1);
    let step_ms = STEPS_MS
        .iter()
        .copied()
        .find(|ms| span_ns / (ms * 1_000_000) < 60)
        .unwrap_or(86_400_000);
    let step = step_ms * 1_000_000;
    let first = start - start.rem_euclid(step);
    let count = ((end - first) / step + 1) as usize;
    let mut timeline = Timeline {
        buckets_ms: (0..count)
            .map(|i| (first + i as i64 * step) / 1_000_000)
            .collect(),
        bucket_seconds: step_ms as f64 / 1000.0,
        active: BTreeMap::new(),
        bytes: vec![0.0; count],
    };
    for c in &summary.connections {
        let from = ((c.start_ns - first) / step) as usize;
        let to = (((c.end_ns.max(c.start_ns)) - first) / step) as usize;
        let series = timeline
            .active
            .entry(verdict_of(c).to_owned())
            .or_insert_with(|| vec![0; count]);
        for slot in &mut series[from..=to.min(count - 1)] {
            *slot += 1;
        }
        let total = (c.forward.bytes + c.reverse.bytes) as f64;
        let n = (to.min(count - 1) - from + 1) as f64;
        for b in &mut timeline.bytes[from..=to.min(count - 1)] {
            *b += total / n;
        }
    }
    timeline
}

#[derive(Serialize)]
struct Data<'a> {
    sankey: Sankey,
    graph: Graph,
    timeline: Timeline,
    colours: BTreeMap<&'a str, &'static str>,
}

/// Renders the whole page.
pub fn render(summary: &Summary, context: &Context<'_>) -> String {
    let topology_name = context
        .topology_name
        .or(context.topology.map(|t| t.name.as_str()));
    let mut colours: BTreeMap<&str, &'static str> = Verdict::ALL
        .iter()
        .map(|v| (v.as_str(), colour(v.as_str())))
        .collect();
    colours.insert("unclassified", colour("unclassified"));
    let timeline = timeline(summary);
    let bucket_seconds = timeline.bucket_seconds;
    let data = Data {
        timeline,
        sankey: sankey(summary),
        graph: graph(summary, context.topology),
        colours,
    };
    // `<` escaped so no string in the data can close the script element.
    let json = serde_json::to_string(&data)
        .expect("plain data")
        .replace('<', "\\u003c");

    let leaks = summary.connections.iter().filter(|c| c.is_leak()).count();
    let problems: Vec<&Connection> = summary
        .connections
        .iter()
        .filter(|c| c.verdict.as_deref().is_some_and(|v| v != "ok"))
        .collect();
    let title = format!(
        "observer report{}",
        topology_name.map(|n| format!(" — {n}")).unwrap_or_default()
    );
    let mut h = String::with_capacity(ECHARTS.len() + 64 * 1024);
    let _ = write!(
        h,
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<meta name="color-scheme" content="light dark">
<title>{}</title>
<style>{STYLE}</style>
</head>
<body>
"#,
        esc(&title)
    );

    // Header and summary.
    let status = if leaks > 0 {
        format!(
            r#"<p class="status bad" id="status">{leaks} leaking connection{}</p>"#,
            if leaks == 1 { "" } else { "s" }
        )
    } else if !problems.is_empty() {
        format!(
            r#"<p class="status warn" id="status">No leak; {} connection{} with problems</p>"#,
            problems.len(),
            if problems.len() == 1 { "" } else { "s" }
        )
    } else {
        r#"<p class="status good" id="status">No leak, no problem</p>"#.to_owned()
    };
    let span = match (
        summary.connections.iter().map(|c| c.start_ns).min(),
        summary.connections.iter().map(|c| c.end_ns).max(),
    ) {
        (Some(a), Some(b)) => format!("{} → {} ({:.1} s)", utc(a), utc(b), (b - a) as f64 / 1e9),
        _ => "no traffic".to_owned(),
    };
    let _ = write!(
        h,
        r#"<header>
<div><h1>Where did the traffic go?</h1>
<p class="sub">Topology <strong id="topology-name">{}</strong>{}</p></div>
{status}
</header>
<main>
<section id="summary">
<h2>Summary</h2>
<dl class="facts">
<div><dt>Connections</dt><dd>{}</dd></div>
<div><dt>Flow records</dt><dd>{}</dd></div>
<div><dt>Time span</dt><dd>{}</dd></div>
<div><dt>Capture loss</dt><dd class="{}">{} packets</dd></div>
<div><dt>DNS answers</dt><dd>{} ({} problem{})</dd></div>
</dl>
<ul class="verdicts">
"#,
        esc(topology_name.unwrap_or("(not recorded)")),
        context
            .topology
            .and_then(|t| t.description.as_deref())
            .map(|d| format!(" · {}", esc(d)))
            .unwrap_or_default(),
        summary.connections.len(),
        summary.records,
        esc(&span),
        if summary.loss.packets > 0 {
            "bad-text"
        } else {
            ""
        },
        summary.loss.packets,
        summary.dns.answers,
        summary.dns.problems.len(),
        if summary.dns.problems.len() == 1 {
            ""
        } else {
            "s"
        },
    );
    let mut verdicts: Vec<(&String, &usize)> = summary.by_verdict.iter().collect();
    verdicts.sort_by_key(|(v, _)| rank(v));
    for (verdict, n) in verdicts {
        let _ = writeln!(
            h,
            r#"<li style="--c:{}"><span class="n">{n}</span> {}</li>"#,
            colour(verdict),
            esc(verdict)
        );
    }
    if summary.unclassified > 0 {
        let _ = writeln!(
            h,
            r#"<li class="note">{} records not classified: captured without <code>--topology</code>; run <code>observer classify</code></li>"#,
            summary.unclassified
        );
    }
    h.push_str("</ul>\n</section>\n");

    // Problems, leaks first, with reason and fix.
    h.push_str(r#"<section id="problems"><h2>Leaking and failing connections</h2>"#);
    if problems.is_empty() {
        h.push_str(r#"<p class="empty">None: every classified connection took the path Azure would give it.</p>"#);
    }
    for c in &problems {
        let verdict = verdict_of(c);
        let _ = write!(
            h,
            r#"<article class="problem" style="--c:{}">
<h3>{} <span class="conn">{}</span></h3>
<p class="path">{}expected <strong>{}</strong>, observed <strong>{}</strong> · → {} pkt {} · ← {} pkt {} · seen at {}</p>
<p class="reason"><span>Reason</span> {}</p>
<p class="fix"><span>Fix</span> {}</p>
</article>
"#,
            colour(verdict),
            badge(verdict),
            esc(&c.title()),
            c.dependency
                .as_deref()
                .or(c.category.as_deref())
                .map(|d| format!("{} · ", esc(d)))
                .unwrap_or_default(),
            esc(c.expected_next_hop.as_deref().unwrap_or("-")),
            esc(c.observed_path.as_deref().unwrap_or("-")),
            c.forward.packets,
            human_bytes(c.forward.bytes),
            c.reverse.packets,
            human_bytes(c.reverse.bytes),
            esc(&c
                .points
                .iter()
                .map(|p| format!(
                    "{}{}",
                    p.iface,
                    p.role
                        .as_deref()
                        .map(|r| format!("={r}"))
                        .unwrap_or_default()
                ))
                .collect::<Vec<_>>()
                .join(", ")),
            esc(c.reason.as_deref().unwrap_or("no reason recorded")),
            esc(fix(verdict)),
        );
    }
    h.push_str("</section>\n");

    // Charts.
    h.push_str(
        r#"<section id="paths"><h2>Expected next hop against observed path</h2>
<p class="hint">Left: what each connection is (dependency or category); middle: the next hop Azure would give it; right: the path it took in the lab. Links are coloured by the worst verdict they carry; a path that differs from the expected one is drawn solid.</p>
<div class="chart" id="chart-sankey" role="img" aria-label="Sankey diagram of expected next hop against observed path"></div>
</section>
<section id="topology"><h2>Topology and paths</h2>
<p class="hint">The workload, the path each connection took and where it went; edges coloured by the worst verdict on them (hover for counts).</p>
<div class="chart tall" id="chart-topology" role="img" aria-label="Topology graph with paths coloured by verdict"></div>
</section>
"#,
    );

    // DNS.
    h.push_str(r#"<section id="dns"><h2>DNS</h2>"#);
    if summary.dns.problems.is_empty() {
        let _ = write!(
            h,
            r#"<p class="empty">No DNS problem in {} answers.</p>"#,
            summary.dns.answers
        );
    } else {
        h.push_str(r#"<ul class="dns-problems">"#);
        for p in &summary.dns.problems {
            let (verdict, reason) = p.split_once(": ").unwrap_or((p.as_str(), ""));
            let _ = write!(h, "<li>{} {}</li>", badge(verdict), esc(reason));
        }
        h.push_str("</ul>");
    }
    if !summary.dns.by_verdict.is_empty() {
        let detail: Vec<String> = summary
            .dns
            .by_verdict
            .iter()
            .map(|(v, n)| format!("{} {n}", esc(v)))
            .collect();
        let _ = write!(
            h,
            r#"<p class="hint">Answers by verdict: {}</p>"#,
            detail.join(", ")
        );
    }
    h.push_str("</section>\n");

    // The table of every connection.
    let _ = write!(
        h,
        r#"<section id="connections"><h2>All connections</h2>
<div class="controls"><label>Filter <input id="filter" type="search" placeholder="address, name, verdict, reason…"></label>
<label>Verdict <select id="verdict-filter"><option value="">all</option>{}</select></label>
<span id="shown">{} shown</span></div>
<div class="table-wrap"><table id="table">
<thead><tr><th data-type="text">Verdict</th><th data-type="text">Protocol</th><th data-type="text">Client</th><th data-type="text">Server</th><th data-type="text">Name</th><th data-type="text">Dependency</th><th data-type="text">Expected</th><th data-type="text">Observed</th><th data-type="num">→ packets</th><th data-type="num">→ bytes</th><th data-type="num">← packets</th><th data-type="num">← bytes</th><th data-type="num">Start</th><th data-type="text">Reason</th></tr></thead>
<tbody>
"#,
        summary
            .by_verdict
            .keys()
            .map(|v| format!(r#"<option value="{0}">{0}</option>"#, esc(v)))
            .collect::<String>(),
        summary.connections.len()
    );
    for c in &summary.connections {
        let verdict = verdict_of(c);
        let side = |addr: IpAddr, port: Option<u16>| match port {
            Some(p) if addr.is_ipv6() => format!("[{addr}]:{p}"),
            Some(p) => format!("{addr}:{p}"),
            None => addr.to_string(),
        };
        let _ = writeln!(
            h,
            r#"<tr data-verdict="{}"><td data-v="{}">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td data-v="{}">{}</td><td data-v="{}">{}</td><td data-v="{}">{}</td><td data-v="{}">{}</td><td data-v="{}">{}</td><td class="reason-cell">{}</td></tr>"#,
            esc(verdict),
            rank(verdict),
            badge(verdict),
            esc(&c.protocol),
            esc(&side(c.client.addr, c.client.port)),
            esc(&side(c.server.addr, c.server.port)),
            esc(c.server.name.as_deref().unwrap_or("")),
            esc(c
                .dependency
                .as_deref()
                .or(c.category.as_deref())
                .unwrap_or("")),
            esc(c.expected_next_hop.as_deref().unwrap_or("")),
            esc(c.observed_path.as_deref().unwrap_or("")),
            c.forward.packets,
            c.forward.packets,
            c.forward.bytes,
            human_bytes(c.forward.bytes),
            c.reverse.packets,
            c.reverse.packets,
            c.reverse.bytes,
            human_bytes(c.reverse.bytes),
            c.start_ns,
            esc(&utc(c.start_ns)),
            esc(c.reason.as_deref().unwrap_or("")),
        );
    }
    h.push_str("</tbody></table></div></section>\n");
    let _ = write!(
        h,
        r#"<section id="time"><h2>Traffic over time</h2>
<p class="hint">Connections active in each {} s interval, by verdict (bars), and bytes both ways (line; each connection's bytes spread evenly over its lifetime).</p>"#,
        bucket_seconds
    );
    h.push_str(
        r#"
<div class="chart" id="chart-time" role="img" aria-label="Connections and bytes over time"></div>
</section>
</main>
"#,
    );
    let _ = write!(
        h,
        r#"<footer>Made by observer {} on {}. Charts: Apache ECharts 6.1.0 (Apache License 2.0), embedded; this file fetches nothing.</footer>
<script id="report-data" type="application/json">{json}</script>
<script>{ECHARTS}</script>
<script>{SCRIPT}</script>
</body>
</html>
"#,
        env!("CARGO_PKG_VERSION"),
        esc(context.generated),
    );
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary() -> Summary {
        Summary::build(&crate::report::tests::refused_and_ok(), &[], 0)
    }

    #[test]
    fn the_page_is_self_contained_and_leads_with_the_leak() {
        let s = summary();
        let html = render(
            &s,
            &Context {
                topology_name: Some("default <lab>"),
                topology: None,
                generated: "2026-01-01T00:00:00Z",
            },
        );
        assert!(html.starts_with("<!doctype html>"));
        // Nothing to fetch: no external URL in any src/href.
        for needle in [
            "src=\"http",
            "href=\"http",
            "src='http",
            "@import",
            "url(http",
        ] {
            assert!(!html.contains(needle), "{needle}");
        }
        assert!(
            html.contains("default &lt;lab&gt;"),
            "escaped topology name"
        );
        let problems = html.find("id=\"problems\"").unwrap();
        let leak = html
            .find("tcp 10.0.0.4:40000 -&gt; 203.0.113.6:1433")
            .unwrap();
        let table = html.find("id=\"connections\"").unwrap();
        assert!(problems < leak && leak < table, "the leak comes first");
        assert!(html.contains("leak-public-endpoint because"));
        assert!(html.contains(&esc(fix("leak-public-endpoint"))));
        assert_eq!(html.matches("<tr data-verdict=").count(), 2);
        assert!(html.contains("1 leaking connection<"));
        // The data cannot close its script element.
        let data_start = html.find("id=\"report-data\"").unwrap();
        let data_end = html[data_start..].find("</script>").unwrap();
        assert!(!html[data_start + 40..data_start + data_end].contains('<'));
    }

    #[test]
    fn sankey_marks_the_path_that_differs_with_the_worst_verdict() {
        let mut s = summary();
        s.connections[0].expected_next_hop = Some("VnetLocal".into());
        s.connections[0].observed_path = Some("Internet".into());
        s.connections[0].category = Some("vnet".into());
        s.connections[1].expected_next_hop = Some("VnetLocal".into());
        s.connections[1].observed_path = Some("VnetLocal".into());
        s.connections[1].category = Some("vnet".into());
        let k = sankey(&s);
        let mismatch: Vec<&SankeyLink> = k.links.iter().filter(|l| l.mismatch).collect();
        assert_eq!(mismatch.len(), 1);
        assert_eq!(mismatch[0].source, "expected:VnetLocal");
        assert_eq!(mismatch[0].target, "observed:Internet");
        assert_eq!(mismatch[0].verdict, "leak-public-endpoint");
        let first = k.links.iter().find(|l| l.source == "what:vnet").unwrap();
        assert_eq!(first.connections, 2);
        assert_eq!(
            first.verdict, "leak-public-endpoint",
            "worst of ok and leak"
        );
        assert_eq!(k.nodes.iter().filter(|n| n.column == 2).count(), 2);
    }

    #[test]
    fn graph_and_timeline_cover_every_connection() {
        let s = summary();
        let g = graph(&s, None);
        assert_eq!(g.nodes[0].id, "workload");
        let from_workload: usize = g
            .links
            .iter()
            .filter(|l| l.source == "workload")
            .map(|l| l.connections)
            .sum();
        assert_eq!(from_workload, s.connections.len());
        let t = timeline(&s);
        assert_eq!(t.bucket_seconds, 0.1, "a short run gets short intervals");
        let active: usize = t.active.values().map(|v| v.iter().sum::<usize>()).sum();
        assert_eq!(active, 2);
        let bytes: f64 = t.bytes.iter().sum();
        let expected: u64 = s
            .connections
            .iter()
            .map(|c| c.forward.bytes + c.reverse.bytes)
            .sum();
        assert!((bytes - expected as f64).abs() < 1e-6);
    }

    #[test]
    fn the_default_topology_is_drawn_with_its_parts() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../lab/topologies/default.toml"
        );
        let topology = Topology::load(std::path::Path::new(path)).unwrap();
        let g = graph(&Summary::default(), Some(&topology));
        let kinds: Vec<&str> = g.nodes.iter().map(|n| n.kind).collect();
        for kind in [
            "workload",
            "vnet",
            "subnet",
            "private-endpoint",
            "gateway",
            "onprem",
            "internet",
        ] {
            assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
        }
    }
}
