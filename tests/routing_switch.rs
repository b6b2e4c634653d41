//! Live re-routing end to end: a routing change moves named workers to another pool while their
//! TCP connection to the hub stays up (extranonce folding), falls back to `mining.set_extranonce`
//! or `client.reconnect` when the new pool's extranonce2 is too small, and never loses or double
//! counts a share across the switch.

mod routing_common;

use hashsched_hub::metrics::HUB_ROUTING_GENERATION;
use hashsched_hub::sim::miner::{MinerConfig, SimMiner};
use hashsched_hub::sim::pool::{ConfigureSupport, PoolConfig, SimPool};
use hashsched_tests::{init_tracing, test_miner, test_pool};
use routing_common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_change_moves_named_workers_without_reconnect() {
    init_tracing();
    let a = SimPool::start(live_pool("a")).await.expect("pool a");
    let b = SimPool::start(live_pool("b")).await.expect("pool b");
    let pools = || vec![pool_spec("pool-a", &a), pool_spec("pool-b", &b)];
    let gen1 = document(
        1,
        pools(),
        &[
            ("rig-1", &["pool-a", "pool-b"]),
            ("rig-2", &["pool-a", "pool-b"]),
            ("rig-3", &["pool-a", "pool-b"]),
        ],
    );
    let t = start_hub(gen1).await;
    let addr = t.hub.stratum_addr();
    let miners: Vec<SimMiner> = ["rig-1", "rig-2", "rig-3"]
        .iter()
        .map(|w| SimMiner::spawn(addr, test_miner(w, D, 20.0)))
        .collect();
    for m in &miners {
        wait_accepted_at(&a, m.worker(), 0, 5).await;
    }

    // Move rig-1 and rig-2 to pool b; rig-3 stays.
    let gen2 = document(
        2,
        pools(),
        &[
            ("rig-1", &["pool-b", "pool-a"]),
            ("rig-2", &["pool-b"]),
            ("rig-3", &["pool-a", "pool-b"]),
        ],
    );
    let applied = t.hub.apply_routing(gen2).expect("generation 2 applies");
    assert!(applied.changed);
    assert_eq!(t.hub.applied_generation(), Some(2));

    for m in &miners[..2] {
        wait_accepted_at(&b, m.worker(), 0, 10).await;
    }
    let rig3_at_a = a.worker(&upstream("rig-3")).accepted;
    wait_accepted_at(&a, "rig-3", rig3_at_a, 5).await;
    assert_eq!(
        b.worker(&upstream("rig-3")).accepted,
        0,
        "rig-3 was not moved"
    );

    for m in &miners[..2] {
        let s = m.stats();
        assert_eq!(
            s.connections,
            1,
            "{}: the miner reconnected: {s:?}",
            m.worker()
        );
        assert_eq!(
            s.reconnects_received,
            0,
            "{}: got client.reconnect",
            m.worker()
        );
        assert_eq!(
            s.set_extranonce_received,
            0,
            "{}: got set_extranonce",
            m.worker()
        );
    }
    for w in ["rig-1", "rig-2"] {
        let f = facts_of(&t.hub, w).expect("facts");
        assert_eq!(f.pool.as_deref(), Some("pool-b"), "{w}: {f:?}");
    }
    assert_eq!(
        facts_of(&t.hub, "rig-3").and_then(|f| f.pool).as_deref(),
        Some("pool-a")
    );
    assert_eq!(
        metric_value(&t.hub.metrics_text(), HUB_ROUTING_GENERATION),
        Some(2.0),
        "generation metric:\n{}",
        t.hub.metrics_text()
    );

    let refs: Vec<&SimMiner> = miners.iter().collect();
    assert_conservation(&t.hub, &refs, &[&a, &b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_extranonce2_budget_falls_back_to_set_extranonce_or_reconnect() {
    init_tracing();
    let a = SimPool::start(live_pool("a")).await.expect("pool a");
    // 4 bytes of extranonce2 cannot carry the hub's 2-byte tail plus the miners' 4 bytes.
    let small = SimPool::start(PoolConfig {
        extranonce2_size: 4,
        ..live_pool("small")
    })
    .await
    .expect("pool small");
    let gen1 = document(
        1,
        vec![pool_spec("pool-a", &a)],
        &[("rig-sub", &["pool-a"]), ("rig-plain", &["pool-a"])],
    );
    let t = start_hub(gen1).await;
    let addr = t.hub.stratum_addr();
    let sub = SimMiner::spawn(
        addr,
        MinerConfig {
            extranonce_subscribe: true,
            ..test_miner("rig-sub", D, 20.0)
        },
    );
    let plain = SimMiner::spawn(
        addr,
        MinerConfig {
            extranonce_subscribe: false,
            reconnect_delay: Some(std::time::Duration::from_millis(200)),
            ..test_miner("rig-plain", D, 20.0)
        },
    );
    wait_accepted_at(&a, "rig-sub", 0, 5).await;
    wait_accepted_at(&a, "rig-plain", 0, 5).await;
    assert_eq!(sub.stats().extranonce2_size, 4);

    let gen2 = document(
        2,
        vec![pool_spec("pool-a", &a), pool_spec("pool-small", &small)],
        &[("rig-sub", &["pool-small"]), ("rig-plain", &["pool-small"])],
    );
    t.hub.apply_routing(gen2).expect("generation 2 applies");
    wait_accepted_at(&small, "rig-sub", 0, 5).await;
    wait_accepted_at(&small, "rig-plain", 0, 5).await;

    let s = sub.stats();
    assert_eq!(
        s.connections, 1,
        "subscribed miner must not reconnect: {s:?}"
    );
    assert!(
        s.set_extranonce_received >= 1,
        "subscribed miner gets set_extranonce: {s:?}"
    );
    assert!(
        s.extranonce2_size <= 2,
        "new extranonce2 fits the small pool: {s:?}"
    );
    let p = plain.stats();
    assert!(
        p.reconnects_received >= 1,
        "plain miner gets client.reconnect: {p:?}"
    );
    assert!(
        p.connections >= 2,
        "plain miner reconnected to the hub: {p:?}"
    );
    assert_eq!(p.set_extranonce_received, 0, "{p:?}");

    // Conservation for the subscribed miner (one connection). The plain miner's shares in flight
    // at its reconnect are `lost` on its side and settled by the hub; check its pools anyway.
    assert_conservation(&t.hub, &[&sub], &[&a, &small]).await;
    let f = facts_of(&t.hub, "rig-plain").expect("facts");
    let at_pools =
        a.worker(&upstream("rig-plain")).accepted + small.worker(&upstream("rig-plain")).accepted;
    assert_eq!(
        f.shares.accepted, at_pools,
        "rig-plain: hub vs pools: {f:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switch_to_narrower_version_mask_tells_the_miner() {
    init_tracing();
    let wide = SimPool::start(live_pool("wide")).await.expect("pool wide");
    // Narrower than BIP 320's 0x1fffe000, then no version rolling at all.
    let narrow = SimPool::start(PoolConfig {
        configure: ConfigureSupport::VersionRolling(0x0000_e000),
        ..live_pool("narrow")
    })
    .await
    .expect("pool narrow");
    let none = SimPool::start(PoolConfig {
        configure: ConfigureSupport::NoVersionRolling,
        ..live_pool("none")
    })
    .await
    .expect("pool none");
    let pools = || {
        vec![
            pool_spec("wide", &wide),
            pool_spec("narrow", &narrow),
            pool_spec("none", &none),
        ]
    };
    let t = start_hub(document(1, pools(), &[("rig-1", &["wide"])])).await;
    let m = SimMiner::spawn(t.hub.stratum_addr(), test_miner("rig-1", D, 20.0));
    wait_accepted_at(&wide, "rig-1", 0, 5).await;
    assert_eq!(m.stats().version_mask, Some(0x1fff_e000));

    t.hub
        .apply_routing(document(2, pools(), &[("rig-1", &["narrow"])]))
        .expect("applies");
    wait_accepted_at(&narrow, "rig-1", 0, 10).await;
    assert_eq!(
        m.stats().version_mask,
        Some(0x0000_e000),
        "miner told the narrower mask"
    );

    t.hub
        .apply_routing(document(3, pools(), &[("rig-1", &["none"])]))
        .expect("applies");
    wait_accepted_at(&none, "rig-1", 0, 10).await;
    assert_eq!(
        m.stats().version_mask,
        Some(0),
        "miner told: no version rolling"
    );
    assert_eq!(m.stats().connections, 1);

    // Nothing rejected for bad version bits at any pool, nothing lost.
    for p in [&wide, &narrow, &none] {
        assert_eq!(
            p.worker(&upstream("rig-1")).rejected_total(),
            0,
            "{}: {:?}",
            p.config().name,
            p.worker(&upstream("rig-1"))
        );
    }
    assert_conservation(&t.hub, &[&m], &[&wide, &narrow, &none]).await;
}

/// What a miner sees on the wire during a switch that needs every message: a new extranonce
/// (small extranonce2 at the new pool), a narrower version mask, the difficulty, and a clean job,
/// in the order docs/protocol.md gives ("Moving a miner to another pool").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switch_messages_arrive_in_protocol_order() {
    use hashsched_tests::RawClient;
    use serde_json::{Value, json};
    use std::time::Duration;

    init_tracing();
    // No periodic jobs: the only notify after the push is the switch's own (and a long
    // starvation time so the quiet pools are not failed).
    // Pool a has room for the miner's 4-byte extranonce2; the small one does not.
    let a = SimPool::start(PoolConfig {
        name: "a".into(),
        extranonce2_size: 8,
        ..test_pool(D)
    })
    .await
    .expect("pool a");
    let small = SimPool::start(PoolConfig {
        extranonce2_size: 4,
        configure: ConfigureSupport::VersionRolling(0x0000_e000),
        name: "small".into(),
        ..test_pool(D)
    })
    .await
    .expect("pool small");
    let quiet = |mut d: hashsched_hub::routing::RoutingDocument| {
        d.failover.starvation = hashsched_hub::routing::DurationSpec::from_secs(600);
        d
    };
    let t = start_hub(quiet(document(
        1,
        vec![pool_spec("pool-a", &a)],
        &[("rig-raw", &["pool-a"])],
    )))
    .await;
    let mut c = RawClient::connect(t.hub.stratum_addr())
        .await
        .expect("connect");
    let wait = Duration::from_secs(20);
    for (id, line) in [
        (
            1,
            json!({"id":1,"method":"mining.configure","params":[["version-rolling"],{"version-rolling.mask":"1fffe000","version-rolling.min-bit-count":2}]}),
        ),
        (
            2,
            json!({"id":2,"method":"mining.subscribe","params":["raw/1.0"]}),
        ),
        (
            3,
            json!({"id":3,"method":"mining.extranonce.subscribe","params":[]}),
        ),
        (
            4,
            json!({"id":4,"method":"mining.authorize","params":["rig-raw","x"]}),
        ),
    ] {
        c.send_line(&line.to_string()).await.expect("send");
        let answer = c.read_answer(&json!(id), wait).await;
        assert!(answer.is_some(), "no answer to request {id}");
    }
    // First job from pool a.
    loop {
        let line = c.read_line(wait).await.expect("first job");
        let v: Value = serde_json::from_str(&line).expect("json");
        if v["method"] == "mining.notify" {
            break;
        }
    }

    t.hub
        .apply_routing(quiet(document(
            2,
            vec![pool_spec("pool-a", &a), pool_spec("pool-small", &small)],
            &[("rig-raw", &["pool-small"])],
        )))
        .expect("applies");
    let mut seen = Vec::new();
    loop {
        let line = c
            .read_line(wait)
            .await
            .unwrap_or_else(|| panic!("no clean job after the switch; saw {seen:?}"));
        let v: Value = serde_json::from_str(&line).expect("json");
        let Some(method) = v["method"].as_str() else {
            continue;
        };
        seen.push(method.to_string());
        if method == "mining.set_extranonce" {
            assert_eq!(
                v["params"][1], 2,
                "extranonce2 size fits the small pool: {v}"
            );
        }
        if method == "mining.set_version_mask" {
            assert_eq!(v["params"][0], "0000e000", "{v}");
        }
        if method == "mining.notify" {
            assert_eq!(
                v["params"][8], true,
                "the first job after a switch is clean: {v}"
            );
            break;
        }
    }
    assert_eq!(
        seen,
        [
            "mining.set_extranonce",
            "mining.set_version_mask",
            "mining.set_difficulty",
            "mining.notify"
        ],
        "switch message order"
    );
}

/// Moving a miner away and back while the pool's job is unchanged must not make it re-mine work
/// it already submitted (a miner restarts its extranonce2 on each job it is sent, so the same
/// pool job sent again under a new id yields the same shares: duplicates at the pool, which also
/// count against the pool's health).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_back_to_the_same_pool_job_does_not_remine_old_work() {
    init_tracing();
    // One job per pool for the whole test.
    let a = SimPool::start(PoolConfig {
        name: "a".into(),
        ..test_pool(D)
    })
    .await
    .expect("pool a");
    let b = SimPool::start(PoolConfig {
        name: "b".into(),
        ..test_pool(D)
    })
    .await
    .expect("pool b");
    let pools = || vec![pool_spec("pool-a", &a), pool_spec("pool-b", &b)];
    let document = |g, w: &[(&str, &[&str])]| {
        let mut d = document(g, pools(), w);
        d.failover.starvation = hashsched_hub::routing::DurationSpec::from_secs(600);
        d
    };
    let t = start_hub(document(1, &[("rig-1", &["pool-a"])])).await;
    let m = SimMiner::spawn(t.hub.stratum_addr(), test_miner("rig-1", D, 20.0));
    wait_accepted_at(&a, "rig-1", 0, 10).await;
    t.hub
        .apply_routing(document(2, &[("rig-1", &["pool-b"])]))
        .expect("applies");
    wait_accepted_at(&b, "rig-1", 0, 5).await;
    let before = a.worker(&upstream("rig-1")).accepted;
    t.hub
        .apply_routing(document(3, &[("rig-1", &["pool-a"])]))
        .expect("applies");
    wait_accepted_at(&a, "rig-1", before, 10).await;
    let at_a = a.worker(&upstream("rig-1"));
    assert_eq!(
        at_a.rejected_total(),
        0,
        "work re-mined after moving back to the same pool job: {at_a:?}"
    );
    assert_conservation(&t.hub, &[&m], &[&a, &b]).await;
}

/// A miner speaking raw Stratum to the hub, for tests that build their own shares.
struct RawMiner {
    c: hashsched_tests::RawClient,
    en1: Vec<u8>,
    en2_size: usize,
}

/// How long a raw miner waits for any one answer or job.
const RAW_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

impl RawMiner {
    /// Connects, subscribes and authorizes `worker`.
    async fn join(addr: std::net::SocketAddr, worker: &str) -> RawMiner {
        use serde_json::json;
        let mut c = hashsched_tests::RawClient::connect(addr)
            .await
            .expect("connect");
        c.send_line(&json!({"id":1,"method":"mining.subscribe","params":["raw/1.0"]}).to_string())
            .await
            .expect("send");
        let sub = c
            .read_answer(&json!(1), RAW_WAIT)
            .await
            .expect("subscribe answer");
        let en1 = hashsched_hub::share::decode_hex(
            "extranonce1",
            sub["result"][1].as_str().expect("en1"),
        )
        .expect("hex");
        let en2_size = usize::try_from(sub["result"][2].as_u64().expect("en2 size")).expect("size");
        c.send_line(&json!({"id":2,"method":"mining.authorize","params":[worker,"x"]}).to_string())
            .await
            .expect("send");
        assert_eq!(
            c.read_answer(&json!(2), RAW_WAIT).await.expect("authorize")["result"],
            true
        );
        RawMiner { c, en1, en2_size }
    }

    /// The next `mining.notify`'s parameters (other lines are skipped).
    async fn next_notify(&mut self) -> Option<serde_json::Value> {
        loop {
            let line = self.c.read_line(RAW_WAIT).await?;
            let v: serde_json::Value = serde_json::from_str(&line).ok()?;
            if v["method"] == "mining.notify" {
                return Some(v["params"].clone());
            }
        }
    }

    /// A share of `job` meeting difficulty `d`, with the miner's extranonce2 counter at `n`:
    /// `mining.submit` parameters for `worker` (job id, extranonce2, ntime, nonce).
    fn share(&self, job: &serde_json::Value, worker: &str, n: u32, d: f64) -> serde_json::Value {
        use hashsched_hub::share::{JobTemplate, Target};
        let s = |i: usize| job[i].as_str().expect("notify string").to_string();
        let branch: Vec<String> = job[4]
            .as_array()
            .expect("branch")
            .iter()
            .filter_map(|b| b.as_str().map(str::to_owned))
            .collect();
        let tpl = JobTemplate::from_notify(&s(1), &s(2), &s(3), &branch, &s(5), &s(6), &s(7))
            .expect("template");
        let target = Target::from_difficulty(d).expect("target");
        let mut en2 = vec![0u8; self.en2_size];
        let bytes = n.to_be_bytes();
        let k = self.en2_size.min(4);
        en2[self.en2_size - k..].copy_from_slice(&bytes[4 - k..]);
        let nonce = (0..u32::MAX)
            .find(|nonce| {
                target.is_met_by(&tpl.share_hash(
                    &self.en1,
                    &en2,
                    tpl.ntime(),
                    *nonce,
                    tpl.version(),
                ))
            })
            .expect("a share exists");
        let en2_hex: String = en2.iter().map(|b| format!("{b:02x}")).collect();
        serde_json::json!([worker, s(0), en2_hex, s(7), format!("{nonce:08x}")])
    }
}

/// Late shares across a switch: a share for the old pool's job submitted right after the switch
/// goes to the old pool (its session still lives) and is credited there; once the old session is
/// gone, a share for its job is answered "job not found" (21) and counted stale, not invalid.
/// The two pools have different accounts: the late share goes out under the old pool's name
/// for the worker, never under the new pool's (which would credit another account there).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_shares_go_to_the_old_pool_while_its_session_lives() {
    use hashsched_hub::routing::PoolSpec;
    use serde_json::json;

    init_tracing();
    let a = SimPool::start(PoolConfig {
        name: "a".into(),
        ..test_pool(D)
    })
    .await
    .expect("pool a");
    let b = SimPool::start(PoolConfig {
        name: "b".into(),
        ..test_pool(D)
    })
    .await
    .expect("pool b");
    const ACCOUNT_B: &str = "acct-b";
    let quiet = |g, list: &[&str]| {
        let mut d = document(
            g,
            vec![
                pool_spec("pool-a", &a),
                PoolSpec {
                    user: ACCOUNT_B.into(),
                    ..pool_spec("pool-b", &b)
                },
            ],
            &[("rig-late", list)],
        );
        d.failover.starvation = hashsched_hub::routing::DurationSpec::from_secs(600);
        d
    };
    let t = start_hub(quiet(1, &["pool-a"])).await;
    let mut m = RawMiner::join(t.hub.stratum_addr(), "rig-late").await;
    let old_job = m.next_notify().await.expect("job from pool a");
    // Two real shares for the old job (different extranonce2).
    let (share_1, share_2) = (
        m.share(&old_job, "rig-late", 1, D),
        m.share(&old_job, "rig-late", 2, D),
    );

    t.hub.apply_routing(quiet(2, &["pool-b"])).expect("applies");
    m.next_notify().await.expect("job from pool b");

    // Late share while pool a's session lives: forwarded there and accepted.
    m.c.send_line(&json!({"id":10,"method":"mining.submit","params":share_1}).to_string())
        .await
        .expect("send");
    let r = m.c.read_answer(&json!(10), RAW_WAIT).await.expect("answer");
    assert_eq!(r["result"], true, "late share accepted: {r}");
    assert_eq!(
        a.worker(&upstream("rig-late")).accepted,
        1,
        "credited at the old pool, under its account"
    );
    let b_name = format!("{ACCOUNT_B}.rig-late");
    assert_eq!(
        a.worker(&b_name).accepted + a.worker(&b_name).rejected_total(),
        0,
        "the new pool's name never reaches the old pool"
    );
    assert_eq!(b.worker(&b_name).accepted, 0);

    // Old pool gone: the next late share is stale (21), not a worker fault.
    a.shutdown();
    hashsched_tests::wait_until(hashsched_tests::DEADLINE, || {
        t.hub
            .pool_facts()
            .iter()
            .find(|p| p.pool == "pool-a")
            .is_some_and(|p| !p.up)
            .then_some(())
    })
    .await
    .expect("hub sees pool a down");
    m.c.send_line(&json!({"id":11,"method":"mining.submit","params":share_2}).to_string())
        .await
        .expect("send");
    let r = m.c.read_answer(&json!(11), RAW_WAIT).await.expect("answer");
    assert_eq!(r["error"][0], 21, "stale after the old session died: {r}");
    let f = facts_of(&t.hub, "rig-late").expect("facts");
    assert_eq!(f.shares.accepted, 1, "{f:?}");
    assert_eq!(f.shares.switch_stale, 1, "switch-stale, not stale: {f:?}");
    assert_eq!(f.shares.stale, 0, "{f:?}");
    assert_eq!(
        f.shares.invalid + f.shares.rejected,
        0,
        "not a worker fault: {f:?}"
    );
}

/// Shares a miner writes together (pipelined, one `write`) are checked and handed to the pool
/// session together (one batch per worker and job): each is forwarded exactly once, the pool
/// accepts each, and the miner gets one `true` per request id, none missing, none twice; the
/// worker's facts book every one as accepted with nothing left pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shares_written_together_are_each_forwarded_once_and_answered_by_id() {
    use serde_json::{Value, json};
    use std::collections::BTreeSet;

    init_tracing();
    let a = SimPool::start(PoolConfig {
        name: "a".into(),
        ..test_pool(D)
    })
    .await
    .expect("pool a");
    let t = start_hub(document(
        1,
        vec![pool_spec("pool-a", &a)],
        &[("rig-burst", &["pool-a"])],
    ))
    .await;
    let mut m = RawMiner::join(t.hub.stratum_addr(), "rig-burst").await;
    let job = m.next_notify().await.expect("a job");
    // At the pool's difficulty: every one of these shares is forwarded.
    const N: u64 = 12;
    let mut burst = String::new();
    for i in 0..N {
        let params = m.share(&job, "rig-burst", i as u32 + 1, D);
        burst.push_str(
            &json!({"id": 100 + i, "method": "mining.submit", "params": params}).to_string(),
        );
        burst.push('\n');
    }
    m.c.send(burst.as_bytes()).await.expect("send the burst");
    let mut answered = BTreeSet::new();
    while answered.len() < N as usize {
        let line = m.c.read_line(RAW_WAIT).await.expect("every share answered");
        let v: Value = serde_json::from_str(&line).expect("json");
        if v.get("method").is_some_and(|m| !m.is_null()) {
            continue;
        }
        let id = v["id"].as_u64().expect("numeric id");
        assert_eq!(v["result"], true, "share {id} accepted: {v}");
        assert!(answered.insert(id), "share {id} answered twice");
    }
    assert_eq!(answered, (100..100 + N).collect::<BTreeSet<_>>());
    assert_eq!(
        a.worker(&upstream("rig-burst")).accepted,
        N,
        "each forwarded once"
    );
    assert_eq!(a.worker(&upstream("rig-burst")).rejected_total(), 0);
    let f = facts_of(&t.hub, "rig-burst").expect("facts");
    assert_eq!(f.shares.accepted, N, "{f:?}");
    assert_eq!(f.pending, 0, "{f:?}");
}
