//! RentalContract: what a customer rents, how health is judged, how failover works, what the SLA
//! promises — and, in the status, what was delivered and what is owed.
//!
//! Two modes: `MinerToMiner` rents specific machines (named, or chosen by a label selector);
//! `Threshold` rents an amount of hashrate that the scheduler keeps covered with whatever workers
//! fit. Rules the apiserver can check are CEL rules on the spec (see [`RentalContractSpec`]); the
//! rest is [`RentalContractSpec::validate`], reported by the operator in the `SpecValid` condition.

// `#[kube(printcolumn(...))]` repeats `type_`, `priority`, ... once per column by design.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    LABEL_NAME_MAX_LEN, LABEL_NAME_PATTERN, LABEL_ROLE, MAX_LIST_ITEMS, MAX_POOLS, NAME_MAX_LEN,
    NAME_PATTERN, ROLE_SPARE, Role,
};
use crate::quantity::{Duration, Hashrate, Percentage};

/// Default tolerance: delivered may be 5 % below contracted before a slot counts as down.
pub const DEFAULT_TOLERANCE: Percentage = Percentage::from_percent(5);
/// Default window of the Degraded test.
pub const DEFAULT_HEALTH_WINDOW: Duration = Duration::from_mins(10);
/// Default false-alarm budget: one false `Dead` per 10,000 worker-days.
pub const DEFAULT_FALSE_ALARM_BUDGET: f64 = 1.0;
/// Default time a recovered worker must stay healthy before it is trusted again.
pub const DEFAULT_MIN_DWELL: Duration = Duration::from_mins(5);
/// Default grace after a disconnect before a worker counts as Dead.
pub const DEFAULT_DISCONNECT_GRACE: Duration = Duration::from_secs(15);
/// Default cap on lends and returns per contract per hour.
pub const DEFAULT_MAX_REASSIGNMENTS_PER_HOUR: u32 = 12;
/// Default SLA uptime target.
pub const DEFAULT_UPTIME_TARGET: Percentage = Percentage::from_millipercent(99_000);
/// Default accounting slot length.
pub const DEFAULT_SLOT: Duration = Duration::from_mins(1);
/// Shortest accounting slot: a slot must hold enough shares to be judged.
pub const MIN_SLOT: Duration = Duration::from_secs(10);
/// Longest accounting slot.
pub const MAX_SLOT: Duration = Duration::from_mins(60);
/// Default false-down budget: one false down slot per 10,000 contract-slots.
pub const DEFAULT_FALSE_DOWN_BUDGET: f64 = 1.0;

