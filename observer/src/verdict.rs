//! The verdict vocabulary: the names the classifier gives flows and the
//! topology's `expect` fields, `--fail-on` and the report use. It sits below
//! both the model (`topology`) and the judge (`classify`), so the topology
//! never imports the classifier.
//!
//! A [`Verdict`] owns everything keyed by it, each through an exhaustive
//! `match`: its name (strum derives, kebab-case), its [`Severity`] and leak
//! flag, the report's colour and the fix the report suggests. A new verdict
//! fails to compile until every one of them says what it means for it.

use serde::Serialize;
use strum::{Display, EnumCount, EnumString, IntoStaticStr, VariantArray};

/// The verdict vocabulary. Declaration order is severity order, most
/// severe first (leaks first: the report's order); `Ord` follows it.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Display,
    EnumCount,
    EnumString,
    IntoStaticStr,
    VariantArray,
)]
#[strum(
    serialize_all = "kebab-case",
    parse_err_ty = UnknownVerdict,
    parse_err_fn = UnknownVerdict::new
)]
pub enum Verdict {
    LeakPublicEndpoint,
    LeakDns,
    LeakRoute,
    MisrouteForcedTunnel,
    AsymmetricRoute,
    DeniedByNsg,
    /// A VNet flow log recorded virtual network encryption dropping the
    /// flow (Azure's `DropUnencrypted` policy; not an NSG).
    DroppedUnencrypted,
    Blocked,
    SameSubnetUnreachable,
    DroppedNoRoute,
    Undocumented,
    Ok,
}

/// How bad a verdict is, coarsely: what the report's status line and the
/// lab's index page say about a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Traffic took a path it must not take (`--fail-on leak`).
    Leak,
    /// Traffic failed or is not documented: a problem, not a leak.
    Problem,
    /// Traffic took the path Azure gives it.
    Ok,
}

/// A name that is not a verdict; the message lists the valid names.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown verdict `{name}` (one of: {})", Verdict::names())]
pub struct UnknownVerdict {
    pub name: String,
}

impl UnknownVerdict {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
        }
    }
}

impl Verdict {
    /// Every verdict, most severe first.
    pub const ALL: [Self; <Self as EnumCount>::COUNT] = *<Self as VariantArray>::VARIANTS
        .first_chunk()
        .expect("VARIANTS holds COUNT verdicts");

    /// The verdict's name, as written to Parquet and read from topology
    /// files (`leak-public-endpoint`).
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Every name, comma-separated (for messages that list them).
    pub fn names() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }

    pub fn severity(self) -> Severity {
        match self {
            Self::LeakPublicEndpoint
            | Self::LeakDns
            | Self::LeakRoute
            | Self::MisrouteForcedTunnel => Severity::Leak,
            Self::AsymmetricRoute
            | Self::DeniedByNsg
            | Self::DroppedUnencrypted
            | Self::Blocked
            | Self::SameSubnetUnreachable
            | Self::DroppedNoRoute
            | Self::Undocumented => Severity::Problem,
            Self::Ok => Severity::Ok,
        }
    }

    /// Whether the verdict is one of the leak verdicts.
    pub fn is_leak(self) -> bool {
        self.severity() == Severity::Leak
    }

    /// The report's colour for the verdict (badges, charts): reds for
    /// leaks, ambers and browns for blocked paths, blue and teal for
    /// routing and NSG problems, purple for the undocumented, green for ok.
    /// White text stays readable on each.
    pub fn colour(self) -> &'static str {
        match self {
            Self::LeakPublicEndpoint => "#d62728",
            Self::LeakDns => "#e8467c",
            Self::LeakRoute => "#b3122e",
            Self::MisrouteForcedTunnel => "#f0642d",
            Self::AsymmetricRoute => "#2b6cb0",
            Self::DeniedByNsg => "#0e7c86",
            Self::DroppedUnencrypted => "#4a5d8c",
            Self::Blocked => "#e0a800",
            Self::SameSubnetUnreachable => "#c98a00",
            Self::DroppedNoRoute => "#8c6d1f",
            Self::Undocumented => "#8e5cc4",
            Self::Ok => "#2ca02c",
        }
    }

    /// What to do about the verdict, one sentence (a flow's reason says why).
    pub fn fix(self) -> &'static str {
        match self {
            Self::LeakPublicEndpoint => {
                "Reach the service by its private address: use the backend's private IP or a private endpoint, and resolve its name to that address."
            }
            Self::LeakDns => {
                "Link the privatelink DNS zone to the VNet (or forward the zone from your DNS servers to 168.63.129.16) so the name resolves to the private endpoint."
            }
            Self::LeakRoute => {
                "Fix the route table: add a route that keeps this prefix in the VNet (VnetLocal, peering or gateway) instead of the Internet next hop."
            }
            Self::MisrouteForcedTunnel => {
                "Add Internet routes (UDRs) for the ASE's platform dependencies so forced tunnelling does not send them on-premises."
            }
            Self::AsymmetricRoute => {
                "Add a route for the AppServiceManagement service tag (or the management addresses) with next hop Internet, so replies to inbound management leave the way the requests came in."
            }
            Self::DeniedByNsg => {
                "If the flow is needed (ASE dependencies and inbound management are), add an Allow rule for it to the NSG the reason names, with a lower priority number than the rule that denies it."
            }
            Self::DroppedUnencrypted => {
                "Enable accelerated networking on both VMs (encryption needs a supported size) or set the VNet's encryption enforcement to AllowUnencrypted until every VM supports it."
            }
            Self::Blocked => {
                "Allow the ASE's source (its outbound VIP or subnet) in the destination's firewall or ACL, or reach it by the path it admits."
            }
            Self::SameSubnetUnreachable => {
                "Move the destination out of the ASE subnet (ASEv1/v2 cannot reach hosts in their own subnet)."
            }
            Self::DroppedNoRoute => {
                "Add a route for the destination (a UDR with next hop None drops it) or remove the one that drops it."
            }
            Self::Undocumented => {
                "Check whether this destination is needed; if it is, add it to a catalog (--catalog) with the path it should take."
            }
            Self::Ok => "Nothing to do: the flow took the path Azure gives it.",
        }
    }
}

