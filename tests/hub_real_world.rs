//! Real-world job handling, end to end: miners that behave like pooler's cpuminer and like the
//! Stratum V2 reference implementation's SV1 miner, through the hub, to share-validating pools
//! with extranonce2 sizes 2, 4 and 8 that send their current job again (clean) on every
//! authorize. Each run compresses a minute of a miner's life into seconds, with the events real:
//! the first shares from a far too high starting difficulty, vardiff moving the difficulty up
//! and down (a miner that speeds up and slows down), a pool difficulty change, a second miner
//! joining (its upstream authorize makes the pool send its job again to the session both share),
//! a routing switch to the other pool, a failover when that pool stops sending work, and the
//! return once it recovers.
//!
//! What must hold for every miner: at least 99 % of its valid shares accepted at a pool; no
//! stale share caused by the hub (`stale`, `switch_stale`); no share forwarded twice (no
//! duplicate at any pool); no error reply to valid work (the SRI-like miner would quit on the
//! first one); identical work never announced as new (the cpuminer-like miner counts it); and
//! every share the miner sent in exactly one hub bucket.

mod routing_common;

use std::time::Duration;

use hashsched_hub::config::HubConfig;
use hashsched_hub::share::HASHES_PER_DIFFICULTY;
use hashsched_hub::sim::miner::{MinerConfig, MinerMode, MinerStats, SimMiner};
use hashsched_hub::sim::pool::{JobIds, SimPool};
use hashsched_hub::vardiff::VardiffConfig;
use hashsched_tests::{DEADLINE, init_tracing, wait_until};
use routing_common::*;

/// Pool difficulty; the miner-facing difficulty never goes below `MIN_D`, so every valid share
/// meets the pool's target (even after the pool doubles it) and is forwarded: "accepted at the
/// pool" then covers every valid share.
const POOL_D: f64 = 1e-7;
const MIN_D: f64 = 4e-7;
/// A miner at this rate and the 0.25 s share interval below settles near d = 1.2e-6.
const HASHRATE: f64 = 5.0 * 1.2e-6 * HASHES_PER_DIFFICULTY;

fn miner(mode: MinerMode, worker: &str) -> MinerConfig {
    let base = match mode {
        MinerMode::Cpuminer => MinerConfig::cpuminer(worker),
        MinerMode::Sri => MinerConfig::sri(worker),
        MinerMode::Firmware => MinerConfig::new(worker),
    };
    MinerConfig {
        hashrate: Some(HASHRATE),
        tick: Duration::from_millis(20),
        ..base
    }
}

fn hub_cfg(dir: &tempfile::TempDir, en2: usize) -> HubConfig {
    let mut cfg = hub_config(dir);
    cfg.vardiff = VardiffConfig {
        share_interval: hashsched_hub::routing::DurationSpec::from_millis(250),
        // Far too high for these miners: the first-minute steps must bring them down.
        initial_difficulty: 1e-3,
        min_difficulty: MIN_D,
        max_difficulty: 1e-3,
        retarget_shares: 12,
        retarget_after: hashsched_hub::routing::DurationSpec::from_secs(3),
        ..VardiffConfig::default()
    };
    if en2 < 4 {
        // A 2-byte pool extranonce2 holds a 1-byte tail and a 1-byte miner extranonce2 only.
        cfg.extranonce.tail_bytes = 1;
        cfg.extranonce.miner_extranonce2_size = 1;
        cfg.extranonce.min_miner_extranonce2_size = 1;
    }
    cfg
}

/// Waits until `worker` has `n` more shares accepted at `pool` than now.
async fn more_accepted(pool: &SimPool, worker: &str, n: u64, what: &str) {
    let up = upstream(worker);
    let since = pool.worker(&up).accepted;
    wait_until(DEADLINE, || {
        (pool.worker(&up).accepted >= since + n).then_some(())
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "{worker}: no {n} more shares at {} ({what}); pool sees {:?}",
            pool.config().name,
            pool.worker(&up)
        )
    });
}

