//! What every task of a hub shares: the config, the metrics, the worker table, id counters,
//! extranonce tails, the shutdown token and task tracker, and the switchboard behind the
//! [`Engine`] trait.
//!
//! Its own module, below the connection ([`crate::downstream`]), session ([`crate::upstream`])
//! and switchboard modules that all hold it, so that none of them imports the module that starts
//! the hub ([`crate::server`]) and the hub's modules form no import circle.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::HubConfig;
use crate::extranonce::{Tail, TailAllocator};
use crate::facts::PoolFacts;
use crate::fanout::FanOut;
use crate::link::{MinerJoin, SessionEvent};
use crate::metrics::{HubMetrics, Snapshot, SnapshotSource};
use crate::routing::{ValidRouting, WorkerDecision};
use crate::stats::{WorkerEntry, WorkerTable, unix_now};

/// The switchboard as the rest of the hub sees it. The switchboard module implements it; the
/// connection and session tasks reach it only through this trait, so that they need not import
/// the module that starts them.
pub(crate) trait Engine: Send + Sync + std::fmt::Debug {
    /// A new validated routing document.
    fn apply_routing(&self, sh: &Arc<Shared>, routing: Arc<ValidRouting>);
    /// The routing in force (`None` before any is applied).
    fn routing(&self) -> Option<Arc<ValidRouting>>;
    /// A pool session's news.
    fn session_event(&self, sh: &Arc<Shared>, pool: &str, sid: u64, ev: SessionEvent);
    fn miner_join(&self, sh: &Arc<Shared>, j: MinerJoin);
    fn miner_leave(&self, id: u64);
    fn miner_add_worker(&self, id: u64, login: String, entry: Arc<WorkerEntry>);
    fn miner_extranonce_subscribed(&self, id: u64);
    /// The smallest extranonce2 size a pool has given (`None` before any pool answered).
    fn known_min_n2(&self) -> Option<usize>;
    fn awaiting_first_pool(&self) -> bool;
    /// The health clock (every 500 ms).
    fn tick(&self, sh: &Arc<Shared>, now: Instant);
    fn pool_facts(&self) -> Vec<PoolFacts>;
}

/// State the metrics encoder reads.
#[derive(Debug)]
pub(crate) struct Core {
    pub workers: WorkerTable,
    pub engine: Arc<dyn Engine>,
    pub connections: AtomicU64,
    pub generation: AtomicU64,
}

impl SnapshotSource for Core {
    fn snapshot(&self) -> Snapshot {
        let pools = self.engine.pool_facts();
        let workers = self.workers.facts(unix_now());
        let pending = workers.iter().map(|w| w.pending).sum();
        Snapshot {
            workers,
            pools,
            connections: self.connections.load(Ordering::Relaxed),
            routing_generation: self.generation.load(Ordering::Relaxed),
            pending,
        }
    }
}

/// Everything the tasks share.
pub(crate) struct Shared {
    pub config: HubConfig,
    pub core: Arc<Core>,
    pub metrics: HubMetrics,
    tails: Mutex<TailAllocator>,
    job_ids: AtomicU64,
    salts: AtomicU64,
    miner_ids: AtomicU64,
    session_ids: AtomicU64,
    pub shutdown: CancellationToken,
    pub tracker: TaskTracker,
    pub fanout: FanOut,
    /// Becomes `true` when a pool first answers a subscribe (its extranonce2 size is known):
    /// miners that subscribed before wait for it (see `downstream::SUBSCRIBE_WAIT_FOR_POOL`).
    pub pool_answered: tokio::sync::watch::Sender<bool>,
}

impl Shared {
    pub fn new(
        config: HubConfig,
        core: Arc<Core>,
        metrics: HubMetrics,
        tails: TailAllocator,
    ) -> Self {
        Shared {
            config,
            core,
            metrics,
            tails: Mutex::new(tails),
            job_ids: AtomicU64::new(0),
            salts: AtomicU64::new(0),
            miner_ids: AtomicU64::new(0),
            session_ids: AtomicU64::new(0),
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            fanout: FanOut::for_this_machine(),
            pool_answered: tokio::sync::watch::Sender::new(false),
        }
    }

    /// The routing in force (`None` before any is applied).
    pub fn routing(&self) -> Option<Arc<ValidRouting>> {
        self.core.engine.routing()
    }

    pub fn next_session_id(&self) -> u64 {
        self.session_ids.fetch_add(1, Ordering::Relaxed) + 1
    }
    pub fn next_miner_id(&self) -> u64 {
        self.miner_ids.fetch_add(1, Ordering::Relaxed) + 1
    }
    /// A hub-unique job id (hex).
    /// A hub-unique job id for miners: a decimal number below 2^32 (some firmware, e.g. the
    /// Stratum V2 reference SV1 miner, parses job ids as decimal `u32` and quits on anything else).
    /// It repeats only after 4 billion jobs, long after any late share of the earlier one.
    pub fn next_job_id(&self) -> Arc<str> {
        let n = self.job_ids.fetch_add(1, Ordering::Relaxed) % u64::from(u32::MAX);
        Arc::from((n + 1).to_string())
    }

    /// A fresh padding salt (see [`crate::extranonce::salted_padding`]).
    pub fn next_salt(&self) -> u64 {
        self.salts.fetch_add(1, Ordering::Relaxed)
    }

    pub fn session_event(self: &Arc<Self>, pool: &str, sid: u64, ev: SessionEvent) {
        self.core.engine.session_event(self, pool, sid, ev);
    }
    pub fn switchboard_miner_join(self: &Arc<Self>, j: MinerJoin) {
        self.core.engine.miner_join(self, j);
    }
    pub fn switchboard_miner_leave(&self, id: u64) {
        self.core.engine.miner_leave(id);
    }
    pub fn switchboard_miner_add_worker(&self, id: u64, login: String, entry: Arc<WorkerEntry>) {
        self.core.engine.miner_add_worker(id, login, entry);
    }
    pub fn switchboard_miner_extranonce_subscribed(&self, id: u64) {
        self.core.engine.miner_extranonce_subscribed(id);
    }
    /// Where a miner authorizing as `login` goes (`None` before any routing is applied).
    pub fn decide(&self, login: &str) -> Option<WorkerDecision> {
        self.routing().map(|r| r.decide(login))
    }
    pub fn known_min_n2(&self) -> Option<usize> {
        self.core.engine.known_min_n2()
    }
    pub fn awaiting_first_pool(&self) -> bool {
        self.core.engine.awaiting_first_pool()
    }
    pub fn alloc_tail(&self) -> Option<Tail> {
        self.tails
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .alloc(Instant::now())
    }
    pub fn release_tail(&self, t: &Tail) {
        self.tails
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .release(t, Instant::now());
    }
    pub fn connection_closed(&self) {
        let _ = self
            .core
            .connections
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                Some(c.saturating_sub(1))
            });
    }
}
