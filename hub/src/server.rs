//! The hub: accept loop, shared state, lifecycle. [`Hub::start`] binds the configured addresses
//! and returns a [`HubHandle`] (actual addresses, facts, routing entry point, graceful shutdown) —
//! the same API for the `stratum-hub` binary, `hashsched local` and the end-to-end tests.
//!
//! Shape (mini-redis style): one task per miner connection ([`crate::downstream`]), one task per
//! upstream session ([`crate::upstream`]), the switchboard behind one mutex ([`crate::switchboard`],
//! reached through [`crate::shared::Engine`]), a
//! tick task (pool health clock, idle sessions, pruning departed workers), the `/metrics` server
//! ([`crate::http`]) and the admin API ([`crate::admin`]). Shutdown: stop accepting, tell miners
//! to reconnect, give forwarded shares up to 2 s for their verdicts, close sessions.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::admin::{AdminState, TokenSource};
use crate::config::{ConfigError, HubConfig};
use crate::extranonce::TailAllocator;
use crate::facts::{PoolFacts, WorkerFacts};
use crate::metrics::HubMetrics;
use crate::routing::control::{
    Accepted, RoutingControl, RoutingMetrics, RoutingSink, RoutingSource, SubmitError,
};
use crate::routing::reload::{DEFAULT_POLL_INTERVAL, FileReloader};
use crate::routing::{RoutingDocument, SecretStore, ValidRouting};
use crate::shared::Core;
pub(crate) use crate::shared::Shared;
use crate::stats::{WorkerTable, unix_now};
use crate::switchboard::Board;

/// Why the hub could not start.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("initial routing refused: {0}")]
    Routing(String),
    #[error("cannot bind {what} address {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot read routing file {path}: {source}")]
    RoutingFile {
        path: String,
        source: std::io::Error,
    },
}

/// Hands validated routing documents to the engine.
struct EngineSink(Weak<Shared>);

impl RoutingSink for EngineSink {
    fn apply_routing(&self, routing: Arc<ValidRouting>) {
        if let Some(sh) = self.0.upgrade() {
            sh.core.engine.apply_routing(&sh, routing);
        }
    }
}

/// Entry point: `Hub::start(config).await`.
pub struct Hub;

