//! The job fan-out over real TCP on 127.0.0.1: a burst of pool jobs reaches every miner once
//! and in the pool's order (the hub writes jobs from per-core threads, straight to the
//! sockets), and a miner that stops reading is closed without holding up the others.

use hashsched_hub::metrics;
use hashsched_hub::sim::pool::SimPool;
use hashsched_tests::*;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const D: f64 = 1e-7;

/// One `mining.notify` as a miner saw it.
#[derive(Debug, Clone, PartialEq)]
struct SeenJob {
    id: u64,
    prevhash: String,
    clean: bool,
}

fn hello(worker: &str) -> String {
    format!(
        "{{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[\"fanout-test/1\"]}}\n\
         {{\"id\":2,\"method\":\"mining.authorize\",\"params\":[\"{worker}\",\"x\"]}}\n"
    )
}

/// A miner that greets the hub and then records every job it is sent, until the hub closes.
async fn recording_miner(addr: SocketAddr, worker: String, seen: Arc<Mutex<Vec<SeenJob>>>) {
    let Ok(stream) = tokio::net::TcpStream::connect(addr).await else {
        return;
    };
    let (r, mut w) = stream.into_split();
    if w.write_all(hello(&worker).as_bytes()).await.is_err() {
        return;
    }
    let mut lines = BufReader::new(r).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if v.get("method").and_then(Value::as_str) != Some("mining.notify") {
            continue;
        }
        let p = &v["params"];
        let job = SeenJob {
            id: u64::from_str_radix(p[0].as_str().unwrap_or("x"), 16).unwrap_or(u64::MAX),
            prevhash: p[1].as_str().unwrap_or_default().to_owned(),
            clean: p[8].as_bool().unwrap_or(false),
        };
        seen.lock().unwrap().push(job);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_jobs_reaches_every_miner_once_and_in_order() {
    init_tracing();
    const MINERS: usize = 200;
    const BURST: usize = 30;
    let pool = SimPool::start(test_pool(4.0 * D)).await.unwrap();
    let hub = start_hub(hub_config(&[pool.url()], D)).await;
    let logs: Vec<Arc<Mutex<Vec<SeenJob>>>> = (0..MINERS).map(|_| Arc::default()).collect();
    for (i, log) in logs.iter().enumerate() {
        tokio::spawn(recording_miner(
            hub.stratum_addr(),
            format!("fan.{i}"),
            log.clone(),
        ));
    }
    wait_until(DEADLINE, || {
        logs.iter()
            .all(|l| !l.lock().unwrap().is_empty())
            .then_some(())
    })
    .await
    .expect("every miner gets its first job");
    let before: Vec<usize> = logs.iter().map(|l| l.lock().unwrap().len()).collect();

    // Back to back, faster than the hub can write 200 sockets per job: fan-outs overlap.
    for _ in 0..BURST {
        pool.new_job(true);
    }
    wait_until(DEADLINE, || {
        logs.iter()
            .zip(&before)
            .all(|(l, b)| l.lock().unwrap().len() >= b + BURST)
            .then_some(())
    })
    .await
    .unwrap_or_else(|| {
        let short = logs
            .iter()
            .zip(&before)
            .filter(|(l, b)| l.lock().unwrap().len() < *b + BURST)
            .count();
        panic!("{short} of {MINERS} miners did not get all {BURST} jobs")
    });
    // A sentinel job after the burst: each miner's jobs come over one ordered stream, so a job
    // written twice would arrive before the sentinel does (no fixed sleep needed).
    pool.new_job(true);
    wait_until(DEADLINE, || {
        logs.iter()
            .zip(&before)
            .all(|(l, b)| l.lock().unwrap().len() > b + BURST)
            .then_some(())
    })
    .await
    .expect("every miner gets the sentinel job");
    let sentinel = logs[0].lock().unwrap().last().unwrap().prevhash.clone();
    let until_sentinel = |l: &[SeenJob], b: usize| -> usize {
        b + l[b..]
            .iter()
            .position(|j| j.prevhash == sentinel)
            .expect("the sentinel is in every log")
    };

    let reference: Vec<String> = {
        let l = logs[0].lock().unwrap();
        let end = until_sentinel(&l, before[0]);
        l[before[0]..end]
            .iter()
            .map(|j| j.prevhash.clone())
            .collect()
    };
    let mut distinct = reference.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), BURST, "each clean job has its own prevhash");
    for (i, (l, b)) in logs.iter().zip(&before).enumerate() {
        let l = l.lock().unwrap();
        let burst = &l[*b..until_sentinel(&l, *b)];
        assert_eq!(burst.len(), BURST, "miner {i}: each job exactly once");
        assert!(
            l.windows(2).all(|w| w[0].id < w[1].id),
            "miner {i}: job ids out of order: {:?}",
            l.iter().map(|j| j.id).collect::<Vec<_>>()
        );
        let seq: Vec<String> = burst.iter().map(|j| j.prevhash.clone()).collect();
        assert_eq!(
            seq, reference,
            "miner {i}: jobs in another order than the pool's"
        );
        assert!(burst.iter().all(|j| j.clean), "miner {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miner_that_stops_reading_is_closed_and_the_others_get_every_job() {
    init_tracing();
    let pool = SimPool::start(test_pool(4.0 * D)).await.unwrap();
    let mut cfg = hub_config(&[pool.url()], D);
    cfg.limits.write_queue = 8;
    let hub = start_hub(cfg).await;

    let healthy: Arc<Mutex<Vec<SeenJob>>> = Arc::default();
    tokio::spawn(recording_miner(
        hub.stratum_addr(),
        "reads.1".into(),
        healthy.clone(),
    ));
    // The stalled miner greets and never reads again; a small receive buffer fills fast.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket.connect(hub.stratum_addr()).await.unwrap();
    stalled
        .write_all(hello("stalls.1").as_bytes())
        .await
        .unwrap();
    wait_until(DEADLINE, || (hub.connections() == 2).then_some(())).await;
    wait_until(DEADLINE, || {
        (!healthy.lock().unwrap().is_empty()).then_some(())
    })
    .await
    .expect("the healthy miner gets its first job");

    let mut sent = 0;
    let closed = wait_until_async(DEADLINE, || {
        for _ in 0..20 {
            pool.new_job(false);
        }
        sent += 20;
        let hub = &hub;
        async move { (hub.connections() == 1).then_some(()) }
    })
    .await;
    assert!(
        closed.is_some(),
        "the stalled miner is still connected after {sent} jobs"
    );
    let text = hub.metrics_text();
    assert_eq!(
        metric_value(
            &text,
            metrics::HUB_CONNECTIONS_CLOSED_TOTAL,
            &[("reason", "write queue full (miner not reading)")]
        ),
        Some(1.0),
        "{text}"
    );
    // The healthy miner got every job, the last one included.
    // Wait for that last job itself (the only clean one of the test after the first): jobs of
    // the last burst may still be on their way when the stalled miner is closed.
    let first = healthy.lock().unwrap().len();
    let last = pool.new_job(true);
    wait_until(DEADLINE, || {
        healthy.lock().unwrap()[first..]
            .iter()
            .any(|j| j.clean)
            .then_some(())
    })
    .await
    .expect("the healthy miner gets the job after the close");
    let got = healthy.lock().unwrap().clone();
    assert!(got.windows(2).all(|w| w[0].id < w[1].id));
    // The simulated pool itself sent every job (its session kept up with the burst).
    assert_eq!(pool.stats().commands_skipped, 0, "{:?}", pool.stats());
    assert_eq!(
        got.len(),
        1 + sent + 1,
        "healthy miner: one job per pool job ({last})"
    );
    assert!(got.last().is_some_and(|j| j.clean));
}
