//! Topology types: the raw serde shape (with spans, for errors) and the
//! validated model the rest of the program uses.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr},
    ops::Range,
    str::FromStr,
};

use ipnet::Ipv4Net;
use serde::{Deserialize, Deserializer};
use toml::Spanned;

use super::ServiceTags;
use crate::{protocol::IpProtocol, vocabulary::Vocabulary};

/// An IPv4 prefix that must be canonical: `192.168.250.0/16` is refused with
/// `192.168.0.0/16` suggested, as Azure itself does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr(pub Ipv4Net);

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let net: Ipv4Net = s.parse().map_err(|_| {
            format!("`{s}` is not an IPv4 prefix (write it as address/length, e.g. 10.0.0.0/16)")
        })?;
        if net.trunc() != net {
            return Err(format!(
                "`{s}` has host bits set; the prefix is {} (write that instead)",
                net.trunc()
            ));
        }
        Ok(Self(net))
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Which Azure cloud: the dependency host suffixes differ.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    Deserialize,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum Cloud {
    #[default]
    Public,
    China,
    Usgov,
}

impl Cloud {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// The hosting environment whose dependencies apply.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, strum::IntoStaticStr, strum::VariantArray,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum Environment {
    Asev1,
    Asev2External,
    Asev2Ilb,
    Asev3,
    /// Multi-tenant App Service with regional VNet integration.
    MultiTenant,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Whether the platform runs in the customer's subnet (ASEv1/v2): its
    /// own dependencies leave from there and App Service manages it there
    /// (inbound management on the management ports).
    pub fn platform_in_subnet(self) -> bool {
        match self {
            Self::Asev1 | Self::Asev2External | Self::Asev2Ilb => true,
            Self::Asev3 | Self::MultiTenant => false,
        }
    }
}

/// What a subnet is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SubnetRole {
    /// The ASE's own subnet (or the integration subnet of a multi-tenant app).
    Ase,
    Backend,
    PrivateEndpoints,
    Gateway,
    Appliance,
    Other,
}

/// A route's next hop, with the names of Azure's effective routes.
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
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantNames,
    strum::VariantArray,
)]
#[strum(parse_err_ty = String, parse_err_fn = crate::vocabulary::unknown::<Self>)]
pub enum NextHop {
    VnetLocal,
    VnetPeering,
    VirtualNetworkServiceEndpoint,
    VirtualNetworkGateway,
    VirtualAppliance,
    Internet,
    None,
}

impl NextHop {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The path an interface role observes (`--iface NAME=ROLE`).
    pub fn from_role(role: &str) -> Option<Self> {
        match role {
            "vnet" => Some(Self::VnetLocal),
            "peering" => Some(Self::VnetPeering),
            "gateway" => Some(Self::VirtualNetworkGateway),
            "appliance" => Some(Self::VirtualAppliance),
            "internet" => Some(Self::Internet),
            _ => None,
        }
    }
}

impl fmt::Display for NextHop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Vocabulary for NextHop {
    const WHAT: &'static str = "next hop";
}

/// Next hops a user-defined route may name (Azure refuses the others).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum UserNextHop {
    VirtualNetworkGateway,
    VnetLocal,
    Internet,
    VirtualAppliance,
    None,
}

