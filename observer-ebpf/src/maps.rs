//! The program's maps and load-time globals. Names are the contract with
//! userspace (`observer::capture`).

use aya_ebpf::{
    btf_maps::{ArrayOfMaps, HashMap, PerCpuArray, RingBuf},
    macros::btf_map,
};
use observer_common::{Counter, DnsEvent, FlowCounters, FlowEvent, FlowKey, counter};

/// Template of the flow maps. Userspace creates the real inner maps (sized by
/// `--flow-map-size`; the kernel does not compare `max_entries` of hash inner
/// maps) and swaps them in and out of `FLOWS[0]`.
pub type FlowMap = HashMap<FlowKey, FlowCounters, 1>;

/// Slot 0 holds the flow map the program writes to. Userspace drains by
/// installing the other map: the update returns only after every program run
/// that could still see the old map has finished (the kernel waits for an RCU
/// grace period on map-in-map updates), so the drained map is quiescent and
/// the drain is exact.
#[btf_map]
pub static FLOWS: ArrayOfMaps<FlowMap, 1> = ArrayOfMaps::new();

/// Per-reason packet and byte counters, see `observer_common::counter`.
#[btf_map]
pub static COUNTERS: PerCpuArray<Counter, { counter::LEN as usize }> = PerCpuArray::new();

/// Packets that did not fit in the flow map, one event each (size set by userspace).
#[btf_map]
pub static FLOW_EVENTS: RingBuf<FlowEvent, { 1 << 22 }> = RingBuf::new();

/// DNS messages (size set by userspace).
#[btf_map]
pub static DNS_EVENTS: RingBuf<DnsEvent, { 1 << 20 }> = RingBuf::new();

/// Load-time switch: copy DNS messages to `DNS_EVENTS` (1) or not (0).
#[unsafe(no_mangle)]
pub static CAPTURE_DNS: u8 = 0;

/// Reads a load-time global without letting the compiler fold its initial value.
#[inline(always)]
pub fn global(value: &'static u8) -> u8 {
    // SAFETY: a valid, aligned static; the loader rewrites it before load.
    unsafe { core::ptr::read_volatile(value) }
}
