//! The properties every parser of outside input must keep, written once and checked twice: by the
//! property tests of the normal suite (`tests/prop_parsers.rs`, random and structured input) and
//! by the cargo-fuzz targets in `hub/fuzz` (coverage-guided input, run for minutes).
//!
//! Each `check_*` takes arbitrary bytes, must never panic on them, and panics (failing the
//! property test, or reporting a crash to the fuzzer) when a round trip breaks: what a parser
//! accepted, encoded again, must parse back to the same thing (parse ∘ encode = id on the
//! parsed value), and what the hub checks a share against must be what the pool will hash.
//!
//! This file uses the hub crate only (the fuzz crate includes it by path and builds the hub's
//! targets without the operator); the operator's inputs are in `properties_operator.rs`.

use hashsched_hub::extranonce::pool_extranonce2;
use hashsched_hub::jobs::{JobVariant, PoolJob};
use hashsched_hub::protocol::{
    self, ConfigureResult, Message, MinerRequest, Notify, ServerRequest, StratumError, Submit,
    SubscribeResult,
};
use hashsched_hub::routing::{RoutingDocument, SecretStore, ValidRouting};
use hashsched_hub::share::{self, JobTemplate, Target};
use serde_json::Value;
use std::sync::Arc;

/// One line of the stratum codec, in both directions (a line a miner sends the hub, and a line
/// a pool sends the hub): parse, and if a typed message comes out, encode it and parse again.
pub fn check_stratum_line(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The two shortcuts of the share path say nothing the generic parser would not: the
    // pool's common answer, and a miner's typed `mining.submit`.
    assert_eq!(
        protocol::parse_line(text),
        protocol::parse_line_without_shortcut(text),
        "parse_line's shortcut and the generic parser disagree"
    );
    if let Some((id, fast)) = Submit::parse_line(text) {
        let fast = (id, fast.to_submit());
        let generic = match protocol::parse_line(text) {
            Ok(Message::Request(r)) => match MinerRequest::parse(&r.method, &r.params) {
                Ok(Some(MinerRequest::Submit(s))) => Some((r.id, s)),
                _ => None,
            },
            _ => None,
        };
        assert_eq!(
            Some(fast),
            generic,
            "typed submit parser and the generic path disagree"
        );
    }
    let Ok(msg) = protocol::parse_line(text) else {
        return;
    };
    match msg {
        Message::Request(req) => {
            if let Ok(Some(r)) = MinerRequest::parse(&req.method, &req.params) {
                round_trip_miner_request(&r, &req.id);
            }
            if let Ok(Some(r)) = ServerRequest::parse(&req.method, &req.params) {
                round_trip_server_request(&r, &req.id);
            }
        }
        Message::Response(resp) => {
            // The shapes the hub reads from a pool's answers.
            if let Ok(s) = SubscribeResult::from_value(&resp.result) {
                let again = SubscribeResult::from_value(&s.to_value())
                    .expect("an encoded subscribe result parses");
                assert_eq!(again, s, "subscribe result round trip");
            }
            // Lenient reading normalizes (a mask without `version-rolling: true` is dropped):
            // the encoded form is a fixed point.
            let c = ConfigureResult::from_value(&resp.result);
            assert_eq!(
                ConfigureResult::from_value(&c.to_value()).to_value(),
                c.to_value(),
                "configure result round trip"
            );
            let _ = c.granted_mask();
            if let Some(e) = &resp.error {
                let back =
                    StratumError::from_value(&e.to_value()).expect("an encoded error parses");
                assert_eq!(&back, e, "stratum error round trip");
            }
            // Our own answer lines parse back to what we meant (a null result without an error
            // is not an answer the hub ever writes).
            if !resp.result.is_null() {
                let line = protocol::result_line(&resp.id, &resp.result);
                assert_response(&line, &resp.id, &resp.result, None);
            }
            if let Some(e) = &resp.error {
                let line = protocol::error_line(&resp.id, e.code, &e.message);
                assert_response(&line, &resp.id, &Value::Null, Some(e.code));
            }
        }
    }
}

/// Equal, or both numbers within a few ulps: serde_json (without its `float_roundtrip`
/// feature) may read a float back one ulp off. Nothing in stratum depends on the last ulp of a
/// difficulty or of a float id.
pub fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) if x.is_finite() => close(x, y),
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_value(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_value(v, w)))
        }
        _ => a == b,
    }
}

