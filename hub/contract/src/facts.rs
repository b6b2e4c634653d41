//! Per-worker and per-pool facts: what the hub knows about each worker from its shares.
//!
//! Pure data (serde), the contract with the operator's health code: local mode reads it in process
//! (`hashsched_hub::HubHandle::facts`), the Kubernetes operator reads the same numbers from
//! `/metrics` (names in [`crate::metric_names`]). Every share a miner submits lands in exactly one
//! [`ShareResult`] bucket once its fate is known; until the pool answers a forwarded share it is
//! `pending`, so at any instant `submitted == buckets.total() + pending` (conservation).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::metric_names::result as label;

/// The final bucket of one submitted share. Exactly one per share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShareResult {
    /// Valid locally, met the pool's target, forwarded, accepted by the pool.
    Accepted,
    /// Valid locally at the miner-facing difficulty but below the pool's target: not forwarded,
    /// counted only as monitoring signal.
    BelowTarget,
    /// Valid locally, forwarded, rejected by the pool (the pool's error is logged).
    Rejected,
    /// Valid locally, forwarded, but the pool never answered (session lost or answer timed out).
    Lost,
    /// Job unknown, or superseded and the share proves no work (error 21).
    Stale,
    /// Valid work, late for a job of an upstream session the miner was moved away from (routing
    /// change, failover, replaced session) that can no longer be forwarded (error 21): caused by
    /// the hub's switch, not a worker fault; counts as the worker's work.
    SwitchStale,
    /// Valid work on a job a later clean job of its pool session replaced (a new block, or the
    /// pool restarting work) by the time the share arrived (error 21): caused by the pool's job
    /// change, not a worker fault; counts as the worker's work.
    JobChangeStale,
    /// Same (job, extranonce2, ntime, nonce, version) seen before (error 22).
    Duplicate,
    /// Does not meet the miner-facing difficulty, bad version bits, malformed fields (errors 20/23).
    Invalid,
}

impl ShareResult {
    pub const ALL: [ShareResult; 9] = [
        ShareResult::Accepted,
        ShareResult::BelowTarget,
        ShareResult::Rejected,
        ShareResult::Lost,
        ShareResult::Stale,
        ShareResult::SwitchStale,
        ShareResult::JobChangeStale,
        ShareResult::Duplicate,
        ShareResult::Invalid,
    ];

    /// The `result` label value on `/metrics`.
    pub fn label(self) -> &'static str {
        match self {
            ShareResult::Accepted => label::ACCEPTED,
            ShareResult::BelowTarget => label::BELOW_TARGET,
            ShareResult::Rejected => label::REJECTED,
            ShareResult::Lost => label::LOST,
            ShareResult::Stale => label::STALE,
            ShareResult::SwitchStale => label::SWITCH_STALE,
            ShareResult::JobChangeStale => label::JOB_CHANGE_STALE,
            ShareResult::Duplicate => label::DUPLICATE,
            ShareResult::Invalid => label::INVALID,
        }
    }

    /// Whether the hub judged the share valid (it proves work at the miner-facing difficulty).
    pub fn is_locally_valid(self) -> bool {
        matches!(
            self,
            ShareResult::Accepted
                | ShareResult::BelowTarget
                | ShareResult::Rejected
                | ShareResult::Lost
        )
    }

    /// Whether the share is work the miner really did at its difficulty: the locally valid
    /// buckets plus valid shares that came too late only because the hub or the pool changed
    /// jobs. Health and hashrate count these; the pool-accepted figure stays separate.
    pub fn is_valid_work(self) -> bool {
        self.is_locally_valid()
            || matches!(self, ShareResult::SwitchStale | ShareResult::JobChangeStale)
    }
}

/// One value per [`ShareResult`] bucket (counts or difficulty sums).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ShareBuckets<T> {
    pub accepted: T,
    pub below_target: T,
    pub rejected: T,
    pub lost: T,
    pub stale: T,
    pub switch_stale: T,
    pub job_change_stale: T,
    pub duplicate: T,
    pub invalid: T,
}

