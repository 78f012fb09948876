//! The packets of a capture file, one at a time, whatever its container:
//! pcap (µs or ns, either byte order, Kuznetzov's modified records) or
//! pcapng (several sections of either byte order, several interfaces each
//! with its link type, snap length, `if_tsresol` and `if_tsoffset`; EPB,
//! SPB and the obsolete Packet Block; options with or without their
//! end-of-options marker). Blocks of an unknown type are skipped and
//! counted.
//!
//! Blocks are parsed by `pcap-parser` (rusticata), a streaming parser over
//! a circular buffer: memory is the buffer, grown only to hold the largest
//! block (at most [`MAX_BLOCK`], as libpcap), whatever the file's size. It
//! accepts every length field as written: a packet longer than its capture
//! length or than the snap length is delivered with both. Written here,
//! because the crate does not: the obsolete Packet Block (type 2, which it
//! hands over as unknown), byte-order-aware option values (its helpers
//! read options little-endian only) and timestamp resolutions in powers of
//! two (its helper rejects them). `pcap-file` was dropped: it stops a file
//! at the first packet longer than the snap length (2.0 and 3.0-rc1).

use pcap_parser::{
    Block, InterfaceDescriptionBlock, LegacyPcapReader, PcapBlockOwned, PcapError, PcapNGOption,
    PcapNGReader, UnknownBlock,
    traits::{PcapNGPacketBlock, PcapReaderIterator},
};
use thiserror::Error;

use super::input::{Filling, Format, LastError};

/// First size of the read buffer: a maximum-size packet (256 KiB snap
/// length) and its block header fit.
const START_BUFFER: usize = 1 << 20;
/// The largest block or packet record read (libpcap's own limit for
/// pcapng blocks): anything longer is a corrupt length field.
pub(super) const MAX_BLOCK: usize = 16 << 20;

/// pcapng option codes this reader uses.
mod option {
    pub(super) const IF_NAME: u16 = 2;
    pub(super) const IF_TSRESOL: u16 = 9;
    pub(super) const IF_TSOFFSET: u16 = 14;
    /// `epb_flags` (and the obsolete PB's `pack_flags`).
    pub(super) const EPB_FLAGS: u16 = 2;
}

/// The obsolete Packet Block's type.
const PB_TYPE: u32 = 2;

/// Why a capture could not be read to its end.
#[derive(Debug, Error)]
pub(super) enum ContainerError {
    #[error(
        "the file ends inside a packet record (truncated: an interrupted capture or copy, or a file still being written?)"
    )]
    Truncated,
    #[error("malformed {format} data ({kind})")]
    Malformed { format: &'static str, kind: String },
    #[error("a record longer than {} MiB: a corrupt length field", MAX_BLOCK >> 20)]
    TooLarge,
    #[error("reading failed: {0}")]
    Read(std::io::Error),
    #[error("the file does not start with a readable {0} header")]
    Header(&'static str),
}

/// One interface of the capture (pcap files have one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Interface {
    /// Numbered across the whole file (pcapng numbers restart per section).
    pub ordinal: u32,
    /// `LINKTYPE_*` value.
    pub link: u32,
    /// `if_name`, when the file gives one.
    pub name: Option<String>,
    pub snaplen: u32,
    /// Timestamp units per second (`if_tsresol`).
    units_per_second: u128,
    /// Seconds added to every timestamp (`if_tsoffset`).
    offset_seconds: i64,
}

impl Interface {
    fn time_ns(&self, units: u64) -> i128 {
        (i128::from(units) * 1_000_000_000 / self.units_per_second as i128)
            + i128::from(self.offset_seconds) * 1_000_000_000
    }
}

/// One captured packet.
#[derive(Debug)]
pub(super) struct Packet<'a> {
    /// 1-based position among the file's packets.
    pub number: u64,
    pub interface: &'a Interface,
    /// Nanoseconds since the epoch; `None` for a simple packet block,
    /// which has no timestamp.
    pub time_ns: Option<i128>,
    /// The captured bytes (possibly fewer than went on the wire).
    pub data: &'a [u8],
    /// The packet's length on the wire.
    pub wire_len: usize,
    /// Egress (`true`) or ingress, when the file records it (`epb_flags`).
    pub egress: Option<bool>,
}

