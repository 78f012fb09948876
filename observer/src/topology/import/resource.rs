//! Azure resources as the readers hand them to the builder: type, full
//! name, the (evaluated) JSON object and where it was written. ARM
//! templates, `az` output and REST bodies differ in shape (`properties`
//! nested or flattened, child names `vnet/subnet` or `subnet`, ids built by
//! `resourceId()` or written out); [`Resource::key`] and [`key_of_id`] give
//! one comparable identity for all of them.

use std::sync::Arc;

use super::json::{Doc, Node, Origin};

/// Resource types the builder reads (lower case, as compared).
pub(crate) mod types {
    pub(crate) const VNET: &str = "microsoft.network/virtualnetworks";
    pub(crate) const SUBNET: &str = "microsoft.network/virtualnetworks/subnets";
    pub(crate) const PEERING: &str = "microsoft.network/virtualnetworks/virtualnetworkpeerings";
    pub(crate) const NSG: &str = "microsoft.network/networksecuritygroups";
    pub(crate) const RULE: &str = "microsoft.network/networksecuritygroups/securityrules";
    pub(crate) const ROUTE_TABLE: &str = "microsoft.network/routetables";
    pub(crate) const ROUTE: &str = "microsoft.network/routetables/routes";
    pub(crate) const PRIVATE_ENDPOINT: &str = "microsoft.network/privateendpoints";
    pub(crate) const ZONE_GROUP: &str = "microsoft.network/privateendpoints/privatednszonegroups";
    pub(crate) const ZONE: &str = "microsoft.network/privatednszones";
    pub(crate) const A_RECORD: &str = "microsoft.network/privatednszones/a";
    pub(crate) const ZONE_LINK: &str = "microsoft.network/privatednszones/virtualnetworklinks";
    pub(crate) const GATEWAY: &str = "microsoft.network/virtualnetworkgateways";
    pub(crate) const LOCAL_GATEWAY: &str = "microsoft.network/localnetworkgateways";
    pub(crate) const NIC: &str = "microsoft.network/networkinterfaces";
    pub(crate) const PUBLIC_IP: &str = "microsoft.network/publicipaddresses";
    pub(crate) const ASE: &str = "microsoft.web/hostingenvironments";
    pub(crate) const SITE: &str = "microsoft.web/sites";
    pub(crate) const SITE_CONFIG: &str = "microsoft.web/sites/config";
    pub(crate) const SITE_VNET: &str = "microsoft.web/sites/networkconfig";
    /// `az network nic show-effective-route-table` (not a resource type).
    pub(crate) const EFFECTIVE_ROUTES: &str = "az network nic show-effective-route-table";
    /// `az network nic list-effective-nsg` (not a resource type).
    pub(crate) const EFFECTIVE_NSGS: &str = "az network nic list-effective-nsg";

    /// Every type the builder turns into topology items.
    pub(crate) const MODELLED: [&str; 20] = [
        VNET,
        SUBNET,
        PEERING,
        NSG,
        RULE,
        ROUTE_TABLE,
        ROUTE,
        PRIVATE_ENDPOINT,
        ZONE_GROUP,
        ZONE,
        A_RECORD,
        ZONE_LINK,
        GATEWAY,
        LOCAL_GATEWAY,
        NIC,
        PUBLIC_IP,
        ASE,
        SITE,
        SITE_CONFIG,
        SITE_VNET,
    ];
}

/// One resource of an input file.
#[derive(Clone, Debug)]
pub(crate) struct Resource {
    /// The type as written (`Microsoft.Network/networkSecurityGroups`).
    pub kind: String,
    /// The full name (`ase-vnet/ase` for a subnet).
    pub name: String,
    /// The resource's object, expressions evaluated.
    pub node: Node,
    pub origin: Origin,
    /// The file it was read from (for the position of its parts).
    pub doc: Arc<Doc>,
}

impl Resource {
    /// The origin of `node`, a part of this resource at `rel` (`.properties.securityRules[2]`).
    pub(crate) fn origin_of(&self, node: &Node, rel: &str) -> Origin {
        self.doc
            .origin(node, &format!("{}{rel}", self.origin.json_path))
    }

