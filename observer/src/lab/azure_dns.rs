//! Azure DNS in the lab: dnsmasq at 168.63.129.16 in the `dns` namespace
//! with a record for every name of the topology (public endpoints,
//! backends, the app instances under the VNet's internal suffix) and, for
//! private endpoints, Azure's privatelink CNAME chain: the private answer
//! when the zone is linked, the public one when not. The app instances'
//! resolver configuration (`/etc/netns/NS/resolv.conf`, which `ip netns
//! exec` and `lab exec` mount over `/etc/resolv.conf`) names the
//! topology's DNS servers and the search domain, as Azure's DHCP does.

use std::path::Path;

use anyhow::Context as _;

use crate::{
    lab::{
        fabric::Fabric,
        helpers::Helpers,
        netns::NETNS_ETC,
        plan::{Plan, Role, search_domain},
    },
    topology::{AZURE_DNS, Topology},
};

/// Starts Azure DNS and waits until it answers.
pub(crate) fn start(plan: &Plan, fabric: &Fabric, helpers: &mut Helpers) -> anyhow::Result<()> {
    helpers.dnsmasq(
        fabric.ns(Role::Dns),
        AZURE_DNS,
        records(&plan.topology),
        "dnsmasq",
    )
}

/// dnsmasq options for every name of the topology.
pub(crate) fn records(t: &Topology) -> Vec<String> {
    let mut args = Vec::new();
    let suffix = search_domain(t);
    for (i, ip) in t.instance_addresses().into_iter().enumerate() {
        args.push(format!("--host-record=app{i}.{suffix},{ip}"));
    }
    for e in &t.endpoints {
        args.push(format!("--host-record={},{}", e.fqdn, e.address));
    }
    for b in &t.backends {
        if let Some(fqdn) = &b.fqdn {
            args.push(format!("--host-record={fqdn},{}", b.private_ip));
        }
    }
    for pe in &t.private_endpoints {
        let label = pe.fqdn.split('.').next().unwrap_or(&pe.fqdn);
        let alias = format!("{label}.{}", pe.zone);
        args.push(format!("--cname={},{alias}", pe.fqdn));
        if pe.zone_linked {
            // Azure DNS stops at the first alias found in a linked zone.
            args.push(format!("--host-record={alias},{}", pe.private_ip));
        } else {
            let public_zone = pe.zone.trim_start_matches("privatelink.");
            let data = format!("data-prod-{}.{public_zone}", pe.name);
            args.push(format!("--cname={alias},{data}"));
            args.push(format!("--host-record={data},{}", pe.public_ip));
        }
    }
    args
}

/// The resolver configuration of the lab's app instances.
pub(crate) fn resolv_conf(t: &Topology, base: &str) -> String {
    let mut text = format!(
        "# observer lab {base}: the DNS servers of topology `{}` (removed with the lab)\n",
        t.name
    );
    for server in t.dns.servers.iter().filter(|s| s.is_ipv4()) {
        text.push_str(&format!("nameserver {server}\n"));
    }
    text.push_str(&format!("search {}\n", search_domain(t)));
    // Azure's Linux images: fail over quickly, EDNS for long answers.
    text.push_str("options timeout:1 attempts:2 edns0\n");
    text
}

/// Writes `/etc/netns/NS/resolv.conf` for every app instance: the
/// topology's DNS servers (IPv4) and the internal search domain, as
/// Azure's DHCP hands them to a VM or an ASE worker.
pub(crate) fn resolvers(plan: &Plan, fabric: &Fabric) -> anyhow::Result<()> {
    let text = resolv_conf(&plan.topology, &plan.base);
    for app in plan.apps() {
        let dir = Path::new(NETNS_ETC).join(fabric.ns(app).name());
        std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(dir.join("resolv.conf"), &text))
            .with_context(|| format!("writing {}/resolv.conf", dir.display()))?;
    }
    Ok(())
}
