//! Packet captures (pcap and pcapng, as tcpdump, dumpcap or tshark write
//! them) as flow records, with the kernel program's flow semantics: the
//! same key (addresses, ports or ICMP type/code, protocol, outermost VLAN,
//! direction, interface), IPFIX bytes (the IP header's total length), ports
//! 0 for non-first fragments, TCP flags and their counts, all accumulated
//! by the same [`FlowTable`] with its idle/active timeouts, close grace and
//! end reasons, driven by packet time. The end of a file ends the flows
//! still open (`forced-end`, as when a capture stops).
//!
//! Frames are read with `pcap-file` and their headers with `etherparse`.
//! Direction: pcapng's `epb_flags` (inbound/outbound) or Linux cooked
//! captures' packet type when present; otherwise the `--local` addresses or
//! MAC addresses (a frame sent by one of them is egress).
//!
//! DNS responses in the capture (port 53, UDP or TCP) go through the same
//! parser and tracker as live capture and name the flows they resolved.

use std::{collections::HashMap, net::IpAddr, str::FromStr, sync::Arc};

use etherparse::{Ethernet2Slice, LinuxSllPacketType, LinuxSllSlice, SingleVlanSlice};
use ipnet::IpNet;
use observer_common::{DIRECTION_EGRESS, DIRECTION_INGRESS, FlowKey, FlowStats, proto, tcp_flag};
use pcap_file::{
    DataLink,
    pcap::PcapReader,
    pcapng::{
        Block, PcapNgReader,
        blocks::{
            enhanced_packet::EnhancedPacketOption,
            interface_description::InterfaceDescriptionOption,
        },
    },
};

use super::{Problem, Summary, Window};
use crate::{
    dns::{DnsAnswer, DnsTracker, Skip, parse_response},
    flow::{Ended, FlowRecord, FlowTable, ObservationPoint, Source, TableConfig, WallClock},
};

/// How often (in packet time) the flow table is checked for ended flows,
/// as the live pipeline drains every half second.
const EXPIRE_EVERY_NS: u64 = 500_000_000;

/// One `--local` entry: an address range or a MAC address of the host
/// whose interface was captured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Local {
    Net(IpNet),
    Mac([u8; 6]),
}

impl FromStr for Local {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(net) = s.parse::<IpNet>() {
            return Ok(Self::Net(net));
        }
        if let Ok(addr) = s.parse::<IpAddr>() {
            return Ok(Self::Net(IpNet::from(addr)));
        }
        let parts: Vec<&str> = s.split([':', '-']).collect();
        if parts.len() == 6 {
            let mut mac = [0u8; 6];
            for (byte, part) in mac.iter_mut().zip(&parts) {
                *byte = u8::from_str_radix(part, 16)
                    .map_err(|_| format!("`{s}` is not a MAC address"))?;
            }
            return Ok(Self::Mac(mac));
        }
        Err(format!(
            "`{s}` is neither an address, a CIDR range nor a MAC address (aa:bb:cc:dd:ee:ff)"
        ))
    }
}

/// Settings of a pcap import.
#[derive(Clone, Debug, Default)]
pub struct PcapOptions {
    pub table: TableConfig,
    /// The captured host's addresses or MACs (for files without direction).
    pub local: Vec<Local>,
    /// Interface name for files that do not name theirs (pcap).
    pub iface: Option<String>,
    /// The interface's role in the topology (as `run --iface NAME=ROLE`).
    pub iface_role: Option<String>,
    /// `host` column (default: the file name).
    pub host: Option<String>,
}

