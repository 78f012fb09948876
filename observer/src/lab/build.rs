//! Builds a topology file into network namespaces, one per role, joined by
//! veth pairs. The ASE subnet is a real L2 segment; every other link is a
//! /30 transit in 169.254.0.0/16 (link-local, never routed anywhere else).
//!
//! ```text
//!                     ┌── back (backends, private endpoints)
//!  ase ── eth0 ═ vnet router ── dns (168.63.129.16, dnsmasq)
//!  (workload)         ├── inet (SNAT to the VIP) ── pub (fake Azure public endpoints)
//!                     └── gw (VPN/ExpressRoute) ── onprem (SNAT) ──┘
//! ```
//!
//! The router's kernel table is computed from [`EffectiveRoutes`], so its
//! forwarding decision is the one `observer route` prints.
//!
//! A lab is live while it exists: every workload namespace has a resolver
//! configuration (`/etc/netns/NS/resolv.conf`, which `ip netns exec` and
//! `lab exec` mount over `/etc/resolv.conf`) naming the topology's DNS
//! servers and Azure's internal search domain, and every backend, private
//! endpoint, public endpoint and on-premises host is served by
//! [`serve`](crate::lab::serve) processes for the lab's whole life.
//!
//! Roles are built in [`Lab::create`], one step per concern (namespaces,
//! ASE subnet, router legs, router table, hosts, edges, ACLs, DNS,
//! resolvers, servers); a new role adds its namespace in [`Lab::roles`] and
//! its step there.

use std::{
    collections::{BTreeMap, BTreeSet},
    io::BufRead as _,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::Command,
};

use crate::{
    routes::EffectiveRoutes,
    topology::{AZURE_DNS, Admits, Environment, NextHop, Protocol, Topology},
};
use anyhow::{Context as _, bail};
use ipnet::Ipv4Net;

use crate::lab::netns::{Netns, Process, veth};

/// Prefix of ephemeral labs (`oblab-PID-N-ROLE`), swept after a crash.
pub const EPHEMERAL_PREFIX: &str = "oblab";
/// Prefix of labs kept by `lab up` (`obup-NAME-ROLE`) until `lab down`.
pub const PERSISTENT_PREFIX: &str = "obup";

// Transit links: (router side, far side).
const INET: (&str, &str) = ("169.254.1.1", "169.254.1.2");
const PUB: (&str, &str) = ("169.254.2.1", "169.254.2.2");
const GW: (&str, &str) = ("169.254.3.1", "169.254.3.2");
const ONPREM: (&str, &str) = ("169.254.4.1", "169.254.4.2");
const ONPREM_PUB: (&str, &str) = ("169.254.5.1", "169.254.5.2");
/// The app's shared outbound path of instance `i` (Route All off).
fn app_out(i: usize) -> (String, String) {
    let base = 4 * i as u32;
    (
        format!("169.254.9.{}", base + 1),
        format!("169.254.9.{}", base + 2),
    )
}
/// Where `ip netns exec` finds per-namespace files (`resolv.conf`).
pub const NETNS_ETC: &str = "/etc/netns";
const BACK: (&str, &str) = ("169.254.20.1", "169.254.20.2");
const DNS: (&str, &str) = ("169.254.53.1", "169.254.53.2");

/// Namespaces of the app instances, in order (`[lab] instances`).
pub const WORKLOADS: [&str; 8] = [
    "ase", "ase2", "ase3", "ase4", "ase5", "ase6", "ase7", "ase8",
];

/// How a lab is built.
#[derive(Clone, Debug)]
pub struct LabOptions {
    /// The `observer` binary, run as `observer lab serve` for the lab's
    /// servers (the running binary for the CLI; tests pass theirs).
    pub helper: PathBuf,
    /// Helpers outlive this process (`lab up`): no parent-death signal.
    pub persistent: bool,
}

impl LabOptions {
    /// Ephemeral helpers run by `helper`.
    pub fn new(helper: impl Into<PathBuf>) -> Self {
        Self {
            helper: helper.into(),
            persistent: false,
        }
    }
}

