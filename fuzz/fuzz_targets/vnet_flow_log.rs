//! A VNet flow-log blob as `observer import --kind azure-vnet-flow-log`
//! reads it: byte-order marks, the `{"records": [...]}` walk, every tuple.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let outcome = observer::fuzzing::vnet_flow_log(data);
    assert!(!outcome.summary.is_empty());
});
