//! Network security groups in the topology: `[[nsg]]` tables with their
//! `[[nsg.rule]]` security rules, in Azure's property names (snake_case), and
//! Azure's default rules. This module owns the shape and its validation; the
//! evaluation (which rule decides a flow) is `crate::security`.
//!
//! ```toml
//! [[nsg]]
//! name = "ase-nsg"
//! subnets = ["ase"]
//! [[nsg.rule]]
//! name = "allow-sql"
//! priority = 200
//! direction = "Outbound"
//! access = "Allow"
//! protocol = "Tcp"
//! source = ["192.168.251.128/25"]
//! destination = ["Sql"]
//! source_ports = ["*"]
//! destination_ports = ["1433", "11000-11999", "14000-14999"]
//! ```

use std::{collections::HashMap, fmt, net::Ipv4Addr, ops::Range};

use ipnet::Ipv4Net;
use serde::Deserialize;
use toml::Spanned;

use super::{Locator, TopologyError};
use crate::protocol::IpProtocol;

/// The tags every NSG knows without a service-tag file.
pub const BUILTIN_TAGS: [&str; 3] = ["VirtualNetwork", "Internet", "AzureLoadBalancer"];

/// The lowest and highest priority a user rule may have.
pub const PRIORITIES: std::ops::RangeInclusive<u16> = 100..=4096;

/// `Inbound` or `Outbound`, as Azure writes it.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Deserialize,
    serde::Serialize,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
pub enum RuleDirection {
    Inbound,
    Outbound,
}

impl RuleDirection {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl fmt::Display for RuleDirection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `Allow` or `Deny`.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Deserialize,
    serde::Serialize,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
pub enum Access {
    Allow,
    Deny,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rule's protocol: `Tcp`, `Udp`, `Icmp` or `*` (any).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, strum::IntoStaticStr, strum::VariantArray,
)]
pub enum RuleProtocol {
    Tcp,
    Udp,
    Icmp,
    #[serde(rename = "*")]
    #[strum(serialize = "*")]
    Any,
}

impl RuleProtocol {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Whether IP protocol `number` is this protocol.
    pub fn matches(self, number: u8) -> bool {
        let protocol = IpProtocol(number);
        match self {
            Self::Tcp => protocol == IpProtocol::TCP,
            Self::Udp => protocol == IpProtocol::UDP,
            Self::Icmp => protocol == IpProtocol::ICMP,
            Self::Any => true,
        }
    }
}

/// One entry of a rule's `source` or `destination`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AddressPrefix {
    /// `*`: any address.
    Any,
    Cidr(Ipv4Net),
    /// A service tag: `VirtualNetwork`, `Internet`, `AzureLoadBalancer` or a
    /// tag of the service-tag file (or an inline `[[service_tag]]`).
    Tag(String),
}

impl fmt::Display for AddressPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("*"),
            Self::Cidr(net) => net.fmt(f),
            Self::Tag(tag) => f.write_str(tag),
        }
    }
}

/// An inclusive port range; `*` is 0-65535.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    pub const ANY: Self = Self {
        first: 0,
        last: u16::MAX,
    };

    pub fn contains(self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }

    pub fn is_any(self) -> bool {
        self == Self::ANY
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_any() {
            f.write_str("*")
        } else if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

impl std::str::FromStr for PortRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s == "*" {
            return Ok(Self::ANY);
        }
        let port = |p: &str| {
            p.trim().parse::<u16>().map_err(|_| {
                format!("`{p}` is not a port (ports are whole numbers from 0 to 65535)")
            })
        };
        let (first, last) = match s.split_once('-') {
            Some((a, b)) => (port(a)?, port(b)?),
            None => {
                let p = port(s)?;
                (p, p)
            }
        };
        if first > last {
            return Err(format!(
                "port range `{s}` runs backwards (write it as {last}-{first})"
            ));
        }
        Ok(Self { first, last })
    }
}

/// A security rule, user-written or one of Azure's defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityRule {
    pub name: String,
    pub priority: u16,
    pub direction: RuleDirection,
    pub access: Access,
    pub protocol: RuleProtocol,
    pub source: Vec<AddressPrefix>,
    pub destination: Vec<AddressPrefix>,
    pub source_ports: Vec<PortRange>,
    pub destination_ports: Vec<PortRange>,
    /// One of Azure's default rules (priority 65000 and up).
    pub default: bool,
    pub description: Option<String>,
}

