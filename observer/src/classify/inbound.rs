//! Verdicts of flows the remote end opened (inbound management, clients of
//! the app): the destination subnet's NSG must admit them, and the reply to
//! inbound management must leave by the Internet path it came in on.

use super::{Classifier, Judged, Verdict};
use crate::{
    protocol::{IpProtocol, MANAGEMENT_PORTS, management_ports_text},
    security::SecurityDecision,
    topology::{Access, NextHop, is_public},
};

impl Classifier {
    /// Flows the remote end opened: the destination subnet's NSG must admit
    /// them, and the reply to inbound management must leave by the path the
    /// request came in (the Internet), or TCP breaks.
    pub(super) fn inbound_verdict(&self, j: &Judged<'_>) -> (Verdict, String) {
        let remote = j.remote;
        let service_port = if j.reply {
            j.record.dst_port
        } else {
            j.record.src_port
        };
        let management = service_port.is_some_and(|p| MANAGEMENT_PORTS.contains(&p));
        if let Some(sec) = j.security
            && sec.access == Access::Deny
        {
            let then = if management {
                format!(
                    "; inbound management ({} from AppServiceManagement) is required: the ASE stops working; add an inbound Allow rule for it",
                    management_ports_text()
                )
            } else {
                String::new()
            };
            return (
                Verdict::DeniedByNsg,
                format!(
                    "inbound {} from {remote} to {}:{} is denied: {}{then}",
                    IpProtocol(j.record.protocol),
                    sec.flow.dst,
                    service_port.unwrap_or(0),
                    sec.describe()
                ),
            );
        }
        if management
            && is_public(remote)
            && let Some(d) = j.decision
            && (d.next_hop() != NextHop::Internet
                || j.observed
                    .is_some_and(|o| o != NextHop::Internet && !j.reply))
        {
            let leaves = j
                .observed
                .filter(|o| !j.reply && *o != NextHop::Internet)
                .unwrap_or(d.next_hop());
            return (
                Verdict::AsymmetricRoute,
                format!(
                    "management traffic from {remote} to port {} comes in from the Internet, but the reply leaves by {leaves} ({} route {}, {}): the connection breaks; add a user route for the AppServiceManagement service tag (or the management addresses) with next hop Internet",
                    service_port.unwrap_or(0),
                    d.chosen.source.as_str(),
                    d.chosen.prefix,
                    d.chosen.origin
                ),
            );
        }
        let allowed = j
            .security
            .map_or_else(|| "no NSG applies".to_string(), SecurityDecision::describe);
        (
            Verdict::Ok,
            format!(
                "inbound {} from {remote} to port {}: {allowed}",
                IpProtocol(j.record.protocol),
                service_port.unwrap_or(0)
            ),
        )
    }
}
