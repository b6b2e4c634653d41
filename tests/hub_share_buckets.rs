//! Every kind of bad share a miner can send lands in its own bucket at the hub, with the right
//! stratum error, and is never forwarded: hand-made submits from a raw client against a hub whose
//! miner-facing difficulty is pinned (tiny: every hash valid; huge: none).

use hashsched_hub::protocol::error_code;
use hashsched_hub::sim::pool::SimPool;
use hashsched_tests::*;
use serde_json::{Value, json};
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

/// Configures (optionally with version rolling), subscribes and authorizes; returns
/// (extranonce2 size, granted mask, first notify params).
async fn handshake(c: &mut RawClient, worker: &str, rolling: bool) -> (usize, u32, Vec<Value>) {
    count_panics();
    let mut mask = 0;
    if rolling {
        c.send_line(&json!({"id": 1, "method": "mining.configure", "params": [["version-rolling"], {"version-rolling.mask": "1fffe000", "version-rolling.min-bit-count": 2}]}).to_string())
            .await
            .unwrap();
        let a = c.read_answer(&json!(1), T).await.expect("configure answer");
        assert_eq!(a["result"]["version-rolling"], true, "{a}");
        mask =
            u32::from_str_radix(a["result"]["version-rolling.mask"].as_str().unwrap(), 16).unwrap();
    }
    c.send_line(&json!({"id": 2, "method": "mining.subscribe", "params": ["raw/1"]}).to_string())
        .await
        .unwrap();
    let a = c.read_answer(&json!(2), T).await.expect("subscribe answer");
    let n2 = a["result"][2].as_u64().unwrap() as usize;
    c.send_line(
        &json!({"id": 3, "method": "mining.authorize", "params": [worker, "x"]}).to_string(),
    )
    .await
    .unwrap();
    let mut notify = None;
    let mut authorized = false;
    while notify.is_none() || !authorized {
        let line = c.read_line(T).await.expect("line from the hub");
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["method"] == "mining.notify" {
            notify = v["params"].as_array().cloned();
        } else if v["id"] == json!(3) {
            assert_eq!(v["result"], json!(true), "{v}");
            authorized = true;
        }
    }
    (n2, mask, notify.unwrap())
}

