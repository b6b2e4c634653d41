//! Pool health and failover decisions, as pure state machines (no I/O, time passed in).
//!
//! A pool is *failed* when it refuses connections, drops them, rejects authorization, sends no job
//! for `starvation`, or rejects at least `rejectRatio` of the last `rejectWindow` shares. A failed
//! pool is retried with exponential backoff and jitter (deterministic for a given seed). When a
//! retry delivers a job the pool is *recovering*; only after `returnAfter` without a new failure is
//! it *up* again and preferred by the workers that list it first (hysteresis: a flapping pool does
//! not drag miners back and forth, and its backoff keeps growing until it stays up for
//! `returnAfter`).
//!
//! How the engine uses this (one [`PoolHealthBook`] per hub, keyed by pool name):
//! - feed every upstream event: [`PoolEvent::ConnectStarted`] before dialing,
//!   [`PoolEvent::ConnectOk`] after subscribe succeeded, [`PoolEvent::ConnectFailed`] on refusal /
//!   timeout / handshake error, [`PoolEvent::AuthRejected`], [`PoolEvent::Disconnected`],
//!   [`PoolEvent::JobReceived`] per `mining.notify`, [`PoolEvent::ShareAccepted`] /
//!   [`PoolEvent::ShareRejected`] per pool verdict on a forwarded share (only rejections for which
//!   [`rejection_is_pool_trouble`] holds: duplicates are not the pool's fault);
//! - call [`PoolHealthBook::tick`] at least every few hundred ms (or at
//!   [`PoolHealthBook::next_deadline`]) so starvation and recovery are noticed;
//! - when a [`Transition`] into [`PoolState::Failed`] is returned: stop sending new work from that
//!   pool, re-route its workers with [`PoolHealthBook::choose`], close the session once late shares
//!   had their chance, and dial again when [`PoolHealthBook::should_connect`] says so;
//! - for each worker, [`PoolHealthBook::choose`] over its ordered pool list gives the pool it should
//!   be on now; cut over (connect first) when it differs from the current one, labelling the switch
//!   with [`PoolHealthBook::switch_reason`].

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::routing::FailoverPolicy;

/// Thresholds of the state machine (from the routing document's `failover` section).
#[derive(Debug, Clone, PartialEq)]
pub struct HealthPolicy {
    pub starvation: Duration,
    pub reject_ratio: f64,
    pub reject_window: u32,
    pub return_after: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

impl HealthPolicy {
    pub fn from_failover(f: &FailoverPolicy) -> Self {
        Self {
            starvation: f.starvation.as_std(),
            reject_ratio: f.reject_ratio,
            reject_window: f.reject_window.max(1),
            return_after: f.return_after.as_std(),
            backoff_min: f.backoff_min.as_std(),
            backoff_max: f.backoff_max.as_std().max(f.backoff_min.as_std()),
        }
    }
}

impl Default for HealthPolicy {
    fn default() -> Self {
        Self::from_failover(&FailoverPolicy::default())
    }
}

/// Why a pool was failed (a metric label via [`FailReason::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailReason {
    /// Connection refused, timed out, or the subscribe handshake failed.
    Refused,
    /// An established session was closed.
    Dropped,
    /// The pool refused `mining.authorize`.
    AuthRejected,
    /// Connected but no job for the starvation time.
    Starved,
    /// Rejected at least the reject ratio of recent shares.
    Rejecting,
}

impl FailReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FailReason::Refused => "refused",
            FailReason::Dropped => "dropped",
            FailReason::AuthRejected => "auth_rejected",
            FailReason::Starved => "starved",
            FailReason::Rejecting => "rejecting",
        }
    }
}

/// Something that happened on a pool's upstream session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolEvent {
    ConnectStarted,
    ConnectOk,
    ConnectFailed,
    AuthRejected,
    Disconnected,
    JobReceived,
    ShareAccepted,
    ShareRejected,
}

