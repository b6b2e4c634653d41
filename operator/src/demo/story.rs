//! The demo's scripted story: which incidents happen, when each is injected, and how the status
//! tells that it was detected and that service was restored. Pure: the driver feeds status
//! snapshots and elapsed times; everything here is decided from them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::crd::Role;
use crate::local::store::{StatusDocument, WorkerRow};

/// The five incidents of the story.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum IncidentKind {
    /// A rented miner's connection drops and stays down.
    MinerDies,
    /// A miner drops to half speed (fans, a hash board).
    MinerDegrades,
    /// The dead miner comes back.
    MinerReturns,
    /// The customer's primary pool refuses and drops every session.
    PoolDies,
    /// The primary pool accepts connections again.
    PoolRecovers,
}

/// Who plays which part (names from `examples/demo/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cast {
    pub m2m_contract: String,
    pub threshold_contract: String,
    /// The rented miner that dies and returns.
    pub rented: String,
    /// The Threshold contract's miner that degrades.
    pub degrading: String,
    pub primary_pool: String,
    pub backup_pool: String,
    pub threshold_pool: String,
}

impl Default for Cast {
    fn default() -> Self {
        Cast {
            m2m_contract: "acme-m2m".into(),
            threshold_contract: "borealis-th".into(),
            rented: "acme-02".into(),
            degrading: "bor-02".into(),
            primary_pool: "acme-primary".into(),
            backup_pool: "acme-backup".into(),
            threshold_pool: "borealis-pool".into(),
        }
    }
}

impl IncidentKind {
    /// In story order.
    pub const ALL: [IncidentKind; 5] = [
        IncidentKind::MinerDies,
        IncidentKind::MinerDegrades,
        IncidentKind::MinerReturns,
        IncidentKind::PoolDies,
        IncidentKind::PoolRecovers,
    ];

    /// What happens, for people.
    pub fn describe(self, cast: &Cast) -> String {
        match self {
            IncidentKind::MinerDies => format!(
                "rented miner {} dies (connection drops) → a spare takes over for {}",
                cast.rented, cast.m2m_contract
            ),
            IncidentKind::MinerDegrades => format!(
                "miner {} degrades to half speed → {} gets a spare",
                cast.degrading, cast.threshold_contract
            ),
            IncidentKind::MinerReturns => format!(
                "{} returns → healthy for minDwell → given back, spare returns to the house",
                cast.rented
            ),
            IncidentKind::PoolDies => format!(
                "pool {} dies → the hub moves its workers to {}",
                cast.primary_pool, cast.backup_pool
            ),
            IncidentKind::PoolRecovers => format!(
                "pool {} recovers → workers go back to it",
                cast.primary_pool
            ),
        }
    }

    /// Short name for tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            IncidentKind::MinerDies => "miner-dies",
            IncidentKind::MinerDegrades => "miner-degrades",
            IncidentKind::MinerReturns => "miner-returns",
            IncidentKind::PoolDies => "pool-dies",
            IncidentKind::PoolRecovers => "pool-recovers",
        }
    }
}

fn serving<'a>(doc: &'a StatusDocument, contract: &'a str) -> impl Iterator<Item = &'a WorkerRow> {
    doc.workers.iter().filter(move |w| {
        w.contract.as_deref() == Some(contract)
            && matches!(w.role, Some(Role::Primary | Role::Substitute))
    })
}

fn on_pool(w: &WorkerRow, pools: &[&str]) -> bool {
    w.pool.as_deref().is_some_and(|p| pools.contains(&p))
}

fn pool_up(doc: &StatusDocument, pool: &str) -> Option<bool> {
    doc.pools.iter().find(|p| p.name == pool).map(|p| p.up)
}

/// Whether the status shows that the scheduler or hub noticed the incident.
pub fn detected(kind: IncidentKind, cast: &Cast, doc: &StatusDocument) -> bool {
    let phase = |w: &str| doc.worker(w).map(|r| r.phase.as_str());
    match kind {
        IncidentKind::MinerDies => phase(&cast.rented) == Some("Dead"),
        IncidentKind::MinerDegrades => phase(&cast.degrading) == Some("Degraded"),
        IncidentKind::MinerReturns => phase(&cast.rented) == Some("Healthy"),
        IncidentKind::PoolDies => {
            pool_up(doc, &cast.primary_pool) == Some(false)
                || serving(doc, &cast.m2m_contract)
                    .any(|w| w.pool.as_deref() == Some(cast.backup_pool.as_str()))
        }
        IncidentKind::PoolRecovers => pool_up(doc, &cast.primary_pool) == Some(true),
    }
}

