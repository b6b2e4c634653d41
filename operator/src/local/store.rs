//! The in-memory "API server" of local mode: the last good manifests plus the status local mode
//! writes for each object, and the rows `hashsched status` and `GET /status` show.
//!
//! Status is written the way the Kubernetes operator writes it (the CRDs' status types), from
//! one decision cycle's output and the hub's facts: a pure function, so a restart that reloads
//! the statuses from the state file sees exactly what it saw before. The rows are built from
//! objects *with* status, so the same code renders a cluster's Workers and RentalContracts.

use std::collections::BTreeMap;

use hashsched_hub::facts::{PoolFacts, WorkerFacts};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::{Deserialize, Serialize};

use super::manifests::Manifests;
use crate::crd::common::{AssignmentRecord, push_history};
use crate::crd::conditions::{self, new_condition, set_condition};
use crate::crd::{
    AssignedWorker, AssignmentRole, RentalContract, RentalContractStatus, Uptime, Worker,
    WorkerHashrate, WorkerStatus,
};
use crate::quantity::{Hashrate, Percentage};
use crate::scheduler::allocation::Role;
use crate::scheduler::cycle::{ContractReport, CycleOutput, WorkerReport};

/// Longest free text kept in a status message (the CRD's bound).
const MAX_MESSAGE: usize = 1024;

/// The status local mode keeps for each object, by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Statuses {
    #[serde(default)]
    pub workers: BTreeMap<String, WorkerStatus>,
    #[serde(default)]
    pub contracts: BTreeMap<String, RentalContractStatus>,
}

/// Manifests (spec) and statuses together: what `kubectl get` would show.
#[derive(Debug, Clone, Default)]
pub struct Store {
    pub manifests: Manifests,
    pub statuses: Statuses,
}

impl Store {
    /// The Workers with their status attached (input of the decision cycle and of the rows).
    pub fn workers(&self) -> Vec<Worker> {
        self.manifests
            .workers
            .iter()
            .map(|w| {
                let mut w = w.clone();
                let name = w.metadata.name.clone().unwrap_or_default();
                w.status = self.statuses.workers.get(&name).cloned();
                w
            })
            .collect()
    }

    /// The RentalContracts with their status attached.
    pub fn contracts(&self) -> Vec<RentalContract> {
        self.manifests
            .contracts
            .iter()
            .map(|c| {
                let mut c = c.clone();
                let name = c.metadata.name.clone().unwrap_or_default();
                c.status = self.statuses.contracts.get(&name).cloned();
                c
            })
            .collect()
    }

