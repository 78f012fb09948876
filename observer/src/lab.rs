//! Lab: builds customer ASE topologies in network namespaces, keeps them
//! live (DNS, servers), runs the documented scenarios through them, and
//! runs the user's own command in them (`lab exec`).
//!
//! | module | owns |
//! |---|---|
//! | [`cmd`] | the one checked way to run `ip`, `nft`, `sysctl` |
//! | [`netns`] | RAII namespaces, veth pairs, background processes |
//! | [`appliance`] | the virtual appliance (firewall namespace) of VirtualAppliance next hops |
//! | [`build`] | a topology file as namespaces, routes, NAT, ACLs, DNS, resolvers, servers |
//! | [`custom_dns`] | the topology's custom DNS servers (dnsmasq in the VNet or on-premises) |
//! | [`inbound`] | inbound management: a host on the internet side, the VIP forwarded to the workload |
//! | [`serve`] | the long-lived servers (`observer lab serve`): HTTP 200, TCP, UDP echo |
//! | [`topologies`] | the scenario topologies shipped in the binary |
//! | [`traffic`] | the scenario's client (DNS, TCP, UDP) |
//! | [`scenario`] | `lab run`: observers, traffic, classification, checks |
//! | [`exec`] | `lab exec`: the user's command in the lab, as a CI gate |
//! | [`nsg`] | the topology's NSGs as the VNet router's nftables ruleset |

pub mod appliance;
pub mod build;
pub mod cmd;
pub mod custom_dns;
pub mod exec;
pub mod inbound;
pub mod netns;
pub mod nsg;
pub mod scenario;
pub mod serve;
pub mod topologies;
pub mod traffic;
