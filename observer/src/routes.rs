//! Azure route selection for the ASE subnet: the effective route table
//! (system, BGP, user-defined routes) and the choice for a destination, with
//! the candidates it beat, like Azure's effective routes / Network Watcher
//! next hop.
//!
//! Rules (virtual-networks-udr-overview): longest prefix first; on equal
//! prefixes UDR > BGP > system; the VNet, peering and service-endpoint system
//! routes beat even more specific BGP routes; an explicit CIDR beats a
//! service tag, and among tags regional > top-level > `AzureCloud.<region>`
//! > `AzureCloud`.

use std::{fmt, net::Ipv4Addr};

use ipnet::{IpNet, Ipv4Net};
use serde::Serialize;

use crate::topology::{Environment, NextHop, RouteTarget, SubnetRole, Topology};

/// Where a route comes from (Azure's effective-routes "Source").
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
pub(crate) enum Source {
    User,
    VirtualNetworkGateway,
    Default,
}

impl Source {
    pub(crate) fn as_str(self) -> &'static str {
        self.into()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct Route {
    pub(crate) prefix: Ipv4Net,
    pub(crate) source: Source,
    pub(crate) next_hop: NextHop,
    pub(crate) next_hop_ip: Option<Ipv4Addr>,
    /// The service tag a user route names (its prefixes are expanded).
    pub(crate) service_tag: Option<String>,
    /// Azure's tag rank (0 best); `None` for explicit prefixes.
    #[serde(skip)]
    pub(crate) tag_rank: Option<u8>,
    /// Where the route comes from, in words.
    pub(crate) origin: String,
}

impl Route {
    fn protects_from_bgp(&self) -> bool {
        self.source == Source::Default
            && matches!(
                self.next_hop,
                NextHop::VnetLocal | NextHop::VnetPeering | NextHop::VirtualNetworkServiceEndpoint
            )
    }

    /// Sort key: smaller is better.
    fn preference(&self) -> (std::cmp::Reverse<u8>, Source, u8) {
        (
            std::cmp::Reverse(self.prefix.prefix_len()),
            self.source,
            self.tag_rank.map_or(0, |r| r + 1),
        )
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<18} {:<30}", self.prefix, self.next_hop)?;
        if let Some(ip) = self.next_hop_ip {
            write!(f, " via {ip}")?;
        }
        write!(f, " [{}] {}", self.source.as_str(), self.origin)
    }
}

/// A route that lost, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct Beaten {
    pub(crate) route: Route,
    pub(crate) why: String,
}

/// The decision for one destination.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct Decision {
    pub(crate) destination: Ipv4Addr,
    pub(crate) chosen: Route,
    pub(crate) beaten: Vec<Beaten>,
    /// Multi-tenant integration with Route All off: the flow never enters
    /// the VNet, so its route table does not apply.
    pub(crate) bypasses_vnet: bool,
}

impl Decision {
    pub(crate) fn next_hop(&self) -> NextHop {
        self.chosen.next_hop
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "destination  {}", self.destination)?;
        writeln!(f, "next hop     {}", self.chosen.next_hop)?;
        writeln!(f, "route        {}", self.chosen)?;
        if self.bypasses_vnet {
            writeln!(
                f,
                "note         Route All is off: the VNet's route table and NSGs do not apply"
            )?;
        }
        if !self.beaten.is_empty() {
            writeln!(f, "beat:")?;
            for b in &self.beaten {
                writeln!(f, "  {}  -- {}", b.route, b.why)?;
            }
        }
        Ok(())
    }
}

const NONE_PREFIXES: [&str; 4] = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
];
const RFC1918: [&str; 3] = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"];

/// The effective route table of the ASE (or integration) subnet.
#[derive(Clone, Debug)]
pub(crate) struct EffectiveRoutes {
    routes: Vec<Route>,
    route_all: bool,
}

impl EffectiveRoutes {
    pub(crate) fn build(topology: &Topology) -> Self {
        let mut routes = Vec::new();
        let system = |prefix, next_hop, origin: String| Route {
            prefix,
            source: Source::Default,
            next_hop,
            next_hop_ip: None,
            service_tag: None,
            tag_rank: None,
            origin,
        };
        for &space in &topology.vnet.address_space {
            routes.push(system(
                space,
                NextHop::VnetLocal,
                format!("address space of VNet {}", topology.vnet.name),
            ));
        }
        routes.push(system(
            Ipv4Net::default(),
            NextHop::Internet,
            "default route".into(),
        ));
        for none in NONE_PREFIXES.map(|p| p.parse::<Ipv4Net>().expect("constant prefix")) {
            // A VNet range equal to or containing a None prefix replaces it.
            if !topology
                .vnet
                .address_space
                .iter()
                .any(|space| space.contains(&none))
            {
                routes.push(system(
                    none,
                    NextHop::None,
                    "reserved range not in the VNet (dropped)".into(),
                ));
            }
        }
        for peering in &topology.peerings {
            for &space in &peering.address_space {
                routes.push(system(
                    space,
                    NextHop::VnetPeering,
                    format!("peered VNet {}", peering.name),
                ));
            }
        }
        let ase = topology
            .vnet
            .subnets
            .iter()
            .find(|s| s.role == SubnetRole::Ase);
        for service in ase.iter().flat_map(|s| &s.service_endpoints) {
            for tag in topology
                .service_tags
                .iter()
                .filter(|t| family(&t.name).eq_ignore_ascii_case(family(service)))
            {
                for prefix in v4(&tag.prefixes) {
                    routes.push(system(
                        prefix,
                        NextHop::VirtualNetworkServiceEndpoint,
                        format!("service endpoint {service} ({})", tag.name),
                    ));
                }
            }
        }
        if let Some(onprem) = topology
            .onprem
            .as_ref()
            .filter(|_| topology.route_table.propagation)
        {
            for &prefix in &onprem.bgp_routes {
                routes.push(Route {
                    source: Source::VirtualNetworkGateway,
                    next_hop: NextHop::VirtualNetworkGateway,
                    origin: format!("learned over BGP from the {:?} gateway", onprem.gateway)
                        .to_lowercase(),
                    ..system(prefix, NextHop::VirtualNetworkGateway, String::new())
                });
            }
        }
        for udr in &topology.route_table.routes {
            let user = |prefix, tag: Option<(&str, u8)>| Route {
                prefix,
                source: Source::User,
                next_hop: udr.next_hop,
                next_hop_ip: udr.next_hop_ip,
                service_tag: tag.map(|(t, _)| t.to_string()),
                tag_rank: tag.map(|(_, r)| r),
                origin: format!("user route {}", udr.name),
            };
            match &udr.target {
                RouteTarget::Prefix(prefix) => routes.push(user(*prefix, None)),
                RouteTarget::ServiceTag(name) => {
                    if let Some(tag) = topology.service_tags.get(name) {
                        for prefix in v4(&tag.prefixes) {
                            routes.push(user(prefix, Some((&tag.name, tag.rank()))));
                        }
                    }
                }
            }
        }
        Self {
            routes,
            route_all: topology.environment != Environment::MultiTenant || topology.route_all,
        }
    }

