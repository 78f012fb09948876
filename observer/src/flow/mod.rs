//! Flow records: one row per flow, per observation point, per interval,
//! with the vocabulary of IPFIX (`packets`/`bytes`, `flowEndReason`) and room
//! for the classification and DNS columns filled in by later stages.

pub(crate) mod clock;
pub(crate) mod table;

use std::{collections::HashMap, fmt, net::IpAddr, sync::Arc};

use observer_common::{FlowKey, FlowStats};

pub use self::table::TableConfig;
pub(crate) use self::{
    clock::WallClock,
    table::{Ended, FlowTable},
};
use crate::{protocol::IpProtocol, vocabulary::Vocabulary};

/// Where a packet was seen relative to the interface.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantNames,
    strum::VariantArray,
)]
#[strum(
    serialize_all = "kebab-case",
    parse_err_ty = String,
    parse_err_fn = crate::vocabulary::unknown::<Self>
)]
pub enum Direction {
    #[default]
    Ingress,
    Egress,
}

impl Direction {
    pub(crate) fn as_str(self) -> &'static str {
        self.into()
    }
}

impl Vocabulary for Direction {
    const WHAT: &'static str = "direction";
}

/// Why a record was closed: the IPFIX `flowEndReason` values, declared in
/// code order (code = position + 1).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantNames,
    strum::VariantArray,
)]
#[strum(
    serialize_all = "kebab-case",
    parse_err_ty = String,
    parse_err_fn = crate::vocabulary::unknown::<Self>
)]
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
    pub(crate) fn as_str(self) -> &'static str {
        self.into()
    }
}

impl Vocabulary for EndReason {
    const WHAT: &'static str = "end reason";
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
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantNames,
    strum::VariantArray,
)]
#[strum(
    serialize_all = "kebab-case",
    parse_err_ty = String,
    parse_err_fn = crate::vocabulary::unknown::<Self>
)]
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
    pub(crate) fn as_str(self) -> &'static str {
        self.into()
    }
}

impl Vocabulary for Source {
    const WHAT: &'static str = "source";
}

/// The state an Azure flow log gives a tuple (`flow_state`).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantNames,
    strum::VariantArray,
)]
#[strum(
    serialize_all = "kebab-case",
    parse_err_ty = String,
    parse_err_fn = crate::vocabulary::unknown::<Self>
)]
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
    pub(crate) fn as_str(self) -> &'static str {
        self.into()
    }
}

impl Vocabulary for FlowState {
    const WHAT: &'static str = "flow state";
}

/// What the NSG (or Virtual Network Manager admin rule) decided (`nsg_decision`).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantNames,
    strum::VariantArray,
)]
#[strum(
    serialize_all = "kebab-case",
    parse_err_ty = String,
    parse_err_fn = crate::vocabulary::unknown::<Self>
)]
pub enum NsgDecision {
    Allow,
    Deny,
}

impl NsgDecision {
    pub(crate) fn as_str(self) -> &'static str {
        self.into()
    }
}

impl Vocabulary for NsgDecision {
    const WHAT: &'static str = "NSG decision";
}

/// How an imported packet capture decided a record's direction
/// (`direction_basis`); null for the observer's own capture (the hook knows
/// which way a packet goes) and for flow logs (the log says).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantNames,
    strum::VariantArray,
)]
#[strum(
    serialize_all = "kebab-case",
    parse_err_ty = String,
    parse_err_fn = crate::vocabulary::unknown::<Self>
)]
pub enum DirectionBasis {
    /// The file records it: pcapng's `epb_flags`, or the packet type of a
    /// Linux cooked header (`tcpdump -i any`).
    Capture,
    /// `--local`: a packet from one of the captured host's addresses or
    /// MACs is egress.
    Local,
    /// `--topology`: the side in the ASE's subnet (or VNet) is local.
    Topology,
    /// Nothing else said: the side that opened the connection (SYN, ICMP
    /// request, or the first packet seen) is the client, taken as the
    /// captured host.
    Initiator,
}

impl DirectionBasis {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl Vocabulary for DirectionBasis {
    const WHAT: &'static str = "direction basis";
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
    /// How a packet capture's direction was decided.
    pub direction_basis: Option<DirectionBasis>,
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

