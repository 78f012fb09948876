//! The VNet router's forwarding: one kernel route per prefix of the
//! effective route table ([`EffectiveRoutes`]), so its decision is the one
//! `observer route` prints, and the topology's NSGs on its forward path
//! ([`nsg`](crate::lab::nsg), from the same evaluation `observer verify`
//! uses).

use crate::{
    lab::{
        fabric::Fabric,
        netns::NetnsError,
        nsg,
        plan::{BACK, DNS, GW, INET, NVA, Plan, Role},
    },
    routes::EffectiveRoutes,
    security::EffectiveSecurity,
    topology::{AZURE_DNS, Environment, NextHop},
};

/// The router's table, then its NSG ruleset.
pub(crate) fn router_table(plan: &Plan, fabric: &Fabric) -> Result<(), NetnsError> {
    let t = &plan.topology;
    let routes = EffectiveRoutes::build(t);
    for prefix in routes.prefixes() {
        let decision = routes.lookup_prefix(prefix);
        let p = if prefix.prefix_len() == 0 {
            "default".to_string()
        } else {
            prefix.to_string()
        };
        let via = |far: &str| fabric.route(Role::Vnet, &[&p, "via", far]);
        match decision.chosen.next_hop {
            NextHop::VnetLocal | NextHop::VnetPeering => via(BACK.1)?,
            NextHop::Internet | NextHop::VirtualNetworkServiceEndpoint => via(INET.1)?,
            NextHop::VirtualNetworkGateway if plan.has(Role::Gw) => via(GW.1)?,
            NextHop::VirtualNetworkGateway | NextHop::None => {
                fabric.route(Role::Vnet, &["blackhole", &p])?;
            }
            NextHop::VirtualAppliance => via(NVA.1)?,
        }
    }
    // The platform address is reached on the host, whatever the table says.
    fabric.route(Role::Vnet, &[&format!("{AZURE_DNS}/32"), "via", DNS.1])?;
    // Hosts of the VNet live in the back namespace. One placed in the
    // ASE subnet is reached through the router (proxy ARP); ASEv1 cannot
    // reach VMs in its own subnet, so there the router drops it.
    let ase = t.ase_subnet().prefix;
    let mut same_subnet = Vec::new();
    for ip in plan.back_addresses() {
        fabric.route(Role::Vnet, &[&format!("{ip}/32"), "via", BACK.1])?;
        if ase.contains(&ip) {
            fabric
                .ns(Role::Vnet)
                .sysctl("net.ipv4.conf.ase.proxy_arp", "1")?;
            if t.environment == Environment::Asev1 {
                same_subnet.push(format!("ip daddr {ip} drop"));
            }
        }
    }
    // The NSGs (and ASEv1's same-subnet drop) on the router's forward path.
    let security = EffectiveSecurity::build(t);
    if let Some(script) = nsg::ruleset(&security, &same_subnet) {
        fabric.nft(Role::Vnet, &script)?;
    }
    Ok(())
}