/// What one frame contributes: its key (without interface and direction)
/// and counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Frame {
    pub key: FlowKey,
    pub bytes: u64,
    pub tcp_flags: u8,
    pub src_mac: Option<[u8; 6]>,
    /// From the capture format, when it says.
    pub egress: Option<bool>,
    /// Offset and length of the transport payload (for DNS).
    pub payload: (usize, usize),
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Parses one frame as the kernel program does. `wire_len` is the frame's
/// length on the wire (the capture may hold fewer bytes).
pub fn parse_frame(link: DataLink, data: &[u8], wire_len: usize) -> Result<Frame, &'static str> {
    let mut frame = Frame::default();
    let (mut ethertype, mut offset) = match link {
        DataLink::ETHERNET => {
            let eth = Ethernet2Slice::from_slice_without_fcs(data)
                .map_err(|_| "Ethernet header cut short")?;
            frame.src_mac = Some(eth.source());
            (eth.ether_type().0, 14)
        }
        DataLink::LINUX_SLL => {
            let sll =
                LinuxSllSlice::from_slice(data).map_err(|_| "Linux cooked header cut short")?;
            frame.egress = Some(sll.packet_type() == LinuxSllPacketType::OUTGOING);
            let protocol = be16(data, 14).ok_or("Linux cooked header cut short")?;
            (protocol, 16)
        }
        DataLink::RAW | DataLink::IPV4 | DataLink::IPV6 => {
            let version = data.first().ok_or("empty packet")? >> 4;
            (if version == 6 { 0x86dd } else { 0x0800 }, 0)
        }
        _ => return Err("unsupported link type (Ethernet, Linux cooked or raw IP)"),
    };
    // Up to two VLAN tags; the outermost names the flow.
    let mut tags = 0;
    while ethertype == 0x8100 || ethertype == 0x88a8 {
        if tags == 2 {
            return Err("more than two VLAN tags");
        }
        let tag = SingleVlanSlice::from_slice(&data[offset..]).map_err(|_| "VLAN tag cut short")?;
        if tags == 0 {
            frame.key.vlan_id = tag.vlan_identifier().value();
        }
        ethertype = tag.ether_type().0;
        offset += 4;
        tags += 1;
    }
    let available = wire_len.saturating_sub(offset);
    let ip = &data[offset.min(data.len())..];
    let (l4_offset, ip_bytes, non_first_fragment) = match ethertype {
        0x0800 => {
            let first = *ip.first().ok_or("IPv4 header cut short")?;
            let header_len = usize::from(first & 0x0f) * 4;
            if first >> 4 != 4 || header_len < 20 {
                return Err("bad IPv4 header");
            }
            if ip.len() < 20 || header_len > available {
                return Err("IPv4 header cut short");
            }
            let total = usize::from(be16(ip, 2).expect("checked"));
            if total < header_len {
                return Err("bad IPv4 header");
            }
            if total > available {
                return Err("IPv4 packet cut short");
            }
            frame.key.ip_version = 4;
            frame.key.protocol = ip[9];
            frame.key.src_addr[10..12].copy_from_slice(&[0xff, 0xff]);
            frame.key.src_addr[12..].copy_from_slice(&ip[12..16]);
            frame.key.dst_addr[10..12].copy_from_slice(&[0xff, 0xff]);
            frame.key.dst_addr[12..].copy_from_slice(&ip[16..20]);
            let fragment_offset = be16(ip, 6).expect("checked") & 0x1fff;
            (header_len, total, fragment_offset != 0)
        }
        0x86dd => {
            if ip.len() < 40 {
                return Err("IPv6 header cut short");
            }
            if ip[0] >> 4 != 6 {
                return Err("bad IPv6 header");
            }
            let payload = usize::from(be16(ip, 4).expect("checked"));
            let total = if payload == 0 {
                available
            } else {
                40 + payload
            };
            if total > available {
                return Err("IPv6 packet cut short");
            }
            frame.key.ip_version = 6;
            frame.key.src_addr.copy_from_slice(&ip[8..24]);
            frame.key.dst_addr.copy_from_slice(&ip[24..40]);
            let mut next = ip[6];
            let mut cursor = 40;
            let mut non_first = false;
            let mut done = false;
            for _ in 0..8 {
                match next {
                    0 | 43 | 60 | 135 | 139 | 140 => {
                        let len = *ip
                            .get(cursor + 1)
                            .ok_or("IPv6 extension header cut short")?;
                        next = ip[cursor];
                        cursor += (usize::from(len) + 1) * 8;
                    }
                    51 => {
                        let len = *ip
                            .get(cursor + 1)
                            .ok_or("IPv6 extension header cut short")?;
                        next = ip[cursor];
                        cursor += (usize::from(len) + 2) * 4;
                    }
                    44 => {
                        let offset =
                            be16(ip, cursor + 2).ok_or("IPv6 fragment header cut short")?;
                        next = ip[cursor];
                        cursor += 8;
                        if offset & 0xfff8 != 0 {
                            non_first = true;
                            done = true;
                            break;
                        }
                    }
                    _ => {
                        done = true;
                        break;
                    }
                }
            }
            if !done {
                return Err("IPv6 extension header chain too long");
            }
            frame.key.protocol = next;
            (cursor, total, non_first)
        }
        _ => return Err("not IPv4 or IPv6"),
    };
    frame.bytes = ip_bytes as u64;
    if non_first_fragment {
        return Ok(frame);
    }
    let l4 = ip.get(l4_offset..).unwrap_or_default();
    let header_len = match frame.key.protocol {
        proto::TCP => {
            if l4.len() < 14 {
                return Err("TCP header cut short");
            }
            let len = usize::from(l4[12] >> 4) * 4;
            if len < 20 {
                return Err("TCP header cut short");
            }
            frame.key.src_port = be16(l4, 0).expect("checked");
            frame.key.dst_port = be16(l4, 2).expect("checked");
            frame.tcp_flags = l4[13];
            len
        }
        proto::UDP => {
            frame.key.src_port = be16(l4, 0).ok_or("UDP header cut short")?;
            frame.key.dst_port = be16(l4, 2).ok_or("UDP header cut short")?;
            8
        }
        proto::ICMP | proto::ICMPV6 => {
            if l4.len() < 4 {
                return Err("ICMP header cut short");
            }
            frame.key.src_port = u16::from(l4[0]);
            frame.key.dst_port = u16::from(l4[1]);
            8
        }
        _ => 0,
    };
    if header_len > 0 {
        let start = offset + l4_offset + header_len;
        let end = (offset + ip_bytes).min(data.len());
        frame.payload = (start, end.saturating_sub(start));
    }
    Ok(frame)
}

