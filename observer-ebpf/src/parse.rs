//! Packet parsing: Ethernet (up to two VLAN tags, hardware-accelerated or
//! in-band), IPv4 (options, fragments), IPv6 (extension headers), TCP, UDP,
//! ICMP, ICMPv6. Every packet access goes through [`read`], bounds checked by
//! `bpf_skb_load_bytes` (which works on non-linear skbs), or [`read_fast`],
//! which reads the headers every packet has straight from the linear data
//! when it holds them and falls back to [`read`] otherwise.

use aya_ebpf::{bindings::__sk_buff, helpers::bpf_skb_load_bytes, programs::TcContext};
use observer_common::{FlowKey, counter, proto};

const ETH_HEADER_LEN: u32 = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
/// IPv6 extension headers followed before giving up (counted as `ipv6_ext_chain`).
const MAX_IPV6_EXT_HEADERS: u32 = 8;

/// How the device frames packets.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    /// An Ethernet header precedes the IP header (Ethernet, veth, bridges, loopback).
    Ethernet,
    /// The packet starts at the IP header (WireGuard, tun, ipip, ...).
    RawIp,
}

/// A packet the program accounts as part of a flow.
pub struct Packet {
    pub key: FlowKey,
    /// Wire segments (a GSO packet counts each of its segments).
    pub segments: u32,
    /// IP-layer bytes of all segments as they appear on the wire.
    pub bytes: u64,
    pub tcp_flags: u8,
    pub non_first_fragment: bool,
    /// Offset of the layer-4 payload in the frame, and its length in this skb
    /// (0 when there is none or it is unknown).
    pub payload_offset: u32,
    pub payload_len: u32,
}

impl Packet {
    /// Zeroes `slot` word by word and returns it as a packet for [`parse`]
    /// to fill in. `Default` (or any by-value zeroed packet) compiles to
    /// calls of a byte-at-a-time memset subprogram on every packet.
    #[inline(always)]
    pub fn zeroed_in(slot: &mut core::mem::MaybeUninit<Packet>) -> &mut Packet {
        const WORDS: usize = size_of::<Packet>() / 8;
        const { assert!(size_of::<Packet>() % 8 == 0 && align_of::<Packet>() == 8) };
        let words = slot.as_mut_ptr().cast::<u64>();
        for i in 0..WORDS {
            // SAFETY: word `i` lies inside the 8-byte aligned slot; volatile
            // keeps LLVM from turning the stores back into a memset call.
            unsafe { words.add(i).write_volatile(0) };
        }
        // SAFETY: every byte is written; all-zero is a valid `Packet`.
        unsafe { slot.assume_init_mut() }
    }
}

/// A frame that does not become a flow packet, and why.
pub struct Unaccounted {
    pub reason: u32,
    pub segments: u64,
    pub frame_bytes: u64,
}

/// The one packet accessor: copies `size_of::<T>()` bytes at `offset` into
/// `dst`, or fails when the frame is shorter. `bpf_skb_load_bytes` checks
/// the bounds and works on non-linear skbs.
#[inline(always)]
fn load_into<T>(ctx: &TcContext, offset: u32, dst: &mut T) -> Result<(), ()> {
    // SAFETY: `dst` is valid for `size_of::<T>()` bytes; the helper checks
    // the packet bounds and only ever writes whole plain-data values here.
    let ret = unsafe {
        bpf_skb_load_bytes(
            ctx.skb.skb.cast(),
            offset,
            (dst as *mut T).cast(),
            size_of::<T>() as u32,
        )
    };
    if ret == 0 { Ok(()) } else { Err(()) }
}

/// Offsets up to this are read straight from the linear packet data.
const DIRECT_MAX_OFFSET: usize = 128;

