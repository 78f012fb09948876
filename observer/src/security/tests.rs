//! NSG evaluation: table-driven cases with Azure's semantics, and property
//! tests over random rule sets (file order does not matter, the first match
//! in priority order decides, state admits replies).

use std::{net::Ipv4Addr, path::Path};

use proptest::prelude::*;

use super::*;
use crate::topology::Topology;

impl EffectiveSecurity {
    /// Whether a packet of `flow` passes, counting NSGs' state: a packet
    /// that answers an allowed flow in the other direction passes too (the
    /// lab's conntrack; the classifier judges flows as their initiator
    /// sent them).
    fn passes(&self, flow: &Flow) -> bool {
        let reverse = Flow {
            src: flow.dst,
            dst: flow.src,
            protocol: flow.protocol,
            src_port: flow.dst_port,
            dst_port: flow.src_port,
        };
        self.verify(flow, Scope::Path).access == Access::Allow
            || self.verify(&reverse, Scope::Path).access == Access::Allow
    }
}

const TOPOLOGY: &str = r#"name = "t"
environment = "asev2-external"
[vnet]
name = "vnet"
address_space = ["192.168.0.0/16"]
[[vnet.subnet]]
name = "ase"
prefix = "192.168.251.128/25"
role = "ase"
[[vnet.subnet]]
name = "sql"
prefix = "192.168.1.0/24"
role = "backend"
[[vnet.subnet]]
name = "open"
prefix = "192.168.2.0/24"
role = "other"
[[peering]]
name = "hub"
address_space = ["10.10.0.0/16"]
[onprem]
gateway = "expressroute"
prefixes = ["172.16.0.0/12"]
[[service_tag]]
name = "Sql"
prefixes = ["203.0.113.40/32"]
[[service_tag]]
name = "AppServiceManagement"
prefixes = ["203.0.113.80/28"]

[[nsg]]
name = "ase-nsg"
subnets = ["ase"]
[[nsg.rule]]
name = "allow-management"
priority = 100
direction = "Inbound"
access = "Allow"
protocol = "Tcp"
source = ["AppServiceManagement"]
destination_ports = ["454-455"]
[[nsg.rule]]
name = "allow-sql"
priority = 200
direction = "Outbound"
access = "Allow"
protocol = "Tcp"
destination = ["Sql"]
destination_ports = ["1433"]
[[nsg.rule]]
name = "deny-sql-other"
priority = 300
direction = "Outbound"
access = "Deny"
protocol = "*"
destination = ["Sql"]
[[nsg.rule]]
name = "deny-web"
priority = 400
direction = "Outbound"
access = "Deny"
protocol = "Tcp"
destination = ["Internet"]
destination_ports = ["80"]

[[nsg]]
name = "sql-nsg"
subnets = ["sql"]
[[nsg.rule]]
name = "allow-vnet-1433"
priority = 100
direction = "Inbound"
access = "Allow"
protocol = "Tcp"
source = ["VirtualNetwork"]
destination_ports = ["1433"]
[[nsg.rule]]
name = "deny-rest"
priority = 4096
direction = "Inbound"
access = "Deny"
protocol = "*"

[lab]
[[lab.traffic]]
name = "x"
to = "192.168.1.6"
port = 1433
"#;

