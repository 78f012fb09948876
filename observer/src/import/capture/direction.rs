//! Which way a captured packet went (egress: it left the captured host),
//! decided in this order, and recorded in `direction_basis`:
//!
//! 1. `capture`: the file says (pcapng `epb_flags`, the packet type of a
//!    Linux cooked header);
//! 2. `local`: `--local` addresses or MACs; a packet from one is egress;
//! 3. `topology`: with `--topology`, the side that is more local (the
//!    ASE's subnets and outbound VIP, then the rest of the VNet) sent an
//!    egress packet; when both sides rank the same, the next rule decides;
//! 4. `initiator`: the side that opened the connection is the client and is
//!    taken as the captured host: a TCP SYN (without ACK) names its sender,
//!    a SYN-ACK its receiver, an ICMP echo (or timestamp, information,
//!    address mask) request its sender and a reply its receiver; otherwise
//!    the sender of the first packet seen.
//!
//! Connections (both directions of one 5-tuple at one observation point)
//! are remembered for the initiator rule and forgotten after the flow
//! table's idle timeout; their number is bounded like the flow table's.

use std::{collections::HashMap, net::IpAddr};

use ipnet::IpNet;
use observer_common::{proto, tcp_flag};

use super::{Local, frame::Frame};
use crate::{
    flow::DirectionBasis,
    topology::{SubnetRole, Topology},
};

/// The topology's view of which addresses are local: the ASE (its subnets
/// and outbound VIP) first, then the rest of the VNet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sides {
    ase: Vec<IpNet>,
    vnet: Vec<IpNet>,
}

impl Sides {
    pub fn from_topology(topology: &Topology) -> Self {
        let mut sides = Self::default();
        for subnet in &topology.vnet.subnets {
            let net = IpNet::V4(subnet.prefix);
            if subnet.role == SubnetRole::Ase {
                sides.ase.push(net);
            } else {
                sides.vnet.push(net);
            }
        }
        sides
            .vnet
            .extend(topology.vnet.address_space.iter().copied().map(IpNet::V4));
        if let Some(vip) = topology.outbound_vip {
            sides.ase.push(IpNet::from(IpAddr::V4(vip)));
        }
        sides
    }

    /// 2 in the ASE, 1 elsewhere in the VNet, 0 outside.
    fn rank(&self, addr: IpAddr) -> u8 {
        if self.ase.iter().any(|n| n.contains(&addr)) {
            2
        } else if self.vnet.iter().any(|n| n.contains(&addr)) {
            1
        } else {
            0
        }
    }
}

/// One endpoint of a connection.
type Endpoint = ([u8; 16], u16);

/// Both directions of one connection at one observation point, endpoints
/// in ascending order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Connection {
    point: u32,
    vlan: u16,
    protocol: u8,
    low: Endpoint,
    high: Endpoint,
}

#[derive(Clone, Copy, Debug)]
struct Opened {
    /// The lower endpoint opened the connection.
    low_is_client: bool,
    /// Decided by a SYN, SYN-ACK or ICMP request/reply (not by who came first).
    sure: bool,
    last_ns: u64,
}

/// Decides directions; remembers connections for the initiator rule.
#[derive(Debug)]
pub(super) struct Directions {
    local: Vec<Local>,
    sides: Option<Sides>,
    connections: HashMap<Connection, Opened>,
    idle_ns: u64,
    max: usize,
}

/// What a packet tells about who opened its connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Opening {
    /// The sender is the client (SYN, ICMP request).
    SenderOpens,
    /// The receiver is the client (SYN-ACK, ICMP reply).
    ReceiverOpened,
    /// Nothing.
    Unknown,
}

fn opening(frame: &Frame) -> Opening {
    let key = &frame.key;
    match key.protocol {
        proto::TCP if frame.tcp_flags & tcp_flag::SYN != 0 => {
            if frame.tcp_flags & tcp_flag::ACK == 0 {
                Opening::SenderOpens
            } else {
                Opening::ReceiverOpened
            }
        }
        // Echo, timestamp, information and address mask requests; replies.
        proto::ICMP => match key.src_port {
            8 | 13 | 15 | 17 => Opening::SenderOpens,
            0 | 14 | 16 | 18 => Opening::ReceiverOpened,
            _ => Opening::Unknown,
        },
        proto::ICMPV6 => match key.src_port {
            128 => Opening::SenderOpens,
            129 => Opening::ReceiverOpened,
            _ => Opening::Unknown,
        },
        _ => Opening::Unknown,
    }
}

