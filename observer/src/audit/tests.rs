//! The static audit against the scenario topologies and variations of them:
//! which problems it finds at which level, what it says breaks, why, and
//! the fix (`az` commands and TOML).

use std::path::PathBuf;

use super::*;
use crate::topology::ServiceTags;

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
        .extend(ServiceTags::load(&dir().join("service-tags.json")).unwrap());
    t
}

/// Seed 004's documented NSG with `edit` applied to its text, loaded from
/// the lab's folder (its service-tag file is relative to it).
fn seed_004_with(edit: impl FnOnce(String) -> String) -> Topology {
    let text = std::fs::read_to_string(dir().join("seed-004-nsg.toml")).unwrap();
    let edited = edit(text.clone());
    assert_ne!(edited, text, "the edit changed nothing");
    let path = dir().join("seed-004-nsg.toml");
    let mut t = Topology::parse(&path, &edited).unwrap_or_else(|e| panic!("{e}"));
    t.service_tags
        .extend(ServiceTags::load(&dir().join("service-tags.json")).unwrap());
    t
}

/// `text` without the `[[nsg.rule]]` table named `name`.
fn without_rule(text: &str, name: &str) -> String {
    let start = text
        .find(&format!("[[nsg.rule]]\nname = \"{name}\""))
        .unwrap_or_else(|| panic!("no rule {name}"));
    let end = text[start + 1..]
        .find("\n[[")
        .map_or(text.len(), |e| start + 1 + e + 1);
    format!("{}{}", &text[..start], &text[end..])
}

fn audit(t: &Topology) -> Audit {
    Audit::run(t, &Catalog::load(t.cloud, &[]).unwrap())
}

/// (check, subject, level) of each problem, for comparison.
fn found(a: &Audit) -> Vec<(&'static str, String, Level)> {
    a.problems
        .iter()
        .map(|p| (p.check.into(), p.subject.clone(), p.level))
        .collect()
}

fn expect(a: &Audit, expected: &[(&str, &str, Level)]) {
    let expected: Vec<(&str, String, Level)> = expected
        .iter()
        .map(|(c, s, l)| (*c, s.to_string(), *l))
        .collect();
    assert_eq!(found(a), expected, "\n{a}");
    assert_eq!(
        a.ase_works(),
        !expected.iter().any(|e| e.2 == Level::Error),
        "{a}"
    );
}

fn contains_all(text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "`{needle}` not in\n{text}");
    }
}

#[test]
fn seed_004_documented_nsg_passes_with_no_rule_for_management_replies() {
    let t = scenario("seed-004-nsg.toml");
    // The documented NSG has no outbound rule for 454/455: a reply to
    // AppServiceManagement, were it a new flow, would be denied...
    let security = EffectiveSecurity::build(&t);
    let management: Ipv4Addr = "203.0.113.80".parse().unwrap();
    assert!(
        t.service_tags
            .contains("AppServiceManagement", management.into())
    );
    let reply_as_flow = Flow::new(t.workload_address(), management, 6, 454);
    assert_eq!(
        security.verify(&reply_as_flow, Scope::Path).access,
        Access::Deny
    );
    // ... but NSGs are stateful: it is a reply, and nothing is demanded.
    let a = audit(&t);
    assert!(a.problems.is_empty(), "{a}");
    assert!(a.ase_works());
    assert!(a.checked >= 12, "{a}");
    assert!(a.to_string().contains("0 errors, 0 warnings"), "{a}");
}

