//! Azure VNet flow logs (flowLogVersion 4) as flow records.
//!
//! A blob is `{"records": [...]}`; each record is one NIC (`macAddress`) of
//! one target (`targetResourceID`, the VNet) for about a minute, holding
//! `flowRecords.flows[].flowGroups[].flowTuples`: per ACL (NSG or Virtual
//! Network Manager admin rules), per rule, strings of 13 fields:
//!
//! `time_ms,src,dst,src_port,dst_port,protocol,I|O,B|C|E|D,encryption,packets_sent,bytes_sent,packets_received,bytes_received`
//!
//! Each tuple becomes one record: `packets`/`bytes` are the source-to-
//! destination counters (since the flow's previous tuple), the received
//! ones go to `reverse_packets`/`reverse_bytes`; the state goes to
//! `flow_state`, the rule to `nsg_rule`, the ACL's `aclID` (the NSG or
//! Virtual Network Manager admin configuration that decided) to `acl_id`,
//! the encryption status to `encryption`. `D` is `nsg_decision = deny`,
//! except for a flow dropped by virtual network encryption: Azure writes
//! its rule and `aclID` as `unspecified` (and the encryption status says
//! why, e.g. `NX_NOT_ACCEPTED`); no NSG decided, so `nsg_decision` stays
//! null ([`crate::flow::Origin::dropped_unencrypted`]). `end_reason` is the
//! nearest IPFIX value: `B` and `C` are interim reports of a flow that goes
//! on (`active-timeout`), `E` and `D` end it (`end-of-flow`).
//!
//! Times are milliseconds since the epoch; a tuple in seconds (the docs'
//! bandwidth example has them) is read as seconds and counted in the
//! summary's notes.

use std::{ops::ControlFlow, sync::Arc};

use serde::{Deserialize, de::IgnoredAny};

use super::{
    Interner, Kind, Summary,
    flow_log::{
        BlobText, Parsed, Shape, Text, TimeUnit, addresses, base_record, blob_problem, counter,
        field, for_each_record, ports, resource_name, tuple_time,
    },
};
use crate::flow::{
    Direction, EndReason, FlowRecord, FlowState, NsgDecision, ObservationPoint, Origin, Source,
};

/// The rule and `aclID` Azure writes for a flow dropped by encryption.
const UNSPECIFIED: &str = "unspecified";

#[derive(Deserialize)]
struct Record<'a> {
    #[serde(borrow)]
    category: Option<Text<'a>>,
    #[serde(rename = "flowLogVersion")]
    version: Option<u32>,
    #[serde(rename = "macAddress", borrow)]
    mac: Option<Text<'a>>,
    #[serde(rename = "targetResourceID", borrow)]
    target: Option<Text<'a>>,
    #[serde(rename = "flowRecords", borrow)]
    flow_records: Option<FlowRecords<'a>>,
    /// An NSG flow log record's tuples: only their presence is looked at.
    properties: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct FlowRecords<'a> {
    #[serde(borrow, default)]
    flows: Vec<AclFlows<'a>>,
}

#[derive(Deserialize)]
struct AclFlows<'a> {
    #[serde(rename = "aclID", borrow)]
    acl: Option<Text<'a>>,
    #[serde(rename = "flowGroups", borrow, default)]
    groups: Vec<FlowGroup<'a>>,
}

#[derive(Deserialize)]
struct FlowGroup<'a> {
    #[serde(borrow)]
    rule: Option<Text<'a>>,
    #[serde(rename = "flowTuples", borrow, default)]
    tuples: Vec<Text<'a>>,
}

/// Who decided a group of tuples: the ACL and the rule, as Azure names them.
#[derive(Clone, Debug, Default)]
pub struct Decider {
    pub acl_id: Option<Arc<str>>,
    pub rule: Option<Arc<str>>,
}

impl Decider {
    /// Azure's mark of a flow dropped by virtual network encryption.
    fn is_encryption(&self) -> bool {
        self.rule.as_deref() == Some(UNSPECIFIED) || self.acl_id.as_deref() == Some(UNSPECIFIED)
    }
}