/// Whether a pool's rejection of a forwarded share says something about the pool's health.
///
/// Feed [`PoolEvent::ShareRejected`] only when this is true. A duplicate (22) is the hub's or the
/// miner's doing (the same work submitted twice, e.g. a miner that restarts its extranonce2 on a
/// job it already mined before a switch back): counting it would fail a healthy pool as
/// "rejecting" and move every worker away for nothing. Every other code counts (a pool that
/// answers "job not found" or "low difficulty" to nearly everything is broken for us), and a
/// bare `false` or an unparsable error (`None`) counts too.
pub fn rejection_is_pool_trouble(code: Option<i64>) -> bool {
    code != Some(crate::protocol::error_code::DUPLICATE)
}

/// Health of one pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolState {
    /// Never judged yet (first connect pending). Eligible: workers wait for it rather than start on
    /// a less preferred pool.
    Unknown,
    /// Delivering jobs.
    Up { since: Instant },
    /// Failed; do not route to it. Retried at `retry_at`.
    Failed {
        reason: FailReason,
        since: Instant,
        retry_at: Instant,
    },
    /// Working again since `since`, not yet trusted (hysteresis).
    Recovering { since: Instant },
}

impl PoolState {
    /// Metric label value.
    pub fn as_str(&self) -> &'static str {
        match self {
            PoolState::Unknown => "unknown",
            PoolState::Up { .. } => "up",
            PoolState::Failed { .. } => "failed",
            PoolState::Recovering { .. } => "recovering",
        }
    }
    pub fn is_failed(&self) -> bool {
        matches!(self, PoolState::Failed { .. })
    }
}

/// A state change, returned so the engine can act and log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: PoolState,
    pub to: PoolState,
}

/// Exponential backoff with "equal jitter": attempt n waits a uniform time in
/// `[d/2, d]` with `d = min(backoff_min · 2^(n-1), backoff_max)`.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    rng: SmallRng,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration, seed: u64) -> Self {
        Self {
            min,
            max: max.max(min),
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    /// Delay before retry number `attempt` (1 = first retry).
    pub fn delay(&mut self, attempt: u32) -> Duration {
        let shift = attempt.saturating_sub(1);
        let cap = if shift >= 31 {
            self.max
        } else {
            self.min
                .checked_mul(1u32 << shift)
                .map_or(self.max, |d| d.min(self.max))
        };
        let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
        let low = nanos / 2;
        Duration::from_nanos(self.rng.random_range(low..=nanos))
    }
}

/// The health state machine of one pool.
#[derive(Debug, Clone)]
pub struct PoolHealth {
    policy: HealthPolicy,
    state: PoolState,
    connected: bool,
    connecting: bool,
    /// Last job, or connect time when no job yet: the starvation clock.
    last_progress: Option<Instant>,
    /// Failures since the pool was last up for `return_after`.
    streak: u32,
    /// Recent share verdicts, `true` = rejected.
    verdicts: VecDeque<bool>,
    rejected_in_window: u32,
    backoff: Backoff,
}

impl PoolHealth {
    pub fn new(policy: HealthPolicy, seed: u64) -> Self {
        let backoff = Backoff::new(policy.backoff_min, policy.backoff_max, seed);
        Self {
            policy,
            state: PoolState::Unknown,
            connected: false,
            connecting: false,
            last_progress: None,
            streak: 0,
            verdicts: VecDeque::new(),
            rejected_in_window: 0,
            backoff,
        }
    }

    pub fn state(&self) -> PoolState {
        self.state
    }
    pub fn is_connected(&self) -> bool {
        self.connected
    }
    /// Consecutive failures not yet forgiven by a stable period.
    pub fn failure_streak(&self) -> u32 {
        self.streak
    }

    /// New thresholds (routing change); the state is kept.
    pub fn set_policy(&mut self, policy: HealthPolicy) {
        self.backoff.min = policy.backoff_min;
        self.backoff.max = policy.backoff_max.max(policy.backoff_min);
        self.policy = policy;
        while self.verdicts.len() > self.window_len() {
            self.pop_verdict();
        }
    }

    fn window_len(&self) -> usize {
        usize::try_from(self.policy.reject_window.max(1)).unwrap_or(usize::MAX)
    }

