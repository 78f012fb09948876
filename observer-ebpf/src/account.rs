//! Flow accounting. A packet adds to its flow's slot in the per-CPU flow
//! cache: inlined lookups, plain adds, no helper call. A flow that finds its
//! slot taken evicts the occupant into the shared flow map; when that map is
//! full, the evicted record travels whole to userspace through `FLOW_EVENTS`,
//! and when that ring is full too, its packets are counted as lost.

use core::intrinsics::{AtomicOrdering::Relaxed, atomic_or, atomic_xadd};

use aya_ebpf::{bindings::BPF_NOEXIST, helpers::bpf_ktime_get_ns};
use observer_common::{CachedFlow, FlowCounters, FlowEvent, FlowKey, FlowStats, counter, tcp_flag};

use crate::{
    maps::{
        CACHE_SELECT, COUNTERS, FLOW_CACHE_0, FLOW_CACHE_1, FLOW_CACHE_MASK, FLOW_EVENTS, FLOWS,
        TICK_NS, global,
    },
    parse::Packet,
};

const KEY_WORDS: usize = size_of::<FlowKey>() / 8;
const _: () = assert!(size_of::<FlowKey>() % 8 == 0 && align_of::<FlowKey>() == 8);

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

/// Accounts one flow packet seen at `jiffies`.
#[inline(always)]
pub fn account_flow(packet: &Packet, jiffies: u64) {
    let segments = u64::from(packet.segments);
    count(counter::FLOW_PACKETS, segments, packet.bytes);
    if packet.non_first_fragment {
        count(counter::FRAGMENTS, segments, packet.bytes);
    }
    let Some(slot) = cache_slot(&packet.key) else {
        // Unreachable (the index is masked to the cache size), but never
        // drop a packet: account it straight in the flow map.
        // SAFETY: a helper without arguments.
        let now = unsafe { bpf_ktime_get_ns() };
        evict(
            &packet.key,
            &fresh(packet, now, jiffies).stats(global(&TICK_NS)),
        );
        return;
    };
    // SAFETY: a valid per-CPU slot; programs do not nest on a CPU, so this
    // run is its only user.
    let slot = unsafe { &mut *slot };
    let counters = &mut slot.counters;
    if counters.packets != 0 {
        if same_key(&slot.key, &packet.key) {
            counters.packets += segments;
            counters.bytes += packet.bytes;
            counters.last_seen_jiffies = jiffies;
            let flags = packet.tcp_flags;
            if flags != 0 {
                counters.tcp_flags |= u64::from(flags);
                counters.syn_count += u64::from(flags & tcp_flag::SYN != 0);
                counters.fin_count += u64::from(flags & tcp_flag::FIN != 0);
                counters.rst_count += u64::from(flags & tcp_flag::RST != 0);
            }
            return;
        }
        evict(&slot.key, &counters.stats(global(&TICK_NS)));
    }
    // A flow's first packet in the slot reads the exact clock.
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    copy_key(&mut slot.key, &packet.key);
    slot.counters = fresh(packet, now, jiffies);
}

