//! The ASE's documented outbound dependencies, loaded from data
//! (`observer/catalog/ase-dependencies.toml`, plus user files), and matched
//! against flows.

use std::{collections::HashMap, net::IpAddr, ops::RangeInclusive, path::Path};

use serde::Deserialize;

use crate::{
    protocol::IpProtocol,
    topology::{Cloud, Environment, NextHop, ServiceTags},
};

/// The catalog shipped with observer.
pub(crate) const BUILTIN: &str = include_str!("../catalog/ase-dependencies.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    clouds: HashMap<String, HashMap<String, String>>,
    #[serde(default)]
    dependency: Vec<RawEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    name: String,
    #[serde(default)]
    description: String,
    environments: Vec<Environment>,
    #[serde(default)]
    protocol: Option<String>,
    ports: Vec<String>,
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default)]
    service_tags: Vec<String>,
    #[serde(default)]
    addresses: Vec<IpAddr>,
    #[serde(default)]
    any_destination: bool,
    next_hops: Vec<String>,
    /// Where the entry's facts come from (documentation links), for
    /// people reading the catalog; checked for shape, not used.
    #[serde(default, rename = "sources")]
    _sources: Vec<String>,
}

/// One dependency, resolved for a cloud.
#[derive(Clone, Debug)]
pub(crate) struct Dependency {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) environments: Vec<Environment>,
    /// IP protocol number; `None` for any.
    pub(crate) protocol: Option<u8>,
    pub(crate) ports: Vec<RangeInclusive<u16>>,
    pub(crate) hosts: Vec<String>,
    pub(crate) service_tags: Vec<String>,
    pub(crate) addresses: Vec<IpAddr>,
    pub(crate) any_destination: bool,
    /// Paths the flow may take; empty means any.
    pub(crate) next_hops: Vec<NextHop>,
}

/// What a flow is matched on.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Destination<'a> {
    pub(crate) addr: IpAddr,
    pub(crate) name: Option<&'a str>,
    pub(crate) protocol: u8,
    pub(crate) port: Option<u16>,
}

impl Dependency {
    pub(crate) fn matches(&self, dst: &Destination<'_>, tags: &ServiceTags) -> bool {
        if self.protocol.is_some_and(|p| p != dst.protocol) {
            return false;
        }
        let Some(port) = dst.port else { return false };
        if !self.ports.iter().any(|r| r.contains(&port)) {
            return false;
        }
        self.any_destination
            || self.addresses.contains(&dst.addr)
            || dst
                .name
                .is_some_and(|name| self.hosts.iter().any(|h| host_matches(h, name)))
            || self.service_tags.iter().any(|t| tags.contains(t, dst.addr))
    }

    /// Whether `name` is one of this dependency's host names.
    pub(crate) fn names(&self, name: &str) -> bool {
        self.hosts.iter().any(|h| host_matches(h, name))
    }

    /// Whether `hop` is a path this dependency may take.
    pub(crate) fn allows(&self, hop: NextHop) -> bool {
        self.next_hops.is_empty() || self.next_hops.contains(&hop)
    }
}

/// `*.example.com` matches sub-domains; anything else matches exactly.
fn host_matches(pattern: &str, name: &str) -> bool {
    let name = name.trim_end_matches('.');
    match pattern.strip_prefix("*.") {
        Some(suffix) => {
            name.len() > suffix.len() + 1
                && name
                    .to_ascii_lowercase()
                    .ends_with(&format!(".{}", suffix.to_ascii_lowercase()))
        }
        None => name.eq_ignore_ascii_case(pattern),
    }
}

/// All entries, for one cloud.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    entries: Vec<Dependency>,
}

impl Catalog {
    /// The built-in catalog with `extra` files tried first.
    pub fn load(cloud: Cloud, extra: &[&Path]) -> Result<Self, String> {
        let mut catalog = Self::default();
        for path in extra {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read catalog {}: {e}", path.display()))?;
            catalog
                .add(cloud, &text)
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        catalog
            .add(cloud, BUILTIN)
            .map_err(|e| format!("built-in catalog: {e}"))?;
        Ok(catalog)
    }

    /// Appends the entries of one catalog text.
    pub(crate) fn add(&mut self, cloud: Cloud, text: &str) -> Result<(), String> {
        let mut file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        // A user file may use the built-in suffixes without repeating them.
        let suffixes = match file.clouds.remove(cloud.as_str()) {
            Some(own) => own,
            None if text == BUILTIN => HashMap::new(),
            None => {
                let mut builtin: File = toml::from_str(BUILTIN).map_err(|e| e.to_string())?;
                builtin.clouds.remove(cloud.as_str()).unwrap_or_default()
            }
        };
        for raw in file.dependency {
            self.entries.push(resolve(raw, &suffixes)?);
        }
        Ok(())
    }

    /// The entries that apply to `environment`.
    pub(crate) fn for_environment(&self, environment: Environment) -> Vec<Dependency> {
        self.entries
            .iter()
            .filter(|e| e.environments.contains(&environment))
            .cloned()
            .collect()
    }
}

fn resolve(raw: RawEntry, suffixes: &HashMap<String, String>) -> Result<Dependency, String> {
    let at = |message: String| format!("dependency `{}`: {message}", raw.name);
    let protocol = match raw.protocol.as_deref() {
        None | Some("any") => None,
        Some("tcp") => Some(IpProtocol::TCP.number()),
        Some("udp") => Some(IpProtocol::UDP.number()),
        Some(other) => return Err(at(format!("protocol `{other}` is not tcp, udp or any"))),
    };
    let ports = raw
        .ports
        .iter()
        .map(|p| {
            parse_ports(p)
                .ok_or_else(|| at(format!("`{p}` is not a port or a range like 11000-11999")))
        })
        .collect::<Result<_, _>>()?;
    let hosts = raw
        .hosts
        .iter()
        .map(|h| {
            expand(h, suffixes)
                .ok_or_else(|| at(format!("`{h}` names a suffix this cloud does not define")))
        })
        .collect::<Result<_, _>>()?;
    let next_hops = raw
        .next_hops
        .iter()
        .map(|h| h.parse::<NextHop>().map_err(at))
        .collect::<Result<_, _>>()?;
    if !raw.any_destination
        && raw.hosts.is_empty()
        && raw.service_tags.is_empty()
        && raw.addresses.is_empty()
    {
        return Err(at(
            "needs hosts, service_tags, addresses or any_destination = true".into(),
        ));
    }
    Ok(Dependency {
        name: raw.name,
        description: raw.description,
        environments: raw.environments,
        protocol,
        ports,
        hosts,
        service_tags: raw.service_tags,
        addresses: raw.addresses,
        any_destination: raw.any_destination,
        next_hops,
    })
}

fn parse_ports(text: &str) -> Option<RangeInclusive<u16>> {
    match text.split_once('-') {
        Some((lo, hi)) => {
            let (lo, hi) = (lo.trim().parse().ok()?, hi.trim().parse().ok()?);
            (lo <= hi).then_some(lo..=hi)
        }
        None => {
            let port = text.trim().parse().ok()?;
            Some(port..=port)
        }
    }
}

/// Replaces `{key}` with the cloud's suffix.
fn expand(pattern: &str, suffixes: &HashMap<String, String>) -> Option<String> {
    let mut out = String::new();
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}')? + open;
        out.push_str(&rest[..open]);
        out.push_str(suffixes.get(&rest[open + 1..close])?);
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
