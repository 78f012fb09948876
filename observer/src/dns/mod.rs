//! DNS-aware flows: DNS responses copied by the kernel program are parsed
//! with hickory-proto, kept in a bounded tracker keyed by (client, address),
//! and used to name flows (`dst_name`, `dns_chain`). Each answer is also a
//! row of the `dns` table, judged by `classify` ([`DnsVerdict`]).
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | [`DnsAnswer`] (one observed response) and its typed fields: [`Rcode`], [`DnsVerdict`] |
//! | `parse.rs` | hickory-proto parsing of a response: the question, the CNAME chain, the addresses, the TTL ([`parse_response`]) |
//! | `tracker.rs` | [`DnsTracker`]: (client, address) to the name that produced it, TTL-aware, bounded |
//! | `table.rs` | the `dns` Parquet table: the rows written ([`crate::files::Rows`]) and read back ([`read_recorded`]) |
//! | `tests.rs` | parsing, the tracker, the table |

mod parse;
mod table;
mod tracker;

use std::{fmt, net::IpAddr, str::FromStr, sync::Arc};

pub(crate) use self::parse::query_message;
pub use self::{
    parse::{Parsed, Skip, parse_response},
    table::read_recorded,
    tracker::{DnsTracker, GRACE_NS},
};
use crate::vocabulary::Vocabulary;

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
    pub rcode: Rcode,
    /// The query name, then every CNAME target in order.
    pub chain: Vec<String>,
    pub addresses: Vec<IpAddr>,
    /// Smallest TTL along the chain, in seconds.
    pub ttl: u32,
    /// Set by classification.
    pub verdict: Option<DnsVerdict>,
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

/// The verdict of one DNS answer (the `verdict` column of the `dns` table).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    strum::Display,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantNames,
    strum::VariantArray,
)]
#[strum(
    serialize_all = "kebab-case",
    parse_err_ty = String,
    parse_err_fn = crate::vocabulary::unknown::<Self>
)]
pub enum DnsVerdict {
    /// An answer from one of the VNet's DNS servers, nothing wrong with it.
    Ok,
    /// The answer came from a server that is not one of the VNet's.
    UnexpectedServer,
    /// A privatelink name was answered with a public address.
    PrivatelinkPublic,
    /// A name of a documented dependency does not resolve.
    NxdomainDependency,
}

impl DnsVerdict {
    pub(crate) fn as_str(self) -> &'static str {
        self.into()
    }

    /// The report's colour for the verdict, in the flow verdicts' palette:
    /// a privatelink name answered publicly is a DNS leak (`leak-dns`'s
    /// pink), an unresolved dependency blocks it (amber), an answer from
    /// elsewhere is a routing problem (blue).
    pub(crate) fn colour(self) -> &'static str {
        match self {
            Self::Ok => "#2ca02c",
            Self::UnexpectedServer => "#2b6cb0",
            Self::PrivatelinkPublic => "#e8467c",
            Self::NxdomainDependency => "#e0a800",
        }
    }
}

impl Vocabulary for DnsVerdict {
    const WHAT: &'static str = "DNS verdict";
}

/// A DNS response code, named as `dig` prints it: `NOERROR`, `NXDOMAIN`,
/// ..., `RCODE11` for a code without a conventional name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rcode(pub u16);

impl Rcode {
    pub const NOERROR: Self = Self(0);
    pub const NXDOMAIN: Self = Self(3);

    /// The conventional name, for the codes that have one.
    fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "NOERROR",
            1 => "FORMERR",
            2 => "SERVFAIL",
            3 => "NXDOMAIN",
            4 => "NOTIMP",
            5 => "REFUSED",
            _ => return None,
        })
    }
}

impl fmt::Display for Rcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "RCODE{}", self.0),
        }
    }
}

impl FromStr for Rcode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(code) = s.strip_prefix("RCODE").and_then(|n| n.parse().ok()) {
            return Ok(Self(code));
        }
        (0..=5)
            .map(Self)
            .find(|r| r.name() == Some(s))
            .ok_or_else(|| {
                format!(
                    "unknown rcode `{s}` (NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED or RCODE followed by the number)"
                )
            })
    }
}

#[cfg(test)]
mod tests;
