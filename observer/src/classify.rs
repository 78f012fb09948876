//! Classification: what each flow is (`category`, `dependency`, `dst_name`),
//! which way Azure routes it (`expected_next_hop`), which way it went
//! (`observed_path`, from the interface role), and whether that is a leak
//! (`verdict`, `reason`).
//!
//! A record is judged from the workload's side: the "remote" end is the
//! address outside the ASE subnet. Route verdicts apply to the direction the
//! route table decides (workload to remote); replies can only be `blocked`
//! or share the flow's identity verdicts (public endpoint, DNS).

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr},
    sync::Arc,
};

use ipnet::Ipv4Net;

pub use crate::topology::is_public;
pub use crate::verdict::Verdict;
use crate::{
    catalog::{Catalog, Dependency, Destination},
    dns::DnsAnswer,
    flow::{Direction, FlowRecord, NsgDecision},
    routes::{Decision, EffectiveRoutes},
    security::{EffectiveSecurity, Flow, Scope, SecurityDecision},
    topology::{AZURE_DNS, Environment, NextHop, Topology},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    Vnet,
    AseInternal,
    PrivateEndpoint,
    Onprem,
    Dependency,
    Dns,
    Internet,
    Unknown,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Vnet => "vnet",
            Self::AseInternal => "ase-internal",
            Self::PrivateEndpoint => "private-endpoint",
            Self::Onprem => "onprem",
            Self::Dependency => "dependency",
            Self::Dns => "dns",
            Self::Internet => "internet",
            Self::Unknown => "unknown",
        }
    }
}

/// The classification of one record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Classification {
    pub category: Category,
    pub dependency: Option<String>,
    pub dst_name: Option<String>,
    pub expected_next_hop: Option<NextHop>,
    pub observed_path: Option<NextHop>,
    pub flow_type: &'static str,
    pub verdict: Verdict,
    pub reason: String,
}

/// A [`Classification`] as the record columns hold it, built once per
/// decision and shared by every record it applies to.
struct Stamp {
    category: Arc<str>,
    dependency: Option<Arc<str>>,
    dst_name: Option<Arc<str>>,
    expected_next_hop: Option<Arc<str>>,
    observed_path: Option<Arc<str>>,
    flow_type: Arc<str>,
    verdict: Arc<str>,
    reason: Arc<str>,
}

impl Stamp {
    fn of(c: &Classification) -> Self {
        Self {
            category: c.category.as_str().into(),
            dependency: c.dependency.as_deref().map(Into::into),
            dst_name: c.dst_name.as_deref().map(Into::into),
            expected_next_hop: c.expected_next_hop.map(|h| h.as_str().into()),
            observed_path: c.observed_path.map(|h| h.as_str().into()),
            flow_type: c.flow_type.into(),
            verdict: c.verdict.as_str().into(),
            reason: c.reason.as_str().into(),
        }
    }
}

/// How the other direction of a TCP flow answered, when both were watched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Answer {
    /// Not TCP, or the reverse direction was not watched.
    Unknown,
    Answered,
    /// A SYN went out and no SYN-ACK came back.
    Unanswered,
    /// Only RSTs came back.
    Refused,
}

/// What a known address is in the topology.
#[derive(Clone, Debug)]
enum Known {
    Backend {
        name: String,
        private: Ipv4Addr,
        public: bool,
        in_ase_subnet: bool,
    },
    PrivateEndpoint {
        index: usize,
        public: bool,
    },
    Endpoint {
        fqdn: String,
    },
}

#[derive(Debug)]
pub struct Classifier {
    topology: Topology,
    routes: EffectiveRoutes,
    security: EffectiveSecurity,
    dependencies: Vec<Dependency>,
    known: HashMap<Ipv4Addr, Known>,
}

const TCP: u8 = 6;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;

