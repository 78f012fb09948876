//! Input shapes one at a time: Microsoft's own samples, bad JSON, types
//! the topology does not model, spellings, effective views, refusals.

use super::*;

fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn err(inputs: &[PathBuf], dir: &Path, options: &Options) -> String {
    import(inputs, &dir.join("out.toml"), options)
        .expect_err("must be refused")
        .to_string()
}

#[test]
fn bad_json_points_at_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(
        dir.path(),
        "vnet.json",
        "{\n  \"name\": \"v\",\n  \"type\": \"Microsoft.Network/virtualNetworks\",\n}\n",
    );
    let e = err(&[path], dir.path(), &Options::default());
    // The trailing comma itself.
    assert!(
        e.starts_with(&format!(
            "{}:3:46: not valid JSON: ",
            dir.path().join("vnet.json").display()
        )),
        "{e}"
    );
    assert!(e.contains("Trailing commas are not allowed"), "{e}");
    // ARM templates may hold comments.
    let template = write_file(
        dir.path(),
        "commented.json",
        "// exported\n{ \"$schema\": \"https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#\", /* none */ \"contentVersion\": \"1.0.0.0\", \"resources\": [] }",
    );
    let e = err(&[template], dir.path(), &Options::default());
    assert!(e.contains("no App Service Environment"), "{e}");
}

#[test]
fn what_is_not_azure_json_is_refused_with_the_commands_to_use() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(dir.path(), "list.json", "[{\"id\": \"x\"}]");
    let e = err(&[path], dir.path(), &Options::default());
    assert!(e.contains("list.json:1:2 $[0]: not an ARM template"), "{e}");
    let tags = lab_topologies().join("service-tags.json");
    let e = err(&[tags], dir.path(), &Options::default());
    assert!(
        e.contains("pass Microsoft's service-tags JSON with --service-tags FILE"),
        "{e}"
    );
}

#[test]
fn types_the_topology_does_not_model_are_listed_once_with_their_count() {
    let dir = scratch();
    let vms = write_file(
        dir.path(),
        "vms.json",
        &serde_json::to_string(&(1..=3).map(|i| serde_json::json!({
            "id": format!("/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/vm{i}"),
            "name": format!("vm{i}"),
            "type": "Microsoft.Compute/virtualMachines",
            "location": "westeurope",
            "properties": { "hardwareProfile": { "vmSize": "Standard_B2s" } }
        })).collect::<Vec<_>>()).unwrap(),
    );
    let mut inputs = files("seed-004", &["export.json"]);
    inputs.push(vms);
    let imported = import(
        &inputs,
        &dir.path().join("out.toml"),
        &with_tags(dir.path()),
    )
    .unwrap();
    let summary = imported.summary.to_string();
    assert!(
        summary
            .contains("ignored: 1 Microsoft.Web/serverfarms, 3 Microsoft.Compute/virtualMachines")
            || summary.contains(
                "ignored: 3 Microsoft.Compute/virtualMachines, 1 Microsoft.Web/serverfarms"
            ),
        "{summary}"
    );
    assert_eq!(summary.matches("virtualMachines").count(), 1, "{summary}");
}

#[test]
fn a_service_tag_without_prefixes_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let e = err(
        &files("seed-004", &["export.json"]),
        dir.path(),
        &Options::default(),
    );
    assert!(
        e.contains("NSG ase-nsg rule allow-management-in names service tag `AppServiceManagement`"),
        "{e}"
    );
    assert!(e.contains("--service-tags"), "{e}");
    assert!(e.contains("list-effective-nsg"), "{e}");
}

#[test]
fn microsofts_samples_the_ase_subnet_must_come_with_its_vnet() {
    let dir = tempfile::tempdir().unwrap();
    let e = err(
        &files(
            "rest-api-specs",
            &[
                "AppServiceEnvironments_ListByResourceGroup.json",
                "VirtualNetworkGet.json",
            ],
        ),
        dir.path(),
        &Options::default(),
    );
    assert!(
        e.contains("the ASE's subnet is in VNet `test-subnet`, which is not in the inputs"),
        "{e}"
    );
    assert!(e.contains("az network vnet show"), "{e}");
}

