//! Every frame the fast path declines: Ethernet with up to two VLAN tags
//! (the outer one may sit in skb metadata when VLAN offload took it out of
//! the frame), raw IP without a `protocol`, IPv4 with options or fragments,
//! IPv6 extension headers, headers outside the linear data, and frames that
//! do not become flow packets (counted by reason).
//!
//! A global function: the verifier checks it once, on its own, whatever the
//! caller's state, so its loops and branches do not multiply the states of
//! the program around it. Every read goes through `bpf_skb_load_bytes`
//! (which checks the bounds and works on non-linear skbs) into a buffer of
//! aligned words, so that no offset needs to be known to the verifier and
//! no load of the stack is misaligned.

use aya_ebpf::{bindings::__sk_buff, helpers::bpf_skb_load_bytes, programs::TcContext};
use observer_common::{counter, proto};

use super::{
    ETH_HEADER_LEN, ETH_P_IP, ETH_P_IPV6, Headers, LinkKind, Packet, ipv4_mapped_word,
    key_from_words, kind_word, ports_word, wire,
};

const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
/// IPv6 extension headers followed before giving up (counted as `ipv6_ext_chain`).
const MAX_IPV6_EXT_HEADERS: u32 = 8;

/// [`observer_parse`]'s answer for a flow packet; any other value is the
/// `observer_common::counter` index of the reason it is not one.
pub const PARSED: u32 = u32::MAX;

/// Parses the frame of `skb`, seen in `direction` on a device of kind
/// `link` ([`LinkKind`] as a number), into `packet`, and returns [`PARSED`];
/// or returns why the frame is not a flow packet.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn observer_parse(
    skb: *mut __sk_buff,
    link: u32,
    direction: u32,
    packet: *mut Packet,
) -> u32 {
    // The verifier passes a global function's pointer arguments as possibly null.
    if packet.is_null() {
        return counter::NON_IP;
    }
    match parse(&TcContext::new(skb), link, direction as u8) {
        Ok(parsed) => {
            // SAFETY: a valid, aligned packet buffer, per the caller.
            unsafe { packet.write(parsed) };
            PARSED
        }
        Err(reason) => reason,
    }
}

#[inline(always)]
fn parse(ctx: &TcContext, link: u32, direction: u8) -> Result<Packet, u32> {
    // SAFETY: the context pointer is valid for the program's run.
    let skb = unsafe { &*ctx.skb.skb };
    let frame_len = skb.len;
    let gso_size = skb.gso_size;
    let (l3_offset, ethertype, vlan_id) = if link == LinkKind::Ethernet as u32 {
        ethernet(ctx, skb)?
    } else {
        (0, raw_ip_ethertype(ctx, skb), 0)
    };
    let (l3, words, protocol, ip_version) = match ethertype {
        ETH_P_IP => ipv4(ctx, l3_offset, frame_len, gso_size > 0)?,
        ETH_P_IPV6 => ipv6(ctx, l3_offset, frame_len, gso_size > 0)?,
        _ => return Err(counter::NON_IP),
    };
    let l4 = if l3.non_first_fragment {
        L4::default()
    } else {
        transport(ctx, l3.l4_offset, protocol)?
    };
    let key = key_from_words([
        words[0],
        words[1],
        words[2],
        words[3],
        ports_word(skb.ifindex, l4.src_port, l4.dst_port),
        kind_word(vlan_id, direction, ip_version, protocol),
    ]);
    let headers = Headers {
        l3_offset,
        l4_offset: l3.l4_offset,
        ip_bytes: l3.ip_bytes,
        l4_header_len: l4.header_len,
    };
    Ok(Packet::new(
        key,
        wire(ctx, &headers, gso_size),
        l4.tcp_flags,
        l3.non_first_fragment,
    ))
}