impl Directions {
    pub(super) fn new(local: Vec<Local>, sides: Option<Sides>, idle_ns: u64, max: usize) -> Self {
        Self {
            local,
            sides,
            connections: HashMap::new(),
            idle_ns,
            max,
        }
    }

    /// Egress or not, and why, for a packet at observation point `point`;
    /// `recorded` is what the file says.
    pub(super) fn decide(
        &mut self,
        frame: &Frame,
        recorded: Option<bool>,
        point: u32,
        now_ns: u64,
    ) -> (bool, DirectionBasis) {
        if let Some(egress) = recorded.or(frame.link.egress) {
            return (egress, DirectionBasis::Capture);
        }
        let src = frame.key.src_ip();
        if !self.local.is_empty() {
            let local = self.local.iter().any(|l| match l {
                Local::Net(net) => net.contains(&src),
                Local::Mac(mac) => frame.link.src_mac == Some(*mac),
            });
            return (local, DirectionBasis::Local);
        }
        if let Some(sides) = &self.sides {
            let (from, to) = (sides.rank(src), sides.rank(frame.key.dst_ip()));
            if from != to {
                return (from > to, DirectionBasis::Topology);
            }
        }
        (
            self.initiator(frame, point, now_ns),
            DirectionBasis::Initiator,
        )
    }

    /// Whether the sender of `frame` is the client of its connection.
    fn initiator(&mut self, frame: &Frame, point: u32, now_ns: u64) -> bool {
        let key = &frame.key;
        let ports = !matches!(key.protocol, proto::ICMP | proto::ICMPV6);
        let src = (key.src_addr, if ports { key.src_port } else { 0 });
        let dst = (key.dst_addr, if ports { key.dst_port } else { 0 });
        let sender_is_low = src <= dst;
        let (low, high) = if sender_is_low {
            (src, dst)
        } else {
            (dst, src)
        };
        let connection = Connection {
            point,
            vlan: key.vlan_id,
            protocol: key.protocol,
            low,
            high,
        };
        let told = match opening(frame) {
            Opening::SenderOpens => Some(sender_is_low),
            Opening::ReceiverOpened => Some(!sender_is_low),
            Opening::Unknown => None,
        };
        let opened = self
            .connections
            .entry(connection)
            .or_insert_with(|| Opened {
                low_is_client: told.unwrap_or(sender_is_low),
                sure: told.is_some(),
                last_ns: now_ns,
            });
        // A SYN always opens (a new connection may reuse the 5-tuple); a
        // SYN-ACK or reply corrects a guess from who came first.
        match opening(frame) {
            Opening::SenderOpens => {
                opened.low_is_client = sender_is_low;
                opened.sure = true;
            }
            Opening::ReceiverOpened if !opened.sure => {
                opened.low_is_client = !sender_is_low;
                opened.sure = true;
            }
            _ => {}
        }
        opened.last_ns = opened.last_ns.max(now_ns);
        opened.low_is_client == sender_is_low
    }

    /// Forgets connections idle for the idle timeout; over the bound, the
    /// tenth idle longest.
    pub(super) fn expire(&mut self, now_ns: u64) {
        let idle = self.idle_ns;
        self.connections
            .retain(|_, o| now_ns.saturating_sub(o.last_ns) < idle);
        if self.connections.len() > self.max {
            let excess = self.connections.len() - (self.max - self.max / 10);
            let mut last: Vec<u64> = self.connections.values().map(|o| o.last_ns).collect();
            let (_, &mut threshold, _) = last.select_nth_unstable(excess - 1);
            let mut removed = 0;
            self.connections.retain(|_, o| {
                let keep = removed >= excess || o.last_ns > threshold;
                removed += usize::from(!keep);
                keep
            });
        }
    }

