//! The Parquet key/value metadata every file of a run carries: schema and
//! observer versions, the run, host, namespace, interfaces, attach mode,
//! topology, and the loss counters as of the flush.

use super::{
    Pipeline,
    summary::{counter_values, lost_packets},
};
use crate::files::FileMetadata;

impl<K> Pipeline<K> {
    pub(super) fn metadata(&self) -> Vec<(String, String)> {
        let counters: std::collections::BTreeMap<_, _> = counter_values(&self.counters);
        FileMetadata {
            host: Some(self.summary.host.clone()),
            netns: Some(self.summary.netns.clone().unwrap_or_default()),
            interfaces: Some(serde_json::to_string(&self.summary.interfaces).unwrap_or_default()),
            attach: Some(self.summary.attach.into()),
            topology: Some(
                self.classifier
                    .as_ref()
                    .map(|c| c.topology().name.clone())
                    .unwrap_or_default(),
            ),
            dns_malformed: Some(self.summary.dns_malformed),
            capture_started: Some(self.summary.started.clone()),
            counters: Some(serde_json::to_string(&counters).unwrap_or_default()),
            lost_packets: Some(lost_packets(&self.counters)),
            ..FileMetadata::of_run(self.summary.run_id.clone())
        }
        .to_pairs()
    }
}
