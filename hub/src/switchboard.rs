//! The switchboard: which miner mines on which upstream session, and pool failover.
//!
//! It holds the applied routing, the pools' health ([`crate::pool_health::PoolHealthBook`]), the
//! upstream sessions per pool and the miners registered after their first authorize. Every event
//! (a miner joins or leaves, a session becomes ready or dies, a routing document is applied, a
//! health transition, the periodic tick) ends in `reconcile`: each miner's wanted pool is the first
//! healthy pool of its route ([`crate::pool_health::choose_pool`]); if it is not on a ready session
//! of that pool it is attached to one with room, and if there is none a session is opened and the
//! miner stays where it is until that session is ready ("connect first, then cut over"). A move is
//! only a `mining.notify` for the miner thanks to the extranonce folding ([`crate::extranonce`]);
//! the fallbacks for pools with a small extranonce2 are applied here.
//!
//! All methods are synchronous and short (called under one mutex); sockets are never touched
//! here, only bounded queues.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tracing::{debug, error, info, warn};

use crate::extranonce::{Fit, fit};
use crate::facts::PoolFacts;
use crate::link::{MinerJoin, MinerLink, SessionEvent, SessionHandle, SessionInfo, ToMiner};
use crate::metrics::{protocol_error, side};
use crate::pool_health::{
    HealthPolicy, PoolEvent, PoolHealthBook, PoolState, SwitchReason, choose_pool,
};
use crate::routing::{ResolvedPool, Route, ValidRouting, WorkerDecision};
use crate::shared::{Engine, Shared};
use crate::stats::WorkerEntry;
use crate::upstream::{self, PoolCounters, SessionParams};

#[derive(Debug)]
struct MinerReg {
    link: MinerLink,
    extranonce_subscribed: bool,
    login: String,
    route: Route,
    entries: Vec<(String, Arc<WorkerEntry>)>,
    /// (pool, session id) the miner is attached to.
    at: Option<(String, u64)>,
    /// The pool it was last attached to (kept while it waits unattached after a session died).
    last_pool: Option<String>,
    /// Its route's pool list changed since it was last placed (a move now is a `routing` switch).
    route_changed: bool,
    /// A decided move to another pool, not yet cut over.
    moving: Option<Move>,
    leaving: bool,
}

/// A move of one miner to another pool, from the decision on.
#[derive(Debug, Clone, Copy)]
struct Move {
    since: Instant,
    reason: SwitchReason,
}

#[derive(Debug)]
struct SessRt {
    handle: Arc<SessionHandle>,
    info: Option<SessionInfo>,
    members: HashSet<u64>,
    draining: bool,
    empty_since: Instant,
}

#[derive(Debug)]
struct PoolRt {
    spec: Arc<ResolvedPool>,
    sessions: Vec<SessRt>,
    no_configure: bool,
    counters: Arc<PoolCounters>,
    /// Not in the routing any more: closed when its sessions are empty.
    retired: bool,
    last_n2: Option<usize>,
    impossible_logged: bool,
    /// The last session failure or unwanted close: reason and unix time (for the facts).
    last_failure: Option<(String, f64)>,
    /// When the hub last followed the pool's `client.reconnect`, and the latest request it has
    /// not followed yet (see [`Switchboard::pool_asks_to_reconnect`]).
    reconnect_followed: Option<Instant>,
    reconnect_deferred: Option<DeferredReconnect>,
}

/// A pool's `client.reconnect` held back by the pace: where to dial and how long to wait.
#[derive(Debug, Clone)]
struct DeferredReconnect {
    dial: Option<String>,
    wait: Duration,
}

/// See the module docs.
#[derive(Debug)]
pub struct Switchboard {
    routing: Option<Arc<ValidRouting>>,
    health: PoolHealthBook,
    pools: BTreeMap<String, PoolRt>,
    /// Boxed: the table keeps up to twice its length in empty slots, and a slot is then 16
    /// bytes instead of a whole registration (~300 bytes per miner).
    miners: HashMap<u64, Box<MinerReg>>,
    /// A health transition happened since the last full reconcile.
    health_changed: bool,
}