    /// Folds one cycle's decisions and the hub's facts into the statuses. Statuses of objects no
    /// longer declared are dropped (as deleting an object deletes its status).
    pub fn apply_cycle(
        &mut self,
        out: &CycleOutput,
        facts: &BTreeMap<String, WorkerFacts>,
        now: Timestamp,
    ) {
        let mut workers = BTreeMap::new();
        for r in &out.workers {
            let prev = self.statuses.workers.get(&r.name);
            let changes: Vec<String> = out
                .changes
                .iter()
                .filter(|c| c.worker == r.name)
                .map(|c| c.reason.to_string())
                .collect();
            workers.insert(
                r.name.clone(),
                worker_status(prev, r, facts.get(&r.name), &changes, now),
            );
        }
        let mut contracts = BTreeMap::new();
        for r in &out.contracts {
            let prev = self.statuses.contracts.get(&r.name);
            contracts.insert(r.name.clone(), contract_status(prev, r, &out.workers, now));
        }
        self.statuses = Statuses { workers, contracts };
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

fn ts_from_unix(secs: Option<f64>) -> Option<Time> {
    let s = secs.filter(|s| s.is_finite())?;
    Timestamp::from_millisecond((s * 1000.0).round().clamp(-8e15, 8e15) as i64)
        .ok()
        .map(Time)
}

fn hashrate_of(f: &WorkerFacts, window: u64) -> Option<Hashrate> {
    f.hashrate_over(window).map(Hashrate::from_f64_saturating)
}

/// A Worker's status after one cycle. `changes` are the reasons of this worker's moves in the
/// cycle (each closes the open ledger entry and opens a new one).
pub fn worker_status(
    prev: Option<&WorkerStatus>,
    r: &WorkerReport,
    facts: Option<&WorkerFacts>,
    changes: &[String],
    now: Timestamp,
) -> WorkerStatus {
    let mut s = prev.cloned().unwrap_or_default();
    let now_t = Time(now);
    s.phase = Some(r.phase());
    s.phase_since = Some(Time(r.health.since));
    s.reason = Some(r.verdict.as_str().to_owned());
    s.message = Some(truncate(&r.reason, MAX_MESSAGE));
    s.connected = Some(r.connected);
    if let Some(f) = facts {
        s.hashrate = Some(WorkerHashrate {
            avg1m: hashrate_of(f, 60),
            avg5m: hashrate_of(f, 300),
            avg15m: hashrate_of(f, 900),
        });
        if let Some(t) = ts_from_unix(f.last_share_unix) {
            s.last_share_time = Some(t);
        }
        s.current_pool = f.pool.clone();
    } else {
        s.current_pool = None;
    }
    let assignment = r.assignment();
    let moved = !changes.is_empty();
    if moved || s.history.is_empty() {
        if let Some(open) = s.history.last_mut().filter(|h| h.end.is_none()) {
            open.end = Some(now_t.clone());
        }
        push_history(
            &mut s.history,
            AssignmentRecord {
                contract: assignment.contract.clone(),
                customer: assignment.customer.clone(),
                role: assignment.role,
                replaces: assignment.replaces.clone(),
                start: if moved {
                    now_t.clone()
                } else {
                    assignment.since.clone()
                },
                end: None,
                reason: changes.first().map(|c| truncate(c, MAX_MESSAGE)),
            },
        );
    }
    s.current_assignment = Some(assignment);
    set_condition(
        &mut s.conditions,
        new_condition(
            conditions::HEALTHY,
            r.verdict == crate::scheduler::health::Verdict::Healthy,
            r.verdict.as_str(),
            truncate(&r.reason, MAX_MESSAGE),
            None,
            &now_t,
        ),
    );
    set_condition(
        &mut s.conditions,
        new_condition(
            conditions::CONNECTED,
            r.connected,
            if r.connected {
                "Connected"
            } else {
                "Disconnected"
            },
            if r.connected {
                "the miner holds a stratum connection to the hub"
            } else {
                "no stratum connection from this miner"
            },
            None,
            &now_t,
        ),
    );
    s
}

/// A RentalContract's status (its SLA ledger) after one cycle.
pub fn contract_status(
    prev: Option<&RentalContractStatus>,
    r: &ContractReport,
    workers: &[WorkerReport],
    now: Timestamp,
) -> RentalContractStatus {
    let mut s = prev.cloned().unwrap_or_default();
    let now_t = Time(now);
    s.phase = Some(r.phase);
    let since_of = |name: &str| {
        workers
            .iter()
            .find(|w| w.name == name)
            .map(|w| Time(w.placement.since))
            .unwrap_or_else(|| now_t.clone())
    };
    let mut assigned: Vec<AssignedWorker> = r
        .assigned
        .iter()
        .map(|(name, role, covers)| AssignedWorker {
            worker: name.clone(),
            role: match role {
                Role::Primary => AssignmentRole::Primary,
                Role::Substitute => AssignmentRole::Substitute,
                Role::Benched | Role::Spare => AssignmentRole::Spare,
            },
            replaces: covers.clone(),
            since: since_of(name),
        })
        .collect();
    // Primaries first, then substitutes; by name within a role.
    assigned.sort_by(|a, b| (a.role, &a.worker).cmp(&(b.role, &b.worker)));
    s.assigned_workers = assigned;
    s.contracted_hashrate = Some(Hashrate::from_f64_saturating(r.contracted_hashrate));
    s.delivered_hashrate = Some(Hashrate::from_f64_saturating(r.delivered_hashrate));
    s.uptime = Some(Uptime {
        observed_slots: r.ledger.observed_slots,
        up_slots: r.ledger.up_slots,
        ratio: Percentage::from_ratio(r.ledger.up_slots, r.ledger.observed_slots),
    });
    s.shortfall_hashrate_hours = Some(r.ledger.shortfall_hashrate_hours);
    s.credit = Some(r.ledger.credit);
    s.last_failover = r.last_failover.map(Time);
    s.failover_count = Some(r.failover_count);
    s.recent_reassignments = r.recent_reassignments.iter().copied().map(Time).collect();
    s.accounting = Some(r.accounting_state());
    let spec_ok = r.spec_error.is_none();
    set_condition(
        &mut s.conditions,
        new_condition(
            conditions::SPEC_VALID,
            spec_ok,
            if spec_ok { "Valid" } else { "Invalid" },
            r.spec_error.clone().unwrap_or_default(),
            None,
            &now_t,
        ),
    );
    let no_spares = r.conditions.iter().find(|c| {
        matches!(
            c,
            crate::scheduler::allocation::ContractCondition::NoSpareCapacity { .. }
        )
    });
    set_condition(
        &mut s.conditions,
        new_condition(
            conditions::SPARES_EXHAUSTED,
            no_spares.is_some(),
            if no_spares.is_some() {
                "NoSpareCapacity"
            } else {
                "SparesAvailable"
            },
            no_spares.map(ToString::to_string).unwrap_or_default(),
            None,
            &now_t,
        ),
    );
    let others: Vec<String> = r
        .conditions
        .iter()
        .filter(|c| {
            !matches!(
                c,
                crate::scheduler::allocation::ContractCondition::NoSpareCapacity { .. }
            )
        })
        .map(ToString::to_string)
        .collect();
    let ready = matches!(r.phase, crate::crd::ContractPhase::Active);
    set_condition(
        &mut s.conditions,
        new_condition(
            conditions::READY,
            ready,
            &r.phase.to_string(),
            truncate(&others.join("; "), MAX_MESSAGE),
            None,
            &now_t,
        ),
    );
    s
}

// ---------------------------------------------------------------------------------------------
// What `hashsched status` and `GET /status` show.
// ---------------------------------------------------------------------------------------------

/// The embedded hub, as local mode runs it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HubRow {
    pub name: String,
    /// Where miners connect.
    pub stratum: String,
    pub routing_generation: Option<u64>,
    pub connections: u64,
}

/// One Worker, as `hashsched status` prints it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerRow {
    pub name: String,
    pub phase: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected: Option<bool>,
    /// Measured, H/s (1-minute window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashrate: Option<f64>,
    /// Expected, H/s.
    pub expected: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
    pub owner: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_share: Option<Timestamp>,
}

