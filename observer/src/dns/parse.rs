//! Parsing one DNS response with hickory-proto: the question, the CNAME
//! chain from it (loops end), the addresses at the end of the chain, and the
//! smallest TTL along the way.

use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
};

use hickory_proto::{
    op::{Message, MessageType},
    rr::{RData, RecordType},
};

use super::Rcode;

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
    // Every owner name once, and the first CNAME of each: one pass, so a
    // message of thousands of records costs no more than reading it.
    let owners: Vec<String> = message.answers.iter().map(|r| name(&r.name)).collect();
    let mut cnames: HashMap<&str, (String, u32)> = HashMap::new();
    for (record, owner) in message.answers.iter().zip(&owners) {
        if let RData::CNAME(target) = &record.data {
            cnames
                .entry(owner.as_str())
                .or_insert_with(|| (name(&target.0), record.ttl));
        }
    }
    let mut chain = vec![name(&query.name)];
    let mut seen: HashSet<String> = chain.iter().cloned().collect();
    let mut ttl = u32::MAX;
    // Follow CNAMEs from the question; a name seen before ends the chain,
    // so a CNAME loop ends.
    while let Some((target, record_ttl)) =
        cnames.get(chain.last().expect("chain starts non-empty").as_str())
    {
        if !seen.insert(target.clone()) {
            break;
        }
        ttl = ttl.min(*record_ttl);
        chain.push(target.clone());
    }
    let mut addresses = Vec::new();
    for (record, owner) in message.answers.iter().zip(&owners) {
        if !seen.contains(owner) {
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
        rcode: Rcode(u16::from(message.metadata.response_code)),
        chain,
        addresses,
        ttl: if ttl == u32::MAX { 0 } else { ttl },
    })
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    pub(crate) query_type: String,
    pub(crate) rcode: Rcode,
    /// The question's name, then every CNAME target.
    pub(crate) chain: Vec<String>,
    pub(crate) addresses: Vec<IpAddr>,
    pub(crate) ttl: u32,
}

impl Parsed {
    /// The name asked for.
    pub(crate) fn query(&self) -> &str {
        &self.chain[0]
    }
}

/// Builds a query message, for tests and the lab's resolver client.
pub(crate) fn query_message(
    id: u16,
    name: &str,
    query_type: RecordType,
) -> Result<Vec<u8>, String> {
    let name = hickory_proto::rr::Name::from_ascii(name).map_err(|e| e.to_string())?;
    let mut message = Message::new(id, MessageType::Query, hickory_proto::op::OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(hickory_proto::op::Query::query(name, query_type));
    message.to_vec().map_err(|e| e.to_string())
}
