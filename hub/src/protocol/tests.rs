//! Unit tests of the codec: round trips of every method and the lenient/precise parsing rules.

use serde_json::json;

use super::*;

#[test]
fn parses_request_with_numeric_and_string_ids_and_echoes_them() {
    let m = parse_line(
        r#"{"id":4,"method":"mining.submit","params":["w","1","00","00000000","00000000"]}"#,
    )
    .unwrap();
    let Message::Request(r) = m else { panic!() };
    assert_eq!(r.id, json!(4));
    assert_eq!(
        true_line(&r.id),
        "{\"id\":4,\"result\":true,\"error\":null}\n"
    );
    let m = parse_line(r#"{"id":"abc","method":"mining.subscribe","params":[]}"#).unwrap();
    let Message::Request(r) = m else { panic!() };
    assert_eq!(
        error_line(&r.id, 21, "Job \"x\""),
        "{\"id\":\"abc\",\"result\":null,\"error\":[21,\"Job \\\"x\\\"\",null]}\n"
    );
}

#[test]
fn notification_has_null_id() {
    let l = ServerRequest::SetDifficulty(1024.0).to_notification();
    assert_eq!(
        l,
        "{\"id\":null,\"method\":\"mining.set_difficulty\",\"params\":[1024]}\n"
    );
    let Message::Request(r) = parse_line(&l).unwrap() else {
        panic!()
    };
    assert!(r.is_notification());
    assert_eq!(
        ServerRequest::parse(&r.method, &r.params).unwrap(),
        Some(ServerRequest::SetDifficulty(1024.0))
    );
}

#[test]
fn responses_with_various_error_shapes() {
    let cases = [
        (
            r#"{"id":1,"result":null,"error":[21,"Job not found",null]}"#,
            Some(21),
        ),
        (
            r#"{"id":1,"result":null,"error":{"code":23,"message":"low"}}"#,
            Some(23),
        ),
        (r#"{"id":1,"result":false,"error":"nope"}"#, Some(20)),
        (r#"{"id":1,"result":true,"error":null}"#, None),
        (r#"{"id":1,"result":true}"#, None),
    ];
    for (line, code) in cases {
        let Message::Response(r) = parse_line(line).unwrap() else {
            panic!("{line}")
        };
        assert_eq!(r.error.as_ref().map(|e| e.code), code, "{line}");
    }
}

#[test]
fn junk_gives_errors_not_panics() {
    for line in [
        "",
        "x",
        "[]",
        "42",
        "{",
        "{\"id\":1}",
        "{\"method\":5}",
        "\u{0}\u{1}",
    ] {
        assert!(parse_line(line).is_err(), "{line:?}");
    }
}

#[test]
fn submit_round_trip_and_bad_fields() {
    let s = Submit {
        worker: "acct.w1".into(),
        job_id: "1a".into(),
        extranonce2: vec![0, 0, 0, 1],
        ntime: 0x4dd7f5c7,
        nonce: 0x9546a142,
        version_bits: Some(0x0000_2000),
    };
    let line = MinerRequest::Submit(s.clone()).to_line(&json!(7));
    let Message::Request(r) = parse_line(&line).unwrap() else {
        panic!()
    };
    assert_eq!(
        MinerRequest::parse(&r.method, &r.params).unwrap(),
        Some(MinerRequest::Submit(s))
    );

    let bad = [
        (
            json!(["w", "1", "zz", "00000000", "00000000"]),
            "extranonce2",
        ),
        (
            json!(["w", "1", "000", "00000000", "00000000"]),
            "extranonce2",
        ),
        (json!(["w", "1", "00", "123456789", "00000000"]), "ntime"),
        (json!(["w", "1", "00", "00000000", 5]), "nonce"),
        (json!(["w", "1", "00", "00000000"]), "nonce"),
        (json!([1, "1", "00", "00000000", "00000000"]), "worker"),
        (json!("w"), "params"),
    ];
    for (params, field) in bad {
        let e = MinerRequest::parse(method::SUBMIT, &params).unwrap_err();
        assert!(e.to_string().contains(field), "{e} should name {field}");
    }
    // numeric job ids are accepted as strings
    let Some(MinerRequest::Submit(s)) =
        MinerRequest::parse(method::SUBMIT, &json!(["w", 12, "00", "1", "2"])).unwrap()
    else {
        panic!()
    };
    assert_eq!(s.job_id, "12");
}

#[test]
fn notify_round_trip() {
    let n = Notify {
        job_id: "j1".into(),
        prevhash: [0xab; 32],
        coinb1: vec![1, 2, 3],
        coinb2: vec![4, 5],
        merkle_branch: vec![[7; 32], [8; 32]],
        version: 0x2000_0000,
        nbits: 0x1a44b9f2,
        ntime: 0x4dd7f5c7,
        clean_jobs: true,
    };
    let line = n.to_line();
    assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'));
    let Message::Request(r) = parse_line(&line).unwrap() else {
        panic!()
    };
    assert_eq!(
        ServerRequest::parse(&r.method, &r.params).unwrap(),
        Some(ServerRequest::Notify(n))
    );
    // short branch entry is rejected precisely
    let mut p = r.params.clone();
    p[4] = json!(["abcd"]);
    let e = ServerRequest::parse(method::NOTIFY, &p).unwrap_err();
    assert!(e.to_string().contains("merkle_branch"));
}

#[test]
fn configure_round_trip_and_result() {
    let c = Configure {
        extensions: vec![
            "version-rolling".into(),
            "minimum-difficulty".into(),
            "subscribe-extranonce".into(),
        ],
        version_rolling_mask: Some(0x1fffe000),
        version_rolling_min_bit_count: Some(2),
        minimum_difficulty: Some(512.0),
    };
    let line = MinerRequest::Configure(c.clone()).to_line(&json!(1));
    let Message::Request(r) = parse_line(&line).unwrap() else {
        panic!()
    };
    assert_eq!(
        MinerRequest::parse(&r.method, &r.params).unwrap(),
        Some(MinerRequest::Configure(c))
    );
    let res = ConfigureResult {
        version_rolling: Some(true),
        version_rolling_mask: Some(0x1fffe000),
        minimum_difficulty: Some(false),
        subscribe_extranonce: Some(true),
        unsupported: vec!["foo".into()],
    };
    let v = res.to_value();
    assert_eq!(v["version-rolling.mask"], json!("1fffe000"));
    assert_eq!(v["foo"], json!(false));
    assert_eq!(ConfigureResult::from_value(&v), res);
    assert_eq!(ConfigureResult::from_value(&json!(null)).granted_mask(), 0);
}

#[test]
fn subscribe_result_round_trip_and_lenient_shapes() {
    let r = SubscribeResult {
        subscriptions: standard_subscriptions("s1"),
        extranonce1: vec![0xde, 0xad, 0xbe, 0xef],
        extranonce2_size: 4,
    };
    assert_eq!(SubscribeResult::from_value(&r.to_value()).unwrap(), r);
    let single = json!([
        ["mining.notify", "ae6812eb4cd7735a302a8a9dd95cf71f"],
        "08000002",
        4
    ]);
    let p = SubscribeResult::from_value(&single).unwrap();
    assert_eq!(p.extranonce1, vec![8, 0, 0, 2]);
    assert_eq!(p.subscriptions.len(), 1);
    assert!(SubscribeResult::from_value(&json!([[], "xyz", 4])).is_err());
    assert!(SubscribeResult::from_value(&json!([[], "00", 400])).is_err());
}

#[test]
fn server_requests_round_trip() {
    let all = [
        ServerRequest::SetDifficulty(0.5),
        ServerRequest::SetExtranonce(SetExtranonce {
            extranonce1: vec![1, 2],
            extranonce2_size: 6,
        }),
        ServerRequest::SetVersionMask(0x1fffe000),
        ServerRequest::Reconnect(Reconnect {
            host: Some("h".into()),
            port: Some(3333),
            wait_seconds: Some(5),
        }),
        ServerRequest::Reconnect(Reconnect::default()),
        ServerRequest::GetVersion,
        ServerRequest::ShowMessage("hello".into()),
    ];
    for m in all {
        let line = m.to_line(&json!(9));
        let Message::Request(r) = parse_line(&line).unwrap() else {
            panic!()
        };
        assert_eq!(ServerRequest::parse(&r.method, &r.params).unwrap(), Some(m));
    }
    assert_eq!(ServerRequest::parse("x.y", &json!([])).unwrap(), None);
    assert!(ServerRequest::parse(method::SET_DIFFICULTY, &json!([-1])).is_err());
    assert!(ServerRequest::parse(method::SET_DIFFICULTY, &json!(["nan"])).is_err());
}

#[test]
fn miner_requests_round_trip() {
    let all = [
        MinerRequest::Subscribe(Subscribe {
            user_agent: Some("cpuminer/2.5.1".into()),
            session: None,
        }),
        MinerRequest::ExtranonceSubscribe,
        MinerRequest::Authorize(Authorize {
            user: "a.b".into(),
            password: Some("x".into()),
        }),
        MinerRequest::SuggestDifficulty(1000.0),
    ];
    for m in all {
        let line = m.to_line(&json!("id"));
        let Message::Request(r) = parse_line(&line).unwrap() else {
            panic!()
        };
        assert_eq!(MinerRequest::parse(&r.method, &r.params).unwrap(), Some(m));
    }
    assert_eq!(MinerRequest::parse("mining.foo", &json!([])).unwrap(), None);
}

#[test]
fn hex_u32_rules() {
    assert_eq!(parse_hex_u32("1fffe000"), Ok(0x1fffe000));
    assert_eq!(parse_hex_u32("2000"), Ok(0x2000));
    assert!(parse_hex_u32("").is_err());
    assert!(parse_hex_u32("+1").is_err());
    assert!(parse_hex_u32("123456789").is_err());
    assert_eq!(hex_u32(1), "00000001");
}

// ---------------------------------------------------------------------------------------------
// The allocation-free writers agree byte for byte with the serde_json serialization they
// replace on the hot path.

use super::message::{push_hex, push_json_str};
use proptest::prelude::*;
use serde_json::Value;

/// The submit line as the hub built it before `Submit::write_line`.
fn submit_line_via_value(
    id: u64,
    worker: &str,
    job_id: &str,
    extranonce2: &[u8],
    ntime: u32,
    nonce: u32,
    version_bits: Option<u32>,
) -> String {
    MinerRequest::Submit(Submit {
        worker: worker.to_owned(),
        job_id: job_id.to_owned(),
        extranonce2: extranonce2.to_vec(),
        ntime,
        nonce,
        version_bits,
    })
    .to_line(&Value::from(id))
}

fn submit_line_written(
    id: u64,
    worker: &str,
    job_id: &str,
    extranonce2: &[u8],
    ntime: u32,
    nonce: u32,
    version_bits: Option<u32>,
) -> (String, Vec<u8>) {
    let mut s = String::new();
    Submit::write_line(
        &mut s,
        id,
        worker,
        job_id,
        extranonce2,
        ntime,
        nonce,
        version_bits,
    );
    let mut v = b"already queued\n".to_vec();
    Submit::write_line(
        &mut v,
        id,
        worker,
        job_id,
        extranonce2,
        ntime,
        nonce,
        version_bits,
    );
    (s, v.split_off(15))
}

#[test]
fn json_str_escapes_every_ascii_and_some_unicode_like_serde_json() {
    let mut cases: Vec<String> = (0u8..=0x7f).map(|b| char::from(b).to_string()).collect();
    cases.extend(
        [
            "",
            "plain.worker",
            "a\"b\\c\nd\te\u{1}f\u{1f}g\u{7f}",
            "é漢字🦀\u{2028}\u{2029}\u{feff}",
            "\\\\\"\"",
        ]
        .map(String::from),
    );
    for c in cases {
        let mut s = String::new();
        push_json_str(&mut s, &c);
        assert_eq!(s, serde_json::to_string(&c).unwrap(), "{c:?}");
        let mut v = Vec::new();
        push_json_str(&mut v, &c);
        assert_eq!(v, serde_json::to_vec(&c).unwrap(), "{c:?}");
    }
}

#[test]
fn hex_writer_agrees_with_hex_encode() {
    for n in [0usize, 1, 2, 31, 32, 33, 64, 65, 200] {
        let bytes: Vec<u8> = (0..n).map(|i| (i * 37 + 11) as u8).collect();
        let mut s = String::new();
        push_hex(&mut s, &bytes);
        assert_eq!(s, hex::encode(&bytes));
    }
}

#[test]
fn submit_writer_agrees_with_value_serialization_on_fixed_cases() {
    for (id, worker, job, en2, vb) in [
        (10u64, "acct.rig1", "1a2b", vec![0u8, 0, 0, 1], None),
        (u64::MAX, "", "", vec![], Some(0x1fff_e000)),
        (0, "we\"ird\\name\n", "job\u{0}id", vec![0xff; 32], Some(0)),
        (12345, "ünïcødé.🦀", "7", vec![0xab; 8], Some(u32::MAX)),
    ] {
        let want = submit_line_via_value(id, worker, job, &en2, 0x5f5e_1000, 0xdead_beef, vb);
        let (s, v) = submit_line_written(id, worker, job, &en2, 0x5f5e_1000, 0xdead_beef, vb);
        assert_eq!(s, want);
        assert_eq!(v, want.as_bytes());
    }
}

/// Every `mining.submit` in the fuzz corpus that parses is written back byte for byte as the
/// `Value` route writes it.
#[test]
fn submit_writer_agrees_on_the_fuzz_corpus() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/stratum_line");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let Ok(bytes) = std::fs::read(e.path()) else {
            continue;
        };
        for line in String::from_utf8_lossy(&bytes).lines() {
            let Ok(Message::Request(r)) = parse_line(line) else {
                continue;
            };
            if let Ok(Some(MinerRequest::Submit(s))) = MinerRequest::parse(&r.method, &r.params) {
                let id = r.id.as_u64().unwrap_or(10);
                let want = MinerRequest::Submit(s.clone()).to_line(&Value::from(id));
                let (got, _) = submit_line_written(
                    id,
                    &s.worker,
                    &s.job_id,
                    &s.extranonce2,
                    s.ntime,
                    s.nonce,
                    s.version_bits,
                );
                assert_eq!(got, want, "{line}");
            }
        }
    }
}

/// The answer lines built before the writers (a `serde_json::to_string` per piece).
fn old_push_json(s: &mut String, v: &Value) {
    s.push_str(&serde_json::to_string(v).unwrap());
}

fn arb_id() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        proptest::collection::vec(any::<u32>(), 0..3).prop_map(Value::from),
    ]
}

