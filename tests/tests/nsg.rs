//! The lab's NSG enforcement equals `observer verify`: a property test draws
//! random rule sets and flows, loads the nftables ruleset `lab::nsg`
//! generates into a router namespace, sends each flow through it (TCP
//! connect, UDP datagram) and checks that what the kernel let through is
//! what `security::EffectiveSecurity::verify` decides. Needs root and `nft`.
//!
//! Namespaces: `c` holds the ASE subnet's workload (10.0.0.4); one namespace
//! per other address (a host of the SQL subnet, a `Sql`-tagged address, an
//! internet address, an on-premises address); `r` routes between them and
//! holds the NSG ruleset. 32 cases of up to 4 flows each, bounded by count.

use std::{
    io::{Read as _, Write as _},
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket},
    path::Path,
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use observer::{
    lab::netns::{Netns, veth},
    security::{EffectiveSecurity, Flow, Scope},
    topology::{Access, Topology},
};
use observer_tests::NS_PREFIX;
use proptest::{
    prelude::*,
    test_runner::{Config, TestCaseError, TestRunner},
};

const WORKLOAD: &str = "10.0.0.4";
/// The addresses on the router's far side (each in its own namespace).
const OTHERS: [&str; 4] = ["10.0.1.6", "203.0.113.40", "198.51.100.7", "172.16.5.5"];
const PORTS: [u16; 4] = [80, 443, 1433, 3000];
/// Long enough for a veth round trip on a slow host; a dropped packet
/// costs this once per flow (flows of a case run in parallel).
const WAIT: Duration = Duration::from_millis(1500);

const TOPOLOGY: &str = r#"name = "nsg-prop"
environment = "asev2-external"
[vnet]
name = "vnet"
address_space = ["10.0.0.0/16"]
[[vnet.subnet]]
name = "ase"
prefix = "10.0.0.0/24"
role = "ase"
[[vnet.subnet]]
name = "sql"
prefix = "10.0.1.0/24"
role = "backend"
[onprem]
gateway = "vpn"
prefixes = ["172.16.0.0/12"]
[[service_tag]]
name = "Sql"
prefixes = ["203.0.113.40/32"]
[[nsg]]
name = "n"
subnets = ["ase", "sql"]
"#;

const PREFIXES: [&str; 8] = [
    "*",
    "VirtualNetwork",
    "Internet",
    "Sql",
    "10.0.0.0/24",
    "10.0.1.0/24",
    "203.0.113.0/24",
    "198.51.100.7/32",
];
const PORT_SPECS: [&str; 5] = ["*", "443", "1433", "1000-2000", "80"];

/// One drawn rule as TOML (name from direction and priority: unique).
fn rule() -> impl Strategy<Value = (u16, bool, String)> {
    (
        100u16..=4096,
        any::<bool>(),
        any::<bool>(),
        prop::sample::select(vec!["Tcp", "Udp", "*"]),
        prop::sample::select(PREFIXES.to_vec()),
        prop::sample::select(PREFIXES.to_vec()),
        prop::sample::select(PORT_SPECS.to_vec()),
    )
        .prop_map(|(priority, inbound, allow, protocol, src, dst, port)| {
            let direction = if inbound { "Inbound" } else { "Outbound" };
            let access = if allow { "Allow" } else { "Deny" };
            (
                priority,
                inbound,
                format!(
                    "[[nsg.rule]]\nname = \"{direction}-{priority}\"\npriority = {priority}\ndirection = \"{direction}\"\naccess = \"{access}\"\nprotocol = \"{protocol}\"\nsource = [\"{src}\"]\ndestination = [\"{dst}\"]\ndestination_ports = [\"{port}\"]\n"
                ),
            )
        })
}

