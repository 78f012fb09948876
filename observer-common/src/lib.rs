//! Plain-data types shared by the kernel program (`observer-ebpf`) and
//! userspace (`observer`).
//!
//! Everything here is `#[repr(C)]`, built from fixed-width integers and byte
//! arrays with explicit padding, and checked for size at compile time, so the
//! kernel and userspace agree byte for byte. The `user` feature adds the
//! `aya::Pod` impls and `std` conversions (see [`user`]).
#![no_std]

#[cfg(feature = "user")]
extern crate std;

#[cfg(feature = "user")]
pub mod user;

/// `FlowKey::direction` of a packet entering the interface.
pub const DIRECTION_INGRESS: u8 = 0;
/// `FlowKey::direction` of a packet leaving the interface.
pub const DIRECTION_EGRESS: u8 = 1;

/// IP protocol numbers the kernel program looks into.
pub mod proto {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ICMPV6: u8 = 58;
}

/// TCP flag bits as they appear in byte 13 of the TCP header.
pub mod tcp_flag {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
}

/// Identity of a unidirectional flow at one observation point.
///
/// Addresses are 16 bytes in network order; IPv4 is stored IPv4-mapped
/// (`::ffff:a.b.c.d`). For ICMP and ICMPv6, `src_port` holds the type and
/// `dst_port` the code. Non-first IP fragments carry no layer-4 header, so
/// their ports are 0.
///
/// 8-byte aligned, so the kernel can hash and compare it word by word.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    pub src_addr: [u8; 16],
    pub dst_addr: [u8; 16],
    pub ifindex: u32,
    pub src_port: u16,
    pub dst_port: u16,
    /// Outermost 802.1Q VLAN id, 0 when untagged.
    pub vlan_id: u16,
    /// [`DIRECTION_INGRESS`] or [`DIRECTION_EGRESS`].
    pub direction: u8,
    /// 4 or 6.
    pub ip_version: u8,
    pub protocol: u8,
    pub _pad: [u8; 3],
}
const _: () = assert!(core::mem::size_of::<FlowKey>() == 48);

/// Counters of one flow in a slot of the kernel's per-CPU flow cache.
///
/// Timing: reading the exact clock costs a helper call (~95 ns on a
/// virtualised host), so only a flow's first packet in the slot reads it;
/// later packets store `jiffies`, which the JIT inlines as one load. The
/// pair turns back into nanoseconds with the tick length
/// ([`FlowCounters::stats`], and the kernel when it evicts a slot):
/// `last_seen = first_seen_ns + (last_seen_jiffies - first_seen_jiffies) * tick`,
/// exact to one tick (4 ms at HZ=250).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowCounters {
    pub packets: u64,
    pub bytes: u64,
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC) of the first packet.
    pub first_seen_ns: u64,
    /// `jiffies` when `first_seen_ns` was read.
    pub first_seen_jiffies: u64,
    /// `jiffies` at the latest packet.
    pub last_seen_jiffies: u64,
    /// As in [`FlowStats`].
    pub tcp_flags: u64,
    pub syn_count: u64,
    pub fin_count: u64,
    pub rst_count: u64,
}
const _: () = assert!(core::mem::size_of::<FlowCounters>() == 72);

impl FlowCounters {
    /// The counters with `last_seen` in nanoseconds, given the length of
    /// one kernel tick (`clock_getres(CLOCK_MONOTONIC_COARSE)`). Used by the
    /// kernel when it evicts a cache slot and by userspace when it drains one.
    #[inline(always)]
    pub fn stats(&self, tick_ns: u64) -> FlowStats {
        let ticks = self
            .last_seen_jiffies
            .saturating_sub(self.first_seen_jiffies);
        FlowStats {
            packets: self.packets,
            bytes: self.bytes,
            first_seen_ns: self.first_seen_ns,
            last_seen_ns: self.first_seen_ns + ticks * tick_ns,
            tcp_flags: self.tcp_flags,
            syn_count: self.syn_count,
            fin_count: self.fin_count,
            rst_count: self.rst_count,
        }
    }
}

/// One slot of a CPU's flow cache: a flow and what its packets on this CPU
/// added since it took the slot (empty while `packets` is 0).
///
/// 128 bytes, so that in the kernel's array (page-aligned values, CPU after
/// CPU) a slot covers exactly two cache lines, the key and the packet and
/// byte counts in the first.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CachedFlow {
    pub key: FlowKey,
    pub counters: FlowCounters,
    pub _pad: u64,
}
const _: () = assert!(core::mem::size_of::<CachedFlow>() == 128);

/// Counters of one flow with both timestamps in CLOCK_MONOTONIC nanoseconds:
/// the value of the shared flow map (where the kernel merges the cache slots
/// it evicts), of the overflow ring, and what userspace works with.
///
/// `packets` counts segments as they appear on the wire (a GSO packet of N
/// segments counts N) and `bytes` counts IP-layer bytes, IP header included
/// (IPFIX `packetDeltaCount` / `octetDeltaCount`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowStats {
    pub packets: u64,
    pub bytes: u64,
    /// CLOCK_MONOTONIC of the first packet.
    pub first_seen_ns: u64,
    /// CLOCK_MONOTONIC of the latest packet (to one tick, see [`FlowCounters`]).
    pub last_seen_ns: u64,
    /// Bitwise OR of every TCP flag byte seen.
    ///
    /// This and the flag counts are 64-bit because the BPF target's baseline
    /// CPU has 64-bit atomics only (the flow map is shared between CPUs).
    pub tcp_flags: u64,
    pub syn_count: u64,
    pub fin_count: u64,
    pub rst_count: u64,
}
const _: () = assert!(core::mem::size_of::<FlowStats>() == 64);