    pub(crate) fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The route Azure picks for `destination`.
    pub(crate) fn lookup(&self, destination: Ipv4Addr) -> Decision {
        let candidates = self
            .routes
            .iter()
            .filter(|r| r.prefix.contains(&destination));
        let mut decision = decide(destination, candidates);
        let private = RFC1918.iter().any(|p| {
            p.parse::<Ipv4Net>()
                .expect("constant")
                .contains(&destination)
        });
        if !self.route_all
            && !private
            && decision.chosen.next_hop != NextHop::VirtualNetworkServiceEndpoint
        {
            decision.beaten.insert(
                0,
                Beaten {
                    route: decision.chosen.clone(),
                    why: "Route All is off: only RFC 1918 and service-endpoint traffic enters the VNet".into(),
                },
            );
            decision.chosen = Route {
                prefix: Ipv4Net::default(),
                source: Source::Default,
                next_hop: NextHop::Internet,
                next_hop_ip: None,
                service_tag: None,
                tag_rank: None,
                origin: "the app's shared outbound addresses (Route All off)".into(),
            };
            decision.bypasses_vnet = true;
        }
        decision
    }

    /// The route every address of `net` takes, when `net` is one of the
    /// table's own prefixes (the lab installs one kernel route per prefix).
    pub(crate) fn lookup_prefix(&self, net: Ipv4Net) -> Decision {
        decide(
            net.network(),
            self.routes.iter().filter(|r| r.prefix.contains(&net)),
        )
    }

    /// Every distinct prefix in the table, most specific last.
    pub(crate) fn prefixes(&self) -> Vec<Ipv4Net> {
        let mut prefixes: Vec<Ipv4Net> = self.routes.iter().map(|r| r.prefix).collect();
        prefixes.sort_by_key(|p| (p.prefix_len(), *p));
        prefixes.dedup();
        prefixes
    }
}

fn decide<'a>(destination: Ipv4Addr, candidates: impl Iterator<Item = &'a Route>) -> Decision {
    let mut candidates: Vec<&Route> = candidates.collect();
    let mut beaten = Vec::new();
    if let Some(protector) = candidates
        .iter()
        .find(|r| r.protects_from_bgp())
        .map(|r| (*r).clone())
    {
        candidates.retain(|r| {
            let bgp = r.source == Source::VirtualNetworkGateway;
            if bgp {
                beaten.push(Beaten {
                    route: (*r).clone(),
                    why: format!(
                        "BGP routes never override the {} system route for {}",
                        protector.next_hop, protector.prefix
                    ),
                });
            }
            !bgp
        });
    }
    candidates.sort_by_key(|r| r.preference());
    // 0.0.0.0/0 -> Internet is always present, so there is a candidate.
    let chosen = candidates
        .first()
        .map(|r| (*r).clone())
        .expect("the default route matches everything");
    for loser in &candidates[1..] {
        beaten.push(Beaten {
            route: (*loser).clone(),
            why: why_beaten(&chosen, loser),
        });
    }
    Decision {
        destination,
        chosen,
        beaten,
        bypasses_vnet: false,
    }
}

fn why_beaten(winner: &Route, loser: &Route) -> String {
    if loser.prefix.prefix_len() < winner.prefix.prefix_len() {
        format!(
            "less specific (/{} < /{})",
            loser.prefix.prefix_len(),
            winner.prefix.prefix_len()
        )
    } else if loser.source != winner.source {
        format!(
            "same prefix; {} routes beat {} routes",
            winner.source.as_str(),
            loser.source.as_str()
        )
    } else if winner.tag_rank.is_none() {
        "same prefix; an explicit prefix beats a service tag".into()
    } else {
        "same prefix; Azure's service-tag order (regional > top-level > AzureCloud) prefers the winner".into()
    }
}

fn family(tag: &str) -> &str {
    // `Microsoft.Storage` (service endpoint) and `Storage.WestUS` (tag).
    let tag = tag.strip_prefix("Microsoft.").unwrap_or(tag);
    tag.split('.').next().unwrap_or(tag)
}

fn v4(prefixes: &[IpNet]) -> impl Iterator<Item = Ipv4Net> + '_ {
    prefixes.iter().filter_map(|p| match p {
        IpNet::V4(n) => Some(*n),
        IpNet::V6(_) => None,
    })
}

#[cfg(test)]
mod tests;
