//! The virtual appliance of VirtualAppliance next hops: a firewall namespace
//! (`nva`) that holds the routes' `next_hop_ip`, forwards what its allow
//! list (`[lab.appliance] allow`) admits to the internet edge, and logs and
//! drops the rest. The VNet router sends the prefixes Azure routes to the
//! appliance to it, so the router's `nva` leg (role `appliance`) observes
//! the VirtualAppliance path.
//!
//! ```text
//!  vnet router ── nva (firewall, SNAT) ── inet ── pub
//! ```

use anyhow::bail;

use crate::{
    lab::{
        fabric::Fabric,
        netns::NetnsError,
        plan::{NVA, NVA_OUT, Plan, Role, appliance_address},
    },
    topology::Topology,
};

/// Refuses what the lab cannot build: one appliance, inside the VNet.
pub(crate) fn check_supported(t: &Topology) -> anyhow::Result<()> {
    let Some(ip) = appliance_address(t) else {
        return Ok(());
    };
    if let Some(other) = t
        .route_table
        .routes
        .iter()
        .filter_map(|r| r.next_hop_ip)
        .find(|o| *o != ip)
    {
        bail!(
            "topology {}: the lab has one virtual appliance; the routes name {ip} and {other}",
            t.name
        );
    }
    if !t.in_vnet(ip) {
        bail!(
            "topology {}: the virtual appliance {ip} must be inside the VNet (an appliance subnet)",
            t.name
        );
    }
    Ok(())
}

/// The firewall: replies of forwarded flows pass, the allow list is
/// forwarded, everything else is logged and dropped; what leaves towards the
/// internet edge is SNATed to the appliance's transit address (so replies
/// come back through it).
pub(crate) fn firewall(t: &Topology) -> String {
    let allow: Vec<String> = t
        .lab
        .appliance
        .allow
        .iter()
        .map(|c| c.to_string())
        .collect();
    let allow = if allow.is_empty() {
        String::new()
    } else {
        format!("    ip daddr {{ {} }} accept\n", allow.join(", "))
    };
    format!(
        "table ip observer_nva {{\n  chain forward {{\n    type filter hook forward priority 0; policy accept;\n    ct state established,related accept\n{allow}    log prefix \"observer-nva drop: \" counter drop\n  }}\n  chain post {{\n    type nat hook postrouting priority 100;\n    oifname \"out\" snat to {}\n  }}\n}}\n",
        NVA_OUT.1
    )
}

/// Wires the appliance: its legs, address, routes and firewall.
pub(crate) fn wire(plan: &Plan, fabric: &Fabric) -> Result<(), NetnsError> {
    let t = &plan.topology;
    let Some(ip) = appliance_address(t) else {
        return Ok(());
    };
    fabric.link((Role::Vnet, "nva"), (Role::Nva, "eth0"), NVA, false)?;
    fabric.link((Role::Inet, "nva"), (Role::Nva, "out"), NVA_OUT, false)?;
    fabric.addr(Role::Nva, "lo", &format!("{ip}/32"))?;
    // Towards the VNet back through the router, the rest to the edge.
    for net in &t.vnet.address_space {
        fabric.route(Role::Nva, &[&net.to_string(), "via", NVA.0])?;
    }
    fabric.route(Role::Nva, &["default", "via", NVA_OUT.0])?;
    fabric.route(Role::Vnet, &[&format!("{ip}/32"), "via", NVA.1])?;
    fabric.nft(Role::Nva, &firewall(t))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn the_firewall_forwards_its_allow_list_and_logs_the_rest() {
        let text = r#"name = "t"
environment = "asev2-external"
[vnet]
name = "v"
address_space = ["10.0.0.0/16"]
[[vnet.subnet]]
name = "ase"
prefix = "10.0.0.0/24"
role = "ase"
[[vnet.subnet]]
name = "fw"
prefix = "10.0.3.0/24"
role = "appliance"
[[route_table.route]]
name = "to-fw"
prefix = "0.0.0.0/0"
next_hop = "VirtualAppliance"
next_hop_ip = "10.0.3.4"
[lab.appliance]
allow = ["203.0.113.50/32", "203.0.113.70/32"]
[[lab.traffic]]
name = "x"
to = "203.0.113.50"
port = 443
"#;
        let t = Topology::parse(Path::new("t.toml"), text).unwrap();
        assert_eq!(appliance_address(&t), Some("10.0.3.4".parse().unwrap()));
        check_supported(&t).unwrap();
        let fw = firewall(&t);
        assert!(
            fw.contains("ct state established,related accept\n    ip daddr { 203.0.113.50/32, 203.0.113.70/32 } accept\n    log prefix \"observer-nva drop: \" counter drop"),
            "{fw}"
        );
        assert!(fw.contains("oifname \"out\" snat to 169.254.31.2"), "{fw}");
        let outside =
            Topology::parse(Path::new("t.toml"), &text.replace("10.0.3.4", "192.0.2.4")).unwrap();
        assert!(
            check_supported(&outside)
                .unwrap_err()
                .to_string()
                .contains("inside the VNet")
        );
    }
}