/// A built lab. Dropping it tears everything down (processes first).
#[derive(Debug)]
pub struct Lab {
    pub topology: Topology,
    pub base: String,
    options: LabOptions,
    /// dnsmasq and the servers.
    helpers: Vec<Process>,
    namespaces: Vec<(&'static str, Netns)>,
}

/// A step run once every interface of a lab exists, before its routes,
/// NAT, ACLs, DNS and servers: observers attach there, so their start-up
/// (BPF verification) overlaps the rest of the build.
pub type AfterLinks<'a> = &'a mut dyn FnMut(&Lab) -> anyhow::Result<()>;

impl Lab {
    /// Builds `topology` as an ephemeral lab with a unique name.
    pub fn up(topology: &Topology, options: &LabOptions) -> anyhow::Result<Self> {
        Self::up_with(topology, options, &mut |_| Ok(()))
    }

    /// [`Lab::up`], running `after_links` once the interfaces exist.
    pub fn up_with(
        topology: &Topology,
        options: &LabOptions,
        after_links: AfterLinks<'_>,
    ) -> anyhow::Result<Self> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self::build_with(
            topology,
            format!("{EPHEMERAL_PREFIX}-{}-{n}", std::process::id()),
            options,
            after_links,
        )
    }

    /// Builds `topology` under an exact base name (`lab up`).
    pub fn build(topology: &Topology, base: String, options: &LabOptions) -> anyhow::Result<Self> {
        Self::build_with(topology, base, options, &mut |_| Ok(()))
    }

    /// [`Lab::build`], running `after_links` once the interfaces exist.
    pub fn build_with(
        topology: &Topology,
        base: String,
        options: &LabOptions,
        after_links: AfterLinks<'_>,
    ) -> anyhow::Result<Self> {
        check_supported(topology)?;
        let mut lab = Self {
            topology: topology.clone(),
            base,
            options: options.clone(),
            helpers: Vec::new(),
            namespaces: Vec::new(),
        };
        // On error, `lab` drops here and removes what was made.
        lab.create(after_links)
            .with_context(|| format!("building lab {}", lab.base))?;
        Ok(lab)
    }

    /// Keeps the namespaces, resolvers and helpers after this value is gone
    /// (`lab up`; `lab down` removes them).
    pub fn persist(mut self) {
        for p in self.helpers.drain(..) {
            std::mem::forget(p.into_child());
        }
        for (_, ns) in self.namespaces.drain(..) {
            std::mem::forget(ns);
        }
    }

    /// The namespaces of the app instances (the first runs `lab exec`'s
    /// command and the scenario traffic).
    pub fn workloads(&self) -> Vec<&Netns> {
        WORKLOADS
            .iter()
            .filter(|r| self.has(r))
            .map(|r| self.ns(r))
            .collect()
    }

    /// Azure's internal DNS suffix as the lab hands it out (the search path).
    pub fn search_domain(&self) -> String {
        search_domain(&self.topology)
    }

    pub fn ns(&self, role: &str) -> &Netns {
        &self
            .namespaces
            .iter()
            .find(|(r, _)| *r == role)
            .unwrap_or_else(|| panic!("lab has no {role} namespace"))
            .1
    }

    pub fn has(&self, role: &str) -> bool {
        self.namespaces.iter().any(|(r, _)| *r == role)
    }

    pub fn namespace_names(&self) -> Vec<String> {
        self.namespaces
            .iter()
            .map(|(_, n)| n.name().to_string())
            .collect()
    }

    /// The address the internet edge SNATs to (the ASE's outbound VIP).
    pub fn vip(&self) -> Ipv4Addr {
        self.topology
            .outbound_vip
            .unwrap_or(Ipv4Addr::new(198, 51, 100, 10))
    }

    /// Whether the app's public traffic bypasses the VNet (Route All off).
    pub fn bypasses_vnet(&self) -> bool {
        self.topology.environment == Environment::MultiTenant && !self.topology.route_all
    }

    pub(super) fn add(&mut self, role: &'static str) -> anyhow::Result<()> {
        let ns = Netns::create(format!("{}-{role}", self.base))?;
        self.namespaces.push((role, ns));
        Ok(())
    }