    /// Array member `key` (under `properties` or flattened), each item with
    /// its relative JSON path.
    pub(crate) fn items(&self, key: &str) -> Vec<(&Node, String)> {
        items(&self.node, key)
    }

    pub(crate) fn is(&self, kind: &str) -> bool {
        self.kind.eq_ignore_ascii_case(kind)
    }

    /// The comparable identity: `microsoft.network/virtualnetworks/v/subnets/s`.
    pub(crate) fn key(&self) -> String {
        if let Some(key) = self
            .node
            .get("id")
            .and_then(Node::as_str)
            .and_then(key_of_id)
        {
            return key;
        }
        key_of(&self.kind, &self.name)
    }

    /// The last segment of the name (`ase` for `ase-vnet/ase`).
    pub(crate) fn short_name(&self) -> &str {
        self.name.rsplit('/').next().unwrap_or(&self.name)
    }

    /// The resource group the export names (`resourceGroup` of `az`
    /// output, or the id's `/resourceGroups/NAME/`); an ARM export knows
    /// none (its ids hold a stand-in).
    pub(crate) fn resource_group(&self) -> Option<String> {
        let group = self
            .node
            .get("resourceGroup")
            .and_then(Node::as_str)
            .map(str::to_string)
            .or_else(|| {
                let id = self.node.get("id").and_then(Node::as_str)?;
                let lower = id.to_ascii_lowercase();
                let at = lower.find("/resourcegroups/")? + "/resourcegroups/".len();
                id[at..].split('/').next().map(str::to_string)
            })?;
        (!group.is_empty() && group != super::expr::RESOURCE_GROUP).then_some(group)
    }

    /// `Microsoft.Network/virtualNetworks ase-vnet`, for comments and notes.
    pub(crate) fn label(&self) -> String {
        format!("{} {}", self.kind, self.name)
    }
}

/// The identity of an id such as
/// `/subscriptions/S/resourceGroups/G/providers/Microsoft.Network/virtualNetworks/v`:
/// the part after the last `/providers/`, lower case (subscription and
/// resource group are left out: an export does not know them).
pub(crate) fn key_of_id(id: &str) -> Option<String> {
    let lower = id.to_ascii_lowercase();
    let at = lower.rfind("/providers/")?;
    Some(
        lower[at + "/providers/".len()..]
            .trim_end_matches('/')
            .to_string(),
    )
}

/// The identity of a type and a full name:
/// (`Microsoft.Network/virtualNetworks/subnets`, `v/s`) -> `microsoft.network/virtualnetworks/v/subnets/s`.
pub(crate) fn key_of(kind: &str, name: &str) -> String {
    let mut segments = kind.split('/');
    let mut key = segments.next().unwrap_or_default().to_string();
    let mut names = name.split('/');
    for t in segments {
        key.push('/');
        key.push_str(t);
        key.push('/');
        key.push_str(names.next().unwrap_or_default());
    }
    key.to_ascii_lowercase()
}

/// The type of a key's parent resource and the parent's key
/// (`.../virtualnetworks/v/subnets/s` -> `.../virtualnetworks/v`).
pub(crate) fn parent_key(key: &str) -> Option<String> {
    let mut parts: Vec<&str> = key.split('/').collect();
    if parts.len() < 5 {
        return None;
    }
    parts.truncate(parts.len() - 2);
    Some(parts.join("/"))
}

/// The last name segment of a key or an id (`.../subnets/ase` -> `ase`).
pub(crate) fn last_name(key: &str) -> &str {
    key.trim_end_matches('/').rsplit('/').next().unwrap_or(key)
}

/// Array member `key` of `node` (under `properties` or flattened), each
/// item with its JSON path relative to `node`.
pub(crate) fn items<'n>(node: &'n Node, key: &str) -> Vec<(&'n Node, String)> {
    let nested = node.get("properties").and_then(|p| p.get(key));
    let (list, base) = match nested {
        Some(list) if !list.as_array().is_empty() => (list, format!(".properties.{key}")),
        _ => match node.get(key) {
            Some(list) => (list, format!(".{key}")),
            None => return Vec::new(),
        },
    };
    list.as_array()
        .iter()
        .enumerate()
        .map(|(i, n)| (n, format!("{base}[{i}]")))
        .collect()
}
