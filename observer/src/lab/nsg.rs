//! The topology's NSGs as an nftables ruleset for the lab's VNet router,
//! generated from the same rules and tag expansion `observer verify` uses
//! (`crate::security`): stateful (replies of allowed flows pass), the
//! source subnet's outbound rules then the destination subnet's inbound
//! rules, each NSG's rules in priority order with Azure's defaults under
//! them, first match wins.
//!
//! A rule's sources and destinations are alternatives; each combination
//! becomes one nft rule with the rule's verdict, which keeps first-match
//! semantics. `Internet` (public and outside `VirtualNetwork`) is written as
//! a negated set of the private ranges and `VirtualNetwork`.

use std::fmt::Write as _;

use ipnet::Ipv4Net;

use crate::{
    security::EffectiveSecurity,
    topology::{Access, AddressPrefix, PortRange, RuleDirection, RuleProtocol, SecurityRule},
};

/// The nft table the NSG chains live in.
pub const TABLE: &str = "observer_nsg";

/// Addresses `is_public` refuses (private, loopback, link-local, CGNAT,
/// multicast and the reserved range, broadcast, unspecified).
const NOT_PUBLIC: [&str; 9] = [
    "0.0.0.0/32",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "224.0.0.0/4",
    "255.255.255.255/32",
];

/// One side of a match: a positive or negated set, or anything.
enum AddrMatch {
    Any,
    In(Vec<Ipv4Net>),
    NotIn(Vec<Ipv4Net>),
    /// A tag with no prefixes here: matches nothing.
    Nothing,
}

impl AddrMatch {
    fn expr(&self, field: &str) -> Option<String> {
        match self {
            Self::Any => Some(String::new()),
            Self::In(nets) => Some(format!("ip {field} {} ", set(nets))),
            Self::NotIn(nets) => Some(format!("ip {field} != {} ", set(nets))),
            Self::Nothing => None,
        }
    }
}