impl WorkerRow {
    /// The row of a Worker object (spec + status), local or from a cluster.
    pub fn from_object(w: &Worker) -> Self {
        let st = w.status.clone().unwrap_or_default();
        let a = st.current_assignment.as_ref();
        let hashrate = st
            .hashrate
            .as_ref()
            .and_then(|h| h.avg1m.or(h.avg5m))
            .map(Hashrate::as_f64);
        WorkerRow {
            name: w.metadata.name.clone().unwrap_or_default(),
            phase: st.phase.unwrap_or_default().to_string(),
            message: st.message.clone(),
            connected: st.connected,
            hashrate,
            expected: w.spec.expected_hashrate.as_f64(),
            contract: a.and_then(|a| a.contract.clone()),
            role: a.map(|a| a.role.to_string()),
            replaces: a.and_then(|a| a.replaces.clone()),
            owner: w.spec.owner.to_string(),
            pool: st.current_pool.clone(),
            last_share: st.last_share_time.as_ref().map(|t| t.0),
        }
    }
}

/// One RentalContract, as `hashsched status` prints it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContractRow {
    pub name: String,
    pub customer: String,
    pub mode: String,
    pub phase: String,
    /// H/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contracted: Option<f64>,
    /// H/s accepted at the customer's pools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered: Option<f64>,
    /// Up slots / observed slots (0..=1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime: Option<f64>,
    pub observed_slots: u64,
    pub up_slots: u64,
    /// TH/s·hours owed.
    pub shortfall_th_hours: f64,
    pub credit: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    pub failovers: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failover: Option<Timestamp>,
    /// `worker` for primaries, `worker→replaces` for substitutes.
    #[serde(default)]
    pub workers: Vec<String>,
}

