//! Whole networks: both input forms, seed 004, the writer's round trip.

use super::*;

#[test]
fn seed_004_as_an_arm_export_and_as_az_json_gives_one_topology() {
    let dir = scratch();
    let options = with_tags(dir.path());
    let arm = files("seed-004", &["export.json"]);
    let az = files("seed-004", &["az/vnet.json", "az/nsg.json", "az/ase.json"]);
    let (_, from_arm, arm_text) = round_trip(&arm, dir.path(), &options);
    let (_, from_az, az_text) = round_trip(&az, dir.path(), &options);
    assert_eq!(essence(&from_arm), essence(&from_az));
    assert_eq!(
        bare(&arm_text).replace("export.json", "X"),
        bare(&az_text).replace("vnet.json, nsg.json, ase.json", "X")
    );
}

#[test]
fn seed_004_exported_gives_the_answers_of_its_hand_written_file() {
    let dir = scratch();
    let (_, imported, _) = round_trip(
        &files("seed-004", &["export.json"]),
        dir.path(),
        &with_tags(dir.path()),
    );
    let seed = Topology::load(&lab_topologies().join("seed-004-nsg.toml")).unwrap();
    assert_eq!(imported.environment, seed.environment);
    assert_eq!(
        format!("{:?}", imported.vnet.subnets),
        format!("{:?}", seed.vnet.subnets)
    );
    assert_eq!(format!("{:?}", imported.nsgs), format!("{:?}", seed.nsgs));
    assert_eq!(answers(&imported), answers(&seed));
}

/// The contoso fixtures with their own service-tag file, in a scratch folder.
fn contoso_scratch() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixtures().join("contoso/service-tags.json"),
        dir.path().join("service-tags.json"),
    )
    .unwrap();
    dir
}

const CONTOSO_AZ: [&str; 15] = [
    "az/vnet.json",
    "az/nsgs.json",
    "az/route-table.json",
    "az/nics.json",
    "az/public-ips.json",
    "az/private-endpoint.json",
    "az/zone.json",
    "az/records.json",
    "az/links.json",
    "az/gateway.json",
    "az/local-gateway.json",
    "az/keyvault.json",
    "az/ase.json",
    "effective-routes.json",
    "effective-nsg.json",
];

