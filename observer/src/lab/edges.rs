//! The lab's edges: return routes into the VNet, SNAT where traffic leaves
//! for the public side (the internet edge to the outbound VIP, on-premises
//! to its own address), and the ACLs of the docs on the hosts (VNet-only
//! backends, public endpoints that admit only the VIP).

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::{
    lab::{
        fabric::Fabric,
        netns::NetnsError,
        plan::{GW, INET, ONPREM, ONPREM_PUB, PUB, Plan, Role},
    },
    topology::Admits,
};

/// A postrouting SNAT of what leaves by the interface `pub`.
fn snat(to: Ipv4Addr) -> String {
    format!(
        "table ip observer_lab {{\n  chain post {{\n    type nat hook postrouting priority 100;\n    oifname \"pub\" snat to {to}\n  }}\n}}\n"
    )
}

/// Return routes and NAT at the internet edge and on-premises.
pub(crate) fn nat(plan: &Plan, fabric: &Fabric) -> Result<(), NetnsError> {
    let t = &plan.topology;
    let vip = plan.vip();
    let inside: Vec<Ipv4Net> = t
        .vnet
        .address_space
        .iter()
        .chain(t.peerings.iter().flat_map(|p| &p.address_space))
        .copied()
        .collect();
    for net in &inside {
        fabric.route(Role::Inet, &[&net.to_string(), "via", INET.0])?;
    }
    fabric.route(Role::Inet, &["default", "via", PUB.1])?;
    fabric.nft(Role::Inet, &snat(vip))?;
    fabric.route(Role::Pub, &[&format!("{vip}/32"), "via", PUB.0])?;
    if let Some(onprem) = &t.onprem {
        for net in &inside {
            fabric.route(Role::Gw, &[&net.to_string(), "via", GW.0])?;
            fabric.route(Role::Onprem, &[&net.to_string(), "via", ONPREM.0])?;
        }
        fabric.route(Role::Gw, &["default", "via", ONPREM.1])?;
        fabric.route(Role::Onprem, &["default", "via", ONPREM_PUB.1])?;
        let address = onprem
            .snat_address
            .unwrap_or(Ipv4Addr::new(198, 51, 100, 77));
        fabric.nft(Role::Onprem, &snat(address))?;
        fabric.route(Role::Pub, &[&format!("{address}/32"), "via", ONPREM_PUB.0])?;
    }
    Ok(())
}

/// The ACLs of the docs: VNet-only backends, VIP-only public endpoints.
pub(crate) fn acls(plan: &Plan, fabric: &Fabric) -> Result<(), NetnsError> {
    let t = &plan.topology;
    let vip = plan.vip();
    let vnet: Vec<String> = t.vnet.address_space.iter().map(|n| n.to_string()).collect();
    let mut back = String::new();
    let mut public = String::new();
    for b in t.backends.iter().filter(|b| b.vnet_only) {
        back.push_str(&format!(
            "    ip daddr {} ip saddr != {{ {} }} reject with tcp reset\n",
            b.private_ip,
            vnet.join(", ")
        ));
        if let Some(ip) = b.public_ip {
            // Reached from outside the VNet: the ACL refuses it.
            public.push_str(&format!(
                "    ip daddr {ip} meta l4proto tcp reject with tcp reset\n"
            ));
        }
    }
    for e in t
        .endpoints
        .iter()
        .filter(|e| e.admits == Admits::OutboundVip)
    {
        public.push_str(&format!(
            "    ip daddr {} ip saddr != {vip} meta l4proto tcp reject with tcp reset\n",
            e.address
        ));
    }
    let table = |rules: &str| {
        format!(
            "table inet observer_lab {{\n  chain input {{\n    type filter hook input priority 0;\n{rules}  }}\n}}\n"
        )
    };
    if !back.is_empty() {
        fabric.nft(Role::Back, &table(&back))?;
    }
    if !public.is_empty() {
        fabric.nft(Role::Pub, &table(&public))?;
    }
    Ok(())
}