#[test]
fn microsofts_samples_with_a_vnet_integrated_web_app() {
    let dir = tempfile::tempdir().unwrap();
    let mut inputs = files(
        "rest-api-specs",
        &[
            "VirtualNetworkGet.json",
            "NetworkSecurityGroupGet.json",
            "RouteTableGet.json",
            "NetworkInterfaceEffectiveRouteTableList.json",
            "NetworkInterfaceEffectiveNSGList.json",
        ],
    );
    inputs.extend(files("multi-tenant", &["webapp.json"]));
    let (imported, t, text) = round_trip(&inputs, dir.path(), &Options::default());
    assert_eq!(t.environment, crate::topology::Environment::MultiTenant);
    assert_eq!(t.name, "contoso-app");
    // outboundVnetRouting.allTraffic wins over the legacy flag.
    assert!(t.route_all);
    assert_eq!(
        t.outbound_vip.map(|v| v.to_string()).as_deref(),
        Some("20.59.80.14")
    );
    assert_eq!(t.vnet.subnets[0].name, "subnet1");
    assert_eq!(t.vnet.subnets[0].role, crate::topology::SubnetRole::Ase);
    // The NSG and route table of the samples are attached to nothing here.
    assert!(t.nsgs.is_empty());
    assert!(t.route_table.routes.is_empty());
    let summary = imported.summary.to_string();
    assert!(
        summary.contains("Microsoft.Network/networkSecurityGroups testnsg"),
        "{summary}"
    );
    assert!(
        summary.contains("not connected to the ASE's VNet test-vnet, left out"),
        "{summary}"
    );
    assert!(summary.contains("NSG test-nsg applies to subnet rg1-vnet/subnets/default in the effective NSG list, which is not a subnet of the ASE's VNet: left out"), "{summary}");
    assert!(text.contains("route_all = true"), "{text}");
    assert!(
        text.contains("# from Microsoft.Web/sites contoso-app (webapp.json:"),
        "{text}"
    );
}

#[test]
fn effective_rules_of_microsofts_sample_in_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixtures().join("rest-api-specs/NetworkInterfaceEffectiveNSGList.json");
    let doc = json::Doc::read(&path).unwrap();
    let rules = doc.root.get("value").unwrap().as_array()[0]
        .get("effectiveSecurityRules")
        .unwrap()
        .as_array();
    let converted: Vec<String> = rules[..2]
        .iter()
        .map(|r| match nsg::convert(r, true).unwrap() {
            nsg::Converted::Rule(rule, None) => format!(
                "{} {} {} {:?} {:?} {:?} {:?}",
                rule.name,
                rule.priority,
                rule.protocol.as_str(),
                rule.source
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>(),
                rule.destination
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>(),
                rule.source_ports
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>(),
                rule.destination_ports
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>(),
            ),
            _ => panic!("not a rule"),
        })
        .collect();
    assert_eq!(
        converted,
        [
            r#"rule1 234 Tcp ["0.0.0.0/32"] ["0.0.0.0/32"] ["456"] ["6579"]"#,
            r#"default-allow-rdp 1000 Tcp ["1.1.1.1/32"] ["*"] ["*"] ["3389"]"#,
        ]
    );
    let _ = dir;
}

