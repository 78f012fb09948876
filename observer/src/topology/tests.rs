use std::path::Path;

use super::*;

const BASE: &str = r#"name = "t"
environment = "asev2-external"
[vnet]
name = "vnet"
address_space = ["10.0.0.0/16"]
[[vnet.subnet]]
name = "ase"
prefix = "10.0.0.0/24"
role = "ase"
"#;

fn error(text: &str) -> TopologyError {
    Topology::parse(Path::new("lab.toml"), text).expect_err("must be refused")
}

#[test]
fn every_seed_topology_loads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../lab/topologies");
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let t = Topology::load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert!(
                !t.lab.traffic.is_empty(),
                "{} has no traffic",
                path.display()
            );
            count += 1;
        }
    }
    assert!(count >= 8);
}

#[test]
fn host_bits_are_refused_with_the_canonical_prefix() {
    // The docs' own example.
    let e = error(&BASE.replace("10.0.0.0/16", "192.168.250.0/16"));
    assert_eq!((e.line, e.path.to_str()), (5, Some("lab.toml")));
    assert!(
        e.message
            .contains("`192.168.250.0/16` has host bits set; the prefix is 192.168.0.0/16"),
        "{e}"
    );
    assert!(e.to_string().starts_with("lab.toml:5:"), "{e}");
}

#[test]
fn shape_errors_point_at_the_line_with_a_hint() {
    let e = error(&format!("{BASE}colour = \"blue\"\n"));
    assert!(e.message.contains("unknown field `colour`"), "{e}");
    assert_eq!(e.line, 10);
    assert!(e.hint.unwrap().contains("docs/topology.md"));

    let e = error(&format!(
        "{BASE}[[route_table.route]]\nname = \"r\"\nprefix = \"0.0.0.0/0\"\nnext_hop = \"Firewall\"\n"
    ));
    assert!(e.message.contains("unknown variant `Firewall`"), "{e}");
    assert!(e.message.contains("VirtualAppliance"), "{e}");
    assert_eq!(e.line, 13);

    let e = error(&format!("outbound_vip = \"1.2.3\"\n{BASE}"));
    assert!(e.message.contains("invalid IPv4 address syntax"), "{e}");
}

#[test]
fn semantic_errors_point_at_the_offending_table() {
    let cases: &[(&str, &str, usize)] = &[
        (
            "[[route_table.route]]\nname = \"fw\"\nprefix = \"0.0.0.0/0\"\nnext_hop = \"VirtualAppliance\"\n",
            "next hop VirtualAppliance needs next_hop_ip",
            10,
        ),
        (
            "[[vnet.subnet]]\nname = \"b\"\nprefix = \"10.0.0.128/25\"\nrole = \"backend\"\n",
            "subnet b (10.0.0.128/25) overlaps subnet ase (10.0.0.0/24)",
            12,
        ),
        (
            "[[vnet.subnet]]\nname = \"b\"\nprefix = \"10.1.0.0/24\"\nrole = \"backend\"\n",
            "lies outside the VNet's address space",
            12,
        ),
        (
            "[[vnet.subnet]]\nname = \"ase\"\nprefix = \"10.0.1.0/24\"\nrole = \"backend\"\n",
            "duplicate subnet name `ase`",
            10,
        ),
        (
            "[[route_table.route]]\nname = \"x\"\nservice_tag = \"Nope\"\nnext_hop = \"Internet\"\n",
            "service tag `Nope` is not defined",
            12,
        ),
        (
            "[[backend]]\nname = \"sql\"\nprivate_ip = \"10.9.0.6\"\n",
            "private_ip 10.9.0.6 is outside the VNet",
            10,
        ),
    ];
    for (extra, message, line) in cases {
        // Topology::load-only checks (service tags) go through a file.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lab.toml");
        std::fs::write(&path, format!("{BASE}{extra}")).unwrap();
        let e = Topology::load(&path).expect_err(extra);
        assert!(e.message.contains(message), "{extra}: {e}");
        assert_eq!(e.line, *line, "{extra}: {e}");
        assert!(e.hint.is_some(), "{e}");
    }
}

#[test]
fn route_all_is_only_for_multi_tenant() {
    let e = error(&format!("route_all = true\n{BASE}"));
    assert!(
        e.message
            .contains("route_all applies only to environment = \"multi-tenant\""),
        "{e}"
    );
    assert_eq!(e.line, 1);
}

#[test]
fn a_missing_file_says_how_to_fix_it() {
    let e = Topology::load(Path::new("/nonexistent/lab.toml")).unwrap_err();
    assert!(e.message.contains("cannot read the topology file"));
}

#[test]
fn lab_instances_are_counted_and_bounded() {
    let t = Topology::parse(
        Path::new("lab.toml"),
        &format!("{BASE}[lab]\ninstances = 3\n"),
    )
    .unwrap();
    assert_eq!(
        t.instance_addresses(),
        ["10.0.0.4", "10.0.0.5", "10.0.0.6"].map(|a| a.parse::<std::net::Ipv4Addr>().unwrap())
    );
    let e = error(&format!("{BASE}[lab]\ninstances = 9\n"));
    assert_eq!((e.line, e.column), (11, 13), "{e}");
    assert!(e.message.contains("1 to 8"), "{e}");
    let e = error(&format!(
        "{BASE}[lab]\nworkload = \"10.0.0.250\"\ninstances = 8\n"
    ));
    assert!(e.message.contains("outside the ASE subnet"), "{e}");
}