/// [`read`] for the headers every packet has (Ethernet type, IP header,
/// transport ports): straight from the linear skb data when it holds them,
/// which saves a helper call each on the hot path, else through [`read`].
/// Not used inside loops, where the two paths would multiply the
/// verifier's states.
#[inline(always)]
fn read_fast<T>(ctx: &TcContext, offset: u32) -> Result<T, ()> {
    let (start, end) = (ctx.data(), ctx.data_end());
    let at = offset as usize;
    if at <= DIRECT_MAX_OFFSET && start + at + size_of::<T>() <= end {
        // SAFETY: the bytes lie inside the linear packet data, as just
        // checked against `data_end`; `T` is plain data.
        return Ok(unsafe { core::ptr::read_unaligned((start + at) as *const T) });
    }
    read(ctx, offset)
}

/// [`load_into`] a fresh value.
#[inline(always)]
fn read<T>(ctx: &TcContext, offset: u32) -> Result<T, ()> {
    // Not `T::default()`: zeroing first costs a byte-wise memset call per read.
    let mut value = core::mem::MaybeUninit::<T>::uninit();
    load_into(ctx, offset, &mut value)?;
    // SAFETY: the helper wrote all `size_of::<T>()` bytes (on failure it
    // zeroes them, and we returned above); `T` is plain data.
    Ok(unsafe { value.assume_init() })
}

#[inline(always)]
fn be16(bytes: [u8; 2]) -> u16 {
    u16::from_be_bytes(bytes)
}

/// Parses the frame into `packet` (whose key already holds the interface and
/// direction), or says why it is not a flow packet.
#[inline(always)]
pub fn parse(ctx: &TcContext, link: LinkKind, packet: &mut Packet) -> Result<(), Unaccounted> {
    // SAFETY: the context pointer is valid for the program's run.
    let skb: &__sk_buff = unsafe { &*ctx.skb.skb };
    let frame_len = skb.len;
    let gso_size = skb.gso_size;
    let gso_segs = skb.gso_segs;
    let unaccounted = |reason: u32| Unaccounted {
        reason,
        segments: u64::from(gso_segs.max(1)),
        frame_bytes: u64::from(frame_len),
    };

    let key = &mut packet.key;
    let (l3_offset, ethertype) = match link {
        LinkKind::Ethernet => ethernet(ctx, skb, key).map_err(unaccounted)?,
        LinkKind::RawIp => (0, raw_ip_ethertype(ctx, skb)),
    };
    let is_gso = gso_size > 0;
    let l3 = match ethertype {
        ETH_P_IP => ipv4(ctx, l3_offset, frame_len, is_gso, key),
        ETH_P_IPV6 => ipv6(ctx, l3_offset, frame_len, is_gso, key),
        _ => Err(counter::NON_IP),
    }
    .map_err(unaccounted)?;
    let l4 = if l3.non_first_fragment {
        L4::default()
    } else {
        transport(ctx, l3.l4_offset, key).map_err(unaccounted)?
    };

    // Each wire segment of a GSO packet repeats the IP and transport headers.
    let header_len = l3.l4_offset - l3_offset + l4.header_len;
    if is_gso {
        let segments = if gso_segs > 0 {
            gso_segs
        } else {
            // No panic path: the verifier rejects the loop a panic would leave.
            (l3.ip_bytes.saturating_sub(header_len) + gso_size - 1)
                .checked_div(gso_size)
                .unwrap_or(1)
                .max(1)
        };
        packet.segments = segments;
        packet.bytes = u64::from(l3.ip_bytes) + u64::from(segments - 1) * u64::from(header_len);
    } else {
        packet.segments = 1;
        packet.bytes = u64::from(l3.ip_bytes);
    }
    packet.tcp_flags = l4.tcp_flags;
    packet.non_first_fragment = l3.non_first_fragment;
    packet.payload_offset = l3.l4_offset + l4.header_len;
    packet.payload_len = if l4.header_len == 0 {
        0
    } else {
        (l3_offset + l3.ip_bytes).saturating_sub(packet.payload_offset)
    };
    Ok(())
}

