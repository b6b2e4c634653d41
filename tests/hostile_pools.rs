//! Pools that misbehave in the ways `hub_pool_faults.rs` does not already cover: answering
//! seconds late (within and beyond the hub's submit timeout), sending gigantic notifies, and
//! sending `client.reconnect` in a loop. In each case miners keep their one connection, every
//! share lands in exactly one bucket, no share reaches a pool twice (the pool would reject the
//! second as a duplicate) or a pool that did not issue its job (rejected as job not found).

use hashsched_hub::metrics::{self, label, protocol_error};
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
    // And under any name at all (the hub's own upstream names included).
    for p in pools {
        assert_no_misrouted_shares(p);
        assert_eq!(p.stats().rejected_total(), 0, "{:?}", p.stats().workers);
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
            &[(label::KIND, protocol_error::NOTIFY_TOO_BIG)]
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

/// At least one `client.reconnect` was held back by the pace (`what` says which, on failure).
fn assert_reconnects_paced(hub: &HubHandle, what: &str) {
    let text = hub.metrics_text();
    let paced = metric_sum_where(
        &text,
        metrics::HUB_PROTOCOL_ERRORS_TOTAL,
        &[
            (label::SIDE, metrics::side::POOL),
            (label::KIND, protocol_error::RECONNECT_PACED),
        ],
    );
    assert!(paced >= 1.0, "{what} not counted as paced:\n{text}");
}

/// A pool that sends `client.reconnect` to every session 15 times in about 2 s. The hub must
/// follow it upstream without miners noticing: one connection each, no share refused or lost,
/// every share conserved and nothing refused at the pool, a bounded number of replacement
/// sessions (not one per session the pool reached), and in the end a single open session.
///
/// Found by this test: the switchboard followed every request, also on sessions it was already
/// replacing, so each round doubled the sessions (8,314 upstream connections after these 15
/// rounds) and miners moved so often that shares were refused as `switch_stale`. Now a
/// draining session ignores the request and a pool's requests are followed at most once per
/// late-share grace, the latest one deferred (`kind="reconnect_paced"`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_sending_reconnect_in_a_loop_does_not_disturb_miners() {
    const ROUNDS: u64 = 15;
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
    for _ in 0..ROUNDS {
        pool.send_reconnect(None, None, 0);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    wait_until(DEADLINE, || {
        (pool.stats().connections_seen > sessions).then_some(())
    })
    .await
    .expect("the hub follows client.reconnect upstream");
    until_pool_has(&pool, &ms, 3, "after a reconnect loop").await;
    // At most one replacement per round (the pace allows fewer).
    let opened = pool.stats().connections_seen - sessions;
    assert!(
        opened <= 2 * ROUNDS,
        "{opened} upstream sessions opened for {ROUNDS} client.reconnect rounds ({} open now): \
         the hub follows the reconnect from sessions it already replaced",
        pool.active_sessions()
    );
    assert_reconnects_paced(&hub, "the repeated requests");
    // `settle`: one connection per miner, every share in exactly one bucket at the hub and
    // answered once, the hub's accepted count equal to the pool's, and the pool refused nothing
    // (no share sent twice, or to a session that did not issue its job).
    let stats = settle(&hub, &ms, &[&pool], true).await;
    for (m, s) in ms.iter().zip(&stats) {
        let w = m.worker();
        assert_eq!(s.reconnects_received, 0, "client.reconnect leaked to {w}");
        // No share refused or lost across the replacements: each old session keeps serving the
        // shares of its jobs until they are answered.
        let f = facts_of(&hub, w).expect("facts");
        assert_eq!(s.rejected_total(), 0, "{w}: {:?} hub {f:?}", s.rejected);
        assert_eq!(s.lost, 0, "{w}: {s:?}");
        assert_eq!(
            f.shares.invalid + f.shares.stale + f.shares.duplicate + f.shares.lost,
            0,
            "{w}: {f:?}"
        );
    }
    // Every replaced session is closed in the end: the hub follows the loop without piling up
    // upstream connections.
    wait_until(DEADLINE, || (pool.active_sessions() == 1).then_some(()))
        .await
        .unwrap_or_else(|| {
            panic!(
                "{} upstream sessions still open after the loop: {:?}",
                pool.active_sessions(),
                pool.stats()
            )
        });
}

/// A pool that asks for a reconnect and, right after, for a reconnect to another address (a
/// maintenance move): the second request falls inside the pace and is deferred, not dropped.
/// When the pace allows, the hub follows it to the new address; the miners keep their one
/// connection, and every share is answered, conserved and accepted by the pool that issued
/// its job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_asked_within_the_reconnect_pace_is_followed_when_it_allows() {
    init_tracing();
    let old = SimPool::start(test_pool(POOL_D)).await.unwrap();
    let new = SimPool::start(test_pool(POOL_D)).await.unwrap();
    let mut cfg = hub_config(&[old.url()], MINER_D);
    // The pace is the late-share grace: short here, so that the deferred request comes soon.
    cfg.upstream.late_share_grace = DurationSpec::from_millis(1500);
    let hub = start_hub(cfg).await;
    let ms = miners(&hub, "redir", 2);
    until_pool_has(&old, &ms, 2, "before").await;
    let seen = old.stats().connections_seen;
    old.send_reconnect(None, None, 0);
    wait_until(DEADLINE, || {
        (old.stats().connections_seen > seen).then_some(())
    })
    .await
    .expect("the first request is followed at once");
    old.send_reconnect(Some("127.0.0.1".into()), Some(new.addr().port()), 0);
    // Deferred, then followed: the miners' shares reach the new address.
    until_pool_has(&new, &ms, 2, "after the deferred redirect").await;
    assert_reconnects_paced(&hub, "the redirect inside the pace");
    let stats = settle(&hub, &ms, &[&old, &new], true).await;
    for (m, s) in ms.iter().zip(&stats) {
        assert_eq!(
            s.reconnects_received,
            0,
            "client.reconnect leaked to {}",
            m.worker()
        );
        assert_eq!(s.rejected_total(), 0, "{}: {:?}", m.worker(), s.rejected);
    }
    // The old address is left once its sessions have drained.
    wait_until(DEADLINE, || (old.active_sessions() == 0).then_some(()))
        .await
        .unwrap_or_else(|| panic!("{} sessions left at the old address", old.active_sessions()));
}

