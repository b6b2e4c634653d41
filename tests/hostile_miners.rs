//! Hostile miners against a live hub over real TCP: every abuse the hub is built to survive gets
//! its defined answer (a Stratum error, or a close), a metric and a log line, while honest miners
//! on the same hub keep mining with no invalid share. The answers are tabulated in
//! `docs/hardening.md`; each row names the test here that proves it.
//!
//! The log lines are captured (a tracing subscriber writing to memory for this test binary) and
//! asserted on, so "it logs" is checked too, not assumed.

use hashsched_hub::config::HubConfig;
use hashsched_hub::metrics::{self, label};
use hashsched_hub::protocol::error_code;
use hashsched_hub::server::HubHandle;
use hashsched_hub::share::{JobTemplate, Target, decode_hex};
use hashsched_hub::sim::miner::SimMiner;
use hashsched_hub::sim::pool::SimPool;
use hashsched_tests::*;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

const POOL_D: f64 = 4e-7;
const MINER_D: f64 = 1e-7;
const T: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// Log capture
// ---------------------------------------------------------------------------------------------

#[derive(Clone)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The hub's log lines of this test binary (every test's hub), captured from the first call.
fn logs() -> &'static Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Captured(Arc::new(Mutex::new(Vec::new())));
        let writer = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "warn,hashsched_hub::downstream=debug,hashsched_hub::server=info",
            ))
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init();
        buf
    })
}

/// Waits until a captured log line contains every one of `parts`.
async fn logged(parts: &[&str]) {
    let found = wait_until(T, || {
        let text = logs().0.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&text)
            .lines()
            .any(|l| parts.iter().all(|p| l.contains(p)))
            .then_some(())
    })
    .await;
    assert!(found.is_some(), "no log line with {parts:?}");
}

// ---------------------------------------------------------------------------------------------
// The hub, its honest miners, and the checks that they never noticed
// ---------------------------------------------------------------------------------------------

struct Farm {
    pool: SimPool,
    hub: HubHandle,
    honest: Vec<SimMiner>,
}

async fn farm(tweak: impl FnOnce(&mut HubConfig)) -> Farm {
    logs();
    count_panics();
    let pool = SimPool::start(test_pool(POOL_D)).await.expect("pool");
    let mut cfg = hub_config(&[pool.url()], MINER_D);
    tweak(&mut cfg);
    let hub = start_hub(cfg).await;
    let honest: Vec<SimMiner> = (0..2)
        .map(|i| {
            let mut c = test_miner(&format!("honest.{i}"), MINER_D, 10.0);
            c.version_rolling = i == 0;
            SimMiner::spawn(hub.stratum_addr(), c)
        })
        .collect();
    for m in &honest {
        m.wait_for(DEADLINE, |s| s.accepted >= 3)
            .await
            .unwrap_or_else(|e| panic!("{} never mined: {e:?}", m.worker()));
    }
    Farm { pool, hub, honest }
}

impl Farm {
    /// The honest miners kept their one connection, kept getting shares accepted, and not one
    /// of their shares was invalid anywhere; nothing panicked.
    async fn honest_miners_never_noticed(&self) {
        for m in &self.honest {
            let n = m.stats().accepted;
            m.wait_for(DEADLINE, |s| s.accepted >= n + 3)
                .await
                .unwrap_or_else(|e| panic!("{} stopped mining: {e:?}", m.worker()));
            let s = m.stats();
            assert_eq!(s.connections, 1, "{}: {s:?}", m.worker());
            assert_eq!(s.rejected_total(), 0, "{}: {s:?}", m.worker());
            let f = facts_of(&self.hub, m.worker()).expect("facts");
            assert_eq!(f.shares.invalid, 0, "{f:?}");
            assert_eq!(pool_counts_for(&self.pool, m.worker()).rejected_total(), 0);
        }
        assert_eq!(panics_seen(), 0, "something panicked");
    }

    fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        metric_sum_where(&self.hub.metrics_text(), name, labels)
    }

    /// Waits until `metric{labels}` reaches at least `at_least`.
    async fn metric_reaches(&self, name: &str, labels: &[(&str, &str)], at_least: f64) {
        let got = wait_until(T, || (self.metric(name, labels) >= at_least).then_some(())).await;
        assert!(
            got.is_some(),
            "{name}{labels:?} = {} (wanted ≥ {at_least})",
            self.metric(name, labels)
        );
    }

    async fn protocol_errors_reach(&self, kind: &str, at_least: f64) {
        self.metric_reaches(
            metrics::HUB_PROTOCOL_ERRORS_TOTAL,
            &[(label::SIDE, metrics::side::MINER), (label::KIND, kind)],
            at_least,
        )
        .await;
    }

    async fn closed_for(&self, reason: &str, at_least: f64) {
        self.metric_reaches(
            metrics::HUB_CONNECTIONS_CLOSED_TOTAL,
            &[(label::REASON, reason)],
            at_least,
        )
        .await;
    }
}

/// Sends one request and returns the answer with its id (`None`: the hub closed first).
async fn ask(c: &mut RawClient, id: Value, method: &str, params: Value) -> Option<Value> {
    let line = json!({"id": id, "method": method, "params": params}).to_string();
    c.send_line(&line).await.ok()?;
    c.read_answer(&id, T).await
}

/// The Stratum error code of an answer (`None` for a result).
fn code(a: &Value) -> Option<i64> {
    a["error"][0].as_i64()
}

/// Subscribe + authorize; returns (extranonce1, extranonce2 size, first notify params).
async fn handshake(c: &mut RawClient, worker: &str) -> (Vec<u8>, usize, Vec<Value>) {
    let a = ask(c, json!(1), "mining.subscribe", json!(["hostile/1"]))
        .await
        .expect("subscribe answer");
    let e1 = decode_hex("extranonce1", a["result"][1].as_str().expect("extranonce1")).expect("hex");
    let n2 = a["result"][2].as_u64().expect("en2 size") as usize;
    c.send_line(
        &json!({"id": 2, "method": "mining.authorize", "params": [worker, "x"]}).to_string(),
    )
    .await
    .expect("send");
    let (mut notify, mut ok) = (None, false);
    while notify.is_none() || !ok {
        let line = c.read_line(T).await.expect("a line from the hub");
        let v: Value = serde_json::from_str(&line).expect("JSON from the hub");
        if v["method"] == "mining.notify" {
            notify = v["params"].as_array().cloned();
        } else if v["id"] == json!(2) {
            assert_eq!(v["result"], json!(true), "{v}");
            ok = true;
        }
    }
    (e1, n2, notify.expect("a job"))
}

/// Grinds nonces until a share meets `difficulty` for the job (at 1e-7 a few hundred hashes).
fn find_share(notify: &[Value], e1: &[u8], en2: &[u8], difficulty: f64) -> u32 {
    let target = Target::from_difficulty(difficulty).expect("target");
    let ntime = job_of(notify).ntime();
    find_nonce(notify, e1, en2, ntime, |h| target.is_met_by(h))
}

fn job_of(notify: &[Value]) -> JobTemplate {
    let s = |i: usize| notify[i].as_str().expect("hex field");
    let branch: Vec<&str> = notify[4]
        .as_array()
        .expect("branch")
        .iter()
        .map(|b| b.as_str().expect("hex"))
        .collect();
    JobTemplate::from_notify(s(1), s(2), s(3), &branch, s(5), s(6), s(7)).expect("job")
}

/// Grinds nonces at `ntime` until the share's hash satisfies `wanted`.
fn find_nonce(
    notify: &[Value],
    e1: &[u8],
    en2: &[u8],
    ntime: u32,
    wanted: impl Fn(&[u8; 32]) -> bool,
) -> u32 {
    let job = job_of(notify);
    (0..u32::MAX)
        .find(|&n| wanted(&job.share_hash(e1, en2, ntime, n, job.version())))
        .expect("a share")
}

