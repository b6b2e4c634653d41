//! Pools that misbehave in the ways `hub_pool_faults.rs` does not already cover: answering
//! seconds late (within and beyond the hub's submit timeout), sending gigantic notifies, and
//! sending `client.reconnect` in a loop. In each case miners keep their one connection, every
//! share lands in exactly one bucket, no share reaches a pool twice (the pool would reject the
//! second as a duplicate) or a pool that did not issue its job (rejected as job not found).

use hashsched_hub::metrics::{self, label};
use hashsched_hub::routing::DurationSpec;
use hashsched_hub::server::HubHandle;
use hashsched_hub::sim::miner::{MinerStats, SimMiner};
use hashsched_hub::sim::pool::SimPool;
use hashsched_tests::*;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const POOL_D: f64 = 4e-7;
const MINER_D: f64 = 1e-7;

fn miners(hub: &HubHandle, prefix: &str, n: usize) -> Vec<SimMiner> {
    count_panics();
    (0..n)
        .map(|i| {
            let mut c = test_miner(&format!("{prefix}.{i}"), MINER_D, 10.0);
            c.version_rolling = i % 2 == 0;
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

/// Stalls the miners, waits for every answer, and checks: one connection each, every share in
/// exactly one bucket at the hub and answered once at the miner, and no pool rejected anything
/// (no share forwarded twice or to a pool that did not issue its job). With `exact`, the hub's
/// accepted count equals what the pools credited.
async fn settle(
    hub: &HubHandle,
    miners: &[SimMiner],
    pools: &[&SimPool],
    exact: bool,
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
                .expect("every share answered"),
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
        let at_pools: u64 = pools.iter().map(|p| pool_counts_for(p, w).accepted).sum();
        if exact {
            assert_eq!(f.shares.accepted, at_pools, "{w}: hub {f:?}");
        } else {
            // A verdict that came after the submit timeout: the pool credited a share the hub
            // booked as lost. Never the other way round.
            assert!(
                f.shares.accepted <= at_pools,
                "{w}: hub {f:?} pools {at_pools}"
            );
            assert!(
                f.shares.accepted + f.shares.lost >= at_pools,
                "{w}: hub {f:?} pools {at_pools}"
            );
        }
        for p in pools {
            assert_eq!(
                pool_counts_for(p, w).rejected_total(),
                0,
                "{w}: {:?}",
                pool_counts_for(p, w)
            );
        }
    }
    out
}

/// A TCP relay in front of a pool that holds every line from the pool for `delay` (in order).
struct SlowRelay {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SlowRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SlowRelay {
    async fn start(pool: SocketAddr, delay: Duration) -> SlowRelay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            while let Ok((hub_side, _)) = listener.accept().await {
                let Ok(pool_side) = TcpStream::connect(pool).await else {
                    continue;
                };
                let (hr, mut hw) = hub_side.into_split();
                let (pr, mut pw) = pool_side.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut BufReader::new(hr), &mut pw).await;
                });
                tokio::spawn(async move {
                    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
                    tokio::spawn(async move {
                        let mut lines = BufReader::new(pr).lines();
                        while let Ok(Some(l)) = lines.next_line().await {
                            let _ = tx.send((tokio::time::Instant::now() + delay, l));
                        }
                    });
                    while let Some((at, line)) = rx.recv().await {
                        tokio::time::sleep_until(at).await;
                        if hw.write_all(format!("{line}\n").as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        SlowRelay { addr, task }
    }

    fn url(&self) -> String {
        format!("stratum+tcp://{}", self.addr)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_answering_seconds_late_loses_no_share() {
    init_tracing();
    let pool = SimPool::start(test_pool(POOL_D)).await.unwrap();
    let relay = SlowRelay::start(pool.addr(), Duration::from_secs(2)).await;
    let hub = start_hub(hub_config(&[relay.url()], MINER_D)).await;
    let ms = miners(&hub, "late", 3);
    until_pool_has(&pool, &ms, 5, "through a 2 s relay").await;
    // Every verdict arrives two seconds late, well within the submit timeout: all are booked.
    let stats = settle(&hub, &ms, &[&pool], true).await;
    for s in &stats {
        assert_eq!(s.lost, 0, "{s:?}");
        assert!(s.accepted >= 5, "{s:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdicts_later_than_the_submit_timeout_are_booked_once() {
    init_tracing();
    let pool = SimPool::start(test_pool(POOL_D)).await.unwrap();
    let relay = SlowRelay::start(pool.addr(), Duration::from_secs(3)).await;
    let mut cfg = hub_config(&[relay.url()], MINER_D);
    cfg.upstream.submit_timeout = hashsched_hub::routing::DurationSpec::from_secs(1);
    let hub = start_hub(cfg).await;
    let ms = miners(&hub, "timeout", 3);
    for m in &ms {
        wait_until(DEADLINE * 2, || {
            facts_of(&hub, m.worker())
                .filter(|f| f.shares.lost >= 3)
                .map(|_| ())
        })
        .await
        .unwrap_or_else(|| {
            panic!(
                "{}: no share timed out: {:?}",
                m.worker(),
                facts_of(&hub, m.worker())
            )
        });
    }
    // The verdicts still arrive afterwards; they must not be booked a second time.
    let stats = settle(&hub, &ms, &[&pool], false).await;
    for (m, s) in ms.iter().zip(&stats) {
        let f = facts_of(&hub, m.worker()).unwrap();
        assert_eq!(f.shares.total(), s.submitted, "{f:?} {s:?}");
    }
}

/// A "pool" that subscribes and authorizes like a real one, then sends notifies that are too
/// big: a coinbase part over the limit, a merkle branch too deep, and a line of megabytes.
fn gigantic_pool_script() -> Script {
    std::sync::Arc::new(|id: &Value, method: &str| {
        let line = |v: Value| {
            let mut b = v.to_string().into_bytes();
            b.push(b'\n');
            b
        };
        let notify = |coinb1: String, branch: Vec<String>| {
            line(json!({"id": null, "method": "mining.notify", "params": [
                "g1", "00".repeat(32), coinb1, "00", branch, "20000000", "1d00ffff", "6650a000", true
            ]}))
        };
        match method {
            "mining.subscribe" => vec![
                line(
                    json!({"id": id, "result": [[["mining.notify", "1"]], "00000001", 8], "error": null}),
                ),
                line(json!({"id": null, "method": "mining.set_difficulty", "params": [POOL_D]})),
                notify("ab".repeat(9000), vec![]),
                // Within the parse bound, but too big once the hub folds its extranonce in.
                notify(
                    "ab".repeat(hashsched_hub::protocol::MAX_COINBASE_PART_BYTES),
                    vec![],
                ),
                notify("ab".repeat(100), vec!["11".repeat(32); 40]),
                [
                    b"{\"id\":null,\"method\":\"mining.notify\",\"params\":[\"".to_vec(),
                    vec![b'a'; 3 << 20],
                    b"\"]}\n".to_vec(),
                ]
                .concat(),
            ],
            "mining.authorize" => vec![line(json!({"id": id, "result": true, "error": null}))],
            _ => vec![line(json!({"id": id, "result": true, "error": null}))],
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gigantic_notifies_are_refused_and_the_hub_fails_over() {
    init_tracing();
    count_panics();
    let giant = ScriptedPool::start(gigantic_pool_script()).await.unwrap();
    let good = SimPool::start(test_pool(POOL_D)).await.unwrap();
    let mut cfg = hub_config(&[giant.url(), good.url()], MINER_D);
    if let Some(r) = cfg.routing.as_mut() {
        r.failover.starvation = DurationSpec::from_secs(3);
        r.failover.backoff_min = DurationSpec::from_millis(100);
        r.failover.backoff_max = DurationSpec::from_secs(1);
    }
    let hub = start_hub(cfg).await;
    let ms = miners(&hub, "giant", 3);
    until_pool_has(&good, &ms, 3, "after leaving the gigantic pool").await;
    assert!(giant.connections.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    let text = hub.metrics_text();
    assert!(
        metric_sum_where(
            &text,
            metrics::HUB_PROTOCOL_ERRORS_TOTAL,
            &[(label::SIDE, metrics::side::POOL)]
        ) > 0.0,
        "the gigantic notifies were not counted:\n{text}"
    );
    assert!(
        metric_sum_where(
            &text,
            metrics::HUB_PROTOCOL_ERRORS_TOTAL,
            &[(label::KIND, "notify_too_big")]
        ) > 0.0,
        "a coinbase too big to fold was passed on:\n{text}"
    );
    let stats = settle(&hub, &ms, &[&good], true).await;
    // While the giant keeps coming back (it subscribes and authorizes fine), the hub may move
    // miners towards it and back: a share caught in that move is answered "pool session
    // unavailable" and booked lost, never sent anywhere. Nothing else may be refused.
    for (m, s) in ms.iter().zip(&stats) {
        let f = facts_of(&hub, m.worker()).expect("facts");
        assert_eq!(s.rejected_total(), f.shares.lost, "{s:?} {f:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_sending_reconnect_in_a_loop_does_not_disturb_miners() {
    init_tracing();
    let pool = SimPool::start(test_pool(POOL_D)).await.unwrap();
    let mut cfg = hub_config(&[pool.url()], MINER_D);
    if let Some(r) = cfg.routing.as_mut() {
        r.failover.backoff_min = DurationSpec::from_millis(100);
        r.failover.backoff_max = DurationSpec::from_secs(1);
    }
    let hub = start_hub(cfg).await;
    let ms = miners(&hub, "loop", 3);
    until_pool_has(&pool, &ms, 2, "before").await;
    let sessions = pool.stats().connections_seen;
    for _ in 0..15 {
        pool.send_reconnect(None, None, 0);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    wait_until(DEADLINE, || {
        (pool.stats().connections_seen > sessions).then_some(())
    })
    .await
    .expect("the hub follows client.reconnect upstream");
    until_pool_has(&pool, &ms, 3, "after a reconnect loop").await;
    let stats = settle(&hub, &ms, &[&pool], true).await;
    assert!(
        stats.iter().all(|s| s.reconnects_received == 0),
        "client.reconnect leaked to miners"
    );
}
