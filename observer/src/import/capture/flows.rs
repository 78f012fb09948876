//! Packets into flow records: each packet's frame is parsed for its link
//! type, given an observation point (the file's interface, or a Linux
//! cooked v2 header's ifindex) and a direction, and added to the same
//! [`FlowTable`] the live capture uses, driven by packet time (expired
//! every half second of it, as the live pipeline drains). DNS responses
//! (port 53, UDP or TCP) go through the live parser and tracker and name
//! the flows they resolved. Every packet is either in a flow or counted in
//! the summary under the reason it is not.

use std::{collections::HashMap, sync::Arc};

use observer_common::{DIRECTION_EGRESS, DIRECTION_INGRESS, FlowKey, FlowStats, proto, tcp_flag};

use super::{
    PcapOptions,
    container::Packet,
    direction::Directions,
    frame::{self, Frame, Why},
    link::{Link, linktype_name},
};
use crate::{
    dns::{DnsAnswer, DnsTracker, Skip, parse_response},
    flow::{DirectionBasis, Ended, FlowRecord, FlowTable, ObservationPoint, Source, WallClock},
    import::{Problem, Summary, Window},
};

/// How often (in packet time) the flow table is checked for ended flows,
/// as the live pipeline drains every half second.
const EXPIRE_EVERY_NS: u64 = 500_000_000;

/// The direction basis travels in the flow key's padding, so that records
/// of different bases stay apart and the table needs no side map; the
/// kernel leaves it zero.
fn basis_code(basis: DirectionBasis) -> u8 {
    match basis {
        DirectionBasis::Capture => 1,
        DirectionBasis::Local => 2,
        DirectionBasis::Topology => 3,
        DirectionBasis::Initiator => 4,
    }
}

fn basis_of(code: u8) -> Option<DirectionBasis> {
    <DirectionBasis as strum::VariantArray>::VARIANTS
        .iter()
        .copied()
        .find(|b| basis_code(*b) == code)
}

/// An interface of the file as read: its link type, if supported.
#[derive(Debug)]
struct Seen {
    link: Option<Link>,
}

/// The shared state of one import that a capture file adds to.
#[derive(Debug)]
pub(super) struct Shared<'a> {
    pub summary: &'a mut Summary,
    pub dns: &'a mut DnsTracker,
    pub answers: &'a mut Vec<DnsAnswer>,
}

/// Turns the packets of one file into flow records.
#[derive(Debug)]
pub(super) struct Flows<'a> {
    options: &'a PcapOptions,
    file: &'a str,
    window: Window,
    table: FlowTable,
    directions: Directions,
    ended: Vec<Ended>,
    /// Interfaces by file-wide ordinal.
    interfaces: HashMap<u32, Seen>,
    /// Observation points: index = the flow key's `ifindex`.
    points: Vec<ObservationPoint>,
    /// (interface ordinal, cooked v2 ifindex) → index in `points`.
    point_ids: HashMap<(u32, Option<u32>), u32>,
    next_expire: u64,
    /// Time of the latest packet (for packets without a timestamp).
    last_ns: u64,
    /// Packets without a timestamp (simple packet blocks) so far.
    untimed: u64,
}

impl<'a> Flows<'a> {
    pub(super) fn new(options: &'a PcapOptions, file: &'a str, window: Window) -> Self {
        let table = options.table;
        Self {
            options,
            file,
            window,
            table: FlowTable::new(table),
            directions: Directions::new(
                options.local.clone(),
                options.sides.clone(),
                table.idle_timeout.as_nanos() as u64,
                table.max_flows,
            ),
            ended: Vec::new(),
            interfaces: HashMap::new(),
            points: Vec::new(),
            point_ids: HashMap::new(),
            next_expire: 0,
            last_ns: 0,
            untimed: 0,
        }
    }

    fn problem(&self, number: u64, message: String) -> Problem {
        Problem {
            file: self.file.to_owned(),
            position: format!("packet {number}"),
            message,
        }
    }

