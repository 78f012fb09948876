//! Azure NSG flow logs as flow records: version 2 (and version 1, which has
//! no state or counters).
//!
//! A blob is `{"records": [...]}`; each record is one NSG (`resourceId`) for
//! about a minute, holding `properties.flows[]` per rule, each with
//! `flows[]` per NIC (`mac`) and their `flowTuples`:
//!
//! version 2: `time_s,src,dst,src_port,dst_port,T|U,I|O,A|D,B|C|E,packets_sent,bytes_sent,packets_received,bytes_received`
//! version 1: `time_s,src,dst,src_port,dst_port,T|U,I|O,A|D`
//!
//! The mapping is that of [`super::vnet_flow_log`]: sent counters in
//! `packets`/`bytes`, received ones in `reverse_*`, `A`/`D` in
//! `nsg_decision` (a denied flow's state is `denied`), the rule in
//! `nsg_rule`. NSG flow logs know nothing of encryption or ACL ids
//! (`encryption`, `acl_id` null). Times are seconds since the epoch; a tuple
//! in milliseconds is read as such and counted in the summary's notes.

use std::ops::ControlFlow;

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

#[derive(Deserialize)]
struct Record<'a> {
    #[serde(borrow)]
    category: Option<Text<'a>>,
    #[serde(rename = "resourceId", borrow)]
    resource: Option<Text<'a>>,
    #[serde(borrow)]
    properties: Option<Properties<'a>>,
    /// A VNet flow log record's fields: only their presence is looked at.
    #[serde(rename = "flowRecords")]
    flow_records: Option<IgnoredAny>,
    #[serde(rename = "flowLogVersion")]
    flow_log_version: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct Properties<'a> {
    #[serde(rename = "Version")]
    version: Option<u32>,
    #[serde(borrow, default)]
    flows: Vec<RuleFlows<'a>>,
}

#[derive(Deserialize)]
struct RuleFlows<'a> {
    #[serde(borrow)]
    rule: Option<Text<'a>>,
    #[serde(borrow, default)]
    flows: Vec<MacFlows<'a>>,
}

#[derive(Deserialize)]
struct MacFlows<'a> {
    #[serde(borrow)]
    mac: Option<Text<'a>>,
    #[serde(rename = "flowTuples", borrow, default)]
    tuples: Vec<Text<'a>>,
}

