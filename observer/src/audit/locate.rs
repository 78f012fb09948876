//! Where each topology item is: its line and column in the topology file
//! (the TOML parser's spans), and, when `observer topology import` wrote
//! the file, where it read the item: the `# from` comments the importer
//! puts above each item name the resource, its file, line:column and JSON
//! path, and the resource group when the export had one
//! (`# from Microsoft.Network/networkSecurityGroups ase-nsg (nsg.json:1:1 $)
//! in resource group ase-rg`). The header comment lists the input files
//! as they were given, so a file name resolves to its path.
//!
//! Items are named like the importer's provenance keys (see
//! [`super::Item`]); an item that is not found falls back to the one that
//! holds it (a rule to its NSG, a route to the route table).

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use serde::Serialize;
use toml::de::{DeTable, DeValue};

use super::Item;

/// A place in a file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct Place {
    /// The file, as the user named it (relative paths stay relative).
    pub(crate) file: PathBuf,
    /// 1-based.
    pub(crate) line: usize,
    /// 1-based, in characters.
    pub(crate) column: usize,
    /// The JSON path of the item in an export (`$.resources[3]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) json_path: Option<String>,
}

/// One `# from` comment: the resource an item came from.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FromComment {
    /// `Microsoft.Network/networkSecurityGroups ase-nsg`.
    resource: String,
    place: Place,
    resource_group: Option<String>,
}

/// One item of the topology file.
#[derive(Clone, Debug, Default)]
struct Entry {
    line: usize,
    column: usize,
    sources: Vec<FromComment>,
}

/// Every item's place in a topology file and in the exports it was
/// imported from.
#[derive(Clone, Debug, Default)]
pub(crate) struct Located {
    file: Option<PathBuf>,
    items: HashMap<String, Entry>,
}

impl Located {
    /// Reads the places of the items of the topology file `path` (its
    /// text `text`). A file that does not parse has no places (the loader
    /// has refused it already).
    pub(crate) fn read(path: &Path, text: &str) -> Self {
        let mut located = Self {
            file: Some(path.to_path_buf()),
            items: HashMap::new(),
        };
        let Ok(doc) = DeTable::parse(text) else {
            return located;
        };
        let lines: Vec<&str> = text.lines().collect();
        let inputs = imported_files(&lines);
        let dir = path.parent().unwrap_or(Path::new(""));
        let mut add = |key: String, offset: usize, header: bool| {
            let (line, column) = crate::topology::line_column(text, offset);
            let line = if header {
                header_line(&lines, line)
            } else {
                line
            };
            let column = if header { 1 } else { column };
            let sources = comments_above(&lines, line)
                .into_iter()
                .filter_map(|c| parse_from(c, &inputs, dir))
                .collect();
            located.items.entry(key).or_insert(Entry {
                line,
                column,
                sources,
            });
        };
        let root = doc.get_ref();
        for (key, value) in root.iter() {
            let k = key.get_ref().as_ref();
            match (k, value.get_ref()) {
                ("vnet", DeValue::Table(vnet)) => {
                    add("vnet".into(), key.span().start, true);
                    for (name, offset) in named(vnet, "subnet") {
                        add(format!("subnet:{name}"), offset, true);
                    }
                }
                ("nsg", DeValue::Array(nsgs)) => {
                    for nsg in nsgs.iter() {
                        let DeValue::Table(t) = nsg.get_ref() else {
                            continue;
                        };
                        let Some((name, offset)) = name_of(t) else {
                            continue;
                        };
                        add(format!("nsg:{name}"), offset, true);
                        for (rule, offset) in named(t, "rule") {
                            add(format!("rule:{name}/{rule}"), offset, true);
                        }
                    }
                }
                ("route_table", DeValue::Table(rt)) => {
                    add("route_table".into(), key.span().start, true);
                    for (name, offset) in named(rt, "route") {
                        add(format!("route:{name}"), offset, true);
                    }
                }
                (
                    "private_endpoint" | "backend" | "endpoint" | "peering" | "service_tag",
                    DeValue::Array(_),
                ) => {
                    for (name, offset) in named(root, k) {
                        add(format!("{k}:{name}"), offset, true);
                    }
                }
                ("dns" | "onprem" | "lab", DeValue::Table(_)) => {
                    add(k.into(), key.span().start, true);
                }
                _ => add(k.into(), key.span().start, false),
            }
        }
        located
    }

    fn entry(&self, item: &Item) -> Option<&Entry> {
        let key = item.to_string();
        self.items.get(&key).or_else(|| match item {
            Item::Rule { nsg, .. } => self.entry(&Item::Nsg(nsg.clone())),
            Item::Route(_) => self.entry(&Item::RouteTable),
            Item::Subnet(_) | Item::RouteTable => self.items.get("vnet"),
            _ => None,
        })
    }

