//! What the kernel accepts for the capture's maps, so a bad size is refused
//! with the flag, the value and the limit instead of an errno:
//!
//! - at argument parsing, the hard limits: a hash map holds at most 2^27
//!   entries (its bucket array must stay under 4 GiB: E2BIG beyond), a
//!   flow cache (a plain `BPF_F_MMAPABLE` array of `slots` slots for each
//!   possible CPU, CPU after CPU) below 2 GiB (a bound of ours: the kernel
//!   limits only the `u32` entry count and memory, but every drain reads
//!   the whole retired cache), a ring buffer at
//!   most 2 GiB (its size is a `u32` power of two);
//! - before loading, the memory every map needs against what the host has
//!   available: the kernel would take it (waking the OOM killer) or fail
//!   with ENOMEM half-way;
//! - when the kernel still refuses a map (a memory cgroup limit, an older
//!   kernel), [`map_error`] names the flag that [`sized_by`] finds.

use std::io;

use observer_common::CachedFlow;

use super::{CaptureConfig, CaptureError};

/// Entries of a hash map: its bucket array (16 bytes per bucket, a power
/// of two of them) must stay below `u32::MAX` bytes.
pub(crate) const MAX_FLOW_MAP_SIZE: u32 = 1 << 27;

/// Bytes of a ring buffer: a power of two that fits the map's `u32` size.
pub(crate) const MAX_RING_MIB: u32 = 2048;

/// Kernel bytes per flow-map entry: the element (header, 48-byte key,
/// 64-byte value) and its bucket, as `bpftool map show` reports them
/// (`bytes_memlock / max_entries`, Linux 6.x).
pub(crate) const FLOW_MAP_ENTRY_BYTES: u64 = 176;

/// Kernel bytes per flow-cache slot and possible CPU.
pub(crate) const FLOW_CACHE_SLOT_BYTES: u64 = size_of::<CachedFlow>() as u64;

/// The most memory one flow cache may take (see the module header); below
/// 2 GiB, so its entry count also fits a `u32`.
const ARRAY_BYTES: u64 = i32::MAX as u64 - 4096;

/// CPUs the kernel may bring online (per-CPU maps have a slot for each).
pub(crate) fn possible_cpus() -> Result<usize, CaptureError> {
    aya::util::nr_cpus().map_err(|(_, source)| CaptureError::Syscall {
        call: "reading /sys/devices/system/cpu/possible",
        source,
    })
}

/// Kernel memory of one flow cache of `slots` slots per CPU.
pub(crate) fn flow_cache_bytes(slots: u32, cpus: usize) -> u64 {
    u64::from(slots) * FLOW_CACHE_SLOT_BYTES * cpus as u64
}

/// The largest `--flow-cache-slots` with `cpus` possible CPUs: a power of
/// two whose cache stays within an array's 2 GiB.
pub(crate) fn max_flow_cache_slots(cpus: usize) -> u32 {
    let mut slots: u32 = 1 << 31;
    while slots > 1 && flow_cache_bytes(slots, cpus) >= ARRAY_BYTES {
        slots >>= 1;
    }
    slots
}

/// Parses `--flow-cache-slots`: a power of two within [`max_flow_cache_slots`].
pub(crate) fn parse_flow_cache_slots(text: &str) -> Result<u32, String> {
    let slots: u32 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of slots"))?;
    if !slots.is_power_of_two() {
        return Err(format!(
            "must be a power of two (1, 2, 4, ..., 4096, ...), not {slots}"
        ));
    }
    let cpus = possible_cpus().map_err(|e| format!("{e}"))?;
    let max = max_flow_cache_slots(cpus);
    if slots > max {
        return Err(format!(
            "{slots} slots is more than the kernel accepts here: each of the two caches \
             takes {FLOW_CACHE_SLOT_BYTES} bytes per slot on each of the {cpus} possible CPUs, and an \
             array stays within 2 GiB, so at most {max} (the default is 4096)"
        ));
    }
    Ok(slots)
}

