//! The live pipeline of `observer run`:
//!
//! ```text
//! kernel flow maps ──drain (swap)──► flow table ──ended──► records ─┐
//! overflow ring buffer ────────────► flow table                      ├─► name (DNS) ─► classify ─► flows-*.parquet
//! DNS ring buffer ──► parse (hickory) ──► DNS tracker ───────────────┘
//!                                     └─► dns-*.parquet
//! loss counters ─────────────────────────────────────────► file metadata, summary
//! ```
//!
//! [`prepare`] does everything that must happen before threads exist
//! (privilege checks, entering `--netns`, resolving interfaces, attaching);
//! [`run`] is the async loop; both leave nothing attached when they fail.

use std::{
    collections::HashMap,
    io,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use aya::maps::{MapData, RingBuf};
use observer_common::{DnsEventHeader, FlowEvent, FlowKey, counter, user::addr_from_bytes};
use serde::Serialize;
use thiserror::Error;
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{SignalKind, signal},
    time,
};

use crate::{
    capture::watch::{self, LinkWatch},
    capture::{
        Capture, CaptureConfig, CaptureError, Counters, Interface, InterfaceSpec,
        iface::{self, InterfaceError, LinkKind},
        netns::{self, NetnsError},
        privileges::{self, PrivilegeError},
    },
    classify::Classifier,
    dns::{DnsAnswer, DnsTracker, Skip, parse_response},
    files::{ParquetFiles, WriteError, check_writable},
    flow::{
        Ended, FlowRecord, FlowTable, ObservationPoint, TableConfig, WallClock,
        clock::monotonic_now_ns,
    },
    metrics::{self, Metrics, MetricsError, Totals},
};

/// Everything `observer run` was asked to do.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub interfaces: Vec<InterfaceSpec>,
    pub netns: Option<String>,
    pub out: PathBuf,
    pub duration: Option<Duration>,
    pub table: TableConfig,
    pub capture: CaptureConfig,
    pub drain_interval: Duration,
    pub flush_interval: Duration,
    /// `None` with `--quiet`.
    pub status_interval: Option<Duration>,
    /// Written once every interface is attached (for scripts and tests).
    pub ready_file: Option<PathBuf>,
    /// Classifies records before they are written (`--topology`).
    pub classifier: Option<Arc<Classifier>>,
    /// (client, address) pairs the DNS tracker keeps.
    pub dns_capacity: usize,
    /// Serve Prometheus metrics on this address (`--metrics`).
    pub metrics: Option<std::net::SocketAddr>,
}

#[derive(Debug, Error)]
pub enum RunError {
    #[error(transparent)]
    Privileges(#[from] PrivilegeError),
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error(transparent)]
    Interface(#[from] InterfaceError),
    #[error(transparent)]
    Output(#[from] WriteError),
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error("cannot {what}")]
    Io {
        what: &'static str,
        source: io::Error,
    },
}

/// A capture attached and ready to run.
#[derive(Debug)]
pub struct Prepared {
    capture: Capture,
    interfaces: Vec<Interface>,
    namespace: Option<String>,
    /// Bound in the caller's namespace (`--metrics`).
    metrics_listener: Option<std::net::TcpListener>,
    /// Link events of the capture's namespace (None: cannot watch).
    links: Option<LinkWatch>,
}

/// Checks privileges, enters the namespace, checks the output directory,
/// resolves the interfaces and attaches. Call before starting any thread.
pub fn prepare(options: &RunOptions) -> Result<Prepared, RunError> {
    privileges::check(options.netns.is_some())?;
    check_writable(&options.out)?;
    // Before entering --netns: the socket stays in the caller's namespace.
    let metrics_listener = options.metrics.map(metrics::bind).transpose()?;
    if let Some(name) = &options.netns {
        netns::enter(name)?;
    }
    let namespace = options.netns.as_ref().map_or_else(
        || "the current network namespace".to_owned(),
        |n| format!("network namespace `{n}`"),
    );
    let interfaces = iface::resolve(&options.interfaces, &namespace)?;
    let capture = Capture::start(&options.capture, &interfaces)?;
    let links = LinkWatch::open()
        .inspect_err(|e| {
            tracing::warn!("cannot watch for interfaces that disappear (rtnetlink: {e})");
        })
        .ok();
    Ok(Prepared {
        capture,
        interfaces,
        namespace: options.netns.clone(),
        metrics_listener,
        links,
    })
}

/// What a run did, written to `run-ID.json` and printed at the end.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunSummary {
    pub run_id: String,
    pub host: String,
    pub netns: Option<String>,
    pub interfaces: Vec<InterfaceInfo>,
    pub attach: &'static str,
    pub started: String,
    pub stopped: String,
    pub stop_reason: String,
    pub records: u64,
    pub packets: u64,
    pub bytes: u64,
    pub files: Vec<PathBuf>,
    /// Per-reason kernel counters (see `observer_common::counter`).
    pub counters: std::collections::BTreeMap<&'static str, CounterValue>,
    /// Packets that reached no record (ring buffer full): must be 0.
    pub lost_packets: u64,
    /// DNS responses parsed into the `dns` table.
    pub dns_answers: u64,
    /// DNS messages that could not be decoded (counted, skipped).
    pub dns_malformed: u64,
    /// DNS queries seen (skipped: only responses name flows).
    pub dns_queries: u64,
    /// Resolutions the DNS tracker dropped to stay within `--dns-capacity`
    /// (oldest first).
    pub dns_evicted: u64,
    /// DNS answers written to `dns-*.parquet`.
    pub dns_files: Vec<PathBuf>,
}

