//! Table-driven checks of every verdict, built from the lab's scenario
//! topologies (the seed docs' cases) and synthetic records of their traffic.

use std::{net::IpAddr, path::PathBuf, sync::Arc};

use observer_common::tcp_flag::{ACK, RST, SYN};

use super::*;
use crate::{
    catalog::Catalog,
    dns::{DnsAnswer, DnsVerdict},
    flow::{Direction, EndReason, ObservationPoint},
    topology::is_public,
};

impl Classifier {
    /// Classifies one record, alone.
    fn classify(&self, record: &FlowRecord, answer: Answer) -> Classification {
        self.classify_with(record, answer, &mut FxHashMap::default())
    }
}

fn scenario(file: &str) -> Topology {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../lab/topologies")
        .join(file);
    Topology::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

#[expect(clippy::too_many_arguments)]
fn record(
    src: &str,
    dst: &str,
    sport: u16,
    dport: u16,
    flags: u8,
    direction: Direction,
    iface: &str,
    role: &str,
) -> FlowRecord {
    FlowRecord {
        start_ns: 0,
        end_ns: 1,
        point: ObservationPoint {
            host: Arc::from("lab"),
            netns: None,
            iface: Arc::from(iface),
            iface_role: Some(Arc::from(role)),
        },
        direction,
        ip_version: 4,
        protocol: crate::protocol::IpProtocol::TCP.number(),
        src_addr: src.parse().unwrap(),
        dst_addr: dst.parse().unwrap(),
        src_port: Some(sport),
        dst_port: Some(dport),
        icmp_type: None,
        icmp_code: None,
        vlan_id: None,
        packets: 3,
        bytes: 180,
        tcp_flags: flags,
        syn_count: u64::from(flags & SYN != 0 && flags & ACK == 0),
        fin_count: 0,
        rst_count: u64::from(flags & RST != 0),
        end_reason: EndReason::EndOfFlow,
        dst_name: None,
        dns_chain: None,
        category: None,
        dependency: None,
        expected_next_hop: None,
        observed_path: None,
        flow_type: None,
        verdict: None,
        reason: None,
        ..FlowRecord::default()
    }
}

#[derive(Clone, Copy, Debug)]
enum Reply {
    SynAck,
    Rst,
    Nothing,
}

/// The workload's egress record and the reply, as the lab captures them on
/// the workload's interface; returns (egress, reply) after classification.
fn conversation(
    t: &Topology,
    dst: &str,
    port: u16,
    reply: Reply,
    chain: Option<&[&str]>,
) -> (FlowRecord, Option<FlowRecord>) {
    let workload = t.workload_address().to_string();
    let eth =
        |s: &str, d: &str, sp, dp, flags, dir| record(s, d, sp, dp, flags, dir, "eth0", "workload");
    let mut out = eth(
        &workload,
        dst,
        40000,
        port,
        SYN | ACK | 0x01,
        Direction::Egress,
    );
    out.syn_count = 1;
    out.dns_chain = chain.map(|c| c.iter().map(|s| s.to_string()).collect());
    let back = match reply {
        Reply::SynAck => Some(eth(
            dst,
            &workload,
            port,
            40000,
            SYN | ACK | 0x01,
            Direction::Ingress,
        )),
        Reply::Rst => Some(eth(
            dst,
            &workload,
            port,
            40000,
            RST | ACK,
            Direction::Ingress,
        )),
        Reply::Nothing => None,
    };
    if matches!(reply, Reply::Nothing | Reply::Rst) {
        out.tcp_flags = SYN;
    }
    // An unrelated ingress flow, so both directions count as watched.
    let other = eth("10.0.0.99", &workload, 1, 2, ACK, Direction::Ingress);
    let answered = back.is_some();
    let mut records: Vec<FlowRecord> = [Some(out), back, Some(other)]
        .into_iter()
        .flatten()
        .collect();
    let classifier = Classifier::new(t, &Catalog::load(t.cloud, &[]).unwrap());
    classifier.classify_all(&mut records);
    let out = records.remove(0);
    let back = answered.then(|| records.remove(0));
    (out, back)
}

fn resolve(t: &Topology, name: &str) -> String {
    let endpoint = t
        .endpoints
        .iter()
        .find(|e| e.fqdn == name)
        .map(|e| e.address);
    let private = t
        .private_endpoints
        .iter()
        .find(|p| p.fqdn == name)
        .map(|p| {
            if p.zone_linked {
                p.private_ip
            } else {
                p.public_ip
            }
        });
    endpoint
        .or(private)
        .map_or_else(|| name.to_string(), |i| i.to_string())
}

#[test]
fn every_scenario_traffic_gets_its_expected_verdict() {
    // (file, traffic, how the far end answers in the lab)
    let table: &[(&str, &str, Reply)] = &[
        ("default.toml", "sql-private", Reply::SynAck),
        ("default.toml", "sql-public", Reply::Rst),
        ("default.toml", "keyvault", Reply::SynAck),
        ("default.toml", "storage", Reply::SynAck),
        ("default.toml", "azure-sql", Reply::SynAck),
        ("default.toml", "management", Reply::SynAck),
        ("default.toml", "ocsp", Reply::SynAck),
        ("default.toml", "onprem", Reply::SynAck),
        ("default.toml", "no-route", Reply::Nothing),
        ("default.toml", "undocumented", Reply::SynAck),
        ("forced-tunnel.toml", "azure-sql", Reply::Rst),
        ("forced-tunnel.toml", "management", Reply::Rst),
        ("forced-tunnel-udr.toml", "azure-sql", Reply::SynAck),
        ("forced-tunnel-udr.toml", "management", Reply::SynAck),
        ("multi-tenant-route-all-off.toml", "storage", Reply::SynAck),
        ("multi-tenant-route-all-on.toml", "storage", Reply::SynAck),
        ("asev1-same-subnet.toml", "same-subnet-vm", Reply::Nothing),
        ("storage-blocked.toml", "storage", Reply::Nothing),
        ("seed-004-nsg.toml", "azure-sql", Reply::SynAck),
        ("seed-004-nsg.toml", "storage", Reply::SynAck),
        ("seed-004-nsg.toml", "management", Reply::SynAck),
        ("seed-004-nsg-missing-sql.toml", "azure-sql", Reply::Nothing),
        ("seed-004-nsg-missing-sql.toml", "storage", Reply::SynAck),
        ("sql-vm-nsg.toml", "sql-private", Reply::SynAck),
        ("sql-vm-nsg.toml", "rdp", Reply::Nothing),
        ("forced-tunnel-bgp-specific.toml", "azure-sql", Reply::Rst),
        ("forced-tunnel-bgp-specific.toml", "example", Reply::SynAck),
    ];
    for (file, name, reply) in table {
        let t = scenario(file);
        let traffic = t.lab.traffic.iter().find(|x| x.name == *name).unwrap();
        let dst = resolve(&t, &traffic.to);
        let (out, _) = conversation(&t, &dst, traffic.port, *reply, None);
        assert_eq!(
            out.verdict.as_deref(),
            traffic.expect.as_deref(),
            "{file} {name}: {:?}",
            out.reason
        );
    }
}

#[test]
fn zone_not_linked_is_leak_dns_with_the_chain_and_public_endpoint_without() {
    let t = scenario("pe-zone-not-linked.toml");
    let chain = [
        "contoso-kv.vault.azure.net",
        "contoso-kv.privatelink.vaultcore.azure.net",
        "data-prod-keyvault.vaultcore.azure.net",
    ];
    let (out, _) = conversation(&t, "203.0.113.20", 443, Reply::SynAck, Some(&chain));
    assert_eq!(out.verdict.as_deref(), Some("leak-dns"));
    let reason = out.reason.unwrap();
    assert!(
        reason.contains("privatelink.vaultcore.azure.net is not linked to VNet ase-vnet"),
        "{reason}"
    );
    assert_eq!(out.category.as_deref(), Some("private-endpoint"));
    // The same flow without DNS knowledge is still a leak, by address.
    let (out, _) = conversation(&t, "203.0.113.20", 443, Reply::SynAck, None);
    assert_eq!(out.verdict.as_deref(), Some("leak-public-endpoint"));
}

#[test]
fn public_access_disabled_says_so_and_that_the_name_resolved_publicly() {
    let t = scenario("seed-003-public-access-disabled.toml");
    let chain = [
        "seed003-kv.vault.azure.net",
        "seed003-kv.privatelink.vaultcore.azure.net",
    ];
    let (out, _) = conversation(&t, "203.0.113.21", 443, Reply::SynAck, Some(&chain));
    assert_eq!(out.verdict.as_deref(), Some("leak-dns"));
    let reason = out.reason.unwrap();
    for needle in [
        "seed003-kv.vault.azure.net resolved to its public address 203.0.113.21",
        "privatelink.vaultcore.azure.net is not linked to VNet ase-vnet",
        "public network access of seed003-kv.vault.azure.net is disabled",
        "HTTP 403",
    ] {
        assert!(reason.contains(needle), "`{needle}` not in {reason}");
    }
    // By address alone it is a public-endpoint leak, refused the same way.
    let (out, _) = conversation(&t, "203.0.113.21", 443, Reply::SynAck, None);
    assert_eq!(out.verdict.as_deref(), Some("leak-public-endpoint"));
    assert!(out.reason.unwrap().contains("public network access"));
    // Public access that is not disabled says nothing of it.
    let (out, _) = conversation(
        &scenario("pe-zone-not-linked.toml"),
        "203.0.113.20",
        443,
        Reply::SynAck,
        None,
    );
    assert!(!out.reason.unwrap().contains("public network access"));
}

#[test]
fn forced_tunnel_refusal_marks_the_reply_blocked_and_names_the_fix() {
    let t = scenario("forced-tunnel.toml");
    let (out, back) = conversation(&t, "203.0.113.40", 1433, Reply::Rst, None);
    assert_eq!(out.dependency.as_deref(), Some("azure-sql"));
    assert_eq!(
        out.expected_next_hop.as_deref(),
        Some("VirtualNetworkGateway")
    );
    let reason = out.reason.unwrap();
    assert!(
        reason.contains("azure-sql must take next hop Internet or VirtualNetworkServiceEndpoint"),
        "{reason}"
    );
    assert!(reason.contains("was refused"), "{reason}");
    assert!(reason.contains("0.0.0.0/0 -> Internet"), "{reason}");
    let back = back.unwrap();
    assert_eq!(
        back.verdict.as_deref(),
        Some("blocked"),
        "{:?}",
        back.reason
    );
}

#[test]
fn observed_internet_path_for_a_vnet_destination_is_a_route_leak() {
    let t = scenario("default.toml");
    let mut records = vec![record(
        "10.0.0.4",
        "10.0.1.6",
        40000,
        1433,
        SYN | ACK,
        Direction::Egress,
        "inet",
        "internet",
    )];
    Classifier::new(&t, &Catalog::load(t.cloud, &[]).unwrap()).classify_all(&mut records);
    assert_eq!(records[0].verdict.as_deref(), Some("leak-route"));
    assert_eq!(records[0].observed_path.as_deref(), Some("Internet"));
    assert_eq!(records[0].expected_next_hop.as_deref(), Some("VnetLocal"));
}

#[test]
fn categories_and_flow_types_follow_traffic_analytics() {
    let t = scenario("default.toml");
    let cases = [
        ("10.0.1.6", 1433, "vnet", "IntraVNet"),
        ("10.0.2.5", 443, "private-endpoint", "IntraVNet"),
        ("10.0.0.9", 443, "ase-internal", "IntraVNet"),
        ("192.168.1.10", 443, "onprem", "S2S"),
        ("203.0.113.30", 443, "dependency", "AzurePublic"),
        ("192.0.2.99", 443, "internet", "ExternalPublic"),
        ("172.16.5.5", 443, "unknown", "UnknownPrivate"),
        ("168.63.129.16", 53, "dns", "AzurePublic"),
    ];
    for (dst, port, category, flow_type) in cases {
        let (out, _) = conversation(&t, dst, port, Reply::SynAck, None);
        assert_eq!(
            (out.category.as_deref(), out.flow_type.as_deref()),
            (Some(category), Some(flow_type)),
            "{dst}"
        );
    }
    assert!(is_public("203.0.113.1".parse::<IpAddr>().unwrap()));
    assert!(!is_public("100.64.1.1".parse::<IpAddr>().unwrap()));
}

fn dns_answer(server: &str, rcode: &str, chain: &[&str], addr: &str) -> DnsAnswer {
    DnsAnswer {
        time_ns: 0,
        iface: "eth0".into(),
        client: "10.0.0.4".parse().unwrap(),
        server: server.parse().unwrap(),
        query: chain[0].into(),
        query_type: "A".into(),
        rcode: rcode.parse().unwrap(),
        chain: chain.iter().map(|s| s.to_string()).collect(),
        addresses: if addr.is_empty() {
            vec![]
        } else {
            vec![addr.parse().unwrap()]
        },
        ttl: 60,
        verdict: None,
        reason: None,
    }
}

#[test]
fn dns_answers_are_judged() {
    let t = scenario("pe-zone-not-linked.toml");
    let classifier = Classifier::new(&t, &Catalog::load(t.cloud, &[]).unwrap());
    let judge = |server: &str, rcode: &str, chain: &[&str], addr: &str| {
        let mut a = dns_answer(server, rcode, chain, addr);
        classifier.judge_dns(&mut a);
        (a.verdict.unwrap(), a.reason.unwrap())
    };
    let pl = [
        "contoso-kv.vault.azure.net",
        "contoso-kv.privatelink.vaultcore.azure.net",
    ];
    let (v, r) = judge("168.63.129.16", "NOERROR", &pl, "203.0.113.20");
    assert_eq!(v, DnsVerdict::PrivatelinkPublic);
    assert!(r.contains("not linked to VNet ase-vnet"), "{r}");
    assert_eq!(
        judge("168.63.129.16", "NOERROR", &pl, "10.0.2.5").0,
        DnsVerdict::Ok
    );
    assert_eq!(
        judge("8.8.8.8", "NOERROR", &pl, "10.0.2.5").0,
        DnsVerdict::UnexpectedServer
    );
    let (v, r) = judge(
        "168.63.129.16",
        "NXDOMAIN",
        &["contoso.blob.core.windows.net"],
        "",
    );
    assert_eq!(v, DnsVerdict::NxdomainDependency);
    assert!(r.contains("azure-storage"), "{r}");

    let mut custom = t.clone();
    custom.dns.servers = vec!["10.0.2.53".parse().unwrap()];
    custom.dns.forwards_to_azure = false;
    let classifier = Classifier::new(&custom, &Catalog::load(t.cloud, &[]).unwrap());
    let mut a = dns_answer("10.0.2.53", "NOERROR", &pl, "203.0.113.20");
    classifier.judge_dns(&mut a);
    assert!(a.reason.unwrap().contains("custom DNS server 10.0.2.53"));
}

// ---- NSGs, inbound management, named destinations ----------------------------

fn inline(text: &str) -> Topology {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../lab/topologies");
    let base = format!(
        "service_tags = \"service-tags.json\"\n{text}\n[[lab.traffic]]\nname = \"x\"\nto = \"10.0.0.9\"\nport = 1\n"
    );
    let mut t = Topology::parse(&dir.join("inline.toml"), &base).unwrap_or_else(|e| panic!("{e}"));
    let tags = crate::topology::ServiceTags::load(&dir.join("service-tags.json")).unwrap();
    t.service_tags.extend(tags);
    t
}

const ASE: &str = r#"name = "t"
environment = "asev2-external"
[vnet]
name = "ase-vnet"
address_space = ["10.0.0.0/16"]
[[vnet.subnet]]
name = "ase"
prefix = "10.0.0.0/24"
role = "ase"
[[vnet.subnet]]
name = "pe"
prefix = "10.0.2.0/24"
role = "private-endpoints"
[[vnet.subnet]]
name = "apps"
prefix = "10.0.1.0/24"
role = "backend"
"#;

const FORCED: &str = r#"
[onprem]
gateway = "expressroute"
prefixes = ["192.168.0.0/16"]
advertises = ["0.0.0.0/0"]
"#;

const STORAGE_PE: &str = r#"
[[private_endpoint]]
name = "files"
fqdn = "contosofiles.file.core.windows.net"
private_ip = "10.0.2.7"
public_ip = "203.0.113.31"
zone = "privatelink.file.core.windows.net"
zone_linked = true
ports = [443, 445]
[[backend]]
name = "blob-proxy"
private_ip = "10.0.1.9"
fqdn = "contosoblob.blob.core.windows.net"
ports = [443]
"#;

/// A destination the topology names is that resource even under a
/// dependency's domain; a VnetLocal route is never forced tunnelling.
#[test]
fn named_destinations_and_vnet_local_routes_are_not_platform_dependencies() {
    // (topology, destination, port, name the app used, category, dependency, verdict)
    type Case<'a> = (
        String,
        &'a str,
        u16,
        Option<&'a str>,
        &'a str,
        Option<&'a str>,
        &'a str,
    );
    let cases: &[Case<'_>] = &[
        (
            format!("{ASE}{FORCED}{STORAGE_PE}"),
            "10.0.2.7",
            443,
            Some("contosofiles.file.core.windows.net"),
            "private-endpoint",
            None,
            "ok",
        ),
        (
            format!("{ASE}{STORAGE_PE}"),
            "10.0.2.7",
            445,
            Some("contosofiles.file.core.windows.net"),
            "private-endpoint",
            None,
            "ok",
        ),
        (
            format!("{ASE}{FORCED}{STORAGE_PE}"),
            "10.0.1.9",
            443,
            Some("contosoblob.blob.core.windows.net"),
            "vnet",
            None,
            "ok",
        ),
        // NTP and port 12000 to a server inside the VNet: VnetLocal is fine.
        (
            format!("{ASE}{FORCED}"),
            "10.0.1.20",
            123,
            None,
            "dependency",
            Some("ntp"),
            "ok",
        ),
        (
            format!("{ASE}{FORCED}"),
            "10.0.1.20",
            12000,
            None,
            "dependency",
            Some("system-monitoring"),
            "ok",
        ),
        // The same dependency over the forced tunnel is still a misroute.
        (
            format!("{ASE}{FORCED}"),
            "192.0.2.50",
            12000,
            None,
            "dependency",
            Some("system-monitoring"),
            "misroute-forced-tunnel",
        ),
        // A storage account without a private endpoint is the dependency.
        (
            format!("{ASE}{FORCED}"),
            "203.0.113.30",
            443,
            Some("other.blob.core.windows.net"),
            "dependency",
            Some("azure-storage"),
            "misroute-forced-tunnel",
        ),
    ];
    for (text, dst, port, name, category, dependency, verdict) in cases {
        let t = inline(text);
        let classifier = Classifier::new(&t, &Catalog::load(t.cloud, &[]).unwrap());
        let mut r = record(
            "10.0.0.4",
            dst,
            40000,
            *port,
            SYN | ACK,
            Direction::Egress,
            "eth0",
            "workload",
        );
        r.dst_name = name.map(Into::into);
        let c = classifier.classify(&r, Answer::Answered);
        assert_eq!(
            (
                c.category.as_str(),
                c.dependency.as_deref(),
                c.verdict.as_str()
            ),
            (*category, *dependency, *verdict),
            "{dst}:{port}: {}",
            c.reason
        );
    }
}

