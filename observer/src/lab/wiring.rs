//! The lab's links and host addresses: the ASE subnet (the app instances
//! and the router's `ase` leg on one L2 segment), the router's transit legs
//! to `back`, `dns`, `inet` and the gateway side, and the addresses each
//! hosting namespace answers on.
//!
//! ```text
//!                     ┌── back (backends, private endpoints)
//!  ase ── eth0 ═ vnet router ── dns (168.63.129.16, dnsmasq)
//!  (workload)         ├── inet (SNAT to the VIP) ── pub (fake Azure public endpoints)
//!                     └── gw (VPN/ExpressRoute) ── onprem (SNAT) ──┘
//! ```

use std::collections::BTreeSet;

use crate::{
    lab::{
        fabric::Fabric,
        netns::{NetnsError, veth},
        plan::{BACK, DNS, GW, INET, ONPREM, ONPREM_PUB, PUB, Plan, Role, app_out},
    },
    topology::AZURE_DNS,
};

/// The ASE subnet: the app instances and the router's leg `ase` on one
/// L2 segment (a veth pair for one instance, a bridge for several).
pub(crate) fn ase_subnet(plan: &Plan, fabric: &Fabric) -> Result<(), NetnsError> {
    let t = &plan.topology;
    let ase = t.ase_subnet().prefix;
    let gateway = plan.ase_gateway().to_string();
    let instances = t.instance_addresses();
    let apps: Vec<Role> = plan.apps().collect();
    let vnet = fabric.ns(Role::Vnet);
    if let [app] = apps[..] {
        veth(fabric.ns(app), "eth0", vnet, "ase")?;
    } else {
        vnet.ip(["link", "add", "ase", "type", "bridge"])?;
        for (i, &app) in apps.iter().enumerate() {
            let port = format!("ase-i{i}");
            veth(fabric.ns(app), "eth0", vnet, &port)?;
            vnet.ip(["link", "set", &port, "master", "ase", "up"])?;
        }
    }
    fabric.addr(
        Role::Vnet,
        "ase",
        &format!("{gateway}/{}", ase.prefix_len()),
    )?;
    for (i, address) in (0..t.instances()).zip(&instances) {
        let app = Role::App(i);
        fabric.addr(app, "eth0", &format!("{address}/{}", ase.prefix_len()))?;
        if plan.bypasses_vnet() {
            // Route All off: only RFC 1918 enters the VNet; the rest
            // leaves by the app's shared outbound path.
            let dns = format!("{AZURE_DNS}/32");
            for private in [
                "10.0.0.0/8",
                "172.16.0.0/12",
                "192.168.0.0/16",
                dns.as_str(),
            ] {
                fabric.route(app, &[private, "via", &gateway])?;
            }
            let (near, far) = app_out(i);
            fabric.link(
                (app, "out"),
                (Role::Inet, &format!("app{i}")),
                (&near, &far),
                false,
            )?;
            fabric.route(app, &["default", "via", &far, "src", &address.to_string()])?;
            fabric.route(Role::Inet, &[&format!("{address}/32"), "via", &near])?;
        } else {
            fabric.route(app, &["default", "via", &gateway])?;
        }
    }
    Ok(())
}

/// The router's legs and the chain to the public side: `back`, `dns`,
/// `inet` (and `pub` behind it), and with on-premises the gateway, the
/// site and its own breakout to `pub`.
pub(crate) fn router_legs(plan: &Plan, fabric: &Fabric) -> Result<(), NetnsError> {
    fabric.link((Role::Vnet, "vnet"), (Role::Back, "eth0"), BACK, true)?;
    fabric.link((Role::Vnet, "dns"), (Role::Dns, "eth0"), DNS, true)?;
    fabric.link((Role::Vnet, "inet"), (Role::Inet, "vnet"), INET, true)?;
    fabric.link((Role::Inet, "pub"), (Role::Pub, "inet"), PUB, true)?;
    if plan.has(Role::Gw) {
        fabric.link((Role::Vnet, "gw"), (Role::Gw, "vnet"), GW, true)?;
        fabric.link((Role::Gw, "onprem"), (Role::Onprem, "gw"), ONPREM, false)?;
        fabric.link(
            (Role::Onprem, "pub"),
            (Role::Pub, "onprem"),
            ONPREM_PUB,
            false,
        )?;
    }
    Ok(())
}

/// The addresses each hosting namespace answers on (on its loopback).
pub(crate) fn hosts(plan: &Plan, fabric: &Fabric) -> Result<(), NetnsError> {
    for ip in plan.back_addresses() {
        fabric.addr(Role::Back, "lo", &format!("{ip}/32"))?;
    }
    for ip in plan.public_addresses().into_iter().collect::<BTreeSet<_>>() {
        fabric.addr(Role::Pub, "lo", &format!("{ip}/32"))?;
    }
    fabric.addr(Role::Dns, "lo", &format!("{AZURE_DNS}/32"))?;
    if plan.has(Role::Onprem) {
        for ip in plan.onprem_addresses() {
            fabric.addr(Role::Onprem, "lo", &format!("{ip}/32"))?;
        }
    }
    Ok(())
}
