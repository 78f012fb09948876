//! Private endpoints, their private DNS zones, and backends (NICs).
//!
//! A private endpoint (`Microsoft.Network/privateEndpoints`) gives the
//! name (`customDnsConfigs[].fqdn`, else the target resource's name and
//! the group's public suffix), the private address (`customDnsConfigs[].
//! ipAddresses`, `ipConfigurations`, its NIC, or the zone's A record) and
//! the group (`privateLinkServiceConnections[].groupIds`), which names the
//! recommended privatelink zone (a DNS zone group names it outright). The
//! zone is linked when a `virtualNetworkLinks` entry of that zone points
//! at the VNet. The target resource's public address is in no export: a
//! stand-in is taken from the group's service tag (when the tags are
//! known) or from the documentation ranges, and the TOML says so. The
//! target's `publicNetworkAccess` is kept as data when the target is in
//! the inputs.
//!
//! Backends are the VNet's NICs that are not private endpoints' (named
//! after their VM), with the public address of their public IP resource
//! and, as ports, what the NSG of their subnet opens to them inbound.

use std::{collections::BTreeSet, net::Ipv4Addr};

use ipnet::Ipv4Net;

use super::{
    ImportError,
    build::Ctx,
    json::Node,
    resource::{Resource, items, key_of_id, last_name, parent_key, types},
};
use crate::topology::{
    Access, AddressPrefix, Backend, Nsg, PortRange, PrivateEndpoint, RuleDirection, ServiceTags,
    Subnet,
};

/// Private Link groups: group id, public name suffix, recommended
/// privatelink zone, the service tag of the public endpoint, port.
/// Source: MicrosoftDocs azure-docs `private-link/private-endpoint-dns.md`.
pub(super) const GROUPS: &[(&str, &str, &str, &str, u16)] = &[
    (
        "vault",
        "vault.azure.net",
        "privatelink.vaultcore.azure.net",
        "AzureKeyVault",
        443,
    ),
    (
        "blob",
        "blob.core.windows.net",
        "privatelink.blob.core.windows.net",
        "Storage",
        443,
    ),
    (
        "file",
        "file.core.windows.net",
        "privatelink.file.core.windows.net",
        "Storage",
        443,
    ),
    (
        "queue",
        "queue.core.windows.net",
        "privatelink.queue.core.windows.net",
        "Storage",
        443,
    ),
    (
        "table",
        "table.core.windows.net",
        "privatelink.table.core.windows.net",
        "Storage",
        443,
    ),
    (
        "dfs",
        "dfs.core.windows.net",
        "privatelink.dfs.core.windows.net",
        "Storage",
        443,
    ),
    (
        "web",
        "web.core.windows.net",
        "privatelink.web.core.windows.net",
        "Storage",
        443,
    ),
    (
        "sqlServer",
        "database.windows.net",
        "privatelink.database.windows.net",
        "Sql",
        1433,
    ),
    (
        "sites",
        "azurewebsites.net",
        "privatelink.azurewebsites.net",
        "AppService",
        443,
    ),
    (
        "account",
        "cognitiveservices.azure.com",
        "privatelink.cognitiveservices.azure.com",
        "CognitiveServicesManagement",
        443,
    ),
    (
        "namespace",
        "servicebus.windows.net",
        "privatelink.servicebus.windows.net",
        "ServiceBus",
        443,
    ),
    (
        "Sql",
        "documents.azure.com",
        "privatelink.documents.azure.com",
        "AzureCosmosDB",
        443,
    ),
    (
        "redisCache",
        "redis.cache.windows.net",
        "privatelink.redis.cache.windows.net",
        "AzureCache",
        6380,
    ),
    (
        "registry",
        "azurecr.io",
        "privatelink.azurecr.io",
        "AzureContainerRegistry",
        443,
    ),
];

/// What this file reads.
pub(super) struct Endpoints {
    pub private_endpoints: Vec<PrivateEndpoint>,
    pub backends: Vec<Backend>,
}

