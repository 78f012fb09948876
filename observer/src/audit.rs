//! The static audit behind `observer check`: before any traffic, every
//! documented requirement of the environment is evaluated against the
//! topology's routes (`routes`), NSGs (`security`) and DNS configuration:
//!
//! - the outbound dependencies of the catalog (NSG and route per dependency);
//! - the inbound requirements of ASEv1/v2 (454-455 from AppServiceManagement,
//!   16001 and the management ports from AzureLoadBalancer, the ASE subnet to
//!   itself on all ports) and of ASEv3 (AzureLoadBalancer on 80);
//! - the reply to inbound management, which must leave by the Internet path
//!   the request came in on (forced tunnelling breaks TCP otherwise);
//! - user routes a more specific BGP route beats;
//! - private endpoints whose privatelink zone is not linked to the VNet;
//! - custom DNS servers that do not forward to 168.63.129.16, or that the
//!   ASE subnet cannot reach (no route, an NSG, a gateway that is not there).
//!
//! Each problem says what breaks and the fix; `breaks_ase` marks the ones
//! that stop the environment from working (`check` exits 1 on those).

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr},
};

use serde::Serialize;

use crate::{
    catalog::{Catalog, Dependency},
    classify::MANAGEMENT_PORTS,
    routes::{Decision, EffectiveRoutes, Source},
    security::{EffectiveSecurity, Flow, Scope},
    topology::{
        AZURE_DNS, Access, AddressPrefix, Environment, NextHop, RouteTarget, Topology, is_public,
    },
};

/// One problem the audit found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Which check found it: `outbound`, `inbound`, `asymmetric-route`,
    /// `udr-beaten-by-bgp`, `private-endpoint-dns`, `custom-dns`.
    pub check: &'static str,
    /// The dependency or requirement concerned (`azure-sql`, `management`).
    pub subject: String,
    /// What is wrong, with the rule or route that causes it.
    pub problem: String,
    /// What stops working.
    pub breaks: String,
    /// How to fix it.
    pub fix: String,
    /// Whether the environment stops working (creation fails, the ASE is
    /// unhealthy, a required dependency is unreachable).
    pub breaks_ase: bool,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}: {}; breaks: {}; fix: {}",
            if self.breaks_ase { "FAIL" } else { "WARN" },
            self.check,
            self.subject,
            self.problem,
            self.breaks,
            self.fix
        )
    }
}

/// What the audit found for one topology.
#[derive(Clone, Debug, Serialize)]
pub struct Audit {
    pub topology: String,
    pub environment: &'static str,
    /// Requirements evaluated (one per dependency, inbound rule, server...).
    pub checked: usize,
    pub problems: Vec<Problem>,
}

impl Audit {
    /// Whether the environment would work (no problem breaks it).
    pub fn ase_works(&self) -> bool {
        !self.problems.iter().any(|p| p.breaks_ase)
    }

    /// Runs every check that applies to the topology's environment.
    pub fn run(topology: &Topology, catalog: &Catalog) -> Self {
        let mut auditor = Auditor {
            t: topology,
            routes: EffectiveRoutes::build(topology),
            security: EffectiveSecurity::build(topology),
            checked: 0,
            problems: Vec::new(),
        };
        let platform = matches!(
            topology.environment,
            Environment::Asev1 | Environment::Asev2External | Environment::Asev2Ilb
        );
        for dep in catalog.for_environment(topology.environment) {
            auditor.outbound(&dep);
        }
        if platform {
            auditor.inbound_management();
            auditor.asymmetric_management();
        } else if topology.environment == Environment::Asev3 {
            auditor.inbound_asev3();
        }
        auditor.udrs_beaten_by_bgp();
        auditor.private_endpoints();
        auditor.custom_dns();
        Self {
            topology: topology.name.clone(),
            environment: topology.environment.as_str(),
            checked: auditor.checked,
            problems: auditor.problems,
        }
    }
}

impl fmt::Display for Audit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.problems {
            writeln!(f, "{p}")?;
        }
        let breaking = self.problems.iter().filter(|p| p.breaks_ase).count();
        writeln!(
            f,
            "{} ({}): {} requirements checked, {} problems, {} break the environment{}",
            self.topology,
            self.environment,
            self.checked,
            self.problems.len(),
            breaking,
            if breaking == 0 {
                ""
            } else {
                ": it would not work"
            }
        )
    }
}

