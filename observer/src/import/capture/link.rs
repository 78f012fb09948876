//! One frame parser per link type: what comes before the IP header, and
//! what it says (the EtherType that follows, the sender's MAC, the
//! direction and interface index of Linux cooked captures).
//!
//! | link type | value | header |
//! |---|---|---|
//! | `EN10MB` | 1 | Ethernet: destination, source, EtherType (VLAN tags follow in [`super::frame`]) |
//! | `LINUX_SLL` | 113 | 16 bytes: packet type, ARPHRD, address length, address, protocol |
//! | `LINUX_SLL2` | 276 | 20 bytes: protocol, reserved, ifindex, ARPHRD, packet type, address length, address |
//! | `RAW` | 101 (12, 14) | none: the IP version nibble says which |
//! | `IPV4` / `IPV6` | 228 / 229 | none |
//! | `NULL` | 0 | BSD loopback: 4-byte address family in the capturing host's byte order |
//! | `LOOP` | 108 | OpenBSD loopback: the same family in network byte order |
//!
//! Linux cooked headers are read for every ARPHRD type: their protocol
//! field says what follows (an EtherType for Ethernet-like devices,
//! loopback (772), tun/none (65534), IP-in-IP and SIT tunnels, GRE, ...),
//! so nothing depends on the device kind. Their packet type gives the
//! direction: outgoing (4) is egress, to us / broadcast / multicast / to
//! another host (0-3) ingress. BSD families for IPv6 differ by system
//! (24 NetBSD/OpenBSD, 28 FreeBSD, 30 macOS, and 10 for Linux writers); all
//! are read, in either byte order (captures move between hosts).

use super::frame::{NotAFlow, Why};

/// EtherTypes of what may follow a link header.
pub(super) const IPV4: u16 = 0x0800;
pub(super) const IPV6: u16 = 0x86dd;

/// The link types read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Link {
    Ethernet,
    LinuxSll,
    LinuxSll2,
    Raw,
    Ipv4,
    Ipv6,
    Null,
    Loop,
}

/// What the link header says about one frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct LinkHeader {
    /// EtherType of what follows the header.
    pub ethertype: u16,
    /// Length of the link header.
    pub offset: usize,
    /// The sender's MAC address (Ethernet, cooked headers of Ethernet devices).
    pub src_mac: Option<[u8; 6]>,
    /// Whether the frame left the interface (cooked headers).
    pub egress: Option<bool>,
    /// The interface the frame was seen on (`LINUX_SLL2`).
    pub ifindex: Option<u32>,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Egress or ingress from a Linux packet type (`PACKET_*`).
fn linux_direction(packet_type: u16) -> Option<bool> {
    match packet_type {
        4 => Some(true),
        0..=3 => Some(false),
        _ => None,
    }
}

/// IP version of a BSD address family.
fn bsd_family(family: u32) -> Result<u16, NotAFlow> {
    match family {
        2 => Ok(IPV4),
        10 | 24 | 28 | 30 => Ok(IPV6),
        _ => Err(NotAFlow::new(
            "not IPv4 or IPv6 (loopback address family)",
            Why::NotIp,
        )),
    }
}

fn cut(reason: &'static str) -> NotAFlow {
    NotAFlow::new(reason, Why::Cut)
}

impl Link {
    /// The link type of a `LINKTYPE_*` value, when it is read.
    pub(super) fn from_linktype(value: u32) -> Option<Self> {
        Some(match value {
            1 => Self::Ethernet,
            113 => Self::LinuxSll,
            276 => Self::LinuxSll2,
            // LINKTYPE_RAW; 12 and 14 are DLT_RAW values some writers store.
            101 | 12 | 14 => Self::Raw,
            228 => Self::Ipv4,
            229 => Self::Ipv6,
            0 => Self::Null,
            108 => Self::Loop,
            _ => return None,
        })
    }

    /// The supported link types, for messages.
    pub(super) const SUPPORTED: &str = "EN10MB, LINUX_SLL, LINUX_SLL2, RAW, IPV4, IPV6, NULL, LOOP";

    /// Reads the link header of `data` (the captured bytes of one frame).
    pub(super) fn parse(self, data: &[u8]) -> Result<LinkHeader, NotAFlow> {
        let mut header = LinkHeader::default();
        match self {
            Self::Ethernet => {
                if data.len() < 14 {
                    return Err(cut("Ethernet header cut short"));
                }
                header.src_mac = Some(data[6..12].try_into().expect("6 bytes"));
                header.ethertype = be16(data, 12);
                header.offset = 14;
            }
            Self::LinuxSll => {
                if data.len() < 16 {
                    return Err(cut("Linux cooked header cut short"));
                }
                header.egress = linux_direction(be16(data, 0));
                // ARPHRD_ETHER with a 6-byte address: the sender's MAC.
                if be16(data, 2) == 1 && be16(data, 4) == 6 {
                    header.src_mac = Some(data[6..12].try_into().expect("6 bytes"));
                }
                header.ethertype = be16(data, 14);
                header.offset = 16;
            }
            Self::LinuxSll2 => {
                if data.len() < 20 {
                    return Err(cut("Linux cooked (v2) header cut short"));
                }
                header.ethertype = be16(data, 0);
                header.ifindex = Some(u32::from_be_bytes(data[4..8].try_into().expect("4 bytes")));
                header.egress = linux_direction(u16::from(data[10]));
                if be16(data, 8) == 1 && data[11] == 6 {
                    header.src_mac = Some(data[12..18].try_into().expect("6 bytes"));
                }
                header.offset = 20;
            }
            Self::Raw => {
                let first = *data.first().ok_or_else(|| cut("empty packet"))?;
                header.ethertype = match first >> 4 {
                    4 => IPV4,
                    6 => IPV6,
                    _ => {
                        return Err(NotAFlow::new(
                            "raw packet of another IP version",
                            Why::Malformed,
                        ));
                    }
                };
            }
            Self::Ipv4 => header.ethertype = IPV4,
            Self::Ipv6 => header.ethertype = IPV6,
            Self::Null | Self::Loop => {
                let bytes: [u8; 4] = data
                    .get(..4)
                    .ok_or_else(|| cut("loopback header cut short"))?
                    .try_into()
                    .expect("4 bytes");
                // Families are small: the order whose value fits 16 bits.
                let big = u32::from_be_bytes(bytes);
                let family = if big <= 0xffff {
                    big
                } else {
                    u32::from_le_bytes(bytes)
                };
                header.ethertype = bsd_family(family)?;
                header.offset = 4;
            }
        }
        Ok(header)
    }
}

