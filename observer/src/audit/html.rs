//! `observer check --format html`: the audit as one self-contained page
//! (the report's stylesheet, no script, nothing fetched): a status line,
//! the counts, then one card per problem, errors first, each with its
//! level, requirement, what is wrong, what breaks, the documentation's
//! sentence, the fix with its `az` commands and TOML, and where the item
//! is written.

use std::fmt::Write as _;

use super::{Audit, Problem};
use crate::{catalog::Level, report::html::esc};

static STYLE: &str = include_str!("../../assets/report/report.css");

/// Extra rules for the audit's cards (the report's stylesheet has the rest).
const CHECK_STYLE: &str = "pre.cmd{white-space:pre-wrap;word-break:break-all;background:rgba(127,127,127,.12);padding:.5em .75em;border-radius:4px;font-size:.85em}blockquote{margin:.25em 0 .25em 1em;padding-left:.75em;border-left:3px solid var(--c);opacity:.9}";

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn card(h: &mut String, p: &Problem) {
    let colour = p.level.colour();
    let _ = write!(
        h,
        r#"<article class="problem" style="--c:{colour}" data-level="{}">
<h3><span class="badge" style="--c:{colour}">{}</span> <span class="conn">{}</span></h3>
<p class="reason"><span>Problem</span> {}</p>
<p class="path"><span>Breaks</span> {}</p>
<blockquote>{}</blockquote>
<p class="fix"><span>Fix</span> {}</p>
"#,
        p.level,
        p.level,
        esc(&p.rule),
        esc(&p.problem),
        esc(&p.breaks),
        esc(&p.because),
        esc(&p.fix),
    );
    if !p.az.is_empty() {
        let _ = writeln!(h, r#"<pre class="cmd">{}</pre>"#, esc(&p.az.join("\n")));
    }
    if let Some(toml) = &p.toml {
        let _ = writeln!(h, r#"<pre class="cmd">{}</pre>"#, esc(toml));
    }
    let mut at = format!("<code>{}</code>", esc(&p.at.to_string()));
    if let Some(t) = &p.in_topology {
        let _ = write!(
            at,
            " at {}:{}:{}",
            esc(&t.file.display().to_string()),
            t.line,
            t.column
        );
    }
    if let Some(e) = &p.in_export {
        let _ = write!(
            at,
            ", imported from {}:{}:{} {}",
            esc(&e.file.display().to_string()),
            e.line,
            e.column,
            esc(e.json_path.as_deref().unwrap_or(""))
        );
    }
    let _ = writeln!(h, r#"<p class="hint">{at}</p>"#);
    h.push_str("</article>\n");
}

/// The audit as one HTML page.
pub(crate) fn render(audit: &Audit, description: Option<&str>) -> String {
    let mut h = String::with_capacity(STYLE.len() + 16 * 1024);
    let _ = write!(
        h,
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="color-scheme" content="light dark">
<title>observer check — {}</title>
<style>{STYLE}{CHECK_STYLE}</style>
</head>
<body>
"#,
        esc(&audit.topology)
    );
    let status = if audit.errors > 0 {
        format!(
            r#"<p class="status bad" id="status">{} error{}: the environment would not work</p>"#,
            audit.errors,
            plural(audit.errors)
        )
    } else if audit.warnings > 0 {
        format!(
            r#"<p class="status warn" id="status">It works; {} warning{}</p>"#,
            audit.warnings,
            plural(audit.warnings)
        )
    } else {
        r#"<p class="status good" id="status">Every requirement is met</p>"#.to_owned()
    };
    let _ = write!(
        h,
        r#"<header>
<div><h1>Would the environment work?</h1>
<p class="sub">Topology <strong id="topology-name">{}</strong> ({}){}</p></div>
{status}
</header>
<main>
<section id="summary"><h2>Summary</h2>
<dl class="facts">
<div><dt>Requirements checked</dt><dd>{}</dd></div>
<div><dt>Errors</dt><dd class="{}">{}</dd></div>
<div><dt>Warnings</dt><dd>{}</dd></div>
</dl>
<p class="hint">An error breaks the environment (<code>observer check</code> exits 1); a warning is a problem the documentation says it survives. Each card quotes the sentence that sets its level.</p>
</section>
<section id="problems"><h2>Problems</h2>
"#,
        esc(&audit.topology),
        esc(audit.environment),
        description
            .map(|d| format!(" · {}", esc(d)))
            .unwrap_or_default(),
        audit.checked,
        if audit.errors > 0 { "bad-text" } else { "" },
        audit.errors,
        audit.warnings,
    );
    if audit.problems.is_empty() {
        h.push_str(r#"<p class="empty">None: every documented requirement is met.</p>"#);
    }
    for level in [Level::Error, Level::Warning] {
        for p in audit.problems.iter().filter(|p| p.level == level) {
            card(&mut h, p);
        }
    }
    let _ = write!(
        h,
        "</section>\n</main>\n<footer>Made by observer {}; this file fetches nothing.</footer>\n</body>\n</html>\n",
        env!("CARGO_PKG_VERSION")
    );
    h
}
