//! Each dependency of the catalog, from the ASE's workload address: where
//! its traffic goes (addresses, service tags, the topology's endpoints,
//! else anywhere), whether Azure routes it by a next hop the dependency
//! allows, and whether the NSGs let it out; the fix names the rule or
//! route to add.

use std::net::{IpAddr, Ipv4Addr};

use super::{Auditor, Check, Problem, route_text};
use crate::{
    catalog::Dependency,
    protocol::{DNS_PORT, IpProtocol},
    routes::{Decision, Source},
    security::{Flow, Scope},
    topology::{AZURE_DNS, Access, NextHop},
};

impl Auditor<'_> {
    /// Where a dependency's traffic goes: its addresses, its tags' prefixes,
    /// the topology's endpoints with its names, else anywhere.
    pub(super) fn destinations(&self, dep: &Dependency) -> Vec<(Ipv4Addr, String)> {
        let mut out: Vec<(Ipv4Addr, String)> = Vec::new();
        if dep.ports.iter().any(|r| r.contains(&DNS_PORT)) && dep.any_destination {
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

    /// One dependency: the first route problem and the first NSG deny
    /// over its destinations, protocols and ports.
    pub(super) fn outbound(&mut self, dep: &Dependency) {
        let protocols: Vec<IpProtocol> = match dep.protocol {
            Some(p) => vec![IpProtocol(p)],
            // The documented rules for DNS and NTP are UDP.
            None => vec![IpProtocol::UDP],
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
                    let flow = Flow::new(source, *dst, protocol.number(), port);
                    let verdict = self.security.verify(&flow, Scope::Path);
                    if verdict.access == Access::Deny {
                        let priority = verdict
                            .deciding()
                            .and_then(|s| s.hit.as_ref())
                            .map_or(4096, |h| h.priority);
                        self.problems.push(Problem {
                            check: Check::Outbound,
                            subject: dep.name.clone(),
                            problem: format!(
                                "{protocol} {port} to {what} is denied: {}",
                                verdict.describe()
                            ),
                            breaks: format!(
                                "{} ({}) is a documented dependency: the ASE stops working",
                                dep.name, dep.description
                            ),
                            fix: format!(
                                "add an Outbound Allow rule with a priority number below {priority}: protocol {}, destination {}, destination_ports [{}]",
                                dep.protocol.map_or("*", |p| IpProtocol(p).azure()),
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

    /// The route to `dst` drops the traffic or takes a next hop the
    /// dependency does not allow.
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
                check: Check::Outbound,
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
            check: Check::Outbound,
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
}

/// How to name a dependency's destination in a rule or route.
fn rule_destination(dep: &Dependency) -> String {
    match dep.service_tags.first() {
        Some(tag) => tag.clone(),
        None if dep.any_destination => "*".into(),
        None => "Internet".into(),
    }
}
