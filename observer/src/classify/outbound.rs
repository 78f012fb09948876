//! Verdicts of flows the workload opened, and of their replies: where
//! Azure routes them, which path they took, whether they reached a
//! resource by its public address or through a privatelink name answered
//! publicly, whether an NSG denies them, whether a dependency answered.

use std::net::IpAddr;

use super::{Answer, Category, Classifier, Judged, Known, Verdict};
use crate::{
    protocol::IpProtocol,
    routes::Decision,
    topology::{AZURE_DNS, Access, Environment, NextHop, PrivateEndpoint, is_public},
};

impl Classifier {
    /// The verdict of a flow the workload opened, or of its reply: a route
    /// to nowhere, the ASEv1's own subnet, a private endpoint or backend
    /// reached publicly, a privatelink name answered publicly, an NSG deny,
    /// a dependency off its documented path, a leak by the internet path,
    /// an unanswered dependency, an undocumented public destination.
    pub(super) fn outbound_verdict(&self, j: &Judged<'_>) -> (Verdict, String) {
        let t = &self.topology;
        let remote = j.remote;
        let route_text = |d: &Decision| {
            format!(
                "{} ({} route {})",
                d.chosen.next_hop,
                d.chosen.source.as_str(),
                d.chosen.prefix
            )
        };

        if !j.reply
            && let Some(d) = j.decision
            && d.next_hop() == NextHop::None
        {
            return (
                Verdict::DroppedNoRoute,
                format!(
                    "{remote} matches {} ({}): Azure drops it, next hop None",
                    d.chosen.prefix, d.chosen.origin
                ),
            );
        }

        if let Some(Known::Backend {
            name,
            in_ase_subnet: true,
            public: false,
            ..
        }) = j.known
            && t.environment == Environment::Asev1
        {
            return (
                Verdict::SameSubnetUnreachable,
                format!(
                    "{name} ({remote}) is in the ASEv1 subnet itself; an ASEv1 cannot reach VMs in its own subnet, move the VM to another subnet"
                ),
            );
        }

        if let Some(Known::PrivateEndpoint {
            index,
            public: true,
        }) = j.known
        {
            let pe = &t.private_endpoints[*index];
            let via_dns = j.record.dns_chain.as_ref().is_some_and(|chain| {
                chain
                    .iter()
                    .any(|n| n.eq_ignore_ascii_case(&pe.fqdn) || n.contains("privatelink."))
            });
            if via_dns {
                return (
                    Verdict::LeakDns,
                    format!("{}{}", self.dns_reason(pe), public_access_refuses(pe)),
                );
            }
            return (
                Verdict::LeakPublicEndpoint,
                format!(
                    "{} has a private endpoint at {} but was reached on its public address {remote}{}",
                    pe.fqdn,
                    pe.private_ip,
                    public_access_refuses(pe)
                ),
            );
        }
        if let Some(chain) = &j.record.dns_chain
            && is_public(remote)
            && let Some(zone) = chain
                .iter()
                .find(|n| n.contains(".privatelink.") || n.starts_with("privatelink."))
        {
            return (
                Verdict::LeakDns,
                format!(
                    "{} resolved through {zone} to the public address {remote}: the privatelink zone is not answered privately in this VNet",
                    j.dst_name.unwrap_or("the name")
                ),
            );
        }
        if let Some(Known::Backend {
            name,
            private,
            public: true,
            ..
        }) = j.known
        {
            return (
                Verdict::LeakPublicEndpoint,
                format!(
                    "{name} was reached on its public address {remote} instead of its VNet address {private}"
                ),
            );
        }

        if let Some(sec) = j.security
            && sec.access == Access::Deny
        {
            let port = sec.flow.dst_port.map_or(String::new(), |p| format!(":{p}"));
            // The dependency's level and the documentation's sentence, as
            // `check` gives them (the catalog's `severity`, `because`).
            let then = match j.dependency {
                Some(dep) if dep.level == crate::catalog::Level::Error => format!(
                    "; {} is a documented dependency of the ASE: if it is blocked the ASE stops working, allow it with a rule of a lower priority number",
                    dep.name
                ),
                Some(dep) => format!(
                    "; {} is a documented dependency of the ASE, a {} if blocked: {}",
                    dep.name, dep.level, dep.because
                ),
                None => String::new(),
            };
            return (
                Verdict::DeniedByNsg,
                format!(
                    "{} to {}{port} is denied: {}{then}",
                    IpProtocol(sec.flow.protocol),
                    sec.flow.dst,
                    sec.describe()
                ),
            );
        }

        if !j.reply
            && let (Some(dep), Some(d)) = (j.dependency, j.decision)
        {
            let expected = d.next_hop();
            let path = j.observed.unwrap_or(expected);
            // The VNet's own route is never forced tunnelling.
            let vnet_local =
                expected == NextHop::VnetLocal || j.observed == Some(NextHop::VnetLocal);
            if !vnet_local && (!dep.allows(path) || !dep.allows(expected)) {
                let how = match (j.observed, expected) {
                    (Some(seen), _) if !dep.allows(seen) => {
                        format!("was seen leaving by the {seen} path")
                    }
                    _ => format!("is routed to {}", route_text(d)),
                };
                let fix = if expected == NextHop::VirtualNetworkGateway {
                    "; add the UDR 0.0.0.0/0 -> Internet (or more specific Internet routes) to the ASE subnet"
                } else {
                    ""
                };
                let answered = match j.answer {
                    Answer::Refused => " and was refused",
                    Answer::Unanswered => " and never got an answer",
                    _ => "",
                };
                return (
                    Verdict::MisrouteForcedTunnel,
                    format!(
                        "{} must take next hop {} but {how}{answered}{fix}",
                        dep.name,
                        dep.next_hops
                            .iter()
                            .map(|h| h.as_str())
                            .collect::<Vec<_>>()
                            .join(" or "),
                    ),
                );
            }
        }

        if !j.reply
            && let Some(d) = j.decision
        {
            if j.observed == Some(NextHop::Internet) && d.next_hop() != NextHop::Internet {
                return (
                    Verdict::LeakRoute,
                    format!(
                        "Azure routes {remote} via {} but it left by the internet path",
                        route_text(d)
                    ),
                );
            }
            if d.bypasses_vnet && j.category != Category::Dns {
                return (
                    Verdict::LeakRoute,
                    format!(
                        "Route All is off: traffic to {remote} left through the app's shared outbound addresses, past the VNet's NSGs and UDRs"
                    ),
                );
            }
        }

        if j.category == Category::Dependency
            && let Some(dep) = j.dependency
        {
            match j.answer {
                Answer::Unanswered => {
                    return (
                        Verdict::Blocked,
                        format!(
                            "{}: SYN sent to {remote} and no SYN-ACK came back",
                            dep.name
                        ),
                    );
                }
                Answer::Refused => {
                    return (
                        Verdict::Blocked,
                        format!("{}: {remote} answered only with RST", dep.name),
                    );
                }
                _ => {}
            }
        }

        if j.category == Category::Internet && !j.reply && t.environment.platform_in_subnet() {
            let owner = t
                .service_tags
                .owner(remote)
                .map(|tag| format!(" (service tag {})", tag.name))
                .unwrap_or_default();
            return (
                Verdict::Undocumented,
                format!("public destination {remote}{owner} matches no documented dependency"),
            );
        }

        let reason = match (j.dependency, j.decision) {
            (Some(dep), Some(d)) => format!("{} via {} as documented", dep.name, d.next_hop()),
            (None, Some(d)) if j.category == Category::Internet => format!(
                "application traffic to {remote} via {} ({} has no platform dependencies in the subnet)",
                route_text(d),
                t.environment.as_str()
            ),
            (None, Some(d)) => format!("{} via {}", j.category.as_str(), route_text(d)),
            _ => format!("{} flow", j.category.as_str()),
        };
        (Verdict::Ok, reason)
    }