/// What the reader hands over.
#[derive(Debug)]
pub(super) enum Item<'a> {
    Packet(Packet<'a>),
    /// A packet naming an interface no description block declared.
    Orphan {
        number: u64,
        interface: u32,
    },
    /// A block of a type this reader does not know.
    Unknown {
        block_type: u32,
    },
    /// A packet block too short for its own header.
    Malformed {
        number: u64,
    },
}

/// A packet found in a block, located in the read buffer.
struct Found {
    number: u64,
    interface: usize,
    time_units: Option<u64>,
    start: usize,
    len: usize,
    wire_len: usize,
    egress: Option<bool>,
}

enum Step {
    Skip,
    Packet(Found),
    Other(Item<'static>),
}

/// What the blocks so far said about the file.
#[derive(Debug, Default)]
struct State {
    interfaces: Vec<Interface>,
    next_ordinal: u32,
    big_endian: bool,
    packets: u64,
}

/// Reads the packets of one capture, streaming.
pub(super) struct Packets {
    reader: Box<dyn PcapReaderIterator>,
    format: Format,
    state: State,
    /// Bytes of the block handed over last, consumed on the next call.
    pending: usize,
    capacity: usize,
    error: LastError,
}

impl std::fmt::Debug for Packets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Packets")
            .field("format", &self.format)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

fn format_name(format: Format) -> &'static str {
    match format {
        Format::Pcap => "pcap",
        Format::Pcapng => "pcapng",
    }
}

