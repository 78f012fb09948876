//! NSGs of the ASE's VNet: the rules written inline (`properties.securityRules`)
//! and as child resources (`networkSecurityGroups/securityRules`), which the
//! portal's export writes both, deduplicated by name (a child resource is
//! deployed after its NSG, so it is the one Azure keeps); associations from
//! the subnets' `networkSecurityGroup.id`, the NSG's `subnets[]` and the
//! effective NSG list; Azure's default rules left to the model.
//!
//! Rule spellings as Azure writes them: `protocol` `Tcp`/`TCP`/`tcp`, `Udp`,
//! `Icmp`, `*`, `Any`, `All` (effective rules); `sourceAddressPrefix` or
//! `sourceAddressPrefixes[]` (the one set wins), likewise the destination
//! and the port range(s); effective rules write `*` as `0.0.0.0/0` and
//! `0-65535`. What the model cannot hold is dropped with a note saying
//! why no verdict changes: `Esp`/`Ah` rules match only IPsec packets,
//! which observer never judges (it sees TCP, UDP and ICMP flows); rules
//! naming application security groups match NIC members, and an ASE has no
//! customer NICs; IPv6 entries never match the IPv4 model.

use std::{collections::BTreeSet, str::FromStr};

use super::{
    ImportError,
    build::{Ctx, v4_prefix},
    effective::Effective,
    json::Node,
    resource::{Resource, items, key_of_id, last_name, parent_key, types},
};
use crate::topology::{
    Access, AddressPrefix, Nsg, PortRange, RuleDirection, RuleProtocol, SecurityRule, Subnet,
    nsg::PRIORITIES,
};

/// A rule as read, or why it was left out.
pub(super) enum Converted {
    /// The rule, and a note when IPv6 entries were left out of it.
    Rule(SecurityRule, Option<String>),
    Dropped(String),
}