proptest! {
    #[test]
    fn submit_writer_agrees_with_value_serialization(
        id in any::<u64>(),
        worker in any::<String>(),
        job in any::<String>(),
        en2 in proptest::collection::vec(any::<u8>(), 0..40),
        ntime in any::<u32>(),
        nonce in any::<u32>(),
        vb in any::<Option<u32>>(),
    ) {
        let want = submit_line_via_value(id, &worker, &job, &en2, ntime, nonce, vb);
        let (s, v) = submit_line_written(id, &worker, &job, &en2, ntime, nonce, vb);
        prop_assert_eq!(&s, &want);
        prop_assert_eq!(v, want.into_bytes());
    }

    #[test]
    fn answer_lines_agree_with_to_string(id in arb_id(), msg in any::<String>(), code in any::<i64>()) {
        let mut want = String::from("{\"id\":");
        old_push_json(&mut want, &id);
        want.push_str(",\"result\":true,\"error\":null}\n");
        prop_assert_eq!(true_line(&id), want);

        let mut want = String::from("{\"id\":");
        old_push_json(&mut want, &id);
        want.push_str(&format!(",\"result\":null,\"error\":[{code},"));
        old_push_json(&mut want, &Value::String(msg.clone()));
        want.push_str(",null]}\n");
        prop_assert_eq!(error_line(&id, code, &msg), want);

        let mut want = String::from("{\"id\":");
        old_push_json(&mut want, &id);
        want.push_str(",\"method\":");
        old_push_json(&mut want, &Value::String(msg.clone()));
        want.push_str(",\"params\":");
        old_push_json(&mut want, &id);
        want.push_str("}\n");
        prop_assert_eq!(request_line(&id, &msg, &id), want);
    }
}

