//! The inbound requirements of the catalog as NSG verdicts (management
//! from AppServiceManagement, the load balancer, the ASE subnet to itself,
//! the ASEv3's health check), and the route their replies must take
//! (`reply_next_hop`: management's replies leave by the Internet the
//! requests came in from). NSGs are stateful: the replies need no
//! outbound rule, so none is demanded.

use std::net::Ipv4Addr;

use super::{Auditor, Check, Problem, Wanted, port_texts, probe_ports, route_text, rule_protocol};
use crate::{
    catalog::{InboundRequirement, InboundSource},
    security::Flow,
    topology::{AZURE_DNS, RuleDirection},
};

impl Auditor<'_> {
    /// Addresses of a service tag (or anywhere, when the tag has none).
    fn tag_sources(&self, tag: &str) -> Vec<(Ipv4Addr, String)> {
        if tag == "AzureLoadBalancer" {
            return vec![(AZURE_DNS, format!("AzureLoadBalancer ({AZURE_DNS})"))];
        }
        let prefixes = self.security.tag_prefixes(tag);
        if prefixes.is_empty() {
            let a = self.anywhere();
            vec![(a, format!("{tag} (not in the service tags; e.g. {a})"))]
        } else {
            prefixes
                .into_iter()
                .take(4)
                .map(|n| (n.network(), format!("{tag} ({n})")))
                .collect()
        }
    }

    /// Where a requirement's traffic comes from, and how a rule names it.
    fn inbound_sources(&self, from: &InboundSource) -> (Vec<(Ipv4Addr, String)>, String) {
        match from {
            InboundSource::ServiceTag(tag) => (self.tag_sources(tag), tag.clone()),
            InboundSource::AseSubnet => {
                let net = self.t.ase_subnet().prefix;
                let ase = self.ase_address();
                let peer = Ipv4Addr::from(u32::from(net.network()) + 5);
                let peer = if peer == ase {
                    Ipv4Addr::from(u32::from(net.network()) + 6)
                } else {
                    peer
                };
                (
                    vec![(peer, format!("the ASE subnet ({peer})"))],
                    net.to_string(),
                )
            }
        }
    }

    /// One inbound requirement: each source, protocol and probed port to
    /// the ASE's address, first denial reported; then its replies' route.
    pub(super) fn inbound(&mut self, r: &InboundRequirement) {
        self.checked += 1;
        let to = self.ase_address();
        let (from, source_text) = self.inbound_sources(&r.from);
        let ports = probe_ports(&r.ports);
        let mut flows = Vec::new();
        for (src, _) in &from {
            for protocol in &r.protocols {
                for &port in &ports {
                    flows.push(Flow::new(*src, to, protocol.number(), port));
                }
            }
        }
        if let Some(verdict) = self.first_denied(flows) {
            let wanted = Wanted {
                subject: r.name.clone(),
                direction: RuleDirection::Inbound,
                protocol: rule_protocol(&r.protocols),
                source: source_text.clone(),
                destination: self.t.ase_subnet().prefix.to_string(),
                ports: port_texts(&r.ports),
                probed: ports.clone(),
            };
            let denial = self.denial(&verdict, &wanted);
            let flow = verdict.flow;
            let what = from
                .iter()
                .find(|(a, _)| *a == flow.src)
                .map_or(source_text.clone(), |(_, w)| w.clone());
            self.problems.push(
                Problem::new(
                    Check::Inbound,
                    format!("inbound/{}", r.name),
                    r.level,
                    &r.name,
                    denial.at,
                )
                .says(
                    format!(
                        "{} {} from {what} to {to} is denied: {}",
                        crate::protocol::IpProtocol(flow.protocol),
                        flow.dst_port.unwrap_or_default(),
                        denial.problem
                    ),
                    r.breaks.clone(),
                    &r.because,
                )
                .with_fix(denial.fix),
            );
        }
        if let Some(hop) = r.reply_next_hop {
            self.replies(r, &from, &source_text, hop);
        }
    }

    /// The replies to `r`'s traffic must take `hop` (the way it came in).
    fn replies(
        &mut self,
        r: &InboundRequirement,
        from: &[(Ipv4Addr, String)],
        source_text: &str,
        hop: crate::topology::NextHop,
    ) {
        self.checked += 1;
        for (src, what) in from {
            let d = self.routes.lookup(*src);
            if d.next_hop() == hop {
                continue;
            }
            let target = match &r.from {
                InboundSource::ServiceTag(tag) => tag.clone(),
                InboundSource::AseSubnet => source_text.to_string(),
            };
            let fix = self.route_fix(
                &format!("{}-replies", r.name),
                &target,
                hop.as_str(),
                &format!(
                    " (or one route per address of {target}), so the replies leave the way the requests came in"
                ),
            );
            self.problems.push(
                Problem::new(
                    Check::AsymmetricRoute,
                    format!("inbound/{}/replies", r.name),
                    r.level,
                    &r.name,
                    self.route_item(&d),
                )
                .says(
                    format!(
                        "traffic from {what} comes in from the {hop}, but the reply is routed to {} by {}",
                        d.next_hop(),
                        route_text(&d)
                    ),
                    format!(
                        "the reply takes another path than the request: TCP breaks, so {}",
                        r.breaks
                    ),
                    &r.because,
                )
                .with_fix(fix),
            );
            return;
        }
    }
}