    /// Why a private endpoint's name gave its public address.
    fn dns_reason(&self, pe: &PrivateEndpoint) -> String {
        let t = &self.topology;
        let custom: Vec<String> = t
            .dns
            .servers
            .iter()
            .filter(|s| **s != IpAddr::V4(AZURE_DNS))
            .map(|s| s.to_string())
            .collect();
        if !pe.zone_linked {
            format!(
                "{} resolved to its public address {}: the zone {} is not linked to VNet {}",
                pe.fqdn, pe.public_ip, pe.zone, t.vnet.name
            )
        } else if !custom.is_empty() && !t.dns.forwards_to_azure {
            format!(
                "{} resolved to its public address {}: the custom DNS server {} does not forward to 168.63.129.16",
                pe.fqdn,
                pe.public_ip,
                custom.join(", ")
            )
        } else {
            format!(
                "{} resolved to its public address {} although {} is linked: the app did not use the VNet's DNS",
                pe.fqdn, pe.public_ip, pe.zone
            )
        }
    }
}

/// What a resource with public network access disabled does to a request
/// on its public address (empty when access is enabled or unknown).
fn public_access_refuses(pe: &PrivateEndpoint) -> String {
    if pe.public_network_access == Some(false) {
        format!(
            "; public network access of {} is disabled: the resource refuses requests on its public address (HTTP 403; Key Vault: ForbiddenByConnection), so the call fails",
            pe.fqdn
        )
    } else {
        String::new()
    }
}