    fn pop_verdict(&mut self) {
        if self.verdicts.pop_front() == Some(true) {
            self.rejected_in_window = self.rejected_in_window.saturating_sub(1);
        }
    }

    fn set(&mut self, to: PoolState) -> Option<Transition> {
        let from = self.state;
        self.state = to;
        (from != to).then_some(Transition { from, to })
    }

    fn fail(&mut self, reason: FailReason, now: Instant) -> Option<Transition> {
        self.streak = self.streak.saturating_add(1);
        let retry_at = now + self.backoff.delay(self.streak);
        self.verdicts.clear();
        self.rejected_in_window = 0;
        let since = match self.state {
            PoolState::Failed { since, .. } => since,
            _ => now,
        };
        let from = self.state;
        self.state = PoolState::Failed {
            reason,
            since,
            retry_at,
        };
        // Failed→Failed with a new retry time is reported too: the engine re-arms its timer.
        Some(Transition {
            from,
            to: self.state,
        })
    }

    /// Feeds one event.
    pub fn on_event(&mut self, event: PoolEvent, now: Instant) -> Option<Transition> {
        match event {
            PoolEvent::ConnectStarted => {
                self.connecting = true;
                None
            }
            PoolEvent::ConnectOk => {
                self.connecting = false;
                self.connected = true;
                self.last_progress = Some(now);
                None
            }
            PoolEvent::ConnectFailed => {
                self.connecting = false;
                self.connected = false;
                self.fail(FailReason::Refused, now)
            }
            PoolEvent::AuthRejected => {
                self.connecting = false;
                self.connected = false;
                self.fail(FailReason::AuthRejected, now)
            }
            PoolEvent::Disconnected => {
                self.connected = false;
                self.connecting = false;
                match self.state {
                    // Already failed (e.g. starved, then the engine closed it): nothing new.
                    PoolState::Failed { .. } => None,
                    _ => self.fail(FailReason::Dropped, now),
                }
            }
            PoolEvent::JobReceived => {
                self.connected = true;
                self.connecting = false;
                self.last_progress = Some(now);
                match self.state {
                    PoolState::Unknown => self.set(PoolState::Up { since: now }),
                    PoolState::Failed { .. } => self.set(PoolState::Recovering { since: now }),
                    PoolState::Up { .. } | PoolState::Recovering { .. } => None,
                }
            }
            PoolEvent::ShareAccepted | PoolEvent::ShareRejected => {
                let rejected = event == PoolEvent::ShareRejected;
                if self.state.is_failed() {
                    // Late verdicts from a session we already gave up on: not evidence either way.
                    return None;
                }
                self.verdicts.push_back(rejected);
                if rejected {
                    self.rejected_in_window = self.rejected_in_window.saturating_add(1);
                }
                while self.verdicts.len() > self.window_len() {
                    self.pop_verdict();
                }
                let n = self.verdicts.len();
                if n >= self.window_len() {
                    let ratio = f64::from(self.rejected_in_window) / n as f64;
                    if ratio >= self.policy.reject_ratio {
                        return self.fail(FailReason::Rejecting, now);
                    }
                }
                None
            }
        }
    }

    /// Advances time: starvation, end of recovery, forgiving the failure streak.
    pub fn tick(&mut self, now: Instant) -> Option<Transition> {
        if self.connected
            && let Some(p) = self.last_progress
            && now.saturating_duration_since(p) >= self.policy.starvation
        {
            // Reset the clock so one starved session is one failure, not one per tick.
            self.last_progress = Some(now);
            return self.fail(FailReason::Starved, now);
        }
        match self.state {
            PoolState::Recovering { since }
                if now.saturating_duration_since(since) >= self.policy.return_after =>
            {
                self.set(PoolState::Up { since: now })
            }
            PoolState::Up { since }
                if self.streak > 0
                    && now.saturating_duration_since(since) >= self.policy.return_after =>
            {
                self.streak = 0;
                None
            }
            _ => None,
        }
    }

