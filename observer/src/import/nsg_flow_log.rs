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
//! `nsg_rule`. NSG flow logs know nothing of encryption (`encryption` null).

use serde::Deserialize;

use super::{
    Interner, Summary, Text, Window, addresses, base_record, blob_problem, counter, field,
    for_each_record, ports, resource_name,
};
use crate::flow::{
    Direction, EndReason, FlowRecord, FlowState, NsgDecision, ObservationPoint, Origin, Source,
};

#[derive(Deserialize)]
struct Record<'a> {
    #[serde(rename = "resourceId", borrow)]
    resource: Option<Text<'a>>,
    #[serde(borrow)]
    properties: Option<Properties<'a>>,
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

/// Reads one blob; records go to `emit`, bad tuples and a bad blob to `summary`.
pub fn read_blob(
    file: &str,
    text: &[u8],
    window: Window,
    summary: &mut Summary,
    interner: &mut Interner,
    emit: &mut dyn FnMut(FlowRecord),
) {
    summary.files += 1;
    let result = for_each_record(text, |index, record: Record<'_>| {
        let host = interner.get(record.resource.as_deref().map_or("nsg", resource_name));
        let Some(properties) = record.properties else {
            return;
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
                    summary.tuple(
                        tuple_record(tuple, version, &point, rule.clone()),
                        window,
                        (file, text, tuple),
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
    });
    if let Err(error) = result {
        summary.broken_files += 1;
        summary.problem(blob_problem(file, &error));
    }
}

/// One tuple (of `version` 1 or 2) as a record.
pub fn tuple_record(
    tuple: &str,
    version: u32,
    point: &ObservationPoint,
    rule: Option<std::sync::Arc<str>>,
) -> Result<FlowRecord, String> {
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
    let time_s: i64 = field(fields[0], "time (s since the epoch)")?;
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
    let start_ns = time_s
        .checked_mul(1_000_000_000)
        .ok_or_else(|| format!("time `{}` is out of range", fields[0]))?;
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
    };
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        read_blob(
            "nsg/PT1H.json",
            text.as_bytes(),
            Window::default(),
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
        .unwrap();
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
        let (line, column) = super::super::line_column(cut.as_bytes(), cut.len() - 1);
        assert_eq!(summary.problems[0].position, format!("{line}:{column}"));
    }
}
