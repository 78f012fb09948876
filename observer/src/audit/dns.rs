//! DNS: private endpoints whose privatelink zone is not linked to the
//! VNet, and custom DNS servers that do not forward to 168.63.129.16 or
//! that the ASE subnet cannot reach (no route, an NSG, a gateway that is
//! not there).

use std::net::{IpAddr, Ipv4Addr};

use super::{Auditor, Check, Problem, join, route_text};
use crate::{
    protocol::{DNS_PORT, IpProtocol},
    security::{Flow, Scope},
    topology::{AZURE_DNS, Access, NextHop, is_public},
};

impl Auditor<'_> {
    /// Private endpoints whose privatelink zone is not linked to the VNet.
    pub(super) fn private_endpoints(&mut self) {
        for pe in &self.t.private_endpoints {
            self.checked += 1;
            if !pe.zone_linked {
                self.problems.push(Problem {
                    check: Check::PrivateEndpointDns,
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

    /// Custom DNS servers: forwarding to 168.63.129.16, and reachability
    /// from the ASE subnet (route, gateway, NSGs on UDP and TCP 53).
    pub(super) fn custom_dns(&mut self) {
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
                check: Check::CustomDns,
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
                [IpProtocol::UDP, IpProtocol::TCP]
                    .into_iter()
                    .find_map(|protocol| {
                        let v = self.security.verify(
                            &Flow::new(source, server, protocol.number(), DNS_PORT),
                            Scope::Path,
                        );
                        (v.access == Access::Deny).then(|| {
                            format!("{protocol} {DNS_PORT} to it is denied: {}", v.describe())
                        })
                    })
            });
            if let Some(problem) = problem {
                self.problems.push(Problem {
                    check: Check::CustomDns,
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
