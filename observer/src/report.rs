//! Summaries of classified flows for people (leaks first, with the reason)
//! and for CI (`--fail-on`).

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    str::FromStr,
};

use crate::{classify::Verdict, dns::DnsAnswer, flow::FlowRecord};

/// What makes `observer report --fail-on` exit non-zero.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FailOn {
    pub verdicts: BTreeSet<Verdict>,
    /// Any record or DNS message lost by the capture.
    pub lost: bool,
    /// Any DNS answer judged other than `ok`.
    pub dns: bool,
}

impl FromStr for FailOn {
    type Err = String;

    /// A comma-separated list: `leak` (every leak verdict), `any` (every
    /// verdict but ok), `lost`, `dns`, or verdict names.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut fail = Self::default();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            match item {
                "leak" => fail
                    .verdicts
                    .extend(Verdict::ALL.into_iter().filter(|v| v.is_leak())),
                "any" => fail
                    .verdicts
                    .extend(Verdict::ALL.into_iter().filter(|v| *v != Verdict::Ok)),
                "lost" => fail.lost = true,
                "dns" => fail.dns = true,
                verdict => {
                    fail.verdicts.insert(
                        verdict
                            .parse()
                            .map_err(|e: String| format!("{e}; or leak, any, lost, dns"))?,
                    );
                }
            }
        }
        Ok(fail)
    }
}

/// Counts of one set of records.
#[derive(Debug, Default)]
pub struct Report {
    pub records: usize,
    pub unclassified: usize,
    pub by_verdict: BTreeMap<String, usize>,
    pub by_dependency: BTreeMap<String, BTreeMap<String, usize>>,
    pub by_path: BTreeMap<(String, String), usize>,
    /// Problem conversations: (verdict, src, dst, proto/port) -> (records, reason).
    pub problems: BTreeMap<(Verdict, String, String), (usize, String)>,
    pub dns_by_verdict: BTreeMap<String, usize>,
    pub dns_problems: Vec<String>,
    pub lost: u64,
}

impl Report {
    pub fn build(records: &[FlowRecord], dns: &[DnsAnswer], lost: u64) -> Self {
        let mut report = Self {
            records: records.len(),
            lost,
            ..Self::default()
        };
        for r in records {
            let Some(verdict) = &r.verdict else {
                report.unclassified += 1;
                continue;
            };
            *report.by_verdict.entry(verdict.clone()).or_default() += 1;
            if let Some(dep) = &r.dependency {
                *report
                    .by_dependency
                    .entry(dep.clone())
                    .or_default()
                    .entry(verdict.clone())
                    .or_default() += 1;
            }
            let path = (
                r.expected_next_hop.clone().unwrap_or_else(|| "-".into()),
                r.observed_path.clone().unwrap_or_else(|| "-".into()),
            );
            *report.by_path.entry(path).or_default() += 1;
            if let Ok(v) = verdict.parse::<Verdict>()
                && v != Verdict::Ok
            {
                let proto = match r.protocol {
                    6 => "tcp",
                    17 => "udp",
                    1 | 58 => "icmp",
                    _ => "ip",
                };
                let port = r.dst_port.map(|p| format!(":{p}")).unwrap_or_default();
                let name = r
                    .dst_name
                    .as_deref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default();
                let entry = report
                    .problems
                    .entry((
                        v,
                        r.src_addr.to_string(),
                        format!("{}{port}/{proto}{name}", r.dst_addr),
                    ))
                    .or_insert((0, r.reason.clone().unwrap_or_default()));
                entry.0 += 1;
            }
        }
        for a in dns {
            let verdict = a.verdict.clone().unwrap_or_else(|| "unjudged".into());
            if verdict != "ok" && verdict != "unjudged" {
                report.dns_problems.push(format!(
                    "{verdict}: {}",
                    a.reason.as_deref().unwrap_or(&a.query)
                ));
            }
            *report.dns_by_verdict.entry(verdict).or_default() += 1;
        }
        report.dns_problems.sort();
        report.dns_problems.dedup();
        report
    }

    /// The reasons `fail` finds in this report (empty: pass).
    pub fn failures(&self, fail: &FailOn) -> Vec<String> {
        let mut out: Vec<String> = self
            .by_verdict
            .iter()
            .filter(|(v, _)| {
                v.parse::<Verdict>()
                    .is_ok_and(|v| fail.verdicts.contains(&v))
            })
            .map(|(v, n)| format!("{n} records with verdict {v}"))
            .collect();
        if fail.lost && self.lost > 0 {
            out.push(format!("{} packets lost by the capture", self.lost));
        }
        if fail.dns && !self.dns_problems.is_empty() {
            out.push(format!("{} DNS problems", self.dns_problems.len()));
        }
        out
    }

    /// The text report: problems first (leaks before the rest), then counts.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{} flow records", self.records);
        if self.unclassified > 0 {
            let _ = writeln!(
                s,
                "  {} not classified (captured without --topology; run `observer classify`)",
                self.unclassified
            );
        }
        if !self.problems.is_empty() {
            let _ = writeln!(s, "\nProblems (leaks first):");
            for ((verdict, src, dst), (count, reason)) in &self.problems {
                let mark = if verdict.is_leak() { "LEAK" } else { "    " };
                let _ = writeln!(
                    s,
                    "  {mark} {verdict:<24} {src} -> {dst}  [{count} records]"
                );
                let _ = writeln!(s, "       {reason}");
            }
        }
        if !self.dns_problems.is_empty() {
            let _ = writeln!(s, "\nDNS problems:");
            for p in &self.dns_problems {
                let _ = writeln!(s, "  {p}");
            }
        }
        let _ = writeln!(s, "\nRecords by verdict:");
        let mut verdicts: Vec<_> = self.by_verdict.iter().collect();
        verdicts.sort_by_key(|(v, _)| v.parse::<Verdict>().ok());
        for (v, n) in verdicts {
            let _ = writeln!(s, "  {v:<26} {n}");
        }
        if !self.by_dependency.is_empty() {
            let _ = writeln!(s, "\nRecords by dependency:");
            for (dep, verdicts) in &self.by_dependency {
                let detail: Vec<String> =
                    verdicts.iter().map(|(v, n)| format!("{v} {n}")).collect();
                let _ = writeln!(s, "  {dep:<26} {}", detail.join(", "));
            }
        }
        let _ = writeln!(s, "\nRecords by path (expected next hop / observed path):");
        for ((expected, observed), n) in &self.by_path {
            let _ = writeln!(s, "  {expected:<30} {observed:<24} {n}");
        }
        if !self.dns_by_verdict.is_empty() {
            let detail: Vec<String> = self
                .dns_by_verdict
                .iter()
                .map(|(v, n)| format!("{v} {n}"))
                .collect();
            let _ = writeln!(s, "\nDNS answers: {}", detail.join(", "));
        }
        let _ = writeln!(s, "\nPackets lost by the capture: {}", self.lost);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_on_parses_groups_and_names() {
        let f: FailOn = "leak".parse().unwrap();
        assert!(f.verdicts.contains(&Verdict::LeakDns) && !f.verdicts.contains(&Verdict::Blocked));
        let f: FailOn = "blocked, lost".parse().unwrap();
        assert_eq!(f.verdicts.len(), 1);
        assert!(f.lost);
        let err = "leek".parse::<FailOn>().unwrap_err();
        assert!(err.contains("unknown verdict `leek`"), "{err}");
    }
}