fn topology() -> impl Strategy<Value = String> {
    prop::collection::vec(rule(), 0..10).prop_map(|rules| {
        let mut seen = std::collections::HashSet::new();
        let mut text = TOPOLOGY.to_string();
        for (priority, inbound, toml) in rules {
            if seen.insert((priority, inbound)) {
                text += &toml;
            }
        }
        text + "[lab]\n[[lab.traffic]]\nname = \"x\"\nto = \"10.0.1.6\"\nport = 1433\n"
    })
}

/// (from, to, udp, port): one end is the workload, the other across the router.
fn flow() -> impl Strategy<Value = (Ipv4Addr, Ipv4Addr, bool, u16)> {
    (
        prop::sample::select(OTHERS.to_vec()),
        any::<bool>(),
        any::<bool>(),
        prop::sample::select(PORTS.to_vec()),
    )
        .prop_map(|(other, outbound, udp, port)| {
            let (w, o): (Ipv4Addr, Ipv4Addr) = (WORKLOAD.parse().unwrap(), other.parse().unwrap());
            if outbound {
                (w, o, udp, port)
            } else {
                (o, w, udp, port)
            }
        })
}

/// The namespaces, listeners in every one of them, and the router.
struct Lab {
    router: Netns,
    /// (address, its namespace)
    hosts: Vec<(Ipv4Addr, Netns)>,
    stop: Arc<AtomicBool>,
}

