//! Lab: builds customer ASE topologies in network namespaces and runs the
//! documented scenarios through them.
//!
//! | module | owns |
//! |---|---|
//! | [`cmd`] | the one checked way to run `ip`, `nft`, `sysctl` |
//! | [`netns`] | RAII namespaces, veth pairs, background processes |
//! | [`appliance`] | the virtual appliance (firewall namespace) of VirtualAppliance next hops |
//! | [`build`] | a topology file as namespaces, routes, NAT, ACLs, DNS |
//! | [`custom_dns`] | the topology's custom DNS servers (dnsmasq in the VNet or on-premises) |
//! | [`inbound`] | inbound management: a host on the internet side, the VIP forwarded to the workload |
//! | [`nsg`] | the topology's NSGs as the VNet router's nftables ruleset |
//! | [`traffic`] | servers and the workload's client (DNS, TCP, UDP) |
//! | [`scenario`] | `lab run`: capture, traffic, classification, checks |

pub mod appliance;
pub mod build;
pub mod cmd;
pub mod custom_dns;
pub mod inbound;
pub mod netns;
pub mod nsg;
pub mod scenario;
pub mod traffic;