// ---------------------------------------------------------------------------------------------
// Lines: oversized, endless, junk, not UTF-8, deeply nested
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_lines_get_an_error_and_the_unrecoverable_ones_a_close() {
    let f = farm(|_| {}).await;
    let addr = f.hub.stratum_addr();
    let max = hashsched_hub::protocol::DEFAULT_MAX_LINE_BYTES;

    // Oversized line (a newline after maxLineBytes + 1): error 20 "line too long", then close.
    let mut c = RawClient::connect(addr).await.unwrap();
    let mut big = vec![b'a'; max + 1];
    big.push(b'\n');
    let _ = c.send(&big).await;
    let a: Value = serde_json::from_str(&c.read_line(T).await.expect("an answer")).unwrap();
    assert_eq!(code(&a), Some(error_code::OTHER), "{a}");
    assert!(a["id"].is_null(), "{a}");
    assert!(
        a["error"][1].as_str().unwrap().contains("line too long"),
        "{a}"
    );
    assert!(c.closed_within(T).await, "oversized line must close");

    // Endless line (bytes and never a newline): the same answer once past the bound, then the
    // close. The bytes sent past the bound stay unread; the answer still arrives before the end.
    let mut c = RawClient::connect(addr).await.unwrap();
    let chunk = vec![b'{'; 4096];
    for _ in 0..(max / chunk.len() + 2) {
        if c.send(&chunk).await.is_err() {
            break;
        }
    }
    let line = match c.next_event(T).await {
        RawRead::Line(l) => l,
        other => panic!("endless line: no error 20 before the close, got {other:?}"),
    };
    let a: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(code(&a), Some(error_code::OTHER), "{a}");
    assert!(a["id"].is_null(), "{a}");
    assert!(
        a["error"][1].as_str().unwrap().contains("line too long"),
        "{a}"
    );
    assert!(c.closed_within(T).await, "endless line must close");
    f.protocol_errors_reach("line_too_long", 2.0).await;
    f.closed_for("line too long", 2.0).await;
    logged(&[
        "miner connection closed by the hub",
        "reason=\"line too long\"",
    ])
    .await;

    // Not UTF-8 and deeply nested JSON: error 20 each, the connection stays usable.
    let mut c = RawClient::connect(addr).await.unwrap();
    c.send(&[0xff, 0xfe, b'{', 0xc0, 0x80, b'}', b'\n'])
        .await
        .unwrap();
    let a: Value = serde_json::from_str(&c.read_line(T).await.expect("an answer")).unwrap();
    assert_eq!(code(&a), Some(error_code::OTHER), "{a}");
    assert!(a["error"][1].as_str().unwrap().contains("UTF-8"), "{a}");
    let deep_array = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let deep_params = format!(
        "{{\"id\":7,\"method\":\"mining.subscribe\",\"params\":{}1{}}}",
        "[".repeat(3000),
        "]".repeat(3000)
    );
    let deep_object = format!("{}1{}", "{\"a\":".repeat(2000), "}".repeat(2000));
    for line in [&deep_array, &deep_params, &deep_object] {
        assert!(line.len() < max);
        c.send_line(line).await.unwrap();
        let a: Value = serde_json::from_str(&c.read_line(T).await.expect("an answer")).unwrap();
        assert_eq!(code(&a), Some(error_code::OTHER), "{a}");
    }
    let ok = ask(&mut c, json!(8), "mining.subscribe", json!(["after"])).await;
    assert!(
        ok.is_some_and(|a| a["result"].is_array()),
        "connection still serves"
    );
    f.protocol_errors_reach("not_utf8", 1.0).await;
    f.protocol_errors_reach("json", 3.0).await;
    logged(&["bad input from miner", "kind=\"not_utf8\""]).await;
    logged(&["bad input from miner", "kind=\"json\"", "recursion limit"]).await;

    // Junk lines: error 20 each; after limits.maxConsecutiveErrors (20) in a row, a close.
    let mut c = RawClient::connect(addr).await.unwrap();
    let mut errors = 0;
    for i in 0..30 {
        if c.send_line(&format!("junk {i} \u{0}\u{7}")).await.is_err() {
            break;
        }
    }
    while let Some(line) = c.read_line(T).await {
        let a: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(code(&a), Some(error_code::OTHER), "{a}");
        errors += 1;
    }
    assert_eq!(
        errors, 21,
        "one error per junk line up to the limit, then the close"
    );
    f.closed_for("too many malformed messages", 1.0).await;
    logged(&["reason=\"too many malformed messages\""]).await;

    f.honest_miners_never_noticed().await;
}