    /// The namespaces this topology needs, workloads first.
    fn roles(t: &Topology) -> Vec<&'static str> {
        let mut roles: Vec<&'static str> = WORKLOADS[..usize::from(t.instances())].to_vec();
        roles.extend(["vnet", "back", "dns", "inet", "pub"]);
        if t.onprem.is_some() {
            roles.extend(["gw", "onprem"]);
        }
        if super::appliance::address(t).is_some() {
            roles.push("nva");
        }
        roles
    }

    fn create(&mut self, after_links: AfterLinks<'_>) -> anyhow::Result<()> {
        let t = self.topology.clone();
        for role in Self::roles(&t) {
            self.add(role)?;
        }
        for role in ["vnet", "inet", "gw", "onprem"] {
            if self.has(role) {
                self.ns(role).sysctl("net.ipv4.ip_forward", "1")?;
            }
        }
        self.ase_subnet()?;

        // Router legs.
        self.link("vnet", "vnet", "back", "eth0", BACK, true)?;
        self.link("vnet", "dns", "dns", "eth0", DNS, true)?;
        self.link("vnet", "inet", "inet", "vnet", INET, true)?;
        self.link("inet", "pub", "pub", "inet", PUB, true)?;
        if t.onprem.is_some() {
            self.link("vnet", "gw", "gw", "vnet", GW, true)?;
            self.link("gw", "onprem", "onprem", "gw", ONPREM, false)?;
            self.link("onprem", "pub", "pub", "onprem", ONPREM_PUB, false)?;
        }
        super::appliance::wire(self)?;
        after_links(self)?;

        self.router_table()?;
        self.hosts()?;
        self.edges()?;
        super::inbound::setup(self, self.vip())?;
        self.acls()?;
        self.start_dns()?;
        // Custom DNS servers before the resolvers that name them.
        let custom = super::custom_dns::start(self)?;
        self.helpers.extend(custom);
        self.resolvers()?;
        self.start_servers()?;
        if let Some(listener) = super::inbound::start_listener(self)? {
            self.helpers.push(listener);
        }
        Ok(())
    }

    /// The ASE subnet: the app instances and the router's leg `ase` on one
    /// L2 segment (a veth pair for one instance, a bridge for several).
    fn ase_subnet(&self) -> anyhow::Result<()> {
        let t = &self.topology;
        let ase = t.ase_subnet().prefix;
        let gateway = Ipv4Addr::from(u32::from(ase.network()) + 1);
        let instances = t.instance_addresses();
        if instances.len() == 1 {
            veth(self.ns("ase"), "eth0", self.ns("vnet"), "ase")?;
        } else {
            self.ns("vnet")
                .ip(["link", "add", "ase", "type", "bridge"])?;
            for (i, role) in WORKLOADS.iter().take(instances.len()).enumerate() {
                let port = format!("ase-i{i}");
                veth(self.ns(role), "eth0", self.ns("vnet"), &port)?;
                self.ns("vnet")
                    .ip(["link", "set", &port, "master", "ase", "up"])?;
            }
        }
        self.addr("vnet", "ase", &format!("{gateway}/{}", ase.prefix_len()))?;
        for (i, (role, address)) in WORKLOADS.iter().zip(&instances).enumerate() {
            self.addr(role, "eth0", &format!("{address}/{}", ase.prefix_len()))?;
            if self.bypasses_vnet() {
                // Route All off: only RFC 1918 enters the VNet; the rest
                // leaves by the app's shared outbound path.
                let dns = format!("{AZURE_DNS}/32");
                for private in [
                    "10.0.0.0/8",
                    "172.16.0.0/12",
                    "192.168.0.0/16",
                    dns.as_str(),
                ] {
                    self.route(role, &[private, "via", &gateway.to_string()])?;
                }
                let transit = app_out(i);
                self.link(
                    role,
                    "out",
                    "inet",
                    &format!("app{i}"),
                    (&transit.0, &transit.1),
                    false,
                )?;
                self.route(
                    role,
                    &["default", "via", &transit.1, "src", &address.to_string()],
                )?;
                self.route("inet", &[&format!("{address}/32"), "via", &transit.0])?;
            } else {
                self.route(role, &["default", "via", &gateway.to_string()])?;
            }
        }
        Ok(())
    }

    /// Writes `/etc/netns/NS/resolv.conf` for every app instance: the
    /// topology's DNS servers (IPv4) and the internal search domain, as
    /// Azure's DHCP hands them to a VM or an ASE worker.
    fn resolvers(&self) -> anyhow::Result<()> {
        let text = resolv_conf(&self.topology, &self.base);
        for ns in self.workloads() {
            let dir = Path::new(NETNS_ETC).join(ns.name());
            std::fs::create_dir_all(&dir)
                .and_then(|()| std::fs::write(dir.join("resolv.conf"), &text))
                .with_context(|| format!("writing {}/resolv.conf", dir.display()))?;
        }
        Ok(())
    }

    /// A server process in `back`, `pub` and `onprem`: TCP (with an HTTP
    /// 200 naming the endpoint) and UDP echo on every port of the topology.
    fn start_servers(&mut self) -> anyhow::Result<()> {
        let ports = self.service_ports();
        let names = self.host_names();
        for role in ["back", "pub", "onprem"] {
            if !self.has(role) {
                continue;
            }
            let ns = self.ns(role);
            let mut command = ns.command(&self.options.helper);
            command.args(["--quiet", "lab", "serve"]);
            for (protocol, port) in &ports {
                let flag = match protocol {
                    Protocol::Tcp => "--tcp",
                    Protocol::Udp => "--udp",
                };
                command.args([flag, &port.to_string()]);
            }
            for (addr, name) in names.get(role).into_iter().flatten() {
                command.args(["--name", &format!("{addr}={name}")]);
            }
            // Public access disabled: the public address answers 403.
            if role == "pub" {
                for p in self
                    .topology
                    .private_endpoints
                    .iter()
                    .filter(|p| p.public_network_access == Some(false))
                {
                    let kind = crate::lab::serve::Refusal::for_fqdn(&p.fqdn);
                    command.args(["--refuse", &format!("{}={kind}", p.public_ip)]);
                }
            }
            command
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null());
            self.helper_setup(&mut command);
            let label = format!("servers in {}", ns.name());
            let mut process = Process::spawn(&mut command, &label)?;
            let stdout = process.take_stdout().expect("stdout is piped");
            let mut line = String::new();
            // The server prints `ready` once every socket is bound, and
            // nothing after; EOF means it failed.
            let _ = std::io::BufReader::new(stdout).read_line(&mut line);
            self.helpers.push(process);
            if line.trim() != "ready" {
                bail!(
                    "{label} did not start (is {} an observer binary with `lab serve`?)",
                    self.options.helper.display()
                );
            }
        }
        Ok(())
    }

    /// Every (protocol, port) the servers listen on: the ports of every
    /// backend and endpoint, and of the scenario traffic, each on TCP and UDP.
    fn service_ports(&self) -> BTreeSet<(Protocol, u16)> {
        let t = &self.topology;
        let mut ports: BTreeSet<u16> = t.lab.traffic.iter().map(|x| x.port).collect();
        ports.extend(t.backends.iter().flat_map(|b| b.ports.iter().copied()));
        ports.extend(t.endpoints.iter().flat_map(|e| e.ports.iter().copied()));
        ports.extend(
            t.private_endpoints
                .iter()
                .flat_map(|e| e.ports.iter().copied()),
        );
        ports
            .into_iter()
            .flat_map(|p| [(Protocol::Tcp, p), (Protocol::Udp, p)])
            .collect()
    }

    /// What each server namespace names its addresses in its answers.
    fn host_names(&self) -> BTreeMap<&'static str, Vec<(Ipv4Addr, String)>> {
        let t = &self.topology;
        let mut names: BTreeMap<&'static str, Vec<(Ipv4Addr, String)>> = BTreeMap::new();
        for b in &t.backends {
            names
                .entry("back")
                .or_default()
                .push((b.private_ip, b.name.clone()));
            if let Some(ip) = b.public_ip {
                names
                    .entry("pub")
                    .or_default()
                    .push((ip, format!("{} (public address)", b.name)));
            }
        }
        for p in &t.private_endpoints {
            names
                .entry("back")
                .or_default()
                .push((p.private_ip, format!("{} (private endpoint)", p.name)));
            names
                .entry("pub")
                .or_default()
                .push((p.public_ip, format!("{} (public endpoint)", p.name)));
        }
        for e in &t.endpoints {
            names
                .entry("pub")
                .or_default()
                .push((e.address, e.name.clone()));
        }
        for ip in self.onprem_addresses() {
            names
                .entry("onprem")
                .or_default()
                .push((ip, "on-premises host".into()));
        }
        names
    }

    /// Parent-death signal for ephemeral helpers; a session of their own
    /// for all (a terminal's Ctrl-C reaches the lab's owner, which stops
    /// them in order).
    /// The `observer` binary the lab runs its helpers with.
    pub(super) fn helper_binary(&self) -> &Path {
        &self.options.helper
    }

    pub(super) fn helper_setup(&self, command: &mut Command) {
        if self.options.persistent {
            detach(command);
        } else {
            die_with_parent(command);
        }
    }

    /// A veth `a:a_if` <-> `b:b_if` with the transit pair; with `default`,
    /// the far side routes everything back through the near side.
    pub(super) fn link(
        &self,
        a: &str,
        a_if: &str,
        b: &str,
        b_if: &str,
        (near, far): (&str, &str),
        default: bool,
    ) -> anyhow::Result<()> {
        veth(self.ns(a), a_if, self.ns(b), b_if)?;
        self.addr(a, a_if, &format!("{near}/30"))?;
        self.addr(b, b_if, &format!("{far}/30"))?;
        if default {
            self.route(b, &["default", "via", near])?;
        }
        Ok(())
    }

    fn addr(&self, role: &str, iface: &str, cidr: &str) -> anyhow::Result<()> {
        let ns = self.ns(role);
        ns.ip(["addr", "add", cidr, "dev", iface])?;
        ns.ip(["link", "set", iface, "up"])?;
        Ok(())
    }

    pub(super) fn route(&self, role: &str, args: &[&str]) -> anyhow::Result<()> {
        let mut full = vec!["route", "replace"];
        full.extend_from_slice(args);
        self.ns(role).ip(full)?;
        Ok(())
    }

    pub(super) fn nft(&self, role: &str, script: &str) -> anyhow::Result<()> {
        let ns = self.ns(role);
        let status = ns
            .command("nft")
            .args(["-f", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write as _;
                child
                    .stdin
                    .take()
                    .expect("piped")
                    .write_all(script.as_bytes())?;
                child.wait()
            })
            .with_context(|| format!("running nft in {}", ns.name()))?;
        if !status.success() {
            bail!("nft refused the ruleset for {}:\n{script}", ns.name());
        }
        Ok(())
    }

    /// One kernel route per prefix of the effective route table.
    fn router_table(&self) -> anyhow::Result<()> {
        let routes = EffectiveRoutes::build(&self.topology);
        for prefix in routes.prefixes() {
            let decision = routes.lookup_prefix(prefix);
            let p = prefix.to_string();
            let p = if prefix.prefix_len() == 0 {
                "default".to_string()
            } else {
                p
            };
            match decision.chosen.next_hop {
                NextHop::VnetLocal | NextHop::VnetPeering => {
                    self.route("vnet", &[&p, "via", BACK.1])?
                }
                NextHop::Internet | NextHop::VirtualNetworkServiceEndpoint => {
                    self.route("vnet", &[&p, "via", INET.1])?;
                }
                NextHop::VirtualNetworkGateway if self.has("gw") => {
                    self.route("vnet", &[&p, "via", GW.1])?
                }
                NextHop::VirtualNetworkGateway | NextHop::None => {
                    self.route("vnet", &["blackhole", &p])?
                }
                NextHop::VirtualAppliance => {
                    self.route("vnet", &[&p, "via", super::appliance::NVA.1])?
                }
            }
        }
        // The platform address is reached on the host, whatever the table says.
        self.route("vnet", &[&format!("{AZURE_DNS}/32"), "via", DNS.1])?;
        // Hosts of the VNet live in the back namespace. One placed in the
        // ASE subnet is reached through the router (proxy ARP); ASEv1 cannot
        // reach VMs in its own subnet, so there the router drops it.
        let ase = self.topology.ase_subnet().prefix;
        let mut same_subnet = Vec::new();
        for ip in self.back_addresses() {
            self.route("vnet", &[&format!("{ip}/32"), "via", BACK.1])?;
            if ase.contains(&ip) {
                self.ns("vnet").sysctl("net.ipv4.conf.ase.proxy_arp", "1")?;
                if self.topology.environment == Environment::Asev1 {
                    same_subnet.push(format!("ip daddr {ip} drop"));
                }
            }
        }
        // The NSGs (and ASEv1's same-subnet drop) on the router's forward path.
        let security = crate::security::EffectiveSecurity::build(&self.topology);
        if let Some(script) = super::nsg::ruleset(&security, &same_subnet) {
            self.nft("vnet", &script)?;
        }
        Ok(())
    }

    fn back_addresses(&self) -> Vec<Ipv4Addr> {
        let t = &self.topology;
        let mut ips: Vec<Ipv4Addr> = t.backends.iter().map(|b| b.private_ip).collect();
        ips.extend(t.private_endpoints.iter().map(|p| p.private_ip));
        ips.extend(super::custom_dns::in_vnet(t));
        ips
    }

    /// Public addresses the `pub` namespace answers on.
    pub fn public_addresses(&self) -> Vec<Ipv4Addr> {
        let t = &self.topology;
        let mut ips: Vec<Ipv4Addr> = t.endpoints.iter().map(|e| e.address).collect();
        ips.extend(t.backends.iter().filter_map(|b| b.public_ip));
        ips.extend(t.private_endpoints.iter().map(|p| p.public_ip));
        ips
    }

    /// Traffic targets inside the on-premises prefixes (hosted by `onprem`).
    pub fn onprem_addresses(&self) -> Vec<Ipv4Addr> {
        let t = &self.topology;
        t.lab
            .traffic
            .iter()
            .filter_map(|x| x.to.parse::<Ipv4Addr>().ok())
            .chain(super::custom_dns::on_premises(t))
            .filter(|ip| t.in_onprem(*ip))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    fn hosts(&self) -> anyhow::Result<()> {
        for ip in self.back_addresses() {
            self.addr("back", "lo", &format!("{ip}/32"))?;
        }
        for ip in self.public_addresses().into_iter().collect::<BTreeSet<_>>() {
            self.addr("pub", "lo", &format!("{ip}/32"))?;
        }
        self.addr("dns", "lo", &format!("{AZURE_DNS}/32"))?;
        if self.has("onprem") {
            for ip in self.onprem_addresses() {
                self.addr("onprem", "lo", &format!("{ip}/32"))?;
            }
        }
        Ok(())
    }

    /// Return routes and NAT at the edges.
    fn edges(&self) -> anyhow::Result<()> {
        let t = &self.topology;
        let vip = self.vip();
        let inside: Vec<Ipv4Net> = t
            .vnet
            .address_space
            .iter()
            .chain(t.peerings.iter().flat_map(|p| &p.address_space))
            .copied()
            .collect();
        for net in &inside {
            self.route("inet", &[&net.to_string(), "via", INET.0])?;
        }
        self.route("inet", &["default", "via", PUB.1])?;
        self.nft(
            "inet",
            &format!("table ip observer_lab {{\n  chain post {{\n    type nat hook postrouting priority 100;\n    oifname \"pub\" snat to {vip}\n  }}\n}}\n"),
        )?;
        self.route("pub", &[&format!("{vip}/32"), "via", PUB.0])?;
        if let Some(onprem) = &t.onprem {
            for net in &inside {
                self.route("gw", &[&net.to_string(), "via", GW.0])?;
                self.route("onprem", &[&net.to_string(), "via", ONPREM.0])?;
            }
            self.route("gw", &["default", "via", ONPREM.1])?;
            self.route("onprem", &["default", "via", ONPREM_PUB.1])?;
            let snat = onprem
                .snat_address
                .unwrap_or(Ipv4Addr::new(198, 51, 100, 77));
            self.nft(
                "onprem",
                &format!("table ip observer_lab {{\n  chain post {{\n    type nat hook postrouting priority 100;\n    oifname \"pub\" snat to {snat}\n  }}\n}}\n"),
            )?;
            self.route("pub", &[&format!("{snat}/32"), "via", ONPREM_PUB.0])?;
        }
        Ok(())
    }

    /// The ACLs of the docs: VNet-only backends, VIP-only public endpoints.
    fn acls(&self) -> anyhow::Result<()> {
        let t = &self.topology;
        let vip = self.vip();
        let vnet: Vec<String> = t.vnet.address_space.iter().map(|n| n.to_string()).collect();
        let mut back = String::new();
        let mut public = String::new();
        for b in t.backends.iter().filter(|b| b.vnet_only) {
            back.push_str(&format!(
                "    ip daddr {} ip saddr != {{ {} }} reject with tcp reset\n",
                b.private_ip,
                vnet.join(", ")
            ));
            if let Some(ip) = b.public_ip {
                // Reached from outside the VNet: the ACL refuses it.
                public.push_str(&format!(
                    "    ip daddr {ip} meta l4proto tcp reject with tcp reset\n"
                ));
            }
        }
        for e in t
            .endpoints
            .iter()
            .filter(|e| e.admits == Admits::OutboundVip)
        {
            public.push_str(&format!(
                "    ip daddr {} ip saddr != {vip} meta l4proto tcp reject with tcp reset\n",
                e.address
            ));
        }
        let table = |rules: &str| {
            format!(
                "table inet observer_lab {{\n  chain input {{\n    type filter hook input priority 0;\n{rules}  }}\n}}\n"
            )
        };
        if !back.is_empty() {
            self.nft("back", &table(&back))?;
        }
        if !public.is_empty() {
            self.nft("pub", &table(&public))?;
        }
        Ok(())
    }

    /// Azure DNS at 168.63.129.16: dnsmasq with the public records and, for
    /// linked privatelink zones, the private answer at the alias.
    fn start_dns(&mut self) -> anyhow::Result<()> {
        let mut args = vec![
            "--keep-in-foreground".to_string(),
            "--no-resolv".into(),
            "--no-hosts".into(),
            "--bind-interfaces".into(),
            format!("--listen-address={AZURE_DNS}"),
            "--port=53".into(),
            "--log-facility=-".into(),
            // dnsmasq removes its pid file on exit: never point it at a shared path.
            format!(
                "--pid-file={}",
                std::env::temp_dir()
                    .join(format!("{}-dnsmasq.pid", self.base))
                    .display()
            ),
            "--user=root".into(),
            "--local-ttl=60".into(),
        ];
        args.extend(dns_records(&self.topology));
        let ns = self.ns("dns");
        let mut command = ns.command("dnsmasq");
        command
            .args(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        self.helper_setup(&mut command);
        let process = Process::spawn(&mut command, "dnsmasq")?;
        let ns_name = ns.name().to_string();
        self.helpers.push(process);
        let ns = self.ns("dns");
        // Wait until it answers (bound on 53/udp).
        for _ in 0..50 {
            if ns
                .exec("ss", ["-Hlun", "sport = :53"])
                .is_ok_and(|out| !out.trim().is_empty())
            {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        bail!("dnsmasq did not start listening on {AZURE_DNS}:53 in {ns_name}")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for p in self.helpers.drain(..) {
            p.kill();
        }
        // What the user's command left running in an app instance.
        for ns in self.workloads() {
            kill_processes_in(ns.name());
        }
        // Namespaces go in reverse order; veths and routes go with them.
        while let Some((_, ns)) = self.namespaces.pop() {
            remove_netns_etc(ns.name());
            drop(ns);
        }
    }
}

/// Removes `/etc/netns/NAME` (the namespace's resolver configuration).
pub fn remove_netns_etc(name: &str) {
    let dir = Path::new(NETNS_ETC).join(name);
    if dir.exists()
        && let Err(error) = std::fs::remove_dir_all(&dir)
    {
        eprintln!("lab: could not remove {}: {error}", dir.display());
    }
}

/// Azure's internal DNS suffix as the lab hands it out: Azure gives each
/// VNet `<id>.<region>.internal.cloudapp.net`; the lab uses the VNet name.
pub fn search_domain(t: &Topology) -> String {
    let label: String = t
        .vnet
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    format!("{}.lab.internal.cloudapp.net", label.trim_matches('-'))
}

/// The resolver configuration of the lab's app instances.
pub fn resolv_conf(t: &Topology, base: &str) -> String {
    let mut text = format!(
        "# observer lab {base}: the DNS servers of topology `{}` (removed with the lab)\n",
        t.name
    );
    for server in t.dns.servers.iter().filter(|s| s.is_ipv4()) {
        text.push_str(&format!("nameserver {server}\n"));
    }
    text.push_str(&format!("search {}\n", search_domain(t)));
    // Azure's Linux images: fail over quickly, EDNS for long answers.
    text.push_str("options timeout:1 attempts:2 edns0\n");
    text
}

/// dnsmasq options for every name of the topology.
pub fn dns_records(t: &Topology) -> Vec<String> {
    let mut args = Vec::new();
    let suffix = search_domain(t);
    for (i, ip) in t.instance_addresses().into_iter().enumerate() {
        args.push(format!("--host-record=app{i}.{suffix},{ip}"));
    }
    for e in &t.endpoints {
        args.push(format!("--host-record={},{}", e.fqdn, e.address));
    }
    for b in &t.backends {
        if let Some(fqdn) = &b.fqdn {
            args.push(format!("--host-record={fqdn},{}", b.private_ip));
        }
    }
    for pe in &t.private_endpoints {
        let label = pe.fqdn.split('.').next().unwrap_or(&pe.fqdn);
        let alias = format!("{label}.{}", pe.zone);
        args.push(format!("--cname={},{alias}", pe.fqdn));
        if pe.zone_linked {
            // Azure DNS stops at the first alias found in a linked zone.
            args.push(format!("--host-record={alias},{}", pe.private_ip));
        } else {
            let public_zone = pe.zone.trim_start_matches("privatelink.");
            let data = format!("data-prod-{}.{public_zone}", pe.name);
            args.push(format!("--cname={alias},{data}"));
            args.push(format!("--host-record={data},{}", pe.public_ip));
        }
    }
    args
}

/// The lab supports what its namespaces can build.
fn check_supported(t: &Topology) -> anyhow::Result<()> {
    super::appliance::check_supported(t)?;
    super::custom_dns::check_supported(t)?;
    super::inbound::check_supported(t)?;
    Ok(())
}

/// Kills a helper process when the lab process dies, even by SIGKILL, and
/// keeps it out of the terminal's process group (Ctrl-C reaches the lab's
/// owner, which stops helpers in order).
pub fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: prctl and setpgid are async-signal-safe; nothing else runs
    // before exec.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            libc::setpgid(0, 0);
            Ok(())
        });
    }
}