impl Hub {
    /// Validate the config, apply the initial routing, bind the listeners and start serving.
    /// Port 0 picks free ports; the handle tells which.
    pub async fn start(config: HubConfig) -> Result<HubHandle, HubError> {
        config.validate()?;
        let secrets = config
            .secrets_dir
            .clone()
            .map(SecretStore::new)
            .unwrap_or_else(SecretStore::none);
        let windows = RoutingDocument::failover_list(0, Vec::new())
            .health
            .windows
            .iter()
            .map(|d| d.as_std().as_secs().max(1))
            .collect();
        let core = Arc::new(Core {
            workers: WorkerTable::new(
                windows,
                config.stats.bucket.as_std().as_secs(),
                config.stats.worker_retention.as_std().as_secs(),
            ),
            engine: Arc::new(Board::new()),
            connections: AtomicU64::new(0),
            generation: AtomicU64::new(0),
        });
        let mut routing_metrics = None;
        let metrics = HubMetrics::new_with(core.clone(), |reg| {
            routing_metrics = Some(RoutingMetrics::register(reg));
        });
        let tails = TailAllocator::new(
            config.extranonce.tail_bytes,
            config.extranonce.tail_quarantine.as_std(),
        );
        let shared = Arc::new(Shared::new(config.clone(), core, metrics, tails));
        let mut control = RoutingControl::new(
            secrets.clone(),
            Arc::new(EngineSink(Arc::downgrade(&shared))),
        );
        if let Some(m) = routing_metrics {
            control = control.with_metrics(m);
        }
        let control = Arc::new(control);

        // Bind everything before applying routing, so a bad address fails fast and cleanly.
        let listener = bind("stratum", &config.listen).await?;
        let stratum_addr = local_addr(&listener, "stratum", &config.listen)?;
        let metrics_listener = match &config.metrics {
            Some(a) => Some(bind("metrics", a).await?),
            None => None,
        };
        let admin_listener = match &config.admin {
            Some(a) => Some(bind("admin", &a.listen).await?),
            None => None,
        };

        // Initial routing: inline or file. Refused → the hub does not start.
        if let Some(doc) = &config.routing {
            let valid = ValidRouting::new(doc.clone(), &secrets)
                .map_err(|e| HubError::Routing(e.to_string()))?;
            control
                .submit(valid, RoutingSource::File)
                .map_err(|e| HubError::Routing(e.to_string()))?;
        }
        if let Some(path) = &config.routing_file {
            let bytes = std::fs::read(path).map_err(|source| HubError::RoutingFile {
                path: path.display().to_string(),
                source,
            })?;
            control
                .submit_bytes(&bytes, RoutingSource::File)
                .map_err(|e| HubError::Routing(e.to_string()))?;
            let mut reloader = FileReloader::new(path.clone(), control.clone());
            let _ = reloader.poll_once(); // records the content just applied
            let token = shared.shutdown.clone();
            shared.tracker.spawn(async move {
                tokio::select! {
                    _ = reloader.run(DEFAULT_POLL_INTERVAL) => {}
                    _ = token.cancelled() => {}
                }
            });
        }

        shared.tracker.spawn(accept_loop(shared.clone(), listener));
        shared.tracker.spawn(tick_loop(shared.clone()));
        let metrics_addr = match metrics_listener {
            Some(l) => {
                let addr = l.local_addr().ok();
                shared
                    .tracker
                    .spawn(crate::http::serve_metrics(shared.clone(), l));
                addr
            }
            None => None,
        };
        let admin_addr = match (admin_listener, &config.admin) {
            (Some(l), Some(a)) => {
                let addr = l.local_addr().ok();
                let token = match &a.token_file {
                    Some(p) => TokenSource::File(p.clone()),
                    None => {
                        warn!("admin API has no tokenFile: every request will be refused");
                        TokenSource::Value(String::new())
                    }
                };
                let state = AdminState::new(control.clone(), token);
                let stop = shared.shutdown.clone();
                shared.tracker.spawn(async move {
                    if let Err(e) = crate::admin::serve(l, state, stop.cancelled_owned()).await {
                        error!(error = %e, "admin API stopped");
                    }
                });
                addr
            }
            _ => None,
        };
        info!(
            stratum = %stratum_addr,
            metrics = ?metrics_addr,
            admin = ?admin_addr,
            "stratum hub started"
        );
        Ok(HubHandle {
            shared,
            control,
            secrets,
            stratum_addr,
            metrics_addr,
            admin_addr,
        })
    }
}

async fn bind(what: &'static str, addr: &str) -> Result<TcpListener, HubError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| HubError::Bind {
            what,
            addr: addr.to_owned(),
            source,
        })
}

fn local_addr(l: &TcpListener, what: &'static str, addr: &str) -> Result<SocketAddr, HubError> {
    l.local_addr().map_err(|source| HubError::Bind {
        what,
        addr: addr.to_owned(),
        source,
    })
}

