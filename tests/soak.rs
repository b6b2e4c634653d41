//! The soak: many simulated miners on one hub over two pools for a long time, with a random pool
//! fault or a routing change every few seconds. Every 30 s it prints the process's resident
//! memory, open file descriptors and live tokio tasks (they must stay flat), and at the end it
//! checks that every share landed in exactly one bucket and that no pool rejected a single share.
//!
//! Not part of CI (it runs for half an hour); run it with
//!
//! ```sh
//! SOAK_SECS=1800 SOAK_MINERS=1000 cargo test --release -p hashsched-tests --test soak -- --ignored --nocapture
//! ```
//!
//! Miners, pools and the hub share this process, so the memory figure covers all three.

use hashsched_hub::routing::DurationSpec;
use hashsched_hub::sim::miner::SimMiner;
use hashsched_hub::sim::pool::SimPool;
use hashsched_tests::*;
use std::time::{Duration, Instant};

const POOL_D: f64 = 2e-6;
const MINER_D: f64 = 5e-7;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "a 30-minute soak (SOAK_SECS, SOAK_MINERS); see the module doc for the command"]
async fn soak_with_pool_faults_and_routing_changes() {
    init_tracing();
    count_panics();
    let secs = env("SOAK_SECS", 1800);
    let n = env("SOAK_MINERS", 1000) as usize;
    // The simulators keep no per-share log here (they would by default, to let other tests
    // compare shares one by one): their bookkeeping would otherwise grow the RSS this soak
    // watches by about 1 KiB per share and hide the hub's own figure.
    let quiet_pool = || hashsched_hub::sim::pool::PoolConfig {
        record_shares: false,
        ..test_pool(POOL_D)
    };
    let a = SimPool::start(quiet_pool()).await.expect("pool a");
    let b = SimPool::start(quiet_pool()).await.expect("pool b");
    let mut cfg = hub_config(&[a.url(), b.url()], MINER_D);
    if let Some(r) = cfg.routing.as_mut() {
        r.failover.starvation = DurationSpec::from_secs(5);
        r.failover.return_after = DurationSpec::from_secs(5);
        r.failover.backoff_min = DurationSpec::from_millis(200);
        r.failover.backoff_max = DurationSpec::from_secs(2);
    }
    let base = cfg.routing.clone().expect("quick-start routing");
    let hub = start_hub(cfg).await;
    let miners: Vec<SimMiner> = (0..n)
        .map(|i| {
            let mut c = test_miner(&format!("soak.{i}"), MINER_D, 0.5);
            c.record_shares = false;
            c.version_rolling = i % 2 == 0;
            c.extranonce_subscribe = i % 3 == 0;
            SimMiner::spawn(hub.stratum_addr(), c)
        })
        .collect();
    let started = Instant::now();
    let mut next_report = Duration::ZERO;
    let mut generation = base.generation;
    let mut step = 0u64;
    println!("t_s rss_kib fds tasks connections accepted_a accepted_b");
    while started.elapsed() < Duration::from_secs(secs) {
        step += 1;
        // A fault or a routing change every 3 s, in a fixed rotation (repeatable runs).
        match step % 6 {
            0 => a.close_all_sessions(),
            1 => {
                // Swap the pool order: every miner moves to the other pool without reconnecting.
                let mut doc = base.clone();
                generation += 1;
                doc.generation = generation;
                if let Some(d) = doc.default_route.as_mut()
                    && generation.is_multiple_of(2)
                {
                    d.pools.reverse();
                }
                hub.apply_routing(doc).expect("routing accepted");
            }
            2 => b.send_reconnect(None, None, 0),
            3 => a.change_extranonce(),
            4 => {
                a.set_silent(true);
                tokio::time::sleep(Duration::from_secs(2)).await;
                a.set_silent(false);
            }
            _ => b.set_difficulty(if step % 12 == 5 { POOL_D * 2.0 } else { POOL_D }),
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        if started.elapsed() >= next_report {
            next_report += Duration::from_secs(30);
            println!(
                "{} {} {} {} {} {} {}",
                started.elapsed().as_secs(),
                rss_kib(),
                open_fds(),
                tokio::runtime::Handle::current()
                    .metrics()
                    .num_alive_tasks(),
                hub.connections(),
                a.stats().accepted_total(),
                b.stats().accepted_total(),
            );
        }
    }
    for m in &miners {
        m.stall();
    }
    let mut submitted = 0;
    let mut lost_at_hub = 0;
    let mut answered_by_code: std::collections::BTreeMap<i64, u64> = Default::default();
    for m in &miners {
        let s = m
            .wait_for(DEADLINE * 4, |s| s.in_flight == 0)
            .await
            .expect("answers");
        assert!(s.is_conserved(), "{}: {s:?}", m.worker());
        assert_eq!(s.connections, 1, "{}: {s:?}", m.worker());
        submitted += s.submitted;
        let f = facts_of(&hub, m.worker()).expect("facts");
        assert_eq!(f.submitted(), s.submitted, "{}: {f:?} {s:?}", m.worker());
        assert_eq!(f.shares.invalid, 0, "{f:?}");
        lost_at_hub += f.shares.lost;
        for (code, n) in &s.rejected {
            *answered_by_code.entry(*code).or_default() += n;
        }
    }
    // Shares the pools never judged (silent pool, closed sessions): answered 20 by the hub.
    println!(
        "lost (no verdict from a pool): {lost_at_hub}; refusals the miners saw, by code: {answered_by_code:?}"
    );
    let mut rejected_by_code: std::collections::BTreeMap<i64, u64> = Default::default();
    for stats in [a.stats(), b.stats()] {
        for w in stats.workers.values() {
            for (code, n) in &w.rejected {
                *rejected_by_code.entry(*code).or_default() += n;
            }
        }
    }
    println!("rejected at the pools, by stratum error code: {rejected_by_code:?}");
    assert_eq!(
        a.stats().rejected_total() + b.stats().rejected_total(),
        0,
        "a pool rejected shares"
    );
    assert_eq!(panics_seen(), 0);
    println!(
        "done: {n} miners, {secs} s, {submitted} shares submitted, accepted a={} b={}, rss {} KiB, fds {}",
        a.stats().accepted_total(),
        b.stats().accepted_total(),
        rss_kib(),
        open_fds()
    );
}