/// Reads one blob; records go to `emit`, bad tuples and a bad blob to
/// `summary`. A blob of NSG flow log records stops at its first record
/// ([`Summary::other_kind`]).
pub fn read_blob(
    blob: &mut BlobText<'_>,
    summary: &mut Summary,
    interner: &mut Interner,
    emit: &mut dyn FnMut(FlowRecord),
) {
    summary.files += 1;
    let text = blob.text;
    let result = for_each_record(text, |index, record: Record<'_>| {
        let shape = Shape::of(
            record.category.as_deref(),
            record.flow_records.is_some() || record.version.is_some(),
            record.properties.is_some(),
        );
        if shape != Shape::Vnet {
            return blob.wrong_record(summary, index, shape, Kind::AzureVnetFlowLog);
        }
        if let Some(version) = record.version
            && version != 4
        {
            // Version 4 is the documented one; older previews used the same tuple.
            tracing::debug!(
                file = blob.file,
                index,
                version,
                "VNet flow log record version"
            );
        }
        let point = ObservationPoint {
            host: interner.get(record.target.as_deref().map_or("vnet", resource_name)),
            netns: None,
            iface: interner.get(record.mac.as_deref().unwrap_or("unknown")),
            iface_role: None,
        };
        let Some(flows) = record.flow_records else {
            return ControlFlow::Continue(());
        };
        for (f, acl) in flows.flows.iter().enumerate() {
            let acl_id = acl.acl.as_deref().map(|a| interner.get(a));
            for (g, group) in acl.groups.iter().enumerate() {
                let decider = Decider {
                    acl_id: acl_id.clone(),
                    rule: group.rule.as_deref().map(|r| interner.get(r)),
                };
                for (t, tuple) in group.tuples.iter().enumerate() {
                    blob.tuple(
                        summary,
                        tuple_record(tuple, &point, &decider, interner),
                        tuple,
                        || format!("records[{index}].flowRecords.flows[{f}].flowGroups[{g}].flowTuples[{t}]"),
                        emit,
                    );
                }
            }
        }
        ControlFlow::Continue(())
    });
    if let Err(error) = result {
        summary.broken_files += 1;
        summary.problem(blob_problem(blob.file, &error));
    }
}