/// A customer's rental of machines or of hashrate.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "hashsched.io",
    version = "v1alpha1",
    kind = "RentalContract",
    namespaced,
    derive = "PartialEq",
    status = "RentalContractStatus",
    // Not `rc`: kubectl already resolves that to ReplicationController.
    shortname = "contract",
    shortname = "rental",
    category = "hashsched",
    doc = "RentalContract is a customer's rental: specific machines (MinerToMiner) or an amount of hashrate (Threshold), with the health, failover and SLA policies that apply. Its status is the SLA ledger: assigned workers, delivered vs contracted hashrate, uptime slots, shortfall and credit.",
    printcolumn(name = "Customer", type_ = "string", json_path = ".spec.customer"),
    printcolumn(name = "Mode", type_ = "string", json_path = ".spec.mode"),
    printcolumn(
        name = "Contracted",
        type_ = "string",
        json_path = ".status.contractedHashrate"
    ),
    printcolumn(
        name = "Delivered",
        type_ = "string",
        json_path = ".status.deliveredHashrate"
    ),
    printcolumn(name = "Uptime", type_ = "string", json_path = ".status.uptime.ratio"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Failovers",
        type_ = "integer",
        priority = 1,
        json_path = ".status.failoverCount"
    ),
    printcolumn(
        name = "Credit",
        type_ = "number",
        priority = 1,
        json_path = ".status.credit"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.mode != 'Threshold' || has(self.contractedHashrate)",
        "message": "mode Threshold needs spec.contractedHashrate (e.g. \"1 PH/s\")",
        "reason": "FieldValueRequired",
        "fieldPath": ".contractedHashrate"
    },
    {
        "rule": "self.mode != 'MinerToMiner' || (has(self.workers) && size(self.workers) > 0) || has(self.workerSelector)",
        "message": "mode MinerToMiner needs spec.workers or spec.workerSelector",
        "reason": "FieldValueRequired",
        "fieldPath": ".workers"
    },
    {
        "rule": "!(has(self.workers) && size(self.workers) > 0 && has(self.workerSelector))",
        "message": "set spec.workers or spec.workerSelector, not both",
        "reason": "FieldValueInvalid",
        "fieldPath": ".workerSelector"
    },
    {
        "rule": "!has(self.start) || !has(self.end) || self.end > self.start",
        "message": "spec.end must be after spec.start",
        "reason": "FieldValueInvalid",
        "fieldPath": ".end"
    }
]))]
pub struct RentalContractSpec {
    /// Customer (in this namespace) who rents. Their pools receive the hashrate unless
    /// `spec.pools` overrides them.
    #[schemars(length(min = 1, max = LABEL_NAME_MAX_LEN), pattern(LABEL_NAME_PATTERN))]
    pub customer: String,
    /// `MinerToMiner`: these machines, replaced by spares while they fail. `Threshold`: this much
    /// hashrate, from whatever workers fit.
    pub mode: ContractMode,
    /// Workers rented (MinerToMiner) or preferred first (Threshold), by name; each at most once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_LIST_ITEMS), inner(length(min = 1, max = NAME_MAX_LEN), pattern(NAME_PATTERN)))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub workers: Vec<String>,
    /// Workers rented or preferred, by label (instead of `workers`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_selector: Option<LabelSelector>,
    /// Hashrate promised. Required for Threshold; for MinerToMiner it defaults to the sum of
    /// the rented workers' expected hashrate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contracted_hashrate: Option<Hashrate>,
    /// How far below contracted the delivered hashrate may be before an accounting slot counts
    /// as down (default `5%`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<Percentage>,
    /// PoolEndpoint names in failover order, replacing the customer's pools for this contract.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_POOLS), inner(length(min = 1, max = NAME_MAX_LEN), pattern(NAME_PATTERN)))]
    pub pools: Vec<String>,
    /// When the rental begins (RFC 3339, e.g. `2026-01-01T00:00:00Z`). Unset: at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<Time>,
    /// When the rental ends (RFC 3339); then the phase becomes Expired and workers return.
    /// Unset: open-ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<Time>,
    /// How worker health is judged from shares.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_policy: Option<HealthPolicy>,
    /// How spares are lent and returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover_policy: Option<FailoverPolicy>,
    /// What is promised and what a shortfall costs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sla: Option<SlaPolicy>,
    /// Higher first when spares are scarce (default 0). Ties: larger SLA deficit, then name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1000, max = 1000))]
    pub priority: Option<i32>,
}

/// What is rented.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = super::common::drop_description)]
pub enum ContractMode {
    /// Specific machines: each rented worker that fails is swapped for a healthy spare and given
    /// back when it has recovered.
    MinerToMiner,
    /// An amount of hashrate: the scheduler adds the smallest set of spares that covers a deficit
    /// and releases them when delivery is comfortably above.
    Threshold,
}

impl std::fmt::Display for ContractMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ContractMode::MinerToMiner => "MinerToMiner",
            ContractMode::Threshold => "Threshold",
        })
    }
}