/// What `parse_line` gave before its shortcut for `{"id":N,"result":true,"error":null}`.
fn parse_line_generic(line: &str) -> Result<Message, ProtocolError> {
    super::message::parse_line_without_shortcut(line)
}

#[test]
fn true_answer_shortcut_agrees_with_the_generic_parser() {
    let mut lines: Vec<String> = [
        "0",
        "1",
        "10",
        "007",
        "-1",
        "1.0",
        "1e3",
        "18446744073709551615",
        "18446744073709551616",
        "99999999999999999999",
        "123456789012345678901",
        "",
        "\"5\"",
        "null",
        "1 ",
        " 1",
        "+1",
    ]
    .iter()
    .map(|id| format!("{{\"id\":{id},\"result\":true,\"error\":null}}"))
    .collect();
    lines.extend(
        [
            "{\"id\":5,\"result\":true,\"error\":null}\n",
            "{\"id\":5,\"result\":true,\"error\":null}}",
            "{\"id\":5,\"result\":true,\"error\":null",
            "{\"id\":5,\"result\":true,\"error\":nul}",
            "{\"id\":5, \"result\":true,\"error\":null}",
            "{\"id\":5,\"result\":false,\"error\":null}",
            "{\"id\":5,\"result\":true,\"error\":[21,\"x\",null]}",
            "{\"id\":5,\"result\":true,\"error\":null,\"id\":6}",
        ]
        .map(String::from),
    );
    for l in &lines {
        let fast = parse_line(l);
        let slow = parse_line_generic(l);
        assert_eq!(fast, slow, "{l}");
    }
    assert_eq!(
        parse_line("{\"id\":18446744073709551615,\"result\":true,\"error\":null}").unwrap(),
        Message::Response(Response {
            id: json!(u64::MAX),
            result: json!(true),
            error: None,
        })
    );
}

