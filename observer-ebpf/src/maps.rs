//! The program's maps and load-time globals. Names are the contract with
//! userspace (`observer::capture`).

use aya_ebpf::{
    bindings::BPF_F_MMAPABLE,
    btf_maps::{Array, ArrayOfMaps, HashMap, PerCpuArray, RingBuf},
    macros::btf_map,
};
use observer_common::{CachedFlow, Counter, DnsEvent, FlowEvent, FlowKey, FlowStats, counter};

/// Template of the flow maps. Userspace creates the real inner maps (sized by
/// `--flow-map-size`; the kernel does not compare `max_entries` of hash inner
/// maps) and swaps them in and out of `FLOWS[0]`.
pub type FlowMap = HashMap<FlowKey, FlowStats, 1>;

/// Slot 0 holds the flow map the program merges evicted cache slots into.
/// Userspace drains by installing the other map: the update returns only
/// after every program run that could still see the old map has finished
/// (the kernel waits for an RCU grace period on map-in-map updates), so the
/// drained map is quiescent and the drain is exact.
#[btf_map]
pub static FLOWS: ArrayOfMaps<FlowMap, 1> = ArrayOfMaps::new();

/// The flow caches: for each CPU a direct-mapped table of
/// `FLOW_CACHE_MASK + 1` slots, CPU after CPU in one array (size set by
/// userspace: slots × possible CPUs). The program writes to the one
/// `CACHE_SELECT[0]` names; userspace flips the selector before it swaps
/// `FLOWS`, whose grace period then covers both, and reads the retired cache.
///
/// A CPU writes only its own slots, so updates need no atomics. A plain
/// array rather than a per-CPU one: its lookup, inlined, is one multiply
/// and add where a per-CPU array's reads a pointer per slot first, and
/// `BPF_F_MMAPABLE` page-aligns the values, so a 128-byte slot is two whole
/// cache lines.
#[btf_map]
pub static FLOW_CACHE_0: Array<CachedFlow, 1, { BPF_F_MMAPABLE as usize }> = Array::new();
#[btf_map]
pub static FLOW_CACHE_1: Array<CachedFlow, 1, { BPF_F_MMAPABLE as usize }> = Array::new();
#[btf_map]
pub static CACHE_SELECT: Array<u32, 1> = Array::new();

/// Per-reason packet and byte counters, see `observer_common::counter`.
#[btf_map]
pub static COUNTERS: PerCpuArray<Counter, { counter::LEN as usize }> = PerCpuArray::new();

/// Evicted flow records that did not fit in the flow map, one event each
/// (size set by userspace).
#[btf_map]
pub static FLOW_EVENTS: RingBuf<FlowEvent, { 1 << 22 }> = RingBuf::new();

/// DNS messages (size set by userspace).
#[btf_map]
pub static DNS_EVENTS: RingBuf<DnsEvent, { 1 << 20 }> = RingBuf::new();

/// Load-time switch: copy DNS messages to `DNS_EVENTS` (1) or not (0).
#[unsafe(no_mangle)]
pub static CAPTURE_DNS: u8 = 0;

/// Load-time: slots of each CPU's flow cache minus one (a power of two minus one).
#[unsafe(no_mangle)]
pub static FLOW_CACHE_MASK: u32 = 0;

/// Load-time: the length of one kernel tick (`jiffies`) in nanoseconds.
#[unsafe(no_mangle)]
pub static TICK_NS: u64 = 0;

/// Reads a load-time global without letting the compiler fold its initial value.
#[inline(always)]
pub fn global<T: Copy>(value: &'static T) -> T {
    // SAFETY: a valid, aligned static; the loader rewrites it before load.
    unsafe { core::ptr::read_volatile(value) }
}