/// How worker health is judged from shares (docs/scheduler.md, "Health from shares").
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthPolicy {
    /// Window of the Degraded test: shares counted over this long are compared with the rate
    /// `(1 − tolerance) × expected hashrate` predicts (default `10m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Duration>,
    /// Accepted rate of false alarms: false `Dead` (or `Degraded`) verdicts per 10,000
    /// worker-days (default 1). Smaller waits longer before declaring a worker dead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.001, max = 10000.0))]
    pub false_alarm_budget: Option<f64>,
    /// How long a recovered worker must stay Healthy before it is given back or lent again
    /// (default `5m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_dwell: Option<Duration>,
    /// How long a disconnected worker may stay away before it counts as Dead (default `15s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disconnect_grace: Option<Duration>,
}

impl HealthPolicy {
    /// Window with the default applied.
    pub fn window(&self) -> Duration {
        self.window.unwrap_or(DEFAULT_HEALTH_WINDOW)
    }
    /// False-alarm budget (per 10,000 worker-days) with the default applied.
    pub fn false_alarm_budget(&self) -> f64 {
        self.false_alarm_budget
            .unwrap_or(DEFAULT_FALSE_ALARM_BUDGET)
    }
    /// Minimum dwell with the default applied.
    pub fn min_dwell(&self) -> Duration {
        self.min_dwell.unwrap_or(DEFAULT_MIN_DWELL)
    }
    /// Disconnect grace with the default applied.
    pub fn disconnect_grace(&self) -> Duration {
        self.disconnect_grace.unwrap_or(DEFAULT_DISCONNECT_GRACE)
    }
}

/// How spares are lent to a contract and returned.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FailoverPolicy {
    /// Which house workers may be lent (default: label `hashsched.io/role: spare`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spare_selector: Option<LabelSelector>,
    /// Give a substitute back and reinstate the original once the original has been healthy
    /// for `minDwell` (default true). False: the substitute stays until it fails itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub give_back: Option<bool>,
    /// Most lends plus returns per hour for this contract (default 12), so a flapping worker
    /// cannot churn the farm. 0 freezes assignments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 3600))]
    pub max_reassignments_per_hour: Option<u32>,
}

impl FailoverPolicy {
    /// The spare selector with the default (`hashsched.io/role: spare`) applied.
    pub fn spare_selector(&self) -> LabelSelector {
        self.spare_selector
            .clone()
            .unwrap_or_else(|| LabelSelector {
                match_labels: Some([(LABEL_ROLE.to_owned(), ROLE_SPARE.to_owned())].into()),
                match_expressions: None,
            })
    }
    /// Give-back with the default applied.
    pub fn give_back(&self) -> bool {
        self.give_back.unwrap_or(true)
    }
    /// Reassignment cap with the default applied.
    pub fn max_reassignments_per_hour(&self) -> u32 {
        self.max_reassignments_per_hour
            .unwrap_or(DEFAULT_MAX_REASSIGNMENTS_PER_HOUR)
    }
}

/// The service level promised and the price of missing it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SlaPolicy {
    /// Share of judged accounting slots that must be up (default `99%`). The phase is Breached
    /// when uptime is below it with confidence (an exact binomial test at the 1 % level; one
    /// down slot never breaches).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_target: Option<Percentage>,
    /// Credit owed per TH/s·hour of shortfall, in the billing currency (`currency`). The
    /// shortfall is `contracted − delivered`, estimated without bias from the shares and summed
    /// over judged slots (positive total only). Default 0 (track shortfall, owe nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1_000_000.0))]
    pub credit_rate: Option<f64>,
    /// Billing currency of `creditRate` and `status.credit` (e.g. `USD`, `BTC`); for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 16))]
    pub currency: Option<String>,
    /// Accounting slot length, `10s` to `1h` (default `1m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<Duration>,
    /// Accepted rate of false down slots: slots of a contract delivering exactly
    /// `(1 − tolerance) × contracted` that are nevertheless called down, per 10,000 slots
    /// (default 1). Larger detects smaller shortfalls per slot at the price of more false downs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.001, max = 1000.0))]
    pub false_down_budget: Option<f64>,
}

