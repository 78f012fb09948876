//! Fixes Azure accepts, each as a sentence, the exact `az` commands and the
//! topology's TOML:
//!
//! - a flow an NSG denies: widen the user's Allow rule that nearly admits
//!   it (the wrong source, destination or ports), else add an Allow rule at
//!   a free priority number before the rule that denies it (user
//!   priorities are 100..4096, one number per direction). When none is
//!   free (the denying rule sits at 100), the fix names that rule: move it
//!   one number down when that keeps every other rule's order, else
//!   change or remove it;
//! - a route: add (or remove) a user route in the ASE subnet's route table,
//!   creating and associating the table when the subnet has none.
//!
//! Names the topology does not know (the resource group of an NSG written
//! by hand, the route table's name) are placeholders in angle brackets:
//! `<resource-group>`. `topology import` records them from `az` output;
//! [`super::Located`] reads them back.

use std::fmt::Write as _;

use super::{Auditor, Item};
use crate::{
    security::RuleHit,
    topology::{
        AddressPrefix, Nsg, PortRange, RuleDirection, RuleProtocol, SecurityRule, nsg::PRIORITIES,
    },
};

/// A fix: what to do, the `az` commands, the TOML.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Fix {
    pub(crate) text: String,
    pub(crate) az: Vec<String>,
    pub(crate) toml: Option<String>,
}

impl Fix {
    pub(crate) fn text(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            ..Self::default()
        }
    }
}

/// What a rule must admit, in Azure's spellings.
#[derive(Clone, Debug)]
pub(crate) struct Wanted {
    /// Names the new rule (`allow-azure-sql-out`).
    pub(crate) subject: String,
    pub(crate) direction: RuleDirection,
    pub(crate) protocol: RuleProtocol,
    /// `*`, a tag or a CIDR.
    pub(crate) source: String,
    pub(crate) destination: String,
    /// `1433`, `11000-11999`, `*`.
    pub(crate) ports: Vec<String>,
    /// The ports probed: a rule widened on its source or destination must
    /// already cover every one of them, else widening it fixes only part.
    pub(crate) probed: Vec<u16>,
}

/// The user's Allow rule that nearly admits the flow, and what it lacks.
#[derive(Clone, Debug)]
pub(crate) struct NearMiss {
    pub(crate) rule: SecurityRule,
    pub(crate) lacks: Lack,
}

/// The one field of a [`NearMiss`] that does not cover the flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lack {
    Source,
    Destination,
    Ports,
}

impl NearMiss {
    /// `rule allow-web (priority 110) allows TCP 80, 443 but only to Storage`.
    pub(crate) fn describe(&self) -> String {
        let r = &self.rule;
        let (what, list) = match self.lacks {
            Lack::Source => ("only from", join(&r.source)),
            Lack::Destination => ("only to", join(&r.destination)),
            Lack::Ports => ("only on ports", join(&r.destination_ports)),
        };
        format!(
            "rule {} (priority {}) is meant for this traffic but allows it {what} {list}",
            r.name, r.priority
        )
    }
}

