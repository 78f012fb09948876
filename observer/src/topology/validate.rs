//! Checks serde cannot make: containment, overlaps, duplicates, consistency.

use std::collections::HashMap;

use ipnet::Ipv4Net;
use toml::Spanned;

use super::{
    Locator, TopologyError,
    model::*,
    service_tags::{ServiceTag, ServiceTags},
};

pub(crate) fn validate(raw: RawTopology, at: &Locator<'_>) -> Result<Topology, TopologyError> {
    let mut names = Names::default();
    names.add(at, "vnet", &raw.vnet.name, raw.name.span())?;

    let address_space: Vec<Ipv4Net> = raw
        .vnet
        .address_space
        .iter()
        .map(|c| c.get_ref().0)
        .collect();
    if address_space.is_empty() {
        return Err(at.error(
            raw.name.span(),
            "the VNet has no address space",
            Some("add e.g. address_space = [\"10.0.0.0/16\"] under [vnet]".into()),
        ));
    }
    for (i, a) in raw.vnet.address_space.iter().enumerate() {
        for b in &raw.vnet.address_space[..i] {
            if overlaps(a.get_ref().0, b.get_ref().0) {
                return Err(at.error(
                    a.span(),
                    format!("address space {} overlaps {}", a.get_ref(), b.get_ref()),
                    Some("a VNet's address ranges must be disjoint".into()),
                ));
            }
        }
    }

    let mut subnets: Vec<Subnet> = Vec::new();
    for spanned in &raw.vnet.subnet {
        let s = spanned.get_ref();
        names.add(at, "subnet", &s.name, spanned.span())?;
        let prefix = s.prefix.get_ref().0;
        if !address_space.iter().any(|space| space.contains(&prefix)) {
            return Err(at.error(
                s.prefix.span(),
                format!(
                    "subnet {} ({prefix}) lies outside the VNet's address space",
                    s.name
                ),
                Some(format!(
                    "pick a prefix inside {}",
                    join(address_space.iter())
                )),
            ));
        }
        if let Some(other) = subnets.iter().find(|o| overlaps(o.prefix, prefix)) {
            return Err(at.error(
                s.prefix.span(),
                format!(
                    "subnet {} ({prefix}) overlaps subnet {} ({})",
                    s.name, other.name, other.prefix
                ),
                Some("subnets of one VNet must not overlap".into()),
            ));
        }
        subnets.push(Subnet {
            name: s.name.clone(),
            prefix,
            role: s.role,
            service_endpoints: s.service_endpoints.clone(),
        });
    }
    let ase_subnets = subnets.iter().filter(|s| s.role == SubnetRole::Ase).count();
    if ase_subnets != 1 {
        return Err(at.error(
            raw.name.span(),
            format!("the VNet needs exactly one subnet with role = \"ase\", found {ase_subnets}"),
            Some(
                "mark the ASE's subnet (or the app's integration subnet) with role = \"ase\""
                    .into(),
            ),
        ));
    }

    let mut peerings = Vec::new();
    for spanned in &raw.peering {
        let p = spanned.get_ref();
        names.add(at, "peering", &p.name, spanned.span())?;
        let space: Vec<Ipv4Net> = p.address_space.iter().map(|c| c.0).collect();
        if let Some(clash) = space
            .iter()
            .find(|n| address_space.iter().any(|v| overlaps(**n, *v)))
        {
            return Err(at.error(
                spanned.span(),
                format!(
                    "peered VNet {} ({clash}) overlaps this VNet's address space",
                    p.name
                ),
                Some("Azure refuses peering between overlapping VNets".into()),
            ));
        }
        peerings.push(Peering {
            name: p.name.clone(),
            address_space: space,
        });
    }

    let route_all = match (&raw.route_all, raw.environment) {
        (Some(flag), Environment::MultiTenant) => *flag.get_ref(),
        (None, Environment::MultiTenant) => false,
        (Some(flag), _) => {
            return Err(at.error(
                flag.span(),
                "route_all applies only to environment = \"multi-tenant\"",
                Some("an ASE routes all its traffic through its subnet; remove route_all".into()),
            ));
        }
        (None, _) => true,
    };

    let in_any_vnet = |ip| {
        address_space.iter().any(|n| n.contains(&ip))
            || peerings
                .iter()
                .any(|p| p.address_space.iter().any(|n| n.contains(&ip)))
    };
    for spanned in &raw.backend {
        let b = spanned.get_ref();
        names.add(at, "host", &b.name, spanned.span())?;
        if !in_any_vnet(b.private_ip) {
            return Err(at.error(
                spanned.span(),
                format!(
                    "backend {}: private_ip {} is outside the VNet and its peerings",
                    b.name, b.private_ip
                ),
                Some("a backend's private_ip must lie in one of the VNet's subnets".into()),
            ));
        }
    }
    for spanned in &raw.private_endpoint {
        let p = spanned.get_ref();
        names.add(at, "host", &p.name, spanned.span())?;
        if !in_any_vnet(p.private_ip) {
            return Err(at.error(
                spanned.span(),
                format!(
                    "private endpoint {}: private_ip {} is outside the VNet",
                    p.name, p.private_ip
                ),
                Some("a private endpoint takes an address of a VNet subnet".into()),
            ));
        }
        if !p.zone.starts_with("privatelink.") {
            return Err(at.error(
                spanned.span(),
                format!(
                    "private endpoint {}: zone `{}` is not a privatelink zone",
                    p.name, p.zone
                ),
                Some("use the recommended zone, e.g. privatelink.vaultcore.azure.net".into()),
            ));
        }
    }
    for spanned in &raw.endpoint {
        names.add(at, "host", &spanned.get_ref().name, spanned.span())?;
    }

    let onprem = raw.onprem.as_ref().map(|spanned| {
        let o = spanned.get_ref();
        let prefixes: Vec<Ipv4Net> = o.prefixes.iter().map(|c| c.0).collect();
        let mut bgp_routes = prefixes.clone();
        bgp_routes.extend(o.advertises.iter().map(|c| c.0));
        OnPrem {
            gateway: o.gateway,
            prefixes,
            bgp_routes,
            snat_address: o.snat_address,
        }
    });

    let mut service_tags = ServiceTags::default();
    for spanned in &raw.service_tag {
        let t = spanned.get_ref();
        names.add(at, "service tag", &t.name, spanned.span())?;
        service_tags.push(ServiceTag {
            name: t.name.clone(),
            region: None,
            prefixes: t.prefixes.iter().map(|c| ipnet::IpNet::V4(c.0)).collect(),
        });
    }

    let (nsgs, nsg_tag_uses) = super::nsg::validate(&raw.nsg, &subnets, at)?;

    let mut routes = Vec::new();
    for spanned in &raw.route_table.route {
        routes.push(user_route(spanned, at, &mut names)?);
    }

    if let Some(n) = &raw.lab.instances {
        let ase_prefix = subnets
            .iter()
            .find(|s| s.role == SubnetRole::Ase)
            .expect("checked above: one ase subnet")
            .prefix;
        let count = *n.get_ref();
        let first = raw
            .lab
            .workload
            .unwrap_or_else(|| std::net::Ipv4Addr::from(u32::from(ase_prefix.network()) + 4));
        let last = std::net::Ipv4Addr::from(u32::from(first) + u32::from(count.max(1)) - 1);
        if count == 0 || count > 8 {
            return Err(at.error(
                n.span(),
                format!("[lab] instances = {count}: the lab runs 1 to 8 app instances"),
                Some("set instances between 1 and 8, or leave it out for one".into()),
            ));
        }
        if !ase_prefix.contains(&last) || last == ase_prefix.broadcast() {
            return Err(at.error(
                n.span(),
                format!("[lab] instances = {count}: the last instance ({last}) falls outside the ASE subnet {ase_prefix}"),
                Some("use fewer instances or a lower [lab] workload address".into()),
            ));
        }
    }

    let mut traffic_names = HashMap::new();
    let inbound = raw.lab.inbound.iter().map(|i| Traffic {
        name: i.name.clone(),
        to: i.from.to_string(),
        port: i.port,
        protocol: Protocol::Tcp,
        expect: i.expect.clone(),
    });
    let all: Vec<Traffic> = raw.lab.traffic.iter().cloned().chain(inbound).collect();
    for t in &all {
        if traffic_names.insert(t.name.clone(), ()).is_some() {
            return Err(at.error(
                raw.name.span(),
                format!(
                    "two [[lab.traffic]] or [[lab.inbound]] entries are named `{}`",
                    t.name
                ),
                Some("traffic names must be unique".into()),
            ));
        }
        if let Some(expect) = &t.expect
            && !crate::verdict::Verdict::ALL
                .iter()
                .any(|v| v.as_str() == expect)
        {
            return Err(at.error(
                raw.name.span(),
                format!(
                    "[[lab.traffic]] or [[lab.inbound]] {}: unknown verdict `{expect}`",
                    t.name
                ),
                Some(format!(
                    "use one of: {}",
                    crate::verdict::Verdict::ALL.map(|v| v.as_str()).join(", ")
                )),
            ));
        }
    }

    Ok(Topology {
        name: raw.name.get_ref().clone(),
        description: raw.description,
        cloud: raw.cloud,
        environment: raw.environment,
        route_all,
        outbound_vip: raw.outbound_vip,
        vnet: Vnet {
            name: raw.vnet.name,
            address_space,
            subnets,
        },
        peerings,
        backends: raw.backend.into_iter().map(Spanned::into_inner).collect(),
        private_endpoints: raw
            .private_endpoint
            .into_iter()
            .map(Spanned::into_inner)
            .collect(),
        endpoints: raw.endpoint.into_iter().map(Spanned::into_inner).collect(),
        dns: raw.dns,
        onprem,
        route_table: RouteTable {
            propagation: raw.route_table.propagation,
            routes,
        },
        service_tags,
        nsgs,
        lab: raw.lab,
        service_tags_file: raw.service_tags.map(|s| (s.get_ref().clone(), s.span())),
        inline_service_tags: raw.service_tag.len(),
        nsg_tag_uses,
    })
}

