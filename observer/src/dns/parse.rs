//! Parsing one DNS response with hickory-proto: the question, the CNAME
//! chain from it (loops end), the addresses at the end of the chain, and the
//! smallest TTL along the way.

use std::net::IpAddr;

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