impl Lab {
    fn build() -> anyhow::Result<Self> {
        let router = Netns::new(NS_PREFIX)?;
        router.sysctl("net.ipv4.ip_forward", "1")?;
        router.sysctl("net.ipv4.conf.all.rp_filter", "0")?;
        let mut hosts = Vec::new();
        for (i, addr) in std::iter::once(WORKLOAD).chain(OTHERS).enumerate() {
            let ns = Netns::new(NS_PREFIX)?;
            let leg = format!("h{i}");
            veth(&router, &leg, &ns, "eth0")?;
            let (r_ip, h_ip) = (format!("169.254.{i}.1"), format!("169.254.{i}.2"));
            router.ip(["addr", "add", &format!("{r_ip}/30"), "dev", &leg])?;
            router.ip(["link", "set", &leg, "up"])?;
            router.ip(["route", "add", &format!("{addr}/32"), "via", &h_ip])?;
            ns.ip(["addr", "add", &format!("{h_ip}/30"), "dev", "eth0"])?;
            ns.ip(["addr", "add", &format!("{addr}/32"), "dev", "lo"])?;
            ns.ip(["link", "set", "lo", "up"])?;
            ns.ip(["link", "set", "eth0", "up"])?;
            ns.ip(["route", "add", "default", "via", &r_ip, "src", addr])?;
            hosts.push((addr.parse()?, ns));
        }
        let stop = Arc::new(AtomicBool::new(false));
        for (addr, ns) in &hosts {
            for port in PORTS {
                let sa = SocketAddr::from((*addr, port));
                // Servers answer one byte until the lab is dropped.
                let tcp = ns.enter(|| TcpListener::bind(sa))??;
                tcp.set_nonblocking(true)?;
                let done = stop.clone();
                std::thread::spawn(move || {
                    while !done.load(Ordering::Relaxed) {
                        match tcp.accept() {
                            Ok((mut s, _)) => {
                                let _ = s.write_all(b"k");
                            }
                            Err(_) => std::thread::sleep(Duration::from_millis(5)),
                        }
                    }
                });
                let udp = ns.enter(|| UdpSocket::bind(sa))??;
                udp.set_read_timeout(Some(Duration::from_millis(50)))?;
                let done = stop.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 64];
                    while !done.load(Ordering::Relaxed) {
                        if let Ok((n, from)) = udp.recv_from(&mut buf) {
                            let _ = udp.send_to(&buf[..n], from);
                        }
                    }
                });
            }
        }
        Ok(Self {
            router,
            hosts,
            stop,
        })
    }

    fn ns(&self, addr: Ipv4Addr) -> &Netns {
        &self
            .hosts
            .iter()
            .find(|(a, _)| *a == addr)
            .expect("a lab host")
            .1
    }

    /// Replaces the router's ruleset.
    fn load(&self, script: Option<&str>) -> anyhow::Result<()> {
        let status = self
            .router
            .command("nft")
            .args(["flush", "ruleset"])
            .status()?;
        anyhow::ensure!(status.success(), "nft flush ruleset failed");
        if let Some(script) = script {
            let mut child = self
                .router
                .command("nft")
                .args(["-f", "-"])
                .stdin(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()?;
            child
                .stdin
                .take()
                .expect("piped")
                .write_all(script.as_bytes())?;
            let out = child.wait_with_output()?;
            anyhow::ensure!(
                out.status.success(),
                "nft refused the ruleset: {}\n{script}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// Whether the kernel lets the flow through (and its answer back).
    fn passes(&self, from: Ipv4Addr, to: Ipv4Addr, udp: bool, port: u16) -> anyhow::Result<bool> {
        let target = SocketAddr::from((to, port));
        self.ns(from).enter(move || -> anyhow::Result<bool> {
            if udp {
                let s = UdpSocket::bind(SocketAddr::from((from, 0)))?;
                s.set_read_timeout(Some(WAIT))?;
                s.send_to(b"nsg", target)?;
                let mut buf = [0u8; 8];
                Ok(s.recv_from(&mut buf).is_ok())
            } else {
                match TcpStream::connect_timeout(&target, WAIT) {
                    Ok(mut s) => {
                        s.set_read_timeout(Some(WAIT))?;
                        let mut b = [0u8; 1];
                        Ok(s.read_exact(&mut b).is_ok())
                    }
                    Err(_) => Ok(false),
                }
            }
        })?
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[test]
fn the_kernel_decides_every_flow_as_verify_does() {
    let built = Lab::build().expect("lab namespaces");
    let lab = &built;
    let mut runner = TestRunner::new(Config {
        cases: 32,
        max_shrink_iters: 16,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (topology(), prop::collection::vec(flow(), 1..=4));
    let (allowed, denied) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let result = runner.run(&strategy, |(text, flows)| {
        let t = Topology::parse(Path::new("nsg-prop.toml"), &text)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let security = EffectiveSecurity::build(&t);
        let script = observer::lab::nsg::ruleset(&security, &[]);
        lab.load(script.as_deref())
            .map_err(|e| TestCaseError::fail(format!("{e:#}")))?;
        let observed: Vec<anyhow::Result<bool>> = std::thread::scope(|scope| {
            let handles: Vec<_> = flows
                .iter()
                .map(|&(from, to, udp, port)| scope.spawn(move || lab.passes(from, to, udp, port)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("flow thread"))
                .collect()
        });
        for (&(from, to, udp, port), seen) in flows.iter().zip(observed) {
            let seen = seen.map_err(|e| TestCaseError::fail(format!("{e:#}")))?;
            let decision = security.verify(
                &Flow::new(from, to, if udp { 17 } else { 6 }, port),
                Scope::Path,
            );
            let expected = decision.access == Access::Allow;
            if expected { &allowed } else { &denied }.fetch_add(1, Ordering::Relaxed);
            prop_assert_eq!(
                seen,
                expected,
                "{} {}:{} -> {}: verify says {} ({})\n{}\n{}",
                if udp { "UDP" } else { "TCP" },
                from,
                port,
                to,
                decision.access,
                decision.describe(),
                text,
                script.as_deref().unwrap_or("(no ruleset)")
            );
        }
        Ok(())
    });
    lab.load(None).expect("flush");
    if let Err(e) = result {
        panic!("{e}");
    }
    // The draw exercised both outcomes.
    let (allowed, denied) = (allowed.into_inner(), denied.into_inner());
    assert!(
        allowed > 0 && denied > 0,
        "allowed {allowed}, denied {denied}"
    );
}
