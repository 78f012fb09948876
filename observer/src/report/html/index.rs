//! The index page of `lab run --html DIR`: one line per scenario, linking
//! its report (no script, no chart).

use std::fmt::Write as _;

use super::{
    STYLE,
    markup::{badge, esc, labelled_badge},
};
use crate::{
    report::{Connection, Judgement, Summary},
    verdict::Verdict,
};

/// One scenario's line on the index page of `lab run --html DIR`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    /// The report's file name, relative to the index.
    pub file: String,
    pub topology: String,
    pub description: Option<String>,
    pub connections: usize,
    pub leaks: usize,
    /// Connections with any verdict but ok (leaks included).
    pub problems: usize,
    /// Expected scenario verdicts, and how many were not met.
    pub checks: usize,
    pub checks_failed: usize,
}

impl IndexEntry {
    /// The line of the report `file` of a scenario: its counts from
    /// `summary`; `checks` expected verdicts, `checks_failed` of them not met.
    pub(crate) fn new(
        file: String,
        topology: String,
        description: Option<String>,
        summary: &Summary,
        (checks, checks_failed): (usize, usize),
    ) -> Self {
        let count =
            |f: fn(&Connection) -> bool| summary.connections.iter().filter(|c| f(c)).count();
        Self {
            file,
            topology,
            description,
            connections: summary.connections.len(),
            leaks: count(Connection::is_leak),
            problems: count(Connection::is_problem),
            checks,
            checks_failed,
        }
    }
}

/// The index page linking one report per scenario (no script, no chart).
pub(crate) fn index(entries: &[IndexEntry]) -> String {
    let mut h = format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="color-scheme" content="light dark">
<title>observer lab reports</title>
<style>{STYLE}</style>
</head>
<body>
<header><div><h1>observer lab reports</h1><p class="sub">{} scenario{}, one report each</p></div></header>
<main><section id="scenarios"><h2>Scenarios</h2>
<div class="table-wrap"><table id="table">
<thead><tr><th>Topology</th><th>Status</th><th>Connections</th><th>Leaks</th><th>Problems</th><th>Expected verdicts met</th><th>Description</th></tr></thead>
<tbody>
"#,
        entries.len(),
        if entries.len() == 1 { "" } else { "s" }
    );
    for e in entries {
        let status = if e.leaks > 0 {
            let plural = if e.leaks == 1 { "" } else { "s" };
            labelled_badge(
                Verdict::LeakPublicEndpoint.colour(),
                &format!("{} leak{plural}", e.leaks),
            )
        } else if e.problems > 0 {
            labelled_badge(Verdict::Blocked.colour(), "problems")
        } else {
            badge(Judgement::Verdict(Verdict::Ok))
        };
        let _ = writeln!(
            h,
            r#"<tr><td><a href="{}">{}</a></td><td>{status}</td><td>{}</td><td>{}</td><td>{}</td><td>{} of {}</td><td>{}</td></tr>"#,
            esc(&e.file),
            esc(&e.topology),
            e.connections,
            e.leaks,
            e.problems,
            e.checks - e.checks_failed,
            e.checks,
            esc(e.description.as_deref().unwrap_or("")),
        );
    }
    h.push_str("</tbody></table></div></section></main>\n");
    let _ = write!(
        h,
        "<footer>Made by observer {}. Each report is one self-contained file.</footer>\n</body>\n</html>\n",
        env!("CARGO_PKG_VERSION")
    );
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_links_every_report_with_its_status() {
        let entry = |name: &str, leaks, problems| IndexEntry {
            file: format!("{name}.html"),
            topology: name.into(),
            description: Some("a <scenario>".into()),
            connections: 5,
            leaks,
            problems,
            checks: 4,
            checks_failed: 1,
        };
        let page = index(&[entry("default", 1, 2), entry("clean", 0, 0)]);
        assert!(page.contains(r#"<a href="default.html">default</a>"#));
        assert!(page.contains(">1 leak<"), "{page}");
        assert!(page.contains(">ok<"));
        assert!(page.contains("3 of 4"));
        assert!(page.contains("a &lt;scenario&gt;"));
        assert!(!page.contains("<script"), "no script on the index");
    }

    #[test]
    fn an_entry_counts_the_leaks_and_problems_of_its_summary() {
        let e = IndexEntry::new(
            "default.html".into(),
            "default".into(),
            None,
            &super::super::tests::summary(),
            (3, 1),
        );
        assert_eq!((e.connections, e.leaks, e.problems), (2, 1, 1));
        assert_eq!((e.checks, e.checks_failed), (3, 1));
    }
}