#[test]
fn seed_004_broken_variants_fail_with_the_cause_named() {
    // (variant, edit, problems, texts the report must hold)
    type Case<'a> = (
        &'a str,
        Box<dyn FnOnce(String) -> String>,
        &'a [(&'a str, &'a str, Level)],
        &'a [&'a str],
    );
    let cases: Vec<Case<'_>> = vec![
        (
            "missing load balancer rule",
            Box::new(|t| without_rule(&t, "allow-load-balancer-in")),
            &[("inbound", "load-balancer", Level::Error)],
            &[
                "error[inbound/load-balancer]: TCP 454 from AzureLoadBalancer (168.63.129.16) to 192.168.251.132 is denied: Inbound Deny by nsg ase-nsg rule deny-all-in (priority 4096)",
                "the load balancer's keep-alive (16001) fails",
                "\"For the communication between the Azure load balancer and the ASE subnet the minimum ports that need to be open are 454, 455 and 16001.\"",
                "add to nsg ase-nsg at priority 4090 (before deny-all-in at 4096) the Inbound Allow rule allow-load-balancer-in: protocol Tcp, source AzureLoadBalancer, destination 192.168.251.128/25, destination_ports [454-455, 16001]",
                "$ az network nsg rule create --resource-group '<resource-group>' --nsg-name ase-nsg --name allow-load-balancer-in --priority 4090 --direction Inbound --access Allow --protocol Tcp --source-address-prefixes AzureLoadBalancer --source-port-ranges '*' --destination-address-prefixes 192.168.251.128/25 --destination-port-ranges 454-455 16001",
                "| source = [\"AzureLoadBalancer\"]",
                "at: rule:ase-nsg/deny-all-in",
            ],
        ),
        (
            "narrow outbound",
            Box::new(|t| {
                t.replace(
                    "name = \"allow-web\"\npriority = 110\ndirection = \"Outbound\"\naccess = \"Allow\"\nprotocol = \"Tcp\"\n",
                    "name = \"allow-web\"\npriority = 110\ndirection = \"Outbound\"\naccess = \"Allow\"\nprotocol = \"Tcp\"\ndestination = [\"Storage\"]\n",
                )
            }),
            &[
                ("outbound", "azure-management", Level::Error),
                ("outbound", "app-service-management", Level::Error),
                ("outbound", "ocsp-crl", Level::Error),
                ("outbound", "azure-ad", Level::Error),
                ("outbound", "monitoring-ips", Level::Error),
                ("outbound", "azure-monitor", Level::Error),
            ],
            &[
                "error[outbound/ocsp-crl]: TCP 80 to ocsp.msocsp.com",
                "rule allow-web (priority 110) is meant for this traffic but allows it only to Storage",
                "widen rule allow-web (priority 110) of nsg ase-nsg so it admits this traffic: destination-address-prefixes [Storage, Internet]",
                "$ az network nsg rule update --resource-group '<resource-group>' --nsg-name ase-nsg --name allow-web --destination-address-prefixes Storage Internet",
                "at: rule:ase-nsg/allow-web",
            ],
        ),
        (
            "management from the wrong source",
            Box::new(|t| {
                t.replace(
                    "source = [\"AppServiceManagement\"]",
                    "source = [\"VirtualNetwork\"]",
                )
            }),
            &[("inbound", "management", Level::Error)],
            &[
                "error[inbound/management]: TCP 454 from AppServiceManagement (203.0.113.80/28)",
                "rule allow-management-in (priority 100) is meant for this traffic but allows it only from VirtualNetwork",
                "App Service cannot manage the ASE: it becomes unhealthy and then suspended",
                "\"If you block access from those addresses, your ASE will become unhealthy and then become suspended.",
                "$ az network nsg rule update --resource-group '<resource-group>' --nsg-name ase-nsg --name allow-management-in --source-address-prefixes VirtualNetwork AppServiceManagement",
                "| source = [\"VirtualNetwork\", \"AppServiceManagement\"]",
            ],
        ),
        (
            "ASE subnet cut from itself",
            Box::new(|t| without_rule(&t, "allow-ase-subnet-in")),
            &[("inbound", "ase-subnet", Level::Error)],
            &[
                "error[inbound/ase-subnet]: TCP 1 from the ASE subnet (192.168.251.133) to 192.168.251.132 is denied: Inbound Deny by nsg ase-nsg rule deny-all-in (priority 4096)",
                "the ASE's own instances cannot talk to each other",
                "This requires all of the ports in the ASE subnet to be accessible from the ASE subnet.",
                "--protocol '*' --source-address-prefixes 192.168.251.128/25 --source-port-ranges '*' --destination-address-prefixes 192.168.251.128/25 --destination-port-ranges '*'",
            ],
        ),
        (
            "system monitoring blocked is a warning",
            Box::new(|t| without_rule(&t, "allow-monitoring")),
            &[("outbound", "system-monitoring", Level::Warning)],
            &[
                "warning[outbound/system-monitoring]: TCP 12000 to any address",
                "\"This port is used for some system monitoring. If blocked, then some issues will be harder to triage but your ASE will continue to operate\"",
                "0 errors, 1 warning: it works (warnings do not change the exit status)",
            ],
        ),
    ];
    for (name, edit, problems, texts) in cases {
        let a = audit(&seed_004_with(edit));
        expect(&a, problems);
        let text = a.to_string();
        contains_all(&text, texts);
        // Every problem of these variants is about a rule of the NSG.
        for p in &a.problems {
            assert!(p.toml.is_some() && !p.az.is_empty(), "{name}: {p}");
        }
    }
}