// ---------------------------------------------------------------------------------------------
// Scalars and wrong types for every field
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_types_in_every_field_are_answered_with_the_callers_id() {
    let f = farm(|_| {}).await;
    let mut c = RawClient::connect(f.hub.stratum_addr()).await.unwrap();
    let (_, n2, notify) = handshake(&mut c, "typed.raw").await;
    let good: Vec<(&str, Vec<Value>)> = vec![
        ("mining.subscribe", vec![json!("ua"), json!("1")]),
        ("mining.authorize", vec![json!("typed.raw"), json!("x")]),
        (
            "mining.submit",
            vec![
                json!("typed.raw"),
                notify[0].clone(),
                json!("00".repeat(n2)),
                notify[7].clone(),
                json!("00000000"),
                json!("00000000"),
            ],
        ),
        (
            "mining.configure",
            vec![
                json!(["version-rolling", "minimum-difficulty"]),
                json!({"version-rolling.mask": "1fffe000", "version-rolling.min-bit-count": 2,
                        "minimum-difficulty.value": 1}),
            ],
        ),
        ("mining.suggest_difficulty", vec![json!(1)]),
        ("mining.extranonce.subscribe", vec![]),
    ];
    let bad_values = [
        json!(null),
        json!(true),
        json!(-1),
        json!(1.5e300),
        json!("zz"),
        json!([]),
        json!({"x": [1]}),
    ];
    let mut id = 100u64;
    let mut asked = 0;
    for (method, params) in &good {
        // Each position replaced by each wrong type, and params itself as a scalar.
        let mut variants: Vec<Value> = bad_values.to_vec();
        for i in 0..params.len() {
            for bad in &bad_values {
                let mut p = params.clone();
                p[i] = bad.clone();
                variants.push(Value::Array(p));
            }
        }
        for params in variants {
            id += 1;
            let a = ask(&mut c, json!(id), method, params.clone())
                .await
                .unwrap_or_else(|| panic!("{method} {params}: no answer (closed?)"));
            assert!(
                a.get("result").is_some() && a.get("error").is_some(),
                "{method} {params} → {a}"
            );
            if let Some(code) = code(&a) {
                assert!((20..=25).contains(&code), "{method} {params} → {a}");
            }
            asked += 1;
            // A good request in between: malformed ones only close when consecutive.
            id += 1;
            ask(&mut c, json!(id), "mining.extranonce.subscribe", json!([]))
                .await
                .expect("still connected");
        }
    }
    assert!(asked > 100, "{asked}");
    // Ids of any JSON type come back verbatim.
    for weird in [
        json!({"a": 1}),
        json!([1, "x"]),
        json!(1.25),
        json!("s"),
        json!(true),
    ] {
        let a = ask(
            &mut c,
            weird.clone(),
            "mining.extranonce.subscribe",
            json!([]),
        )
        .await
        .unwrap_or_else(|| panic!("id {weird} not echoed"));
        assert_eq!(a["result"], json!(true), "{a}");
    }
    // Method of the wrong type: error 20 (no id to echo: the line is not a request).
    c.send_line(r#"{"id":9,"method":7,"params":[]}"#)
        .await
        .unwrap();
    let a: Value = serde_json::from_str(&c.read_line(T).await.expect("answer")).unwrap();
    assert_eq!(code(&a), Some(error_code::OTHER), "{a}");
    f.protocol_errors_reach("params", 50.0).await;
    logged(&["bad input from miner", "kind=\"params\""]).await;
    // Wrong types in a submit of a known worker are booked as its invalid shares.
    let facts = facts_of(&f.hub, "typed.raw").expect("facts");
    assert!(facts.shares.invalid >= 10, "{facts:?}");
    f.honest_miners_never_noticed().await;
}

// ---------------------------------------------------------------------------------------------
// Share abuse: out of order, someone else's worker, unknown jobs, bad hex, duplicates, ntime,
// version bits
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn share_abuse_gets_its_stratum_error_and_its_bucket() {
    let f = farm(|_| {}).await;
    let addr = f.hub.stratum_addr();
    let submit = |w: &str, job: &Value, en2: &str, ntime: &Value, nonce: String| {
        json!([w, job, en2, ntime, nonce])
    };

    // Before subscribe: 25. Subscribed but not authorized: 24.
    let mut c = RawClient::connect(addr).await.unwrap();
    let a = ask(
        &mut c,
        json!(1),
        "mining.submit",
        json!(["x", "1", "00", "00", "00"]),
    )
    .await
    .expect("answer");
    assert_eq!(code(&a), Some(error_code::NOT_SUBSCRIBED), "{a}");
    ask(&mut c, json!(2), "mining.subscribe", json!([]))
        .await
        .expect("subscribe");
    let a = ask(
        &mut c,
        json!(3),
        "mining.submit",
        json!(["x", "1", "00", "00", "00"]),
    )
    .await
    .expect("answer");
    assert_eq!(code(&a), Some(error_code::UNAUTHORIZED), "{a}");

    // An honest miner's worker, submitted on another connection: 24, never booked on it.
    let honest = f.honest[0].worker().to_owned();
    let before = facts_of(&f.hub, &honest).expect("facts").submitted();
    let a = ask(
        &mut c,
        json!(4),
        "mining.submit",
        json!([honest, "1", "00000000", "00000000", "00000000"]),
    )
    .await
    .expect("answer");
    assert_eq!(code(&a), Some(error_code::UNAUTHORIZED), "{a}");
    f.metric_reaches(
        metrics::HUB_UNATTRIBUTED_SUBMITS_TOTAL,
        &[(label::REASON, "not_subscribed")],
        1.0,
    )
    .await;
    f.metric_reaches(
        metrics::HUB_UNATTRIBUTED_SUBMITS_TOTAL,
        &[(label::REASON, "unauthorized")],
        2.0,
    )
    .await;
    logged(&["share refused", "code=24"]).await;
    logged(&["share refused", "code=25"]).await;

    // A real session: every bad share gets its code and its bucket.
    let mut c = RawClient::connect(addr).await.unwrap();
    let w = "abuse.raw";
    let (e1, n2, notify) = handshake(&mut c, w).await;
    let en2 = vec![0u8; n2];
    let en2_hex = "00".repeat(n2);
    // A share good enough for the pool too, so that it is forwarded and accepted.
    let nonce = find_share(&notify, &e1, &en2, POOL_D);
    let (job, ntime) = (&notify[0], &notify[7]);
    let job_ntime = u32::from_str_radix(ntime.as_str().expect("ntime"), 16).expect("hex ntime");
    // Exactly ten minutes behind the job is still in range: a share that meets the miner's
    // difficulty but not the pool's, so the hub answers it itself (below target).
    let en2_behind = vec![1u8; n2];
    let behind_ok = find_nonce(&notify, &e1, &en2_behind, job_ntime - 600, |h| {
        Target::from_difficulty(MINER_D).unwrap().is_met_by(h)
            && !Target::from_difficulty(POOL_D).unwrap().is_met_by(h)
    });
    let cases: Vec<(&str, Value, i64)> = vec![
        (
            "unknown job",
            submit(
                w,
                &json!("no-such-job"),
                &en2_hex,
                ntime,
                format!("{nonce:08x}"),
            ),
            error_code::JOB_NOT_FOUND,
        ),
        (
            "bad hex",
            submit(w, job, &"zz".repeat(n2), ntime, format!("{nonce:08x}")),
            error_code::OTHER,
        ),
        (
            "short extranonce2",
            submit(w, job, "00", ntime, format!("{nonce:08x}")),
            error_code::OTHER,
        ),
        (
            "ntime far off",
            submit(w, job, &en2_hex, &json!("ffffffff"), format!("{nonce:08x}")),
            error_code::OTHER,
        ),
        (
            "ntime ten minutes and one second behind the job",
            submit(
                w,
                job,
                &en2_hex,
                &json!(format!("{:08x}", job_ntime - 601)),
                format!("{nonce:08x}"),
            ),
            error_code::OTHER,
        ),
        (
            "ntime a day behind the job",
            submit(
                w,
                job,
                &en2_hex,
                &json!(format!("{:08x}", job_ntime - 86_400)),
                format!("{nonce:08x}"),
            ),
            error_code::OTHER,
        ),
        (
            "ntime exactly ten minutes behind the job (in range, below the pool's target)",
            submit(
                w,
                job,
                &"01".repeat(n2),
                &json!(format!("{:08x}", job_ntime - 600)),
                format!("{behind_ok:08x}"),
            ),
            0,
        ),
        (
            "version bits outside the mask",
            json!([w, job, en2_hex, ntime, format!("{nonce:08x}"), "e0000000"]),
            error_code::OTHER,
        ),
        (
            "valid share",
            submit(w, job, &en2_hex, ntime, format!("{nonce:08x}")),
            0,
        ),
        (
            "duplicate",
            submit(w, job, &en2_hex, ntime, format!("{nonce:08x}")),
            error_code::DUPLICATE,
        ),
    ];
    let params_errors = || {
        f.metric(
            metrics::HUB_PROTOCOL_ERRORS_TOTAL,
            &[(label::SIDE, metrics::side::MINER), (label::KIND, "params")],
        )
    };
    let params_before = params_errors();
    for (i, (what, params, want)) in cases.iter().enumerate() {
        let a = ask(&mut c, json!(10 + i), "mining.submit", params.clone())
            .await
            .unwrap_or_else(|| panic!("{what}: no answer"));
        if *want == 0 {
            assert_eq!(a["result"], json!(true), "{what}: {a}");
        } else {
            assert_eq!(code(&a), Some(*want), "{what}: {a}");
        }
        if what.starts_with("ntime") && *want != 0 {
            assert!(
                a["error"][1]
                    .as_str()
                    .is_some_and(|m| m.contains("ntime out of range")),
                "{what}: {a}"
            );
        }
    }
    // Counted before it is answered: of all the cases, only the bad hex is a parameter error.
    assert_eq!(
        params_errors() - params_before,
        1.0,
        "errors{{params}} for the bad hex, and for nothing else"
    );
    let facts = wait_until(T, || {
        let f = facts_of(&f.hub, w)?;
        (f.pending == 0 && f.shares.accepted == 1).then_some(f)
    })
    .await
    .expect("the valid share accepted by the pool");
    assert_eq!(facts.shares.stale, 1, "{facts:?}");
    assert_eq!(facts.shares.duplicate, 1, "{facts:?}");
    assert_eq!(facts.shares.invalid, 6, "{facts:?}");
    assert_eq!(facts.shares.below_target, 1, "{facts:?}");
    assert_eq!(facts.submitted(), 10, "{facts:?}");
    assert_eq!(pool_counts_for(&f.pool, w).accepted, 1);
    assert_eq!(pool_counts_for(&f.pool, w).rejected_total(), 0);
    assert_eq!(facts_of(&f.hub, &honest).expect("facts").shares.invalid, 0);
    assert!(facts_of(&f.hub, &honest).unwrap().submitted() >= before);
    for (result, n) in [("stale", 1.0), ("duplicate", 1.0), ("invalid", 6.0)] {
        f.metric_reaches(
            metrics::WORKER_SHARES_TOTAL,
            &[(label::WORKER, w), (label::RESULT, result)],
            n,
        )
        .await;
    }
    logged(&["share refused", "code=21", "abuse.raw"]).await;
    logged(&["share refused", "code=22", "abuse.raw"]).await;
    logged(&["share refused", "ntime out of range"]).await;
    logged(&["share refused", "version bits outside the negotiated mask"]).await;
    f.honest_miners_never_noticed().await;
}

// ---------------------------------------------------------------------------------------------
// Floods: authorizes, messages, empty lines, connections
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_authorizes_on_one_connection_are_capped() {
    let f = farm(|_| {}).await;
    let cap = hashsched_hub::config::Limits::default().max_workers_per_connection;
    let mut c = RawClient::connect(f.hub.stratum_addr()).await.unwrap();
    ask(&mut c, json!(1), "mining.subscribe", json!([]))
        .await
        .expect("subscribe");
    let workers_before = f.hub.facts().len();
    // 1,500 distinct names, then the same name 400 times, written 100 lines at a time (and
    // each batch's answers read) to stay within the message burst: this measures the cap,
    // not the flood guard.
    let names: Vec<String> = (0..1500)
        .map(|i| format!("many.{i}"))
        .chain((0..400).map(|_| "many.0".to_owned()))
        .collect();
    let (mut granted, mut refused) = (0, 0);
    for (n, batch) in names.chunks(100).enumerate() {
        let mut lines = String::new();
        for (i, name) in batch.iter().enumerate() {
            let id = 1000 + n * 100 + i;
            lines.push_str(
                &json!({"id": id, "method": "mining.authorize", "params": [name, "x"]}).to_string(),
            );
            lines.push('\n');
        }
        c.send(lines.as_bytes()).await.unwrap();
        let mut answered = 0;
        while answered < batch.len() {
            let line = c.read_line(T).await.expect("an answer per authorize");
            let v: Value = serde_json::from_str(&line).unwrap();
            if v.get("method").is_some_and(|m| !m.is_null()) {
                continue; // jobs and difficulty
            }
            answered += 1;
            match code(&v) {
                None => granted += 1,
                Some(c) => {
                    assert_eq!(c, error_code::UNAUTHORIZED, "{v}");
                    refused += 1;
                }
            }
        }
    }
    assert_eq!(
        granted,
        cap + 400,
        "the first {cap} names, then the same name again"
    );
    assert_eq!(refused, 1500 - cap);
    let grown = f.hub.facts().len() - workers_before;
    assert_eq!(grown, cap, "per-worker state is bounded by the cap");
    f.protocol_errors_reach("too_many_workers", (1500 - cap) as f64)
        .await;
    logged(&["authorize refused", "too many workers on one connection"]).await;
    // Still a working connection.
    let a = ask(&mut c, json!(2), "mining.extranonce.subscribe", json!([])).await;
    assert!(a.is_some());
    f.honest_miners_never_noticed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_and_empty_line_floods_are_closed() {
    let f = farm(|c| {
        c.limits.message_burst = 200.0;
        c.limits.max_messages_per_second = 50.0;
    })
    .await;
    let addr = f.hub.stratum_addr();
    let baseline = f.hub.connections();
    // Empty lines (and whitespace-only ones) cost a message each: 20,000 of them end in a close.
    let mut c = RawClient::connect(addr).await.unwrap();
    let _ = c.send(&b"\n\r\n  \n\t\n".repeat(5000)).await;
    assert!(c.closed_within(T).await, "empty-line flood must close");
    // Valid requests at line rate: the same.
    let mut c = RawClient::connect(addr).await.unwrap();
    let line = "{\"id\":1,\"method\":\"mining.extranonce.subscribe\",\"params\":[]}\n";
    let _ = c.send(line.repeat(5000).as_bytes()).await;
    assert!(c.closed_within(T).await, "message flood must close");
    f.protocol_errors_reach("flood", 2.0).await;
    f.closed_for("message flood", 2.0).await;
    logged(&["reason=\"message flood\""]).await;
    wait_until(T, || (f.hub.connections() == baseline).then_some(()))
        .await
        .expect("the flooders' connections are gone");
    f.honest_miners_never_noticed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_max_connections_are_refused() {
    const MAX: usize = 10;
    let f = farm(|c| c.limits.max_connections = MAX).await;
    let addr = f.hub.stratum_addr();
    assert_eq!(f.hub.connections(), 2);
    let mut flood = Vec::new();
    for _ in 0..30 {
        flood.push(RawClient::connect(addr).await.expect("TCP connect"));
    }
    // The hub takes connections up to the limit and closes every one beyond it at once.
    f.closed_for("max_connections", (30 - (MAX - 2)) as f64)
        .await;
    // Every connection asks to subscribe: the ones the hub kept answer, the refused ones are
    // closed without a word (EOF or reset). Each ends in one of these two positive events; a
    // connection that neither answers nor closes within the timeout fails the test.
    let (mut answered, mut closed) = (0, 0);
    for (i, c) in flood.iter_mut().enumerate() {
        let _ = c
            .send_line(r#"{"id":7,"method":"mining.subscribe","params":["flood/1.0"]}"#)
            .await;
        let mut lines = Vec::new();
        loop {
            match c.next_event(T).await {
                RawRead::Line(l) => {
                    let v: Value = serde_json::from_str(&l).expect("JSON from the hub");
                    if v["id"] == json!(7) {
                        assert!(v["result"].is_array(), "connection {i}: {v}");
                        answered += 1;
                        break;
                    }
                    lines.push(l);
                }
                RawRead::Closed => {
                    assert!(
                        lines.is_empty(),
                        "connection {i}: a refused connection is closed with nothing sent: {lines:?}"
                    );
                    closed += 1;
                    break;
                }
                RawRead::TimedOut => {
                    panic!("connection {i}: neither answered nor closed within {T:?}")
                }
            }
        }
    }
    assert_eq!(
        closed,
        30 - (MAX - 2),
        "connections beyond {MAX} are closed, the others answered"
    );
    assert_eq!(answered, MAX - 2);
    assert_eq!(f.hub.connections(), MAX as u64);
    logged(&["connection refused: limits.maxConnections reached"]).await;
    f.honest_miners_never_noticed().await;
    // Once the flood goes, miners are accepted again.
    drop(flood);
    wait_until(T, || (f.hub.connections() == 2).then_some(()))
        .await
        .expect("the flood's connections are released");
    let late = SimMiner::spawn(addr, test_miner("late.rig", MINER_D, 10.0));
    late.wait_for(DEADLINE, |s| s.accepted >= 2)
        .await
        .expect("a new miner mines after the flood");
}

// ---------------------------------------------------------------------------------------------
// Slowloris
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_is_closed_by_the_handshake_and_idle_timeouts() {
    let f = farm(|c| {
        c.limits.handshake_timeout = hashsched_hub::routing::DurationSpec::from_secs(2);
        c.limits.idle_timeout = hashsched_hub::routing::DurationSpec::from_secs(3);
    })
    .await;
    let addr = f.hub.stratum_addr();
    // Before the handshake: a request dribbled a byte at a time, never finished.
    let mut early = RawClient::connect(addr).await.unwrap();
    // After the handshake: a miner that goes on sending bytes but never a whole line.
    let mut late = RawClient::connect(addr).await.unwrap();
    ask(&mut late, json!(1), "mining.subscribe", json!([]))
        .await
        .expect("subscribe");
    ask(
        &mut late,
        json!(2),
        "mining.authorize",
        json!(["slow.rig", "x"]),
    )
    .await
    .expect("authorize");
    let dribble = async {
        let text = b"{\"id\":3,\"method\":\"mining.subscribe\",\"params\":[\"";
        for i in 0.. {
            let b = [text[i % text.len()]];
            let e = early.send(&b).await.is_err();
            let l = late.send(&b).await.is_err();
            if e && l {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(T, dribble)
        .await
        .expect("both slow connections are closed while they dribble");
    assert!(early.closed_within(T).await);
    assert!(late.closed_within(T).await);
    f.closed_for("no subscribe/authorize within the handshake timeout", 1.0)
        .await;
    f.closed_for("idle timeout", 1.0).await;
    logged(&["reason=\"no subscribe/authorize within the handshake timeout\""]).await;
    logged(&["reason=\"idle timeout\""]).await;
    f.honest_miners_never_noticed().await;
}
