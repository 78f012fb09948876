//! The network around the ASE subnet: peerings, the ASE subnet's route
//! table (or the user routes of the effective routes), the gateway and the
//! on-premises prefixes with the BGP routes, custom DNS servers, and the
//! cloud by location. [`super::build`] calls these in order.

use std::{collections::BTreeSet, net::IpAddr};

use ipnet::Ipv4Net;

use super::{
    ImportError,
    build::{Ctx, is_private, subnet_nodes, v4_prefix},
    effective::Effective,
    json::Node,
    resource::{Resource, items, key_of_id, last_name, parent_key, types},
};
use crate::topology::{
    Cloud, DnsConfig, GatewayKind, NextHop, OnPrem, Peering, RouteTable, RouteTarget, Subnet,
    UserRoute,
};

/// Peered VNets: inline `virtualNetworkPeerings` and child resources with
/// their `remoteAddressSpace`; else peering prefixes of the effective routes.
pub(super) fn peerings(ctx: &mut Ctx<'_>, vnet: &Resource, effective: &Effective) -> Vec<Peering> {
    let mut out: Vec<Peering> = Vec::new();
    let vnet_key = vnet.key();
    let mut parts: Vec<(&Resource, &Node, String)> = items(&vnet.node, "virtualNetworkPeerings")
        .into_iter()
        .map(|(n, rel)| (vnet, n, rel))
        .collect();
    for child in ctx.of(types::PEERING) {
        if parent_key(&child.key()).as_deref() == Some(vnet_key.as_str()) {
            parts.push((child, &child.node, String::new()));
        }
    }
    for (owner, node, rel) in parts {
        let Some(name) = node
            .get("name")
            .and_then(Node::as_str)
            .map(|n| last_name(n).to_string())
        else {
            continue;
        };
        if out.iter().any(|p| p.name == name) {
            continue;
        }
        if let Some(state) = node.str("peeringState")
            && !state.eq_ignore_ascii_case("Connected")
        {
            ctx.note(format!(
                "peering {name} is {state}: left out (Azure adds no routes for it)"
            ));
            ctx.use_(owner);
            continue;
        }
        let mut space: Vec<Ipv4Net> = node
            .prop("remoteAddressSpace")
            .map(|a| a.strings("addressPrefixes"))
            .unwrap_or_default()
            .into_iter()
            .filter_map(v4_prefix)
            .collect();
        if space.is_empty()
            && let Some(remote) = node
                .id_of("remoteVirtualNetwork")
                .and_then(|id| ctx.get(id))
        {
            space = remote
                .node
                .prop("addressSpace")
                .map(|a| a.strings("addressPrefixes"))
                .unwrap_or_default()
                .into_iter()
                .filter_map(v4_prefix)
                .collect();
            ctx.use_(remote);
        }
        if space.is_empty() {
            ctx.note(format!(
                "peering {name} names no remote address space: left out (add the remote VNet)"
            ));
            continue;
        }
        let what = format!("{} peering {name}", owner.kind);
        ctx.record_part(&format!("peering:{name}"), owner, node, &rel, what);
        out.push(Peering {
            name,
            address_space: space,
        });
    }
    if out.is_empty() && !effective.peering.is_empty() {
        let name = "peered".to_string();
        for (prefix, source) in &effective.peering {
            ctx.provenance
                .add(format!("peering:{name}"), source.clone());
            let _ = prefix;
        }
        out.push(Peering {
            name,
            address_space: effective.peering.iter().map(|(p, _)| *p).collect(),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The ASE subnet's route table (inline routes and child resources), or
/// the user routes of the effective route table when no table is known.
pub(super) fn route_table(
    ctx: &mut Ctx<'_>,
    subnets: &[(String, Subnet)],
    ase_key: &str,
    effective: &Effective,
) -> Result<RouteTable, ImportError> {
    let subnet_node = subnet_nodes(ctx)
        .into_iter()
        .find(|(k, _)| k == ase_key)
        .map(|(_, n)| n);
    let mut table = subnet_node
        .and_then(|n| n.id_of("routeTable"))
        .and_then(|id| ctx.get(id));
    if table.is_none() {
        table = ctx.of(types::ROUTE_TABLE).into_iter().find(|t| {
            items(&t.node, "subnets")
                .iter()
                .any(|(s, _)| s.str("id").and_then(key_of_id).as_deref() == Some(ase_key))
        });
    }
    // Tables of other subnets: the topology routes the ASE subnet only.
    for (key, subnet) in subnets {
        if key == ase_key {
            continue;
        }
        if let Some(other) = subnet_nodes(ctx)
            .into_iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, n)| n.id_of("routeTable"))
            .and_then(|id| ctx.get(id))
            && table.is_none_or(|t| t.key() != other.key())
        {
            ctx.use_(other);
            ctx.note(format!(
                "route table {} of subnet {}: not modelled (the topology's routes are the ASE subnet's)",
                other.name, subnet.name
            ));
        }
    }
    let Some(table) = table else {
        if effective.user.is_empty() {
            return Ok(RouteTable {
                propagation: true,
                routes: Vec::new(),
            });
        }
        ctx.note(
            "no route table in the inputs: the user routes of the effective route table are used (they are those of the NIC's subnet)",
        );
        let mut routes = Vec::new();
        for (route, source) in &effective.user {
            ctx.provenance
                .add(format!("route:{}", route.name), source.clone());
            routes.push(route.clone());
        }
        return Ok(RouteTable {
            propagation: true,
            routes,
        });
    };
    let propagation = !table
        .node
        .prop("disableBgpRoutePropagation")
        .and_then(Node::as_bool)
        .unwrap_or(false);
    ctx.from(
        "route_table",
        table,
        Some(format!("disableBgpRoutePropagation {}", !propagation)),
    );
    let mut parts: Vec<(&Resource, &Node, String)> = table
        .items("routes")
        .into_iter()
        .map(|(n, rel)| (table, n, rel))
        .collect();
    let table_key = table.key();
    for child in ctx.of(types::ROUTE) {
        if parent_key(&child.key()).as_deref() == Some(table_key.as_str()) {
            parts.push((child, &child.node, String::new()));
        }
    }
    let mut routes: Vec<UserRoute> = Vec::new();
    for (owner, node, rel) in parts {
        let name = node
            .get("name")
            .and_then(Node::as_str)
            .map(|n| last_name(n).to_string())
            .unwrap_or_default();
        let route = user_route(owner, node, &rel, &name)?;
        let what = format!("{} route {name}", owner.kind);
        ctx.record_part(&format!("route:{name}"), owner, node, &rel, what);
        match routes.iter().find(|r| r.name == name) {
            Some(same) if *same == route => {}
            Some(_) => ctx.note(format!(
                "route {name} differs between the route table's routes and its child resource: the first is used"
            )),
            None => routes.push(route),
        }
    }
    routes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(RouteTable {
        propagation,
        routes,
    })
}

pub(super) fn user_route(
    owner: &Resource,
    node: &Node,
    rel: &str,
    name: &str,
) -> Result<UserRoute, ImportError> {
    let at = || owner.origin_of(node, rel);
    let prefix = node.str("addressPrefix").unwrap_or_default();
    let target = if prefix.starts_with(|c: char| c.is_ascii_digit()) {
        match v4_prefix(prefix) {
            Some(p) => RouteTarget::Prefix(p),
            None => {
                return Err(ImportError::shape(
                    at(),
                    format!("route {name}: `{prefix}` is not an IPv4 prefix"),
                    "addressPrefix is a CIDR or a service tag",
                ));
            }
        }
    } else if !prefix.is_empty() {
        RouteTarget::ServiceTag(prefix.to_string())
    } else {
        return Err(ImportError::shape(
            at(),
            format!("route {name} has no addressPrefix"),
            "addressPrefix is a CIDR or a service tag",
        ));
    };
    let hop = node.str("nextHopType").unwrap_or_default();
    let next_hop = parse_hop(hop).ok_or_else(|| {
        ImportError::shape(
            at(),
            format!("route {name}: next hop `{hop}` is not one a route table takes"),
            "nextHopType is VirtualNetworkGateway, VnetLocal, Internet, VirtualAppliance or None",
        )
    })?;
    let next_hop_ip = match next_hop {
        NextHop::VirtualAppliance => node.str("nextHopIpAddress").and_then(|a| a.parse().ok()),
        _ => None,
    };
    if next_hop == NextHop::VirtualAppliance && next_hop_ip.is_none() {
        return Err(ImportError::shape(
            at(),
            format!("route {name}: VirtualAppliance without an IPv4 nextHopIpAddress"),
            "a VirtualAppliance route names the appliance's private address",
        ));
    }
    Ok(UserRoute {
        name: name.to_string(),
        target,
        next_hop,
        next_hop_ip,
    })
}

/// Azure's next-hop spellings (`VNetLocal`, `VnetLocal`, `VirtualAppliance`...).
pub(super) fn parse_hop(hop: &str) -> Option<NextHop> {
    match hop.to_ascii_lowercase().as_str() {
        "virtualnetworkgateway" => Some(NextHop::VirtualNetworkGateway),
        "vnetlocal" => Some(NextHop::VnetLocal),
        "internet" => Some(NextHop::Internet),
        "virtualappliance" => Some(NextHop::VirtualAppliance),
        "none" => Some(NextHop::None),
        _ => None,
    }
}

/// The gateway, the local network gateways' prefixes and the BGP routes.
pub(super) fn onprem(ctx: &mut Ctx<'_>, effective: &Effective) -> Option<OnPrem> {
    let vnet_key = ctx.vnet_key.clone();
    let gateway = ctx.of(types::GATEWAY).into_iter().find(|g| {
        items(&g.node, "ipConfigurations").iter().any(|(c, _)| {
            c.id_of("subnet")
                .and_then(key_of_id)
                .and_then(|k| parent_key(&k))
                .as_deref()
                == Some(vnet_key.as_str())
        })
    });
    let mut prefixes: BTreeSet<Ipv4Net> = BTreeSet::new();
    for lng in ctx.of(types::LOCAL_GATEWAY) {
        let space: Vec<Ipv4Net> = lng
            .node
            .prop("localNetworkAddressSpace")
            .map(|a| a.strings("addressPrefixes"))
            .unwrap_or_default()
            .into_iter()
            .filter_map(v4_prefix)
            .collect();
        if !space.is_empty() {
            ctx.from("onprem", lng, Some("localNetworkAddressSpace".into()));
            prefixes.extend(space);
        }
    }
    let mut advertises: BTreeSet<Ipv4Net> = BTreeSet::new();
    for (prefix, source) in &effective.bgp {
        ctx.provenance.add("onprem", source.clone());
        if is_private(*prefix) {
            prefixes.insert(*prefix);
        } else if !prefixes.contains(prefix) {
            advertises.insert(*prefix);
        }
    }
    if gateway.is_none() && prefixes.is_empty() && advertises.is_empty() {
        return None;
    }
    let kind = match gateway {
        Some(g) => {
            // Its public address is Azure's side of the tunnel: not modelled.
            for (c, _) in items(&g.node, "ipConfigurations") {
                if let Some(pip) = c.id_of("publicIPAddress").and_then(|id| ctx.get(id)) {
                    ctx.use_(pip);
                }
            }
            let t = g.node.str("gatewayType").unwrap_or("Vpn");
            ctx.from("onprem", g, Some(format!("gatewayType {t}")));
            if t.eq_ignore_ascii_case("ExpressRoute") {
                GatewayKind::Expressroute
            } else {
                GatewayKind::Vpn
            }
        }
        None => {
            ctx.provenance.remark(
                "onprem",
                "gateway: no virtual network gateway in the inputs; vpn assumed (BGP routes imply one)",
            );
            GatewayKind::Vpn
        }
    };
    if !advertises.is_empty() {
        ctx.provenance.remark(
            "onprem",
            "advertises: BGP routes outside the private ranges (what the site advertises beyond its own prefixes)",
        );
    }
    let prefixes: Vec<Ipv4Net> = prefixes.into_iter().collect();
    let mut bgp_routes = prefixes.clone();
    bgp_routes.extend(advertises);
    Some(OnPrem {
        gateway: kind,
        prefixes,
        bgp_routes,
        snat_address: None,
    })
}

/// Custom DNS servers (`dhcpOptions.dnsServers`), else Azure DNS.
pub(super) fn dns(ctx: &mut Ctx<'_>, vnet: &Resource) -> DnsConfig {
    let servers: Vec<IpAddr> = vnet
        .node
        .prop("dhcpOptions")
        .map(|d| d.strings("dnsServers"))
        .unwrap_or_default()
        .into_iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    if servers.is_empty() {
        return DnsConfig::default();
    }
    ctx.from("dns", vnet, Some("dhcpOptions.dnsServers".into()));
    ctx.provenance.remark(
        "dns",
        "forwards_to_azure: not in Azure's export; true assumed (set false if the servers do not forward to 168.63.129.16)",
    );
    DnsConfig {
        servers,
        forwards_to_azure: true,
    }
}

/// The cloud by the resource's location (`chinaeast2`, `usgovvirginia`).
pub(super) fn cloud(ctx: &Ctx<'_>, anchor: &Resource) -> Cloud {
    let location = anchor
        .node
        .get("location")
        .and_then(Node::as_str)
        .map(str::to_string)
        .or_else(|| {
            ctx.all.iter().find_map(|r| {
                r.node
                    .get("location")
                    .and_then(Node::as_str)
                    .map(str::to_string)
            })
        })
        .unwrap_or_default()
        .to_ascii_lowercase()
        .replace(' ', "");
    if location.starts_with("china") {
        Cloud::China
    } else if location.starts_with("usgov") || location.starts_with("usdod") {
        Cloud::Usgov
    } else {
        Cloud::Public
    }
}
