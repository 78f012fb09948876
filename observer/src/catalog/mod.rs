//! The App Service Environment's documented requirements, as data
//! (`observer/catalog/ase-dependencies.toml`, plus user files): the
//! outbound dependencies, matched against flows by the classifier and
//! audited by `observer check`, and the inbound requirements `check`
//! audits. Each requirement carries its [`Level`] and the documentation's
//! sentence that sets it (`because`), so how bad a loss is lives beside
//! the fact, not in code branches.
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | the file's shape, [`Catalog`] (built-in and user files, one cloud), [`Level`], the shared parsers |
//! | `dependency.rs` | [`Dependency`]: one outbound dependency and how a flow matches it |
//! | `inbound.rs` | [`InboundRequirement`]: one inbound requirement (who must reach the ASE subnet on what) |
//! | `tests.rs` | the built-in catalog's answers, sovereign clouds, user files and their errors |

mod dependency;
mod inbound;

use std::{collections::HashMap, ops::RangeInclusive, path::Path};

use serde::{Deserialize, Serialize};

pub(crate) use dependency::{Dependency, Destination};
pub(crate) use inbound::{InboundRequirement, InboundSource};

use crate::{
    protocol::IpProtocol,
    topology::{Cloud, Environment, NextHop},
};

/// The catalog shipped with observer.
pub(crate) const BUILTIN: &str = include_str!("../../catalog/ase-dependencies.toml");

/// How bad losing a requirement is, as `observer check` and SARIF say it.
///
/// The flow verdicts' [`crate::verdict::Severity`] is the same idea for
/// traffic that was seen: a dependency at level `error` that is denied is
/// a `denied-by-nsg` flow whose reason says the ASE stops working; at
/// level `warning` the reason says what the documentation says instead.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Deserialize,
    Serialize,
    strum::Display,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub(crate) enum Level {
    /// Losing it stops the environment: `check` exits 1.
    #[default]
    Error,
    /// The documentation says the environment keeps working without it:
    /// printed, the exit status does not change.
    Warning,
}

impl Level {
    /// `error`, `warning`: SARIF's `level` values and the JSON's.
    pub(crate) fn as_str(self) -> &'static str {
        self.into()
    }

    /// The colour `check`'s HTML page gives the level: the red of the
    /// verdicts that break traffic, the amber of the blocked ones.
    pub(crate) fn colour(self) -> &'static str {
        match self {
            Self::Error => crate::verdict::Verdict::LeakRoute.colour(),
            Self::Warning => crate::verdict::Verdict::Blocked.colour(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    clouds: HashMap<String, HashMap<String, String>>,
    #[serde(default)]
    dependency: Vec<dependency::RawDependency>,
    #[serde(default)]
    inbound: Vec<inbound::RawInbound>,
}

/// All requirements, for one cloud.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    entries: Vec<Dependency>,
    inbound: Vec<InboundRequirement>,
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
            self.entries.push(dependency::resolve(raw, &suffixes)?);
        }
        for raw in file.inbound {
            self.inbound.push(inbound::resolve(raw)?);
        }
        Ok(())
    }

    /// The outbound dependencies that apply to `environment`.
    pub(crate) fn for_environment(&self, environment: Environment) -> Vec<Dependency> {
        self.entries
            .iter()
            .filter(|e| e.environments.contains(&environment))
            .cloned()
            .collect()
    }

    /// The inbound requirements that apply to `environment` (a user's
    /// entry replaces a built-in one of the same name).
    pub(crate) fn inbound_for(&self, environment: Environment) -> Vec<InboundRequirement> {
        let mut out: Vec<InboundRequirement> = Vec::new();
        for r in self
            .inbound
            .iter()
            .filter(|r| r.environments.contains(&environment))
        {
            if !out.iter().any(|o| o.name == r.name) {
                out.push(r.clone());
            }
        }
        out
    }
}

/// `tcp`, `udp` or `any` (`None`).
fn parse_protocol(text: Option<&str>) -> Result<Option<IpProtocol>, String> {
    match text {
        None | Some("any") => Ok(None),
        Some("tcp") => Ok(Some(IpProtocol::TCP)),
        Some("udp") => Ok(Some(IpProtocol::UDP)),
        Some(other) => Err(format!("protocol `{other}` is not tcp, udp or any")),
    }
}

/// Each of `ports` as a range (`443`, `11000-11999`).
fn parse_port_list(ports: &[String]) -> Result<Vec<RangeInclusive<u16>>, String> {
    ports
        .iter()
        .map(|p| {
            parse_ports(p).ok_or_else(|| format!("`{p}` is not a port or a range like 11000-11999"))
        })
        .collect()
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

fn parse_next_hops(hops: &[String]) -> Result<Vec<NextHop>, String> {
    hops.iter().map(|h| h.parse::<NextHop>()).collect()
}

/// The sentence that sets a requirement's level: the entry's own, else
/// what the level means. A warning must say why (the documentation's
/// words), or the catalog would downgrade a requirement silently.
fn because(level: Level, given: Option<String>) -> Result<String, String> {
    match (level, given) {
        (_, Some(text)) if !text.trim().is_empty() => Ok(text),
        (Level::Error, _) => {
            Ok("the catalog lists it as required: without it the environment stops working".into())
        }
        (Level::Warning, _) => Err(
            "severity = \"warning\" needs `because`: the documentation's sentence saying the environment keeps working without it".into(),
        ),
    }
}

#[cfg(test)]
mod tests;
