//! The stages, in the order a record meets them: drain (the kernel's deltas
//! into the flow table, timeouts), the rings (overflow flow events, DNS
//! messages into answers), emit (ended flows into records, named from
//! DNS), flush (classify, then write; at the flush interval after a
//! snapshot of the live flows), and the metrics sync and status line
//! between them.

use std::{ops::ControlFlow, path::PathBuf, time::Instant};

use observer_common::{DnsEventHeader, FlowEvent, counter, user::addr_from_bytes};

use super::{
    Pipeline, RunError,
    kernel::{ItemSink, Kernel},
    summary::{WriteFailure, error_chain, lost_packets},
};
use crate::{
    dns::{DnsAnswer, Skip, parse_response},
    files::WriteError,
    flow::{Ended, FlowRecord, ObservationPoint},
    metrics::Totals,
};

/// Flow events read from the ring in one turn of the event loop.
const FLOW_EVENTS_PER_READ: usize = 64 * 1024;

impl<K: Kernel> Pipeline<K> {
    /// Moves the kernel's deltas into the flow table, reads the counters,
    /// ends the flows whose time has come and emits their records.
    pub(super) fn drain(&mut self) -> Result<(), RunError> {
        let started = Instant::now();
        let Self {
            kernel,
            table,
            ended,
            metrics,
            ..
        } = self;
        kernel.drain_flows(&mut |key, delta| {
            metrics.count(key.ifindex, key.direction, delta.packets, delta.bytes);
            table.add(key, delta, ended);
        })?;
        self.counters = self.kernel.counters()?;
        self.table
            .expire(self.clock.monotonic_ns(), &mut self.ended);
        self.emit();
        self.metrics.drained(started.elapsed());
        self.publish();
        Ok(())
    }

