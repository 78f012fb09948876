//! One frame as the kernel program parses it (`observer-ebpf/src/parse.rs`):
//! up to two VLAN tags (the outermost names the flow), IPv4 (options,
//! fragments) or IPv6 (extension headers, fragments), then TCP, UDP or
//! ICMP ports, type and code. Bytes are IPFIX's: the IP header's total
//! length (IPv6: 40 + payload length), so a packet cut by the capture's
//! snap length counts what went on the wire, as the kernel counts it. A
//! TSO or BIG TCP packet captured before segmentation (IPv4 total length
//! 0, IPv6 payload length 0) is as long as its frame and counts as one
//! packet: the capture cannot tell how many wire segments it became.
//!
//! What a capture adds to the kernel's rules is the cut: a frame captured
//! shorter than it was sent. Cut before the addresses it is skipped (the
//! flow is unknown); cut inside the transport header it still counts when
//! the ports (ICMP: type and code) were captured, with the TCP flags when
//! they were; otherwise skipped. A frame whose headers claim more than its
//! length on the wire is malformed, as in the kernel.

use observer_common::{FlowKey, proto};

use super::link::{IPV4, IPV6, LinkHeader};

/// Why a frame is not a flow packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Why {
    /// Not IP (ARP, LLDP, ...): not a flow, not a problem.
    NotIp,
    /// Captured shorter than the headers the flow needs (snap length).
    Cut,
    /// Headers that contradict themselves or the frame's length.
    Malformed,
}

/// A frame that is not a flow packet: the reason, counted in the import's
/// summary, and its kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct NotAFlow {
    pub reason: &'static str,
    pub why: Why,
}

impl NotAFlow {
    pub(super) fn new(reason: &'static str, why: Why) -> Self {
        Self { reason, why }
    }
}

/// What one frame contributes: its key (without interface and direction)
/// and counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Frame {
    pub key: FlowKey,
    /// IP-layer bytes on the wire.
    pub bytes: u64,
    pub tcp_flags: u8,
    pub link: LinkHeader,
    /// Offset and length of the captured transport payload (for DNS).
    pub payload: (usize, usize),
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Most IPv6 extension headers the kernel program follows.
const MAX_IPV6_EXT_HEADERS: usize = 8;