    /// The observation point of an interface (and cooked v2 ifindex).
    fn point(&mut self, interface: u32, name: Option<&str>, ifindex: Option<u32>) -> u32 {
        if let Some(&id) = self.point_ids.get(&(interface, ifindex)) {
            return id;
        }
        let options = self.options;
        let stem = self.file.rsplit('/').next().unwrap_or(self.file);
        let iface: Arc<str> = match (&options.iface, ifindex, name) {
            (Some(named), _, _) => Arc::from(named.as_str()),
            (None, Some(index), _) => Arc::from(format!("ifindex {index}")),
            (None, None, Some(name)) => Arc::from(name),
            (None, None, None) => Arc::from("pcap"),
        };
        self.points.push(ObservationPoint {
            host: Arc::from(options.host.as_deref().unwrap_or(stem)),
            netns: None,
            iface,
            iface_role: options.iface_role.as_deref().map(Arc::from),
        });
        let id = (self.points.len() - 1) as u32;
        self.point_ids.insert((interface, ifindex), id);
        id
    }

    /// The link type of an interface; its first packet reports one that is
    /// not read.
    fn link(&mut self, summary: &mut Summary, packet: &Packet<'_>) -> Option<Link> {
        let interface = packet.interface;
        if let Some(seen) = self.interfaces.get(&interface.ordinal) {
            return seen.link;
        }
        let link = Link::from_linktype(interface.link);
        if link.is_none() {
            let name = linktype_name(interface.link)
                .map(|n| format!(" ({n})"))
                .unwrap_or_default();
            summary.problem(self.problem(
                packet.number,
                format!(
                    "link type {}{name} is not read (supported: {}); the packets of this interface are counted as skipped",
                    interface.link,
                    Link::SUPPORTED
                ),
            ));
        }
        self.interfaces.insert(interface.ordinal, Seen { link });
        link
    }

    /// Adds one packet.
    pub(super) fn packet(&mut self, shared: &mut Shared<'_>, packet: &Packet<'_>) {
        let summary = &mut *shared.summary;
        summary.records_in += 1;
        let Some(link) = self.link(summary, packet) else {
            summary.skip("link type not read", None);
            return;
        };
        let time_ns = match packet.time_ns {
            None => {
                self.untimed += 1;
                self.last_ns
            }
            Some(t) if (0..=i128::from(i64::MAX)).contains(&t) => t as u64,
            Some(t) => {
                summary.skip(
                    "timestamp outside 1970-2262",
                    Some(self.problem(
                        packet.number,
                        format!("timestamp {t} ns since 1970 cannot be a flow time"),
                    )),
                );
                return;
            }
        };
        self.last_ns = self.last_ns.max(time_ns);
        let parsed = link
            .parse(packet.data)
            .and_then(|header| frame::parse(header, packet.data, packet.wire_len));
        let frame = match parsed {
            Ok(frame) => frame,
            Err(not) => {
                let problem = match not.why {
                    Why::NotIp => None,
                    Why::Cut => Some(self.problem(
                        packet.number,
                        format!(
                            "{}: {} of {} bytes captured",
                            not.reason,
                            packet.data.len(),
                            packet.wire_len
                        ),
                    )),
                    Why::Malformed => Some(self.problem(
                        packet.number,
                        format!(
                            "{}: not a flow packet (the kernel program would count it as not accounted)",
                            not.reason
                        ),
                    )),
                };
                summary.skip(not.reason, problem);
                return;
            }
        };
        let point = self.point(
            packet.interface.ordinal,
            packet.interface.name.as_deref(),
            frame.link.ifindex,
        );
        let (egress, basis) = self
            .directions
            .decide(&frame, packet.egress, point, time_ns);
        let mut key = frame.key;
        key.ifindex = point;
        key.direction = if egress {
            DIRECTION_EGRESS
        } else {
            DIRECTION_INGRESS
        };
        key._pad[0] = basis_code(basis);
        if (key.protocol == proto::UDP || key.protocol == proto::TCP) && key.src_port == 53 {
            self.dns_answer(shared, &frame, &key, packet.data, time_ns, point);
        }
        let flags = frame.tcp_flags;
        let delta = FlowStats {
            packets: 1,
            bytes: frame.bytes,
            first_seen_ns: time_ns,
            last_seen_ns: time_ns,
            tcp_flags: u64::from(flags),
            syn_count: u64::from(flags & tcp_flag::SYN != 0),
            fin_count: u64::from(flags & tcp_flag::FIN != 0),
            rst_count: u64::from(flags & tcp_flag::RST != 0),
        };
        if time_ns >= self.next_expire {
            self.table.expire(time_ns, &mut self.ended);
            self.directions.expire(time_ns);
            self.next_expire = time_ns + EXPIRE_EVERY_NS;
        }
        self.table.add(&key, &delta, &mut self.ended);
    }

