//! One local-mode manifest file: no panic, every problem names the file.
#![no_main]

#[allow(dead_code)]
#[path = "../../../tests/support/properties.rs"]
mod properties;
#[allow(dead_code)]
#[path = "../../../tests/support/properties_operator.rs"]
mod properties_operator;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    properties_operator::check_manifests(data);
});
