//! Frames of one link type (the first byte picks it and a snap length)
//! through the capture import: link header, VLANs, IP, ports, direction,
//! flows, DNS answers.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = observer::fuzzing::frames(data);
});
