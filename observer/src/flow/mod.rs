//! Flow records: one row per flow, per observation point, per interval,
//! with the vocabulary of IPFIX (`packets`/`bytes`, `flowEndReason`) and room
//! for the classification and DNS columns filled in by later stages.

pub mod clock;
pub mod table;

use std::{collections::HashMap, fmt, net::IpAddr, str::FromStr, sync::Arc};

use observer_common::{FlowKey, FlowStats, proto};

pub use self::{
    clock::WallClock,
    table::{Ended, FlowTable, TableConfig},
};

/// Where a packet was seen relative to the interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Direction {
    #[default]
    Ingress,
    Egress,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ingress => "ingress",
            Self::Egress => "egress",
        }
    }
}

impl FromStr for Direction {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ingress" => Ok(Self::Ingress),
            "egress" => Ok(Self::Egress),
            other => Err(format!("unknown direction `{other}` (ingress or egress)")),
        }
    }
}

/// Why a record was closed: the IPFIX `flowEndReason` values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// 1: no packet for the idle timeout.
    IdleTimeout,
    /// 2: interim record of a flow older than the active timeout.
    ActiveTimeout,
    /// 3: FIN or RST seen, then the flow went quiet.
    EndOfFlow,
    /// 4: the capture stopped.
    #[default]
    ForcedEnd,
    /// 5: the flow table was full and the flow was ended early.
    LackOfResources,
}

impl EndReason {
    pub const ALL: [Self; 5] = [
        Self::IdleTimeout,
        Self::ActiveTimeout,
        Self::EndOfFlow,
        Self::ForcedEnd,
        Self::LackOfResources,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::IdleTimeout => "idle-timeout",
            Self::ActiveTimeout => "active-timeout",
            Self::EndOfFlow => "end-of-flow",
            Self::ForcedEnd => "forced-end",
            Self::LackOfResources => "lack-of-resources",
        }
    }

    /// The IPFIX `flowEndReason` code (RFC 7011 / IANA IPFIX registry).
    pub fn ipfix_code(self) -> u8 {
        self as u8 + 1
    }
}

impl FromStr for EndReason {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown end reason `{s}`"))
    }
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The observation point a record comes from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObservationPoint {
    pub host: Arc<str>,
    pub netns: Option<Arc<str>>,
    pub iface: Arc<str>,
    pub iface_role: Option<Arc<str>>,
}

/// Where a record's measurements come from (the `source` column).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Source {
    /// The observer's own capture (`observer run`).
    #[default]
    Observer,
    /// An Azure VNet flow log tuple (`observer import azure-vnet-flow-log`).
    AzureVnetFlowLog,
    /// An Azure NSG flow log (version 2) tuple.
    AzureNsgFlowLog,
    /// A packet capture file (pcap or pcapng) turned into flows.
    Pcap,
}

impl Source {
    pub const ALL: [Self; 4] = [
        Self::Observer,
        Self::AzureVnetFlowLog,
        Self::AzureNsgFlowLog,
        Self::Pcap,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Observer => "observer",
            Self::AzureVnetFlowLog => "azure-vnet-flow-log",
            Self::AzureNsgFlowLog => "azure-nsg-flow-log",
            Self::Pcap => "pcap",
        }
    }
}

impl FromStr for Source {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("unknown source `{s}`"))
    }
}

/// The state an Azure flow log gives a tuple (`flow_state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FlowState {
    /// `B`: the flow began; no counters yet.
    Begin,
    /// `C`: the flow goes on; counters since the previous tuple.
    Continuing,
    /// `E`: the flow ended; counters since the previous tuple.
    End,
    /// `D`: the flow was denied (VNet flow logs).
    Denied,
}

impl FlowState {
    pub const ALL: [Self; 4] = [Self::Begin, Self::Continuing, Self::End, Self::Denied];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Begin => "begin",
            Self::Continuing => "continuing",
            Self::End => "end",
            Self::Denied => "denied",
        }
    }
}

impl FromStr for FlowState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("unknown flow state `{s}`"))
    }
}

/// What the NSG (or Virtual Network Manager admin rule) decided (`nsg_decision`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NsgDecision {
    Allow,
    Deny,
}

impl NsgDecision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }
}

impl FromStr for NsgDecision {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "allow" => Ok(Self::Allow),
            "deny" => Ok(Self::Deny),
            other => Err(format!("unknown NSG decision `{other}` (allow or deny)")),
        }
    }
}