impl Classifier {
    pub fn new(topology: &Topology, catalog: &Catalog) -> Self {
        let ase = topology.ase_subnet().prefix;
        let mut known = HashMap::new();
        for e in &topology.endpoints {
            known.insert(
                e.address,
                Known::Endpoint {
                    fqdn: e.fqdn.clone(),
                },
            );
        }
        for (index, pe) in topology.private_endpoints.iter().enumerate() {
            known.insert(
                pe.private_ip,
                Known::PrivateEndpoint {
                    index,
                    public: false,
                },
            );
            known.insert(
                pe.public_ip,
                Known::PrivateEndpoint {
                    index,
                    public: true,
                },
            );
        }
        for b in &topology.backends {
            let name = b.fqdn.clone().unwrap_or_else(|| b.name.clone());
            let entry = |public| Known::Backend {
                name: name.clone(),
                private: b.private_ip,
                public,
                in_ase_subnet: ase.contains(&b.private_ip),
            };
            known.insert(b.private_ip, entry(false));
            if let Some(public) = b.public_ip {
                known.insert(public, entry(true));
            }
        }
        Self {
            topology: topology.clone(),
            routes: EffectiveRoutes::build(topology),
            security: EffectiveSecurity::build(topology),
            dependencies: catalog.for_environment(topology.environment),
            known,
        }
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Classifies `records` in place, pairing directions for `blocked`.
    ///
    /// A record's classification depends only on its addresses, the remote
    /// port, the protocol, the interface role, the TCP answer and the DNS
    /// names; records sharing those share one decision, computed once (with
    /// its reason text) and copied to each of them.
    pub fn classify_all(&self, records: &mut [FlowRecord]) {
        let ase = self.topology.ase_subnet().prefix;
        let answers = answers(records, ase);
        let mut routes = HashMap::new();
        let mut table: Vec<Classification> = Vec::new();
        let mut slots: Vec<u32> = Vec::with_capacity(records.len());
        // Default rules match any source port; only user rules may not.
        let source_port_rules = self.topology.nsgs.iter().any(|nsg| {
            nsg.rules
                .iter()
                .any(|r| r.source_ports.iter().any(|p| !p.is_any()))
        });
        {
            let mut index: HashMap<MemoKey<'_>, u32, BuildFx> = HashMap::default();
            for (record, &answer) in records.iter().zip(&answers) {
                let key = MemoKey::of(record, answer, ase, source_port_rules);
                let slot = *index.entry(key).or_insert_with(|| {
                    table.push(self.classify_with(record, answer, &mut routes));
                    (table.len() - 1) as u32
                });
                slots.push(slot);
            }
        }
        // Each decision's text, shared: a record gets reference counts, not copies.
        let stamps: Vec<Stamp> = table.iter().map(Stamp::of).collect();
        for (record, slot) in records.iter_mut().zip(slots) {
            let s = &stamps[slot as usize];
            record.category = Some(s.category.clone());
            record.dependency.clone_from(&s.dependency);
            if record.dst_name.is_none() {
                record.dst_name.clone_from(&s.dst_name);
            }
            record.expected_next_hop.clone_from(&s.expected_next_hop);
            record.observed_path.clone_from(&s.observed_path);
            record.flow_type = Some(s.flow_type.clone());
            record.verdict = Some(s.verdict.clone());
            record.reason = Some(s.reason.clone());
        }
    }

    /// Classifies one record.
    pub fn classify(&self, record: &FlowRecord, answer: Answer) -> Classification {
        self.classify_with(record, answer, &mut HashMap::new())
    }

    fn classify_with(
        &self,
        record: &FlowRecord,
        answer: Answer,
        decisions: &mut HashMap<Ipv4Addr, Decision>,
    ) -> Classification {
        let Sides {
            reply,
            remote,
            remote_port,
            local,
            local_port,
            inbound,
        } = Sides::of(record, self.topology.ase_subnet().prefix);
        let known = match remote {
            IpAddr::V4(v4) => self.known.get(&v4),
            IpAddr::V6(_) => None,
        };
        let dst_name = record
            .dst_name
            .as_deref()
            .map(str::to_owned)
            .or_else(|| match known? {
                Known::Backend { name, .. } => Some(name.clone()),
                Known::PrivateEndpoint { index, .. } => {
                    Some(self.topology.private_endpoints[*index].fqdn.clone())
                }
                Known::Endpoint { fqdn } => Some(fqdn.clone()),
            });
        let destination = Destination {
            addr: remote,
            name: dst_name.as_deref(),
            protocol: record.protocol,
            port: remote_port,
        };
        // A destination the topology names (a backend, a private endpoint)
        // is that resource, even when its name falls under a dependency's
        // domain (a customer storage account behind a private endpoint is
        // not the ASE's Storage dependency).
        let named = matches!(
            known,
            Some(Known::Backend { .. } | Known::PrivateEndpoint { .. })
        );
        let dependency = self
            .dependencies
            .iter()
            .filter(|_| !named && !inbound)
            .find(|d| d.matches(&destination, &self.topology.service_tags));
        let decision = match remote {
            IpAddr::V4(v4) => Some(
                &*decisions
                    .entry(v4)
                    .or_insert_with(|| self.routes.lookup(v4)),
            ),
            IpAddr::V6(_) => None,
        };
        let observed = record
            .point
            .iface_role
            .as_deref()
            .and_then(NextHop::from_role);
        let category = self.category(remote, remote_port, known, dependency);
        let security = match (remote, local) {
            (IpAddr::V4(r), IpAddr::V4(l)) if !decision.is_some_and(|d| d.bypasses_vnet) => {
                // The flow as its initiator sent it.
                let flow = if inbound {
                    Flow {
                        src: r,
                        dst: l,
                        protocol: record.protocol,
                        src_port: remote_port,
                        dst_port: local_port,
                    }
                } else {
                    Flow {
                        src: l,
                        dst: r,
                        protocol: record.protocol,
                        src_port: local_port,
                        dst_port: remote_port,
                    }
                };
                Some(self.security.verify(&flow, Scope::Path))
            }
            _ => None,
        };
        let judged = Judged {
            record,
            remote,
            reply,
            inbound,
            security: security.as_ref(),
            known,
            dependency,
            decision,
            observed,
            category,
            answer,
            dst_name: dst_name.as_deref(),
        };
        let (mut verdict, mut reason) = self.verdict(&judged);
        // The flow log saw Azure deny this flow: that is what happened,
        // whatever the topology's model says.
        if record.origin.nsg_decision == Some(NsgDecision::Deny) {
            let rule = record
                .origin
                .nsg_rule
                .as_deref()
                .unwrap_or("an unnamed rule");
            let source = record.origin.source.as_str();
            reason = if verdict == Verdict::DeniedByNsg {
                format!("{reason}; the {source} recorded the deny by {rule}")
            } else {
                format!(
                    "the {source} recorded this flow as denied by {rule}; the topology's NSGs would not deny it ({verdict}: {reason}), so they differ from what is deployed"
                )
            };
            verdict = Verdict::DeniedByNsg;
        } else if record.origin.dropped_unencrypted() {
            // Dropped by virtual network encryption: no NSG decided.
            let status = record.origin.encryption.as_deref().unwrap_or("unknown");
            let cause = crate::import::vnet_flow_log::encryption_drop_cause(status);
            reason = format!(
                "the {} recorded this flow as dropped by virtual network encryption ({status}: {cause}), not by an NSG; by the topology it would be {verdict}: {reason}",
                record.origin.source.as_str()
            );
            verdict = Verdict::DroppedUnencrypted;
        }
        Classification {
            category,
            dependency: dependency.map(|d| d.name.clone()),
            flow_type: self.flow_type(remote, category, known, dependency),
            dst_name,
            expected_next_hop: decision.map(|d| d.next_hop()),
            observed_path: observed,
            verdict,
            reason,
        }
    }

    fn category(
        &self,
        remote: IpAddr,
        port: Option<u16>,
        known: Option<&Known>,
        dependency: Option<&Dependency>,
    ) -> Category {
        let t = &self.topology;
        let v4 = match remote {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        };
        match known {
            Some(Known::Backend { .. }) => return Category::Vnet,
            Some(Known::PrivateEndpoint { .. }) => return Category::PrivateEndpoint,
            _ => {}
        }
        if port == Some(53) {
            return Category::Dns;
        }
        if let Some(v4) = v4 {
            if t.ase_subnet().prefix.contains(&v4) {
                return Category::AseInternal;
            }
            if dependency.is_none() && (t.in_vnet(v4) || t.in_peering(v4)) {
                return Category::Vnet;
            }
            if dependency.is_none() && t.in_onprem(v4) {
                return Category::Onprem;
            }
        }
        if dependency.is_some() {
            Category::Dependency
        } else if is_public(remote) {
            Category::Internet
        } else {
            Category::Unknown
        }
    }

    fn flow_type(
        &self,
        remote: IpAddr,
        category: Category,
        known: Option<&Known>,
        dependency: Option<&Dependency>,
    ) -> &'static str {
        let t = &self.topology;
        if let IpAddr::V4(v4) = remote {
            if t.in_vnet(v4) {
                return "IntraVNet";
            }
            if t.in_peering(v4) {
                return "InterVNet";
            }
            if t.in_onprem(v4) {
                return "S2S";
            }
            if v4 == AZURE_DNS {
                return "AzurePublic";
            }
        }
        if is_public(remote) {
            let azure = matches!(
                known,
                Some(Known::Backend { .. } | Known::PrivateEndpoint { .. })
            ) || dependency.is_some()
                || t.service_tags.owner(remote).is_some();
            return if azure {
                "AzurePublic"
            } else {
                "ExternalPublic"
            };
        }
        if category == Category::Unknown {
            "UnknownPrivate"
        } else {
            "Unknown"
        }
    }

