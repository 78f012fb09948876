//! The traffic-over-time chart's model: connections active per time
//! bucket by verdict, and bytes both ways per bucket.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::report::{Judgement, Summary};

/// Connections active per time bucket, by verdict.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub(crate) struct Timeline {
    /// Bucket starts, milliseconds since the epoch.
    pub buckets_ms: Vec<i64>,
    pub bucket_seconds: f64,
    /// Verdict -> connections active in each bucket.
    pub active: BTreeMap<Judgement, Vec<usize>>,
    /// Bytes both ways per bucket, each connection's bytes spread evenly
    /// over its lifetime.
    pub bytes: Vec<f64>,
}

/// Buckets of a round size, at most 60 over the run.
pub(crate) fn timeline(summary: &Summary) -> Timeline {
    let (Some(start), Some(end)) = (
        summary.connections.iter().map(|c| c.start_ns).min(),
        summary.connections.iter().map(|c| c.end_ns).max(),
    ) else {
        return Timeline::default();
    };
    const STEPS_MS: [i64; 17] = [
        100, 200, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000,
        600_000, 900_000, 1_800_000, 3_600_000, 7_200_000,
    ];
    let span_ns = (end - start).max(1);
    let step_ms = STEPS_MS
        .iter()
        .copied()
        .find(|ms| span_ns / (ms * 1_000_000) < 60)
        .unwrap_or(86_400_000);
    let step = step_ms * 1_000_000;
    let first = start - start.rem_euclid(step);
    let count = ((end - first) / step + 1) as usize;
    let mut timeline = Timeline {
        buckets_ms: (0..count)
            .map(|i| (first + i as i64 * step) / 1_000_000)
            .collect(),
        bucket_seconds: step_ms as f64 / 1000.0,
        active: BTreeMap::new(),
        bytes: vec![0.0; count],
    };
    for c in &summary.connections {
        let from = ((c.start_ns - first) / step) as usize;
        let to = (((c.end_ns.max(c.start_ns)) - first) / step) as usize;
        let series = timeline
            .active
            .entry(c.judgement())
            .or_insert_with(|| vec![0; count]);
        for slot in &mut series[from..=to.min(count - 1)] {
            *slot += 1;
        }
        let total = (c.forward.bytes + c.reverse.bytes) as f64;
        let n = (to.min(count - 1) - from + 1) as f64;
        for b in &mut timeline.bytes[from..=to.min(count - 1)] {
            *b += total / n;
        }
    }
    timeline
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_connection_and_byte_lands_in_a_bucket() {
        let s = super::super::tests::summary();
        let t = timeline(&s);
        assert_eq!(t.bucket_seconds, 0.1, "a short run gets short intervals");
        let active: usize = t.active.values().map(|v| v.iter().sum::<usize>()).sum();
        assert_eq!(active, 2);
        let bytes: f64 = t.bytes.iter().sum();
        let expected: u64 = s
            .connections
            .iter()
            .map(|c| c.forward.bytes + c.reverse.bytes)
            .sum();
        assert!((bytes - expected as f64).abs() < 1e-6);
        assert_eq!(timeline(&Summary::default()), Timeline::default());
    }
}
