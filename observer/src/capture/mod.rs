//! Kernel side of a capture: load the eBPF object, attach it to the watched
//! interfaces, and read back what it accounted (flow deltas, overflow
//! events, DNS messages, loss counters).
//!
//! [`Capture`] owns every kernel object it creates; dropping it detaches the
//! programs and frees the maps, on success, error and panic alike.

pub(crate) mod attach;
mod batch;
mod flow_maps;
pub(crate) mod iface;
pub(crate) mod limits;
pub(crate) mod netns;
pub(crate) mod privileges;
pub(crate) mod watch;

use aya::{
    EbpfError, EbpfLoader,
    maps::{MapData, MapError, PerCpuArray, RingBuf},
    programs::ProgramError,
};
use observer_common::{Counter, FlowKey, FlowStats, counter};
use thiserror::Error;

pub(crate) use self::{
    attach::{AttachMode, Attachments},
    iface::{Interface, InterfaceSpec, LinkKind},
};
use self::{
    flow_maps::{FlowMapHandles, FlowMaps},
    watch::LinkWatch,
};

/// The kernel program, built by `build.rs` (empty when the eBPF toolchain was
/// missing at build time).
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/observer"));

#[derive(Debug, Error)]
pub(crate) enum CaptureError {
    #[error(
        "this observer binary was built without its eBPF program (bpf-linker or nightly's rust-src \
         was missing at build time); run `cargo xtask build` and use target/release/observer"
    )]
    MissingObject,
    #[error("cannot load the eBPF object")]
    Object { source: EbpfError },
    #[error("the eBPF object has no program `{name}`")]
    MissingProgram { name: &'static str },
    #[error("the eBPF object has no map `{name}`")]
    MissingMap { name: &'static str },
    #[error("the kernel refused program `{program}`")]
    Load {
        program: &'static str,
        source: ProgramError,
    },
    #[error("cannot add a clsact qdisc to `{iface}`")]
    Qdisc {
        iface: String,
        source: aya::programs::tc::TcError,
    },
    #[error("cannot attach to {hook} of `{iface}`")]
    Attach {
        iface: String,
        hook: &'static str,
        source: ProgramError,
    },
    #[error("map `{map}` failed")]
    Map { map: &'static str, source: MapError },
    #[error(
        "the kernel would not create {what} for {flag} {value} ({} of kernel memory): {fix}",
        limits::human(*bytes)
    )]
    MapSize {
        flag: &'static str,
        value: u64,
        what: &'static str,
        bytes: u64,
        fix: &'static str,
        source: std::io::Error,
    },
    #[error(
        "the capture's maps need {} of kernel memory and this host has {} available; \
         {what} take the most ({flag} {value}: {}): choose a smaller {flag}",
        limits::human(*total),
        limits::human(*available),
        limits::human(*bytes)
    )]
    MapMemory {
        total: u64,
        available: u64,
        flag: &'static str,
        value: u64,
        what: &'static str,
        bytes: u64,
    },
    #[error("{call} failed")]
    Syscall {
        call: &'static str,
        source: std::io::Error,
    },
}

/// Sizes and switches of a capture.
#[derive(Clone, Debug)]
pub(crate) struct CaptureConfig {
    pub attach: AttachMode,
    /// Entries of each of the two flow maps.
    pub flow_map_size: u32,
    /// Slots of each CPU in each of the two flow caches (a power of two).
    pub flow_cache_slots: u32,
    /// Bytes of the ring buffer for packets that miss a full flow map.
    pub flow_ring_bytes: u32,
    /// Bytes of the DNS message ring buffer.
    pub dns_ring_bytes: u32,
    pub capture_dns: bool,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        Self {
            attach: AttachMode::Auto,
            flow_map_size: 65_536,
            flow_cache_slots: 4096,
            flow_ring_bytes: 8 << 20,
            dns_ring_bytes: 4 << 20,
            capture_dns: true,
        }
    }
}

/// Per-reason counters summed over CPUs, indexed like `observer_common::counter`.
pub(crate) type Counters = [Counter; counter::LEN as usize];

/// A running capture.
pub(crate) struct Capture {
    // Declared first so it drops first: detach before the maps go away.
    attachments: Option<Attachments>,
    tcx: bool,
    flow_maps: FlowMaps,
    counters: PerCpuArray<MapData, Counter>,
    flow_events: Option<RingBuf<MapData>>,
    dns_events: Option<RingBuf<MapData>>,
    /// Link events of the capture's namespace (`None`: cannot watch).
    links: Option<LinkWatch>,
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture")
            .field("attachments", &self.attachments)
            .field("flow_maps", &self.flow_maps)
            .finish_non_exhaustive()
    }
}

