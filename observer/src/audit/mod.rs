//! The static audit behind `observer check`: before any traffic, every
//! documented requirement of the environment is evaluated against the
//! topology's routes (`routes`), NSGs (`security`) and DNS configuration:
//!
//! - the outbound dependencies of the catalog (NSG and route per dependency);
//! - the inbound requirements of the catalog (ASEv1/v2: management from
//!   AppServiceManagement, the load balancer, the ASE subnet to itself;
//!   ASEv3: the load balancer's health check), and the route their replies
//!   must take (management: back out by the Internet). NSGs are stateful,
//!   as in `verify`: replies to allowed inbound traffic need no rule;
//! - user routes a more specific BGP route beats;
//! - private endpoints whose privatelink zone is not linked to the VNet
//!   (an error when the resource has public network access disabled);
//! - custom DNS servers that do not forward to 168.63.129.16, or that the
//!   ASE subnet cannot reach (no route, an NSG, a gateway that is not there).
//!
//! Each problem has a [`Level`] from the data (the catalog's entries,
//! [`rules`]) with the documentation's sentence that sets it, what breaks,
//! the item at fault and a fix Azure accepts (`az` commands and TOML);
//! `check` exits 1 when a problem is an error.
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | [`Audit`] (the run, in the order of the checks), [`Problem`], [`Check`], [`Item`], the auditor's shared helpers (NSG denials and near misses) |
//! | `rules.rs` | the requirements that are not catalog entries, with level and source sentence |
//! | `outbound.rs` | each catalog dependency: its destinations, their route and NSG verdicts |
//! | `inbound.rs` | each inbound requirement of the catalog and the route of its replies |
//! | `routes.rs` | user routes that a more specific BGP route beats |
//! | `dns.rs` | private endpoints' privatelink zones and public access, custom DNS servers |
//! | `fix.rs` | fixes Azure accepts: free priorities, the rule to widen, move or remove, routes, zone links; `az` commands and TOML |
//! | `locate.rs` | [`Located`]: where each topology item is written (TOML line:column) and where `topology import` read it (ARM file, line:column, resource group) |
//! | `text.rs` | the text report |
//! | `sarif.rs` | SARIF 2.1.0 for code scanning |
//! | `html.rs` | the HTML page |
//! | `tests.rs` | the scenario topologies and variations of them |

mod dns;
mod fix;
pub(crate) mod html;
mod inbound;
mod locate;
mod outbound;
mod routes;
mod rules;
pub(crate) mod sarif;
mod text;

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr},
};

use serde::Serialize;

use self::fix::{Fix, Lack, NearMiss, Wanted};
pub(crate) use self::locate::{Located, Place};
use crate::{
    catalog::{Catalog, Level},
    protocol::IpProtocol,
    routes::{Decision, EffectiveRoutes, Source},
    security::{EffectiveSecurity, Flow, Scope, SecurityDecision},
    topology::{Access, AddressPrefix, RuleDirection, Topology},
};

/// One problem the audit found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct Problem {
    /// Which check found it.
    pub(crate) check: Check,
    /// The requirement's id, SARIF's `ruleId` (`outbound/azure-sql`,
    /// `inbound/management`, `private-endpoint-dns`).
    pub(crate) rule: String,
    /// `error` breaks the environment (`check` exits 1); `warning` does not.
    pub(crate) level: Level,
    /// The dependency or requirement concerned (`azure-sql`, `management`).
    pub(crate) subject: String,
    /// What is wrong, with the rule or route that causes it.
    pub(crate) problem: String,
    /// What stops working.
    pub(crate) breaks: String,
    /// The documentation's sentence that sets the level.
    pub(crate) because: String,
    /// How to fix it.
    pub(crate) fix: String,
    /// The fix as `az` commands.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) az: Vec<String>,
    /// The fix as the topology's TOML.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) toml: Option<String>,
    /// The topology item at fault (`rule:ase-nsg/deny-all-out`).
    pub(crate) at: Item,
    /// Where that item is written in the topology file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) in_topology: Option<Place>,
    /// Where `topology import` read it (the ARM template or `az` output).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) in_export: Option<Place>,
}

impl Problem {
    /// A problem of `check` with `rule`'s id and level, about `subject`,
    /// at `at`; the texts follow ([`Problem::says`], [`Problem::with_fix`]).
    fn new(check: Check, rule: String, level: Level, subject: &str, at: Item) -> Self {
        Self {
            check,
            rule,
            level,
            subject: subject.to_string(),
            problem: String::new(),
            breaks: String::new(),
            because: String::new(),
            fix: String::new(),
            az: Vec::new(),
            toml: None,
            at,
            in_topology: None,
            in_export: None,
        }
    }