/// An interface of the capture.
struct Interface {
    link: DataLink,
    /// Nanoseconds per timestamp unit (pcapng `if_tsresol`), as a ratio.
    ts_num: u128,
    ts_den: u128,
    point: ObservationPoint,
}

/// Turns packets into flow records through the flow table.
struct Flows<'a> {
    options: &'a PcapOptions,
    file: &'a str,
    table: FlowTable,
    ended: Vec<Ended>,
    points: HashMap<u32, ObservationPoint>,
    next_expire: u64,
    dns: &'a mut DnsTracker,
    answers: &'a mut Vec<DnsAnswer>,
    window: Window,
}

/// One captured packet as the file gives it.
struct Captured<'a> {
    /// 1-based position in the file.
    index: u64,
    interface: u32,
    time_ns: u64,
    data: &'a [u8],
    wire_len: usize,
    /// The direction the file records, if any.
    egress: Option<bool>,
}

impl Flows<'_> {
    fn packet(&mut self, summary: &mut Summary, iface: &Interface, packet: Captured<'_>) {
        let Captured {
            index,
            interface,
            time_ns,
            data,
            wire_len,
            egress: egress_flag,
        } = packet;
        summary.records_in += 1;
        let frame = match parse_frame(iface.link, data, wire_len) {
            Ok(frame) => frame,
            Err(why) => {
                summary.skip(
                    why,
                    Some(Problem {
                        file: self.file.to_owned(),
                        position: format!("packet {index}"),
                        message: format!("{why}: not a flow packet (the kernel program would count it as not accounted)"),
                    }),
                );
                return;
            }
        };
        let egress = match egress_flag.or(frame.egress) {
            Some(e) => e,
            None => {
                let src = frame.key.src_ip();
                let local = |l: &Local| match l {
                    Local::Net(net) => net.contains(&src),
                    Local::Mac(mac) => frame.src_mac == Some(*mac),
                };
                if self.options.local.is_empty() {
                    summary.skip(
                        "direction unknown (pass --local)",
                        Some(Problem {
                            file: self.file.to_owned(),
                            position: format!("packet {index}"),
                            message: "the capture does not say which way this packet went: pass --local with the captured host's addresses or MAC".into(),
                        }),
                    );
                    return;
                }
                self.options.local.iter().any(local)
            }
        };
        let mut key = frame.key;
        key.ifindex = interface;
        key.direction = if egress {
            DIRECTION_EGRESS
        } else {
            DIRECTION_INGRESS
        };
        self.points
            .entry(interface)
            .or_insert_with(|| iface.point.clone());
        if (key.protocol == proto::UDP || key.protocol == proto::TCP) && key.src_port == 53 {
            self.dns_answer(&frame, &key, data, time_ns, &iface.point);
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
            self.next_expire = time_ns + EXPIRE_EVERY_NS;
        }
        self.table.add(&key, &delta, &mut self.ended);
    }

    fn dns_answer(
        &mut self,
        frame: &Frame,
        key: &FlowKey,
        data: &[u8],
        time_ns: u64,
        point: &ObservationPoint,
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
                _ => return,
            }
        }
        let parsed = match parse_response(payload) {
            Ok(parsed) => parsed,
            Err(Skip::Query | Skip::NoQuestion | Skip::Malformed(_)) => return,
        };
        let answer = DnsAnswer {
            time_ns: time_ns as i64,
            iface: point.iface.clone(),
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
        self.dns.record(&answer);
        self.answers.push(answer);
    }

    /// Turns ended flows into records.
    fn emit(&mut self, summary: &mut Summary, emit: &mut dyn FnMut(FlowRecord)) {
        let clock = WallClock::utc();
        for Ended { key, stats, reason } in self.ended.drain(..) {
            let point = self.points.get(&key.ifindex).cloned().unwrap_or_default();
            let mut record = FlowRecord::from_kernel(&key, &stats, reason, point, &clock);
            record.origin.source = Source::Pcap;
            if !self.window.contains(record.start_ns) {
                summary.skip("outside --since/--until", None);
                continue;
            }
            self.dns.enrich(&mut record);
            summary.records_out += 1;
            emit(record);
        }
    }
}

