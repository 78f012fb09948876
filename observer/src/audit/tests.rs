//! The static audit against the scenario topologies and variations of them:
//! which problems it finds, what it says breaks and the fix.

use std::path::PathBuf;

use super::*;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../lab/topologies")
}

fn scenario(file: &str) -> Topology {
    Topology::load(&dir().join(file)).unwrap_or_else(|e| panic!("{e}"))
}

/// A topology from text, with the lab's service-tag file.
fn inline(text: &str) -> Topology {
    let path = dir().join(format!("audit-{}.toml", std::process::id()));
    let text = format!(
        "service_tags = \"service-tags.json\"\n{text}\n[[lab.traffic]]\nname = \"x\"\nto = \"10.0.0.9\"\nport = 1\n"
    );
    let mut t = Topology::parse(&path, &text).unwrap_or_else(|e| panic!("{e}"));
    t.service_tags
        .extend(crate::topology::ServiceTags::load(&dir().join("service-tags.json")).unwrap());
    t
}

fn audit(t: &Topology) -> Audit {
    Audit::run(t, &Catalog::load(t.cloud, &[]).unwrap())
}

/// (check, subject) of each problem, for comparison.
fn found(a: &Audit) -> Vec<(&'static str, String, bool)> {
    a.problems
        .iter()
        .map(|p| (p.check.into(), p.subject.clone(), p.breaks_ase))
        .collect()
}

#[test]
fn seed_004_with_the_required_rules_passes() {
    let a = audit(&scenario("seed-004-nsg.toml"));
    assert!(a.problems.is_empty(), "{a}");
    assert!(a.ase_works());
    assert!(a.checked >= 12, "{a}");
    assert!(
        a.to_string()
            .contains("0 problems, 0 break the environment"),
        "{a}"
    );
}

#[test]
fn a_missing_required_outbound_rule_fails_with_the_rule_to_add() {
    let a = audit(&scenario("seed-004-nsg-missing-sql.toml"));
    assert_eq!(
        found(&a),
        [("outbound", "azure-sql".to_string(), true)],
        "{a}"
    );
    assert!(!a.ase_works());
    let line = a.problems[0].to_string();
    for needle in [
        "FAIL outbound azure-sql: TCP 1433 to Sql (203.0.113.40/32) is denied",
        "nsg ase-nsg rule deny-all-out (priority 4096)",
        "the ASE stops working",
        "add an Outbound Allow rule with a priority number below 4096: protocol Tcp, destination Sql, destination_ports [\"1433\", \"11000-11999\", \"14000-14999\"]",
    ] {
        assert!(line.contains(needle), "`{needle}` not in {line}");
    }
}