/// Copies the `size_of::<T>()` bytes at `offset` into a fresh `T`, or fails
/// when the frame is shorter.
#[inline(always)]
fn read<T: Copy>(ctx: &TcContext, offset: u32) -> Result<T, ()> {
    let mut value = core::mem::MaybeUninit::<T>::uninit();
    // SAFETY: `value` is valid for `size_of::<T>()` bytes; the helper checks
    // the packet bounds.
    let ret = unsafe {
        bpf_skb_load_bytes(
            ctx.skb.skb.cast(),
            offset,
            value.as_mut_ptr().cast(),
            size_of::<T>() as u32,
        )
    };
    if ret != 0 {
        return Err(());
    }
    // SAFETY: the helper wrote every byte; `T` is plain data.
    Ok(unsafe { value.assume_init() })
}

/// Host-order value of a big-endian 16-bit field loaded as part of a
/// little-endian word (its two bytes in packet order).
#[inline(always)]
fn be16(raw: u16) -> u16 {
    u16::from_be(raw)
}

/// Skips the Ethernet header and up to two VLAN tags; returns the IP
/// header's offset, the ethertype and the outer VLAN id.
#[inline(always)]
fn ethernet(ctx: &TcContext, skb: &__sk_buff) -> Result<(u32, u16, u16), u32> {
    let mut ethertype = be16(read::<u16>(ctx, 12).map_err(|()| counter::ETH_TRUNCATED)?);
    let mut offset = ETH_HEADER_LEN;
    let mut tags = 0u32;
    let mut vlan_id = 0;
    if skb.vlan_present != 0 {
        vlan_id = (skb.vlan_tci & 0x0fff) as u16;
        tags = 1;
    }
    for _ in 0..2 {
        if ethertype != ETH_P_8021Q && ethertype != ETH_P_8021AD {
            break;
        }
        if tags == 2 {
            return Err(counter::VLAN_TOO_DEEP);
        }
        // TCI, then the next ethertype.
        let tag: u32 = read(ctx, offset).map_err(|()| counter::ETH_TRUNCATED)?;
        if tags == 0 {
            vlan_id = be16(tag as u16) & 0x0fff;
        }
        ethertype = be16((tag >> 16) as u16);
        offset += 4;
        tags += 1;
    }
    if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
        return Err(counter::VLAN_TOO_DEEP);
    }
    Ok((offset, ethertype, vlan_id))
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

/// An IPv4 header: its first four words, with the addresses after them read
/// straight into the key's words.
#[inline(always)]
fn ipv4(
    ctx: &TcContext,
    offset: u32,
    frame_len: u32,
    is_gso: bool,
) -> Result<(L3, [u64; 4], u8, u8), u32> {
    // Version/IHL, TOS, total length | id, fragment | TTL, protocol, checksum
    // | source | destination.
    let header: [u32; 5] = read(ctx, offset).map_err(|()| counter::IPV4_TRUNCATED)?;
    let version_ihl = header[0] as u8;
    let header_len = u32::from(version_ihl & 0x0f) * 4;
    if version_ihl >> 4 != 4 || header_len < 20 {
        return Err(counter::IPV4_BAD_HEADER);
    }
    let available = frame_len - offset;
    if header_len > available {
        return Err(counter::IPV4_TRUNCATED);
    }
    let total_len = u32::from(be16((header[0] >> 16) as u16));
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
    let protocol = (header[2] >> 8) as u8;
    let words = [
        0,
        ipv4_mapped_word(header[3]),
        0,
        ipv4_mapped_word(header[4]),
    ];
    let l3 = L3 {
        l4_offset: offset + header_len,
        ip_bytes,
        non_first_fragment: be16((header[1] >> 16) as u16) & 0x1fff != 0,
    };
    Ok((l3, words, protocol, 4))
}

