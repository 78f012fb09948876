//! What only Azure's effective views know.
//!
//! `az network nic show-effective-route-table -o json`: `value[]` of
//! `{source: Default|User|VirtualNetworkGateway, state: Active|Invalid,
//! addressPrefix: [...], nextHopType, nextHopIpAddress: [...], name}`.
//! Routes learned over BGP from ExpressRoute or a VPN (source
//! `VirtualNetworkGateway`) are in no template: they become the on-premises
//! prefixes and advertised routes. `User` routes stand in for a route table
//! the inputs lack; `Default` peering routes for peerings they lack; the
//! other defaults are Azure's system routes, which the model computes.
//! `Invalid` routes (overridden) are skipped.
//!
//! `az network nic list-effective-nsg -o json`: `value[]` of
//! `{networkSecurityGroup: {id}, association: {subnet|networkInterface: {id}},
//! effectiveSecurityRules: [...]}`. It gives the associations that really
//! apply, the rules of NSGs the inputs lack, and every service tag expanded
//! (`expandedSourceAddressPrefix`), so tags work without a tag file.

use std::collections::BTreeSet;

use ipnet::Ipv4Net;

use super::{
    ImportError, Source,
    build::{Ctx, v4_prefix},
    json::{Node, index},
    network::parse_hop,
    nsg::{Converted, convert},
    resource::{Resource, key_of_id, last_name, types},
};
use crate::topology::{AddressPrefix, NextHop, RouteTarget, SecurityRule, UserRoute};

/// The effective views, read.
#[derive(Debug, Default)]
pub(super) struct Effective {
    /// BGP routes from the gateway.
    pub bgp: Vec<(Ipv4Net, Source)>,
    /// User routes (for a route table the inputs lack).
    pub user: Vec<(UserRoute, Source)>,
    /// Peered address space (for peerings the inputs lack).
    pub peering: Vec<(Ipv4Net, Source)>,
    pub nsgs: Vec<EffectiveNsg>,
}

/// One NSG of the effective list.
#[derive(Debug)]
pub(super) struct EffectiveNsg {
    pub nsg_key: String,
    pub name: String,
    /// The subnet it is associated with (`None`: a NIC).
    pub subnet_key: Option<String>,
    pub rules: Vec<(SecurityRule, Source)>,
    pub source: Source,
}

impl Effective {
    pub(super) fn read(ctx: &mut Ctx<'_>) -> Result<Self, ImportError> {
        let mut out = Self::default();
        for r in ctx.of(types::EFFECTIVE_ROUTES) {
            ctx.use_(r);
            out.routes(r)?;
        }
        for r in ctx.of(types::EFFECTIVE_NSGS) {
            ctx.use_(r);
            out.nsgs(ctx, r)?;
        }
        Ok(out)
    }