impl Capture {
    /// Loads the program, creates the maps, attaches to `interfaces`
    /// (resolved in the current network namespace) and subscribes to the
    /// namespace's link events.
    pub(crate) fn start(
        config: &CaptureConfig,
        interfaces: &[Interface],
    ) -> Result<Self, CaptureError> {
        if EBPF_OBJECT.is_empty() {
            return Err(CaptureError::MissingObject);
        }
        privileges::raise_memlock_limit();
        let cpus = limits::possible_cpus()?;
        if let Some(available) = limits::memory_available() {
            limits::check_memory(&limits::needs(config, cpus), available)?;
        }
        let capture_dns = u8::from(config.capture_dns);
        let cache_mask = config.flow_cache_slots - 1;
        let tick_ns = flow_maps::tick_ns()?;
        let cache_entries = flow_maps::cache_entries(config.flow_cache_slots, cpus)?;
        let mut ebpf = EbpfLoader::new()
            .override_global("CAPTURE_DNS", &capture_dns, true)
            .override_global("FLOW_CACHE_MASK", &cache_mask, true)
            .override_global("TICK_NS", &tick_ns, true)
            .map_max_entries("FLOW_CACHE_0", cache_entries)
            .map_max_entries("FLOW_CACHE_1", cache_entries)
            .map_max_entries("FLOW_EVENTS", config.flow_ring_bytes)
            .map_max_entries("DNS_EVENTS", config.dns_ring_bytes)
            .load(EBPF_OBJECT)
            .map_err(|source| match source {
                EbpfError::MapError(MapError::CreateError { name, io_error }) => {
                    match limits::sized_by(&name, config, cpus) {
                        Some(need) => limits::map_error(need, io_error),
                        None => CaptureError::Object {
                            source: EbpfError::MapError(MapError::CreateError { name, io_error }),
                        },
                    }
                }
                source => CaptureError::Object { source },
            })?;
        let mut take =
            |name: &'static str| ebpf.take_map(name).ok_or(CaptureError::MissingMap { name });
        let map_err = |map: &'static str| move |source| CaptureError::Map { map, source };
        // The flow map is installed before anything is attached.
        let handles = FlowMapHandles {
            flows: take("FLOWS")?,
            caches: [take("FLOW_CACHE_0")?, take("FLOW_CACHE_1")?],
            select: take("CACHE_SELECT")?,
        };
        let flow_maps = FlowMaps::new(handles, config, cpus, tick_ns)?;
        let counters = PerCpuArray::try_from(take("COUNTERS")?).map_err(map_err("COUNTERS"))?;
        let flow_events =
            RingBuf::try_from(take("FLOW_EVENTS")?).map_err(map_err("FLOW_EVENTS"))?;
        let dns_events = RingBuf::try_from(take("DNS_EVENTS")?).map_err(map_err("DNS_EVENTS"))?;
        let attachments = attach::attach(&mut ebpf, interfaces, config.attach)?;
        let links = LinkWatch::open()
            .inspect_err(|e| {
                tracing::warn!("cannot watch for interfaces that disappear (rtnetlink: {e})");
            })
            .ok();
        Ok(Self {
            tcx: attachments.tcx,
            attachments: Some(attachments),
            flow_maps,
            counters,
            flow_events: Some(flow_events),
            dns_events: config.capture_dns.then_some(dns_events),
            links,
        })
    }

    /// Whether the programs sit on TCX links (else clsact filters).
    pub(crate) fn uses_tcx(&self) -> bool {
        self.tcx
    }

    /// Detaches from every interface; the maps stay readable for a final drain.
    pub(crate) fn detach(&mut self) {
        self.attachments = None;
    }

    /// Lets go of an interface that disappeared (see [`watch`]).
    pub(crate) fn forget_interface(&mut self, ifindex: u32, name: &str) {
        if let Some(attachments) = &mut self.attachments {
            attachments.forget(ifindex, name);
        }
    }

    /// Hands every flow delta accounted since the previous drain to `sink`.
    pub(crate) fn drain_flows(
        &mut self,
        sink: impl FnMut(&FlowKey, &FlowStats),
    ) -> Result<usize, CaptureError> {
        self.flow_maps.drain(sink)
    }

    /// Sums the per-CPU counters (cumulative since the program was loaded).
    pub(crate) fn counters(&self) -> Result<Counters, CaptureError> {
        let mut totals = [Counter::default(); counter::LEN as usize];
        for (index, total) in (0..counter::LEN).zip(&mut totals) {
            let per_cpu = self
                .counters
                .get(&index, 0)
                .map_err(|source| CaptureError::Map {
                    map: "COUNTERS",
                    source,
                })?;
            for value in per_cpu.iter() {
                *total += *value;
            }
        }
        Ok(totals)
    }

    /// The ring buffer of packets that missed a full flow map (taken once).
    pub(crate) fn take_flow_events(&mut self) -> Option<RingBuf<MapData>> {
        self.flow_events.take()
    }

    /// The DNS message ring buffer (taken once; `None` with DNS capture off).
    pub(crate) fn take_dns_events(&mut self) -> Option<RingBuf<MapData>> {
        self.dns_events.take()
    }

    /// The link-event socket (taken once; `None` when it could not be opened).
    pub(crate) fn take_links(&mut self) -> Option<LinkWatch> {
        self.links.take()
    }
}