/// What a bucket holds: a share count or a difficulty sum. Counts add saturating: the operator
/// builds buckets from every hub pod's page, and a page with absurd counters (or the same
/// series twice) must give a large number, not a wrapped one or a panic.
pub trait BucketValue: Copy + Default {
    fn plus(self, other: Self) -> Self;
}

impl BucketValue for u64 {
    fn plus(self, other: Self) -> Self {
        self.saturating_add(other)
    }
}

impl BucketValue for f64 {
    fn plus(self, other: Self) -> Self {
        self + other
    }
}

impl<T: BucketValue> ShareBuckets<T> {
    pub fn get(&self, r: ShareResult) -> T {
        match r {
            ShareResult::Accepted => self.accepted,
            ShareResult::BelowTarget => self.below_target,
            ShareResult::Rejected => self.rejected,
            ShareResult::Lost => self.lost,
            ShareResult::Stale => self.stale,
            ShareResult::SwitchStale => self.switch_stale,
            ShareResult::JobChangeStale => self.job_change_stale,
            ShareResult::Duplicate => self.duplicate,
            ShareResult::Invalid => self.invalid,
        }
    }

    pub fn add(&mut self, r: ShareResult, v: T) {
        let slot = match r {
            ShareResult::Accepted => &mut self.accepted,
            ShareResult::BelowTarget => &mut self.below_target,
            ShareResult::Rejected => &mut self.rejected,
            ShareResult::Lost => &mut self.lost,
            ShareResult::Stale => &mut self.stale,
            ShareResult::SwitchStale => &mut self.switch_stale,
            ShareResult::JobChangeStale => &mut self.job_change_stale,
            ShareResult::Duplicate => &mut self.duplicate,
            ShareResult::Invalid => &mut self.invalid,
        };
        *slot = slot.plus(v);
    }

    /// Sum over all buckets.
    pub fn total(&self) -> T {
        ShareResult::ALL
            .iter()
            .fold(T::default(), |acc, r| acc.plus(self.get(*r)))
    }

    /// Sum over the locally valid buckets (accepted, below target, rejected, lost).
    pub fn locally_valid(&self) -> T {
        ShareResult::ALL
            .iter()
            .filter(|r| r.is_locally_valid())
            .fold(T::default(), |acc, r| acc.plus(self.get(*r)))
    }

    /// Sum over the buckets of valid work ([`ShareResult::is_valid_work`]).
    pub fn valid_work(&self) -> T {
        ShareResult::ALL
            .iter()
            .filter(|r| r.is_valid_work())
            .fold(T::default(), |acc, r| acc.plus(self.get(*r)))
    }
}

/// Assignment labels from the routing document (who this worker serves right now).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AssignmentLabels {
    pub contract: Option<String>,
    pub customer: Option<String>,
    /// The worker's part in it, as the routing document says.
    pub role: Option<crate::routing::Role>,
}

/// Hashrate over one window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WindowHashrate {
    pub window_seconds: u64,
    /// Hashes per second from valid work in the window ([`ShareResult::is_valid_work`]):
    /// `Σ difficulty · 2^32 / window`.
    pub hashes_per_second: f64,
    /// Shares of valid work in the window (for the health code's Poisson tests).
    pub shares: u64,
}

/// Everything the hub knows about one worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerFacts {
    /// The full name the miner authorized as (`user.worker`).
    pub worker: String,
    /// At least one miner connection has this worker authorized right now.
    pub connected: bool,
    /// Final share counts per bucket since the hub started (or the worker first appeared).
    pub shares: ShareBuckets<u64>,
    /// Sum of the miner-facing difficulty of those shares, per bucket.
    pub difficulty: ShareBuckets<f64>,
    /// Forwarded shares still waiting for the pool's verdict.
    pub pending: u64,
    /// Hashrate per configured window (default 60 s, 300 s, 900 s).
    pub hashrate: Vec<WindowHashrate>,
    /// Unix time (seconds) of the last share of valid work.
    pub last_share_unix: Option<f64>,
    /// Unix time (seconds) when the worker last connected or disconnected.
    pub last_change_unix: Option<f64>,
    /// Miner-facing difficulty now.
    pub miner_difficulty: Option<f64>,
    /// Name of the pool the worker's shares go to now.
    pub pool: Option<String>,
    pub labels: AssignmentLabels,
}