impl Default for Switchboard {
    fn default() -> Self {
        Self::new()
    }
}

impl Switchboard {
    pub fn new() -> Self {
        Self {
            routing: None,
            health: PoolHealthBook::new(HealthPolicy::default(), 0x5eed),
            pools: BTreeMap::new(),
            miners: HashMap::new(),
            health_changed: false,
        }
    }

    pub fn routing(&self) -> Option<Arc<ValidRouting>> {
        self.routing.clone()
    }

    /// Smallest extranonce2 size among the pools of the routing (for a new miner's `m`).
    pub fn known_min_n2(&self) -> Option<usize> {
        self.pools
            .values()
            .filter(|p| !p.retired)
            .filter_map(|p| p.last_n2)
            .min()
    }

    /// The routing names pools but none has answered a subscribe yet (hub start): a new
    /// miner's extranonce2 size would be a guess that may not fit (see `downstream`).
    pub fn awaiting_first_pool(&self) -> bool {
        self.known_min_n2().is_none() && self.pools.values().any(|p| !p.retired)
    }

    // ---- routing ------------------------------------------------------------------------------

    pub fn apply_routing(&mut self, sh: &Arc<Shared>, r: Arc<ValidRouting>) {
        let policy = HealthPolicy::from_failover(r.failover());
        let names: Vec<String> = r.pools().map(|p| p.name.clone()).collect();
        self.health.sync(policy, names.iter().map(String::as_str));
        for p in r.pools() {
            match self.pools.get_mut(&p.name) {
                Some(rt) if *rt.spec == *p => rt.retired = false,
                Some(rt) => {
                    info!(pool = %p.name, "pool settings changed; replacing its sessions");
                    rt.spec = Arc::new(p.clone());
                    rt.retired = false;
                    rt.no_configure = false;
                    for s in &mut rt.sessions {
                        s.draining = true;
                    }
                }
                None => {
                    self.pools.insert(
                        p.name.clone(),
                        PoolRt {
                            spec: Arc::new(p.clone()),
                            sessions: Vec::new(),
                            no_configure: false,
                            counters: Arc::new(PoolCounters::default()),
                            retired: false,
                            last_n2: None,
                            impossible_logged: false,
                            last_failure: None,
                            reconnect_followed: None,
                            reconnect_deferred: None,
                        },
                    );
                }
            }
        }
        for (name, rt) in &mut self.pools {
            if r.pool(name).is_none() && !rt.retired {
                info!(pool = %name, "pool removed from routing; its miners move");
                rt.retired = true;
                for s in &mut rt.sessions {
                    s.draining = true;
                }
            }
        }
        let windows: Vec<u64> = r
            .health_windows()
            .iter()
            .map(|d| d.as_secs().max(1))
            .collect();
        if !windows.is_empty() {
            sh.core.workers.set_windows(windows);
        }
        sh.core.generation.store(r.generation(), Ordering::Relaxed);
        self.routing = Some(r.clone());
        // New routes (and labels) for every registered miner.
        let ids: Vec<u64> = self.miners.keys().copied().collect();
        for id in ids {
            let Some(reg) = self.miners.get_mut(&id) else {
                continue;
            };
            match r.decide(&reg.login) {
                WorkerDecision::Route(route) => {
                    for (login, e) in &reg.entries {
                        if let WorkerDecision::Route(own) = r.decide(login) {
                            e.lock().labels = labels_of(&own);
                        }
                    }
                    if reg.route.pools != route.pools {
                        reg.route_changed = true;
                    }
                    reg.route = route;
                }
                WorkerDecision::Reject => {
                    warn!(worker = %reg.login, "worker no longer in the routing; disconnecting it");
                    reg.link.send(ToMiner::Close {
                        reason: "worker removed from routing",
                    });
                    reg.leaving = true;
                }
            }
        }
        self.reconcile_all(sh, Instant::now());
    }

    // ---- miners -------------------------------------------------------------------------------

