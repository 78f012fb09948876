//! Opening a capture: the bytes as they arrive (a file, a blob's chunks or
//! stdin), gunzipped when they start with gzip's magic whatever the name,
//! and told apart by their first four bytes (pcap in either byte order and
//! time resolution, pcapng). Anything else is refused with what it looks
//! like (Parquet, JSON, another compressor) and what to do instead.
//!
//! The reader handed on fills every buffer it is given ([`Filling`]):
//! pcap-parser takes one `read` per refill and parses its header from the
//! first one, so a short read from a pipe or a gzip stream must not look
//! like the end. It also keeps the last I/O error, which pcap-parser only
//! reports as "a read failed".

use std::{
    cell::Cell,
    io::{self, Read},
    rc::Rc,
};

use flate2::read::MultiGzDecoder;
use thiserror::Error;

/// The container a stream holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Format {
    /// Classic pcap (libpcap's savefile), any byte order, µs or ns.
    Pcap,
    /// pcapng (sections, interfaces, blocks).
    Pcapng,
}

/// Why a stream could not be opened as a capture.
#[derive(Debug, Error)]
pub(super) enum OpenError {
    #[error("the file is empty")]
    Empty,
    #[error("{what}")]
    NotACapture { what: String },
    #[error("reading failed: {0}")]
    Io(#[from] io::Error),
}

/// The last I/O error of a [`Filling`] reader, shared with whoever reads
/// through it.
pub(super) type LastError = Rc<Cell<Option<io::Error>>>;

/// A reader whose `read` fills the whole buffer unless the stream ends,
/// keeping the last error in [`LastError`].
pub(super) struct Filling {
    inner: Box<dyn Read + Send>,
    error: LastError,
}

impl std::fmt::Debug for Filling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Filling")
    }
}

impl Read for Filling {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.inner.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let kept = io::Error::new(e.kind(), e.to_string());
                    self.error.set(Some(e));
                    // What was read before the error is handed over first.
                    return if filled > 0 { Ok(filled) } else { Err(kept) };
                }
            }
        }
        Ok(filled)
    }
}

/// An opened capture: its container, whether it was gzip-compressed, and
/// the reader positioned at its first byte.
pub(super) struct Opened {
    pub format: Format,
    pub gzip: bool,
    pub reader: Filling,
    pub error: LastError,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("format", &self.format)
            .field("gzip", &self.gzip)
            .finish_non_exhaustive()
    }
}

