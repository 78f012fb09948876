//! A [`Topology`] back to TOML in the shape `docs/topology.md` documents,
//! each item under comments naming the resource it came from (file,
//! line:column, JSON path) and what was assumed for it. Values the loader
//! defaults (`["*"]` in rules, Azure DNS, `tcp`) are left out, as a person
//! would write the file. The result loads with [`Topology::load`]
//! unchanged; writing what it loads gives the same text again.

use super::{Provenance, Summary};
use crate::topology::{
    AZURE_DNS, AddressPrefix, Admits, Cloud, GatewayKind, PortRange, Protocol, RouteTarget,
    SubnetRole, Topology,
};

/// The commented TOML of `t`.
pub fn write(t: &Topology, provenance: &Provenance, summary: &Summary) -> String {
    let mut w = Writer {
        out: String::new(),
        p: provenance,
    };
    w.header(summary);
    w.top(t);
    w.vnet(t);
    w.hosts(t);
    w.network(t);
    w.nsgs(t);
    w.lab(t);
    while w.out.ends_with("\n\n") {
        w.out.pop();
    }
    w.out
}

/// The `# from` comment nearest above `line` (1-based), for errors.
pub(crate) fn source_above(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let end = line.min(lines.len());
    lines[..end]
        .iter()
        .rev()
        .find_map(|l| l.trim().strip_prefix("# from "))
        .map(str::to_string)
}

struct Writer<'a> {
    out: String,
    p: &'a Provenance,
}

/// A TOML string.
fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn list<T: ToString>(items: impl IntoIterator<Item = T>) -> String {
    let items: Vec<String> = items.into_iter().map(|i| q(&i.to_string())).collect();
    format!("[{}]", items.join(", "))
}