fn ts_resolution(code: u8) -> (u128, u128) {
    // ns per unit = 1e9 / 10^v (or / 2^v with the high bit).
    let value = u32::from(code & 0x7f);
    if code & 0x80 == 0 {
        (1_000_000_000, 10u128.pow(value.min(30)))
    } else {
        (1_000_000_000, 1u128 << value.min(100))
    }
}

/// Reads one pcap or pcapng file (told apart by its magic number).
#[expect(
    clippy::too_many_arguments,
    reason = "the import's shared state, passed once per file"
)]
pub fn read_file(
    file: &str,
    bytes: &[u8],
    options: &PcapOptions,
    window: Window,
    summary: &mut Summary,
    dns: &mut DnsTracker,
    answers: &mut Vec<DnsAnswer>,
    emit: &mut dyn FnMut(FlowRecord),
) {
    summary.files += 1;
    let stem = file.rsplit('/').next().unwrap_or(file);
    let default_point = |name: Option<&str>| ObservationPoint {
        host: Arc::from(options.host.as_deref().unwrap_or(stem)),
        netns: None,
        iface: Arc::from(options.iface.as_deref().or(name).unwrap_or("pcap")),
        iface_role: options.iface_role.as_deref().map(Arc::from),
    };
    let mut flows = Flows {
        options,
        file,
        table: FlowTable::new(options.table),
        ended: Vec::new(),
        points: HashMap::new(),
        next_expire: 0,
        dns,
        answers,
        window,
    };
    let broken = |summary: &mut Summary, index: u64, error: String| {
        summary.broken_files += 1;
        summary.problem(Problem {
            file: file.to_owned(),
            position: format!("packet {index}"),
            message: format!(
                "{error}; the packets before this point were converted (a truncated capture?)"
            ),
        });
    };
    let is_pcapng = bytes.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]);
    let mut index = 0u64;
    if is_pcapng {
        let mut reader = match PcapNgReader::new(bytes) {
            Ok(r) => r,
            Err(e) => return broken(summary, 0, format!("not a readable pcapng file: {e}")),
        };
        let mut interfaces: Vec<Interface> = Vec::new();
        while let Some(block) = reader.next_block() {
            let block = match block {
                Ok(b) => b,
                Err(e) => {
                    broken(summary, index + 1, format!("bad pcapng block: {e}"));
                    break;
                }
            };
            match block {
                Block::SectionHeader(_) => interfaces.clear(),
                Block::InterfaceDescription(idb) => {
                    let mut name = None;
                    let mut resolution = (1_000_000_000, 1_000_000);
                    for option in &idb.options {
                        match option {
                            InterfaceDescriptionOption::IfName(n) => name = Some(n.to_string()),
                            InterfaceDescriptionOption::IfTsResol(r) => {
                                resolution = ts_resolution(*r)
                            }
                            _ => {}
                        }
                    }
                    interfaces.push(Interface {
                        link: idb.linktype,
                        ts_num: resolution.0,
                        ts_den: resolution.1,
                        point: default_point(name.as_deref()),
                    });
                }
                Block::EnhancedPacket(epb) => {
                    index += 1;
                    let Some(iface) = interfaces.get(epb.interface_id as usize) else {
                        summary.skip(
                            "packet of an undeclared interface",
                            Some(Problem {
                                file: file.to_owned(),
                                position: format!("packet {index}"),
                                message: format!(
                                    "interface {} was never described",
                                    epb.interface_id
                                ),
                            }),
                        );
                        continue;
                    };
                    // pcap-file hands the raw timestamp units over as nanoseconds.
                    let units = epb.timestamp.as_nanos();
                    let time_ns = (units * iface.ts_num / iface.ts_den) as u64;
                    let direction = epb.options.iter().find_map(|o| match o {
                        EnhancedPacketOption::Flags(flags) => match flags & 0b11 {
                            1 => Some(false),
                            2 => Some(true),
                            _ => None,
                        },
                        _ => None,
                    });
                    flows.packet(
                        summary,
                        iface,
                        Captured {
                            index,
                            interface: epb.interface_id,
                            time_ns,
                            data: &epb.data,
                            wire_len: epb.original_len as usize,
                            egress: direction,
                        },
                    );
                    flows.emit(summary, emit);
                }
                Block::SimplePacket(spb) => {
                    index += 1;
                    summary.records_in += 1;
                    summary.skip(
                        "packet without a timestamp (simple packet block)",
                        Some(Problem {
                            file: file.to_owned(),
                            position: format!("packet {index}"),
                            message: format!(
                                "a simple packet block ({} bytes) has no time or interface",
                                spb.original_len
                            ),
                        }),
                    );
                }
                _ => {}
            }
        }
    } else {
        let mut reader = match PcapReader::new(bytes) {
            Ok(r) => r,
            Err(e) => {
                return broken(
                    summary,
                    0,
                    format!(
                        "not a pcap or pcapng file ({e}); write captures with tcpdump -w or dumpcap"
                    ),
                );
            }
        };
        let header = reader.header();
        let iface = Interface {
            link: header.datalink,
            ts_num: 1,
            ts_den: 1,
            point: default_point(None),
        };
        while let Some(packet) = reader.next_packet() {
            index += 1;
            let packet = match packet {
                Ok(p) => p,
                Err(e) => {
                    broken(summary, index, format!("bad packet record: {e}"));
                    break;
                }
            };
            let time_ns = packet.timestamp.as_nanos() as u64;
            flows.packet(
                summary,
                &iface,
                Captured {
                    index,
                    interface: 0,
                    time_ns,
                    data: &packet.data,
                    wire_len: packet.orig_len as usize,
                    egress: None,
                },
            );
            flows.emit(summary, emit);
        }
    }
    flows.table.finish(&mut flows.ended);
    flows.emit(summary, emit);
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};

    use super::*;
    use crate::flow::{Direction, EndReason};

    fn tcp_frame(
        src: [u8; 4],
        dst: [u8; 4],
        sport: u16,
        dport: u16,
        flags: u8,
        payload: usize,
        vlan: Option<u16>,
    ) -> Vec<u8> {
        let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
        if let Some(id) = vlan {
            f.extend_from_slice(&[0x81, 0x00]);
            f.extend_from_slice(&id.to_be_bytes());
        }
        f.extend_from_slice(&[0x08, 0x00]);
        let total = (20 + 20 + payload) as u16;
        f.extend_from_slice(&[0x45, 0, 0, 0, 0, 1, 0, 0, 64, 6, 0, 0]);
        let at = f.len() - 10;
        f[at..at + 2].copy_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&src);
        f.extend_from_slice(&dst);
        f.extend_from_slice(&sport.to_be_bytes());
        f.extend_from_slice(&dport.to_be_bytes());
        f.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        f.extend(std::iter::repeat_n(0u8, payload));
        f
    }

    fn pcap(frames: &[(u64, Vec<u8>)]) -> Vec<u8> {
        let mut writer = PcapWriter::with_header(
            Vec::new(),
            PcapHeader {
                datalink: DataLink::ETHERNET,
                ..PcapHeader::default()
            },
        )
        .unwrap();
        for (t, f) in frames {
            writer
                .write_packet(&PcapPacket {
                    timestamp: std::time::Duration::from_nanos(*t),
                    orig_len: f.len() as u32,
                    data: Cow::Borrowed(f),
                })
                .unwrap();
        }
        writer.into_writer()
    }

    #[test]
    fn packets_make_flows_with_the_kernels_semantics() {
        const S: u64 = 1_700_000_000_000_000_000;
        let a = [10, 0, 0, 4];
        let b = [10, 0, 1, 6];
        let frames = vec![
            (S, tcp_frame(a, b, 40000, 1433, tcp_flag::SYN, 0, Some(100))),
            (
                S + 1_000_000,
                tcp_frame(
                    b,
                    a,
                    1433,
                    40000,
                    tcp_flag::SYN | tcp_flag::ACK,
                    0,
                    Some(100),
                ),
            ),
            (
                S + 2_000_000,
                tcp_frame(a, b, 40000, 1433, tcp_flag::ACK, 100, Some(100)),
            ),
            (
                S + 3_000_000,
                tcp_frame(
                    a,
                    b,
                    40000,
                    1433,
                    tcp_flag::FIN | tcp_flag::ACK,
                    0,
                    Some(100),
                ),
            ),
            // 20 s later: the first flow has ended (close grace), a new one idles out.
            (
                S + 20_000_000_000,
                tcp_frame(a, b, 40001, 1433, tcp_flag::ACK, 10, None),
            ),
            (S + 20_000_000_001, vec![0u8; 10]),
        ];
        let bytes = pcap(&frames);
        let options = PcapOptions {
            local: vec!["10.0.0.4".parse().unwrap()],
            ..PcapOptions::default()
        };
        let mut summary = Summary::default();
        let mut records = Vec::new();
        let mut tracker = DnsTracker::new(100, 0);
        let mut answers = Vec::new();
        read_file(
            "t.pcap",
            &bytes,
            &options,
            Window::default(),
            &mut summary,
            &mut tracker,
            &mut answers,
            &mut |r| records.push(r),
        );
        assert_eq!((summary.records_in, summary.records_out), (6, 3));
        assert_eq!(summary.skipped_total(), 1);
        assert_eq!(summary.problems[0].position, "packet 6");
        records.sort_by_key(|r| (r.start_ns, r.src_port));
        let out = &records[0];
        assert_eq!(out.direction, Direction::Egress);
        assert_eq!((out.packets, out.bytes), (3, 40 + 140 + 40));
        assert_eq!((out.syn_count, out.fin_count), (1, 1));
        assert_eq!(out.tcp_flags, tcp_flag::SYN | tcp_flag::ACK | tcp_flag::FIN);
        assert_eq!(out.end_reason, EndReason::EndOfFlow);
        assert_eq!(out.vlan_id, Some(100));
        assert_eq!((out.start_ns, out.end_ns), (S as i64, S as i64 + 3_000_000));
        assert_eq!(out.origin.source, Source::Pcap);
        let back = &records[1];
        assert_eq!((back.direction, back.packets), (Direction::Ingress, 1));
        let last = &records[2];
        assert_eq!(
            (last.src_port, last.end_reason, last.vlan_id),
            (Some(40001), EndReason::ForcedEnd, None)
        );
    }

    #[test]
    fn a_capture_without_direction_asks_for_local() {
        let bytes = pcap(&[(1, tcp_frame([10, 0, 0, 4], [10, 0, 0, 5], 1, 2, 0, 0, None))]);
        let mut summary = Summary::default();
        read_file(
            "t.pcap",
            &bytes,
            &PcapOptions::default(),
            Window::default(),
            &mut summary,
            &mut DnsTracker::new(10, 0),
            &mut Vec::new(),
            &mut |_| {},
        );
        assert_eq!(summary.skipped["direction unknown (pass --local)"], 1);
        assert!(summary.problems[0].message.contains("--local"));
    }

    #[test]
    fn a_truncated_capture_keeps_the_packets_before_the_cut() {
        let frames: Vec<_> = (0..3u64)
            .map(|i| {
                (
                    i * 1000,
                    tcp_frame([10, 0, 0, 4], [10, 0, 0, 5], 1, 2, 0, 0, None),
                )
            })
            .collect();
        let bytes = pcap(&frames);
        let cut = &bytes[..bytes.len() - 10];
        let mut summary = Summary::default();
        let mut records = Vec::new();
        read_file(
            "t.pcap",
            cut,
            &PcapOptions {
                local: vec!["02:00:00:00:00:01".parse().unwrap()],
                ..PcapOptions::default()
            },
            Window::default(),
            &mut summary,
            &mut DnsTracker::new(10, 0),
            &mut Vec::new(),
            &mut |r| records.push(r),
        );
        assert_eq!(summary.broken_files, 1);
        assert_eq!(summary.problems[0].position, "packet 3");
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].packets, 2);
        assert_eq!(records[0].direction, Direction::Egress, "by source MAC");
    }
}