/// One inbound requirement: `from` must reach `to` on every protocol and
/// port listed.
#[derive(Clone, Copy)]
struct Requirement<'a> {
    subject: &'a str,
    from: &'a [(Ipv4Addr, String)],
    to: Ipv4Addr,
    protocols: &'a [u8],
    ports: &'a [u16],
    source_text: &'a str,
    breaks: &'a str,
}

struct Auditor<'a> {
    t: &'a Topology,
    routes: EffectiveRoutes,
    security: EffectiveSecurity,
    checked: usize,
    problems: Vec<Problem>,
}

/// Public addresses standing for "anywhere on the internet" (documentation
/// and well-known ranges); the first one no tag, endpoint or rule names is
/// used.
const ANYWHERE: [&str; 6] = [
    "192.0.2.1",
    "198.51.100.1",
    "203.0.113.1",
    "20.0.0.1",
    "52.0.0.1",
    "13.0.0.1",
];

impl Auditor<'_> {
    /// The ASE's workload address: the source of its outbound traffic.
    fn ase_address(&self) -> Ipv4Addr {
        self.t.workload_address()
    }

    /// A public address that no service tag, endpoint or NSG prefix names,
    /// and that is outside `VirtualNetwork` (when one exists).
    fn anywhere(&self) -> Ipv4Addr {
        let named = |a: Ipv4Addr| {
            self.t.service_tags.owner(IpAddr::V4(a)).is_some()
                || self.t.endpoints.iter().any(|e| e.address == a)
                || self.t.nsgs.iter().flat_map(|n| &n.rules).any(|r| {
                    r.source
                        .iter()
                        .chain(&r.destination)
                        .any(|p| matches!(p, AddressPrefix::Cidr(net) if net.prefix_len() > 0 && net.contains(&a)))
                })
        };
        let candidates: Vec<Ipv4Addr> = ANYWHERE
            .iter()
            .map(|a| a.parse().expect("constant"))
            .collect();
        candidates
            .iter()
            .copied()
            .find(|a| !named(*a) && !self.security.in_virtual_network(*a))
            .or_else(|| candidates.iter().copied().find(|a| !named(*a)))
            .unwrap_or(candidates[0])
    }

    /// Where a dependency's traffic goes: its addresses, its tags' prefixes,
    /// the topology's endpoints with its names, else anywhere.
    fn destinations(&self, dep: &Dependency) -> Vec<(Ipv4Addr, String)> {
        let mut out: Vec<(Ipv4Addr, String)> = Vec::new();
        if dep.ports.iter().any(|r| r.contains(&53)) && dep.any_destination {
            // Custom servers get their own check (`custom_dns`).
            if self.t.dns.servers.contains(&IpAddr::V4(AZURE_DNS)) {
                out.push((AZURE_DNS, format!("Azure DNS ({AZURE_DNS})")));
            }
            return out;
        }
        for a in &dep.addresses {
            if let IpAddr::V4(v4) = a {
                out.push((*v4, v4.to_string()));
            }
        }
        for tag in &dep.service_tags {
            for net in self.security.tag_prefixes(tag).into_iter().take(4) {
                out.push((net.network(), format!("{tag} ({net})")));
            }
        }
        for e in &self.t.endpoints {
            if dep.names(&e.fqdn) && !out.iter().any(|(a, _)| *a == e.address) {
                out.push((e.address, format!("{} ({})", e.fqdn, e.address)));
            }
        }
        if out.is_empty() {
            let a = self.anywhere();
            let what = if dep.any_destination {
                format!("any address (e.g. {a})")
            } else if let Some(host) = dep.hosts.first() {
                format!("{host} (e.g. {a})")
            } else {
                format!(
                    "{} (no prefixes in the service tags; e.g. {a})",
                    dep.service_tags.join(", ")
                )
            };
            out.push((a, what));
        }
        out
    }

    fn outbound(&mut self, dep: &Dependency) {
        let protocols: Vec<u8> = match dep.protocol {
            Some(p) => vec![p],
            // The documented rules for DNS and NTP are UDP.
            None => vec![17],
        };
        let ports: Vec<u16> = dep.ports.iter().map(|r| *r.start()).collect();
        let source = self.ase_address();
        let destinations = self.destinations(dep);
        if destinations.is_empty() {
            return;
        }
        self.checked += 1;
        // One line per kind of problem and dependency: the first failure.
        let mut route_reported = false;
        let mut nsg_reported = false;
        for (dst, what) in &destinations {
            let decision = self.routes.lookup(*dst);
            if !route_reported && let Some(p) = self.route_problem(dep, *dst, what, &decision) {
                self.problems.push(p);
                route_reported = true;
            }
            if nsg_reported || decision.bypasses_vnet {
                continue;
            }
            'flows: for &protocol in &protocols {
                for &port in &ports {
                    let flow = Flow::new(source, *dst, protocol, port);
                    let verdict = self.security.verify(&flow, Scope::Path);
                    if verdict.access == Access::Deny {
                        let priority = verdict
                            .deciding()
                            .and_then(|s| s.hit.as_ref())
                            .map_or(4096, |h| h.priority);
                        self.problems.push(Problem {
                            check: "outbound",
                            subject: dep.name.clone(),
                            problem: format!(
                                "{} {port} to {what} is denied: {}",
                                protocol_name(protocol),
                                verdict.describe()
                            ),
                            breaks: format!(
                                "{} ({}) is a documented dependency: the ASE stops working",
                                dep.name, dep.description
                            ),
                            fix: format!(
                                "add an Outbound Allow rule with a priority number below {priority}: protocol {}, destination {}, destination_ports [{}]",
                                match dep.protocol {
                                    Some(6) => "Tcp",
                                    Some(17) => "Udp",
                                    _ => "*",
                                },
                                rule_destination(dep),
                                dep.ports
                                    .iter()
                                    .map(|r| if r.start() == r.end() {
                                        format!("\"{}\"", r.start())
                                    } else {
                                        format!("\"{}-{}\"", r.start(), r.end())
                                    })
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                            breaks_ase: true,
                        });
                        nsg_reported = true;
                        break 'flows;
                    }
                }
            }
        }
    }

    fn route_problem(
        &self,
        dep: &Dependency,
        dst: Ipv4Addr,
        what: &str,
        d: &Decision,
    ) -> Option<Problem> {
        let hop = d.next_hop();
        let route = route_text(d);
        if hop == NextHop::None {
            return Some(Problem {
                check: "outbound",
                subject: dep.name.clone(),
                problem: format!("{what} matches {route}: Azure drops it"),
                breaks: format!("{} is unreachable: the ASE stops working", dep.name),
                fix: format!("remove the route, or route {dst} to a next hop that reaches it"),
                breaks_ase: true,
            });
        }
        if hop == NextHop::VnetLocal || dep.allows(hop) {
            return None;
        }
        let fix = match hop {
            NextHop::VirtualNetworkGateway if d.chosen.source == Source::VirtualNetworkGateway => {
                format!(
                    "add a user route for {} with next hop Internet (a UDR of the same or a more specific prefix beats the BGP route {})",
                    self.route_target(dep, dst),
                    d.chosen.prefix
                )
            }
            _ => format!(
                "route {} to {} instead",
                self.route_target(dep, dst),
                dep.next_hops
                    .iter()
                    .map(|h| h.as_str())
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
        };
        Some(Problem {
            check: "outbound",
            subject: dep.name.clone(),
            problem: format!(
                "{what} is routed to {hop} by {route}; it must take {}",
                dep.next_hops
                    .iter()
                    .map(|h| h.as_str())
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
            breaks: format!(
                "through {hop} the traffic does not leave from the ASE's own public address that {} expects: the ASE stops working",
                dep.name
            ),
            fix,
            breaks_ase: true,
        })
    }

    /// How to name a dependency's destination in a user route.
    fn route_target(&self, dep: &Dependency, dst: Ipv4Addr) -> String {
        if dep.addresses.contains(&IpAddr::V4(dst)) {
            return format!("{dst}/32");
        }
        if dep.any_destination {
            return "0.0.0.0/0".into();
        }
        if let Some(tag) = dep.service_tags.first() {
            return format!("the service tag {tag}");
        }
        match self.t.endpoints.iter().find(|e| e.address == dst) {
            Some(e) => format!("{dst}/32 ({})", e.fqdn),
            None => format!(
                "the addresses of {}",
                dep.hosts.first().map_or("its hosts", String::as_str)
            ),
        }
    }

    /// Addresses of the AppServiceManagement tag (or anywhere, without it).
    fn management_sources(&self) -> Vec<(Ipv4Addr, String)> {
        let prefixes = self.security.tag_prefixes("AppServiceManagement");
        if prefixes.is_empty() {
            let a = self.anywhere();
            vec![(
                a,
                format!("AppServiceManagement (not in the service tags; e.g. {a})"),
            )]
        } else {
            prefixes
                .into_iter()
                .take(4)
                .map(|n| (n.network(), format!("AppServiceManagement ({n})")))
                .collect()
        }
    }

    fn inbound_requirement(&mut self, r: &Requirement<'_>) {
        let Requirement {
            subject,
            from,
            to,
            protocols,
            ports,
            source_text,
            breaks,
        } = *r;
        self.checked += 1;
        for (src, what) in from {
            for &protocol in protocols {
                for &port in ports {
                    let flow = Flow::new(*src, to, protocol, port);
                    let verdict = self.security.verify(&flow, Scope::Path);
                    if verdict.access == Access::Deny {
                        let priority = verdict
                            .deciding()
                            .and_then(|s| s.hit.as_ref())
                            .map_or(4096, |h| h.priority);
                        let direction = verdict
                            .deciding()
                            .map_or("Inbound", |s| s.direction.as_str());
                        self.problems.push(Problem {
                            check: "inbound",
                            subject: subject.into(),
                            problem: format!(
                                "{} {port} from {what} to {to} is denied: {}",
                                protocol_name(protocol),
                                verdict.describe()
                            ),
                            breaks: breaks.into(),
                            fix: format!(
                                "add an {direction} Allow rule with a priority number below {priority}: source {source_text}, destination {}, protocol {}, destination_ports [{}]",
                                self.t.ase_subnet().prefix,
                                if protocols.len() > 1 { "*" } else { protocol_word(protocol) },
                                if ports.len() > 4 {
                                    "\"*\"".to_string()
                                } else {
                                    ports.iter().map(|p| format!("\"{p}\"")).collect::<Vec<_>>().join(", ")
                                }
                            ),
                            breaks_ase: true,
                        });
                        return;
                    }
                }
            }
        }
    }

    fn inbound_management(&mut self) {
        let ase = self.ase_address();
        let management = self.management_sources();
        self.inbound_requirement(&Requirement {
            subject: "management",
            from: &management,
            to: ase,
            protocols: &[6],
            ports: &MANAGEMENT_PORTS,
            source_text: "AppServiceManagement",
            breaks: "App Service cannot manage the ASE: it becomes unhealthy and stops working",
        });
        let lb = vec![(AZURE_DNS, "AzureLoadBalancer (168.63.129.16)".to_string())];
        self.inbound_requirement(&Requirement {
            subject: "load-balancer",
            from: &lb,
            to: ase,
            protocols: &[6],
            ports: &[16001, 454, 455],
            source_text: "AzureLoadBalancer",
            breaks: "the load balancer's keep-alive (16001) fails: the ASE is marked unhealthy",
        });
        // The subnet to itself, on all ports (a sample of them).
        let net = self.t.ase_subnet().prefix;
        let peer = Ipv4Addr::from(u32::from(net.network()) + 5);
        let peer = if peer == ase {
            Ipv4Addr::from(u32::from(net.network()) + 6)
        } else {
            peer
        };
        let itself = vec![(peer, format!("the ASE subnet ({peer})"))];
        let ports = [1, 53, 80, 443, 445, 454, 1433, 8172, 16001, 65535];
        self.inbound_requirement(&Requirement {
            subject: "ase-subnet",
            from: &itself,
            to: ase,
            protocols: &[6, 17],
            ports: &ports,
            source_text: &net.to_string(),
            breaks: "the ASE's own instances cannot talk to each other: the ASE stops working",
        });
    }

    fn inbound_asev3(&mut self) {
        let ase = self.ase_address();
        let lb = vec![(AZURE_DNS, "AzureLoadBalancer (168.63.129.16)".to_string())];
        self.inbound_requirement(&Requirement {
            subject: "load-balancer",
            from: &lb,
            to: ase,
            protocols: &[6],
            ports: &[80],
            source_text: "AzureLoadBalancer",
            breaks: "the internal health check of the ASEv3 (TCP 80 from AzureLoadBalancer) fails",
        });
    }

    /// The reply to inbound management must leave by the Internet.
    fn asymmetric_management(&mut self) {
        self.checked += 1;
        for (src, what) in self.management_sources() {
            let d = self.routes.lookup(src);
            if d.next_hop() != NextHop::Internet {
                self.problems.push(Problem {
                    check: "asymmetric-route",
                    subject: "management".into(),
                    problem: format!(
                        "management traffic from {what} comes in from the Internet, but the reply is routed to {} by {}",
                        d.next_hop(),
                        route_text(&d)
                    ),
                    breaks: "the reply takes another path than the request: TCP breaks, management fails and the ASE stops working".into(),
                    fix: "add a user route with service_tag = \"AppServiceManagement\" (or each management address) and next_hop = \"Internet\" to the ASE subnet's route table".into(),
                    breaks_ase: true,
                });
                return;
            }
        }
    }

    /// A user route loses, for part of its prefix, to a more specific BGP
    /// route (forced tunnelling that wins over `0.0.0.0/0 -> Internet`).
    fn udrs_beaten_by_bgp(&mut self) {
        let Some(onprem) = self.t.onprem.as_ref() else {
            return;
        };
        if !self.t.route_table.propagation {
            return;
        }
        for udr in &self.t.route_table.routes {
            let RouteTarget::Prefix(prefix) = udr.target else {
                continue;
            };
            self.checked += 1;
            for bgp in &onprem.bgp_routes {
                let inside = prefix.contains(bgp) && bgp.prefix_len() > prefix.prefix_len();
                // The VNet's own system routes protect their ranges.
                let protected = self
                    .t
                    .vnet
                    .address_space
                    .iter()
                    .chain(self.t.peerings.iter().flat_map(|p| &p.address_space))
                    .any(|v| v.contains(bgp));
                // The site's own prefixes going to the gateway is the point.
                let onprem_own = onprem.prefixes.contains(bgp);
                if inside
                    && !protected
                    && !onprem_own
                    && udr.next_hop != NextHop::VirtualNetworkGateway
                {
                    let public = is_public(IpAddr::V4(bgp.network()));
                    self.problems.push(Problem {
                        check: "udr-beaten-by-bgp",
                        subject: udr.name.clone(),
                        problem: format!(
                            "user route {} ({prefix} -> {}) is beaten for {bgp} by the more specific route learned over BGP from the {:?} gateway",
                            udr.name,
                            udr.next_hop,
                            onprem.gateway
                        ),
                        breaks: format!(
                            "traffic to {bgp} goes to the gateway instead of {}",
                            udr.next_hop
                        ),
                        fix: format!(
                            "add a user route for {bgp} (or more specific prefixes) with next hop {}, or stop the gateway advertising {bgp}{}",
                            udr.next_hop,
                            if public { " (a public prefix cross-advertised into private peering)" } else { "" }
                        ),
                        breaks_ase: false,
                    });
                }
            }
        }
    }

    fn private_endpoints(&mut self) {
        for pe in &self.t.private_endpoints {
            self.checked += 1;
            if !pe.zone_linked {
                self.problems.push(Problem {
                    check: "private-endpoint-dns",
                    subject: pe.name.clone(),
                    problem: format!(
                        "the private DNS zone {} is not linked to VNet {}",
                        pe.zone, self.t.vnet.name
                    ),
                    breaks: format!(
                        "{} resolves to its public address {}: the app's traffic leaves the VNet",
                        pe.fqdn, pe.public_ip
                    ),
                    fix: format!(
                        "add a virtual network link from {} to VNet {}",
                        pe.zone, self.t.vnet.name
                    ),
                    breaks_ase: false,
                });
            }
        }
    }

    fn custom_dns(&mut self) {
        let custom: Vec<Ipv4Addr> = self
            .t
            .dns
            .servers
            .iter()
            .filter_map(|s| match s {
                IpAddr::V4(v4) if *v4 != AZURE_DNS => Some(*v4),
                _ => None,
            })
            .collect();
        if custom.is_empty() {
            return;
        }
        self.checked += 1;
        if !self.t.dns.forwards_to_azure {
            let pe = !self.t.private_endpoints.is_empty();
            self.problems.push(Problem {
                check: "custom-dns",
                subject: "forwarding".into(),
                problem: format!(
                    "the custom DNS servers ({}) do not forward to 168.63.129.16",
                    join(&custom)
                ),
                breaks: if pe {
                    "private DNS zones are never consulted: names of private endpoints resolve to public addresses".into()
                } else {
                    "Azure private DNS zones and VNet names are not resolved".into()
                },
                fix: "forward the public zones (not privatelink.*) from the custom servers to 168.63.129.16, from inside a VNet linked to the private zones".into(),
                breaks_ase: false,
            });
        }
        let source = self.ase_address();
        for server in custom {
            self.checked += 1;
            let d = self.routes.lookup(server);
            let hop = d.next_hop();
            let onprem = self.t.in_onprem(server);
            let unreachable = match hop {
                NextHop::None => Some(format!("{} drops it", route_text(&d))),
                NextHop::VirtualNetworkGateway if self.t.onprem.is_none() => {
                    Some("it is routed to a gateway the topology does not have".into())
                }
                NextHop::Internet if onprem => Some(format!(
                    "it is on-premises but routed to the Internet by {} (gateway route propagation is off, or no route learned)",
                    route_text(&d)
                )),
                NextHop::Internet if !is_public(IpAddr::V4(server)) => Some(format!(
                    "it is a private address routed to the Internet by {}",
                    route_text(&d)
                )),
                _ => None,
            };
            let problem = unreachable.or_else(|| {
                [17u8, 6].into_iter().find_map(|protocol| {
                    let v = self
                        .security
                        .verify(&Flow::new(source, server, protocol, 53), Scope::Path);
                    (v.access == Access::Deny).then(|| {
                        format!(
                            "{} 53 to it is denied: {}",
                            protocol_name(protocol),
                            v.describe()
                        )
                    })
                })
            });
            if let Some(problem) = problem {
                self.problems.push(Problem {
                    check: "custom-dns",
                    subject: server.to_string(),
                    problem: format!("custom DNS server {server} is unreachable from the ASE subnet: {problem}"),
                    breaks: "the ASE cannot resolve its dependencies: creating it fails and a running one stops working".into(),
                    fix: if onprem {
                        "make the server reachable: keep gateway route propagation on (or add a route to it via the gateway) and allow UDP/TCP 53 to it in the NSGs".into()
                    } else {
                        "make the server reachable from the ASE subnet (route and NSG rules for UDP/TCP 53), or use Azure DNS".into()
                    },
                    breaks_ase: true,
                });
            }
        }
    }
}

fn route_text(d: &Decision) -> String {
    format!(
        "the {} route {} ({})",
        d.chosen.source.as_str(),
        d.chosen.prefix,
        d.chosen.origin
    )
}

/// How to name a dependency's destination in a rule or route.
fn rule_destination(dep: &Dependency) -> String {
    match dep.service_tags.first() {
        Some(tag) => tag.clone(),
        None if dep.any_destination => "*".into(),
        None => "Internet".into(),
    }
}

fn protocol_name(protocol: u8) -> &'static str {
    match protocol {
        6 => "TCP",
        17 => "UDP",
        1 => "ICMP",
        _ => "IP",
    }
}

fn protocol_word(protocol: u8) -> &'static str {
    match protocol {
        6 => "Tcp",
        17 => "Udp",
        _ => "*",
    }
}

fn join(addrs: &[Ipv4Addr]) -> String {
    addrs
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests;
