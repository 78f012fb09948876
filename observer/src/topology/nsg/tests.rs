//! Validation of `[[nsg]]`: every refusal names file:line:column and a hint.

use std::path::Path;

use crate::topology::{
    Access, AddressPrefix, PortRange, RuleDirection, RuleProtocol, Topology, TopologyError,
};

const BASE: &str = r#"name = "t"
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
"#;

const RULE: &str = r#"
[[nsg]]
name = "ase-nsg"
subnets = ["ase"]
[[nsg.rule]]
name = "allow-sql"
priority = 200
direction = "Outbound"
access = "Allow"
protocol = "Tcp"
source = ["10.0.0.0/24"]
destination = ["Sql"]
source_ports = ["*"]
destination_ports = ["1433", "11000-11999", "14000-14999"]
"#;

fn parse(text: &str) -> Result<Topology, TopologyError> {
    Topology::parse(Path::new("t.toml"), text)
}

fn refused(extra: &str) -> TopologyError {
    parse(&format!("{BASE}{extra}")).expect_err("must be refused")
}

/// The 1-based line of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .expect("needle in text")
        + 1
}

#[test]
fn the_issue_example_parses_into_azure_terms() {
    let t = parse(&format!("{BASE}{RULE}")).unwrap();
    let nsg = t.nsg_of("ase").expect("associated");
    assert_eq!(nsg.name, "ase-nsg");
    let r = &nsg.rules[0];
    assert_eq!(
        (r.priority, r.direction, r.access, r.protocol),
        (
            200,
            RuleDirection::Outbound,
            Access::Allow,
            RuleProtocol::Tcp
        )
    );
    assert_eq!(r.destination, vec![AddressPrefix::Tag("Sql".into())]);
    assert_eq!(r.source_ports, vec![PortRange::ANY]);
    assert_eq!(
        r.destination_ports,
        vec![
            PortRange {
                first: 1433,
                last: 1433
            },
            PortRange {
                first: 11000,
                last: 11999
            },
            PortRange {
                first: 14000,
                last: 14999
            }
        ]
    );
    // User rule first, then the three outbound defaults.
    let names: Vec<String> = nsg
        .effective(RuleDirection::Outbound)
        .into_iter()
        .map(|r| format!("{} {}", r.priority, r.name))
        .collect();
    assert_eq!(
        names,
        [
            "200 allow-sql",
            "65000 AllowVnetOutBound",
            "65001 AllowInternetOutBound",
            "65500 DenyAllOutBound"
        ]
    );
    let inbound: Vec<String> = nsg
        .effective(RuleDirection::Inbound)
        .into_iter()
        .map(|r| format!("{} {}", r.priority, r.name))
        .collect();
    assert_eq!(
        inbound,
        [
            "65000 AllowVnetInBound",
            "65001 AllowAzureLoadBalancerInBound",
            "65500 DenyAllInBound"
        ]
    );
}