proptest! {
    #[test]
    fn true_answer_shortcut_agrees_on_any_id(id in any::<u64>(), junk in "[0-9 .eE+-]{0,3}") {
        for l in [
            format!("{{\"id\":{id},\"result\":true,\"error\":null}}"),
            format!("{{\"id\":{id}{junk},\"result\":true,\"error\":null}}"),
            format!("{{\"id\":{junk}{id},\"result\":true,\"error\":null}}"),
        ] {
            prop_assert_eq!(parse_line(&l), parse_line_generic(&l), "{}", l);
        }
    }
}

/// `parse_line` as it was before `params` got its own visitor: plain `Option<Value>` fields.
fn parse_line_reference(line: &str) -> Result<Message, ProtocolError> {
    #[derive(serde::Deserialize)]
    struct Raw {
        #[serde(default)]
        id: Value,
        #[serde(default)]
        method: Option<Value>,
        #[serde(default)]
        params: Option<Value>,
        #[serde(default)]
        result: Option<Value>,
        #[serde(default)]
        error: Option<Value>,
    }
    let line = line.trim();
    if !line.starts_with('{') {
        return match serde_json::from_str::<Value>(line) {
            Ok(_) => Err(ProtocolError::NotAnObject),
            Err(e) => Err(ProtocolError::Json(e.to_string())),
        };
    }
    let raw: Raw = serde_json::from_str(line).map_err(|e| ProtocolError::Json(e.to_string()))?;
    match raw.method {
        Some(Value::String(method)) => Ok(Message::Request(Request {
            id: raw.id,
            method,
            params: raw.params.unwrap_or(Value::Array(Vec::new())),
        })),
        Some(Value::Null) | None => {
            if raw.result.is_none() && raw.error.is_none() {
                return Err(ProtocolError::NotAMessage);
            }
            Ok(Message::Response(Response {
                id: raw.id,
                result: raw.result.unwrap_or(Value::Null),
                error: raw.error.as_ref().and_then(StratumError::from_value),
            }))
        }
        Some(_) => Err(ProtocolError::MethodNotString),
    }
}

