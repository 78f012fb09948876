//! The page: self-contained, leaks first, every text escaped, every
//! verdict with its colour and fix.

use super::{markup::esc, *};
use crate::{
    report::{Connection, tests::refused_and_ok},
    verdict::Verdict,
};

/// The fixture's summary: a leak and an ok connection.
pub(super) fn summary() -> Summary {
    Summary::build(&refused_and_ok(), &[], 0)
}

fn page(summary: &Summary) -> String {
    render(
        summary,
        &Context {
            topology_name: Some("default <lab>"),
            topology: None,
            generated: "2026-01-01T00:00:00Z".into(),
        },
    )
}

#[test]
fn the_page_is_self_contained_and_leads_with_the_leak() {
    let html = page(&summary());
    assert!(html.starts_with("<!doctype html>"));
    // Nothing to fetch: no external URL in any src/href.
    for needle in [
        "src=\"http",
        "href=\"http",
        "src='http",
        "@import",
        "url(http",
    ] {
        assert!(!html.contains(needle), "{needle}");
    }
    assert!(
        html.contains("default &lt;lab&gt;"),
        "escaped topology name"
    );
    let problems = html.find("id=\"problems\"").unwrap();
    let leak = html
        .find("tcp 10.0.0.4:40000 -&gt; 203.0.113.6:1433")
        .unwrap();
    let table = html.find("id=\"connections\"").unwrap();
    assert!(problems < leak && leak < table, "the leak comes first");
    assert!(html.contains("leak-public-endpoint because"));
    assert!(html.contains(&esc(Verdict::LeakPublicEndpoint.fix())));
    assert_eq!(html.matches("<tr data-verdict=").count(), 2);
    assert!(html.contains("1 leaking connection<"));
    // The data cannot close its script element.
    let data_start = html.find("id=\"report-data\"").unwrap();
    let data_end = html[data_start..].find("</script>").unwrap();
    assert!(!html[data_start + 40..data_start + data_end].contains('<'));
}

/// The problem card of the connection with `title` (escaped).
fn card<'h>(html: &'h str, c: &Connection) -> &'h str {
    let title = esc(&c.title());
    let at = html
        .find(&format!(r#"<span class="conn">{title}</span>"#))
        .unwrap_or_else(|| panic!("no card for {title}"));
    let start = html[..at].rfind("<article").unwrap();
    let end = at + html[at..].find("</article>").unwrap();
    &html[start..end]
}

#[test]
fn nsg_denials_and_asymmetric_routes_get_their_colour_and_fix() {
    let mut records = refused_and_ok();
    for (i, r) in records.iter_mut().enumerate() {
        r.verdict = Some(
            if i < 4 {
                "denied-by-nsg"
            } else {
                "asymmetric-route"
            }
            .into(),
        );
    }
    let s = Summary::build(&records, &[], 0);
    let html = page(&s);
    for c in &s.connections {
        let v = c.verdict.unwrap();
        let card = card(&html, c);
        assert!(
            card.starts_with(&format!(
                r#"<article class="problem" style="--c:{}">"#,
                v.colour()
            )),
            "{v}: {card}"
        );
        assert!(
            card.contains(&format!(
                r#"<span class="badge" style="--c:{}">{v}</span>"#,
                v.colour()
            )),
            "{v}: {card}"
        );
        assert!(
            card.contains(&format!(
                r#"<p class="fix"><span>Fix</span> {}</p>"#,
                esc(v.fix())
            )),
            "{v}: {card}"
        );
        assert!(!card.contains(markup::NEUTRAL), "{v}: not grey");
        assert!(
            html.contains(&format!(
                r#"<li style="--c:{}"><span class="n">1</span> {v}</li>"#,
                v.colour()
            )),
            "{v} counted in its colour"
        );
        assert!(
            html.contains(&format!(r#""{v}":"{}""#, v.colour())),
            "{v}'s colour for the charts"
        );
    }
    assert!(!html.contains(r#"<span>Fix</span> </p>"#), "no empty fix");
    assert!(html.contains("No leak; 2 connections with problems"));
}

#[test]
fn every_verdict_renders_in_its_own_colour_with_its_fix() {
    let base = summary();
    for v in Verdict::ALL.into_iter().filter(|v| *v != Verdict::Ok) {
        let mut s = base.clone();
        s.connections[0].verdict = Some(v);
        let html = page(&s);
        let card = card(&html, &s.connections[0]);
        assert!(card.contains(&format!("--c:{}", v.colour())), "{v}");
        assert!(card.contains(&esc(v.fix())), "{v}");
    }
}

#[test]
fn dns_problems_carry_their_verdicts_colour() {
    use crate::dns::DnsVerdict;
    let mut s = summary();
    for v in [
        DnsVerdict::UnexpectedServer,
        DnsVerdict::PrivatelinkPublic,
        DnsVerdict::NxdomainDependency,
    ] {
        s.dns.problems.push(format!("{}: why", v.as_str()));
    }
    s.dns.problems.push("a-newer-verdict: why".into());
    let html = page(&s);
    for v in [
        DnsVerdict::UnexpectedServer,
        DnsVerdict::PrivatelinkPublic,
        DnsVerdict::NxdomainDependency,
    ] {
        assert_ne!(v.colour(), markup::NEUTRAL);
        assert!(
            html.contains(&format!(
                r#"<li><span class="badge" style="--c:{}">{}</span> why</li>"#,
                v.colour(),
                v.as_str()
            )),
            "{v:?}"
        );
    }
    assert!(html.contains(&format!(
        r#"<span class="badge" style="--c:{}">a-newer-verdict</span>"#,
        markup::NEUTRAL
    )));
}