    fn dns_answer(
        &self,
        shared: &mut Shared<'_>,
        frame: &Frame,
        key: &FlowKey,
        data: &[u8],
        time_ns: u64,
        point: u32,
    ) {
        let (start, len) = frame.payload;
        let Some(mut payload) = data.get(start..start + len) else {
            return;
        };
        if key.protocol == proto::TCP {
            // A TCP DNS message starts with its length.
            match payload {
                [a, b, rest @ ..] if usize::from(u16::from_be_bytes([*a, *b])) <= rest.len() => {
                    payload = &rest[..usize::from(u16::from_be_bytes([*a, *b]))];
                }
                [] => return,
                _ => {
                    shared
                        .summary
                        .note("DNS messages cut short (their names are not used)", 1);
                    return;
                }
            }
        }
        let parsed = match parse_response(payload) {
            Ok(parsed) => parsed,
            Err(Skip::Query | Skip::NoQuestion) => return,
            Err(Skip::Malformed(_)) => {
                if !payload.is_empty() {
                    shared
                        .summary
                        .note("DNS messages cut short (their names are not used)", 1);
                }
                return;
            }
        };
        let answer = DnsAnswer {
            time_ns: time_ns as i64,
            iface: self.points[point as usize].iface.clone(),
            client: key.dst_ip(),
            server: key.src_ip(),
            query: parsed.query().to_string(),
            query_type: parsed.query_type,
            rcode: parsed.rcode,
            chain: parsed.chain,
            addresses: parsed.addresses,
            ttl: parsed.ttl,
            verdict: None,
            reason: None,
        };
        shared.dns.record(&answer);
        shared.answers.push(answer);
    }

    /// Turns ended flows into records.
    pub(super) fn emit(&mut self, shared: &mut Shared<'_>, emit: &mut dyn FnMut(FlowRecord)) {
        let clock = WallClock::utc();
        for Ended {
            mut key,
            stats,
            reason,
        } in self.ended.drain(..)
        {
            let point = self.points[key.ifindex as usize].clone();
            let basis = basis_of(key._pad[0]);
            key._pad = [0; 3];
            let mut record = FlowRecord::from_kernel(&key, &stats, reason, point, &clock);
            record.origin.source = Source::Pcap;
            record.origin.direction_basis = basis;
            if !self.window.contains(record.start_ns) {
                shared.summary.skip("outside --since/--until", None);
                continue;
            }
            shared.dns.enrich(&mut record);
            shared.summary.records_out += 1;
            emit(record);
        }
    }

    /// Ends every flow still open (the file ended) and emits them.
    pub(super) fn finish(&mut self, shared: &mut Shared<'_>, emit: &mut dyn FnMut(FlowRecord)) {
        self.table.finish(&mut self.ended);
        self.emit(shared, emit);
        if self.untimed > 0 {
            shared.summary.note(
                "packets without a timestamp (pcapng simple packet blocks): timed as the packet before",
                self.untimed,
            );
        }
    }
}
