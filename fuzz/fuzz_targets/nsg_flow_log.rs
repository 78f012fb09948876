//! An NSG flow-log blob (version 1 or 2) as `observer import --kind
//! azure-nsg-flow-log` reads it.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let outcome = observer::fuzzing::nsg_flow_log(data);
    assert!(!outcome.summary.is_empty());
});