    pub fn miner_join(&mut self, sh: &Arc<Shared>, j: MinerJoin) {
        let id = j.link.id;
        self.miners.insert(
            id,
            Box::new(MinerReg {
                link: j.link,
                extranonce_subscribed: j.extranonce_subscribed,
                login: j.login,
                route: j.route,
                entries: j.entries,
                at: None,
                last_pool: None,
                route_changed: false,
                moving: None,
                leaving: false,
            }),
        );
        self.reconcile(sh, id, Instant::now());
    }

    pub fn miner_add_worker(&mut self, id: u64, login: String, entry: Arc<WorkerEntry>) {
        if let Some(reg) = self.miners.get_mut(&id) {
            if let Some((pool, _)) = &reg.at {
                entry.lock().pool = Some(pool.clone());
            }
            reg.entries.push((login, entry));
        }
    }

    /// The miner sent `mining.extranonce.subscribe` after registering.
    pub fn miner_extranonce_subscribed(&mut self, id: u64) {
        if let Some(reg) = self.miners.get_mut(&id) {
            reg.extranonce_subscribed = true;
        }
    }

    pub fn miner_leave(&mut self, id: u64) {
        let Some(reg) = self.miners.remove(&id) else {
            return;
        };
        if let Some((pool, sid)) = reg.at
            && let Some(s) = self.session_mut(&pool, sid)
        {
            s.members.remove(&id);
            if s.members.is_empty() {
                s.empty_since = Instant::now();
            }
            s.handle.detach(id);
        }
    }

    // ---- sessions -----------------------------------------------------------------------------

    fn session_mut(&mut self, pool: &str, sid: u64) -> Option<&mut SessRt> {
        self.pools
            .get_mut(pool)?
            .sessions
            .iter_mut()
            .find(|s| s.handle.id == sid)
    }

    fn spawn_session(
        &mut self,
        sh: &Arc<Shared>,
        pool: &str,
        dial_override: Option<String>,
        delay: Duration,
        now: Instant,
    ) {
        let Some(connect_timeout) = self
            .routing
            .as_ref()
            .map(|r| r.failover().connect_timeout.as_std())
        else {
            return;
        };
        let Some(rt) = self.pools.get_mut(pool) else {
            return;
        };
        let params = SessionParams {
            pool: rt.spec.clone(),
            dial_override,
            delay,
            send_configure: !rt.no_configure,
            connect_timeout,
            counters: rt.counters.clone(),
        };
        let handle = upstream::spawn(sh, params);
        rt.sessions.push(SessRt {
            handle,
            info: None,
            members: HashSet::new(),
            draining: false,
            empty_since: now,
        });
        self.health.on_event(pool, PoolEvent::ConnectStarted, now);
    }

