//! One outbound dependency: its destinations (host names with the cloud's
//! suffixes, service tags, literal addresses, or anywhere), protocol and
//! ports, the next hops it may take, its [`Level`] and why; and how a flow
//! matches it.

use std::{collections::HashMap, net::IpAddr, ops::RangeInclusive};

use serde::Deserialize;

use super::{Level, because, parse_next_hops, parse_port_list, parse_protocol};
use crate::topology::{Environment, NextHop, ServiceTags};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDependency {
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
    /// `error` (default) or `warning`.
    #[serde(default)]
    severity: Level,
    /// The documentation's sentence that sets the severity.
    #[serde(default)]
    because: Option<String>,
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
    /// How bad losing it is.
    pub(crate) level: Level,
    /// Why: the documentation's sentence.
    pub(crate) because: String,
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

pub(super) fn resolve(
    raw: RawDependency,
    suffixes: &HashMap<String, String>,
) -> Result<Dependency, String> {
    let at = |message: String| format!("dependency `{}`: {message}", raw.name);
    let protocol = parse_protocol(raw.protocol.as_deref())
        .map_err(at)?
        .map(|p| p.number());
    let ports = parse_port_list(&raw.ports).map_err(at)?;
    let hosts = raw
        .hosts
        .iter()
        .map(|h| {
            expand(h, suffixes)
                .ok_or_else(|| at(format!("`{h}` names a suffix this cloud does not define")))
        })
        .collect::<Result<_, _>>()?;
    let next_hops = parse_next_hops(&raw.next_hops).map_err(at)?;
    if !raw.any_destination
        && raw.hosts.is_empty()
        && raw.service_tags.is_empty()
        && raw.addresses.is_empty()
    {
        return Err(at(
            "needs hosts, service_tags, addresses or any_destination = true".into(),
        ));
    }
    let because = because(raw.severity, raw.because).map_err(at)?;
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
        level: raw.severity,
        because,
    })
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
