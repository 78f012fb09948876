//! NSG evaluation with Azure's semantics, beside `routes` (both answer
//! "what would Azure do with this packet"): which rule of which NSG decides
//! a flow, like Network Watcher's IP flow verify, and the effective security
//! rules of a subnet with their service tags expanded.
//!
//! Rules (network-security-group-how-it-works.md, security-overview.md):
//! rules are read in priority order (lowest number first) and the first
//! match decides; Azure's default rules sit under the user's; NSGs are
//! stateful, so the return traffic of an allowed flow is allowed without a
//! rule; a flow leaving a subnet meets that subnet's NSG (outbound rules) and
//! a flow entering a subnet meets the destination subnet's NSG (inbound
//! rules), so traffic between two subnets (or within one) meets both. A
//! subnet without an NSG filters nothing. Port conditions apply to TCP and
//! UDP; a flow without ports (ICMP) matches only rules whose ports are `*`.
//!
//! `VirtualNetwork` is what service-tags-overview.md says: the VNet's address
//! space, peered VNets, the on-premises prefixes learned through the
//! virtual network gateway, prefixes of user routes to a virtual appliance
//! (MicrosoftDocs/azure-docs #22178) and 168.63.129.16 (#38326). `Internet`
//! is every public address outside `VirtualNetwork`; `AzureLoadBalancer` is
//! 168.63.129.16; any other tag comes from the topology's service tags.

use std::{fmt, net::Ipv4Addr};

use ipnet::{IpNet, Ipv4Net};
use serde::Serialize;

use crate::topology::{
    AZURE_DNS, Access, AddressPrefix, NextHop, Nsg, PortRange, RouteTarget, RuleDirection,
    SecurityRule, Topology, is_public,
};

/// One packet's 5-tuple, as NSGs see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Flow {
    pub(crate) src: Ipv4Addr,
    pub(crate) dst: Ipv4Addr,
    /// IP protocol number (6 TCP, 17 UDP, 1 ICMP).
    pub(crate) protocol: u8,
    pub(crate) src_port: Option<u16>,
    pub(crate) dst_port: Option<u16>,
}

impl Flow {
    /// A TCP or UDP flow from an ephemeral port.
    pub fn new(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, dst_port: u16) -> Self {
        Self {
            src,
            dst,
            protocol,
            src_port: Some(49152),
            dst_port: Some(dst_port),
        }
    }
}

/// Which NSGs a verification consults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Scope {
    /// The source subnet's outbound rules, then the destination subnet's
    /// inbound rules: the packet's whole way through the VNet.
    #[default]
    Path,
    /// Only the source subnet's outbound rules.
    Outbound,
    /// Only the destination subnet's inbound rules.
    Inbound,
}

/// The rule that decided one NSG's verdict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct RuleHit {
    pub(crate) rule: String,
    pub(crate) priority: u16,
    pub(crate) access: Access,
    /// One of Azure's default rules.
    pub(crate) default: bool,
}

/// One NSG's verdict on the flow (or none, for a subnet without an NSG).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct Step {
    pub(crate) direction: RuleDirection,
    pub(crate) subnet: String,
    pub(crate) nsg: Option<String>,
    /// `None` when the subnet has no NSG (everything is allowed).
    pub(crate) hit: Option<RuleHit>,
}

impl Step {
    pub(crate) fn access(&self) -> Access {
        self.hit.as_ref().map_or(Access::Allow, |h| h.access)
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.nsg, &self.hit) {
            (Some(nsg), Some(hit)) => write!(
                f,
                "{} {} by nsg {nsg} rule {} (priority {}{}) of subnet {}",
                self.direction,
                hit.access,
                hit.rule,
                hit.priority,
                if hit.default { ", default rule" } else { "" },
                self.subnet
            ),
            _ => write!(
                f,
                "{} Allow: subnet {} has no NSG",
                self.direction, self.subnet
            ),
        }
    }
}

/// The verdict on a flow: Allow unless one of the NSGs on its way denies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SecurityDecision {
    pub(crate) flow: Flow,
    pub access: Access,
    /// The NSGs consulted, in the order the packet meets them (evaluation
    /// stops at the first Deny).
    pub(crate) steps: Vec<Step>,
}

