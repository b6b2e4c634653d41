//! The in-memory "API server" of local mode: the last good manifests plus the status local mode
//! writes for each object, and the rows `hashsched status` and `GET /status` show.
//!
//! Status is written the way the Kubernetes operator writes it, by the same pure functions
//! ([`crate::scheduler::status`]) from one decision cycle's output and the hub's facts, so a
//! restart that reloads the statuses from the state file sees exactly what it saw before. The rows are built from
//! objects *with* status, so the same code renders a cluster's Workers and RentalContracts.

use std::collections::BTreeMap;

use hashsched_contract::facts::{PoolFacts, WorkerFacts};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::load::Manifests;
use crate::crd::{RentalContract, RentalContractStatus, Role, Worker, WorkerStatus};
use crate::quantity::Hashrate;
use crate::scheduler::cycle::CycleOutput;
pub use crate::scheduler::status::{contract_status, reports_by_name, worker_status};

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
        let reports = reports_by_name(&out.workers);
        for r in &out.contracts {
            let prev = self.statuses.contracts.get(&r.name);
            contracts.insert(r.name.clone(), contract_status(prev, r, &reports, now));
        }
        self.statuses = Statuses { workers, contracts };
    }
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    pub phase: String,
    /// Failed (Dead or Degraded) but mining again: healthy evidence is accumulating towards
    /// `minDwell`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recovering: bool,
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
    pub role: Option<Role>,
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
            namespace: w.metadata.namespace.clone(),
            name: w.metadata.name.clone().unwrap_or_default(),
            phase: st.phase.unwrap_or_default().to_string(),
            recovering: st.reason.as_deref() == Some(crate::scheduler::status::REASON_RECOVERING),
            message: st.message.clone(),
            connected: st.connected,
            hashrate,
            expected: w.spec.expected_hashrate.as_f64(),
            contract: a.and_then(|a| a.contract.clone()),
            role: a.map(|a| a.role),
            replaces: a.and_then(|a| a.replaces.clone()),
            owner: w.spec.owner.to_string(),
            pool: st.current_pool.clone(),
            last_share: st.last_share_time.as_ref().map(|t| t.0),
        }
    }
}

/// A worker serving a contract, as the contract's row lists it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssignedRow {
    pub worker: String,
    /// `Primary` or `Substitute`.
    pub role: Role,
    /// The original a substitute stands in for (MinerToMiner).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
}

impl AssignedRow {
    /// `worker` for primaries, `worker→replaces` for substitutes of a named original, `worker+`
    /// for other substitutes (tables only; JSON keeps the fields).
    pub fn display(&self) -> String {
        match &self.replaces {
            Some(r) => format!("{}→{r}", self.worker),
            None if self.role == Role::Substitute => format!("{}+", self.worker),
            None => self.worker.clone(),
        }
    }

    /// Reads the display form an older status document stored.
    fn from_display(s: &str) -> Self {
        if let Some((w, r)) = s.split_once('→') {
            return AssignedRow {
                worker: w.to_owned(),
                role: Role::Substitute,
                replaces: Some(r.to_owned()),
            };
        }
        match s.strip_suffix('+') {
            Some(w) => AssignedRow {
                worker: w.to_owned(),
                role: Role::Substitute,
                replaces: None,
            },
            None => AssignedRow {
                worker: s.to_owned(),
                role: Role::Primary,
                replaces: None,
            },
        }
    }
}

/// Either layout of a contract row's workers (older state files hold display strings).
fn assigned_rows<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<AssignedRow>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Row(AssignedRow),
        Display(String),
    }
    let items: Vec<Either> = Vec::deserialize(d)?;
    Ok(items
        .into_iter()
        .map(|e| match e {
            Either::Row(r) => r,
            Either::Display(s) => AssignedRow::from_display(&s),
        })
        .collect())
}

/// One RentalContract, as `hashsched status` prints it. JSON names carry their unit
/// (`…HashesPerSecond`, `…Ratio`, `…HashrateHours` in TH/s·h); older names are still read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContractRow {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    pub customer: String,
    pub mode: String,
    pub phase: String,
    /// H/s.
    #[serde(
        rename = "contractedHashesPerSecond",
        alias = "contracted",
        skip_serializing_if = "Option::is_none"
    )]
    pub contracted: Option<f64>,
    /// H/s accepted at the customer's pools (1-minute window).
    #[serde(
        rename = "deliveredHashesPerSecond",
        alias = "delivered",
        skip_serializing_if = "Option::is_none"
    )]
    pub delivered: Option<f64>,
    /// Up slots / judged slots (0..=1).
    #[serde(
        rename = "uptimeRatio",
        alias = "uptime",
        skip_serializing_if = "Option::is_none"
    )]
    pub uptime: Option<f64>,
    /// 95 % interval of the uptime ratio.
    #[serde(rename = "uptimeRatioLow", skip_serializing_if = "Option::is_none")]
    pub uptime_low: Option<f64>,
    #[serde(rename = "uptimeRatioHigh", skip_serializing_if = "Option::is_none")]
    pub uptime_high: Option<f64>,
    /// Judged slots (up + down).
    pub observed_slots: u64,
    pub up_slots: u64,
    pub down_slots: u64,
    /// Slots that could not be judged (no data, warm-up, scheduler not running).
    pub unobserved_slots: u64,
    /// TH/s·hours owed.
    #[serde(rename = "shortfallHashrateHours", alias = "shortfallThHours")]
    pub shortfall_th_hours: f64,
    /// 95 % interval of the shortfall, TH/s·hours.
    #[serde(
        rename = "shortfallHashrateHoursLow",
        skip_serializing_if = "Option::is_none"
    )]
    pub shortfall_low: Option<f64>,
    #[serde(
        rename = "shortfallHashrateHoursHigh",
        skip_serializing_if = "Option::is_none"
    )]
    pub shortfall_high: Option<f64>,
    /// The ledger's signed shortfall (negative: delivered more than contracted), TH/s·hours.
    #[serde(rename = "netShortfallHashrateHours")]
    pub net_shortfall_th_hours: f64,
    /// Credit owed, in `currency`.
    pub credit: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credit_low: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credit_high: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    pub failovers: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_failover: Option<Timestamp>,
    /// Workers serving the contract, primaries first.
    #[serde(deserialize_with = "assigned_rows")]
    pub workers: Vec<AssignedRow>,
}

