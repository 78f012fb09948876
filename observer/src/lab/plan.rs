//! The lab's plan: what every build step reads and none writes. The roles
//! (one namespace each) and their names, the transit addresses that join
//! them, and which address of the topology lives in which namespace. Pure
//! functions of the topology and the lab's name, no I/O: the steps
//! (`wiring`, `routing`, `edges`, `azure_dns`, `custom_dns`, `appliance`,
//! `inbound`, `servers`) read it, `build` runs them.

use std::{
    borrow::Cow,
    collections::BTreeSet,
    fmt,
    net::{IpAddr, Ipv4Addr},
    path::PathBuf,
};

use crate::{
    lab::netns::RUN_DIR,
    topology::{AZURE_DNS, Environment, NextHop, Topology},
};

/// Prefix of ephemeral labs (`oblab-PID-N-ROLE`), swept after a crash.
pub(crate) const EPHEMERAL_PREFIX: &str = "oblab";
/// Prefix of labs kept by `lab up` (`obup-NAME-ROLE`) until `lab down`.
pub(crate) const PERSISTENT_PREFIX: &str = "obup";

/// A transit link's addresses: (near side, far side), each a /30.
pub(crate) type Transit = (&'static str, &'static str);

/// Router <-> internet edge.
pub(crate) const INET: Transit = ("169.254.1.1", "169.254.1.2");
/// Internet edge <-> the public endpoints.
pub(crate) const PUB: Transit = ("169.254.2.1", "169.254.2.2");
/// Router <-> gateway.
pub(crate) const GW: Transit = ("169.254.3.1", "169.254.3.2");
/// Gateway <-> on-premises.
pub(crate) const ONPREM: Transit = ("169.254.4.1", "169.254.4.2");
/// On-premises <-> the public endpoints (its own internet breakout).
pub(crate) const ONPREM_PUB: Transit = ("169.254.5.1", "169.254.5.2");
/// Router <-> backends and private endpoints.
pub(crate) const BACK: Transit = ("169.254.20.1", "169.254.20.2");
/// Router <-> Azure DNS.
pub(crate) const DNS: Transit = ("169.254.53.1", "169.254.53.2");
/// Router <-> virtual appliance.
pub(crate) const NVA: Transit = ("169.254.30.1", "169.254.30.2");
/// Virtual appliance <-> internet edge.
pub(crate) const NVA_OUT: Transit = ("169.254.31.1", "169.254.31.2");

/// The shared outbound path of app instance `i` to the internet edge
/// (Route All off): (instance side, edge side).
pub(crate) fn app_out(i: u8) -> (String, String) {
    let base = 4 * u32::from(i);
    (
        format!("169.254.9.{}", base + 1),
        format!("169.254.9.{}", base + 2),
    )
}

/// A lab role: one network namespace each, named `BASE-SUFFIX`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Role {
    /// App instance `i` (0-based) in the ASE subnet: `ase`, `ase2`, ...
    App(u8),
    /// The VNet router: Azure's routing and the NSGs.
    Vnet,
    /// Backends, private endpoints, custom DNS servers inside the VNet.
    Back,
    /// Azure DNS (168.63.129.16).
    Dns,
    /// The internet edge: SNAT to the outbound VIP.
    Inet,
    /// Fake Azure public endpoints and the management host.
    Pub,
    /// The VPN/ExpressRoute gateway.
    Gw,
    /// The on-premises site.
    Onprem,
    /// The virtual appliance (firewall).
    Nva,
}

impl Role {
    /// The first app instance: it runs `lab exec`'s command and the
    /// scenario traffic.
    pub(crate) const APP: Self = Self::App(0);