    pub fn session_event(&mut self, sh: &Arc<Shared>, pool: &str, sid: u64, ev: SessionEvent) {
        let now = Instant::now();
        match ev {
            SessionEvent::Ready(info) => {
                let Some(rt) = self.pools.get_mut(pool) else {
                    return;
                };
                rt.last_n2 = Some(info.n2);
                sh.pool_answered
                    .send_if_modified(|seen| !std::mem::replace(seen, true));
                let k = sh.config.extranonce.tail_bytes;
                if info.n2 < k + 1 {
                    error!(
                        pool,
                        extranonce2_size = info.n2,
                        tail_bytes = k,
                        "pool extranonce2 too small to carry a miner tail; treating the pool as failed"
                    );
                    if let Some(s) = rt.sessions.iter().find(|s| s.handle.id == sid) {
                        s.handle.close();
                    }
                    return;
                }
                if let Some(s) = rt.sessions.iter_mut().find(|s| s.handle.id == sid) {
                    s.info = Some(info);
                    s.empty_since = now;
                }
                let t = self.health.on_event(pool, PoolEvent::ConnectOk, now);
                self.health.on_event(pool, PoolEvent::JobReceived, now);
                if let Some(t) = t {
                    log_transition(pool, &t);
                }
                self.reconcile_all(sh, now);
            }
            SessionEvent::Failed {
                auth_rejected,
                configure_suspect,
                reason,
            } => {
                let members = self.remove_session(pool, sid);
                if let Some(rt) = self.pools.get_mut(pool) {
                    rt.counters.disconnects.fetch_add(1, Ordering::Relaxed);
                    rt.last_failure = Some((reason.clone(), crate::stats::unix_now()));
                    if configure_suspect && !rt.no_configure {
                        info!(
                            pool,
                            "pool closed after mining.configure; retrying without it"
                        );
                        rt.no_configure = true;
                    }
                }
                warn!(pool, %reason, "upstream session failed");
                let event = if auth_rejected {
                    PoolEvent::AuthRejected
                } else {
                    PoolEvent::ConnectFailed
                };
                self.health_event(pool, event, now);
                self.reassign(sh, members, now);
            }
            SessionEvent::Closed { reason } => {
                let (members, draining) = self.remove_session_full(pool, sid);
                if sh.shutdown.is_cancelled() {
                    return;
                }
                // A close the hub wanted (idle spare, replaced after client.reconnect) while the pool
                // has other sessions is not a pool failure; anything else feeds the health machine
                // (which also tracks whether the pool is connected at all).
                let others = self
                    .pools
                    .get(pool)
                    .is_some_and(|rt| rt.sessions.iter().any(|s| s.handle.is_alive()));
                let failed = self.health.state(pool).is_failed();
                // A drained session of a failed pool closing was counted when the pool failed.
                if draining && (others || failed) {
                    tracing::debug!(pool, %reason, "drained upstream session closed");
                } else {
                    if let Some(rt) = self.pools.get_mut(pool) {
                        rt.counters.disconnects.fetch_add(1, Ordering::Relaxed);
                        rt.last_failure = Some((reason.clone(), crate::stats::unix_now()));
                    }
                    warn!(pool, %reason, miners = members.len(), "upstream session closed");
                    self.health_event(pool, PoolEvent::Disconnected, now);
                }
                self.reassign(sh, members, now);
            }
            SessionEvent::Job => {
                // A session left draining after its pool failed says nothing new about the
                // pool: it is kept only for late shares (a fresh session proves recovery).
                let draining = self
                    .pools
                    .get(pool)
                    .and_then(|rt| rt.sessions.iter().find(|s| s.handle.id == sid))
                    .is_some_and(|s| s.draining);
                if !draining {
                    self.health_event(pool, PoolEvent::JobReceived, now);
                }
            }
            SessionEvent::Verdicts { accepted, rejected } => {
                let cap = 256;
                for _ in 0..accepted.min(cap) {
                    self.health_event(pool, PoolEvent::ShareAccepted, now);
                }
                for _ in 0..rejected.min(cap) {
                    self.health_event(pool, PoolEvent::ShareRejected, now);
                }
            }
            SessionEvent::Reconnect { host, port, wait } => {
                let Some(rt) = self.pools.get(pool) else {
                    return;
                };
                let dial = match (host, port) {
                    (None, None) => None,
                    (h, p) => Some(format!(
                        "{}:{}",
                        h.unwrap_or_else(|| rt.spec.url.host.clone()),
                        p.unwrap_or(rt.spec.url.port)
                    )),
                };
                self.pool_asks_to_reconnect(sh, pool, sid, DeferredReconnect { dial, wait }, now);
            }
        }
    }

