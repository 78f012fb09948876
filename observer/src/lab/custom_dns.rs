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

use std::net::{IpAddr, Ipv4Addr};

use anyhow::bail;

use super::{
    build::{Lab, dns_records},
    netns::{Netns, Process},
};
use crate::topology::{AZURE_DNS, Topology};

/// The custom (non-Azure) IPv4 DNS servers of `t`.
pub fn servers(t: &Topology) -> Vec<Ipv4Addr> {
    t.dns
        .servers
        .iter()
        .filter_map(|s| match s {
            IpAddr::V4(v4) if *v4 != AZURE_DNS => Some(*v4),
            _ => None,
        })
        .collect()
}

/// The servers the `back` namespace hosts (inside the VNet).
pub fn in_vnet(t: &Topology) -> Vec<Ipv4Addr> {
    servers(t).into_iter().filter(|s| t.in_vnet(*s)).collect()
}

/// The servers the `onprem` namespace hosts.
pub fn on_premises(t: &Topology) -> Vec<Ipv4Addr> {
    servers(t).into_iter().filter(|s| t.in_onprem(*s)).collect()
}

/// Refuses servers the lab cannot place.
pub fn check_supported(t: &Topology) -> anyhow::Result<()> {
    for s in servers(t) {
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

/// dnsmasq options of one custom server.
fn options(t: &Topology, base: &str, listen: Ipv4Addr) -> Vec<String> {
    let mut args = vec![
        "--keep-in-foreground".to_string(),
        "--no-resolv".into(),
        "--no-hosts".into(),
        "--bind-interfaces".into(),
        format!("--listen-address={listen}"),
        "--port=53".into(),
        "--log-facility=-".into(),
        format!(
            "--pid-file={}",
            std::env::temp_dir()
                .join(format!("{base}-dnsmasq-{listen}.pid"))
                .display()
        ),
        "--user=root".into(),
        "--local-ttl=60".into(),
    ];
    if t.dns.forwards_to_azure {
        // From the server's own address, so the answer finds its way back
        // (an on-premises server's transit address is not routed).
        args.push(format!("--server={AZURE_DNS}@{listen}"));
    } else {
        // What the public internet answers: privatelink zones unlinked.
        let mut public = t.clone();
        for pe in &mut public.private_endpoints {
            pe.zone_linked = false;
        }
        args.extend(dns_records(&public));
    }
    args
}

fn spawn(lab: &Lab, role: &str, listen: Ipv4Addr) -> anyhow::Result<Process> {
    let ns: &Netns = lab.ns(role);
    let mut command = ns.command("dnsmasq");
    command
        .args(options(&lab.topology, &lab.base, listen))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    lab.helper_setup(&mut command);
    let process = Process::spawn(&mut command, "dnsmasq (custom DNS)")?;
    let filter = format!("src {listen} and sport = :53");
    for _ in 0..50 {
        if ns
            .exec("ss", ["-Hlun", filter.as_str()])
            .is_ok_and(|out| !out.trim().is_empty())
        {
            return Ok(process);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    bail!(
        "the custom DNS server did not start listening on {listen}:53 in {}",
        ns.name()
    )
}

/// Starts every custom server; their addresses are already on the hosting
/// namespace (`Lab::back_addresses`, `Lab::onprem_addresses`).
pub fn start(lab: &Lab) -> anyhow::Result<Vec<Process>> {
    let t = &lab.topology;
    let mut processes = Vec::new();
    for s in in_vnet(t) {
        processes.push(spawn(lab, "back", s)?);
    }
    if lab.has("onprem") {
        let on_premises = on_premises(t);
        if !on_premises.is_empty() && t.dns.forwards_to_azure {
            // Forwarding goes back through the gateway to the VNet.
            let dns = format!("{AZURE_DNS}/32");
            for (role, via) in [("onprem", "169.254.4.1"), ("gw", "169.254.3.1")] {
                lab.ns(role)
                    .ip(["route", "replace", dns.as_str(), "via", via])?;
            }
        }
        for s in on_premises {
            processes.push(spawn(lab, "onprem", s)?);
        }
    }
    Ok(processes)
}