/// Skips the Ethernet header and up to two VLAN tags (the outer one may sit
/// in skb metadata when VLAN offload took it out of the frame).
#[inline(always)]
fn ethernet(ctx: &TcContext, skb: &__sk_buff, key: &mut FlowKey) -> Result<(u32, u16), u32> {
    let mut ethertype = be16(read_fast(ctx, 12).map_err(|()| counter::ETH_TRUNCATED)?);
    let mut offset = ETH_HEADER_LEN;
    let mut tags = 0u32;
    if skb.vlan_present != 0 {
        key.vlan_id = (skb.vlan_tci & 0x0fff) as u16;
        tags = 1;
    }
    for _ in 0..2 {
        if ethertype != ETH_P_8021Q && ethertype != ETH_P_8021AD {
            break;
        }
        if tags == 2 {
            return Err(counter::VLAN_TOO_DEEP);
        }
        let tag: [u8; 4] = read(ctx, offset).map_err(|()| counter::ETH_TRUNCATED)?;
        if tags == 0 {
            key.vlan_id = be16([tag[0], tag[1]]) & 0x0fff;
        }
        ethertype = be16([tag[2], tag[3]]);
        offset += 4;
        tags += 1;
    }
    if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
        return Err(counter::VLAN_TOO_DEEP);
    }
    Ok((offset, ethertype))
}

/// The layer-3 protocol of a device without a link header: `skb->protocol`,
/// or the IP version nibble when the device left that unset.
#[inline(always)]
fn raw_ip_ethertype(ctx: &TcContext, skb: &__sk_buff) -> u16 {
    let protocol = u16::from_be(skb.protocol as u16);
    if protocol == ETH_P_IP || protocol == ETH_P_IPV6 {
        return protocol;
    }
    match read::<u8>(ctx, 0).map(|first| first >> 4) {
        Ok(4) => ETH_P_IP,
        Ok(6) => ETH_P_IPV6,
        _ => protocol,
    }
}

struct L3 {
    l4_offset: u32,
    /// IP-layer bytes of this skb (the whole GSO packet for GSO skbs).
    ip_bytes: u32,
    non_first_fragment: bool,
}

#[repr(C)]
#[derive(Default)]
struct Ipv4Header {
    version_ihl: u8,
    tos: u8,
    total_len: [u8; 2],
    id: [u8; 2],
    frag_off: [u8; 2],
    ttl: u8,
    protocol: u8,
    check: [u8; 2],
    src: [u8; 4],
    dst: [u8; 4],
}

#[inline(always)]
fn ipv4(
    ctx: &TcContext,
    offset: u32,
    frame_len: u32,
    is_gso: bool,
    key: &mut FlowKey,
) -> Result<L3, u32> {
    let header: Ipv4Header = read_fast(ctx, offset).map_err(|()| counter::IPV4_TRUNCATED)?;
    let header_len = u32::from(header.version_ihl & 0x0f) * 4;
    if header.version_ihl >> 4 != 4 || header_len < 20 {
        return Err(counter::IPV4_BAD_HEADER);
    }
    let available = frame_len - offset;
    if header_len > available {
        return Err(counter::IPV4_TRUNCATED);
    }
    let total_len = u32::from(be16(header.total_len));
    // A GSO packet's total length is that of the whole packet (or 0 past 64 KiB).
    let ip_bytes = if is_gso {
        available
    } else if total_len < header_len {
        return Err(counter::IPV4_BAD_HEADER);
    } else if total_len > available {
        return Err(counter::IPV4_TRUNCATED);
    } else {
        total_len
    };
    key.ip_version = 4;
    key.protocol = header.protocol;
    key.src_addr[10] = 0xff;
    key.src_addr[11] = 0xff;
    key.src_addr[12..].copy_from_slice(&header.src);
    key.dst_addr[10] = 0xff;
    key.dst_addr[11] = 0xff;
    key.dst_addr[12..].copy_from_slice(&header.dst);
    Ok(L3 {
        l4_offset: offset + header_len,
        ip_bytes,
        non_first_fragment: be16(header.frag_off) & 0x1fff != 0,
    })
}

/// The fixed IPv6 header up to the addresses, which go straight into the key.
#[repr(C)]
#[derive(Default)]
struct Ipv6Prefix {
    version_class_flow: [u8; 4],
    payload_len: [u8; 2],
    next_header: u8,
    hop_limit: u8,
}