    /// What is wrong, what breaks, and the documentation's sentence.
    fn says(mut self, problem: String, breaks: String, because: &str) -> Self {
        self.problem = problem;
        self.breaks = breaks;
        self.because = because.to_string();
        self
    }

    fn with_fix(mut self, fix: Fix) -> Self {
        self.fix = fix.text;
        self.az = fix.az;
        self.toml = fix.toml;
        self
    }
}

/// What the audit found for one topology.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Audit {
    pub(crate) topology: String,
    pub(crate) environment: &'static str,
    /// Requirements evaluated (one per dependency, inbound rule, server...).
    pub(crate) checked: usize,
    pub(crate) errors: usize,
    pub(crate) warnings: usize,
    pub(crate) problems: Vec<Problem>,
}

impl Audit {
    /// Whether the environment would work (no problem is an error).
    pub(crate) fn ase_works(&self) -> bool {
        self.errors == 0
    }

    /// Runs every check that applies to the topology's environment.
    #[cfg(test)]
    pub(crate) fn run(topology: &Topology, catalog: &Catalog) -> Self {
        Self::run_located(topology, catalog, &Located::default())
    }

    /// [`Audit::run`] with where the topology's items are written and
    /// where they were imported from: problems get their places, and
    /// fixes the resource group and route table names the import recorded.
    pub(crate) fn run_located(topology: &Topology, catalog: &Catalog, located: &Located) -> Self {
        let mut auditor = Auditor {
            t: topology,
            routes: EffectiveRoutes::build(topology),
            security: EffectiveSecurity::build(topology),
            located,
            checked: 0,
            problems: Vec::new(),
        };
        for dep in catalog.for_environment(topology.environment) {
            auditor.outbound(&dep);
        }
        for requirement in catalog.inbound_for(topology.environment) {
            auditor.inbound(&requirement);
        }
        auditor.udrs_beaten_by_bgp();
        auditor.private_endpoints();
        auditor.custom_dns();
        let mut problems = auditor.problems;
        for p in &mut problems {
            p.in_topology = located.place(&p.at);
            p.in_export = located.imported_place(&p.at);
        }
        let errors = problems.iter().filter(|p| p.level == Level::Error).count();
        Self {
            topology: topology.name.clone(),
            environment: topology.environment.as_str(),
            checked: auditor.checked,
            errors,
            warnings: problems.len() - errors,
            problems,
        }
    }
}

/// Which check found a problem (the `check` field of `check --format json`).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    strum::Display,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub(crate) enum Check {
    /// A dependency of the catalog: its route and NSG verdicts.
    Outbound,
    /// An inbound requirement of the environment.
    Inbound,
    /// The reply to inbound traffic leaves by another path.
    AsymmetricRoute,
    /// A user route beaten by a more specific BGP route.
    UdrBeatenByBgp,
    /// A private endpoint's privatelink zone is not linked, or its
    /// resource refuses public access while the name resolves publicly.
    PrivateEndpointDns,
    /// A custom DNS server that does not forward or cannot be reached.
    CustomDns,
}

/// The topology item a problem is about, named like `topology import`'s
/// provenance keys: `rule:ase-nsg/deny-all-out`, `nsg:ase-nsg`,
/// `route:to-internet`, `route_table`, `subnet:ase`, `private_endpoint:kv`,
/// `dns`, `onprem`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Item {
    Rule { nsg: String, rule: String },
    Nsg(String),
    Route(String),
    RouteTable,
    Subnet(String),
    PrivateEndpoint(String),
    Dns,
    OnPrem,
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rule { nsg, rule } => write!(f, "rule:{nsg}/{rule}"),
            Self::Nsg(n) => write!(f, "nsg:{n}"),
            Self::Route(n) => write!(f, "route:{n}"),
            Self::RouteTable => f.write_str("route_table"),
            Self::Subnet(n) => write!(f, "subnet:{n}"),
            Self::PrivateEndpoint(n) => write!(f, "private_endpoint:{n}"),
            Self::Dns => f.write_str("dns"),
            Self::OnPrem => f.write_str("onprem"),
        }
    }
}