/// Within 4 ulps.
pub fn close(a: f64, b: f64) -> bool {
    a == b
        || (a - b).abs() <= a.abs().max(b.abs()) * 4.0 * f64::EPSILON
        // Subnormals carry fewer significant bits, so a relative bound is too tight there:
        // count the representable values between the two instead.
        || (a.is_sign_positive() == b.is_sign_positive() && a.to_bits().abs_diff(b.to_bits()) <= 4)
}

fn assert_response(line: &str, id: &Value, result: &Value, code: Option<i64>) {
    assert!(
        line.ends_with('\n') && line.matches('\n').count() == 1,
        "one line: {line:?}"
    );
    match protocol::parse_line(line) {
        Ok(Message::Response(r)) => {
            assert!(same_value(&r.id, id), "{line}");
            assert!(same_value(&r.result, result), "{line}");
            assert_eq!(r.error.as_ref().map(|e| e.code), code, "{line}");
        }
        other => panic!("our answer {line:?} parses as {other:?}"),
    }
}

/// `parse(encode(r)) == r` for a typed miner request, and the line is one line.
pub fn round_trip_miner_request(r: &MinerRequest, id: &Value) {
    let line = r.to_line(id);
    assert!(
        line.ends_with('\n') && line.matches('\n').count() == 1,
        "one line: {line:?}"
    );
    let Ok(Message::Request(req)) = protocol::parse_line(&line) else {
        panic!("our own request line does not parse: {line:?}");
    };
    assert!(same_value(&req.id, id), "{line}");
    assert_eq!(req.method, r.method());
    let back = MinerRequest::parse(&req.method, &req.params)
        .unwrap_or_else(|e| panic!("our own {line:?} is refused: {e}"))
        .expect("a known method");
    // Encoding normalizes (a missing password becomes "x", numbers become strings): the
    // encoded form is a fixed point, and equal to the value whenever nothing was normalized.
    let again = back.to_line(id);
    assert!(
        same_line(&again, &line),
        "encode ∘ parse ∘ encode = encode: {line} → {again}"
    );
    if normalized_miner_request(r) {
        return;
    }
    let same = match (&back, r) {
        (MinerRequest::SuggestDifficulty(a), MinerRequest::SuggestDifficulty(b)) => close(*a, *b),
        (MinerRequest::Configure(a), MinerRequest::Configure(b)) => {
            a.extensions == b.extensions
                && a.version_rolling_mask == b.version_rolling_mask
                && a.version_rolling_min_bit_count == b.version_rolling_min_bit_count
                && match (a.minimum_difficulty, b.minimum_difficulty) {
                    (Some(x), Some(y)) => close(x, y),
                    (x, y) => x == y,
                }
        }
        (a, b) => a == b,
    };
    assert!(same, "parse ∘ encode = id for {line:?}: {back:?} vs {r:?}");
}

/// Two lines carry the same JSON (up to float ulps).
fn same_line(a: &str, b: &str) -> bool {
    match (
        serde_json::from_str::<Value>(a),
        serde_json::from_str::<Value>(b),
    ) {
        (Ok(x), Ok(y)) => same_value(&x, &y),
        _ => a == b,
    }
}

/// True when encoding `r` fills in something the parse did not have.
fn normalized_miner_request(r: &MinerRequest) -> bool {
    match r {
        MinerRequest::Authorize(a) => a.password.is_none(),
        MinerRequest::Subscribe(s) => s.user_agent.is_none() && s.session.is_some(),
        _ => false,
    }
}

/// `parse(encode(r)) == r` for a typed pool → hub message.
pub fn round_trip_server_request(r: &ServerRequest, id: &Value) {
    let line = r.to_line(id);
    assert!(
        line.ends_with('\n') && line.matches('\n').count() == 1,
        "one line: {line:?}"
    );
    let Ok(Message::Request(req)) = protocol::parse_line(&line) else {
        panic!("our own request line does not parse: {line:?}");
    };
    let back = ServerRequest::parse(&req.method, &req.params)
        .unwrap_or_else(|e| panic!("our own {line:?} is refused: {e}"))
        .expect("a known method");
    let again = back.to_line(id);
    assert!(
        same_line(&again, &line),
        "encode ∘ parse ∘ encode = encode: {line} → {again}"
    );
    let normalized = match r {
        // Reconnect encodes port/wait only behind a host (positional parameters).
        ServerRequest::Reconnect(c) => {
            (c.host.is_none() && (c.port.is_some() || c.wait_seconds.is_some()))
                || (c.port.is_none() && c.wait_seconds.is_some())
        }
        _ => false,
    };
    let same = match (&back, r) {
        (ServerRequest::SetDifficulty(a), ServerRequest::SetDifficulty(b)) => close(*a, *b),
        (a, b) => a == b,
    };
    assert!(
        normalized || same,
        "parse ∘ encode = id for {line:?}: {back:?} vs {r:?}"
    );
}

