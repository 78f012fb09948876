//! Inbound management in the lab: a host on the internet side (an address
//! of the AppServiceManagement tag, placed in the `pub` namespace) connects
//! to the ASE's public address (the VIP), which the internet edge (`inet`)
//! forwards to the workload; the workload answers on the port. The reply
//! follows the VNet router's table: with forced tunnelling and no user route
//! for the management addresses it leaves through the gateway and on-premises
//! NAT, arrives from the wrong address, and the connection breaks, which the
//! classifier reports as `asymmetric-route`.

use std::{collections::BTreeSet, net::Ipv4Addr};

use anyhow::bail;

use crate::{
    lab::{
        fabric::Fabric,
        helpers::Helpers,
        netns::NetnsError,
        plan::{PUB, Plan, Role},
    },
    topology::Topology,
};

/// The one source address of the topology's inbound flows.
pub(crate) fn source(t: &Topology) -> Option<Ipv4Addr> {
    t.lab.inbound.first().map(|i| i.from)
}

/// The ports the workload must listen on.
fn ports(t: &Topology) -> BTreeSet<u16> {
    t.lab.inbound.iter().map(|i| i.port).collect()
}

/// Refuses what the lab cannot build.
pub(crate) fn check_supported(t: &Topology) -> anyhow::Result<()> {
    let sources: BTreeSet<Ipv4Addr> = t.lab.inbound.iter().map(|i| i.from).collect();
    if sources.len() > 1 {
        bail!(
            "topology {}: the lab's management host has one address; [[lab.inbound]] uses {}",
            t.name,
            sources
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let Some(from) = sources.first()
        && (t.in_vnet(*from) || t.in_onprem(*from) || !crate::topology::is_public((*from).into()))
    {
        bail!(
            "topology {}: [[lab.inbound]] from {from} must be a public address outside the VNet and on-premises (e.g. one of AppServiceManagement)",
            t.name
        );
    }
    Ok(())
}

/// The management host's address in `pub` (its connections to the VIP
/// leave from it) and the edge's forwarding of the VIP's ports to the
/// workload.
pub(crate) fn setup(plan: &Plan, fabric: &Fabric) -> Result<(), NetnsError> {
    let t = &plan.topology;
    let Some(from) = source(t) else {
        return Ok(());
    };
    let vip = plan.vip();
    let public = fabric.ns(Role::Pub);
    public.ip(["addr", "add", &format!("{from}/32"), "dev", "lo"])?;
    public.ip([
        "route",
        "replace",
        &format!("{vip}/32"),
        "via",
        PUB.0,
        "src",
        &from.to_string(),
    ])?;
    let ports: Vec<String> = ports(t).iter().map(u16::to_string).collect();
    let script = format!(
        "table ip observer_inbound {{\n  chain pre {{\n    type nat hook prerouting priority -100;\n    iifname \"pub\" ip daddr {vip} tcp dport {{ {} }} dnat to {}\n  }}\n}}\n",
        ports.join(", "),
        t.workload_address()
    );
    fabric.nft(Role::Inet, &script)
}

/// The workload's server on the inbound ports (`observer lab serve` in the
/// first app instance), once it is listening.
pub(crate) fn start_listener(
    plan: &Plan,
    fabric: &Fabric,
    helpers: &mut Helpers,
) -> anyhow::Result<()> {
    let ports: Vec<u16> = ports(&plan.topology).into_iter().collect();
    if ports.is_empty() {
        return Ok(());
    }
    let ns = fabric.ns(Role::APP);
    let label = format!("inbound server in {}", ns.name());
    helpers.serve(ns, &ports, &[], &[], &[], &label)
}
