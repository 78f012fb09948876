//! Classification: what each flow is (`category`, `dependency`, `dst_name`),
//! which way Azure routes it (`expected_next_hop`), which way it went
//! (`observed_path`, from the interface role), and whether that is a leak
//! (`verdict`, `reason`).
//!
//! A record is judged from the workload's side: the "remote" end is the
//! address outside the ASE subnet. Route verdicts apply to the direction the
//! route table decides (workload to remote); replies can only be `blocked`
//! or share the flow's identity verdicts (public endpoint, DNS).
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | [`Classifier`]: construction, one record's facts gathered and judged (`classify_with`), `Classification`, `Category`, `FlowType`, the workload's side of a record (`Sides`) |
//! | `index.rs` | the address index: what each address the topology names is (`Known`) |
//! | `memo.rs` | [`Classifier::classify_all`]: one decision per distinct `MemoKey` (FxHash), its text shared by every record it applies to (`Stamp`) |
//! | `identity.rs` | the remote end's `Category` and Traffic Analytics `FlowType` |
//! | `outbound.rs` | verdicts of flows the workload opened (and their replies): routes, leaks, NSGs, dependencies |
//! | `inbound.rs` | verdicts of flows the remote end opened: the destination's NSG, management replies |
//! | `dns.rs` | `Classifier::judge_dns`: the verdict of one DNS answer |
//! | `answers.rs` | pairing TCP directions on one interface: `Answer` (answered, unanswered, refused) |
//! | `tests.rs` | table-driven checks of every verdict on the scenario topologies |

mod answers;
mod dns;
mod identity;
mod inbound;
mod index;
mod memo;
mod outbound;

use std::net::{IpAddr, Ipv4Addr};

use ipnet::Ipv4Net;
use rustc_hash::FxHashMap;

pub(crate) use self::answers::Answer;
use self::index::Known;
pub(crate) use crate::verdict::Verdict;
use crate::{
    catalog::{Catalog, Dependency, Destination},
    flow::{FlowRecord, NsgDecision},
    routes::{Decision, EffectiveRoutes},
    security::{EffectiveSecurity, Flow, Scope, SecurityDecision},
    topology::{NextHop, Topology},
    vocabulary::Vocabulary,
};

/// What the remote end of a flow is (the `category` column).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantNames,
    strum::VariantArray,
)]
#[strum(
    serialize_all = "kebab-case",
    parse_err_ty = String,
    parse_err_fn = crate::vocabulary::unknown::<Self>
)]
pub(crate) enum Category {
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
    pub(crate) fn as_str(self) -> &'static str {
        self.into()
    }
}

impl Vocabulary for Category {
    const WHAT: &'static str = "category";
}

/// Azure Traffic Analytics' `FlowType` of a flow (the `flow_type` column).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantNames,
    strum::VariantArray,
)]
#[strum(parse_err_ty = String, parse_err_fn = crate::vocabulary::unknown::<Self>)]
pub(crate) enum FlowType {
    IntraVNet,
    InterVNet,
    /// Site-to-site: the on-premises network behind the gateway.
    S2S,
    /// A Microsoft-owned public address.
    AzurePublic,
    ExternalPublic,
    /// A private address no site or VNet maps.
    UnknownPrivate,
    Unknown,
}

impl FlowType {
    pub(crate) fn as_str(self) -> &'static str {
        self.into()
    }
}

impl Vocabulary for FlowType {
    const WHAT: &'static str = "flow type";
}

/// The classification of one record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Classification {
    pub(crate) category: Category,
    pub(crate) dependency: Option<String>,
    pub(crate) dst_name: Option<String>,
    pub(crate) expected_next_hop: Option<NextHop>,
    pub(crate) observed_path: Option<NextHop>,
    pub(crate) flow_type: FlowType,
    pub(crate) verdict: Verdict,
    pub(crate) reason: String,
}

/// The judge of flows and DNS answers for one topology and catalog.
#[derive(Debug)]
pub struct Classifier {
    topology: Topology,
    routes: EffectiveRoutes,
    security: EffectiveSecurity,
    dependencies: Vec<Dependency>,
    known: FxHashMap<Ipv4Addr, Known>,
}

impl Classifier {
    /// A classifier of flows in `topology`, judged against `catalog`'s
    /// dependencies. Classify with [`Classifier::classify_all`].
    ///
    /// # Example
    ///
    /// ```
    /// use observer::{catalog::Catalog, classify::Classifier, flow::FlowRecord, topology::Topology};
    ///
    /// let topology = Topology::load("../lab/topologies/default.toml".as_ref())?;
    /// let catalog = Catalog::load(topology.cloud, &[])?;
    /// let classifier = Classifier::new(&topology, &catalog);
    /// // The workload reaches the SQL VM by its public address: a leak.
    /// let mut records = [FlowRecord {
    ///     protocol: 6,
    ///     src_addr: "10.0.0.4".parse()?,
    ///     dst_addr: "203.0.113.6".parse()?,
    ///     src_port: Some(50000),
    ///     dst_port: Some(1433),
    ///     packets: 3,
    ///     ..FlowRecord::default()
    /// }];
    /// classifier.classify_all(&mut records);
    /// assert_eq!(records[0].verdict.as_deref(), Some("leak-public-endpoint"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(topology: &Topology, catalog: &Catalog) -> Self {
        Self {
            topology: topology.clone(),
            routes: EffectiveRoutes::build(topology),
            security: EffectiveSecurity::build(topology),
            dependencies: catalog.for_environment(topology.environment),
            known: index::known(topology),
        }
    }

    pub(crate) fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Gathers what one record's verdict depends on (who it is, the route,
    /// the path seen, the NSGs) and judges it; route decisions are cached in
    /// `decisions` across the records of one batch.
    fn classify_with(
        &self,
        record: &FlowRecord,
        answer: Answer,
        decisions: &mut FxHashMap<Ipv4Addr, Decision>,
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
            .or_else(|| known.map(|k| k.name(&self.topology).to_owned()));
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
        let named = known.is_some_and(Known::is_resource);
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
            security: security.as_ref(),
            known,
            dependency,
            decision,
            observed,
            category,
            answer,
            dst_name: dst_name.as_deref(),
        };
        let (mut verdict, mut reason) = if inbound {
            self.inbound_verdict(&judged)
        } else {
            self.outbound_verdict(&judged)
        };
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
            let cause = crate::flow::Origin::encryption_drop_cause(status);
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
}

/// Everything one record's verdict depends on, gathered by
/// `Classifier::classify_with` for the judge of its direction (`outbound`
/// or `inbound`).
struct Judged<'a> {
    record: &'a FlowRecord,
    remote: IpAddr,
    reply: bool,
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

fn in_net(net: Ipv4Net, addr: IpAddr) -> bool {
    matches!(addr, IpAddr::V4(v4) if net.contains(&v4))
}

#[cfg(test)]
mod tests;