/// Parses `--flow-map-size`: 1 to [`MAX_FLOW_MAP_SIZE`].
pub(crate) fn parse_flow_map_size(text: &str) -> Result<u32, String> {
    let size: u32 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of flows"))?;
    if size == 0 || size > MAX_FLOW_MAP_SIZE {
        return Err(format!(
            "must be 1 to {MAX_FLOW_MAP_SIZE} (the kernel's limit for a hash map), not {size}"
        ));
    }
    Ok(size)
}

/// Parses `--event-ring-mib` and `--dns-ring-mib`: a power of two up to
/// [`MAX_RING_MIB`].
pub(crate) fn parse_ring_mib(text: &str) -> Result<u32, String> {
    let mib: u32 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of MiB"))?;
    if !mib.is_power_of_two() || mib > MAX_RING_MIB {
        return Err(format!(
            "must be a power of two from 1 to {MAX_RING_MIB} (1, 2, 4, 8, ...), not {mib}"
        ));
    }
    Ok(mib)
}

/// One map's share of the kernel memory a capture needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MapNeed {
    pub flag: &'static str,
    pub value: u64,
    pub what: &'static str,
    pub bytes: u64,
}

/// The kernel memory each sized map of `config` needs.
pub(crate) fn needs(config: &CaptureConfig, cpus: usize) -> Vec<MapNeed> {
    let mut needs = vec![
        MapNeed {
            flag: "--flow-map-size",
            value: config.flow_map_size.into(),
            what: "the two flow maps",
            bytes: 2 * u64::from(config.flow_map_size) * FLOW_MAP_ENTRY_BYTES,
        },
        MapNeed {
            flag: "--flow-cache-slots",
            value: config.flow_cache_slots.into(),
            what: "the two flow caches",
            bytes: 2 * flow_cache_bytes(config.flow_cache_slots, cpus),
        },
        MapNeed {
            flag: "--event-ring-mib",
            value: (config.flow_ring_bytes >> 20).into(),
            what: "the overflow ring buffer",
            bytes: config.flow_ring_bytes.into(),
        },
    ];
    if config.capture_dns {
        needs.push(MapNeed {
            flag: "--dns-ring-mib",
            value: (config.dns_ring_bytes >> 20).into(),
            what: "the DNS ring buffer",
            bytes: config.dns_ring_bytes.into(),
        });
    }
    needs
}

/// Refuses a configuration whose maps need more memory than `available`.
pub(crate) fn check_memory(needs: &[MapNeed], available: u64) -> Result<(), CaptureError> {
    let total: u64 = needs.iter().map(|n| n.bytes).sum();
    if total <= available {
        return Ok(());
    }
    let largest = needs
        .iter()
        .max_by_key(|n| n.bytes)
        .expect("a capture has maps");
    Err(CaptureError::MapMemory {
        total,
        available,
        flag: largest.flag,
        value: largest.value,
        what: largest.what,
        bytes: largest.bytes,
    })
}

