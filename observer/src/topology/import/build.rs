//! Resources to a [`Topology`]: which environment (the ASE's `kind` and
//! `internalLoadBalancingMode`, or a web app's VNet integration), which
//! subnet is the ASE's, the VNet around it (address space, subnets and
//! their roles, peerings, custom DNS from `dhcpOptions.dnsServers`), the
//! gateway and on-premises prefixes, and the ASE subnet's route table.
//! NSGs, endpoints and effective outputs have files of their own; this
//! file runs them in order and keeps the summary: every resource is either
//! read into an item (with its [`Source`]) or counted as ignored.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::Ipv4Addr,
    path::Path,
};

use ipnet::Ipv4Net;

use super::{
    ImportError, Imported, Inputs, Options, Provenance, Source, Summary,
    effective::Effective,
    json::Node,
    network,
    resource::{Resource, items, key_of_id, last_name, parent_key, types},
};
use crate::topology::{
    Environment, LabSpec, RouteTarget, ServiceTag, ServiceTags, Subnet, SubnetRole, Topology, Vnet,
};

/// What the builders share: the resources by identity, what was used,
/// where items came from, and notes for the summary.
pub(super) struct Ctx<'a> {
    pub by_key: BTreeMap<String, &'a Resource>,
    pub all: &'a [Resource],
    pub used: BTreeSet<String>,
    pub provenance: Provenance,
    pub notes: Vec<String>,
    /// Tags of the service-tag file (empty without `--service-tags`).
    pub file_tags: ServiceTags,
    /// Tags expanded by `list-effective-nsg`, for tags the file lacks.
    pub expanded: BTreeMap<String, BTreeSet<Ipv4Net>>,
    pub vnet_key: String,
}

impl<'a> Ctx<'a> {
    /// Resources of type `kind`, in input order.
    pub(super) fn of(&self, kind: &str) -> Vec<&'a Resource> {
        let mut seen = BTreeSet::new();
        self.all
            .iter()
            .filter(|r| r.is(kind) && seen.insert(r.key()))
            .collect()
    }

    pub(super) fn get(&self, id: &str) -> Option<&'a Resource> {
        key_of_id(id).and_then(|k| self.by_key.get(&k).copied())
    }

    pub(super) fn use_(&mut self, r: &Resource) {
        self.used.insert(r.key());
    }

    /// Records that `item` came from `r`.
    pub(super) fn from(&mut self, item: &str, r: &Resource, detail: Option<String>) {
        self.used.insert(r.key());
        self.provenance.add(
            item,
            Source {
                resource: r.label(),
                origin: r.origin.clone(),
                resource_group: r.resource_group(),
                detail,
            },
        );
    }

    /// Records that `item` came from the part `node` (at `rel`) of `r`.
    pub(super) fn record_part(
        &mut self,
        item: &str,
        r: &Resource,
        node: &Node,
        rel: &str,
        what: String,
    ) {
        self.used.insert(r.key());
        self.provenance.add(
            item,
            Source {
                resource: what,
                origin: r.origin_of(node, rel),
                resource_group: r.resource_group(),
                detail: None,
            },
        );
    }

    pub(super) fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// Whether a service tag's prefixes are known (file or expanded).
    pub(super) fn knows_tag(&self, tag: &str) -> bool {
        crate::topology::nsg::BUILTIN_TAGS.contains(&tag)
            || self.file_tags.get(tag).is_some()
            || self.expanded.contains_key(tag)
    }
}

