//! Custom DNS servers of the topology (`[dns] servers` other than
//! 168.63.129.16) as dnsmasq instances: one inside the VNet is hosted by the
//! `back` namespace, one on-premises by `onprem` (reached through the
//! gateway, so gateway route propagation decides whether the ASE reaches
//! it). A server that forwards to Azure DNS (`forwards_to_azure`) sends
//! every query to 168.63.129.16 and so sees the linked privatelink zones; one
//! that does not answers from public records only, so names of private
//! endpoints resolve to their public addresses (the documented leak).
//!
//! The lab lets the on-premises server forward to 168.63.129.16 through the
//! gateway; in Azure that takes a forwarder inside a linked VNet.

use std::net::Ipv4Addr;

use anyhow::bail;

use crate::{
    lab::{
        azure_dns,
        fabric::Fabric,
        helpers::Helpers,
        plan::{
            GW, ONPREM, Plan, Role, custom_dns_in_vnet, custom_dns_on_premises, custom_dns_servers,
        },
    },
    topology::{AZURE_DNS, Topology},
};

/// Refuses servers the lab cannot place.
pub(crate) fn check_supported(t: &Topology) -> anyhow::Result<()> {
    for s in custom_dns_servers(t) {
        let placed = t.in_vnet(s) || (t.onprem.is_some() && t.in_onprem(s));
        if !placed {
            bail!(
                "topology {}: custom DNS server {s} is neither in the VNet nor in the on-premises prefixes; the lab hosts custom servers only there",
                t.name
            );
        }
    }
    Ok(())
}

/// dnsmasq's records (or forwarding) of one custom server.
fn records(t: &Topology, listen: Ipv4Addr) -> Vec<String> {
    if t.dns.forwards_to_azure {
        // From the server's own address, so the answer finds its way back
        // (an on-premises server's transit address is not routed).
        vec![format!("--server={AZURE_DNS}@{listen}")]
    } else {
        // What the public internet answers: privatelink zones unlinked.
        let mut public = t.clone();
        for pe in &mut public.private_endpoints {
            pe.zone_linked = false;
        }
        azure_dns::records(&public)
    }
}

/// Starts every custom server; their addresses are already on the hosting
/// namespace (`Plan::back_addresses`, `Plan::onprem_addresses`).
pub(crate) fn start(plan: &Plan, fabric: &Fabric, helpers: &mut Helpers) -> anyhow::Result<()> {
    let t = &plan.topology;
    let label = "dnsmasq (custom DNS)";
    for s in custom_dns_in_vnet(t) {
        helpers.dnsmasq(fabric.ns(Role::Back), s, records(t, s), label)?;
    }
    if plan.has(Role::Onprem) {
        let on_premises = custom_dns_on_premises(t);
        if !on_premises.is_empty() && t.dns.forwards_to_azure {
            // Forwarding goes back through the gateway to the VNet.
            let dns = format!("{AZURE_DNS}/32");
            fabric.route(Role::Onprem, &[&dns, "via", ONPREM.0])?;
            fabric.route(Role::Gw, &[&dns, "via", GW.0])?;
        }
        for s in on_premises {
            helpers.dnsmasq(fabric.ns(Role::Onprem), s, records(t, s), label)?;
        }
    }
    Ok(())
}
