//! The fuzz targets' entry points (`fuzz/`): thin wrappers that drive the
//! same code the command line does on bytes in memory, so the parsers stay
//! `pub(crate)`. Not a stable API; hidden from the docs.
//!
//! | function | drives |
//! |---|---|
//! | [`vnet_flow_log`], [`nsg_flow_log`] | `observer import --kind azure-{vnet,nsg}-flow-log` on one blob: decoding, the record walk, every tuple, the summary |
//! | [`flow_log_tuple`] | one VNet or NSG (v1, v2) tuple |
//! | [`capture`] | `observer import --kind pcap` on one file (gzip, pcap, pcapng) |
//! | [`frames`] | frames of one link type, written into a pcap in memory, through the same import (link, frame, direction, flows, DNS) |
//! | [`dns`] | a DNS response as the pipeline reads it: parse, chain, tracker, lookup |
//! | [`topology`] | the topology TOML loader with its validation |
//! | [`azure_export`] | `observer topology import --lab`: ARM templates and `az` JSON, then the TOML written and loaded back |

use std::{
    io::Cursor,
    net::{IpAddr, Ipv4Addr},
    path::{Path, PathBuf},
    sync::Arc,
};

use crate::{
    dns::{DnsAnswer, DnsTracker, GRACE_NS},
    flow::{Interner, ObservationPoint},
    import::{Kind, Summary, Window, capture, nsg_flow_log, vnet_flow_log},
    topology::{
        Topology,
        import::{Options, import_texts, write},
    },
};

/// What a flow-log or capture import made of its input.
#[derive(Debug, Default)]
pub struct Outcome {
    pub records: usize,
    pub summary: String,
}

/// One flow-log blob of `kind`, as `observer import` reads it.
fn flow_log(kind: Kind, bytes: &[u8]) -> Outcome {
    let mut summary = Summary::default();
    let mut records = 0;
    crate::import::run::read_flow_log(
        kind,
        "PT1H.json",
        bytes,
        Window::default(),
        &mut summary,
        &mut Interner::default(),
        &mut |_| records += 1,
    );
    Outcome {
        records,
        summary: summary.render(),
    }
}

/// A VNet flow-log blob.
pub fn vnet_flow_log(bytes: &[u8]) -> Outcome {
    flow_log(Kind::AzureVnetFlowLog, bytes)
}

/// An NSG flow-log blob.
pub fn nsg_flow_log(bytes: &[u8]) -> Outcome {
    flow_log(Kind::AzureNsgFlowLog, bytes)
}

/// One tuple: the first byte picks VNet (even) or NSG (odd; its low bits
/// the version), the rest is the tuple's text.
pub fn flow_log_tuple(bytes: &[u8]) -> Option<String> {
    let (&selector, rest) = bytes.split_first()?;
    let tuple = std::str::from_utf8(rest).ok()?;
    let point = ObservationPoint::default();
    let parsed = if selector % 2 == 0 {
        let decider = vnet_flow_log::Decider {
            acl_id: None,
            rule: Some("rule".into()),
        };
        vnet_flow_log::tuple_record(tuple, &point, &decider, &mut Interner::default())
    } else {
        nsg_flow_log::tuple_record(tuple, u32::from(selector >> 1 & 3), &point, None)
    };
    Some(match parsed {
        Ok(parsed) => format!("{:?}", parsed.record),
        Err(message) => message,
    })
}

/// A capture file's bytes, as `observer import --kind pcap` reads them.
pub fn capture(bytes: &[u8]) -> Outcome {
    let mut summary = Summary::default();
    let mut records = 0;
    let mut tracker = DnsTracker::new(1 << 20, GRACE_NS);
    let mut answers = Vec::new();
    capture::read_file(
        "capture.pcap",
        Box::new(Cursor::new(bytes.to_vec())),
        &capture::PcapOptions::default(),
        Window::default(),
        &mut summary,
        &mut tracker,
        &mut answers,
        &mut |_| records += 1,
    );
    Outcome {
        records,
        summary: summary.render(),
    }
}