async fn a_minute_of_real_world_events(mode: MinerMode, en2: usize) {
    init_tracing();
    hashsched_tests::count_panics();
    let pool_cfg = |name: &str, ids| hashsched_hub::sim::pool::PoolConfig {
        extranonce2_size: en2,
        job_ids: ids,
        resend_job_on_authorize: true,
        difficulty: POOL_D,
        ..live_pool(name)
    };
    let a = SimPool::start(pool_cfg("pool-a", JobIds::Hex))
        .await
        .unwrap();
    let b = SimPool::start(pool_cfg("pool-b", JobIds::Decimal))
        .await
        .unwrap();
    let pools = || vec![pool_spec("pool-a", &a), pool_spec("pool-b", &b)];
    let (w1, w2) = ("rig1", "rig2");
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = hub_cfg(&dir, en2);
    cfg.routing = Some(document(
        1,
        pools(),
        &[(w1, &["pool-a", "pool-b"]), (w2, &["pool-a", "pool-b"])],
    ));
    let hub = hashsched_hub::server::Hub::start(cfg).await.unwrap();
    // Miners connect to a hub that knows its pools (so the first miner's extranonce2 fits).
    wait_until(DEADLINE, || {
        hub.pool_facts()
            .iter()
            .filter(|p| p.up)
            .count()
            .eq(&2)
            .then_some(())
    })
    .await
    .expect("both pools up");

    // The first minute: from difficulty 1e-3 (minutes per share) to shares within seconds.
    let m1 = SimMiner::spawn(hub.stratum_addr(), miner(mode, w1));
    more_accepted(&a, w1, 10, "first shares").await;
    // A second miner: its upstream authorize makes pool a send its current job again, clean,
    // to the session rig1 mines on.
    let resent_before = a.stats().jobs_resent_on_authorize;
    let m2 = SimMiner::spawn(hub.stratum_addr(), miner(mode, w2));
    more_accepted(&a, w2, 10, "second miner").await;
    assert!(
        a.stats().jobs_resent_on_authorize > resent_before,
        "pool a re-sent its job on the second authorize"
    );
    more_accepted(&a, w1, 5, "after the re-send").await;
    // Difficulty changes: rig1 four times faster, then back (vardiff up, then down), and the
    // pool doubles its difficulty.
    m1.set_hashrate(Some(4.0 * HASHRATE));
    a.set_difficulty(2.0 * POOL_D);
    more_accepted(&a, w1, 30, "faster miner").await;
    m1.set_hashrate(Some(HASHRATE));
    more_accepted(&a, w1, 10, "slower again").await;
    a.set_difficulty(POOL_D);
    // A routing switch to pool b.
    hub.apply_routing(document(
        2,
        pools(),
        &[(w1, &["pool-b", "pool-a"]), (w2, &["pool-b", "pool-a"])],
    ))
    .expect("routing applies");
    more_accepted(&b, w1, 10, "after the switch").await;
    more_accepted(&b, w2, 10, "after the switch").await;
    // Failover: pool b stops sending work; the hub moves both miners to pool a...
    b.set_jobs_paused(true);
    more_accepted(&a, w1, 10, "after the failover").await;
    more_accepted(&a, w2, 10, "after the failover").await;
    // ...and back once pool b sends work again.
    b.set_jobs_paused(false);
    more_accepted(&b, w1, 10, "after the return").await;
    more_accepted(&b, w2, 10, "after the return").await;

    let miners = [&m1, &m2];
    for m in miners {
        m.stall();
    }
    let mut stats: Vec<MinerStats> = Vec::new();
    for m in miners {
        stats.push(
            m.wait_for(DEADLINE, |s| s.in_flight == 0)
                .await
                .unwrap_or_else(|s| panic!("{}: submits unanswered: {s:?}", m.worker())),
        );
    }
    wait_until(DEADLINE, || {
        hub.facts().iter().all(|f| f.pending == 0).then_some(())
    })
    .await
    .expect("nothing pending at the hub");
    let mut report = Vec::new();
    for (m, s) in miners.iter().zip(&stats) {
        let w = m.worker();
        let f = facts_of(&hub, w).expect("facts");
        let (pa, pb) = (a.worker(&upstream(w)), b.worker(&upstream(w)));
        let at_pools = pa.accepted + pb.accepted;
        // A share mined again under another id of the same work (the SRI miner redoes work it
        // is given again) was already forwarded once: it is not new valid work.
        let valid = s.submitted - f.shares.duplicate;
        report.push(format!(
            "{mode:?} en2={en2} {w}: submitted {} accepted at pools {at_pools} ({:.2} %), \
             hub {:?}, difficulty changes {}, jobs {}, identical jobs kept {}",
            s.submitted,
            100.0 * at_pools as f64 / valid.max(1) as f64,
            f.shares,
            s.set_difficulty_received,
            s.jobs_received,
            s.identical_jobs_kept
        ));
        assert_eq!(s.exited, None, "{w} quit: {s:?}");
        assert_eq!(s.connections, 1, "{w} had to reconnect: {s:?}");
        assert!(s.is_conserved(), "{w}: {s:?}");
        assert_eq!(s.rejected_total(), 0, "{w}: error replies {:?}", s.rejected);
        assert_eq!(s.lost, 0, "{w}: {s:?}");
        assert_eq!(
            f.submitted(),
            s.submitted,
            "{w}: every share in one bucket: {f:?}"
        );
        assert_eq!(
            f.shares.stale + f.shares.switch_stale + f.shares.job_change_stale,
            0,
            "{w}: stale shares: {f:?}"
        );
        assert_eq!(
            f.shares.invalid + f.shares.rejected + f.shares.lost,
            0,
            "{w}: {f:?}"
        );
        assert_eq!(
            pa.rejected_total() + pb.rejected_total(),
            0,
            "{w}: a pool refused shares (22 = a duplicate forwarded): a {:?} b {:?}",
            pa.rejected,
            pb.rejected
        );
        assert_eq!(f.shares.accepted, at_pools, "{w}: {f:?}");
        assert!(
            at_pools as f64 >= 0.99 * valid as f64,
            "{w}: only {at_pools} of {valid} valid shares accepted at the pools: {f:?}"
        );
        assert_eq!(
            s.identical_jobs_kept, 0,
            "{w}: identical work was announced as a new job"
        );
        assert!(
            s.set_difficulty_received >= 4,
            "{w}: the difficulty hardly moved: {s:?}"
        );
        if mode == MinerMode::Cpuminer {
            assert_eq!(f.shares.duplicate, 0, "{w}: {f:?}");
        }
    }
    println!("{}", report.join("\n"));
    assert_eq!(hashsched_tests::panics_seen(), 0, "something panicked");
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpuminer_like_miners_with_pool_extranonce2_size_2() {
    a_minute_of_real_world_events(MinerMode::Cpuminer, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpuminer_like_miners_with_pool_extranonce2_size_4() {
    a_minute_of_real_world_events(MinerMode::Cpuminer, 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpuminer_like_miners_with_pool_extranonce2_size_8() {
    a_minute_of_real_world_events(MinerMode::Cpuminer, 8).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sri_like_miners_with_pool_extranonce2_size_2() {
    a_minute_of_real_world_events(MinerMode::Sri, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sri_like_miners_with_pool_extranonce2_size_4() {
    a_minute_of_real_world_events(MinerMode::Sri, 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sri_like_miners_with_pool_extranonce2_size_8() {
    a_minute_of_real_world_events(MinerMode::Sri, 8).await;
}