    /// The pool asked session `sid` to reconnect (`client.reconnect`): the session is replaced
    /// without its miners noticing (a new session is opened, the miners move to it when it is
    /// ready, the old one drains).
    ///
    /// A pool sends the request to every open connection, and a broken or hostile one sends it
    /// again and again. Followed naively, each request to a session that is already being
    /// replaced opens one more replacement, and a loop doubles the connections with every round.
    /// So: a session already draining ignores it; and the hub follows a pool's requests at most
    /// once per late-share grace. A request inside that pace is deferred (the latest one wins,
    /// with its address) and followed when the pace allows, so a redirect is never dropped, and
    /// a miner is moved by reconnects at most once per grace: its late shares for the previous
    /// session always still reach it.
    fn pool_asks_to_reconnect(
        &mut self,
        sh: &Arc<Shared>,
        pool: &str,
        sid: u64,
        request: DeferredReconnect,
        now: Instant,
    ) {
        let pace = sh.config.upstream.late_share_grace.as_std();
        let Some(rt) = self.pools.get_mut(pool) else {
            return;
        };
        let Some(session) = rt.sessions.iter().find(|s| s.handle.id == sid) else {
            return;
        };
        if session.draining {
            debug!(
                pool,
                "client.reconnect on a session already being replaced; ignored"
            );
            return;
        }
        if rt
            .reconnect_followed
            .is_some_and(|at| now.saturating_duration_since(at) < pace)
        {
            if rt.reconnect_deferred.is_none() {
                warn!(
                    pool,
                    pace_secs = pace.as_secs_f64(),
                    "pool asks to reconnect again soon after the last time; following it once the pace allows"
                );
                sh.metrics
                    .protocol_error(side::POOL, protocol_error::RECONNECT_PACED);
            }
            rt.reconnect_deferred = Some(request);
            return;
        }
        self.follow_reconnect(sh, pool, request, now);
    }

    /// Replaces the pool's live sessions: drained, and one new session opened (more follow
    /// when the miners do not fit in one).
    fn follow_reconnect(
        &mut self,
        sh: &Arc<Shared>,
        pool: &str,
        request: DeferredReconnect,
        now: Instant,
    ) {
        let Some(rt) = self.pools.get_mut(pool) else {
            return;
        };
        rt.reconnect_followed = Some(now);
        rt.reconnect_deferred = None;
        for s in &mut rt.sessions {
            s.draining = true;
        }
        self.spawn_session(sh, pool, request.dial, request.wait, now);
    }

    /// Deferred `client.reconnect` requests whose pace has passed are followed now.
    fn follow_deferred_reconnects(&mut self, sh: &Arc<Shared>, now: Instant) {
        let pace = sh.config.upstream.late_share_grace.as_std();
        let due: Vec<(String, DeferredReconnect)> = self
            .pools
            .iter_mut()
            .filter(|(_, rt)| {
                !rt.retired
                    && rt
                        .reconnect_followed
                        .is_none_or(|at| now.saturating_duration_since(at) >= pace)
            })
            .filter_map(|(name, rt)| Some((name.clone(), rt.reconnect_deferred.take()?)))
            .collect();
        for (pool, request) in due {
            info!(pool = %pool, "following the pool's deferred client.reconnect");
            self.follow_reconnect(sh, &pool, request, now);
        }
    }

    fn health_event(&mut self, pool: &str, ev: PoolEvent, now: Instant) {
        if let Some(t) = self.health.on_event(pool, ev, now) {
            log_transition(pool, &t);
            self.health_changed = true;
        }
    }

    /// Remove a session; returns its members (now unattached).
    fn remove_session(&mut self, pool: &str, sid: u64) -> Vec<u64> {
        self.remove_session_full(pool, sid).0
    }

    /// Remove a session; returns its members and whether the hub was draining it (a close the
    /// hub wanted, or one the pool announced with `client.reconnect`: not a pool failure).
    fn remove_session_full(&mut self, pool: &str, sid: u64) -> (Vec<u64>, bool) {
        let Some(rt) = self.pools.get_mut(pool) else {
            return (Vec::new(), false);
        };
        let Some(pos) = rt.sessions.iter().position(|s| s.handle.id == sid) else {
            return (Vec::new(), false);
        };
        let s = rt.sessions.remove(pos);
        let draining = s.draining;
        let members: Vec<u64> = s.members.into_iter().collect();
        for id in &members {
            if let Some(reg) = self.miners.get_mut(id) {
                reg.at = None;
            }
        }
        (members, draining)
    }

    fn reassign(&mut self, sh: &Arc<Shared>, members: Vec<u64>, now: Instant) {
        if std::mem::take(&mut self.health_changed) {
            self.reconcile_all(sh, now);
        } else {
            for id in members {
                self.reconcile(sh, id, now);
            }
        }
    }

    // ---- the decision ---------------------------------------------------------------------------

