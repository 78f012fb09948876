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
//! [`run`] builds the running state and turns the loop; both leave nothing
//! attached when they fail. The loop sees the kernel only through the
//! [`kernel::Kernel`] traits, the time only through a
//! [`Clock`](crate::flow::clock::Clock) and the metrics only through a
//! [`MetricsSink`], so the unit tests run it against a fake kernel on
//! tokio's paused clock, without root.
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | [`run`], the state the stages share ([`Pipeline`]), the stop signals |
//! | `options.rs` | [`RunOptions`] (what `observer run` was asked), [`RunError`] |
//! | `setup.rs` | [`prepare`] (privileges, `--netns`, interfaces, attach) and building the running state |
//! | `kernel.rs` | the kernel edge: [`kernel::Kernel`], its rings and link events, implemented by `capture::Capture` |
//! | `event_loop.rs` | the loop: timers, rings, link events and signals in one `tokio::select!` |
//! | `stages.rs` | drain, ring reading, DNS, emit (name), flush (classify, write), metrics sync, status |
//! | `interfaces.rs` | watched interfaces that disappear: their flows end, the summary says `vanished` |
//! | `metadata.rs` | the Parquet key/value metadata of every file |
//! | `finish.rs` | the last drain after the detach, the last file, the summary |
//! | `summary.rs` | [`RunSummary`] (`run-ID.json`) and its parts, stop reasons |
//! | `fake.rs`, `tests.rs` | the loop's unit tests: a kernel of vectors and channels, tokio's paused clock |

mod event_loop;
#[cfg(test)]
mod fake;
mod finish;
mod interfaces;
mod kernel;
mod metadata;
mod options;
mod setup;
mod stages;
mod summary;
#[cfg(test)]
mod tests;

use std::{collections::HashMap, future::Future, sync::Arc};

use tokio::signal::unix::{SignalKind, signal};

pub(crate) use self::{
    options::{RunError, RunOptions},
    setup::{Prepared, prepare},
    summary::{INTERFACES_GONE, RunSummary, WRITE_FAILED},
};
use crate::{
    capture::Counters,
    classify::Classifier,
    dns::{DnsAnswer, DnsTracker},
    files::ParquetFiles,
    flow::{Ended, FlowRecord, FlowTable, ObservationPoint, WallClock, clock::Clock},
    metrics::MetricsSink,
};

/// Runs the capture until the duration ends, SIGINT/SIGTERM or every
/// watched interface is gone, then drains everything, writes the last file
/// and the summary, and detaches.
pub(crate) async fn run(prepared: Prepared, options: &RunOptions) -> Result<RunSummary, RunError> {
    let stop = stop_signals()?;
    let Prepared { capture, start } = prepared;
    let (pipeline, sources) = setup::start(capture, start, options, Box::new(WallClock::new()))?;
    event_loop::run(pipeline, sources, options, stop).await
}

/// SIGINT or SIGTERM, as the stop reason they give.
fn stop_signals() -> Result<impl Future<Output = &'static str>, RunError> {
    let io_err = |what| move |source| RunError::Io { what, source };
    let mut sigint = signal(SignalKind::interrupt()).map_err(io_err("install a SIGINT handler"))?;
    let mut sigterm =
        signal(SignalKind::terminate()).map_err(io_err("install a SIGTERM handler"))?;
    Ok(async move {
        tokio::select! {
            _ = sigint.recv() => "SIGINT",
            _ = sigterm.recv() => "SIGTERM",
        }
    })
}

/// The state of a running capture between events, shared by the stages.
struct Pipeline<K> {
    kernel: K,
    table: FlowTable,
    ended: Vec<Ended>,
    files: ParquetFiles<FlowRecord>,
    dns_files: ParquetFiles<DnsAnswer>,
    dns: DnsTracker,
    classifier: Option<Arc<Classifier>>,
    points: HashMap<u32, ObservationPoint>,
    clock: Box<dyn Clock>,
    /// The clock's conversion of kernel times to UTC, read once.
    wall: WallClock,
    summary: RunSummary,
    counters: Counters,
    /// Live metrics (`--metrics`), or a sink that drops them.
    metrics: Box<dyn MetricsSink>,
}

impl<K> Pipeline<K> {
    /// Now, as RFC 3339 UTC, by the pipeline's clock.
    fn now_rfc3339(&self) -> String {
        chrono::DateTime::from_timestamp_nanos(self.clock.utc_now_ns()).to_rfc3339()
    }
}
