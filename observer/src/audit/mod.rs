//! The static audit behind `observer check`: before any traffic, every
//! documented requirement of the environment is evaluated against the
//! topology's routes (`routes`), NSGs (`security`) and DNS configuration:
//!
//! - the outbound dependencies of the catalog (NSG and route per dependency);
//! - the inbound requirements of ASEv1/v2 (454-455 from AppServiceManagement,
//!   16001 and the management ports from AzureLoadBalancer, the ASE subnet to
//!   itself on all ports) and of ASEv3 (AzureLoadBalancer on 80);
//! - the reply to inbound management, which must leave by the Internet path
//!   the request came in on (forced tunnelling breaks TCP otherwise);
//! - user routes a more specific BGP route beats;
//! - private endpoints whose privatelink zone is not linked to the VNet;
//! - custom DNS servers that do not forward to 168.63.129.16, or that the
//!   ASE subnet cannot reach (no route, an NSG, a gateway that is not there).
//!
//! Each problem says what breaks and the fix; `breaks_ase` marks the ones
//! that stop the environment from working (`check` exits 1 on those).
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | [`Audit`] (the run, in the order of the checks), [`Problem`], [`Check`], the auditor's shared helpers |
//! | `outbound.rs` | each catalog dependency: its destinations, their route and NSG verdicts, the rule or route to add |
//! | `inbound.rs` | the inbound requirements (management, load balancer, the subnet to itself) and the management replies' route |
//! | `routes.rs` | user routes that a more specific BGP route beats |
//! | `dns.rs` | private endpoints' privatelink zones, custom DNS servers (forwarding, reachability) |
//! | `tests.rs` | the scenario topologies and variations of them |

mod dns;
mod inbound;
mod outbound;
mod routes;

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr},
};

use serde::Serialize;

use crate::{
    catalog::Catalog,
    routes::{Decision, EffectiveRoutes},
    security::EffectiveSecurity,
    topology::{AddressPrefix, Environment, Topology},
};

/// One problem the audit found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct Problem {
    /// Which check found it.
    pub(crate) check: Check,
    /// The dependency or requirement concerned (`azure-sql`, `management`).
    pub(crate) subject: String,
    /// What is wrong, with the rule or route that causes it.
    pub(crate) problem: String,
    /// What stops working.
    pub(crate) breaks: String,
    /// How to fix it.
    pub(crate) fix: String,
    /// Whether the environment stops working (creation fails, the ASE is
    /// unhealthy, a required dependency is unreachable).
    pub(crate) breaks_ase: bool,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}: {}; breaks: {}; fix: {}",
            if self.breaks_ase { "FAIL" } else { "WARN" },
            self.check,
            self.subject,
            self.problem,
            self.breaks,
            self.fix
        )
    }
}

/// What the audit found for one topology.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Audit {
    pub(crate) topology: String,
    pub(crate) environment: &'static str,
    /// Requirements evaluated (one per dependency, inbound rule, server...).
    pub(crate) checked: usize,
    pub(crate) problems: Vec<Problem>,
}

impl Audit {
    /// Whether the environment would work (no problem breaks it).
    pub(crate) fn ase_works(&self) -> bool {
        !self.problems.iter().any(|p| p.breaks_ase)
    }

    /// Runs every check that applies to the topology's environment.
    pub(crate) fn run(topology: &Topology, catalog: &Catalog) -> Self {
        let mut auditor = Auditor {
            t: topology,
            routes: EffectiveRoutes::build(topology),
            security: EffectiveSecurity::build(topology),
            checked: 0,
            problems: Vec::new(),
        };
        for dep in catalog.for_environment(topology.environment) {
            auditor.outbound(&dep);
        }
        if topology.environment.platform_in_subnet() {
            auditor.inbound_management();
            auditor.asymmetric_management();
        } else if topology.environment == Environment::Asev3 {
            auditor.inbound_asev3();
        }
        auditor.udrs_beaten_by_bgp();
        auditor.private_endpoints();
        auditor.custom_dns();
        Self {
            topology: topology.name.clone(),
            environment: topology.environment.as_str(),
            checked: auditor.checked,
            problems: auditor.problems,
        }
    }
}

impl fmt::Display for Audit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.problems {
            writeln!(f, "{p}")?;
        }
        let breaking = self.problems.iter().filter(|p| p.breaks_ase).count();
        writeln!(
            f,
            "{} ({}): {} requirements checked, {} problems, {} break the environment{}",
            self.topology,
            self.environment,
            self.checked,
            self.problems.len(),
            breaking,
            if breaking == 0 {
                ""
            } else {
                ": it would not work"
            }
        )
    }
}

/// Which check found a problem (the `check` field of `check --json`).
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
    /// The reply to inbound management leaves by another path.
    AsymmetricRoute,
    /// A user route beaten by a more specific BGP route.
    UdrBeatenByBgp,
    /// A private endpoint's privatelink zone is not linked.
    PrivateEndpointDns,
    /// A custom DNS server that does not forward or cannot be reached.
    CustomDns,
}

/// The state of one audit: the topology's routes and NSGs, and what was
/// found so far.
struct Auditor<'a> {
    t: &'a Topology,
    routes: EffectiveRoutes,
    security: EffectiveSecurity,
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