    /// Adds the flow events `read` hands over (packets that found the flow
    /// map full). Reads at most `FLOW_EVENTS_PER_READ`, so a sustained
    /// flood of evicted records cannot keep drains, flushes and signals
    /// from their turn. Returns whether the ring was emptied.
    pub(super) fn read_flow_events(
        &mut self,
        read: impl FnOnce(&mut ItemSink<'_>) -> bool,
    ) -> bool {
        let mut left = FLOW_EVENTS_PER_READ;
        read(&mut |item| {
            if item.len() < size_of::<FlowEvent>() {
                tracing::warn!("short flow event of {} bytes", item.len());
            } else {
                // SAFETY: the kernel writes whole `FlowEvent`s; read unaligned.
                let event: FlowEvent = unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
                let (key, stats) = (&event.key, &event.stats);
                self.metrics
                    .count(key.ifindex, key.direction, stats.packets, stats.bytes);
                self.table.add(key, stats, &mut self.ended);
            }
            left -= 1;
            if left == 0 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
    }

    /// Parses DNS responses into answers: tracked for naming, and written.
    /// Stops once a full row group is pending, so the caller flushes before
    /// reading on: under a flood the kernel refills the ring as fast as it
    /// is read, and reading until it is empty would hold every answer of
    /// the flood in memory. Returns whether the ring was emptied.
    pub(super) fn read_dns_events(&mut self, read: impl FnOnce(&mut ItemSink<'_>) -> bool) -> bool {
        if self.dns_files.is_full() {
            return false;
        }
        let emptied = read(&mut |item| {
            self.dns_event(item);
            if self.dns_files.is_full() {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        self.publish();
        emptied
    }

    fn dns_event(&mut self, item: &[u8]) {
        const HEADER: usize = size_of::<DnsEventHeader>();
        if item.len() < HEADER {
            self.summary.dns_malformed += 1;
            return;
        }
        // SAFETY: each item starts with a whole header; read unaligned.
        let header: DnsEventHeader = unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
        let captured = usize::from(header.captured_len).min(item.len() - HEADER);
        let payload = &item[HEADER..HEADER + captured];
        let parsed = match parse_response(payload) {
            Ok(parsed) => parsed,
            Err(Skip::Query) => {
                self.summary.dns_queries += 1;
                return;
            }
            Err(skip) => {
                self.summary.dns_malformed += 1;
                tracing::debug!("DNS message skipped: {skip:?}");
                return;
            }
        };
        let iface = self.points.get(&header.ifindex).map_or_else(
            || format!("if{}", header.ifindex).into(),
            |p| p.iface.clone(),
        );
        let mut answer = DnsAnswer::new(
            parsed,
            self.wall.utc_ns(header.timestamp_ns),
            iface,
            addr_from_bytes(header.dst_addr, header.ip_version),
            addr_from_bytes(header.src_addr, header.ip_version),
        );
        if let Some(classifier) = &self.classifier {
            classifier.judge_dns(&mut answer);
        }
        self.dns.record(&answer);
        self.summary.dns_answers += 1;
        self.metrics.dns_answer(&answer.iface);
        self.dns_files.push(answer);
    }

    /// Turns ended flows into records, named from the DNS answers seen so
    /// far, waiting for the next flush.
    pub(super) fn emit(&mut self) {
        for Ended { key, stats, reason } in self.ended.drain(..) {
            let point =
                self.points
                    .get(&key.ifindex)
                    .cloned()
                    .unwrap_or_else(|| ObservationPoint {
                        host: self.summary.host.as_str().into(),
                        netns: self.summary.netns.as_deref().map(Into::into),
                        iface: format!("if{}", key.ifindex).into(),
                        iface_role: None,
                    });
            self.summary.records += 1;
            self.summary.packets += stats.packets;
            self.summary.bytes += stats.bytes;
            let mut record = FlowRecord::from_kernel(&key, &stats, reason, point, &self.wall);
            self.metrics
                .record(&record.point.iface, record.direction.as_str());
            self.dns.enrich(&mut record);
            self.files.push(record);
        }
    }

    /// Classifies the pending records and writes them and the pending DNS
    /// answers, each table to a new complete file. A write that fails is
    /// recorded in the summary (the loop then stops) and its rows stay
    /// pending for the last flush to try again.
    pub(super) fn flush(&mut self) {
        let started = Instant::now();
        let metadata = self.metadata();
        if let Some(classifier) = &self.classifier {
            classifier.classify_all(self.files.pending_mut());
        }
        let rows = self.files.pending_len();
        let flows = self.files.flush(&metadata);
        self.written(flows, rows);
        let rows = self.dns_files.pending_len();
        let dns = self.dns_files.flush(&metadata);
        self.written(dns, rows);
        self.metrics.flushed(started.elapsed());
        self.publish();
        release_freed_memory();
    }

    fn written(&mut self, result: Result<Option<PathBuf>, WriteError>, rows: usize) {
        match result {
            Ok(Some(path)) => tracing::debug!("wrote {}", path.display()),
            Ok(None) => {}
            Err(error) => {
                let failure = WriteFailure {
                    file: intended_file(&error),
                    error: error_chain(&error),
                    rows,
                };
                tracing::error!("{}; {rows} rows wait for the last flush", failure.error);
                self.summary.write_failures.push(failure);
            }
        }
    }

    /// Whether a write failed (the loop stops).
    pub(super) fn write_failed(&self) -> bool {
        !self.summary.write_failures.is_empty()
    }

    /// The flush interval's turn: a drain, an interim record of every live
    /// flow's packets since its last record (`FlowTable::snapshot`), then
    /// the flush. The files then hold every packet counted before this
    /// turn, so a crash loses at most one flush interval.
    pub(super) fn checkpoint(&mut self) -> Result<(), RunError> {
        self.drain()?;
        self.table.snapshot(&mut self.ended);
        self.emit();
        self.flush();
        Ok(())
    }

    /// Flushes early when a table holds a full row group, so memory stays
    /// bounded under a flood whatever the flush interval.
    pub(super) fn flush_if_full(&mut self) {
        if self.files.is_full() || self.dns_files.is_full() {
            self.flush();
        }
    }

    /// Copies the cumulative figures into the live metrics.
    pub(super) fn publish(&self) {
        self.metrics.sync(&Totals {
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

    /// The periodic status line.
    pub(super) fn status(&self) {
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

/// The file a failed write was for: the error names the temporary file
/// (`.NAME.tmp`) the data went to before the rename.
fn intended_file(error: &WriteError) -> PathBuf {
    let path = match error {
        WriteError::Directory { dir, .. } => return dir.clone(),
        WriteError::DiskFull { path }
        | WriteError::Io { path, .. }
        | WriteError::Parquet { path, .. } => path,
    };
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    match name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")) {
        Some(final_name) => path.with_file_name(final_name),
        None => path.clone(),
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