/// Each bad value, the message it must produce and the text it is on.
#[test]
fn bad_rules_are_refused_at_their_place_with_a_hint() {
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "priority = 200",
            "priority = 99",
            "priority 99 is out of range",
            "100..4096",
        ),
        (
            "priority = 200",
            "priority = 4097",
            "priority 4097 is out of range",
            "100..4096",
        ),
        (
            "priority = 200",
            "priority = 65000",
            "out of range",
            "default rules",
        ),
        (
            "destination = [\"Sql\"]",
            "destination = [\"Sqll\"]",
            "unknown service tag `Sqll`",
            "VirtualNetwork",
        ),
        (
            "subnets = [\"ase\"]",
            "subnets = [\"asee\"]",
            "unknown subnet `asee`",
            "ase",
        ),
        (
            "\"11000-11999\"",
            "\"11999-11000\"",
            "runs backwards",
            "11000-11999",
        ),
        ("\"1433\"", "\"70000\"", "`70000` is not a port", "\"443\""),
        (
            "source = [\"10.0.0.0/24\"]",
            "source = [\"10.0.0.5/24\"]",
            "has host bits set; the prefix is 10.0.0.0/24",
            "canonical",
        ),
        (
            "source = [\"10.0.0.0/24\"]",
            "source = [\"10.0.0/24!\"]",
            "is not an IPv4 prefix",
            "canonical",
        ),
        (
            "protocol = \"Tcp\"",
            "protocol = \"Http\"",
            "unknown variant `Http`",
            "values listed",
        ),
        (
            "direction = \"Outbound\"",
            "direction = \"outbound\"",
            "unknown variant `outbound`",
            "values listed",
        ),
    ];
    for (from, to, message, hint) in cases {
        let rule = RULE.replace(from, to);
        assert_ne!(rule, RULE, "{from} not in the fixture");
        let text = format!("{BASE}{rule}");
        let e = parse(&text).expect_err(to);
        assert!(e.message.contains(message), "{to}: {e}");
        assert!(e.hint.as_deref().unwrap_or("").contains(hint), "{to}: {e}");
        assert_eq!(
            e.line,
            line_of(&text, to.split('"').nth(1).unwrap_or(to)),
            "{to}: {e}"
        );
        assert!(e.column > 0, "{e}");
        assert!(e.to_string().starts_with(&format!("t.toml:{}:", e.line)));
    }
}

#[test]
fn priorities_are_unique_per_direction() {
    let second = |direction: &str| {
        RULE.to_string()
            + &format!(
                "[[nsg.rule]]\nname = \"second\"\npriority = 200\ndirection = \"{direction}\"\naccess = \"Deny\"\nprotocol = \"*\"\n"
            )
    };
    let text = format!("{BASE}{}", second("Outbound"));
    let e = parse(&text).expect_err("duplicate priority");
    assert!(
        e.message
            .contains("priority 200 is already used by Outbound rule allow-sql"),
        "{e}"
    );
    assert_eq!(
        e.line,
        text.lines()
            .collect::<Vec<_>>()
            .iter()
            .rposition(|l| *l == "priority = 200")
            .unwrap()
            + 1
    );
    assert!(e.hint.unwrap().contains("unique per direction"));
    // The same number in the other direction is fine.
    let t = parse(&format!("{BASE}{}", second("Inbound"))).unwrap();
    assert_eq!(t.nsgs[0].rules.len(), 2);
}

#[test]
fn one_nsg_per_subnet_and_unique_names() {
    let e = refused(&format!(
        "{RULE}[[nsg]]\nname = \"other\"\nsubnets = [\"ase\"]\n"
    ));
    assert!(
        e.message
            .contains("associated with nsg ase-nsg and nsg other"),
        "{e}"
    );
    let e = refused(&format!("{RULE}[[nsg]]\nname = \"ase-nsg\"\n"));
    assert!(e.message.contains("duplicate nsg name `ase-nsg`"), "{e}");
}

#[test]
fn service_tags_of_the_tag_file_are_known_once_it_is_read() {
    // Parsing alone cannot know the file's tags: load() checks them.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../lab/topologies");
    let text = format!(
        "service_tags = \"service-tags.json\"\n{}{}",
        BASE,
        RULE.replace("\"Sql\"", "\"AppServiceManagement\"")
    );
    let tmp = std::env::temp_dir().join(format!("observer-nsg-tags-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let path = tmp.join("t.toml");
    std::fs::copy(dir.join("service-tags.json"), tmp.join("service-tags.json")).unwrap();
    std::fs::write(&path, &text).unwrap();
    let t = Topology::load(&path);
    std::fs::write(
        &path,
        text.replace("AppServiceManagement", "AppServiceManagment"),
    )
    .unwrap();
    let e = Topology::load(&path).expect_err("misspelled tag");
    let _ = std::fs::remove_dir_all(&tmp);
    assert!(t.is_ok(), "{:?}", t.err());
    assert!(
        e.message
            .contains("unknown service tag `AppServiceManagment`"),
        "{e}"
    );
}