    /// The namespace suffix (`ase`, `ase2`, `vnet`, ...).
    pub(crate) fn suffix(self) -> Cow<'static, str> {
        match self {
            Self::App(0) => "ase".into(),
            Self::App(i) => format!("ase{}", u16::from(i) + 1).into(),
            Self::Vnet => "vnet".into(),
            Self::Back => "back".into(),
            Self::Dns => "dns".into(),
            Self::Inet => "inet".into(),
            Self::Pub => "pub".into(),
            Self::Gw => "gw".into(),
            Self::Onprem => "onprem".into(),
            Self::Nva => "nva".into(),
        }
    }

    /// Whether the namespace forwards packets between its interfaces.
    pub(crate) fn forwards(self) -> bool {
        match self {
            Self::Vnet | Self::Inet | Self::Gw | Self::Onprem | Self::Nva => true,
            Self::App(_) | Self::Back | Self::Dns | Self::Pub => false,
        }
    }

    /// Whether the namespace runs `observer lab serve` for the addresses
    /// it hosts.
    pub(crate) fn serves(self) -> bool {
        match self {
            Self::Back | Self::Pub | Self::Onprem => true,
            Self::App(_) | Self::Vnet | Self::Dns | Self::Inet | Self::Gw | Self::Nva => false,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.suffix())
    }
}

/// A topology as one lab: its name and the roles it needs.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    pub topology: Topology,
    /// The lab's name; namespaces are `BASE-SUFFIX`.
    pub base: String,
    roles: Vec<Role>,
}

impl Plan {
    pub(crate) fn new(topology: Topology, base: String) -> Self {
        let t = &topology;
        let mut roles: Vec<Role> = (0..t.instances()).map(Role::App).collect();
        roles.extend([Role::Vnet, Role::Back, Role::Dns, Role::Inet, Role::Pub]);
        if t.onprem.is_some() {
            roles.extend([Role::Gw, Role::Onprem]);
        }
        if appliance_address(t).is_some() {
            roles.push(Role::Nva);
        }
        Self {
            topology,
            base,
            roles,
        }
    }

    /// The namespaces this topology needs, app instances first.
    pub(crate) fn roles(&self) -> &[Role] {
        &self.roles
    }

    pub(crate) fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// The app instances, in order.
    pub(crate) fn apps(&self) -> impl Iterator<Item = Role> + '_ {
        self.roles
            .iter()
            .copied()
            .filter(|r| matches!(r, Role::App(_)))
    }

    /// The namespace name of `role`.
    pub(crate) fn namespace(&self, role: Role) -> String {
        format!("{}-{role}", self.base)
    }

    /// The lab's runtime files (dnsmasq's pid files), removed with it.
    pub(crate) fn run_dir(&self) -> PathBuf {
        run_dir(&self.base)
    }

    /// The address the internet edge SNATs to (the ASE's outbound VIP).
    pub(crate) fn vip(&self) -> Ipv4Addr {
        self.topology
            .outbound_vip
            .unwrap_or(Ipv4Addr::new(198, 51, 100, 10))
    }

    /// Whether the app's public traffic bypasses the VNet (Route All off).
    pub(crate) fn bypasses_vnet(&self) -> bool {
        self.topology.environment == Environment::MultiTenant && !self.topology.route_all
    }

    /// The router's address in the ASE subnet (the instances' gateway).
    pub(crate) fn ase_gateway(&self) -> Ipv4Addr {
        let ase = self.topology.ase_subnet().prefix;
        Ipv4Addr::from(u32::from(ase.network()) + 1)
    }

    /// Addresses the `back` namespace hosts: backends, private endpoints,
    /// custom DNS servers inside the VNet.
    pub(crate) fn back_addresses(&self) -> Vec<Ipv4Addr> {
        let t = &self.topology;
        let mut ips: Vec<Ipv4Addr> = t.backends.iter().map(|b| b.private_ip).collect();
        ips.extend(t.private_endpoints.iter().map(|p| p.private_ip));
        ips.extend(custom_dns_in_vnet(t));
        ips
    }

    /// Public addresses the `pub` namespace answers on.
    pub(crate) fn public_addresses(&self) -> Vec<Ipv4Addr> {
        let t = &self.topology;
        let mut ips: Vec<Ipv4Addr> = t.endpoints.iter().map(|e| e.address).collect();
        ips.extend(t.backends.iter().filter_map(|b| b.public_ip));
        ips.extend(t.private_endpoints.iter().map(|p| p.public_ip));
        ips
    }

    /// Traffic targets and custom DNS servers inside the on-premises
    /// prefixes (hosted by `onprem`).
    pub(crate) fn onprem_addresses(&self) -> Vec<Ipv4Addr> {
        let t = &self.topology;
        t.lab
            .traffic
            .iter()
            .filter_map(|x| x.to.parse::<Ipv4Addr>().ok())
            .chain(custom_dns_on_premises(t))
            .filter(|ip| t.in_onprem(*ip))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    /// Azure's internal DNS suffix as the lab hands it out.
    pub(crate) fn search_domain(&self) -> String {
        search_domain(&self.topology)
    }
}