impl SecurityRule {
    /// Azure's default rules (ARM `defaultSecurityRules`), both directions.
    pub fn defaults() -> Vec<Self> {
        use AddressPrefix::{Any, Tag};
        let rule = |name: &str, priority, direction, access, source, destination| Self {
            name: name.into(),
            priority,
            direction,
            access,
            protocol: RuleProtocol::Any,
            source: vec![source],
            destination: vec![destination],
            source_ports: vec![PortRange::ANY],
            destination_ports: vec![PortRange::ANY],
            default: true,
            description: None,
        };
        let vnet = || Tag("VirtualNetwork".into());
        vec![
            rule(
                "AllowVnetInBound",
                65000,
                RuleDirection::Inbound,
                Access::Allow,
                vnet(),
                vnet(),
            ),
            rule(
                "AllowAzureLoadBalancerInBound",
                65001,
                RuleDirection::Inbound,
                Access::Allow,
                Tag("AzureLoadBalancer".into()),
                Any,
            ),
            rule(
                "DenyAllInBound",
                65500,
                RuleDirection::Inbound,
                Access::Deny,
                Any,
                Any,
            ),
            rule(
                "AllowVnetOutBound",
                65000,
                RuleDirection::Outbound,
                Access::Allow,
                vnet(),
                vnet(),
            ),
            rule(
                "AllowInternetOutBound",
                65001,
                RuleDirection::Outbound,
                Access::Allow,
                Any,
                Tag("Internet".into()),
            ),
            rule(
                "DenyAllOutBound",
                65500,
                RuleDirection::Outbound,
                Access::Deny,
                Any,
                Any,
            ),
        ]
    }
}

/// A network security group and the subnets it is associated with.
#[derive(Clone, Debug)]
pub struct Nsg {
    pub name: String,
    pub subnets: Vec<String>,
    /// The user's rules, in file order.
    pub rules: Vec<SecurityRule>,
}

impl Nsg {
    /// The rules Azure evaluates for `direction`, user rules then the
    /// defaults, in priority order (lowest number first).
    pub fn effective(&self, direction: RuleDirection) -> Vec<SecurityRule> {
        let mut rules: Vec<SecurityRule> = self
            .rules
            .iter()
            .cloned()
            .chain(SecurityRule::defaults())
            .filter(|r| r.direction == direction)
            .collect();
        rules.sort_by_key(|r| r.priority);
        rules
    }
}

// ---- raw shape -------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNsg {
    pub name: String,
    #[serde(default)]
    pub subnets: Vec<Spanned<String>>,
    #[serde(default)]
    pub rule: Vec<Spanned<RawRule>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub priority: Spanned<i64>,
    pub direction: RuleDirection,
    pub access: Access,
    pub protocol: RuleProtocol,
    #[serde(default = "star")]
    pub source: Vec<Spanned<String>>,
    #[serde(default = "star")]
    pub destination: Vec<Spanned<String>>,
    #[serde(default = "star")]
    pub source_ports: Vec<Spanned<String>>,
    #[serde(default = "star")]
    pub destination_ports: Vec<Spanned<String>>,
}

fn star() -> Vec<Spanned<String>> {
    vec![Spanned::new(0..0, "*".to_string())]
}

/// A service-tag name used by a rule, with where it was written; checked
/// once the service-tag file is read.
pub(crate) type TagUse = (String, Range<usize>);

