//! Raw frames built byte by byte, for what sockets cannot send: VLAN tags
//! written into the frame, and malformed headers. Layouts and checksums come
//! from `pnet::packet`; the headers are deliberately editable afterwards.

use std::net::{Ipv4Addr, Ipv6Addr};

use pnet::{
    packet::{
        MutablePacket as _,
        ethernet::{EtherType, EtherTypes, MutableEthernetPacket},
        ip::IpNextHeaderProtocol,
        ipv4::{self, MutableIpv4Packet},
        ipv6::MutableIpv6Packet,
        udp::MutableUdpPacket,
    },
    util::MacAddr,
};

pub const TPID_8021Q: u16 = 0x8100;
pub const TPID_8021AD: u16 = 0x88a8;

/// An Ethernet frame: `tags` are (TPID, VLAN id) from the outside in.
pub fn ethernet(
    dst: MacAddr,
    src: MacAddr,
    tags: &[(u16, u16)],
    ethertype: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut frame = vec![0u8; 14];
    {
        let mut eth = MutableEthernetPacket::new(&mut frame).expect("14 bytes");
        eth.set_destination(dst);
        eth.set_source(src);
    }
    frame.truncate(12);
    for (tpid, vid) in tags {
        frame.extend_from_slice(&tpid.to_be_bytes());
        frame.extend_from_slice(&vid.to_be_bytes());
    }
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

pub const IPV4: u16 = EtherTypes::Ipv4.0;
pub const IPV6: u16 = EtherTypes::Ipv6.0;
/// IEEE 802 local experimental ethertype: no stack parses it.
pub const EXPERIMENTAL: EtherType = EtherType(0x88b5);

/// An IPv4 packet with `options` (a multiple of four bytes) and a fragment
/// field (`flags << 13 | offset / 8`), header checksum filled in.
pub fn ipv4(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    options: &[u8],
    fragment: u16,
    payload: &[u8],
) -> Vec<u8> {
    assert!(options.len().is_multiple_of(4) && options.len() <= 40);
    let header_len = 20 + options.len();
    let mut packet = vec![0u8; header_len + payload.len()];
    let mut ip = MutableIpv4Packet::new(&mut packet).expect("IPv4 header");
    ip.set_version(4);
    ip.set_header_length((header_len / 4) as u8);
    ip.set_total_length((header_len + payload.len()) as u16);
    ip.set_identification(0x4242);
    ip.set_flags((fragment >> 13) as u8);
    ip.set_fragment_offset(fragment & 0x1fff);
    ip.set_ttl(64);
    ip.set_next_level_protocol(IpNextHeaderProtocol(protocol));
    ip.set_source(src);
    ip.set_destination(dst);
    ip.packet_mut()[20..header_len].copy_from_slice(options);
    ip.set_payload(payload);
    let checksum = ipv4::checksum(&ip.to_immutable());
    ip.set_checksum(checksum);
    packet
}

/// An IPv6 packet; `payload` starts with whatever `next_header` announces.
pub fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, payload: &[u8]) -> Vec<u8> {
    let mut packet = vec![0u8; 40 + payload.len()];
    let mut ip = MutableIpv6Packet::new(&mut packet).expect("IPv6 header");
    ip.set_version(6);
    ip.set_payload_length(payload.len() as u16);
    ip.set_next_header(IpNextHeaderProtocol(next_header));
    ip.set_hop_limit(64);
    ip.set_source(src);
    ip.set_destination(dst);
    ip.set_payload(payload);
    packet
}

/// An IPv6 extension header of the common TLV shape (`8 * (len + 1)` bytes).
pub fn ipv6_extension(next_header: u8, len: u8) -> Vec<u8> {
    let mut header = vec![0u8; 8 * (usize::from(len) + 1)];
    header[0] = next_header;
    header[1] = len;
    // PadN over the rest, so the options are well formed.
    header[2] = 1;
    header[3] = (header.len() - 4) as u8;
    header
}

/// An IPv6 fragment header: `offset` in bytes (a multiple of 8).
pub fn ipv6_fragment(next_header: u8, offset: u16, more: bool) -> Vec<u8> {
    let field = offset | u16::from(more);
    let mut header = vec![next_header, 0];
    header.extend_from_slice(&field.to_be_bytes());
    header.extend_from_slice(&0x0bad_cafe_u32.to_be_bytes());
    header
}

/// A UDP datagram (checksum 0: not computed).
pub fn udp(src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let mut datagram = vec![0u8; 8 + payload.len()];
    let mut udp = MutableUdpPacket::new(&mut datagram).expect("UDP header");
    udp.set_source(src_port);
    udp.set_destination(dst_port);
    udp.set_length((8 + payload.len()) as u16);
    udp.set_payload(payload);
    datagram
}

/// An ICMP or ICMPv6 message of `ty`/`code` with `payload`.
pub fn icmp(ty: u8, code: u8, payload: &[u8]) -> Vec<u8> {
    let mut message = vec![ty, code, 0, 0, 0, 1, 0, 1];
    message.extend_from_slice(payload);
    message
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn mac(text: &str) -> MacAddr {
    text.parse().expect("a MAC address")
}
