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
    by_verdict: BTreeMap<&'static str, usize>,
    by_dependency: BTreeMap<&'a str, BTreeMap<&'static str, usize>>,
    by_path: &'a [PathCount],
}

/// Counts keyed by verdict name: the document lists verdicts by name, as
/// it always has, not in the report's order of severity.
fn by_name(counts: &BTreeMap<Judgement, usize>) -> BTreeMap<&'static str, usize> {
    counts.iter().map(|(j, n)| (j.as_str(), *n)).collect()
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
            by_verdict: by_name(&summary.by_verdict),
            by_dependency: summary
                .by_dependency
                .iter()
                .map(|(dep, counts)| (dep.as_str(), by_name(counts)))
                .collect(),
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

    #[test]
    fn verdict_counts_are_listed_by_name() {
        let mut records = crate::report::tests::refused_and_ok();
        for (i, r) in records.iter_mut().enumerate() {
            r.verdict = Some(if i < 4 { "ok" } else { "undocumented" }.into());
        }
        let doc = render(&Summary::build(&records, &[], 0));
        let ok = doc.find("\"ok\": 1").unwrap();
        let undocumented = doc.find("\"undocumented\": 1").unwrap();
        assert!(ok < undocumented, "{doc}");
    }
}