/// Validates the `[[nsg]]` tables against the subnets; returns the NSGs
/// and the service tags their rules name.
pub(crate) fn validate(
    raw: &[Spanned<RawNsg>],
    subnets: &[super::Subnet],
    at: &Locator<'_>,
) -> Result<(Vec<Nsg>, Vec<TagUse>), TopologyError> {
    let mut nsgs: Vec<Nsg> = Vec::new();
    let mut tags = Vec::new();
    let mut associated: HashMap<&str, &str> = HashMap::new();
    for spanned in raw {
        let n = spanned.get_ref();
        if nsgs.iter().any(|o| o.name == n.name) {
            return Err(at.error(
                spanned.span(),
                format!("duplicate nsg name `{}`", n.name),
                Some("every [[nsg]] needs its own name".into()),
            ));
        }
        for s in &n.subnets {
            let name = s.get_ref().as_str();
            if !subnets.iter().any(|sub| sub.name == name) {
                return Err(at.error(
                    s.span(),
                    format!("nsg {}: unknown subnet `{name}`", n.name),
                    Some(format!(
                        "associate the NSG with a subnet of [[vnet.subnet]]: {}",
                        subnets
                            .iter()
                            .map(|s| s.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                ));
            }
            if let Some(other) = associated.insert(name, n.name.as_str()) {
                return Err(at.error(
                    s.span(),
                    format!(
                        "subnet `{name}` is associated with nsg {other} and nsg {}",
                        n.name
                    ),
                    Some("Azure associates at most one NSG with a subnet; merge the rules".into()),
                ));
            }
        }
        let mut rules: Vec<SecurityRule> = Vec::new();
        for spanned_rule in &n.rule {
            let rule = rule(&n.name, spanned_rule, &rules, at, &mut tags)?;
            rules.push(rule);
        }
        nsgs.push(Nsg {
            name: n.name.clone(),
            subnets: n.subnets.iter().map(|s| s.get_ref().clone()).collect(),
            rules,
        });
    }
    Ok((nsgs, tags))
}

fn rule(
    nsg: &str,
    spanned: &Spanned<RawRule>,
    earlier: &[SecurityRule],
    at: &Locator<'_>,
    tags: &mut Vec<TagUse>,
) -> Result<SecurityRule, TopologyError> {
    let r = spanned.get_ref();
    // A default (`*`) carries no span of its own: point at the rule.
    let span_of = |s: &Spanned<String>| {
        if s.span() == (0..0) {
            spanned.span()
        } else {
            s.span()
        }
    };
    if earlier.iter().any(|o| o.name == r.name) {
        return Err(at.error(
            spanned.span(),
            format!("nsg {nsg}: duplicate rule name `{}`", r.name),
            Some("rule names must be unique within an NSG".into()),
        ));
    }
    let priority = *r.priority.get_ref();
    let priority = u16::try_from(priority)
        .ok()
        .filter(|p| PRIORITIES.contains(p))
        .ok_or_else(|| {
            at.error(
                r.priority.span(),
                format!("nsg {nsg} rule {}: priority {priority} is out of range", r.name),
                Some(
                    "user rules take priorities 100..4096 (lower is evaluated first); 65000 and up belong to Azure's default rules"
                        .into(),
                ),
            )
        })?;
    if let Some(clash) = earlier
        .iter()
        .find(|o| o.priority == priority && o.direction == r.direction)
    {
        return Err(at.error(
            r.priority.span(),
            format!(
                "nsg {nsg} rule {}: priority {priority} is already used by {} rule {}",
                r.name, r.direction, clash.name
            ),
            Some(format!(
                "priorities are unique per direction; pick a free number between {} and {}",
                PRIORITIES.start(),
                PRIORITIES.end()
            )),
        ));
    }
    let mut prefixes = |list: &[Spanned<String>], field: &str| {
        let mut out = Vec::new();
        if list.is_empty() {
            return Err(at.error(
                spanned.span(),
                format!("nsg {nsg} rule {}: `{field}` is empty", r.name),
                Some("write [\"*\"] for any address".into()),
            ));
        }
        for s in list {
            out.push(address_prefix(s.get_ref()).map_err(|(message, hint)| {
                at.error(
                    span_of(s),
                    format!("nsg {nsg} rule {}: {field}: {message}", r.name),
                    Some(hint),
                )
            })?);
            if let Some(AddressPrefix::Tag(tag)) = out.last() {
                tags.push((tag.clone(), span_of(s)));
            }
        }
        Ok(out)
    };
    let source = prefixes(&r.source, "source")?;
    let destination = prefixes(&r.destination, "destination")?;
    let ports = |list: &[Spanned<String>], field: &str| {
        if list.is_empty() {
            return Err(at.error(
                spanned.span(),
                format!("nsg {nsg} rule {}: `{field}` is empty", r.name),
                Some("write [\"*\"] for any port".into()),
            ));
        }
        list.iter()
            .map(|s| {
                s.get_ref().parse::<PortRange>().map_err(|message| {
                    at.error(
                        span_of(s),
                        format!("nsg {nsg} rule {}: {field}: {message}", r.name),
                        Some("write a port (\"443\"), a range (\"11000-11999\") or \"*\"".into()),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()
    };
    Ok(SecurityRule {
        name: r.name.clone(),
        priority,
        direction: r.direction,
        access: r.access,
        protocol: r.protocol,
        source,
        destination,
        source_ports: ports(&r.source_ports, "source_ports")?,
        destination_ports: ports(&r.destination_ports, "destination_ports")?,
        default: false,
        description: r.description.clone(),
    })
}

/// `*`, a CIDR (canonical), a bare address (a /32) or a service tag name.
fn address_prefix(text: &str) -> Result<AddressPrefix, (String, String)> {
    let text = text.trim();
    if text == "*" || text.eq_ignore_ascii_case("Any") {
        return Ok(AddressPrefix::Any);
    }
    let starts_numeric = text.chars().next().is_some_and(|c| c.is_ascii_digit());
    if !starts_numeric {
        if text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
        {
            return Ok(AddressPrefix::Tag(text.to_string()));
        }
        return Err((
            format!("`{text}` is neither an address prefix nor a service tag name"),
            "write a CIDR (10.0.0.0/24), an address, a service tag (VirtualNetwork, Internet, AzureLoadBalancer, Sql, ...) or \"*\"".into(),
        ));
    }
    if let Ok(addr) = text.parse::<Ipv4Addr>() {
        return Ok(AddressPrefix::Cidr(Ipv4Net::from(addr)));
    }
    let cidr: super::Cidr = text
        .parse()
        .map_err(|message: String| (message, "NSG prefixes are canonical IPv4 CIDRs".into()))?;
    Ok(AddressPrefix::Cidr(cidr.0))
}

/// The first service tag in `uses` that neither Azure nor `known` defines.
pub(crate) fn unknown_tag(uses: &[TagUse], known: impl Fn(&str) -> bool) -> Option<&TagUse> {
    uses.iter()
        .find(|(tag, _)| !BUILTIN_TAGS.contains(&tag.as_str()) && !known(tag))
}

#[cfg(test)]
mod tests;
