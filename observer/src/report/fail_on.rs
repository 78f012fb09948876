//! `--fail-on`: what makes `observer report` and `lab exec` exit non-zero,
//! parsed from a comma-separated list of groups ([`Group`]) and verdict
//! names.

use std::{collections::BTreeSet, str::FromStr};

use strum::{EnumString, IntoStaticStr, VariantArray};

use crate::verdict::{Severity, UnknownVerdict, Verdict};

/// What makes `observer report --fail-on` (and `lab exec`) exit non-zero.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FailOn {
    pub verdicts: BTreeSet<Verdict>,
    /// Any record or DNS message lost by the capture.
    pub lost: bool,
    /// Any DNS answer judged other than `ok`.
    pub dns: bool,
}

/// The words of a `--fail-on` list besides verdict names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, EnumString, IntoStaticStr, VariantArray)]
#[strum(serialize_all = "lowercase")]
enum Group {
    /// Every leak verdict.
    Leak,
    /// Every verdict but ok.
    Any,
    /// Capture loss.
    Lost,
    /// DNS problems.
    Dns,
}

/// An item of a `--fail-on` list that is neither a group nor a verdict.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{verdict}; or {}", Group::VARIANTS.iter().map(|g| <&str>::from(*g)).collect::<Vec<_>>().join(", "))]
pub struct UnknownFailOn {
    verdict: UnknownVerdict,
}

impl FromStr for FailOn {
    type Err = UnknownFailOn;

    /// A comma-separated list: `leak` (every leak verdict), `any` (every
    /// verdict but ok), `lost`, `dns`, or verdict names.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut fail = Self::default();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            match item.parse::<Group>() {
                Ok(Group::Leak) => fail
                    .verdicts
                    .extend(Verdict::ALL.into_iter().filter(|v| v.is_leak())),
                Ok(Group::Any) => fail.verdicts.extend(
                    Verdict::ALL
                        .into_iter()
                        .filter(|v| v.severity() != Severity::Ok),
                ),
                Ok(Group::Lost) => fail.lost = true,
                Ok(Group::Dns) => fail.dns = true,
                Err(_) => {
                    fail.verdicts
                        .insert(item.parse().map_err(|verdict| UnknownFailOn { verdict })?);
                }
            }
        }
        Ok(fail)
    }
}

impl FailOn {
    /// The default of `lab exec`: every leak verdict.
    pub fn leaks() -> Self {
        Self {
            verdicts: Verdict::ALL.into_iter().filter(|v| v.is_leak()).collect(),
            ..Self::default()
        }
    }

    /// Whether a connection judged `verdict` fails the run.
    pub fn fails(&self, verdict: Option<Verdict>) -> bool {
        verdict.is_some_and(|v| self.verdicts.contains(&v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_on_parses_groups_and_names() {
        let f: FailOn = "leak".parse().unwrap();
        assert!(f.verdicts.contains(&Verdict::LeakDns) && !f.verdicts.contains(&Verdict::Blocked));
        assert_eq!(f, FailOn::leaks());
        let f: FailOn = "blocked, lost".parse().unwrap();
        assert_eq!(f.verdicts.len(), 1);
        assert!(f.lost && !f.dns);
        let f: FailOn = "any,dns".parse().unwrap();
        assert_eq!(f.verdicts.len(), Verdict::ALL.len() - 1);
        assert!(!f.verdicts.contains(&Verdict::Ok) && f.dns);
        assert!(f.fails(Some(Verdict::DeniedByNsg)) && !f.fails(None));
        let err = "leek".parse::<FailOn>().unwrap_err().to_string();
        assert!(
            err.starts_with("unknown verdict `leek` (one of: leak-public-endpoint, "),
            "{err}"
        );
        assert!(err.ends_with(", ok); or leak, any, lost, dns"), "{err}");
    }
}
