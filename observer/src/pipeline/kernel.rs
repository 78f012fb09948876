//! The kernel edge of the live loop. The loop asks [`Kernel`] to drain the
//! flow maps, read the counters, forget an interface and detach, and waits
//! on its [`Sources`]: the flow-event and DNS rings ([`Ring`]) and the
//! namespace's link events ([`Links`]). `capture::Capture` implements them
//! over its maps, ring buffers (polled through tokio's `AsyncFd`) and
//! rtnetlink socket; the unit tests implement them over channels.
//!
//! A ring is read in two steps so a `tokio::select!` can wait on both rings
//! while the stages own the pipeline: [`Ring::ready`] waits (it borrows only
//! the ring), and the [`ReadyRing`] it yields hands items to a stage. A
//! ring read to the end is marked not ready in the same step, so an item
//! that arrives meanwhile still wakes the loop.

use std::{future::Future, io, ops::ControlFlow};

use aya::maps::{MapData, RingBuf};
use observer_common::{FlowKey, FlowStats};
use tokio::io::{
    Interest,
    unix::{AsyncFd, AsyncFdReadyMutGuard},
};

use super::RunError;
use crate::capture::{
    Capture, CaptureError, Counters,
    watch::{self, LinkEvents, LinkWatch},
};

/// Hands ring items to a stage; the stage breaks to stop reading.
pub(super) type ItemSink<'a> = dyn FnMut(&[u8]) -> ControlFlow<()> + 'a;

/// What the live loop needs of the kernel side.
pub(super) trait Kernel {
    type Ring: Ring;
    type Links: Links;

    /// Swaps the flow maps and hands every delta accounted since the
    /// previous drain to `sink` (a flow may come several times).
    fn drain_flows(
        &mut self,
        sink: &mut dyn FnMut(&FlowKey, &FlowStats),
    ) -> Result<usize, CaptureError>;
    /// The per-reason counters, summed over CPUs, cumulative.
    fn counters(&self) -> Result<Counters, CaptureError>;
    /// Lets go of an interface that disappeared.
    fn forget_interface(&mut self, ifindex: u32, name: &str);
    /// Detaches from every interface; the maps and rings stay readable.
    fn detach(&mut self);
    /// Whether an interface with this index exists in the capture's namespace.
    fn interface_exists(&self, ifindex: u32) -> bool;
    /// `tcx` or `tc`.
    fn attach_mode(&self) -> &'static str;
    /// The rings and link events to wait on (taken once, in the runtime).
    fn take_sources(&mut self) -> Result<Sources<Self::Ring, Self::Links>, RunError>;
}

/// What the loop waits on besides its timers and signals.
pub(super) struct Sources<R, L> {
    pub flow_events: R,
    /// `None` with DNS capture off.
    pub dns_events: Option<R>,
    /// `None` when the namespace's link events cannot be watched.
    pub links: Option<L>,
}

/// The sources of kernel `K`.
pub(super) type SourcesOf<K> = Sources<<K as Kernel>::Ring, <K as Kernel>::Links>;

/// A ring buffer of events from the kernel program.
pub(super) trait Ring {
    type Ready<'a>: ReadyRing
    where
        Self: 'a;

    /// Waits until the ring may hold items.
    fn ready(&mut self) -> impl Future<Output = io::Result<Self::Ready<'_>>>;
    /// Reads what the ring holds now, without waiting (after the detach).
    /// Returns whether the ring was read to the end.
    fn read_now(&mut self, sink: &mut ItemSink<'_>) -> bool;
}

/// A ring that was found ready.
pub(super) trait ReadyRing {
    /// Hands items to `sink` until it breaks or the ring is empty; returns
    /// whether the ring was read to the end (the next [`Ring::ready`] then
    /// waits for new items).
    fn read(&mut self, sink: &mut ItemSink<'_>) -> bool;
}

/// Link events of the capture's namespace.
pub(super) trait Links {
    /// Waits for link events and returns them; events the kernel dropped
    /// come back as `overflowed` (check every interface).
    fn changed(&mut self) -> impl Future<Output = io::Result<LinkEvents>>;
}

impl Kernel for Capture {
    type Ring = AsyncRing;
    type Links = AsyncFd<LinkWatch>;

