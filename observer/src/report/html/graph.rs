//! The topology drawing's model: the ASE workload, the path each
//! connection took (the observed next hop) and where it went, each edge
//! coloured by the worst verdict on it; with the topology, its subnets,
//! private endpoints, gateway and appliance too, and its own structure
//! (what contains or leads to what) drawn under the paths.

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
};

use serde::Serialize;

use crate::{
    classify::Category,
    report::{Connection, Judgement, Summary},
    topology::{NextHop, SubnetRole, Topology},
};

/// One element of the topology drawing.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct GraphNode {
    pub id: String,
    pub label: String,
    pub kind: NodeKind,
    /// Addresses and other detail (tooltip).
    pub detail: String,
    /// Layout column (0 workload, 1 path, 2 destination) and row.
    pub x: f64,
    pub y: f64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct GraphLink {
    pub source: String,
    pub target: String,
    pub connections: usize,
    /// The worst verdict of the connections on this edge (its colour).
    pub verdict: Judgement,
    pub verdicts: BTreeMap<Judgement, usize>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub(crate) struct Graph {
    pub nodes: Vec<GraphNode>,
    /// Paths of connections, coloured by verdict.
    pub links: Vec<GraphLink>,
    /// What contains or leads to what in the topology (drawn thin and
    /// dashed under the paths): the VNet to its subnets and private
    /// endpoints, a subnet to its backends, the gateway to on-premises.
    pub structure: Vec<(String, String)>,
}

/// Where a connection's server sits in the drawing: (id, label, kind, detail).
fn destination(c: &Connection, topology: Option<&Topology>) -> (String, String, NodeKind, String) {
    let addr = c.server.addr;
    let name = c.server.name.clone();
    // A category this observer does not know (a newer writer's) draws as
    // unknown.
    let category = c
        .category
        .as_deref()
        .and_then(|c| c.parse().ok())
        .unwrap_or(Category::Unknown);
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
                NodeKind::PrivateEndpoint,
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
            && category != Category::Internet
        {
            return (
                format!("backend:{}", b.name),
                b.name.clone(),
                NodeKind::Backend,
                format!(
                    "private {}{}",
                    b.private_ip,
                    b.public_ip
                        .map(|p| format!(", public {p}"))
                        .unwrap_or_default()
                ),
            );
        }
        if matches!(category, Category::Vnet | Category::AseInternal)
            && let Some(s) = t.vnet.subnets.iter().find(|s| s.prefix.contains(&v4))
        {
            return (
                format!("subnet:{}", s.name),
                format!("subnet {}", s.name),
                NodeKind::Subnet,
                s.prefix.to_string(),
            );
        }
    }
    match category {
        Category::Dependency => {
            let dep = c.dependency.clone().unwrap_or_else(|| "azure".into());
            (
                format!("azure:{dep}"),
                dep,
                NodeKind::Azure,
                name.unwrap_or_else(|| addr.to_string()),
            )
        }
        Category::Onprem => (
            "onprem".into(),
            "on-premises".into(),
            NodeKind::Onprem,
            String::new(),
        ),
        Category::Dns => ("dns".into(), "DNS".into(), NodeKind::Dns, addr.to_string()),
        Category::PrivateEndpoint => (
            format!("pe:{addr}"),
            name.unwrap_or_else(|| addr.to_string()),
            NodeKind::PrivateEndpoint,
            addr.to_string(),
        ),
        Category::Vnet | Category::AseInternal => (
            "vnet-hosts".into(),
            "VNet hosts".into(),
            NodeKind::Subnet,
            String::new(),
        ),
        Category::Internet => (
            "public".into(),
            "public internet".into(),
            NodeKind::Internet,
            String::new(),
        ),
        Category::Unknown => (
            "unknown".into(),
            "unknown".into(),
            NodeKind::Unknown,
            String::new(),
        ),
    }
}

/// The path element of an observed next hop: (id, label, kind).
fn hop(observed: Option<&str>) -> (String, String, NodeKind) {
    match observed.and_then(|o| o.parse::<NextHop>().ok()) {
        Some(NextHop::VnetLocal | NextHop::VirtualNetworkServiceEndpoint) => {
            ("hop:vnet".into(), "VNet routing".into(), NodeKind::Vnet)
        }
        Some(NextHop::VnetPeering) => (
            "hop:peering".into(),
            "VNet peering".into(),
            NodeKind::Peering,
        ),
        Some(NextHop::VirtualNetworkGateway) => (
            "hop:gateway".into(),
            "VPN / ExpressRoute gateway".into(),
            NodeKind::Gateway,
        ),
        Some(NextHop::VirtualAppliance) => (
            "hop:appliance".into(),
            "virtual appliance".into(),
            NodeKind::Appliance,
        ),
        Some(NextHop::Internet) => (
            "hop:internet".into(),
            "Internet (SNAT to the VIP)".into(),
            NodeKind::Internet,
        ),
        Some(NextHop::None) => ("hop:dropped".into(), "dropped".into(), NodeKind::Dropped),
        None => (
            "hop:unobserved".into(),
            "path not observed".into(),
            NodeKind::Unknown,
        ),
    }
}

/// What a node of the drawing is (the page's script picks its symbol and
/// colour by name). Declaration order is drawing order, top to bottom, in
/// each column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum NodeKind {
    Workload,
    Subnet,
    Backend,
    PrivateEndpoint,
    Vnet,
    Peering,
    Dns,
    Appliance,
    Gateway,
    Onprem,
    Internet,
    Azure,
    Dropped,
    Unknown,
}