fn security() -> EffectiveSecurity {
    EffectiveSecurity::build(&Topology::parse(Path::new("t.toml"), TOPOLOGY).unwrap())
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

const WORKLOAD: &str = "192.168.251.132";

/// (from, to, protocol, port, scope) -> (access, "nsg/rule" of the
/// deciding step, or "-" when no NSG applies).
#[test]
fn flows_are_decided_by_the_first_matching_rule_of_each_nsg_on_the_way() {
    use Scope::*;
    let cases: &[(&str, &str, u8, u16, Scope, Access, &str)] = &[
        // Outbound from the ASE subnet.
        (
            WORKLOAD,
            "203.0.113.40",
            6,
            1433,
            Path,
            Access::Allow,
            "ase-nsg/allow-sql",
        ),
        (
            WORKLOAD,
            "203.0.113.40",
            6,
            1434,
            Path,
            Access::Deny,
            "ase-nsg/deny-sql-other",
        ),
        (
            WORKLOAD,
            "203.0.113.40",
            17,
            1433,
            Path,
            Access::Deny,
            "ase-nsg/deny-sql-other",
        ),
        (
            WORKLOAD,
            "198.51.100.7",
            6,
            80,
            Path,
            Access::Deny,
            "ase-nsg/deny-web",
        ),
        (
            WORKLOAD,
            "198.51.100.7",
            6,
            443,
            Path,
            Access::Allow,
            "ase-nsg/AllowInternetOutBound",
        ),
        // Peering and on-premises are VirtualNetwork: AllowVnetOutBound.
        (
            WORKLOAD,
            "10.10.1.1",
            6,
            80,
            Path,
            Access::Allow,
            "ase-nsg/AllowVnetOutBound",
        ),
        (
            WORKLOAD,
            "172.16.5.5",
            6,
            80,
            Path,
            Access::Allow,
            "ase-nsg/AllowVnetOutBound",
        ),
        // A private address outside VirtualNetwork is not Internet either.
        (
            WORKLOAD,
            "100.64.0.1",
            6,
            443,
            Path,
            Access::Deny,
            "ase-nsg/DenyAllOutBound",
        ),
        // Across subnets: both NSGs; the SQL subnet admits VNet sources on 1433.
        (
            WORKLOAD,
            "192.168.1.6",
            6,
            1433,
            Path,
            Access::Allow,
            "sql-nsg/allow-vnet-1433",
        ),
        (
            WORKLOAD,
            "192.168.1.6",
            6,
            22,
            Path,
            Access::Deny,
            "sql-nsg/deny-rest",
        ),
        (
            WORKLOAD,
            "192.168.1.6",
            6,
            22,
            Outbound,
            Access::Allow,
            "ase-nsg/AllowVnetOutBound",
        ),
        (
            "172.16.9.9",
            "192.168.1.6",
            6,
            1433,
            Path,
            Access::Allow,
            "sql-nsg/allow-vnet-1433",
        ),
        (
            "198.51.100.7",
            "192.168.1.6",
            6,
            1433,
            Path,
            Access::Deny,
            "sql-nsg/deny-rest",
        ),
        // Inbound management and the load balancer.
        (
            "203.0.113.81",
            WORKLOAD,
            6,
            454,
            Path,
            Access::Allow,
            "ase-nsg/allow-management",
        ),
        (
            "203.0.113.81",
            WORKLOAD,
            6,
            456,
            Path,
            Access::Deny,
            "ase-nsg/DenyAllInBound",
        ),
        (
            "198.51.100.7",
            WORKLOAD,
            6,
            454,
            Path,
            Access::Deny,
            "ase-nsg/DenyAllInBound",
        ),
        (
            "168.63.129.16",
            WORKLOAD,
            6,
            16001,
            Path,
            Access::Allow,
            "ase-nsg/AllowVnetInBound",
        ),
        // Within one subnet: its NSG both ways (default VNet rules).
        (
            WORKLOAD,
            "192.168.251.133",
            17,
            9999,
            Path,
            Access::Allow,
            "ase-nsg/AllowVnetInBound",
        ),
        // A subnet without an NSG filters nothing.
        (
            "198.51.100.7",
            "192.168.2.9",
            6,
            3389,
            Path,
            Access::Allow,
            "-",
        ),
    ];
    let sec = security();
    for &(from, to, protocol, port, scope, access, decided) in cases {
        let d = sec.verify(&Flow::new(ip(from), ip(to), protocol, port), scope);
        let step = d.deciding().expect("a step");
        let got = match (&step.nsg, &step.hit) {
            (Some(nsg), Some(hit)) => format!("{nsg}/{}", hit.rule),
            _ => "-".into(),
        };
        assert_eq!(
            (d.access, got.as_str()),
            (access, decided),
            "{from} -> {to}:{port}/{protocol} {scope:?}: {}",
            d.describe()
        );
    }
}

#[test]
fn the_virtual_network_tag_holds_what_azure_says() {
    let sec = security();
    for inside in ["192.168.7.7", "10.10.0.1", "172.20.0.1", "168.63.129.16"] {
        assert!(sec.in_virtual_network(ip(inside)), "{inside}");
    }
    for outside in ["10.11.0.1", "203.0.113.40", "100.64.0.1"] {
        assert!(!sec.in_virtual_network(ip(outside)), "{outside}");
    }
    assert!(sec.contains(&AddressPrefix::Tag("Internet".into()), ip("203.0.113.40")));
    assert!(!sec.contains(&AddressPrefix::Tag("Internet".into()), ip("172.20.0.1")));
    let rules = sec.effective_rules(sec.topology().nsg_of("sql").unwrap());
    let vnet = rules.iter().find(|r| r.name == "allow-vnet-1433").unwrap();
    assert!(vnet.expanded_source.contains(&"172.16.0.0/12".to_string()));
    assert_eq!(rules.len(), 2 + 6);
}

#[test]
fn icmp_matches_only_rules_without_ports() {
    let sec = security();
    let ping = |dst: &str| Flow {
        src: ip(WORKLOAD),
        dst: ip(dst),
        protocol: 1,
        src_port: None,
        dst_port: None,
    };
    // deny-web names port 80: a ping to the internet passes it.
    let d = sec.verify(&ping("198.51.100.7"), Scope::Path);
    assert_eq!(
        d.deciding().unwrap().hit.as_ref().unwrap().rule,
        "AllowInternetOutBound"
    );
    // deny-sql-other has ports `*`: it catches the ping.
    let d = sec.verify(&ping("203.0.113.40"), Scope::Path);
    assert_eq!(
        d.deciding().unwrap().hit.as_ref().unwrap().rule,
        "deny-sql-other"
    );
}

// ---- properties ------------------------------------------------------------

const ADDRESSES: [&str; 6] = [
    "192.168.251.132",
    "192.168.1.6",
    "192.168.2.9",
    "203.0.113.40",
    "198.51.100.7",
    "172.16.5.5",
];
const PREFIXES: [&str; 8] = [
    "*",
    "VirtualNetwork",
    "Internet",
    "Sql",
    "192.168.251.128/25",
    "192.168.1.0/24",
    "203.0.113.0/24",
    "198.51.100.7/32",
];
const PORTS: [&str; 5] = ["*", "443", "1433", "1000-2000", "80"];

#[derive(Clone, Debug)]
struct RuleSpec {
    priority: u16,
    inbound: bool,
    allow: bool,
    protocol: String,
    source: String,
    destination: String,
    port: String,
}

impl RuleSpec {
    /// The rule as TOML, named by direction and priority (unique).
    fn toml(&self) -> String {
        format!(
            "[[nsg.rule]]\nname = \"{}{}\"\npriority = {}\ndirection = \"{}\"\naccess = \"{}\"\nprotocol = \"{}\"\nsource = [\"{}\"]\ndestination = [\"{}\"]\ndestination_ports = [\"{}\"]\n",
            if self.inbound { "in" } else { "out" },
            self.priority,
            self.priority,
            if self.inbound { "Inbound" } else { "Outbound" },
            if self.allow { "Allow" } else { "Deny" },
            self.protocol,
            self.source,
            self.destination,
            self.port
        )
    }
}

fn rule_spec() -> impl Strategy<Value = RuleSpec> {
    (
        100u16..=4096,
        any::<bool>(),
        any::<bool>(),
        prop::sample::select(vec!["Tcp", "Udp", "*"]),
        prop::sample::select(PREFIXES.to_vec()),
        prop::sample::select(PREFIXES.to_vec()),
        prop::sample::select(PORTS.to_vec()),
    )
        .prop_map(
            |(priority, inbound, allow, protocol, source, destination, port)| RuleSpec {
                priority,
                inbound,
                allow,
                protocol: protocol.into(),
                source: source.into(),
                destination: destination.into(),
                port: port.into(),
            },
        )
}

/// Rules with distinct priorities per direction.
fn rule_set() -> impl Strategy<Value = Vec<RuleSpec>> {
    prop::collection::vec(rule_spec(), 0..12).prop_map(|mut rules| {
        let mut seen = std::collections::HashSet::new();
        rules.retain(|r| seen.insert((r.priority, r.inbound)));
        rules
    })
}

fn flow() -> impl Strategy<Value = Flow> {
    (
        prop::sample::select(ADDRESSES.to_vec()),
        prop::sample::select(ADDRESSES.to_vec()),
        prop::sample::select(vec![6u8, 17]),
        prop::sample::select(vec![80u16, 443, 1433, 1500, 3000]),
    )
        .prop_map(|(s, d, p, port)| Flow::new(ip(s), ip(d), p, port))
}

/// The topology above, its NSGs replaced by one on `ase` and `sql` holding
/// `rules` in the given order.
fn with_rules(rules: &[RuleSpec]) -> EffectiveSecurity {
    let base = &TOPOLOGY[..TOPOLOGY.find("[[nsg]]").unwrap()];
    let mut text = format!("{base}[[nsg]]\nname = \"n\"\nsubnets = [\"ase\", \"sql\"]\n");
    for r in rules {
        text += &r.toml();
    }
    text += "[lab]\n[[lab.traffic]]\nname = \"x\"\nto = \"192.168.1.6\"\nport = 1433\n";
    EffectiveSecurity::build(
        &Topology::parse(Path::new("t.toml"), &text).unwrap_or_else(|e| panic!("{e}\n{text}")),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Azure reads rules by priority, not by their order in the file.
    #[test]
    fn file_order_does_not_matter(rules in rule_set(), flows in prop::collection::vec(flow(), 1..8)) {
        let forward = with_rules(&rules);
        let mut reversed = rules.clone();
        reversed.reverse();
        let backward = with_rules(&reversed);
        for f in &flows {
            prop_assert_eq!(forward.verify(f, Scope::Path), backward.verify(f, Scope::Path));
        }
    }

    /// The deciding rule is the matching rule with the lowest priority
    /// number, found by a plain minimum over all rules of the direction.
    #[test]
    fn the_lowest_priority_match_decides(rules in rule_set(), f in flow()) {
        let sec = with_rules(&rules);
        let nsg = &sec.topology().nsgs[0];
        for direction in [RuleDirection::Inbound, RuleDirection::Outbound] {
            let all: Vec<SecurityRule> = nsg.rules.iter().cloned().chain(SecurityRule::defaults()).collect();
            let oracle = all
                .iter()
                .filter(|r| r.direction == direction && sec.matches(r, &f))
                .min_by_key(|r| r.priority)
                .expect("deny-all matches");
            let hit = sec.decide(nsg, direction, &f);
            prop_assert_eq!((hit.rule.as_str(), hit.access), (oracle.name.as_str(), oracle.access));
        }
    }

    /// A rule at priority 100 matching exactly one flow decides that flow.
    #[test]
    fn an_exact_rule_at_the_top_decides(rules in rule_set(), f in flow(), allow in any::<bool>()) {
        let mut rules: Vec<RuleSpec> = rules.into_iter().filter(|r| r.priority != 100).collect();
        let protocol = crate::protocol::IpProtocol(f.protocol).azure();
        for inbound in [false, true] {
            rules.push(RuleSpec {
                priority: 100,
                inbound,
                allow,
                protocol: protocol.into(),
                source: format!("{}/32", f.src),
                destination: format!("{}/32", f.dst),
                port: f.dst_port.unwrap().to_string(),
            });
        }
        let sec = with_rules(&rules);
        let d = sec.verify(&f, Scope::Path);
        let in_nsg = |a: Ipv4Addr| sec.topology().subnet_of(a).is_some_and(|s| s.name == "ase" || s.name == "sql");
        if in_nsg(f.src) || in_nsg(f.dst) {
            prop_assert_eq!(d.access == Access::Allow, allow, "{}", d.describe());
            prop_assert_eq!(d.deciding().unwrap().hit.as_ref().unwrap().priority, 100);
        } else {
            prop_assert_eq!(d.access, Access::Allow);
        }
    }

    /// Stateful: the packets answering an allowed flow pass.
    #[test]
    fn replies_of_allowed_flows_pass(rules in rule_set(), f in flow()) {
        let sec = with_rules(&rules);
        if sec.verify(&f, Scope::Path).access == Access::Allow {
            let reply = Flow { src: f.dst, dst: f.src, protocol: f.protocol, src_port: f.dst_port, dst_port: f.src_port };
            prop_assert!(sec.passes(&reply));
        }
    }
}