    /// Where `item` is written in the topology file.
    pub(crate) fn place(&self, item: &Item) -> Option<Place> {
        let file = self.file.clone()?;
        let e = self.entry(item)?;
        Some(Place {
            file,
            line: e.line,
            column: e.column,
            json_path: None,
        })
    }

    /// Where `topology import` read `item`.
    pub(crate) fn imported_place(&self, item: &Item) -> Option<Place> {
        self.entry(item)?.sources.first().map(|s| s.place.clone())
    }

    /// The resource group the export names for `item`.
    pub(crate) fn resource_group(&self, item: &Item) -> Option<String> {
        self.entry(item)?
            .sources
            .iter()
            .find_map(|s| s.resource_group.clone())
    }

    /// The resource group of the source of `item` whose type holds `kind`
    /// (`privateDnsZones`).
    pub(crate) fn resource_group_of_type(&self, item: &Item, kind: &str) -> Option<String> {
        self.entry(item)?
            .sources
            .iter()
            .filter(|s| {
                s.resource
                    .to_ascii_lowercase()
                    .contains(&kind.to_ascii_lowercase())
            })
            .find_map(|s| s.resource_group.clone())
    }

    /// The Azure name of the resource `item` came from
    /// (`Microsoft.Network/routeTables rt-ase` -> `rt-ase`).
    pub(crate) fn name_of(&self, item: &Item) -> Option<String> {
        let key = item.to_string();
        self.items.get(&key)?.sources.iter().find_map(|s| {
            let mut words = s.resource.split_whitespace();
            words.next()?;
            words.next().map(str::to_string)
        })
    }
}

/// `name` and the offset of its key in each table of `table[key]`.
fn named(table: &DeTable<'_>, key: &str) -> Vec<(String, usize)> {
    let Some(value) = table.get(key) else {
        return Vec::new();
    };
    let DeValue::Array(items) = value.get_ref() else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| match item.get_ref() {
            DeValue::Table(t) => name_of(t),
            _ => None,
        })
        .collect()
}

fn name_of(table: &DeTable<'_>) -> Option<(String, usize)> {
    let (key, value) = table.get_key_value("name")?;
    match value.get_ref() {
        DeValue::String(s) => Some((s.to_string(), key.span().start)),
        _ => None,
    }
}

/// The header line (`[[nsg.rule]]`) of the table holding `line`: the
/// nearest line above that opens a table, else `line` itself.
fn header_line(lines: &[&str], line: usize) -> usize {
    (1..=line.min(lines.len()))
        .rev()
        .find(|&l| lines[l - 1].trim_start().starts_with('['))
        .unwrap_or(line)
}

/// The comment lines directly above `line` (1-based), top first.
fn comments_above<'a>(lines: &[&'a str], line: usize) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut l = line.saturating_sub(1);
    while l >= 1 {
        let text = lines[l - 1].trim();
        if !text.starts_with('#') {
            break;
        }
        out.push(text);
        l -= 1;
    }
    out.reverse();
    out
}

/// The input files the header comment names
/// (`# Imported by `observer topology import` from a.json, b.json.`).
fn imported_files(lines: &[&str]) -> Vec<PathBuf> {
    lines
        .iter()
        .take_while(|l| l.trim_start().starts_with('#') || l.trim().is_empty())
        .find_map(|l| l.split_once("by `observer topology import` from "))
        .map(|(_, files)| {
            files
                .trim_end()
                .trim_end_matches('.')
                .split(", ")
                .map(PathBuf::from)
                .collect()
        })
        .unwrap_or_default()
}

/// A `# from RESOURCE (FILE:LINE:COLUMN PATH) in resource group G: detail`
/// comment; the file resolved against the header's inputs (as given, else
/// next to the topology file).
fn parse_from(comment: &str, inputs: &[PathBuf], dir: &Path) -> Option<FromComment> {
    let rest = comment
        .strip_prefix('#')?
        .trim_start()
        .strip_prefix("from ")?;
    // The origin is the last parenthesised `file:line:column path` group.
    let mut search = rest;
    let mut found = None;
    let mut consumed = 0;
    while let Some(open) = search.find(" (") {
        let after = &search[open + 2..];
        if let Some(close) = after.find(')')
            && let Some(origin) = parse_origin(&after[..close])
        {
            let start = consumed + open;
            let end = consumed + open + 2 + close + 1;
            found = Some((start, end, origin));
        }
        consumed += open + 2;
        search = &search[open + 2..];
    }
    let (start, end, (name, line, column, json_path)) = found?;
    let resource = rest[..start].to_string();
    let tail = &rest[end..];
    let resource_group = tail
        .strip_prefix(" in resource group ")
        .map(|g| g.split(':').next().unwrap_or(g).trim().to_string())
        .filter(|g| !g.is_empty());
    let file = inputs
        .iter()
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy() == name))
        .cloned()
        .unwrap_or_else(|| PathBuf::from(&name));
    let file = if file.exists() || !dir.join(&file).exists() {
        file
    } else {
        dir.join(file)
    };
    Some(FromComment {
        resource,
        place: Place {
            file,
            line,
            column,
            json_path: Some(json_path),
        },
        resource_group,
    })
}

