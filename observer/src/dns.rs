//! DNS-aware flows: DNS responses copied by the kernel program are parsed
//! with hickory-proto, kept in a bounded tracker keyed by (client, address),
//! and used to name flows (`dst_name`, `dns_chain`). Each answer is also a
//! row of the `dns` table.

use std::{
    collections::{HashMap, VecDeque},
    net::IpAddr,
    sync::{Arc, LazyLock},
};

use arrow::{
    array::{
        Array, ArrayRef, AsArray, ListBuilder, RecordBatch, StringArray, StringBuilder,
        TimestampNanosecondArray, UInt32Array,
    },
    datatypes::{
        DataType, Field, Schema, SchemaRef, TimeUnit, TimestampNanosecondType, UInt32Type,
    },
};
use hickory_proto::{
    op::{Message, MessageType},
    rr::{RData, RecordType},
};

use crate::{files::Rows, flow::FlowRecord};

/// One DNS response as observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsAnswer {
    pub time_ns: i64,
    pub iface: Arc<str>,
    /// The resolver's client (the response's destination).
    pub client: IpAddr,
    /// The server that answered (the response's source).
    pub server: IpAddr,
    pub query: String,
    pub query_type: String,
    pub rcode: String,
    /// The query name, then every CNAME target in order.
    pub chain: Vec<String>,
    pub addresses: Vec<IpAddr>,
    /// Smallest TTL along the chain, in seconds.
    pub ttl: u32,
    /// Set by classification: `ok`, `unexpected-server`,
    /// `privatelink-public`, `nxdomain-dependency`.
    pub verdict: Option<String>,
    pub reason: Option<String>,
}

impl DnsAnswer {
    /// The row of a response parsed from a message that `server` sent to
    /// `client`, seen at `time_ns` (UTC) on `iface`; not yet judged.
    pub fn new(
        parsed: Parsed,
        time_ns: i64,
        iface: Arc<str>,
        client: IpAddr,
        server: IpAddr,
    ) -> Self {
        Self {
            time_ns,
            iface,
            client,
            server,
            query: parsed.query().to_owned(),
            query_type: parsed.query_type,
            rcode: parsed.rcode,
            chain: parsed.chain,
            addresses: parsed.addresses,
            ttl: parsed.ttl,
            verdict: None,
            reason: None,
        }
    }
}

/// Why a message was skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Skip {
    /// Not a DNS message hickory can decode (truncated, compression loop,
    /// absurd counts, ...).
    Malformed(String),
    /// A query, not a response.
    Query,
    /// A response without a question.
    NoQuestion,
}

/// The names of a response: (query, type, rcode, chain, addresses, ttl).
pub fn parse_response(payload: &[u8]) -> Result<Parsed, Skip> {
    let message = Message::from_vec(payload).map_err(|e| Skip::Malformed(e.to_string()))?;
    if message.metadata.message_type != MessageType::Response {
        return Err(Skip::Query);
    }
    let query = message.queries.first().ok_or(Skip::NoQuestion)?;
    let name =
        |n: &hickory_proto::rr::Name| n.to_ascii().trim_end_matches('.').to_ascii_lowercase();
    let mut chain = vec![name(&query.name)];
    let mut ttl = u32::MAX;
    // Follow CNAMEs from the question; at most one step per answer record,
    // so a CNAME loop ends.
    for _ in 0..message.answers.len() {
        let current = chain.last().expect("chain starts non-empty").clone();
        let next = message.answers.iter().find_map(|r| match &r.data {
            RData::CNAME(target) if name(&r.name) == current => Some((name(&target.0), r.ttl)),
            _ => None,
        });
        match next {
            Some((target, record_ttl)) if !chain.contains(&target) => {
                ttl = ttl.min(record_ttl);
                chain.push(target);
            }
            _ => break,
        }
    }
    let mut addresses = Vec::new();
    for record in &message.answers {
        if !chain.contains(&name(&record.name)) {
            continue;
        }
        let addr = match &record.data {
            RData::A(a) => IpAddr::V4(a.0),
            RData::AAAA(a) => IpAddr::V6(a.0),
            _ => continue,
        };
        ttl = ttl.min(record.ttl);
        addresses.push(addr);
    }
    // Answers wait for a flush by the row group: keep only what they use.
    chain.shrink_to_fit();
    addresses.shrink_to_fit();
    Ok(Parsed {
        query_type: query.query_type.to_string(),
        rcode: rcode_name(u16::from(message.metadata.response_code)),
        chain,
        addresses,
        ttl: if ttl == u32::MAX { 0 } else { ttl },
    })
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    pub query_type: String,
    pub rcode: String,
    /// The question's name, then every CNAME target.
    pub chain: Vec<String>,
    pub addresses: Vec<IpAddr>,
    pub ttl: u32,
}

