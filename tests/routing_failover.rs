//! Pool failover inside the hub, end to end: a pool that is killed, refuses connections, goes
//! silent, rejects every share or refuses authorization loses its workers to the next pool in
//! their list (without the miners reconnecting), and gets them back once it has been healthy for
//! `returnAfter`.

mod routing_common;

use std::time::Duration;

use hashsched_hub::metrics::POOL_UP;
use hashsched_hub::sim::miner::SimMiner;
use hashsched_hub::sim::pool::{PoolConfig, SimPool};
use hashsched_tests::{init_tracing, test_miner, test_pool};
use routing_common::*;

const WORKERS: [&str; 2] = ["rig-1", "rig-2"];

/// Pool with periodic jobs (starvation is judged on job flow).
fn pool_cfg(name: &str) -> PoolConfig {
    PoolConfig {
        name: name.into(),
        job_interval: Some(Duration::from_millis(500)),
        ..test_pool(D)
    }
}

struct Farm {
    primary: SimPool,
    backup: SimPool,
    t: TestHub,
    miners: Vec<SimMiner>,
}

async fn farm() -> Farm {
    init_tracing();
    let primary = SimPool::start(pool_cfg("primary")).await.expect("primary");
    let backup = SimPool::start(pool_cfg("backup")).await.expect("backup");
    let doc = document(
        1,
        vec![pool_spec("primary", &primary), pool_spec("backup", &backup)],
        &[
            ("rig-1", &["primary", "backup"]),
            ("rig-2", &["primary", "backup"]),
        ],
    );
    let t = start_hub(doc).await;
    let miners: Vec<SimMiner> = WORKERS
        .iter()
        .map(|w| SimMiner::spawn(t.hub.stratum_addr(), test_miner(w, D, 20.0)))
        .collect();
    for w in WORKERS {
        wait_accepted_at(&primary, w, 0, 5).await;
    }
    Farm {
        primary,
        backup,
        t,
        miners,
    }
}

async fn all_mine_at(pool: &SimPool) {
    for w in WORKERS {
        let now = pool.worker(&upstream(w)).accepted;
        wait_accepted_at(pool, w, now, 5).await;
    }
}

fn assert_no_miner_reconnect(f: &Farm) {
    for m in &f.miners {
        let s = m.stats();
        assert_eq!(
            s.connections,
            1,
            "{}: miner had to reconnect: {s:?}",
            m.worker()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_pool_fails_over_and_workers_return_after_restart() {
    let mut f = farm().await;
    let addr = f.primary.addr();
    f.primary.shutdown();
    all_mine_at(&f.backup).await;
    assert_no_miner_reconnect(&f);

    // The pool comes back on the same address: the hub reconnects (backoff) and returns after
    // `returnAfter` of health.
    let restarted = loop {
        match SimPool::start_on(addr, pool_cfg("primary")).await {
            Ok(p) => break p,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    f.primary = restarted;
    all_mine_at(&f.primary).await;
    assert_no_miner_reconnect(&f);
    let text = f.t.hub.metrics_text();
    assert!(text.contains(POOL_UP), "pool up metric exported");
    let refs: Vec<&SimMiner> = f.miners.iter().collect();
    // The old primary's counts are gone with its process; conservation over what is observable:
    // backup + restarted primary must not exceed the hub's accepted, miners stay conserved.
    for m in &refs {
        m.stall();
    }
    for m in &refs {
        let s = m
            .wait_for(hashsched_tests::DEADLINE, |s| s.in_flight == 0)
            .await
            .expect("settles");
        assert!(s.is_conserved(), "{s:?}");
    }
    // Nothing the backup or the restarted primary received was sent twice or for another
    // pool's job.
    for p in [&f.primary, &f.backup] {
        hashsched_tests::assert_no_misrouted_shares(p);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusing_pool_fails_over_and_workers_return() {
    let f = farm().await;
    f.primary.set_refuse_connections(true);
    f.primary.close_all_sessions();
    all_mine_at(&f.backup).await;
    assert_no_miner_reconnect(&f);
    f.primary.set_refuse_connections(false);
    all_mine_at(&f.primary).await;
    assert_no_miner_reconnect(&f);
    let refs: Vec<&SimMiner> = f.miners.iter().collect();
    assert_conservation(&f.t.hub, &refs, &[&f.primary, &f.backup]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_pool_is_starved_out_and_workers_return() {
    let f = farm().await;
    f.primary.set_silent(true);
    all_mine_at(&f.backup).await;
    assert_no_miner_reconnect(&f);
    f.primary.set_silent(false);
    all_mine_at(&f.primary).await;
    assert_no_miner_reconnect(&f);
    let refs: Vec<&SimMiner> = f.miners.iter().collect();
    assert_conservation(&f.t.hub, &refs, &[&f.primary, &f.backup]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejecting_pool_fails_over_and_workers_return() {
    let f = farm().await;
    f.primary.set_reject_all(true);
    all_mine_at(&f.backup).await;
    assert_no_miner_reconnect(&f);
    f.primary.set_reject_all(false);
    all_mine_at(&f.primary).await;
    assert_no_miner_reconnect(&f);
    let refs: Vec<&SimMiner> = f.miners.iter().collect();
    assert_conservation(&f.t.hub, &refs, &[&f.primary, &f.backup]).await;
    // The rejected shares are the pool's verdict, counted as such.
    let rejected: u64 = WORKERS
        .iter()
        .filter_map(|w| facts_of(&f.t.hub, w))
        .map(|fa| fa.shares.rejected)
        .sum();
    assert!(rejected >= 1, "rejections at the failing pool are counted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_refusing_authorization_is_skipped() {
    init_tracing();
    let strict = SimPool::start(PoolConfig {
        password: Some("the-right-one".into()),
        ..pool_cfg("strict")
    })
    .await
    .expect("strict");
    let backup = SimPool::start(pool_cfg("backup")).await.expect("backup");
    let doc = document(
        1,
        vec![pool_spec("strict", &strict), pool_spec("backup", &backup)],
        &[("rig-1", &["strict", "backup"])],
    );
    let t = start_hub(doc).await;
    let m = SimMiner::spawn(t.hub.stratum_addr(), test_miner("rig-1", D, 20.0));
    wait_accepted_at(&backup, "rig-1", 0, 5).await;
    assert_eq!(strict.worker(&upstream("rig-1")).accepted, 0);
    assert!(
        strict.stats().authorizes_failed >= 1,
        "{:?}",
        strict.stats()
    );
    assert_eq!(m.stats().connections, 1);
    assert_conservation(&t.hub, &[&m], &[&strict, &backup]).await;
}