/// One tuple as a record.
pub fn tuple_record(
    tuple: &str,
    point: &ObservationPoint,
    decider: &Decider,
    interner: &mut Interner,
) -> Result<Parsed, String> {
    let mut fields = [""; 13];
    let mut n = 0;
    // Fields are short: a byte loop beats a searcher per field.
    let mut start = 0;
    for (i, byte) in tuple.bytes().chain([b',']).enumerate() {
        if byte == b',' {
            if n == fields.len() {
                return Err("more than 13 fields".into());
            }
            fields[n] = &tuple[start..i];
            n += 1;
            start = i + 1;
        }
    }
    if n != 13 {
        return Err(format!(
            "{n} field(s), expected 13 (time,src,dst,sport,dport,protocol,I/O,state,encryption,4 counters)"
        ));
    }
    let [
        time,
        src,
        dst,
        sport,
        dport,
        protocol,
        direction,
        state,
        encryption,
        packets,
        bytes,
        rpackets,
        rbytes,
    ] = fields;
    let (start_ns, note) = tuple_time(time, TimeUnit::Millis)?;
    let (src, dst, version) = addresses(src, dst)?;
    let protocol: u8 = field(protocol, "protocol number")?;
    let (src_port, dst_port) = ports(
        protocol,
        field(sport, "source port")?,
        field(dport, "destination port")?,
    );
    let direction = match direction {
        "I" => Direction::Ingress,
        "O" => Direction::Egress,
        other => return Err(format!("direction `{other}` is not I or O")),
    };
    let state = match state {
        "B" => FlowState::Begin,
        "C" => FlowState::Continuing,
        "E" => FlowState::End,
        "D" => FlowState::Denied,
        other => return Err(format!("flow state `{other}` is not B, C, E or D")),
    };
    if encryption.is_empty() {
        return Err("empty encryption status (X, NX or NX_...)".into());
    }
    let mut record = base_record(start_ns, src, dst, version, protocol);
    record.point = point.clone();
    record.direction = direction;
    record.src_port = src_port;
    record.dst_port = dst_port;
    record.packets = counter(packets, "packets sent")?;
    record.bytes = counter(bytes, "bytes sent")?;
    record.end_reason = match state {
        FlowState::Begin | FlowState::Continuing => EndReason::ActiveTimeout,
        FlowState::End | FlowState::Denied => EndReason::EndOfFlow,
    };
    record.origin = Origin {
        source: Source::AzureVnetFlowLog,
        reverse_packets: Some(counter(rpackets, "packets received")?),
        reverse_bytes: Some(counter(rbytes, "bytes received")?),
        flow_state: Some(state),
        nsg_rule: decider.rule.clone(),
        nsg_decision: match state {
            // Dropped by encryption: no NSG decided.
            FlowState::Denied if decider.is_encryption() => None,
            FlowState::Denied => Some(NsgDecision::Deny),
            _ => Some(NsgDecision::Allow),
        },
        encryption: Some(interner.get(encryption)),
        direction_basis: None,
        acl_id: decider.acl_id.clone(),
    };
    Ok(Parsed { record, note })
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::import::{Window, flow_log::line_column};

    /// A blob in the documented shape: B, C, E and D tuples, IPv4 and IPv6,
    /// one corrupt tuple (a bad address) among them.
    const BLOB: &str = r#"{
  "records": [
    {
      "time": "2024-05-01T13:00:52.5625085Z",
      "flowLogVersion": 4,
      "flowLogGUID": "abcdef01-2345-6789-0abc-def012345678",
      "macAddress": "00224871C205",
      "category": "FlowLogFlowEvent",
      "flowLogResourceID": "/SUBSCRIPTIONS/0000/RESOURCEGROUPS/NETWORKWATCHERRG/PROVIDERS/MICROSOFT.NETWORK/NETWORKWATCHERS/NW/FLOWLOGS/VNETFLOWLOG",
      "targetResourceID": "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/ase-vnet",
      "operationName": "FlowLogFlowEvent",
      "flowRecords": {
        "flows": [
          {
            "aclID": "00000000-1234-abcd-ef00-c1c2c3c4c5c6",
            "flowGroups": [
              {
                "rule": "DefaultRule_AllowInternetOutBound",
                "flowTuples": [
                  "1714568403599,10.0.0.6,52.239.184.180,23956,443,6,O,B,NX,,,,",
                  "1714568403606,10.0.0.6,52.239.184.180,23956,443,6,O,C,NX,1021,588096,8005,4610880",
                  "1714568403706,10.0.0.6,52.239.184.180,23956,443,6,O,E,NX,52,29952,47,27072",
                  "1714568404000,fd00::6,2001:db8::10,40000,53,17,O,E,X,2,150,2,300",
                  "1714568404100,10.0.0.6,999.1.1.1,40001,443,6,O,E,NX,1,60,1,60"
                ]
              }
            ]
          },
          {
            "aclID": "01020304-abcd-ef00-1234-102030405060",
            "flowGroups": [
              {
                "rule": "BlockHighRiskTCPPortsFromInternet",
                "flowTuples": [
                  "1714568398065,101.33.218.153,10.0.0.6,55188,22,6,I,D,NX,0,0,0,0"
                ]
              }
            ]
          }
        ]
      }
    }
  ]
}"#;

    fn read(text: &str) -> (Vec<FlowRecord>, Summary) {
        let mut summary = Summary::default();
        let mut records = Vec::new();
        let mut blob = BlobText::new("PT1H.json", text.as_bytes(), Window::default());
        read_blob(
            &mut blob,
            &mut summary,
            &mut Interner::default(),
            &mut |r| records.push(r),
        );
        (records, summary)
    }

    #[test]
    fn tuples_become_records_with_the_counts_they_say() {
        let (records, summary) = read(BLOB);
        assert_eq!((summary.records_in, summary.records_out), (6, 5));
        assert_eq!(summary.skipped["malformed tuple"], 1);
        let problem = &summary.problems[0];
        assert_eq!(problem.file, "PT1H.json");
        assert!(
            problem
                .position
                .starts_with("24:20 (records[0].flowRecords.flows[0].flowGroups[0].flowTuples[4])"),
            "{problem}"
        );
        assert!(problem.message.contains("999.1.1.1"), "{problem}");

        let packets: u64 = records.iter().map(|r| r.packets).sum();
        let bytes: u64 = records.iter().map(|r| r.bytes).sum();
        let rpackets: u64 = records
            .iter()
            .filter_map(|r| r.origin.reverse_packets)
            .sum();
        let rbytes: u64 = records.iter().filter_map(|r| r.origin.reverse_bytes).sum();
        assert_eq!((packets, bytes), (1021 + 52 + 2, 588_096 + 29_952 + 150));
        assert_eq!(
            (rpackets, rbytes),
            (8005 + 47 + 2, 4_610_880 + 27_072 + 300)
        );

        let states: Vec<_> = records
            .iter()
            .map(|r| r.origin.flow_state.unwrap())
            .collect();
        assert_eq!(
            states,
            [
                FlowState::Begin,
                FlowState::Continuing,
                FlowState::End,
                FlowState::End,
                FlowState::Denied
            ]
        );
        let begin = &records[0];
        assert_eq!(begin.start_ns, 1_714_568_403_599_000_000);
        assert_eq!(begin.direction, Direction::Egress);
        assert_eq!((begin.src_port, begin.dst_port), (Some(23956), Some(443)));
        assert_eq!(&*begin.point.iface, "00224871C205");
        assert_eq!(&*begin.point.host, "ase-vnet");
        assert_eq!(begin.origin.source, Source::AzureVnetFlowLog);
        assert_eq!(
            begin.origin.nsg_rule.as_deref(),
            Some("DefaultRule_AllowInternetOutBound")
        );
        let v6 = &records[3];
        assert_eq!(v6.ip_version, 6);
        assert_eq!(v6.dst_addr, "2001:db8::10".parse::<IpAddr>().unwrap());
        assert_eq!(v6.origin.encryption.as_deref(), Some("X"));
        let denied = &records[4];
        assert_eq!(denied.origin.nsg_decision, Some(NsgDecision::Deny));
        assert_eq!(denied.direction, Direction::Ingress);
        assert_eq!(records[2].origin.nsg_decision, Some(NsgDecision::Allow));
    }

    #[test]
    fn a_truncated_blob_keeps_what_came_before_and_says_where_it_ends() {
        let mut two = BLOB.replacen("  ]\n}", "", 1);
        two.push_str(
            r#",
    { "macAddress": "00224871C206", "flowRecords": { "flows": [ { "flowGroups": [ {
        "rule": "r", "flowTuples": [ "1714568405000,10.0.0.7,10.0.1.4,1,2,6,O,E,NX,1,2,3,4"
    ] } ] } ] } }
  ]
}"#,
        );
        let (all, _) = read(&two);
        assert_eq!(all.len(), 6);
        // Cut inside the second record.
        let cut = &two[..two.find("1714568405000").unwrap() + 5];
        let (records, summary) = read(cut);
        assert_eq!(records.len(), 5, "the first record converted");
        assert_eq!(summary.broken_files, 1);
        let problem = summary.problems.last().unwrap();
        assert!(problem.message.contains("truncated"), "{problem}");
        let (line, column) = line_column(cut.as_bytes(), cut.len() - 1);
        assert_eq!(problem.position, format!("{line}:{column}"), "{problem}");
    }

    #[test]
    fn denied_tuples_are_denied_by_nsg_and_the_rest_classified_as_captured() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../lab/topologies/default.toml");
        let topology = crate::topology::Topology::load(&path).unwrap();
        let catalog = crate::catalog::Catalog::load(topology.cloud, &[]).unwrap();
        let classifier = crate::classify::Classifier::new(&topology, &catalog);
        let (mut records, _) = read(BLOB);
        // The same flow as a capture would record it (no flow-log columns).
        let mut captured: Vec<FlowRecord> = records
            .iter()
            .map(|r| FlowRecord {
                origin: Origin::default(),
                ..r.clone()
            })
            .collect();
        classifier.classify_all(&mut records);
        classifier.classify_all(&mut captured);
        for (imported, live) in records.iter().zip(&captured) {
            if imported.origin.nsg_decision == Some(NsgDecision::Deny) {
                assert_eq!(imported.verdict.as_deref(), Some("denied-by-nsg"));
                let reason = imported.reason.as_deref().unwrap();
                assert!(
                    reason.contains("BlockHighRiskTCPPortsFromInternet"),
                    "{reason}"
                );
            } else {
                assert_eq!(
                    (&imported.verdict, &imported.reason, &imported.category),
                    (&live.verdict, &live.reason, &live.category)
                );
            }
        }
    }

    #[test]
    fn bad_fields_are_named() {
        let point = ObservationPoint::default();
        let err = |t: &str| {
            tuple_record(t, &point, &Decider::default(), &mut Interner::default()).unwrap_err()
        };
        assert!(err("1,10.0.0.1,10.0.0.2,1,2,6,X,E,NX,1,1,1,1").contains("direction `X`"));
        assert!(err("1,10.0.0.1,10.0.0.2,1,2,6,O,Q,NX,1,1,1,1").contains("flow state `Q`"));
        assert!(err("1,10.0.0.1,fd00::1,1,2,6,O,E,NX,1,1,1,1").contains("different IP versions"));
        assert!(err("1,10.0.0.1,10.0.0.2,1,2,6,O,E").contains("8 field(s)"));
        assert!(err("1,10.0.0.1,10.0.0.2,1,2,6,O,E,NX,x,1,1,1").contains("packets sent `x`"));
    }

    /// The sample of Azure's documentation (testdata/flow-logs/README.md).
    const DOCS_SAMPLE: &str =
        include_str!("../../testdata/flow-logs/vnet-flow-log-docs-sample.json");

    #[test]
    fn the_documented_sample_converts_whole() {
        let (records, summary) = read(DOCS_SAMPLE);
        assert_eq!((summary.records_in, summary.records_out), (19, 19));
        assert_eq!(summary.problem_count, 0);
        assert_eq!(
            records.iter().map(|r| r.bytes).sum::<u64>(),
            767 + 705 + 705 + 134 + 2217
        );
        assert_eq!(
            records
                .iter()
                .filter_map(|r| r.origin.reverse_bytes)
                .sum::<u64>(),
            1580 + 4569 + 4569 + 108 + 32466
        );
        let acls: Vec<_> = records
            .iter()
            .map(|r| r.origin.acl_id.as_deref().unwrap())
            .collect();
        assert_eq!(acls[..10], ["00000000-1234-abcd-ef00-c1c2c3c4c5c6"; 10]);
        assert_eq!(acls[10..], ["01020304-abcd-ef00-1234-102030405060"; 9]);
        let denied = records
            .iter()
            .filter(|r| r.origin.nsg_decision == Some(NsgDecision::Deny))
            .count();
        assert_eq!(denied, 9);
        assert!(records.iter().all(|r| !r.origin.dropped_unencrypted()));
        // Logged at 09:00:52, it holds tuples of the minute before 09:00.
        let at = |t: &str| crate::import::parse_time(t).unwrap();
        let first = records.iter().map(|r| r.start_ns).min().unwrap();
        let last = records.iter().map(|r| r.start_ns).max().unwrap();
        assert!(first >= at("2022-09-14T08:59:49Z") && first < at("2022-09-14T09"));
        assert!(last < at("2022-09-14T09:00:23Z"));
    }

    #[test]
    fn an_nsg_flow_log_is_named_as_one_and_not_read() {
        let nsg = include_str!("../../testdata/flow-logs/nsg-flow-log-v2-docs-sample.json");
        let (records, summary) = read(nsg);
        assert!(records.is_empty());
        let other = summary
            .other_kind
            .as_ref()
            .expect("named as the other kind");
        assert_eq!(other.kind, Kind::AzureNsgFlowLog);
        let message = other.to_string();
        assert!(
            message.contains("NetworkSecurityGroupFlowEvent")
                && message.contains("`observer import azure-nsg-flow-log ...`"),
            "{message}"
        );
        assert_eq!(summary.exit_status(), 2);
        // Without a category, the tuples' container says it.
        let bare = nsg.replace(r#""category": "NetworkSecurityGroupFlowEvent","#, "");
        let (_, summary) = read(&bare);
        assert_eq!(
            summary.other_kind.map(|o| o.kind),
            Some(Kind::AzureNsgFlowLog)
        );
    }

    #[test]
    fn a_record_of_no_known_shape_is_reported_not_dropped() {
        let text = DOCS_SAMPLE.replacen(
            "    ]\n}",
            r#"    , {"category": "Administrative", "operationName": "x"}]
}"#,
            1,
        );
        let (records, summary) = read(&text);
        assert_eq!(records.len(), 19);
        assert_eq!(summary.other_kind, None);
        assert_eq!(summary.problems.len(), 1);
        assert!(
            summary.problems[0].position == "records[1]"
                && summary.problems[0]
                    .message
                    .contains("not a flow-log record"),
            "{:?}",
            summary.problems
        );
    }

    #[test]
    fn encryption_drops_are_not_nsg_denies() {
        // The overview: denied because of encryption, aclID and rule are `unspecified`.
        let blob = r#"{"records": [{"category": "FlowLogFlowEvent", "flowLogVersion": 4,
            "macAddress": "00224871C205", "flowRecords": {"flows": [
            {"aclID": "unspecified", "flowGroups": [{"rule": "unspecified", "flowTuples": [
                "1663146003599,10.0.0.6,10.0.1.4,23956,443,6,O,D,NX_NOT_ACCEPTED,0,0,0,0"]}]},
            {"aclID": "nsg-1", "flowGroups": [{"rule": "DenyAll", "flowTuples": [
                "1663146003599,10.0.0.6,10.0.1.4,23957,443,6,O,D,NX,0,0,0,0"]}]}]}}]}"#;
        let (records, _) = read(blob);
        let [dropped, denied] = &records[..] else {
            panic!("{records:?}")
        };
        assert!(dropped.origin.dropped_unencrypted());
        assert_eq!(dropped.origin.nsg_decision, None);
        assert_eq!(dropped.origin.flow_state, Some(FlowState::Denied));
        assert_eq!(
            dropped.origin.encryption.as_deref(),
            Some("NX_NOT_ACCEPTED")
        );
        assert_eq!(dropped.origin.acl_id.as_deref(), Some("unspecified"));
        assert!(!denied.origin.dropped_unencrypted());
        assert_eq!(denied.origin.nsg_decision, Some(NsgDecision::Deny));
        assert_eq!(denied.origin.acl_id.as_deref(), Some("nsg-1"));
    }

    #[test]
    fn encryption_drops_get_their_own_verdict_with_their_cause() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../lab/topologies/default.toml");
        let topology = crate::topology::Topology::load(&path).unwrap();
        let catalog = crate::catalog::Catalog::load(topology.cloud, &[]).unwrap();
        let classifier = crate::classify::Classifier::new(&topology, &catalog);
        let group = |acl: &str, rule: &str, tuple: &str| {
            format!(
                r#"{{"aclID": "{acl}", "flowGroups": [{{"rule": "{rule}", "flowTuples": ["{tuple}"]}}]}}"#
            )
        };
        let blob = format!(
            r#"{{"records": [{{"category": "FlowLogFlowEvent", "flowRecords": {{"flows": [{}, {}, {}]}}}}]}}"#,
            group(
                "unspecified",
                "unspecified",
                "1663146003599,10.0.0.6,10.0.1.4,23956,1433,6,O,D,NX_NOT_ACCEPTED,0,0,0,0"
            ),
            group(
                "unspecified",
                "unspecified",
                "1663146003599,10.0.0.6,10.0.1.4,23956,1433,6,O,D,NX_SW_NOT_READY,0,0,0,0"
            ),
            group(
                "nsg",
                "DenyAll",
                "1663146003599,10.0.0.6,10.0.1.4,23956,1433,6,O,D,NX,0,0,0,0"
            ),
        );
        let (mut records, _) = read(&blob);
        classifier.classify_all(&mut records);
        let verdicts: Vec<_> = records.iter().map(|r| r.verdict.as_deref()).collect();
        assert_eq!(
            verdicts,
            [
                Some("dropped-unencrypted"),
                Some("dropped-unencrypted"),
                Some("denied-by-nsg")
            ]
        );
        let reason = |i: usize| records[i].reason.as_deref().unwrap();
        assert!(
            reason(0).contains(
                "NX_NOT_ACCEPTED: encryption is configured with a drop-unencrypted policy"
            ) && reason(0).contains("not by an NSG"),
            "{}",
            reason(0)
        );
        // Same flow, another status: its own reason, not a memoised one.
        assert!(reason(1).contains("NX_SW_NOT_READY"), "{}", reason(1));
        assert!(!reason(0).contains("differ from what is deployed"));
    }

    #[test]
    fn encryption_drop_causes_follow_the_documented_statuses() {
        assert!(
            crate::flow::Origin::encryption_drop_cause("NX_NOT_ACCEPTED")
                .contains("drop-unencrypted policy")
        );
        assert!(
            crate::flow::Origin::encryption_drop_cause("NX_SW_NOT_READY").contains("not ready")
        );
        assert!(crate::flow::Origin::encryption_drop_cause("NX").contains("unspecified"));
    }

    #[test]
    fn tuples_in_seconds_are_read_as_seconds_and_counted() {
        // The overview's bandwidth example: 10-digit times.
        let blob = r#"{"records": [{"flowLogVersion": 4, "flowRecords": {"flows": [
            {"aclID": "a", "flowGroups": [{"rule": "r", "flowTuples": [
                "1493763938,185.170.185.105,10.2.0.4,35370,23,6,I,B,NX,,,,",
                "1493695838,185.170.185.105,10.2.0.4,35370,23,6,I,C,NX,1021,588096,8005,4610880",
                "1493696138,185.170.185.105,10.2.0.4,35370,23,6,I,E,NX,52,29952,47,27072",
                "1663146003599,10.0.0.6,52.239.184.180,23956,443,6,O,B,NX,0,0,0,0"]}]}]}}]}"#;
        let (records, summary) = read(blob);
        assert_eq!(records.len(), 4);
        assert_eq!(records[0].start_ns, 1_493_763_938_000_000_000);
        assert_eq!(records[3].start_ns, 1_663_146_003_599_000_000);
        assert_eq!(summary.notes[crate::import::flow_log::NOTE_VNET_SECONDS], 3);
        // The docs' total: 9,125 packets, 5,256,000 bytes.
        let packets: u64 = records
            .iter()
            .map(|r| r.packets + r.origin.reverse_packets.unwrap())
            .sum();
        let bytes: u64 = records
            .iter()
            .map(|r| r.bytes + r.origin.reverse_bytes.unwrap())
            .sum();
        assert_eq!((packets, bytes), (9125, 5_256_000));
        assert!(
            summary
                .render()
                .contains("note 3: VNet tuple time(s) in seconds")
        );
    }

    #[test]
    fn many_bad_tuples_are_located_in_one_pass() {
        let bad: Vec<String> = (0..5000)
            .map(|i| {
                format!(
                    "        \"1663146003599,10.0.0.6,999.0.0.{},1,2,6,O,E,NX,1,1,1,1\"",
                    i % 256
                )
            })
            .collect();
        let text = format!(
            "{{\"records\": [{{\"flowLogVersion\": 4, \"flowRecords\": {{\"flows\": [{{\"flowGroups\": [{{\"flowTuples\": [\n{}\n]}}]}}]}}}}]}}",
            bad.join(",\n")
        );
        let (records, summary) = read(&text);
        assert!(records.is_empty());
        assert_eq!(summary.problem_count, 5000);
        assert_eq!(summary.skipped["malformed tuple"], 5000);
        assert_eq!(summary.problems.len(), crate::import::PROBLEMS_KEPT);
        for (i, problem) in summary.problems.iter().enumerate() {
            // Tuple i is on line i + 2, its text after 8 spaces and a quote.
            assert!(
                problem.position.starts_with(&format!("{}:10 (", i + 2)),
                "{problem}"
            );
        }
        assert_eq!(summary.exit_status(), 2, "nothing converted");
    }
}