    fn drain_flows(
        &mut self,
        sink: &mut dyn FnMut(&FlowKey, &FlowStats),
    ) -> Result<usize, CaptureError> {
        Capture::drain_flows(self, sink)
    }

    fn counters(&self) -> Result<Counters, CaptureError> {
        Capture::counters(self)
    }

    fn forget_interface(&mut self, ifindex: u32, name: &str) {
        Capture::forget_interface(self, ifindex, name);
    }

    fn detach(&mut self) {
        Capture::detach(self);
    }

    fn interface_exists(&self, ifindex: u32) -> bool {
        watch::exists(ifindex)
    }

    fn attach_mode(&self) -> &'static str {
        if self.uses_tcx() { "tcx" } else { "tc" }
    }

    fn take_sources(&mut self) -> Result<Sources<AsyncRing, AsyncFd<LinkWatch>>, RunError> {
        let register = |ring, what| {
            // SAFETY: the ring buffer owns its fd and keeps it open while registered.
            unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
                .map(AsyncRing)
                .map_err(|e| RunError::Io {
                    what,
                    source: e.into(),
                })
        };
        let flow_events = self.take_flow_events().expect("taken once");
        let flow_events = register(flow_events, "poll the flow-event ring buffer")?;
        let dns_events = self
            .take_dns_events()
            .map(|ring| register(ring, "poll the DNS ring buffer"))
            .transpose()?;
        let links = self.take_links().and_then(|links| {
            // SAFETY: `LinkWatch` owns its socket and keeps it open until dropped.
            unsafe { AsyncFd::register_with_interest(links, Interest::READABLE) }
                .inspect_err(|error| {
                    tracing::warn!("cannot poll link events ({error}); interfaces are not watched");
                })
                .ok()
        });
        Ok(Sources {
            flow_events,
            dns_events,
            links,
        })
    }
}

/// A kernel ring buffer registered with the runtime.
pub(super) struct AsyncRing(AsyncFd<RingBuf<MapData>>);

/// [`AsyncRing`] found ready.
pub(super) struct AsyncRingReady<'a>(AsyncFdReadyMutGuard<'a, RingBuf<MapData>>);

fn read_ring(ring: &mut RingBuf<MapData>, sink: &mut ItemSink<'_>) -> bool {
    loop {
        let Some(item) = ring.next() else {
            return true;
        };
        if sink(&item).is_break() {
            return false;
        }
    }
}

impl Ring for AsyncRing {
    type Ready<'a> = AsyncRingReady<'a>;

    async fn ready(&mut self) -> io::Result<AsyncRingReady<'_>> {
        Ok(AsyncRingReady(self.0.readable_mut().await?))
    }

    fn read_now(&mut self, sink: &mut ItemSink<'_>) -> bool {
        read_ring(self.0.get_mut(), sink)
    }
}

impl ReadyRing for AsyncRingReady<'_> {
    fn read(&mut self, sink: &mut ItemSink<'_>) -> bool {
        let emptied = read_ring(self.0.get_inner_mut(), sink);
        // Not emptied: stay ready and come back after whatever else is due.
        if emptied {
            self.0.clear_ready();
        }
        emptied
    }
}

impl Links for AsyncFd<LinkWatch> {
    async fn changed(&mut self) -> io::Result<LinkEvents> {
        let mut guard = self.readable_mut().await?;
        let events = guard.get_inner_mut().read().unwrap_or_else(|error| {
            tracing::warn!("reading link events failed ({error}); checking every interface");
            LinkEvents {
                deleted: Vec::new(),
                overflowed: true,
            }
        });
        guard.clear_ready();
        Ok(events)
    }
}
