//! Readings the capture bench takes of the host: CPU time of children,
//! packet counters, RSS, the kernel's memory for the flow maps; and the
//! median the figures report.

use std::process::Command;

use anyhow::Context as _;
use observer::lab::netns::Netns;
use serde_json::{Value, json};

/// User + system CPU seconds of every waited-for descendant so far (the
/// observer, its observers, `ip`, dnsmasq, servers; the kernel's BPF
/// verification counts as the loader's system time).
pub(super) fn children_cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the zeroed struct.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

pub(super) fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

pub(super) fn rx_packets(ns: &Netns) -> anyhow::Result<u64> {
    let out = ns.exec("cat", ["/sys/class/net/veth0/statistics/rx_packets"])?;
    Ok(out.trim().parse()?)
}

pub(super) fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .context("VmRSS")?
        .trim()
        .trim_end_matches(" kB")
        .trim()
        .parse()?;
    Ok(kib * 1024)
}

/// Memory the kernel charges for the flow maps (hash maps with the 48-byte
/// key and 64-byte value), per slot, and for the two flow caches (arrays of
/// 128-byte slots, one run of slots per CPU).
pub(super) fn flow_map_bytes() -> anyhow::Result<Value> {
    let out = Command::new("bpftool")
        .args(["map", "show", "--json"])
        .output()?;
    let maps: Value = serde_json::from_slice(&out.stdout)?;
    let sizes = |kind: &str, value: u64| {
        let found: Vec<&Value> = maps
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["type"] == kind && m["bytes_value"] == value)
            .collect();
        let sum =
            |field: &str| -> u64 { found.iter().map(|m| m[field].as_u64().unwrap_or(0)).sum() };
        (found.len(), sum("bytes_memlock"), sum("max_entries"))
    };
    let (count, bytes, slots) = sizes("hash", 64);
    let (caches, cache_bytes, cache_slots) = sizes("array", 128);
    Ok(json!({
        "maps": count, "bytes": bytes, "slots": slots,
        "bytes_per_slot": if slots > 0 { bytes as f64 / slots as f64 } else { 0.0 },
        "caches": caches, "cache_bytes": cache_bytes, "cache_slots": cache_slots,
    }))
}