async fn submit(c: &mut RawClient, id: u64, params: Value) -> Value {
    c.send_line(&json!({"id": id, "method": "mining.submit", "params": params}).to_string())
        .await
        .unwrap();
    c.read_answer(&json!(id), T).await.expect("submit answer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bad_share_gets_its_error_and_its_bucket() {
    init_tracing();
    // Pool at a tiny difficulty too, so valid shares are forwarded and accepted.
    let pool = SimPool::start(test_pool(1e-12)).await.unwrap();
    let hub = start_hub(hub_config(&[pool.url()], 1e-12)).await;
    let mut c = RawClient::connect(hub.stratum_addr()).await.unwrap();
    let w = "buckets.raw";
    let (n2, mask, notify) = handshake(&mut c, w, true).await;
    assert_eq!(mask, 0x1fff_e000);
    let job = notify[0].as_str().unwrap().to_owned();
    let ntime = notify[7].as_str().unwrap().to_owned();
    let en2 = "00".repeat(n2);

    let ok = submit(
        &mut c,
        10,
        json!([w, job, en2, ntime, "00000001", "00002000"]),
    )
    .await;
    assert_eq!(ok["result"], true, "{ok}");
    let dup = submit(
        &mut c,
        11,
        json!([w, job, en2, ntime, "00000001", "00002000"]),
    )
    .await;
    assert_eq!(dup["error"][0], error_code::DUPLICATE, "{dup}");
    let stale = submit(
        &mut c,
        12,
        json!([w, "no-such-job", en2, ntime, "00000002"]),
    )
    .await;
    assert_eq!(stale["error"][0], error_code::JOB_NOT_FOUND, "{stale}");
    let bad_mask = submit(
        &mut c,
        13,
        json!([w, job, en2, ntime, "00000003", "e0000000"]),
    )
    .await;
    assert!(bad_mask["error"].is_array(), "{bad_mask}");
    let short = submit(&mut c, 14, json!([w, job, "00", ntime, "00000004"])).await;
    assert!(short["error"].is_array(), "{short}");
    let far = submit(&mut c, 15, json!([w, job, en2, "ffffffff", "00000005"])).await;
    assert!(far["error"].is_array(), "{far}");
    let ok2 = submit(&mut c, 16, json!([w, job, en2, ntime, "00000006"])).await;
    assert_eq!(ok2["result"], true, "{ok2}");

    wait_until(DEADLINE, || {
        let f = facts_of(&hub, w)?;
        (f.pending == 0 && f.shares.accepted == 2).then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("two shares accepted at the pool: {:?}", facts_of(&hub, w)));
    let f = facts_of(&hub, w).unwrap();
    assert_eq!(f.shares.duplicate, 1, "{f:?}");
    assert_eq!(f.shares.stale, 1, "{f:?}");
    assert_eq!(f.shares.invalid, 3, "{f:?}");
    assert_eq!(f.submitted(), 7, "{f:?}");
    assert_eq!(pool_counts_for(&pool, w).accepted, 2);
    assert_eq!(pool_counts_for(&pool, w).rejected_total(), 0);
    // The rolled version reached the pool.
    assert!(
        pool.accepted_shares()
            .iter()
            .any(|s| s.version == 0x2000_2000)
    );
    assert_eq!(panics_seen(), 0, "something panicked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn low_difficulty_shares_are_refused_and_not_forwarded() {
    init_tracing();
    let pool = SimPool::start(test_pool(1e-12)).await.unwrap();
    // A miner-facing difficulty no hand-made share will meet.
    let hub = start_hub(hub_config(&[pool.url()], 1e12)).await;
    let mut c = RawClient::connect(hub.stratum_addr()).await.unwrap();
    let w = "low.raw";
    let (n2, _, notify) = handshake(&mut c, w, false).await;
    for i in 0..5u32 {
        let a = submit(
            &mut c,
            20 + i as u64,
            json!([w, notify[0], "00".repeat(n2), notify[7], format!("{i:08x}")]),
        )
        .await;
        assert_eq!(a["error"][0], error_code::LOW_DIFFICULTY, "{a}");
    }
    let f = facts_of(&hub, w).expect("facts");
    assert_eq!(f.shares.invalid, 5, "{f:?}");
    assert_eq!(f.submitted(), 5);
    assert_eq!(
        pool.stats().accepted_total() + pool.stats().rejected_total(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_or_dead_miner_shows_in_the_facts() {
    init_tracing();
    let pool = SimPool::start(test_pool(4e-7)).await.unwrap();
    let hub = start_hub(hub_config(&[pool.url()], 1e-7)).await;
    let m = hashsched_hub::sim::miner::SimMiner::spawn(
        hub.stratum_addr(),
        test_miner("life.rig", 1e-7, 10.0),
    );
    m.wait_for(DEADLINE, |s| s.accepted >= 5).await.unwrap();
    assert!(facts_of(&hub, "life.rig").unwrap().connected);
    m.stall();
    let s = m.wait_for(DEADLINE, |s| s.in_flight == 0).await.unwrap();
    wait_until(DEADLINE, || {
        (facts_of(&hub, "life.rig")?.submitted() == s.submitted).then_some(())
    })
    .await
    .expect("hub caught up with the miner");
    let last = facts_of(&hub, "life.rig").unwrap().last_share_unix;
    assert!(last.is_some());
    m.die();
    wait_until(DEADLINE, || {
        (!facts_of(&hub, "life.rig")?.connected).then_some(())
    })
    .await
    .expect("the hub notices the miner left");
    let f = facts_of(&hub, "life.rig").unwrap();
    assert_eq!(f.submitted(), s.submitted);
    assert_eq!(f.last_share_unix, last);
}
