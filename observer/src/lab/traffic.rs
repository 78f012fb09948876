//! Scenario traffic: a client in the workload's namespace that resolves
//! names through the lab's DNS and opens one flow per `[[lab.traffic]]`
//! entry against the lab's servers ([`serve`](crate::lab::serve)), and the
//! management host's inbound connections of `[[lab.inbound]]`. Every wait
//! is bounded.

use std::{
    io::{Read as _, Write as _},
    net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket},
    time::Duration,
};

use anyhow::Context as _;

use crate::{
    lab::{build::Lab, netns::Netns, plan::Role},
    topology::{Inbound, Protocol, Traffic},
};

const CONNECT_TIMEOUT: Duration = Duration::from_millis(1500);
const IO_TIMEOUT: Duration = Duration::from_millis(1500);
/// How long the management host waits for the handshake.
const INBOUND_CONNECT: Duration = Duration::from_secs(3);

/// What happened to one flow, from the client's side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub name: String,
    pub resolved: Option<IpAddr>,
    pub result: String,
}

/// Opens the flow of `traffic` from the workload namespace.
pub(crate) fn send(lab: &Lab, traffic: &Traffic) -> Outcome {
    let ns = lab.ns(Role::APP);
    let dns = lab.topology().dns.servers.first().copied();
    let mut outcome = Outcome {
        name: traffic.name.clone(),
        resolved: None,
        result: String::new(),
    };
    let target = match traffic.to.parse::<IpAddr>() {
        Ok(ip) => ip,
        Err(_) => match dns.map(|server| resolve(ns, server, &traffic.to)) {
            Some(Ok(ip)) => ip,
            Some(Err(e)) => {
                outcome.result = format!("DNS: {e}");
                return outcome;
            }
            None => {
                outcome.result = "no DNS server in the topology".into();
                return outcome;
            }
        },
    };
    outcome.resolved = Some(target);
    let addr = SocketAddr::new(target, traffic.port);
    outcome.result = match traffic.protocol {
        Protocol::Tcp => match ns.enter(|| tcp_exchange(addr)) {
            Ok(r) => r,
            Err(e) => e.to_string(),
        },
        Protocol::Udp => match ns.enter(|| udp_exchange(addr)) {
            Ok(r) => r,
            Err(e) => e.to_string(),
        },
    };
    outcome
}

fn tcp_exchange(addr: SocketAddr) -> String {
    match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
        Ok(mut stream) => {
            let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
            let _ = stream.write_all(b"hello from the workload\n");
            let mut reply = Vec::new();
            let _ = stream.read_to_end(&mut reply);
            if reply.is_empty() {
                "connected, no reply".into()
            } else if reply.starts_with(b"HTTP/1.1 403 ") {
                // A resource with public network access disabled.
                "refused (HTTP 403)".into()
            } else {
                "answered".into()
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => "refused (RST)".into(),
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => "no answer (timeout)".into(),
        Err(e) => format!("failed: {e}"),
    }
}

fn udp_exchange(addr: SocketAddr) -> String {
    let Ok(socket) = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)) else {
        return "cannot bind".into();
    };
    let _ = socket.set_read_timeout(Some(IO_TIMEOUT));
    let _ = socket.send_to(b"hello", addr);
    let mut buf = [0u8; 64];
    match socket.recv_from(&mut buf) {
        Ok(_) => "answered".into(),
        Err(_) => "no answer (timeout)".into(),
    }
}

/// Resolves `name` (A record) through `server` from inside `ns`.
pub(crate) fn resolve(ns: &Netns, server: IpAddr, name: &str) -> anyhow::Result<IpAddr> {
    let fqdn = if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    };
    let query = crate::dns::query_message(0x4f42, &fqdn, hickory_proto::rr::RecordType::A)
        .map_err(anyhow::Error::msg)?;
    let reply = ns.enter(|| -> std::io::Result<Vec<u8>> {
        let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
        socket.set_read_timeout(Some(IO_TIMEOUT))?;
        socket.send_to(&query, (server, 53))?;
        let mut buf = vec![0u8; 4096];
        let n = socket.recv(&mut buf)?;
        buf.truncate(n);
        Ok(buf)
    })??;
    let parsed = crate::dns::parse_response(&reply).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    parsed
        .addresses
        .first()
        .copied()
        .with_context(|| format!("{name}: {} with no address", parsed.rcode))
}

/// Opens one inbound flow from the management host to the VIP.
pub(crate) fn inbound(lab: &Lab, inbound: &Inbound) -> Outcome {
    let target = SocketAddr::from((lab.vip(), inbound.port));
    let result = lab
        .ns(Role::Pub)
        .enter(move || TcpStream::connect_timeout(&target, INBOUND_CONNECT))
        .map_err(anyhow::Error::from)
        .and_then(|r| r.map_err(anyhow::Error::from));
    Outcome {
        name: inbound.name.clone(),
        resolved: Some(IpAddr::V4(inbound.from)),
        result: match result {
            Ok(_) => format!("connected to {target}"),
            Err(e) => format!("no connection to {target}: {e}"),
        },
    }
}