#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct CounterValue {
    pub packets: u64,
    pub bytes: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct InterfaceInfo {
    pub name: String,
    pub role: Option<String>,
    pub ifindex: u32,
    pub link: &'static str,
    /// When the interface disappeared mid-capture (RFC 3339), if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vanished: Option<String>,
}

/// The state of a running capture between events.
struct Pipeline {
    capture: Capture,
    table: FlowTable,
    ended: Vec<Ended>,
    files: ParquetFiles<FlowRecord>,
    dns_files: ParquetFiles<DnsAnswer>,
    dns: DnsTracker,
    classifier: Option<Arc<Classifier>>,
    points: HashMap<u32, ObservationPoint>,
    clock: WallClock,
    summary: RunSummary,
    counters: Counters,
    /// Live metrics (`--metrics`).
    metrics: Option<Metrics>,
}

/// Flow events read from the ring in one turn of the event loop.
const FLOW_EVENTS_PER_READ: usize = 64 * 1024;

impl Pipeline {
    fn drain(&mut self) -> Result<(), RunError> {
        let started = std::time::Instant::now();
        let Self {
            capture,
            table,
            ended,
            metrics,
            points,
            ..
        } = self;
        capture.drain_flows(|key, delta| {
            count_delta(metrics.as_mut(), points, key, delta);
            table.add(key, delta, ended);
        })?;
        self.counters = self.capture.counters()?;
        self.table.expire(monotonic_now_ns(), &mut self.ended);
        self.emit();
        if let Some(metrics) = &self.metrics {
            metrics.drained(started.elapsed());
        }
        self.publish();
        Ok(())
    }

    /// Returns whether the ring was emptied: it reads at most
    /// `FLOW_EVENTS_PER_READ` events, so a sustained flood of evicted
    /// records cannot keep drains, flushes and signals from their turn.
    fn read_flow_events(&mut self, ring: &mut RingBuf<MapData>) -> bool {
        for _ in 0..FLOW_EVENTS_PER_READ {
            let Some(item) = ring.next() else {
                return true;
            };
            if item.len() < size_of::<FlowEvent>() {
                tracing::warn!("short flow event of {} bytes", item.len());
                continue;
            }
            // SAFETY: the kernel writes whole `FlowEvent`s; read unaligned.
            let event: FlowEvent = unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
            count_delta(
                self.metrics.as_mut(),
                &self.points,
                &event.key,
                &event.stats,
            );
            self.table.add(&event.key, &event.stats, &mut self.ended);
        }
        false
    }

