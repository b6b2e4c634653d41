//! The hub facing pools that misbehave the way real ones do: going silent, rejecting
//! everything, dropping sessions, changing difficulty or extranonce mid-session, asking for a
//! reconnect, refusing the password. In every case miners keep their one TCP connection and every
//! share lands in exactly one bucket.

use hashsched_hub::routing::DurationSpec;
use hashsched_hub::server::HubHandle;
use hashsched_hub::sim::miner::{MinerStats, SimMiner};
use hashsched_hub::sim::pool::{PoolConfig, SimPool};
use hashsched_tests::*;

const POOL_D: f64 = 4e-7;
const MINER_D: f64 = 1e-7;

fn fast_failover(cfg: &mut hashsched_hub::config::HubConfig) {
    if let Some(r) = cfg.routing.as_mut() {
        r.failover.starvation = DurationSpec::from_secs(3);
        r.failover.return_after = DurationSpec::from_secs(2);
        r.failover.reject_window = 10;
        r.failover.reject_ratio = 0.9;
        r.failover.backoff_min = DurationSpec::from_millis(100);
        r.failover.backoff_max = DurationSpec::from_secs(1);
    }
}

fn miners(hub: &HubHandle, prefix: &str, n: usize) -> Vec<SimMiner> {
    count_panics();
    (0..n)
        .map(|i| {
            let mut c = test_miner(&format!("{prefix}.{i}"), MINER_D, 10.0);
            c.version_rolling = i % 2 == 0;
            c.extranonce_subscribe = i % 3 == 0;
            SimMiner::spawn(hub.stratum_addr(), c)
        })
        .collect()
}

async fn until_pool_has(pool: &SimPool, miners: &[SimMiner], at_least: u64, what: &str) {
    for m in miners {
        let base = pool_counts_for(pool, m.worker()).accepted;
        wait_until(DEADLINE * 2, || {
            (pool_counts_for(pool, m.worker()).accepted >= base + at_least).then_some(())
        })
        .await
        .unwrap_or_else(|| {
            panic!(
                "{what}: {} got nothing accepted: {:?}",
                m.worker(),
                m.stats()
            )
        });
    }
}