/// The link types the capture import reads, as `LINKTYPE_*` values.
pub const LINK_TYPES: [u32; 10] = [1, 113, 276, 101, 12, 14, 228, 229, 0, 108];

/// Separates the frames of a [`frames`] input.
pub const FRAME_SEPARATOR: &[u8] = b"\xffFRAME";

/// Frames of one link type: the first byte picks the link type from
/// [`LINK_TYPES`] (and, above, a snap length cutting the frames), the
/// rest is frames separated by [`FRAME_SEPARATOR`]. They are written into
/// a pcap in memory, a millisecond apart, and imported as a capture.
pub fn frames(bytes: &[u8]) -> Option<Outcome> {
    let (&selector, rest) = bytes.split_first()?;
    let link_type = LINK_TYPES[usize::from(selector) % LINK_TYPES.len()];
    let snap = match usize::from(selector) / LINK_TYPES.len() {
        0 => u32::MAX,
        cut => u32::try_from(cut * 8).expect("at most 25 * 8"),
    };
    let mut pcap = Vec::with_capacity(24 + rest.len() * 2);
    pcap.extend_from_slice(&0xa1b2_c3d4_u32.to_le_bytes());
    pcap.extend_from_slice(&2_u16.to_le_bytes());
    pcap.extend_from_slice(&4_u16.to_le_bytes());
    pcap.extend_from_slice(&[0; 8]);
    pcap.extend_from_slice(&snap.min(262_144).to_le_bytes());
    pcap.extend_from_slice(&link_type.to_le_bytes());
    let mut frames = Vec::new();
    let mut remaining = rest;
    while let Some(at) = find(remaining, FRAME_SEPARATOR) {
        frames.push(&remaining[..at]);
        remaining = &remaining[at + FRAME_SEPARATOR.len()..];
    }
    frames.push(remaining);
    for (i, frame) in frames.into_iter().enumerate() {
        let wire = u32::try_from(frame.len()).ok()?;
        let kept = wire.min(snap);
        let ms = u32::try_from(i).ok()?;
        pcap.extend_from_slice(&1_700_000_000_u32.to_le_bytes());
        pcap.extend_from_slice(&(ms * 1000).to_le_bytes());
        pcap.extend_from_slice(&kept.to_le_bytes());
        pcap.extend_from_slice(&wire.to_le_bytes());
        pcap.extend_from_slice(&frame[..kept as usize]);
    }
    Some(capture(&pcap))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A DNS response as the live pipeline reads it: parsed, made a row,
/// recorded in the tracker, and every address it gave looked up again.
pub fn dns(bytes: &[u8]) -> Option<String> {
    let parsed = crate::dns::parse_response(bytes).ok()?;
    let client = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 4));
    let answer = DnsAnswer::new(
        parsed,
        1_700_000_000_000_000_000,
        Arc::from("eth0"),
        client,
        IpAddr::V4(Ipv4Addr::new(168, 63, 129, 16)),
    );
    // Room for every address a message can hold: none is evicted.
    let mut tracker = DnsTracker::new(1 << 16, GRACE_NS);
    tracker.record(&answer);
    for address in &answer.addresses {
        let found = tracker.lookup(client, *address, answer.time_ns);
        assert!(found.is_some(), "an address just answered is not found");
    }
    Some(format!("{answer:?}"))
}

/// A topology file's text through the loader and its validation.
pub fn topology(bytes: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok()?;
    Some(match Topology::parse(Path::new("topology.toml"), text) {
        Ok(topology) => format!("{topology:?}"),
        Err(error) => error.to_string(),
    })
}