impl From<UserNextHop> for NextHop {
    fn from(hop: UserNextHop) -> Self {
        match hop {
            UserNextHop::VirtualNetworkGateway => Self::VirtualNetworkGateway,
            UserNextHop::VnetLocal => Self::VnetLocal,
            UserNextHop::Internet => Self::Internet,
            UserNextHop::VirtualAppliance => Self::VirtualAppliance,
            UserNextHop::None => Self::None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GatewayKind {
    Vpn,
    Expressroute,
}

/// Who a public endpoint answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Admits {
    #[default]
    Any,
    /// Only the ASE's outbound VIP (the SQL management firewall in the docs).
    OutboundVip,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
}

impl Protocol {
    pub fn number(self) -> u8 {
        match self {
            Self::Tcp => IpProtocol::TCP,
            Self::Udp => IpProtocol::UDP,
        }
        .number()
    }
}

// ---- raw shape -------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTopology {
    pub name: Spanned<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub cloud: Cloud,
    pub environment: Environment,
    #[serde(default)]
    pub route_all: Option<Spanned<bool>>,
    #[serde(default)]
    pub outbound_vip: Option<Ipv4Addr>,
    #[serde(default)]
    pub service_tags: Option<Spanned<String>>,
    pub vnet: RawVnet,
    #[serde(default)]
    pub peering: Vec<Spanned<RawPeering>>,
    #[serde(default)]
    pub backend: Vec<Spanned<Backend>>,
    #[serde(default)]
    pub private_endpoint: Vec<Spanned<PrivateEndpoint>>,
    #[serde(default)]
    pub endpoint: Vec<Spanned<PublicEndpoint>>,
    #[serde(default)]
    pub dns: DnsConfig,
    #[serde(default)]
    pub onprem: Option<Spanned<RawOnPrem>>,
    #[serde(default)]
    pub route_table: RawRouteTable,
    #[serde(default)]
    pub service_tag: Vec<Spanned<InlineTag>>,
    #[serde(default)]
    pub nsg: Vec<Spanned<super::nsg::RawNsg>>,
    #[serde(default)]
    pub lab: LabSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawVnet {
    pub name: String,
    pub address_space: Vec<Spanned<Cidr>>,
    #[serde(default)]
    pub subnet: Vec<Spanned<RawSubnet>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSubnet {
    pub name: String,
    pub prefix: Spanned<Cidr>,
    pub role: SubnetRole,
    #[serde(default)]
    pub service_endpoints: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPeering {
    pub name: String,
    pub address_space: Vec<Cidr>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOnPrem {
    pub gateway: GatewayKind,
    pub prefixes: Vec<Cidr>,
    /// Extra prefixes the gateway advertises over BGP (e.g. 0.0.0.0/0).
    #[serde(default)]
    pub advertises: Vec<Cidr>,
    /// The on-premises site's own internet egress address (its SNAT).
    #[serde(default)]
    pub snat_address: Option<Ipv4Addr>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRouteTable {
    #[serde(default = "yes")]
    pub propagation: bool,
    #[serde(default)]
    pub route: Vec<Spanned<RawRoute>>,
}

impl Default for RawRouteTable {
    fn default() -> Self {
        Self {
            propagation: true,
            route: Vec::new(),
        }
    }
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoute {
    pub name: String,
    #[serde(default)]
    pub prefix: Option<Cidr>,
    #[serde(default)]
    pub service_tag: Option<String>,
    pub next_hop: UserNextHop,
    #[serde(default)]
    pub next_hop_ip: Option<Ipv4Addr>,
}

// ---- validated model -------------------------------------------------------

/// A validated topology.
#[derive(Clone, Debug)]
pub struct Topology {
    pub name: String,
    pub description: Option<String>,
    pub cloud: Cloud,
    pub environment: Environment,
    /// Multi-tenant VNet integration's Route All (`vnetRouteAllEnabled`).
    pub route_all: bool,
    pub outbound_vip: Option<Ipv4Addr>,
    pub vnet: Vnet,
    pub peerings: Vec<Peering>,
    pub backends: Vec<Backend>,
    pub private_endpoints: Vec<PrivateEndpoint>,
    pub endpoints: Vec<PublicEndpoint>,
    pub dns: DnsConfig,
    pub onprem: Option<OnPrem>,
    pub route_table: RouteTable,
    pub service_tags: ServiceTags,
    /// Network security groups and their subnet associations.
    pub nsgs: Vec<super::nsg::Nsg>,
    pub lab: LabSpec,
    pub(crate) service_tags_file: Option<(String, Range<usize>)>,
    /// How many of `service_tags` (the first ones) are `[[service_tag]]`
    /// tables; the rest come from the service-tag file.
    pub(crate) inline_service_tags: usize,
    /// Service tags the NSG rules name, checked once the tag file is read.
    pub(crate) nsg_tag_uses: Vec<super::nsg::TagUse>,
}

#[derive(Clone, Debug)]
pub struct Vnet {
    pub name: String,
    pub address_space: Vec<Ipv4Net>,
    pub subnets: Vec<Subnet>,
}

#[derive(Clone, Debug)]
pub struct Subnet {
    pub name: String,
    pub prefix: Ipv4Net,
    pub role: SubnetRole,
    pub service_endpoints: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct Peering {
    pub name: String,
    pub address_space: Vec<Ipv4Net>,
}

/// A VM or service in the VNet (e.g. SQL on 10.0.1.6:1433).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backend {
    pub name: String,
    pub private_ip: Ipv4Addr,
    #[serde(default)]
    pub public_ip: Option<Ipv4Addr>,
    #[serde(default)]
    pub ports: Vec<u16>,
    /// The backend's ACL admits only sources inside the VNet.
    #[serde(default)]
    pub vnet_only: bool,
    /// Name the backend is reached by, if any.
    #[serde(default)]
    pub fqdn: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivateEndpoint {
    pub name: String,
    /// The resource's public name, e.g. `contoso.vault.azure.net`.
    pub fqdn: String,
    pub private_ip: Ipv4Addr,
    pub public_ip: Ipv4Addr,
    /// The privatelink zone, e.g. `privatelink.vaultcore.azure.net`.
    pub zone: String,
    /// Whether the zone has a virtual network link to this VNet.
    pub zone_linked: bool,
    #[serde(default = "https")]
    pub ports: Vec<u16>,
    /// The target resource's `publicNetworkAccess` as Azure's export gives
    /// it (`false`: Disabled), when known. Kept as data; classification
    /// does not read it yet.
    #[serde(default)]
    pub public_network_access: Option<bool>,
}

fn https() -> Vec<u16> {
    vec![443]
}

/// A public endpoint with a known name (Azure Storage account, SQL gateway,
/// management, ...). The lab hosts it; the classifier names its address.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicEndpoint {
    pub name: String,
    pub fqdn: String,
    pub address: Ipv4Addr,
    #[serde(default = "https")]
    pub ports: Vec<u16>,
    #[serde(default)]
    pub admits: Admits,
}

/// The DNS servers the VNet hands out.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsConfig {
    #[serde(default = "azure_dns")]
    pub servers: Vec<IpAddr>,
    /// For custom servers: whether they forward to Azure DNS (168.63.129.16).
    #[serde(default = "yes")]
    pub forwards_to_azure: bool,
}

pub const AZURE_DNS: Ipv4Addr = Ipv4Addr::new(168, 63, 129, 16);

fn azure_dns() -> Vec<IpAddr> {
    vec![IpAddr::V4(AZURE_DNS)]
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            servers: azure_dns(),
            forwards_to_azure: true,
        }
    }
}

#[derive(Clone, Debug)]
pub struct OnPrem {
    pub gateway: GatewayKind,
    pub prefixes: Vec<Ipv4Net>,
    /// Prefixes learned over BGP from the gateway (the site's own plus any
    /// advertised extras such as 0.0.0.0/0).
    pub bgp_routes: Vec<Ipv4Net>,
    pub snat_address: Option<Ipv4Addr>,
}

#[derive(Clone, Debug)]
pub struct RouteTable {
    /// "Propagate gateway routes": when off, the subnet ignores BGP routes.
    pub propagation: bool,
    pub routes: Vec<UserRoute>,
}

/// A user-defined route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRoute {
    pub name: String,
    pub target: RouteTarget,
    pub next_hop: NextHop,
    pub next_hop_ip: Option<Ipv4Addr>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteTarget {
    Prefix(Ipv4Net),
    ServiceTag(String),
}

impl fmt::Display for RouteTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Prefix(net) => net.fmt(f),
            Self::ServiceTag(tag) => f.write_str(tag),
        }
    }
}

/// A service tag written in the topology itself (labs with made-up addresses).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InlineTag {
    pub name: String,
    pub prefixes: Vec<Cidr>,
}

