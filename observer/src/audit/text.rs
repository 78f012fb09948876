//! The text report of `observer check`: one block per problem (its level
//! and requirement, what is wrong, what breaks, the documentation's
//! sentence, the fix with its `az` commands and TOML, where the item is),
//! then one summary line.

use std::fmt;

use super::{Audit, Problem};
use crate::catalog::Level;

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}[{}]: {}", self.level, self.rule, self.problem)?;
        writeln!(f, "  breaks: {}", self.breaks)?;
        writeln!(f, "  why {}: {}", self.level, self.because)?;
        writeln!(f, "  fix: {}", self.fix)?;
        for az in &self.az {
            writeln!(f, "    $ {az}")?;
        }
        if let Some(toml) = &self.toml {
            for line in toml.lines() {
                writeln!(f, "    | {line}")?;
            }
        }
        if let Some(p) = &self.in_topology {
            write!(
                f,
                "  at: {}:{}:{} ({})",
                p.file.display(),
                p.line,
                p.column,
                self.at
            )?;
        } else {
            write!(f, "  at: {}", self.at)?;
        }
        if let Some(p) = &self.in_export {
            write!(
                f,
                ", imported from {}:{}:{}{}",
                p.file.display(),
                p.line,
                p.column,
                p.json_path
                    .as_deref()
                    .map(|j| format!(" {j}"))
                    .unwrap_or_default()
            )?;
        }
        writeln!(f)
    }
}

impl fmt::Display for Audit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Errors first, in the order found.
        for level in [Level::Error, Level::Warning] {
            for p in self.problems.iter().filter(|p| p.level == level) {
                writeln!(f, "{p}")?;
            }
        }
        writeln!(
            f,
            "{} ({}): {} requirements checked: {} error{}, {} warning{}{}",
            self.topology,
            self.environment,
            self.checked,
            self.errors,
            if self.errors == 1 { "" } else { "s" },
            self.warnings,
            if self.warnings == 1 { "" } else { "s" },
            if self.errors > 0 {
                ": the environment would not work"
            } else if self.warnings > 0 {
                ": it works (warnings do not change the exit status)"
            } else {
                ""
            }
        )
    }
}
