//! One inbound requirement: who must reach the ASE subnet (a service tag
//! such as `AppServiceManagement`, or the ASE subnet itself), on which
//! protocols and ports, how bad losing it is and why, and, for traffic
//! that comes in from the internet, the next hop its replies must take.

use std::ops::RangeInclusive;

use serde::Deserialize;

use super::{Level, because, parse_port_list, parse_protocol};
use crate::{
    protocol::IpProtocol,
    topology::{Environment, NextHop},
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInbound {
    name: String,
    /// For people reading the catalog.
    #[serde(default, rename = "description")]
    _description: String,
    environments: Vec<Environment>,
    /// A service tag (`AppServiceManagement`, `AzureLoadBalancer`) or
    /// `ase-subnet`.
    from: String,
    /// `tcp`, `udp` or `any` (TCP and UDP).
    #[serde(default)]
    protocol: Option<String>,
    ports: Vec<String>,
    /// What stops working when it is blocked.
    breaks: String,
    #[serde(default)]
    severity: Level,
    #[serde(default)]
    because: Option<String>,
    /// The next hop the replies must take (the way the requests came in).
    #[serde(default)]
    reply_next_hop: Option<String>,
    #[serde(default, rename = "sources")]
    _sources: Vec<String>,
}

/// Where an inbound requirement's traffic comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum InboundSource {
    /// A service tag (its prefixes, or `AzureLoadBalancer`'s 168.63.129.16).
    ServiceTag(String),
    /// The ASE subnet itself (its instances talk to each other).
    AseSubnet,
}

/// One inbound requirement of an environment.
#[derive(Clone, Debug)]
pub(crate) struct InboundRequirement {
    pub(crate) name: String,
    pub(crate) environments: Vec<Environment>,
    pub(crate) from: InboundSource,
    /// TCP, UDP or both.
    pub(crate) protocols: Vec<IpProtocol>,
    pub(crate) ports: Vec<RangeInclusive<u16>>,
    pub(crate) breaks: String,
    pub(crate) level: Level,
    pub(crate) because: String,
    pub(crate) reply_next_hop: Option<NextHop>,
}

pub(super) fn resolve(raw: RawInbound) -> Result<InboundRequirement, String> {
    let at = |message: String| format!("inbound `{}`: {message}", raw.name);
    let protocols = match parse_protocol(raw.protocol.as_deref()).map_err(at)? {
        Some(p) => vec![p],
        None => vec![IpProtocol::TCP, IpProtocol::UDP],
    };
    let ports = parse_port_list(&raw.ports).map_err(at)?;
    if ports.is_empty() {
        return Err(at("needs ports (\"0-65535\" for all)".into()));
    }
    let from = match raw.from.as_str() {
        "ase-subnet" => InboundSource::AseSubnet,
        "" | "*" => {
            return Err(at(
                "`from` names a service tag (AppServiceManagement, AzureLoadBalancer) or ase-subnet"
                    .into(),
            ));
        }
        tag => InboundSource::ServiceTag(tag.to_string()),
    };
    let reply_next_hop = raw
        .reply_next_hop
        .as_deref()
        .map(str::parse::<NextHop>)
        .transpose()
        .map_err(at)?;
    let because = because(raw.severity, raw.because).map_err(at)?;
    Ok(InboundRequirement {
        name: raw.name,
        environments: raw.environments,
        from,
        protocols,
        ports,
        breaks: raw.breaks,
        level: raw.severity,
        because,
        reply_next_hop,
    })
}
