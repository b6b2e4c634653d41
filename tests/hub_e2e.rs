//! The hub end to end over real TCP on 127.0.0.1: simulated miners → hub → simulated pools, every
//! share checked with real sha256d at the hub AND at the pool.
//!
//! Each test polls for its condition with generous deadlines (a loaded 2-core machine) and
//! asserts exact equalities only once everything has settled (miners stalled, nothing in flight).

use hashsched_hub::facts::WorkerFacts;
use hashsched_hub::metrics;
use hashsched_hub::protocol::error_code;
use hashsched_hub::server::HubHandle;
use hashsched_hub::sim::miner::{MinerStats, SimMiner};
use hashsched_hub::sim::pool::{ConfigureSupport, PoolConfig, SimPool};
use hashsched_tests::*;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// Pool difficulty; the hub's miner-facing difficulty is a quarter of it, so about three shares
/// in four stay at the hub (below the pool's target) and one in four is forwarded.
const POOL_D: f64 = 4e-7;
const MINER_D: f64 = 1e-7;

/// Stalls every miner and waits until no share is in flight anywhere (miner or hub).
async fn settle(hub: &HubHandle, miners: &[SimMiner]) -> Vec<MinerStats> {
    for m in miners {
        m.stall();
    }
    let mut out = Vec::new();
    for m in miners {
        out.push(
            m.wait_for(DEADLINE, |s| s.in_flight == 0)
                .await
                .expect("every submit answered"),
        );
    }
    wait_until(DEADLINE, || {
        let f = hub.facts();
        f.iter().all(|w| w.pending == 0).then_some(())
    })
    .await
    .expect("no share pending at the hub");
    // A stalled miner may still have had a submit on the wire when it stalled: re-read.
    let mut again = Vec::new();
    for m in miners {
        again.push(m.stats());
    }
    assert_eq!(
        out.iter().map(|s| s.submitted).collect::<Vec<_>>(),
        again.iter().map(|s| s.submitted).collect::<Vec<_>>()
    );
    again
}