    /// Why virtual network encryption dropped a flow, by the encryption
    /// status Azure documents for the VNet flow log.
    pub fn encryption_drop_cause(status: &str) -> &'static str {
        match status {
            "NX_NOT_ACCEPTED" => {
                "encryption is configured with a drop-unencrypted policy on both ends and the connection could not be encrypted"
            }
            "NX_SW_NOT_READY" => {
                "the host's networking software was not ready to encrypt (a VM starting, restarting or redeployed, or a host update); it should pass, else report it to Microsoft"
            }
            "NX_NOT_SUPPORTED" => {
                "the host's networking stack does not support encryption discovery; report it to Microsoft"
            }
            "NX_HW_NOT_SUPPORTED" => {
                "the VM runs on a host without encryption hardware (FPGA); report it to Microsoft"
            }
            _ => "Azure logged no NSG or admin rule for it (rule and aclID `unspecified`)",
        }
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
    pub(crate) fn get(&mut self, value: &str) -> Arc<str> {
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
    pub(crate) fn from_kernel(
        key: &FlowKey,
        stats: &FlowStats,
        end_reason: EndReason,
        point: ObservationPoint,
        clock: &WallClock,
    ) -> Self {
        let (src_port, dst_port, icmp_type, icmp_code) = match IpProtocol(key.protocol) {
            IpProtocol::ICMP | IpProtocol::ICMPV6 => (
                None,
                None,
                Some(key.src_port as u8),
                Some(key.dst_port as u8),
            ),
            // Ports 0/0 mark packets without a transport header (non-first fragments).
            IpProtocol::TCP | IpProtocol::UDP if key.src_port != 0 || key.dst_port != 0 => {
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
    use strum::VariantArray;

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
    fn end_reasons_are_declared_in_ipfix_code_order() {
        // RFC 7011 / IANA IPFIX registry: flowEndReason 1 to 5.
        let codes: Vec<u8> = EndReason::VARIANTS.iter().map(|&r| r as u8 + 1).collect();
        assert_eq!(codes, [1, 2, 3, 4, 5]);
        assert_eq!(EndReason::IdleTimeout as u8 + 1, 1);
        assert_eq!(EndReason::LackOfResources as u8 + 1, 5);
    }

    /// Every variant's column text, in declaration order, parsed back.
    fn names_of<T>(expected: &[&str])
    where
        T: VariantArray + Copy + PartialEq + fmt::Debug + Into<&'static str>,
        T: std::str::FromStr<Err = String>,
    {
        let names: Vec<&str> = T::VARIANTS.iter().map(|&v| v.into()).collect();
        assert_eq!(names, expected);
        for &v in T::VARIANTS {
            assert_eq!(v.into().parse::<T>(), Ok(v));
        }
    }

    #[test]
    fn column_names_are_unchanged_and_parse_back() {
        names_of::<Direction>(&["ingress", "egress"]);
        names_of::<EndReason>(&[
            "idle-timeout",
            "active-timeout",
            "end-of-flow",
            "forced-end",
            "lack-of-resources",
        ]);
        names_of::<Source>(&[
            "observer",
            "azure-vnet-flow-log",
            "azure-nsg-flow-log",
            "pcap",
        ]);
        names_of::<FlowState>(&["begin", "continuing", "end", "denied"]);
        names_of::<NsgDecision>(&["allow", "deny"]);
        assert_eq!(EndReason::ForcedEnd.to_string(), "forced-end");
    }

    #[test]
    fn unknown_names_list_the_valid_ones() {
        assert_eq!(
            "out".parse::<Direction>().unwrap_err(),
            "unknown direction `out` (ingress or egress)"
        );
        assert_eq!(
            "done".parse::<EndReason>().unwrap_err(),
            "unknown end reason `done` (idle-timeout, active-timeout, end-of-flow, forced-end or lack-of-resources)"
        );
        assert_eq!(
            "x".parse::<Source>().unwrap_err(),
            "unknown source `x` (observer, azure-vnet-flow-log, azure-nsg-flow-log or pcap)"
        );
        assert_eq!(
            "B".parse::<FlowState>().unwrap_err(),
            "unknown flow state `B` (begin, continuing, end or denied)"
        );
        assert_eq!(
            "Deny".parse::<NsgDecision>().unwrap_err(),
            "unknown NSG decision `Deny` (allow or deny)"
        );
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
            &key(IpProtocol::TCP.number(), 40000, 1433),
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
            &key(IpProtocol::ICMP.number(), 8, 0),
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
            &key(IpProtocol::UDP.number(), 0, 0),
            &stats,
            EndReason::IdleTimeout,
            point(),
            &clock,
        );
        assert_eq!((fragment.src_port, fragment.dst_port), (None, None));
    }
}
