//! The report: ONE summary model of classified flows, one renderer per
//! output format, and ONE way to write a report (`write`): `observer
//! report`, `observer classify`, `lab exec` and `lab run` all go through
//! it. Renderers only read the model.
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | `Format` (a format and what it needs besides the summary), `render`, `write` and the other writers of report files (`write_index`, `write_suites`), `WriteError` |
//! | `summary` | [`Summary`]: connections (both directions and every observation point of one conversation grouped like an RFC 5103 biflow, judged once), verdict counts ([`Judgement`]), DNS findings, capture loss; verdict names parsed once, here |
//! | `fail_on` | [`FailOn`]: `--fail-on` |
//! | `text` | the report for people: problems first, then counts |
//! | `json` | one JSON document (field names are a contract, see the README) |
//! | `junit` | JUnit XML for CI test reporters: one test case per connection |
//! | `html` | one self-contained HTML page: leaks first, Sankey, topology, DNS, table, time (ECharts embedded); the lab's index page |
//!
//! The verdicts' names, colours, fixes and severities are
//! [`crate::verdict::Verdict`]'s, not the report's.

pub(crate) mod fail_on;
pub(crate) mod html;
pub(crate) mod json;
pub(crate) mod junit;
pub(crate) mod summary;
mod text;

#[cfg(test)]
pub(crate) mod tests;

use std::{
    io::Write as _,
    path::{Path, PathBuf},
};

pub use fail_on::FailOn;
pub use summary::{
    Connection, Counts, DnsSummary, Endpoint, Judgement, Loss, PathCount, PointCounts, Summary,
};

/// A report format and what it needs besides the summary.
#[derive(Clone, Debug)]
pub(crate) enum Format<'a> {
    /// For people: problems first, then counts.
    Text,
    /// One JSON document (`observer-report/1`).
    Json,
    /// JUnit XML: a connection's test case fails when `fail` fails its
    /// verdict; `first`: suites put before the report's own (`lab exec`'s
    /// COMMAND).
    Junit {
        fail: &'a FailOn,
        first: &'a [junit::Suite],
    },
    /// One self-contained HTML page.
    Html(html::Context<'a>),
}

/// `summary` in `format`.
pub(crate) fn render(summary: &Summary, format: &Format<'_>) -> String {
    match format {
        Format::Text => text::render(summary),
        Format::Json => json::render(summary),
        Format::Junit { fail, first } => {
            let mut suites = first.to_vec();
            suites.extend(junit::suites(summary, fail));
            junit::render_suites(&suites)
        }
        Format::Html(context) => html::render(summary, context),
    }
}

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WriteError {
    #[error(
        "cannot write the report to {}: {source}; check that its directory exists and is writable",
        path.display()
    )]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the report to standard output: {0}")]
    Stdout(std::io::Error),
}

/// Writes `summary` in `format` to the file `to` (replaced if it
/// exists), or to standard output.
///
/// # Errors
///
/// [`WriteError`] when the file or standard output cannot be written.
pub(crate) fn write(
    summary: &Summary,
    format: &Format<'_>,
    to: Option<&Path>,
) -> Result<(), WriteError> {
    output(&render(summary, format), to)
}

/// Writes the index page of `lab run --html DIR` (one line per scenario
/// report) to `to`.
///
/// # Errors
///
/// [`WriteError`] when the file cannot be written.
pub(crate) fn write_index(entries: &[html::IndexEntry], to: &Path) -> Result<(), WriteError> {
    output(&html::index(entries), Some(to))
}

/// Writes JUnit suites made elsewhere (the lab's scenario checks) to `to`.
///
/// # Errors
///
/// [`WriteError`] when the file cannot be written.
pub(crate) fn write_suites(suites: &[junit::Suite], to: &Path) -> Result<(), WriteError> {
    output(&junit::render_suites(suites), Some(to))
}

fn output(text: &str, to: Option<&Path>) -> Result<(), WriteError> {
    match to {
        Some(path) => std::fs::write(path, text).map_err(|source| WriteError::File {
            path: path.to_owned(),
            source,
        }),
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .map_err(WriteError::Stdout)
        }
    }
}