/// The runtime directory of the lab `base`.
pub(crate) fn run_dir(base: &str) -> PathBuf {
    PathBuf::from(RUN_DIR).join(base)
}

/// Azure's internal DNS suffix as the lab hands it out: Azure gives each
/// VNet `<id>.<region>.internal.cloudapp.net`; the lab uses the VNet name.
pub(crate) fn search_domain(t: &Topology) -> String {
    let label: String = t
        .vnet
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    format!("{}.lab.internal.cloudapp.net", label.trim_matches('-'))
}

/// The virtual appliance's address (every VirtualAppliance route's
/// `next_hop_ip`), if the routes name one.
pub(crate) fn appliance_address(t: &Topology) -> Option<Ipv4Addr> {
    t.route_table
        .routes
        .iter()
        .find(|r| r.next_hop == NextHop::VirtualAppliance)
        .and_then(|r| r.next_hop_ip)
}

/// The custom (non-Azure) IPv4 DNS servers of `t`.
pub(crate) fn custom_dns_servers(t: &Topology) -> Vec<Ipv4Addr> {
    t.dns
        .servers
        .iter()
        .filter_map(|s| match s {
            IpAddr::V4(v4) if *v4 != AZURE_DNS => Some(*v4),
            _ => None,
        })
        .collect()
}

/// The custom DNS servers the `back` namespace hosts (inside the VNet).
pub(crate) fn custom_dns_in_vnet(t: &Topology) -> Vec<Ipv4Addr> {
    custom_dns_servers(t)
        .into_iter()
        .filter(|s| t.in_vnet(*s))
        .collect()
}

/// The custom DNS servers the `onprem` namespace hosts.
pub(crate) fn custom_dns_on_premises(t: &Topology) -> Vec<Ipv4Addr> {
    custom_dns_servers(t)
        .into_iter()
        .filter(|s| t.in_onprem(*s))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn roles_name_their_namespaces_and_follow_the_topology() {
        assert_eq!(Role::APP.to_string(), "ase");
        assert_eq!(Role::App(1).to_string(), "ase2");
        assert_eq!(Role::App(7).to_string(), "ase8");
        assert_eq!(Role::Onprem.to_string(), "onprem");
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../lab/topologies/forced-tunnel.toml"),
        )
        .unwrap();
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../lab/topologies/x.toml");
        let t = Topology::parse(&path, &text).unwrap();
        let plan = Plan::new(t, "oblab-1-0".into());
        assert_eq!(
            plan.roles(),
            [
                Role::APP,
                Role::Vnet,
                Role::Back,
                Role::Dns,
                Role::Inet,
                Role::Pub,
                Role::Gw,
                Role::Onprem
            ]
        );
        assert_eq!(plan.namespace(Role::Gw), "oblab-1-0-gw");
        assert_eq!(plan.apps().collect::<Vec<_>>(), [Role::APP]);
        assert_eq!(app_out(1), ("169.254.9.5".into(), "169.254.9.6".into()));
    }
}
