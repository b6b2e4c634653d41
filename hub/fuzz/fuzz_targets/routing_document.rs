//! A routing document (YAML or JSON): no panic, a valid one survives YAML and JSON.
#![no_main]

#[allow(dead_code)]
#[path = "../../../tests/support/properties.rs"]
mod properties;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    properties::check_routing_document(data);
});