const NSG: &str = r#"
[[nsg]]
name = "ase-nsg"
subnets = ["ase"]
[[nsg.rule]]
name = "allow-management"
priority = 100
direction = "Inbound"
access = "Allow"
protocol = "Tcp"
source = ["AppServiceManagement"]
destination_ports = ["454-455"]
[[nsg.rule]]
name = "deny-sql"
priority = 200
direction = "Outbound"
access = "Deny"
protocol = "Tcp"
destination = ["Sql"]
destination_ports = ["1433"]
[[nsg.rule]]
name = "deny-apps"
priority = 210
direction = "Outbound"
access = "Deny"
protocol = "*"
destination = ["10.0.1.0/24"]
"#;

const UDR_MANAGEMENT: &str = r#"
[[route_table.route]]
name = "management"
service_tag = "AppServiceManagement"
next_hop = "Internet"
"#;

/// Outbound and inbound NSG denials, and the reply path of inbound
/// management under forced tunnelling.
#[test]
fn nsg_denials_and_asymmetric_management_replies() {
    // (topology, src, dst, sport, dport, direction, role, verdict, reason contains)
    type Case<'a> = (
        String,
        &'a str,
        &'a str,
        u16,
        u16,
        Direction,
        &'a str,
        &'a str,
        &'a str,
    );
    let cases: &[Case<'_>] = &[
        (
            format!("{ASE}{NSG}"),
            "10.0.0.4",
            "203.0.113.40",
            40000,
            1433,
            Direction::Egress,
            "workload",
            "denied-by-nsg",
            "nsg ase-nsg rule deny-sql (priority 200)",
        ),
        (
            format!("{ASE}{NSG}"),
            "10.0.0.4",
            "203.0.113.40",
            40000,
            1433,
            Direction::Egress,
            "workload",
            "denied-by-nsg",
            "the ASE stops working",
        ),
        (
            format!("{ASE}{NSG}"),
            "10.0.0.4",
            "10.0.1.5",
            40000,
            8080,
            Direction::Egress,
            "workload",
            "denied-by-nsg",
            "deny-apps",
        ),
        (
            format!("{ASE}{NSG}"),
            "10.0.0.4",
            "203.0.113.30",
            40000,
            443,
            Direction::Egress,
            "workload",
            "ok",
            "azure-storage",
        ),
        // Inbound management: allowed, then refused by the NSG from elsewhere.
        (
            format!("{ASE}{NSG}"),
            "203.0.113.81",
            "10.0.0.4",
            40001,
            454,
            Direction::Ingress,
            "workload",
            "ok",
            "allow-management",
        ),
        (
            format!("{ASE}{NSG}"),
            "192.0.2.9",
            "10.0.0.4",
            40001,
            454,
            Direction::Ingress,
            "workload",
            "denied-by-nsg",
            "DenyAllInBound",
        ),
        (
            format!("{ASE}{NSG}"),
            "192.0.2.9",
            "10.0.0.4",
            40001,
            454,
            Direction::Ingress,
            "workload",
            "denied-by-nsg",
            "the ASE stops working",
        ),
        // Forced tunnelling: the request and the reply are asymmetric.
        (
            format!("{ASE}{FORCED}"),
            "203.0.113.81",
            "10.0.0.4",
            40001,
            454,
            Direction::Ingress,
            "workload",
            "asymmetric-route",
            "the reply leaves by VirtualNetworkGateway",
        ),
        (
            format!("{ASE}{FORCED}"),
            "10.0.0.4",
            "203.0.113.81",
            455,
            40001,
            Direction::Egress,
            "workload",
            "asymmetric-route",
            "AppServiceManagement",
        ),
        (
            format!("{ASE}{FORCED}"),
            "10.0.0.4",
            "203.0.113.81",
            455,
            40001,
            Direction::Egress,
            "gateway",
            "asymmetric-route",
            "VirtualNetworkGateway",
        ),
        // Fixed with the UDR for the management tag.
        (
            format!("{ASE}{FORCED}{UDR_MANAGEMENT}"),
            "203.0.113.81",
            "10.0.0.4",
            40001,
            454,
            Direction::Ingress,
            "workload",
            "ok",
            "inbound TCP",
        ),
        (
            format!("{ASE}{FORCED}{UDR_MANAGEMENT}"),
            "10.0.0.4",
            "203.0.113.81",
            454,
            40001,
            Direction::Egress,
            "workload",
            "ok",
            "inbound TCP",
        ),
        // An ordinary reply to an outbound flow is not inbound.
        (
            format!("{ASE}{FORCED}"),
            "203.0.113.40",
            "10.0.0.4",
            1433,
            40000,
            Direction::Ingress,
            "workload",
            "ok",
            "azure-sql",
        ),
    ];
    for (text, src, dst, sport, dport, direction, role, verdict, needle) in cases {
        let t = inline(text);
        let classifier = Classifier::new(&t, &Catalog::load(t.cloud, &[]).unwrap());
        let r = record(
            src,
            dst,
            *sport,
            *dport,
            SYN | ACK,
            *direction,
            "eth0",
            role,
        );
        let c = classifier.classify(&r, Answer::Unknown);
        assert_eq!(
            c.verdict.as_str(),
            *verdict,
            "{src}:{sport} -> {dst}:{dport}: {}",
            c.reason
        );
        assert!(
            c.reason.contains(needle),
            "{src} -> {dst}:{dport}: `{needle}` not in {}",
            c.reason
        );
    }
}