    /// Whether the engine should dial this pool now (first connect, or a due retry).
    pub fn should_connect(&self, now: Instant) -> bool {
        if self.connected || self.connecting {
            return false;
        }
        match self.state {
            PoolState::Failed { retry_at, .. } => now >= retry_at,
            // Up/Recovering but not connected cannot last (a disconnect fails the pool); dial anyway.
            _ => true,
        }
    }

    /// Earliest time at which `tick` or `should_connect` may change its answer.
    pub fn next_deadline(&self) -> Option<Instant> {
        let starve = if self.connected {
            self.last_progress.map(|p| p + self.policy.starvation)
        } else {
            None
        };
        let state = match self.state {
            PoolState::Failed { retry_at, .. } if !self.connected && !self.connecting => {
                Some(retry_at)
            }
            PoolState::Recovering { since } => Some(since + self.policy.return_after),
            PoolState::Up { since } if self.streak > 0 => Some(since + self.policy.return_after),
            _ => None,
        };
        match (starve, state) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Where a worker should be, for its ordered pool list and the pools' states (pure).
///
/// The first pool that is up or not yet judged wins; if none, the first recovering pool (better
/// than no work); if every pool failed, `None` (the engine keeps the worker where it is).
pub fn choose_pool<S: AsRef<str>>(list: &[S], state: impl Fn(&str) -> PoolState) -> Option<&str> {
    let names = || list.iter().map(AsRef::as_ref);
    names()
        .find(|n| matches!(state(n), PoolState::Up { .. } | PoolState::Unknown))
        .or_else(|| names().find(|n| matches!(state(n), PoolState::Recovering { .. })))
}

/// Why a worker moved between pools (a metric label via [`SwitchReason::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SwitchReason {
    /// The routing document changed its pool list.
    Routing,
    /// Its pool failed.
    Failover(FailReason),
    /// A more preferred pool recovered.
    Return,
}

impl SwitchReason {
    /// Every reason, so that each pool's switch counters exist (at 0) from startup.
    pub const ALL: [SwitchReason; 7] = [
        SwitchReason::Routing,
        SwitchReason::Failover(FailReason::Refused),
        SwitchReason::Failover(FailReason::Dropped),
        SwitchReason::Failover(FailReason::AuthRejected),
        SwitchReason::Failover(FailReason::Starved),
        SwitchReason::Failover(FailReason::Rejecting),
        SwitchReason::Return,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SwitchReason::Routing => "routing",
            SwitchReason::Failover(FailReason::Refused) => "failover_refused",
            SwitchReason::Failover(FailReason::Dropped) => "failover_dropped",
            SwitchReason::Failover(FailReason::AuthRejected) => "failover_auth_rejected",
            SwitchReason::Failover(FailReason::Starved) => "failover_starved",
            SwitchReason::Failover(FailReason::Rejecting) => "failover_rejecting",
            SwitchReason::Return => "return",
        }
    }
}

/// Health of every pool of a hub.
#[derive(Debug, Clone)]
pub struct PoolHealthBook {
    policy: HealthPolicy,
    seed: u64,
    pools: HashMap<String, PoolHealth>,
}

impl PoolHealthBook {
    /// `seed` makes backoff jitter reproducible (tests); use a random seed in production.
    pub fn new(policy: HealthPolicy, seed: u64) -> Self {
        Self {
            policy,
            seed,
            pools: HashMap::new(),
        }
    }

    fn entry(&mut self, pool: &str) -> &mut PoolHealth {
        if !self.pools.contains_key(pool) {
            // Per-pool seed so pools do not retry in lockstep.
            let seed = self
                .seed
                .wrapping_add(fnv1a(pool.as_bytes()))
                .wrapping_add(self.pools.len() as u64);
            self.pools
                .insert(pool.to_string(), PoolHealth::new(self.policy.clone(), seed));
        }
        // Inserted just above when missing.
        self.pools
            .get_mut(pool)
            .unwrap_or_else(|| unreachable!("pool health entry exists"))
    }