    /// Parses DNS responses into answers: tracked for naming, and written.
    /// Stops once a full row group is pending, so the caller flushes before
    /// reading on: under a flood the kernel refills the ring as fast as it
    /// is read, and reading until it is empty would hold every answer of
    /// the flood in memory. Returns whether the ring was emptied.
    fn read_dns_events(&mut self, ring: &mut RingBuf<MapData>) -> bool {
        const HEADER: usize = size_of::<DnsEventHeader>();
        let emptied = loop {
            if self.dns_files.is_full() {
                break false;
            }
            let Some(item) = ring.next() else {
                break true;
            };
            if item.len() < HEADER {
                self.summary.dns_malformed += 1;
                continue;
            }
            // SAFETY: each item starts with a whole header; read unaligned.
            let header: DnsEventHeader = unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
            let captured = usize::from(header.captured_len).min(item.len() - HEADER);
            let payload = &item[HEADER..HEADER + captured];
            let parsed = match parse_response(payload) {
                Ok(parsed) => parsed,
                Err(Skip::Query) => {
                    self.summary.dns_queries += 1;
                    continue;
                }
                Err(skip) => {
                    self.summary.dns_malformed += 1;
                    tracing::debug!("DNS message skipped: {skip:?}");
                    continue;
                }
            };
            let iface = self.points.get(&header.ifindex).map_or_else(
                || format!("if{}", header.ifindex).into(),
                |p| p.iface.clone(),
            );
            let mut answer = DnsAnswer::new(
                parsed,
                self.clock.utc_ns(header.timestamp_ns),
                iface,
                addr_from_bytes(header.dst_addr, header.ip_version),
                addr_from_bytes(header.src_addr, header.ip_version),
            );
            if let Some(classifier) = &self.classifier {
                classifier.judge_dns(&mut answer);
            }
            self.dns.record(&answer);
            self.summary.dns_answers += 1;
            if let Some(metrics) = &self.metrics {
                metrics.dns_answer(&answer.iface);
            }
            self.dns_files.push(answer);
        };
        self.publish();
        emptied
    }

    /// Turns ended flows into records waiting for the next flush.
    fn emit(&mut self) {
        for Ended { key, stats, reason } in self.ended.drain(..) {
            let point = self
                .points
                .get(&key.ifindex)
                .cloned()
                .unwrap_or_else(|| unknown_point(&self.summary, &key));
            self.summary.records += 1;
            self.summary.packets += stats.packets;
            self.summary.bytes += stats.bytes;
            let mut record = FlowRecord::from_kernel(&key, &stats, reason, point, &self.clock);
            if let Some(metrics) = &self.metrics {
                metrics.record(&record.point.iface, record.direction.as_str());
            }
            self.dns.enrich(&mut record);
            self.files.push(record);
        }
    }

    fn flush(&mut self) -> Result<(), RunError> {
        let started = std::time::Instant::now();
        let metadata = self.metadata();
        if let Some(classifier) = &self.classifier {
            classifier.classify_all(self.files.pending_mut());
        }
        for path in [
            self.files.flush(&metadata)?,
            self.dns_files.flush(&metadata)?,
        ]
        .into_iter()
        .flatten()
        {
            tracing::debug!("wrote {}", path.display());
        }
        if let Some(metrics) = &self.metrics {
            metrics.flushed(started.elapsed());
        }
        self.publish();
        release_freed_memory();
        Ok(())
    }

    /// Copies the cumulative figures into the live metrics.
    fn publish(&self) {
        let Some(metrics) = &self.metrics else {
            return;
        };
        metrics.sync(&Totals {
            counters: &self.counters,
            flows_active: self.table.len(),
            records_pending: self.files.pending_len(),
            flow_rows_written: self.files.written_rows(),
            dns_rows_written: self.dns_files.written_rows(),
            flow_files: self.files.files().len(),
            dns_files: self.dns_files.files().len(),
            dns_malformed: self.summary.dns_malformed,
            dns_queries: self.summary.dns_queries,
            dns_evicted: self.dns.evicted(),
            dns_tracked: self.dns.len(),
        });
    }