/// What an imported source knows beyond the capture columns; all null for
/// the observer's own capture (whose reverse direction is a record of its
/// own). One nested struct, so constructors add a single
/// `origin: Origin::default()` (or `..Default::default()`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origin {
    pub source: Source,
    /// Packets from destination to source, when the source counts both ways.
    pub reverse_packets: Option<u64>,
    pub reverse_bytes: Option<u64>,
    pub flow_state: Option<FlowState>,
    /// The rule that allowed or denied the flow.
    pub nsg_rule: Option<Arc<str>>,
    pub nsg_decision: Option<NsgDecision>,
    /// The VNet encryption status as Azure writes it (`X`, `NX`, `NX_...`).
    pub encryption: Option<Arc<str>>,
    /// The VNet flow log's `aclID`: the NSG or Virtual Network Manager
    /// security admin configuration that decided (`unspecified` for a flow
    /// dropped by encryption).
    pub acl_id: Option<Arc<str>>,
}

impl Origin {
    /// A flow log recorded the flow as denied (`D`) but no NSG decided:
    /// virtual network encryption dropped it (Azure writes rule and
    /// `aclID` as `unspecified`; `encryption` says why, e.g.
    /// `NX_NOT_ACCEPTED`). Decidable from the Parquet columns alone
    /// (`flow_state = denied`, `nsg_decision` null).
    pub fn dropped_unencrypted(&self) -> bool {
        self.flow_state == Some(FlowState::Denied) && self.nsg_decision.is_none()
    }
}

/// Shares repeated strings of records (hosts, interfaces, MAC addresses,
/// rule names, classification text) so rows hold reference counts, not copies.
#[derive(Debug, Default)]
pub struct Interner {
    all: HashMap<Box<str>, Arc<str>>,
    /// The last string returned: consecutive tuples mostly repeat it.
    last: Option<Arc<str>>,
}

impl Interner {
    pub fn get(&mut self, value: &str) -> Arc<str> {
        if let Some(last) = &self.last
            && **last == *value
        {
            return last.clone();
        }
        let shared = match self.all.get(value) {
            Some(shared) => shared.clone(),
            None => {
                let shared: Arc<str> = value.into();
                self.all.insert(value.into(), shared.clone());
                shared
            }
        };
        self.last = Some(shared.clone());
        shared
    }
}

/// One flow record. The first block is what capture measures; the second is
/// filled by DNS enrichment and classification (null when not done); the
/// last says where the record comes from.
#[derive(Clone, Debug, PartialEq)]
pub struct FlowRecord {
    pub start_ns: i64,
    pub end_ns: i64,
    pub point: ObservationPoint,
    pub direction: Direction,
    pub ip_version: u8,
    pub protocol: u8,
    pub src_addr: IpAddr,
    pub dst_addr: IpAddr,
    pub src_port: Option<u16>,
    pub dst_port: Option<u16>,
    pub icmp_type: Option<u8>,
    pub icmp_code: Option<u8>,
    pub vlan_id: Option<u16>,
    pub packets: u64,
    pub bytes: u64,
    pub tcp_flags: u8,
    pub syn_count: u64,
    pub fin_count: u64,
    pub rst_count: u64,
    pub end_reason: EndReason,

    pub dst_name: Option<Arc<str>>,
    pub dns_chain: Option<Vec<String>>,
    pub category: Option<Arc<str>>,
    pub dependency: Option<Arc<str>>,
    pub expected_next_hop: Option<Arc<str>>,
    pub observed_path: Option<Arc<str>>,
    pub flow_type: Option<Arc<str>>,
    pub verdict: Option<Arc<str>>,
    pub reason: Option<Arc<str>>,

    pub origin: Origin,
}

impl Default for FlowRecord {
    /// An empty IPv4 record (addresses 0.0.0.0), for `..Default::default()`.
    fn default() -> Self {
        let unspecified = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
        Self {
            start_ns: 0,
            end_ns: 0,
            point: ObservationPoint::default(),
            direction: Direction::default(),
            ip_version: 4,
            protocol: 0,
            src_addr: unspecified,
            dst_addr: unspecified,
            src_port: None,
            dst_port: None,
            icmp_type: None,
            icmp_code: None,
            vlan_id: None,
            packets: 0,
            bytes: 0,
            tcp_flags: 0,
            syn_count: 0,
            fin_count: 0,
            rst_count: 0,
            end_reason: EndReason::default(),
            dst_name: None,
            dns_chain: None,
            category: None,
            dependency: None,
            expected_next_hop: None,
            observed_path: None,
            flow_type: None,
            verdict: None,
            reason: None,
            origin: Origin::default(),
        }
    }
}