/// `MemAvailable` of /proc/meminfo, in bytes (`None` when unreadable).
pub(crate) fn memory_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The flag that sized kernel map `map` and what it needs (`None` for
/// maps of fixed size).
pub(crate) fn sized_by(map: &str, config: &CaptureConfig, cpus: usize) -> Option<MapNeed> {
    needs(config, cpus).into_iter().find(|n| match n.flag {
        "--flow-map-size" => map.starts_with("observer_flows"),
        "--flow-cache-slots" => map.starts_with("FLOW_CACHE"),
        "--event-ring-mib" => map == "FLOW_EVENTS",
        "--dns-ring-mib" => map == "DNS_EVENTS",
        _ => false,
    })
}

/// The error for a map the kernel would not create, naming the flag that
/// sized it and what to do.
pub(crate) fn map_error(need: MapNeed, source: io::Error) -> CaptureError {
    let fix = match source.raw_os_error() {
        Some(libc::E2BIG) => "more than this kernel allows for one map; choose a smaller value",
        Some(libc::ENOMEM) => {
            "out of memory (or over the memory cgroup's limit); choose a smaller value or free memory"
        }
        Some(libc::EPERM) => {
            "over the locked-memory limit (RLIMIT_MEMLOCK, kernels before 5.11); raise it or choose a smaller value"
        }
        _ => "choose a smaller value",
    };
    CaptureError::MapSize {
        flag: need.flag,
        value: need.value,
        what: need.what,
        bytes: need.bytes,
        fix,
        source,
    }
}

/// Bytes in binary units for messages (`1.5 GiB`).
pub(crate) fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_bound_keeps_a_flow_cache_within_2_gib() {
        for cpus in [1, 2, 8, 64, 256, 4096] {
            let max = max_flow_cache_slots(cpus);
            assert!(max.is_power_of_two());
            assert!(flow_cache_bytes(max, cpus) < ARRAY_BYTES, "{cpus}");
            assert!(
                flow_cache_bytes(max * 2, cpus) >= ARRAY_BYTES,
                "{cpus}: the largest such power of two"
            );
        }
        // 2^22 slots × 128 bytes × 2 CPUs = 1 GiB; twice that is 2 GiB.
        assert_eq!(max_flow_cache_slots(2), 1 << 22);
        assert_eq!(max_flow_cache_slots(64), 1 << 17);
    }

    #[test]
    fn sizes_are_checked_when_parsed() {
        let cpus = possible_cpus().unwrap();
        assert_eq!(parse_flow_cache_slots("4096"), Ok(4096));
        assert!(
            parse_flow_cache_slots("1000")
                .unwrap_err()
                .contains("power of two")
        );
        let too_many = (max_flow_cache_slots(cpus) * 2).to_string();
        let error = parse_flow_cache_slots(&too_many).unwrap_err();
        assert!(
            error.contains("more than the kernel accepts")
                && error.contains(&format!("at most {}", max_flow_cache_slots(cpus))),
            "{error}"
        );
        assert_eq!(parse_flow_map_size("65536"), Ok(65_536));
        assert!(parse_flow_map_size("0").is_err());
        assert!(
            parse_flow_map_size("200000000")
                .unwrap_err()
                .contains("134217728")
        );
        assert_eq!(parse_ring_mib("2048"), Ok(2048));
        assert!(parse_ring_mib("4096").is_err(), "4 GiB does not fit a u32");
        assert!(parse_ring_mib("3").is_err());
    }

    #[test]
    fn memory_is_checked_against_what_the_host_has() {
        let config = CaptureConfig {
            flow_map_size: 1 << 20,
            ..CaptureConfig::default()
        };
        let needs = needs(&config, 4);
        let total: u64 = needs.iter().map(|n| n.bytes).sum();
        assert!(check_memory(&needs, total).is_ok());
        let error = check_memory(&needs, total - 1).unwrap_err().to_string();
        assert!(
            error.contains("--flow-map-size 1048576") && error.contains("352.0 MiB"),
            "the largest share and its flag: {error}"
        );
        assert!(memory_available().is_some_and(|m| m > 0));
    }

    #[test]
    fn refused_maps_name_their_flag() {
        let config = CaptureConfig::default();
        let refused = |map: &str, errno| {
            let need = sized_by(map, &config, 2).expect("a sized map");
            map_error(need, io::Error::from_raw_os_error(errno)).to_string()
        };
        let text = refused("FLOW_CACHE_1", libc::ENOMEM);
        assert!(
            text.contains("--flow-cache-slots 4096")
                && text.contains("2.0 MiB")
                && text.contains("out of memory"),
            "{text}"
        );
        let text = refused("observer_flows0", libc::E2BIG);
        assert!(
            text.contains("--flow-map-size 65536") && text.contains("more than this kernel allows"),
            "{text}"
        );
        assert!(refused("DNS_EVENTS", libc::ENOMEM).contains("--dns-ring-mib 4"));
        assert!(refused("FLOW_EVENTS", libc::EPERM).contains("RLIMIT_MEMLOCK"));
        assert!(sized_by("COUNTERS", &config, 2).is_none());
    }

    #[test]
    fn bytes_read_in_binary_units() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(3 << 29), "1.5 GiB");
    }
}
