//! A hub restart with miners attached (a rolling update, an OOM kill): the miners come back to
//! the new hub on the same address — one obeys the hub's `client.reconnect`, one ignores it and
//! reconnects on its own as cpuminer does — and mine on. Across the two hub lives every share the
//! pool credited is in exactly one hub's accepted bucket, no share reaches the pool twice or as
//! invalid, and every share a miner got an answer for is counted by one of the two hubs.

mod routing_common;

use std::time::Duration;

use hashsched_hub::facts::WorkerFacts;
use hashsched_hub::server::Hub;
use hashsched_hub::sim::miner::{MinerStats, SimMiner};
use hashsched_hub::sim::pool::SimPool;
use hashsched_tests::{DEADLINE, init_tracing, test_miner, wait_until};
use routing_common::*;

const FOLLOWS: &str = "rig-follows";
const STUBBORN: &str = "rig-stubborn";

fn miner(addr: std::net::SocketAddr, worker: &str, follow_reconnect: bool) -> SimMiner {
    let mut cfg = test_miner(worker, D, 20.0);
    cfg.follow_reconnect = follow_reconnect;
    cfg.reconnect_delay = Some(Duration::from_millis(300));
    SimMiner::spawn(addr, cfg)
}

async fn accepted_by(hub: &hashsched_hub::server::HubHandle, worker: &str, n: u64) {
    let got = wait_until(DEADLINE, || {
        facts_of(hub, worker).filter(|f| f.shares.accepted >= n)
    })
    .await;
    assert!(
        got.is_some(),
        "{worker}: fewer than {n} accepted shares through this hub: {:?}",
        facts_of(hub, worker)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_hub_takes_its_miners_back_with_no_share_lost_or_counted_twice() {
    init_tracing();
    let pool = SimPool::start(live_pool("pool-a")).await.expect("pool");
    let doc = document(
        1,
        vec![pool_spec("pool-a", &pool)],
        &[(FOLLOWS, &["pool-a"]), (STUBBORN, &["pool-a"])],
    );
    let first = start_hub(doc.clone()).await;
    let addr = first.hub.stratum_addr();
    let follows = miner(addr, FOLLOWS, true);
    let stubborn = miner(addr, STUBBORN, false);
    accepted_by(&first.hub, FOLLOWS, 10).await;
    accepted_by(&first.hub, STUBBORN, 10).await;

    // The first life ends while both miners are submitting.
    tokio::time::timeout(DEADLINE, first.hub.shutdown())
        .await
        .expect("the hub stops within the deadline");
    let s = follows
        .wait_for(DEADLINE, |s| s.reconnects_received > 0)
        .await
        .unwrap_or_else(|s| panic!("{FOLLOWS} was never told to reconnect: {s:?}"));
    assert_eq!(s.reconnects_received, 1, "{s:?}");
    let life1: Vec<WorkerFacts> = [FOLLOWS, STUBBORN]
        .iter()
        .map(|w| facts_of(&first.hub, w).expect("first hub knew the worker"))
        .collect();

    // The second life: same address, same routing (as a Deployment's new pod behind its Service).
    let mut cfg = hub_config(&first.dir);
    cfg.listen = addr.to_string();
    cfg.routing = Some(doc);
    let second = Hub::start(cfg)
        .await
        .expect("the hub starts again on its address");
    accepted_by(&second, FOLLOWS, 10).await;
    accepted_by(&second, STUBBORN, 10).await;
    for m in [&follows, &stubborn] {
        assert!(
            m.stats().connections >= 2,
            "{}: came back over a new connection: {:?}",
            m.worker(),
            m.stats()
        );
    }

    // Settle: every share the miners sent to the second hub has its verdict.
    for m in [&follows, &stubborn] {
        m.stall();
    }
    for (m, before) in [&follows, &stubborn].into_iter().zip(&life1) {
        let w = m.worker().to_string();
        let s: MinerStats = m
            .wait_for(DEADLINE, |s| s.in_flight == 0)
            .await
            .unwrap_or_else(|s| panic!("{w}: submits still unanswered: {s:?}"));
        let after = wait_until(DEADLINE, || {
            facts_of(&second, &w).filter(|f| f.pending == 0)
        })
        .await
        .unwrap_or_else(|| panic!("{w}: second hub never settled: {:?}", facts_of(&second, &w)));
        assert!(s.is_conserved(), "{w}: {s:?}");
        assert_eq!(
            before.pending, 0,
            "{w}: the first hub left shares without a verdict (it waits for them when it stops): {before:?}"
        );
        let at_pool = pool.worker(&upstream(&w));
        // Exactly once at the pool: what the pool credited is what the two hubs counted.
        assert_eq!(
            at_pool.accepted,
            before.shares.accepted + after.shares.accepted,
            "{w}: pool accepted {} but the hubs counted {} + {}",
            at_pool.accepted,
            before.shares.accepted,
            after.shares.accepted
        );
        assert_eq!(
            at_pool.rejected_total(),
            0,
            "{w}: the pool saw a duplicate or invalid share: {at_pool:?}"
        );
        // Every answered share is in one hub's buckets; the miner cannot have had an answer for
        // a share no hub counted.
        let counted = before.submitted() + after.submitted();
        let answered = s.submitted - s.lost;
        assert!(
            answered <= counted && counted <= s.submitted,
            "{w}: miner submitted {} ({} lost when the first hub closed), hubs counted {counted}",
            s.submitted,
            s.lost
        );
        assert_eq!(
            s.rejected_total(),
            0,
            "{w}: the miner had a share refused: {s:?}"
        );
    }
    second.shutdown().await;
}
