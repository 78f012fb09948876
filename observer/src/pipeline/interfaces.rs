//! Watched interfaces that disappear mid-capture (veth deleted, container
//! stopped, device moved to another namespace): said at once in the log and
//! the metrics, marked `vanished` in the summary, and their live flows end
//! (`forced-end`) after a last drain, since no packet can follow. The loop
//! stops with `interfaces-gone` when none is left.

use super::{Pipeline, RunError, kernel::Kernel};
use crate::capture::watch::LinkEvents;

impl<K: Kernel> Pipeline<K> {
    /// Handles a watched interface that disappeared. Returns how many
    /// watched interfaces are left.
    pub(super) fn interface_gone(&mut self, ifindex: u32) -> Result<usize, RunError> {
        let now = self.now_rfc3339();
        let mut gone = None;
        for info in &mut self.summary.interfaces {
            if info.ifindex == ifindex && info.vanished.is_none() {
                info.vanished = Some(now.clone());
                gone = Some((info.name.clone(), info.role.clone()));
            }
        }
        let left: Vec<String> = self
            .summary
            .interfaces
            .iter()
            .filter(|i| i.vanished.is_none())
            .map(|i| i.name.clone())
            .collect();
        let Some((name, role)) = gone else {
            return Ok(left.len());
        };
        self.kernel.forget_interface(ifindex, &name);
        self.metrics.interface_gone(&name, role.as_deref());
        // Its packets so far sit in the flow maps: take them, then end its flows.
        self.drain()?;
        self.table.end_interface(ifindex, &mut self.ended);
        self.emit();
        self.publish();
        if left.is_empty() {
            tracing::error!(
                "interface {name} disappeared (deleted, or moved out of the namespace); \
                 no watched interface is left"
            );
        } else {
            tracing::warn!(
                "interface {name} disappeared (deleted, or moved out of the namespace); \
                 its flows so far are kept; capture goes on on {}",
                left.join(", ")
            );
        }
        Ok(left.len())
    }

    /// Handles link events; returns how many watched interfaces are left.
    pub(super) fn link_events(&mut self, events: LinkEvents) -> Result<usize, RunError> {
        let mut deleted = events.deleted;
        if events.overflowed {
            deleted.extend(
                self.summary
                    .interfaces
                    .iter()
                    .filter(|i| !self.kernel.interface_exists(i.ifindex))
                    .map(|i| i.ifindex),
            );
        }
        let mut left = self.live_interfaces();
        for ifindex in deleted {
            left = self.interface_gone(ifindex)?;
        }
        Ok(left)
    }

    /// Watched interfaces that have not disappeared.
    pub(super) fn live_interfaces(&self) -> usize {
        self.summary
            .interfaces
            .iter()
            .filter(|i| i.vanished.is_none())
            .count()
    }
}