/// The topology drawing: the workload, the paths its connections took and
/// their destinations; with the topology, its subnets, private endpoints,
/// gateway and appliance appear even when no connection used them.
pub(crate) fn graph(summary: &Summary, topology: Option<&Topology>) -> Graph {
    let mut nodes: Vec<(u8, GraphNode)> = Vec::new();
    let add = |nodes: &mut Vec<(u8, GraphNode)>,
               column: u8,
               id: String,
               label: String,
               kind: NodeKind,
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
        NodeKind::Workload,
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
            NodeKind::Vnet,
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
                NodeKind::Subnet,
                s.prefix.to_string(),
            );
        }
        for pe in &t.private_endpoints {
            add(
                &mut nodes,
                2,
                format!("pe:{}", pe.name),
                format!("{} (private endpoint)", pe.name),
                NodeKind::PrivateEndpoint,
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
                NodeKind::Gateway,
                format!("{:?}", onprem.gateway).to_lowercase(),
            );
            let prefixes: Vec<String> = onprem.prefixes.iter().map(ToString::to_string).collect();
            add(
                &mut nodes,
                2,
                "onprem".into(),
                "on-premises".into(),
                NodeKind::Onprem,
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
                NodeKind::Appliance,
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
            NodeKind::Internet,
            t.outbound_vip
                .map(|v| format!("outbound VIP {v}"))
                .unwrap_or_default(),
        );
    }
    let mut links: BTreeMap<(String, String), GraphLink> = BTreeMap::new();
    for c in &summary.connections {
        let verdict = c.judgement();
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
                    verdict,
                    verdicts: BTreeMap::new(),
                });
            link.connections += 1;
            *link.verdicts.entry(verdict).or_default() += 1;
            link.verdict = link.verdict.min(verdict);
        }
    }
    // Lay out: three columns, each sorted by kind, evenly spaced.
    nodes.sort_by(|(ca, a), (cb, b)| (ca, a.kind, &a.label).cmp(&(cb, b.kind, &b.label)));
    let mut per_column: HashMap<u8, usize> = HashMap::new();
    for (column, _) in &nodes {
        *per_column.entry(*column).or_default() += 1;
    }
    let mut seen: HashMap<u8, usize> = HashMap::new();
    let graph_nodes: Vec<GraphNode> = nodes
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
    let structure = topology.map(structure).unwrap_or_default();
    let ids: Vec<&str> = graph_nodes.iter().map(|n| n.id.as_str()).collect();
    let structure = structure
        .into_iter()
        .filter(|(a, b)| ids.contains(&a.as_str()) && ids.contains(&b.as_str()))
        .collect();
    Graph {
        nodes: graph_nodes,
        links: links.into_values().collect(),
        structure,
    }
}

/// The topology's own edges, by the ids [`graph`] gives its nodes.
fn structure(t: &Topology) -> Vec<(String, String)> {
    let mut edges: Vec<(String, String)> = t
        .vnet
        .subnets
        .iter()
        .filter(|s| s.role != SubnetRole::Ase)
        .map(|s| ("hop:vnet".to_owned(), format!("subnet:{}", s.name)))
        .collect();
    edges.extend(
        t.private_endpoints
            .iter()
            .map(|p| ("hop:vnet".to_owned(), format!("pe:{}", p.name))),
    );
    for b in &t.backends {
        if let Some(subnet) = t
            .vnet
            .subnets
            .iter()
            .find(|s| s.prefix.contains(&b.private_ip))
        {
            edges.push((
                format!("subnet:{}", subnet.name),
                format!("backend:{}", b.name),
            ));
        }
    }
    if t.onprem.is_some() {
        edges.push(("hop:gateway".to_owned(), "onprem".to_owned()));
    }
    edges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_connection_leaves_the_workload_once() {
        let s = super::super::tests::summary();
        let g = graph(&s, None);
        assert_eq!(g.nodes[0].id, "workload");
        let from_workload: usize = g
            .links
            .iter()
            .filter(|l| l.source == "workload")
            .map(|l| l.connections)
            .sum();
        assert_eq!(from_workload, s.connections.len());
        let json = serde_json::to_value(&g.nodes[0]).unwrap();
        assert_eq!(json["kind"], "workload", "kinds by the script's names");
    }

    #[test]
    fn the_default_topology_is_drawn_with_its_parts() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../lab/topologies/default.toml"
        );
        let topology = Topology::load(std::path::Path::new(path)).unwrap();
        let g = graph(&Summary::default(), Some(&topology));
        let kinds: Vec<NodeKind> = g.nodes.iter().map(|n| n.kind).collect();
        for kind in [
            NodeKind::Workload,
            NodeKind::Vnet,
            NodeKind::Subnet,
            NodeKind::PrivateEndpoint,
            NodeKind::Gateway,
            NodeKind::Onprem,
            NodeKind::Internet,
        ] {
            assert!(kinds.contains(&kind), "{kind:?} in {kinds:?}");
        }
        let has = |a: &str, b: &str| g.structure.iter().any(|(x, y)| x == a && y == b);
        assert!(has("hop:vnet", "subnet:backends"), "{:?}", g.structure);
        assert!(has("hop:vnet", "pe:keyvault"));
        assert!(has("hop:gateway", "onprem"));
    }
}
