//! The JSON report: one document, `{"format": "observer-report/1",
//! "summary": {...}, "connections": [...], "dns": {...}, "loss": {...}}`.
//! Field names are a contract (README, "JSON report"): extend, don't rename.

use serde::Serialize;

use super::{Connection, DnsSummary, Judgement, Loss, PathCount, Summary};
use std::collections::BTreeMap;

/// The format tag at the top of every document.
pub(crate) const FORMAT: &str = "observer-report/1";

#[derive(Serialize)]
struct Document<'a> {
    format: &'static str,
    summary: Totals<'a>,
    connections: &'a [Connection],
    dns: &'a DnsSummary,
    loss: &'a Loss,
}

#[derive(Serialize)]
struct Totals<'a> {
    records: usize,
    unclassified_records: usize,
    /// Only when there are some (records classified by a newer observer).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    unknown_verdicts: &'a BTreeMap<String, usize>,
    connections: usize,
    by_verdict: &'a BTreeMap<Judgement, usize>,
    by_dependency: &'a BTreeMap<String, BTreeMap<Judgement, usize>>,
    by_path: &'a [PathCount],
}

/// Renders `summary` as one pretty-printed JSON document.
pub(crate) fn render(summary: &Summary) -> String {
    let doc = Document {
        format: FORMAT,
        summary: Totals {
            records: summary.records,
            unclassified_records: summary.unclassified,
            unknown_verdicts: &summary.unknown_verdicts,
            connections: summary.connections.len(),
            by_verdict: &summary.by_verdict,
            by_dependency: &summary.by_dependency,
            by_path: &summary.by_path,
        },
        connections: &summary.connections,
        dns: &summary.dns,
        loss: &summary.loss,
    };
    let mut s = serde_json::to_string_pretty(&doc).expect("the report is plain data");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_has_the_documented_fields() {
        let s = Summary::build(&crate::report::tests::refused_and_ok(), &[], 2);
        let v: serde_json::Value = serde_json::from_str(&render(&s)).unwrap();
        assert_eq!(v["format"], FORMAT);
        assert_eq!(v["summary"]["connections"], 2);
        assert_eq!(v["summary"]["records"], 6);
        assert_eq!(v["summary"]["by_verdict"]["leak-public-endpoint"], 1);
        assert_eq!(v["loss"]["packets"], 2);
        let c = &v["connections"][0];
        assert_eq!(c["verdict"], "leak-public-endpoint");
        assert_eq!(c["client"]["addr"], "10.0.0.4");
        assert_eq!(c["server"]["port"], 1433);
        assert_eq!(c["forward"]["packets"], 1);
        assert_eq!(c["reverse"]["bytes"], 100);
        assert_eq!(c["points"].as_array().unwrap().len(), 2);
        assert_eq!(c["points"][0]["netns"], "ase");
    }
}
