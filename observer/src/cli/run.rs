//! `observer run`: capture flows on interfaces until a duration ends or
//! SIGINT/SIGTERM, and write them as Parquet.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context as _;
use clap::Args;

use super::GlobalArgs;
use crate::{
    capture::{AttachMode, CaptureConfig, InterfaceSpec, limits},
    flow::TableConfig,
    pipeline::{self, RunOptions},
};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Interface to watch, optionally with the role its path plays in the
    /// topology (e.g. `eth1=internet`). Repeat for several.
    #[arg(long = "iface", value_name = "NAME[=ROLE]", required = true)]
    interfaces: Vec<InterfaceSpec>,
    /// Capture inside this network namespace (a name under /run/netns or a path).
    #[arg(long, value_name = "NAME")]
    netns: Option<String>,
    /// Directory for the Parquet files and the run summary (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Stop after this many seconds (default: run until SIGINT or SIGTERM).
    #[arg(long, value_name = "SECS")]
    duration: Option<f64>,
    /// End a flow record after this long without packets.
    #[arg(long, value_name = "SECS", default_value_t = 15.0)]
    idle_timeout: f64,
    /// Emit an interim record for flows older than this, then carry on
    /// (each flush writes one too: see --flush-interval).
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    active_timeout: f64,
    /// How often the kernel flow map is drained.
    #[arg(long, value_name = "SECS", default_value_t = 0.5)]
    drain_interval: f64,
    /// How often records are written: the ended ones, and an interim record
    /// (end reason active-timeout) of each live flow's packets since its
    /// last record. Each write is a complete file, so a crash loses at most
    /// the packets of this long; a busy flow gets a record this often.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    flush_interval: f64,
    /// Flows the kernel map holds between two drains (each of two maps,
    /// 176 bytes per flow; at most 134,217,728, the kernel's limit for a
    /// hash map); records beyond it reach userspace one by one through a
    /// ring buffer.
    #[arg(long, value_name = "N", default_value_t = 65_536, value_parser = limits::parse_flow_map_size)]
    flow_map_size: u32,
    /// Slots of each CPU's flow cache in the kernel (a power of two; each
    /// of two caches, 128 bytes per slot and CPU, within 2 GiB). A packet of a cached flow costs no map lookup; a
    /// flow whose slot is taken moves the occupant to the flow map.
    #[arg(long, value_name = "N", default_value_t = 4096, value_parser = limits::parse_flow_cache_slots)]
    flow_cache_slots: u32,
    /// Live flows kept in userspace before the idlest are ended
    /// (end reason lack-of-resources).
    #[arg(long, value_name = "N", default_value_t = 4_000_000)]
    max_flows: usize,
    /// Size of the overflow ring buffer, in MiB (a power of two, at most 2048).
    #[arg(long, value_name = "MIB", default_value_t = 8, value_parser = limits::parse_ring_mib)]
    event_ring_mib: u32,
    /// How to hook into traffic control: auto (TCX on Linux >= 6.6, else a
    /// clsact qdisc), tcx, or tc.
    #[arg(long, value_name = "MODE", default_value = "auto")]
    attach: AttachMode,
    /// Seconds between status lines.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    status_interval: f64,
    /// Write the run id to this file once capturing (for scripts).
    #[arg(long, value_name = "FILE")]
    ready_file: Option<PathBuf>,
    /// Classify every record against this topology file before writing it.
    #[arg(long, value_name = "FILE")]
    topology: Option<PathBuf>,
    /// Extra dependency catalog (tried before the built-in one). Repeatable.
    #[arg(long, value_name = "FILE", requires = "topology")]
    catalog: Vec<PathBuf>,
    /// Do not copy DNS responses to userspace (no names, no `dns` table).
    #[arg(long)]
    no_dns: bool,
    /// Size of the DNS ring buffer, in MiB (a power of two, at most 2048;
    /// ~2 KiB per message).
    #[arg(long, value_name = "MIB", default_value_t = 4, value_parser = limits::parse_ring_mib)]
    dns_ring_mib: u32,
    /// (client, address) pairs the DNS tracker remembers.
    #[arg(long, value_name = "N", default_value_t = 262_144)]
    dns_capacity: usize,
    /// Serve live Prometheus metrics at http://ADDR/metrics (e.g.
    /// `127.0.0.1:9464`; port 0 picks a free one, logged at start). Bound
    /// before entering `--netns`, so it is reachable from the caller's
    /// namespace.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<std::net::SocketAddr>,
}