/// Up to four bytes from the start of `reader`, and the reader again from
/// its first byte.
fn peek(mut reader: Box<dyn Read + Send>) -> io::Result<(Vec<u8>, Box<dyn Read + Send>)> {
    let mut head = Vec::with_capacity(4);
    let mut byte = [0u8; 4];
    while head.len() < 4 {
        match reader.read(&mut byte[..4 - head.len()]) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&byte[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let again = Box::new(io::Cursor::new(head.clone()).chain(reader));
    Ok((head, again))
}

const GZIP: [u8; 2] = [0x1f, 0x8b];
const PCAPNG: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];
/// pcap magics as the first four bytes: µs, ns and Kuznetzov's modified
/// format, in both byte orders.
const PCAP: [[u8; 4]; 6] = [
    [0xd4, 0xc3, 0xb2, 0xa1],
    [0xa1, 0xb2, 0xc3, 0xd4],
    [0x4d, 0x3c, 0xb2, 0xa1],
    [0xa1, 0xb2, 0x3c, 0x4d],
    [0x34, 0xcd, 0xb2, 0xa1],
    [0xa1, 0xb2, 0xcd, 0x34],
];

/// What a stream that is no capture looks like, and what to do instead.
fn not_a_capture(head: &[u8]) -> String {
    let bytes: Vec<String> = head.iter().map(|b| format!("{b:02x}")).collect();
    let starts = format!("it starts with {}", bytes.join(" "));
    let hint = if head.starts_with(b"PAR1") {
        "a Parquet file: read flow records with `observer classify` or `observer report`"
    } else if head.first().is_some_and(|b| matches!(b, b'{' | b'[')) {
        "JSON: Azure flow logs import as `azure-vnet-flow-log` or `azure-nsg-flow-log`"
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        "zstd-compressed: decompress it first (`zstd -d`); only gzip is read directly"
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X']) {
        "xz-compressed: decompress it first (`xz -d`); only gzip is read directly"
    } else if head.starts_with(b"BZh") {
        "bzip2-compressed: decompress it first (`bunzip2`); only gzip is read directly"
    } else {
        "write captures with `tcpdump -w`, dumpcap or tshark"
    };
    format!("not a pcap, pcapng or gzip-compressed capture ({starts}): {hint}")
}

/// Opens `raw` as a capture, decompressing gzip on the fly.
pub(super) fn open(raw: Box<dyn Read + Send>) -> Result<Opened, OpenError> {
    let (mut head, mut reader) = peek(raw)?;
    let gzip = head.starts_with(&GZIP);
    if gzip {
        (head, reader) = peek(Box::new(MultiGzDecoder::new(reader)))?;
    }
    let format = if head.is_empty() {
        return Err(if gzip {
            OpenError::NotACapture {
                what: "the gzip stream holds nothing".into(),
            }
        } else {
            OpenError::Empty
        });
    } else if head.as_slice() == PCAPNG {
        Format::Pcapng
    } else if PCAP.iter().any(|m| head.as_slice() == m) {
        Format::Pcap
    } else {
        let mut what = not_a_capture(&head);
        if gzip {
            what = format!("gzip-compressed, but {what}");
        }
        return Err(OpenError::NotACapture { what });
    };
    let error = LastError::default();
    Ok(Opened {
        format,
        gzip,
        reader: Filling {
            inner: reader,
            error: error.clone(),
        },
        error,
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn opened(bytes: &[u8]) -> Result<Opened, OpenError> {
        open(Box::new(io::Cursor::new(bytes.to_vec())))
    }

    /// A reader that hands over one byte per call, as a slow pipe may.
    struct Trickle(Vec<u8>, usize);

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.1 == self.0.len() || buf.is_empty() {
                return Ok(0);
            }
            buf[0] = self.0[self.1];
            self.1 += 1;
            Ok(1)
        }
    }

    #[test]
    fn gzip_is_found_by_its_magic_and_reads_fill_the_buffer() {
        let mut plain = PCAPNG.to_vec();
        plain.extend(0..200u8);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&plain).unwrap();
        let gz = gz.finish().unwrap();
        let mut opened = open(Box::new(Trickle(gz, 0))).unwrap();
        assert_eq!((opened.format, opened.gzip), (Format::Pcapng, true));
        let mut buf = vec![0; 150];
        assert_eq!(opened.reader.read(&mut buf).unwrap(), 150, "one read fills");
        assert_eq!(&buf[..], &plain[..150]);
        let mut rest = Vec::new();
        opened.reader.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, &plain[150..]);
    }

    #[test]
    fn every_pcap_magic_is_a_pcap() {
        for magic in PCAP {
            assert_eq!(opened(&magic).unwrap().format, Format::Pcap);
        }
    }

    #[test]
    fn other_files_say_what_they_look_like() {
        let message = |bytes: &[u8]| match opened(bytes) {
            Err(e) => e.to_string(),
            Ok(o) => panic!("opened as {:?}", o.format),
        };
        assert_eq!(message(b""), "the file is empty");
        assert!(message(b"PAR1xxxx").contains("observer classify"));
        assert!(message(b"{\"records\"").contains("azure-vnet-flow-log"));
        assert!(message(&[0x28, 0xb5, 0x2f, 0xfd]).contains("zstd -d"));
        let other = message(b"hello");
        assert!(
            other.contains("68 65 6c 6c") && other.contains("tcpdump -w"),
            "{other}"
        );
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"text").unwrap();
        assert!(message(&gz.finish().unwrap()).starts_with("gzip-compressed, but not a pcap"));
    }

    #[test]
    fn a_read_error_is_kept_after_the_bytes_before_it() {
        struct Failing(bool);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if std::mem::replace(&mut self.0, true) {
                    return Err(io::Error::other("disk on fire"));
                }
                buf[..4].copy_from_slice(&PCAPNG);
                Ok(4)
            }
        }
        let mut opened = open(Box::new(Failing(false))).unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(opened.reader.read(&mut buf).unwrap(), 4);
        assert!(opened.reader.read(&mut buf).is_err());
        assert_eq!(opened.error.take().unwrap().to_string(), "disk on fire");
    }
}