impl SlaPolicy {
    /// Uptime target with the default applied.
    pub fn uptime_target(&self) -> Percentage {
        self.uptime_target.unwrap_or(DEFAULT_UPTIME_TARGET)
    }
    /// Credit rate (per TH/s·hour of shortfall) with the default applied.
    pub fn credit_rate(&self) -> f64 {
        self.credit_rate.unwrap_or(0.0)
    }
    /// Slot length with the default applied.
    pub fn slot(&self) -> Duration {
        self.slot.unwrap_or(DEFAULT_SLOT)
    }
    /// False-down budget (per 10,000 slots) with the default applied.
    pub fn false_down_budget(&self) -> f64 {
        self.false_down_budget
            .filter(|b| b.is_finite() && *b > 0.0)
            .unwrap_or(DEFAULT_FALSE_DOWN_BUDGET)
    }
}

impl RentalContractSpec {
    /// Tolerance with the default applied.
    pub fn tolerance(&self) -> Percentage {
        self.tolerance.unwrap_or(DEFAULT_TOLERANCE)
    }
    /// Priority with the default applied.
    pub fn priority(&self) -> i32 {
        self.priority.unwrap_or(0)
    }
    /// Health policy with defaults for everything unset.
    pub fn health_policy(&self) -> HealthPolicy {
        self.health_policy.clone().unwrap_or_default()
    }
    /// Failover policy with defaults for everything unset.
    pub fn failover_policy(&self) -> FailoverPolicy {
        self.failover_policy.clone().unwrap_or_default()
    }
    /// SLA policy with defaults for everything unset.
    pub fn sla(&self) -> SlaPolicy {
        self.sla.clone().unwrap_or_default()
    }

    /// Whether the contract is in force at `now` (inside `[start, end)`).
    pub fn in_force_at(&self, now: jiff::Timestamp) -> bool {
        self.start.as_ref().is_none_or(|s| s.0 <= now)
            && self.end.as_ref().is_none_or(|e| now < e.0)
    }

    /// The rules the schema and its CEL rules cannot express. The CEL rules themselves are
    /// written once, in the schema (`x-kubernetes-validations` above): the apiserver runs them, and local mode's
    /// admission evaluates them from the generated CRD with kube's CEL. The operator reports a
    /// failure in the `SpecValid` condition and schedules nothing for the contract.
    pub fn validate(&self) -> Result<(), String> {
        let mut seen = std::collections::BTreeSet::new();
        if let Some(dup) = self.workers.iter().find(|w| !seen.insert(w.as_str())) {
            return Err(format!(
                "spec.workers must not name a worker twice ({dup:?} is listed more than once)"
            ));
        }
        if self.contracted_hashrate.is_some_and(Hashrate::is_zero) {
            return Err("spec.contractedHashrate must be greater than 0".into());
        }
        if self.health_policy().window().is_zero() {
            return Err("spec.healthPolicy.window must be greater than 0".into());
        }
        if let Some(budget) = self.health_policy().false_alarm_budget
            && !(budget.is_finite() && budget > 0.0)
        {
            return Err("spec.healthPolicy.falseAlarmBudget must be a positive number".into());
        }
        if let Some(slot) = self.sla().slot
            && !(MIN_SLOT..=MAX_SLOT).contains(&slot)
        {
            return Err(format!(
                "spec.sla.slot must be between {MIN_SLOT} and {MAX_SLOT} (got {slot})"
            ));
        }
        if let Some(rate) = self.sla().credit_rate
            && !(rate.is_finite() && rate >= 0.0)
        {
            return Err("spec.sla.creditRate must be a non-negative number".into());
        }
        if let Some(budget) = self.sla().false_down_budget
            && !(budget.is_finite() && budget > 0.0)
        {
            return Err("spec.sla.falseDownBudget must be a positive number".into());
        }
        Ok(())
    }
}

