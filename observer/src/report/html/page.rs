//! The page's sections, in page order, one method each: the head (title,
//! CSS), the header (topology and status line), the summary (facts and
//! counts by verdict), the leaking and failing connections with reason and
//! fix, the chart frames, DNS, the table of every connection, traffic over
//! time and the footer (the charts' data and scripts). Every text is
//! escaped here.

use std::{fmt::Write as _, net::IpAddr};

use super::{
    Context, ECHARTS, SCRIPT, STYLE,
    markup::{NEUTRAL, badge, colour, esc, human_bytes, labelled_badge, utc},
};
use crate::report::{Connection, Summary};

/// What every section reads.
pub(super) struct Page<'a> {
    summary: &'a Summary,
    context: &'a Context<'a>,
    topology_name: Option<&'a str>,
    /// Connections judged anything but ok, leaks first.
    problems: Vec<&'a Connection>,
    leaks: usize,
}

/// `s` unless `n` is one.
fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

impl<'a> Page<'a> {
    pub(super) fn new(summary: &'a Summary, context: &'a Context<'a>) -> Self {
        Self {
            summary,
            context,
            topology_name: context
                .topology_name
                .or(context.topology.map(|t| t.name.as_str())),
            problems: summary
                .connections
                .iter()
                .filter(|c| c.is_problem())
                .collect(),
            leaks: summary.connections.iter().filter(|c| c.is_leak()).count(),
        }
    }

    /// Doctype, title, Content-Security-Policy (nothing fetched), CSS.
    pub(super) fn head(&self, h: &mut String) {
        let title = format!(
            "observer report{}",
            self.topology_name
                .map(|n| format!(" — {n}"))
                .unwrap_or_default()
        );
        let _ = write!(
            h,
            r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<meta name="color-scheme" content="light dark">
<title>{}</title>
<style>{STYLE}</style>
</head>
<body>
"#,
            esc(&title)
        );
    }

    /// The question, the topology and the status line: leaks, else
    /// problems, else none.
    pub(super) fn header(&self, h: &mut String) {
        let leaks = self.leaks;
        let problems = self.problems.len();
        let status = if leaks > 0 {
            format!(
                r#"<p class="status bad" id="status">{leaks} leaking connection{}</p>"#,
                plural(leaks)
            )
        } else if problems > 0 {
            format!(
                r#"<p class="status warn" id="status">No leak; {problems} connection{} with problems</p>"#,
                plural(problems)
            )
        } else {
            r#"<p class="status good" id="status">No leak, no problem</p>"#.to_owned()
        };
        let _ = write!(
            h,
            r#"<header>
<div><h1>Where did the traffic go?</h1>
<p class="sub">Topology <strong id="topology-name">{}</strong>{}</p></div>
{status}
</header>
<main>
"#,
            esc(self.topology_name.unwrap_or("(not recorded)")),
            self.context
                .topology
                .and_then(|t| t.description.as_deref())
                .map(|d| format!(" · {}", esc(d)))
                .unwrap_or_default(),
        );
    }

    /// Facts (connections, records, time span, loss, DNS) and connections
    /// per verdict, most severe first.
    pub(super) fn summary(&self, h: &mut String) {
        let summary = self.summary;
        let span = match (
            summary.connections.iter().map(|c| c.start_ns).min(),
            summary.connections.iter().map(|c| c.end_ns).max(),
        ) {
            (Some(a), Some(b)) => {
                format!("{} → {} ({:.1} s)", utc(a), utc(b), (b - a) as f64 / 1e9)
            }
            _ => "no traffic".to_owned(),
        };
        let _ = write!(
            h,
            r#"<section id="summary">
<h2>Summary</h2>
<dl class="facts">
<div><dt>Connections</dt><dd>{}</dd></div>
<div><dt>Flow records</dt><dd>{}</dd></div>
<div><dt>Time span</dt><dd>{}</dd></div>
<div><dt>Capture loss</dt><dd class="{}">{} packets</dd></div>
<div><dt>DNS answers</dt><dd>{} ({} problem{})</dd></div>
</dl>
<ul class="verdicts">
"#,
            summary.connections.len(),
            summary.records,
            esc(&span),
            if summary.loss.packets > 0 {
                "bad-text"
            } else {
                ""
            },
            summary.loss.packets,
            summary.dns.answers,
            summary.dns.problems.len(),
            plural(summary.dns.problems.len()),
        );
        for (&verdict, n) in &summary.by_verdict {
            let _ = writeln!(
                h,
                r#"<li style="--c:{}"><span class="n">{n}</span> {}</li>"#,
                colour(verdict),
                esc(verdict.as_str())
            );
        }
        if summary.unclassified > 0 {
            let _ = writeln!(
                h,
                r#"<li class="note">{} records not classified: captured without <code>--topology</code>; run <code>observer classify</code></li>"#,
                summary.unclassified
            );
        }
        if !summary.unknown_verdicts.is_empty() {
            let names: Vec<String> = summary
                .unknown_verdicts
                .iter()
                .map(|(v, n)| format!("<code>{}</code> {n}", esc(v)))
                .collect();
            let _ = writeln!(
                h,
                r#"<li class="note">{} records carry verdicts this observer does not know ({}): counted as unclassified; report them with the observer that classified them, or run <code>observer classify</code> again</li>"#,
                summary.unknown_verdicts.values().sum::<usize>(),
                names.join(", ")
            );
        }
        h.push_str("</ul>\n</section>\n");
    }

