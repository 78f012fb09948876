//! Flow accounting. A packet adds to its flow's slot in this CPU's flow
//! cache: inlined lookups, plain adds, no helper call. A flow that finds its
//! slot empty or taken goes to [`observer_take_slot`], which evicts the
//! occupant into the shared flow map; when that map is full, the evicted
//! record travels whole to userspace through `FLOW_EVENTS`, and when that
//! ring is full too, its packets are counted as lost.

use core::intrinsics::{AtomicOrdering::Relaxed, atomic_or, atomic_xadd};

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{bpf_get_smp_processor_id, bpf_ktime_get_ns},
};
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

/// Odd 64-bit multipliers, one per key word, for [`cache_slot`]'s hash.
const HASH_KEYS: [u64; KEY_WORDS] = [
    0x9e37_79b9_7f4a_7c15,
    0xbf58_476d_1ce4_e5b9,
    0x94d0_49bb_1331_11eb,
    0xd6e8_feb8_6659_fd93,
    0xa076_1d64_78bd_642f,
    0xe703_7ed1_a0b4_28db,
];

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
    if packet.non_first_fragment != 0 {
        count(counter::FRAGMENTS, segments, packet.bytes);
    }
    let Some(slot) = cache_slot(&packet.key) else {
        // Unreachable (the index is within the cache), but never drop a
        // packet: account it straight in the flow map.
        observer_take_slot(core::ptr::null_mut(), packet, jiffies);
        return;
    };
    // SAFETY: a valid slot of this CPU's cache; programs do not nest on a
    // CPU, so this run is its only writer.
    let cached = unsafe { &mut *slot };
    let counters = &mut cached.counters;
    if counters.packets != 0 && same_key(&cached.key, &packet.key) {
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
    observer_take_slot(slot, packet, jiffies);
}

/// This CPU's cache slot for `key` in the cache userspace has selected.
///
/// The hash multiplies each key word by its own constant (the products do
/// not wait on each other) and takes the slot from the sum's top bits,
/// which every bit of every word reaches.
#[inline(always)]
fn cache_slot(key: &FlowKey) -> Option<*mut CachedFlow> {
    let words = (key as *const FlowKey).cast::<u64>();
    let mut hash = 0u64;
    for (i, multiplier) in HASH_KEYS.iter().enumerate() {
        // SAFETY: `i` words lie inside the 8-byte aligned key.
        hash = hash.wrapping_add(unsafe { *words.add(i) }.wrapping_mul(*multiplier));
    }
    let slots = u64::from(global(&FLOW_CACHE_MASK)) + 1;
    // The top 32 bits scaled to 0..slots.
    let index = (((hash >> 32) * slots) >> 32) as u32;
    // SAFETY: a helper without arguments (inlined by the JIT).
    let cpu = unsafe { bpf_get_smp_processor_id() };
    let index = cpu * slots as u32 + index;
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

/// Gives `slot` to the packet's flow: the occupant, if any, goes to the
/// shared flow map first. With no slot (null), the packet goes straight to
/// the map. A global function: verified once, and called only when a flow
/// takes a slot, so the common packet pays no call.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn observer_take_slot(
    slot: *mut CachedFlow,
    packet: *const Packet,
    jiffies: u64,
) -> i32 {
    // The verifier passes a global function's pointer arguments as possibly null.
    if packet.is_null() {
        return 0;
    }
    // SAFETY: a valid packet, per the caller.
    let packet = unsafe { &*packet };
    // A flow's first packet in the slot reads the exact clock.
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    let tick_ns = global(&TICK_NS);
    if slot.is_null() {
        evict(&packet.key, &fresh(packet, now, jiffies).stats(tick_ns));
        return 0;
    }
    // SAFETY: a valid slot of this CPU's cache, per the caller.
    let slot = unsafe { &mut *slot };
    if slot.counters.packets != 0 {
        evict(&slot.key, &slot.counters.stats(tick_ns));
    }
    copy_key(&mut slot.key, &packet.key);
    slot.counters = fresh(packet, now, jiffies);
    0
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