    fn reconcile_all(&mut self, sh: &Arc<Shared>, now: Instant) {
        self.health_changed = false;
        let ids: Vec<u64> = self.miners.keys().copied().collect();
        for id in ids {
            self.reconcile(sh, id, now);
        }
        self.warm(sh, now);
    }

    /// Put one miner where it should be (or start the session it needs).
    fn reconcile(&mut self, sh: &Arc<Shared>, id: u64, now: Instant) {
        let Some(reg) = self.miners.get(&id) else {
            return;
        };
        if reg.leaving {
            return;
        }
        let health = &self.health;
        let Some(want) = choose_pool(&reg.route.pools, |p| health.state(p)).map(str::to_owned)
        else {
            return; // every pool failed: keep the miner where it is
        };
        let placed = reg.at.as_ref().is_some_and(|(p, sid)| {
            *p == want
                && self
                    .pools
                    .get(p)
                    .and_then(|rt| rt.sessions.iter().find(|s| s.handle.id == *sid))
                    .is_some_and(|s| !s.draining)
        });
        // The switch clock starts when the decision to leave the current pool is first made.
        let from = reg
            .at
            .as_ref()
            .map(|(p, _)| p.clone())
            .or_else(|| reg.last_pool.clone());
        let reason = match &from {
            Some(f) if *f != want => Some(if reg.route_changed {
                SwitchReason::Routing
            } else {
                health.switch_reason(&reg.route.pools, f, &want)
            }),
            _ => None,
        };
        if let Some(reg) = self.miners.get_mut(&id) {
            match reason {
                Some(reason) => {
                    reg.moving.get_or_insert(Move { since: now, reason });
                }
                None => {
                    reg.moving = None;
                    reg.route_changed = false;
                }
            }
        }
        if placed {
            return;
        }
        let Some(reg) = self.miners.get(&id) else {
            return;
        };
        let cap = sh.config.extranonce.max_miners_per_session;
        let k = sh.config.extranonce.tail_bytes;
        let m = reg.link.m;
        let Some(rt) = self.pools.get_mut(&want) else {
            return;
        };
        let target = rt.sessions.iter().position(|s| {
            s.info.is_some() && !s.draining && s.members.len() < cap && s.handle.is_alive()
        });
        let Some(pos) = target else {
            let connecting = rt.sessions.iter().any(|s| s.info.is_none() && !s.draining);
            if !connecting && !matches!(self.health.state(&want), PoolState::Failed { .. }) {
                self.spawn_session(sh, &want, None, Duration::ZERO, now);
            }
            return;
        };
        let n2 = rt.sessions[pos].info.as_ref().map_or(0, |i| i.n2);
        let mut new_m = None;
        match fit(n2, k, m) {
            Fit::Fits { .. } => {}
            Fit::Shrink { m: m2 } => {
                let extranonce_subscribed = reg.extranonce_subscribed;
                if extranonce_subscribed && m2 >= 1 {
                    new_m = Some(m2);
                } else {
                    info!(
                        pool = %want,
                        extranonce2_size = n2,
                        miner_extranonce2_size = m,
                        "miner's extranonce2 does not fit the pool and it did not subscribe to extranonce changes; asking it to reconnect"
                    );
                    if let Some(reg) = self.miners.get_mut(&id) {
                        reg.leaving = true;
                        reg.link.send(ToMiner::Reconnect {
                            reason: "reconnect for a smaller extranonce2",
                            metric: crate::metrics::reconnect::EXTRANONCE2_TOO_SMALL,
                        });
                    }
                    return;
                }
            }
            Fit::Impossible => {
                if !rt.impossible_logged {
                    error!(pool = %want, extranonce2_size = n2, "pool cannot carry miner tails");
                    rt.impossible_logged = true;
                }
                return;
            }
        }
        // Cut over: detach from the old session, attach to the new one.
        let handle = rt.sessions[pos].handle.clone();
        let Some(reg) = self.miners.get_mut(&id) else {
            return;
        };
        if let Some(m2) = new_m {
            reg.link.send(ToMiner::SetExtranonce { m: m2 });
            reg.link.m = m2;
        }
        let old = reg.at.take();
        let switched_pool = reg.last_pool.as_ref().is_some_and(|p| *p != want);
        let moved = if switched_pool { reg.moving } else { None };
        reg.moving = None;
        reg.route_changed = false;
        reg.last_pool = Some(want.clone());
        reg.at = Some((want.clone(), handle.id));
        for (_, e) in &reg.entries {
            e.lock().pool = Some(want.clone());
        }
        let link = reg.link.clone();
        if let Some((op, osid)) = old
            && let Some(s) = self.session_mut(&op, osid)
        {
            s.members.remove(&id);
            if s.members.is_empty() {
                s.empty_since = now;
            }
            s.handle.detach(id);
        }
        if let Some(rt) = self.pools.get_mut(&want) {
            if switched_pool {
                let reason = moved.map_or(SwitchReason::Routing, |m| m.reason);
                rt.counters.count_switch(reason);
                info!(pool = %want, conn = id, reason = reason.as_str(), "miner switched pool");
            }
            if let Some(s) = rt.sessions.get_mut(pos) {
                s.members.insert(id);
            }
        }
        handle.attach(link, moved.map(|m| m.since));
    }