/// Serialised by name, like the Parquet column.
impl Serialize for Verdict {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_names_are_the_documented_ones_and_parse_back() {
        let names: Vec<&str> = Verdict::ALL.iter().map(|v| v.as_str()).collect();
        assert_eq!(
            names,
            [
                "leak-public-endpoint",
                "leak-dns",
                "leak-route",
                "misroute-forced-tunnel",
                "asymmetric-route",
                "denied-by-nsg",
                "dropped-unencrypted",
                "blocked",
                "same-subnet-unreachable",
                "dropped-no-route",
                "undocumented",
                "ok",
            ]
        );
        for v in Verdict::ALL {
            assert_eq!(v.as_str().parse::<Verdict>(), Ok(v));
            assert_eq!(v.to_string(), v.as_str());
            assert_eq!(
                serde_json::to_string(&v).unwrap(),
                format!("\"{}\"", v.as_str())
            );
        }
    }

    #[test]
    fn an_unknown_name_is_refused_with_the_valid_ones() {
        let err = "leek".parse::<Verdict>().unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown verdict `leek` (one of: leak-public-endpoint, leak-dns, leak-route, misroute-forced-tunnel, asymmetric-route, denied-by-nsg, dropped-unencrypted, blocked, same-subnet-unreachable, dropped-no-route, undocumented, ok)"
        );
        assert!("Ok".parse::<Verdict>().is_err(), "names are exact");
    }

    #[test]
    fn every_verdict_has_a_fix_and_a_colour_of_its_own() {
        for v in Verdict::ALL {
            assert!(v.fix().ends_with('.'), "{v}: a sentence");
            let c = v.colour();
            assert!(
                c.len() == 7 && c.starts_with('#') && c[1..].chars().all(|d| d.is_ascii_hexdigit()),
                "{v}: {c}"
            );
            let same: Vec<Verdict> = Verdict::ALL
                .into_iter()
                .filter(|o| o.colour() == c)
                .collect();
            assert_eq!(same, [v], "{v} shares its colour");
        }
    }

    #[test]
    fn severity_follows_the_declaration_order() {
        let classes: Vec<Severity> = Verdict::ALL.map(Verdict::severity).to_vec();
        assert!(classes.is_sorted(), "{classes:?}");
        assert!(Verdict::ALL.is_sorted());
        let leaks: Vec<Verdict> = Verdict::ALL.into_iter().filter(|v| v.is_leak()).collect();
        assert_eq!(
            leaks,
            [
                Verdict::LeakPublicEndpoint,
                Verdict::LeakDns,
                Verdict::LeakRoute,
                Verdict::MisrouteForcedTunnel
            ]
        );
        assert_eq!(Verdict::Ok.severity(), Severity::Ok);
    }
}