fn set(nets: &[Ipv4Net]) -> String {
    format!(
        "{{ {} }}",
        nets.iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn aggregate(nets: Vec<Ipv4Net>) -> Vec<Ipv4Net> {
    Ipv4Net::aggregate(&nets)
}

fn addr_match(security: &EffectiveSecurity, prefix: &AddressPrefix) -> AddrMatch {
    match prefix {
        AddressPrefix::Any => AddrMatch::Any,
        AddressPrefix::Cidr(net) if net.prefix_len() == 0 => AddrMatch::Any,
        AddressPrefix::Cidr(net) => AddrMatch::In(vec![*net]),
        AddressPrefix::Tag(tag) if tag == "Internet" => {
            let mut nets: Vec<Ipv4Net> = NOT_PUBLIC
                .iter()
                .map(|p| p.parse().expect("constant prefix"))
                .collect();
            nets.extend(security.virtual_network());
            let nets = aggregate(nets);
            if nets.iter().any(|n| n.prefix_len() == 0) {
                AddrMatch::Nothing
            } else {
                AddrMatch::NotIn(nets)
            }
        }
        AddressPrefix::Tag(tag) => {
            let nets = aggregate(security.tag_prefixes(tag));
            if nets.is_empty() {
                AddrMatch::Nothing
            } else if nets.iter().any(|n| n.prefix_len() == 0) {
                AddrMatch::Any
            } else {
                AddrMatch::In(nets)
            }
        }
    }
}

/// Merged, sorted port ranges; `None` when one of them is `*`.
fn ports(ranges: &[PortRange]) -> Option<String> {
    if ranges.iter().any(|r| r.is_any()) {
        return None;
    }
    let mut sorted: Vec<PortRange> = ranges.to_vec();
    sorted.sort_by_key(|r| r.first);
    let mut merged: Vec<PortRange> = Vec::new();
    for r in sorted {
        match merged.last_mut() {
            Some(last) if u32::from(r.first) <= u32::from(last.last) + 1 => {
                last.last = last.last.max(r.last);
            }
            _ => merged.push(r),
        }
    }
    Some(format!(
        "{{ {} }}",
        merged
            .iter()
            .map(|r| if r.first == r.last {
                r.first.to_string()
            } else {
                format!("{}-{}", r.first, r.last)
            })
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// The nft statements of one security rule (one per source x destination).
fn rule_lines(security: &EffectiveSecurity, rule: &SecurityRule) -> Vec<String> {
    let verdict = match rule.access {
        Access::Allow => "return",
        Access::Deny => "drop",
    };
    let sport = ports(&rule.source_ports);
    let dport = ports(&rule.destination_ports);
    let has_ports = sport.is_some() || dport.is_some();
    let proto = match (rule.protocol, has_ports) {
        (RuleProtocol::Tcp, _) => "meta l4proto tcp ".to_string(),
        (RuleProtocol::Udp, _) => "meta l4proto udp ".to_string(),
        // Port conditions hold only for TCP and UDP flows.
        (RuleProtocol::Icmp, true) => return Vec::new(),
        (RuleProtocol::Icmp, false) => "meta l4proto icmp ".to_string(),
        (RuleProtocol::Any, true) => "meta l4proto { tcp, udp } ".to_string(),
        (RuleProtocol::Any, false) => String::new(),
    };
    let mut port_expr = String::new();
    if let Some(p) = &sport {
        let _ = write!(port_expr, "th sport {p} ");
    }
    if let Some(p) = &dport {
        let _ = write!(port_expr, "th dport {p} ");
    }
    let mut out = Vec::new();
    for s in &rule.source {
        let Some(src) = addr_match(security, s).expr("saddr") else {
            continue;
        };
        for d in &rule.destination {
            let Some(dst) = addr_match(security, d).expr("daddr") else {
                continue;
            };
            out.push(format!(
                "{proto}{src}{dst}{port_expr}counter {verdict} comment \"{} {}\"",
                rule.priority, rule.name
            ));
        }
    }
    out
}

fn chain_name(nsg: &str, direction: RuleDirection) -> String {
    let safe: String = nsg
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!(
        "nsg_{safe}_{}",
        match direction {
            RuleDirection::Inbound => "in",
            RuleDirection::Outbound => "out",
        }
    )
}

/// The whole `table inet observer_nsg` script for the VNet router;
/// `extra_drops` are lab-only drops placed before the NSGs (e.g. ASEv1's
/// same-subnet rule), each one nft statement. `None` when there is nothing
/// to enforce.
pub fn ruleset(security: &EffectiveSecurity, extra_drops: &[String]) -> Option<String> {
    let t = security.topology();
    if t.nsgs.is_empty() && extra_drops.is_empty() {
        return None;
    }
    let mut script = format!("table inet {TABLE} {{\n");
    for nsg in &t.nsgs {
        for direction in [RuleDirection::Outbound, RuleDirection::Inbound] {
            let _ = writeln!(script, "  chain {} {{", chain_name(&nsg.name, direction));
            for rule in nsg.effective(direction) {
                for line in rule_lines(security, &rule) {
                    let _ = writeln!(script, "    {line}");
                }
            }
            script.push_str("  }\n");
        }
    }
    script.push_str("  chain forward {\n    type filter hook forward priority 0; policy accept;\n");
    for drop in extra_drops {
        let _ = writeln!(script, "    {drop}");
    }
    if !t.nsgs.is_empty() {
        script.push_str("    ct state established,related accept\n");
        for direction in [RuleDirection::Outbound, RuleDirection::Inbound] {
            for subnet in &t.vnet.subnets {
                if let Some(nsg) = t.nsg_of(&subnet.name) {
                    let field = match direction {
                        RuleDirection::Outbound => "saddr",
                        RuleDirection::Inbound => "daddr",
                    };
                    let _ = writeln!(
                        script,
                        "    ip {field} {} jump {}",
                        subnet.prefix,
                        chain_name(&nsg.name, direction)
                    );
                }
            }
        }
    }
    script.push_str("  }\n}\n");
    Some(script)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::topology::Topology;

    const TOPOLOGY: &str = r#"name = "t"
environment = "asev2-external"
[vnet]
name = "vnet"
address_space = ["10.0.0.0/16"]
[[vnet.subnet]]
name = "ase"
prefix = "10.0.0.0/24"
role = "ase"
[[service_tag]]
name = "Sql"
prefixes = ["203.0.113.40/32"]
[[nsg]]
name = "ase-nsg"
subnets = ["ase"]
[[nsg.rule]]
name = "deny-sql"
priority = 150
direction = "Outbound"
access = "Deny"
protocol = "*"
source = ["*", "VirtualNetwork"]
destination = ["Sql", "198.51.100.0/24"]
destination_ports = ["1433", "11000-11999", "1434"]
[lab]
[[lab.traffic]]
name = "x"
to = "203.0.113.40"
port = 1433
"#;

    #[test]
    fn rules_become_chains_in_priority_order_with_the_defaults() {
        let t = Topology::parse(Path::new("t.toml"), TOPOLOGY).unwrap();
        let script = ruleset(&EffectiveSecurity::build(&t), &[]).unwrap();
        let out = script
            .split("chain nsg_ase_nsg_out {")
            .nth(1)
            .unwrap()
            .split("\n  }")
            .next()
            .unwrap();
        let lines: Vec<&str> = out
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        // 2 sources x 2 destinations, then the three defaults.
        assert_eq!(lines.len(), 4 + 3, "{script}");
        assert_eq!(
            lines[0],
            "meta l4proto { tcp, udp } ip daddr { 203.0.113.40/32 } th dport { 1433-1434, 11000-11999 } counter drop comment \"150 deny-sql\""
        );
        assert!(
            lines[2].starts_with(
                "meta l4proto { tcp, udp } ip saddr { 10.0.0.0/16, 168.63.129.16/32 }"
            ),
            "{}",
            lines[2]
        );
        assert!(lines[4].contains("ip saddr { 10.0.0.0/16, 168.63.129.16/32 } ip daddr { 10.0.0.0/16, 168.63.129.16/32 } counter return comment \"65000 AllowVnetOutBound\""), "{}", lines[4]);
        assert!(lines[5].contains("ip daddr != { 0.0.0.0/32, 10.0.0.0/8, 100.64.0.0/10, 127.0.0.0/8, 168.63.129.16/32, 169.254.0.0/16, 172.16.0.0/12, 192.168.0.0/16, 224.0.0.0/4, 255.255.255.255/32 } counter return comment \"65001 AllowInternetOutBound\""), "{}", lines[5]);
        assert_eq!(lines[6], "counter drop comment \"65500 DenyAllOutBound\"");
        assert!(script.contains("ct state established,related accept\n    ip saddr 10.0.0.0/24 jump nsg_ase_nsg_out\n    ip daddr 10.0.0.0/24 jump nsg_ase_nsg_in\n"), "{script}");
    }

    #[test]
    fn nothing_to_enforce_is_no_table() {
        let text = TOPOLOGY.split("[[nsg]]").next().unwrap().to_string()
            + "[lab]\n[[lab.traffic]]\nname = \"x\"\nto = \"203.0.113.40\"\nport = 1433\n";
        let t = Topology::parse(Path::new("t.toml"), &text).unwrap();
        assert!(ruleset(&EffectiveSecurity::build(&t), &[]).is_none());
        let drops = ["ip daddr 10.0.0.9 drop".to_string()];
        let script = ruleset(&EffectiveSecurity::build(&t), &drops).unwrap();
        assert!(script.contains("ip daddr 10.0.0.9 drop") && !script.contains("ct state"));
    }
}
