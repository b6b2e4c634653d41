//! The switch metrics of the issue, end to end over real TCP: moves counted per pool and reason
//! (`routing`, `failover_*`), the switch duration observed once per moved miner (decision → the
//! new pool's first job written to it), and every `client.reconnect` the hub sends counted by
//! reason (extranonce2 fallback, shutdown).

mod routing_common;

use std::time::Duration;

use hashsched_hub::metrics::{
    HUB_MINER_RECONNECTS_TOTAL, HUB_SWITCH_DURATION, POOL_SWITCHES_TOTAL, reconnect,
};
use hashsched_hub::sim::miner::{MinerConfig, SimMiner};
use hashsched_hub::sim::pool::{PoolConfig, SimPool};
use hashsched_tests::{init_tracing, test_miner};
use routing_common::*;

fn switches(text: &str, pool: &str, reason: &str) -> f64 {
    hashsched_tests::metric_value(
        text,
        POOL_SWITCHES_TOTAL,
        &[("pool", pool), ("reason", reason)],
    )
    .unwrap_or(0.0)
}

fn switch_duration_count(text: &str) -> f64 {
    metric_value(text, &format!("{HUB_SWITCH_DURATION}_count")).unwrap_or(0.0)
}

fn reconnects(text: &str, reason: &str) -> f64 {
    hashsched_tests::metric_value(text, HUB_MINER_RECONNECTS_TOTAL, &[("reason", reason)])
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switches_are_counted_by_reason_and_timed_per_moved_miner() {
    init_tracing();
    let a = SimPool::start(live_pool("a")).await.expect("pool a");
    let b = SimPool::start(live_pool("b")).await.expect("pool b");
    let pools = || vec![pool_spec("pool-a", &a), pool_spec("pool-b", &b)];
    let t = start_hub(document(
        1,
        pools(),
        &[
            ("rig-1", &["pool-a", "pool-b"]),
            ("rig-2", &["pool-a", "pool-b"]),
        ],
    ))
    .await;
    let addr = t.hub.stratum_addr();
    let miners: Vec<SimMiner> = ["rig-1", "rig-2"]
        .iter()
        .map(|w| SimMiner::spawn(addr, test_miner(w, D, 20.0)))
        .collect();
    for m in &miners {
        wait_accepted_at(&a, m.worker(), 0, 3).await;
    }
    let text = t.hub.metrics_text();
    assert_eq!(
        switch_duration_count(&text),
        0.0,
        "first placement is no switch:\n{text}"
    );
    assert_eq!(
        hashsched_tests::metric_sum(&text, POOL_SWITCHES_TOTAL),
        0.0,
        "{text}"
    );

    // Routing moves rig-1 to pool b: one `routing` switch, one duration sample once its first
    // pool-b job reached it.
    t.hub
        .apply_routing(document(
            2,
            pools(),
            &[
                ("rig-1", &["pool-b", "pool-a"]),
                ("rig-2", &["pool-a", "pool-b"]),
            ],
        ))
        .expect("generation 2 applies");
    wait_accepted_at(&b, "rig-1", 0, 3).await;
    let text = hashsched_tests::wait_until(hashsched_tests::DEADLINE, || {
        let text = t.hub.metrics_text();
        (switch_duration_count(&text) >= 1.0).then_some(text)
    })
    .await
    .unwrap_or_else(|| panic!("no switch duration sample:\n{}", t.hub.metrics_text()));
    assert_eq!(switches(&text, "pool-b", "routing"), 1.0, "{text}");
    assert_eq!(switch_duration_count(&text), 1.0, "{text}");
    let sum = metric_value(&text, &format!("{HUB_SWITCH_DURATION}_sum")).expect("sum");
    assert!(
        sum > 0.0 && sum < hashsched_tests::DEADLINE.as_secs_f64(),
        "duration {sum}"
    );

    // Pool a dies: rig-2 fails over to pool b (a `failover_*` switch), rig-1 stays.
    a.shutdown();
    let now = b.worker(&upstream("rig-2")).accepted;
    wait_accepted_at(&b, "rig-2", now, 3).await;
    let text = hashsched_tests::wait_until(hashsched_tests::DEADLINE, || {
        let text = t.hub.metrics_text();
        (switch_duration_count(&text) >= 2.0).then_some(text)
    })
    .await
    .unwrap_or_else(|| panic!("no second duration sample:\n{}", t.hub.metrics_text()));
    let failovers =
        hashsched_tests::metric_sum_where(&text, POOL_SWITCHES_TOTAL, &[("pool", "pool-b")])
            - switches(&text, "pool-b", "routing");
    assert_eq!(failovers, 1.0, "{text}");
    assert!(
        text.lines().any(|l| l.starts_with(&format!(
            "{POOL_SWITCHES_TOTAL}{{pool=\"pool-b\",reason=\"failover_"
        ))),
        "failover reason label:\n{text}"
    );
    assert_eq!(switch_duration_count(&text), 2.0, "{text}");
    // The facts agree with the series (one place for the numbers).
    let pb = t
        .hub
        .pool_facts()
        .into_iter()
        .find(|p| p.pool == "pool-b")
        .expect("pool-b facts");
    assert_eq!(pb.switches, 2, "{pb:?}");
    assert_eq!(pb.switches_by_reason.values().sum::<u64>(), 2, "{pb:?}");
    for m in &miners {
        assert_eq!(m.stats().connections, 1, "{}: reconnected", m.worker());
    }
    assert_eq!(
        hashsched_tests::metric_sum(&text, HUB_MINER_RECONNECTS_TOTAL),
        0.0,
        "no client.reconnect for a folded switch:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_reconnect_the_hub_sends_is_counted_by_reason() {
    init_tracing();
    let a = SimPool::start(live_pool("a")).await.expect("pool a");
    // 4 bytes of extranonce2 cannot carry the hub's tail plus the miner's 4 bytes.
    let small = SimPool::start(PoolConfig {
        extranonce2_size: 4,
        ..live_pool("small")
    })
    .await
    .expect("pool small");
    let t = start_hub(document(
        1,
        vec![pool_spec("pool-a", &a)],
        &[("rig-plain", &["pool-a"])],
    ))
    .await;
    let plain = SimMiner::spawn(
        t.hub.stratum_addr(),
        MinerConfig {
            extranonce_subscribe: false,
            reconnect_delay: Some(Duration::from_millis(200)),
            ..test_miner("rig-plain", D, 20.0)
        },
    );
    wait_accepted_at(&a, "rig-plain", 0, 3).await;
    assert_eq!(
        reconnects(&t.hub.metrics_text(), reconnect::EXTRANONCE2_TOO_SMALL),
        0.0
    );
    t.hub
        .apply_routing(document(
            2,
            vec![pool_spec("pool-a", &a), pool_spec("pool-small", &small)],
            &[("rig-plain", &["pool-small"])],
        ))
        .expect("generation 2 applies");
    wait_accepted_at(&small, "rig-plain", 0, 3).await;
    let sent = plain.stats().reconnects_received;
    assert!(sent >= 1, "{:?}", plain.stats());
    let text = t.hub.metrics_text();
    assert_eq!(
        reconnects(&text, reconnect::EXTRANONCE2_TOO_SMALL),
        sent as f64,
        "{text}"
    );

    let before = plain.stats().reconnects_received;
    t.hub.shutdown().await;
    plain
        .wait_for(hashsched_tests::DEADLINE, |s| {
            s.reconnects_received > before
        })
        .await
        .unwrap_or_else(|s| panic!("no client.reconnect at shutdown: {s:?}"));
    assert_eq!(
        reconnects(&t.hub.metrics_text(), reconnect::SHUTDOWN),
        1.0,
        "{}",
        t.hub.metrics_text()
    );
}
