//! JUnit XML for CI test reporters (Jenkins, GitLab, GitHub test-report
//! actions): one `<testcase>` per connection, failed when its verdict is in
//! `--fail-on`, with the verdict as failure type and the reason as message;
//! plus one case for capture loss and one for DNS. The lab's scenario checks
//! use the same writer ([`Suite`], [`Case`]).

use std::fmt::Write as _;

use super::{FailOn, Summary};

/// One test case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Case {
    pub classname: String,
    pub name: String,
    /// Failure type and message, and a longer text body.
    pub failure: Option<(String, String, String)>,
    /// Standard output attached to the case (the connection's details).
    pub system_out: Option<String>,
}

/// One test suite.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Suite {
    pub name: String,
    pub cases: Vec<Case>,
}

/// The test cases of `summary` judged by `fail`.
pub(crate) fn suites(summary: &Summary, fail: &FailOn) -> Vec<Suite> {
    let connections = summary
        .connections
        .iter()
        .map(|c| {
            let verdict = c.judgement().as_str();
            let details = format!(
                "verdict: {verdict}\nreason: {}\ndependency: {}\ncategory: {}\nexpected next hop: {}\nobserved path: {}\nclient to server: {} packets, {} bytes\nserver to client: {} packets, {} bytes\nobservation points: {}\n",
                c.reason.as_deref().unwrap_or("-"),
                c.dependency.as_deref().unwrap_or("-"),
                c.category.as_deref().unwrap_or("-"),
                c.expected_next_hop.as_deref().unwrap_or("-"),
                c.observed_path.as_deref().unwrap_or("-"),
                c.forward.packets,
                c.forward.bytes,
                c.reverse.packets,
                c.reverse.bytes,
                c.points
                    .iter()
                    .map(|p| format!("{}/{}", p.netns.as_deref().unwrap_or(&p.host), p.iface))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            Case {
                classname: format!(
                    "observer.{}",
                    c.dependency.as_deref().or(c.category.as_deref()).unwrap_or("connection")
                ),
                name: c.title(),
                failure: fail.fails(c.verdict).then(|| {
                    (
                        verdict.to_owned(),
                        format!("{verdict}: {}", c.reason.as_deref().unwrap_or("no reason recorded")),
                        details.clone(),
                    )
                }),
                system_out: Some(details),
            }
        })
        .collect();
    let loss = Case {
        classname: "observer.capture".into(),
        name: "no packets lost by the capture".into(),
        failure: (fail.lost && summary.loss.packets > 0).then(|| {
            let m = format!("{} packets lost by the capture", summary.loss.packets);
            ("lost".to_string(), m.clone(), m)
        }),
        system_out: Some(format!("lost packets: {}\n", summary.loss.packets)),
    };
    let dns = Case {
        classname: "observer.dns".into(),
        name: "DNS answers as Azure DNS gives them".into(),
        failure: (fail.dns && !summary.dns.problems.is_empty()).then(|| {
            (
                "dns".to_string(),
                format!("{} DNS problems", summary.dns.problems.len()),
                summary.dns.problems.join("\n"),
            )
        }),
        system_out: Some(format!("DNS answers: {}\n", summary.dns.answers)),
    };
    vec![
        Suite {
            name: "observer.connections".into(),
            cases: connections,
        },
        Suite {
            name: "observer.capture".into(),
            cases: vec![loss, dns],
        },
    ]
}

/// Renders suites as one `<testsuites>` document.
pub(crate) fn render_suites(suites: &[Suite]) -> String {
    let total: usize = suites.iter().map(|s| s.cases.len()).sum();
    let failed = |s: &Suite| s.cases.iter().filter(|c| c.failure.is_some()).count();
    let failures: usize = suites.iter().map(failed).sum();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"observer\" tests=\"{total}\" failures=\"{failures}\" errors=\"0\" time=\"0\">"
    );
    for s in suites {
        let _ = writeln!(
            x,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"0\" time=\"0\">",
            escape(&s.name),
            s.cases.len(),
            failed(s)
        );
        for c in &s.cases {
            let _ = write!(
                x,
                "    <testcase classname=\"{}\" name=\"{}\" time=\"0\">",
                escape(&c.classname),
                escape(&c.name)
            );
            if let Some((kind, message, text)) = &c.failure {
                let _ = write!(
                    x,
                    "\n      <failure type=\"{}\" message=\"{}\">{}</failure>",
                    escape(kind),
                    escape(message),
                    escape(text)
                );
            }
            if let Some(out) = &c.system_out {
                let _ = write!(x, "\n      <system-out>{}</system-out>", escape(out));
            }
            x.push_str(if c.failure.is_some() || c.system_out.is_some() {
                "\n    </testcase>\n"
            } else {
                "</testcase>\n"
            });
        }
        x.push_str("  </testsuite>\n");
    }
    x.push_str("</testsuites>\n");
    x
}

/// XML text and attribute escaping; characters XML 1.0 forbids are dropped.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' | '\t' | '\r' => out.push(ch),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_case_per_connection_failures_carry_verdict_and_reason() {
        let s = Summary::build(&crate::report::tests::refused_and_ok(), &[], 0);
        let xml = render_suites(&suites(&s, &FailOn::leaks()));
        assert!(
            xml.contains("<testsuites name=\"observer\" tests=\"4\" failures=\"1\""),
            "{xml}"
        );
        assert_eq!(xml.matches("<testcase ").count(), 4);
        assert!(xml.contains("<failure type=\"leak-public-endpoint\" message=\"leak-public-endpoint: leak-public-endpoint because\">"), "{xml}");
        assert!(
            xml.contains("name=\"tcp 10.0.0.4:40000 -&gt; 203.0.113.6:1433\""),
            "{xml}"
        );
    }

    #[test]
    fn escaping_keeps_the_document_well_formed() {
        assert_eq!(escape("a<b>&\"'\u{1}c"), "a&lt;b&gt;&amp;&quot;&apos;c");
    }
}