    /// Handles a watched interface that disappeared: said at once in the
    /// log and the metrics; its records so far are kept. Returns how many
    /// watched interfaces are left.
    fn interface_gone(&mut self, ifindex: u32) -> usize {
        let now = chrono::Utc::now().to_rfc3339();
        let mut gone = None;
        for info in &mut self.summary.interfaces {
            if info.ifindex == ifindex && info.vanished.is_none() {
                info.vanished = Some(now.clone());
                gone = Some((info.name.clone(), info.role.clone()));
            }
        }
        let left: Vec<String> = self
            .summary
            .interfaces
            .iter()
            .filter(|i| i.vanished.is_none())
            .map(|i| i.name.clone())
            .collect();
        let Some((name, role)) = gone else {
            return left.len();
        };
        self.capture.forget_interface(ifindex, &name);
        if let Some(metrics) = &self.metrics {
            metrics.interface_gone(&name, role.as_deref());
        }
        if left.is_empty() {
            tracing::error!(
                "interface {name} disappeared (deleted, or moved out of the namespace); \
                 no watched interface is left"
            );
        } else {
            tracing::warn!(
                "interface {name} disappeared (deleted, or moved out of the namespace); \
                 its flows so far are kept; capture goes on on {}",
                left.join(", ")
            );
        }
        left.len()
    }

    /// Reads link events; returns how many watched interfaces are left.
    fn link_events(&mut self, links: &mut LinkWatch) -> usize {
        let events = match links.read() {
            Ok(events) => events,
            Err(error) => {
                tracing::warn!("reading link events failed ({error}); checking every interface");
                watch::LinkEvents {
                    deleted: Vec::new(),
                    overflowed: true,
                }
            }
        };
        let mut deleted = events.deleted;
        if events.overflowed {
            deleted.extend(
                self.summary
                    .interfaces
                    .iter()
                    .filter(|i| !watch::exists(i.ifindex))
                    .map(|i| i.ifindex),
            );
        }
        let mut left = self.live_interfaces();
        for ifindex in deleted {
            left = self.interface_gone(ifindex);
        }
        left
    }

    fn live_interfaces(&self) -> usize {
        self.summary
            .interfaces
            .iter()
            .filter(|i| i.vanished.is_none())
            .count()
    }

    /// Flushes early when a table holds a full row group, so memory stays
    /// bounded under a flood whatever the flush interval.
    fn flush_if_full(&mut self) -> Result<(), RunError> {
        if self.files.is_full() || self.dns_files.is_full() {
            self.flush()?;
        }
        Ok(())
    }

    fn metadata(&self) -> Vec<(String, String)> {
        let counters: std::collections::BTreeMap<_, _> = counter_values(&self.counters);
        let interfaces = serde_json::to_string(&self.summary.interfaces).unwrap_or_default();
        vec![
            (
                "observer.schema_version".into(),
                crate::files::schema::SCHEMA_VERSION.into(),
            ),
            ("observer.version".into(), env!("CARGO_PKG_VERSION").into()),
            ("observer.run_id".into(), self.summary.run_id.clone()),
            ("observer.host".into(), self.summary.host.clone()),
            (
                "observer.netns".into(),
                self.summary.netns.clone().unwrap_or_default(),
            ),
            ("observer.interfaces".into(), interfaces),
            ("observer.attach".into(), self.summary.attach.into()),
            (
                "observer.topology".into(),
                self.classifier
                    .as_ref()
                    .map(|c| c.topology().name.clone())
                    .unwrap_or_default(),
            ),
            (
                "observer.dns_malformed".into(),
                self.summary.dns_malformed.to_string(),
            ),
            (
                "observer.capture_started".into(),
                self.summary.started.clone(),
            ),
            (
                "observer.counters".into(),
                serde_json::to_string(&counters).unwrap_or_default(),
            ),
            (
                "observer.lost_packets".into(),
                lost_packets(&self.counters).to_string(),
            ),
        ]
    }

    fn status(&self) {
        let lost = lost_packets(&self.counters);
        tracing::info!(
            "{} live flows, {} packets seen, {} records written ({} pending), {} lost",
            self.table.len(),
            self.counters[counter::FLOW_PACKETS as usize].packets,
            self.files.written_rows(),
            self.files.pending_len(),
            lost,
        );
    }
}