/// A helper that outlives the process starting it (`lab up`): a session
/// of its own, no terminal.
fn detach(command: &mut Command) {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: setsid is async-signal-safe; nothing else runs before exec.
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
}

/// Removes the namespaces (and dnsmasq, servers, resolvers) of a lab kept
/// by `lab up`.
pub fn down(name: &str) -> anyhow::Result<Vec<String>> {
    let base = format!("{PERSISTENT_PREFIX}-{name}-");
    let names: Vec<String> = list()
        .into_iter()
        .filter(|n| n.starts_with(&base))
        .collect();
    for ns in &names {
        // Processes inside (dnsmasq, servers) first.
        kill_processes_in(ns);
        remove_netns_etc(ns);
        crate::lab::cmd::ip(["netns", "del", ns])?;
    }
    Ok(names)
}

/// SIGKILLs every process in the namespace `name`.
fn kill_processes_in(name: &str) {
    if let Ok(pids) = crate::lab::cmd::ip(["netns", "pids", name]) {
        for pid in pids
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            // SAFETY: plain kill(2).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// Every lab namespace on the host.
pub fn list() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| {
            n.starts_with(&format!("{EPHEMERAL_PREFIX}-"))
                || n.starts_with(&format!("{PERSISTENT_PREFIX}-"))
        })
        .collect();
    names.sort();
    names
}
