//! Azure exports (ARM templates with their expressions, `az` JSON; several
//! separated by NUL bytes) through `topology import --lab`, and the TOML
//! it writes back through the loader.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = observer::fuzzing::azure_export(data);
});
