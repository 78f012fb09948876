//! A kernel made of vectors and channels, for the loop's unit tests: the
//! test puts flow deltas where the next drain finds them, sends ring items
//! and link events, and reads back what the loop asked of the kernel.
//! Everything runs on one thread (the test's current-thread runtime).

use std::{
    cell::RefCell,
    collections::{HashSet, VecDeque},
    io,
    rc::Rc,
};

use observer_common::{FlowKey, FlowStats, counter};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::{
    RunError,
    kernel::{ItemSink, Kernel, Links, ReadyRing, Ring, Sources},
};
use crate::capture::{CaptureError, Counters, watch::LinkEvents};

/// The kernel's state as the test sets and reads it.
#[derive(Debug, Default)]
pub(super) struct State {
    /// Deltas the next drain hands over.
    pub pending: Vec<(FlowKey, FlowStats)>,
    pub counters: Counters,
    /// Interface indexes that exist in the namespace.
    pub existing: HashSet<u32>,
    /// Interfaces the loop let go of, in order.
    pub forgotten: Vec<u32>,
    pub detached: bool,
    pub drains: usize,
}

/// The test's end: shared state and the senders of the rings and links.
#[derive(Debug)]
pub(super) struct Handle {
    pub state: Rc<RefCell<State>>,
    pub flow_events: UnboundedSender<Vec<u8>>,
    pub dns_events: UnboundedSender<Vec<u8>>,
    pub links: UnboundedSender<LinkEvents>,
}

impl Handle {
    /// Accounts `delta` for the next drain, as the kernel would (the flow
    /// packet counter follows).
    pub(super) fn account(&self, key: FlowKey, delta: FlowStats) {
        let mut state = self.state.borrow_mut();
        let total = &mut state.counters[counter::FLOW_PACKETS as usize];
        total.packets += delta.packets;
        total.bytes += delta.bytes;
        state.pending.push((key, delta));
    }

    /// Deletes interface `ifindex` and reports it (or, with `overflowed`,
    /// reports only that events were dropped).
    pub(super) fn delete_interface(&self, ifindex: u32, overflowed: bool) {
        self.state.borrow_mut().existing.remove(&ifindex);
        let events = LinkEvents {
            deleted: if overflowed {
                Vec::new()
            } else {
                vec![ifindex]
            },
            overflowed,
        };
        self.links.send(events).expect("the loop is running");
    }
}

/// The loop's end.
pub(super) struct FakeKernel {
    state: Rc<RefCell<State>>,
    sources: Option<Sources<FakeRing, FakeLinks>>,
}

/// A kernel whose interfaces `ifindexes` exist, and the test's handle on it.
pub(super) fn kernel(ifindexes: &[u32]) -> (FakeKernel, Handle) {
    let state = Rc::new(RefCell::new(State {
        existing: ifindexes.iter().copied().collect(),
        ..State::default()
    }));
    let (flow_tx, flow_rx) = unbounded_channel();
    let (dns_tx, dns_rx) = unbounded_channel();
    let (links_tx, links_rx) = unbounded_channel();
    let kernel = FakeKernel {
        state: state.clone(),
        sources: Some(Sources {
            flow_events: FakeRing::new(flow_rx),
            dns_events: Some(FakeRing::new(dns_rx)),
            links: Some(FakeLinks(links_rx)),
        }),
    };
    let handle = Handle {
        state,
        flow_events: flow_tx,
        dns_events: dns_tx,
        links: links_tx,
    };
    (kernel, handle)
}

impl Kernel for FakeKernel {
    type Ring = FakeRing;
    type Links = FakeLinks;

    fn drain_flows(
        &mut self,
        sink: &mut dyn FnMut(&FlowKey, &FlowStats),
    ) -> Result<usize, CaptureError> {
        let mut state = self.state.borrow_mut();
        state.drains += 1;
        let pending = std::mem::take(&mut state.pending);
        for (key, delta) in &pending {
            sink(key, delta);
        }
        Ok(pending.len())
    }

    fn counters(&self) -> Result<Counters, CaptureError> {
        Ok(self.state.borrow().counters)
    }

    fn forget_interface(&mut self, ifindex: u32, _: &str) {
        self.state.borrow_mut().forgotten.push(ifindex);
    }

    fn detach(&mut self) {
        self.state.borrow_mut().detached = true;
    }

    fn interface_exists(&self, ifindex: u32) -> bool {
        self.state.borrow().existing.contains(&ifindex)
    }

    fn attach_mode(&self) -> &'static str {
        "tcx"
    }

    fn take_sources(&mut self) -> Result<Sources<FakeRing, FakeLinks>, RunError> {
        Ok(self.sources.take().expect("taken once"))
    }
}

/// A ring fed by a channel; a closed channel is a quiet ring.
#[derive(Debug)]
pub(super) struct FakeRing {
    rx: UnboundedReceiver<Vec<u8>>,
    /// Received while waiting for readiness, not read yet.
    buffered: VecDeque<Vec<u8>>,
}

impl FakeRing {
    fn new(rx: UnboundedReceiver<Vec<u8>>) -> Self {
        Self {
            rx,
            buffered: VecDeque::new(),
        }
    }

    fn read_items(&mut self, sink: &mut ItemSink<'_>) -> bool {
        loop {
            let item = match self.buffered.pop_front() {
                Some(item) => item,
                None => match self.rx.try_recv() {
                    Ok(item) => item,
                    Err(_) => return true,
                },
            };
            if sink(&item).is_break() {
                return false;
            }
        }
    }
}

impl Ring for FakeRing {
    type Ready<'a> = &'a mut FakeRing;

    async fn ready(&mut self) -> io::Result<&mut FakeRing> {
        if self.buffered.is_empty() {
            match self.rx.recv().await {
                Some(item) => self.buffered.push_back(item),
                None => std::future::pending().await,
            }
        }
        Ok(self)
    }

    fn read_now(&mut self, sink: &mut ItemSink<'_>) -> bool {
        self.read_items(sink)
    }
}

impl ReadyRing for &mut FakeRing {
    fn read(&mut self, sink: &mut ItemSink<'_>) -> bool {
        self.read_items(sink)
    }
}

/// Link events fed by a channel.
#[derive(Debug)]
pub(super) struct FakeLinks(UnboundedReceiver<LinkEvents>);

impl Links for FakeLinks {
    async fn changed(&mut self) -> io::Result<LinkEvents> {
        match self.0.recv().await {
            Some(events) => Ok(events),
            None => std::future::pending().await,
        }
    }
}

/// The bytes of a plain-data kernel struct, as a ring item carries them.
pub(super) fn bytes_of<T: Copy>(value: &T) -> Vec<u8> {
    // SAFETY: `T` is one of the `#[repr(C)]` kernel structs, whose padding
    // is explicit fields, so every byte is initialised.
    unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
}
