//! The Parquet key/value metadata every file of a run carries: schema and
//! observer versions, the run, host, namespace, interfaces, attach mode,
//! topology, and the loss counters as of the flush.

use super::{
    Pipeline,
    summary::{counter_values, lost_packets},
};

impl<K> Pipeline<K> {
    pub(super) fn metadata(&self) -> Vec<(String, String)> {
        let counters: std::collections::BTreeMap<_, _> = counter_values(&self.counters);
        let interfaces = serde_json::to_string(&self.summary.interfaces).unwrap_or_default();
        vec![
            (
                "observer.schema_version".into(),
                crate::files::schema::SCHEMA_VERSION.into(),
            ),
            ("observer.version".into(), env!("CARGO_PKG_VERSION").into()),
            ("observer.run_id".into(), self.summary.run_id.clone()),
            ("observer.host".into(), self.summary.host.clone()),
            (
                "observer.netns".into(),
                self.summary.netns.clone().unwrap_or_default(),
            ),
            ("observer.interfaces".into(), interfaces),
            ("observer.attach".into(), self.summary.attach.into()),
            (
                "observer.topology".into(),
                self.classifier
                    .as_ref()
                    .map(|c| c.topology().name.clone())
                    .unwrap_or_default(),
            ),
            (
                "observer.dns_malformed".into(),
                self.summary.dns_malformed.to_string(),
            ),
            (
                "observer.capture_started".into(),
                self.summary.started.clone(),
            ),
            (
                "observer.counters".into(),
                serde_json::to_string(&counters).unwrap_or_default(),
            ),
            (
                "observer.lost_packets".into(),
                lost_packets(&self.counters).to_string(),
            ),
        ]
    }
}
