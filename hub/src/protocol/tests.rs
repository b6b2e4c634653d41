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
