//! Lab: builds customer ASE topologies in network namespaces, keeps them
//! live (DNS, servers), runs the documented scenarios through them, and
//! runs the user's own command in them (`lab exec`).
//!
//! The build is layered one way: `plan` (pure) is read by every step; the
//! steps act on the `fabric` (namespaces) and start `helpers`; `build`
//! runs them in order; `scenario` and `exec` use a built lab.
//!
//! | file | owns |
//! |---|---|
//! | `cmd.rs` | the one checked way to run `ip`, `nft` (scripts on stdin), `sysctl` |
//! | `netns.rs` | RAII namespaces, veth pairs, background processes; the sweep of stale namespaces |
//! | `plan.rs` | roles (`Role`) and namespace names, transit addresses, which address lives where |
//! | `fabric.rs` | the lab's namespaces by role; link, address, route, nft on them |
//! | `helpers.rs` | starting dnsmasq and `lab serve` (dying with the lab or detached), waiting for them |
//! | `wiring.rs` | step: the ASE subnet, the router's legs, the hosts' addresses |
//! | `routing.rs` | step: the router's table from the effective routes, its NSG ruleset |
//! | `edges.rs` | step: return routes, SNAT at the internet edge and on-premises, the hosts' ACLs |
//! | `appliance.rs` | step: the virtual appliance (firewall namespace) of VirtualAppliance next hops |
//! | `inbound.rs` | step: inbound management, the VIP forwarded to the workload |
//! | `azure_dns.rs` | step: dnsmasq at 168.63.129.16, the app instances' `resolv.conf` |
//! | `custom_dns.rs` | step: the topology's custom DNS servers (in the VNet or on-premises) |
//! | `servers.rs` | step: the long-lived servers of `back`, `pub`, `onprem` |
//! | `build.rs` | `Lab`: the lifecycle, the steps in order, teardown on drop |
//! | `teardown.rs` | labs host-wide: `lab status`, `lab down`, the guard that removes a killed lab |
//! | `nsg.rs` | the topology's NSGs as the VNet router's nftables ruleset |
//! | `serve.rs` | the server process itself (`observer lab serve`): HTTP 200, TCP, UDP echo |
//! | `topologies.rs` | the scenario topologies shipped in the binary |
//! | `traffic.rs` | the scenario's client (DNS, TCP, UDP) and inbound connections |
//! | `scenario.rs` | `lab run`: observers, traffic, classification, checks |
//! | `exec.rs` | `lab exec`: the user's command in the lab, as a CI gate |

pub(crate) mod appliance;
pub(crate) mod azure_dns;
pub(crate) mod build;
pub(crate) mod cmd;
pub(crate) mod custom_dns;
pub(crate) mod edges;
pub(crate) mod exec;
pub(crate) mod fabric;
pub(crate) mod helpers;
pub(crate) mod inbound;
pub mod netns;
pub mod nsg;
pub(crate) mod plan;
pub(crate) mod routing;
pub mod scenario;
pub(crate) mod serve;
pub(crate) mod servers;
pub mod teardown;
pub mod topologies;
pub(crate) mod traffic;
pub(crate) mod wiring;
