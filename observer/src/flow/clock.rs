//! Kernel timestamps are CLOCK_MONOTONIC (`bpf_ktime_get_ns`); records carry
//! UTC. The offset between the two clocks is read once per capture.
//!
//! The live loop asks a [`Clock`] for the time, so unit tests can hand it
//! one that follows tokio's paused test time instead of the host's clocks.

/// The time of a live capture: now in the kernel's time base, and the
/// conversion of kernel times to UTC.
pub(crate) trait Clock {
    /// Now, in CLOCK_MONOTONIC nanoseconds (the kernel program's time base).
    fn monotonic_ns(&self) -> u64;
    /// The conversion of kernel times to UTC, fixed for the capture.
    fn wall(&self) -> WallClock;
    /// Now, in UTC nanoseconds since the epoch.
    fn utc_now_ns(&self) -> i64 {
        self.wall().utc_ns(self.monotonic_ns())
    }
}

/// Converts kernel monotonic nanoseconds to UTC nanoseconds since the epoch.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WallClock {
    offset_ns: i64,
}

fn read(clock: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec; these clocks always exist on Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// CLOCK_MONOTONIC now, in the kernel program's time base.
pub(crate) fn monotonic_now_ns() -> u64 {
    read(libc::CLOCK_MONOTONIC) as u64
}

/// CPU time of the calling thread: what a piece of work cost, whatever else
/// shared the CPU meanwhile.
pub(crate) fn thread_cpu_time() -> std::time::Duration {
    std::time::Duration::from_nanos(read(libc::CLOCK_THREAD_CPUTIME_ID) as u64)
}

impl WallClock {
    pub(crate) fn new() -> Self {
        // Bracket the realtime read to halve the error of the two reads.
        let before = read(libc::CLOCK_MONOTONIC);
        let real = read(libc::CLOCK_REALTIME);
        let after = read(libc::CLOCK_MONOTONIC);
        Self {
            offset_ns: real - (before + (after - before) / 2),
        }
    }

    /// The identity conversion, for times that are already UTC (packet
    /// capture files).
    pub(crate) fn utc() -> Self {
        Self { offset_ns: 0 }
    }

    /// A conversion that adds `offset_ns` (for test clocks).
    #[cfg(test)]
    pub(crate) fn with_offset(offset_ns: i64) -> Self {
        Self { offset_ns }
    }

    pub(crate) fn utc_ns(&self, monotonic_ns: u64) -> i64 {
        monotonic_ns as i64 + self.offset_ns
    }
}

impl Clock for WallClock {
    fn monotonic_ns(&self) -> u64 {
        monotonic_now_ns()
    }

    fn wall(&self) -> WallClock {
        *self
    }
}

impl Default for WallClock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_now_to_about_now() {
        let clock = WallClock::new();
        let utc = clock.utc_ns(monotonic_now_ns());
        let system = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i64;
        assert!((utc - system).abs() < 50_000_000, "{utc} vs {system}");
        assert!((clock.utc_now_ns() - system).abs() < 50_000_000);
    }
}