/// Where a contract stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = super::common::drop_description)]
pub enum ContractPhase {
    /// Not started yet (before `start`) or not scheduled yet.
    #[default]
    Pending,
    /// Delivering at least `(1 − tolerance) × contracted`.
    Active,
    /// Delivering less right now (failover in progress or no spare left).
    Degraded,
    /// Uptime is below the SLA target: credit is accruing.
    Breached,
    /// Past `end`: workers returned, ledger frozen.
    Expired,
}

impl std::fmt::Display for ContractPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ContractPhase::Pending => "Pending",
            ContractPhase::Active => "Active",
            ContractPhase::Degraded => "Degraded",
            ContractPhase::Breached => "Breached",
            ContractPhase::Expired => "Expired",
        })
    }
}

/// A worker serving the contract and in which role.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AssignedWorker {
    /// Worker name.
    pub worker: String,
    /// Primary (rented) or Substitute (lent spare).
    pub role: Role,
    /// For a Substitute, the primary it stands in for (MinerToMiner).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
    /// When it started serving this contract.
    pub since: Time,
}

/// Accounting slots by verdict, and the uptime with its confidence.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Uptime {
    /// Slots (of `sla.slot`) judged since accounting began: up + down.
    pub observed_slots: u64,
    /// Of those, slots not significantly below `(1 − tolerance) × contracted` (a one-sided
    /// Poisson test of the slot's shares under the false-down budget).
    pub up_slots: u64,
    /// Slots significantly below the line.
    #[serde(default)]
    pub down_slots: u64,
    /// Slots that could not be judged: no hub data, operator not running, a serving miner
    /// warming up, before the contract's first share. They count neither for nor against.
    #[serde(default)]
    pub unobserved_slots: u64,
    /// `upSlots / observedSlots`, rounded down to 0.001 % (100 % when nothing was observed).
    pub ratio: Percentage,
    /// Lower end of the 95 % confidence interval of the ratio (Wilson score), as the long-run
    /// uptime it estimates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio_low: Option<Percentage>,
    /// Upper end of that interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio_high: Option<Percentage>,
}

impl Uptime {
    /// Counts one more slot, up or down, and refreshes the ratio (saturating counters).
    pub fn record_slot(&mut self, up: bool) {
        self.observed_slots = self.observed_slots.saturating_add(1);
        if up {
            self.up_slots = self.up_slots.saturating_add(1);
        } else {
            self.down_slots = self.down_slots.saturating_add(1);
        }
        self.ratio = Percentage::from_ratio(self.up_slots, self.observed_slots);
    }
}

/// A 95 % confidence interval.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfidenceInterval {
    /// Lower end.
    pub low: f64,
    /// Upper end.
    pub high: f64,
}

/// SLA accounting state carried between reconciles (so a restart loses nothing but unobserved
/// time): the running sums of the ledger and the slot being filled. Owned by the scheduler's
/// accounting; kept in status so anyone can audit it. An older status without `version` is read
/// and migrated (its counters and shortfall are kept; its open slot is dropped as unobserved).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountingState {
    /// Layout of this state (2; absent in the first layout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// Start of the slot being filled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot_start: Option<Time>,
    /// First layout only: hashrate × seconds integrated in the open slot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot_delivered_hashes: Option<f64>,
    /// Seconds of the open slot observed so far.
    #[serde(default)]
    pub slot_observed_seconds: f64,
    /// Shares delivered in the open slot (pro rata where a cycle straddles a slot boundary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot_shares: Option<f64>,
    /// Their difficulty sum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot_difficulty: Option<f64>,
    /// Their sum of squared difficulties (for the effective share size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot_difficulty_squared: Option<f64>,
    /// Miner-facing difficulty assumed when the slot has no share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot_reference_difficulty: Option<f64>,
    /// Signed shortfall against the contracted rate so far, hashes (negative: more delivered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shortfall_hashes: Option<f64>,
    /// Variance of that estimate, hashes².
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shortfall_variance: Option<f64>,
    /// When accounting began (the contract's first share, or a worker judged failing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_time: Option<Time>,
    /// Verdict of the newest closed slot: `up`, `down` or `unobserved`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_slot: Option<String>,
    /// Time of the last sample folded in (samples at or before it are ignored, so replays after
    /// a restart do not count twice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sample_time: Option<Time>,
}

