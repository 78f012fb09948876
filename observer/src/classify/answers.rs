//! Pairing the two directions of a TCP flow seen on one interface: did the
//! remote end answer the SYN ([`Answer`])? Only interfaces where both
//! directions were watched can tell; elsewhere the answer is unknown.

use std::{net::IpAddr, sync::Arc};

use ipnet::Ipv4Net;
use observer_common::tcp_flag::{ACK, RST, SYN};
use rustc_hash::FxHashMap;

use super::in_net;
use crate::{
    flow::{Direction, FlowRecord},
    protocol::IpProtocol,
};

/// How the other direction of a TCP flow answered, when both were watched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Answer {
    /// Not TCP, or the reverse direction was not watched.
    Unknown,
    Answered,
    /// A SYN went out and no SYN-ACK came back.
    Unanswered,
    /// Only RSTs came back.
    Refused,
}

/// Pairs each TCP record with the reverse direction on the same interface.
pub(super) fn answers(records: &[FlowRecord], ase: Ipv4Net) -> Vec<Answer> {
    // Keys borrow the interface name (no reference-count traffic) and use
    // the cheap hasher: this pass runs over every record.
    type Key<'a> = (&'a str, IpAddr, Option<u16>, IpAddr, Option<u16>);
    // Interfaces where both directions were watched. Records of one
    // interface come in runs sharing its name: one lookup per run.
    let mut seen: FxHashMap<&str, (bool, bool)> = FxHashMap::default();
    for run in records.chunk_by(|a, b| Arc::ptr_eq(&a.point.iface, &b.point.iface)) {
        let dirs = seen.entry(&*run[0].point.iface).or_default();
        for r in run {
            match r.direction {
                Direction::Ingress => dirs.0 = true,
                Direction::Egress => dirs.1 = true,
            }
        }
    }
    seen.retain(|_, dirs| *dirs == (true, true));
    if seen.is_empty() {
        // Without both directions there is nothing to pair.
        return vec![Answer::Unknown; records.len()];
    }
    let mut flags: FxHashMap<Key<'_>, (u8, bool)> = FxHashMap::default();
    for r in records {
        if IpProtocol(r.protocol) == IpProtocol::TCP && seen.contains_key(&*r.point.iface) {
            let key = (
                &*r.point.iface,
                r.src_addr,
                r.src_port,
                r.dst_addr,
                r.dst_port,
            );
            let entry = flags.entry(key).or_default();
            entry.0 |= r.tcp_flags;
            entry.1 |= r.syn_count > 0 && r.tcp_flags & ACK == 0;
        }
    }
    records
        .iter()
        .map(|r| {
            if IpProtocol(r.protocol) != IpProtocol::TCP || !seen.contains_key(&*r.point.iface) {
                return Answer::Unknown;
            }
            // The initiator's side is the one in the ASE subnet (or, failing
            // that, the record's own source).
            let initiator_is_src = in_net(ase, r.src_addr) || !in_net(ase, r.dst_addr);
            let (out_key, back_key) = if initiator_is_src {
                (
                    (
                        &*r.point.iface,
                        r.src_addr,
                        r.src_port,
                        r.dst_addr,
                        r.dst_port,
                    ),
                    (
                        &*r.point.iface,
                        r.dst_addr,
                        r.dst_port,
                        r.src_addr,
                        r.src_port,
                    ),
                )
            } else {
                (
                    (
                        &*r.point.iface,
                        r.dst_addr,
                        r.dst_port,
                        r.src_addr,
                        r.src_port,
                    ),
                    (
                        &*r.point.iface,
                        r.src_addr,
                        r.src_port,
                        r.dst_addr,
                        r.dst_port,
                    ),
                )
            };
            let (out_flags, out_syn) = flags.get(&out_key).copied().unwrap_or_default();
            let back = flags.get(&back_key).map(|(f, _)| *f).unwrap_or(0);
            if !out_syn && out_flags & SYN == 0 {
                Answer::Unknown // a flow that started before the capture
            } else if back & (SYN | ACK) == SYN | ACK {
                Answer::Answered
            } else if back & RST != 0 {
                Answer::Refused
            } else {
                Answer::Unanswered
            }
        })
        .collect()
}