fn facts(hub: &HubHandle, worker: &str) -> WorkerFacts {
    facts_of(hub, worker).unwrap_or_else(|| panic!("hub has no facts for {worker}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shares_are_conserved_from_miners_through_the_hub_to_the_pool() {
    init_tracing();
    let pool = SimPool::start(test_pool(POOL_D)).await.unwrap();
    let hub = start_hub(hub_config(&[pool.url()], MINER_D)).await;
    // A mix of firmware: version rolling or not, cpuminer's fixed submit id, SRI's ntime roll.
    let miners: Vec<SimMiner> = (0..12)
        .map(|i| {
            let mut c = test_miner(&format!("farm.rig{i}"), MINER_D, 10.0);
            c.version_rolling = i % 2 == 0;
            if i % 3 == 0 {
                c.fixed_submit_id = Some(4);
            }
            if i % 4 == 1 {
                c.ntime_ahead = Some(60);
            }
            SimMiner::spawn(hub.stratum_addr(), c)
        })
        .collect();
    for m in &miners {
        m.wait_for(DEADLINE, |s| s.accepted >= 40)
            .await
            .unwrap_or_else(|s| panic!("{} got no shares through: {s:?}", m.worker()));
    }
    // Every worker has some shares accepted at the pool (forwarded), not just answered.
    for m in &miners {
        wait_until(DEADLINE, || {
            (pool_counts_for(&pool, m.worker()).accepted >= 2).then_some(())
        })
        .await
        .unwrap_or_else(|| panic!("{}: nothing reached the pool", m.worker()));
    }
    let stats = settle(&hub, &miners).await;
    let text = hub.metrics_text();
    let (status, body) = http_get(hub.metrics_addr().expect("metrics enabled"), "/metrics")
        .await
        .unwrap();
    assert_eq!(status, 200);

    let mut total_forwarded = 0;
    for (m, s) in miners.iter().zip(&stats) {
        let w = m.worker();
        let f = facts(&hub, w);
        let p = pool_counts_for(&pool, w);
        assert!(s.is_conserved(), "{w}: {s:?}");
        assert_eq!(s.connections, 1, "{w} reconnected");
        assert_eq!(s.rejected_total(), 0, "{w}: {:?}", s.rejected);
        assert_eq!(s.lost, 0);
        // The hub saw exactly what the miner sent, each share in exactly one bucket.
        assert_eq!(f.submitted(), s.submitted, "{w}: {f:?}");
        assert_eq!(f.pending, 0);
        assert_eq!(f.shares.total(), s.submitted);
        assert_eq!(f.shares.locally_valid(), s.accepted, "{w}: {f:?}");
        assert_eq!(
            f.shares.stale + f.shares.duplicate + f.shares.invalid,
            0,
            "{w}: {f:?}"
        );
        assert_eq!(f.shares.rejected + f.shares.lost, 0, "{w}: {f:?}");
        // What the hub forwarded is exactly what the pool accepted, at the pool's difficulty.
        assert_eq!(f.shares.accepted, p.accepted, "{w}: hub {f:?} pool {p:?}");
        assert_eq!(p.rejected_total(), 0, "{w}: pool rejected {:?}", p.rejected);
        assert!((p.accepted_difficulty - p.accepted as f64 * POOL_D).abs() < 1e-12);
        assert!(
            f.shares.below_target > 0,
            "{w}: the hub should keep sub-target shares"
        );
        assert!((f.difficulty.locally_valid() - s.accepted_difficulty).abs() < 1e-9);
        total_forwarded += f.shares.accepted;
        // /metrics agrees (in process and over HTTP).
        for t in [&text, &body] {
            for (result, n) in [
                (metrics::result::ACCEPTED, f.shares.accepted),
                (metrics::result::BELOW_TARGET, f.shares.below_target),
            ] {
                let v = metric_value(
                    t,
                    metrics::WORKER_SHARES_TOTAL,
                    &[
                        (metrics::label::WORKER, w),
                        (metrics::label::RESULT, result),
                    ],
                );
                assert_eq!(v, Some(n as f64), "{w} {result} in /metrics");
            }
        }
    }
    assert_eq!(pool.stats().accepted_total(), total_forwarded);
    // Version-rolling miners' shares reached the pool with rolled versions.
    let shares = pool.accepted_shares();
    assert!(shares.iter().any(|s| s.version != 0x2000_0000));
    assert!(
        shares
            .iter()
            .all(|s| s.version & !0x1fff_e000 == 0x2000_0000)
    );
    assert!(shares.iter().all(|s| s.hash_difficulty >= s.difficulty));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_rolling_miners_on_a_pool_without_version_rolling() {
    init_tracing();
    let pool = SimPool::start(PoolConfig {
        configure: ConfigureSupport::NoVersionRolling,
        ..test_pool(POOL_D)
    })
    .await
    .unwrap();
    let hub = start_hub(hub_config(&[pool.url()], MINER_D)).await;
    let miners: Vec<SimMiner> = (0..4)
        .map(|i| {
            SimMiner::spawn(
                hub.stratum_addr(),
                test_miner(&format!("nv.{i}"), MINER_D, 10.0),
            )
        })
        .collect();
    for m in &miners {
        wait_until(DEADLINE, || {
            (pool_counts_for(&pool, m.worker()).accepted >= 3).then_some(())
        })
        .await
        .unwrap_or_else(|| {
            panic!(
                "{}: nothing accepted at the pool: {:?}",
                m.worker(),
                m.stats()
            )
        });
    }
    let stats = settle(&hub, &miners).await;
    for (m, s) in miners.iter().zip(&stats) {
        assert_eq!(s.rejected_total(), 0, "{}: {:?}", m.worker(), s.rejected);
        assert_eq!(s.connections, 1);
        let f = facts(&hub, m.worker());
        assert_eq!(
            f.shares.accepted,
            pool_counts_for(&pool, m.worker()).accepted
        );
        assert_eq!(pool_counts_for(&pool, m.worker()).rejected_total(), 0);
    }
    // The pool never saw rolled versions.
    assert!(
        pool.accepted_shares()
            .iter()
            .all(|s| s.version == 0x2000_0000)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_miners_share_few_upstream_sessions_without_collisions() {
    init_tracing();
    let n = 320;
    let pool = SimPool::start(test_pool(MINER_D)).await.unwrap();
    let mut cfg = hub_config(&[pool.url()], MINER_D);
    cfg.extranonce.max_miners_per_session = 128;
    let hub = start_hub(cfg).await;
    let mut miners = Vec::with_capacity(n);
    for i in 0..n {
        let mut c = test_miner(&format!("big.{i}"), MINER_D, 0.5);
        c.version_rolling = i % 2 == 0;
        c.tick = Duration::from_millis(200);
        miners.push(SimMiner::spawn(hub.stratum_addr(), c));
    }
    for m in &miners {
        wait_until(DEADLINE * 2, || {
            (pool_counts_for(&pool, m.worker()).accepted >= 1).then_some(())
        })
        .await
        .unwrap_or_else(|| panic!("{}: no share at the pool: {:?}", m.worker(), m.stats()));
    }
    let stats = settle(&hub, &miners).await;
    let ps = pool.stats();
    assert!(
        (3..=8).contains(&ps.active_sessions),
        "{} upstream sessions for {n} miners at 128 per session",
        ps.active_sessions
    );
    assert_eq!(
        ps.rejected_total(),
        0,
        "{:?}",
        ps.workers
            .iter()
            .filter(|w| w.1.rejected_total() > 0)
            .collect::<Vec<_>>()
    );
    // No two miners ever did the same work: per upstream session (extranonce1), the part of the
    // pool's extranonce2 in front of the miner's own extranonce2 identifies exactly one miner.
    let en2_size: HashMap<String, usize> = miners
        .iter()
        .zip(&stats)
        .map(|(m, s)| (m.worker().to_owned(), s.extranonce2_size))
        .collect();
    let mut owner: HashMap<(Vec<u8>, Vec<u8>), String> = HashMap::new();
    let mut whole: HashSet<(Vec<u8>, Vec<u8>, String)> = HashSet::new();
    for sh in pool.accepted_shares() {
        let miner = en2_size
            .keys()
            .find(|w| sh.worker == **w || sh.worker.ends_with(&format!(".{w}")))
            .cloned()
            .expect("pool worker maps to a miner");
        let m_en2 = en2_size[&miner];
        assert!(
            m_en2 < sh.extranonce2.len(),
            "miner en2 {m_en2} vs pool {}",
            sh.extranonce2.len()
        );
        let prefix = sh.extranonce2[..sh.extranonce2.len() - m_en2].to_vec();
        let prev = owner.insert((sh.extranonce1.clone(), prefix), miner.clone());
        assert!(
            prev.as_ref().is_none_or(|p| *p == miner),
            "tail shared by {prev:?} and {miner}"
        );
        whole.insert((sh.extranonce1, sh.extranonce2, miner));
    }
    assert!(owner.len() >= n);
    for (m, s) in miners.iter().zip(&stats) {
        assert_eq!(s.connections, 1, "{}", m.worker());
        assert!(s.is_conserved());
        assert_eq!(facts(&hub, m.worker()).submitted(), s.submitted);
    }
}

/// Sends one request line and returns the answer with that id, or `None` if the hub closed.
async fn ask(
    c: &mut RawClient,
    id: u64,
    method: &str,
    params: serde_json::Value,
) -> Option<serde_json::Value> {
    let line = serde_json::json!({"id": id, "method": method, "params": params}).to_string();
    c.send_line(&line).await.ok()?;
    c.read_answer(&serde_json::json!(id), Duration::from_secs(20))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_miner_input_is_answered_or_closed_and_other_miners_are_unaffected() {
    init_tracing();
    count_panics();
    let pool = SimPool::start(test_pool(POOL_D)).await.unwrap();
    let hub = start_hub(hub_config(&[pool.url()], MINER_D)).await;
    let good = SimMiner::spawn(hub.stratum_addr(), test_miner("ok.rig", MINER_D, 10.0));
    good.wait_for(DEADLINE, |s| s.accepted >= 5).await.unwrap();
    let addr = hub.stratum_addr();
    let t = Duration::from_secs(20);

    // Submit before subscribe / authorize: error 25 / 24, connection stays.
    let mut c = RawClient::connect(addr).await.unwrap();
    let a = ask(
        &mut c,
        1,
        "mining.submit",
        serde_json::json!(["ok.rig", "1", "00000000", "00000000", "00000000"]),
    )
    .await
    .expect("answer to an early submit");
    assert!(
        a["error"][0] == error_code::NOT_SUBSCRIBED || a["error"][0] == error_code::UNAUTHORIZED,
        "{a}"
    );
    let a = ask(&mut c, 2, "mining.subscribe", serde_json::json!(["raw/1"]))
        .await
        .expect("subscribe");
    let en2_size = a["result"][2].as_u64().expect("en2 size") as usize;
    let a = ask(
        &mut c,
        3,
        "mining.submit",
        serde_json::json!(["ok.rig", "1", "00".repeat(en2_size), "00000000", "00000000"]),
    )
    .await
    .expect("answer to an unauthorized submit");
    assert_eq!(a["error"][0], error_code::UNAUTHORIZED, "{a}");
    // Unknown method: error 20, never a disconnect.
    let a = ask(&mut c, 4, "mining.frobnicate", serde_json::json!([]))
        .await
        .expect("answer");
    assert_eq!(a["error"][0], error_code::OTHER, "{a}");
    let a = ask(
        &mut c,
        5,
        "mining.authorize",
        serde_json::json!(["raw.w", "x"]),
    )
    .await
    .expect("authorize");
    assert_eq!(a["result"], true, "{a}");
    // Unknown job, bad hex, wrong types, wrong sizes: error answers.
    let a = ask(
        &mut c,
        6,
        "mining.submit",
        serde_json::json!([
            "raw.w",
            "nope",
            "00".repeat(en2_size),
            "00000000",
            "00000000"
        ]),
    )
    .await
    .expect("answer");
    assert_eq!(a["error"][0], error_code::JOB_NOT_FOUND, "{a}");
    for (id, params) in [
        (
            7,
            serde_json::json!(["raw.w", "1", "zz".repeat(en2_size), "00000000", "00000000"]),
        ),
        (
            8,
            serde_json::json!(["raw.w", "1", "00".repeat(en2_size), "xyz", "00000000"]),
        ),
        (9, serde_json::json!(["raw.w", 1, 2, 3, 4])),
        (10, serde_json::json!("not an array")),
        (11, serde_json::json!([])),
    ] {
        let a = ask(&mut c, id, "mining.submit", params.clone())
            .await
            .unwrap_or_else(|| panic!("no answer to {params}"));
        assert!(a["error"].is_array(), "{params} → {a}");
    }
    // Junk lines: an error or nothing, but the connection still works afterwards.
    for junk in [
        "{not json",
        "[1,2,3]",
        "42",
        "{\"id\":12}",
        "{\"method\":7}",
    ] {
        c.send_line(junk).await.unwrap();
    }
    let a = ask(&mut c, 13, "mining.frobnicate", serde_json::json!([])).await;
    assert!(a.is_some(), "connection should survive a few junk lines");

    // An oversized line: the hub closes that connection.
    let mut big = RawClient::connect(addr).await.unwrap();
    let _ = big.send(&vec![b'x'; 1 << 20]).await;
    assert!(
        big.closed_within(t).await,
        "oversized line must close the connection"
    );

    // A flood of junk: errors and then a close (or rate limiting); never a crash.
    let mut flood = RawClient::connect(addr).await.unwrap();
    let mut line = Vec::new();
    for _ in 0..5000 {
        line.extend_from_slice(b"garbage garbage garbage\n");
    }
    let _ = flood.send(&line).await;
    assert!(
        flood.closed_within(t).await,
        "a junk flood must end with a close"
    );

    // Binary garbage and a half line then EOF.
    let mut bin = RawClient::connect(addr).await.unwrap();
    let _ = bin
        .send(&[0xff, 0x00, 0xfe, b'\n', 0x80, 0x81, b'\n'])
        .await;
    let _ = bin.send(b"{\"id\":1,\"method\":\"mining.subscr").await;
    drop(bin);

    // The good miner never noticed.
    let n = good.stats().accepted;
    good.wait_for(DEADLINE, |s| s.accepted >= n + 5)
        .await
        .expect("good miner keeps mining");
    let s = good.stats();
    assert_eq!(s.connections, 1);
    assert_eq!(s.rejected_total(), 0);
    // The hub counted protocol errors.
    let text = hub.metrics_text();
    assert!(
        metric_sum_where(
            &text,
            metrics::HUB_PROTOCOL_ERRORS_TOTAL,
            &[(metrics::label::SIDE, metrics::side::MINER)]
        ) > 0.0,
        "no miner protocol errors counted:\n{text}"
    );
    assert_eq!(panics_seen(), 0, "something panicked");
}

/// A "pool" that answers subscribe with junk shapes, sends bad notifies and an oversized line.
fn broken_pool_script() -> Script {
    std::sync::Arc::new(|id: &serde_json::Value, method: &str| {
        let line = |v: serde_json::Value| {
            let mut b = v.to_string().into_bytes();
            b.push(b'\n');
            b
        };
        match method {
            "mining.configure" => vec![line(
                serde_json::json!({"id": id, "result": "what", "error": null}),
            )],
            "mining.subscribe" => vec![
                b"not json at all\n".to_vec(),
                line(
                    serde_json::json!({"id": id, "result": [[], "zz-not-hex", -4], "error": null}),
                ),
                line(
                    serde_json::json!({"id": null, "method": "mining.notify", "params": ["j", "short", "", "", [], "x", "y", "z", true]}),
                ),
                line(
                    serde_json::json!({"id": null, "method": "mining.set_difficulty", "params": [-1]}),
                ),
                [vec![b'{'; 100_000], b"\n".to_vec()].concat(),
            ],
            "mining.authorize" => vec![line(
                serde_json::json!({"id": id, "result": {"weird": true}, "error": null}),
            )],
            _ => vec![line(
                serde_json::json!({"id": id, "result": null, "error": "nope"}),
            )],
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_sending_garbage_is_failed_over_and_never_breaks_the_hub() {
    init_tracing();
    count_panics();
    let bad = ScriptedPool::start(broken_pool_script()).await.unwrap();
    let good = SimPool::start(test_pool(POOL_D)).await.unwrap();
    let hub = start_hub(hub_config(&[bad.url(), good.url()], MINER_D)).await;
    let miners: Vec<SimMiner> = (0..3)
        .map(|i| {
            SimMiner::spawn(
                hub.stratum_addr(),
                test_miner(&format!("fo.{i}"), MINER_D, 10.0),
            )
        })
        .collect();
    for m in &miners {
        wait_until(DEADLINE * 2, || {
            (pool_counts_for(&good, m.worker()).accepted >= 3).then_some(())
        })
        .await
        .unwrap_or_else(|| {
            panic!(
                "{} never reached the good pool: {:?}",
                m.worker(),
                m.stats()
            )
        });
    }
    assert!(bad.connections.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    let stats = settle(&hub, &miners).await;
    for (m, s) in miners.iter().zip(&stats) {
        assert_eq!(s.rejected_total(), 0, "{}: {:?}", m.worker(), s.rejected);
        let f = facts(&hub, m.worker());
        assert_eq!(f.submitted(), s.submitted);
        assert_eq!(
            f.shares.accepted,
            pool_counts_for(&good, m.worker()).accepted
        );
    }
    // The hub still accepts new miners.
    let late = SimMiner::spawn(hub.stratum_addr(), test_miner("fo.late", MINER_D, 10.0));
    late.wait_for(DEADLINE, |s| s.accepted >= 3)
        .await
        .expect("hub still serving");
    let text = hub.metrics_text();
    assert!(
        metric_sum_where(
            &text,
            metrics::HUB_PROTOCOL_ERRORS_TOTAL,
            &[(metrics::label::SIDE, metrics::side::POOL)]
        ) > 0.0,
        "no pool protocol errors counted:\n{text}"
    );
    assert_eq!(panics_seen(), 0, "something panicked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_pool_is_failed_over_without_reconnecting_miners() {
    init_tracing();
    let first = SimPool::start(test_pool(POOL_D)).await.unwrap();
    let second = SimPool::start(test_pool(POOL_D)).await.unwrap();
    let hub = start_hub(hub_config(&[first.url(), second.url()], MINER_D)).await;
    let miners: Vec<SimMiner> = (0..6)
        .map(|i| {
            let mut c = test_miner(&format!("sw.{i}"), MINER_D, 10.0);
            c.version_rolling = i % 2 == 0;
            c.extranonce_subscribe = i % 3 == 0;
            SimMiner::spawn(hub.stratum_addr(), c)
        })
        .collect();
    for m in &miners {
        wait_until(DEADLINE, || {
            (pool_counts_for(&first, m.worker()).accepted >= 2).then_some(())
        })
        .await
        .unwrap_or_else(|| panic!("{}: nothing at the first pool", m.worker()));
    }
    let en1_before: Vec<Vec<u8>> = miners.iter().map(|m| m.stats().extranonce1).collect();
    // The first pool goes away (drops sessions, refuses new ones).
    first.set_refuse_connections(true);
    first.close_all_sessions();
    for m in &miners {
        wait_until(DEADLINE * 2, || {
            (pool_counts_for(&second, m.worker()).accepted >= 3).then_some(())
        })
        .await
        .unwrap_or_else(|| {
            panic!(
                "{} never moved to the second pool: {:?}",
                m.worker(),
                m.stats()
            )
        });
    }
    let stats = settle(&hub, &miners).await;
    for ((m, s), en1) in miners.iter().zip(&stats).zip(&en1_before) {
        assert_eq!(s.connections, 1, "{} had to reconnect", m.worker());
        // Same-sized pools: the miner's extranonce1 stays; nothing but new jobs was needed.
        assert_eq!(&s.extranonce1, en1, "{}", m.worker());
        assert_eq!(s.set_extranonce_received, 0, "{}", m.worker());
        assert_eq!(s.reconnects_received, 0, "{}", m.worker());
        assert!(s.is_conserved());
        let f = facts(&hub, m.worker());
        assert_eq!(f.submitted(), s.submitted, "{}: {f:?}", m.worker());
        // Every forwarded share is accounted: accepted at one of the pools, or lost in the drop.
        let at_pools = pool_counts_for(&first, m.worker()).accepted
            + pool_counts_for(&second, m.worker()).accepted;
        assert_eq!(f.shares.accepted, at_pools, "{}: {f:?}", m.worker());
        assert_eq!(pool_counts_for(&second, m.worker()).rejected_total(), 0);
    }
}
