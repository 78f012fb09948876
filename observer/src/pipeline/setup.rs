//! Set-up: [`prepare`] (everything that must happen before threads exist)
//! and [`start`], which builds the running state around a kernel: run id,
//! observation points, summary, files, DNS tracker, metrics, and the sources
//! the loop waits on.

use std::{collections::HashMap, sync::Arc};

use observer_common::counter;

use super::{
    Pipeline, RunError, RunOptions,
    kernel::{Kernel, SourcesOf},
    summary::{InterfaceInfo, RunSummary},
};
use crate::{
    capture::{
        Capture, Interface,
        iface::{self},
        netns, privileges,
    },
    dns::DnsTracker,
    files::{ParquetFiles, check_writable},
    flow::{FlowTable, ObservationPoint, clock::Clock},
    metrics::{self, Metrics, MetricsSink, NoMetrics},
};

/// A capture attached and ready to run.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(super) capture: Capture,
    pub(super) start: Start,
}

/// What the running state is built from, besides the kernel.
#[derive(Debug)]
pub(super) struct Start {
    pub interfaces: Vec<Interface>,
    /// `--netns`, as given.
    pub namespace: Option<String>,
    /// Bound in the caller's namespace (`--metrics`).
    pub metrics_listener: Option<std::net::TcpListener>,
}

/// Checks privileges, enters the namespace, checks the output directory,
/// resolves the interfaces and attaches. Call before starting any thread.
pub(crate) fn prepare(options: &RunOptions) -> Result<Prepared, RunError> {
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
    Ok(Prepared {
        capture,
        start: Start {
            interfaces,
            namespace: options.netns.clone(),
            metrics_listener,
        },
    })
}

/// Builds the running state around `kernel` (in the runtime: the sources
/// register with it and the metrics server is spawned on it), checks the
/// interfaces are still there and writes the ready file.
pub(super) fn start<K: Kernel>(
    kernel: K,
    start: Start,
    options: &RunOptions,
    clock: Box<dyn Clock>,
) -> Result<(Pipeline<K>, SourcesOf<K>), RunError> {
    let mut kernel = kernel;
    let sources = kernel.take_sources()?;
    let Start {
        interfaces,
        namespace,
        metrics_listener,
    } = start;
    let host = hostname();
    let wall = clock.wall();
    let started = chrono::DateTime::from_timestamp_nanos(clock.utc_now_ns());
    let run_id = format!(
        "{}-{}",
        started.format("%Y%m%dT%H%M%SZ"),
        std::process::id()
    );
    let points = observation_points(&interfaces, &host, namespace.as_deref());
    let attach = kernel.attach_mode();
    let summary = RunSummary {
        run_id: run_id.clone(),
        host,
        netns: namespace,
        interfaces: interfaces.iter().map(InterfaceInfo::from).collect(),
        attach,
        started: started.to_rfc3339(),
        ..RunSummary::default()
    };
    let metrics: Box<dyn MetricsSink> = match metrics_listener {
        Some(listener) => {
            let metrics = Metrics::new(&interfaces, &run_id, attach);
            if let Ok(addr) = listener.local_addr() {
                tracing::info!("serving Prometheus metrics on http://{addr}/metrics");
            }
            tokio::spawn(metrics::serve(listener, metrics.registry()));
            Box::new(metrics)
        }
        None => Box::new(NoMetrics),
    };
    let mut pipeline = Pipeline {
        kernel,
        table: FlowTable::new(options.table),
        ended: Vec::new(),
        files: ParquetFiles::new(&options.out, &run_id),
        dns_files: ParquetFiles::new(&options.out, &run_id),
        dns: DnsTracker::new(options.dns_capacity, crate::dns::GRACE_NS),
        classifier: options.classifier.clone(),
        points,
        clock,
        wall,
        summary,
        counters: [Default::default(); counter::LEN as usize],
        metrics,
    };
    pipeline.publish();
    // An interface may have gone between attaching and subscribing.
    for ifindex in interfaces.iter().map(|i| i.ifindex) {
        if !pipeline.kernel.interface_exists(ifindex) {
            pipeline.interface_gone(ifindex)?;
        }
    }
    let names: Vec<String> = interfaces.iter().map(|i| i.to_string()).collect();
    tracing::info!(
        "capturing on {} ({attach}); writing to {}",
        names.join(", "),
        options.out.display()
    );
    if let Some(path) = &options.ready_file {
        std::fs::write(path, format!("{run_id}\n")).map_err(|source| RunError::Io {
            what: "write the ready file",
            source,
        })?;
    }
    Ok((pipeline, sources))
}

/// The observation point of each watched interface, by index.
fn observation_points(
    interfaces: &[Interface],
    host: &str,
    namespace: Option<&str>,
) -> HashMap<u32, ObservationPoint> {
    let host: Arc<str> = host.into();
    let netns: Option<Arc<str>> = namespace.map(Into::into);
    interfaces
        .iter()
        .map(|i| {
            let point = ObservationPoint {
                host: host.clone(),
                netns: netns.clone(),
                iface: i.name.as_str().into(),
                iface_role: i.role.as_deref().map(Into::into),
            };
            (i.ifindex, point)
        })
        .collect()
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: a valid buffer of the given length.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostname_is_not_empty() {
        assert!(!hostname().is_empty());
    }
}