/// An option's value as a u32/i64 in the section's byte order.
fn option_bytes<'a>(options: &'a [PcapNGOption<'_>], code: u16) -> Option<&'a [u8]> {
    options
        .iter()
        .find(|o| o.code.0 == code)
        .and_then(|o| o.as_bytes().ok())
}

fn option_u32(options: &[PcapNGOption<'_>], code: u16, big_endian: bool) -> Option<u32> {
    let bytes: [u8; 4] = option_bytes(options, code)?.try_into().ok()?;
    Some(if big_endian {
        u32::from_be_bytes(bytes)
    } else {
        u32::from_le_bytes(bytes)
    })
}

/// Direction from `epb_flags` bits 0-1: 1 inbound, 2 outbound.
fn direction(flags: Option<u32>) -> Option<bool> {
    match flags? & 0b11 {
        1 => Some(false),
        2 => Some(true),
        _ => None,
    }
}

/// Units per second of an `if_tsresol` value: 10^v, or 2^v with the top bit.
fn units_per_second(tsresol: u8) -> u128 {
    let value = u32::from(tsresol & 0x7f);
    if tsresol & 0x80 == 0 {
        10u128.pow(value.min(30))
    } else {
        1u128 << value.min(100)
    }
}

impl State {
    fn interface(&mut self, idb: &InterfaceDescriptionBlock<'_>) {
        let options = &idb.options;
        let name = option_bytes(options, option::IF_NAME)
            .map(|b| String::from_utf8_lossy(b).trim_end_matches('\0').to_owned())
            .filter(|n| !n.is_empty());
        let tsresol = option_bytes(options, option::IF_TSRESOL)
            .and_then(|b| b.first().copied())
            .unwrap_or(6);
        let offset_seconds = option_bytes(options, option::IF_TSOFFSET)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map_or(0, |b| {
                if self.big_endian {
                    i64::from_be_bytes(b)
                } else {
                    i64::from_le_bytes(b)
                }
            });
        self.interfaces.push(Interface {
            ordinal: self.next_ordinal,
            link: idb.linktype.0 as u32 & 0xffff,
            name,
            snaplen: idb.snaplen,
            units_per_second: units_per_second(tsresol),
            offset_seconds,
        });
        self.next_ordinal += 1;
    }

    /// A packet of interface `id`, or an orphan when no block declared it.
    fn packet(&mut self, id: u32, found: impl FnOnce(u64, usize) -> Found) -> Step {
        self.packets += 1;
        if (id as usize) < self.interfaces.len() {
            Step::Packet(found(self.packets, id as usize))
        } else {
            Step::Other(Item::Orphan {
                number: self.packets,
                interface: id,
            })
        }
    }

    /// The obsolete Packet Block: interface (u16), drops (u16), timestamp
    /// (2 × u32), captured and original lengths, data, options.
    fn obsolete_packet(&mut self, block: &UnknownBlock<'_>, base: usize) -> Step {
        let body = block.data;
        let big_endian = self.big_endian;
        let u16_at = |at: usize| -> u16 {
            let b = [body[at], body[at + 1]];
            if big_endian {
                u16::from_be_bytes(b)
            } else {
                u16::from_le_bytes(b)
            }
        };
        let u32_at = |at: usize| -> u32 {
            let b = [body[at], body[at + 1], body[at + 2], body[at + 3]];
            if big_endian {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        };
        if body.len() < 20 {
            self.packets += 1;
            return Step::Other(Item::Malformed {
                number: self.packets,
            });
        }
        let caplen = (u32_at(12) as usize).min(body.len() - 20);
        let units = (u64::from(u32_at(4)) << 32) | u64::from(u32_at(8));
        let wire_len = u32_at(16) as usize;
        // Options follow the data padded to 32 bits: code, length, value.
        let mut egress = None;
        let mut at = 20 + caplen.next_multiple_of(4);
        while at + 4 <= body.len() {
            let (code, len) = (u16_at(at), usize::from(u16_at(at + 2)));
            if code == 0 {
                break;
            }
            if code == option::EPB_FLAGS && len == 4 && at + 8 <= body.len() {
                egress = direction(Some(u32_at(at + 4)));
            }
            at += 4 + len.next_multiple_of(4);
        }
        let start = body.as_ptr() as usize - base + 20;
        self.packet(u32::from(u16_at(0)), |number, interface| Found {
            number,
            interface,
            time_units: Some(units),
            start,
            len: caplen,
            wire_len: wire_len.max(caplen),
            egress,
        })
    }

    /// What one block means; `base` is the address of the read buffer's
    /// first byte, to locate packet data in it.
    fn block(&mut self, block: PcapBlockOwned<'_>, base: usize) -> Step {
        let at = |data: &[u8]| data.as_ptr() as usize - base;
        match block {
            PcapBlockOwned::LegacyHeader(header) => {
                self.interfaces = vec![Interface {
                    ordinal: 0,
                    link: header.network.0 as u32 & 0xffff,
                    name: None,
                    snaplen: header.snaplen,
                    units_per_second: if header.is_nanosecond_precision() {
                        1_000_000_000
                    } else {
                        1_000_000
                    },
                    offset_seconds: 0,
                }];
                self.next_ordinal = 1;
                Step::Skip
            }
            PcapBlockOwned::Legacy(packet) => {
                // Seconds and fraction, kept in "units" of the resolution.
                let per_second = self.interfaces[0].units_per_second as u64;
                let units = u64::from(packet.ts_sec) * per_second + u64::from(packet.ts_usec);
                self.packet(0, |number, interface| Found {
                    number,
                    interface,
                    time_units: Some(units),
                    start: at(packet.data),
                    len: packet.data.len(),
                    wire_len: (packet.origlen as usize).max(packet.data.len()),
                    egress: None,
                })
            }
            PcapBlockOwned::NG(Block::SectionHeader(shb)) => {
                self.interfaces.clear();
                self.big_endian = shb.big_endian();
                Step::Skip
            }
            PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                self.interface(&idb);
                Step::Skip
            }
            PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                let data = epb.packet_data();
                let units = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                let flags = option_u32(&epb.options, option::EPB_FLAGS, self.big_endian);
                self.packet(epb.if_id, |number, interface| Found {
                    number,
                    interface,
                    time_units: Some(units),
                    start: at(data),
                    len: data.len(),
                    wire_len: (epb.origlen as usize).max(data.len()),
                    egress: direction(flags),
                })
            }
            PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                // Captured: the original length, cut to the interface's
                // snap length and to the block.
                let snaplen = self.interfaces.first().map_or(0, |i| i.snaplen as usize);
                let mut len = (spb.origlen as usize).min(spb.data.len());
                if snaplen > 0 {
                    len = len.min(snaplen);
                }
                let start = at(spb.data);
                self.packet(0, |number, interface| Found {
                    number,
                    interface,
                    time_units: None,
                    start,
                    len,
                    wire_len: (spb.origlen as usize).max(len),
                    egress: None,
                })
            }
            PcapBlockOwned::NG(Block::Unknown(unknown)) => {
                let kind = if self.big_endian {
                    unknown.block_type.swap_bytes()
                } else {
                    unknown.block_type
                };
                if kind == PB_TYPE {
                    self.obsolete_packet(&unknown, base)
                } else {
                    Step::Other(Item::Unknown { block_type: kind })
                }
            }
            // Name resolution, statistics, secrets, journal, process
            // information and custom blocks: metadata flows do not need.
            PcapBlockOwned::NG(_) => Step::Skip,
        }
    }
}

