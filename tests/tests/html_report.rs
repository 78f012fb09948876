//! The HTML report of a real lab scenario, opened in headless Chromium
//! (Debian's `chromium`, driven by `playwright-core`; both installed by
//! `cargo xtask test`): no console error, no request but the file itself,
//! the leaking connection and its reason in the page, every chart drawn,
//! the table filters, a screenshot (light and dark) and a PDF under
//! `target/tmp/html-report/`. Needs root (the lab); run with `cargo xtask test`.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, ensure};
use observer::{dns, files::reader, report::Summary};
use observer_tests::{Scratch, node_modules, observer_bin};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs the browser check on `html`; the JSON it reports.
fn open_in_chromium(
    html: &Path,
    screenshot: &Path,
    scheme: &str,
) -> anyhow::Result<serde_json::Value> {
    let output = Command::new("node")
        .arg(workspace().join("tests/browser/check_report.js"))
        .arg(html)
        .arg(screenshot)
        .arg(scheme)
        .env("NODE_PATH", node_modules())
        .output()
        .context("node (cargo xtask test installs nodejs, chromium and playwright-core)")?;
    ensure!(
        output.status.success(),
        "the browser check failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(serde_json::from_slice(&output.stdout)?)
}

/// `observer lab run default --html DIR` (the demo's path): one page per
/// scenario and an index; the page opened in Chromium, light and dark.
#[test]
fn the_html_report_of_a_lab_scenario_renders_offline_in_chromium() -> anyhow::Result<()> {
    let scratch = Scratch::new("html");
    let topology = workspace().join("lab/topologies/default.toml");
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("html-report");
    let _ = std::fs::remove_dir_all(&artifacts);
    std::fs::create_dir_all(&artifacts)?;
    let status = Command::new(observer_bin())
        .args(["lab", "run", "default", "--out"])
        .arg(scratch.path())
        .arg("--html")
        .arg(&artifacts)
        .stdout(std::process::Stdio::null())
        .status()?;
    ensure!(
        status.success(),
        "observer lab run default --html: {status}"
    );
    let index = std::fs::read_to_string(artifacts.join("index.html"))?;
    assert!(
        index.contains(r#"<a href="default.html">default</a>"#),
        "{index}"
    );
    let html = artifacts.join("default.html");

    // The connections, read back independently of the page.
    let dirs = [
        scratch.path().join("default/workload"),
        scratch.path().join("default/router"),
    ];
    let files = reader::read_flows(&dirs)?;
    let lost = reader::lost_packets(&files);
    let records: Vec<_> = files.into_iter().flat_map(|f| f.records).collect();
    let summary = Summary::build(&records, &dns::read_recorded(&dirs)?, lost);
    let leak = summary
        .connections
        .iter()
        .find(|c| c.is_leak())
        .context("the default scenario has a leaking connection")?;

    // `observer report --format html` makes the same page from the files.
    let from_report = artifacts.join("from-report.html");
    let status = Command::new(observer_bin())
        .args(["report", "--format", "html", "--topology"])
        .arg(&topology)
        .arg("--out")
        .arg(&from_report)
        .args(&dirs)
        .status()?;
    ensure!(status.success(), "observer report --format html: {status}");
    let report_text = std::fs::read_to_string(&from_report)?;
    assert!(report_text.contains(&leak.title().replace('>', "&gt;")));
    let text = std::fs::read_to_string(&html)?;
    assert!(text.contains("<title>observer report — default</title>"));

    for scheme in ["light", "dark"] {
        let shot = artifacts.join(format!("default-{scheme}.png"));
        let _ = std::fs::remove_file(&shot);
        let page = open_in_chromium(&html, &shot, scheme)?;
        assert_eq!(page["console_errors"], serde_json::json!([]), "{scheme}");
        assert_eq!(page["page_errors"], serde_json::json!([]), "{scheme}");
        let url = format!("file://{}", html.canonicalize()?.display());
        assert_eq!(
            page["requests"],
            serde_json::json!([url]),
            "{scheme}: the page requested nothing but itself"
        );
        let problems = page["problems"].as_str().unwrap_or_default();
        assert!(
            problems.contains(&leak.title()),
            "{scheme}: the leak `{}` in:\n{problems}",
            leak.title()
        );
        let reason = leak.reason.as_deref().context("the leak has a reason")?;
        assert!(problems.contains(reason), "{scheme}: its reason");
        assert!(
            page["status"]
                .as_str()
                .is_some_and(|s| s.contains("leaking connection")),
            "{page}"
        );
        let charts = page["charts"].as_array().context("charts")?;
        assert_eq!(charts.len(), 3, "{scheme}: {charts:?}");
        for chart in charts {
            assert!(
                chart["svg_elements"].as_u64().unwrap_or(0) > 10
                    && chart["width"].as_f64().unwrap_or(0.0) > 300.0,
                "{scheme}: chart drawn: {chart}"
            );
        }
        let sankey = charts[0]["text"].as_str().unwrap_or_default();
        assert!(
            leak.observed_path
                .as_deref()
                .is_some_and(|p| sankey.contains(p)),
            "{scheme}: the leak's path in the Sankey: {sankey}"
        );
        assert_eq!(
            page["rows"].as_u64(),
            Some(summary.connections.len() as u64),
            "{scheme}: one table row per connection"
        );
        let filtered = &page["filtered"];
        let verdict = filtered["verdict"]
            .as_str()
            .context("a leak verdict to filter")?;
        assert_eq!(
            filtered["visible"].as_u64(),
            Some(
                summary
                    .connections
                    .iter()
                    .filter(|c| c.verdict.is_some_and(|v| v.as_str() == verdict))
                    .count() as u64
            ),
            "{scheme}: the verdict filter"
        );
        assert!(
            page["body_width"].as_f64().unwrap_or(f64::MAX) <= 1366.0,
            "{scheme}: fits a laptop's width"
        );
        assert!(
            std::fs::metadata(&shot)?.len() > 20_000,
            "{scheme}: screenshot"
        );
        assert!(page.get("pdf_error").is_none(), "{scheme}: {page}");
        assert!(
            std::fs::metadata(shot.with_extension("pdf"))?.len() > 20_000,
            "{scheme}: printable"
        );
    }
    Ok(())
}

/// `lab exec --html FILE` writes the page next to its other reports.
#[test]
fn lab_exec_writes_the_html_report() -> anyhow::Result<()> {
    let scratch = Scratch::new("exec-html");
    let html = scratch.path().join("exec.html");
    let status = Command::new(observer_bin())
        .args(["lab", "exec", "default", "--out"])
        .arg(scratch.path().join("out"))
        .arg("--html")
        .arg(&html)
        .args(["--", "true"])
        .stdout(std::process::Stdio::null())
        .status()?;
    ensure!(status.success(), "observer lab exec --html: {status}");
    let page = std::fs::read_to_string(&html)?;
    assert!(page.contains("<title>observer report — default</title>"));
    for id in ["chart-sankey", "chart-topology", "chart-time", "table"] {
        assert!(page.contains(&format!("id=\"{id}\"")), "{id}");
    }
    Ok(())
}
