//! [`Metrics`]: the figures of one run in their own Prometheus registry.
//!
//! Names follow the Prometheus conventions: `observer_` prefix, `_total` on
//! counters, units in the name (`_bytes`, `_seconds`). Per interface and
//! direction where the data has them (flow packets, bytes, records); the
//! kernel's counters are per reason, as in the run summary.

use std::{
    collections::HashMap,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use observer_common::counter;
use prometheus::{
    Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

use super::{MetricsSink, Totals};
use crate::capture::Interface;

/// Kernel counters past the "not accounted" reasons: (index, packets metric,
/// bytes metric, help). The reasons themselves are one labelled pair.
const KERNEL: [(u32, &str, &str, &str); (counter::LEN - counter::NOT_ACCOUNTED) as usize] = [
    (
        counter::FLOW_PACKETS,
        "observer_kernel_flow_packets_total",
        "observer_kernel_flow_bytes_total",
        "Frames the kernel program counted as flow packets (all interfaces)",
    ),
    (
        counter::FLOW_MAP_FULL,
        "observer_flow_map_full_packets_total",
        "observer_flow_map_full_bytes_total",
        "Flow packets that reached userspace through the overflow ring because the flow map was full (not lost)",
    ),
    (
        counter::FLOW_EVENTS_LOST,
        "observer_lost_packets_total",
        "observer_lost_bytes_total",
        "Flow packets lost because the overflow ring was full (must stay 0)",
    ),
    (
        counter::FRAGMENTS,
        "observer_fragments_total",
        "observer_fragment_bytes_total",
        "Non-first IP fragments (flow packets without ports)",
    ),
    (
        counter::DNS_MESSAGES,
        "observer_dns_messages_total",
        "observer_dns_message_bytes_total",
        "DNS messages seen on port 53 by the kernel program",
    ),
    (
        counter::DNS_EVENTS_LOST,
        "observer_dns_events_lost_total",
        "observer_dns_events_lost_bytes_total",
        "DNS messages lost because the DNS ring was full",
    ),
    (
        counter::DNS_TRUNCATED,
        "observer_dns_truncated_total",
        "observer_dns_truncated_bytes_total",
        "DNS messages longer than the copy limit (copied truncated)",
    ),
];

/// Buckets of the drain and flush histograms: 100 µs to ~1.6 s, by 4.
const DURATION_BUCKETS: [f64; 8] = [
    0.0001, 0.0004, 0.0016, 0.0064, 0.0256, 0.1024, 0.4096, 1.6384,
];

/// The figures of one run, registered in their own registry.
pub(crate) struct Metrics {
    registry: Registry,
    /// Watched interface names by index, for the labels of [`MetricsSink::count`].
    names: HashMap<u32, String>,
    packets: IntCounterVec,
    bytes: IntCounterVec,
    records: IntCounterVec,
    /// (ifindex, direction) -> (packets, bytes) counters, resolved once.
    by_flow_point: HashMap<(u32, u8), (IntCounter, IntCounter)>,
    written: IntCounterVec,
    files: IntCounterVec,
    flows_active: IntGauge,
    records_pending: IntGauge,
    not_accounted_packets: IntCounterVec,
    not_accounted_bytes: IntCounterVec,
    kernel: Vec<(IntCounter, IntCounter)>,
    dns_answers: IntCounterVec,
    dns_malformed: IntCounter,
    dns_queries: IntCounter,
    dns_evicted: IntCounter,
    dns_tracked: IntGauge,
    drain_seconds: Histogram,
    flush_seconds: Histogram,
    last_drain: Gauge,
    last_flush: Gauge,
    interface_up: IntGaugeVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn unix_seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// Raises a cumulative counter to `value` (counters never go down).
fn raise(counter: &IntCounter, value: u64) {
    counter.inc_by(value.saturating_sub(counter.get()));
}

impl Metrics {
    /// Registers every metric. `interfaces` are the watched interfaces, all
    /// up; `run_id` and `attach` label the `observer_run_info` gauge.
    pub(crate) fn new(interfaces: &[Interface], run_id: &str, attach: &str) -> Self {
        let registry = Registry::new();
        let reg = |c: Box<dyn prometheus::core::Collector>| {
            registry
                .register(c)
                .expect("metric names are unique and valid");
        };
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            reg(Box::new(c.clone()));
            c
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric");
            reg(Box::new(c.clone()));
            c
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            reg(Box::new(g.clone()));
            g
        };
        let float_gauge = |name: &str, help: &str| {
            let g = Gauge::new(name, help).expect("valid metric");
            reg(Box::new(g.clone()));
            g
        };
        let histogram = |name: &str, help: &str| {
            let h = Histogram::with_opts(
                HistogramOpts::new(name, help).buckets(DURATION_BUCKETS.to_vec()),
            )
            .expect("valid metric");
            reg(Box::new(h.clone()));
            h
        };
        let point = ["iface", "direction"];
        let metrics = Self {
            packets: counter_vec(
                "observer_packets_total",
                "Packets accounted to flow records, per watched interface and direction",
                &point,
            ),
            bytes: counter_vec(
                "observer_bytes_total",
                "IP-layer bytes accounted to flow records, per watched interface and direction",
                &point,
            ),
            records: counter_vec(
                "observer_flow_records_total",
                "Flow records ended (idle, active timeout, end of flow, shutdown), per interface and direction",
                &point,
            ),
            names: interfaces
                .iter()
                .map(|i| (i.ifindex, i.name.clone()))
                .collect(),
            by_flow_point: HashMap::new(),
            written: counter_vec(
                "observer_records_written_total",
                "Rows written to complete Parquet files, per table (flows, dns)",
                &["table"],
            ),
            files: counter_vec(
                "observer_files_written_total",
                "Complete Parquet files written, per table (flows, dns)",
                &["table"],
            ),
            flows_active: gauge(
                "observer_flows_active",
                "Flows live in the userspace flow table (records not yet ended)",
            ),
            records_pending: gauge(
                "observer_records_pending",
                "Ended flow records waiting for the next flush",
            ),
            not_accounted_packets: counter_vec(
                "observer_not_accounted_packets_total",
                "Frames counted under a \"not accounted\" reason instead of a flow",
                &["reason"],
            ),
            not_accounted_bytes: counter_vec(
                "observer_not_accounted_bytes_total",
                "Frame bytes counted under a \"not accounted\" reason instead of a flow",
                &["reason"],
            ),
            kernel: KERNEL
                .iter()
                .map(|(_, packets, bytes, help)| {
                    (
                        counter(packets, help),
                        counter(bytes, &format!("{help}: their bytes")),
                    )
                })
                .collect(),
            dns_answers: counter_vec(
                "observer_dns_answers_total",
                "DNS responses parsed into the dns table, per interface",
                &["iface"],
            ),
            dns_malformed: counter(
                "observer_dns_malformed_total",
                "DNS messages that could not be decoded (counted, skipped)",
            ),
            dns_queries: counter(
                "observer_dns_queries_total",
                "DNS queries seen (skipped: only responses name flows)",
            ),
            dns_evicted: counter(
                "observer_dns_evicted_total",
                "Resolutions the DNS tracker dropped to stay within --dns-capacity",
            ),
            dns_tracked: gauge(
                "observer_dns_tracked",
                "(client, address) resolutions the DNS tracker holds",
            ),
            drain_seconds: histogram(
                "observer_drain_duration_seconds",
                "Time to drain the kernel flow maps into the flow table",
            ),
            flush_seconds: histogram(
                "observer_flush_duration_seconds",
                "Time to classify and write the pending records",
            ),
            last_drain: float_gauge(
                "observer_last_drain_timestamp_seconds",
                "Unix time of the last drain of the kernel flow maps",
            ),
            last_flush: float_gauge(
                "observer_last_flush_timestamp_seconds",
                "Unix time of the last successful flush (every record ended before it is in a complete file)",
            ),
            interface_up: {
                let g = IntGaugeVec::new(
                    Opts::new(
                        "observer_interface_up",
                        "1 while a watched interface exists and is captured, 0 once it disappeared",
                    ),
                    &["iface", "role"],
                )
                .expect("valid metric");
                reg(Box::new(g.clone()));
                g
            },
            registry: registry.clone(),
        };
        for interface in interfaces {
            metrics
                .interface_up
                .with_label_values(&[
                    interface.name.as_str(),
                    interface.role.as_deref().unwrap_or(""),
                ])
                .set(1);
        }
        for reason in &counter::NAMES[..counter::NOT_ACCOUNTED as usize] {
            metrics.not_accounted_packets.with_label_values(&[reason]);
            metrics.not_accounted_bytes.with_label_values(&[reason]);
        }
        for table in ["flows", "dns"] {
            metrics.written.with_label_values(&[table]);
            metrics.files.with_label_values(&[table]);
        }
        let info = IntGaugeVec::new(
            Opts::new(
                "observer_run_info",
                "The run: observer version, run id and attach mode (always 1)",
            ),
            &["version", "run_id", "attach"],
        )
        .expect("valid metric");
        reg(Box::new(info.clone()));
        info.with_label_values(&[env!("CARGO_PKG_VERSION"), run_id, attach])
            .set(1);
        let start = float_gauge(
            "observer_start_time_seconds",
            "Unix time the capture started",
        );
        start.set(unix_seconds(SystemTime::now()));
        metrics
    }

    /// The registry to serve.
    pub(crate) fn registry(&self) -> Registry {
        self.registry.clone()
    }
}

impl MetricsSink for Metrics {
    fn count(&mut self, ifindex: u32, direction: u8, packets: u64, bytes: u64) {
        let (p, b) = self
            .by_flow_point
            .entry((ifindex, direction))
            .or_insert_with(|| {
                let unknown;
                let iface = match self.names.get(&ifindex) {
                    Some(name) => name.as_str(),
                    None => {
                        unknown = format!("if{ifindex}");
                        &unknown
                    }
                };
                let dir = direction_name(direction);
                (
                    self.packets.with_label_values(&[iface, dir]),
                    self.bytes.with_label_values(&[iface, dir]),
                )
            });
        p.inc_by(packets);
        b.inc_by(bytes);
    }

    fn record(&self, iface: &str, direction: &str) {
        self.records.with_label_values(&[iface, direction]).inc();
    }

    fn dns_answer(&self, iface: &str) {
        self.dns_answers.with_label_values(&[iface]).inc();
    }

    fn sync(&self, totals: &Totals<'_>) {
        let reasons = &counter::NAMES[..counter::NOT_ACCOUNTED as usize];
        for (reason, value) in reasons.iter().zip(totals.counters.iter()) {
            raise(
                &self.not_accounted_packets.with_label_values(&[reason]),
                value.packets,
            );
            raise(
                &self.not_accounted_bytes.with_label_values(&[reason]),
                value.bytes,
            );
        }
        for ((index, ..), (packets, bytes)) in KERNEL.iter().zip(&self.kernel) {
            let value = totals.counters[*index as usize];
            raise(packets, value.packets);
            raise(bytes, value.bytes);
        }
        raise(
            &self.written.with_label_values(&["flows"]),
            totals.flow_rows_written,
        );
        raise(
            &self.written.with_label_values(&["dns"]),
            totals.dns_rows_written,
        );
        raise(
            &self.files.with_label_values(&["flows"]),
            totals.flow_files as u64,
        );
        raise(
            &self.files.with_label_values(&["dns"]),
            totals.dns_files as u64,
        );
        self.flows_active.set(totals.flows_active as i64);
        self.records_pending.set(totals.records_pending as i64);
        raise(&self.dns_malformed, totals.dns_malformed);
        raise(&self.dns_queries, totals.dns_queries);
        raise(&self.dns_evicted, totals.dns_evicted);
        self.dns_tracked.set(totals.dns_tracked as i64);
    }

    fn drained(&self, took: Duration) {
        self.drain_seconds.observe(took.as_secs_f64());
        self.last_drain.set(unix_seconds(SystemTime::now()));
    }

    fn flushed(&self, took: Duration) {
        self.flush_seconds.observe(took.as_secs_f64());
        self.last_flush.set(unix_seconds(SystemTime::now()));
    }

    fn interface_gone(&self, iface: &str, role: Option<&str>) {
        self.interface_up
            .with_label_values(&[iface, role.unwrap_or("")])
            .set(0);
    }
}

fn direction_name(direction: u8) -> &'static str {
    if direction == observer_common::DIRECTION_EGRESS {
        "egress"
    } else {
        "ingress"
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{
        capture::{Counters, LinkKind},
        metrics::http::render,
    };

    pub(crate) fn interface(name: &str, role: Option<&str>, ifindex: u32) -> Interface {
        Interface {
            name: name.into(),
            role: role.map(Into::into),
            ifindex,
            link: LinkKind::Ethernet,
        }
    }

    #[test]
    fn every_kernel_counter_has_one_metric() {
        let mut indexes: Vec<u32> = (0..counter::NOT_ACCOUNTED).collect();
        indexes.extend(KERNEL.iter().map(|k| k.0));
        indexes.sort_unstable();
        assert_eq!(indexes, (0..counter::LEN).collect::<Vec<_>>());
        let mut names: Vec<&str> = KERNEL.iter().flat_map(|k| [k.1, k.2]).collect();
        assert!(names.iter().all(|n| n.ends_with("_total")));
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), KERNEL.len() * 2);
    }

    #[test]
    fn sync_raises_counters_to_the_pipeline_totals() {
        let mut metrics = Metrics::new(&[interface("veth0", Some("vnet"), 7)], "r1", "tcx");
        let mut counters: Counters = [Default::default(); counter::LEN as usize];
        counters[counter::NON_IP as usize].packets = 3;
        counters[counter::NON_IP as usize].bytes = 180;
        counters[counter::FLOW_EVENTS_LOST as usize].packets = 2;
        let totals = Totals {
            counters: &counters,
            flows_active: 4,
            records_pending: 1,
            flow_rows_written: 10,
            dns_rows_written: 0,
            flow_files: 1,
            dns_files: 0,
            dns_malformed: 0,
            dns_queries: 5,
            dns_evicted: 0,
            dns_tracked: 0,
        };
        metrics.sync(&totals);
        metrics.sync(&totals);
        metrics.count(7, observer_common::DIRECTION_EGRESS, 5, 500);
        metrics.count(7, observer_common::DIRECTION_EGRESS, 1, 100);
        // An index no watched interface has is labelled by its number.
        metrics.count(9, observer_common::DIRECTION_INGRESS, 2, 80);
        metrics.interface_gone("veth0", Some("vnet"));
        let text = render(&metrics.registry());
        for line in [
            "observer_not_accounted_packets_total{reason=\"non_ip\"} 3",
            "observer_not_accounted_bytes_total{reason=\"non_ip\"} 180",
            "observer_lost_packets_total 2",
            "observer_records_written_total{table=\"flows\"} 10",
            "observer_dns_queries_total 5",
            "observer_flows_active 4",
            "observer_packets_total{direction=\"egress\",iface=\"veth0\"} 6",
            "observer_bytes_total{direction=\"egress\",iface=\"veth0\"} 600",
            "observer_packets_total{direction=\"ingress\",iface=\"if9\"} 2",
            "observer_interface_up{iface=\"veth0\",role=\"vnet\"} 0",
            "# TYPE observer_packets_total counter",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
        }
    }
}
