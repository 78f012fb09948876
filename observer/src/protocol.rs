//! IP protocols and the ports several stages name: a leaf below
//! `classify`, `audit`, `flow` and the report. The numbers are the kernel
//! program's (`observer_common::proto`); each audience's spelling is a
//! method here, so no stage writes its own `6 => "TCP"`.
//!
//! | spelling | method | used by |
//! |---|---|---|
//! | `TCP`, `UDP`, `ICMP`, `ICMPv6`, `protocol 47` | `Display` | reasons, audit problems |
//! | `Tcp`, `Udp`, `Icmp`, `*` | [`IpProtocol::azure`] | NSG rule text (Azure's spelling) |
//! | `tcp`, `udp`, `icmp`, `ip-47` | [`IpProtocol::lower`] | the report's connections |

use std::{borrow::Cow, fmt};

use observer_common::proto;

/// An IP protocol number (the `protocol` column) with its names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct IpProtocol(pub u8);

impl IpProtocol {
    pub(crate) const ICMP: Self = Self(proto::ICMP);
    pub(crate) const TCP: Self = Self(proto::TCP);
    pub(crate) const UDP: Self = Self(proto::UDP);
    pub(crate) const ICMPV6: Self = Self(proto::ICMPV6);

    /// The number, as records and the kernel hold it.
    pub(crate) const fn number(self) -> u8 {
        self.0
    }

    /// Azure's spelling in NSG rules (`Tcp`, `Udp`, `Icmp`); `*` (any) for
    /// a protocol a rule cannot name.
    pub(crate) fn azure(self) -> &'static str {
        match self {
            Self::TCP => "Tcp",
            Self::UDP => "Udp",
            Self::ICMP => "Icmp",
            _ => "*",
        }
    }

    /// Lower case, as the report lists connections: `tcp`, `udp`, `icmp`
    /// (v4 and v6), else `ip-N`.
    pub(crate) fn lower(self) -> Cow<'static, str> {
        match self {
            Self::TCP => "tcp".into(),
            Self::UDP => "udp".into(),
            Self::ICMP | Self::ICMPV6 => "icmp".into(),
            Self(n) => format!("ip-{n}").into(),
        }
    }
}

impl From<u8> for IpProtocol {
    fn from(number: u8) -> Self {
        Self(number)
    }
}

/// `TCP`, `UDP`, `ICMP`, `ICMPv6`, else `protocol N`.
impl fmt::Display for IpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::TCP => f.write_str("TCP"),
            Self::UDP => f.write_str("UDP"),
            Self::ICMP => f.write_str("ICMP"),
            Self::ICMPV6 => f.write_str("ICMPv6"),
            Self(n) => write!(f, "protocol {n}"),
        }
    }
}

/// DNS, over UDP and TCP.
pub(crate) const DNS_PORT: u16 = 53;

/// The ASE's inbound management ports: App Service reaches the workload on
/// them from the `AppServiceManagement` service tag (and the load balancer
/// probes them), and the replies must leave by the Internet path.
pub(crate) const MANAGEMENT_PORTS: [u16; 2] = [454, 455];

/// The management ports as the documentation writes them: `454-455`.
pub(crate) fn management_ports_text() -> String {
    let [first, last] = MANAGEMENT_PORTS;
    format!("{first}-{last}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_audience_gets_its_spelling() {
        let cases = [
            (IpProtocol::TCP, "TCP", "Tcp", "tcp"),
            (IpProtocol::UDP, "UDP", "Udp", "udp"),
            (IpProtocol::ICMP, "ICMP", "Icmp", "icmp"),
            (IpProtocol::ICMPV6, "ICMPv6", "*", "icmp"),
            (IpProtocol(47), "protocol 47", "*", "ip-47"),
        ];
        for (p, display, azure, lower) in cases {
            assert_eq!(p.to_string(), display);
            assert_eq!(p.azure(), azure);
            assert_eq!(p.lower(), lower);
        }
        assert_eq!(IpProtocol::TCP.number(), 6);
        assert_eq!(IpProtocol::from(17), IpProtocol::UDP);
        assert_eq!(management_ports_text(), "454-455");
    }
}
