//! The lab's servers: one `observer lab serve` per hosting namespace
//! (`back`, `pub`, `onprem`), accepting TCP (HTTP gets a 200 naming the
//! endpoint) and echoing UDP on every port of the topology, for the lab's
//! whole life. The public address of a private endpoint's resource with
//! public network access disabled answers 403 (`serve::Refusal`).

use std::{collections::BTreeMap, net::Ipv4Addr};

use crate::{
    lab::{
        fabric::Fabric,
        helpers::Helpers,
        plan::{Plan, Role},
        serve::Refusal,
    },
    topology::Topology,
};

/// Starts the servers of every hosting namespace, each once it listens.
pub(crate) fn start(plan: &Plan, fabric: &Fabric, helpers: &mut Helpers) -> anyhow::Result<()> {
    let ports = service_ports(&plan.topology);
    let names = host_names(plan);
    for &role in plan.roles().iter().filter(|r| r.serves()) {
        let ns = fabric.ns(role);
        let label = format!("servers in {}", ns.name());
        let named = names.get(&role).map_or(&[][..], Vec::as_slice);
        let refused = if role == Role::Pub {
            refused(&plan.topology)
        } else {
            Vec::new()
        };
        helpers.serve(ns, &ports, &ports, named, &refused, &label)?;
    }
    Ok(())
}

/// The public addresses that refuse: private endpoints' resources with
/// public network access disabled, each with its service's answer.
fn refused(t: &Topology) -> Vec<(Ipv4Addr, Refusal)> {
    t.private_endpoints
        .iter()
        .filter(|p| p.public_network_access == Some(false))
        .map(|p| (p.public_ip, Refusal::for_fqdn(&p.fqdn)))
        .collect()
}

/// Every port the servers listen on (TCP and UDP each): the ports of every
/// backend, endpoint and private endpoint, and of the scenario traffic.
fn service_ports(t: &Topology) -> Vec<u16> {
    let mut ports: Vec<u16> = t.lab.traffic.iter().map(|x| x.port).collect();
    ports.extend(t.backends.iter().flat_map(|b| b.ports.iter().copied()));
    ports.extend(t.endpoints.iter().flat_map(|e| e.ports.iter().copied()));
    ports.extend(
        t.private_endpoints
            .iter()
            .flat_map(|e| e.ports.iter().copied()),
    );
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// What each server namespace names its addresses in its answers.
fn host_names(plan: &Plan) -> BTreeMap<Role, Vec<(Ipv4Addr, String)>> {
    let t = &plan.topology;
    let mut names: BTreeMap<Role, Vec<(Ipv4Addr, String)>> = BTreeMap::new();
    let mut name = |role: Role, ip: Ipv4Addr, text: String| {
        names.entry(role).or_default().push((ip, text));
    };
    for b in &t.backends {
        name(Role::Back, b.private_ip, b.name.clone());
        if let Some(ip) = b.public_ip {
            name(Role::Pub, ip, format!("{} (public address)", b.name));
        }
    }
    for p in &t.private_endpoints {
        name(
            Role::Back,
            p.private_ip,
            format!("{} (private endpoint)", p.name),
        );
        name(
            Role::Pub,
            p.public_ip,
            format!("{} (public endpoint)", p.name),
        );
    }
    for e in &t.endpoints {
        name(Role::Pub, e.address, e.name.clone());
    }
    for ip in plan.onprem_addresses() {
        name(Role::Onprem, ip, "on-premises host".into());
    }
    names
}