/// Parses one frame whose link header is `link`: `data` holds the captured
/// bytes, `wire_len` the frame's length on the wire.
pub(super) fn parse(link: LinkHeader, data: &[u8], wire_len: usize) -> Result<Frame, NotAFlow> {
    let was_cut = data.len() < wire_len;
    // A header missing from the captured bytes: cut by the snap length, or
    // (when the whole frame was captured) malformed, as the kernel says.
    let short = |reason_cut: &'static str, reason_kernel: &'static str| {
        if was_cut {
            NotAFlow::new(reason_cut, Why::Cut)
        } else {
            NotAFlow::new(reason_kernel, Why::Malformed)
        }
    };
    let malformed = |reason| NotAFlow::new(reason, Why::Malformed);
    let mut frame = Frame {
        link,
        ..Frame::default()
    };
    let mut ethertype = link.ethertype;
    let mut offset = link.offset;
    // Up to two VLAN tags; the outermost names the flow.
    let mut tags = 0;
    while ethertype == 0x8100 || ethertype == 0x88a8 {
        if tags == 2 {
            return Err(malformed("more than two VLAN tags"));
        }
        let (Some(tci), Some(inner)) = (be16(data, offset), be16(data, offset + 2)) else {
            return Err(short(
                "cut by the snap length inside a VLAN tag",
                "VLAN tag cut short",
            ));
        };
        if tags == 0 {
            frame.key.vlan_id = tci & 0x0fff;
        }
        ethertype = inner;
        offset += 4;
        tags += 1;
    }
    let available = wire_len.saturating_sub(offset);
    let ip = data.get(offset..).unwrap_or_default();
    let (l4_offset, ip_bytes, non_first_fragment) = match ethertype {
        IPV4 => {
            if ip.len() < 20 {
                return Err(short(
                    "cut by the snap length before the IP addresses",
                    "IPv4 header cut short",
                ));
            }
            let header_len = usize::from(ip[0] & 0x0f) * 4;
            if ip[0] >> 4 != 4 || header_len < 20 {
                return Err(malformed("bad IPv4 header"));
            }
            // Total length 0: a TSO / BIG TCP packet captured on its host
            // before segmentation, as long as its frame (the kernel reads
            // GSO packets the same way).
            let total = match usize::from(be16(ip, 2).expect("20 bytes")) {
                0 => available,
                total => total,
            };
            if header_len > available || total > available {
                return Err(malformed("IPv4 packet longer than its frame"));
            }
            if total < header_len {
                return Err(malformed("bad IPv4 header"));
            }
            frame.key.ip_version = 4;
            frame.key.protocol = ip[9];
            frame.key.src_addr[10..12].copy_from_slice(&[0xff, 0xff]);
            frame.key.src_addr[12..].copy_from_slice(&ip[12..16]);
            frame.key.dst_addr[10..12].copy_from_slice(&[0xff, 0xff]);
            frame.key.dst_addr[12..].copy_from_slice(&ip[16..20]);
            let fragment_offset = be16(ip, 6).expect("20 bytes") & 0x1fff;
            (header_len, total, fragment_offset != 0)
        }
        IPV6 => {
            if ip.len() < 40 {
                return Err(short(
                    "cut by the snap length before the IP addresses",
                    "IPv6 header cut short",
                ));
            }
            if ip[0] >> 4 != 6 {
                return Err(malformed("bad IPv6 header"));
            }
            let payload = usize::from(be16(ip, 4).expect("40 bytes"));
            // Payload length 0: a jumbogram, as long as its frame.
            let total = if payload == 0 {
                available
            } else {
                40 + payload
            };
            if total > available {
                return Err(malformed("IPv6 packet longer than its frame"));
            }
            frame.key.ip_version = 6;
            frame.key.src_addr.copy_from_slice(&ip[8..24]);
            frame.key.dst_addr.copy_from_slice(&ip[24..40]);
            let chain_cut = || {
                short(
                    "cut by the snap length inside the IPv6 extension headers",
                    "IPv6 extension headers cut short",
                )
            };
            let mut next = ip[6];
            let mut cursor = 40;
            let mut non_first = false;
            let mut done = false;
            for _ in 0..MAX_IPV6_EXT_HEADERS {
                match next {
                    // Hop-by-hop, routing, destination options, mobility, HIP, shim6.
                    0 | 43 | 60 | 135 | 139 | 140 => {
                        let len = *ip.get(cursor + 1).ok_or_else(chain_cut)?;
                        next = ip[cursor];
                        cursor += (usize::from(len) + 1) * 8;
                    }
                    // Authentication header: length in 4-byte units, minus 2.
                    51 => {
                        let len = *ip.get(cursor + 1).ok_or_else(chain_cut)?;
                        next = ip[cursor];
                        cursor += (usize::from(len) + 2) * 4;
                    }
                    44 => {
                        let offset = be16(ip, cursor + 2).ok_or_else(chain_cut)?;
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
                return Err(malformed("IPv6 extension header chain too long"));
            }
            frame.key.protocol = next;
            (cursor, total, non_first)
        }
        _ => {
            return Err(NotAFlow::new(
                "not IPv4 or IPv6 (ARP, LLDP, ...)",
                Why::NotIp,
            ));
        }
    };
    frame.bytes = ip_bytes as u64;
    if non_first_fragment {
        return Ok(frame);
    }
    let l4 = ip.get(l4_offset..).unwrap_or_default();
    let cut_ports = || {
        short(
            "cut by the snap length before the ports",
            "transport header cut short",
        )
    };
    let header_len = match frame.key.protocol {
        proto::TCP => {
            let (Some(src), Some(dst)) = (be16(l4, 0), be16(l4, 2)) else {
                return Err(cut_ports());
            };
            frame.key.src_port = src;
            frame.key.dst_port = dst;
            match (l4.get(12), l4.get(13)) {
                (Some(&offset), Some(&flags)) => {
                    if offset >> 4 < 5 {
                        return Err(malformed("TCP data offset below 5"));
                    }
                    frame.tcp_flags = flags;
                    usize::from(offset >> 4) * 4
                }
                // Ports captured, flags not: counted without flags.
                _ if was_cut => 0,
                _ => return Err(malformed("transport header cut short")),
            }
        }
        proto::UDP => {
            let (Some(src), Some(dst)) = (be16(l4, 0), be16(l4, 2)) else {
                return Err(cut_ports());
            };
            frame.key.src_port = src;
            frame.key.dst_port = dst;
            if l4.len() < 8 && !was_cut {
                return Err(malformed("transport header cut short"));
            }
            8
        }
        proto::ICMP | proto::ICMPV6 => {
            let (Some(&kind), Some(&code)) = (l4.first(), l4.get(1)) else {
                return Err(cut_ports());
            };
            if l4.len() < 4 && !was_cut {
                return Err(malformed("transport header cut short"));
            }
            frame.key.src_port = u16::from(kind);
            frame.key.dst_port = u16::from(code);
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

#[cfg(test)]
mod tests {
    use observer_common::tcp_flag;

    use super::*;

    fn ipv4_tcp(total_payload: usize, flags: u8) -> Vec<u8> {
        let total = (40 + total_payload) as u16;
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 1, 0, 0, 64, 6, 0, 0, 10, 0, 0, 4, 10, 0, 1, 6,
        ];
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        ip.extend_from_slice(&[0x9c, 0x40, 0x05, 0x99, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags]);
        ip.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
        ip.extend(std::iter::repeat_n(0u8, total_payload));
        ip
    }

    fn raw() -> LinkHeader {
        LinkHeader {
            ethertype: IPV4,
            ..LinkHeader::default()
        }
    }

    #[test]
    fn a_cut_frame_counts_its_wire_bytes_when_the_ports_were_captured() {
        let whole = ipv4_tcp(1000, tcp_flag::ACK);
        let full = parse(raw(), &whole, whole.len()).unwrap();
        assert_eq!(
            (full.bytes, full.key.src_port, full.key.dst_port),
            (1040, 40000, 1433)
        );
        assert_eq!(full.payload, (40, 1000));
        // -s 96 on Ethernet leaves 82 bytes of IP: headers and a little data.
        let cut = parse(raw(), &whole[..82], whole.len()).unwrap();
        assert_eq!(
            (cut.key, cut.bytes, cut.tcp_flags),
            (full.key, 1040, tcp_flag::ACK)
        );
        assert_eq!(cut.payload, (40, 42));
        // Ports but not flags: still the flow's packet.
        let ports = parse(raw(), &whole[..24], whole.len()).unwrap();
        assert_eq!((ports.key, ports.tcp_flags), (full.key, 0));
        // Not even the ports, or not the addresses: skipped, as cut.
        let why = |len: usize| parse(raw(), &whole[..len], whole.len()).unwrap_err();
        assert_eq!(why(22).reason, "cut by the snap length before the ports");
        assert_eq!(
            why(19).reason,
            "cut by the snap length before the IP addresses"
        );
        assert_eq!(why(19).why, Why::Cut);
        // The same bytes as the whole frame: malformed, as the kernel says.
        let short = &whole[..30];
        let err = parse(raw(), short, short.len()).unwrap_err();
        assert_eq!(
            (err.reason, err.why),
            ("IPv4 packet longer than its frame", Why::Malformed)
        );
    }

    #[test]
    fn a_segmentation_offload_packet_is_as_long_as_its_frame() {
        // BIG TCP: more than 64 KiB, total length 0, captured with -s 200.
        let mut big = ipv4_tcp(70_000, tcp_flag::ACK);
        big[2..4].copy_from_slice(&[0, 0]);
        let f = parse(raw(), &big[..200], big.len()).unwrap();
        assert_eq!((f.bytes, f.key.dst_port), (70_040, 1433));
    }

    #[test]
    fn vlan_tags_and_fragments_follow_the_kernel() {
        let ip = ipv4_tcp(0, tcp_flag::SYN);
        // Link header of 2 bytes announcing 802.1Q, then tag 100 (802.1ad
        // follows), then tag 200 (IPv4 follows).
        let mut frame = vec![0xee, 0xee, 0x00, 0x64, 0x88, 0xa8, 0x00, 0xc8, 0x08, 0x00];
        frame.extend_from_slice(&ip);
        let link = LinkHeader {
            ethertype: 0x8100,
            offset: 2,
            ..LinkHeader::default()
        };
        let parsed = parse(link, &frame, frame.len()).unwrap();
        assert_eq!(
            (parsed.key.vlan_id, parsed.bytes),
            (100, 40),
            "the outer tag"
        );
        let mut fragment = ip.clone();
        fragment[6..8].copy_from_slice(&0x0010u16.to_be_bytes());
        let f = parse(raw(), &fragment[..20], fragment.len()).unwrap();
        assert_eq!((f.key.src_port, f.bytes), (0, 40));
        let mut three = vec![0, 1, 0x81, 0, 0, 2, 0x81, 0, 0, 3, 0x08, 0];
        three.extend_from_slice(&ip);
        let link = LinkHeader {
            ethertype: 0x8100,
            ..LinkHeader::default()
        };
        assert_eq!(
            parse(link, &three, three.len()).unwrap_err().reason,
            "more than two VLAN tags"
        );
    }

    #[test]
    fn ipv6_extension_headers_are_walked_in_the_captured_bytes() {
        let mut ip = vec![0x60, 0, 0, 0, 0, 16, 0, 64];
        ip.extend_from_slice(&[0xfd; 16]);
        ip.extend_from_slice(&[0xfe; 16]);
        // Hop-by-hop (8 bytes) then UDP.
        ip.extend_from_slice(&[17, 0, 0, 0, 0, 0, 0, 0]);
        ip.extend_from_slice(&[0, 53, 0x9c, 0x40, 0, 8, 0, 0]);
        let link = LinkHeader {
            ethertype: IPV6,
            ..LinkHeader::default()
        };
        let f = parse(link, &ip, ip.len()).unwrap();
        assert_eq!((f.key.protocol, f.key.src_port, f.bytes), (17, 53, 56));
        let err = parse(link, &ip[..41], ip.len()).unwrap_err();
        assert_eq!(
            err.reason,
            "cut by the snap length inside the IPv6 extension headers"
        );
    }
}
