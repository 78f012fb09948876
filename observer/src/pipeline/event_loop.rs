//! The loop of a running capture: one `tokio::select!` over the drain,
//! flush and status timers, the two rings, the link events, the stop
//! signal and the duration, each turn handing one event to its stage. It
//! stops on the duration, the signal, when no watched interface is left,
//! or when a file could not be written.

use std::{future::Future, io, pin::pin, time::Duration};

use tokio::time;

use super::{
    Pipeline, RunError, RunOptions,
    kernel::{Kernel, Links, ReadyRing as _, Ring, SourcesOf},
    summary::{INTERFACES_GONE, RunSummary, WRITE_FAILED},
};
use crate::capture::watch::LinkEvents;

/// Turns the loop until the duration ends, `stop` resolves (to the stop
/// reason) or every watched interface is gone, then finishes the run.
pub(super) async fn run<K: Kernel>(
    mut pipeline: Pipeline<K>,
    mut sources: SourcesOf<K>,
    options: &RunOptions,
    stop: impl Future<Output = &'static str>,
) -> Result<RunSummary, RunError> {
    let io_err = |what| move |source| RunError::Io { what, source };
    let mut stop = pin!(stop);
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
        if pipeline.write_failed() {
            break WRITE_FAILED;
        }
        tokio::select! {
            _ = drain.tick() => {
                pipeline.drain()?;
                pipeline.flush_if_full();
            }
            _ = flush.tick() => pipeline.checkpoint()?,
            _ = status.tick(), if options.status_interval.is_some() => pipeline.status(),
            ready = sources.flow_events.ready() => {
                let mut ready = ready.map_err(io_err("poll the flow-event ring buffer"))?;
                pipeline.read_flow_events(|sink| ready.read(sink));
            }
            ready = ready(sources.dns_events.as_mut()) => {
                let mut ready = ready.map_err(io_err("poll the DNS ring buffer"))?;
                // Not emptied: the ring stays ready, so the loop comes back
                // after the flush (and after any timer or signal that is due).
                pipeline.read_dns_events(|sink| ready.read(sink));
                pipeline.flush_if_full();
            }
            events = changed(sources.links.as_mut()) => {
                let events = events.map_err(io_err("poll link events"))?;
                pipeline.link_events(events)?;
            }
            reason = &mut stop => break reason,
            () = sleep_until(deadline) => break "duration",
        }
    };
    tracing::info!("stopping ({stop_reason}): final drain");
    pipeline.finish(sources, &options.out, stop_reason)
}

/// Readiness of an optional ring (never, when DNS capture is off).
async fn ready<R: Ring>(ring: Option<&mut R>) -> io::Result<R::Ready<'_>> {
    match ring {
        Some(ring) => ring.ready().await,
        None => std::future::pending().await,
    }
}

/// Link events (never, when they cannot be watched).
async fn changed<L: Links>(links: Option<&mut L>) -> io::Result<LinkEvents> {
    match links {
        Some(links) => links.changed().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<time::Instant>) {
    match deadline {
        Some(deadline) => time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