// ---------------------------------------------------------------------------------------------
// Malformed notifies on a healthy session
// ---------------------------------------------------------------------------------------------

/// A TCP relay in front of a pool that passes every line through unchanged and can write lines
/// of its own to the hub between two of the pool's lines: a healthy pool session (subscribe,
/// authorize, real jobs, real verdicts) that turns hostile on demand.
struct InjectingRelay {
    addr: SocketAddr,
    /// One sender per hub connection, to its writer (the pool's lines and injected ones, in order).
    conns: std::sync::Arc<std::sync::Mutex<Vec<tokio::sync::mpsc::UnboundedSender<Vec<u8>>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for InjectingRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl InjectingRelay {
    async fn start(pool: SocketAddr) -> InjectingRelay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let conns = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let registry = conns.clone();
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
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
                registry.lock().unwrap().push(tx.clone());
                tokio::spawn(async move {
                    let mut r = BufReader::new(pr);
                    loop {
                        let mut line = Vec::new();
                        match r.read_until(b'\n', &mut line).await {
                            Ok(n) if n > 0 => {
                                if tx.send(line).is_err() {
                                    return;
                                }
                            }
                            _ => return,
                        }
                    }
                });
                tokio::spawn(async move {
                    while let Some(bytes) = rx.recv().await {
                        if hw.write_all(&bytes).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        InjectingRelay { addr, conns, task }
    }

    fn url(&self) -> String {
        format!("stratum+tcp://{}", self.addr)
    }

    /// Writes `lines` to every hub connection still open, between two of the pool's lines;
    /// returns how many connections got them.
    fn inject(&self, lines: &[Vec<u8>]) -> usize {
        let mut conns = self.conns.lock().unwrap();
        conns.retain(|tx| !tx.is_closed());
        for tx in conns.iter() {
            for l in lines {
                let _ = tx.send(l.clone());
            }
        }
        conns.len()
    }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The tag every simulated pool job carries in its coinbase (`/hashsched-sim/<seq>/`), read
/// from a notify as the hub sent it to a miner: `Some(seq)` for work a pool issued.
fn sim_job_seq(notify: &[Value]) -> Option<u64> {
    let coinb2 = hashsched_hub::share::decode_hex("coinb2", notify.get(3)?.as_str()?).ok()?;
    let text = String::from_utf8_lossy(&coinb2);
    let rest = text.split("/hashsched-sim/").nth(1)?;
    rest.split('/').next()?.parse().ok()
}

/// The marker in the coinbase of every hostile notify below: a miner must never see it.
const EVIL_TAG: &[u8] = b"/evil-job/";

/// Raw lines, each with its newline.
type Lines = Vec<Vec<u8>>;

/// Malformed `mining.notify` lines (and a little junk around them), each within the hub's
/// 64 KiB pool line limit, grouped by the `kind` of `side="pool"` protocol error the hub counts
/// them under: (`params` lines, `json` lines, `not_utf8` lines).
fn malformed_notifies() -> (Lines, Lines, Lines) {
    let good: Vec<Value> = vec![
        json!("evil"),
        json!("ee".repeat(32)),
        json!(format!("01000000{}", "00".repeat(40))),
        json!(hex_of(&[EVIL_TAG, &[0u8; 30]].concat())),
        json!([]),
        json!("20000000"),
        json!("1d00ffff"),
        json!("6650a000"),
        json!(true),
    ];
    let with = |i: usize, v: Value| {
        let mut p = good.clone();
        p[i] = v;
        Value::Array(p)
    };
    let notify = |params: Value| {
        let mut b = json!({"id": null, "method": "mining.notify", "params": params})
            .to_string()
            .into_bytes();
        b.push(b'\n');
        b
    };
    let mut nested = json!(1);
    for _ in 0..100 {
        nested = json!({ "a": nested });
    }
    let params = vec![
        // Wrong parameter counts and shapes.
        notify(json!([])),
        notify(json!(["evil"])),
        notify(Value::Array(good[..5].to_vec())),
        notify(Value::Array(good[..7].to_vec())),
        notify(Value::Null),
        notify(json!("evil")),
        notify(json!({"job_id": "evil"})),
        // Bad hex and wrong lengths.
        notify(with(1, json!("zz".repeat(32)))),
        notify(with(1, json!("ee".repeat(31)))),
        notify(with(1, json!(""))),
        notify(with(2, json!("abc"))),
        notify(with(3, json!("0x1234"))),
        notify(with(4, json!(["xyz"]))),
        notify(with(4, json!(["ab".repeat(33)]))),
        notify(with(5, json!("123456789"))),
        notify(with(6, json!("zzzzzzzz"))),
        // Wrong types.
        notify(with(0, json!({"a": 1}))),
        notify(with(0, json!([1, 2]))),
        notify(with(0, json!(true))),
        notify(with(4, json!("not an array"))),
        notify(with(4, json!([1, 2]))),
        notify(with(5, Value::Null)),
        notify(with(7, json!(1_700_000_000u64))),
        notify(with(8, json!("yes"))),
        notify(with(8, json!({}))),
        // Absurd sizes, within the line limit.
        notify(with(2, json!("ab".repeat(9000)))),
        notify(with(3, json!("ab".repeat(9000)))),
        notify(with(4, json!(vec!["11".repeat(32); 33]))),
        notify(with(4, json!(vec!["11".repeat(32); 500]))),
        // Nested JSON where a string belongs (within serde's recursion limit).
        notify(with(0, nested)),
        // A request form (with an id) of a notify with no parameters.
        b"{\"id\":77,\"method\":\"mining.notify\",\"params\":[]}\n".to_vec(),
    ];
    let json_lines = vec![
        // Nested past the JSON recursion limit.
        [
            b"{\"id\":null,\"method\":\"mining.notify\",\"params\":".to_vec(),
            b"[".repeat(300),
            b"]".repeat(300),
            b"}\n".to_vec(),
        ]
        .concat(),
        b"{\"id\":null,\"method\":\"mining.notify\",\"params\":[\"evil\",\n".to_vec(),
        b"{\"id\":null,\"method\":7,\"params\":[]}\n".to_vec(),
        b"[\"mining.notify\"]\n".to_vec(),
    ];
    let not_utf8 = vec![
        [
            b"{\"id\":null,\"method\":\"mining.notify\",\"params\":[\"\xff\xfe\"]}".to_vec(),
            b"\n".to_vec(),
        ]
        .concat(),
    ];
    for l in params.iter().chain(&json_lines).chain(&not_utf8) {
        assert!(l.len() < 64 * 1024, "{} bytes", l.len());
    }
    (params, json_lines, not_utf8)
}

/// A raw miner on the hub that records every `mining.notify` it is sent (its whole params) and
/// every line that is not JSON.
struct JobWatcher {
    notifies: std::sync::Arc<std::sync::Mutex<Vec<Vec<Value>>>>,
    junk: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for JobWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl JobWatcher {
    async fn start(hub: SocketAddr, worker: &str) -> JobWatcher {
        let mut c = RawClient::connect(hub).await.expect("connect");
        c.send_line(r#"{"id":1,"method":"mining.subscribe","params":["watcher/1"]}"#)
            .await
            .expect("subscribe");
        c.send_line(
            &json!({"id": 2, "method": "mining.authorize", "params": [worker, "x"]}).to_string(),
        )
        .await
        .expect("authorize");
        let notifies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let junk = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (n, j) = (notifies.clone(), junk.clone());
        let task = tokio::spawn(async move {
            while let Some(line) = c.read_line(Duration::from_secs(3600)).await {
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) if v["method"] == "mining.notify" => {
                        n.lock()
                            .unwrap()
                            .push(v["params"].as_array().cloned().unwrap_or_default());
                    }
                    Ok(_) => {}
                    Err(_) => j.lock().unwrap().push(line),
                }
            }
        });
        JobWatcher {
            notifies,
            junk,
            task,
        }
    }

    fn notifies(&self) -> Vec<Vec<Value>> {
        self.notifies.lock().unwrap().clone()
    }

    /// Waits for a notify of the pool's job number `seq`.
    async fn wait_for_job(&self, seq: u64) {
        wait_until(DEADLINE, || {
            self.notifies()
                .iter()
                .any(|n| sim_job_seq(n) == Some(seq))
                .then_some(())
        })
        .await
        .unwrap_or_else(|| {
            panic!(
                "the watcher never got pool job {seq}: {:?}",
                self.notifies()
            )
        });
    }

    /// Every notify the hub sent parses as a job a miner can build headers from, and carries
    /// work a pool issued: never the hostile lines' marker.
    fn assert_only_pool_jobs(&self) {
        let junk = self.junk.lock().unwrap().clone();
        assert!(
            junk.is_empty(),
            "the hub sent lines that are not JSON: {junk:?}"
        );
        let evil = hex_of(EVIL_TAG);
        for n in self.notifies() {
            assert_eq!(n.len(), 9, "{n:?}");
            let s = |i: usize| n[i].as_str().unwrap_or_else(|| panic!("{i}: {n:?}"));
            let branch: Vec<&str> = n[4]
                .as_array()
                .expect("branch")
                .iter()
                .map(|b| b.as_str().expect("hex"))
                .collect();
            hashsched_hub::share::JobTemplate::from_notify(
                s(1),
                s(2),
                s(3),
                &branch,
                s(5),
                s(6),
                s(7),
            )
            .unwrap_or_else(|e| panic!("a broken job reached a miner ({e}): {n:?}"));
            assert!(
                !s(3).contains(&evil),
                "a hostile job reached a miner: {n:?}"
            );
            assert!(
                sim_job_seq(&n).is_some(),
                "a job no pool issued reached a miner: {n:?}"
            );
        }
    }
}

/// The `side="pool"` protocol errors of one kind.
fn pool_errors(hub: &HubHandle, kind: &str) -> f64 {
    metric_sum_where(
        &hub.metrics_text(),
        metrics::HUB_PROTOCOL_ERRORS_TOTAL,
        &[(label::SIDE, metrics::side::POOL), (label::KIND, kind)],
    )
}

/// A pool that completed subscribe and authorize and sends good jobs, then sends malformed
/// notifies (wrong parameter counts, bad hex, wrong types, absurd sizes, nested JSON) between
/// them. What the hub does (`upstream.rs`, `on_line` / `on_request`): each line is counted under
/// `hashsched_hub_protocol_errors_total{side="pool"}` and ignored; the session and its last good
/// job stay, so honest miners mine on without a pause, and the pool's next good job reaches them
/// as usual. No malformed job reaches a miner, no share is refused or lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_notifies_on_a_healthy_session_are_counted_and_never_reach_miners() {
    init_tracing();
    count_panics();
    let pool = SimPool::start(test_pool(POOL_D)).await.unwrap();
    let relay = InjectingRelay::start(pool.addr()).await;
    let hub = start_hub(hub_config(&[relay.url()], MINER_D)).await;
    let ms = miners(&hub, "mal", 3);
    let watcher = JobWatcher::start(hub.stratum_addr(), "mal.watch").await;
    until_pool_has(&pool, &ms, 3, "before the malformed notifies").await;
    let first = pool.new_job(false);
    watcher
        .wait_for_job(u64::from_str_radix(&first, 16).unwrap())
        .await;
    until_pool_has(&pool, &ms, 2, "on a fresh good job").await;

    let sessions = pool.stats().connections_seen;
    let jobs = pool.stats().jobs_created;
    let (params, json_lines, not_utf8) = malformed_notifies();
    let before: Vec<f64> = ["params", "json", "not_utf8"]
        .iter()
        .map(|k| pool_errors(&hub, k))
        .collect();
    let all: Lines = [params.clone(), json_lines.clone(), not_utf8.clone()].concat();
    let conns = relay.inject(&all);
    assert!(conns >= 1, "the hub has no session through the relay");
    let want = [params.len(), json_lines.len(), not_utf8.len()];
    let counted = wait_until(DEADLINE, || {
        let now: Vec<f64> = ["params", "json", "not_utf8"]
            .iter()
            .map(|k| pool_errors(&hub, k))
            .collect();
        now.iter()
            .zip(&before)
            .zip(&want)
            .all(|((n, b), w)| n - b >= (w * conns) as f64)
            .then_some(now)
    })
    .await;
    let counted = counted.unwrap_or_else(|| {
        panic!(
            "malformed notifies not counted (wanted {want:?} × {conns} over {before:?}):\n{}",
            hub.metrics_text()
        )
    });
    // The honest miners mine on the last good job: no new pool job since, shares accepted.
    until_pool_has(
        &pool,
        &ms,
        3,
        "on the last good job, after the malformed notifies",
    )
    .await;
    assert_eq!(
        pool.stats().jobs_created,
        jobs,
        "the pool sent no job meanwhile"
    );
    // The pool's next good job still reaches the miners.
    let next = pool.new_job(false);
    watcher
        .wait_for_job(u64::from_str_radix(&next, 16).unwrap())
        .await;
    until_pool_has(&pool, &ms, 3, "on the next good job").await;
    // Each malformed line counted exactly once, under its kind.
    for (((k, c), b), w) in ["params", "json", "not_utf8"]
        .iter()
        .zip(&counted)
        .zip(&before)
        .zip(&want)
    {
        assert_eq!(c - b, (w * conns) as f64, "{k}: {w} lines × {conns}");
        assert_eq!(pool_errors(&hub, k), *c, "{k} counted again later");
    }
    // The session was kept: no reconnect, no failover.
    assert_eq!(
        pool.stats().connections_seen,
        sessions,
        "the hub dropped a healthy session over malformed notifies"
    );
    watcher.assert_only_pool_jobs();
    let stats = settle(&hub, &ms, &[&pool], true).await;
    for (m, s) in ms.iter().zip(&stats) {
        assert_eq!(s.rejected_total(), 0, "{}: {s:?}", m.worker());
        assert_eq!(s.lost, 0, "{}: {s:?}", m.worker());
        let f = facts_of(&hub, m.worker()).expect("facts");
        assert_eq!(
            f.shares.invalid + f.shares.stale + f.shares.duplicate + f.shares.lost,
            0,
            "{}: {f:?}",
            m.worker()
        );
    }
    assert_eq!(panics_seen(), 0, "something panicked");
}