/// A pool's notify and a miner's submit, both from the same bytes, through the hub's share path:
/// the job variant the hub builds for its miners, the hash it checks the share with, and the hash
/// the pool will compute from what the hub forwards must be one and the same. Layout of `data`:
/// one line of notify params (a JSON array), one line of submit params, then up to 16 bytes of
/// knobs (pool extranonce1, sizes, salt, mask).
pub fn check_share_path(data: &[u8]) {
    let mut parts = data.splitn(3, |&b| b == b'\n');
    let (Some(notify), Some(submit)) = (parts.next(), parts.next()) else {
        return;
    };
    let knobs = parts.next().unwrap_or(&[]);
    let knob = |i: usize| knobs.get(i).copied().unwrap_or(0);
    let Ok(notify) = serde_json::from_slice::<Value>(notify) else {
        return;
    };
    let Ok(submit) = serde_json::from_slice::<Value>(submit) else {
        return;
    };
    let Ok(Some(ServerRequest::Notify(n))) = ServerRequest::parse("mining.notify", &notify) else {
        return;
    };
    round_trip_server_request(&ServerRequest::Notify(n.clone()), &Value::Null);
    let Ok(Some(MinerRequest::Submit(s))) = MinerRequest::parse("mining.submit", &submit) else {
        return;
    };
    round_trip_miner_request(&MinerRequest::Submit(s.clone()), &Value::from(4));
    let pool_e1: Vec<u8> = knobs
        .iter()
        .skip(8)
        .take(usize::from(knob(0) % 9))
        .copied()
        .collect();
    let tail_bytes = usize::from(knob(1) % 4);
    let miner_en2 = s.extranonce2.len();
    let pool_n2 = tail_bytes + miner_en2 + usize::from(knob(2) % 5);
    if pool_n2 > protocol::MAX_EXTRANONCE_BYTES {
        // A pool announcing a larger extranonce2 is refused at subscribe
        // (`extranonce2_size too large`): the hub never builds work for one.
        return;
    }
    let salt = u64::from(knob(3)) | (u64::from(knob(4)) << 8);
    let mask = u32::from_be_bytes([knob(5), knob(6), knob(7), 0]) & 0x1fff_e000;
    let tail: Vec<u8> = (0..tail_bytes as u8).collect();
    check_share(
        &n,
        &s.extranonce2,
        s.ntime,
        s.nonce,
        s.version_bits,
        &pool_e1,
        pool_n2,
        tail_bytes,
        &tail,
        salt,
        mask,
    );
}