impl ContractRow {
    /// The row of a RentalContract object (spec + status), local or from a cluster.
    pub fn from_object(c: &RentalContract) -> Self {
        let st = c.status.clone().unwrap_or_default();
        let uptime = st.uptime.as_ref();
        let judged = uptime.is_some_and(|u| u.observed_slots > 0);
        ContractRow {
            namespace: c.metadata.namespace.clone(),
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
            uptime_low: uptime
                .and_then(|u| u.ratio_low)
                .filter(|_| judged)
                .map(|p| p.as_fraction()),
            uptime_high: uptime
                .and_then(|u| u.ratio_high)
                .filter(|_| judged)
                .map(|p| p.as_fraction()),
            observed_slots: uptime.map_or(0, |u| u.observed_slots),
            up_slots: uptime.map_or(0, |u| u.up_slots),
            down_slots: uptime.map_or(0, |u| u.down_slots),
            unobserved_slots: uptime.map_or(0, |u| u.unobserved_slots),
            shortfall_th_hours: st.shortfall_hashrate_hours.unwrap_or(0.0),
            shortfall_low: st.shortfall_interval.as_ref().map(|i| i.low),
            shortfall_high: st.shortfall_interval.as_ref().map(|i| i.high),
            net_shortfall_th_hours: st
                .accounting
                .as_ref()
                .and_then(|a| a.shortfall_hashes)
                .map(|h| h / crate::scheduler::accounting::HASHES_PER_TH_HOUR)
                .unwrap_or(st.shortfall_hashrate_hours.unwrap_or(0.0)),
            credit: st.credit.unwrap_or(0.0),
            credit_low: st.credit_interval.as_ref().map(|i| i.low),
            credit_high: st.credit_interval.as_ref().map(|i| i.high),
            currency: c.spec.sla.as_ref().and_then(|s| s.currency.clone()),
            failovers: st.failover_count.unwrap_or(0),
            last_failover: st.last_failover.as_ref().map(|t| t.0),
            workers: st
                .assigned_workers
                .iter()
                .map(|a| AssignedRow {
                    worker: a.worker.clone(),
                    role: a.role,
                    replaces: a.replaces.clone(),
                })
                .collect(),
        }
    }

    /// The workers as tables show them.
    pub fn workers_display(&self) -> Vec<String> {
        self.workers.iter().map(AssignedRow::display).collect()
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
    /// Rows from several namespaces (`hashsched status -A`): tables show a NAMESPACE column.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all_namespaces: bool,
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
        workers.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        let mut contracts: Vec<ContractRow> = store
            .contracts()
            .iter()
            .map(ContractRow::from_object)
            .collect();
        contracts.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        StatusDocument {
            source,
            generated_at: Some(now),
            workers,
            contracts,
            ..StatusDocument::default()
        }
    }

    /// The phase as tables show it: `Recovering` for a failed worker that mines again.
    pub fn worker_phase_display(w: &WorkerRow) -> String {
        if w.recovering {
            format!("Recovering ({})", w.phase)
        } else {
            w.phase.clone()
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

    /// The row `hashsched status` prints for a spare lent to a contract (local or from a
    /// cluster): the status the scheduler writes for it, read back from the object.
    #[test]
    fn a_substitute_worker_row_shows_its_contract_and_whom_it_replaces() {
        let w: Worker = serde_json::from_value(serde_json::json!({
            "apiVersion": "hashsched.io/v1alpha1", "kind": "Worker",
            "metadata": {"name": "spare-1"},
            "spec": {"owner": "house", "expectedHashrate": "200 kH/s"},
            "status": {
                "currentAssignment": {
                    "contract": "acme-m2m", "customer": "acme", "role": "Substitute",
                    "replaces": "acme-02", "since": "2026-07-01T00:01:00Z"
                }
            }
        }))
        .unwrap();
        let row = WorkerRow::from_object(&w);
        assert_eq!(row.contract.as_deref(), Some("acme-m2m"));
        assert_eq!(row.role, Some(Role::Substitute));
        assert_eq!(row.replaces.as_deref(), Some("acme-02"));
        assert_eq!(row.owner, "house");
        assert_eq!(row.expected, 2e5);
    }
}