fn seconds(name: &str, value: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero())
        .with_context(|| format!("--{name} must be a positive number of seconds, not {value}"))
}

impl RunArgs {
    fn options(&self, global: &GlobalArgs) -> anyhow::Result<RunOptions> {
        Ok(RunOptions {
            interfaces: self.interfaces.clone(),
            netns: self.netns.clone(),
            out: self.out.clone(),
            duration: self.duration.map(|d| seconds("duration", d)).transpose()?,
            table: TableConfig {
                idle_timeout: seconds("idle-timeout", self.idle_timeout)?,
                active_timeout: seconds("active-timeout", self.active_timeout)?,
                max_flows: self.max_flows.max(1),
                ..TableConfig::default()
            },
            capture: CaptureConfig {
                attach: self.attach,
                flow_map_size: self.flow_map_size,
                flow_cache_slots: self.flow_cache_slots,
                flow_ring_bytes: self.event_ring_mib << 20,
                dns_ring_bytes: self.dns_ring_mib << 20,
                capture_dns: !self.no_dns,
            },
            drain_interval: seconds("drain-interval", self.drain_interval)?,
            flush_interval: seconds("flush-interval", self.flush_interval)?,
            status_interval: (!global.quiet)
                .then(|| seconds("status-interval", self.status_interval))
                .transpose()?,
            ready_file: self.ready_file.clone(),
            classifier: match &self.topology {
                Some(path) => Some(std::sync::Arc::new(super::load_classifier(
                    path,
                    &self.catalog,
                )?)),
                None => None,
            },
            dns_capacity: self.dns_capacity.max(1),
            metrics: self.metrics,
        })
    }

    pub fn execute(&self, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
        let options = self.options(global)?;
        // Before any thread exists: entering --netns only moves this thread.
        let prepared = pipeline::prepare(&options)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let summary = runtime.block_on(pipeline::run(prepared, &options))?;
        let summary_path = options.out.join(format!("run-{}.json", summary.run_id));
        let summary_at = match &summary.summary_error {
            None => format!("summary in {}", summary_path.display()),
            Some(error) => {
                // Nothing is lost silently: the summary goes to stderr.
                eprintln!(
                    "{}",
                    serde_json::to_string_pretty(&summary).expect("summary serializes")
                );
                format!("the summary could not be written ({error}); it is above")
            }
        };
        if summary.stop_reason == pipeline::WRITE_FAILED {
            let first = &summary.write_failures[0];
            let lost = &summary.unwritten;
            anyhow::bail!(
                "`{}` could not be written ({}), so the capture stopped; {} records ({} packets) \
                 and {} DNS answers could not be written ({} DNS messages left unread); {} \
                 records are in complete files; {summary_at}",
                first.file.display(),
                first.error,
                lost.records,
                lost.packets,
                lost.dns_answers,
                lost.dns_messages,
                summary.records - lost.records,
            );
        }
        if summary.stop_reason == pipeline::INTERFACES_GONE {
            let gone: Vec<&str> = summary.interfaces.iter().map(|i| i.name.as_str()).collect();
            anyhow::bail!(
                "every watched interface disappeared ({}), so the capture stopped; \
                 {} records ({} packets) are in complete files, {summary_at}",
                gone.join(", "),
                summary.records,
                summary.packets,
            );
        }
        if let Some(error) = &summary.summary_error {
            anyhow::bail!(
                "every record is in complete files, but the run summary could not be written \
                 ({error}); it is above"
            );
        }
        tracing::info!(
            "{} records ({} packets, {} bytes) in {} files; {} lost; summary in {}",
            summary.records,
            summary.packets,
            summary.bytes,
            summary.files.len(),
            summary.lost_packets,
            summary_path.display()
        );
        Ok(ExitCode::SUCCESS)
    }
}
