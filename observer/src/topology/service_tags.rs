//! Service tags: Microsoft-maintained prefix sets (`Storage`, `Sql`,
//! `AzureCloud.westus`, ...), read from Azure's published JSON shape.

use std::{net::IpAddr, path::Path};

use ipnet::IpNet;
use serde::Deserialize;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceTag {
    /// `Storage`, `Storage.WestUS`, `AzureCloud`, ...
    pub name: String,
    pub region: Option<String>,
    pub prefixes: Vec<IpNet>,
}

impl ServiceTag {
    /// Azure's tie-break among tags of one prefix length, best first:
    /// regional tag, top-level tag, `AzureCloud.<region>`, `AzureCloud`.
    pub fn rank(&self) -> u8 {
        let regional = self.name.contains('.');
        match (self.name.starts_with("AzureCloud"), regional) {
            (false, true) => 0,
            (false, false) => 1,
            (true, true) => 2,
            (true, false) => 3,
        }
    }

    /// The most specific prefix of this tag holding `addr`.
    pub fn longest_match(&self, addr: IpAddr) -> Option<IpNet> {
        self.prefixes
            .iter()
            .filter(|p| p.contains(&addr))
            .max_by_key(|p| p.prefix_len())
            .copied()
    }
}

#[derive(Clone, Debug, Default)]
pub struct ServiceTags(Vec<ServiceTag>);

#[derive(Deserialize)]
struct File {
    values: Vec<Value>,
}

#[derive(Deserialize)]
struct Value {
    name: String,
    properties: Properties,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Properties {
    #[serde(default)]
    region: String,
    address_prefixes: Vec<String>,
}

impl ServiceTags {
    /// Reads a file in the shape of Azure's weekly `ServiceTags_*.json`.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read service tags {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let file: File =
            serde_json::from_str(text).map_err(|e| format!("not a service-tag file: {e}"))?;
        let mut tags = Vec::new();
        for value in file.values {
            let prefixes = value
                .properties
                .address_prefixes
                .iter()
                .map(|p| {
                    p.parse::<IpNet>()
                        .map(|n| n.trunc())
                        .map_err(|_| format!("tag {}: `{p}` is not a prefix", value.name))
                })
                .collect::<Result<_, _>>()?;
            tags.push(ServiceTag {
                name: value.name,
                region: Some(value.properties.region).filter(|r| !r.is_empty()),
                prefixes,
            });
        }
        Ok(Self(tags))
    }

    pub fn push(&mut self, tag: ServiceTag) {
        self.0.push(tag);
    }

    pub fn extend(&mut self, other: Self) {
        self.0.extend(other.0);
    }

    pub fn get(&self, name: &str) -> Option<&ServiceTag> {
        self.0.iter().find(|t| t.name.eq_ignore_ascii_case(name))
    }

    pub fn iter(&self) -> impl Iterator<Item = &ServiceTag> {
        self.0.iter()
    }

    /// The tag that best names `addr`: longest prefix, then Azure's rank
    /// (so `Storage.WestUS` beats `Storage` beats `AzureCloud`).
    pub fn owner(&self, addr: IpAddr) -> Option<&ServiceTag> {
        self.0
            .iter()
            .filter_map(|t| t.longest_match(addr).map(|p| (t, p)))
            .max_by_key(|(t, p)| (p.prefix_len(), std::cmp::Reverse(t.rank())))
            .map(|(t, _)| t)
    }

    /// Whether `addr` belongs to `tag` or one of its regional variants.
    pub fn contains(&self, tag: &str, addr: IpAddr) -> bool {
        self.0.iter().any(|t| {
            let family = t.name.split('.').next().unwrap_or(&t.name);
            (t.name.eq_ignore_ascii_case(tag) || family.eq_ignore_ascii_case(tag))
                && t.longest_match(addr).is_some()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{ "changeNumber": 1, "cloud": "Public", "values": [
      { "name": "AzureCloud", "id": "AzureCloud", "properties": { "region": "", "addressPrefixes": ["20.0.0.0/8"] } },
      { "name": "Storage", "id": "Storage", "properties": { "region": "", "addressPrefixes": ["20.60.0.0/16"] } },
      { "name": "Storage.WestUS", "id": "Storage.WestUS", "properties": { "region": "westus", "addressPrefixes": ["20.60.0.0/16", "2603:1030::/48"] } }
    ]}"#;

    #[test]
    fn owner_prefers_longest_prefix_then_regional_tags() {
        let tags = ServiceTags::parse(SAMPLE).unwrap();
        assert_eq!(
            tags.owner("20.60.1.1".parse().unwrap()).unwrap().name,
            "Storage.WestUS"
        );
        assert_eq!(
            tags.owner("20.1.1.1".parse().unwrap()).unwrap().name,
            "AzureCloud"
        );
        assert!(tags.owner("8.8.8.8".parse().unwrap()).is_none());
        assert!(tags.contains("Storage", "20.60.9.9".parse().unwrap()));
        assert!(!tags.contains("Sql", "20.60.9.9".parse().unwrap()));
    }

    #[test]
    fn malformed_files_say_what_is_wrong() {
        let err = ServiceTags::parse(
            r#"{"values":[{"name":"X","properties":{"addressPrefixes":["nope"]}}]}"#,
        )
        .unwrap_err();
        assert!(err.contains("`nope` is not a prefix"), "{err}");
        assert!(
            ServiceTags::parse("[]")
                .unwrap_err()
                .contains("not a service-tag file")
        );
    }
}