#[test]
fn a_deny_at_priority_100_is_named_to_move_or_remove() {
    // The subnet's own traffic denied by the first rule Azure allows.
    let deny_first = |t: String| {
        t.replace(
            "name = \"allow-dns-ntp\"\npriority = 100",
            "name = \"allow-dns-ntp\"\npriority = 105",
        )
        .replace(
            "[[nsg.rule]]\nname = \"deny-all-out\"",
            "[[nsg.rule]]\nname = \"deny-subnet-out\"\npriority = 100\ndirection = \"Outbound\"\naccess = \"Deny\"\nprotocol = \"*\"\ndestination = [\"192.168.251.128/25\"]\n\n[[nsg.rule]]\nname = \"deny-all-out\"",
        )
    };
    let a = audit(&seed_004_with(deny_first));
    expect(&a, &[("inbound", "ase-subnet", Level::Error)]);
    let p = &a.problems[0];
    contains_all(
        &p.to_string(),
        &[
            "Outbound Deny by nsg ase-nsg rule deny-subnet-out (priority 100)",
            "rule deny-subnet-out of nsg ase-nsg denies it and has priority 100, the lowest number Azure allows, so no rule can come before it: change rule deny-subnet-out: move it to priority 101",
            "$ az network nsg rule update --resource-group '<resource-group>' --nsg-name ase-nsg --name deny-subnet-out --priority 101",
            "--name allow-ase-subnet-out-2 --priority 100 --direction Outbound",
            "| priority = 101",
        ],
    );
    assert!(!p.fix.contains("below 100"), "{p}");
    // With 101 taken, moving it would reorder the rules: change or remove it.
    let crowded = |t: String| {
        deny_first(t).replace(
            "name = \"allow-dns-ntp\"\npriority = 105",
            "name = \"allow-dns-ntp\"\npriority = 101",
        )
    };
    let a = audit(&seed_004_with(crowded));
    let p = &a.problems[0];
    contains_all(
        &p.to_string(),
        &[
            "change rule deny-subnet-out so it does not match this traffic, or remove it",
            "$ az network nsg rule delete --resource-group '<resource-group>' --nsg-name ase-nsg --name deny-subnet-out",
            "| # remove from [[nsg]] name = \"ase-nsg\" (or narrow it):",
        ],
    );
    // Every fix's priority is one Azure accepts.
    for p in &a.problems {
        for az in &p.az {
            if let Some(rest) = az.split("--priority ").nth(1) {
                let n: u16 = rest.split(' ').next().unwrap().parse().unwrap();
                assert!(crate::topology::nsg::PRIORITIES.contains(&n), "{az}");
            }
        }
    }
}