    /// Applies a routing change: new thresholds, new pools start `Unknown`, removed pools are
    /// forgotten. States of kept pools survive (a routing push does not reset failover).
    pub fn sync<'a>(&mut self, policy: HealthPolicy, pools: impl IntoIterator<Item = &'a str>) {
        let keep: std::collections::HashSet<&str> = pools.into_iter().collect();
        self.pools.retain(|name, _| keep.contains(name.as_str()));
        for h in self.pools.values_mut() {
            h.set_policy(policy.clone());
        }
        self.policy = policy;
        for name in keep {
            self.entry(name);
        }
    }

    pub fn on_event(&mut self, pool: &str, event: PoolEvent, now: Instant) -> Option<Transition> {
        self.entry(pool).on_event(event, now)
    }

    /// Ticks every pool; returns the transitions.
    pub fn tick(&mut self, now: Instant) -> Vec<(String, Transition)> {
        let mut out = Vec::new();
        for (name, h) in &mut self.pools {
            if let Some(t) = h.tick(now) {
                out.push((name.clone(), t));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// State of a pool; pools never seen are `Unknown`.
    pub fn state(&self, pool: &str) -> PoolState {
        self.pools
            .get(pool)
            .map_or(PoolState::Unknown, PoolHealth::state)
    }

    pub fn get(&self, pool: &str) -> Option<&PoolHealth> {
        self.pools.get(pool)
    }

    /// Pools to dial now.
    pub fn due_connects(&self, now: Instant) -> Vec<String> {
        let mut v: Vec<String> = self
            .pools
            .iter()
            .filter(|(_, h)| h.should_connect(now))
            .map(|(n, _)| n.clone())
            .collect();
        v.sort();
        v
    }

    pub fn should_connect(&self, pool: &str, now: Instant) -> bool {
        self.pools.get(pool).is_none_or(|h| h.should_connect(now))
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.pools
            .values()
            .filter_map(PoolHealth::next_deadline)
            .min()
    }

    /// The pool a worker with this ordered list should be on now (see [`choose_pool`]).
    pub fn choose<'a, S: AsRef<str>>(&self, list: &'a [S]) -> Option<&'a str> {
        choose_pool(list, |n| self.state(n))
    }

    /// Label for a health-driven move from `from` to `to` within `list`.
    pub fn switch_reason<S: AsRef<str>>(&self, list: &[S], from: &str, to: &str) -> SwitchReason {
        if let PoolState::Failed { reason, .. } = self.state(from) {
            return SwitchReason::Failover(reason);
        }
        let pos = |n: &str| list.iter().position(|p| p.as_ref() == n);
        match (pos(from), pos(to)) {
            (Some(f), Some(t)) if t < f => SwitchReason::Return,
            (None, _) => SwitchReason::Routing,
            _ => SwitchReason::Failover(FailReason::Dropped),
        }
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy() -> HealthPolicy {
        HealthPolicy {
            starvation: Duration::from_secs(10),
            reject_ratio: 0.9,
            reject_window: 10,
            return_after: Duration::from_secs(30),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
        }
    }

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn first_job_makes_a_pool_up() {
        let t0 = Instant::now();
        let mut h = PoolHealth::new(policy(), 1);
        assert_eq!(h.state(), PoolState::Unknown);
        assert!(h.should_connect(t0));
        h.on_event(PoolEvent::ConnectStarted, t0);
        assert!(
            !h.should_connect(t0),
            "no second dial while one is in flight"
        );
        assert_eq!(h.on_event(PoolEvent::ConnectOk, t0), None);
        let t = h
            .on_event(PoolEvent::JobReceived, at(t0, 5))
            .expect("transition");
        assert_eq!(t.to, PoolState::Up { since: at(t0, 5) });
    }

    #[test]
    fn each_failure_kind_fails_the_pool_with_its_reason() {
        let t0 = Instant::now();
        let up = |h: &mut PoolHealth| {
            h.on_event(PoolEvent::ConnectOk, t0);
            h.on_event(PoolEvent::JobReceived, t0);
        };
        let reason = |h: &PoolHealth| match h.state() {
            PoolState::Failed { reason, .. } => Some(reason),
            _ => None,
        };

        let mut h = PoolHealth::new(policy(), 1);
        h.on_event(PoolEvent::ConnectFailed, t0);
        assert_eq!(reason(&h), Some(FailReason::Refused));

        let mut h = PoolHealth::new(policy(), 1);
        up(&mut h);
        h.on_event(PoolEvent::Disconnected, at(t0, 1));
        assert_eq!(reason(&h), Some(FailReason::Dropped));

        let mut h = PoolHealth::new(policy(), 1);
        h.on_event(PoolEvent::ConnectOk, t0);
        h.on_event(PoolEvent::AuthRejected, t0);
        assert_eq!(reason(&h), Some(FailReason::AuthRejected));

        let mut h = PoolHealth::new(policy(), 1);
        up(&mut h);
        assert_eq!(h.tick(at(t0, 9_999)), None);
        h.on_event(PoolEvent::JobReceived, at(t0, 9_000));
        assert_eq!(
            h.tick(at(t0, 18_999)),
            None,
            "a job restarts the starvation clock"
        );
        assert!(h.tick(at(t0, 19_000)).is_some());
        assert_eq!(reason(&h), Some(FailReason::Starved));

        // Connected but silent from the start (never a job) starves too.
        let mut h = PoolHealth::new(policy(), 1);
        h.on_event(PoolEvent::ConnectOk, t0);
        assert!(h.tick(at(t0, 10_000)).is_some());
        assert_eq!(reason(&h), Some(FailReason::Starved));

        let mut h = PoolHealth::new(policy(), 1);
        up(&mut h);
        for _ in 0..8 {
            h.on_event(PoolEvent::ShareRejected, t0);
        }
        h.on_event(PoolEvent::ShareAccepted, t0);
        assert!(!h.state().is_failed(), "window of 10 not full yet");
        h.on_event(PoolEvent::ShareRejected, t0);
        assert_eq!(reason(&h), Some(FailReason::Rejecting), "9 of 10 rejected");
    }

    #[test]
    fn duplicates_are_not_pool_trouble() {
        use crate::protocol::error_code;
        assert!(!rejection_is_pool_trouble(Some(error_code::DUPLICATE)));
        for code in [
            None,
            Some(error_code::OTHER),
            Some(error_code::JOB_NOT_FOUND),
            Some(error_code::LOW_DIFFICULTY),
            Some(error_code::UNAUTHORIZED),
        ] {
            assert!(rejection_is_pool_trouble(code), "{code:?}");
        }
    }

    #[test]
    fn occasional_rejects_do_not_fail_a_pool() {
        let t0 = Instant::now();
        let mut h = PoolHealth::new(policy(), 1);
        h.on_event(PoolEvent::JobReceived, t0);
        for i in 0..1000 {
            let ev = if i % 3 == 0 {
                PoolEvent::ShareRejected
            } else {
                PoolEvent::ShareAccepted
            };
            assert_eq!(h.on_event(ev, t0), None);
        }
        assert!(matches!(h.state(), PoolState::Up { .. }));
    }

    #[test]
    fn recovery_needs_return_after_of_health() {
        let t0 = Instant::now();
        let mut h = PoolHealth::new(policy(), 7);
        h.on_event(PoolEvent::JobReceived, t0);
        h.on_event(PoolEvent::Disconnected, at(t0, 1000));
        let PoolState::Failed { retry_at, .. } = h.state() else {
            panic!("failed")
        };
        assert!(
            retry_at >= at(t0, 1050) && retry_at <= at(t0, 1100),
            "first backoff in [min/2, min]"
        );
        assert!(!h.should_connect(at(t0, 1000)));
        assert!(h.should_connect(retry_at));
        h.on_event(PoolEvent::ConnectStarted, retry_at);
        h.on_event(PoolEvent::ConnectOk, retry_at);
        h.on_event(PoolEvent::JobReceived, at(t0, 2000));
        assert_eq!(
            h.state(),
            PoolState::Recovering {
                since: at(t0, 2000)
            }
        );
        for ms in [2000, 10_000, 31_999] {
            // Jobs keep it from starving; still not trusted before 30 s.
            h.on_event(PoolEvent::JobReceived, at(t0, ms));
            assert_eq!(h.tick(at(t0, ms)), None);
        }
        let t = h.tick(at(t0, 32_000)).expect("up again");
        assert_eq!(
            t.to,
            PoolState::Up {
                since: at(t0, 32_000)
            }
        );
        assert_eq!(
            h.failure_streak(),
            1,
            "streak forgiven only after a stable period"
        );
        h.on_event(PoolEvent::JobReceived, at(t0, 55_000));
        h.tick(at(t0, 62_000));
        assert_eq!(h.failure_streak(), 0);
    }

    #[test]
    fn a_flapping_pool_backs_off_longer_each_time() {
        let t0 = Instant::now();
        let mut h = PoolHealth::new(policy(), 3);
        let mut now = t0;
        let mut delays = Vec::new();
        for _ in 0..10 {
            h.on_event(PoolEvent::ConnectFailed, now);
            let PoolState::Failed { retry_at, .. } = h.state() else {
                panic!("failed")
            };
            delays.push(retry_at - now);
            now = retry_at;
        }
        // Caps: 100ms, 200ms, ..., 5s; each delay in [cap/2, cap].
        for (i, d) in delays.iter().enumerate() {
            let cap = Duration::from_millis(100 * (1 << i)).min(Duration::from_secs(5));
            assert!(
                *d >= cap / 2 && *d <= cap,
                "attempt {i}: {d:?} vs cap {cap:?}"
            );
        }
    }

    #[test]
    fn choose_prefers_up_then_unknown_order_then_recovering() {
        let t0 = Instant::now();
        let failed = PoolState::Failed {
            reason: FailReason::Dropped,
            since: t0,
            retry_at: t0,
        };
        let rec = PoolState::Recovering { since: t0 };
        let up = PoolState::Up { since: t0 };
        let list = ["a", "b", "c"];
        let pick = |sa, sb, sc| {
            choose_pool(&list, |n| match n {
                "a" => sa,
                "b" => sb,
                _ => sc,
            })
        };
        assert_eq!(pick(up, up, up), Some("a"));
        assert_eq!(pick(failed, up, up), Some("b"));
        assert_eq!(
            pick(rec, up, up),
            Some("b"),
            "hysteresis: not back to a yet"
        );
        assert_eq!(
            pick(rec, failed, failed),
            Some("a"),
            "recovering beats nothing"
        );
        assert_eq!(
            pick(PoolState::Unknown, up, up),
            Some("a"),
            "wait for the preferred pool's first connect"
        );
        assert_eq!(pick(failed, failed, failed), None);
    }

    #[test]
    fn book_switch_reasons_and_sync() {
        let t0 = Instant::now();
        let p = HealthPolicy {
            starvation: Duration::from_secs(120),
            ..policy()
        };
        let mut b = PoolHealthBook::new(p.clone(), 42);
        b.sync(p.clone(), ["a", "b"]);
        b.on_event("a", PoolEvent::JobReceived, t0);
        b.on_event("b", PoolEvent::JobReceived, t0);
        let list = ["a", "b"];
        assert_eq!(b.choose(&list), Some("a"));
        b.on_event("a", PoolEvent::Disconnected, at(t0, 10));
        assert_eq!(b.choose(&list), Some("b"));
        assert_eq!(
            b.switch_reason(&list, "a", "b"),
            SwitchReason::Failover(FailReason::Dropped)
        );
        assert_eq!(b.due_connects(at(t0, 10)), Vec::<String>::new());
        assert_eq!(b.due_connects(at(t0, 200)), vec!["a".to_string()]);
        b.on_event("a", PoolEvent::JobReceived, at(t0, 300));
        assert_eq!(b.choose(&list), Some("b"));
        let ts = b.tick(at(t0, 30_300));
        assert_eq!(ts.len(), 1);
        assert_eq!(b.choose(&list), Some("a"));
        assert_eq!(b.switch_reason(&list, "b", "a"), SwitchReason::Return);
        assert_eq!(SwitchReason::Return.as_str(), "return");
        // A routing change keeps a's state, drops b, adds c as unknown.
        b.sync(p, ["a", "c"]);
        assert!(matches!(b.state("a"), PoolState::Up { .. }));
        assert!(b.get("b").is_none());
        assert_eq!(b.state("c"), PoolState::Unknown);
    }

    #[test]
    fn backoff_is_deterministic_per_seed() {
        let seq = |seed| {
            let mut b = Backoff::new(Duration::from_millis(250), Duration::from_secs(30), seed);
            (1..20).map(|n| b.delay(n)).collect::<Vec<_>>()
        };
        assert_eq!(seq(9), seq(9));
        assert_ne!(seq(9), seq(10));
    }

    #[derive(Debug, Clone)]
    enum Step {
        Ev(PoolEvent),
        Wait(u64),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            prop::sample::select(vec![
                PoolEvent::ConnectStarted,
                PoolEvent::ConnectOk,
                PoolEvent::ConnectFailed,
                PoolEvent::AuthRejected,
                PoolEvent::Disconnected,
                PoolEvent::JobReceived,
                PoolEvent::ShareAccepted,
                PoolEvent::ShareRejected,
            ])
            .prop_map(Step::Ev),
            (0u64..40_000).prop_map(Step::Wait),
        ]
    }

    proptest! {
        // Failed never jumps to Up, and Recovering→Up only after return_after; never panics.
        #[test]
        fn hysteresis_holds_for_any_history(steps in prop::collection::vec(step(), 0..200), seed in any::<u64>()) {
            let p = policy();
            let t0 = Instant::now();
            let mut now = t0;
            let mut h = PoolHealth::new(p.clone(), seed);
            for s in steps {
                let t = match s {
                    Step::Ev(e) => h.on_event(e, now),
                    Step::Wait(ms) => { now += Duration::from_millis(ms); h.tick(now) }
                };
                if let Some(Transition { from, to: PoolState::Up { .. } }) = t {
                    match from {
                        PoolState::Unknown => {}
                        PoolState::Recovering { since } => prop_assert!(now - since >= p.return_after),
                        other => prop_assert!(false, "{other:?} -> Up"),
                    }
                }
                if let PoolState::Failed { retry_at, since, .. } = h.state() {
                    prop_assert!(retry_at <= now + p.backoff_max);
                    prop_assert!(since <= now);
                }
            }
        }

        // choose never returns a failed pool, and returns one whenever any pool is not failed.
        #[test]
        fn choose_never_picks_failed(states in prop::collection::vec(0u8..4, 1..8)) {
            let t0 = Instant::now();
            let names: Vec<String> = (0..states.len()).map(|i| format!("p{i}")).collect();
            let st = |n: &str| {
                let i: usize = n.get(1..).and_then(|s| s.parse().ok()).unwrap_or(0);
                match states.get(i).copied().unwrap_or(0) {
                    0 => PoolState::Unknown,
                    1 => PoolState::Up { since: t0 },
                    2 => PoolState::Recovering { since: t0 },
                    _ => PoolState::Failed { reason: FailReason::Refused, since: t0, retry_at: t0 },
                }
            };
            let c = choose_pool(&names, st);
            let any_ok = states.iter().any(|s| *s < 3);
            prop_assert_eq!(c.is_some(), any_ok);
            if let Some(c) = c {
                prop_assert!(!st(c).is_failed());
                // Nothing up/unknown before it in the list.
                let idx = names.iter().position(|n| n == c).unwrap_or(0);
                if matches!(st(c), PoolState::Recovering { .. }) {
                    prop_assert!(!states.iter().any(|s| *s < 2));
                }
                for s in states.get(..idx).unwrap_or(&[]) {
                    prop_assert!(*s >= 2);
                }
            }
        }

        #[test]
        fn backoff_within_bounds(min_ms in 1u64..5_000, extra in 0u64..100_000, attempt in 0u32..100, seed in any::<u64>()) {
            let min = Duration::from_millis(min_ms);
            let max = min + Duration::from_millis(extra);
            let mut b = Backoff::new(min, max, seed);
            let d = b.delay(attempt);
            prop_assert!(d <= max);
            prop_assert!(d >= min / 2);
        }
    }
}