fn nom_kind(error: &PcapError<&[u8]>) -> String {
    match error {
        PcapError::NomError(_, kind) | PcapError::OwnedNomError(_, kind) => {
            format!("{kind:?}").to_lowercase()
        }
        PcapError::HeaderNotRecognized => "header not recognized".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

impl Packets {
    /// Starts reading an opened capture.
    pub(super) fn new(
        format: Format,
        reader: Filling,
        error: LastError,
    ) -> Result<Self, ContainerError> {
        let name = format_name(format);
        let header = |e: PcapError<&[u8]>| match e {
            PcapError::ReadError => {
                ContainerError::Read(error.take().unwrap_or_else(|| std::io::Error::other("?")))
            }
            _ => ContainerError::Header(name),
        };
        let reader: Box<dyn PcapReaderIterator> = match format {
            Format::Pcap => Box::new(LegacyPcapReader::new(START_BUFFER, reader).map_err(header)?),
            Format::Pcapng => Box::new(PcapNGReader::new(START_BUFFER, reader).map_err(header)?),
        };
        Ok(Self {
            reader,
            format,
            state: State::default(),
            pending: 0,
            capacity: START_BUFFER,
            error,
        })
    }

    /// Bytes of the file read and used so far.
    pub(super) fn offset(&self) -> usize {
        self.reader.consumed()
    }

    /// Packets read so far (the number of the last one).
    pub(super) fn packets(&self) -> u64 {
        self.state.packets
    }

    /// The next packet or other item; `None` at the end of the file.
    pub(super) fn next(&mut self) -> Result<Option<Item<'_>>, ContainerError> {
        if self.pending > 0 {
            self.reader.consume(self.pending);
            self.pending = 0;
        }
        loop {
            let base = self.reader.data().as_ptr() as usize;
            let (offset, step) = match self.reader.next() {
                Ok((offset, block)) => (offset, self.state.block(block, base)),
                Err(PcapError::Eof) => return Ok(None),
                Err(PcapError::Incomplete(_)) => {
                    self.refill()?;
                    continue;
                }
                Err(PcapError::BufferTooSmall) => {
                    if self.capacity >= MAX_BLOCK {
                        return Err(ContainerError::TooLarge);
                    }
                    self.capacity *= 2;
                    self.reader.grow(self.capacity);
                    self.refill()?;
                    continue;
                }
                Err(PcapError::UnexpectedEof) => return Err(ContainerError::Truncated),
                Err(PcapError::ReadError) => return Err(self.read_error()),
                Err(other) => {
                    return Err(ContainerError::Malformed {
                        format: format_name(self.format),
                        kind: nom_kind(&other),
                    });
                }
            };
            match step {
                Step::Skip => self.reader.consume(offset),
                Step::Other(item) => {
                    self.reader.consume(offset);
                    return Ok(Some(item));
                }
                Step::Packet(found) => {
                    self.pending = offset;
                    let interface = &self.state.interfaces[found.interface];
                    return Ok(Some(Item::Packet(Packet {
                        number: found.number,
                        interface,
                        time_ns: found.time_units.map(|u| interface.time_ns(u)),
                        data: &self.reader.data()[found.start..found.start + found.len],
                        wire_len: found.wire_len,
                        egress: found.egress,
                    })));
                }
            }
        }
    }

    fn read_error(&self) -> ContainerError {
        ContainerError::Read(
            self.error
                .take()
                .unwrap_or_else(|| std::io::Error::other("the reader failed")),
        )
    }

    fn refill(&mut self) -> Result<(), ContainerError> {
        match self.reader.refill() {
            Ok(()) => Ok(()),
            Err(_) => Err(self.read_error()),
        }
    }
}
