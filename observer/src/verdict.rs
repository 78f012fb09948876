//! The verdict vocabulary: the names the classifier gives flows and the
//! topology's `expect` fields, `--fail-on` and the report use. It sits below
//! both the model (`topology`) and the judge (`classify`), so the topology
//! never imports the classifier.

use std::fmt;

/// The verdict vocabulary; leaks first (the report's order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
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

impl Verdict {
    pub const ALL: [Self; 12] = [
        Self::LeakPublicEndpoint,
        Self::LeakDns,
        Self::LeakRoute,
        Self::MisrouteForcedTunnel,
        Self::AsymmetricRoute,
        Self::DeniedByNsg,
        Self::DroppedUnencrypted,
        Self::Blocked,
        Self::SameSubnetUnreachable,
        Self::DroppedNoRoute,
        Self::Undocumented,
        Self::Ok,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::LeakPublicEndpoint => "leak-public-endpoint",
            Self::LeakDns => "leak-dns",
            Self::LeakRoute => "leak-route",
            Self::MisrouteForcedTunnel => "misroute-forced-tunnel",
            Self::AsymmetricRoute => "asymmetric-route",
            Self::DeniedByNsg => "denied-by-nsg",
            Self::DroppedUnencrypted => "dropped-unencrypted",
            Self::Blocked => "blocked",
            Self::SameSubnetUnreachable => "same-subnet-unreachable",
            Self::DroppedNoRoute => "dropped-no-route",
            Self::Undocumented => "undocumented",
            Self::Ok => "ok",
        }
    }

    pub fn is_leak(self) -> bool {
        matches!(
            self,
            Self::LeakPublicEndpoint | Self::LeakDns | Self::LeakRoute | Self::MisrouteForcedTunnel
        )
    }
}

impl std::str::FromStr for Verdict {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown verdict `{s}` (one of: {})",
                    Self::ALL.map(|v| v.as_str()).join(", ")
                )
            })
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