/// The lab's part of a topology file: which host runs the workload and the
/// traffic each scenario sends. The classifier ignores it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabSpec {
    /// The workload's address in the ASE subnet (default: the subnet's `.4`).
    #[serde(default)]
    pub workload: Option<Ipv4Addr>,
    /// App instances in the ASE subnet (1 to 8, default 1): instance `i`
    /// gets the workload address plus `i`, in a namespace of its own, each
    /// an observation point.
    #[serde(default)]
    pub instances: Option<Spanned<u8>>,
    #[serde(default)]
    pub traffic: Vec<Traffic>,
    /// Flows opened from the internet side towards the ASE (inbound
    /// management), answered by the workload.
    #[serde(default)]
    pub inbound: Vec<Inbound>,
    /// The firewall the lab puts at VirtualAppliance next hops.
    #[serde(default)]
    pub appliance: ApplianceSpec,
}

/// The lab's virtual appliance: a firewall that forwards what `allow`
/// admits and logs and drops the rest.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplianceSpec {
    /// Destination prefixes the firewall forwards.
    #[serde(default)]
    pub allow: Vec<Cidr>,
}

/// One inbound flow: a host on the internet side (e.g. an address of the
/// AppServiceManagement tag) connects to the ASE's public address on `port`
/// (TCP), which the internet edge forwards to the workload.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inbound {
    pub name: String,
    pub from: Ipv4Addr,
    pub port: u16,
    /// The verdict the workload's ingress record must get.
    #[serde(default)]
    pub expect: Option<String>,
}

