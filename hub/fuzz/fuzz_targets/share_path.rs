//! A pool notify and a miner submit through the hub's share path: the hub and the pool hash alike.
#![no_main]

#[allow(dead_code)]
#[path = "../../../tests/support/properties.rs"]
mod properties;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    properties::check_share_path(data);
});