/// This CPU's cache slot for `key` in the cache userspace has selected.
#[inline(always)]
fn cache_slot(key: &FlowKey) -> Option<*mut CachedFlow> {
    let words = (key as *const FlowKey).cast::<u64>();
    let mut hash = 0u64;
    for i in 0..KEY_WORDS {
        // SAFETY: `i` words lie inside the 8-byte aligned key.
        hash = (hash ^ unsafe { *words.add(i) }).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    let index = (hash >> 32) as u32 & global(&FLOW_CACHE_MASK);
    match CACHE_SELECT.get(0) {
        Some(1) => FLOW_CACHE_1.get_ptr_mut(index),
        _ => FLOW_CACHE_0.get_ptr_mut(index),
    }
}

/// Word-wise key comparison (a byte-wise `==` costs a call here).
#[inline(always)]
fn same_key(a: &FlowKey, b: &FlowKey) -> bool {
    let (a, b) = (
        (a as *const FlowKey).cast::<u64>(),
        (b as *const FlowKey).cast::<u64>(),
    );
    let mut diff = 0u64;
    for i in 0..KEY_WORDS {
        // SAFETY: `i` words lie inside both 8-byte aligned keys.
        diff |= unsafe { *a.add(i) ^ *b.add(i) };
    }
    diff == 0
}

/// Word-wise key copy (a struct assignment compiles to a byte-wise memmove call).
#[inline(always)]
fn copy_key(dst: &mut FlowKey, src: &FlowKey) {
    let (dst, src) = (
        (dst as *mut FlowKey).cast::<u64>(),
        (src as *const FlowKey).cast::<u64>(),
    );
    for i in 0..KEY_WORDS {
        // SAFETY: `i` words lie inside both 8-byte aligned keys; volatile
        // keeps LLVM from turning the loop back into a memmove call.
        unsafe { dst.add(i).write_volatile(*src.add(i)) };
    }
}

/// The packet as the first of a cache slot, at `now` (ns) and `jiffies`.
#[inline(always)]
fn fresh(packet: &Packet, now: u64, jiffies: u64) -> FlowCounters {
    let flags = packet.tcp_flags;
    FlowCounters {
        packets: u64::from(packet.segments),
        bytes: packet.bytes,
        first_seen_ns: now,
        first_seen_jiffies: jiffies,
        last_seen_jiffies: jiffies,
        tcp_flags: u64::from(flags),
        syn_count: u64::from(flags & tcp_flag::SYN != 0),
        fin_count: u64::from(flags & tcp_flag::FIN != 0),
        rst_count: u64::from(flags & tcp_flag::RST != 0),
    }
}

/// Merges an evicted record into the shared flow map, or, when the map is
/// full (E2BIG) or missing, sends it whole to userspace.
#[inline(always)]
fn evict(key: &FlowKey, record: &FlowStats) {
    let Some(flows) = FLOWS.get(0) else {
        divert(key, record);
        return;
    };
    if let Some(entry) = flows.get_ptr_mut(key) {
        merge(entry, record);
        return;
    }
    if flows.insert(key, record, u64::from(BPF_NOEXIST)).is_ok() {
        return;
    }
    // EEXIST: another CPU created the entry between our lookup and insert.
    if let Some(entry) = flows.get_ptr_mut(key) {
        merge(entry, record);
        return;
    }
    divert(key, record);
}

#[inline(always)]
fn divert(key: &FlowKey, record: &FlowStats) {
    match FLOW_EVENTS.reserve(0) {
        Some(mut entry) => {
            entry.write(FlowEvent {
                key: *key,
                stats: *record,
            });
            entry.submit(0);
            count(counter::FLOW_MAP_FULL, record.packets, record.bytes);
        }
        None => count(counter::FLOW_EVENTS_LOST, record.packets, record.bytes),
    }
}

/// Adds a record to a shared entry: atomic adds for the counts (several CPUs
/// may evict the same flow at once); the times only widen.
#[inline(always)]
fn merge(entry: *mut FlowStats, record: &FlowStats) {
    // SAFETY: `entry` points at a live, 8-byte aligned map value; every
    // concurrent writer uses atomics or single-word stores.
    unsafe {
        atomic_xadd::<u64, u64, { Relaxed }>(&raw mut (*entry).packets, record.packets);
        atomic_xadd::<u64, u64, { Relaxed }>(&raw mut (*entry).bytes, record.bytes);
        if record.first_seen_ns < core::ptr::read_volatile(&raw const (*entry).first_seen_ns) {
            core::ptr::write_volatile(&raw mut (*entry).first_seen_ns, record.first_seen_ns);
        }
        if record.last_seen_ns > core::ptr::read_volatile(&raw const (*entry).last_seen_ns) {
            core::ptr::write_volatile(&raw mut (*entry).last_seen_ns, record.last_seen_ns);
        }
        if record.tcp_flags != 0 {
            atomic_or::<u64, u64, { Relaxed }>(&raw mut (*entry).tcp_flags, record.tcp_flags);
            atomic_xadd::<u64, u64, { Relaxed }>(&raw mut (*entry).syn_count, record.syn_count);
            atomic_xadd::<u64, u64, { Relaxed }>(&raw mut (*entry).fin_count, record.fin_count);
            atomic_xadd::<u64, u64, { Relaxed }>(&raw mut (*entry).rst_count, record.rst_count);
        }
    }
}
