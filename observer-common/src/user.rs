//! Userspace side of the shared types: `aya::Pod` impls and conversions.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::{
    CachedFlow, Counter, DIRECTION_EGRESS, DnsEvent, FlowCounters, FlowEvent, FlowKey, FlowStats,
};

// SAFETY: all of these are `#[repr(C)]`, made only of integers and byte
// arrays, with explicit padding, so every bit pattern is a valid value.
unsafe impl aya::Pod for FlowKey {}
// SAFETY: as above.
unsafe impl aya::Pod for FlowStats {}
// SAFETY: as above.
unsafe impl aya::Pod for FlowCounters {}
// SAFETY: as above.
unsafe impl aya::Pod for CachedFlow {}
// SAFETY: as above.
unsafe impl aya::Pod for FlowEvent {}
// SAFETY: as above.
unsafe impl aya::Pod for Counter {}
// SAFETY: as above.
unsafe impl aya::Pod for DnsEvent {}

/// Decodes a 16-byte key address, unmapping IPv4-mapped addresses for version 4.
pub fn addr_from_bytes(bytes: [u8; 16], ip_version: u8) -> IpAddr {
    let v6 = Ipv6Addr::from(bytes);
    if ip_version == 4 {
        let [.., a, b, c, d] = bytes;
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    } else {
        IpAddr::V6(v6)
    }
}

/// Encodes an address the way the kernel program stores it (IPv4-mapped).
pub fn addr_to_bytes(addr: IpAddr) -> [u8; 16] {
    match addr {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

impl FlowKey {
    pub fn src_ip(&self) -> IpAddr {
        addr_from_bytes(self.src_addr, self.ip_version)
    }

    pub fn dst_ip(&self) -> IpAddr {
        addr_from_bytes(self.dst_addr, self.ip_version)
    }

    pub fn is_egress(&self) -> bool {
        self.direction == DIRECTION_EGRESS
    }
}

impl FlowStats {
    /// Adds `other` into `self` (counts add, times widen, flags OR).
    pub fn merge(&mut self, other: &FlowStats) {
        if self.packets == 0 || other.first_seen_ns < self.first_seen_ns {
            self.first_seen_ns = other.first_seen_ns;
        }
        self.last_seen_ns = self.last_seen_ns.max(other.last_seen_ns);
        self.packets += other.packets;
        self.bytes += other.bytes;
        self.tcp_flags |= other.tcp_flags;
        self.syn_count += other.syn_count;
        self.fin_count += other.fin_count;
        self.rst_count += other.rst_count;
    }
}

impl core::ops::AddAssign for Counter {
    fn add_assign(&mut self, rhs: Self) {
        self.packets += rhs.packets;
        self.bytes += rhs.bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_round_trips_through_the_mapped_form() {
        let ip: IpAddr = "10.0.1.6".parse().unwrap();
        let bytes = addr_to_bytes(ip);
        assert_eq!(&bytes[..12], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);
        assert_eq!(addr_from_bytes(bytes, 4), ip);
    }

    #[test]
    fn ipv6_round_trips() {
        let ip: IpAddr = "fd00::6".parse().unwrap();
        assert_eq!(addr_from_bytes(addr_to_bytes(ip), 6), ip);
    }

    #[test]
    fn merge_widens_times_and_adds_counts() {
        let mut a = FlowStats {
            packets: 2,
            bytes: 100,
            first_seen_ns: 50,
            last_seen_ns: 60,
            tcp_flags: 0x02,
            syn_count: 1,
            ..Default::default()
        };
        let b = FlowStats {
            packets: 1,
            bytes: 40,
            first_seen_ns: 40,
            last_seen_ns: 70,
            tcp_flags: 0x11,
            fin_count: 1,
            ..Default::default()
        };
        a.merge(&b);
        assert_eq!(
            (a.packets, a.bytes, a.first_seen_ns, a.last_seen_ns),
            (3, 140, 40, 70)
        );
        assert_eq!((a.tcp_flags, a.syn_count, a.fin_count), (0x13, 1, 1));
        let mut empty = FlowStats::default();
        empty.merge(&b);
        assert_eq!(empty.first_seen_ns, 40);
    }

    #[test]
    fn last_seen_is_the_exact_first_time_plus_whole_ticks() {
        let counters = FlowCounters {
            packets: 3,
            bytes: 180,
            first_seen_ns: 1_000_000_123,
            first_seen_jiffies: 4_295_000_000,
            last_seen_jiffies: 4_295_000_250,
            tcp_flags: 0x1b,
            syn_count: 1,
            fin_count: 1,
            rst_count: 0,
        };
        let stats = counters.stats(4_000_000);
        assert_eq!(stats.first_seen_ns, 1_000_000_123);
        assert_eq!(stats.last_seen_ns, 2_000_000_123);
        assert_eq!(
            (
                stats.packets,
                stats.bytes,
                stats.tcp_flags,
                stats.syn_count,
                stats.fin_count
            ),
            (3, 180, 0x1b, 1, 1)
        );
        // A packet in the same tick as the first: last == first.
        let same_tick = FlowCounters {
            last_seen_jiffies: counters.first_seen_jiffies,
            ..counters
        };
        assert_eq!(same_tick.stats(4_000_000).last_seen_ns, 1_000_000_123);
    }
}