impl SecurityDecision {
    /// The step that decided: the denying one, else the last NSG that
    /// allowed (a subnet without an NSG decides nothing), else the last.
    pub(crate) fn deciding(&self) -> Option<&Step> {
        self.steps
            .iter()
            .find(|s| s.access() == Access::Deny)
            .or_else(|| self.steps.iter().rev().find(|s| s.hit.is_some()))
            .or(self.steps.last())
    }

    /// "nsg X rule Y (priority N, Outbound)" for the deciding step.
    pub fn describe(&self) -> String {
        match self.deciding() {
            Some(step) => step.to_string(),
            None => "no NSG applies (neither end is in a subnet of the VNet)".into(),
        }
    }
}

/// A rule with its service tags expanded, as Azure's effective security
/// rules show it.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct EffectiveRule {
    pub(crate) name: String,
    pub(crate) priority: u16,
    pub(crate) direction: RuleDirection,
    pub(crate) access: Access,
    pub(crate) protocol: &'static str,
    pub(crate) source: Vec<String>,
    pub(crate) expanded_source: Vec<String>,
    pub(crate) source_ports: Vec<String>,
    pub(crate) destination: Vec<String>,
    pub(crate) expanded_destination: Vec<String>,
    pub(crate) destination_ports: Vec<String>,
    pub(crate) default: bool,
}

/// The topology's NSGs, ready to judge flows.
#[derive(Clone, Debug)]
pub struct EffectiveSecurity {
    topology: Topology,
    virtual_network: Vec<Ipv4Net>,
}

impl EffectiveSecurity {
    pub fn build(topology: &Topology) -> Self {
        let mut virtual_network: Vec<Ipv4Net> = topology.vnet.address_space.clone();
        virtual_network.extend(topology.peerings.iter().flat_map(|p| &p.address_space));
        if let Some(onprem) = &topology.onprem {
            virtual_network.extend(&onprem.bgp_routes);
        }
        virtual_network.extend(topology.route_table.routes.iter().filter_map(|r| {
            match (&r.target, r.next_hop) {
                (RouteTarget::Prefix(p), NextHop::VirtualAppliance) => Some(*p),
                _ => None,
            }
        }));
        virtual_network.push(Ipv4Net::from(AZURE_DNS));
        virtual_network.sort();
        virtual_network.dedup();
        Self {
            topology: topology.clone(),
            virtual_network,
        }
    }

    pub(crate) fn topology(&self) -> &Topology {
        &self.topology
    }

    /// The prefixes of the `VirtualNetwork` tag.
    pub(crate) fn virtual_network(&self) -> &[Ipv4Net] {
        &self.virtual_network
    }

    /// Whether `addr` is in the `VirtualNetwork` tag.
    pub(crate) fn in_virtual_network(&self, addr: Ipv4Addr) -> bool {
        self.virtual_network.iter().any(|n| n.contains(&addr))
    }

    /// Whether `prefix` (an address prefix of a rule) holds `addr`.
    pub(crate) fn contains(&self, prefix: &AddressPrefix, addr: Ipv4Addr) -> bool {
        match prefix {
            AddressPrefix::Any => true,
            AddressPrefix::Cidr(net) => net.contains(&addr),
            AddressPrefix::Tag(tag) => match tag.as_str() {
                "VirtualNetwork" => self.in_virtual_network(addr),
                "Internet" => is_public(addr.into()) && !self.in_virtual_network(addr),
                "AzureLoadBalancer" => {
                    addr == AZURE_DNS
                        || self
                            .topology
                            .service_tags
                            .contains("AzureLoadBalancer", addr.into())
                }
                other => self.topology.service_tags.contains(other, addr.into()),
            },
        }
    }

    /// The IPv4 prefixes a tag stands for; `Internet` has none of its own
    /// (it is every public address outside `VirtualNetwork`).
    pub(crate) fn tag_prefixes(&self, tag: &str) -> Vec<Ipv4Net> {
        match tag {
            "VirtualNetwork" => self.virtual_network.clone(),
            "Internet" => Vec::new(),
            "AzureLoadBalancer" => vec![Ipv4Net::from(AZURE_DNS)],
            other => {
                let mut out: Vec<Ipv4Net> = self
                    .topology
                    .service_tags
                    .iter()
                    .filter(|t| {
                        let family = t.name.split('.').next().unwrap_or(&t.name);
                        t.name.eq_ignore_ascii_case(other) || family.eq_ignore_ascii_case(other)
                    })
                    .flat_map(|t| &t.prefixes)
                    .filter_map(|p| match p {
                        IpNet::V4(n) => Some(*n),
                        IpNet::V6(_) => None,
                    })
                    .collect();
                out.sort();
                out.dedup();
                out
            }
        }
    }