    /// Keep one session open to every pool of the routing (warm failover targets, and their
    /// extranonce sizes known before miners subscribe), and retry failed pools when due.
    fn warm(&mut self, sh: &Arc<Shared>, now: Instant) {
        let due: HashSet<String> = self.health.due_connects(now).into_iter().collect();
        let names: Vec<String> = self.pools.keys().cloned().collect();
        for name in names {
            let Some(rt) = self.pools.get(&name) else {
                continue;
            };
            if rt.retired {
                continue;
            }
            let live = rt.sessions.iter().any(|s| !s.draining);
            let failed = matches!(self.health.state(&name), PoolState::Failed { .. });
            let needed = sh.config.upstream.keep_warm
                || self.miners.values().any(|m| m.route.pools.contains(&name));
            if !live && needed && (!failed || due.contains(&name)) {
                self.spawn_session(sh, &name, None, Duration::ZERO, now);
            }
        }
    }

    /// Periodic: health clock, retries, closing idle and drained sessions.
    pub fn tick(&mut self, sh: &Arc<Shared>, now: Instant) {
        let transitions = self.health.tick(now);
        for (pool, t) in &transitions {
            log_transition(pool, t);
        }
        // A failed pool (starving, rejecting): its sessions take no new miners and close once
        // their miners have moved and the late-share grace has passed (below), not now: shares
        // in flight still get the pool's verdict and late shares of its jobs still reach it,
        // instead of being lost. A fresh connection is tried when the backoff says so.
        let mut drained = Vec::new();
        for (pool, t) in &transitions {
            if t.to.is_failed()
                && let Some(rt) = self.pools.get_mut(pool)
            {
                for s in &mut rt.sessions {
                    s.draining = true;
                }
                drained.push(pool.clone());
            }
        }
        // For dialing, a failed pool whose sessions only drain counts as disconnected.
        for pool in drained {
            self.health_event(&pool, PoolEvent::Disconnected, now);
        }
        self.follow_deferred_reconnects(sh, now);
        if !transitions.is_empty() || self.health_changed {
            self.reconcile_all(sh, now);
        } else {
            self.warm(sh, now);
        }
        let idle = sh.config.upstream.idle_session.as_std();
        let grace = sh.config.upstream.late_share_grace.as_std();
        let mut emptied = Vec::new();
        for (name, rt) in &mut self.pools {
            let live_ready = rt
                .sessions
                .iter()
                .filter(|s| s.info.is_some() && !s.draining)
                .count();
            let mut spare_ready = live_ready;
            for s in &mut rt.sessions {
                if !s.members.is_empty() {
                    continue;
                }
                let empty_for = now.saturating_duration_since(s.empty_since);
                let close = if s.draining || rt.retired {
                    empty_for >= grace
                } else if s.info.is_some() && spare_ready > 1 {
                    empty_for >= idle
                } else {
                    false
                };
                if close {
                    if !s.draining && s.info.is_some() {
                        spare_ready -= 1;
                    }
                    s.handle.close();
                    s.draining = true;
                }
            }
            if rt.retired && rt.sessions.is_empty() {
                emptied.push(name.clone());
            }
        }
        for name in emptied {
            self.pools.remove(&name);
        }
    }

