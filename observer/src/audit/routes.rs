//! User routes that lose part of their prefix to a more specific route
//! learned over BGP from the gateway (forced tunnelling that wins over
//! `0.0.0.0/0 -> Internet`), outside the VNet's own ranges and the site's
//! own prefixes.

use std::net::IpAddr;

use super::{Auditor, Check, Item, Problem, rules::UDR_BEATEN_BY_BGP};
use crate::topology::{NextHop, RouteTarget, is_public};

impl Auditor<'_> {
    /// A user route loses, for part of its prefix, to a more specific BGP
    /// route (forced tunnelling that wins over `0.0.0.0/0 -> Internet`).
    pub(super) fn udrs_beaten_by_bgp(&mut self) {
        let Some(onprem) = self.t.onprem.as_ref() else {
            return;
        };
        if !self.t.route_table.propagation {
            return;
        }
        for udr in &self.t.route_table.routes {
            let RouteTarget::Prefix(prefix) = udr.target else {
                continue;
            };
            self.checked += 1;
            for bgp in &onprem.bgp_routes {
                let inside = prefix.contains(bgp) && bgp.prefix_len() > prefix.prefix_len();
                // The VNet's own system routes protect their ranges.
                let protected = self
                    .t
                    .vnet
                    .address_space
                    .iter()
                    .chain(self.t.peerings.iter().flat_map(|p| &p.address_space))
                    .any(|v| v.contains(bgp));
                // The site's own prefixes going to the gateway is the point.
                let onprem_own = onprem.prefixes.contains(bgp);
                if inside
                    && !protected
                    && !onprem_own
                    && udr.next_hop != NextHop::VirtualNetworkGateway
                {
                    let public = is_public(IpAddr::V4(bgp.network()));
                    let fix = self.route_fix(
                        &format!("{}-{}", udr.name, bgp.network()),
                        &bgp.to_string(),
                        udr.next_hop.as_str(),
                        &format!(
                            " (or more specific prefixes), or stop the gateway advertising {bgp}{}",
                            if public {
                                " (a public prefix cross-advertised into private peering)"
                            } else {
                                ""
                            }
                        ),
                    );
                    self.problems.push(
                        Problem::new(
                            Check::UdrBeatenByBgp,
                            UDR_BEATEN_BY_BGP.id.into(),
                            UDR_BEATEN_BY_BGP.level,
                            &udr.name,
                            Item::Route(udr.name.clone()),
                        )
                        .says(
                            format!(
                                "user route {} ({prefix} -> {}) is beaten for {bgp} by the more specific route learned over BGP from the {:?} gateway",
                                udr.name, udr.next_hop, onprem.gateway
                            ),
                            format!(
                                "traffic to {bgp} goes to the gateway instead of {}",
                                udr.next_hop
                            ),
                            UDR_BEATEN_BY_BGP.because,
                        )
                        .with_fix(fix),
                    );
                }
            }
        }
    }
}