/// Whether service is back to what the contract promises after the incident.
pub fn restored(kind: IncidentKind, cast: &Cast, doc: &StatusDocument) -> bool {
    let customer_pools = [cast.primary_pool.as_str(), cast.backup_pool.as_str()];
    match kind {
        IncidentKind::MinerDies => serving(doc, &cast.m2m_contract).any(|w| {
            w.role == Some(Role::Substitute)
                && w.replaces.as_deref() == Some(cast.rented.as_str())
                && w.phase == "Healthy"
                && on_pool(w, &customer_pools)
        }),
        IncidentKind::MinerDegrades => serving(doc, &cast.threshold_contract).any(|w| {
            w.role == Some(Role::Substitute)
                && w.phase == "Healthy"
                && on_pool(w, &[cast.threshold_pool.as_str()])
        }),
        IncidentKind::MinerReturns => {
            let back = doc.worker(&cast.rented).is_some_and(|w| {
                w.contract.as_deref() == Some(cast.m2m_contract.as_str())
                    && w.role == Some(Role::Primary)
                    && on_pool(w, &customer_pools)
            });
            let still_covered = doc
                .workers
                .iter()
                .any(|w| w.replaces.as_deref() == Some(cast.rented.as_str()));
            back && !still_covered
        }
        IncidentKind::PoolDies => {
            let mut any = false;
            let all = serving(doc, &cast.m2m_contract)
                .filter(|w| w.connected == Some(true))
                .all(|w| {
                    any = true;
                    w.pool.as_deref() == Some(cast.backup_pool.as_str())
                });
            any && all
        }
        IncidentKind::PoolRecovers => {
            let mut any = false;
            let all = serving(doc, &cast.m2m_contract)
                .filter(|w| w.connected == Some(true))
                .all(|w| {
                    any = true;
                    w.pool.as_deref() == Some(cast.primary_pool.as_str())
                });
            any && all
        }
    }
}

/// One incident's timeline, measured from its injection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IncidentReport {
    pub kind: IncidentKind,
    pub name: String,
    pub description: String,
    /// Seconds after the story started (warm-up done) that it was injected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub injected_at_seconds: Option<f64>,
    /// Seconds from injection until the status showed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detected_after_seconds: Option<f64>,
    /// Seconds from injection until service was as promised again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_after_seconds: Option<f64>,
    /// What the scheduler did (e.g. which spare was lent).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub outcome: String,
}

impl IncidentReport {
    pub fn new(kind: IncidentKind, cast: &Cast) -> Self {
        IncidentReport {
            kind,
            name: kind.name().into(),
            description: kind.describe(cast),
            injected_at_seconds: None,
            detected_after_seconds: None,
            restored_after_seconds: None,
            outcome: String::new(),
        }
    }

    pub fn handled(&self) -> bool {
        self.injected_at_seconds.is_some()
            && self.detected_after_seconds.is_some()
            && self.restored_after_seconds.is_some()
    }

    /// Records detection and restoration seen in `doc` at `since_injection`; returns whether
    /// anything new happened.
    pub fn observe(
        &mut self,
        cast: &Cast,
        doc: &StatusDocument,
        since_injection: Duration,
    ) -> bool {
        if self.injected_at_seconds.is_none() {
            return false;
        }
        let t = since_injection.as_secs_f64();
        let mut changed = false;
        if self.detected_after_seconds.is_none() && detected(self.kind, cast, doc) {
            self.detected_after_seconds = Some(t);
            changed = true;
        }
        if self.detected_after_seconds.is_some()
            && self.restored_after_seconds.is_none()
            && restored(self.kind, cast, doc)
        {
            self.restored_after_seconds = Some(t);
            self.outcome = outcome(self.kind, cast, doc);
            changed = true;
        }
        changed
    }
}