#[inline(always)]
fn ipv6(
    ctx: &TcContext,
    offset: u32,
    frame_len: u32,
    is_gso: bool,
) -> Result<(L3, [u64; 4], u8, u8), u32> {
    // Version, class, flow label | payload length, next header, hop limit.
    let prefix: [u32; 2] = read(ctx, offset).map_err(|()| counter::IPV6_TRUNCATED)?;
    if (prefix[0] as u8) >> 4 != 6 {
        return Err(counter::IPV6_BAD_HEADER);
    }
    let words: [u64; 4] = read(ctx, offset + 8).map_err(|()| counter::IPV6_TRUNCATED)?;
    let available = frame_len - offset;
    let payload_len = u32::from(be16(prefix[1] as u16));
    // Payload length 0 is a jumbogram / BIG TCP packet: the skb tells its size.
    let ip_bytes = if is_gso || payload_len == 0 {
        available
    } else if 40 + payload_len > available {
        return Err(counter::IPV6_TRUNCATED);
    } else {
        40 + payload_len
    };

    let mut next = (prefix[1] >> 16) as u8;
    let mut cursor = offset + 40;
    let mut non_first_fragment = false;
    let mut done = false;
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        match next {
            // Hop-by-hop, routing, destination options, mobility, HIP, shim6.
            0 | 43 | 60 | 135 | 139 | 140 => {
                let ext: u16 = read(ctx, cursor).map_err(|()| counter::IPV6_EXT_CHAIN)?;
                next = ext as u8;
                cursor += (u32::from(ext >> 8) + 1) * 8;
            }
            // Authentication header: length in 4-byte units, minus 2.
            51 => {
                let ext: u16 = read(ctx, cursor).map_err(|()| counter::IPV6_EXT_CHAIN)?;
                next = ext as u8;
                cursor += (u32::from(ext >> 8) + 2) * 4;
            }
            // Fragment header: a non-first fragment carries no layer-4 header.
            44 => {
                let fragment: u32 = read(ctx, cursor).map_err(|()| counter::IPV6_EXT_CHAIN)?;
                next = fragment as u8;
                cursor += 8;
                if be16((fragment >> 16) as u16) & 0xfff8 != 0 {
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
    let l3 = L3 {
        l4_offset: cursor,
        ip_bytes,
        non_first_fragment,
    };
    Ok((l3, words, next, 6))
}

#[derive(Default)]
struct L4 {
    src_port: u16,
    dst_port: u16,
    /// Transport header length (0 for protocols the program does not parse).
    header_len: u32,
    tcp_flags: u8,
}

/// The first 14 bytes of a TCP header, as aligned words.
#[repr(C)]
#[derive(Clone, Copy)]
struct TcpStart {
    ports: u32,
    seq: u32,
    ack: u32,
    /// Data offset (first byte), flags (second byte).
    offset_flags: u16,
}
const _: () = assert!(size_of::<TcpStart>() == 16);

#[inline(always)]
fn transport(ctx: &TcContext, offset: u32, protocol: u8) -> Result<L4, u32> {
    let ports = |word: u32| (be16(word as u16), be16((word >> 16) as u16));
    match protocol {
        proto::TCP => {
            let mut tcp = core::mem::MaybeUninit::<TcpStart>::uninit();
            // SAFETY: the buffer holds 16 bytes; the helper writes the first 14.
            let ret = unsafe {
                bpf_skb_load_bytes(ctx.skb.skb.cast(), offset, tcp.as_mut_ptr().cast(), 14)
            };
            if ret != 0 {
                return Err(counter::L4_TRUNCATED);
            }
            // SAFETY: the fields read lie in the 14 bytes the helper wrote.
            let (word, offset_flags) = unsafe {
                let tcp = tcp.as_ptr();
                ((*tcp).ports, (*tcp).offset_flags)
            };
            let header_len = u32::from(offset_flags as u8 >> 4) * 4;
            if header_len < 20 {
                return Err(counter::L4_TRUNCATED);
            }
            let (src_port, dst_port) = ports(word);
            Ok(L4 {
                src_port,
                dst_port,
                header_len,
                tcp_flags: (offset_flags >> 8) as u8,
            })
        }
        proto::UDP => {
            let udp: [u32; 2] = read(ctx, offset).map_err(|()| counter::L4_TRUNCATED)?;
            let (src_port, dst_port) = ports(udp[0]);
            Ok(L4 {
                src_port,
                dst_port,
                header_len: 8,
                tcp_flags: 0,
            })
        }
        proto::ICMP | proto::ICMPV6 => {
            let icmp: u32 = read(ctx, offset).map_err(|()| counter::L4_TRUNCATED)?;
            Ok(L4 {
                src_port: u16::from(icmp as u8),
                dst_port: u16::from((icmp >> 8) as u8),
                header_len: 8,
                tcp_flags: 0,
            })
        }
        _ => Ok(L4::default()),
    }
}