#[test]
fn rule_spellings_and_what_the_model_cannot_hold() {
    let rule = |json: &str| {
        let doc = json::Doc::parse(Path::new("r.json"), json.to_string()).unwrap();
        nsg::convert(&doc.root, false)
    };
    let base = r#""name": "r", "priority": 200, "direction": "Outbound", "access": "Allow", "sourcePortRange": "*", "destinationPortRange": "443""#;
    for (protocol, expected) in [
        ("TCP", "Tcp"),
        ("tcp", "Tcp"),
        ("Udp", "Udp"),
        ("Icmp", "Icmp"),
        ("*", "*"),
        ("Any", "*"),
    ] {
        let json = format!(
            r#"{{{base}, "protocol": "{protocol}", "sourceAddressPrefix": "*", "destinationAddressPrefix": "*"}}"#
        );
        match rule(&json).unwrap() {
            nsg::Converted::Rule(r, _) => assert_eq!(r.protocol.as_str(), expected),
            _ => panic!("{protocol}"),
        }
    }
    for protocol in ["Esp", "Ah"] {
        let json = format!(
            r#"{{{base}, "protocol": "{protocol}", "sourceAddressPrefix": "*", "destinationAddressPrefix": "*"}}"#
        );
        match rule(&json).unwrap() {
            nsg::Converted::Dropped(why) => {
                assert!(
                    why.contains(&format!("matches only IPsec {protocol} packets")),
                    "{why}"
                );
                assert!(why.contains("no TCP, UDP or ICMP verdict changes"), "{why}");
            }
            _ => panic!("{protocol} kept"),
        }
    }
    // Application security groups match NIC members only.
    let json = format!(
        r#"{{{base}, "protocol": "Tcp", "sourceAddressPrefix": "*", "destinationApplicationSecurityGroups": [{{"id": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/applicationSecurityGroups/web"}}]}}"#
    );
    assert!(
        matches!(rule(&json).unwrap(), nsg::Converted::Dropped(w) if w.contains("application security groups"))
    );
    // IPv6 entries are left out with a note; a rule of IPv6 only is dropped.
    let json = format!(
        r#"{{{base}, "protocol": "Tcp", "sourceAddressPrefixes": ["10.0.0.0/24", "fd00::/8"], "destinationAddressPrefix": "*"}}"#
    );
    assert!(
        matches!(rule(&json).unwrap(), nsg::Converted::Rule(r, Some(n)) if r.source.len() == 1 && n.contains("IPv6"))
    );
    let json = format!(
        r#"{{{base}, "protocol": "Tcp", "sourceAddressPrefix": "fd00::/8", "destinationAddressPrefix": "*"}}"#
    );
    assert!(
        matches!(rule(&json).unwrap(), nsg::Converted::Dropped(w) if w.contains("IPv6 prefixes only"))
    );
    // Prefixes and ranges as arrays win over the single field left empty.
    let json = r#"{"name": "r", "priority": 300, "direction": "Inbound", "access": "Deny", "protocol": "Udp", "sourceAddressPrefix": "", "sourceAddressPrefixes": ["10.0.0.0/24", "10.1.0.5"], "destinationAddressPrefix": "VirtualNetwork", "sourcePortRange": "*", "destinationPortRange": "", "destinationPortRanges": ["53", "5000-5010"]}"#;
    match rule(json).unwrap() {
        nsg::Converted::Rule(r, None) => {
            assert_eq!(
                r.source.iter().map(ToString::to_string).collect::<Vec<_>>(),
                ["10.0.0.0/24", "10.1.0.5/32"]
            );
            assert_eq!(
                r.destination_ports
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>(),
                ["53", "5000-5010"]
            );
        }
        _ => panic!("not a rule"),
    }
    // Bad values say what is wrong.
    let json = format!(r#"{{{base}, "priority": 70000, "protocol": "Tcp"}}"#)
        .replace(r#""priority": 200, "#, "");
    assert!(matches!(rule(&json), Err(e) if e.contains("70000 is outside 100..4096")));
    let json = format!(r#"{{{base}, "protocol": "Gre"}}"#);
    assert!(
        matches!(rule(&json), Err(e) if e.contains("`gre` is not Tcp, Udp, Icmp, Esp, Ah or *"))
    );
}

#[test]
fn forced_tunnelling_bgp_and_custom_dns_from_the_effective_views() {
    let dir = scratch();
    // Seed 004's network with a custom DNS server and an ExpressRoute
    // gateway that advertises 0.0.0.0/0 (the effective routes say so).
    let vnet = std::fs::read_to_string(fixtures().join("seed-004/az/vnet.json")).unwrap();
    let mut vnet: serde_json::Value = serde_json::from_str(&vnet).unwrap();
    vnet["dhcpOptions"] = serde_json::json!({ "dnsServers": ["192.168.1.4"] });
    let vnet = write_file(dir.path(), "vnet.json", &vnet.to_string());
    let routes = write_file(
        dir.path(),
        "routes.json",
        r#"{"nextLink": null, "value": [
          {"source": "Default", "state": "Active", "addressPrefix": ["192.168.0.0/16"], "nextHopType": "VnetLocal", "nextHopIpAddress": []},
          {"source": "VirtualNetworkGateway", "state": "Active", "addressPrefix": ["10.50.0.0/16"], "nextHopType": "VirtualNetworkGateway", "nextHopIpAddress": ["10.3.129.68"]},
          {"source": "VirtualNetworkGateway", "state": "Active", "addressPrefix": ["0.0.0.0/0"], "nextHopType": "VirtualNetworkGateway", "nextHopIpAddress": ["10.3.129.68"]},
          {"source": "Default", "state": "Invalid", "addressPrefix": ["0.0.0.0/0"], "nextHopType": "Internet", "nextHopIpAddress": []}
        ]}"#,
    );
    let mut inputs = vec![vnet, routes];
    inputs.extend(files("seed-004", &["az/nsg.json", "az/ase.json"]));
    let (imported, t, text) = round_trip(&inputs, dir.path(), &with_tags(dir.path()));
    let onprem = t.onprem.as_ref().unwrap();
    assert_eq!(
        onprem
            .prefixes
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["10.50.0.0/16"]
    );
    assert_eq!(
        onprem
            .bgp_routes
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["10.50.0.0/16", "0.0.0.0/0"]
    );
    assert!(text.contains("advertises = [\"0.0.0.0/0\"]"), "{text}");
    assert!(
        text.contains("no virtual network gateway in the inputs; vpn assumed"),
        "{text}"
    );
    assert_eq!(
        t.dns.servers,
        ["192.168.1.4".parse::<std::net::IpAddr>().unwrap()]
    );
    assert!(
        text.contains("forwards_to_azure: not in Azure's export; true assumed"),
        "{text}"
    );
    // Forced tunnelling is now what `route` says for the SQL endpoint.
    let decision = EffectiveRoutes::build(&t).lookup("203.0.113.40".parse().unwrap());
    assert_eq!(
        decision.chosen.next_hop,
        crate::topology::NextHop::VirtualNetworkGateway
    );
    assert!(
        imported
            .summary
            .read
            .contains_key(resource::types::EFFECTIVE_ROUTES)
    );
}

#[test]
fn inline_and_child_rules_that_differ_keep_the_child_and_say_so() {
    let dir = scratch();
    let text = std::fs::read_to_string(fixtures().join("seed-004/export.json")).unwrap();
    let mut template: serde_json::Value = serde_json::from_str(&text).unwrap();
    let resources = template["resources"].as_array_mut().unwrap();
    let child = resources
        .iter_mut()
        .find(|r| {
            r["name"]
                .as_str()
                .is_some_and(|n| n.ends_with("/allow-web')]"))
        })
        .unwrap();
    child["properties"]["destinationPortRanges"] = serde_json::json!(["443"]);
    let path = write_file(dir.path(), "export.json", &template.to_string());
    let (imported, t, _) = round_trip(&[path], dir.path(), &with_tags(dir.path()));
    let web = t.nsgs[0]
        .rules
        .iter()
        .find(|r| r.name == "allow-web")
        .unwrap();
    assert_eq!(
        web.destination_ports
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["443"]
    );
    assert!(imported.summary.to_string().contains("rule allow-web: the inline rule and the child resource differ; the child resource (deployed last) is used"));
}

#[test]
fn a_topology_the_loader_refuses_names_the_resource() {
    let dir = scratch();
    let vnet = std::fs::read_to_string(fixtures().join("seed-004/az/vnet.json")).unwrap();
    let mut vnet: serde_json::Value = serde_json::from_str(&vnet).unwrap();
    let mut other = vnet["subnets"][0].clone();
    other["name"] = "overlap".into();
    other["id"] = other["id"]
        .as_str()
        .unwrap()
        .replace("/subnets/ase", "/subnets/overlap")
        .into();
    other["addressPrefix"] = "192.168.251.192/26".into();
    other
        .as_object_mut()
        .unwrap()
        .remove("networkSecurityGroup");
    vnet["subnets"].as_array_mut().unwrap().push(other);
    let vnet = write_file(dir.path(), "vnet.json", &vnet.to_string());
    let mut inputs = vec![vnet];
    inputs.extend(files("seed-004", &["az/nsg.json", "az/ase.json"]));
    let out = dir.path().join("out.toml");
    let imported = import(&inputs, &out, &with_tags(dir.path())).unwrap();
    let e = save(&imported, &out).unwrap_err().to_string();
    assert!(e.contains("overlaps subnet ase"), "{e}");
    assert!(
        e.contains(
            "the item came from Microsoft.Network/virtualNetworks subnet overlap (vnet.json:"
        ),
        "{e}"
    );
    assert!(!out.exists(), "a refused topology is not left behind");
}

#[test]
fn the_service_tag_file_is_named_relative_to_the_output() {
    let dir = scratch();
    let out = dir.path().join("sub/out.toml");
    std::fs::create_dir_all(dir.path().join("sub")).unwrap();
    let imported = import(
        &files("seed-004", &["export.json"]),
        &out,
        &with_tags(dir.path()),
    )
    .unwrap();
    let (file, _) = imported.topology.service_tags_file.clone().unwrap();
    assert_eq!(
        Path::new(&file),
        std::path::absolute(dir.path().join("service-tags.json")).unwrap()
    );
    let out = dir.path().join("out.toml");
    let imported = import(
        &files("seed-004", &["export.json"]),
        &out,
        &with_tags(dir.path()),
    )
    .unwrap();
    assert_eq!(
        imported.topology.service_tags_file.unwrap().0,
        "service-tags.json"
    );
    // A bare file name in the working folder.
    assert_eq!(
        super::super::build::relative_for_test(Path::new("tags.json"), Path::new("out.toml")),
        "tags.json"
    );
}

#[test]
fn bicep_symbolic_resources_and_nested_children() {
    // `az bicep build` with languageVersion 2.0 writes resources as an
    // object of symbolic names and child names with format(); templates
    // may also nest children with names relative to their parent.
    let dir = scratch();
    let template = write_file(
        dir.path(),
        "main.json",
        r#"{
  "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
  "languageVersion": "2.0",
  "contentVersion": "1.0.0.0",
  "metadata": { "_generator": { "name": "bicep", "version": "0.30.23.60470" } },
  "parameters": { "prefix": { "type": "string", "defaultValue": "lab" } },
  "variables": { "vnetName": "[format('{0}-vnet', parameters('prefix'))]" },
  "resources": {
    "vnet": {
      "type": "Microsoft.Network/virtualNetworks",
      "apiVersion": "2023-09-01",
      "name": "[variables('vnetName')]",
      "location": "[resourceGroup().location]",
      "properties": { "addressSpace": { "addressPrefixes": ["10.9.0.0/16"] } },
      "resources": [
        {
          "type": "subnets",
          "apiVersion": "2023-09-01",
          "name": "workers",
          "properties": { "addressPrefix": "10.9.1.0/24" }
        }
      ]
    },
    "aseSubnet": {
      "type": "Microsoft.Network/virtualNetworks/subnets",
      "apiVersion": "2023-09-01",
      "name": "[format('{0}/{1}', variables('vnetName'), 'ase')]",
      "properties": {
        "addressPrefix": "10.9.0.0/24",
        "delegations": [ { "name": "ase", "properties": { "serviceName": "Microsoft.Web/hostingEnvironments" } } ]
      },
      "dependsOn": ["vnet"]
    },
    "ase": {
      "type": "Microsoft.Web/hostingEnvironments",
      "apiVersion": "2022-09-01",
      "name": "[format('{0}-ase', parameters('prefix'))]",
      "kind": "ASEV3",
      "location": "[resourceGroup().location]",
      "properties": {
        "virtualNetwork": { "id": "[resourceId('Microsoft.Network/virtualNetworks/subnets', variables('vnetName'), 'ase')]" },
        "internalLoadBalancingMode": "Web, Publishing"
      },
      "dependsOn": ["aseSubnet"]
    }
  }
}"#,
    );
    let (imported, t, text) = round_trip(&[template], dir.path(), &Options::default());
    assert_eq!(t.name, "lab-ase");
    assert_eq!(t.environment, crate::topology::Environment::Asev3);
    assert_eq!(t.vnet.name, "lab-vnet");
    let subnets: Vec<String> = t
        .vnet
        .subnets
        .iter()
        .map(|s| format!("{} {:?}", s.name, s.role))
        .collect();
    assert_eq!(subnets, ["ase Ase", "workers Other"]);
    assert!(text.contains("main.json:9:13 $.resources.vnet"), "{text}");
    assert!(text.contains("$.resources.vnet.resources[0]"), "{text}");
    assert!(imported.summary.ignored.is_empty());
}

/// Found by the `azure_export` fuzz target: two rules of one direction at
/// one priority imported, and the TOML written was then refused.
#[test]
fn two_rules_at_one_priority_are_refused_at_the_later_rule() {
    let dir = scratch();
    let nsg = std::fs::read_to_string(fixtures().join("seed-004/az/nsg.json")).unwrap();
    let mut nsg: serde_json::Value = serde_json::from_str(&nsg).unwrap();
    // allow-load-balancer-in (110) moves to allow-management-in's 100.
    assert_eq!(nsg["securityRules"][1]["priority"], 110);
    nsg["securityRules"][1]["priority"] = 100.into();
    let nsg = write_file(dir.path(), "nsg.json", &nsg.to_string());
    let mut inputs = files("seed-004", &["az/vnet.json", "az/ase.json"]);
    inputs.push(nsg);
    let e = err(&inputs, dir.path(), &with_tags(dir.path()));
    assert!(
        e.contains(
            "rule allow-load-balancer-in: priority 100 is already used by Inbound rule allow-management-in"
        ),
        "{e}"
    );
    assert!(e.contains("nsg.json:"), "located in the file: {e}");
}
