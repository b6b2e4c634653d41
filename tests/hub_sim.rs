//! The simulators against each other, without the hub: a simulated miner mining straight on the
//! simulated pool. These pin down that the doubles are honest (real sha256d shares accepted, bad
//! ones rejected with the right code, controls work) before they are used to judge the hub.

use hashsched_hub::protocol::error_code;
use hashsched_hub::sim::miner::{MinerConfig, SimMiner};
use hashsched_hub::sim::pool::{ConfigureSupport, PoolConfig, SimPool};
use hashsched_tests::{DEADLINE, RawClient, init_tracing, test_miner, test_pool};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

const D: f64 = 1e-7;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn miner_shares_are_validated_by_the_pool() {
    init_tracing();
    let pool = SimPool::start(test_pool(D)).await.unwrap();
    let miner = SimMiner::spawn(pool.addr(), test_miner("alice.rig1", D, 20.0));
    let s = miner
        .wait_for(DEADLINE, |s| s.accepted >= 30)
        .await
        .expect("miner gets shares accepted");
    assert_eq!(s.connections, 1);
    assert_eq!(s.rejected_total(), 0, "{:?}", s.rejected);
    // Version rolling was granted and used: accepted headers carry rolled versions.
    assert_eq!(s.version_mask, Some(0x1fff_e000));
    miner.stall();
    let s = miner
        .wait_for(DEADLINE, |s| s.in_flight == 0)
        .await
        .unwrap();
    let p = pool.worker("alice.rig1");
    assert_eq!(p.accepted, s.accepted);
    assert_eq!(p.rejected_total(), 0);
    assert!(s.is_conserved(), "{s:?}");
    assert!((p.accepted_difficulty - s.accepted_difficulty).abs() < 1e-12);
    assert!((s.accepted_difficulty - s.accepted as f64 * D).abs() < 1e-12);
    let shares = pool.accepted_shares();
    assert!(
        shares
            .iter()
            .all(|sh| sh.version != 0x2000_0000 && sh.version & !0x1fff_e000 == 0x2000_0000)
    );
    assert!(shares.iter().all(|sh| sh.hash_difficulty >= sh.difficulty));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpuminer_style_fixed_ids_and_no_version_rolling() {
    init_tracing();
    let pool = SimPool::start(PoolConfig {
        configure: ConfigureSupport::NoVersionRolling,
        ..test_pool(D)
    })
    .await
    .unwrap();
    let cfg = MinerConfig {
        fixed_submit_id: Some(4),
        version_rolling: false,
        ..test_miner("bob.cpu", D, 20.0)
    };
    let miner = SimMiner::spawn(pool.addr(), cfg);
    miner
        .wait_for(DEADLINE, |s| s.accepted >= 20)
        .await
        .unwrap();
    miner.stall();
    let s = miner
        .wait_for(DEADLINE, |s| s.in_flight == 0)
        .await
        .unwrap();
    assert_eq!(pool.worker("bob.cpu").accepted, s.accepted);
    assert!(s.shares.iter().all(|sh| sh.version_bits.is_none()));
    assert!(
        pool.accepted_shares()
            .iter()
            .all(|sh| sh.version == 0x2000_0000)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_controls_reject_difficulty_extranonce_reconnect() {
    init_tracing();
    let pool = SimPool::start(test_pool(D)).await.unwrap();
    let subscriber = SimMiner::spawn(
        pool.addr(),
        MinerConfig {
            extranonce_subscribe: true,
            ..test_miner("c.sub", D, 20.0)
        },
    );
    let plain = SimMiner::spawn(pool.addr(), test_miner("c.plain", D, 20.0));
    for m in [&subscriber, &plain] {
        m.wait_for(DEADLINE, |s| s.accepted >= 5).await.unwrap();
    }

    // Reject everything: the miners see error 20.
    pool.set_reject_all(true);
    plain
        .wait_for(DEADLINE, |s| {
            s.rejected.get(&error_code::OTHER).copied().unwrap_or(0) >= 3
        })
        .await
        .unwrap();
    pool.set_reject_all(false);

    // Difficulty change applies from the next job; the pool credits at the job's difficulty.
    pool.set_difficulty(2.0 * D);
    plain
        .wait_for(DEADLINE, |s| s.difficulty == 2.0 * D)
        .await
        .unwrap();

    // New extranonce1: the subscriber follows set_extranonce on the same connection; the other
    // miner is disconnected and reconnects.
    let before = subscriber.stats().extranonce1;
    pool.change_extranonce();
    let s = subscriber
        .wait_for(DEADLINE, |s| {
            s.extranonce1 != before && s.set_extranonce_received == 1
        })
        .await
        .unwrap();
    assert_eq!(s.connections, 1);
    let accepted = s.accepted;
    subscriber
        .wait_for(DEADLINE, |s| s.accepted >= accepted + 5)
        .await
        .unwrap();
    plain
        .wait_for(DEADLINE, |s| s.connections >= 2)
        .await
        .unwrap();

    // client.reconnect to the same place.
    pool.send_reconnect(None, None, 0);
    let s = subscriber
        .wait_for(DEADLINE, |s| {
            s.connections >= 2 && s.authorized == Some(true)
        })
        .await
        .unwrap();
    assert_eq!(s.reconnects_received, 1);
    let accepted = s.accepted;
    subscriber
        .wait_for(DEADLINE, |s| s.accepted >= accepted + 3)
        .await
        .unwrap();
    assert!(pool.stats().connections_seen >= 4);
    // Credit per worker at pool == what the miner saw accepted (after everything settles).
    for m in [&subscriber, &plain] {
        m.stall();
        let s = m.wait_for(DEADLINE, |s| s.in_flight == 0).await.unwrap();
        assert_eq!(
            pool.worker(m.worker()).accepted,
            s.accepted,
            "{}",
            m.worker()
        );
        assert!(s.is_conserved());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn miner_stall_resume_die_and_pool_refuse_close() {
    init_tracing();
    let pool = SimPool::start(test_pool(D)).await.unwrap();
    let miner = SimMiner::spawn(
        pool.addr(),
        MinerConfig {
            reconnect_delay: Some(Duration::from_millis(100)),
            ..test_miner("d.rig", D, 20.0)
        },
    );
    miner.wait_for(DEADLINE, |s| s.accepted >= 3).await.unwrap();
    miner.stall();
    let s = miner
        .wait_for(DEADLINE, |s| s.in_flight == 0)
        .await
        .unwrap();
    // Two new jobs reach the stalled miner (its loop is alive and has work), and still it
    // submits nothing: waiting for that replaces a fixed sleep.
    pool.new_job(true);
    pool.new_job(true);
    miner
        .wait_for(DEADLINE, |x| x.jobs_received >= s.jobs_received + 2)
        .await
        .unwrap();
    assert_eq!(
        miner.stats().submitted,
        s.submitted,
        "a stalled miner submits nothing"
    );
    assert!(miner.stats().connected);
    miner.resume();
    miner
        .wait_for(DEADLINE, |s| {
            s.accepted >= s.accepted.max(1) && s.submitted > 0
        })
        .await
        .unwrap();
    let n = miner.stats().accepted;
    miner
        .wait_for(DEADLINE, |s| s.accepted >= n + 3)
        .await
        .unwrap();

    // Refuse + close: the miner keeps trying; once accepted again it mines again.
    pool.set_refuse_connections(true);
    pool.close_all_sessions();
    miner.wait_for(DEADLINE, |s| !s.connected).await.unwrap();
    assert!(
        hashsched_tests::wait_until(DEADLINE, || (pool.stats().connections_refused >= 2)
            .then_some(()))
        .await
        .is_some()
    );
    pool.set_refuse_connections(false);
    let n = miner.stats().accepted;
    miner
        .wait_for(DEADLINE, |s| s.connected && s.accepted >= n + 3)
        .await
        .unwrap();

    miner.die();
    hashsched_tests::wait_until(DEADLINE, || miner.is_finished().then_some(()))
        .await
        .expect("miner task ends after die");
    hashsched_tests::wait_until(DEADLINE, || (pool.active_sessions() == 0).then_some(()))
        .await
        .expect("pool sees the session close");
}

/// Subscribes and authorizes a raw client; returns (extranonce1, en2 size, first notify params).
async fn raw_session(c: &mut RawClient, worker: &str) -> (String, u64, Vec<Value>) {
    let t = Duration::from_secs(20);
    c.send_line(&json!({"id": 1, "method": "mining.subscribe", "params": ["raw/1"]}).to_string())
        .await
        .unwrap();
    let sub = c.read_answer(&json!(1), t).await.expect("subscribe answer");
    let en1 = sub["result"][1].as_str().unwrap().to_owned();
    let n2 = sub["result"][2].as_u64().unwrap();
    c.send_line(
        &json!({"id": 2, "method": "mining.authorize", "params": [worker, "x"]}).to_string(),
    )
    .await
    .unwrap();
    let mut notify = None;
    let mut authorized = false;
    while notify.is_none() || !authorized {
        let line = c.read_line(t).await.expect("line from pool");
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["method"] == "mining.notify" {
            notify = v["params"].as_array().cloned();
        } else if v["id"] == json!(2) {
            assert_eq!(v["result"], json!(true));
            authorized = true;
        }
    }
    (en1, n2, notify.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_rejects_bad_shares_with_the_right_codes() {
    init_tracing();
    // Difficulty so small that every hash is a share, so hand-made submits are valid.
    let easy = SimPool::start(test_pool(1e-12)).await.unwrap();
    let mut c = RawClient::connect(easy.addr()).await.unwrap();
    let t = Duration::from_secs(20);

    // Submit before subscribe: 25.
    c.send_line(r#"{"id":9,"method":"mining.submit","params":["w","1","0000000000000000","00000000","00000000"]}"#)
        .await
        .unwrap();
    let a = c.read_answer(&json!(9), t).await.unwrap();
    assert_eq!(a["error"][0], json!(error_code::NOT_SUBSCRIBED));

    let (_en1, n2, notify) = raw_session(&mut c, "raw.w").await;
    let job = notify[0].as_str().unwrap().to_owned();
    let ntime = notify[7].as_str().unwrap().to_owned();
    let en2 = "00".repeat(n2 as usize);
    let submit = |id: u64, worker: &str, job: &str, en2: &str, ntime: &str, nonce: &str| {
        json!({"id": id, "method": "mining.submit", "params": [worker, job, en2, ntime, nonce]})
            .to_string()
    };
    let mut codes: HashMap<&str, Value> = HashMap::new();
    let cases = [
        ("ok", submit(10, "raw.w", &job, &en2, &ntime, "00000001")),
        ("dup", submit(11, "raw.w", &job, &en2, &ntime, "00000001")),
        (
            "unknown job",
            submit(12, "raw.w", "nope", &en2, &ntime, "00000002"),
        ),
        (
            "unauthorized",
            submit(13, "raw.other", &job, &en2, &ntime, "00000003"),
        ),
        (
            "short en2",
            submit(14, "raw.w", &job, "00", &ntime, "00000004"),
        ),
        (
            "bad hex",
            submit(15, "raw.w", &job, &en2, &ntime, "zzzzzzzz"),
        ),
        (
            "old ntime",
            submit(16, "raw.w", &job, &en2, "00000001", "00000005"),
        ),
    ];
    for (i, (name, line)) in cases.iter().enumerate() {
        c.send_line(line).await.unwrap();
        let a = c.read_answer(&json!(10 + i as u64), t).await.expect(name);
        codes.insert(name, a["error"].clone());
        if *name == "ok" {
            assert_eq!(a["result"], json!(true), "{a}");
        }
    }
    assert_eq!(codes["ok"], Value::Null);
    assert_eq!(codes["dup"][0], json!(error_code::DUPLICATE));
    assert_eq!(codes["unknown job"][0], json!(error_code::JOB_NOT_FOUND));
    assert_eq!(codes["unauthorized"][0], json!(error_code::UNAUTHORIZED));
    assert_eq!(codes["short en2"][0], json!(error_code::OTHER));
    assert_eq!(codes["bad hex"][0], json!(error_code::OTHER));
    assert_eq!(codes["old ntime"][0], json!(error_code::OTHER));

    // Version bits without negotiation: rejected.
    c.send_line(&json!({"id": 30, "method": "mining.submit", "params": ["raw.w", job, en2, ntime, "00000009", "00002000"]}).to_string())
        .await
        .unwrap();
    assert_eq!(
        c.read_answer(&json!(30), t).await.unwrap()["error"][0],
        json!(error_code::OTHER)
    );

    // Junk and wrong types: an error answer, the session stays up.
    c.send_line("this is not json").await.unwrap();
    c.send_line(r#"{"id":31,"method":"mining.submit","params":"nope"}"#)
        .await
        .unwrap();
    assert_eq!(
        c.read_answer(&json!(31), t).await.unwrap()["error"][0],
        json!(error_code::OTHER)
    );
    c.send_line(r#"{"id":32,"method":"mining.bogus","params":[]}"#)
        .await
        .unwrap();
    assert_eq!(
        c.read_answer(&json!(32), t).await.unwrap()["error"][0],
        json!(error_code::OTHER)
    );
    let w = easy.worker("raw.w");
    assert_eq!(w.accepted, 1);
    assert!(w.rejected_total() >= 6);

    // Oversized line: the pool closes the connection.
    let big = vec![b'a'; 64 * 1024];
    let _ = c.send(&big).await;
    assert!(c.closed_within(t).await);

    // Low difficulty at a hard pool: 23.
    let hard = SimPool::start(test_pool(1e9)).await.unwrap();
    let mut c = RawClient::connect(hard.addr()).await.unwrap();
    let (_en1, n2, notify) = raw_session(&mut c, "raw.h").await;
    c.send_line(&submit(
        40,
        "raw.h",
        notify[0].as_str().unwrap(),
        &"00".repeat(n2 as usize),
        notify[7].as_str().unwrap(),
        "00000000",
    ))
    .await
    .unwrap();
    assert_eq!(
        c.read_answer(&json!(40), t).await.unwrap()["error"][0],
        json!(error_code::LOW_DIFFICULTY)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_miners_on_one_pool_never_share_work() {
    init_tracing();
    let pool = SimPool::start(test_pool(D)).await.unwrap();
    let miners: Vec<SimMiner> = (0..50)
        .map(|i| SimMiner::spawn(pool.addr(), test_miner(&format!("m.{i}"), D, 2.0)))
        .collect();
    for m in &miners {
        m.wait_for(DEADLINE, |s| s.accepted >= 2).await.unwrap();
    }
    let mut owner: HashMap<(Vec<u8>, Vec<u8>), String> = HashMap::new();
    let mut sessions = HashSet::new();
    for sh in pool.accepted_shares().iter() {
        sessions.insert(sh.session);
        let prev = owner.insert(
            (sh.extranonce1.clone(), sh.extranonce2.clone()),
            sh.worker.clone(),
        );
        assert!(
            prev.as_ref().is_none_or(|p| *p == sh.worker),
            "work shared by {prev:?} and {}",
            sh.worker
        );
    }
    assert_eq!(sessions.len(), 50);
}

/// `stall` takes effect when it returns: once a stalled miner has nothing in flight, it submits
/// nothing more. Every test that settles its miners before comparing counts relies on it; when
/// the stall only took effect at the miner task's next look at its commands, a share the task
/// was finding meanwhile slipped out after the test had seen `in_flight == 0` (a CI failure in
/// `hub_e2e`). A full-speed miner spends nearly all its time inside that window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_takes_effect_when_it_returns() {
    init_tracing();
    // About one share per eight full-speed steps: rarely anything in flight, always hashing.
    let d = 1e-6;
    let pool = SimPool::start(test_pool(d)).await.unwrap();
    let miner = SimMiner::spawn(
        pool.addr(),
        MinerConfig {
            hashrate: None,
            ..test_miner("stall.rig", d, 1.0)
        },
    );
    miner.wait_for(DEADLINE, |s| s.accepted >= 3).await.unwrap();
    for round in 0..20 {
        let before = miner.stats().submitted;
        miner.resume();
        miner
            .wait_for(DEADLINE, |s| s.submitted > before)
            .await
            .unwrap_or_else(|s| panic!("round {round}: the resumed miner found nothing: {s:?}"));
        miner.stall();
        assert!(miner.stats().stalled);
        let settled = miner
            .wait_for(DEADLINE, |s| s.in_flight == 0)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
        let later = miner.stats();
        assert_eq!(
            later.submitted, settled.submitted,
            "round {round}: a share went out after the stalled miner had settled"
        );
        assert!(later.is_conserved(), "{later:?}");
    }
}

/// The simulated pool never sends older work after newer on a connection. Its subscribe and
/// authorize answers send the newest job at once, while broadcasts of jobs made a moment
/// earlier may still be queued for the connection; those used to follow, out of order, and a
/// proxy took the newest job's second arrival for new work (a CI failure in `hub_job_fanout`:
/// one job too many).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sim_pool_sends_a_connection_its_jobs_in_order() {
    init_tracing();
    let pool = SimPool::start(test_pool(D)).await.unwrap();
    let mut c = RawClient::connect(pool.addr()).await.unwrap();
    c.send_line(r#"{"id":1,"method":"mining.subscribe","params":[]}"#)
        .await
        .unwrap();
    // Each authorize goes out, then a burst of jobs is made while the pool reads it.
    for i in 0..40 {
        let line = format!(
            r#"{{"id":{},"method":"mining.authorize","params":["w{i}","x"]}}"#,
            10 + i
        );
        c.send_line(&line).await.unwrap();
        for _ in 0..50 {
            pool.new_job(false);
        }
        tokio::task::yield_now().await;
    }
    let mut seqs: Vec<u64> = Vec::new();
    while let Some(line) = c.read_line(Duration::from_millis(500)).await {
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        if v["method"] == "mining.notify" {
            let id = v["params"][0].as_str().unwrap();
            seqs.push(u64::from_str_radix(id, 16).unwrap());
        }
    }
    assert!(seqs.len() > 100, "{} jobs", seqs.len());
    // Non-decreasing: an authorize answer may send the newest job again, never an older one.
    if let Some(w) = seqs.windows(2).find(|w| w[1] < w[0]) {
        panic!("job {} sent after job {}", w[1], w[0]);
    }
}

/// A proxy's connection carries the shares of many miners at once; the simulated pool checks
/// such a burst on several tasks side by side. Its answers must still come in the order the
/// shares were sent, with the verdicts one-by-one checking gives: an authorize in the middle of
/// the burst in force for what follows it and not for what came before, and of two copies of
/// one share (300 lines apart, so most likely checked by different tasks) exactly one accepted
/// and the other refused as a duplicate (which one is the race a pool with worker threads has).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_on_one_connection_is_answered_in_order_with_one_by_one_verdicts() {
    init_tracing();
    let pool = SimPool::start(test_pool(1e-12)).await.unwrap();
    let mut c = RawClient::connect(pool.addr()).await.unwrap();
    let (_en1, n2, notify) = raw_session(&mut c, "burst.a").await;
    let job = notify[0].as_str().unwrap().to_owned();
    let ntime = notify[7].as_str().unwrap().to_owned();
    let en2 = "00".repeat(n2 as usize);
    let submit = |id: u64, worker: &str, job: &str, nonce: u32| {
        json!({"id": id, "method": "mining.submit",
               "params": [worker, job, en2, ntime, format!("{nonce:08x}")]})
        .to_string()
    };
    // (id, line, expected error code or None for accepted)
    let mut plan: Vec<(u64, String, Option<i64>)> = Vec::new();
    let mut burst = String::new();
    let mut id = 100u64;
    // Each duplicate's id → its original's id.
    let mut copy_of: HashMap<u64, u64> = HashMap::new();
    for round in 0..3u32 {
        for k in 0..400u32 {
            let nonce = round * 1_000_000 + k;
            let (line, want) = match k % 10 {
                // The same share as 300 ids earlier: most likely checked by another task.
                7 if k >= 300 => {
                    copy_of.insert(id, id - 300);
                    (
                        submit(id, "burst.a", &job, round * 1_000_000 + k - 300),
                        Some(error_code::DUPLICATE),
                    )
                }
                8 => (
                    submit(id, "burst.a", "no-such-job", nonce),
                    Some(error_code::JOB_NOT_FOUND),
                ),
                // Authorized only by the authorize in the middle of round 1.
                9 => (
                    submit(id, "burst.b", &job, nonce + 500_000),
                    (round == 0 || (round == 1 && k < 200)).then_some(error_code::UNAUTHORIZED),
                ),
                _ => (submit(id, "burst.a", &job, nonce), None),
            };
            plan.push((id, line, want));
            id += 1;
            if round == 1 && k == 199 {
                plan.push((
                    9999,
                    json!({"id": 9999, "method": "mining.authorize", "params": ["burst.b", "x"]})
                        .to_string(),
                    None,
                ));
            }
        }
    }
    for (_, line, _) in &plan {
        burst.push_str(line);
        burst.push('\n');
    }
    // One write: the pool reads the burst as a few long runs.
    c.send(burst.as_bytes()).await.unwrap();
    let t = Duration::from_secs(30);
    let mut answers: Vec<(u64, Option<i64>)> = Vec::new();
    while answers.len() < plan.len() {
        let line = c
            .read_line(t)
            .await
            .expect("an answer for every line of the burst");
        let v: Value = serde_json::from_str(&line).unwrap();
        let Some(id) = v["id"].as_u64() else {
            continue; // notifications (the job re-sent after the authorize)
        };
        answers.push((id, v["error"][0].as_i64()));
    }
    let sent: Vec<u64> = plan.iter().map(|p| p.0).collect();
    let got: Vec<u64> = answers.iter().map(|a| a.0).collect();
    assert_eq!(got, sent, "answers in the order the lines were sent");
    let verdict: HashMap<u64, Option<i64>> = answers.iter().copied().collect();
    let originals: HashSet<u64> = copy_of.values().copied().collect();
    for (id, line, want) in &plan {
        if let Some(original) = copy_of.get(id) {
            let pair = [verdict[original], verdict[id]];
            assert!(
                pair == [None, Some(error_code::DUPLICATE)]
                    || pair == [Some(error_code::DUPLICATE), None],
                "one of ids {original} and {id} (the same share) accepted, the other a duplicate: {pair:?}"
            );
        } else if !originals.contains(id) {
            assert_eq!(verdict[id], *want, "verdict for id {id}: {line}");
        }
    }
    let stats = pool.stats();
    assert!(
        stats.share_runs_split > 0,
        "the burst was never split over tasks: this test did not test the split"
    );
    let accepted = plan.iter().filter(|p| p.2.is_none() && p.0 != 9999).count() as u64;
    assert_eq!(stats.accepted_total(), accepted);
}

/// The ASIC-at-farm-difficulty mode the throughput bench uses for the hub's worst case: every
/// share on its own extranonce2, all of them valid, for a version-rolling miner and a plain one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miner_can_put_every_share_on_a_fresh_extranonce2() {
    init_tracing();
    let pool = SimPool::start(test_pool(D)).await.unwrap();
    for rolling in [true, false] {
        let worker = format!("fresh.{rolling}");
        let miner = SimMiner::spawn(
            pool.addr(),
            MinerConfig {
                extranonce2_per_share: true,
                version_rolling: rolling,
                record_shares: true,
                ..test_miner(&worker, D, 50.0)
            },
        );
        miner
            .wait_for(DEADLINE, |s| s.accepted >= 40)
            .await
            .expect("shares accepted");
        miner.stall();
        let s = miner
            .wait_for(DEADLINE, |s| s.in_flight == 0)
            .await
            .unwrap();
        assert_eq!(s.rejected_total(), 0, "{:?}", s.rejected);
        let en2s: HashSet<Vec<u8>> = s.shares.iter().map(|sh| sh.extranonce2.clone()).collect();
        assert_eq!(
            en2s.len(),
            s.shares.len(),
            "every share on its own extranonce2 (rolling: {rolling})"
        );
        assert_eq!(pool.worker(&worker).accepted, s.accepted);
    }
}