/// The share path invariant for one notify/submit pair (see [`check_share_path`]).
#[allow(clippy::too_many_arguments)]
pub fn check_share(
    n: &Notify,
    en2: &[u8],
    ntime: u32,
    nonce: u32,
    version_bits: Option<u32>,
    pool_e1: &[u8],
    pool_n2: usize,
    tail_bytes: usize,
    tail: &[u8],
    salt: u64,
    mask: u32,
) {
    if n.coinb1.len() + pool_e1.len() + pool_n2 > protocol::MAX_COINBASE_PART_BYTES {
        return; // the hub refuses such a job (its miners could not take the folded coinb1)
    }
    let job = Arc::new(PoolJob::new(
        1,
        Arc::from("p"),
        n.clone(),
        pool_e1.to_vec(),
        pool_n2,
        1.0,
        Target::from_difficulty(1.0).expect("difficulty 1"),
        mask,
    ));
    let Some(v) = JobVariant::build(job, Arc::from("hub-1"), tail_bytes, en2.len(), salt) else {
        panic!(
            "pool n2 {pool_n2} holds tail {tail_bytes} + en2 {}",
            en2.len()
        );
    };
    // The line the miner gets parses back to the variant's notify.
    let line = std::str::from_utf8(&v.line).expect("UTF-8 job line");
    let Ok(Message::Request(req)) = protocol::parse_line(line) else {
        panic!("job line does not parse: {line}");
    };
    let Ok(Some(ServerRequest::Notify(sent))) = ServerRequest::parse(&req.method, &req.params)
    else {
        panic!("job line is not a notify: {line}");
    };
    assert_eq!(sent, v.notify);
    let version = v.template.rolled_version(version_bits, mask);
    // What the hub checks (miner view: folded coinb1, the miner's tail as extranonce1).
    let hub_hash = v.template.share_hash(tail, en2, ntime, nonce, version);
    // What the pool checks (pool view: its coinb1 and extranonce1, the forwarded extranonce2).
    let pool_template = JobTemplate::new(
        share::swap32(n.prevhash),
        n.coinb1.clone(),
        n.coinb2.clone(),
        n.merkle_branch.clone(),
        n.version,
        n.nbits,
        n.ntime,
    );
    let forwarded = pool_extranonce2(&v.pad, tail, en2)
        .expect("a variant's pad, tail and extranonce2 fit the pool's (at most 32 bytes)");
    assert_eq!(
        forwarded.len(),
        pool_n2,
        "forwarded extranonce2 has the pool's size"
    );
    let pool_hash = pool_template.share_hash(pool_e1, &forwarded, ntime, nonce, version);
    assert_eq!(
        hub_hash, pool_hash,
        "hub and pool hash the same share differently"
    );
    // The midstate shortcut equals the plain computation.
    let coinbase = pool_template.coinbase(pool_e1, &forwarded);
    let root = share::merkle_root(&coinbase, &n.merkle_branch);
    let header = share::build_header(
        version,
        pool_template.prevhash(),
        &root,
        ntime,
        n.nbits,
        nonce,
    );
    assert_eq!(
        share::header_hash(&header),
        hub_hash,
        "midstate path differs from the plain one"
    );
    // Only masked bits move.
    assert_eq!(version & !mask, n.version & !mask);
}

/// A routing document (YAML or JSON): never a panic; a valid one survives YAML and JSON.
pub fn check_routing_document(data: &[u8]) {
    let _ = ValidRouting::from_bytes(data, &SecretStore::none());
    let Ok(doc) = RoutingDocument::parse(data) else {
        return;
    };
    if doc.validate().is_err() {
        return;
    }
    let yaml = serde_yaml::to_string(&doc).expect("a document serializes to YAML");
    let from_yaml = RoutingDocument::parse(yaml.as_bytes())
        .unwrap_or_else(|e| panic!("our YAML does not parse: {e}\n{yaml}"));
    assert_eq!(from_yaml, doc, "YAML round trip");
    let json = serde_json::to_vec(&doc).expect("a document serializes to JSON");
    let from_json = RoutingDocument::parse(&json).unwrap_or_else(|e| {
        panic!(
            "our JSON does not parse: {e}\n{}",
            String::from_utf8_lossy(&json)
        )
    });
    assert_eq!(from_json, doc, "JSON round trip");
}

/// The hub's small grammars (routing durations — the project's one duration grammar — pool URLs, worker name templates, hex fields,
/// difficulties): never a panic; what parses prints in a form that parses back the same.
pub fn check_hub_quantities(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    use hashsched_hub::routing::{DurationSpec, PoolUrl, WorkerNameTemplate};
    if let Ok(d) = s.parse::<DurationSpec>() {
        assert_eq!(
            d.to_string().parse::<DurationSpec>(),
            Ok(d),
            "duration {s:?}"
        );
    }
    if let Ok(u) = PoolUrl::parse(s) {
        let again = PoolUrl::parse(&u.to_string())
            .unwrap_or_else(|e| panic!("pool URL {s:?} prints as {u} which is refused: {e}"));
        assert_eq!(again.to_string(), u.to_string(), "pool URL {s:?}");
    }
    if let Ok(t) = WorkerNameTemplate::parse(s) {
        let _ = t.render("user", "worker");
    }
    let _ = protocol::parse_hex_u32(s);
    let _ = protocol::parse_hex_bytes(s, 64);
    if let Ok(d) = s.trim().parse::<f64>()
        && protocol::check_difficulty(d).is_ok()
    {
        // A difficulty survives its JSON form (integers are written without a fraction).
        let v = protocol::difficulty_value(d);
        let back: f64 = serde_json::from_str::<Value>(&v.to_string())
            .expect("difficulty JSON")
            .as_f64()
            .expect("a number");
        assert!(close(back, d), "difficulty {d} → {v} → {back}");
        if let Ok(t) = Target::from_difficulty(d) {
            assert!(t.difficulty() > 0.0);
        }
    }
}
