//! The inbound requirements of the environment, as NSG verdicts: App
//! Service management (AppServiceManagement on the management ports), the
//! load balancer's keep-alive, the ASE subnet to itself (ASEv1/v2), the
//! ASEv3's health check; and the route of the replies to management,
//! which must leave by the Internet the requests came in from.

use std::net::Ipv4Addr;

use super::{Auditor, Check, Problem, route_text};
use crate::{
    protocol::{DNS_PORT, IpProtocol, MANAGEMENT_PORTS},
    security::{Flow, Scope},
    topology::{AZURE_DNS, Access, NextHop},
};

/// The load balancer's keep-alive port of an ASEv1/v2 (from AzureLoadBalancer).
const LOAD_BALANCER_KEEPALIVE: u16 = 16001;

/// One inbound requirement: `from` must reach `to` on every protocol and
/// port listed.
#[derive(Clone, Copy)]
struct Requirement<'a> {
    subject: &'a str,
    from: &'a [(Ipv4Addr, String)],
    to: Ipv4Addr,
    protocols: &'a [IpProtocol],
    ports: &'a [u16],
    source_text: &'a str,
    breaks: &'a str,
}

impl Auditor<'_> {
    /// Addresses of the AppServiceManagement tag (or anywhere, without it).
    pub(super) fn management_sources(&self) -> Vec<(Ipv4Addr, String)> {
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
                    let flow = Flow::new(*src, to, protocol.number(), port);
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
                            check: Check::Inbound,
                            subject: subject.into(),
                            problem: format!(
                                "{protocol} {port} from {what} to {to} is denied: {}",
                                verdict.describe()
                            ),
                            breaks: breaks.into(),
                            fix: format!(
                                "add an {direction} Allow rule with a priority number below {priority}: source {source_text}, destination {}, protocol {}, destination_ports [{}]",
                                self.t.ase_subnet().prefix,
                                if protocols.len() > 1 { "*" } else { protocol.azure() },
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

    pub(super) fn inbound_management(&mut self) {
        let ase = self.ase_address();
        let management = self.management_sources();
        self.inbound_requirement(&Requirement {
            subject: "management",
            from: &management,
            to: ase,
            protocols: &[IpProtocol::TCP],
            ports: &MANAGEMENT_PORTS,
            source_text: "AppServiceManagement",
            breaks: "App Service cannot manage the ASE: it becomes unhealthy and stops working",
        });
        let lb = vec![(AZURE_DNS, "AzureLoadBalancer (168.63.129.16)".to_string())];
        self.inbound_requirement(&Requirement {
            subject: "load-balancer",
            from: &lb,
            to: ase,
            protocols: &[IpProtocol::TCP],
            ports: &[
                LOAD_BALANCER_KEEPALIVE,
                MANAGEMENT_PORTS[0],
                MANAGEMENT_PORTS[1],
            ],
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
        let ports = [
            1,
            DNS_PORT,
            80,
            443,
            445,
            MANAGEMENT_PORTS[0],
            1433,
            8172,
            LOAD_BALANCER_KEEPALIVE,
            65535,
        ];
        self.inbound_requirement(&Requirement {
            subject: "ase-subnet",
            from: &itself,
            to: ase,
            protocols: &[IpProtocol::TCP, IpProtocol::UDP],
            ports: &ports,
            source_text: &net.to_string(),
            breaks: "the ASE's own instances cannot talk to each other: the ASE stops working",
        });
    }

    pub(super) fn inbound_asev3(&mut self) {
        let ase = self.ase_address();
        let lb = vec![(AZURE_DNS, "AzureLoadBalancer (168.63.129.16)".to_string())];
        self.inbound_requirement(&Requirement {
            subject: "load-balancer",
            from: &lb,
            to: ase,
            protocols: &[IpProtocol::TCP],
            ports: &[80],
            source_text: "AzureLoadBalancer",
            breaks: "the internal health check of the ASEv3 (TCP 80 from AzureLoadBalancer) fails",
        });
    }

    /// The reply to inbound management must leave by the Internet.
    pub(super) fn asymmetric_management(&mut self) {
        self.checked += 1;
        for (src, what) in self.management_sources() {
            let d = self.routes.lookup(src);
            if d.next_hop() != NextHop::Internet {
                self.problems.push(Problem {
                    check: Check::AsymmetricRoute,
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
}