impl FlowRecord {
    /// Builds the record of a kernel flow key and its accumulated counters.
    pub fn from_kernel(
        key: &FlowKey,
        stats: &FlowStats,
        end_reason: EndReason,
        point: ObservationPoint,
        clock: &WallClock,
    ) -> Self {
        let (src_port, dst_port, icmp_type, icmp_code) = match key.protocol {
            proto::ICMP | proto::ICMPV6 => (
                None,
                None,
                Some(key.src_port as u8),
                Some(key.dst_port as u8),
            ),
            // Ports 0/0 mark packets without a transport header (non-first fragments).
            proto::TCP | proto::UDP if key.src_port != 0 || key.dst_port != 0 => {
                (Some(key.src_port), Some(key.dst_port), None, None)
            }
            _ => (None, None, None, None),
        };
        Self {
            start_ns: clock.utc_ns(stats.first_seen_ns),
            end_ns: clock.utc_ns(stats.last_seen_ns),
            point,
            direction: if key.is_egress() {
                Direction::Egress
            } else {
                Direction::Ingress
            },
            ip_version: key.ip_version,
            protocol: key.protocol,
            src_addr: key.src_ip(),
            dst_addr: key.dst_ip(),
            src_port,
            dst_port,
            icmp_type,
            icmp_code,
            vlan_id: (key.vlan_id != 0).then_some(key.vlan_id),
            packets: stats.packets,
            bytes: stats.bytes,
            tcp_flags: stats.tcp_flags as u8,
            syn_count: stats.syn_count,
            fin_count: stats.fin_count,
            rst_count: stats.rst_count,
            end_reason,
            dst_name: None,
            dns_chain: None,
            category: None,
            dependency: None,
            expected_next_hop: None,
            observed_path: None,
            flow_type: None,
            verdict: None,
            reason: None,
            origin: Origin::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use observer_common::{DIRECTION_EGRESS, user::addr_to_bytes};

    use super::*;

    #[test]
    fn interned_strings_are_shared_whatever_came_between() {
        let mut interner = Interner::default();
        let first = interner.get("NX");
        assert!(Arc::ptr_eq(&first, &interner.get("NX")));
        let other = interner.get("X");
        assert_eq!(&*other, "X");
        assert!(Arc::ptr_eq(&first, &interner.get("NX")));
    }

    fn point() -> ObservationPoint {
        ObservationPoint {
            host: "h".into(),
            netns: None,
            iface: "eth0".into(),
            iface_role: Some("internet".into()),
        }
    }

    fn key(protocol: u8, src_port: u16, dst_port: u16) -> FlowKey {
        FlowKey {
            src_addr: addr_to_bytes("10.0.0.4".parse().unwrap()),
            dst_addr: addr_to_bytes("10.0.1.6".parse().unwrap()),
            ifindex: 2,
            src_port,
            dst_port,
            direction: DIRECTION_EGRESS,
            ip_version: 4,
            protocol,
            ..FlowKey::default()
        }
    }

    #[test]
    fn end_reasons_use_ipfix_codes_and_round_trip() {
        assert_eq!(EndReason::IdleTimeout.ipfix_code(), 1);
        assert_eq!(EndReason::LackOfResources.ipfix_code(), 5);
        for reason in EndReason::ALL {
            assert_eq!(reason.as_str().parse::<EndReason>().unwrap(), reason);
        }
    }

    #[test]
    fn ports_icmp_and_fragments_map_to_the_right_columns() {
        let clock = WallClock::new();
        let stats = FlowStats {
            packets: 1,
            bytes: 60,
            ..FlowStats::default()
        };
        let tcp = FlowRecord::from_kernel(
            &key(6, 40000, 1433),
            &stats,
            EndReason::EndOfFlow,
            point(),
            &clock,
        );
        assert_eq!(
            (tcp.src_port, tcp.dst_port, tcp.icmp_type),
            (Some(40000), Some(1433), None)
        );
        assert_eq!(tcp.src_addr.to_string(), "10.0.0.4");
        assert_eq!(tcp.direction, Direction::Egress);
        let icmp = FlowRecord::from_kernel(
            &key(1, 8, 0),
            &stats,
            EndReason::IdleTimeout,
            point(),
            &clock,
        );
        assert_eq!(
            (icmp.src_port, icmp.icmp_type, icmp.icmp_code),
            (None, Some(8), Some(0))
        );
        let fragment = FlowRecord::from_kernel(
            &key(17, 0, 0),
            &stats,
            EndReason::IdleTimeout,
            point(),
            &clock,
        );
        assert_eq!((fragment.src_port, fragment.dst_port), (None, None));
    }
}
