//! The flow table: accumulates the kernel's per-drain deltas per flow and
//! decides when a flow record ends (IPFIX semantics):
//!
//! - end of flow: a FIN or RST was seen and the flow then stayed quiet for
//!   the close grace (so the last ACK lands in the same record);
//! - idle timeout: no packet for `idle_timeout`;
//! - active timeout: the record is older than `active_timeout`; an interim
//!   record is emitted and the flow carries on in a fresh one. A
//!   [`FlowTable::snapshot`] (the live pipeline takes one at every flush)
//!   does the same for every live flow, so the files on disk hold every
//!   packet up to the last flush; its records carry the same reason;
//! - lack of resources: the table holds `max_flows`; the flows idle longest
//!   are ended early;
//! - forced end: the capture stops.
//!
//! Times are kernel monotonic nanoseconds. The table knows nothing of names
//! or files: it yields `(key, counters, reason)` and the pipeline builds
//! records from them.

use std::{collections::HashMap, time::Duration};

use observer_common::{FlowKey, FlowStats};

use super::EndReason;

/// The table's timeouts and bound (public: `pipeline::RunOptions` and
/// `import::pcap::PcapOptions` carry it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableConfig {
    pub idle_timeout: Duration,
    pub active_timeout: Duration,
    /// Quiet time after FIN/RST before the record ends.
    pub close_grace: Duration,
    /// Live flows the table holds before ending the idlest ones.
    pub max_flows: usize,
}

impl Default for TableConfig {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(15),
            active_timeout: Duration::from_secs(60),
            close_grace: Duration::from_secs(2),
            max_flows: 4_000_000,
        }
    }
}

/// A finished (or interim) record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ended {
    pub(crate) key: FlowKey,
    pub(crate) stats: FlowStats,
    pub(crate) reason: EndReason,
}

/// Counters of one live record, packed (48 bytes) to keep a million live
/// flows within the userspace memory budget.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Live {
    packets: u64,
    bytes: u64,
    first_ns: u64,
    last_ns: u64,
    syn: u32,
    fin: u32,
    rst: u32,
    tcp_flags: u8,
    /// FIN or RST seen: the record ends after the close grace.
    closing: bool,
}
const _: () = assert!(size_of::<Live>() == 48);

impl Live {
    fn from_delta(delta: &FlowStats) -> Self {
        let mut live = Self::default();
        live.add(delta);
        live
    }

    fn add(&mut self, delta: &FlowStats) {
        if self.packets == 0 {
            self.first_ns = delta.first_seen_ns;
        } else {
            self.first_ns = self.first_ns.min(delta.first_seen_ns);
        }
        // The kernel times later packets in ticks; merged deltas must still
        // never end before they start.
        self.last_ns = self
            .last_ns
            .max(delta.last_seen_ns)
            .max(delta.first_seen_ns);
        self.packets += delta.packets;
        self.bytes += delta.bytes;
        self.syn = self.syn.saturating_add(delta.syn_count as u32);
        self.fin = self.fin.saturating_add(delta.fin_count as u32);
        self.rst = self.rst.saturating_add(delta.rst_count as u32);
        self.tcp_flags |= delta.tcp_flags as u8;
        self.closing |= delta.fin_count > 0 || delta.rst_count > 0;
    }

    fn stats(&self) -> FlowStats {
        FlowStats {
            packets: self.packets,
            bytes: self.bytes,
            first_seen_ns: self.first_ns,
            last_seen_ns: self.last_ns,
            tcp_flags: u64::from(self.tcp_flags),
            syn_count: u64::from(self.syn),
            fin_count: u64::from(self.fin),
            rst_count: u64::from(self.rst),
        }
    }

    /// Starts a fresh record after an interim one; `last_ns` stays for the
    /// idle check, `closing` so the record after a FIN still ends after the
    /// close grace.
    fn reset(&mut self) {
        *self = Self {
            last_ns: self.last_ns,
            closing: self.closing,
            ..Self::default()
        };
    }
}

#[derive(Debug)]
pub(crate) struct FlowTable {
    config: TableConfig,
    flows: HashMap<FlowKey, Live>,
}

impl FlowTable {
    pub(crate) fn new(config: TableConfig) -> Self {
        Self {
            config,
            flows: HashMap::new(),
        }
    }

