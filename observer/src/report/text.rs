//! The text report for people: problem connections first (leaks before the
//! rest, one line each with packets and bytes both ways and the reason),
//! then counts by verdict (most severe first), dependency and path, DNS
//! findings and loss.

use std::fmt::Write as _;

use super::{Connection, Summary};

/// `12 pkt 1.2 KB`.
fn counts(c: super::Counts) -> String {
    format!("{} pkt {} B", c.packets, c.bytes)
}

fn line(s: &mut String, c: &Connection) {
    let mark = if c.is_leak() { "LEAK" } else { "    " };
    let verdict = c.judgement().as_str();
    let _ = writeln!(
        s,
        "  {mark} {verdict:<24} {}  [→ {}, ← {}; {} points]",
        c.title(),
        counts(c.forward),
        counts(c.reverse),
        c.points.len()
    );
    if let Some(reason) = &c.reason {
        let _ = writeln!(s, "       {reason}");
    }
}

/// Renders `summary` as text.
pub(crate) fn render(summary: &Summary) -> String {
    let mut s = String::new();
    let n = summary.connections.len();
    let _ = writeln!(
        s,
        "{n} connection{} from {} flow records",
        if n == 1 { "" } else { "s" },
        summary.records
    );
    if summary.unclassified > 0 {
        let _ = writeln!(
            s,
            "  {} records not classified (captured without --topology; run `observer classify`)",
            summary.unclassified
        );
    }
    if !summary.unknown_verdicts.is_empty() {
        let _ = writeln!(
            s,
            "  {} records carry verdicts this observer does not know ({}): counted as unclassified; report them with the observer that classified them, or run `observer classify` again",
            summary.unknown_verdicts.values().sum::<usize>(),
            summary
                .unknown_verdicts
                .iter()
                .map(|(v, n)| format!("{v} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let problems: Vec<&Connection> = summary
        .connections
        .iter()
        .filter(|c| c.is_problem())
        .collect();
    if !problems.is_empty() {
        let _ = writeln!(s, "\nProblems (leaks first):");
        for c in problems {
            line(&mut s, c);
        }
    }
    if !summary.dns.problems.is_empty() {
        let _ = writeln!(s, "\nDNS problems:");
        for p in &summary.dns.problems {
            let _ = writeln!(s, "  {p}");
        }
    }
    let _ = writeln!(s, "\nConnections by verdict:");
    for (v, n) in &summary.by_verdict {
        let _ = writeln!(s, "  {:<26} {n}", v.as_str());
    }
    if !summary.by_dependency.is_empty() {
        let _ = writeln!(s, "\nConnections by dependency:");
        for (dep, verdicts) in &summary.by_dependency {
            let detail: Vec<String> = verdicts.iter().map(|(v, n)| format!("{v} {n}")).collect();
            let _ = writeln!(s, "  {dep:<26} {}", detail.join(", "));
        }
    }
    let _ = writeln!(
        s,
        "\nConnections by path (expected next hop / observed path):"
    );
    for p in &summary.by_path {
        let _ = writeln!(
            s,
            "  {:<30} {:<24} {}",
            p.expected_next_hop, p.observed_path, p.connections
        );
    }
    if !summary.dns.by_verdict.is_empty() {
        let detail: Vec<String> = summary
            .dns
            .by_verdict
            .iter()
            .map(|(v, n)| format!("{v} {n}"))
            .collect();
        let _ = writeln!(s, "\nDNS answers: {}", detail.join(", "));
    }
    let _ = writeln!(s, "\nPackets lost by the capture: {}", summary.loss.packets);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_connection_leaks_first() {
        let s = Summary::build(&crate::report::tests::refused_and_ok(), &[], 0);
        let text = render(&s);
        assert!(
            text.starts_with("2 connections from 6 flow records"),
            "{text}"
        );
        let leak_lines = text.lines().filter(|l| l.contains("LEAK")).count();
        assert_eq!(leak_lines, 1, "{text}");
        assert!(
            text.contains("[→ 1 pkt 100 B, ← 1 pkt 100 B; 2 points]"),
            "{text}"
        );
    }
}