#[test]
fn every_problem_kind_is_found_with_what_breaks_and_the_fix() {
    const ASE: &str = "name = \"t\"\nenvironment = \"asev2-external\"\n[vnet]\nname = \"v\"\naddress_space = [\"10.0.0.0/16\"]\n[[vnet.subnet]]\nname = \"ase\"\nprefix = \"10.0.0.0/24\"\nrole = \"ase\"\n";
    const FORCED: &str = "[onprem]\ngateway = \"expressroute\"\nprefixes = [\"192.168.0.0/16\"]\nadvertises = [\"0.0.0.0/0\"]\n";
    /// (name, topology, problems (check, subject, breaks the ASE), text).
    type Case<'a> = (&'a str, String, &'a [(&'a str, &'a str, bool)], &'a str);
    let cases: &[Case<'_>] = &[
        // Forced tunnelling, no UDR: dependencies misrouted, management asymmetric.
        (
            "forced",
            format!("{ASE}{FORCED}"),
            &[
                ("outbound", "azure-sql", true),
                ("outbound", "azure-storage", true),
                ("outbound", "azure-management", true),
                ("outbound", "app-service-management", true),
                ("outbound", "ocsp-crl", true),
                ("outbound", "azure-ad", true),
                ("outbound", "monitoring-ips", true),
                ("outbound", "azure-monitor", true),
                ("outbound", "ntp", true),
                ("outbound", "system-monitoring", true),
                ("asymmetric-route", "management", true),
            ],
            "add a user route with service_tag = \"AppServiceManagement\"",
        ),
        // The 0.0.0.0/0 UDR, beaten for Sql by a cross-advertised /24.
        (
            "bgp-more-specific",
            format!(
                "{ASE}[onprem]\ngateway = \"expressroute\"\nprefixes = [\"192.168.0.0/16\"]\nadvertises = [\"0.0.0.0/0\", \"203.0.113.0/24\"]\n[[route_table.route]]\nname = \"internet\"\nprefix = \"0.0.0.0/0\"\nnext_hop = \"Internet\"\n"
            ),
            &[
                ("outbound", "azure-sql", true),
                ("outbound", "azure-storage", true),
                ("outbound", "azure-management", true),
                ("outbound", "app-service-management", true),
                ("outbound", "azure-ad", true),
                ("asymmetric-route", "management", true),
                ("udr-beaten-by-bgp", "internet", false),
            ],
            "add a user route for 203.0.113.0/24 (or more specific prefixes) with next hop Internet",
        ),
        // The load balancer's and management's inbound denied.
        (
            "inbound",
            format!(
                "{ASE}[[nsg]]\nname = \"n\"\nsubnets = [\"ase\"]\n[[nsg.rule]]\nname = \"deny-in\"\npriority = 4000\ndirection = \"Inbound\"\naccess = \"Deny\"\nprotocol = \"*\"\n"
            ),
            &[
                ("inbound", "management", true),
                ("inbound", "load-balancer", true),
                ("inbound", "ase-subnet", true),
            ],
            "add an Inbound Allow rule with a priority number below 4000: source AppServiceManagement",
        ),
        // Private endpoint zone not linked, custom DNS not forwarding.
        (
            "dns",
            format!(
                "{ASE}[dns]\nservers = [\"10.0.0.53\"]\nforwards_to_azure = false\n[[private_endpoint]]\nname = \"kv\"\nfqdn = \"kv.vault.azure.net\"\nprivate_ip = \"10.0.0.20\"\npublic_ip = \"203.0.113.20\"\nzone = \"privatelink.vaultcore.azure.net\"\nzone_linked = false\n"
            ),
            &[
                ("private-endpoint-dns", "kv", false),
                ("custom-dns", "forwarding", false),
            ],
            "add a virtual network link from privatelink.vaultcore.azure.net to VNet v",
        ),
        // Custom DNS on-premises while gateway routes are not propagated.
        (
            "dns-onprem",
            format!(
                "{ASE}[dns]\nservers = [\"192.168.5.53\"]\n[onprem]\ngateway = \"vpn\"\nprefixes = [\"192.168.0.0/16\"]\n[route_table]\npropagation = false\n"
            ),
            &[("custom-dns", "192.168.5.53", true)],
            "creating it fails",
        ),
        // ... and one the NSG cuts off.
        (
            "dns-nsg",
            format!(
                "{ASE}[dns]\nservers = [\"192.168.5.53\"]\n[onprem]\ngateway = \"vpn\"\nprefixes = [\"192.168.0.0/16\"]\n[[nsg]]\nname = \"n\"\nsubnets = [\"ase\"]\n[[nsg.rule]]\nname = \"no-onprem-dns\"\npriority = 500\ndirection = \"Outbound\"\naccess = \"Deny\"\nprotocol = \"*\"\ndestination = [\"192.168.0.0/16\"]\ndestination_ports = [\"53\"]\n"
            ),
            // An NSG without the management rule: DenyAllInBound refuses it.
            &[
                ("inbound", "management", true),
                ("custom-dns", "192.168.5.53", true),
            ],
            "nsg n rule no-onprem-dns",
        ),
    ];
    for (name, text, expected, needle) in cases {
        let a = audit(&inline(text));
        let expected: Vec<(&str, String, bool)> = expected
            .iter()
            .map(|(c, s, b)| (*c, s.to_string(), *b))
            .collect();
        assert_eq!(found(&a), expected, "{name}:\n{a}");
        assert!(
            a.to_string().contains(needle),
            "{name}: `{needle}` not in\n{a}"
        );
        assert_eq!(a.ase_works(), !expected.iter().any(|e| e.2), "{name}");
    }
}