/// Azure exports as `observer topology import --lab` reads them: the
/// input is one or more JSON texts separated by a NUL byte (each an ARM
/// template or `az` output); a topology built from them is written as
/// TOML and read back by the loader, as `topology import` saves it. With
/// `--lab` and the contoso fixtures' service tags.
pub fn azure_export(bytes: &[u8]) -> Option<String> {
    let texts = bytes
        .split(|b| *b == 0)
        .enumerate()
        .map(|(i, text)| {
            let text = String::from_utf8(text.to_vec()).ok()?;
            Some((PathBuf::from(format!("input-{i}.json")), text))
        })
        .collect::<Option<Vec<_>>>()?;
    // The contoso fixtures' service tags (3.8 kB): `--lab` places
    // endpoints at the addresses the tags own.
    let options = Options {
        lab: true,
        service_tags: Some(PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/azure/contoso/service-tags.json"
        ))),
        ..Options::default()
    };
    let imported = match import_texts(texts, Path::new("topology.toml"), &options) {
        Ok(imported) => imported,
        Err(error) => return Some(error.to_string()),
    };
    // What the loader refuses (a subnet outside the VNet, overlapping
    // prefixes: an export Azure would not deploy either), `topology
    // import` refuses when it saves, naming the resource; so a refusal
    // here is an outcome, like the import's own errors.
    let text = write(&imported.topology, &imported.provenance, &imported.summary);
    Some(match Topology::parse(Path::new("topology.toml"), &text) {
        Ok(_) => text,
        Err(error) => error.to_string(),
    })
}

/// The seeds reach deep: each wrapper on the real inputs `cargo xtask
/// fuzz` starts from converts them, so a fuzz run starts past the parsers'
/// first checks.
#[cfg(test)]
mod tests {
    use std::path::Path;

    fn files(dir: &str) -> Vec<(String, Vec<u8>)> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(dir);
        let mut out: Vec<_> = std::fs::read_dir(&root)
            .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
            .collect();
        out.sort();
        out
    }

    #[test]
    fn flow_log_samples_convert() {
        for (name, bytes) in files("observer/testdata/flow-logs") {
            let vnet = super::vnet_flow_log(&bytes);
            let nsg = super::nsg_flow_log(&bytes);
            if name.ends_with(".json") {
                assert!(vnet.records + nsg.records > 0, "{name}: {vnet:?} {nsg:?}");
            }
        }
        for (name, bytes) in files("fuzz/seeds/flow_log_tuple") {
            let parsed = super::flow_log_tuple(&bytes).unwrap();
            assert!(parsed.starts_with("FlowRecord"), "{name}: {parsed}");
        }
    }

    #[test]
    fn captures_and_frames_convert() {
        let captures = files("tests/corpus/observer");
        assert!(captures.iter().any(|(_, b)| super::capture(b).records > 0));
        for (name, bytes) in files("fuzz/seeds/frames") {
            let outcome = super::frames(&bytes).unwrap();
            assert!(outcome.summary.contains("1 file"), "{name}: {outcome:?}");
        }
        let sll2 = files("fuzz/seeds/frames")
            .into_iter()
            .find(|(name, _)| name.ends_with("sll2-veth-lo"))
            .unwrap();
        assert!(super::frames(&sll2.1).unwrap().records > 0);
    }

    #[test]
    fn dns_seeds_are_responses() {
        let seeds = files("fuzz/seeds/dns");
        let parsed: Vec<String> = seeds.iter().filter_map(|(_, b)| super::dns(b)).collect();
        assert_eq!(parsed.len(), seeds.len());
        assert!(
            parsed
                .iter()
                .any(|p| p.contains("kv.privatelink.vaultcore.azure.net"))
        );
    }

    #[test]
    fn topologies_and_exports_load() {
        for (name, bytes) in files("lab/topologies") {
            if name.ends_with(".toml") {
                let loaded = super::topology(&bytes).unwrap();
                assert!(loaded.starts_with("Topology"), "{name}: {loaded}");
            }
        }
        let contoso = ["export.json", "az/vnet.json", "effective-nsg.json"]
            .map(|f| {
                std::fs::read(
                    Path::new(env!("CARGO_MANIFEST_DIR"))
                        .join(format!("../tests/fixtures/azure/contoso/{f}")),
                )
                .unwrap()
            })
            .join(&0);
        let toml = super::azure_export(&contoso).unwrap();
        assert!(toml.contains("[[nsg]]"), "{toml}");
    }
}