    /// The leaking and failing connections, leaks first, each with its
    /// path, counts, observation points, reason and the verdict's fix.
    pub(super) fn problems(&self, h: &mut String) {
        h.push_str(r#"<section id="problems"><h2>Leaking and failing connections</h2>"#);
        if self.problems.is_empty() {
            h.push_str(r#"<p class="empty">None: every classified connection took the path Azure would give it.</p>"#);
        }
        for c in &self.problems {
            let verdict = c.judgement();
            let points: Vec<String> = c
                .points
                .iter()
                .map(|p| {
                    format!(
                        "{}{}",
                        p.iface,
                        p.role
                            .as_deref()
                            .map(|r| format!("={r}"))
                            .unwrap_or_default()
                    )
                })
                .collect();
            let _ = write!(
                h,
                r#"<article class="problem" style="--c:{}">
<h3>{} <span class="conn">{}</span></h3>
<p class="path">{}expected <strong>{}</strong>, observed <strong>{}</strong> · → {} pkt {} · ← {} pkt {} · seen at {}</p>
<p class="reason"><span>Reason</span> {}</p>
<p class="fix"><span>Fix</span> {}</p>
</article>
"#,
                colour(verdict),
                badge(verdict),
                esc(&c.title()),
                c.dependency
                    .as_deref()
                    .or(c.category.as_deref())
                    .map(|d| format!("{} · ", esc(d)))
                    .unwrap_or_default(),
                esc(c.expected_next_hop.as_deref().unwrap_or("-")),
                esc(c.observed_path.as_deref().unwrap_or("-")),
                c.forward.packets,
                human_bytes(c.forward.bytes),
                c.reverse.packets,
                human_bytes(c.reverse.bytes),
                esc(&points.join(", ")),
                esc(c.reason.as_deref().unwrap_or("no reason recorded")),
                esc(verdict.verdict().map_or("", |v| v.fix())),
            );
        }
        h.push_str("</section>\n");
    }

    /// The frames the script draws the Sankey and the topology into.
    pub(super) fn chart_frames(&self, h: &mut String) {
        h.push_str(
            r#"<section id="paths"><h2>Expected next hop against observed path</h2>
<p class="hint">Left: what each connection is (dependency or category); middle: the next hop Azure would give it; right: the path it took in the lab. Links are coloured by the worst verdict they carry; a path that differs from the expected one is drawn solid.</p>
<div class="chart" id="chart-sankey" role="img" aria-label="Sankey diagram of expected next hop against observed path"></div>
</section>
<section id="topology"><h2>Topology and paths</h2>
<p class="hint">The workload, the path each connection took and where it went; edges coloured by the worst verdict on them (hover for counts).</p>
<div class="chart tall" id="chart-topology" role="img" aria-label="Topology graph with paths coloured by verdict"></div>
</section>
"#,
        );
    }

    /// DNS problems (their verdicts are DNS judgements, drawn neutral) and
    /// answers by verdict.
    pub(super) fn dns(&self, h: &mut String) {
        let dns = &self.summary.dns;
        h.push_str(r#"<section id="dns"><h2>DNS</h2>"#);
        if dns.problems.is_empty() {
            let _ = write!(
                h,
                r#"<p class="empty">No DNS problem in {} answers.</p>"#,
                dns.answers
            );
        } else {
            h.push_str(r#"<ul class="dns-problems">"#);
            for p in &dns.problems {
                let (verdict, reason) = p.split_once(": ").unwrap_or((p.as_str(), ""));
                let colour = verdict
                    .parse::<crate::dns::DnsVerdict>()
                    .map_or(NEUTRAL, |v| v.colour());
                let _ = write!(
                    h,
                    "<li>{} {}</li>",
                    labelled_badge(colour, verdict),
                    esc(reason)
                );
            }
            h.push_str("</ul>");
        }
        if !dns.by_verdict.is_empty() {
            let detail: Vec<String> = dns
                .by_verdict
                .iter()
                .map(|(v, n)| format!("{} {n}", esc(v)))
                .collect();
            let _ = write!(
                h,
                r#"<p class="hint">Answers by verdict: {}</p>"#,
                detail.join(", ")
            );
        }
        h.push_str("</section>\n");
    }

    /// Every connection, one row each, sortable and filterable by the
    /// script (and readable without it).
    pub(super) fn table(&self, h: &mut String) {
        let summary = self.summary;
        let _ = write!(
            h,
            r#"<section id="connections"><h2>All connections</h2>
<div class="controls"><label>Filter <input id="filter" type="search" placeholder="address, name, verdict, reason…"></label>
<label>Verdict <select id="verdict-filter"><option value="">all</option>{}</select></label>
<span id="shown">{} shown</span></div>
<div class="table-wrap"><table id="table">
<thead><tr><th data-type="text">Verdict</th><th data-type="text" title="protocol">Proto</th><th data-type="text">Client</th><th data-type="text">Server (name)</th><th data-type="text">Dependency</th><th data-type="text">Expected</th><th data-type="text">Observed</th><th data-type="num" title="client to server">→ sent</th><th data-type="num" title="server to client">← replied</th><th data-type="num" title="first packet, UTC">Start</th><th data-type="text">Reason</th></tr></thead>
<tbody>
"#,
            summary
                .by_verdict
                .keys()
                .map(|v| format!(r#"<option value="{0}">{0}</option>"#, esc(v.as_str())))
                .collect::<String>(),
            summary.connections.len()
        );
        for c in &summary.connections {
            row(h, c);
        }
        h.push_str("</tbody></table></div></section>\n");
    }

    /// The frame of the traffic-over-time chart; the end of `<main>`.
    pub(super) fn time(&self, h: &mut String, bucket_seconds: f64) {
        let _ = write!(
            h,
            r#"<section id="time"><h2>Traffic over time</h2>
<p class="hint">Connections active in each {bucket_seconds} s interval, by verdict (bars), and bytes both ways (line; each connection's bytes spread evenly over its lifetime).</p>"#,
        );
        h.push_str(
            r#"
<div class="chart" id="chart-time" role="img" aria-label="Connections and bytes over time"></div>
</section>
</main>
"#,
        );
    }

    /// Who made the page and when, the charts' `data` (JSON) and the
    /// scripts.
    pub(super) fn footer(&self, h: &mut String, data: &str) {
        let _ = write!(
            h,
            r#"<footer>Made by observer {} on {}. Charts: Apache ECharts 6.1.0 (Apache License 2.0), embedded; this file fetches nothing.</footer>
<script id="report-data" type="application/json">{data}</script>
<script>{ECHARTS}</script>
<script>{SCRIPT}</script>
</body>
</html>
"#,
            env!("CARGO_PKG_VERSION"),
            esc(&self.context.generated),
        );
    }
}

/// One connection's row of the table; `data-v` holds what sorts.
fn row(h: &mut String, c: &Connection) {
    let verdict = c.judgement();
    let side = |addr: IpAddr, port: Option<u16>| match port {
        Some(p) if addr.is_ipv6() => format!("[{addr}]:{p}"),
        Some(p) => format!("{addr}:{p}"),
        None => addr.to_string(),
    };
    let rank = verdict.rank();
    let _ = writeln!(
        h,
        r#"<tr data-verdict="{}"><td data-v="{rank}">{}</td><td>{}</td><td>{}</td><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td data-v="{}">{} pkt<br>{}</td><td data-v="{}">{} pkt<br>{}</td><td data-v="{}" title="{}">{}</td><td class="reason-cell">{}</td></tr>"#,
        esc(verdict.as_str()),
        badge(verdict),
        esc(&c.protocol),
        esc(&side(c.client.addr, c.client.port)),
        esc(&side(c.server.addr, c.server.port)),
        c.server
            .name
            .as_deref()
            .map(|n| format!(r#"<span class="name">{}</span>"#, esc(n)))
            .unwrap_or_default(),
        esc(c
            .dependency
            .as_deref()
            .or(c.category.as_deref())
            .unwrap_or("")),
        esc(c.expected_next_hop.as_deref().unwrap_or("")),
        esc(c.observed_path.as_deref().unwrap_or("")),
        c.forward.bytes,
        c.forward.packets,
        human_bytes(c.forward.bytes),
        c.reverse.bytes,
        c.reverse.packets,
        human_bytes(c.reverse.bytes),
        c.start_ns,
        esc(&utc(c.start_ns)),
        esc(&chrono::DateTime::from_timestamp_nanos(c.start_ns)
            .format("%H:%M:%S%.3f")
            .to_string()),
        esc(c.reason.as_deref().unwrap_or("")),
    );
}