#[test]
fn a_missing_required_outbound_rule_fails_with_the_rule_to_add() {
    let a = audit(&scenario("seed-004-nsg-missing-sql.toml"));
    expect(&a, &[("outbound", "azure-sql", Level::Error)]);
    contains_all(
        &a.problems[0].to_string(),
        &[
            "error[outbound/azure-sql]: TCP 1433 to Sql (203.0.113.40/32) is denied",
            "nsg ase-nsg rule deny-all-out (priority 4096)",
            "If the ASE loses access to its dependencies, it stops working.",
            "add to nsg ase-nsg at priority 4090 (before deny-all-out at 4096) the Outbound Allow rule allow-azure-sql-out: protocol Tcp, source *, destination Sql, destination_ports [1433, 11000-11999, 14000-14999]",
            "--destination-address-prefixes Sql --destination-port-ranges 1433 11000-11999 14000-14999",
            "| destination_ports = [\"1433\", \"11000-11999\", \"14000-14999\"]",
        ],
    );
}

#[test]
fn every_problem_kind_is_found_with_what_breaks_and_the_fix() {
    const ASE: &str = "name = \"t\"\nenvironment = \"asev2-external\"\n[vnet]\nname = \"v\"\naddress_space = [\"10.0.0.0/16\"]\n[[vnet.subnet]]\nname = \"ase\"\nprefix = \"10.0.0.0/24\"\nrole = \"ase\"\n";
    const FORCED: &str = "[onprem]\ngateway = \"expressroute\"\nprefixes = [\"192.168.0.0/16\"]\nadvertises = [\"0.0.0.0/0\"]\n";
    use Level::{Error as E, Warning as W};
    /// (name, topology, problems (check, subject, level), text).
    type Case<'a> = (&'a str, String, &'a [(&'a str, &'a str, Level)], &'a str);
    let cases: &[Case<'_>] = &[
        // Forced tunnelling, no UDR: dependencies misrouted, management asymmetric.
        (
            "forced",
            format!("{ASE}{FORCED}"),
            &[
                ("outbound", "azure-sql", E),
                ("outbound", "azure-storage", E),
                ("outbound", "azure-management", E),
                ("outbound", "app-service-management", E),
                ("outbound", "ocsp-crl", E),
                ("outbound", "azure-ad", E),
                ("outbound", "monitoring-ips", E),
                ("outbound", "azure-monitor", E),
                ("outbound", "ntp", E),
                ("outbound", "system-monitoring", W),
                ("asymmetric-route", "management", E),
            ],
            "$ az network route-table route create --resource-group '<resource-group>' --route-table-name '<route-table>' --name management-replies --address-prefix AppServiceManagement --next-hop-type Internet",
        ),
        // The 0.0.0.0/0 UDR, beaten for Sql by a cross-advertised /24.
        (
            "bgp-more-specific",
            format!(
                "{ASE}[onprem]\ngateway = \"expressroute\"\nprefixes = [\"192.168.0.0/16\"]\nadvertises = [\"0.0.0.0/0\", \"203.0.113.0/24\"]\n[[route_table.route]]\nname = \"internet\"\nprefix = \"0.0.0.0/0\"\nnext_hop = \"Internet\"\n"
            ),
            &[
                ("outbound", "azure-sql", E),
                ("outbound", "azure-storage", E),
                ("outbound", "azure-management", E),
                ("outbound", "app-service-management", E),
                ("outbound", "azure-ad", E),
                ("asymmetric-route", "management", E),
                ("udr-beaten-by-bgp", "internet", W),
            ],
            "add a user route internet-203.0.113.0: prefix 203.0.113.0/24, next hop Internet, to the ASE subnet's route table (or more specific prefixes), or stop the gateway advertising 203.0.113.0/24 (a public prefix cross-advertised into private peering)",
        ),
        // The load balancer's and management's inbound denied.
        (
            "inbound",
            format!(
                "{ASE}[[nsg]]\nname = \"n\"\nsubnets = [\"ase\"]\n[[nsg.rule]]\nname = \"deny-in\"\npriority = 4000\ndirection = \"Inbound\"\naccess = \"Deny\"\nprotocol = \"*\"\n"
            ),
            &[
                ("inbound", "management", E),
                ("inbound", "load-balancer", E),
                ("inbound", "ase-subnet", E),
            ],
            "add to nsg n at priority 3990 (before deny-in at 4000) the Inbound Allow rule allow-management-in: protocol Tcp, source AppServiceManagement",
        ),
        // Private endpoint zone not linked, custom DNS not forwarding.
        (
            "dns",
            format!(
                "{ASE}[dns]\nservers = [\"10.0.0.53\"]\nforwards_to_azure = false\n[[private_endpoint]]\nname = \"kv\"\nfqdn = \"kv.vault.azure.net\"\nprivate_ip = \"10.0.0.20\"\npublic_ip = \"203.0.113.20\"\nzone = \"privatelink.vaultcore.azure.net\"\nzone_linked = false\n"
            ),
            &[
                ("private-endpoint-dns", "kv", W),
                ("custom-dns", "forwarding", W),
            ],
            "$ az network private-dns link vnet create --resource-group '<resource-group>' --zone-name privatelink.vaultcore.azure.net --name v-link --virtual-network v --registration-enabled false",
        ),
        // Custom DNS on-premises while gateway routes are not propagated.
        (
            "dns-onprem",
            format!(
                "{ASE}[dns]\nservers = [\"192.168.5.53\"]\n[onprem]\ngateway = \"vpn\"\nprefixes = [\"192.168.0.0/16\"]\n[route_table]\npropagation = false\n"
            ),
            &[("custom-dns", "192.168.5.53", E)],
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
                ("inbound", "management", E),
                ("custom-dns", "192.168.5.53", E),
            ],
            "nsg n rule no-onprem-dns",
        ),
    ];
    for (name, text, expected, needle) in cases {
        let a = audit(&inline(text));
        expect(&a, expected);
        assert!(
            a.to_string().contains(needle),
            "{name}: `{needle}` not in\n{a}"
        );
    }
}