impl Serialize for Item {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The state of one audit: the topology's routes and NSGs, and what was
/// found so far.
struct Auditor<'a> {
    t: &'a Topology,
    routes: EffectiveRoutes,
    security: EffectiveSecurity,
    located: &'a Located,
    checked: usize,
    problems: Vec<Problem>,
}

/// Public addresses standing for "anywhere on the internet" (documentation
/// and well-known ranges); the first one no tag, endpoint or rule names is
/// used.
const ANYWHERE: [&str; 6] = [
    "192.0.2.1",
    "198.51.100.1",
    "203.0.113.1",
    "20.0.0.1",
    "52.0.0.1",
    "13.0.0.1",
];

/// Ports probed inside a wide range (with its first and last port): the
/// ones the environment is known to use.
const SAMPLE_PORTS: [u16; 10] = [53, 80, 443, 445, 454, 455, 1433, 8172, 12000, 16001];

/// The ports probed for `ranges`: each range's first and last port, and
/// the known ports inside it (port 0 is no port: 1 stands for it).
fn probe_ports(ranges: &[std::ops::RangeInclusive<u16>]) -> Vec<u16> {
    let mut out: Vec<u16> = Vec::new();
    for r in ranges {
        let first = (*r.start()).max(1);
        for p in [first, *r.end()]
            .into_iter()
            .chain(SAMPLE_PORTS.into_iter().filter(|p| r.contains(p)))
        {
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    out
}

/// Ports as rules write them: `1433`, `11000-11999`, `*`.
fn port_texts(ranges: &[std::ops::RangeInclusive<u16>]) -> Vec<String> {
    if ranges
        .iter()
        .any(|r| *r.start() <= 1 && *r.end() == u16::MAX)
    {
        return vec!["*".into()];
    }
    ranges
        .iter()
        .map(|r| {
            if r.start() == r.end() {
                r.start().to_string()
            } else {
                format!("{}-{}", r.start(), r.end())
            }
        })
        .collect()
}

/// The rule protocol for IP protocols (`*` for more than one).
fn rule_protocol(protocols: &[IpProtocol]) -> crate::topology::RuleProtocol {
    use crate::topology::RuleProtocol;
    match protocols {
        [p] => match p.azure() {
            "Tcp" => RuleProtocol::Tcp,
            "Udp" => RuleProtocol::Udp,
            "Icmp" => RuleProtocol::Icmp,
            _ => RuleProtocol::Any,
        },
        _ => RuleProtocol::Any,
    }
}

/// One denial and what it needs: the problem text, the item at fault and
/// the fix.
struct Denial {
    problem: String,
    at: Item,
    fix: Fix,
}

impl Auditor<'_> {
    /// The ASE's workload address: the source of its outbound traffic.
    fn ase_address(&self) -> Ipv4Addr {
        self.t.workload_address()
    }

    /// A public address that no service tag, endpoint or NSG prefix names,
    /// and that is outside `VirtualNetwork` (when one exists).
    fn anywhere(&self) -> Ipv4Addr {
        let named = |a: Ipv4Addr| {
            self.t.service_tags.owner(IpAddr::V4(a)).is_some()
                || self.t.endpoints.iter().any(|e| e.address == a)
                || self.t.nsgs.iter().flat_map(|n| &n.rules).any(|r| {
                    r.source
                        .iter()
                        .chain(&r.destination)
                        .any(|p| matches!(p, AddressPrefix::Cidr(net) if net.prefix_len() > 0 && net.contains(&a)))
                })
        };
        let candidates: Vec<Ipv4Addr> = ANYWHERE
            .iter()
            .map(|a| a.parse().expect("constant"))
            .collect();
        candidates
            .iter()
            .copied()
            .find(|a| !named(*a) && !self.security.in_virtual_network(*a))
            .or_else(|| candidates.iter().copied().find(|a| !named(*a)))
            .unwrap_or(candidates[0])
    }

    /// The first of `flows` the NSGs deny, with its verdict.
    fn first_denied(&self, flows: impl IntoIterator<Item = Flow>) -> Option<SecurityDecision> {
        flows.into_iter().find_map(|flow| {
            let v = self.security.verify(&flow, Scope::Path);
            (v.access == Access::Deny).then_some(v)
        })
    }

    /// The user's Allow rule of `direction` in `nsg` that is meant for
    /// `flow` but misses it on one field (source, destination or ports),
    /// read before `before`.
    fn near_miss(
        &self,
        nsg: &crate::topology::Nsg,
        direction: RuleDirection,
        flow: &Flow,
        before: u16,
        probed: &[u16],
    ) -> Option<NearMiss> {
        let port_in = |ports: &[crate::topology::PortRange], port: Option<u16>| {
            port.is_some_and(|p| ports.iter().any(|r| r.contains(p)))
        };
        let any_ports = |ports: &[crate::topology::PortRange]| ports.iter().any(|r| r.is_any());
        let all_probed =
            |ports: &[crate::topology::PortRange]| probed.iter().all(|p| port_in(ports, Some(*p)));
        nsg.rules
            .iter()
            .filter(|r| {
                r.direction == direction
                    && r.access == Access::Allow
                    && r.priority < before
                    && r.protocol.matches(flow.protocol)
                    && port_in(&r.source_ports, flow.src_port)
            })
            .find_map(|r| {
                let src = r.source.iter().any(|p| self.security.contains(p, flow.src));
                let dst = r
                    .destination
                    .iter()
                    .any(|p| self.security.contains(p, flow.dst));
                let ports = port_in(&r.destination_ports, flow.dst_port);
                let specific = |p: &[AddressPrefix]| !p.contains(&AddressPrefix::Any);
                let lacks = match (src, dst, ports) {
                    // Meant for these ports, from or to somewhere else.
                    (false, true, true)
                        if !any_ports(&r.destination_ports) && all_probed(&r.destination_ports) =>
                    {
                        Lack::Source
                    }
                    (true, false, true)
                        if !any_ports(&r.destination_ports) && all_probed(&r.destination_ports) =>
                    {
                        Lack::Destination
                    }
                    // Meant for these addresses, on other ports.
                    (true, true, false) if specific(&r.source) || specific(&r.destination) => {
                        Lack::Ports
                    }
                    _ => return None,
                };
                Some(NearMiss {
                    rule: r.clone(),
                    lacks,
                })
            })
    }

    /// What a denial means: the deciding rule, a near miss if one, the fix.
    fn denial(&self, verdict: &SecurityDecision, wanted: &Wanted) -> Denial {
        let step = verdict.deciding();
        let nsg = step
            .and_then(|s| s.nsg.as_deref())
            .and_then(|name| self.t.nsgs.iter().find(|n| n.name == name));
        let hit = step.and_then(|s| s.hit.as_ref());
        let direction = step.map_or(wanted.direction, |s| s.direction);
        let (Some(nsg), Some(hit)) = (nsg, hit) else {
            return Denial {
                problem: verdict.describe(),
                at: Item::Subnet(self.t.ase_subnet().name.clone()),
                fix: Fix::text("allow the traffic in the NSG that denies it"),
            };
        };
        let wanted = Wanted {
            direction,
            ..wanted.clone()
        };
        let before = if hit.default { u16::MAX } else { hit.priority };
        let near = self.near_miss(nsg, direction, &verdict.flow, before, &wanted.probed);
        let mut problem = verdict.describe();
        let at = match &near {
            Some(n) => {
                problem.push_str("; ");
                problem.push_str(&n.describe());
                Item::Rule {
                    nsg: nsg.name.clone(),
                    rule: n.rule.name.clone(),
                }
            }
            None if hit.default => {
                problem.push_str("; no rule of the NSG allows it");
                Item::Nsg(nsg.name.clone())
            }
            None => Item::Rule {
                nsg: nsg.name.clone(),
                rule: hit.rule.clone(),
            },
        };
        Denial {
            problem,
            at,
            fix: self.nsg_fix(nsg, hit, &wanted, near.as_ref()),
        }
    }

    /// The item a route decision comes from: a user route, the gateway's
    /// BGP routes, else the VNet's system routes.
    fn route_item(&self, d: &Decision) -> Item {
        match d.chosen.source {
            Source::User => self
                .t
                .route_table
                .routes
                .iter()
                .find(|r| d.chosen.origin == format!("user route {}", r.name))
                .map_or(Item::RouteTable, |r| Item::Route(r.name.clone())),
            Source::VirtualNetworkGateway => Item::OnPrem,
            Source::Default => Item::Subnet(self.t.ase_subnet().name.clone()),
        }
    }
}

fn route_text(d: &Decision) -> String {
    format!(
        "the {} route {} ({})",
        d.chosen.source.as_str(),
        d.chosen.prefix,
        d.chosen.origin
    )
}

fn join(addrs: &[Ipv4Addr]) -> String {
    addrs
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests;
