//! The Sankey chart's model: what each connection is (dependency or
//! category) -> the next hop Azure would give it -> the path it took,
//! links coloured by the worst verdict they carry.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::report::{Judgement, Summary};

/// One Sankey node: `id` is unique per column, `label` is shown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct SankeyNode {
    pub id: String,
    pub label: String,
    pub column: u8,
}

/// One Sankey link, coloured by the worst verdict of its connections.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct SankeyLink {
    pub source: String,
    pub target: String,
    pub connections: usize,
    pub verdict: Judgement,
    /// Connections per verdict (tooltip).
    pub verdicts: BTreeMap<Judgement, usize>,
    /// Expected next hop and observed path differ.
    pub mismatch: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Sankey {
    pub nodes: Vec<SankeyNode>,
    pub links: Vec<SankeyLink>,
}

/// Category (or dependency) -> expected next hop -> observed path.
pub(crate) fn sankey(summary: &Summary) -> Sankey {
    let mut nodes: Vec<SankeyNode> = Vec::new();
    let mut links: BTreeMap<(String, String), SankeyLink> = BTreeMap::new();
    let node = |nodes: &mut Vec<SankeyNode>, column: u8, label: &str| {
        let id = format!(
            "{}:{label}",
            ["what", "expected", "observed"][usize::from(column)]
        );
        if !nodes.iter().any(|n| n.id == id) {
            nodes.push(SankeyNode {
                id: id.clone(),
                label: label.to_owned(),
                column,
            });
        }
        id
    };
    for c in &summary.connections {
        let what = c
            .dependency
            .clone()
            .or_else(|| c.category.clone())
            .unwrap_or_else(|| "unclassified".into());
        let expected = c.expected_next_hop.as_deref().unwrap_or("-");
        let observed = c.observed_path.as_deref().unwrap_or("not observed");
        let verdict = c.judgement();
        let a = node(&mut nodes, 0, &what);
        let b = node(&mut nodes, 1, expected);
        let o = node(&mut nodes, 2, observed);
        for (source, target, mismatch) in [
            (a.clone(), b.clone(), false),
            (b, o, expected != observed && c.observed_path.is_some()),
        ] {
            let link = links
                .entry((source.clone(), target.clone()))
                .or_insert_with(|| SankeyLink {
                    source,
                    target,
                    connections: 0,
                    verdict,
                    verdicts: BTreeMap::new(),
                    mismatch,
                });
            link.connections += 1;
            *link.verdicts.entry(verdict).or_default() += 1;
            link.verdict = link.verdict.min(verdict);
        }
    }
    Sankey {
        nodes,
        links: links.into_values().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::Verdict;

    #[test]
    fn sankey_marks_the_path_that_differs_with_the_worst_verdict() {
        let mut s = super::super::tests::summary();
        s.connections[0].expected_next_hop = Some("VnetLocal".into());
        s.connections[0].observed_path = Some("Internet".into());
        s.connections[0].category = Some("vnet".into());
        s.connections[1].expected_next_hop = Some("VnetLocal".into());
        s.connections[1].observed_path = Some("VnetLocal".into());
        s.connections[1].category = Some("vnet".into());
        let k = sankey(&s);
        let leak = Judgement::Verdict(Verdict::LeakPublicEndpoint);
        let mismatch: Vec<&SankeyLink> = k.links.iter().filter(|l| l.mismatch).collect();
        assert_eq!(mismatch.len(), 1);
        assert_eq!(mismatch[0].source, "expected:VnetLocal");
        assert_eq!(mismatch[0].target, "observed:Internet");
        assert_eq!(mismatch[0].verdict, leak);
        let first = k.links.iter().find(|l| l.source == "what:vnet").unwrap();
        assert_eq!(first.connections, 2);
        assert_eq!(first.verdict, leak, "worst of ok and leak");
        assert_eq!(k.nodes.iter().filter(|n| n.column == 2).count(), 2);
    }
}
