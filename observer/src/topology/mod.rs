//! The topology file: one TOML file describing a customer's network (cloud,
//! ASE kind, VNet, subnets, backends, private endpoints, DNS, on-premises,
//! route table). The classifier reads it; the lab builds it into namespaces.
//!
//! Parsing is two-step: serde (with `deny_unknown_fields` and value types that
//! refuse bad CIDRs) catches shape errors with their span, then [`validate`]
//! checks what serde cannot (overlaps, containment, duplicates). Every error
//! carries file, line, column and a hint. See `docs/topology.md`.

pub mod import;
mod model;
pub mod nsg;
pub mod service_tags;
mod validate;

use std::{
    fmt,
    ops::Range,
    path::{Path, PathBuf},
};

pub use self::{
    model::*,
    nsg::{Access, AddressPrefix, Nsg, PortRange, RuleDirection, RuleProtocol, SecurityRule},
    service_tags::{ServiceTag, ServiceTags},
};

/// A topology problem, located in its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopologyError {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for TopologyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path.display(),
            self.line,
            self.column,
            self.message
        )?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for TopologyError {}

/// 1-based line and column of byte `offset` in `text`.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, column)
}

/// Builds located errors for one source text.
#[derive(Debug)]
pub(crate) struct Locator<'a> {
    pub path: &'a Path,
    pub text: &'a str,
}

impl Locator<'_> {
    pub(crate) fn error(
        &self,
        span: Range<usize>,
        message: impl Into<String>,
        hint: Option<String>,
    ) -> TopologyError {
        let (line, column) = line_column(self.text, span.start);
        TopologyError {
            path: self.path.to_path_buf(),
            line,
            column,
            message: message.into(),
            hint,
        }
    }
}

impl Topology {
    /// Reads, parses and validates a topology file; the service-tag file it
    /// names is read relative to it.
    ///
    /// # Errors
    ///
    /// A [`TopologyError`] naming the file, the line and column, what is
    /// wrong and how to fix it: the file cannot be read, is not TOML, has
    /// an unknown or missing field, or fails validation (a prefix outside
    /// the VNet, an NSG rule that Azure would refuse, ...).
    ///
    /// # Example
    ///
    /// ```
    /// use observer::topology::Topology;
    ///
    /// let topology = Topology::load("../lab/topologies/default.toml".as_ref())?;
    /// assert_eq!(topology.ase_subnet().prefix.to_string(), "10.0.0.0/24");
    /// # Ok::<(), observer::topology::TopologyError>(())
    /// ```
    pub fn load(path: &Path) -> Result<Self, TopologyError> {
        let text = std::fs::read_to_string(path).map_err(|error| TopologyError {
            path: path.to_path_buf(),
            line: 0,
            column: 0,
            message: format!("cannot read the topology file: {error}"),
            hint: Some(
                "pass the path of a topology TOML file, e.g. lab/topologies/default.toml".into(),
            ),
        })?;
        let mut topology = Self::parse(path, &text)?;
        let locator = Locator { path, text: &text };
        if let Some((file, span)) = topology.service_tags_file.clone() {
            let tag_path = path.parent().unwrap_or(Path::new(".")).join(file);
            let tags = ServiceTags::load(&tag_path).map_err(|message| {
                locator.error(
                    span,
                    message,
                    Some("service_tags names a file in Azure's ServiceTags JSON shape, relative to this topology".into()),
                )
            })?;
            topology.service_tags.extend(tags);
            topology.check_nsg_tags(&locator)?;
        }
        for route in &topology.route_table.routes {
            if let RouteTarget::ServiceTag(tag) = &route.target
                && topology.service_tags.get(tag).is_none()
            {
                let at = text.find(&format!("\"{tag}\"")).unwrap_or(0);
                return Err(locator.error(
                    at..at,
                    format!("route {}: service tag `{tag}` is not defined", route.name),
                    Some("name a tag from the service_tags file or a [[service_tag]] table".into()),
                ));
            }
        }
        Ok(topology)
    }

    /// Parses and validates topology `text`; `path` only labels errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self, TopologyError> {
        let locator = Locator { path, text };
        let raw: model::RawTopology = toml::from_str(text).map_err(|error| {
            let span = error.span().unwrap_or(0..0);
            let message = error.message().trim().to_string();
            let hint = hint_for(&message);
            locator.error(span, message, hint)
        })?;
        let topology = validate::validate(raw, &locator)?;
        if topology.service_tags_file.is_none() {
            topology.check_nsg_tags(&locator)?;
        }
        Ok(topology)
    }

    /// Every service tag an NSG rule names must be Azure's or defined here.
    fn check_nsg_tags(&self, locator: &Locator<'_>) -> Result<(), TopologyError> {
        match nsg::unknown_tag(&self.nsg_tag_uses, |tag| {
            self.service_tags.get(tag).is_some()
        }) {
            Some((tag, span)) => Err(locator.error(
                span.clone(),
                format!("unknown service tag `{tag}`"),
                Some(format!(
                    "use {}, a tag of the service_tags file or of a [[service_tag]] table (names are case-sensitive)",
                    nsg::BUILTIN_TAGS.join(", ")
                )),
            )),
            None => Ok(()),
        }
    }
}

/// A hint for serde's messages, which already name the problem.
fn hint_for(message: &str) -> Option<String> {
    if message.contains("unknown field") {
        Some("check the spelling against docs/topology.md; fields are snake_case".into())
    } else if message.contains("unknown variant") {
        Some("use one of the values listed above".into())
    } else if message.contains("missing field") {
        Some("add the field; docs/topology.md lists what each table needs".into())
    } else {
        None
    }
}

#[cfg(test)]
mod tests;