/// Builds the topology from everything read.
pub(super) fn build(
    inputs: &Inputs,
    out: &Path,
    options: &Options,
) -> Result<Imported, ImportError> {
    let mut by_key: BTreeMap<String, &Resource> = BTreeMap::new();
    let mut notes = inputs.notes.clone();
    for r in &inputs.resources {
        if let Some(first) = by_key.get(&r.key()) {
            if first.node != r.node && !r.kind.starts_with("az ") {
                notes.push(format!(
                    "{} is in {} and in {}: the first is used",
                    r.label(),
                    first.origin,
                    r.origin
                ));
            }
            continue;
        }
        by_key.insert(r.key(), r);
    }
    let file_tags = match &options.service_tags {
        Some(path) => ServiceTags::load(path).map_err(ImportError::ServiceTags)?,
        None => ServiceTags::default(),
    };
    let mut ctx = Ctx {
        by_key,
        all: &inputs.resources,
        used: BTreeSet::new(),
        provenance: Provenance::default(),
        notes,
        file_tags,
        expanded: BTreeMap::new(),
        vnet_key: String::new(),
    };
    let effective = Effective::read(&mut ctx)?;

    let (environment, ase_subnet_key, host) = environment(&mut ctx, options)?;
    let Some(vnet_key) = parent_key(&ase_subnet_key) else {
        return Err(ImportError::network(
            format!("`{ase_subnet_key}` is not a subnet id"),
            "the ASE's virtualNetwork.id (or the web app's virtualNetworkSubnetId) names a subnet",
        ));
    };
    ctx.vnet_key = vnet_key.clone();
    let Some(vnet) = ctx.by_key.get(&vnet_key).copied() else {
        return Err(ImportError::network(
            format!(
                "the ASE's subnet is in VNet `{}`, which is not in the inputs",
                last_name(&vnet_key)
            ),
            "add the VNet: `az network vnet show -g GROUP -n NAME -o json`, or export its resource group",
        ));
    };
    ctx.from("vnet", vnet, None);
    let address_space: Vec<Ipv4Net> = vnet
        .node
        .prop("addressSpace")
        .map(|a| a.strings("addressPrefixes"))
        .unwrap_or_default()
        .into_iter()
        .filter_map(v4_prefix)
        .collect();
    if address_space.is_empty() {
        return Err(ImportError::shape(
            vnet.origin.clone(),
            format!("VNet {} has no IPv4 address space", vnet.name),
            "addressSpace.addressPrefixes lists the VNet's ranges",
        ));
    }

    let mut subnets = subnets(&mut ctx, vnet)?;
    let ase_name = last_name(&ase_subnet_key).to_string();
    if !subnets.iter().any(|(k, _)| *k == ase_subnet_key) {
        return Err(ImportError::network(
            format!(
                "the ASE's subnet `{ase_name}` is not among VNet {}'s subnets",
                vnet.name
            ),
            "export the VNet with its subnets (`az network vnet show` lists them)",
        ));
    }
    let nsgs = super::nsg::nsgs(&mut ctx, &subnets, &effective)?;
    let endpoints = super::endpoints::read(&mut ctx, &subnets, &address_space, &nsgs)?;
    let peerings = network::peerings(&mut ctx, vnet, &effective);
    let route_table = network::route_table(&mut ctx, &subnets, &ase_subnet_key, &effective)?;
    let onprem = network::onprem(&mut ctx, &effective);
    let dns = network::dns(&mut ctx, vnet);

    // Roles, now that private endpoints, NICs and appliances are known.
    let appliance_ips: Vec<Ipv4Addr> = route_table
        .routes
        .iter()
        .filter_map(|r| r.next_hop_ip)
        .collect();
    for (key, subnet) in &mut subnets {
        subnet.role = if *key == ase_subnet_key {
            SubnetRole::Ase
        } else if subnet.name.eq_ignore_ascii_case("GatewaySubnet") {
            SubnetRole::Gateway
        } else if subnet.name.eq_ignore_ascii_case("AzureFirewallSubnet")
            || appliance_ips.iter().any(|ip| subnet.prefix.contains(ip))
        {
            SubnetRole::Appliance
        } else if endpoints
            .private_endpoints
            .iter()
            .any(|p| subnet.prefix.contains(&p.private_ip))
        {
            SubnetRole::PrivateEndpoints
        } else if endpoints
            .backends
            .iter()
            .any(|b| subnet.prefix.contains(&b.private_ip))
        {
            SubnetRole::Backend
        } else {
            SubnetRole::Other
        };
    }

    let cloud = network::cloud(&ctx, host.as_ref().map(|h| h.0).unwrap_or(vnet));
    let (route_all, outbound_vip) = match &host {
        Some((r, Host::Site)) => site_routing(&mut ctx, r),
        Some((r, Host::Ase)) => (true, ase_vip(r)),
        None => (true, None),
    };
    let name = options
        .name
        .clone()
        .or_else(|| host.as_ref().map(|(r, _)| r.short_name().to_string()))
        .unwrap_or_else(|| vnet.short_name().to_string());

    let service_tags_file = options
        .service_tags
        .as_ref()
        .map(|p| (relative(p, out), 0..0));
    let mut service_tags = ServiceTags::default();
    for (tag, prefixes) in &ctx.expanded {
        if ctx.file_tags.get(tag).is_none()
            && !crate::topology::nsg::BUILTIN_TAGS.contains(&tag.as_str())
        {
            service_tags.push(ServiceTag {
                name: tag.clone(),
                region: None,
                prefixes: prefixes.iter().map(|p| ipnet::IpNet::V4(*p)).collect(),
            });
        }
    }
    let mut topology = Topology {
        name,
        description: Some(format!(
            "imported by `observer topology import` from {}",
            inputs
                .files
                .iter()
                .map(|f| f.file_name().map_or_else(
                    || f.display().to_string(),
                    |n| n.to_string_lossy().into_owned()
                ))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        cloud,
        environment,
        route_all: if environment == Environment::MultiTenant {
            route_all
        } else {
            true
        },
        outbound_vip,
        vnet: Vnet {
            name: vnet.short_name().to_string(),
            address_space,
            subnets: subnets.into_iter().map(|(_, s)| s).collect(),
        },
        peerings,
        backends: endpoints.backends,
        private_endpoints: endpoints.private_endpoints,
        endpoints: Vec::new(),
        dns,
        onprem,
        route_table,
        service_tags,
        nsgs,
        lab: LabSpec::default(),
        service_tags_file,
        inline_service_tags: 0,
        nsg_tag_uses: Vec::new(),
    };
    topology.vnet.subnets.sort_by_key(|s| s.prefix);
    topology.inline_service_tags = topology.service_tags.iter().count();
    unknown_tags(&ctx, &topology)?;

    let mut summary = Summary {
        files: inputs.files.clone(),
        ..Summary::default()
    };
    for r in &inputs.resources {
        let kind = r.kind.clone();
        if ctx.used.contains(&r.key()) {
            *summary.read.entry(kind).or_default() += 1;
        } else if types::MODELLED.iter().any(|t| r.is(t)) {
            ctx.notes.push(format!(
                "{} ({}): not connected to the ASE's VNet {}, left out",
                r.label(),
                r.origin,
                last_name(&vnet_key)
            ));
        } else {
            *summary.ignored.entry(kind).or_default() += 1;
        }
    }
    ctx.notes.dedup();
    summary.notes = ctx.notes;
    Ok(Imported {
        topology,
        provenance: ctx.provenance,
        summary,
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Host {
    Ase,
    Site,
}

/// The environment, the ASE subnet's key, and the ASE or site that says so.
type Found<'a> = (Environment, String, Option<(&'a Resource, Host)>);

/// The environment, the ASE (or integration) subnet's key and the
/// resource that says so.
fn environment<'a>(ctx: &mut Ctx<'a>, options: &Options) -> Result<Found<'a>, ImportError> {
    let ases = ctx.of(types::ASE);
    if ases.len() > 1 {
        return Err(ImportError::network(
            format!(
                "{} App Service Environments in the inputs ({})",
                ases.len(),
                ases.iter()
                    .map(|a| a.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "a topology describes one ASE: import each with its own VNet",
        ));
    }
    if let Some(ase) = ases.first().copied() {
        let subnet = ase_subnet(ase).ok_or_else(|| {
            ImportError::shape(
                ase.origin.clone(),
                format!("ASE {} names no subnet", ase.name),
                "the ASE's virtualNetwork.id is its subnet's id",
            )
        })?;
        let kind = ase.node.get("kind").and_then(Node::as_str).unwrap_or("");
        let ilb = ase
            .node
            .str("internalLoadBalancingMode")
            .is_some_and(|m| !m.eq_ignore_ascii_case("None"));
        let found = match kind.to_ascii_uppercase().as_str() {
            "ASEV1" => Some(Environment::Asev1),
            "ASEV2" if ilb => Some(Environment::Asev2Ilb),
            "ASEV2" => Some(Environment::Asev2External),
            "ASEV3" => Some(Environment::Asev3),
            _ => None,
        };
        let environment = match (options.environment, found) {
            (Some(e), _) => e,
            (None, Some(e)) => e,
            (None, None) => {
                return Err(ImportError::shape(
                    ase.origin.clone(),
                    format!(
                        "ASE {}: kind `{kind}` is not ASEV1, ASEV2 or ASEV3",
                        ase.name
                    ),
                    "pass --environment asev1|asev2-external|asev2-ilb|asev3",
                ));
            }
        };
        let mode = ase.node.str("internalLoadBalancingMode").unwrap_or("None");
        ctx.from(
            "environment",
            ase,
            Some(format!("kind {kind}, internalLoadBalancingMode {mode}")),
        );
        ctx.from("ase-subnet", ase, Some("virtualNetwork.id".into()));
        return Ok((environment, subnet, Some((ase, Host::Ase))));
    }
    for site in ctx.of(types::SITE) {
        if let Some(subnet) = site_subnet(ctx, site) {
            ctx.from("environment", site, Some("VNet integration".into()));
            ctx.from("ase-subnet", site, Some("virtualNetworkSubnetId".into()));
            let environment = options.environment.unwrap_or(Environment::MultiTenant);
            return Ok((environment, subnet, Some((site, Host::Site))));
        }
    }
    // A subnet delegated to the ASE or to App Service, without the resource.
    let delegated: Vec<(String, String)> = subnet_nodes(ctx)
        .into_iter()
        .filter_map(|(key, node)| {
            let service = items(node, "delegations")
                .into_iter()
                .filter_map(|(d, _)| d.str("serviceName").map(str::to_string))
                .find(|s| s.starts_with("Microsoft.Web/"))?;
            Some((key, service))
        })
        .collect();
    if let (Some(environment), [(key, service)]) = (options.environment, delegated.as_slice()) {
        ctx.note(format!(
            "no ASE or web app in the inputs: subnet {} (delegated to {service}) taken as the ASE subnet, environment from --environment",
            last_name(key)
        ));
        return Ok((environment, key.clone(), None));
    }
    Err(ImportError::network(
        "no App Service Environment (Microsoft.Web/hostingEnvironments) and no web app with VNet integration in the inputs",
        match delegated.len() {
            0 => "add `az appservice ase show -n NAME -o json` or `az webapp show -n NAME -g GROUP -o json`".to_string(),
            _ => format!(
                "add the ASE or web app, or pass --environment for the delegated subnet ({})",
                delegated.iter().map(|(k, _)| last_name(k)).collect::<Vec<_>>().join(", ")
            ),
        },
    ))
}

/// The ASE's subnet key: `virtualNetwork.id` is the subnet's id (v2, v3),
/// or the VNet's id with the subnet's name in `virtualNetwork.subnet` (v1).
fn ase_subnet(ase: &Resource) -> Option<String> {
    let vnet = ase.node.prop("virtualNetwork")?;
    let key = key_of_id(vnet.str("id")?)?;
    if key.contains("/subnets/") {
        return Some(key);
    }
    let subnet = vnet.str("subnet").filter(|s| !s.is_empty())?;
    Some(format!("{key}/subnets/{}", subnet.to_ascii_lowercase()))
}

/// A web app's integration subnet (`virtualNetworkSubnetId`, or a
/// `networkConfig` child's `subnetResourceId`).
fn site_subnet(ctx: &Ctx<'_>, site: &Resource) -> Option<String> {
    if let Some(key) = site.node.str("virtualNetworkSubnetId").and_then(key_of_id) {
        return Some(key);
    }
    let key = site.key();
    ctx.of(types::SITE_VNET)
        .into_iter()
        .filter(|c| parent_key(&c.key()).as_deref() == Some(key.as_str()))
        .find_map(|c| c.node.str("subnetResourceId").and_then(key_of_id))
}

/// Route All and the outbound address of a multi-tenant web app.
fn site_routing(ctx: &mut Ctx<'_>, site: &Resource) -> (bool, Option<Ipv4Addr>) {
    let mut flags = Vec::new();
    let config = site.node.prop("siteConfig");
    for (what, value) in [
        ("vnetRouteAllEnabled", site.node.prop("vnetRouteAllEnabled")),
        (
            "siteConfig.vnetRouteAllEnabled",
            config.and_then(|c| c.prop("vnetRouteAllEnabled")),
        ),
        (
            "outboundVnetRouting.allTraffic",
            site.node
                .prop("outboundVnetRouting")
                .and_then(|o| o.prop("allTraffic")),
        ),
    ] {
        if let Some(on) = value.and_then(Node::as_bool) {
            flags.push((what.to_string(), on));
        }
    }
    let key = site.key();
    for c in ctx.of(types::SITE_CONFIG) {
        if parent_key(&c.key()).as_deref() == Some(key.as_str())
            && let Some(on) = c.node.prop("vnetRouteAllEnabled").and_then(Node::as_bool)
        {
            flags.push((format!("{} vnetRouteAllEnabled", c.name), on));
            ctx.use_(c);
        }
    }
    let settings = config.map(|c| items(c, "appSettings")).unwrap_or_default();
    for (s, _) in settings {
        if s.str("name") == Some("WEBSITE_VNET_ROUTE_ALL") {
            flags.push(("WEBSITE_VNET_ROUTE_ALL".into(), s.str("value") == Some("1")));
        }
    }
    let route_all = flags.iter().any(|(_, on)| *on);
    let detail = if flags.is_empty() {
        "no vnetRouteAllEnabled: Route All off".to_string()
    } else {
        flags
            .iter()
            .map(|(w, on)| format!("{w} {on}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    ctx.from("route_all", site, Some(detail));
    let vip = site
        .node
        .str("outboundIpAddresses")
        .and_then(|s| s.split(',').find_map(|a| a.trim().parse().ok()));
    if vip.is_some() {
        ctx.from("outbound_vip", site, Some("outboundIpAddresses".into()));
    }
    (route_all, vip)
}

/// The ASE's outbound address (ASEv3's networking configuration).
fn ase_vip(ase: &Resource) -> Option<Ipv4Addr> {
    let config = ase.node.prop("networkingConfiguration")?;
    let list = config
        .prop("windowsOutboundIpAddresses")
        .or_else(|| config.prop("linuxOutboundIpAddresses"))?;
    list.as_array()
        .iter()
        .filter_map(Node::as_str)
        .find_map(|a| a.parse().ok())
}

/// Every subnet object known: inline in VNets and child resources.
pub(super) fn subnet_nodes<'a>(ctx: &Ctx<'a>) -> Vec<(String, &'a Node)> {
    let mut out: Vec<(String, &Node)> = Vec::new();
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

/// The VNet's subnets (inline and child resources, one per name), each
/// with its key; roles are set by the caller.
fn subnets(ctx: &mut Ctx<'_>, vnet: &Resource) -> Result<Vec<(String, Subnet)>, ImportError> {
    let mut found: Vec<(String, Subnet)> = Vec::new();
    let vnet_key = vnet.key();
    let mut parts: Vec<(String, &Resource, &Node, String)> = items(&vnet.node, "subnets")
        .into_iter()
        .filter_map(|(s, rel)| {
            let name = s.get("name").and_then(Node::as_str)?;
            Some((
                format!("{vnet_key}/subnets/{}", name.to_ascii_lowercase()),
                vnet,
                s,
                rel,
            ))
        })
        .collect();
    for child in ctx.of(types::SUBNET) {
        if parent_key(&child.key()).as_deref() == Some(vnet_key.as_str()) {
            parts.push((child.key(), child, &child.node, String::new()));
        }
    }
    for (key, owner, node, rel) in parts {
        let name = last_name(node.get("name").and_then(Node::as_str).unwrap_or(&key)).to_string();
        let item = format!("subnet:{name}");
        let what = format!("{} subnet {name}", owner.kind);
        ctx.record_part(&item, owner, node, &rel, what);
        if found.iter().any(|(k, _)| *k == key) {
            continue;
        }
        let mut prefixes: Vec<&str> = node.str("addressPrefix").into_iter().collect();
        prefixes.extend(node.strings("addressPrefixes"));
        let v4: Vec<Ipv4Net> = prefixes.iter().copied().filter_map(v4_prefix).collect();
        let Some(prefix) = v4.first().copied() else {
            return Err(ImportError::shape(
                owner.origin_of(node, &rel),
                format!("subnet {name} has no IPv4 addressPrefix"),
                "a subnet's addressPrefix is its IPv4 range",
            ));
        };
        if v4.len() > 1 {
            ctx.note(format!(
                "subnet {name} has {} IPv4 prefixes; the topology keeps the first, {prefix}",
                v4.len()
            ));
        }
        let service_endpoints = items(node, "serviceEndpoints")
            .into_iter()
            .filter_map(|(e, _)| e.str("service").map(str::to_string))
            .collect();
        found.push((
            key,
            Subnet {
                name,
                prefix,
                role: SubnetRole::Other,
                service_endpoints,
            },
        ));
    }
    Ok(found)
}

/// Every service tag a rule or route names must be known.
fn unknown_tags(ctx: &Ctx<'_>, t: &Topology) -> Result<(), ImportError> {
    let inline = |tag: &str| t.service_tags.get(tag).is_some();
    for nsg in &t.nsgs {
        for rule in &nsg.rules {
            for p in rule.source.iter().chain(&rule.destination) {
                if let crate::topology::AddressPrefix::Tag(tag) = p
                    && !ctx.knows_tag(tag)
                    && !inline(tag)
                {
                    return Err(missing_tag(
                        tag,
                        &format!("NSG {} rule {}", nsg.name, rule.name),
                    ));
                }
            }
        }
    }
    for route in &t.route_table.routes {
        if let RouteTarget::ServiceTag(tag) = &route.target
            && !ctx.knows_tag(tag)
            && !inline(tag)
        {
            return Err(missing_tag(tag, &format!("route {}", route.name)));
        }
    }
    Ok(())
}

fn missing_tag(tag: &str, user: &str) -> ImportError {
    ImportError::network(
        format!("{user} names service tag `{tag}`, whose prefixes the inputs do not give"),
        "pass Microsoft's weekly service-tags JSON with --service-tags (ServiceTags_Public_YYYYMMDD.json), or add `az network nic list-effective-nsg -o json`, which expands the tags",
    )
}

/// A canonical IPv4 prefix (`10.0.0.0/16`; a bare address is a /32);
/// IPv6 prefixes give `None`.
pub(super) fn v4_prefix(text: &str) -> Option<Ipv4Net> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<Ipv4Addr>() {
        return Some(Ipv4Net::from(addr));
    }
    text.parse::<Ipv4Net>().ok().map(|n| n.trunc())
}

/// RFC 1918 and CGNAT: where on-premises sites live.
pub(super) fn is_private(net: Ipv4Net) -> bool {
    [
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
    ]
    .iter()
    .filter_map(|p| p.parse::<Ipv4Net>().ok())
    .any(|r| r.contains(&net))
}

/// `path` as the topology names it: relative to the output's folder when
/// below it, else absolute.
fn relative(path: &Path, out: &Path) -> String {
    let dir = out
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let (file, dir) = (absolute(path), absolute(dir));
    file.strip_prefix(&dir)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| file.display().to_string())
}

#[cfg(test)]
pub(super) fn relative_for_test(path: &Path, out: &Path) -> String {
    relative(path, out)
}
