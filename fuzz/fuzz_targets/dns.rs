//! A DNS response as the pipeline reads it: hickory parse, CNAME chain,
//! the tracker, and a lookup of every address it gave.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = observer::fuzzing::dns(data);
});