impl ContractRow {
    /// The row of a RentalContract object (spec + status), local or from a cluster.
    pub fn from_object(c: &RentalContract) -> Self {
        let st = c.status.clone().unwrap_or_default();
        let uptime = st.uptime.as_ref();
        ContractRow {
            name: c.metadata.name.clone().unwrap_or_default(),
            customer: c.spec.customer.clone(),
            mode: c.spec.mode.to_string(),
            phase: st.phase.unwrap_or_default().to_string(),
            contracted: st
                .contracted_hashrate
                .or(c.spec.contracted_hashrate)
                .map(Hashrate::as_f64),
            delivered: st.delivered_hashrate.map(Hashrate::as_f64),
            uptime: uptime.map(|u| u.ratio.as_fraction()),
            observed_slots: uptime.map_or(0, |u| u.observed_slots),
            up_slots: uptime.map_or(0, |u| u.up_slots),
            shortfall_th_hours: st.shortfall_hashrate_hours.unwrap_or(0.0),
            credit: st.credit.unwrap_or(0.0),
            currency: c.spec.sla.as_ref().and_then(|s| s.currency.clone()),
            failovers: st.failover_count.unwrap_or(0),
            last_failover: st.last_failover.as_ref().map(|t| t.0),
            workers: st
                .assigned_workers
                .iter()
                .map(|a| match &a.replaces {
                    Some(r) => format!("{}→{r}", a.worker),
                    None if a.role == AssignmentRole::Substitute => format!("{}+", a.worker),
                    None => a.worker.clone(),
                })
                .collect(),
        }
    }
}

/// One pool, as the embedded hub sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolRow {
    pub name: String,
    pub up: bool,
    pub workers: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub switches: u64,
    pub disconnects: u64,
    /// Why the pool last failed or dropped a session (the hub's words).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<String>,
}

impl PoolRow {
    pub fn from_facts(p: &PoolFacts) -> Self {
        PoolRow {
            name: p.pool.clone(),
            up: p.up,
            workers: p.workers,
            accepted: p.accepted,
            rejected: p.rejected,
            switches: p.switches,
            disconnects: p.disconnects,
            last_failure: p.last_failure.clone(),
        }
    }
}

/// Everything `GET /status` returns and the state file keeps for `hashsched status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusDocument {
    /// Where this comes from (`local /path/to/manifests`, `cluster <namespace>`).
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub: Option<HubRow>,
    /// The current manifests are refused (the last good ones are in force): why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifests_error: Option<String>,
    #[serde(default)]
    pub workers: Vec<WorkerRow>,
    #[serde(default)]
    pub contracts: Vec<ContractRow>,
    #[serde(default)]
    pub pools: Vec<PoolRow>,
}

