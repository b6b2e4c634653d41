//! One stratum line, both directions (miner → hub and pool → hub): no panic, parse ∘ encode = id.
#![no_main]

#[allow(dead_code)]
#[path = "../../../tests/support/properties.rs"]
mod properties;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    properties::check_stratum_line(data);
});