    pub fn pool_facts(&self) -> Vec<PoolFacts> {
        self.pools
            .iter()
            .map(|(name, rt)| {
                let ready = rt.sessions.iter().filter(|s| s.info.is_some()).count();
                PoolFacts {
                    pool: name.clone(),
                    up: ready > 0,
                    sessions: rt.sessions.len() as u64,
                    workers: rt.sessions.iter().map(|s| s.members.len() as u64).sum(),
                    latency_seconds: rt.counters.latency(),
                    difficulty: rt.counters.difficulty(),
                    accepted: rt.counters.accepted.load(Ordering::Relaxed),
                    rejected: rt.counters.rejected.load(Ordering::Relaxed),
                    lost: rt.counters.lost.load(Ordering::Relaxed),
                    switches: rt.counters.switches.load(Ordering::Relaxed),
                    switches_by_reason: rt.counters.switches_by_reason(),
                    disconnects: rt.counters.disconnects.load(Ordering::Relaxed),
                    last_failure: rt.last_failure.as_ref().map(|(r, _)| r.clone()),
                    last_failure_unix: rt.last_failure.as_ref().map(|(_, t)| *t),
                }
            })
            .collect()
    }
}

fn labels_of(route: &Route) -> crate::facts::AssignmentLabels {
    crate::facts::AssignmentLabels {
        contract: route.assignment.as_ref().and_then(|a| a.contract.clone()),
        customer: route.assignment.as_ref().and_then(|a| a.customer.clone()),
        role: route.assignment.as_ref().map(|a| a.role),
    }
}

fn log_transition(pool: &str, t: &crate::pool_health::Transition) {
    if t.from.as_str() == t.to.as_str() {
        tracing::debug!(pool, state = t.to.as_str(), "pool state renewed");
    } else {
        info!(
            pool,
            from = t.from.as_str(),
            to = t.to.as_str(),
            "pool state changed"
        );
    }
}

/// The switchboard behind its one mutex: what [`Shared`] holds as its [`Engine`]. The lock is
/// held for the length of one decision and never across an await.
#[derive(Debug)]
pub(crate) struct Board(Mutex<Switchboard>);

impl Board {
    pub fn new() -> Self {
        Board(Mutex::new(Switchboard::new()))
    }

    /// A poisoned lock (a panic elsewhere) still yields the switchboard.
    fn lock(&self) -> MutexGuard<'_, Switchboard> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Engine for Board {
    fn apply_routing(&self, sh: &Arc<Shared>, routing: Arc<ValidRouting>) {
        self.lock().apply_routing(sh, routing);
    }
    fn routing(&self) -> Option<Arc<ValidRouting>> {
        self.lock().routing()
    }
    fn session_event(&self, sh: &Arc<Shared>, pool: &str, sid: u64, ev: SessionEvent) {
        self.lock().session_event(sh, pool, sid, ev);
    }
    fn miner_join(&self, sh: &Arc<Shared>, j: MinerJoin) {
        self.lock().miner_join(sh, j);
    }
    fn miner_leave(&self, id: u64) {
        self.lock().miner_leave(id);
    }
    fn miner_add_worker(&self, id: u64, login: String, entry: Arc<WorkerEntry>) {
        self.lock().miner_add_worker(id, login, entry);
    }
    fn miner_extranonce_subscribed(&self, id: u64) {
        self.lock().miner_extranonce_subscribed(id);
    }
    fn known_min_n2(&self) -> Option<usize> {
        self.lock().known_min_n2()
    }
    fn awaiting_first_pool(&self) -> bool {
        self.lock().awaiting_first_pool()
    }
    fn tick(&self, sh: &Arc<Shared>, now: Instant) {
        self.lock().tick(sh, now);
    }
    fn pool_facts(&self) -> Vec<PoolFacts> {
        self.lock().pool_facts()
    }
}
