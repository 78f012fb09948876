//! The two flow maps and the swap that drains them exactly.
//!
//! The kernel program writes to whichever map sits in `FLOWS[0]`. A drain
//! installs the other one; the kernel returns from that map-in-map update
//! only after an RCU grace period, when no program run can still hold the
//! old map. The retired map is then quiescent and is emptied with batch
//! lookup-and-delete: no increment can race the read, so nothing is lost or
//! counted twice.

use std::os::fd::AsFd;

use aya::maps::{Map, MapData, MapError, of_maps::ArrayOfMaps};
use aya_obj::generated::bpf_map_type::BPF_MAP_TYPE_HASH;
use observer_common::{FlowCounters, FlowKey, FlowStats};

use super::{
    CaptureError,
    batch::{self, BatchBuffers},
};

#[derive(Debug)]
pub struct FlowMaps {
    outer: ArrayOfMaps<MapData, MapData>,
    inner: [MapData; 2],
    active: usize,
    buffers: BatchBuffers<FlowKey, FlowCounters>,
    /// Length of one kernel tick, to turn `jiffies` into nanoseconds.
    tick_ns: u64,
}

impl FlowMaps {
    /// Creates two inner maps of `slots` entries and installs the first.
    pub fn new(outer: Map, slots: u32) -> Result<Self, CaptureError> {
        let map_err = |source: MapError| CaptureError::Map {
            map: "FLOWS",
            source,
        };
        let mut outer: ArrayOfMaps<MapData, MapData> = outer.try_into().map_err(map_err)?;
        let create = |name: &str| {
            let def = aya_obj::Map::new_from_params(
                BPF_MAP_TYPE_HASH as u32,
                size_of::<FlowKey>() as u32,
                size_of::<FlowCounters>() as u32,
                slots,
                0,
            );
            MapData::create(def, name, None).map_err(map_err)
        };
        let inner = [create("observer_flows0")?, create("observer_flows1")?];
        outer.set(0, &inner[0], 0).map_err(map_err)?;
        Ok(Self {
            outer,
            inner,
            active: 0,
            buffers: BatchBuffers::new(4096),
            tick_ns: tick_ns()?,
        })
    }

    /// Swaps the maps and hands every entry of the retired one to `sink`.
    pub fn drain(
        &mut self,
        mut sink: impl FnMut(&FlowKey, &FlowStats),
    ) -> Result<usize, CaptureError> {
        let retired = self.active;
        self.active ^= 1;
        self.outer
            .set(0, &self.inner[self.active], 0)
            .map_err(|source| CaptureError::Map {
                map: "FLOWS",
                source,
            })?;
        let tick_ns = self.tick_ns;
        batch::drain(
            self.inner[retired].fd().as_fd(),
            &mut self.buffers,
            |key, counters| sink(key, &counters.stats(tick_ns)),
        )
        .map_err(|source| CaptureError::Syscall {
            call: "BPF_MAP_LOOKUP_AND_DELETE_BATCH",
            source,
        })
    }
}

/// The length of one kernel tick (1/HZ), the unit of `jiffies`: the
/// resolution the kernel reports for CLOCK_MONOTONIC_COARSE, which advances
/// once per tick.
fn tick_ns() -> Result<u64, CaptureError> {
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