    /// Live flows (records not yet ended).
    pub(crate) fn len(&self) -> usize {
        self.flows.len()
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// Adds a kernel delta (one drain's counters, or one overflow packet).
    pub(crate) fn add(&mut self, key: &FlowKey, delta: &FlowStats, ended: &mut Vec<Ended>) {
        if delta.packets == 0 {
            return;
        }
        match self.flows.get_mut(key) {
            Some(live) => {
                // A SYN on a flow that already closed is a new connection
                // reusing the 5-tuple: the old record ends first (if an
                // interim record did not just take its counters).
                if live.closing
                    && delta.syn_count > 0
                    && delta.fin_count == 0
                    && delta.rst_count == 0
                {
                    if live.packets > 0 {
                        ended.push(Ended {
                            key: *key,
                            stats: live.stats(),
                            reason: EndReason::EndOfFlow,
                        });
                    }
                    *live = Live::from_delta(delta);
                } else {
                    live.add(delta);
                }
            }
            None => {
                self.flows.insert(*key, Live::from_delta(delta));
            }
        }
    }

    /// Ends the records whose time has come at `now_ns`.
    pub(crate) fn expire(&mut self, now_ns: u64, ended: &mut Vec<Ended>) {
        let idle = self.config.idle_timeout.as_nanos() as u64;
        let active = self.config.active_timeout.as_nanos() as u64;
        let grace = self.config.close_grace.as_nanos() as u64;
        self.flows.retain(|key, live| {
            let quiet = now_ns.saturating_sub(live.last_ns);
            if live.packets == 0 {
                // Waiting after an interim record: forget it once idle.
                return quiet < idle;
            }
            let reason = if live.closing && quiet >= grace {
                EndReason::EndOfFlow
            } else if quiet >= idle {
                EndReason::IdleTimeout
            } else if now_ns.saturating_sub(live.first_ns) >= active {
                ended.push(Ended {
                    key: *key,
                    stats: live.stats(),
                    reason: EndReason::ActiveTimeout,
                });
                live.reset();
                return true;
            } else {
                return true;
            };
            ended.push(Ended {
                key: *key,
                stats: live.stats(),
                reason,
            });
            false
        });
        self.shed(ended);
    }

    /// Over `max_flows`: ends the tenth of the table that has been idle longest.
    fn shed(&mut self, ended: &mut Vec<Ended>) {
        if self.flows.len() <= self.config.max_flows {
            return;
        }
        let target = self.config.max_flows - self.config.max_flows / 10;
        let excess = self.flows.len() - target;
        let mut last_seen: Vec<u64> = self.flows.values().map(|l| l.last_ns).collect();
        let (_, &mut threshold, _) = last_seen.select_nth_unstable(excess - 1);
        let mut removed = 0;
        self.flows.retain(|key, live| {
            if removed < excess && live.last_ns <= threshold {
                removed += 1;
                if live.packets > 0 {
                    ended.push(Ended {
                        key: *key,
                        stats: live.stats(),
                        reason: EndReason::LackOfResources,
                    });
                }
                false
            } else {
                true
            }
        });
    }

    /// Emits the counters so far of every live record as an interim record
    /// (`active-timeout`, as the active timeout does) and carries each flow
    /// on in a fresh one that counts only what comes after. Flows without a
    /// packet since their last record emit nothing.
    pub(crate) fn snapshot(&mut self, ended: &mut Vec<Ended>) {
        for (key, live) in &mut self.flows {
            if live.packets > 0 {
                ended.push(Ended {
                    key: *key,
                    stats: live.stats(),
                    reason: EndReason::ActiveTimeout,
                });
                live.reset();
            }
        }
    }

    /// Ends the records of interface `ifindex` (it disappeared: no packet
    /// will come, so waiting for a timeout would only delay the records).
    pub(crate) fn end_interface(&mut self, ifindex: u32, ended: &mut Vec<Ended>) {
        self.flows.retain(|key, live| {
            if key.ifindex != ifindex {
                return true;
            }
            if live.packets > 0 {
                ended.push(Ended {
                    key: *key,
                    stats: live.stats(),
                    reason: EndReason::ForcedEnd,
                });
            }
            false
        });
    }

    /// Ends every record (the capture is stopping).
    pub(crate) fn finish(&mut self, ended: &mut Vec<Ended>) {
        for (key, live) in self.flows.drain() {
            if live.packets > 0 {
                ended.push(Ended {
                    key,
                    stats: live.stats(),
                    reason: EndReason::ForcedEnd,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use observer_common::tcp_flag;

    use super::*;

    const S: u64 = 1_000_000_000;

    fn key(port: u16) -> FlowKey {
        FlowKey {
            src_port: port,
            dst_port: 443,
            protocol: crate::protocol::IpProtocol::TCP.number(),
            ip_version: 4,
            ..FlowKey::default()
        }
    }

    fn delta(at: u64, packets: u64, flags: u8) -> FlowStats {
        FlowStats {
            packets,
            bytes: packets * 100,
            first_seen_ns: at,
            last_seen_ns: at,
            tcp_flags: u64::from(flags),
            syn_count: u64::from(flags & tcp_flag::SYN != 0),
            fin_count: u64::from(flags & tcp_flag::FIN != 0),
            rst_count: u64::from(flags & tcp_flag::RST != 0),
        }
    }

    fn table() -> FlowTable {
        FlowTable::new(TableConfig::default())
    }

    #[test]
    fn deltas_accumulate_into_one_record() {
        let (mut t, mut out) = (table(), Vec::new());
        t.add(&key(1), &delta(S, 2, tcp_flag::SYN), &mut out);
        t.add(&key(1), &delta(2 * S, 3, tcp_flag::ACK), &mut out);
        t.finish(&mut out);
        assert_eq!(out.len(), 1);
        let e = &out[0];
        assert_eq!(
            (e.stats.packets, e.stats.bytes, e.reason),
            (5, 500, EndReason::ForcedEnd)
        );
        assert_eq!((e.stats.first_seen_ns, e.stats.last_seen_ns), (S, 2 * S));
        assert_eq!(e.stats.tcp_flags as u8, tcp_flag::SYN | tcp_flag::ACK);
    }

    #[test]
    fn a_coarse_last_seen_never_ends_before_the_exact_first_seen() {
        let (mut t, mut out) = (table(), Vec::new());
        // First packet at S + 3 ms exactly; the next, same tick, stamped S.
        let mut d = delta(S + 3_000_000, 2, 0);
        d.last_seen_ns = S;
        t.add(&key(1), &d, &mut out);
        t.finish(&mut out);
        assert_eq!(
            (out[0].stats.first_seen_ns, out[0].stats.last_seen_ns),
            (S + 3_000_000, S + 3_000_000)
        );
    }

    #[test]
    fn fin_ends_the_record_after_the_grace_and_keeps_the_last_ack() {
        let (mut t, mut out) = (table(), Vec::new());
        t.add(
            &key(1),
            &delta(S, 4, tcp_flag::ACK | tcp_flag::FIN),
            &mut out,
        );
        t.expire(S + S / 2, &mut out);
        assert!(out.is_empty(), "still inside the close grace");
        t.add(&key(1), &delta(S + S / 2, 1, tcp_flag::ACK), &mut out);
        t.expire(4 * S, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(
            (out[0].reason, out[0].stats.packets, out[0].stats.fin_count),
            (EndReason::EndOfFlow, 5, 1)
        );
        assert!(t.is_empty());
    }

    #[test]
    fn a_syn_after_close_starts_a_new_record() {
        let (mut t, mut out) = (table(), Vec::new());
        t.add(
            &key(1),
            &delta(S, 3, tcp_flag::FIN | tcp_flag::ACK),
            &mut out,
        );
        t.add(&key(1), &delta(S + 1, 1, tcp_flag::SYN), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].stats.packets, 3);
        t.finish(&mut out);
        assert_eq!(out[1].stats.packets, 1);
    }

    #[test]
    fn idle_flows_end_and_busy_ones_stay() {
        let (mut t, mut out) = (table(), Vec::new());
        t.add(&key(1), &delta(S, 1, 0), &mut out);
        t.add(&key(2), &delta(10 * S, 1, 0), &mut out);
        t.expire(17 * S, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(
            (out[0].key, out[0].reason),
            (key(1), EndReason::IdleTimeout)
        );
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn long_flows_get_interim_records_that_add_up() {
        let (mut t, mut out) = (table(), Vec::new());
        for second in 0..130 {
            t.add(&key(1), &delta(second * S, 1, 0), &mut out);
            t.expire(second * S, &mut out);
        }
        t.finish(&mut out);
        let reasons: Vec<_> = out.iter().map(|e| e.reason).collect();
        assert_eq!(
            reasons,
            [
                EndReason::ActiveTimeout,
                EndReason::ActiveTimeout,
                EndReason::ForcedEnd
            ]
        );
        assert_eq!(out.iter().map(|e| e.stats.packets).sum::<u64>(), 130);
        // Interim records do not overlap.
        assert!(
            out.windows(2)
                .all(|w| w[0].stats.last_seen_ns < w[1].stats.first_seen_ns)
        );
    }

    #[test]
    fn an_interim_flow_that_goes_quiet_is_forgotten_without_an_empty_record() {
        let (mut t, mut out) = (table(), Vec::new());
        t.add(&key(1), &delta(0, 1, 0), &mut out);
        t.add(&key(1), &delta(59 * S, 1, 0), &mut out);
        t.expire(60 * S, &mut out);
        assert_eq!(out.len(), 1);
        t.expire(100 * S, &mut out);
        t.finish(&mut out);
        assert_eq!(out.len(), 1);
        assert!(t.is_empty());
    }

    #[test]
    fn snapshots_split_counters_without_counting_twice() {
        let (mut t, mut out) = (table(), Vec::new());
        t.add(&key(1), &delta(S, 3, tcp_flag::SYN), &mut out);
        t.add(&key(2), &delta(S, 1, 0), &mut out);
        t.snapshot(&mut out);
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|e| e.reason == EndReason::ActiveTimeout));
        // Only key 1 carries on; key 2's empty record emits nothing.
        t.add(&key(1), &delta(2 * S, 4, tcp_flag::ACK), &mut out);
        t.snapshot(&mut out);
        assert_eq!(out.len(), 3);
        assert_eq!(
            (out[2].key, out[2].stats.packets, out[2].stats.first_seen_ns),
            (key(1), 4, 2 * S)
        );
        t.finish(&mut out);
        assert_eq!(out.len(), 3, "nothing left after the snapshots");
        assert_eq!(out.iter().map(|e| e.stats.packets).sum::<u64>(), 8);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn a_snapshot_between_fin_and_last_ack_keeps_the_end_of_flow() {
        let (mut t, mut out) = (table(), Vec::new());
        t.add(
            &key(1),
            &delta(S, 4, tcp_flag::FIN | tcp_flag::ACK),
            &mut out,
        );
        t.snapshot(&mut out);
        t.add(&key(1), &delta(S + S / 2, 1, tcp_flag::ACK), &mut out);
        t.expire(4 * S, &mut out);
        let reasons: Vec<_> = out.iter().map(|e| (e.reason, e.stats.packets)).collect();
        assert_eq!(
            reasons,
            [(EndReason::ActiveTimeout, 4), (EndReason::EndOfFlow, 1)]
        );
        // A new connection on the tuple after a snapshot of a closing flow
        // starts afresh instead of ending at the old one's close grace.
        let (mut t, mut out) = (table(), Vec::new());
        t.add(
            &key(2),
            &delta(S, 2, tcp_flag::FIN | tcp_flag::ACK),
            &mut out,
        );
        t.snapshot(&mut out);
        t.add(&key(2), &delta(2 * S, 1, tcp_flag::SYN), &mut out);
        t.expire(5 * S, &mut out);
        assert_eq!(out.len(), 1, "the new connection is still open");
        t.finish(&mut out);
        assert_eq!(
            (out[1].reason, out[1].stats.syn_count),
            (EndReason::ForcedEnd, 1)
        );
    }

    #[test]
    fn a_vanished_interface_ends_its_flows_only() {
        let (mut t, mut out) = (table(), Vec::new());
        let on = |port, ifindex| FlowKey {
            ifindex,
            ..key(port)
        };
        t.add(&on(1, 3), &delta(S, 2, 0), &mut out);
        t.add(&on(2, 3), &delta(S, 1, 0), &mut out);
        t.add(&on(1, 4), &delta(S, 5, 0), &mut out);
        t.end_interface(3, &mut out);
        assert_eq!(out.len(), 2);
        assert!(
            out.iter()
                .all(|e| e.key.ifindex == 3 && e.reason == EndReason::ForcedEnd)
        );
        assert_eq!(out.iter().map(|e| e.stats.packets).sum::<u64>(), 3);
        assert_eq!(t.len(), 1, "the other interface's flow lives on");
    }

    #[test]
    fn a_full_table_ends_the_idlest_flows_for_lack_of_resources() {
        let config = TableConfig {
            max_flows: 100,
            ..TableConfig::default()
        };
        let (mut t, mut out) = (FlowTable::new(config), Vec::new());
        for port in 0..120u16 {
            t.add(&key(port), &delta(u64::from(port) * 1000, 1, 0), &mut out);
        }
        t.expire(1000 * 120, &mut out);
        assert_eq!(t.len(), 90);
        assert_eq!(out.len(), 30);
        assert!(
            out.iter()
                .all(|e| e.reason == EndReason::LackOfResources && e.key.src_port < 30)
        );
        t.finish(&mut out);
        assert_eq!(
            out.iter().map(|e| e.stats.packets).sum::<u64>(),
            120,
            "no packet lost"
        );
    }
}
