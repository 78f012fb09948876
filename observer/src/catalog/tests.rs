//! The built-in catalog's answers (dependencies by name, tag, port and
//! cloud; inbound requirements; levels and why), user files and their errors.

use super::*;
use crate::topology::ServiceTags;

fn find<'a>(catalog: &'a [Dependency], dst: Destination<'_>) -> Option<&'a str> {
    let tags = ServiceTags::parse(
        r#"{"values":[{"name":"Sql","properties":{"addressPrefixes":["198.51.100.0/24"]}}]}"#,
    )
    .unwrap();
    catalog
        .iter()
        .find(|d| d.matches(&dst, &tags))
        .map(|d| d.name.as_str())
}

fn dst(name: Option<&str>, addr: &str, protocol: u8, port: u16) -> Destination<'static> {
    Destination {
        addr: addr.parse().unwrap(),
        name: name.map(|n| &*Box::leak(n.to_string().into_boxed_str())),
        protocol,
        port: Some(port),
    }
}

#[test]
fn documented_dependencies_match_by_name_tag_port_and_cloud() {
    let public = Catalog::load(Cloud::Public, &[])
        .unwrap()
        .for_environment(Environment::Asev2External);
    let cases = [
        (
            dst(Some("acct.blob.core.windows.net"), "203.0.113.1", 6, 443),
            Some("azure-storage"),
        ),
        (
            dst(Some("acct.blob.core.windows.net"), "203.0.113.1", 6, 445),
            None,
        ),
        (
            dst(Some("srv.database.windows.net"), "203.0.113.2", 6, 11042),
            Some("azure-sql"),
        ),
        (dst(None, "198.51.100.9", 6, 1433), Some("azure-sql")),
        (dst(None, "198.51.100.9", 6, 1434), None),
        (
            dst(Some("management.azure.com"), "203.0.113.3", 6, 443),
            Some("azure-management"),
        ),
        (
            dst(Some("ocsp.msocsp.com"), "203.0.113.4", 6, 80),
            Some("ocsp-crl"),
        ),
        (
            dst(Some("login.microsoftonline.com"), "203.0.113.5", 6, 443),
            Some("azure-ad"),
        ),
        (dst(None, "13.90.249.229", 6, 443), Some("monitoring-ips")),
        (dst(None, "203.0.113.6", 17, 123), Some("ntp")),
        (
            dst(None, "203.0.113.6", 6, 12000),
            Some("system-monitoring"),
        ),
        (dst(None, "168.63.129.16", 17, 53), Some("dns")),
        (dst(Some("example.com"), "203.0.113.7", 6, 443), None),
    ];
    for (d, want) in cases {
        assert_eq!(find(&public, d), want, "{d:?}");
    }
    // 445 to Storage only on ASEv1; the later lock-down list (NTP) not on ASEv1.
    let v1 = Catalog::load(Cloud::Public, &[])
        .unwrap()
        .for_environment(Environment::Asev1);
    assert_eq!(
        find(
            &v1,
            dst(Some("a.file.core.windows.net"), "203.0.113.1", 6, 445)
        ),
        Some("azure-files-smb")
    );
    assert_eq!(find(&v1, dst(None, "203.0.113.6", 17, 123)), None);
    // ASEv3 has no platform dependencies in the customer subnet.
    assert!(
        Catalog::load(Cloud::Public, &[])
            .unwrap()
            .for_environment(Environment::Asev3)
            .is_empty()
    );
}

#[test]
fn sovereign_clouds_use_their_suffixes() {
    let china = Catalog::load(Cloud::China, &[])
        .unwrap()
        .for_environment(Environment::Asev2External);
    assert_eq!(
        find(
            &china,
            dst(Some("a.blob.core.chinacloudapi.cn"), "203.0.113.1", 6, 443)
        ),
        Some("azure-storage")
    );
    assert_eq!(
        find(
            &china,
            dst(Some("a.blob.core.windows.net"), "203.0.113.1", 6, 443)
        ),
        None
    );
    let gov = Catalog::load(Cloud::Usgov, &[])
        .unwrap()
        .for_environment(Environment::Asev2External);
    assert_eq!(
        find(
            &gov,
            dst(Some("login.microsoftonline.us"), "203.0.113.1", 6, 443)
        ),
        Some("azure-ad")
    );
}

#[test]
fn user_catalogs_come_first_and_bad_entries_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mine.toml");
    std::fs::write(
        &path,
        "[[dependency]]\nname = \"corp-proxy\"\nenvironments = [\"asev2-external\"]\nprotocol = \"tcp\"\nports = [\"443\"]\nhosts = [\"*.blob.{core}\"]\nnext_hops = [\"VirtualAppliance\"]\n",
    )
    .unwrap();
    let catalog = Catalog::load(Cloud::Public, &[&path])
        .unwrap()
        .for_environment(Environment::Asev2External);
    assert_eq!(
        find(
            &catalog,
            dst(Some("x.blob.core.windows.net"), "203.0.113.1", 6, 443)
        ),
        Some("corp-proxy")
    );

    std::fs::write(&path, "[[dependency]]\nname = \"bad\"\nenvironments = [\"asev3\"]\nports = [\"90-80\"]\nany_destination = true\nnext_hops = []\n").unwrap();
    let err = Catalog::load(Cloud::Public, &[&path]).unwrap_err();
    assert!(
        err.contains("dependency `bad`: `90-80` is not a port"),
        "{err}"
    );
    std::fs::write(&path, "[[dependency]]\nname = \"bad\"\nenvironments = [\"asev3\"]\nports = [\"80\"]\nany_destination = true\nnext_hops = [\"Moon\"]\n").unwrap();
    let err = Catalog::load(Cloud::Public, &[&path]).unwrap_err();
    assert!(err.contains("unknown next hop `Moon`"), "{err}");
}