impl Writer<'_> {
    fn line(&mut self, text: impl AsRef<str>) {
        self.out.push_str(text.as_ref());
        self.out.push('\n');
    }

    /// The comments of item `key`.
    fn about(&mut self, key: &str) {
        let sources: Vec<String> = self
            .p
            .sources(key)
            .iter()
            .map(|s| format!("# from {s}"))
            .collect();
        let remarks: Vec<String> = self
            .p
            .remarks(key)
            .iter()
            .map(|r| format!("# {r}"))
            .collect();
        for l in sources.into_iter().chain(remarks) {
            self.line(l);
        }
    }

    fn header(&mut self, summary: &Summary) {
        if summary.files.is_empty() {
            return;
        }
        let files: Vec<String> = summary
            .files
            .iter()
            .map(|f| f.display().to_string())
            .collect();
        self.line(format!(
            "# Imported by `observer topology import` from {}.",
            files.join(", ")
        ));
        for l in summary.to_string().lines() {
            self.line(format!("# {l}"));
        }
        self.line("");
    }

    fn top(&mut self, t: &Topology) {
        self.line(format!("name = {}", q(&t.name)));
        if let Some(d) = &t.description {
            self.line(format!("description = {}", q(d)));
        }
        if t.cloud != Cloud::Public {
            self.about("cloud");
            self.line(format!("cloud = {}", q(t.cloud.as_str())));
        }
        self.about("environment");
        self.line(format!("environment = {}", q(t.environment.as_str())));
        if t.environment == crate::topology::Environment::MultiTenant {
            self.about("route_all");
            self.line(format!("route_all = {}", t.route_all));
        }
        if let Some(vip) = t.outbound_vip {
            self.about("outbound_vip");
            self.line(format!("outbound_vip = {}", q(&vip.to_string())));
        }
        if let Some((file, _)) = &t.service_tags_file {
            self.line(format!("service_tags = {}", q(file)));
        }
        self.line("");
    }

    fn vnet(&mut self, t: &Topology) {
        self.about("vnet");
        self.line("[vnet]");
        self.line(format!("name = {}", q(&t.vnet.name)));
        self.line(format!("address_space = {}", list(&t.vnet.address_space)));
        self.line("");
        for s in &t.vnet.subnets {
            self.about(&format!("subnet:{}", s.name));
            if s.role == SubnetRole::Ase {
                self.about("ase-subnet");
            }
            self.line("[[vnet.subnet]]");
            self.line(format!("name = {}", q(&s.name)));
            self.line(format!("prefix = {}", q(&s.prefix.to_string())));
            self.line(format!("role = {}", q(role(s.role))));
            if !s.service_endpoints.is_empty() {
                self.line(format!(
                    "service_endpoints = {}",
                    list(&s.service_endpoints)
                ));
            }
            self.line("");
        }
        for p in &t.peerings {
            self.about(&format!("peering:{}", p.name));
            self.line("[[peering]]");
            self.line(format!("name = {}", q(&p.name)));
            self.line(format!("address_space = {}", list(&p.address_space)));
            self.line("");
        }
    }

    fn hosts(&mut self, t: &Topology) {
        for b in &t.backends {
            self.about(&format!("backend:{}", b.name));
            self.line("[[backend]]");
            self.line(format!("name = {}", q(&b.name)));
            self.line(format!("private_ip = {}", q(&b.private_ip.to_string())));
            if let Some(ip) = b.public_ip {
                self.line(format!("public_ip = {}", q(&ip.to_string())));
            }
            if !b.ports.is_empty() {
                self.line(format!("ports = {}", ports(&b.ports)));
            }
            if b.vnet_only {
                self.line("vnet_only = true");
            }
            if let Some(f) = &b.fqdn {
                self.line(format!("fqdn = {}", q(f)));
            }
            self.line("");
        }
        for e in &t.private_endpoints {
            self.about(&format!("private_endpoint:{}", e.name));
            self.line("[[private_endpoint]]");
            self.line(format!("name = {}", q(&e.name)));
            self.line(format!("fqdn = {}", q(&e.fqdn)));
            self.line(format!("private_ip = {}", q(&e.private_ip.to_string())));
            self.line(format!("public_ip = {}", q(&e.public_ip.to_string())));
            self.line(format!("zone = {}", q(&e.zone)));
            self.line(format!("zone_linked = {}", e.zone_linked));
            if e.ports != [443] {
                self.line(format!("ports = {}", ports(&e.ports)));
            }
            if let Some(access) = e.public_network_access {
                self.line(format!("public_network_access = {access}"));
            }
            self.line("");
        }
        for e in &t.endpoints {
            self.about(&format!("endpoint:{}", e.name));
            self.line("[[endpoint]]");
            self.line(format!("name = {}", q(&e.name)));
            self.line(format!("fqdn = {}", q(&e.fqdn)));
            self.line(format!("address = {}", q(&e.address.to_string())));
            if e.ports != [443] {
                self.line(format!("ports = {}", ports(&e.ports)));
            }
            if e.admits == Admits::OutboundVip {
                self.line("admits = \"outbound-vip\"");
            }
            self.line("");
        }
    }

    fn network(&mut self, t: &Topology) {
        let default_dns = t.dns.servers == [std::net::IpAddr::V4(AZURE_DNS)];
        if !default_dns || !t.dns.forwards_to_azure {
            self.about("dns");
            self.line("[dns]");
            self.line(format!("servers = {}", list(&t.dns.servers)));
            if !t.dns.forwards_to_azure {
                self.line("forwards_to_azure = false");
            }
            self.line("");
        }
        if let Some(o) = &t.onprem {
            self.about("onprem");
            self.line("[onprem]");
            let gateway = match o.gateway {
                GatewayKind::Vpn => "vpn",
                GatewayKind::Expressroute => "expressroute",
            };
            self.line(format!("gateway = {}", q(gateway)));
            self.line(format!("prefixes = {}", list(&o.prefixes)));
            let advertises: Vec<_> = o.bgp_routes.iter().skip(o.prefixes.len()).collect();
            if !advertises.is_empty() {
                self.line(format!("advertises = {}", list(advertises)));
            }
            if let Some(ip) = o.snat_address {
                self.line(format!("snat_address = {}", q(&ip.to_string())));
            }
            self.line("");
        }
        if !t.route_table.propagation || !t.route_table.routes.is_empty() {
            self.about("route_table");
            self.line("[route_table]");
            if !t.route_table.propagation {
                self.line("propagation = false");
            }
            self.line("");
        }
        for r in &t.route_table.routes {
            self.about(&format!("route:{}", r.name));
            self.line("[[route_table.route]]");
            self.line(format!("name = {}", q(&r.name)));
            match &r.target {
                RouteTarget::Prefix(p) => self.line(format!("prefix = {}", q(&p.to_string()))),
                RouteTarget::ServiceTag(tag) => self.line(format!("service_tag = {}", q(tag))),
            }
            self.line(format!("next_hop = {}", q(r.next_hop.as_str())));
            if let Some(ip) = r.next_hop_ip {
                self.line(format!("next_hop_ip = {}", q(&ip.to_string())));
            }
            self.line("");
        }
        for tag in t.service_tags.iter().take(t.inline_service_tags) {
            self.about(&format!("service_tag:{}", tag.name));
            self.line("[[service_tag]]");
            self.line(format!("name = {}", q(&tag.name)));
            let v4: Vec<String> = tag
                .prefixes
                .iter()
                .filter(|p| matches!(p, ipnet::IpNet::V4(_)))
                .map(ToString::to_string)
                .collect();
            self.line(format!("prefixes = {}", list(v4)));
            self.line("");
        }
    }

    fn nsgs(&mut self, t: &Topology) {
        for n in &t.nsgs {
            self.about(&format!("nsg:{}", n.name));
            self.line("[[nsg]]");
            self.line(format!("name = {}", q(&n.name)));
            self.line(format!("subnets = {}", list(&n.subnets)));
            self.line("");
            for r in &n.rules {
                self.about(&format!("rule:{}/{}", n.name, r.name));
                self.line("[[nsg.rule]]");
                self.line(format!("name = {}", q(&r.name)));
                if let Some(d) = &r.description {
                    self.line(format!("description = {}", q(d)));
                }
                self.line(format!("priority = {}", r.priority));
                self.line(format!("direction = {}", q(r.direction.as_str())));
                self.line(format!("access = {}", q(r.access.as_str())));
                self.line(format!("protocol = {}", q(r.protocol.as_str())));
                let any = |p: &[AddressPrefix]| p == [AddressPrefix::Any];
                let all = |p: &[PortRange]| p == [PortRange::ANY];
                if !any(&r.source) {
                    self.line(format!("source = {}", list(&r.source)));
                }
                if !any(&r.destination) {
                    self.line(format!("destination = {}", list(&r.destination)));
                }
                if !all(&r.source_ports) {
                    self.line(format!("source_ports = {}", list(&r.source_ports)));
                }
                if !all(&r.destination_ports) {
                    self.line(format!(
                        "destination_ports = {}",
                        list(&r.destination_ports)
                    ));
                }
                self.line("");
            }
        }
    }

    fn lab(&mut self, t: &Topology) {
        let l = &t.lab;
        let empty = l.workload.is_none()
            && l.instances.is_none()
            && l.traffic.is_empty()
            && l.inbound.is_empty()
            && l.appliance.allow.is_empty();
        if empty {
            return;
        }
        self.about("lab");
        self.line("[lab]");
        if let Some(w) = l.workload {
            self.line(format!("workload = {}", q(&w.to_string())));
        }
        if let Some(n) = &l.instances {
            self.line(format!("instances = {}", n.get_ref()));
        }
        self.line("");
        if !l.appliance.allow.is_empty() {
            self.line("[lab.appliance]");
            self.line(format!("allow = {}", list(&l.appliance.allow)));
            self.line("");
        }
        for x in &l.traffic {
            self.about(&format!("traffic:{}", x.name));
            self.line("[[lab.traffic]]");
            self.line(format!("name = {}", q(&x.name)));
            self.line(format!("to = {}", q(&x.to)));
            self.line(format!("port = {}", x.port));
            if x.protocol == Protocol::Udp {
                self.line("protocol = \"udp\"");
            }
            if let Some(e) = &x.expect {
                self.line(format!("expect = {}", q(e)));
            }
            self.line("");
        }
        for i in &l.inbound {
            self.about(&format!("inbound:{}", i.name));
            self.line("[[lab.inbound]]");
            self.line(format!("name = {}", q(&i.name)));
            self.line(format!("from = {}", q(&i.from.to_string())));
            self.line(format!("port = {}", i.port));
            if let Some(e) = &i.expect {
                self.line(format!("expect = {}", q(e)));
            }
            self.line("");
        }
    }
}

fn role(r: SubnetRole) -> &'static str {
    match r {
        SubnetRole::Ase => "ase",
        SubnetRole::Backend => "backend",
        SubnetRole::PrivateEndpoints => "private-endpoints",
        SubnetRole::Gateway => "gateway",
        SubnetRole::Appliance => "appliance",
        SubnetRole::Other => "other",
    }
}

fn ports(p: &[u16]) -> String {
    let items: Vec<String> = p.iter().map(u16::to_string).collect();
    format!("[{}]", items.join(", "))
}

#[cfg(test)]
pub(crate) fn strip_comments(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}
