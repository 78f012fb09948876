//! Packet parsing, in two paths that give the same [`Packet`] for every
//! frame the first one takes:
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | [`Packet`], [`LinkKind`], and what both paths share: wire segments and bytes of GSO packets, the payload span |
//! | `fast.rs` | the common frame, inlined into the program: Ethernet (VLAN tag in skb metadata or none) or raw IP, IPv4 without options or IPv6 without extension headers, TCP/UDP/ICMP/ICMPv6, headers in the linear data; read straight from the packet, no helper call, no loop |
//! | `slow.rs` | every other frame, as a global function (verified once, whatever the caller's state): up to two in-band VLAN tags, IPv4 options and fragments, IPv6 extension headers, non-linear headers, and why a frame is not a flow packet |

mod fast;
mod slow;

use aya_ebpf::programs::TcContext;
pub use fast::parse_fast;
use observer_common::FlowKey;
pub use slow::{PARSED, observer_parse};

const ETH_HEADER_LEN: u32 = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;

/// How the device frames packets.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum LinkKind {
    /// An Ethernet header precedes the IP header (Ethernet, veth, bridges, loopback).
    Ethernet = 0,
    /// The packet starts at the IP header (WireGuard, tun, ipip, ...).
    RawIp = 1,
}

/// A packet the program accounts as part of a flow. Plain data with a
/// fixed layout: the slow path (a global function) fills it in through a
/// pointer, and the verifier checks that access by its BTF size.
#[repr(C)]
pub struct Packet {
    pub key: FlowKey,
    /// IP-layer bytes of all segments as they appear on the wire.
    pub bytes: u64,
    /// Wire segments (a GSO packet counts each of its segments).
    pub segments: u32,
    /// Offset of the layer-4 payload in the frame, and its length in this skb
    /// (0 when there is none or it is unknown).
    pub payload_offset: u32,
    pub payload_len: u32,
    pub tcp_flags: u8,
    /// 1 for a non-first IP fragment (no layer-4 header), else 0.
    pub non_first_fragment: u8,
    pub _pad: [u8; 2],
}
const _: () = assert!(size_of::<Packet>() == 72 && align_of::<Packet>() == 8);

/// What the layer-3 and layer-4 headers say, for [`wire`].
pub struct Headers {
    /// Offset of the IP header in the frame.
    pub l3_offset: u32,
    /// Offset of the layer-4 header.
    pub l4_offset: u32,
    /// IP-layer bytes of this skb (the whole GSO packet for GSO skbs).
    pub ip_bytes: u32,
    /// Transport header length (0 for protocols the program does not parse).
    pub l4_header_len: u32,
}

/// A packet's wire segments and bytes and its payload span, as in [`Packet`].
pub struct Wire {
    pub segments: u32,
    pub bytes: u64,
    pub payload_offset: u32,
    pub payload_len: u32,
}

/// The packet's wire segments and bytes and its payload span. Each wire
/// segment of a GSO packet repeats the IP and transport headers. `gso_size`
/// is the skb's (0 for a packet that is not GSO); the segment count is read
/// only for GSO packets, as it sits in a cache line of its own.
#[inline(always)]
pub fn wire(ctx: &TcContext, headers: &Headers, gso_size: u32) -> Wire {
    let header_len = headers.l4_offset - headers.l3_offset + headers.l4_header_len;
    let (segments, bytes) = if gso_size > 0 {
        // SAFETY: the context pointer is valid for the program's run.
        let gso_segs = unsafe { (*ctx.skb.skb).gso_segs };
        let segments = if gso_segs > 0 {
            gso_segs
        } else {
            // No panic path: the verifier rejects the loop a panic would leave.
            (headers.ip_bytes.saturating_sub(header_len) + gso_size - 1)
                .checked_div(gso_size)
                .unwrap_or(1)
                .max(1)
        };
        (
            segments,
            u64::from(headers.ip_bytes) + u64::from(segments - 1) * u64::from(header_len),
        )
    } else {
        (1, u64::from(headers.ip_bytes))
    };
    let payload_offset = headers.l4_offset + headers.l4_header_len;
    let payload_len = if headers.l4_header_len == 0 {
        0
    } else {
        (headers.l3_offset + headers.ip_bytes).saturating_sub(payload_offset)
    };
    Wire {
        segments,
        bytes,
        payload_offset,
        payload_len,
    }
}

impl Packet {
    /// The packet from its key, wire figures and TCP flags; every byte set,
    /// as the verifier wants before the packet goes to a global function.
    #[inline(always)]
    pub fn new(key: FlowKey, wire: Wire, tcp_flags: u8, non_first_fragment: bool) -> Self {
        Self {
            key,
            bytes: wire.bytes,
            segments: wire.segments,
            payload_offset: wire.payload_offset,
            payload_len: wire.payload_len,
            tcp_flags,
            non_first_fragment: u8::from(non_first_fragment),
            _pad: [0; 2],
        }
    }
}

/// The key's words for an IPv4 address (IPv4-mapped: `::ffff:a.b.c.d`);
/// `addr` holds the four address bytes in packet order.
#[inline(always)]
pub fn ipv4_mapped_word(addr: u32) -> u64 {
    0xffff_0000 | (u64::from(addr) << 32)
}

/// The key's fifth word: interface and ports (host order).
#[inline(always)]
pub fn ports_word(ifindex: u32, src_port: u16, dst_port: u16) -> u64 {
    u64::from(ifindex) | (u64::from(src_port) << 32) | (u64::from(dst_port) << 48)
}

/// The key's sixth word: VLAN, direction, IP version, protocol, zero padding.
#[inline(always)]
pub fn kind_word(vlan_id: u16, direction: u8, ip_version: u8, protocol: u8) -> u64 {
    u64::from(vlan_id)
        | (u64::from(direction) << 16)
        | (u64::from(ip_version) << 24)
        | (u64::from(protocol) << 32)
}

/// A key from its six words (little endian, as the BPF target).
#[inline(always)]
pub fn key_from_words(words: [u64; 6]) -> FlowKey {
    const { assert!(size_of::<FlowKey>() == size_of::<[u64; 6]>()) };
    // SAFETY: `FlowKey` is 48 bytes of plain integers and byte arrays, valid
    // for any bit pattern.
    unsafe { core::mem::transmute::<[u64; 6], FlowKey>(words) }
}
