//! Flow-log blobs read and parsed on several threads, their records handed
//! over in input order: blob `i` goes to parser `i % parsers`, and the
//! caller takes the blobs' records back in the order of the inputs, so what
//! it writes (names, rows, summary lines) is what one thread would give.
//! With one parser the blobs are parsed on the caller's thread, each record
//! handed over as it is made (no chunks, no copy).
//!
//! How many parsers ([`parser_count`]): half the CPUs the process may run
//! on, at least one. The rest is for the caller's classification and the
//! Parquet encoders (one per CPU, `output.rs`), which take about two
//! thirds of the CPU time of an import; on two CPUs a parser thread only
//! adds the records' move between threads (about 1 s of CPU per 10M
//! records measured), so there the blobs are parsed on the caller's thread.
//!
//! Memory: a parser sends its records in chunks of [`CHUNK`] through a
//! queue of [`QUEUED`] chunks and waits when it is full, so at most
//! `parsers × (QUEUED + 1)` chunks exist besides the caller's batches,
//! whatever the size of a blob.

use std::{sync::mpsc, thread};

use super::{InputFile, Interner, Summary};
use crate::flow::FlowRecord;

/// Records a parser hands over at a time.
pub const CHUNK: usize = 8 * 1024;

/// Chunks a parser may have waiting for the caller.
const QUEUED: usize = 2;

/// What a parser says about one blob.
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "a record is moved by value to the output; boxing would allocate per record"
)]
pub enum Blob {
    /// The next record of the blob.
    Record(FlowRecord),
    /// The blob ended: what was read and skipped in it; `read` false when
    /// it could not be read at all (nothing of it was converted).
    Done { summary: Summary, read: bool },
}

/// What goes through a parser's queue.
enum Chunk {
    Records(Vec<FlowRecord>),
    Done { summary: Box<Summary>, read: bool },
}

/// Parsers to start: half the CPUs this process may run on, at least one.
pub fn parser_count() -> usize {
    (thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get) / 2).max(1)
}