impl WorkerFacts {
    /// Every share submitted by this worker: all final buckets plus pending.
    pub fn submitted(&self) -> u64 {
        self.shares.total().saturating_add(self.pending)
    }

    /// Hashrate over the window of exactly `seconds`, if configured.
    pub fn hashrate_over(&self, seconds: u64) -> Option<f64> {
        self.hashrate
            .iter()
            .find(|w| w.window_seconds == seconds)
            .map(|w| w.hashes_per_second)
    }
}

/// What the hub knows about one configured pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolFacts {
    pub pool: String,
    /// At least one upstream session is subscribed and authorized.
    pub up: bool,
    pub sessions: u64,
    pub workers: u64,
    /// Smoothed submit round-trip time, seconds.
    pub latency_seconds: Option<f64>,
    /// Pool difficulty of the newest session.
    pub difficulty: Option<f64>,
    /// Forwarded shares by pool verdict (accepted, rejected, lost).
    pub accepted: u64,
    pub rejected: u64,
    pub lost: u64,
    /// Times miners were moved onto this pool (routing change, failover or return).
    pub switches: u64,
    /// The same moves by reason (`hashsched_hub::pool_health::SwitchReason::as_str`); sums to
    /// `switches`.
    #[serde(default)]
    pub switches_by_reason: BTreeMap<String, u64>,
    /// Upstream connection attempts that failed or sessions that dropped.
    pub disconnects: u64,
    /// Why the last of those happened (`connect ...: Connection refused`, `TLS handshake:
    /// invalid peer certificate: UnknownIssuer`, `pool closed the connection`), and when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_unix: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `exposition` fuzz target: a hub page whose counters summed past `u64::MAX`
    /// made the operator's facts overflow (a panic with overflow checks, a wrapped count
    /// without). Counts saturate.
    #[test]
    fn share_counts_saturate_instead_of_overflowing() {
        let mut b = ShareBuckets::<u64>::default();
        b.add(ShareResult::Accepted, u64::MAX - 1);
        b.add(ShareResult::Accepted, 5);
        b.add(ShareResult::Invalid, u64::MAX);
        assert_eq!(b.accepted, u64::MAX);
        assert_eq!(b.total(), u64::MAX);
        assert_eq!(b.valid_work(), u64::MAX);
        let mut d = ShareBuckets::<f64>::default();
        d.add(ShareResult::Accepted, 1.5);
        d.add(ShareResult::Accepted, 2.0);
        assert_eq!(d.total(), 3.5);
    }

    #[test]
    fn buckets_total_and_valid() {
        let mut b = ShareBuckets::<u64>::default();
        for (i, r) in ShareResult::ALL.iter().enumerate() {
            b.add(*r, i as u64 + 1);
        }
        assert_eq!(b.total(), 45);
        assert_eq!(b.locally_valid(), 1 + 2 + 3 + 4);
        assert_eq!(b.valid_work(), 1 + 2 + 3 + 4 + 6 + 7);
        let labels: std::collections::HashSet<_> =
            ShareResult::ALL.iter().map(|r| r.label()).collect();
        assert_eq!(labels.len(), ShareResult::ALL.len());
    }

    #[test]
    fn facts_serde_round_trip() {
        let f = WorkerFacts {
            worker: "acct.w1".into(),
            connected: true,
            shares: ShareBuckets::default(),
            difficulty: ShareBuckets::default(),
            pending: 2,
            hashrate: vec![WindowHashrate {
                window_seconds: 60,
                hashes_per_second: 1e12,
                shares: 30,
            }],
            last_share_unix: Some(1.7e9),
            last_change_unix: None,
            miner_difficulty: Some(1024.0),
            pool: Some("p".into()),
            labels: AssignmentLabels::default(),
        };
        let j = serde_json::to_string(&f).unwrap();
        assert_eq!(serde_json::from_str::<WorkerFacts>(&j).unwrap(), f);
        assert_eq!(f.hashrate_over(60), Some(1e12));
        assert_eq!(f.submitted(), 2);
    }
}
