//! Packet captures (pcap and pcapng, as tcpdump, dumpcap or tshark write
//! them, gzip-compressed or not) as flow records with the kernel program's
//! flow semantics: the same key (addresses, ports or ICMP type/code,
//! protocol, outermost VLAN, direction, interface), IPFIX bytes (the IP
//! header's total length, also for packets the snap length cut), ports 0
//! for non-first fragments, TCP flags and their counts, all accumulated by
//! the same [`crate::flow::FlowTable`] with its timeouts and end reasons,
//! driven by packet time. The end of a file ends the flows still open
//! (`forced-end`, as when a capture stops).
//!
//! Streamed: one container reader yields packets from any `Read` (a file,
//! a blob's chunks, stdin) with a buffer bounded by the largest block, so
//! a capture of any size imports in constant memory apart from the flow
//! table; one frame parser per link type feeds the one flow accumulator.
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | options (`--local`, topology sides, interface), opening an input, the per-file loop |
//! | [`input`] | gzip detection by magic, pcap/pcapng told apart, refusing other files with a hint |
//! | [`container`] | pcap and pcapng blocks (pcap-parser): sections, interfaces, timestamps, packets |
//! | [`link`] | one parser per link type: Ethernet, Linux cooked v1/v2, raw IP, BSD loopback |
//! | [`frame`] | VLAN, IPv4/IPv6, ports as the kernel parses them; what a snap length cut leaves |
//! | [`direction`] | egress or ingress: the file, `--local`, the topology, or the initiator |
//! | [`flows`] | packets into the flow table, DNS answers, records out |
//!
//! What is skipped is counted in the import summary by reason: frames that
//! are not IP (not a problem), frames cut before the addresses or ports,
//! malformed headers, packets of interfaces with a link type not read
//! (reported once per interface), and the rest of a file after a fault
//! (truncated or corrupt: what came before is converted).

mod container;
mod direction;
mod flows;
mod frame;
mod input;
mod link;
#[cfg(test)]
mod tests;

use std::{io::Read, net::IpAddr, str::FromStr};

use ipnet::IpNet;

pub use self::direction::Sides;
use self::{
    container::{Item, Packets},
    flows::{Flows, Shared},
};
use super::{InputFile, Problem, Summary, Window};
use crate::{
    dns::{DnsAnswer, DnsTracker},
    flow::{FlowRecord, TableConfig},
    storage::{Location, StorageError},
};

/// The input name that reads a capture from standard input.
pub const STDIN: &str = "-";

/// One `--local` entry: an address range or a MAC address of the host
/// whose interface was captured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Local {
    Net(IpNet),
    Mac([u8; 6]),
}

impl FromStr for Local {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(net) = s.parse::<IpNet>() {
            return Ok(Self::Net(net));
        }
        if let Ok(addr) = s.parse::<IpAddr>() {
            return Ok(Self::Net(IpNet::from(addr)));
        }
        let parts: Vec<&str> = s.split([':', '-']).collect();
        if parts.len() == 6 {
            let mut mac = [0u8; 6];
            for (byte, part) in mac.iter_mut().zip(&parts) {
                *byte = u8::from_str_radix(part, 16)
                    .map_err(|_| format!("`{s}` is not a MAC address"))?;
            }
            return Ok(Self::Mac(mac));
        }
        Err(format!(
            "`{s}` is neither an address, a CIDR range nor a MAC address (aa:bb:cc:dd:ee:ff)"
        ))
    }
}

/// Settings of a capture import.
#[derive(Clone, Debug, Default)]
pub struct PcapOptions {
    pub table: TableConfig,
    /// The captured host's addresses or MACs (for files without direction).
    pub local: Vec<Local>,
    /// The topology's local side (with `--topology`), for files without
    /// direction and without `--local`.
    pub sides: Option<Sides>,
    /// Interface name for every interface of the file (otherwise the
    /// file's: pcapng `if_name`, a cooked v2 header's ifindex, or `pcap`).
    pub iface: Option<String>,
    /// The interface's role in the topology (as `run --iface NAME=ROLE`).
    pub iface_role: Option<String>,
    /// `host` column (default: the file name).
    pub host: Option<String>,
}