pub(super) fn read(
    ctx: &mut Ctx<'_>,
    subnets: &[(String, Subnet)],
    address_space: &[Ipv4Net],
    nsgs: &[Nsg],
) -> Result<Endpoints, ImportError> {
    let mut stand_ins = StandIns::default();
    let mut private_endpoints = Vec::new();
    let mut pe_nics = BTreeSet::new();
    for pe in ctx.of(types::PRIVATE_ENDPOINT) {
        let Some(subnet) = pe.node.id_of("subnet").and_then(key_of_id) else {
            continue;
        };
        if !subnets.iter().any(|(k, _)| *k == subnet) {
            continue;
        }
        for (nic, _) in pe.items("networkInterfaces") {
            pe_nics.extend(nic.str("id").and_then(key_of_id));
        }
        private_endpoints.extend(private_endpoint(ctx, pe, &mut stand_ins)?);
    }
    private_endpoints.sort_by(|a: &PrivateEndpoint, b| a.name.cmp(&b.name));
    let backends = backends(ctx, address_space, &pe_nics, subnets, nsgs);
    Ok(Endpoints {
        private_endpoints,
        backends,
    })
}

/// One private endpoint: one entry per DNS name it serves.
fn private_endpoint(
    ctx: &mut Ctx<'_>,
    pe: &Resource,
    stand_ins: &mut StandIns,
) -> Result<Vec<PrivateEndpoint>, ImportError> {
    let connections: Vec<&Node> = pe
        .items("privateLinkServiceConnections")
        .into_iter()
        .chain(pe.items("manualPrivateLinkServiceConnections"))
        .map(|(n, _)| n)
        .collect();
    let target_id = connections
        .iter()
        .find_map(|c| c.str("privateLinkServiceId"))
        .map(str::to_string);
    let group_id = connections
        .iter()
        .flat_map(|c| c.strings("groupIds"))
        .next()
        .unwrap_or_default()
        .to_string();
    let group = GROUPS
        .iter()
        .find(|g| g.0.eq_ignore_ascii_case(&group_id))
        .copied();
    let target = target_id.as_deref().and_then(|id| ctx.get(id));
    let public_network_access = target
        .and_then(|t| t.node.str("publicNetworkAccess"))
        .map(|v| !v.eq_ignore_ascii_case("Disabled"));
    if let Some(t) = target {
        ctx.use_(t);
    }
    // The zone: a zone group names it; else the group's recommended one.
    let pe_key = pe.key();
    let grouped_zone = ctx
        .of(types::ZONE_GROUP)
        .into_iter()
        .filter(|g| parent_key(&g.key()).as_deref() == Some(pe_key.as_str()))
        .chain(std::iter::once(pe))
        .flat_map(|g| {
            items(&g.node, "privateDnsZoneConfigs")
                .into_iter()
                .filter_map(|(c, _)| {
                    c.str("privateDnsZoneId")
                        .map(|id| last_name(id).to_string())
                })
                .collect::<Vec<_>>()
        })
        .next();
    for g in ctx.of(types::ZONE_GROUP) {
        if parent_key(&g.key()).as_deref() == Some(pe_key.as_str()) {
            ctx.use_(g);
        }
    }
    let Some(zone) = grouped_zone.or_else(|| group.map(|g| g.2.to_string())) else {
        ctx.use_(pe);
        ctx.note(format!(
            "private endpoint {}: group `{group_id}` has no known privatelink zone and no DNS zone group; left out",
            pe.name
        ));
        return Ok(Vec::new());
    };
    let target_name = target_id
        .as_deref()
        .map(last_name)
        .unwrap_or_default()
        .to_string();
    let mut names: Vec<(String, Option<Ipv4Addr>)> = pe
        .items("customDnsConfigs")
        .into_iter()
        .filter_map(|(c, _)| {
            let fqdn = c.str("fqdn")?.trim_end_matches('.').to_string();
            let ip = c
                .strings("ipAddresses")
                .into_iter()
                .find_map(|a| a.parse().ok());
            Some((fqdn, ip))
        })
        .collect();
    if names.is_empty() {
        let suffix = group.map(|g| g.1).unwrap_or_default();
        if target_name.is_empty() || suffix.is_empty() {
            ctx.use_(pe);
            ctx.note(format!(
                "private endpoint {}: no customDnsConfigs and no known target name; left out",
                pe.name
            ));
            return Ok(Vec::new());
        }
        names.push((format!("{target_name}.{suffix}"), None));
    }
    let own_ip = pe
        .items("ipConfigurations")
        .into_iter()
        .find_map(|(c, _)| c.str("privateIPAddress").and_then(|a| a.parse().ok()))
        .or_else(|| {
            pe.items("networkInterfaces")
                .into_iter()
                .find_map(|(n, _)| {
                    let nic = n.str("id").and_then(|id| ctx.get(id))?;
                    nic_ip(nic)
                })
        });
    let (linked, zone_known, records) = zone_state(ctx, &zone);
    let mut out = Vec::new();
    let count = names.len();
    for (i, (fqdn, ip)) in names.into_iter().enumerate() {
        let label = fqdn
            .split('.')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let record_ip = records
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(&label))
            .map(|(_, ip)| *ip);
        let Some(private_ip) = ip.or(own_ip).or(record_ip) else {
            ctx.use_(pe);
            ctx.note(format!(
                "private endpoint {} ({fqdn}): no private address in customDnsConfigs, ipConfigurations, its NIC or the zone; left out",
                pe.name
            ));
            continue;
        };
        let name = if count == 1 {
            pe.short_name().to_string()
        } else {
            format!("{}-{}", pe.short_name(), i + 1)
        };
        let item = format!("private_endpoint:{name}");
        ctx.from(&item, pe, Some(format!("group {group_id}, zone {zone}")));
        if zone_known && record_ip.is_none() {
            ctx.note(format!(
                "zone {zone} has no A record `{label}`: inside the VNet {fqdn} does not resolve to the private endpoint (the topology cannot express a missing record)"
            ));
        }
        if !zone_known {
            ctx.provenance.remark(
                &item,
                format!("zone_linked: zone {zone} is not in the inputs; false until `az network private-dns link vnet list -g GROUP -z {zone} -o json` shows a link"),
            );
        }
        let tag = group.map(|g| g.3);
        let public_ip = stand_ins.pick(tag, &ctx.file_tags);
        ctx.provenance.remark(
            &item,
            format!(
                "public_ip: not in Azure's export; a stand-in {} for the lab",
                match tag {
                    Some(t) if ctx.file_tags.get(t).is_some() => format!("from service tag {t}"),
                    _ => "from the documentation ranges".to_string(),
                }
            ),
        );
        if let Some(t) = target
            && public_network_access.is_some()
        {
            ctx.provenance.add(
                &item,
                super::Source {
                    resource: t.label(),
                    origin: t.origin.clone(),
                    resource_group: t.resource_group(),
                    detail: Some("publicNetworkAccess".into()),
                },
            );
        }
        out.push(PrivateEndpoint {
            name,
            fqdn,
            private_ip,
            public_ip,
            zone: zone.clone(),
            zone_linked: linked,
            ports: vec![group.map_or(443, |g| g.4)],
            public_network_access,
        });
    }
    Ok(out)
}

