//! A capture file (pcap or pcapng, gzipped or not) as `observer import
//! --kind pcap` reads it.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let outcome = observer::fuzzing::capture(data);
    assert!(!outcome.summary.is_empty());
});