fn join<T: ToString>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A shell word: quoted when it holds anything but plain characters.
fn sh(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._/:-,=".contains(c))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

fn words(items: &[String]) -> String {
    items.iter().map(|i| sh(i)).collect::<Vec<_>>().join(" ")
}

/// A TOML string.
fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn toml_list<T: ToString>(items: &[T]) -> String {
    let items: Vec<String> = items.iter().map(|i| q(&i.to_string())).collect();
    format!("[{}]", items.join(", "))
}

/// A rule as the topology writes it (defaults left out).
fn rule_toml(r: &SecurityRule) -> String {
    let mut t = String::from("[[nsg.rule]]\n");
    let _ = writeln!(t, "name = {}", q(&r.name));
    if let Some(d) = &r.description {
        let _ = writeln!(t, "description = {}", q(d));
    }
    let _ = writeln!(t, "priority = {}", r.priority);
    let _ = writeln!(t, "direction = {}", q(r.direction.as_str()));
    let _ = writeln!(t, "access = {}", q(r.access.as_str()));
    let _ = writeln!(t, "protocol = {}", q(r.protocol.as_str()));
    if r.source != [AddressPrefix::Any] {
        let _ = writeln!(t, "source = {}", toml_list(&r.source));
    }
    if r.destination != [AddressPrefix::Any] {
        let _ = writeln!(t, "destination = {}", toml_list(&r.destination));
    }
    if r.source_ports != [PortRange::ANY] {
        let _ = writeln!(t, "source_ports = {}", toml_list(&r.source_ports));
    }
    if r.destination_ports != [PortRange::ANY] {
        let _ = writeln!(t, "destination_ports = {}", toml_list(&r.destination_ports));
    }
    t
}

/// `list` with `add` (a `*` swallows everything).
fn widened<T: Clone + PartialEq>(list: &[T], add: T, any: T) -> Vec<T> {
    if add == any || list.contains(&any) {
        return vec![any];
    }
    let mut out = list.to_vec();
    if !out.contains(&add) {
        out.push(add);
    }
    out
}

fn prefix_of(text: &str) -> AddressPrefix {
    if text == "*" {
        return AddressPrefix::Any;
    }
    match text.parse() {
        Ok(net) => AddressPrefix::Cidr(net),
        Err(_) => AddressPrefix::Tag(text.to_string()),
    }
}

impl Auditor<'_> {
    /// `--resource-group` of the NSG, route table, ... that `item` names.
    fn resource_group(&self, item: &Item) -> String {
        self.located
            .resource_group(item)
            .unwrap_or_else(|| "<resource-group>".into())
    }

    /// A free name for a new rule of `nsg`.
    fn rule_name(nsg: &Nsg, wanted: &Wanted) -> String {
        let dir = match wanted.direction {
            RuleDirection::Inbound => "in",
            RuleDirection::Outbound => "out",
        };
        let base = format!("allow-{}-{dir}", wanted.subject);
        let mut name = base.clone();
        let mut n = 2;
        while nsg.rules.iter().any(|r| r.name.eq_ignore_ascii_case(&name)) {
            name = format!("{base}-{n}");
            n += 1;
        }
        name
    }

    /// A priority number of `direction` no rule of `nsg` uses, before
    /// `before` (a round number when there is one), if any.
    fn free_priority(nsg: &Nsg, direction: RuleDirection, before: u16) -> Option<u16> {
        let used = |p: u16| {
            nsg.rules
                .iter()
                .any(|r| r.direction == direction && r.priority == p)
        };
        let end = before.min(PRIORITIES.end() + 1);
        let free: Vec<u16> = (*PRIORITIES.start()..end)
            .rev()
            .filter(|p| !used(*p))
            .collect();
        free.iter()
            .copied()
            .find(|p| p % 10 == 0)
            .or(free.first().copied())
    }

    /// The fix for a flow `nsg` denies in `wanted.direction` by `hit`.
    pub(super) fn nsg_fix(
        &self,
        nsg: &Nsg,
        hit: &RuleHit,
        wanted: &Wanted,
        near: Option<&NearMiss>,
    ) -> Fix {
        let rg = self.resource_group(&Item::Nsg(nsg.name.clone()));
        let head = |verb: &str, name: &str| {
            format!(
                "az network nsg rule {verb} --resource-group {} --nsg-name {} --name {}",
                sh(&rg),
                sh(&nsg.name),
                sh(name)
            )
        };
        let under = format!("# in [[nsg]] name = {}\n", q(&nsg.name));
        if let Some(near) = near {
            let mut rule = near.rule.clone();
            let (flag, values) = match near.lacks {
                Lack::Source => {
                    rule.source =
                        widened(&rule.source, prefix_of(&wanted.source), AddressPrefix::Any);
                    (
                        "--source-address-prefixes",
                        rule.source
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>(),
                    )
                }
                Lack::Destination => {
                    rule.destination = widened(
                        &rule.destination,
                        prefix_of(&wanted.destination),
                        AddressPrefix::Any,
                    );
                    (
                        "--destination-address-prefixes",
                        rule.destination.iter().map(ToString::to_string).collect(),
                    )
                }
                Lack::Ports => {
                    let mut ports = rule.destination_ports.clone();
                    for p in &wanted.ports {
                        if let Ok(range) = p.parse::<PortRange>() {
                            ports = widened(&ports, range, PortRange::ANY);
                        }
                    }
                    rule.destination_ports = ports;
                    (
                        "--destination-port-ranges",
                        rule.destination_ports
                            .iter()
                            .map(ToString::to_string)
                            .collect(),
                    )
                }
            };
            return Fix {
                text: format!(
                    "widen rule {} (priority {}) of nsg {} so it admits this traffic: {} [{}]",
                    rule.name,
                    rule.priority,
                    nsg.name,
                    flag.trim_start_matches("--"),
                    values.join(", ")
                ),
                az: vec![format!(
                    "{} {flag} {}",
                    head("update", &rule.name),
                    words(&values)
                )],
                toml: Some(format!("{under}{}", rule_toml(&rule))),
            };
        }
        let deny_at = if hit.default {
            PRIORITIES.end() + 1
        } else {
            hit.priority
        };
        let name = Self::rule_name(nsg, wanted);
        let new_rule = |priority: u16| SecurityRule {
            name: name.clone(),
            priority,
            direction: wanted.direction,
            access: crate::topology::Access::Allow,
            protocol: wanted.protocol,
            source: vec![prefix_of(&wanted.source)],
            destination: vec![prefix_of(&wanted.destination)],
            source_ports: vec![PortRange::ANY],
            destination_ports: wanted.ports.iter().filter_map(|p| p.parse().ok()).collect(),
            default: false,
            description: None,
        };
        let create = |priority: u16| {
            format!(
                "{} --priority {priority} --direction {} --access Allow --protocol {} --source-address-prefixes {} --source-port-ranges '*' --destination-address-prefixes {} --destination-port-ranges {}",
                head("create", &name),
                wanted.direction,
                sh(wanted.protocol.as_str()),
                sh(&wanted.source),
                sh(&wanted.destination),
                words(&wanted.ports)
            )
        };
        let what = format!(
            "{} Allow rule {name}: protocol {}, source {}, destination {}, destination_ports [{}]",
            wanted.direction,
            wanted.protocol.as_str(),
            wanted.source,
            wanted.destination,
            wanted.ports.join(", ")
        );
        if let Some(priority) = Self::free_priority(nsg, wanted.direction, deny_at) {
            let before = if hit.default {
                format!("(the user range ends at {})", PRIORITIES.end())
            } else {
                format!("(before {} at {})", hit.rule, hit.priority)
            };
            return Fix {
                text: format!(
                    "add to nsg {} at priority {priority} {before} the {what}",
                    nsg.name
                ),
                az: vec![create(priority)],
                toml: Some(format!("{under}{}", rule_toml(&new_rule(priority)))),
            };
        }
        // No number is free before the denying rule: it is the one to change.
        let denying = nsg
            .rules
            .iter()
            .find(|r| r.name == hit.rule && r.direction == wanted.direction)
            .cloned();
        let lowest = if hit.priority == *PRIORITIES.start() {
            format!(
                "has priority {}, the lowest number Azure allows, so no rule can come before it",
                hit.priority
            )
        } else {
            format!(
                "has priority {} and every number from {} up to it is taken, so no rule can come before it",
                hit.priority,
                PRIORITIES.start()
            )
        };
        let next = hit.priority + 1;
        let next_free = next <= *PRIORITIES.end()
            && !nsg
                .rules
                .iter()
                .any(|r| r.direction == wanted.direction && r.priority == next);
        match denying {
            Some(mut moved) if next_free => {
                moved.priority = next;
                Fix {
                    text: format!(
                        "rule {} of nsg {} denies it and {lowest}: change rule {}: move it to priority {next} (no rule lies between, so it keeps its place among the others) and add the {what} at priority {}; or remove rule {}",
                        hit.rule, nsg.name, hit.rule, hit.priority, hit.rule
                    ),
                    az: vec![
                        format!("{} --priority {next}", head("update", &hit.rule)),
                        create(hit.priority),
                    ],
                    toml: Some(format!(
                        "{under}{}\n{}",
                        rule_toml(&moved),
                        rule_toml(&new_rule(hit.priority))
                    )),
                }
            }
            denying => Fix {
                text: format!(
                    "rule {} of nsg {} denies it and {lowest}: change rule {} so it does not match this traffic, or remove it",
                    hit.rule, nsg.name, hit.rule
                ),
                az: vec![head("delete", &hit.rule)],
                toml: denying.map(|r| {
                    format!(
                        "# remove from [[nsg]] name = {} (or narrow it):\n{}",
                        q(&nsg.name),
                        rule_toml(&r)
                    )
                }),
            },
        }
    }

    /// The route table's name for commands.
    fn route_table_name(&self) -> String {
        self.located
            .name_of(&Item::RouteTable)
            .unwrap_or_else(|| "<route-table>".into())
    }

    /// A user route for `target` (a CIDR or a service tag) with next hop
    /// `hop`, in the ASE subnet's route table.
    pub(super) fn route_fix(&self, name: &str, target: &str, hop: &str, why: &str) -> Fix {
        let rg = self.resource_group(&Item::RouteTable);
        let table = self.route_table_name();
        let mut az = Vec::new();
        let has_table = !self.t.route_table.routes.is_empty()
            || self.located.name_of(&Item::RouteTable).is_some();
        if !has_table {
            az.push(format!(
                "az network route-table create --resource-group {} --name {}",
                sh(&rg),
                sh(&table)
            ));
            az.push(format!(
                "az network vnet subnet update --resource-group {} --vnet-name {} --name {} --route-table {}",
                sh(&rg),
                sh(&self.t.vnet.name),
                sh(&self.t.ase_subnet().name),
                sh(&table)
            ));
        }
        az.push(format!(
            "az network route-table route create --resource-group {} --route-table-name {} --name {} --address-prefix {} --next-hop-type {hop}",
            sh(&rg),
            sh(&table),
            sh(name),
            sh(target)
        ));
        let key = if target.parse::<ipnet::Ipv4Net>().is_ok() || target.starts_with('<') {
            "prefix"
        } else {
            "service_tag"
        };
        Fix {
            text: format!(
                "add a user route {name}: {key} {target}, next hop {hop}, to the ASE subnet's route table{why}"
            ),
            az,
            toml: Some(format!(
                "[[route_table.route]]\nname = {}\n{key} = {}\nnext_hop = {}\n",
                q(name),
                q(target),
                q(hop)
            )),
        }
    }

    /// Removing the user route `name`.
    pub(super) fn route_delete(&self, name: &str, why: &str) -> Fix {
        let rg = self.resource_group(&Item::Route(name.into()));
        Fix {
            text: format!("remove the user route {name}{why}"),
            az: vec![format!(
                "az network route-table route delete --resource-group {} --route-table-name {} --name {}",
                sh(&rg),
                sh(&self.route_table_name()),
                sh(name)
            )],
            toml: Some(format!(
                "# remove the [[route_table.route]] with name = {}\n",
                q(name)
            )),
        }
    }

    /// Linking a private endpoint's privatelink zone to the VNet.
    pub(super) fn zone_link_fix(&self, endpoint: &str, zone: &str) -> Fix {
        let item = Item::PrivateEndpoint(endpoint.into());
        let rg = self
            .located
            .resource_group_of_type(&item, "privateDnsZones")
            .unwrap_or_else(|| "<resource-group>".into());
        Fix {
            text: format!(
                "add a virtual network link from {zone} to VNet {}",
                self.t.vnet.name
            ),
            az: vec![format!(
                "az network private-dns link vnet create --resource-group {} --zone-name {} --name {} --virtual-network {} --registration-enabled false",
                sh(&rg),
                sh(zone),
                sh(&format!("{}-link", self.t.vnet.name)),
                sh(&self.t.vnet.name)
            )],
            toml: Some(format!(
                "# in [[private_endpoint]] name = {}\nzone_linked = true\n",
                q(endpoint)
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        assert_eq!(sh("ase-nsg"), "ase-nsg");
        assert_eq!(sh("*"), "'*'");
        assert_eq!(sh("<resource-group>"), "'<resource-group>'");
        assert_eq!(sh("it's"), "'it'\\''s'");
        assert_eq!(sh("11000-11999"), "11000-11999");
        assert_eq!(sh("192.168.251.128/25"), "192.168.251.128/25");
    }

    #[test]
    fn widening_keeps_what_was_allowed_and_star_swallows_all() {
        let any = AddressPrefix::Any;
        let tag = |t: &str| AddressPrefix::Tag(t.into());
        assert_eq!(
            widened(&[tag("Storage")], tag("Internet"), any.clone()),
            [tag("Storage"), tag("Internet")]
        );
        assert_eq!(
            widened(&[tag("Storage")], any.clone(), any.clone()),
            std::slice::from_ref(&any)
        );
        assert_eq!(
            widened(&[tag("Sql")], tag("Sql"), any.clone()),
            [tag("Sql")]
        );
    }
}