    /// Whether `rule` matches `flow`.
    pub(crate) fn matches(&self, rule: &SecurityRule, flow: &Flow) -> bool {
        rule.protocol.matches(flow.protocol)
            && rule.source.iter().any(|p| self.contains(p, flow.src))
            && rule.destination.iter().any(|p| self.contains(p, flow.dst))
            && ports_match(&rule.source_ports, flow.src_port)
            && ports_match(&rule.destination_ports, flow.dst_port)
    }

    /// The rule of `nsg` that decides `flow` in `direction`: the first match
    /// in priority order (the default rules end with a deny-all, so there is
    /// always one).
    pub(crate) fn decide(&self, nsg: &Nsg, direction: RuleDirection, flow: &Flow) -> RuleHit {
        let rule = nsg
            .effective(direction)
            .into_iter()
            .find(|r| self.matches(r, flow))
            .expect("the default rules end with a match-all deny");
        RuleHit {
            rule: rule.name,
            priority: rule.priority,
            access: rule.access,
            default: rule.default,
        }
    }

    /// Verifies `flow` against the NSGs `scope` names, like IP flow verify.
    pub fn verify(&self, flow: &Flow, scope: Scope) -> SecurityDecision {
        let t = &self.topology;
        let mut steps = Vec::new();
        let step = |addr: Ipv4Addr, direction| {
            let subnet = t.subnet_of(addr)?;
            let nsg = t.nsg_of(&subnet.name);
            Some(Step {
                direction,
                subnet: subnet.name.clone(),
                nsg: nsg.map(|n| n.name.clone()),
                hit: nsg.map(|n| self.decide(n, direction, flow)),
            })
        };
        if scope != Scope::Inbound
            && let Some(out) = step(flow.src, RuleDirection::Outbound)
        {
            steps.push(out);
        }
        let denied_out = steps.iter().any(|s| s.access() == Access::Deny);
        if scope != Scope::Outbound
            && !denied_out
            && let Some(inb) = step(flow.dst, RuleDirection::Inbound)
        {
            steps.push(inb);
        }
        let access = if steps.iter().any(|s| s.access() == Access::Deny) {
            Access::Deny
        } else {
            Access::Allow
        };
        SecurityDecision {
            flow: *flow,
            access,
            steps,
        }
    }

    /// The effective rules of `nsg` (both directions, priority order).
    pub(crate) fn effective_rules(&self, nsg: &Nsg) -> Vec<EffectiveRule> {
        [RuleDirection::Inbound, RuleDirection::Outbound]
            .into_iter()
            .flat_map(|d| nsg.effective(d))
            .map(|r| EffectiveRule {
                expanded_source: self.expand(&r.source),
                expanded_destination: self.expand(&r.destination),
                name: r.name,
                priority: r.priority,
                direction: r.direction,
                access: r.access,
                protocol: r.protocol.as_str(),
                source: r.source.iter().map(|p| p.to_string()).collect(),
                source_ports: r.source_ports.iter().map(|p| p.to_string()).collect(),
                destination: r.destination.iter().map(|p| p.to_string()).collect(),
                destination_ports: r.destination_ports.iter().map(|p| p.to_string()).collect(),
                default: r.default,
            })
            .collect()
    }

    fn expand(&self, prefixes: &[AddressPrefix]) -> Vec<String> {
        let mut out = Vec::new();
        for p in prefixes {
            match p {
                AddressPrefix::Any => out.push("0.0.0.0/0".to_string()),
                AddressPrefix::Cidr(net) => out.push(net.to_string()),
                AddressPrefix::Tag(tag) if tag == "Internet" => {
                    out.push("public addresses outside VirtualNetwork".to_string())
                }
                AddressPrefix::Tag(tag) => {
                    out.extend(self.tag_prefixes(tag).iter().map(|n| n.to_string()))
                }
            }
        }
        out
    }
}

fn ports_match(ranges: &[PortRange], port: Option<u16>) -> bool {
    match port {
        Some(port) => ranges.iter().any(|r| r.contains(port)),
        None => ranges.iter().any(|r| r.is_any()),
    }
}

#[cfg(test)]
mod tests;