impl Parsed {
    /// The name asked for.
    pub fn query(&self) -> &str {
        &self.chain[0]
    }
}

/// The conventional upper-case name of an rcode (as `dig` prints it).
fn rcode_name(code: u16) -> String {
    match code {
        0 => "NOERROR".into(),
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        other => format!("RCODE{other}"),
    }
}

/// Builds a response message, for tests and the lab's resolver client.
pub fn query_message(id: u16, name: &str, query_type: RecordType) -> Result<Vec<u8>, String> {
    let name = hickory_proto::rr::Name::from_ascii(name).map_err(|e| e.to_string())?;
    let mut message = Message::new(id, MessageType::Query, hickory_proto::op::OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(hickory_proto::op::Query::query(name, query_type));
    message.to_vec().map_err(|e| e.to_string())
}

/// What a tracked (client, address) pair resolved from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolution {
    pub time_ns: i64,
    pub expires_ns: i64,
    pub chain: Arc<[String]>,
}

/// Maps (client, address) to the name that produced it, honouring TTLs with
/// a grace period, bounded in memory (oldest entries go first).
#[derive(Debug)]
pub struct DnsTracker {
    entries: HashMap<(IpAddr, IpAddr), VecDeque<Resolution>>,
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
    pub fn evicted(&self) -> u64 {
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
    pub fn lookup(&self, client: IpAddr, addr: IpAddr, at_ns: i64) -> Option<&Resolution> {
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
    pub fn enrich(&self, record: &mut FlowRecord) {
        let forward = self.lookup(record.src_addr, record.dst_addr, record.start_ns);
        let found =
            forward.or_else(|| self.lookup(record.dst_addr, record.src_addr, record.start_ns));
        if let Some(r) = found {
            record.dst_name = r.chain.first().map(|name| name.as_str().into());
            record.dns_chain = Some(r.chain.to_vec());
        }
    }
}

// ---- the `dns` table ---------------------------------------------------------

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let list = DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)));
    Arc::new(Schema::new(vec![
        Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            false,
        ),
        Field::new("iface", DataType::Utf8, false),
        Field::new("client", DataType::Utf8, false),
        Field::new("server", DataType::Utf8, false),
        Field::new("query", DataType::Utf8, false),
        Field::new("query_type", DataType::Utf8, false),
        Field::new("rcode", DataType::Utf8, false),
        Field::new("chain", list.clone(), false),
        Field::new("addresses", list, false),
        Field::new("ttl", DataType::UInt32, false),
        Field::new("verdict", DataType::Utf8, true),
        Field::new("reason", DataType::Utf8, true),
    ]))
});

fn strings<'a>(values: impl Iterator<Item = &'a str>) -> ArrayRef {
    Arc::new(values.map(Some).collect::<StringArray>())
}

fn lists(rows: impl Iterator<Item = Vec<String>>) -> ArrayRef {
    let mut builder = ListBuilder::new(StringBuilder::new());
    for row in rows {
        for item in row {
            builder.values().append_value(item);
        }
        builder.append(true);
    }
    Arc::new(builder.finish())
}

impl Rows for DnsAnswer {
    const KIND: &'static str = "dns";