#[test]
fn public_access_disabled_with_the_zone_unlinked_is_an_error() {
    const ASE: &str = "name = \"t\"\nenvironment = \"asev3\"\n[vnet]\nname = \"v\"\naddress_space = [\"10.0.0.0/16\"]\n[[vnet.subnet]]\nname = \"ase\"\nprefix = \"10.0.0.0/24\"\nrole = \"ase\"\n";
    let pe = |linked: bool, access: &str| {
        format!(
            "{ASE}[[private_endpoint]]\nname = \"kv\"\nfqdn = \"kv.vault.azure.net\"\nprivate_ip = \"10.0.0.20\"\npublic_ip = \"203.0.113.20\"\nzone = \"privatelink.vaultcore.azure.net\"\nzone_linked = {linked}\n{access}"
        )
    };
    // Public access on (or unknown): a warning, the traffic leaves the VNet.
    for access in ["", "public_network_access = true\n"] {
        let a = audit(&inline(&pe(false, access)));
        expect(&a, &[("private-endpoint-dns", "kv", Level::Warning)]);
        assert_eq!(a.problems[0].rule, "private-endpoint-dns");
    }
    // Public access disabled: every request by the public address fails.
    let a = audit(&inline(&pe(false, "public_network_access = false\n")));
    expect(&a, &[("private-endpoint-dns", "kv", Level::Error)]);
    contains_all(
        &a.problems[0].to_string(),
        &[
            "error[private-endpoint-public-access]",
            "kv.vault.azure.net resolves publicly, and the resource has public network access disabled",
            "refuses the app (public access is disabled)",
            "403 ForbiddenByConnection",
            "| zone_linked = true",
        ],
    );
    // Linked: nothing to say, whatever the access.
    let a = audit(&inline(&pe(true, "public_network_access = false\n")));
    assert!(a.problems.is_empty(), "{a}");
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
    expect(&a, &[("inbound", "load-balancer", Level::Error)]);
    contains_all(&a.problems[0].problem, &["TCP 80 from AzureLoadBalancer"]);
    contains_all(&a.problems[0].because, &["networking.md (S8)"]);
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
        ("seed-003-private-access.toml", true),
        // Public access disabled and the vault's zone not linked.
        ("seed-003-public-access-disabled.toml", false),
        ("pe-zone-not-linked.toml", true),
    ];
    for (file, works) in table {
        let a = audit(&scenario(file));
        assert_eq!(a.ase_works(), works, "{file}:\n{a}");
        // Levels come from the data: every error quotes why.
        for p in &a.problems {
            assert!(!p.because.is_empty() && !p.fix.is_empty(), "{file}: {p}");
        }
    }
    // Not forwarding is a warning with its fix; the on-premises server is
    // reachable through the gateway.
    let a = audit(&scenario("custom-dns-not-forwarding.toml"));
    expect(&a, &[("custom-dns", "forwarding", Level::Warning)]);
    assert!(a.problems[0].fix.contains("168.63.129.16"), "{a}");
    assert!(
        audit(&scenario("custom-dns-onprem.toml"))
            .problems
            .is_empty()
    );
    let mut cut = scenario("custom-dns-onprem.toml");
    cut.route_table.propagation = false;
    let a = audit(&cut);
    expect(&a, &[("custom-dns", "192.168.0.53", Level::Error)]);
    // Seed 003: only the vault (zone not linked, public access disabled)
    // is an error; a zone not linked with public access on is a warning.
    let a = audit(&scenario("seed-003-public-access-disabled.toml"));
    expect(&a, &[("private-endpoint-dns", "keyvault", Level::Error)]);
    contains_all(
        &a.to_string(),
        &[
            "error[private-endpoint-public-access]",
            "seed003-kv.vault.azure.net resolves publicly, and the resource has public network access disabled",
            "az network private-dns link vnet create",
        ],
    );
    assert!(
        audit(&scenario("seed-003-private-access.toml"))
            .problems
            .is_empty()
    );
}

