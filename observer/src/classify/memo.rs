//! The memo behind [`Classifier::classify_all`]: a record's classification
//! depends only on a few of its fields ([`MemoKey`]), so a batch is judged
//! once per distinct key and each record gets the decision's text as shared
//! strings ([`Stamp`]): reference counts, not copies.
//!
//! The keys are small and no adversary chooses them, so the index hashes
//! with FxHash (`rustc-hash`), far cheaper than SipHash here.

use std::{hash::Hash, net::IpAddr, sync::Arc};

use ipnet::Ipv4Net;
use rustc_hash::FxHashMap;

use super::{Answer, Classification, Classifier, Sides, answers::answers};
use crate::flow::{FlowRecord, NsgDecision};

impl Classifier {
    /// Classifies `records` in place, pairing directions for `blocked`.
    ///
    /// A record's classification depends only on its addresses, the remote
    /// port, the protocol, the interface role, the TCP answer and the DNS
    /// names; records sharing those share one decision, computed once (with
    /// its reason text) and copied to each of them.
    pub fn classify_all(&self, records: &mut [FlowRecord]) {
        let ase = self.topology.ase_subnet().prefix;
        let answers = answers(records, ase);
        let mut routes = FxHashMap::default();
        let mut table: Vec<Classification> = Vec::new();
        let mut slots: Vec<u32> = Vec::with_capacity(records.len());
        // Default rules match any source port; only user rules may not.
        let source_port_rules = self.topology.nsgs.iter().any(|nsg| {
            nsg.rules
                .iter()
                .any(|r| r.source_ports.iter().any(|p| !p.is_any()))
        });
        {
            let mut index: FxHashMap<MemoKey<'_>, u32> = FxHashMap::default();
            for (record, &answer) in records.iter().zip(&answers) {
                let key = MemoKey::of(record, answer, ase, source_port_rules);
                let slot = *index.entry(key).or_insert_with(|| {
                    table.push(self.classify_with(record, answer, &mut routes));
                    (table.len() - 1) as u32
                });
                slots.push(slot);
            }
        }
        // Each decision's text, shared: a record gets reference counts, not copies.
        let stamps: Vec<Stamp> = table.iter().map(Stamp::of).collect();
        for (record, slot) in records.iter_mut().zip(slots) {
            let s = &stamps[slot as usize];
            record.category = Some(s.category.clone());
            record.dependency.clone_from(&s.dependency);
            if record.dst_name.is_none() {
                record.dst_name.clone_from(&s.dst_name);
            }
            record.expected_next_hop.clone_from(&s.expected_next_hop);
            record.observed_path.clone_from(&s.observed_path);
            record.flow_type = Some(s.flow_type.clone());
            record.verdict = Some(s.verdict.clone());
            record.reason = Some(s.reason.clone());
        }
    }
}

/// A [`Classification`] as the record columns hold it, built once per
/// decision and shared by every record it applies to.
struct Stamp {
    category: Arc<str>,
    dependency: Option<Arc<str>>,
    dst_name: Option<Arc<str>>,
    expected_next_hop: Option<Arc<str>>,
    observed_path: Option<Arc<str>>,
    flow_type: Arc<str>,
    verdict: Arc<str>,
    reason: Arc<str>,
}

impl Stamp {
    fn of(c: &Classification) -> Self {
        Self {
            category: c.category.as_str().into(),
            dependency: c.dependency.as_deref().map(Into::into),
            dst_name: c.dst_name.as_deref().map(Into::into),
            expected_next_hop: c.expected_next_hop.map(|h| h.as_str().into()),
            observed_path: c.observed_path.map(|h| h.as_str().into()),
            flow_type: c.flow_type.as_str().into(),
            verdict: c.verdict.as_str().into(),
            reason: c.reason.as_str().into(),
        }
    }
}

/// What a record's classification depends on (see [`Classifier::classify_all`]).
#[derive(PartialEq, Eq, Hash)]
struct MemoKey<'a> {
    src: IpAddr,
    dst: IpAddr,
    remote_port: Option<u16>,
    /// The workload's port, only where it matters: inbound flows (it is the
    /// service port) or NSGs with source-port rules.
    local_port: Option<u16>,
    inbound: bool,
    protocol: u8,
    role: Option<Shared<'a>>,
    answer: Answer,
    dst_name: Option<Shared<'a>>,
    dns_chain: Option<&'a [String]>,
    nsg_decision: Option<NsgDecision>,
    nsg_rule: Option<Shared<'a>>,
    /// The encryption status of a flow dropped by encryption (its reason says it).
    dropped_unencrypted: Option<Shared<'a>>,
}

impl<'a> MemoKey<'a> {
    fn of(r: &'a FlowRecord, answer: Answer, ase: Ipv4Net, source_port_rules: bool) -> Self {
        let sides = Sides::of(r, ase);
        Self {
            src: r.src_addr,
            dst: r.dst_addr,
            remote_port: sides.remote_port,
            local_port: if sides.inbound || source_port_rules {
                sides.local_port
            } else {
                None
            },
            inbound: sides.inbound,
            nsg_decision: r.origin.nsg_decision,
            nsg_rule: r.origin.nsg_rule.as_deref().map(Shared),
            dropped_unencrypted: r
                .origin
                .dropped_unencrypted()
                .then(|| Shared(r.origin.encryption.as_deref().unwrap_or_default())),
            protocol: r.protocol,
            role: r.point.iface_role.as_deref().map(Shared),
            answer,
            dst_name: r.dst_name.as_deref().map(Shared),
            dns_chain: r.dns_chain.as_deref(),
        }
    }
}

/// Text in a [`MemoKey`]: records usually share one string (interned rule
/// names, roles, classification text), so equality checks the pointer
/// before the bytes; the hash is of the text, so equal text still meets.
#[derive(Clone, Copy)]
struct Shared<'a>(&'a str);

impl PartialEq for Shared<'_> {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.0, other.0) || self.0 == other.0
    }
}

impl Eq for Shared<'_> {}

impl Hash for Shared<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}
