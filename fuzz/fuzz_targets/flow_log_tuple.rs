//! One flow-log tuple: the first byte picks VNet or NSG (and its version),
//! the rest is the tuple's text.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = observer::fuzzing::flow_log_tuple(data);
});