#[test]
fn params_visitor_agrees_with_value_on_fixed_cases_and_the_fuzz_corpus() {
    let mut lines: Vec<String> = [
        r#"{"id":1,"method":"mining.submit","params":["w","1","00","00000000","00000000"]}"#,
        r#"{"id":1,"method":"mining.submit","params":["w","1","00","00000000","00000000","1fffe000"]}"#,
        r#"{"id":1,"method":"mining.submit","params":["w","1","00","00000000","00000000","1","2","3"]}"#,
        r#"{"id":1,"method":"mining.subscribe","params":[]}"#,
        r#"{"id":1,"method":"mining.subscribe","params":null}"#,
        r#"{"id":1,"method":"mining.subscribe","params":{}}"#,
        r#"{"id":1,"method":"mining.subscribe","params":{"a":[1,2],"b":{"c":null}}}"#,
        r#"{"id":1,"method":"mining.subscribe"}"#,
        r#"{"id":1,"method":"x","params":1.5e300}"#,
        r#"{"id":1,"method":"x","params":-7}"#,
        r#"{"id":1,"method":"x","params":18446744073709551615}"#,
        r#"{"id":1,"method":"x","params":184467440737095516150}"#,
        r#"{"id":1,"method":"x","params":"s\u0000\"t"}"#,
        r#"{"id":1,"method":"x","params":true}"#,
        r#"{"id":1,"method":"x","params":[[[]],[{}],null,-0.0,1e-400]}"#,
        r#"{"id":1,"method":"x","params":[1,2,}"#,
        r#"{"id":1,"method":"x","params":[1 2]}"#,
        r#"{"id":1,"method":"x","params":["a","b"],"params":[]}"#,
        r#"{"id":1,"result":[1,2,3],"error":null,"params":[1,2,3]}"#,
    ]
    .map(String::from)
    .to_vec();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/stratum_line");
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if let Ok(bytes) = std::fs::read(e.path()) {
                lines.extend(String::from_utf8_lossy(&bytes).lines().map(String::from));
            }
        }
    }
    for l in &lines {
        assert_eq!(parse_line(l), parse_line_reference(l), "{l}");
    }
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[ -~é\u{0}\n\"\\\\]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..9).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z]{0,3}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn params_visitor_agrees_with_value(params in arb_json(), id in arb_id(), cut in any::<usize>()) {
        let line = format!(
            "{{\"id\":{},\"method\":\"mining.submit\",\"params\":{}}}",
            serde_json::to_string(&id).unwrap(),
            serde_json::to_string(&params).unwrap()
        );
        prop_assert_eq!(parse_line(&line), parse_line_reference(&line));
        // and every prefix (truncated lines, errors included)
        let mut at = cut % (line.len() + 1);
        while !line.is_char_boundary(at) {
            at -= 1;
        }
        prop_assert_eq!(parse_line(&line[..at]), parse_line_reference(&line[..at]));
    }
}