/// Whether a file found walking a directory or prefix is a capture by its
/// name: `.pcap`, `.pcapng`, `.cap`, tcpdump's rotated `.pcapN`, each also
/// with `.gz`. (A file named on the command line is read whatever its name.)
pub fn is_capture_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    let base = name.strip_suffix(".gz").unwrap_or(&name);
    let Some((_, ext)) = base.rsplit_once('.') else {
        return false;
    };
    matches!(ext, "pcap" | "pcapng" | "cap")
        || ext
            .strip_prefix("pcap")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The input that reads standard input (`-`).
pub fn stdin_input() -> InputFile {
    InputFile {
        location: Location::Local(STDIN.into()),
        relative: String::new(),
        display: STDIN.into(),
    }
}

/// Opens an input as a stream (standard input for `-`).
pub fn open_input(file: &InputFile) -> Result<Box<dyn Read + Send>, StorageError> {
    if file.display == STDIN && file.location.local_path() == Some(std::path::Path::new(STDIN)) {
        return Ok(Box::new(std::io::stdin()));
    }
    file.location.open(&file.relative)
}

/// Reads one capture from `input` (pcap or pcapng, gzipped or not, told
/// apart by its first bytes) and hands each flow record to `emit` as its
/// flow ends.
#[expect(
    clippy::too_many_arguments,
    reason = "the import's shared state, passed once per file"
)]
pub fn read_file(
    file: &str,
    input: Box<dyn Read + Send>,
    options: &PcapOptions,
    window: Window,
    summary: &mut Summary,
    dns: &mut DnsTracker,
    answers: &mut Vec<DnsAnswer>,
    emit: &mut dyn FnMut(FlowRecord),
) {
    summary.files += 1;
    let problem = |position: String, message: String| Problem {
        file: file.to_owned(),
        position,
        message,
    };
    let broken = |summary: &mut Summary, position: String, message: String| {
        summary.broken_files += 1;
        summary.problem(problem(position, message));
    };
    let opened = match input::open(input) {
        Ok(opened) => opened,
        Err(e) => return broken(summary, "byte 0".into(), e.to_string()),
    };
    let mut packets = match Packets::new(opened.format, opened.reader, opened.error) {
        Ok(packets) => packets,
        Err(e) => return broken(summary, "byte 0".into(), e.to_string()),
    };
    let mut flows = Flows::new(options, file, window);
    let mut shared = Shared {
        summary,
        dns,
        answers,
    };
    loop {
        let packet_problem =
            |number: u64, message: String| Some(problem(format!("packet {number}"), message));
        match packets.next() {
            Ok(None) => break,
            Ok(Some(Item::Packet(packet))) => {
                flows.packet(&mut shared, &packet);
                flows.emit(&mut shared, emit);
            }
            Ok(Some(Item::Orphan { number, interface })) => {
                shared.summary.records_in += 1;
                shared.summary.skip(
                    "packet of an undeclared interface",
                    packet_problem(
                        number,
                        format!("interface {interface} was never described (no interface description block)"),
                    ),
                );
            }
            Ok(Some(Item::Malformed { number })) => {
                shared.summary.records_in += 1;
                shared.summary.skip(
                    "packet block shorter than its header",
                    packet_problem(number, "a packet block shorter than its header".into()),
                );
            }
            Ok(Some(Item::Unknown { block_type })) => {
                tracing::debug!(file, block_type, "pcapng block of an unknown type skipped");
                shared
                    .summary
                    .note("pcapng blocks of an unknown type (skipped)", 1);
            }
            Err(e) => {
                let position = format!(
                    "packet {}, byte {}",
                    packets.packets() + 1,
                    packets.offset()
                );
                broken(
                    shared.summary,
                    position,
                    format!("{e}; the packets before this point were converted"),
                );
                break;
            }
        }
    }
    flows.finish(&mut shared, emit);
}