/// Parses `files` on `parsers` threads with `parse` (which reads the blob,
/// counts into the summary it is given, hands each record to its `emit`,
/// and returns false when the blob could not be read) and hands every
/// blob's records, then its end, to `take` in input order. `take` returns
/// false to stop: the rest of the blob is not taken, no further blob is,
/// and the parsers stop at their next chunk.
pub fn parse_in_order<P>(
    files: &[InputFile],
    parsers: usize,
    parse: P,
    take: &mut dyn FnMut(usize, Blob) -> bool,
) where
    P: Fn(&InputFile, &mut Summary, &mut Interner, &mut dyn FnMut(FlowRecord)) -> bool + Sync,
{
    let parsers = parsers.clamp(1, files.len().max(1));
    if parsers == 1 {
        let mut interner = Interner::default();
        for (index, file) in files.iter().enumerate() {
            let mut summary = Summary::default();
            let mut open = true;
            let read = parse(file, &mut summary, &mut interner, &mut |record| {
                if open {
                    open = take(index, Blob::Record(record));
                }
            });
            if !open || !take(index, Blob::Done { summary, read }) {
                return;
            }
        }
        return;
    }
    thread::scope(|scope| {
        let mut queues = Vec::with_capacity(parsers);
        for first in 0..parsers {
            let (sender, receiver) = mpsc::sync_channel::<Chunk>(QUEUED);
            queues.push(receiver);
            let parse = &parse;
            thread::Builder::new()
                .name(format!("parse-{first}"))
                .spawn_scoped(scope, move || {
                    // One interner per parser: strings are shared within
                    // its blobs (classification compares text, not only
                    // pointers).
                    let mut interner = Interner::default();
                    for file in files.iter().skip(first).step_by(parsers) {
                        let mut summary = Summary::default();
                        let mut chunk = Vec::with_capacity(CHUNK);
                        let mut open = true;
                        let read = parse(file, &mut summary, &mut interner, &mut |record| {
                            if !open {
                                return;
                            }
                            chunk.push(record);
                            if chunk.len() >= CHUNK {
                                let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                                open = sender.send(Chunk::Records(full)).is_ok();
                            }
                        });
                        if !open
                            || (!chunk.is_empty() && sender.send(Chunk::Records(chunk)).is_err())
                            || sender
                                .send(Chunk::Done {
                                    summary: Box::new(summary),
                                    read,
                                })
                                .is_err()
                        {
                            // The caller stopped.
                            return;
                        }
                    }
                })
                .expect("spawning a parser thread");
        }
        'blobs: for index in 0..files.len() {
            let queue = &queues[index % parsers];
            loop {
                // A parser that panicked closed its queue: stop, and let
                // the scope pass the panic on.
                match queue.recv() {
                    Ok(Chunk::Records(records)) => {
                        for record in records {
                            if !take(index, Blob::Record(record)) {
                                break 'blobs;
                            }
                        }
                    }
                    Ok(Chunk::Done { summary, read }) => {
                        if !take(
                            index,
                            Blob::Done {
                                summary: *summary,
                                read,
                            },
                        ) {
                            break 'blobs;
                        }
                        break;
                    }
                    Err(_) => break 'blobs,
                }
            }
        }
        // Closing the queues stops parsers still at work.
        drop(queues);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{files::schema::tests::sample, storage::Location};

    fn files(n: usize) -> Vec<InputFile> {
        (0..n)
            .map(|i| InputFile {
                location: Location::Local("/nowhere".into()),
                relative: format!("{i}.json"),
                display: format!("/nowhere/{i}.json"),
            })
            .collect()
    }

    /// Blob `i` holds `i * 3000` records numbered by blob; blob 3 cannot be
    /// read. Whatever the number of parsers, records come back whole and
    /// in input order, each blob's end after its records.
    fn run(parsers: usize, stop_after: Option<usize>) -> (Vec<(usize, Option<u16>)>, Summary) {
        let files = files(7);
        let mut seen = Vec::new();
        let mut total = Summary::default();
        parse_in_order(
            &files,
            parsers,
            |file, summary, _, emit| {
                let i: usize = file.relative.trim_end_matches(".json").parse().unwrap();
                summary.files += 1;
                if i == 3 {
                    summary.unreadable += 1;
                    return false;
                }
                for n in 0..i * 3000 {
                    summary.records_in += 1;
                    emit(sample((i * 10_000 + n % 10_000) as u16));
                }
                true
            },
            &mut |index, blob| match blob {
                Blob::Record(record) => {
                    seen.push((index, record.src_port));
                    true
                }
                Blob::Done { summary, read } => {
                    assert_eq!(read, index != 3);
                    total.files += summary.files;
                    total.records_in += summary.records_in;
                    total.unreadable += summary.unreadable;
                    stop_after != Some(index)
                }
            },
        );
        (seen, total)
    }

    #[test]
    fn records_come_back_in_input_order_whatever_the_parsers() {
        let (one, summary) = run(1, None);
        let expected: usize = (0..7).filter(|&i| i != 3).map(|i| i * 3000).sum();
        assert_eq!(one.len(), expected);
        assert_eq!((summary.files, summary.unreadable), (7, 1));
        assert_eq!(summary.records_in as usize, expected);
        assert!(one.windows(2).all(|w| w[0].0 <= w[1].0), "blobs in order");
        for parsers in [2, 3, 8] {
            let (many, again) = run(parsers, None);
            assert!(many == one, "{parsers} parsers gave other records or order");
            assert_eq!(again, summary);
        }
    }

    #[test]
    fn stopping_early_ends_the_parsers() {
        for parsers in [1, 3] {
            let (seen, summary) = run(parsers, Some(2));
            assert_eq!(summary.files, 3, "blobs 0, 1, 2 taken, then stopped");
            assert_eq!(seen.len(), 3000 + 6000);
        }
    }
}
