//! The flow maps and the swap that drains them exactly.
//!
//! The kernel program counts packets in whichever flow cache (an array of
//! `cache_slots` slots per CPU, CPU after CPU) `CACHE_SELECT[0]` names and merges the cache slots it evicts into
//! whichever flow map sits in `FLOWS[0]`. A drain selects the other cache,
//! then installs the other map: the kernel returns from that map-in-map
//! update only after an RCU grace period, when no program run can still hold
//! the old cache or the old map. Both are then quiescent; the cache is read
//! and reset, the map emptied with batch lookup-and-delete. No increment can
//! race the reads, so nothing is lost or counted twice.

use std::os::fd::AsFd;

use aya::maps::{Array, Map, MapData, MapError, of_maps::ArrayOfMaps};
use aya_obj::generated::bpf_map_type::BPF_MAP_TYPE_HASH;
use observer_common::{CachedFlow, FlowKey, FlowStats};

use super::{
    CaptureConfig, CaptureError,
    batch::{self, BatchBuffers, PerCpuArrayBuffers},
    limits,
};

/// The kernel-side maps of the flows, as `Capture::start` takes them.
pub(super) struct FlowMapHandles {
    pub flows: Map,
    pub caches: [Map; 2],
    pub select: Map,
}

pub(super) struct FlowMaps {
    outer: ArrayOfMaps<MapData, MapData>,
    inner: [MapData; 2],
    caches: [MapData; 2],
    select: Array<MapData, u32>,
    active: usize,
    buffers: BatchBuffers<FlowKey, FlowStats>,
    cache_buffers: PerCpuArrayBuffers<CachedFlow>,
    /// Length of one kernel tick, to turn `jiffies` into nanoseconds.
    tick_ns: u64,
}

impl std::fmt::Debug for FlowMaps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowMaps")
            .field("inner", &self.inner)
            .field("caches", &self.caches)
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

impl FlowMaps {
    /// Creates two inner maps of `--flow-map-size` entries and installs the
    /// first; the caches have `--flow-cache-slots` slots on each of `cpus`
    /// possible CPUs; `tick_ns` is [`tick_ns`].
    pub(super) fn new(
        maps: FlowMapHandles,
        config: &CaptureConfig,
        cpus: usize,
        tick_ns: u64,
    ) -> Result<Self, CaptureError> {
        let map_err = |map: &'static str| move |source: MapError| CaptureError::Map { map, source };
        let mut outer: ArrayOfMaps<MapData, MapData> =
            maps.flows.try_into().map_err(map_err("FLOWS"))?;
        let create = |name: &str| {
            let def = aya_obj::Map::new_from_params(
                BPF_MAP_TYPE_HASH as u32,
                size_of::<FlowKey>() as u32,
                size_of::<FlowStats>() as u32,
                config.flow_map_size,
                0,
            );
            MapData::create(def, name, None).map_err(|source| match source {
                MapError::CreateError { name, io_error } => {
                    match limits::sized_by(&name, config, cpus) {
                        Some(need) => limits::map_error(need, io_error),
                        None => map_err("FLOWS")(MapError::CreateError { name, io_error }),
                    }
                }
                source => map_err("FLOWS")(source),
            })
        };
        let inner = [create("observer_flows0")?, create("observer_flows1")?];
        outer.set(0, &inner[0], 0).map_err(map_err("FLOWS"))?;
        let [cache0, cache1] = maps.caches;
        let array = |map: Map, name: &'static str| match map {
            Map::Array(data) => Ok(data),
            _ => Err(CaptureError::MissingMap { name }),
        };
        Ok(Self {
            outer,
            inner,
            caches: [
                array(cache0, "FLOW_CACHE_0")?,
                array(cache1, "FLOW_CACHE_1")?,
            ],
            select: maps.select.try_into().map_err(map_err("CACHE_SELECT"))?,
            active: 0,
            buffers: BatchBuffers::new(4096),
            // A plain array: one value per index.
            cache_buffers: PerCpuArrayBuffers::new(
                cache_entries(config.flow_cache_slots, cpus)?,
                1,
            ),
            tick_ns,
        })
    }

    /// Swaps the caches and the maps and hands every entry of the retired
    /// ones to `sink` (a flow may come several times: once per CPU cache
    /// and once from the map).
    pub(super) fn drain(
        &mut self,
        mut sink: impl FnMut(&FlowKey, &FlowStats),
    ) -> Result<usize, CaptureError> {
        let retired = self.active;
        self.active ^= 1;
        self.select
            .set(0, self.active as u32, 0)
            .map_err(|source| CaptureError::Map {
                map: "CACHE_SELECT",
                source,
            })?;
        // The grace period of this update covers the cache switch too.
        self.outer
            .set(0, &self.inner[self.active], 0)
            .map_err(|source| CaptureError::Map {
                map: "FLOWS",
                source,
            })?;
        let syscall = |call| move |source| CaptureError::Syscall { call, source };
        let cache = self.caches[retired].fd().as_fd();
        let tick_ns = self.tick_ns;
        let mut cached = 0;
        batch::read_per_cpu_array(cache, &mut self.cache_buffers, |slot: &CachedFlow| {
            if slot.counters.packets > 0 {
                sink(&slot.key, &slot.counters.stats(tick_ns));
                cached += 1;
            }
        })
        .map_err(syscall("BPF_MAP_LOOKUP_BATCH"))?;
        batch::zero_per_cpu_array(cache, &mut self.cache_buffers)
            .map_err(syscall("BPF_MAP_UPDATE_BATCH"))?;
        let merged = batch::drain(self.inner[retired].fd().as_fd(), &mut self.buffers, sink)
            .map_err(syscall("BPF_MAP_LOOKUP_AND_DELETE_BATCH"))?;
        Ok(cached + merged)
    }
}
/// Entries of a flow cache array: `slots` for each of `cpus` possible CPUs.
pub(super) fn cache_entries(slots: u32, cpus: usize) -> Result<u32, CaptureError> {
    u32::try_from(cpus)
        .ok()
        .and_then(|cpus| cpus.checked_mul(slots))
        .ok_or_else(|| CaptureError::Syscall {
            call: "sizing the flow caches",
            source: std::io::Error::other(format!(
                "{slots} slots × {cpus} CPUs is more than a BPF array holds; lower --flow-cache-slots"
            )),
        })
}

/// The length of one kernel tick (1/HZ), the unit of `jiffies`: the
/// resolution the kernel reports for CLOCK_MONOTONIC_COARSE, which advances
/// once per tick.
pub(super) fn tick_ns() -> Result<u64, CaptureError> {
    let mut res = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `res` is a valid, writable timespec.
    if unsafe { libc::clock_getres(libc::CLOCK_MONOTONIC_COARSE, &mut res) } != 0 {
        return Err(CaptureError::Syscall {
            call: "clock_getres(CLOCK_MONOTONIC_COARSE)",
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(res.tv_sec as u64 * 1_000_000_000 + res.tv_nsec as u64)
}
