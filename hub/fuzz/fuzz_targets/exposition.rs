//! The Prometheus text the operator scrapes from hub pods: no panic, parse ∘ encode = id.
#![no_main]

#[allow(dead_code)]
#[path = "../../../tests/support/properties.rs"]
mod properties;
#[allow(dead_code)]
#[path = "../../../tests/support/properties_operator.rs"]
mod properties_operator;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    properties_operator::check_exposition(data);
});