    fn routes(&mut self, r: &Resource) -> Result<(), ImportError> {
        let list = r
            .node
            .get("value")
            .map_or(std::slice::from_ref(&r.node), |v| v.as_array());
        let base = if r.node.get("value").is_some() {
            "$.value"
        } else {
            "$"
        };
        let mut user_names = BTreeSet::new();
        for (i, entry) in list.iter().enumerate() {
            let path = index(base, i);
            let origin = r.doc.origin(entry, &path);
            let source = |detail: String| Source {
                resource: types::EFFECTIVE_ROUTES.to_string(),
                origin: origin.clone(),
                resource_group: None,
                detail: Some(detail),
            };
            if entry
                .str("state")
                .is_some_and(|s| !s.eq_ignore_ascii_case("Active"))
            {
                continue;
            }
            let kind = entry.str("source").unwrap_or_default().to_ascii_lowercase();
            let hop_text = entry.str("nextHopType").unwrap_or_default();
            let prefixes: Vec<Ipv4Net> = entry
                .strings("addressPrefix")
                .into_iter()
                .chain(entry.str("addressPrefix"))
                .filter_map(v4_prefix)
                .collect();
            match kind.as_str() {
                "virtualnetworkgateway" => {
                    for p in prefixes {
                        self.bgp
                            .push((p, source(format!("BGP route {p} via {hop_text}"))));
                    }
                }
                "user" => {
                    let Some(next_hop) = parse_hop(hop_text) else {
                        return Err(ImportError::shape(
                            origin,
                            format!("user route with next hop `{hop_text}`"),
                            "user routes take VirtualNetworkGateway, VnetLocal, Internet, VirtualAppliance or None",
                        ));
                    };
                    let next_hop_ip = (next_hop == NextHop::VirtualAppliance)
                        .then(|| {
                            entry
                                .strings("nextHopIpAddress")
                                .into_iter()
                                .find_map(|a| a.parse().ok())
                        })
                        .flatten();
                    for p in prefixes {
                        let base = entry.str("name").map(str::to_string).unwrap_or_else(|| {
                            format!("user-{}", p.to_string().replace(['.', '/'], "-"))
                        });
                        let mut name = base.clone();
                        let mut n = 2;
                        while !user_names.insert(name.clone()) {
                            name = format!("{base}-{n}");
                            n += 1;
                        }
                        self.user.push((
                            UserRoute {
                                name,
                                target: RouteTarget::Prefix(p),
                                next_hop,
                                next_hop_ip,
                            },
                            source(format!("user route {p} via {hop_text}")),
                        ));
                    }
                }
                _ if hop_text.eq_ignore_ascii_case("VNetPeering")
                    || hop_text.eq_ignore_ascii_case("VnetPeering") =>
                {
                    for p in prefixes {
                        self.peering.push((p, source(format!("peering route {p}"))));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn nsgs(&mut self, ctx: &mut Ctx<'_>, r: &Resource) -> Result<(), ImportError> {
        let list = r
            .node
            .get("value")
            .map_or(std::slice::from_ref(&r.node), |v| v.as_array());
        let base = if r.node.get("value").is_some() {
            "$.value"
        } else {
            "$"
        };
        for (i, entry) in list.iter().enumerate() {
            let path = index(base, i);
            let origin = r.doc.origin(entry, &path);
            let Some(nsg_key) = entry.id_of("networkSecurityGroup").and_then(key_of_id) else {
                return Err(ImportError::shape(
                    origin,
                    "an effective NSG entry names no networkSecurityGroup.id",
                    "pass the output of `az network nic list-effective-nsg -o json` unchanged",
                ));
            };
            let name = last_name(&nsg_key).to_string();
            let association = entry.prop("association");
            let subnet_key = association
                .and_then(|a| a.id_of("subnet"))
                .and_then(key_of_id);
            let mut rules = Vec::new();
            let list = entry
                .prop("effectiveSecurityRules")
                .map(Node::as_array)
                .unwrap_or(&[]);
            for (j, rule) in list.iter().enumerate() {
                let rule_path = format!("{path}.effectiveSecurityRules[{j}]");
                let rule_origin = r.doc.origin(rule, &rule_path);
                expand(ctx, rule);
                let raw = rule.str("name").unwrap_or_default();
                if !raw.starts_with("securityRules/") {
                    // Azure's defaults (`defaultSecurityRules/...`): the model has them.
                    continue;
                }
                match convert(rule, true) {
                    Ok(Converted::Rule(rule, note)) => {
                        if let Some(note) = note {
                            ctx.note(format!("NSG {name}: {note}"));
                        }
                        let source = Source {
                            resource: format!("{} {name}", types::EFFECTIVE_NSGS),
                            origin: rule_origin,
                            resource_group: None,
                            detail: None,
                        };
                        rules.push((rule, source));
                    }
                    Ok(Converted::Dropped(why)) => ctx.note(format!("NSG {name}: {why}")),
                    Err(message) => {
                        return Err(ImportError::shape(
                            rule_origin,
                            format!("NSG {name}: {message}"),
                            "pass the output of `az network nic list-effective-nsg -o json` unchanged",
                        ));
                    }
                }
            }
            self.nsgs.push(EffectiveNsg {
                nsg_key,
                name: name.clone(),
                subnet_key,
                rules,
                source: Source {
                    resource: format!("{} {name}", types::EFFECTIVE_NSGS),
                    origin,
                    resource_group: None,
                    detail: Some("association".into()),
                },
            });
        }
        Ok(())
    }
}

/// Records the prefixes of a service tag an effective rule expands.
fn expand(ctx: &mut Ctx<'_>, rule: &Node) {
    for side in ["source", "destination"] {
        let Some(tag) = rule.str(&format!("{side}AddressPrefix")) else {
            continue;
        };
        if !matches!(address_kind(tag), Some(AddressPrefix::Tag(_))) {
            continue;
        }
        let expanded: Vec<Ipv4Net> = rule
            .strings(&format!("expanded{}AddressPrefix", capital(side)))
            .into_iter()
            .filter_map(v4_prefix)
            .collect();
        if !expanded.is_empty() {
            ctx.expanded
                .entry(tag.to_string())
                .or_default()
                .extend(expanded);
        }
    }
}

fn address_kind(text: &str) -> Option<AddressPrefix> {
    let starts = text.chars().next()?;
    (starts.is_ascii_alphabetic()).then(|| AddressPrefix::Tag(text.to_string()))
}

fn capital(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}