/// Reads one blob; records go to `emit`, bad tuples and a bad blob to
/// `summary`. A blob of VNet flow log records stops at its first record
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
            record.flow_records.is_some() || record.flow_log_version.is_some(),
            record.properties.is_some(),
        );
        if shape != Shape::Nsg {
            return blob.wrong_record(summary, index, shape, Kind::AzureNsgFlowLog);
        }
        let host = interner.get(record.resource.as_deref().map_or("nsg", resource_name));
        let Some(properties) = record.properties else {
            return ControlFlow::Continue(());
        };
        let version = properties.version.unwrap_or(2);
        for (f, rule_flows) in properties.flows.iter().enumerate() {
            let rule = rule_flows.rule.as_deref().map(|r| interner.get(r));
            for (g, mac_flows) in rule_flows.flows.iter().enumerate() {
                let point = ObservationPoint {
                    host: host.clone(),
                    netns: None,
                    iface: interner.get(mac_flows.mac.as_deref().unwrap_or("unknown")),
                    iface_role: None,
                };
                for (t, tuple) in mac_flows.tuples.iter().enumerate() {
                    blob.tuple(
                        summary,
                        tuple_record(tuple, version, &point, rule.clone()),
                        tuple,
                        || {
                            format!(
                                "records[{index}].properties.flows[{f}].flows[{g}].flowTuples[{t}]"
                            )
                        },
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

/// One tuple (of `version` 1 or 2) as a record.
pub fn tuple_record(
    tuple: &str,
    version: u32,
    point: &ObservationPoint,
    rule: Option<std::sync::Arc<str>>,
) -> Result<Parsed, String> {
    let expected = if version >= 2 { 13 } else { 8 };
    let mut fields = [""; 13];
    let mut n = 0;
    for part in tuple.split(',') {
        if n == expected {
            return Err(format!(
                "more than {expected} fields (version {version} tuples have {expected})"
            ));
        }
        fields[n] = part;
        n += 1;
    }
    if n != expected {
        return Err(format!(
            "{n} field(s), expected {expected} for version {version} (time,src,dst,sport,dport,T/U,I/O,A/D{})",
            if version >= 2 {
                ",B/C/E,4 counters"
            } else {
                ""
            }
        ));
    }
    let (start_ns, note) = tuple_time(fields[0], TimeUnit::Seconds)?;
    let (src, dst, ip_version) = addresses(fields[1], fields[2])?;
    let protocol = match fields[5] {
        "T" => 6,
        "U" => 17,
        other => return Err(format!("protocol `{other}` is not T or U")),
    };
    let (src_port, dst_port) = ports(
        protocol,
        field(fields[3], "source port")?,
        field(fields[4], "destination port")?,
    );
    let direction = match fields[6] {
        "I" => Direction::Ingress,
        "O" => Direction::Egress,
        other => return Err(format!("direction `{other}` is not I or O")),
    };
    let decision = match fields[7] {
        "A" => NsgDecision::Allow,
        "D" => NsgDecision::Deny,
        other => return Err(format!("decision `{other}` is not A or D")),
    };
    let state = if version >= 2 {
        Some(match fields[8] {
            "B" => FlowState::Begin,
            "C" => FlowState::Continuing,
            "E" => FlowState::End,
            other => return Err(format!("flow state `{other}` is not B, C or E")),
        })
    } else {
        None
    };
    let mut record = base_record(start_ns, src, dst, ip_version, protocol);
    record.point = point.clone();
    record.direction = direction;
    record.src_port = src_port;
    record.dst_port = dst_port;
    let (mut reverse_packets, mut reverse_bytes) = (None, None);
    if version >= 2 {
        record.packets = counter(fields[9], "packets sent")?;
        record.bytes = counter(fields[10], "bytes sent")?;
        reverse_packets = Some(counter(fields[11], "packets received")?);
        reverse_bytes = Some(counter(fields[12], "bytes received")?);
    }
    let state = match (decision, state) {
        (NsgDecision::Deny, _) => Some(FlowState::Denied),
        (_, state) => state,
    };
    record.end_reason = match state {
        Some(FlowState::Begin | FlowState::Continuing) => EndReason::ActiveTimeout,
        _ => EndReason::EndOfFlow,
    };
    record.origin = Origin {
        source: Source::AzureNsgFlowLog,
        reverse_packets,
        reverse_bytes,
        flow_state: state,
        nsg_rule: rule,
        nsg_decision: Some(decision),
        encryption: None,
        direction_basis: None,
        acl_id: None,
    };
    Ok(Parsed { record, note })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::{Window, flow_log::line_column};

    /// Version 2 in the documented shape: B, C, E tuples, denied ones, IPv6,
    /// and a corrupt tuple (protocol `X`).
    const BLOB: &str = r#"{
  "records": [
    {
      "time": "2018-11-13T12:00:35.3899262Z",
      "systemId": "66aa66aa-bb77-cc88-dd99-00ee00ee00ee",
      "category": "NetworkSecurityGroupFlowEvent",
      "resourceId": "/SUBSCRIPTIONS/0000/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.NETWORK/NETWORKSECURITYGROUPS/ASE-NSG",
      "operationName": "NetworkSecurityGroupFlowEvents",
      "properties": {
        "Version": 2,
        "flows": [
          {
            "rule": "DefaultRule_DenyAllInBound",
            "flows": [
              {
                "mac": "000D3AF87856",
                "flowTuples": [
                  "1542110402,192.0.2.190,10.5.16.4,28746,443,U,I,D,B,,,,",
                  "1542110424,2001:db8::9,fd00::4,56509,59336,T,I,D,B,,,,"
                ]
              }
            ]
          },
          {
            "rule": "DefaultRule_AllowInternetOutBound",
            "flows": [
              {
                "mac": "000D3AF87856",
                "flowTuples": [
                  "1542110377,10.5.16.4,203.0.113.118,59831,443,T,O,A,B,,,,",
                  "1542110379,10.5.16.4,203.0.113.117,59932,443,T,O,A,E,1,66,1,66",
                  "1542110379,10.5.16.4,203.0.113.115,44931,443,T,O,A,C,30,16978,24,14008",
                  "1542110406,10.5.16.4,198.51.100.225,59929,443,X,O,A,E,15,8489,12,7054",
                  "1542110406,10.5.16.4,198.51.100.225,59929,443,T,O,A,E,15,8489,12,7054"
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
        let mut blob = BlobText::new("nsg/PT1H.json", text.as_bytes(), Window::default());
        read_blob(
            &mut blob,
            &mut summary,
            &mut Interner::default(),
            &mut |r| records.push(r),
        );
        (records, summary)
    }

    #[test]
    fn version_2_tuples_become_records_with_the_counts_they_say() {
        let (records, summary) = read(BLOB);
        assert_eq!((summary.records_in, summary.records_out), (7, 6));
        assert_eq!(summary.skipped["malformed tuple"], 1);
        let problem = &summary.problems[0];
        assert!(problem.position.starts_with("33:20 ("), "{problem}");
        assert!(problem.message.contains("protocol `X`"), "{problem}");
        assert_eq!(records.iter().map(|r| r.packets).sum::<u64>(), 1 + 30 + 15);
        assert_eq!(
            records.iter().map(|r| r.bytes).sum::<u64>(),
            66 + 16978 + 8489
        );
        assert_eq!(
            records
                .iter()
                .filter_map(|r| r.origin.reverse_bytes)
                .sum::<u64>(),
            66 + 14008 + 7054
        );
        let denied: Vec<_> = records
            .iter()
            .filter(|r| r.origin.nsg_decision == Some(NsgDecision::Deny))
            .collect();
        assert_eq!(denied.len(), 2);
        assert!(
            denied
                .iter()
                .all(|r| r.origin.flow_state == Some(FlowState::Denied))
        );
        assert_eq!(denied[1].ip_version, 6);
        assert_eq!(denied[0].protocol, 17);
        assert_eq!(&*denied[0].point.host, "ASE-NSG");
        assert_eq!(denied[0].start_ns, 1_542_110_402_000_000_000);
        let states: Vec<_> = records[2..].iter().map(|r| r.origin.flow_state).collect();
        assert_eq!(
            states,
            [
                Some(FlowState::Begin),
                Some(FlowState::End),
                Some(FlowState::Continuing),
                Some(FlowState::End)
            ]
        );
        assert!(
            records.iter().all(
                |r| r.origin.encryption.is_none() && r.origin.source == Source::AzureNsgFlowLog
            )
        );
    }

    #[test]
    fn version_1_tuples_have_no_counters() {
        let r = tuple_record(
            "1487282421,192.0.2.95,10.1.0.4,51529,5358,T,I,D",
            1,
            &ObservationPoint::default(),
            None,
        )
        .unwrap()
        .record;
        assert_eq!((r.packets, r.origin.reverse_packets), (0, None));
        assert_eq!(r.origin.nsg_decision, Some(NsgDecision::Deny));
        let err = tuple_record(
            "1,10.0.0.1,10.0.0.2,1,2,T,I,A",
            2,
            &ObservationPoint::default(),
            None,
        )
        .unwrap_err();
        assert!(err.contains("8 field(s), expected 13"), "{err}");
    }

    #[test]
    fn a_truncated_blob_is_reported_with_its_position() {
        let cut = &BLOB[..BLOB.find("1542110379,10.5.16.4,203.0.113.115").unwrap()];
        let (records, summary) = read(cut);
        // The one record of this blob is cut: nothing before it completes.
        assert!(records.is_empty());
        assert_eq!(summary.broken_files, 1);
        assert!(summary.problems[0].message.contains("truncated"));
        let (line, column) = line_column(cut.as_bytes(), cut.len() - 1);
        assert_eq!(summary.problems[0].position, format!("{line}:{column}"));
    }

    #[test]
    fn the_documented_version_2_sample_converts_whole() {
        let text = include_str!("../../testdata/flow-logs/nsg-flow-log-v2-docs-sample.json");
        let (records, summary) = read(text);
        assert_eq!((summary.records_in, summary.records_out), (11, 11));
        assert_eq!(summary.problem_count, 0);
        assert_eq!(
            records.iter().map(|r| r.bytes).sum::<u64>(),
            66 + 16978 + 8489
        );
        let denied = records
            .iter()
            .filter(|r| r.origin.nsg_decision == Some(NsgDecision::Deny))
            .count();
        assert_eq!(denied, 7);
        assert!(records.iter().all(|r| r.origin.acl_id.is_none()
            && &*r.point.host == "FABRIAKMVM1-NSG"
            && &*r.point.iface == "000D3AF87856"));
    }

    #[test]
    fn the_documented_version_1_sample_converts_and_its_nested_element_is_reported() {
        let text = include_str!("../../testdata/flow-logs/nsg-flow-log-v1-docs-sample.json");
        let (records, summary) = read(text);
        // The two records of the sample; its third element is not a record.
        assert_eq!(records.len(), 5 + 4);
        assert!(records.iter().all(
            |r| r.origin.flow_state.is_none() || r.origin.flow_state == Some(FlowState::Denied)
        ));
        assert_eq!(summary.problems.len(), 1);
        assert_eq!(summary.problems[0].position, "records[2]");
        assert!(
            summary.problems[0]
                .message
                .contains("not a flow-log record"),
            "{}",
            summary.problems[0]
        );
        assert_eq!(summary.exit_status(), 0);
    }

    #[test]
    fn a_vnet_flow_log_is_named_as_one_and_not_read() {
        let vnet = include_str!("../../testdata/flow-logs/vnet-flow-log-docs-sample.json");
        let (records, summary) = read(vnet);
        assert!(records.is_empty());
        assert_eq!(summary.records_in, 0);
        let other = summary
            .other_kind
            .as_ref()
            .expect("named as the other kind");
        assert_eq!(other.kind, Kind::AzureVnetFlowLog);
        assert!(
            other
                .to_string()
                .contains("import it with `observer import azure-vnet-flow-log ...`"),
            "{other}"
        );
        // Without a category, flowLogVersion or flowRecords say it.
        let bare = vnet.replace(r#""category": "FlowLogFlowEvent","#, "");
        let (_, summary) = read(&bare);
        assert_eq!(
            summary.other_kind.map(|o| o.kind),
            Some(Kind::AzureVnetFlowLog)
        );
    }

    #[test]
    fn tuples_in_milliseconds_are_read_as_such_and_counted() {
        let parsed = tuple_record(
            "1542110402000,192.0.2.190,10.5.16.4,28746,443,U,I,D,B,,,,",
            2,
            &ObservationPoint::default(),
            None,
        )
        .unwrap();
        assert_eq!(parsed.record.start_ns, 1_542_110_402_000_000_000);
        assert_eq!(parsed.note, Some(crate::import::flow_log::NOTE_NSG_MILLIS));
    }
}