#[test]
fn problems_are_placed_in_the_topology_file_and_the_export() {
    // Seed 004 imported from `az` output (resource groups named), with
    // the Sql rule taken out of the written file.
    let dir = tempfile::tempdir().unwrap();
    let fixtures =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/azure/seed-004");
    let out = dir.path().join("seed-004.toml");
    std::fs::copy(dir_tags(), dir.path().join("service-tags.json")).unwrap();
    let inputs: Vec<PathBuf> = ["az/vnet.json", "az/nsg.json", "az/ase.json"]
        .iter()
        .map(|f| fixtures.join(f))
        .collect();
    let options = crate::topology::import::Options {
        service_tags: Some(dir.path().join("service-tags.json")),
        ..Default::default()
    };
    let imported = crate::topology::import::import(&inputs, &out, &options).unwrap();
    crate::topology::import::save(&imported, &out).unwrap();
    let text = std::fs::read_to_string(&out).unwrap();
    let text = without_rule(&text, "allow-sql");
    std::fs::write(&out, &text).unwrap();
    let t = Topology::load(&out).unwrap();
    let located = Located::read(&out, &text);
    let a = Audit::run_located(&t, &Catalog::load(t.cloud, &[]).unwrap(), &located);
    expect(&a, &[("outbound", "azure-sql", Level::Error)]);
    let p = &a.problems[0];
    assert_eq!(p.at.to_string(), "rule:ase-nsg/deny-all-out");
    let here = p.in_topology.as_ref().unwrap();
    assert_eq!(here.file, out);
    assert_eq!(
        text.lines().nth(here.line - 1),
        Some("[[nsg.rule]]"),
        "{here:?}"
    );
    assert_eq!(text.lines().nth(here.line), Some("name = \"deny-all-out\""));
    // Imported from the NSG's `az` output, at the rule's object.
    let from = p.in_export.as_ref().unwrap();
    assert_eq!(from.file, fixtures.join("az/nsg.json"));
    let json = std::fs::read_to_string(&from.file).unwrap();
    let line = json.lines().nth(from.line - 1).unwrap();
    assert_eq!(&line[from.column - 1..from.column], "{", "{from:?}: {line}");
    assert!(
        json.lines()
            .skip(from.line - 1)
            .take(20)
            .any(|l| l.contains("\"name\": \"deny-all-out\"")),
        "{from:?}"
    );
    // The export named the resource group: the commands use it.
    assert!(
        p.az[0].contains("--resource-group contoso-rg --nsg-name ase-nsg"),
        "{p}"
    );
}

fn dir_tags() -> PathBuf {
    dir().join("service-tags.json")
}
