//! One stratum line, both directions (miner → hub and pool → hub): no panic, parse ∘ encode = id.
//!
//! A line that is not UTF-8 never reaches the parsers (`check_stratum_line` returns early, as the
//! hub does): the hub answers a miner's with one error line (id null, code 20, `downstream.rs`
//! `on_line`) and counts and drops a pool's. Such inputs are checked here too: the answer parses
//! back to what the hub means, and what is text in them (the valid prefix, and the whole line
//! decoded lossily) goes through the parsers, so the fuzzer's byte-level mutations still test them.
#![no_main]

#[allow(dead_code)]
#[path = "../../../tests/support/properties.rs"]
mod properties;

use hashsched_hub::protocol::{self, Message, error_code};
use serde_json::Value;

/// What the hub writes to a miner whose line is not UTF-8 (`downstream.rs`, `on_line`).
const NOT_UTF8_ANSWER: &str = "line is not UTF-8";

fn check(data: &[u8]) {
    properties::check_stratum_line(data);
    let Err(e) = std::str::from_utf8(data) else {
        return;
    };
    let answer = protocol::error_line(&Value::Null, error_code::OTHER, NOT_UTF8_ANSWER);
    assert!(
        answer.ends_with('\n') && answer.matches('\n').count() == 1,
        "one line: {answer:?}"
    );
    match protocol::parse_line(&answer) {
        Ok(Message::Response(r)) => {
            assert!(r.id.is_null(), "{answer}");
            let err = r.error.expect("an error answer");
            assert_eq!(err.code, error_code::OTHER, "{answer}");
            assert_eq!(err.message, NOT_UTF8_ANSWER, "{answer}");
        }
        other => panic!("the not-UTF-8 answer {answer:?} parses as {other:?}"),
    }
    properties::check_stratum_line(&data[..e.valid_up_to()]);
    properties::check_stratum_line(String::from_utf8_lossy(data).as_bytes());
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| check(data));