/// Whether zone `name` is linked to the VNet, whether the zone (or a link
/// of it) is in the inputs, and its A records (name, address).
fn zone_state(ctx: &mut Ctx<'_>, name: &str) -> (bool, bool, Vec<(String, Ipv4Addr)>) {
    let zone_key_end = format!("/privatednszones/{}", name.to_ascii_lowercase());
    let mut known = false;
    for z in ctx.of(types::ZONE) {
        if z.key().ends_with(&zone_key_end) {
            known = true;
            ctx.use_(z);
        }
    }
    let in_zone = |r: &Resource| parent_key(&r.key()).is_some_and(|p| p.ends_with(&zone_key_end));
    let mut linked = false;
    for link in ctx.of(types::ZONE_LINK) {
        if !in_zone(link) {
            continue;
        }
        known = true;
        ctx.use_(link);
        let target = link.node.id_of("virtualNetwork").and_then(key_of_id);
        if target.as_deref() == Some(ctx.vnet_key.as_str()) {
            linked = true;
        }
    }
    let mut records = Vec::new();
    for a in ctx.of(types::A_RECORD) {
        if !in_zone(a) {
            continue;
        }
        known = true;
        ctx.use_(a);
        for (r, _) in a.items("aRecords") {
            if let Some(ip) = r.str("ipv4Address").and_then(|s| s.parse().ok()) {
                records.push((a.short_name().to_string(), ip));
            }
        }
    }
    (linked, known, records)
}

fn nic_ip(nic: &Resource) -> Option<Ipv4Addr> {
    nic.items("ipConfigurations")
        .into_iter()
        .find_map(|(c, _)| c.str("privateIPAddress").and_then(|a| a.parse().ok()))
}

