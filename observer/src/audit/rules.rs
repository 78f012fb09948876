//! The requirements the auditor checks that are not catalog entries (the
//! topology's own DNS and routes), each with its id (SARIF's `ruleId`),
//! its [`Level`] and the documentation's sentence that sets the level: the
//! same data the catalog gives its dependencies and inbound requirements,
//! kept here because these are about the topology, not the environment.

use crate::catalog::Level;

/// One requirement of the audit that is not a catalog entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Requirement {
    /// SARIF's `ruleId`.
    pub(crate) id: &'static str,
    pub(crate) level: Level,
    /// The documentation's sentence, with where it is.
    pub(crate) because: &'static str,
}

/// A private endpoint's privatelink zone is not linked to the VNet: the
/// name resolves to the public address and the traffic leaves the VNet;
/// the environment keeps working.
pub(crate) const ZONE_NOT_LINKED: Requirement = Requirement {
    id: "private-endpoint-dns",
    level: Level::Warning,
    because: "key-vault/general/private-link-diagnostics.md (S14): \"If the Private DNS Zone is not linked to the correct Virtual Network, any DNS resolution from that Virtual Network will ignore the Private DNS Zone.\"",
};

/// ... and the resource has public network access disabled: every request
/// by the public address is refused.
pub(crate) const PUBLIC_ACCESS_DISABLED: Requirement = Requirement {
    id: "private-endpoint-public-access",
    level: Level::Error,
    because: "with publicNetworkAccess Disabled the resource answers only its private endpoints: Key Vault refuses a public request with 403 ForbiddenByConnection (\"Connection is not an approved private link and caller was ignored because bypass is not set to 'AzureServices' and PublicNetworkAccess is set to 'Disabled'.\"), Cognitive Services with 403 \"Public access is disabled. Please configure private endpoint.\"",
};

/// A user route that a more specific BGP route beats for part of its
/// prefix (the dependencies it breaks are reported on their own).
pub(crate) const UDR_BEATEN_BY_BGP: Requirement = Requirement {
    id: "udr-beaten-by-bgp",
    level: Level::Warning,
    because: "virtual-network/virtual-networks-udr-overview.md (S11): \"When outbound traffic is sent from a subnet, Azure selects a route based on the destination IP address, using the longest prefix match algorithm.\"",
};

/// Custom DNS servers that do not forward to Azure DNS: private zones are
/// never consulted.
pub(crate) const DNS_NOT_FORWARDING: Requirement = Requirement {
    id: "custom-dns/forwarding",
    level: Level::Warning,
    because: "dns/private-dns-overview.md: \"If your custom DNS server is a virtual machine, you must configure a conditional forwarder. Point the conditional forwarder to Azure DNS (168.63.129.16) for the private zone.\"",
};

/// A custom DNS server the ASE subnet cannot reach.
pub(crate) const DNS_UNREACHABLE: Requirement = Requirement {
    id: "custom-dns/unreachable",
    level: Level::Error,
    because: "app-service/environment/network-info.md (S4): \"If the VNet is configured with a customer-selected DNS server, the DNS server must be reachable from the subnet that contains the ASE.\"",
};