/// Stalls the miners, waits for every verdict, and checks conservation miner ↔ hub ↔ pools, and
/// that no share reached a pool twice or a pool (or session) that did not issue its job: no pool
/// refused any share with 21, 22 or 23 ([`assert_no_misrouted_shares`]). Refusals with 20 (a
/// pool told to reject everything) must equal what the hub booked as rejected.
async fn settle_and_check(
    hub: &HubHandle,
    miners: &[SimMiner],
    pools: &[&SimPool],
) -> Vec<MinerStats> {
    assert_eq!(panics_seen(), 0, "something panicked");
    for m in miners {
        m.stall();
    }
    let mut out = Vec::new();
    for m in miners {
        out.push(
            m.wait_for(DEADLINE, |s| s.in_flight == 0)
                .await
                .expect("answers"),
        );
    }
    wait_until(DEADLINE, || {
        hub.facts().iter().all(|f| f.pending == 0).then_some(())
    })
    .await
    .expect("nothing pending at the hub");
    for (m, s) in miners.iter().zip(&out) {
        let w = m.worker();
        let f = facts_of(hub, w).expect("facts");
        assert_eq!(s.connections, 1, "{w} had to reconnect: {s:?}");
        assert!(s.is_conserved(), "{w}: {s:?}");
        assert_eq!(f.submitted(), s.submitted, "{w}: hub {f:?} miner {s:?}");
        assert_eq!(f.pending, 0);
        let accepted_at_pools: u64 = pools.iter().map(|p| pool_counts_for(p, w).accepted).sum();
        assert_eq!(f.shares.accepted, accepted_at_pools, "{w}: hub {f:?}");
        let rejected_at_pools: u64 = pools
            .iter()
            .map(|p| pool_counts_for(p, w).rejected_total())
            .sum();
        assert_eq!(f.shares.rejected, rejected_at_pools, "{w}: hub {f:?}");
    }
    for p in pools {
        assert_no_misrouted_shares(p);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_pool_is_left_for_the_next_one() {
    init_tracing();
    let first = SimPool::start(test_pool(POOL_D)).await.unwrap();
    let second = SimPool::start(test_pool(POOL_D)).await.unwrap();
    let mut cfg = hub_config(&[first.url(), second.url()], MINER_D);
    fast_failover(&mut cfg);
    let hub = start_hub(cfg).await;
    let ms = miners(&hub, "quiet", 4);
    until_pool_has(&first, &ms, 2, "before").await;
    first.set_silent(true);
    until_pool_has(&second, &ms, 3, "after the first pool went silent").await;
    // Shares sent to the silent pool never got a verdict: they must end up lost, not vanish.
    first.set_silent(false);
    settle_and_check(&hub, &ms, &[&first, &second]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_rejecting_everything_is_left_and_rejections_are_counted() {
    init_tracing();
    let first = SimPool::start(test_pool(POOL_D)).await.unwrap();
    let second = SimPool::start(test_pool(POOL_D)).await.unwrap();
    let mut cfg = hub_config(&[first.url(), second.url()], MINER_D);
    fast_failover(&mut cfg);
    let hub = start_hub(cfg).await;
    let ms = miners(&hub, "rej", 4);
    until_pool_has(&first, &ms, 2, "before").await;
    first.set_reject_all(true);
    until_pool_has(&second, &ms, 3, "after the first pool rejected everything").await;
    let total_rejected: u64 = ms
        .iter()
        .map(|m| pool_counts_for(&first, m.worker()).rejected_total())
        .sum();
    assert!(
        total_rejected > 0,
        "the first pool should have rejected something"
    );
    settle_and_check(&hub, &ms, &[&first, &second]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_sessions_are_reopened_on_the_same_pool() {
    init_tracing();
    let pool = SimPool::start(test_pool(POOL_D)).await.unwrap();
    let mut cfg = hub_config(&[pool.url()], MINER_D);
    fast_failover(&mut cfg);
    let hub = start_hub(cfg).await;
    let ms = miners(&hub, "drop", 4);
    until_pool_has(&pool, &ms, 2, "before").await;
    let seen = pool.stats().connections_seen;
    for _ in 0..3 {
        pool.close_all_sessions();
        wait_until(DEADLINE, || {
            (pool.stats().connections_seen > seen).then_some(())
        })
        .await
        .expect("the hub reconnects upstream");
        until_pool_has(&pool, &ms, 2, "after a drop").await;
    }
    settle_and_check(&hub, &ms, &[&pool]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_difficulty_and_extranonce_changes_mid_session() {
    init_tracing();
    let pool = SimPool::start(test_pool(POOL_D)).await.unwrap();
    let hub = start_hub(hub_config(&[pool.url()], MINER_D)).await;
    let ms = miners(&hub, "chg", 4);
    until_pool_has(&pool, &ms, 2, "before").await;
    // Harder pool: fewer shares are forwarded, none is rejected for low difficulty.
    pool.set_difficulty(2.0 * POOL_D);
    until_pool_has(&pool, &ms, 2, "after a difficulty rise").await;
    pool.set_difficulty(POOL_D / 2.0);
    until_pool_has(&pool, &ms, 2, "after a difficulty drop").await;
    // New extranonce1 for the hub's session (the hub subscribed to extranonce changes, or is
    // dropped and reconnects): miners keep their connection either way.
    pool.change_extranonce();
    until_pool_has(&pool, &ms, 3, "after an extranonce change").await;
    let stats = settle_and_check(&hub, &ms, &[&pool]).await;
    for (m, _) in ms.iter().zip(&stats) {
        let p = pool_counts_for(&pool, m.worker());
        assert_eq!(
            p.rejected.get(&23).copied().unwrap_or(0),
            0,
            "{}: low-difficulty shares forwarded",
            m.worker()
        );
    }
    assert!(
        pool.accepted_shares()
            .iter()
            .any(|s| s.difficulty == 2.0 * POOL_D)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_asking_for_reconnect_does_not_disturb_miners() {
    init_tracing();
    let pool = SimPool::start(test_pool(POOL_D)).await.unwrap();
    let hub = start_hub(hub_config(&[pool.url()], MINER_D)).await;
    let ms = miners(&hub, "rc", 3);
    until_pool_has(&pool, &ms, 2, "before").await;
    pool.send_reconnect(None, None, 0);
    until_pool_has(&pool, &ms, 3, "after client.reconnect").await;
    let stats = settle_and_check(&hub, &ms, &[&pool]).await;
    for (m, s) in ms.iter().zip(&stats) {
        assert_eq!(
            s.reconnects_received, 0,
            "client.reconnect leaked to miners"
        );
        // Shares of the replaced session's jobs still go to it: none refused, none lost.
        assert_eq!(s.rejected_total() + s.lost, 0, "{}: {s:?}", m.worker());
    }
    // One replacement session, and the replaced one closed once empty.
    assert_eq!(pool.stats().connections_seen, 2, "{:?}", pool.stats());
    wait_until(DEADLINE, || (pool.active_sessions() == 1).then_some(()))
        .await
        .unwrap_or_else(|| panic!("replaced session never closed: {:?}", pool.stats()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_refusing_the_password_is_skipped() {
    init_tracing();
    let strict = SimPool::start(PoolConfig {
        password: Some("right".into()),
        ..test_pool(POOL_D)
    })
    .await
    .unwrap();
    let open = SimPool::start(test_pool(POOL_D)).await.unwrap();
    let mut cfg = hub_config(&[strict.url(), open.url()], MINER_D);
    fast_failover(&mut cfg);
    let hub = start_hub(cfg).await;
    let ms = miners(&hub, "pw", 3);
    until_pool_has(&open, &ms, 3, "on the pool that accepts the password").await;
    assert!(strict.stats().authorizes_failed >= 1);
    assert_eq!(strict.stats().accepted_total(), 0);
    settle_and_check(&hub, &ms, &[&strict, &open]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_to_a_pool_without_version_rolling_narrows_the_miners_mask() {
    init_tracing();
    let rolling = SimPool::start(test_pool(POOL_D)).await.unwrap();
    let plain = SimPool::start(PoolConfig {
        configure: hashsched_hub::sim::pool::ConfigureSupport::NoVersionRolling,
        ..test_pool(POOL_D)
    })
    .await
    .unwrap();
    let mut cfg = hub_config(&[rolling.url(), plain.url()], MINER_D);
    fast_failover(&mut cfg);
    let hub = start_hub(cfg).await;
    count_panics();
    let ms: Vec<SimMiner> = (0..4)
        .map(|i| {
            SimMiner::spawn(
                hub.stratum_addr(),
                test_miner(&format!("mask.{i}"), MINER_D, 10.0),
            )
        })
        .collect();
    until_pool_has(&rolling, &ms, 2, "on the rolling pool").await;
    assert!(
        rolling
            .accepted_shares()
            .iter()
            .any(|s| s.version != 0x2000_0000)
    );
    rolling.set_refuse_connections(true);
    rolling.close_all_sessions();
    until_pool_has(&plain, &ms, 5, "on the pool without version rolling").await;
    let stats = settle_and_check(&hub, &ms, &[&rolling, &plain]).await;
    for (m, s) in ms.iter().zip(&stats) {
        let f = facts_of(&hub, m.worker()).unwrap();
        assert_eq!(
            pool_counts_for(&plain, m.worker()).rejected_total(),
            0,
            "{}",
            m.worker()
        );
        // Only shares in flight across the switch may be refused; the miner mines on.
        assert!(
            f.shares.invalid <= 2 + s.submitted / 20,
            "{}: {f:?}",
            m.worker()
        );
    }
    assert!(
        plain
            .accepted_shares()
            .iter()
            .all(|s| s.version == 0x2000_0000)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_to_a_pool_with_a_smaller_extranonce2() {
    init_tracing();
    let wide = SimPool::start(test_pool(POOL_D)).await.unwrap();
    let narrow = SimPool::start(PoolConfig {
        extranonce2_size: 4,
        ..test_pool(POOL_D)
    })
    .await
    .unwrap();
    let mut cfg = hub_config(&[wide.url(), narrow.url()], MINER_D);
    fast_failover(&mut cfg);
    let hub = start_hub(cfg).await;
    count_panics();
    // Half the miners accept set_extranonce, half do not (they may be asked to reconnect).
    let ms = miners(&hub, "narrow", 6);
    until_pool_has(&wide, &ms, 2, "on the wide pool").await;
    wide.set_refuse_connections(true);
    wide.close_all_sessions();
    until_pool_has(&narrow, &ms, 3, "on the narrow pool").await;
    for m in &ms {
        m.stall();
    }
    for m in &ms {
        let s = m
            .wait_for(DEADLINE, |s| s.in_flight == 0)
            .await
            .expect("answers");
        assert!(
            s.connections <= 2,
            "{} reconnected {} times",
            m.worker(),
            s.connections
        );
        assert_eq!(pool_counts_for(&narrow, m.worker()).rejected_total(), 0);
    }
    for (i, m) in ms.iter().enumerate() {
        if i % 3 == 0 {
            assert_eq!(
                m.stats().connections,
                1,
                "{} accepts set_extranonce and must not need a reconnect",
                m.worker()
            );
        }
    }
    // No two miners did the same work on the narrow pool.
    let mut owner = std::collections::HashMap::new();
    for sh in narrow.accepted_shares() {
        let prev = owner.insert(
            (
                sh.extranonce1.clone(),
                sh.extranonce2.clone(),
                sh.job_id.clone(),
                sh.nonce,
                sh.version,
            ),
            sh.worker.clone(),
        );
        assert!(prev.is_none_or(|p| p == sh.worker));
    }
    // Nothing sent twice, or to the pool (or session) that did not issue its job.
    assert_no_misrouted_shares(&wide);
    assert_no_misrouted_shares(&narrow);
    assert_eq!(panics_seen(), 0);
}
