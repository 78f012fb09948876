//! The DNS tracker: which name each (client, address) pair came from, so a
//! flow can be named by the answer its client got. Entries honour the
//! answer's TTL plus a grace period and are bounded in number (the oldest
//! go first).

use std::{
    collections::{HashMap, VecDeque},
    net::IpAddr,
    sync::Arc,
};

use super::DnsAnswer;
use crate::flow::FlowRecord;

/// How long past its TTL an answer still names flows, in nanoseconds:
/// clients and resolvers keep using an address a little after it expires.
pub const GRACE_NS: i64 = 30_000_000_000;

/// What a tracked (client, address) pair resolved from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Resolution {
    pub(crate) time_ns: i64,
    pub(crate) expires_ns: i64,
    pub(crate) chain: Arc<[String]>,
}

/// Maps (client, address) to the name that produced it, honouring TTLs with
/// a grace period, bounded in memory (oldest entries go first).
#[derive(Debug)]
pub struct DnsTracker {
    pub(super) entries: HashMap<(IpAddr, IpAddr), VecDeque<Resolution>>,
    order: VecDeque<(IpAddr, IpAddr)>,
    capacity: usize,
    grace_ns: i64,
    evicted: u64,
}

/// Resolutions kept per (client, address): enough to tell names apart in time.
const PER_PAIR: usize = 4;

impl DnsTracker {
    pub fn new(capacity: usize, grace_ns: i64) -> Self {
        Self {
            entries: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            grace_ns,
            evicted: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Entries dropped to stay within the capacity.
    pub(crate) fn evicted(&self) -> u64 {
        self.evicted
    }

    pub fn record(&mut self, answer: &DnsAnswer) {
        let chain: Arc<[String]> = answer.chain.clone().into();
        for &addr in &answer.addresses {
            let key = (answer.client, addr);
            let list = self.entries.entry(key).or_default();
            if list.len() == PER_PAIR {
                list.pop_front();
            }
            list.push_back(Resolution {
                time_ns: answer.time_ns,
                expires_ns: answer.time_ns + i64::from(answer.ttl) * 1_000_000_000,
                chain: chain.clone(),
            });
            self.order.push_back(key);
        }
        while self.order.len() > self.capacity {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(list) = self.entries.get_mut(&old) {
                list.pop_front();
                if list.is_empty() {
                    self.entries.remove(&old);
                }
            }
            self.evicted += 1;
        }
    }

    /// The latest resolution of `addr` by `client` valid at `at_ns`.
    pub(crate) fn lookup(&self, client: IpAddr, addr: IpAddr, at_ns: i64) -> Option<&Resolution> {
        // Answers and the first packet can be stamped in either order within
        // one drain; allow a second of skew.
        const SKEW_NS: i64 = 1_000_000_000;
        self.entries
            .get(&(client, addr))?
            .iter()
            .rev()
            .find(|r| r.time_ns <= at_ns + SKEW_NS && at_ns <= r.expires_ns + self.grace_ns)
    }

    /// Fills `dst_name` and `dns_chain` of a record from the workload's
    /// point of view (for replies, the remote end is the source).
    pub(crate) fn enrich(&self, record: &mut FlowRecord) {
        let forward = self.lookup(record.src_addr, record.dst_addr, record.start_ns);
        let found =
            forward.or_else(|| self.lookup(record.dst_addr, record.src_addr, record.start_ns));
        if let Some(r) = found {
            record.dst_name = r.chain.first().map(|name| name.as_str().into());
            record.dns_chain = Some(r.chain.to_vec());
        }
    }
}
