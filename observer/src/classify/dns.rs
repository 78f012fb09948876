//! The verdict of one DNS answer: a server that is not the VNet's, a
//! privatelink name answered with a public address, a dependency that does
//! not resolve.

use std::net::IpAddr;

use super::Classifier;
use crate::{
    dns::{DnsAnswer, DnsVerdict, Rcode},
    topology::{AZURE_DNS, is_public},
};

impl Classifier {
    /// Judges one DNS answer: the server, privatelink names answered
    /// publicly, and dependencies that do not resolve.
    pub(crate) fn judge_dns(&self, answer: &mut DnsAnswer) {
        let t = &self.topology;
        // A custom server asking upstream (forwarding) is not the app.
        let forwarder = t.dns.servers.contains(&answer.client);
        let (verdict, reason) = if !t.dns.servers.contains(&answer.server) && !forwarder {
            (
                DnsVerdict::UnexpectedServer,
                format!(
                    "answer from {}, which is not one of the VNet's DNS servers ({})",
                    answer.server,
                    t.dns
                        .servers
                        .iter()
                        .map(|s| s.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        } else if let Some(zone) = answer.chain.iter().find(|n| n.contains("privatelink."))
            && let Some(public) = answer.addresses.iter().find(|a| is_public(**a))
        {
            if answer.server == IpAddr::V4(AZURE_DNS) {
                (
                    DnsVerdict::PrivatelinkPublic,
                    format!(
                        "Azure DNS answered {} through {zone} with the public address {public}: the privatelink zone is not linked to VNet {}",
                        answer.query, t.vnet.name
                    ),
                )
            } else {
                (
                    DnsVerdict::PrivatelinkPublic,
                    format!(
                        "custom DNS server {} answered {} through {zone} with the public address {public}: it does not forward to 168.63.129.16",
                        answer.server, answer.query
                    ),
                )
            }
        } else if answer.rcode == Rcode::NXDOMAIN
            && let Some(dep) = self.dependencies.iter().find(|d| d.names(&answer.query))
        {
            (
                DnsVerdict::NxdomainDependency,
                format!(
                    "{} ({}) does not resolve (NXDOMAIN): the ASE cannot reach its dependency",
                    answer.query, dep.name
                ),
            )
        } else {
            (
                DnsVerdict::Ok,
                format!("{} {} from {}", answer.query, answer.rcode, answer.server),
            )
        };
        answer.verdict = Some(verdict);
        answer.reason = Some(reason);
    }
}