#[inline(always)]
fn ipv6(
    ctx: &TcContext,
    offset: u32,
    frame_len: u32,
    is_gso: bool,
    key: &mut FlowKey,
) -> Result<L3, u32> {
    let header: Ipv6Prefix = read_fast(ctx, offset).map_err(|()| counter::IPV6_TRUNCATED)?;
    if header.version_class_flow[0] >> 4 != 6 {
        return Err(counter::IPV6_BAD_HEADER);
    }
    load_into(ctx, offset + 8, &mut key.src_addr).map_err(|()| counter::IPV6_TRUNCATED)?;
    load_into(ctx, offset + 24, &mut key.dst_addr).map_err(|()| counter::IPV6_TRUNCATED)?;
    let available = frame_len - offset;
    let payload_len = u32::from(be16(header.payload_len));
    // Payload length 0 is a jumbogram / BIG TCP packet: the skb tells its size.
    let ip_bytes = if is_gso || payload_len == 0 {
        available
    } else if 40 + payload_len > available {
        return Err(counter::IPV6_TRUNCATED);
    } else {
        40 + payload_len
    };
    key.ip_version = 6;

    let mut next = header.next_header;
    let mut cursor = offset + 40;
    let mut non_first_fragment = false;
    let mut done = false;
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        match next {
            // Hop-by-hop, routing, destination options, mobility, HIP, shim6.
            0 | 43 | 60 | 135 | 139 | 140 => {
                let ext: [u8; 2] = read(ctx, cursor).map_err(|()| counter::IPV6_EXT_CHAIN)?;
                next = ext[0];
                cursor += (u32::from(ext[1]) + 1) * 8;
            }
            // Authentication header: length in 4-byte units, minus 2.
            51 => {
                let ext: [u8; 2] = read(ctx, cursor).map_err(|()| counter::IPV6_EXT_CHAIN)?;
                next = ext[0];
                cursor += (u32::from(ext[1]) + 2) * 4;
            }
            // Fragment header: a non-first fragment carries no layer-4 header.
            44 => {
                let fragment: [u8; 4] = read(ctx, cursor).map_err(|()| counter::IPV6_EXT_CHAIN)?;
                next = fragment[0];
                cursor += 8;
                if be16([fragment[2], fragment[3]]) & 0xfff8 != 0 {
                    non_first_fragment = true;
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
        return Err(counter::IPV6_EXT_CHAIN);
    }
    key.protocol = next;
    Ok(L3 {
        l4_offset: cursor,
        ip_bytes,
        non_first_fragment,
    })
}

#[derive(Default)]
struct L4 {
    /// Transport header length (0 for protocols the program does not parse).
    header_len: u32,
    tcp_flags: u8,
}

#[inline(always)]
fn transport(ctx: &TcContext, offset: u32, key: &mut FlowKey) -> Result<L4, u32> {
    match key.protocol {
        proto::TCP => {
            let tcp: [u8; 14] = read_fast(ctx, offset).map_err(|()| counter::L4_TRUNCATED)?;
            let header_len = u32::from(tcp[12] >> 4) * 4;
            if header_len < 20 {
                return Err(counter::L4_TRUNCATED);
            }
            key.src_port = be16([tcp[0], tcp[1]]);
            key.dst_port = be16([tcp[2], tcp[3]]);
            Ok(L4 {
                header_len,
                tcp_flags: tcp[13],
            })
        }
        proto::UDP => {
            let udp: [u8; 8] = read_fast(ctx, offset).map_err(|()| counter::L4_TRUNCATED)?;
            key.src_port = be16([udp[0], udp[1]]);
            key.dst_port = be16([udp[2], udp[3]]);
            Ok(L4 {
                header_len: 8,
                tcp_flags: 0,
            })
        }
        proto::ICMP | proto::ICMPV6 => {
            let icmp: [u8; 4] = read_fast(ctx, offset).map_err(|()| counter::L4_TRUNCATED)?;
            key.src_port = u16::from(icmp[0]);
            key.dst_port = u16::from(icmp[1]);
            Ok(L4 {
                header_len: 8,
                tcp_flags: 0,
            })
        }
        _ => Ok(L4::default()),
    }
}