/// What the generic path makes of a line, when it is a valid `mining.submit`.
fn submit_via_generic_path(line: &str) -> Option<(Value, Submit)> {
    let Ok(Message::Request(r)) = parse_line(line) else {
        return None;
    };
    match MinerRequest::parse(&r.method, &r.params) {
        Ok(Some(MinerRequest::Submit(s))) => Some((r.id, s)),
        _ => None,
    }
}

/// The typed parser never says more than the generic path: when it answers, the generic path
/// gives the same id and fields; valid submits in the usual shape are recognised.
fn check_submit_parser(line: &str) {
    if let Some((id, fast)) = Submit::parse_line(line) {
        assert_eq!(
            Some((id, fast.to_submit())),
            submit_via_generic_path(line),
            "{line}"
        );
    }
}

#[test]
fn typed_submit_parser_agrees_with_the_generic_path() {
    let usual = [
        r#"{"id":4,"method":"mining.submit","params":["w","1","00","00000000","00000000"]}"#,
        r#"{"params":["w.1","a1","0000000a","6553f0a1","0x1234"],"id":"x","method":"mining.submit"}"#,
        r#"{"id":4,"method":"mining.submit","params":["w","1","00","00000000","00000000","1fffe000"]}"#,
        r#"{"id":4,"method":"mining.submit","params":["w","1","00","00000000","00000000",null]}"#,
        r#"{"id":null,"method":"mining.submit","params":["w\"\u00e9","j\\1","","1","ffffffff"]}"#,
        // cpuminer's layout: spaces, `id` last
        r#"{"method": "mining.submit", "params": ["rig.1", "6", "0100", "6553f0a1", "1234abcd"], "id":4}"#,
        "{\"id\" : \"a\\u0062\" ,\r\n\t\"method\":\"mining.submit\",\"params\":[ \"w\" , \"1\" , \"00\" , \"1\" , \"2\" , null ] }",
        " {\"id\":4,\"method\":\"mining.submit\",\"params\":[\"w\",\"1\",\"00\",\"1\",\"2\"]}\n",
    ];
    for l in usual {
        assert!(Submit::parse_line(l).is_some(), "{l}");
        check_submit_parser(l);
    }
    // Valid submits outside the shape the typed parser reads (parameters after the sixth,
    // other keys): the generic path takes them, with the same answer as ever.
    let generic_only = [
        r#"{"id":4,"method":"mining.submit","params":["w","1","00","00000000","00000000","0",7,[]]}"#,
        r#"{"id":4,"method":"mining.submit","params":["w","1","00","1","2"],"result":5,"x":{}}"#,
        r#"{"id":-4,"method":"mining.submit","params":["w","1","00","1","2"]}"#,
        r#"{"id":4.5,"method":"mining.submit","params":["w","1","00","1","2"]}"#,
    ];
    for l in generic_only {
        assert!(Submit::parse_line(l).is_none(), "{l}");
        assert!(submit_via_generic_path(l).is_some(), "{l}");
    }
    let unusual = [
        r#"{"id":4,"method":"mining.submit","params":["w",1,"00","00000000","00000000"]}"#,
        r#"{"id":4,"method":"mining.submit","params":["w","1","0","00000000","00000000"]}"#,
        r#"{"id":4,"method":"mining.submit","params":["w","1","00","000000000","00000000"]}"#,
        r#"{"id":4,"method":"mining.submit","params":["w","1","00","00000000","0000000g"]}"#,
        r#"{"id":4,"method":"mining.submit","params":["w","1","00","00000000","00000000",5]}"#,
        r#"{"id":4,"method":"mining.submit","params":["w","1","00","00000000"]}"#,
        r#"{"id":4,"method":"mining.submit","params":[null,"1","00","00000000","00000000"]}"#,
        r#"{"id":4,"method":"mining.submit","params":null}"#,
        r#"{"id":4,"method":"mining.submit"}"#,
        r#"{"id":4,"method":"mining.subscribe","params":["w","1","00","00000000","00000000"]}"#,
        r#"{"id":4,"method":"mining.submit","params":["w","1","00","00000000","00000000"],"id":5}"#,
        r#"{"id":4,"method":"mining.submit","params":["w","1","00","00000000","00000000"]"#,
        r#"[1]"#,
        r#"[4,"mining.submit",["w","1","00","00000000","00000000"]]"#,
        "",
    ];
    let mut unusual: Vec<String> = unusual.map(String::from).to_vec();
    // nesting beyond serde_json's limit in an ignored parameter: an error on the generic path
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    unusual.push(format!(
        r#"{{"id":4,"method":"mining.submit","params":["w","1","00","1","2",null,{deep}]}}"#
    ));
    assert!(submit_via_generic_path(unusual.last().unwrap()).is_none());
    assert!(Submit::parse_line(unusual.last().unwrap()).is_none());
    for l in &unusual {
        check_submit_parser(l);
    }
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/stratum_line");
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if let Ok(bytes) = std::fs::read(e.path()) {
                for l in String::from_utf8_lossy(&bytes).lines() {
                    check_submit_parser(l);
                }
            }
        }
    }
}