fn outcome(kind: IncidentKind, cast: &Cast, doc: &StatusDocument) -> String {
    match kind {
        IncidentKind::MinerDies => serving(doc, &cast.m2m_contract)
            .find(|w| w.replaces.as_deref() == Some(cast.rented.as_str()))
            .map(|w| {
                format!(
                    "{} lent to {} in place of {} (mining to {})",
                    w.name,
                    cast.m2m_contract,
                    cast.rented,
                    w.pool.as_deref().unwrap_or("-")
                )
            })
            .unwrap_or_default(),
        IncidentKind::MinerDegrades => {
            let subs: Vec<&str> = serving(doc, &cast.threshold_contract)
                .filter(|w| w.role == Some(Role::Substitute))
                .map(|w| w.name.as_str())
                .collect();
            format!("{} lent to {}", subs.join(", "), cast.threshold_contract)
        }
        IncidentKind::MinerReturns => format!(
            "{} serves {} again; the spare went back to the house pool",
            cast.rented, cast.m2m_contract
        ),
        IncidentKind::PoolDies => format!(
            "{} workers of {} on {} without reconnecting",
            serving(doc, &cast.m2m_contract).count(),
            cast.m2m_contract,
            cast.backup_pool
        ),
        IncidentKind::PoolRecovers => format!(
            "{} workers of {} back on {}",
            serving(doc, &cast.m2m_contract).count(),
            cast.m2m_contract,
            cast.primary_pool
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::store::PoolRow;

    fn w(name: &str, phase: &str, contract: Option<&str>, role: &str, pool: &str) -> WorkerRow {
        WorkerRow {
            name: name.into(),
            phase: phase.into(),
            connected: Some(phase != "Dead"),
            contract: contract.map(Into::into),
            role: Some(role.parse().expect("a role name")),
            pool: Some(pool.into()),
            owner: "house".into(),
            ..WorkerRow::default()
        }
    }

    #[test]
    fn a_dead_miner_is_restored_only_by_a_healthy_substitute_on_the_customer_pool() {
        let cast = Cast::default();
        let mut doc = StatusDocument {
            workers: vec![
                w(
                    "acme-01",
                    "Healthy",
                    Some("acme-m2m"),
                    "Primary",
                    "acme-primary",
                ),
                w("acme-02", "Dead", Some("acme-m2m"), "Spare", "house-pool"),
                w("spare-01", "Healthy", None, "Spare", "house-pool"),
            ],
            ..StatusDocument::default()
        };
        let mut r = IncidentReport::new(IncidentKind::MinerDies, &cast);
        r.injected_at_seconds = Some(2.0);
        assert!(r.observe(&cast, &doc, Duration::from_secs(5)));
        assert_eq!(r.detected_after_seconds, Some(5.0));
        assert!(r.restored_after_seconds.is_none());
        // Lent, but the hub has not moved it yet: not restored.
        doc.workers[2] = WorkerRow {
            replaces: Some("acme-02".into()),
            ..w(
                "spare-01",
                "Healthy",
                Some("acme-m2m"),
                "Substitute",
                "house-pool",
            )
        };
        r.observe(&cast, &doc, Duration::from_secs(6));
        assert!(r.restored_after_seconds.is_none());
        doc.workers[2].pool = Some("acme-primary".into());
        r.observe(&cast, &doc, Duration::from_secs(7));
        assert_eq!(r.restored_after_seconds, Some(7.0));
        assert!(r.handled());
        assert!(
            r.outcome.contains("spare-01 lent to acme-m2m"),
            "{}",
            r.outcome
        );
    }

    #[test]
    fn pool_incidents_follow_the_serving_workers_pools() {
        let cast = Cast::default();
        let mut doc = StatusDocument {
            workers: vec![
                w(
                    "acme-01",
                    "Healthy",
                    Some("acme-m2m"),
                    "Primary",
                    "acme-backup",
                ),
                w(
                    "acme-02",
                    "Healthy",
                    Some("acme-m2m"),
                    "Primary",
                    "acme-primary",
                ),
                w("house-01", "Healthy", None, "Spare", "house-pool"),
            ],
            pools: vec![PoolRow {
                name: "acme-primary".into(),
                up: false,
                ..PoolRow::default()
            }],
            ..StatusDocument::default()
        };
        assert!(detected(IncidentKind::PoolDies, &cast, &doc));
        assert!(!restored(IncidentKind::PoolDies, &cast, &doc));
        doc.workers[1].pool = Some("acme-backup".into());
        assert!(restored(IncidentKind::PoolDies, &cast, &doc));
        assert!(!detected(IncidentKind::PoolRecovers, &cast, &doc));
        doc.pools[0].up = true;
        assert!(detected(IncidentKind::PoolRecovers, &cast, &doc));
        assert!(!restored(IncidentKind::PoolRecovers, &cast, &doc));
        for wk in &mut doc.workers[..2] {
            wk.pool = Some("acme-primary".into());
        }
        assert!(restored(IncidentKind::PoolRecovers, &cast, &doc));
    }
}
