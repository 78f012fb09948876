//! Live metrics of `observer run --metrics ADDR`: the run summary's figures
//! as Prometheus counters and gauges (the `prometheus` crate), updated at
//! every drain, DNS read and flush, and served in the Prometheus text format
//! by a small HTTP server on the capture's own tokio runtime.
//!
//! The pipeline reports through [`MetricsSink`] whether `--metrics` is on
//! or not: [`Metrics`] when it is, [`NoMetrics`] (every call a no-op) when
//! it is not, so the loop never asks.
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | [`MetricsSink`] (what the pipeline reports), [`NoMetrics`], [`Totals`] |
//! | `registry.rs` | [`Metrics`]: every figure in its own Prometheus registry, names and help |
//! | `http.rs` | binding the socket before `--netns`, serving `GET /metrics` |

mod http;
mod registry;

use std::time::Duration;

pub(crate) use self::{
    http::{MetricsError, bind, serve},
    registry::Metrics,
};
use crate::capture::Counters;

/// What the live pipeline reports as it goes. Cumulative figures come in
/// whole through [`MetricsSink::sync`]; per-event calls carry the labels
/// the summary does not keep (interface, direction).
pub(crate) trait MetricsSink {
    /// One drained delta (or overflow event) of a flow seen on interface
    /// `ifindex` in `direction` (`observer_common::DIRECTION_*`).
    fn count(&mut self, ifindex: u32, direction: u8, packets: u64, bytes: u64);
    /// One ended flow record.
    fn record(&self, iface: &str, direction: &str);
    /// One DNS answer parsed on `iface`.
    fn dns_answer(&self, iface: &str);
    /// The pipeline's cumulative figures.
    fn sync(&self, totals: &Totals<'_>);
    /// A drain of the kernel flow maps took `took`.
    fn drained(&self, took: Duration);
    /// A flush took `took`.
    fn flushed(&self, took: Duration);
    /// A watched interface disappeared, for good.
    fn interface_gone(&self, iface: &str, role: Option<&str>);
}

/// The sink of a run without `--metrics`: every call does nothing.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct NoMetrics;

impl MetricsSink for NoMetrics {
    fn count(&mut self, _: u32, _: u8, _: u64, _: u64) {}
    fn record(&self, _: &str, _: &str) {}
    fn dns_answer(&self, _: &str) {}
    fn sync(&self, _: &Totals<'_>) {}
    fn drained(&self, _: Duration) {}
    fn flushed(&self, _: Duration) {}
    fn interface_gone(&self, _: &str, _: Option<&str>) {}
}

/// The values [`MetricsSink::sync`] copies from the pipeline (cumulative).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Totals<'a> {
    pub counters: &'a Counters,
    pub flows_active: usize,
    pub records_pending: usize,
    pub flow_rows_written: u64,
    pub dns_rows_written: u64,
    pub flow_files: usize,
    pub dns_files: usize,
    pub dns_malformed: u64,
    pub dns_queries: u64,
    pub dns_evicted: u64,
    pub dns_tracked: usize,
}
