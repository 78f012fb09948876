//! A topology TOML file through the loader and its validation.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = observer::fuzzing::topology(data);
});