/// Counts a drained delta in the live metrics, by interface and direction.
fn count_delta(
    metrics: Option<&mut Metrics>,
    points: &HashMap<u32, ObservationPoint>,
    key: &FlowKey,
    delta: &observer_common::FlowStats,
) {
    if let Some(metrics) = metrics {
        let unknown;
        let iface = match points.get(&key.ifindex) {
            Some(point) => &*point.iface,
            None => {
                unknown = format!("if{}", key.ifindex);
                &unknown
            }
        };
        metrics.count(
            key.ifindex,
            key.direction,
            iface,
            delta.packets,
            delta.bytes,
        );
    }
}

/// Hands the pages freed by a flush back to the kernel. glibc keeps freed
/// heap memory for reuse (it trims only the top of the heap), so after a
/// burst of DNS answers the process would otherwise stay at its peak
/// forever; a trim walks the free lists once, a few milliseconds against a
/// flush that writes up to a row group.
fn release_freed_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases memory the allocator holds free.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn unknown_point(summary: &RunSummary, key: &FlowKey) -> ObservationPoint {
    ObservationPoint {
        host: summary.host.as_str().into(),
        netns: summary.netns.as_deref().map(Into::into),
        iface: format!("if{}", key.ifindex).into(),
        iface_role: None,
    }
}

fn counter_values(counters: &Counters) -> std::collections::BTreeMap<&'static str, CounterValue> {
    counter::NAMES
        .iter()
        .zip(counters)
        .map(|(name, c)| {
            (
                *name,
                CounterValue {
                    packets: c.packets,
                    bytes: c.bytes,
                },
            )
        })
        .collect()
}

/// Packets that reached no record: their flow event found the ring buffer full.
pub fn lost_packets(counters: &Counters) -> u64 {
    counters[counter::FLOW_EVENTS_LOST as usize].packets
}

pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: a valid buffer of the given length.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Runs the capture until the duration ends or SIGINT/SIGTERM, then drains
/// everything, writes the last file and the summary, and detaches.
pub async fn run(prepared: Prepared, options: &RunOptions) -> Result<RunSummary, RunError> {
    let Prepared {
        mut capture,
        interfaces,
        namespace,
        metrics_listener,
        links,
    } = prepared;
    let io_err = |what| move |source| RunError::Io { what, source };
    let mut sigint = signal(SignalKind::interrupt()).map_err(io_err("install a SIGINT handler"))?;
    let mut sigterm =
        signal(SignalKind::terminate()).map_err(io_err("install a SIGTERM handler"))?;
    let flow_events = capture.take_flow_events().expect("taken once");
    // SAFETY: the ring buffer owns its fd and keeps it open while registered.
    let mut flow_events =
        unsafe { AsyncFd::register_with_interest(flow_events, tokio::io::Interest::READABLE) }
            .map_err(|e| RunError::Io {
                what: "poll the flow-event ring buffer",
                source: e.into(),
            })?;

    let mut dns_events = match capture.take_dns_events() {
        // SAFETY: as above.
        Some(ring) => Some(
            unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
                .map_err(|e| RunError::Io {
                    what: "poll the DNS ring buffer",
                    source: e.into(),
                })?,
        ),
        None => None,
    };

    let host = hostname();
    let started = chrono::Utc::now();
    let run_id = format!(
        "{}-{}",
        started.format("%Y%m%dT%H%M%SZ"),
        std::process::id()
    );
    let host_arc: Arc<str> = host.as_str().into();
    let netns_arc: Option<Arc<str>> = namespace.as_deref().map(Into::into);
    let points = interfaces
        .iter()
        .map(|i| {
            let point = ObservationPoint {
                host: host_arc.clone(),
                netns: netns_arc.clone(),
                iface: i.name.as_str().into(),
                iface_role: i.role.as_deref().map(Into::into),
            };
            (i.ifindex, point)
        })
        .collect();
    let summary = RunSummary {
        run_id: run_id.clone(),
        host,
        netns: namespace,
        interfaces: interfaces
            .iter()
            .map(|i| InterfaceInfo {
                name: i.name.clone(),
                role: i.role.clone(),
                ifindex: i.ifindex,
                link: match i.link {
                    LinkKind::Ethernet => "ethernet",
                    LinkKind::RawIp => "raw-ip",
                },
                vanished: None,
            })
            .collect(),
        attach: if capture.uses_tcx() { "tcx" } else { "tc" },
        started: started.to_rfc3339(),
        ..RunSummary::default()
    };
    let mut pipeline = Pipeline {
        capture,
        table: FlowTable::new(options.table),
        ended: Vec::new(),
        files: ParquetFiles::new(&options.out, &run_id),
        dns_files: ParquetFiles::new(&options.out, &run_id),
        dns: DnsTracker::new(options.dns_capacity, crate::dns::GRACE_NS),
        classifier: options.classifier.clone(),
        points,
        clock: WallClock::new(),
        summary,
        counters: [Default::default(); counter::LEN as usize],
        metrics: None,
    };
    if let Some(listener) = metrics_listener {
        let metrics = Metrics::new(
            &interfaces
                .iter()
                .map(|i| (i.name.clone(), i.role.clone()))
                .collect::<Vec<_>>(),
            &run_id,
            pipeline.summary.attach,
        );
        if let Ok(addr) = listener.local_addr() {
            tracing::info!("serving Prometheus metrics on http://{addr}/metrics");
        }
        tokio::spawn(metrics::serve(listener, metrics.registry()));
        pipeline.metrics = Some(metrics);
        pipeline.publish();
    }
    let links = links.map(|links| {
        // SAFETY: `LinkWatch` owns its socket and keeps it open until dropped.
        unsafe { AsyncFd::register_with_interest(links, tokio::io::Interest::READABLE) }
    });
    let mut links = match links.transpose() {
        Ok(links) => links,
        Err(error) => {
            tracing::warn!("cannot poll link events ({error}); interfaces are not watched");
            None
        }
    };
    // An interface may have gone between attaching and subscribing.
    for ifindex in interfaces.iter().map(|i| i.ifindex) {
        if !watch::exists(ifindex) {
            pipeline.interface_gone(ifindex);
        }
    }

    let names: Vec<String> = interfaces.iter().map(|i| i.to_string()).collect();
    tracing::info!(
        "capturing on {} ({}); writing to {}",
        names.join(", "),
        pipeline.summary.attach,
        options.out.display()
    );
    if let Some(path) = &options.ready_file {
        std::fs::write(path, format!("{run_id}\n")).map_err(io_err("write the ready file"))?;
    }

    let mut drain = time::interval(options.drain_interval);
    let mut flush = time::interval(options.flush_interval);
    let mut status = time::interval(options.status_interval.unwrap_or(Duration::from_secs(3600)));
    for timer in [&mut drain, &mut flush, &mut status] {
        timer.set_missed_tick_behavior(time::MissedTickBehavior::Delay);
        timer.reset();
    }
    let deadline = options.duration.map(|d| time::Instant::now() + d);
    let stop_reason = loop {
        if pipeline.live_interfaces() == 0 {
            break INTERFACES_GONE;
        }
        tokio::select! {
            _ = drain.tick() => {
                pipeline.drain()?;
                pipeline.flush_if_full()?;
            }
            _ = flush.tick() => pipeline.flush()?,
            _ = status.tick(), if options.status_interval.is_some() => pipeline.status(),
            guard = flow_events.readable_mut() => {
                let mut guard = guard.map_err(io_err("poll the flow-event ring buffer"))?;
                // Not emptied: stay ready and come back after whatever is due.
                if pipeline.read_flow_events(guard.get_inner_mut()) {
                    guard.clear_ready();
                }
            }
            guard = readable(dns_events.as_mut()) => {
                let mut guard = guard.map_err(io_err("poll the DNS ring buffer"))?;
                // Not emptied: stay ready, so the loop comes back after the
                // flush (and after any timer or signal that is due).
                if pipeline.read_dns_events(guard.get_inner_mut()) {
                    guard.clear_ready();
                }
                pipeline.flush_if_full()?;
            }
            guard = link_readable(links.as_mut()) => {
                let mut guard = guard.map_err(io_err("poll link events"))?;
                pipeline.link_events(guard.get_inner_mut());
                guard.clear_ready();
            }
            _ = sigint.recv() => break "SIGINT",
            _ = sigterm.recv() => break "SIGTERM",
            () = sleep_until(deadline) => break "duration",
        }
    };
    tracing::info!("stopping ({stop_reason}): final drain");
    finish(
        pipeline,
        flow_events.into_inner(),
        dns_events.map(AsyncFd::into_inner),
        &options.out,
        stop_reason,
    )
}