fn user_route(
    spanned: &Spanned<RawRoute>,
    at: &Locator<'_>,
    names: &mut Names,
) -> Result<UserRoute, TopologyError> {
    let r = spanned.get_ref();
    names.add(at, "route", &r.name, spanned.span())?;
    let target = match (&r.prefix, &r.service_tag) {
        (Some(prefix), None) => RouteTarget::Prefix(prefix.0),
        (None, Some(tag)) => RouteTarget::ServiceTag(tag.clone()),
        _ => {
            return Err(at.error(
                spanned.span(),
                format!(
                    "route {} needs exactly one of `prefix` and `service_tag`",
                    r.name
                ),
                Some(
                    "e.g. prefix = \"0.0.0.0/0\" or service_tag = \"AppServiceManagement\"".into(),
                ),
            ));
        }
    };
    let next_hop = NextHop::from(r.next_hop);
    match (next_hop, r.next_hop_ip) {
        (NextHop::VirtualAppliance, None) => Err(at.error(
            spanned.span(),
            format!(
                "route {}: next hop VirtualAppliance needs next_hop_ip",
                r.name
            ),
            Some("set next_hop_ip to the appliance's private address, e.g. \"10.0.3.4\"".into()),
        )),
        (hop, Some(ip)) if hop != NextHop::VirtualAppliance => Err(at.error(
            spanned.span(),
            format!(
                "route {}: next_hop_ip {ip} is only allowed with next hop VirtualAppliance",
                r.name
            ),
            Some("remove next_hop_ip".into()),
        )),
        _ => Ok(UserRoute {
            name: r.name.clone(),
            target,
            next_hop,
            next_hop_ip: r.next_hop_ip,
        }),
    }
}

/// Names must be unique per kind.
#[derive(Default)]
struct Names(HashMap<(&'static str, String), ()>);

impl Names {
    fn add(
        &mut self,
        at: &Locator<'_>,
        kind: &'static str,
        name: &str,
        span: std::ops::Range<usize>,
    ) -> Result<(), TopologyError> {
        if self.0.insert((kind, name.to_string()), ()).is_some() {
            return Err(at.error(
                span,
                format!("duplicate {kind} name `{name}`"),
                Some(format!("every {kind} needs its own name")),
            ));
        }
        Ok(())
    }
}

fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn join<T: std::fmt::Display>(items: impl Iterator<Item = T>) -> String {
    items.map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
}