async fn accept_loop(sh: Arc<Shared>, listener: TcpListener) {
    loop {
        // Biased, and checked again after the accept: miners told to reconnect by a hub that
        // is shutting down may come straight back to this listener before its task sees the
        // cancellation; they must find it closed, not be served and told again.
        let accepted = tokio::select! {
            biased;
            _ = sh.shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        if sh.shutdown.is_cancelled() {
            return;
        }
        match accepted {
            Ok((stream, peer)) => {
                let open = sh.core.connections.load(Ordering::Relaxed);
                if open >= sh.config.limits.max_connections as u64 {
                    sh.metrics.connection_closed("max_connections");
                    warn!(%peer, open, "connection refused: limits.maxConnections reached");
                    drop(stream);
                    continue;
                }
                sh.core.connections.fetch_add(1, Ordering::Relaxed);
                sh.metrics.connections_total.inc();
                sh.tracker
                    .spawn(crate::downstream::serve(sh.clone(), stream, peer));
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn tick_loop(sh: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n = 0u64;
    loop {
        tokio::select! {
            _ = sh.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        sh.core.engine.tick(&sh, Instant::now());
        n += 1;
        if n.is_multiple_of(20) {
            sh.core.workers.prune(unix_now());
        }
    }
}

/// A running hub.
pub struct HubHandle {
    shared: Arc<Shared>,
    control: Arc<RoutingControl>,
    secrets: SecretStore,
    stratum_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    admin_addr: Option<SocketAddr>,
}

impl HubHandle {
    /// Where miners connect (the real port when the config said port 0).
    pub fn stratum_addr(&self) -> SocketAddr {
        self.stratum_addr
    }
    /// `/metrics` address, if enabled.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }
    /// Admin API address, if enabled.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }
    /// Per-worker facts now (sorted by worker name).
    pub fn facts(&self) -> Vec<WorkerFacts> {
        self.shared.core.workers.facts(unix_now())
    }
    /// Per-pool facts now.
    pub fn pool_facts(&self) -> Vec<PoolFacts> {
        self.shared.core.engine.pool_facts()
    }
    /// Open miner connections.
    pub fn connections(&self) -> u64 {
        self.shared.core.connections.load(Ordering::Relaxed)
    }
    /// The `/metrics` text (OpenMetrics), without HTTP.
    pub fn metrics_text(&self) -> String {
        self.shared.metrics.render()
    }
    /// The routing control (what the admin API and file reloader feed).
    pub fn routing_control(&self) -> Arc<RoutingControl> {
        self.control.clone()
    }
    /// Generation of the routing in effect.
    pub fn applied_generation(&self) -> Option<u64> {
        self.control.applied_generation()
    }
    /// Validate and apply a routing document (live: miners move without reconnecting).
    pub fn apply_routing(&self, doc: RoutingDocument) -> Result<Accepted, SubmitError> {
        let valid = ValidRouting::new(doc, &self.secrets)?;
        self.control.submit(valid, RoutingSource::Api)
    }
    /// A token that is cancelled when the hub shuts down.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shared.shutdown.clone()
    }
    /// Graceful shutdown: stop accepting, tell miners to reconnect, wait (≤ 10 s) for the tasks.
    /// Takes `&self` so a shared (`Arc`) handle can shut the hub down; dropping the handle also
    /// starts a shutdown (without waiting).
    pub async fn shutdown(&self) {
        info!("stratum hub shutting down");
        self.shared.shutdown.cancel();
        self.shared.tracker.close();
        if tokio::time::timeout(Duration::from_secs(10), self.shared.tracker.wait())
            .await
            .is_err()
        {
            warn!("some hub tasks did not stop within 10 s");
        }
    }
}

impl Drop for HubHandle {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::QuickStart;
    use crate::routing::DurationSpec;
    use crate::sim::miner::{MinerConfig, SimMiner};
    use crate::sim::pool::{PoolConfig, SimPool};
    use crate::sim::wait_until;

    const T: Duration = Duration::from_secs(30);

    fn quick(pools: Vec<String>) -> HubConfig {
        let mut cfg = HubConfig::quick_start(QuickStart {
            listen: "127.0.0.1:0".into(),
            metrics: Some("127.0.0.1:0".into()),
            pools,
            user: "acct".into(),
            password: "x".into(),
            tls_ca_file: None,
        })
        .unwrap();
        cfg.vardiff.initial_difficulty = 1e-4;
        cfg.vardiff.min_difficulty = 1e-6;
        cfg.vardiff.share_interval = DurationSpec::from_millis(500);
        cfg
    }

    /// Real TCP, real sha256d: two miners through the hub to one pool; the pool credits exactly
    /// the shares the hub forwarded, and every submitted share is in one bucket.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn miners_mine_through_the_hub_and_every_share_is_accounted() {
        let pool = SimPool::start(PoolConfig::default()).await.unwrap();
        let hub = Hub::start(quick(vec![pool.url()])).await.unwrap();
        let mut cfg_b = MinerConfig::new("rig-b");
        cfg_b.fixed_submit_id = Some(4); // cpuminer style: every submit has id 4
        cfg_b.version_rolling = false;
        let miners = [
            SimMiner::spawn(hub.stratum_addr(), MinerConfig::new("rig-a")),
            SimMiner::spawn(hub.stratum_addr(), cfg_b),
        ];
        for m in &miners {
            let s = m
                .wait_for(T, |s| s.accepted >= 5)
                .await
                .unwrap_or_else(|s| panic!("{} never got 5 accepted shares: {s:?}", m.worker()));
            assert_eq!(s.rejected_total(), 0, "{s:?}");
        }
        // The pool saw forwarded shares under the upstream names.
        let ok = wait_until(T, || {
            let st = pool.stats();
            (st.worker("acct.rig-a").accepted > 0 && st.worker("acct.rig-b").accepted > 0)
                .then_some(())
        })
        .await;
        assert!(ok.is_some(), "pool stats: {:?}", pool.stats());
        for m in &miners {
            m.stall();
        }
        // Conservation: after the in-flight shares settle, hub buckets == miner submits, and
        // the pool's accepted count == the hub's `accepted` bucket.
        let settled = wait_until(T, || {
            let facts = hub.facts();
            let ps = pool.stats();
            let all = miners.iter().all(|m| {
                let ms = m.stats();
                let f = facts.iter().find(|f| f.worker == m.worker());
                f.is_some_and(|f| {
                    ms.in_flight == 0
                        && f.pending == 0
                        && f.submitted() == ms.submitted
                        && f.shares.accepted == ps.worker(&format!("acct.{}", m.worker())).accepted
                })
            });
            all.then_some(facts)
        })
        .await;
        let facts = settled.unwrap_or_else(|| {
            panic!(
                "not conserved: hub {:?} miners {:?} pool {:?}",
                hub.facts(),
                miners
                    .iter()
                    .map(|m| m.stats().submitted)
                    .collect::<Vec<_>>(),
                pool.stats().workers
            )
        });
        for f in &facts {
            assert!(f.connected);
            assert_eq!(f.pool.as_deref(), Some("pool-1"));
            assert!(
                f.hashrate.iter().all(|h| h.hashes_per_second > 0.0),
                "{f:?}"
            );
            assert_eq!(
                f.shares.invalid + f.shares.duplicate + f.shares.rejected,
                0,
                "{f:?}"
            );
        }
        // /metrics over HTTP has the per-worker series.
        let addr = hub.metrics_addr().unwrap();
        let text = http_get(addr, "/metrics").await;
        assert!(
            text.contains(&format!(
                "{}{{worker=\"rig-a\",result=\"accepted\"}}",
                crate::metrics::WORKER_SHARES_TOTAL
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!("{}{{pool=\"pool-1\"}} 1", crate::metrics::POOL_UP)),
            "{text}"
        );
        hub.shutdown().await;
    }

    /// A share handed to an upstream session in the same instant the hub closes that session
    /// (it was queued behind the `Close`) is answered as lost: never left without a verdict.
    /// Before, the session ended on the `Close` and dropped what was queued behind it, and the
    /// miner waited forever for an answer (found by the soak).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_share_queued_behind_a_session_close_is_answered_as_lost() {
        use crate::link::{BatchedShare, MinerDoor, MinerInbox, MinerLink, SubmitBatch};
        use crate::stats::WorkerEntry;
        use crate::upstream::{self, PoolCounters, SessionParams};

        let pool = SimPool::start(PoolConfig::default()).await.unwrap();
        let hub = Hub::start(quick(vec![pool.url()])).await.unwrap();
        let sh = hub.shared.clone();
        // A session of its own (under a name the switchboard does not know, so that its end does
        // not touch the hub's pool), to the same pool.
        let mut probe = sh
            .routing()
            .and_then(|r| r.pool("pool-1").cloned())
            .expect("quick start routes to pool-1");
        probe.name = "probe".into();
        let counters = Arc::new(PoolCounters::default());
        let session = upstream::spawn(
            &sh,
            SessionParams {
                pool: Arc::new(probe),
                dial_override: None,
                delay: Duration::ZERO,
                send_configure: false,
                connect_timeout: T,
                counters: counters.clone(),
            },
        );
        let now = unix_now();
        let worker = sh.core.workers.entry("rig-q", now);
        // The miner end of the link: an inbox the lost share's answer lands in.
        struct Door(MinerInbox);
        impl MinerDoor for Door {
            fn inbox(&self) -> &MinerInbox {
                &self.0
            }
            fn job_now(&self, _: &Arc<crate::jobs::JobVariant>) -> Option<bool> {
                Some(false)
            }
        }
        let door: Arc<dyn MinerDoor> = Arc::new(Door(MinerInbox::new(8)));
        let link = Arc::new(MinerLink::new(
            1,
            4,
            tokio_util::sync::CancellationToken::new(),
            Arc::downgrade(&door),
        ));
        let share = |w: &Arc<WorkerEntry>| SubmitBatch {
            worker: w.clone(),
            upstream_user: Arc::from("acct.rig-q"),
            pool_job_id: Arc::from("1"),
            link: link.clone(),
            shares: vec![BatchedShare {
                extranonce2: crate::protocol::Extranonce2::concat(&[&[0; 4]]).unwrap(),
                ntime: 0,
                nonce: 0,
                version_bits: None,
                difficulty: 1.0,
                received: Instant::now(),
                id: serde_json::Value::from(7),
            }],
        };
        // As the miner side does: counted as forwarded, then handed to the session.
        worker.lock().forwarded(1.0, now);
        session.close();
        let queued = session.submit_batch(share(&worker)).is_ok();
        if !queued {
            // The session was already gone: the caller books the share (the miner's path).
            worker.lock().verdict(crate::facts::ShareResult::Lost, 1.0);
        }
        let settled = wait_until(T, || (worker.lock().pending == 0).then_some(())).await;
        assert!(
            settled.is_some(),
            "a share queued behind the close never got a verdict: {:?}",
            worker.lock().shares
        );
        assert_eq!(worker.lock().shares.lost, 1, "{:?}", worker.lock().shares);
        if queued {
            assert_eq!(counters.lost.load(Ordering::Relaxed), 1);
            // And the miner was told, under its own id, with error 20.
            match door.inbox().pop() {
                Some(crate::link::ToMiner::Answer(line)) => {
                    assert!(line.contains("\"id\":7") && line.contains("20"), "{line}")
                }
                other => panic!("no answer for the lost share: {other:?}"),
            }
        }
        // Closed for good: a later share is refused at once, for the caller to book.
        assert!(
            wait_until(T, || (!session.is_alive()).then_some(()))
                .await
                .is_some()
        );
        assert!(session.submit_batch(share(&worker)).is_err());
        hub.shutdown().await;
    }

    /// A pool that drops a worker's authorize (silent for a moment) must not refuse every later
    /// share of that worker as "unauthorized" (24): the hub authorizes the name again. Before,
    /// the name counted as authorized when the authorize was sent, and a miner joining during
    /// the silence had all its shares refused for the life of the session (found by the soak).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_worker_authorize_the_pool_dropped_is_sent_again() {
        let (pool, hub) = hub_with_its_pool_session_up(2).await;
        pool.set_silent(true);
        let miner = SimMiner::spawn(hub.stratum_addr(), MinerConfig::new("rig-late"));
        // The worker's authorize reached the silent pool and was dropped.
        let dropped = wait_until(T, || {
            (miner.stats().jobs_received > 0 && pool.stats().ignored_while_silent > 0).then_some(())
        })
        .await;
        assert!(dropped.is_some(), "{:?} {:?}", miner.stats(), pool.stats());
        pool.set_silent(false);
        // The pool itself credits the worker again (the miner's own count also holds shares
        // the hub answers without forwarding, below the pool's difficulty).
        let credited = wait_until(T, || {
            (pool.stats().worker("acct.rig-late").accepted >= 3).then_some(())
        })
        .await;
        assert!(
            credited.is_some(),
            "no share accepted after the pool came back: {:?} {:?}",
            pool.stats(),
            miner.stats()
        );
        // The shares sent meanwhile waited for the new authorize: none is refused.
        let s = miner.stats();
        let unauthorized = s
            .rejected
            .get(&crate::protocol::error_code::UNAUTHORIZED)
            .copied()
            .unwrap_or(0);
        assert_eq!(unauthorized, 0, "{s:?}");
        hub.shutdown().await;
    }

    /// A pool at the miner's difficulty (so that nearly every share is forwarded and a test does
    /// not wait on rare above-target shares on a loaded machine) and a hub whose own session to
    /// it is up.
    async fn hub_with_its_pool_session_up(submit_timeout_seconds: u64) -> (SimPool, HubHandle) {
        let pool = SimPool::start(PoolConfig {
            difficulty: 1e-4,
            ..PoolConfig::default()
        })
        .await
        .unwrap();
        let mut cfg = quick(vec![pool.url()]);
        cfg.upstream.submit_timeout = DurationSpec::from_secs(submit_timeout_seconds);
        // The miners' difficulty pinned at the pool's. Free, vardiff read a starved miner's
        // burst of shares (24 in 12 ms on a loaded CI machine) as a fast miner and raised it
        // twentyfold, to one share in 9 s: the test then waited on luck for its 3 shares.
        cfg.vardiff.min_difficulty = 1e-4;
        cfg.vardiff.initial_difficulty = 1e-4;
        cfg.vardiff.max_difficulty = 1e-4;
        let hub = Hub::start(cfg).await.unwrap();
        let up = wait_until(T, || {
            hub.pool_facts()
                .iter()
                .any(|p| p.pool == "pool-1" && p.up)
                .then_some(())
        })
        .await;
        assert!(up.is_some(), "{:?}", hub.pool_facts());
        (pool, hub)
    }

    /// Shares that waited for an authorize the pool then refused are answered 24 by the hub
    /// when the refusal comes, not sent into the silence and lost (20).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shares_waiting_for_a_refused_worker_name_are_answered_unauthorized() {
        // The authorize is asked again after 5 s, while the shares wait. Submit timeout 60 s:
        // a held share older than that is lost (20) by design, and on a loaded machine the
        // miner's second share can come 20 s after its first; none may expire here.
        let (pool, hub) = hub_with_its_pool_session_up(60).await;
        // The worker's first authorize is dropped, so its shares wait in the session.
        pool.set_silent(true);
        pool.refuse_worker_name("acct.rig-banned");
        let miner = SimMiner::spawn(hub.stratum_addr(), MinerConfig::new("rig-banned"));
        let waiting = miner.wait_for(T, |s| s.in_flight >= 2).await;
        assert!(waiting.is_ok(), "{:?}", miner.stats());
        pool.set_silent(false);
        // The authorize sent again is refused: the waiting shares get 24 from the hub, and
        // none of them is lost (sent to the silent pool, they would have been answered 20).
        let refused = miner
            .wait_for(T, |s| {
                s.in_flight == 0
                    && s.rejected
                        .get(&crate::protocol::error_code::UNAUTHORIZED)
                        .is_some_and(|n| *n >= 2)
            })
            .await;
        assert!(refused.is_ok(), "{:?} {:?}", miner.stats(), pool.stats());
        let s = miner.stats();
        assert_eq!(
            s.rejected.get(&crate::protocol::error_code::OTHER),
            None,
            "{s:?}"
        );
        let p = pool.stats();
        assert!(p.authorizes_failed >= 1, "{p:?}");
        hub.shutdown().await;
    }

    /// A pool that answers one authorize per connection and ignores the rest (while it keeps
    /// sending jobs): after two unanswered authorizes the worker's shares go out without
    /// waiting, and the pool accepts them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_pool_that_ignores_worker_authorizes_still_gets_the_shares() {
        let pool = SimPool::start(PoolConfig {
            ignores_extra_authorizes: true,
            difficulty: 1e-4,
            job_interval: Some(Duration::from_millis(300)),
            ..PoolConfig::default()
        })
        .await
        .unwrap();
        let mut cfg = quick(vec![pool.url()]);
        cfg.upstream.submit_timeout = DurationSpec::from_secs(1);
        let hub = Hub::start(cfg).await.unwrap();
        let miner = SimMiner::spawn(hub.stratum_addr(), MinerConfig::new("rig-quiet"));
        let credited = wait_until(T, || {
            (pool.stats().worker("acct.rig-quiet").accepted >= 3).then_some(())
        })
        .await;
        assert!(credited.is_some(), "{:?} {:?}", pool.stats(), miner.stats());
        assert!(pool.stats().authorizes_ignored >= 2, "{:?}", pool.stats());
        let s = miner.stats();
        assert!(s.is_conserved(), "{s:?}");
        hub.shutdown().await;
    }

    /// SIGTERM path: miners are told to reconnect, the hub's tasks all stop.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_tells_miners_to_reconnect_and_stops() {
        let pool = SimPool::start(PoolConfig::default()).await.unwrap();
        let hub = Hub::start(quick(vec![pool.url()])).await.unwrap();
        let mut cfg = MinerConfig::new("rig-s");
        cfg.reconnect_delay = None;
        let miner = SimMiner::spawn(hub.stratum_addr(), cfg);
        miner.wait_for(T, |s| s.jobs_received > 0).await.unwrap();
        let addr = hub.stratum_addr();
        tokio::time::timeout(T, hub.shutdown())
            .await
            .expect("shutdown finishes");
        let s = miner
            .wait_for(T, |s| s.reconnects_received > 0 || !s.connected)
            .await
            .unwrap();
        assert_eq!(s.reconnects_received, 1, "{s:?}");
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "still accepting"
        );
    }

    /// A departed worker is reported as disconnected, then its series go after the retention.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn departed_workers_are_reported_then_removed() {
        let pool = SimPool::start(PoolConfig::default()).await.unwrap();
        let mut cfg = quick(vec![pool.url()]);
        cfg.stats.worker_retention = DurationSpec::from_secs(1);
        let hub = Hub::start(cfg).await.unwrap();
        let mut mc = MinerConfig::new("rig-gone");
        mc.reconnect_delay = None;
        let miner = SimMiner::spawn(hub.stratum_addr(), mc);
        miner.wait_for(T, |s| s.accepted > 0).await.unwrap();
        assert!(hub.metrics_text().contains(&format!(
            "{}{{worker=\"rig-gone\"}} 1",
            crate::metrics::WORKER_CONNECTED
        )));
        miner.die();
        let gone = wait_until(T, || {
            hub.facts()
                .iter()
                .find(|f| f.worker == "rig-gone")
                .is_some_and(|f| !f.connected)
                .then_some(())
        })
        .await;
        assert!(gone.is_some(), "{:?}", hub.facts());
        let removed = wait_until(T, || {
            (!hub.metrics_text().contains("worker=\"rig-gone\"")).then_some(())
        })
        .await;
        assert!(removed.is_some(), "{}", hub.metrics_text());
        hub.shutdown().await;
    }

    /// A raw connection that sends what cpuminer sends first (subscribe, then authorize as
    /// `worker`) without waiting for answers; the lines it reads and its write half.
    async fn cpuminer_handshake(
        hub: &HubHandle,
        worker: &str,
    ) -> (
        tokio::io::Lines<tokio::io::BufReader<tokio::net::tcp::OwnedReadHalf>>,
        tokio::net::tcp::OwnedWriteHalf,
    ) {
        use serde_json::json;
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let s = tokio::net::TcpStream::connect(hub.stratum_addr())
            .await
            .unwrap();
        let (r, mut w) = s.into_split();
        for req in [
            json!({"id": 1, "method": "mining.subscribe", "params": ["cpuminer/2.5.1"]}),
            json!({"id": 2, "method": "mining.authorize", "params": [worker, "x"]}),
        ] {
            w.write_all(format!("{req}\n").as_bytes()).await.unwrap();
        }
        (BufReader::new(r).lines(), w)
    }

    /// A silent miner (cpuminer far too slow for the initial difficulty) gets each vardiff step
    /// down as `set_difficulty` followed by the current job under a NEW id with
    /// `clean_jobs=true` (cpuminer applies a difficulty only with a new job id, and only
    /// restarts its threads on a clean job).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn vardiff_step_down_reaches_the_miner_as_a_new_clean_job() {
        use serde_json::{Value, json};

        let pool = SimPool::start(PoolConfig::default()).await.unwrap();
        let mut cfg = quick(vec![pool.url()]);
        cfg.vardiff.initial_difficulty = 1024.0;
        cfg.vardiff.share_interval = DurationSpec::from_millis(200);
        // The steady-state rule (÷32 after five silent intervals), not the first-minute one.
        cfg.vardiff.fast_first_share = false;
        let hub = Hub::start(cfg).await.unwrap();
        let (mut lines, _w) = cpuminer_handshake(&hub, "rig-slow").await;
        // (method, params) of every notification, in order, until a lowered difficulty and
        // the notify after it arrived.
        let mut seen: Vec<(String, Value)> = Vec::new();
        let got = tokio::time::timeout(T, async {
            while let Ok(Some(l)) = lines.next_line().await {
                let v: Value = serde_json::from_str(&l).unwrap();
                if let Some(m) = v["method"].as_str() {
                    seen.push((m.to_owned(), v["params"].clone()));
                }
                let lowered = seen.iter().position(|(m, p)| {
                    m == "mining.set_difficulty" && p[0].as_f64().is_some_and(|d| d < 1024.0)
                });
                if let Some(i) = lowered
                    && seen[i..].iter().any(|(m, _)| m == "mining.notify")
                {
                    return Some(i);
                }
            }
            None
        })
        .await;
        let i = got
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("no step down: {seen:?}"));
        let first_job = seen
            .iter()
            .find(|(m, _)| m == "mining.notify")
            .map(|(_, p)| p[0].clone())
            .unwrap();
        let (_, next) = seen[i..]
            .iter()
            .find(|(m, _)| m == "mining.notify")
            .unwrap();
        assert_ne!(
            next[0], first_job,
            "same job id: cpuminer would not apply it"
        );
        assert_eq!(
            next[8],
            json!(true),
            "not clean: cpuminer keeps old work: {next}"
        );
        assert_eq!(seen[i].1[0].as_f64(), Some(32.0), "{seen:?}");
        hub.shutdown().await;
    }

    /// Every miner reconnects the moment a hub restarts, before any pool has answered: a
    /// cpuminer-like miner (no `mining.extranonce.subscribe`) that subscribes then must get an
    /// extranonce2 size that fits the pool (4 bytes, tail 2 → 2), not a guess that costs it a
    /// `client.reconnect` as soon as the pool answers.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_miner_subscribing_before_any_pool_answered_gets_a_size_that_fits() {
        use serde_json::{Value, json};

        let pool = SimPool::start(PoolConfig {
            extranonce2_size: 4,
            ..PoolConfig::default()
        })
        .await
        .unwrap();
        // The pool answers 700 ms after the hub connects (a pool across the internet, a
        // busy one): the miner below subscribes well before that.
        let slow = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let slow_url = format!("stratum+tcp://{}", slow.local_addr().unwrap());
        let pool_addr = pool.addr();
        tokio::spawn(async move {
            while let Ok((mut hub_side, _)) = slow.accept().await {
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(700)).await;
                    if let Ok(mut pool_side) = tokio::net::TcpStream::connect(pool_addr).await {
                        let _ = tokio::io::copy_bidirectional(&mut hub_side, &mut pool_side).await;
                    }
                });
            }
        });
        let hub = Hub::start(quick(vec![slow_url])).await.unwrap();
        let (mut lines, _w) = cpuminer_handshake(&hub, "rig-early").await;
        let mut seen: Vec<Value> = Vec::new();
        let first_job = tokio::time::timeout(T, async {
            while let Ok(Some(l)) = lines.next_line().await {
                let v: Value = serde_json::from_str(&l).unwrap();
                let notify = v["method"] == "mining.notify";
                seen.push(v);
                if notify {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(first_job, Ok(true), "no job: {seen:?}");
        assert_eq!(
            seen[0]["id"],
            json!(1),
            "subscribe answered first: {seen:?}"
        );
        assert_eq!(seen[0]["result"][2], json!(2), "extranonce2 size: {seen:?}");
        assert!(
            !seen.iter().any(|v| v["method"] == "client.reconnect"),
            "{seen:?}"
        );
        assert!(
            !hub.metrics_text()
                .contains("reason=\"extranonce2_too_small\"} 1"),
            "{}",
            hub.metrics_text()
        );
        hub.shutdown().await;
    }

    #[test]
    fn handle_is_send_and_sync() {
        fn check<T: Send + Sync + 'static>() {}
        check::<HubHandle>();
    }

    pub(crate) async fn http_get(addr: SocketAddr, path: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }
}