/// A packet the kernel could not account in the flow map (map full), sent
/// whole through the flow-event ring buffer so that it is not lost.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowEvent {
    pub key: FlowKey,
    pub stats: FlowStats,
}
const _: () = assert!(core::mem::size_of::<FlowEvent>() == 112);

/// Packets and bytes behind one counter: frame bytes (skb length) for the
/// "not accounted" reasons, IP-layer wire bytes for the flow counters.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counter {
    pub packets: u64,
    pub bytes: u64,
}
const _: () = assert!(core::mem::size_of::<Counter>() == 16);

/// Indexes of the kernel's per-CPU `COUNTERS` array.
///
/// Every frame the program sees either becomes a flow packet or is counted
/// under exactly one of the "not accounted" reasons, so
/// `frames seen = flow packets + sum(not accounted)`.
pub mod counter {
    /// Frames whose ethertype is not IPv4 or IPv6 (ARP, LLDP, unknown).
    pub const NON_IP: u32 = 0;
    /// Frame shorter than its Ethernet or VLAN header.
    pub const ETH_TRUNCATED: u32 = 1;
    /// More than two VLAN tags.
    pub const VLAN_TOO_DEEP: u32 = 2;
    /// Frame shorter than the IPv4 header it announces.
    pub const IPV4_TRUNCATED: u32 = 3;
    /// IPv4 header with a wrong version, IHL < 5 or total length < IHL.
    pub const IPV4_BAD_HEADER: u32 = 4;
    /// Frame shorter than the IPv6 header or the payload length it announces.
    pub const IPV6_TRUNCATED: u32 = 5;
    /// IPv6 ethertype whose header has another version.
    pub const IPV6_BAD_HEADER: u32 = 6;
    /// IPv6 extension-header chain longer than the program follows, or cut short.
    pub const IPV6_EXT_CHAIN: u32 = 7;
    /// TCP, UDP or ICMP header cut short (or a TCP data offset below 5).
    pub const L4_TRUNCATED: u32 = 8;
    /// Number of "not accounted" reasons; the indexes from here on are other counters.
    pub const NOT_ACCOUNTED: u32 = 9;

    /// Flow packets: every frame that is not counted under a "not
    /// accounted" reason. `FLOW_MAP_FULL` and `FLOW_EVENTS_LOST` say which
    /// of them took the overflow ring or were lost.
    pub const FLOW_PACKETS: u32 = 9;
    /// Flow packets that reached userspace through the flow-event ring
    /// buffer because the flow map was full (not lost: userspace merges them
    /// into the flow table).
    pub const FLOW_MAP_FULL: u32 = 10;
    /// Flow packets whose flow event could not be queued (ring buffer
    /// full): lost.
    pub const FLOW_EVENTS_LOST: u32 = 11;
    /// Non-first IP fragments (informational; they are flow packets with ports 0).
    pub const FRAGMENTS: u32 = 12;
    /// DNS messages seen from port 53 (bytes: DNS message bytes); each is
    /// handed to userspace unless counted in `DNS_EVENTS_LOST`.
    pub const DNS_MESSAGES: u32 = 13;
    /// DNS messages whose event could not be queued (ring buffer full): lost.
    pub const DNS_EVENTS_LOST: u32 = 14;
    /// DNS messages longer than the copy limit (copied truncated).
    pub const DNS_TRUNCATED: u32 = 15;

    /// Size of the `COUNTERS` array.
    pub const LEN: u32 = 16;

    /// Stable names of the counters, as written to Parquet metadata.
    pub const NAMES: [&str; LEN as usize] = [
        "non_ip",
        "eth_truncated",
        "vlan_too_deep",
        "ipv4_truncated",
        "ipv4_bad_header",
        "ipv6_truncated",
        "ipv6_bad_header",
        "ipv6_ext_chain",
        "l4_truncated",
        "flow_packets",
        "flow_map_full",
        "flow_events_lost",
        "fragments",
        "dns_messages",
        "dns_events_lost",
        "dns_truncated",
    ];
}

/// Most DNS payload bytes copied per message: above the DNS flag-day EDNS
/// size (1232), and a power of two so the kernel can bound the copy by a mask.
pub const DNS_PAYLOAD_MAX: usize = 2048;

/// Where a DNS message was seen; followed by its payload in [`DnsEvent`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DnsEventHeader {
    pub timestamp_ns: u64,
    pub src_addr: [u8; 16],
    pub dst_addr: [u8; 16],
    pub ifindex: u32,
    pub src_port: u16,
    pub dst_port: u16,
    /// Length of the DNS message on the wire (for TCP: without the 2-byte
    /// length prefix when the prefix is in this segment).
    pub message_len: u16,
    /// Bytes of it copied into the payload.
    pub captured_len: u16,
    pub direction: u8,
    pub ip_version: u8,
    pub protocol: u8,
    pub _pad: u8,
}
const _: () = assert!(core::mem::size_of::<DnsEventHeader>() == 56);

/// A DNS message (UDP or TCP, source or destination port 53) copied to userspace.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct DnsEvent {
    pub header: DnsEventHeader,
    pub payload: [u8; DNS_PAYLOAD_MAX],
}
const _: () = assert!(core::mem::size_of::<DnsEvent>() == 56 + DNS_PAYLOAD_MAX);

/// The DNS port the program copies messages from.
pub const DNS_PORT: u16 = 53;