#[test]
fn asev3_and_multi_tenant_get_the_checks_that_apply() {
    const V3: &str = "name = \"t\"\nenvironment = \"asev3\"\n[vnet]\nname = \"v\"\naddress_space = [\"10.0.0.0/16\"]\n[[vnet.subnet]]\nname = \"ase\"\nprefix = \"10.0.0.0/24\"\nrole = \"ase\"\n[onprem]\ngateway = \"expressroute\"\nprefixes = [\"192.168.0.0/16\"]\nadvertises = [\"0.0.0.0/0\"]\n";
    // ASEv3 has no platform dependencies in the VNet: forced tunnelling is fine.
    let a = audit(&inline(V3));
    assert!(a.problems.is_empty(), "{a}");
    // Its one inbound requirement: TCP 80 from the load balancer.
    let deny = "[[nsg]]\nname = \"n\"\nsubnets = [\"ase\"]\n[[nsg.rule]]\nname = \"deny-in\"\npriority = 4000\ndirection = \"Inbound\"\naccess = \"Deny\"\nprotocol = \"*\"\n";
    let a = audit(&inline(&format!("{V3}{deny}")));
    assert_eq!(
        found(&a),
        [("inbound", "load-balancer".to_string(), true)],
        "{a}"
    );
    assert!(
        a.problems[0]
            .problem
            .contains("TCP 80 from AzureLoadBalancer"),
        "{a}"
    );
    // Multi-tenant: no inbound management, no platform dependencies.
    let mt = V3.replace("asev3", "multi-tenant");
    let a = audit(&inline(&format!("{mt}{deny}")));
    assert!(a.problems.is_empty(), "{a}");
}

#[test]
fn every_lab_scenario_is_audited_as_its_description_says() {
    // (file, environment works)
    let table = [
        ("default.toml", true),
        ("forced-tunnel.toml", false),
        ("forced-tunnel-udr.toml", true),
        ("storage-blocked.toml", false),
        ("seed-004-nsg.toml", true),
        ("seed-004-nsg-missing-sql.toml", false),
        ("sql-vm-nsg.toml", true),
        ("forced-tunnel-bgp-specific.toml", false),
        ("custom-dns-forwarding.toml", true),
        ("custom-dns-not-forwarding.toml", true),
        ("custom-dns-onprem.toml", true),
        ("inbound-management-forced.toml", false),
        ("inbound-management-fixed.toml", true),
        // SQL and Storage may not go through an appliance.
        ("appliance.toml", false),
    ];
    for (file, works) in table {
        let a = audit(&scenario(file));
        assert_eq!(a.ase_works(), works, "{file}:\n{a}");
    }
    // Not forwarding is a warning with its fix; the on-premises server is
    // reachable through the gateway.
    let a = audit(&scenario("custom-dns-not-forwarding.toml"));
    assert_eq!(
        found(&a),
        [("custom-dns", "forwarding".to_string(), false)],
        "{a}"
    );
    assert!(a.problems[0].fix.contains("168.63.129.16"), "{a}");
    assert!(
        audit(&scenario("custom-dns-onprem.toml"))
            .problems
            .is_empty()
    );
    let mut cut = scenario("custom-dns-onprem.toml");
    cut.route_table.propagation = false;
    let a = audit(&cut);
    assert_eq!(
        found(&a),
        [("custom-dns", "192.168.0.53".to_string(), true)],
        "{a}"
    );
}