    /// Connections remembered (for tests and memory bounds).
    #[cfg(test)]
    pub(super) fn remembered(&self) -> usize {
        self.connections.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::capture::link::{IPV4, LinkHeader};

    fn frame(src: [u8; 4], dst: [u8; 4], ports: (u16, u16), protocol: u8, flags: u8) -> Frame {
        let mut f = Frame {
            link: LinkHeader {
                ethertype: IPV4,
                ..LinkHeader::default()
            },
            tcp_flags: flags,
            ..Frame::default()
        };
        f.key.ip_version = 4;
        f.key.protocol = protocol;
        f.key.src_addr[10..12].copy_from_slice(&[0xff, 0xff]);
        f.key.src_addr[12..].copy_from_slice(&src);
        f.key.dst_addr[10..12].copy_from_slice(&[0xff, 0xff]);
        f.key.dst_addr[12..].copy_from_slice(&dst);
        (f.key.src_port, f.key.dst_port) = ports;
        f
    }

    const A: [u8; 4] = [10, 0, 0, 4];
    const B: [u8; 4] = [203, 0, 113, 30];

    #[test]
    fn the_initiator_is_the_client() {
        let mut d = Directions::new(Vec::new(), None, 15_000_000_000, 100);
        let syn = frame(B, A, (443, 40000), proto::TCP, 0);
        // Mid-connection: the first packet's sender is taken as the client ...
        assert_eq!(
            d.decide(&syn, None, 0, 1),
            (true, DirectionBasis::Initiator)
        );
        // ... until a SYN-ACK from it says it is the server.
        let synack = frame(
            B,
            A,
            (443, 40000),
            proto::TCP,
            tcp_flag::SYN | tcp_flag::ACK,
        );
        assert!(!d.decide(&synack, None, 0, 2).0);
        let ack = frame(A, B, (40000, 443), proto::TCP, tcp_flag::ACK);
        assert!(d.decide(&ack, None, 0, 3).0);
        // A SYN always opens: the port pair reused the other way round.
        let reverse = frame(B, A, (443, 40000), proto::TCP, tcp_flag::SYN);
        assert!(d.decide(&reverse, None, 0, 4).0);
        // Another observation point is another connection.
        assert!(d.decide(&ack, None, 1, 5).0);
        // ICMP: the reply's receiver opened, whoever came first.
        let reply = frame(B, A, (0, 0), proto::ICMP, 0);
        assert!(!d.decide(&reply, None, 0, 6).0);
        let request = frame(A, B, (8, 0), proto::ICMP, 0);
        assert!(d.decide(&request, None, 0, 7).0);
        // UDP: first seen.
        let query = frame(A, B, (5353, 53), proto::UDP, 0);
        let answer = frame(B, A, (53, 5353), proto::UDP, 0);
        assert!(d.decide(&query, None, 0, 8).0);
        assert!(!d.decide(&answer, None, 0, 9).0);
        assert_eq!(d.remembered(), 4);
        d.expire(9 + 15_000_000_000);
        assert_eq!(d.remembered(), 0, "idle connections are forgotten");
    }

    #[test]
    fn the_file_then_local_then_topology_then_the_initiator_decide() {
        let packet = frame(B, A, (443, 40000), proto::TCP, tcp_flag::ACK);
        let mut d = Directions::new(Vec::new(), None, 1, 100);
        assert_eq!(
            d.decide(&packet, Some(false), 0, 0),
            (false, DirectionBasis::Capture)
        );
        let local = vec!["10.0.0.0/24".parse().unwrap()];
        let mut d = Directions::new(local, None, 1, 100);
        assert_eq!(
            d.decide(&packet, None, 0, 0),
            (false, DirectionBasis::Local)
        );
        let sides = Sides {
            ase: vec!["10.0.0.0/24".parse().unwrap()],
            vnet: vec!["10.0.0.0/16".parse().unwrap()],
        };
        let mut d = Directions::new(Vec::new(), Some(sides), 1, 100);
        assert_eq!(
            d.decide(&packet, None, 0, 0),
            (false, DirectionBasis::Topology)
        );
        let inside = frame([10, 0, 1, 6], A, (1433, 40000), proto::TCP, tcp_flag::ACK);
        assert_eq!(
            d.decide(&inside, None, 0, 0),
            (false, DirectionBasis::Topology),
            "the ASE outranks the rest of the VNet"
        );
        let both = frame([10, 0, 0, 5], A, (1433, 40000), proto::TCP, tcp_flag::ACK);
        assert_eq!(
            d.decide(&both, None, 0, 0),
            (true, DirectionBasis::Initiator),
            "a tie falls back to the initiator"
        );
    }

    #[test]
    fn remembered_connections_are_bounded() {
        let mut d = Directions::new(Vec::new(), None, u64::MAX, 1000);
        for port in 0..2000u16 {
            d.decide(
                &frame(A, B, (port, 53), proto::UDP, 0),
                None,
                0,
                u64::from(port),
            );
        }
        d.expire(2000);
        assert_eq!(d.remembered(), 900);
    }
}
