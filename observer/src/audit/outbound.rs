//! Each dependency of the catalog, from the ASE's workload address: where
//! its traffic goes (addresses, service tags, the topology's endpoints,
//! else anywhere), whether Azure routes it by a next hop the dependency
//! allows, and whether the NSGs let it out; the level is the dependency's
//! own (the catalog's `severity`).

use std::net::{IpAddr, Ipv4Addr};

use super::{
    Auditor, Check, Fix, Item, Problem, Wanted, port_texts, probe_ports, route_text, rule_protocol,
};
use crate::{
    catalog::Dependency,
    protocol::{DNS_PORT, IpProtocol},
    routes::{Decision, Source},
    security::Flow,
    topology::{AZURE_DNS, NextHop, RuleDirection},
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
        let ports = probe_ports(&dep.ports);
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
            let flows = protocols.iter().flat_map(|protocol| {
                ports
                    .iter()
                    .map(move |&port| Flow::new(source, *dst, protocol.number(), port))
            });
            let Some(verdict) = self.first_denied(flows) else {
                continue;
            };
            let wanted = Wanted {
                subject: dep.name.clone(),
                direction: RuleDirection::Outbound,
                protocol: rule_protocol(&dep.protocol.map_or(vec![], |p| vec![IpProtocol(p)])),
                source: "*".into(),
                destination: rule_destination(dep),
                ports: port_texts(&dep.ports),
                probed: ports.clone(),
            };
            let denial = self.denial(&verdict, &wanted);
            let flow = verdict.flow;
            let port = flow.dst_port.unwrap_or_default();
            self.problems.push(
                Problem::new(
                    Check::Outbound,
                    format!("outbound/{}", dep.name),
                    dep.level,
                    &dep.name,
                    denial.at,
                )
                .says(
                    format!(
                        "{} {port} to {what} is denied: {}",
                        IpProtocol(flow.protocol),
                        denial.problem
                    ),
                    format!("{} ({}) cannot be reached", dep.name, dep.description),
                    &dep.because,
                )
                .with_fix(denial.fix),
            );
            nsg_reported = true;
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
        let at = self.route_item(d);
        let problem = |problem: String, breaks: String, fix: Fix| {
            Problem::new(
                Check::Outbound,
                format!("outbound/{}", dep.name),
                dep.level,
                &dep.name,
                at.clone(),
            )
            .says(problem, breaks, &dep.because)
            .with_fix(fix)
        };
        if hop == NextHop::None {
            let fix = match &at {
                Item::Route(name) => self.route_delete(
                    name,
                    &format!(", or route {dst} to a next hop that reaches it"),
                ),
                _ => Fix::text(format!(
                    "route {dst} to a next hop that reaches it (a user route of the same or a more specific prefix)"
                )),
            };
            return Some(problem(
                format!("{what} matches {route}: Azure drops it"),
                format!("{} ({}) is unreachable", dep.name, dep.description),
                fix,
            ));
        }
        if hop == NextHop::VnetLocal || dep.allows(hop) {
            return None;
        }
        let allowed = dep
            .next_hops
            .iter()
            .map(|h| h.as_str())
            .collect::<Vec<_>>()
            .join(" or ");
        let target = self.route_target(dep, dst);
        let to = dep.next_hops.first().copied().unwrap_or(NextHop::Internet);
        // A user route cannot name VirtualNetworkServiceEndpoint: Internet.
        let to = if to == NextHop::VirtualNetworkServiceEndpoint {
            NextHop::Internet
        } else {
            to
        };
        let why = if hop == NextHop::VirtualNetworkGateway
            && d.chosen.source == Source::VirtualNetworkGateway
        {
            format!(
                " (a user route of the same or a more specific prefix beats the BGP route {})",
                d.chosen.prefix
            )
        } else {
            String::new()
        };
        let fix = self.route_fix(
            &format!("{}-{}", dep.name, to.as_str().to_ascii_lowercase()),
            &target,
            to.as_str(),
            &why,
        );
        Some(problem(
            format!("{what} is routed to {hop} by {route}; it must take {allowed}"),
            format!(
                "through {hop} the traffic does not leave from the ASE's own public address that {} expects",
                dep.name
            ),
            fix,
        ))
    }

    /// How to name a dependency's destination in a user route: a CIDR or
    /// a service tag.
    fn route_target(&self, dep: &Dependency, dst: Ipv4Addr) -> String {
        if dep.addresses.contains(&IpAddr::V4(dst)) {
            return format!("{dst}/32");
        }
        if dep.any_destination {
            return "0.0.0.0/0".into();
        }
        if let Some(tag) = dep.service_tags.first() {
            return tag.clone();
        }
        match self.t.endpoints.iter().find(|e| e.address == dst) {
            Some(_) => format!("{dst}/32"),
            None => "<address-prefix>".into(),
        }
    }
}

/// How to name a dependency's destination in a rule.
fn rule_destination(dep: &Dependency) -> String {
    match dep.service_tags.first() {
        Some(tag) => tag.clone(),
        None if dep.any_destination => "*".into(),
        None => "Internet".into(),
    }
}
