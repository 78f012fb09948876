//! The common frame, read straight from the linear packet data: one bounds
//! check per header, whole-word loads (the program is built with
//! `allows-misaligned-mem-access`; the kernel allows unaligned packet loads
//! on every architecture with efficient unaligned access), no helper call,
//! no loop. Anything else goes to the slow path, which decides from scratch
//! (so a frame this path declines is parsed exactly as before).

use aya_ebpf::programs::TcContext;
use observer_common::proto;

use super::{
    ETH_HEADER_LEN, ETH_P_IP, ETH_P_IPV6, Headers, LinkKind, Packet, ipv4_mapped_word,
    key_from_words, kind_word, ports_word, wire,
};

/// Parses a common frame seen in `direction`, or returns `None` for any
/// frame the slow path must see.
#[inline(always)]
pub fn parse_fast(ctx: &TcContext, link: LinkKind, direction: u8) -> Option<Packet> {
    // SAFETY: the context pointer is valid for the program's run.
    let skb = unsafe { &*ctx.skb.skb };
    let (start, end) = (ctx.data(), ctx.data_end());
    let (l3, ethertype, vlan_id) = match link {
        LinkKind::Ethernet => {
            if start + ETH_HEADER_LEN as usize > end {
                return None;
            }
            // SAFETY: inside the linear data, as just checked.
            let ethertype = u16::from_be(unsafe { load::<u16>(start + 12) });
            // A tag in skb metadata is the outer one; a tag left in the frame
            // (or a second one) is the slow path's.
            let vlan_id = if skb.vlan_present != 0 {
                (skb.vlan_tci & 0x0fff) as u16
            } else {
                0
            };
            (ETH_HEADER_LEN, ethertype, vlan_id)
        }
        // The slow path also reads the version nibble when the device left
        // `protocol` unset.
        LinkKind::RawIp => (0, u16::from_be(skb.protocol as u16), 0),
    };
    let frame_len = skb.len;
    let at = start + l3 as usize;
    match ethertype {
        ETH_P_IP => {
            if at + 20 > end {
                return None;
            }
            // SAFETY: the 20-byte header lies inside the linear data.
            let (version_ihl, total_len, frag_off, protocol, src, dst) = unsafe {
                (
                    load::<u8>(at),
                    u16::from_be(load::<u16>(at + 2)),
                    u16::from_be(load::<u16>(at + 6)),
                    load::<u8>(at + 9),
                    load::<u32>(at + 12),
                    load::<u32>(at + 16),
                )
            };
            // Options, bad headers and fragments are the slow path's.
            if version_ihl != 0x45 || frag_off & 0x1fff != 0 {
                return None;
            }
            let available = frame_len - l3;
            let gso_size = skb.gso_size;
            let ip_bytes = if gso_size > 0 {
                available
            } else {
                let total_len = u32::from(total_len);
                if total_len < 20 || total_len > available {
                    return None;
                }
                total_len
            };
            let (ports, tcp_flags, l4_header_len) = transport(protocol, at + 20, end)?;
            let key = key_from_words([
                0,
                ipv4_mapped_word(src),
                0,
                ipv4_mapped_word(dst),
                ports_word(skb.ifindex, ports.0, ports.1),
                kind_word(vlan_id, direction, 4, protocol),
            ]);
            let headers = Headers {
                l3_offset: l3,
                l4_offset: l3 + 20,
                ip_bytes,
                l4_header_len,
            };
            Some(Packet::new(
                key,
                wire(ctx, &headers, gso_size),
                tcp_flags,
                false,
            ))
        }
        ETH_P_IPV6 => {
            if at + 40 > end {
                return None;
            }
            // SAFETY: the 40-byte header lies inside the linear data.
            let (version, payload_len, next, addrs) = unsafe {
                (
                    load::<u8>(at) >> 4,
                    u32::from(u16::from_be(load::<u16>(at + 4))),
                    load::<u8>(at + 6),
                    [
                        load::<u64>(at + 8),
                        load::<u64>(at + 16),
                        load::<u64>(at + 24),
                        load::<u64>(at + 32),
                    ],
                )
            };
            // Extension headers and other protocols are the slow path's.
            if version != 6 || !matches!(next, proto::TCP | proto::UDP | proto::ICMPV6) {
                return None;
            }
            let available = frame_len - l3;
            let gso_size = skb.gso_size;
            // Payload length 0 is a jumbogram / BIG TCP packet: the skb tells its size.
            let ip_bytes = if gso_size > 0 || payload_len == 0 {
                available
            } else if 40 + payload_len > available {
                return None;
            } else {
                40 + payload_len
            };
            let (ports, tcp_flags, l4_header_len) = transport(next, at + 40, end)?;
            let key = key_from_words([
                addrs[0],
                addrs[1],
                addrs[2],
                addrs[3],
                ports_word(skb.ifindex, ports.0, ports.1),
                kind_word(vlan_id, direction, 6, next),
            ]);
            let headers = Headers {
                l3_offset: l3,
                l4_offset: l3 + 40,
                ip_bytes,
                l4_header_len,
            };
            Some(Packet::new(
                key,
                wire(ctx, &headers, gso_size),
                tcp_flags,
                false,
            ))
        }
        _ => None,
    }
}

/// Ports (ICMP: type and code), TCP flags and header length of the layer-4
/// header at `at`; `None` when it is not all in the linear data or the slow
/// path must judge it (a TCP data offset below 5).
#[inline(always)]
fn transport(protocol: u8, at: usize, end: usize) -> Option<((u16, u16), u8, u32)> {
    match protocol {
        proto::TCP => {
            if at + 14 > end {
                return None;
            }
            // SAFETY: the first 14 bytes of the TCP header are in the linear data.
            let (ports, offset_flags) = unsafe { (load::<u32>(at), load::<u16>(at + 12)) };
            let header_len = u32::from(offset_flags as u8 >> 4) * 4;
            if header_len < 20 {
                return None;
            }
            Some((split_ports(ports), (offset_flags >> 8) as u8, header_len))
        }
        proto::UDP => {
            if at + 8 > end {
                return None;
            }
            // SAFETY: the 8-byte UDP header is in the linear data.
            let ports = unsafe { load::<u32>(at) };
            Some((split_ports(ports), 0, 8))
        }
        proto::ICMP | proto::ICMPV6 => {
            if at + 4 > end {
                return None;
            }
            // SAFETY: type and code are in the linear data.
            let type_code = unsafe { load::<u16>(at) };
            Some((((type_code & 0xff), type_code >> 8), 0, 8))
        }
        _ => Some(((0, 0), 0, 0)),
    }
}

/// Source and destination port (host order) from the first four bytes of a
/// TCP or UDP header, loaded as one little-endian word.
#[inline(always)]
fn split_ports(word: u32) -> (u16, u16) {
    (u16::from_be(word as u16), u16::from_be((word >> 16) as u16))
}

/// Loads a `T` from packet address `at`.
///
/// # Safety
/// `at..at + size_of::<T>()` must lie inside the linear packet data, and `T`
/// must be a plain integer.
#[inline(always)]
unsafe fn load<T: Copy>(at: usize) -> T {
    // SAFETY: per the contract; unaligned reads are allowed on packet data.
    unsafe { core::ptr::read_unaligned(at as *const T) }
}