impl AccountingState {
    /// The part that changes only when a slot closes (what is worth a status write).
    pub fn closed_part(&self) -> AccountingState {
        AccountingState {
            version: self.version,
            slot_start: self.slot_start.clone(),
            shortfall_hashes: self.shortfall_hashes,
            shortfall_variance: self.shortfall_variance,
            started_time: self.started_time.clone(),
            last_slot: self.last_slot.clone(),
            ..AccountingState::default()
        }
    }
}

/// The contract's ledger.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RentalContractStatus {
    /// Pending, Active, Degraded, Breached or Expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ContractPhase>,
    /// Conditions: `Ready`, `SpecValid`, `Degraded`, `SparesExhausted`, `SlaBreached`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "super::conditions::conditions_schema")]
    pub conditions: Vec<Condition>,
    /// Workers serving the contract now, primaries first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_LIST_ITEMS))]
    pub assigned_workers: Vec<AssignedWorker>,
    /// Hashrate promised: `spec.contractedHashrate`, or for MinerToMiner without it the rented
    /// workers' expected hashrate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contracted_hashrate: Option<Hashrate>,
    /// Hashrate accepted at the customer's pools (5-minute window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_hashrate: Option<Hashrate>,
    /// Accounting slots observed and up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime: Option<Uptime>,
    /// Hashrate owed, integrated over time, in TH/s·hours: the unbiased estimate of
    /// `contracted − delivered` summed over judged slots (luck above and below cancels), when
    /// positive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shortfall_hashrate_hours: Option<f64>,
    /// 95 % confidence interval of `shortfallHashrateHours` (Poisson noise of the shares).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shortfall_interval: Option<ConfidenceInterval>,
    /// Credit owed to the customer: `shortfallHashrateHours × sla.creditRate`, in `sla.currency`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credit: Option<f64>,
    /// 95 % confidence interval of `credit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credit_interval: Option<ConfidenceInterval>,
    /// When a spare was last lent to or returned from this contract.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failover: Option<Time>,
    /// Lends since the contract started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover_count: Option<u64>,
    /// Times of the lends and returns in the last hour (enforces `maxReassignmentsPerHour`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 3600))]
    pub recent_reassignments: Vec<Time>,
    /// Slot being accounted (survives operator restarts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounting: Option<AccountingState>,
    /// `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(mode: ContractMode) -> RentalContractSpec {
        RentalContractSpec {
            customer: "acme".into(),
            mode,
            workers: vec![],
            worker_selector: None,
            contracted_hashrate: None,
            tolerance: None,
            pools: vec![],
            start: None,
            end: None,
            health_policy: None,
            failover_policy: None,
            sla: None,
            priority: None,
        }
    }

    fn ts(s: &str) -> Time {
        Time(s.parse().unwrap())
    }

    /// Admission of a contract with `spec`: the schema, its CEL rules (evaluated from the
    /// generated CRD, as the apiserver does) and [`RentalContractSpec::validate`].
    fn admitted(spec: &RentalContractSpec) -> Result<(), String> {
        let doc = serde_json::json!({
            "apiVersion": crate::crd::API_VERSION, "kind": "RentalContract",
            "metadata": {"name": "c", "namespace": "mining"},
            "spec": spec,
        });
        crate::crd::admission::admit(&doc)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn admission_runs_the_cel_rules_and_the_operator_side_rules() {
        let err = admitted(&base(ContractMode::Threshold)).unwrap_err();
        assert!(
            err.contains("Threshold needs spec.contractedHashrate"),
            "{err}"
        );
        let err = admitted(&base(ContractMode::MinerToMiner)).unwrap_err();
        assert!(err.contains("MinerToMiner needs spec.workers"), "{err}");

        let mut both = base(ContractMode::MinerToMiner);
        both.workers = vec!["a".into()];
        both.worker_selector = Some(LabelSelector::default());
        assert!(admitted(&both).unwrap_err().contains("not both"));

        let mut dup = base(ContractMode::MinerToMiner);
        dup.workers = vec!["a".into(), "b".into(), "a".into()];
        let err = dup.validate().unwrap_err();
        assert!(err.contains("\"a\" is listed more than once"), "{err}");

        let mut backwards = base(ContractMode::MinerToMiner);
        backwards.workers = vec!["a".into()];
        backwards.start = Some(ts("2026-02-01T00:00:00Z"));
        backwards.end = Some(ts("2026-01-01T00:00:00Z"));
        assert!(
            admitted(&backwards)
                .unwrap_err()
                .contains("end must be after")
        );

        let mut zero = base(ContractMode::Threshold);
        zero.contracted_hashrate = Some(Hashrate::ZERO);
        assert!(zero.validate().unwrap_err().contains("greater than 0"));

        // The slot takes the one duration grammar, within 10s..1h.
        for (slot, ok) in [
            ("9s", false),
            ("10s", true),
            ("1m", true),
            ("1h", true),
            ("61m", false),
        ] {
            let mut c = base(ContractMode::Threshold);
            c.contracted_hashrate = Some(Hashrate::from_terahashes(1));
            c.sla = Some(SlaPolicy {
                slot: Some(slot.parse().unwrap()),
                ..SlaPolicy::default()
            });
            let got = c.validate();
            assert_eq!(got.is_ok(), ok, "slot {slot}: {got:?}");
            if !ok {
                assert!(
                    got.unwrap_err()
                        .contains("spec.sla.slot must be between 10s and 1h")
                );
            }
        }

        let mut ok = base(ContractMode::Threshold);
        ok.contracted_hashrate = Some(Hashrate::from_terahashes(1000));
        ok.start = Some(ts("2026-01-01T00:00:00Z"));
        ok.end = Some(ts("2026-02-01T00:00:00Z"));
        assert_eq!(ok.validate(), Ok(()));
        assert_eq!(admitted(&ok), Ok(()));
        assert!(ok.in_force_at("2026-01-15T00:00:00Z".parse().unwrap()));
        assert!(!ok.in_force_at("2026-02-01T00:00:00Z".parse().unwrap()));
        assert!(!ok.in_force_at("2025-12-31T23:59:59Z".parse().unwrap()));
    }

    #[test]
    fn defaults_apply_when_unset() {
        let spec = base(ContractMode::Threshold);
        assert_eq!(spec.tolerance(), Percentage::from_percent(5));
        assert_eq!(spec.health_policy().min_dwell(), Duration::from_mins(5));
        assert_eq!(spec.health_policy().false_alarm_budget(), 1.0);
        assert!(spec.failover_policy().give_back());
        let sel = spec.failover_policy().spare_selector();
        assert_eq!(
            sel.match_labels
                .unwrap()
                .get(LABEL_ROLE)
                .map(String::as_str),
            Some(ROLE_SPARE)
        );
        assert_eq!(spec.sla().uptime_target().to_string(), "99%");
        assert_eq!(spec.sla().slot(), Duration::from_mins(1));
    }

    #[test]
    fn uptime_counts_slots() {
        let mut u = Uptime::default();
        for i in 0..1440 {
            u.record_slot(i != 0);
        }
        assert_eq!((u.observed_slots, u.up_slots), (1440, 1439));
        assert_eq!(u.ratio.to_string(), "99.93%");
    }
}