/// The name of a `LINKTYPE_*` value, for messages about unsupported ones.
pub(super) fn linktype_name(value: u32) -> Option<&'static str> {
    Some(match value {
        0 => "NULL",
        1 => "EN10MB",
        6 => "IEEE802_5",
        8 => "SLIP",
        9 => "PPP",
        10 => "FDDI",
        50 => "PPP_HDLC",
        51 => "PPP_ETHER",
        101 => "RAW",
        104 => "C_HDLC",
        105 => "IEEE802_11",
        107 => "FRELAY",
        108 => "LOOP",
        113 => "LINUX_SLL",
        119 => "PRISM_HEADER",
        127 => "IEEE802_11_RADIOTAP",
        129 => "ARCNET_LINUX",
        137 => "APPLE_IP_OVER_IEEE1394",
        138 => "MTP2_WITH_PHDR",
        143 => "DOCSIS",
        163 => "IEEE802_11_AVS",
        192 => "PPI",
        195 => "IEEE802_15_4_WITHFCS",
        201 => "BLUETOOTH_HCI_H4_WITH_PHDR",
        220 => "USB_LINUX_MMAPPED",
        228 => "IPV4",
        229 => "IPV6",
        239 => "NFLOG",
        249 => "NETANALYZER_TRANSPARENT",
        276 => "LINUX_SLL2",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cooked_headers_give_direction_interface_and_protocol() {
        // SLL: outgoing, ARPHRD_ETHER, 6-byte address, IPv4.
        let mut sll = vec![0, 4, 0, 1, 0, 6, 2, 0, 0, 0, 0, 9, 0, 0, 0x08, 0x00];
        let h = Link::LinuxSll.parse(&sll).unwrap();
        assert_eq!(
            h,
            LinkHeader {
                ethertype: IPV4,
                offset: 16,
                src_mac: Some([2, 0, 0, 0, 0, 9]),
                egress: Some(true),
                ifindex: None,
            }
        );
        // Loopback (772) and tun (65534): no MAC, the protocol decides.
        for arphrd in [772u16, 65534, 768, 776] {
            sll[0..2].copy_from_slice(&0u16.to_be_bytes());
            sll[2..4].copy_from_slice(&arphrd.to_be_bytes());
            sll[14..16].copy_from_slice(&IPV6.to_be_bytes());
            let h = Link::LinuxSll.parse(&sll).unwrap();
            assert_eq!(
                (h.ethertype, h.egress, h.src_mac),
                (IPV6, Some(false), None)
            );
        }
        // SLL2: IPv6, ifindex 7, loopback, outgoing.
        let sll2 = [
            0x86, 0xdd, 0, 0, 0, 0, 0, 7, 0x03, 0x04, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        let h = Link::LinuxSll2.parse(&sll2).unwrap();
        assert_eq!(
            (h.ethertype, h.offset, h.ifindex, h.egress),
            (IPV6, 20, Some(7), Some(true))
        );
        assert_eq!(
            Link::LinuxSll2.parse(&sll2[..19]).unwrap_err().reason,
            "Linux cooked (v2) header cut short"
        );
    }

    #[test]
    fn bsd_loopback_families_read_in_either_byte_order() {
        for (bytes, ethertype) in [
            ([2, 0, 0, 0], IPV4),
            ([0, 0, 0, 2], IPV4),
            ([30, 0, 0, 0], IPV6),
            ([0, 0, 0, 24], IPV6),
            ([28, 0, 0, 0], IPV6),
            ([0, 0, 0, 10], IPV6),
        ] {
            for link in [Link::Null, Link::Loop] {
                let h = link.parse(&bytes).unwrap();
                assert_eq!((h.ethertype, h.offset), (ethertype, 4), "{bytes:?}");
            }
        }
        let other = Link::Null.parse(&[7, 0, 0, 0]).unwrap_err();
        assert_eq!(other.why, Why::NotIp);
    }

    #[test]
    fn raw_ip_reads_the_version_nibble() {
        assert_eq!(Link::Raw.parse(&[0x45]).unwrap().ethertype, IPV4);
        assert_eq!(Link::Raw.parse(&[0x60]).unwrap().ethertype, IPV6);
        assert_eq!(Link::Raw.parse(&[0x50]).unwrap_err().why, Why::Malformed);
        assert_eq!(Link::Ipv6.parse(&[]).unwrap().ethertype, IPV6);
        assert_eq!(Link::from_linktype(276), Some(Link::LinuxSll2));
        assert_eq!(Link::from_linktype(127), None);
        assert_eq!(linktype_name(127), Some("IEEE802_11_RADIOTAP"));
    }
}