impl StatusDocument {
    /// The rows of a store's objects.
    pub fn from_store(source: String, store: &Store, now: Timestamp) -> Self {
        let mut workers: Vec<WorkerRow> =
            store.workers().iter().map(WorkerRow::from_object).collect();
        workers.sort_by(|a, b| a.name.cmp(&b.name));
        let mut contracts: Vec<ContractRow> = store
            .contracts()
            .iter()
            .map(ContractRow::from_object)
            .collect();
        contracts.sort_by(|a, b| a.name.cmp(&b.name));
        StatusDocument {
            source,
            generated_at: Some(now),
            workers,
            contracts,
            ..StatusDocument::default()
        }
    }

    pub fn worker(&self, name: &str) -> Option<&WorkerRow> {
        self.workers.iter().find(|w| w.name == name)
    }

    pub fn contract(&self, name: &str) -> Option<&ContractRow> {
        self.contracts.iter().find(|c| c.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::allocation::Placement;
    use crate::scheduler::health::{HealthState, Verdict};

    fn report(verdict: Verdict, placement: Placement, customer: Option<&str>) -> WorkerReport {
        WorkerReport {
            name: "spare-1".into(),
            verdict,
            reason: "test".into(),
            thresholds: None,
            health: HealthState {
                verdict,
                since: placement.since,
                recovering_since: None,
                disconnected_since: None,
            },
            placement,
            customer: customer.map(Into::into),
            measured_hashrate: Some(2e5),
            connected: true,
        }
    }

    #[test]
    fn a_lend_closes_the_open_ledger_entry_and_opens_a_new_one() {
        let t0: Timestamp = "2026-07-01T00:00:00Z".parse().unwrap();
        let t1: Timestamp = "2026-07-01T00:10:00Z".parse().unwrap();
        let idle = report(Verdict::Healthy, Placement::spare(t0), None);
        let s0 = worker_status(None, &idle, None, &[], t0);
        assert_eq!(s0.history.len(), 1);
        assert_eq!(s0.history[0].role, AssignmentRole::Spare);
        assert_eq!(s0.phase, Some(crate::crd::WorkerPhase::Healthy));
        // Nothing moved: the ledger does not grow.
        let s0b = worker_status(Some(&s0), &idle, None, &[], t1);
        assert_eq!(s0b.history.len(), 1);

        let lent = report(
            Verdict::Healthy,
            Placement {
                contract: Some("acme-m2m".into()),
                role: Role::Substitute,
                covers: Some("acme-02".into()),
                since: t1,
            },
            Some("acme"),
        );
        let s1 = worker_status(
            Some(&s0),
            &lent,
            None,
            &["covers acme-02 (Dead)".into()],
            t1,
        );
        assert_eq!(s1.history.len(), 2);
        assert_eq!(s1.history[0].end, Some(Time(t1)));
        let open = &s1.history[1];
        assert_eq!(open.contract.as_deref(), Some("acme-m2m"));
        assert_eq!(open.replaces.as_deref(), Some("acme-02"));
        assert_eq!(open.end, None);
        assert_eq!(open.reason.as_deref(), Some("covers acme-02 (Dead)"));
        let a = s1.current_assignment.as_ref().unwrap();
        assert_eq!(a.role, AssignmentRole::Substitute);
        assert_eq!(a.customer.as_deref(), Some("acme"));

        // The row `hashsched status` prints for it (local or from a cluster).
        let mut w: Worker = serde_json::from_value(serde_json::json!({
            "apiVersion": "hashsched.io/v1alpha1", "kind": "Worker",
            "metadata": {"name": "spare-1"},
            "spec": {"owner": "house", "expectedHashrate": "200 kH/s"}
        }))
        .unwrap();
        w.status = Some(s1);
        let row = WorkerRow::from_object(&w);
        assert_eq!(row.contract.as_deref(), Some("acme-m2m"));
        assert_eq!(row.role.as_deref(), Some("Substitute"));
        assert_eq!(row.replaces.as_deref(), Some("acme-02"));
        assert_eq!(row.owner, "house");
        assert_eq!(row.expected, 2e5);
    }
}