/// The NSGs associated with the VNet's subnets.
pub(super) fn nsgs(
    ctx: &mut Ctx<'_>,
    subnets: &[(String, Subnet)],
    effective: &Effective,
) -> Result<Vec<Nsg>, ImportError> {
    let subnet_name = |key: &str| {
        subnets
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, s)| s.name.clone())
    };
    let mut out: Vec<Nsg> = Vec::new();
    for nsg in ctx.of(types::NSG) {
        let key = nsg.key();
        let mut associated: BTreeSet<String> = BTreeSet::new();
        for (subnet_key, node) in subnet_objects(ctx) {
            if node
                .id_of("networkSecurityGroup")
                .and_then(key_of_id)
                .as_deref()
                == Some(&key)
            {
                associated.extend(subnet_name(&subnet_key));
            }
        }
        for (s, _) in nsg.items("subnets") {
            if let Some(k) = s.str("id").and_then(key_of_id) {
                associated.extend(subnet_name(&k));
            }
        }
        for e in effective.nsgs.iter().filter(|e| e.nsg_key == key) {
            associated.extend(e.subnet_key.as_deref().and_then(subnet_name));
        }
        if !nsg.items("networkInterfaces").is_empty() {
            ctx.note(format!(
                "NSG {} is associated with network interfaces: not modelled (an ASE's instances are not the customer's NICs; only subnet NSGs apply)",
                nsg.name
            ));
        }
        if associated.is_empty() {
            continue;
        }
        let name = nsg.short_name().to_string();
        ctx.from(&format!("nsg:{name}"), nsg, None);
        let rules = rules(ctx, nsg, &name)?;
        out.push(Nsg {
            name,
            subnets: associated.into_iter().collect(),
            rules,
        });
    }
    // NSGs only the effective list shows (their resource not exported).
    for e in &effective.nsgs {
        let Some(subnet) = e.subnet_key.as_deref().and_then(subnet_name) else {
            match &e.subnet_key {
                None => ctx.note(format!(
                    "NSG {} applies to a network interface in the effective NSG list: not modelled (only subnet NSGs apply to an ASE)",
                    e.name
                )),
                Some(key) => ctx.note(format!(
                    "NSG {} applies to subnet {} in the effective NSG list, which is not a subnet of the ASE's VNet: left out",
                    e.name,
                    key.split("/virtualnetworks/").nth(1).unwrap_or(key)
                )),
            }
            continue;
        };
        if let Some(known) = out
            .iter_mut()
            .find(|n| n.name.eq_ignore_ascii_case(&e.name))
        {
            if !known.subnets.contains(&subnet) {
                known.subnets.push(subnet);
                known.subnets.sort();
            }
            let user = e.rules.len();
            if user != known.rules.len() {
                ctx.note(format!(
                    "NSG {}: {} user rules in the resource, {user} in the effective list; the resource's are used",
                    e.name,
                    known.rules.len()
                ));
            }
            continue;
        }
        ctx.provenance
            .add(format!("nsg:{}", e.name), e.source.clone());
        for (rule, source) in &e.rules {
            ctx.provenance
                .add(format!("rule:{}/{}", e.name, rule.name), source.clone());
        }
        let mut rules: Vec<SecurityRule> = e.rules.iter().map(|(r, _)| r.clone()).collect();
        sort(&mut rules);
        out.push(Nsg {
            name: e.name.clone(),
            subnets: vec![subnet],
            rules,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Every subnet object (inline in VNets and child resources), keyed.
fn subnet_objects<'a>(ctx: &Ctx<'a>) -> Vec<(String, &'a Node)> {
    let mut out = Vec::new();
    for vnet in ctx.of(types::VNET) {
        for (s, _) in items(&vnet.node, "subnets") {
            if let Some(name) = s.get("name").and_then(Node::as_str) {
                out.push((
                    format!("{}/subnets/{}", vnet.key(), name.to_ascii_lowercase()),
                    s,
                ));
            }
        }
    }
    for s in ctx.of(types::SUBNET) {
        out.push((s.key(), &s.node));
    }
    out
}

/// One NSG's user rules: inline, then child resources (which win).
fn rules(ctx: &mut Ctx<'_>, nsg: &Resource, name: &str) -> Result<Vec<SecurityRule>, ImportError> {
    let mut parts: Vec<(&Resource, &Node, String)> = nsg
        .items("securityRules")
        .into_iter()
        .map(|(n, rel)| (nsg, n, rel))
        .collect();
    let key = nsg.key();
    for child in ctx.of(types::RULE) {
        if parent_key(&child.key()).as_deref() == Some(key.as_str()) {
            parts.push((child, &child.node, String::new()));
        }
    }
    let mut out: Vec<SecurityRule> = Vec::new();
    // Where each rule of `out` came from, for the priority check below.
    let mut origins = Vec::new();
    for (owner, node, rel) in parts {
        let converted = convert(node, false).map_err(|message| {
            ImportError::shape(
                owner.origin_of(node, &rel),
                format!("NSG {name}: {message}"),
                "a security rule has name, priority (100-4096), direction, access, protocol, address prefix(es) and port range(s)",
            )
        })?;
        let rule = match converted {
            Converted::Rule(rule, note) => {
                if let Some(note) = note {
                    ctx.note(format!("NSG {name}: {note}"));
                }
                rule
            }
            Converted::Dropped(why) => {
                ctx.use_(owner);
                ctx.note(format!("NSG {name}: {why}"));
                continue;
            }
        };
        let item = format!("rule:{name}/{}", rule.name);
        let what = format!("{} {name} rule {}", owner.kind, rule.name);
        ctx.record_part(&item, owner, node, &rel, what);
        match out
            .iter()
            .position(|r| r.name.eq_ignore_ascii_case(&rule.name))
        {
            Some(i) => {
                if out[i] != rule {
                    ctx.note(format!(
                        "NSG {name} rule {}: the inline rule and the child resource differ; the child resource (deployed last) is used",
                        rule.name
                    ));
                }
                out[i] = rule;
                origins[i] = owner.origin_of(node, &rel);
            }
            None => {
                out.push(rule);
                origins.push(owner.origin_of(node, &rel));
            }
        }
    }
    // Azure refuses two rules of one direction at one priority; so does
    // the topology loader, so the export is refused here, at the later rule.
    for (i, rule) in out.iter().enumerate() {
        if let Some(clash) = out[..i]
            .iter()
            .find(|o| o.priority == rule.priority && o.direction == rule.direction)
        {
            return Err(ImportError::shape(
                origins[i].clone(),
                format!(
                    "NSG {name} rule {}: priority {} is already used by {} rule {}",
                    rule.name, rule.priority, rule.direction, clash.name
                ),
                "Azure allows one rule per priority and direction in an NSG; the export cannot be deployed as it is: fix the priorities in it",
            ));
        }
    }
    sort(&mut out);
    Ok(out)
}

/// Inbound before outbound, each by priority.
fn sort(rules: &mut [SecurityRule]) {
    rules.sort_by_key(|r| (r.direction, r.priority));
}

/// One rule in Azure's shape (`effective`: an entry of the effective list,
/// named `securityRules/NAME`).
pub(super) fn convert(node: &Node, effective: bool) -> Result<Converted, String> {
    let raw_name = node.get("name").and_then(Node::as_str).unwrap_or_default();
    let name = if effective {
        raw_name.strip_prefix("securityRules/").unwrap_or(raw_name)
    } else {
        last_name(raw_name)
    };
    if name.is_empty() {
        return Err("a security rule has no name".into());
    }
    let at = |field: &str, message: String| format!("rule {name}: {field}: {message}");
    let priority = node
        .prop("priority")
        .and_then(Node::as_i64)
        .ok_or_else(|| at("priority", "missing or not a number".into()))?;
    let priority = u16::try_from(priority)
        .ok()
        .filter(|p| PRIORITIES.contains(p))
        .ok_or_else(|| at("priority", format!("{priority} is outside 100..4096")))?;
    let direction = match node
        .str("direction")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("inbound") => RuleDirection::Inbound,
        Some("outbound") => RuleDirection::Outbound,
        other => {
            return Err(at(
                "direction",
                format!("`{}` is not Inbound or Outbound", other.unwrap_or("")),
            ));
        }
    };
    let access = match node.str("access").map(str::to_ascii_lowercase).as_deref() {
        Some("allow") => Access::Allow,
        Some("deny") => Access::Deny,
        other => {
            return Err(at(
                "access",
                format!("`{}` is not Allow or Deny", other.unwrap_or("")),
            ));
        }
    };
    let protocol_text = node.str("protocol").unwrap_or_default();
    let protocol = match protocol_text.to_ascii_lowercase().as_str() {
        "tcp" => RuleProtocol::Tcp,
        "udp" => RuleProtocol::Udp,
        "icmp" => RuleProtocol::Icmp,
        "*" | "any" | "all" => RuleProtocol::Any,
        "esp" | "ah" => {
            return Ok(Converted::Dropped(format!(
                "rule {name} (protocol {protocol_text}) left out: it matches only IPsec {protocol_text} packets, which observer does not judge; no TCP, UDP or ICMP verdict changes"
            )));
        }
        other => {
            return Err(at(
                "protocol",
                format!("`{other}` is not Tcp, Udp, Icmp, Esp, Ah or *"),
            ));
        }
    };
    for side in ["source", "destination"] {
        if !node
            .strings_or_ids(&format!("{side}ApplicationSecurityGroups"))
            .is_empty()
        {
            return Ok(Converted::Dropped(format!(
                "rule {name} left out: its {side} names application security groups, which match NIC members (an ASE has no customer NICs in them)"
            )));
        }
    }
    let mut dropped_v6 = false;
    let mut prefixes = |side: &str| -> Result<Vec<AddressPrefix>, String> {
        let list = one_or_many(node, &format!("{side}AddressPrefix"));
        let mut out = Vec::new();
        for text in &list {
            match address(text, effective) {
                Ok(Some(p)) => out.push(p),
                Ok(None) => dropped_v6 = true,
                Err(e) => return Err(at(&format!("{side}AddressPrefix"), e)),
            }
        }
        if list.is_empty() {
            out.push(AddressPrefix::Any);
        }
        Ok(out)
    };
    let source = prefixes("source")?;
    let destination = prefixes("destination")?;
    if source.is_empty() || destination.is_empty() {
        return Ok(Converted::Dropped(format!(
            "rule {name} left out: it names IPv6 prefixes only, which never match the IPv4 model"
        )));
    }
    let ports = |side: &str| -> Result<Vec<PortRange>, String> {
        let list = one_or_many(node, &format!("{side}PortRange"));
        if list.is_empty() {
            return Ok(vec![PortRange::ANY]);
        }
        list.iter()
            .map(|p| PortRange::from_str(p).map_err(|e| at(&format!("{side}PortRange"), e)))
            .collect()
    };
    let rule = SecurityRule {
        name: name.to_string(),
        priority,
        direction,
        access,
        protocol,
        source,
        destination,
        source_ports: ports("source")?,
        destination_ports: ports("destination")?,
        default: false,
        description: node
            .str("description")
            .filter(|d| !d.is_empty())
            .map(str::to_string),
    };
    let note = dropped_v6.then(|| {
        format!("rule {name}: its IPv6 prefixes are left out (the model is IPv4; they never match an IPv4 flow)")
    });
    Ok(Converted::Rule(rule, note))
}

/// `xPrefixes[]` when it has entries, else `xPrefix`.
fn one_or_many(node: &Node, single: &str) -> Vec<String> {
    let many = node.strings(&format!("{single}es"));
    let many = if many.is_empty() {
        node.strings(&format!("{single}s"))
    } else {
        many
    };
    if !many.is_empty() {
        return many.into_iter().map(str::to_string).collect();
    }
    node.str(single)
        .filter(|s| !s.is_empty())
        .map(|s| vec![s.to_string()])
        .unwrap_or_default()
}

/// `*`, a prefix, an address or a tag; IPv6 gives `None`.
fn address(text: &str, effective: bool) -> Result<Option<AddressPrefix>, String> {
    let text = text.trim();
    if text == "*" || text.eq_ignore_ascii_case("any") || (effective && text == "0.0.0.0/0") {
        return Ok(Some(AddressPrefix::Any));
    }
    if text.contains(':') {
        return Ok(None);
    }
    if text.starts_with(|c: char| c.is_ascii_digit()) {
        return v4_prefix(text)
            .map(|p| Some(AddressPrefix::Cidr(p)))
            .ok_or_else(|| format!("`{text}` is not an IPv4 prefix"));
    }
    if text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
    {
        return Ok(Some(AddressPrefix::Tag(text.to_string())));
    }
    Err(format!(
        "`{text}` is neither an address prefix nor a service tag"
    ))
}

impl Node {
    /// Strings of array member `key`, or the `id`s of its objects.
    fn strings_or_ids(&self, key: &str) -> Vec<String> {
        self.prop(key)
            .map(|n| {
                n.as_array()
                    .iter()
                    .filter_map(|i| i.as_str().or_else(|| i.str("id")).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }
}