/// NICs in the VNet that are not private endpoints'.
fn backends(
    ctx: &mut Ctx<'_>,
    address_space: &[Ipv4Net],
    pe_nics: &BTreeSet<String>,
    subnets: &[(String, Subnet)],
    nsgs: &[Nsg],
) -> Vec<Backend> {
    let mut out: Vec<Backend> = Vec::new();
    for nic in ctx.of(types::NIC) {
        if pe_nics.contains(&nic.key()) || nic.node.prop("privateEndpoint").is_some() {
            ctx.use_(nic);
            continue;
        }
        let Some(private_ip) = nic_ip(nic) else {
            continue;
        };
        if !address_space.iter().any(|n| n.contains(&private_ip)) {
            continue;
        }
        let name = nic
            .node
            .id_of("virtualMachine")
            .map(|id| last_name(id).to_string())
            .unwrap_or_else(|| nic.short_name().to_string());
        if out.iter().any(|b| b.name == name) {
            continue;
        }
        let public = nic
            .items("ipConfigurations")
            .into_iter()
            .find_map(|(c, _)| {
                let pip = c.id_of("publicIPAddress").and_then(|id| ctx.get(id))?;
                let ip: Ipv4Addr = pip.node.str("ipAddress")?.parse().ok()?;
                Some((pip, ip))
            });
        let item = format!("backend:{name}");
        ctx.from(&item, nic, None);
        if let Some((pip, _)) = public {
            ctx.from(&item, pip, Some("ipAddress".into()));
        }
        let subnet = subnets
            .iter()
            .find(|(_, s)| s.prefix.contains(&private_ip))
            .map(|(_, s)| s.name.as_str());
        let ports = subnet
            .and_then(|s| nsgs.iter().find(|n| n.subnets.iter().any(|x| x == s)))
            .map(|nsg| opened_ports(nsg, private_ip))
            .unwrap_or_default();
        if !ports.is_empty() {
            ctx.provenance.remark(
                &item,
                "ports: what the NSG of its subnet allows inbound to it",
            );
        }
        out.push(Backend {
            name,
            private_ip,
            public_ip: public.map(|(_, ip)| ip),
            ports,
            vnet_only: false,
            fqdn: None,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The first port of each inbound Allow rule that names ports and covers `ip`.
fn opened_ports(nsg: &Nsg, ip: Ipv4Addr) -> Vec<u16> {
    let mut ports = BTreeSet::new();
    for rule in &nsg.rules {
        if rule.direction != RuleDirection::Inbound || rule.access != Access::Allow {
            continue;
        }
        let covers = rule.destination.iter().any(|d| match d {
            AddressPrefix::Any | AddressPrefix::Tag(_) => true,
            AddressPrefix::Cidr(n) => n.contains(&ip),
        });
        if covers {
            ports.extend(
                rule.destination_ports
                    .iter()
                    .filter(|p| !p.is_any())
                    .map(|p: &PortRange| p.first),
            );
        }
    }
    ports.into_iter().take(4).collect()
}

/// Addresses for things an export does not hold (a private endpoint's
/// public address, the lab's endpoints): inside a service tag when its
/// prefixes are known, else in the documentation ranges (RFC 5737).
#[derive(Debug, Default)]
pub(super) struct StandIns {
    used: BTreeSet<Ipv4Addr>,
    next: u32,
}

impl StandIns {
    /// Addresses already taken (so a stand-in never collides with them).
    pub(super) fn avoid(&mut self, ips: impl IntoIterator<Item = Ipv4Addr>) {
        self.used.extend(ips);
    }

    pub(super) fn pick(&mut self, tag: Option<&str>, tags: &ServiceTags) -> Ipv4Addr {
        if let Some(ip) = tag.and_then(|t| tags.get(t)).and_then(|t| {
            t.prefixes.iter().find_map(|p| match p {
                ipnet::IpNet::V4(n) => self.free_in(*n),
                ipnet::IpNet::V6(_) => None,
            })
        }) {
            self.used.insert(ip);
            return ip;
        }
        self.documentation()
    }

    /// The next free documentation address (192.0.2.10 and up, then
    /// 203.0.113.200 and up); 198.51.100.0/24 is left to VIPs.
    pub(super) fn documentation(&mut self) -> Ipv4Addr {
        loop {
            let n = self.next;
            self.next += 1;
            let ip = if n < 240 {
                Ipv4Addr::new(192, 0, 2, 10 + u8::try_from(n).unwrap_or(0))
            } else {
                Ipv4Addr::new(203, 0, 113, 200 + u8::try_from((n - 240) % 50).unwrap_or(0))
            };
            if self.used.insert(ip) {
                return ip;
            }
        }
    }

    fn free_in(&self, net: Ipv4Net) -> Option<Ipv4Addr> {
        if net.prefix_len() == 32 {
            return (!self.used.contains(&net.addr())).then_some(net.addr());
        }
        net.hosts()
            .skip(3)
            .take(64)
            .chain(net.hosts().take(3))
            .find(|ip| !self.used.contains(ip))
    }
}