    fn schema() -> SchemaRef {
        SCHEMA.clone()
    }

    fn to_batch(rows: &[Self]) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(
                TimestampNanosecondArray::from_iter_values(rows.iter().map(|r| r.time_ns))
                    .with_timezone("UTC"),
            ),
            strings(rows.iter().map(|r| &*r.iface)),
            Arc::new(
                rows.iter()
                    .map(|r| Some(r.client.to_string()))
                    .collect::<StringArray>(),
            ),
            Arc::new(
                rows.iter()
                    .map(|r| Some(r.server.to_string()))
                    .collect::<StringArray>(),
            ),
            strings(rows.iter().map(|r| r.query.as_str())),
            strings(rows.iter().map(|r| r.query_type.as_str())),
            strings(rows.iter().map(|r| r.rcode.as_str())),
            lists(rows.iter().map(|r| r.chain.clone())),
            lists(
                rows.iter()
                    .map(|r| r.addresses.iter().map(|a| a.to_string()).collect()),
            ),
            Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.ttl))),
            Arc::new(
                rows.iter()
                    .map(|r| r.verdict.as_deref())
                    .collect::<StringArray>(),
            ),
            Arc::new(
                rows.iter()
                    .map(|r| r.reason.as_deref())
                    .collect::<StringArray>(),
            ),
        ];
        RecordBatch::try_new(SCHEMA.clone(), columns).expect("columns match the dns schema")
    }
}

/// Reads a `dns` table batch back; a missing or mistyped column is named.
pub fn from_batch(batch: &RecordBatch) -> Result<Vec<DnsAnswer>, String> {
    let column = |name: &str| {
        batch
            .column_by_name(name)
            .ok_or_else(|| format!("dns table: column `{name}` is missing"))
    };
    let text = |name: &str| -> Result<&StringArray, String> {
        column(name)?
            .as_string_opt::<i32>()
            .ok_or_else(|| format!("dns table: column `{name}` is not text"))
    };
    let list = |name: &str| -> Result<Vec<Vec<String>>, String> {
        let array = column(name)?
            .as_list_opt::<i32>()
            .ok_or_else(|| format!("dns table: column `{name}` is not a list"))?;
        Ok((0..array.len())
            .map(|i| {
                let values = array.value(i);
                let values = values.as_string::<i32>();
                (0..values.len())
                    .map(|j| values.value(j).to_string())
                    .collect()
            })
            .collect())
    };
    let time = column("time")?
        .as_primitive_opt::<TimestampNanosecondType>()
        .ok_or("dns table: column `time` is not a timestamp")?;
    let ttl = column("ttl")?
        .as_primitive_opt::<UInt32Type>()
        .ok_or("dns table: column `ttl` is not UInt32")?;
    let (iface, client, server, query, query_type, rcode) = (
        text("iface")?,
        text("client")?,
        text("server")?,
        text("query")?,
        text("query_type")?,
        text("rcode")?,
    );
    let (chain, addresses) = (list("chain")?, list("addresses")?);
    let verdict = text("verdict").ok();
    let reason = text("reason").ok();
    let addr = |s: &str| {
        s.parse::<IpAddr>()
            .map_err(|_| format!("dns table: `{s}` is not an address"))
    };
    (0..batch.num_rows())
        .map(|i| {
            Ok(DnsAnswer {
                time_ns: time.value(i),
                iface: iface.value(i).into(),
                client: addr(client.value(i))?,
                server: addr(server.value(i))?,
                query: query.value(i).into(),
                query_type: query_type.value(i).into(),
                rcode: rcode.value(i).into(),
                chain: chain[i].clone(),
                addresses: addresses[i]
                    .iter()
                    .map(|a| addr(a))
                    .collect::<Result<_, _>>()?,
                ttl: ttl.value(i),
                verdict: verdict
                    .filter(|v| v.is_valid(i))
                    .map(|v| v.value(i).to_string()),
                reason: reason
                    .filter(|v| v.is_valid(i))
                    .map(|v| v.value(i).to_string()),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
