//! DNS: private endpoints whose privatelink zone is not linked to the VNet
//! (a warning: the name resolves publicly and the traffic leaves the VNet;
//! an error when the resource has public network access disabled, since
//! it then refuses every request by its public address), and custom DNS
//! servers that do not forward to 168.63.129.16 or that the ASE subnet
//! cannot reach (no route, an NSG, a gateway that is not there).

use std::net::{IpAddr, Ipv4Addr};

use super::{
    Auditor, Check, Fix, Item, Problem, join, route_text,
    rules::{DNS_NOT_FORWARDING, DNS_UNREACHABLE, PUBLIC_ACCESS_DISABLED, ZONE_NOT_LINKED},
};
use crate::{
    protocol::{DNS_PORT, IpProtocol},
    security::Flow,
    topology::{AZURE_DNS, NextHop, is_public},
};

impl Auditor<'_> {
    /// Private endpoints whose privatelink zone is not linked to the VNet.
    pub(super) fn private_endpoints(&mut self) {
        for pe in &self.t.private_endpoints {
            self.checked += 1;
            if pe.zone_linked {
                continue;
            }
            let refused = pe.public_network_access == Some(false);
            let rule = if refused {
                PUBLIC_ACCESS_DISABLED
            } else {
                ZONE_NOT_LINKED
            };
            let problem = if refused {
                format!(
                    "the private DNS zone {} is not linked to VNet {}, so {} resolves publicly, and the resource has public network access disabled",
                    pe.zone, self.t.vnet.name, pe.fqdn
                )
            } else {
                format!(
                    "the private DNS zone {} is not linked to VNet {}",
                    pe.zone, self.t.vnet.name
                )
            };
            let breaks = if refused {
                format!(
                    "{} resolves to its public address {}, which refuses the app (public access is disabled): every request fails",
                    pe.fqdn, pe.public_ip
                )
            } else {
                format!(
                    "{} resolves to its public address {}: the app's traffic leaves the VNet",
                    pe.fqdn, pe.public_ip
                )
            };
            let fix = self.zone_link_fix(&pe.name, &pe.zone);
            self.problems.push(
                Problem::new(
                    Check::PrivateEndpointDns,
                    rule.id.into(),
                    rule.level,
                    &pe.name,
                    Item::PrivateEndpoint(pe.name.clone()),
                )
                .says(problem, breaks, rule.because)
                .with_fix(fix),
            );
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
            self.problems.push(
                Problem::new(
                    Check::CustomDns,
                    DNS_NOT_FORWARDING.id.into(),
                    DNS_NOT_FORWARDING.level,
                    "forwarding",
                    Item::Dns,
                )
                .says(
                    format!(
                        "the custom DNS servers ({}) do not forward to 168.63.129.16",
                        join(&custom)
                    ),
                    if pe {
                        "private DNS zones are never consulted: names of private endpoints resolve to public addresses".into()
                    } else {
                        "Azure private DNS zones and VNet names are not resolved".into()
                    },
                    DNS_NOT_FORWARDING.because,
                )
                .with_fix(Fix {
                    text: "forward the public zones (not privatelink.*) from the custom servers to 168.63.129.16, from inside a VNet linked to the private zones".into(),
                    az: Vec::new(),
                    toml: Some("# in [dns], once the servers forward\nforwards_to_azure = true\n".into()),
                }),
            );
        }
        let source = self.ase_address();
        for server in custom {
            self.checked += 1;
            let d = self.routes.lookup(server);
            let hop = d.next_hop();
            let onprem = self.t.in_onprem(server);
            let unreachable = match hop {
                NextHop::None => {
                    Some((format!("{} drops it", route_text(&d)), self.route_item(&d)))
                }
                NextHop::VirtualNetworkGateway if self.t.onprem.is_none() => Some((
                    "it is routed to a gateway the topology does not have".into(),
                    self.route_item(&d),
                )),
                NextHop::Internet if onprem => Some((
                    format!(
                        "it is on-premises but routed to the Internet by {} (gateway route propagation is off, or no route learned)",
                        route_text(&d)
                    ),
                    Item::RouteTable,
                )),
                NextHop::Internet if !is_public(IpAddr::V4(server)) => Some((
                    format!(
                        "it is a private address routed to the Internet by {}",
                        route_text(&d)
                    ),
                    self.route_item(&d),
                )),
                _ => None,
            };
            let problem = unreachable.or_else(|| {
                let flows = [IpProtocol::UDP, IpProtocol::TCP]
                    .map(|protocol| Flow::new(source, server, protocol.number(), DNS_PORT));
                self.first_denied(flows).map(|v| {
                    let step = v.deciding();
                    let at = match (
                        step.and_then(|s| s.nsg.clone()),
                        step.and_then(|s| s.hit.as_ref()),
                    ) {
                        (Some(nsg), Some(hit)) if !hit.default => Item::Rule {
                            nsg,
                            rule: hit.rule.clone(),
                        },
                        (Some(nsg), _) => Item::Nsg(nsg),
                        _ => Item::Dns,
                    };
                    (
                        format!(
                            "{} {DNS_PORT} to it is denied: {}",
                            IpProtocol(v.flow.protocol),
                            v.describe()
                        ),
                        at,
                    )
                })
            });
            if let Some((problem, at)) = problem {
                self.problems.push(
                    Problem::new(
                        Check::CustomDns,
                        DNS_UNREACHABLE.id.into(),
                        DNS_UNREACHABLE.level,
                        &server.to_string(),
                        at,
                    )
                    .says(
                        format!("custom DNS server {server} is unreachable from the ASE subnet: {problem}"),
                        "the ASE cannot resolve its dependencies: creating it fails and a running one stops working".into(),
                        DNS_UNREACHABLE.because,
                    )
                    .with_fix(Fix::text(if onprem {
                        "make the server reachable: keep gateway route propagation on (or add a route to it via the gateway) and allow UDP/TCP 53 to it in the NSGs"
                    } else {
                        "make the server reachable from the ASE subnet (route and NSG rules for UDP/TCP 53), or use Azure DNS"
                    })),
                );
            }
        }
    }
}