/// One flow a scenario opens from the workload.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Traffic {
    pub name: String,
    /// A host name (resolved through the lab's DNS) or an address.
    pub to: String,
    pub port: u16,
    #[serde(default)]
    pub protocol: Protocol,
    /// The verdict the workload's egress record must get.
    #[serde(default)]
    pub expect: Option<String>,
}

impl Topology {
    /// The ASE (or integration) subnet.
    pub fn ase_subnet(&self) -> &Subnet {
        self.vnet
            .subnets
            .iter()
            .find(|s| s.role == SubnetRole::Ase)
            .expect("validated: exactly one ase subnet")
    }

    /// The address the lab gives the workload.
    pub fn workload_address(&self) -> Ipv4Addr {
        self.lab.workload.unwrap_or_else(|| {
            let net = self.ase_subnet().prefix.network();
            Ipv4Addr::from(u32::from(net) + 4)
        })
    }

    /// How many app instances the lab runs (`[lab] instances`, default 1).
    pub fn instances(&self) -> u8 {
        self.lab.instances.as_ref().map_or(1, |n| *n.get_ref())
    }

    /// The address of every app instance, the first being the workload's.
    pub fn instance_addresses(&self) -> Vec<Ipv4Addr> {
        let first = u32::from(self.workload_address());
        (0..u32::from(self.instances()))
            .map(|i| Ipv4Addr::from(first + i))
            .collect()
    }

    pub fn in_vnet(&self, addr: Ipv4Addr) -> bool {
        self.vnet.address_space.iter().any(|n| n.contains(&addr))
    }

    pub fn in_peering(&self, addr: Ipv4Addr) -> bool {
        self.peerings
            .iter()
            .flat_map(|p| &p.address_space)
            .any(|n| n.contains(&addr))
    }

    pub fn in_onprem(&self, addr: Ipv4Addr) -> bool {
        self.onprem
            .iter()
            .flat_map(|o| &o.prefixes)
            .any(|n| n.contains(&addr))
    }

    pub fn subnet_of(&self, addr: Ipv4Addr) -> Option<&Subnet> {
        self.vnet.subnets.iter().find(|s| s.prefix.contains(&addr))
    }

    /// The NSG associated with subnet `name`, if any.
    pub fn nsg_of(&self, subnet: &str) -> Option<&super::nsg::Nsg> {
        self.nsgs
            .iter()
            .find(|n| n.subnets.iter().any(|s| s == subnet))
    }
}

/// Globally routable, roughly: not private, loopback, link-local, CGNAT,
/// multicast or unspecified. (Documentation ranges count as public: the lab
/// uses them for its fake Azure endpoints.)
pub fn is_public(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => {
            let cgnat = Ipv4Net::new(Ipv4Addr::new(100, 64, 0, 0), 10).expect("constant");
            !(a.is_private()
                || a.is_loopback()
                || a.is_link_local()
                || a.is_multicast()
                || a.is_broadcast()
                || a.is_unspecified()
                || cgnat.contains(&a))
        }
        IpAddr::V6(a) => {
            let first = a.segments()[0];
            !(a.is_loopback()
                || a.is_multicast()
                || a.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}
