//! Small pieces of markup every part of the page uses: escaping, badges,
//! the colour of a judgement, times and byte counts for people.

use crate::report::Judgement;

/// The colour of connections without a verdict (and of a DNS verdict this
/// observer does not know).
pub(super) const NEUTRAL: &str = "#8a8f98";

/// The colour of a judgement, shared by badges and charts.
pub(super) fn colour(judgement: Judgement) -> &'static str {
    match judgement {
        Judgement::Verdict(v) => v.colour(),
        Judgement::Unclassified => NEUTRAL,
    }
}

/// HTML-escapes text and attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `2026-01-01 00:00:00.000 UTC`.
pub(super) fn utc(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns)
        .format("%Y-%m-%d %H:%M:%S%.3f UTC")
        .to_string()
}

/// `12 B`, `1.2 KB`, ... (powers of 1000).
pub(super) fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = b as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{b} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A judgement's name on its colour.
pub(super) fn badge(judgement: Judgement) -> String {
    labelled_badge(colour(judgement), judgement.as_str())
}

/// `text` on `colour`.
pub(super) fn labelled_badge(colour: &str, text: &str) -> String {
    format!(
        r#"<span class="badge" style="--c:{colour}">{}</span>"#,
        esc(text)
    )
}