/// `stop_reason` of a run that ended because every watched interface disappeared.
pub const INTERFACES_GONE: &str = "interfaces-gone";

/// Readiness of the link-event socket (never, when it could not be opened).
async fn link_readable(
    links: Option<&mut AsyncFd<LinkWatch>>,
) -> io::Result<tokio::io::unix::AsyncFdReadyMutGuard<'_, LinkWatch>> {
    match links {
        Some(links) => links.readable_mut().await,
        None => std::future::pending().await,
    }
}

/// Readiness of an optional ring buffer (never, when DNS capture is off).
async fn readable(
    ring: Option<&mut AsyncFd<RingBuf<MapData>>>,
) -> io::Result<tokio::io::unix::AsyncFdReadyMutGuard<'_, RingBuf<MapData>>> {
    match ring {
        Some(ring) => ring.readable_mut().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<time::Instant>) {
    match deadline {
        Some(deadline) => time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Detaches, drains both flow maps and the ring buffer, ends every flow and
/// writes the last file and the summary.
fn finish(
    mut pipeline: Pipeline,
    mut ring: RingBuf<MapData>,
    dns_ring: Option<RingBuf<MapData>>,
    out: &Path,
    stop_reason: &str,
) -> Result<RunSummary, RunError> {
    pipeline.capture.detach();
    if let Some(mut dns_ring) = dns_ring {
        while !pipeline.read_dns_events(&mut dns_ring) {
            pipeline.flush_if_full()?;
        }
    }
    // Two swaps: the first drains the map in use until now, the second the
    // one installed by the first (written to until the detach).
    pipeline.drain()?;
    pipeline.drain()?;
    while !pipeline.read_flow_events(&mut ring) {}
    pipeline.counters = pipeline.capture.counters()?;
    pipeline.table.finish(&mut pipeline.ended);
    pipeline.emit();
    pipeline.flush()?;
    pipeline.publish();

    let mut summary = pipeline.summary.clone();
    summary.stopped = chrono::Utc::now().to_rfc3339();
    summary.stop_reason = stop_reason.to_owned();
    summary.files = pipeline.files.files().to_vec();
    summary.dns_files = pipeline.dns_files.files().to_vec();
    summary.dns_evicted = pipeline.dns.evicted();
    summary.counters = counter_values(&pipeline.counters);
    summary.lost_packets = lost_packets(&pipeline.counters);
    let path = out.join(format!("run-{}.json", summary.run_id));
    let json = serde_json::to_string_pretty(&summary).expect("summary serializes");
    let tmp = out.join(format!(".run-{}.json.tmp", summary.run_id));
    std::fs::write(&tmp, json)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|source| {
            RunError::Output(WriteError::Io {
                path: path.clone(),
                source,
            })
        })?;
    Ok(summary)
}

impl std::fmt::Display for Interface {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.role {
            Some(role) => write!(f, "{}={role}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_packets_count_only_the_ring_buffer_overflow() {
        let mut counters: Counters = [Default::default(); counter::LEN as usize];
        counters[counter::FLOW_MAP_FULL as usize].packets = 10;
        counters[counter::NON_IP as usize].packets = 3;
        assert_eq!(lost_packets(&counters), 0);
        counters[counter::FLOW_EVENTS_LOST as usize].packets = 2;
        assert_eq!(lost_packets(&counters), 2);
    }

    #[test]
    fn hostname_is_not_empty() {
        assert!(!hostname().is_empty());
    }
}