    fn verdict(&self, j: &Judged<'_>) -> (Verdict, String) {
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

        if j.inbound {
            return self.inbound_verdict(j);
        }

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
                return (Verdict::LeakDns, self.dns_reason(pe));
            }
            return (
                Verdict::LeakPublicEndpoint,
                format!(
                    "{} has a private endpoint at {} but was reached on its public address {remote}",
                    pe.fqdn, pe.private_ip
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
            && sec.access == crate::topology::Access::Deny
        {
            let port = sec.flow.dst_port.map_or(String::new(), |p| format!(":{p}"));
            let then = match j.dependency {
                Some(dep) => format!(
                    "; {} is a documented dependency of the ASE: if it is blocked the ASE stops working, allow it with a rule of a lower priority number",
                    dep.name
                ),
                None => String::new(),
            };
            return (
                Verdict::DeniedByNsg,
                format!(
                    "{} to {}{port} is denied: {}{then}",
                    protocol_name(sec.flow.protocol),
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

        let platform = matches!(
            t.environment,
            Environment::Asev1 | Environment::Asev2External | Environment::Asev2Ilb
        );
        if j.category == Category::Internet && !j.reply && platform {
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

    /// Flows the remote end opened: the destination subnet's NSG must admit
    /// them, and the reply to inbound management must leave by the path the
    /// request came in (the Internet), or TCP breaks.
    fn inbound_verdict(&self, j: &Judged<'_>) -> (Verdict, String) {
        let remote = j.remote;
        let service_port = if j.reply {
            j.record.dst_port
        } else {
            j.record.src_port
        };
        let management = service_port.is_some_and(|p| MANAGEMENT_PORTS.contains(&p));
        if let Some(sec) = j.security
            && sec.access == crate::topology::Access::Deny
        {
            let then = if management {
                "; inbound management (454-455 from AppServiceManagement) is required: the ASE stops working; add an inbound Allow rule for it"
            } else {
                ""
            };
            return (
                Verdict::DeniedByNsg,
                format!(
                    "inbound {} from {remote} to {}:{} is denied: {}{then}",
                    protocol_name(j.record.protocol),
                    sec.flow.dst,
                    service_port.unwrap_or(0),
                    sec.describe()
                ),
            );
        }
        if management
            && is_public(remote)
            && let Some(d) = j.decision
            && (d.next_hop() != NextHop::Internet
                || j.observed
                    .is_some_and(|o| o != NextHop::Internet && !j.reply))
        {
            let leaves = j
                .observed
                .filter(|o| !j.reply && *o != NextHop::Internet)
                .unwrap_or(d.next_hop());
            return (
                Verdict::AsymmetricRoute,
                format!(
                    "management traffic from {remote} to port {} comes in from the Internet, but the reply leaves by {leaves} ({} route {}, {}): the connection breaks; add a user route for the AppServiceManagement service tag (or the management addresses) with next hop Internet",
                    service_port.unwrap_or(0),
                    d.chosen.source.as_str(),
                    d.chosen.prefix,
                    d.chosen.origin
                ),
            );
        }
        let allowed = j
            .security
            .map_or_else(|| "no NSG applies".to_string(), SecurityDecision::describe);
        (
            Verdict::Ok,
            format!(
                "inbound {} from {remote} to port {}: {allowed}",
                protocol_name(j.record.protocol),
                service_port.unwrap_or(0)
            ),
        )
    }

    /// Judges one DNS answer: the server, privatelink names answered
    /// publicly, and dependencies that do not resolve.
    pub fn judge_dns(&self, answer: &mut DnsAnswer) {
        let t = &self.topology;
        // A custom server asking upstream (forwarding) is not the app.
        let forwarder = t.dns.servers.contains(&answer.client);
        let (verdict, reason) = if !t.dns.servers.contains(&answer.server) && !forwarder {
            (
                "unexpected-server",
                format!(
                    "answer from {}, which is not one of the VNet's DNS servers ({})",
                    answer.server,
                    t.dns
                        .servers
                        .iter()
                        .map(|s| s.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        } else if let Some(zone) = answer.chain.iter().find(|n| n.contains("privatelink."))
            && let Some(public) = answer.addresses.iter().find(|a| is_public(**a))
        {
            if answer.server == IpAddr::V4(AZURE_DNS) {
                (
                    "privatelink-public",
                    format!(
                        "Azure DNS answered {} through {zone} with the public address {public}: the privatelink zone is not linked to VNet {}",
                        answer.query, t.vnet.name
                    ),
                )
            } else {
                (
                    "privatelink-public",
                    format!(
                        "custom DNS server {} answered {} through {zone} with the public address {public}: it does not forward to 168.63.129.16",
                        answer.server, answer.query
                    ),
                )
            }
        } else if answer.rcode == "NXDOMAIN"
            && let Some(dep) = self.dependencies.iter().find(|d| d.names(&answer.query))
        {
            (
                "nxdomain-dependency",
                format!(
                    "{} ({}) does not resolve (NXDOMAIN): the ASE cannot reach its dependency",
                    answer.query, dep.name
                ),
            )
        } else {
            (
                "ok",
                format!("{} {} from {}", answer.query, answer.rcode, answer.server),
            )
        };
        answer.verdict = Some(verdict.into());
        answer.reason = Some(reason);
    }

    fn dns_reason(&self, pe: &crate::topology::PrivateEndpoint) -> String {
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

/// A record from the workload's side: which end is remote, and who opened it.
struct Sides {
    /// The record goes from the remote end to the ASE subnet.
    reply: bool,
    remote: IpAddr,
    remote_port: Option<u16>,
    local: IpAddr,
    local_port: Option<u16>,
    /// The remote end opened the flow (inbound management, a client of
    /// the app): the ASE side listens on the lower, well-known port.
    inbound: bool,
}

impl Sides {
    fn of(record: &FlowRecord, ase: Ipv4Net) -> Self {
        let reply = in_net(ase, record.dst_addr) && !in_net(ase, record.src_addr);
        let (remote, remote_port, local, local_port) = if reply {
            (
                record.src_addr,
                record.src_port,
                record.dst_addr,
                record.dst_port,
            )
        } else {
            (
                record.dst_addr,
                record.dst_port,
                record.src_addr,
                record.src_port,
            )
        };
        let inbound = matches!(
            (local_port, remote_port),
            (Some(l), Some(r)) if l < r && r >= 1024 && in_net(ase, local)
        );
        Self {
            reply,
            remote,
            remote_port,
            local,
            local_port,
            inbound,
        }
    }
}

/// What a record's classification depends on (see [`Classifier::classify_all`]).
#[derive(PartialEq, Eq, Hash)]
struct MemoKey<'a> {
    src: IpAddr,
    dst: IpAddr,
    remote_port: Option<u16>,
    /// The workload's port, only where it matters: inbound flows (it is the
    /// service port) or NSGs with source-port rules.
    local_port: Option<u16>,
    inbound: bool,
    protocol: u8,
    role: Option<Shared<'a>>,
    answer: Answer,
    dst_name: Option<Shared<'a>>,
    dns_chain: Option<&'a [String]>,
    nsg_decision: Option<NsgDecision>,
    nsg_rule: Option<Shared<'a>>,
    /// The encryption status of a flow dropped by encryption (its reason says it).
    dropped_unencrypted: Option<Shared<'a>>,
}

/// Text in a [`MemoKey`]: records usually share one string (interned rule
/// names, roles, classification text), so equality checks the pointer
/// before the bytes; the hash is of the text, so equal text still meets.
#[derive(Clone, Copy)]
struct Shared<'a>(&'a str);

impl PartialEq for Shared<'_> {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.0, other.0) || self.0 == other.0
    }
}

impl Eq for Shared<'_> {}

impl std::hash::Hash for Shared<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl<'a> MemoKey<'a> {
    fn of(r: &'a FlowRecord, answer: Answer, ase: Ipv4Net, source_port_rules: bool) -> Self {
        let sides = Sides::of(r, ase);
        Self {
            src: r.src_addr,
            dst: r.dst_addr,
            remote_port: sides.remote_port,
            local_port: if sides.inbound || source_port_rules {
                sides.local_port
            } else {
                None
            },
            inbound: sides.inbound,
            nsg_decision: r.origin.nsg_decision,
            nsg_rule: r.origin.nsg_rule.as_deref().map(Shared),
            dropped_unencrypted: r
                .origin
                .dropped_unencrypted()
                .then(|| Shared(r.origin.encryption.as_deref().unwrap_or_default())),
            protocol: r.protocol,
            role: r.point.iface_role.as_deref().map(Shared),
            answer,
            dst_name: r.dst_name.as_deref().map(Shared),
            dns_chain: r.dns_chain.as_deref(),
        }
    }
}

/// FxHash (rustc's): a multiply-rotate hasher, far cheaper than SipHash for
/// small keys that no adversary chooses.
#[derive(Default)]
struct Fx(u64);

impl std::hash::Hasher for Fx {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }

    fn write_u16(&mut self, n: u16) {
        self.write_u64(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

type BuildFx = std::hash::BuildHasherDefault<Fx>;

struct Judged<'a> {
    record: &'a FlowRecord,
    remote: IpAddr,
    reply: bool,
    /// The remote end opened the flow.
    inbound: bool,
    /// The NSGs' verdict on the flow as its initiator sent it.
    security: Option<&'a SecurityDecision>,
    known: Option<&'a Known>,
    dependency: Option<&'a Dependency>,
    decision: Option<&'a Decision>,
    observed: Option<NextHop>,
    category: Category,
    answer: Answer,
    dst_name: Option<&'a str>,
}

/// The ASE's inbound management ports (from AppServiceManagement).
pub const MANAGEMENT_PORTS: [u16; 2] = [454, 455];

fn protocol_name(protocol: u8) -> String {
    match protocol {
        6 => "TCP".into(),
        17 => "UDP".into(),
        1 => "ICMP".into(),
        p => format!("protocol {p}"),
    }
}

fn in_net(net: Ipv4Net, addr: IpAddr) -> bool {
    matches!(addr, IpAddr::V4(v4) if net.contains(&v4))
}

/// Pairs each TCP record with the reverse direction on the same interface.
fn answers(records: &[FlowRecord], ase: Ipv4Net) -> Vec<Answer> {
    // Keys borrow the interface name (no reference-count traffic) and use
    // the cheap hasher: this pass runs over every record.
    type Key<'a> = (&'a str, IpAddr, Option<u16>, IpAddr, Option<u16>);
    // Interfaces where both directions were watched. Records of one
    // interface come in runs sharing its name: one lookup per run.
    let mut seen: HashMap<&str, (bool, bool), BuildFx> = HashMap::default();
    for run in records.chunk_by(|a, b| Arc::ptr_eq(&a.point.iface, &b.point.iface)) {
        let dirs = seen.entry(&*run[0].point.iface).or_default();
        for r in run {
            match r.direction {
                Direction::Ingress => dirs.0 = true,
                Direction::Egress => dirs.1 = true,
            }
        }
    }
    seen.retain(|_, dirs| *dirs == (true, true));
    if seen.is_empty() {
        // Without both directions there is nothing to pair.
        return vec![Answer::Unknown; records.len()];
    }
    let mut flags: HashMap<Key<'_>, (u8, bool), BuildFx> = HashMap::default();
    for r in records {
        if r.protocol == TCP && seen.contains_key(&*r.point.iface) {
            let key = (
                &*r.point.iface,
                r.src_addr,
                r.src_port,
                r.dst_addr,
                r.dst_port,
            );
            let entry = flags.entry(key).or_default();
            entry.0 |= r.tcp_flags;
            entry.1 |= r.syn_count > 0 && r.tcp_flags & ACK == 0;
        }
    }
    records
        .iter()
        .map(|r| {
            if r.protocol != TCP || !seen.contains_key(&*r.point.iface) {
                return Answer::Unknown;
            }
            // The initiator's side is the one in the ASE subnet (or, failing
            // that, the record's own source).
            let initiator_is_src = in_net(ase, r.src_addr) || !in_net(ase, r.dst_addr);
            let (out_key, back_key) = if initiator_is_src {
                (
                    (
                        &*r.point.iface,
                        r.src_addr,
                        r.src_port,
                        r.dst_addr,
                        r.dst_port,
                    ),
                    (
                        &*r.point.iface,
                        r.dst_addr,
                        r.dst_port,
                        r.src_addr,
                        r.src_port,
                    ),
                )
            } else {
                (
                    (
                        &*r.point.iface,
                        r.dst_addr,
                        r.dst_port,
                        r.src_addr,
                        r.src_port,
                    ),
                    (
                        &*r.point.iface,
                        r.src_addr,
                        r.src_port,
                        r.dst_addr,
                        r.dst_port,
                    ),
                )
            };
            let (out_flags, out_syn) = flags.get(&out_key).copied().unwrap_or_default();
            let back = flags.get(&back_key).map(|(f, _)| *f).unwrap_or(0);
            if !out_syn && out_flags & SYN == 0 {
                Answer::Unknown // a flow that started before the capture
            } else if back & (SYN | ACK) == SYN | ACK {
                Answer::Answered
            } else if back & RST != 0 {
                Answer::Refused
            } else {
                Answer::Unanswered
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