#[test]
fn contoso_as_an_arm_export_and_as_az_json_gives_one_topology() {
    let dir = contoso_scratch();
    let options = with_tags(dir.path());
    let arm = files(
        "contoso",
        &["export.json", "effective-routes.json", "effective-nsg.json"],
    );
    // Another order: the inputs come in any order.
    let mut az = files("contoso", &CONTOSO_AZ);
    az.reverse();
    let (arm_import, from_arm, arm_text) = round_trip(&arm, dir.path(), &options);
    let (_, from_az, az_text) = round_trip(&az, dir.path(), &options);
    assert_eq!(essence(&from_arm), essence(&from_az));
    let body = |t: &str| {
        bare(t)
            .lines()
            .filter(|l| !l.starts_with("description = "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(body(&arm_text), body(&az_text));

    let t = &from_arm;
    assert_eq!(t.environment, crate::topology::Environment::Asev2Ilb);
    assert_eq!(t.name, "contoso-ase");
    let roles: Vec<String> = t
        .vnet
        .subnets
        .iter()
        .map(|s| format!("{} {} {:?}", s.name, s.prefix, s.role))
        .collect();
    assert_eq!(
        roles,
        [
            "ase-subnet 10.20.0.0/24 Ase",
            "backends 10.20.1.0/24 Backend",
            "private-endpoints 10.20.2.0/24 PrivateEndpoints",
            "GatewaySubnet 10.20.255.0/27 Gateway",
        ]
    );
    // The private endpoint, its zone linked by the VNet link, the Key
    // Vault's publicNetworkAccess kept, a stand-in public address from the
    // AzureKeyVault tag.
    let pe = &t.private_endpoints[0];
    assert_eq!(
        (
            pe.name.as_str(),
            pe.fqdn.as_str(),
            pe.private_ip.to_string(),
            pe.zone.as_str()
        ),
        (
            "kv-pe",
            "contoso-kv.vault.azure.net",
            "10.20.2.5".into(),
            "privatelink.vaultcore.azure.net"
        )
    );
    assert!(pe.zone_linked);
    assert_eq!(pe.public_network_access, Some(false));
    assert_eq!(pe.public_ip.to_string(), "203.0.113.20");
    // The SQL VM's NIC is a backend with its public IP and the port its NSG opens.
    let b = &t.backends[0];
    assert_eq!(
        (
            b.name.as_str(),
            b.private_ip.to_string(),
            b.public_ip.map(|i| i.to_string()),
            b.ports.clone()
        ),
        (
            "sql-vm",
            "10.20.1.6".into(),
            Some("203.0.113.6".into()),
            vec![1433]
        )
    );
    // BGP routes from the effective route table become on-premises prefixes.
    let onprem = t.onprem.as_ref().unwrap();
    assert_eq!(onprem.gateway, crate::topology::GatewayKind::Vpn);
    assert_eq!(
        onprem
            .prefixes
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["172.31.0.0/16", "192.168.0.0/16"]
    );
    // The route table of the ASE subnet, a service-tag route included.
    let routes: Vec<String> = t
        .route_table
        .routes
        .iter()
        .map(|r| format!("{} {} {}", r.name, r.target, r.next_hop))
        .collect();
    assert_eq!(
        routes,
        [
            "management AppServiceManagement Internet",
            "to-internet 0.0.0.0/0 Internet"
        ]
    );
    // NSG rules: TCP spelled upper case, prefixes and port ranges as arrays,
    // the Esp rule left out with the reason.
    let ase_nsg = t.nsgs.iter().find(|n| n.name == "ase-nsg").unwrap();
    let smtp = ase_nsg
        .rules
        .iter()
        .find(|r| r.name == "deny-smtp-out")
        .unwrap();
    assert_eq!(smtp.protocol, crate::topology::RuleProtocol::Tcp);
    assert_eq!(
        smtp.description.as_deref(),
        Some("Outbound SMTP is not allowed")
    );
    let web = ase_nsg
        .rules
        .iter()
        .find(|r| r.name == "allow-web-out")
        .unwrap();
    assert_eq!(web.destination.len(), 2);
    assert_eq!(web.destination_ports.len(), 2);
    assert!(!ase_nsg.rules.iter().any(|r| r.name == "allow-ipsec-out"));
    let summary = arm_import.summary.to_string();
    assert!(
        summary.contains(
            "rule allow-ipsec-out (protocol Esp) left out: it matches only IPsec Esp packets"
        ),
        "{summary}"
    );
    // Types the topology does not model are listed once, with their count.
    assert!(
        summary.contains("ignored: 1 Microsoft.Compute/disks, 1 Microsoft.Compute/virtualMachines, 1 Microsoft.Network/connections, 1 Microsoft.Network/privateDnsZones/SOA"),
        "{summary}"
    );
    // Every item carries a comment naming where it came from.
    for item in [
        "[[vnet.subnet]]",
        "[[nsg]]",
        "[[nsg.rule]]",
        "[[private_endpoint]]",
        "[[backend]]",
        "[onprem]",
        "[[route_table.route]]",
    ] {
        let lines: Vec<&str> = arm_text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            if *l == item {
                assert!(
                    lines[i - 1].starts_with("# "),
                    "{item} at line {} has no comment:\n{arm_text}",
                    i + 1
                );
            }
        }
    }
}

#[test]
fn the_writer_gives_back_every_seed_topology() {
    for entry in std::fs::read_dir(lab_topologies()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let original = Topology::load(&path).unwrap();
        let text = write(&original, &Provenance::default(), &Summary::default());
        let copy = path.with_file_name(format!(
            ".written-{}",
            path.file_name().unwrap().to_string_lossy()
        ));
        std::fs::write(&copy, &text).unwrap();
        let reloaded = Topology::load(&copy);
        std::fs::remove_file(&copy).unwrap();
        let reloaded = reloaded.unwrap_or_else(|e| panic!("{}: {e}\n{text}", path.display()));
        assert_eq!(essence(&original), essence(&reloaded), "{}", path.display());
        assert_eq!(
            text,
            write(&reloaded, &Provenance::default(), &Summary::default())
        );
    }
}

#[test]
fn lab_flows_for_every_dependency_backend_private_endpoint_and_onprem_prefix() {
    let dir = contoso_scratch();
    let options = Options {
        lab: true,
        ..with_tags(dir.path())
    };
    let arm = files(
        "contoso",
        &["export.json", "effective-routes.json", "effective-nsg.json"],
    );
    let (_, t, text) = round_trip(&arm, dir.path(), &options);
    let flows: Vec<String> = t
        .lab
        .traffic
        .iter()
        .map(|x| format!("{} {}:{}", x.name, x.to, x.port))
        .collect();
    let catalog = Catalog::load(t.cloud, &[]).unwrap();
    // Every dependency but DNS (which every name lookup exercises) has a flow.
    for dep in catalog.for_environment(t.environment) {
        assert_eq!(
            flows
                .iter()
                .any(|f| f.starts_with(&format!("{} ", dep.name))),
            dep.name != "dns",
            "{}: {flows:?}",
            dep.name
        );
    }
    for expected in [
        "azure-sql lab.database.windows.net:1433",
        "azure-storage lab.table.core.windows.net:443",
        "backend-sql-vm 10.20.1.6:1433",
        "pe-kv-pe contoso-kv.vault.azure.net:443",
        "onprem-172-31-0-0-16 172.31.0.10:443",
        "onprem-192-168-0-0-16 192.168.0.10:443",
    ] {
        assert!(flows.iter().any(|f| f == expected), "{expected}: {flows:?}");
    }
    // Endpoints at addresses their service tags own.
    let sql = t.endpoints.iter().find(|e| e.name == "azure-sql").unwrap();
    assert_eq!(sql.address.to_string(), "203.0.113.40");
    assert_eq!(t.lab.inbound[0].from.to_string(), "203.0.113.85");
    assert!(t.lab.traffic.iter().all(|x| x.expect.is_none()));
    assert!(
        text.contains("# generated by --lab: catalog dependency azure-sql at service tag Sql"),
        "{text}"
    );
}