proptest! {
    #[test]
    fn typed_submit_parser_agrees_on_arbitrary_params(params in arb_json(), id in arb_id(), cut in any::<usize>()) {
        let line = format!(
            "{{\"id\":{},\"method\":\"mining.submit\",\"params\":{}}}",
            serde_json::to_string(&id).unwrap(),
            serde_json::to_string(&params).unwrap()
        );
        check_submit_parser(&line);
        let mut at = cut % (line.len() + 1);
        while !line.is_char_boundary(at) {
            at -= 1;
        }
        check_submit_parser(&line[..at]);
    }

    #[test]
    fn typed_submit_parser_reads_every_valid_submit(
        id in any::<u64>(),
        worker in any::<String>(),
        job in any::<String>(),
        en2 in proptest::collection::vec(any::<u8>(), 0..33),
        ntime in any::<u32>(),
        nonce in any::<u32>(),
        vb in any::<Option<u32>>(),
    ) {
        let line = submit_line_via_value(id, &worker, &job, &en2, ntime, nonce, vb);
        let fast = Submit::parse_line(&line).map(|(id, s)| (id, s.to_submit()));
        prop_assert!(fast.is_some());
        prop_assert_eq!(fast, submit_via_generic_path(&line));
    }
}

/// `parse_hex_u32` as it was before it folded the digits itself (`from_str_radix`).
fn parse_hex_u32_reference(s: &str) -> Option<u32> {
    let t = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    if t.is_empty() || t.len() > 8 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(t, 16).ok()
}

proptest! {
    #[test]
    fn hex_u32_reads_what_from_str_radix_reads(s in "(0[xX])?[0-9a-fA-FgG+ é-]{0,10}") {
        prop_assert_eq!(parse_hex_u32(&s).ok(), parse_hex_u32_reference(&s));
    }

    #[test]
    fn hex_u32_reads_every_u32(x in any::<u32>(), upper in any::<bool>(), prefix in any::<bool>()) {
        let digits = if upper { format!("{x:X}") } else { format!("{x:08x}") };
        let s = if prefix { format!("0x{digits}") } else { digits };
        prop_assert_eq!(parse_hex_u32(&s), Ok(x));
    }
}

proptest! {
    /// The inline extranonce2 reads exactly what the generic path's bounded hex reads.
    #[test]
    fn inline_extranonce2_reads_what_parse_hex_bytes_reads(s in "[0-9a-fA-Fg ]{0,70}") {
        prop_assert_eq!(
            super::Extranonce2::from_hex(&s).map(|e| e.to_vec()),
            super::parse_hex_bytes(&s, super::MAX_EXTRANONCE_BYTES).ok()
        );
    }
}
