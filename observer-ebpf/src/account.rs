//! Flow accounting: add a parsed packet to the active flow map, or, when the
//! map is full, hand it whole to userspace through `FLOW_EVENTS`. Every way a
//! packet can miss the map lands in a counter.

use core::intrinsics::{AtomicOrdering::Relaxed, atomic_or, atomic_xadd};

use aya_ebpf::{bindings::BPF_NOEXIST, helpers::bpf_ktime_get_ns};
use observer_common::{FlowCounters, FlowEvent, FlowStats, counter, tcp_flag};

use crate::{
    maps::{COUNTERS, FLOW_EVENTS, FLOWS},
    parse::Packet,
};

/// Adds to one per-CPU counter. Programs do not nest on a CPU, so plain adds
/// are exact.
#[inline(always)]
pub fn count(index: u32, packets: u64, bytes: u64) {
    if let Some(counter) = COUNTERS.get_ptr_mut(index) {
        // SAFETY: a valid per-CPU slot, written only by this CPU.
        unsafe {
            (*counter).packets += packets;
            (*counter).bytes += bytes;
        }
    }
}

/// The packet as a one-packet flow seen at `now` (exact, nanoseconds).
#[inline(always)]
fn one_packet(packet: &Packet, now: u64) -> FlowStats {
    FlowStats {
        packets: u64::from(packet.segments),
        bytes: packet.bytes,
        first_seen_ns: now,
        last_seen_ns: now,
        tcp_flags: u64::from(packet.tcp_flags),
        syn_count: u64::from(packet.tcp_flags & tcp_flag::SYN != 0),
        fin_count: u64::from(packet.tcp_flags & tcp_flag::FIN != 0),
        rst_count: u64::from(packet.tcp_flags & tcp_flag::RST != 0),
    }
}

/// Accounts one packet seen at `jiffies`. Packets of known flows store only
/// the tick; a flow's first packet in the map, and a packet sent whole to
/// userspace, also read the exact clock (see `FlowCounters`).
#[inline(always)]
pub fn account_flow(packet: &Packet, jiffies: u64) {
    let segments = u64::from(packet.segments);
    if packet.non_first_fragment {
        count(counter::FRAGMENTS, segments, packet.bytes);
    }
    let Some(flows) = FLOWS.get(0) else {
        divert(packet);
        return;
    };
    if let Some(counters) = flows.get_ptr_mut(&packet.key) {
        add(counters, packet, jiffies);
        count(counter::FLOW_PACKETS, segments, packet.bytes);
        return;
    }
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    let flags = packet.tcp_flags;
    let fresh = FlowCounters {
        packets: segments,
        bytes: packet.bytes,
        first_seen_ns: now,
        first_seen_jiffies: jiffies,
        last_seen_jiffies: jiffies,
        tcp_flags: u64::from(flags),
        syn_count: u64::from(flags & tcp_flag::SYN != 0),
        fin_count: u64::from(flags & tcp_flag::FIN != 0),
        rst_count: u64::from(flags & tcp_flag::RST != 0),
    };
    match flows.insert(&packet.key, &fresh, u64::from(BPF_NOEXIST)) {
        Ok(()) => {
            count(counter::FLOW_PACKETS, segments, packet.bytes);
            return;
        }
        // EEXIST: another CPU created the entry between our lookup and insert.
        Err(_) => {
            if let Some(counters) = flows.get_ptr_mut(&packet.key) {
                add(counters, packet, jiffies);
                count(counter::FLOW_PACKETS, segments, packet.bytes);
                return;
            }
        }
    }
    divert(packet);
}

/// The map is full (E2BIG) or no map is installed: send the packet itself.
#[inline(always)]
fn divert(packet: &Packet) {
    let segments = u64::from(packet.segments);
    match FLOW_EVENTS.reserve(0) {
        Some(mut entry) => {
            // SAFETY: a helper without arguments.
            let now = unsafe { bpf_ktime_get_ns() };
            entry.write(FlowEvent {
                key: packet.key,
                stats: one_packet(packet, now),
            });
            entry.submit(0);
            count(counter::FLOW_MAP_FULL, segments, packet.bytes);
        }
        None => count(counter::FLOW_EVENTS_LOST, segments, packet.bytes),
    }
}

/// Adds one packet to a shared entry with atomic adds (several CPUs may
/// update one flow at once).
#[inline(always)]
fn add(counters: *mut FlowCounters, packet: &Packet, jiffies: u64) {
    // SAFETY: `counters` points at a live, 8-byte aligned map value; every
    // concurrent writer uses atomics or plain stores of monotonic values.
    unsafe {
        atomic_xadd::<u64, u64, { Relaxed }>(
            &raw mut (*counters).packets,
            u64::from(packet.segments),
        );
        atomic_xadd::<u64, u64, { Relaxed }>(&raw mut (*counters).bytes, packet.bytes);
        core::ptr::write_volatile(&raw mut (*counters).last_seen_jiffies, jiffies);
        let flags = u64::from(packet.tcp_flags);
        if flags != 0 {
            let seen = core::ptr::read_volatile(&raw const (*counters).tcp_flags);
            if seen & flags != flags {
                atomic_or::<u64, u64, { Relaxed }>(&raw mut (*counters).tcp_flags, flags);
            }
            if packet.tcp_flags & tcp_flag::SYN != 0 {
                atomic_xadd::<u64, u64, { Relaxed }>(&raw mut (*counters).syn_count, 1);
            }
            if packet.tcp_flags & tcp_flag::FIN != 0 {
                atomic_xadd::<u64, u64, { Relaxed }>(&raw mut (*counters).fin_count, 1);
            }
            if packet.tcp_flags & tcp_flag::RST != 0 {
                atomic_xadd::<u64, u64, { Relaxed }>(&raw mut (*counters).rst_count, 1);
            }
        }
    }
}