/// `export.json:24:5 $.resources[0]` -> (file name, line, column, path).
fn parse_origin(text: &str) -> Option<(String, usize, usize, String)> {
    let (position, json_path) = text.split_once(' ')?;
    if !json_path.starts_with('$') {
        return None;
    }
    let mut parts = position.rsplitn(3, ':');
    let column = parts.next()?.parse().ok()?;
    let line = parts.next()?.parse().ok()?;
    let file = parts.next()?.to_string();
    Some((file, line, column, json_path.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMPORTED: &str = "# Imported by `observer topology import` from fixtures/seed/export.json, az/nsg.json.\n# read: 1 x\n\nname = \"t\"\n# from Microsoft.Web/hostingEnvironments ase-004 (export.json:577:5 $.resources[14]): kind ASEV2, internalLoadBalancingMode None\nenvironment = \"asev2-external\"\n\n# from Microsoft.Network/virtualNetworks ase-vnet (export.json:252:5 $.resources[1])\n[vnet]\nname = \"ase-vnet\"\naddress_space = [\"192.168.0.0/16\"]\n\n[[vnet.subnet]]\nname = \"ase\"\nprefix = \"192.168.251.128/25\"\nrole = \"ase\"\n\n# from Microsoft.Network/networkSecurityGroups ase-nsg (nsg.json:3:1 $) in resource group ase-rg\n[[nsg]]\nname = \"ase-nsg\"\nsubnets = [\"ase\"]\n\n# from Microsoft.Network/networkSecurityGroups ase-nsg rule deny (nsg.json:40:11 $.securityRules[1]) in resource group ase-rg\n# an assumption the importer noted\n[[nsg.rule]]\nname = \"deny\"\npriority = 100\ndirection = \"Outbound\"\naccess = \"Deny\"\nprotocol = \"*\"\n";

    #[test]
    fn items_are_found_at_their_headers_with_their_sources() {
        let l = Located::read(Path::new("net/t.toml"), IMPORTED);
        let rule = Item::Rule {
            nsg: "ase-nsg".into(),
            rule: "deny".into(),
        };
        let p = l.place(&rule).unwrap();
        assert_eq!((p.line, p.column), (25, 1), "{p:?}");
        assert_eq!(p.file, PathBuf::from("net/t.toml"));
        let i = l.imported_place(&rule).unwrap();
        assert_eq!(i.file, PathBuf::from("az/nsg.json"));
        assert_eq!((i.line, i.column), (40, 11));
        assert_eq!(i.json_path.as_deref(), Some("$.securityRules[1]"));
        assert_eq!(l.resource_group(&rule).as_deref(), Some("ase-rg"));
        // A subnet it does not know falls back to the VNet, read from the
        // ARM file; an ARM export names no resource group.
        let gone = Item::Subnet("gone".into());
        let v = l.imported_place(&gone).unwrap();
        assert_eq!(v.file, PathBuf::from("fixtures/seed/export.json"));
        assert_eq!((v.line, v.column), (252, 5));
        assert_eq!(l.resource_group(&gone), None);
        assert_eq!(l.place(&Item::Subnet("ase".into())).unwrap().line, 13);
        // An unknown rule falls back to its NSG.
        let other = Item::Rule {
            nsg: "ase-nsg".into(),
            rule: "nope".into(),
        };
        assert_eq!(l.place(&other).unwrap().line, 19);
        assert_eq!(
            l.name_of(&Item::Nsg("ase-nsg".into())).as_deref(),
            Some("ase-nsg")
        );
    }

    #[test]
    fn a_hand_written_file_has_places_but_no_sources() {
        let text = "name = \"t\"\nenvironment = \"asev3\"\n[vnet]\nname = \"v\"\naddress_space = [\"10.0.0.0/16\"]\n[[vnet.subnet]]\nname = \"ase\"\nprefix = \"10.0.0.0/24\"\nrole = \"ase\"\n[[private_endpoint]]\nname = \"kv\"\n";
        let l = Located::read(Path::new("t.toml"), text);
        let p = l.place(&Item::PrivateEndpoint("kv".into())).unwrap();
        assert_eq!((p.line, p.column), (10, 1));
        assert_eq!(l.imported_place(&Item::PrivateEndpoint("kv".into())), None);
        assert_eq!(l.place(&Item::Dns), None);
    }
}
