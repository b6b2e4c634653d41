//! Worker: one physical miner, the unit of the farm's asset inventory.
//!
//! The spec is what people know about the machine (asset tag, model, owner, expected hashrate,
//! stratum user, hub, maintenance). The status is what the operator measured from its shares
//! (phase, hashrate, last share) and decided (current assignment, lend/return history).

// `#[kube(printcolumn(...))]` repeats `type_`, `priority`, ... once per column by design.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    Assignment, AssignmentRecord, MAX_HISTORY, MAX_TEXT_LEN, NAME_MAX_LEN, NAME_PATTERN,
    WorkerOwner,
};
use crate::quantity::Hashrate;

/// Stratum user names: what miners put in `mining.authorize` (no whitespace, bounded).
pub const STRATUM_USER_PATTERN: &str = r"^[!-~]+$";
/// Longest stratum user name accepted.
pub const STRATUM_USER_MAX_LEN: u32 = 128;

/// One physical miner.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "hashsched.io",
    version = "v1alpha1",
    kind = "Worker",
    namespaced,
    derive = "PartialEq",
    status = "WorkerStatus",
    shortname = "wk",
    category = "hashsched",
    doc = "Worker is one physical miner: asset tag, model, owner (house or a customer), expected hashrate, the stratum user it authorizes as, its hub, and a maintenance switch. Its status is measured from its shares at the hub.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Hashrate",
        type_ = "string",
        description = "Measured hashrate over 5 minutes",
        json_path = ".status.hashrate.avg5m"
    ),
    printcolumn(
        name = "Expected",
        type_ = "string",
        json_path = ".spec.expectedHashrate"
    ),
    printcolumn(
        name = "Contract",
        type_ = "string",
        json_path = ".status.currentAssignment.contract"
    ),
    printcolumn(
        name = "Role",
        type_ = "string",
        json_path = ".status.currentAssignment.role"
    ),
    printcolumn(name = "Owner", type_ = "string", json_path = ".spec.owner"),
    printcolumn(
        name = "Last Share",
        type_ = "date",
        json_path = ".status.lastShareTime"
    ),
    printcolumn(
        name = "Model",
        type_ = "string",
        priority = 1,
        json_path = ".spec.model"
    ),
    printcolumn(
        name = "Asset",
        type_ = "string",
        priority = 1,
        json_path = ".spec.assetTag"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        priority = 1,
        json_path = ".status.reason"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkerSpec {
    /// Inventory tag on the machine (what the technician finds on the rack).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub asset_tag: Option<String>,
    /// Hardware model, e.g. `Antminer S19j Pro` or `Antminer S21`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub model: Option<String>,
    /// Who owns the machine: `house` (the farm; spares must be house machines) or a Customer name.
    pub owner: WorkerOwner,
    /// Nameplate hashrate (e.g. `104 TH/s`). Health tests compare the share rate against it, and
    /// Threshold contracts count it until measurements exist.
    pub expected_hashrate: Hashrate,
    /// User the miner sends in `mining.authorize` (its stratum worker name). Default: the
    /// Worker's name. Must be unique among the Workers of a hub.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = STRATUM_USER_MAX_LEN), pattern(STRATUM_USER_PATTERN))]
    pub stratum_user: Option<String>,
    /// StratumHub (in this namespace) the miner connects to. Unset: the only StratumHub of the
    /// namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = NAME_MAX_LEN), pattern(NAME_PATTERN))]
    pub hub: Option<String>,
    /// Cordon: the scheduler neither assigns nor lends this machine, and a rented one is replaced
    /// as if it had failed. Its phase shows `Maintenance`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub maintenance: bool,
    /// Free-text note for people (rack position, last repair).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_TEXT_LEN))]
    pub description: Option<String>,
}

impl WorkerSpec {
    /// What admission cannot check: an expected hashrate of zero would make every share gap
    /// infinitely surprising (the health tests divide by the expected share rate).
    pub fn validate(&self) -> Result<(), String> {
        if self.expected_hashrate.is_zero() {
            return Err("spec.expectedHashrate must be greater than 0 (e.g. \"104 TH/s\")".into());
        }
        Ok(())
    }
}

impl Worker {
    /// The stratum user this worker authorizes as (the Worker's name by default).
    pub fn stratum_user(&self) -> &str {
        self.spec
            .stratum_user
            .as_deref()
            .or(self.metadata.name.as_deref())
            .unwrap_or_default()
    }
}

/// Health of a worker as judged from its shares.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = super::common::drop_description)]
pub enum WorkerPhase {
    /// Shares arrive at the rate its expected hashrate predicts (within tolerance).
    Healthy,
    /// Shares arrive significantly below `(1 − tolerance) × expected` (not just bad luck).
    Degraded,
    /// Disconnected beyond the grace period, or no valid share for longer than the false-alarm
    /// budget allows.
    Dead,
    /// Not enough data yet (just connected, or never seen).
    #[default]
    Unknown,
    /// `spec.maintenance` is set: cordoned, not scheduled.
    Maintenance,
}

impl WorkerPhase {
    /// Whether the scheduler may give this worker work for a customer.
    pub fn is_usable(self) -> bool {
        matches!(self, WorkerPhase::Healthy)
    }
}

impl std::fmt::Display for WorkerPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WorkerPhase::Healthy => "Healthy",
            WorkerPhase::Degraded => "Degraded",
            WorkerPhase::Dead => "Dead",
            WorkerPhase::Unknown => "Unknown",
            WorkerPhase::Maintenance => "Maintenance",
        })
    }
}

/// Hashrate measured from accepted shares over sliding windows.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkerHashrate {
    /// Over the last minute (noisy: a handful of shares).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avg1m: Option<Hashrate>,
    /// Over the last 5 minutes (what `kubectl get workers` shows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avg5m: Option<Hashrate>,
    /// Over the last 15 minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avg15m: Option<Hashrate>,
}

/// What the operator measured and decided about a worker.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkerStatus {
    /// Healthy, Degraded, Dead, Unknown or Maintenance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<WorkerPhase>,
    /// Machine-readable reason for the phase, e.g. `NoShares`, `Disconnected`, `LowShareRate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub reason: Option<String>,
    /// Human-readable explanation of the phase (the numbers behind the decision).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_TEXT_LEN))]
    pub message: Option<String>,
    /// When the phase last changed (the scheduler's `minDwell` counts from here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase_since: Option<Time>,
    /// Whether the miner holds a stratum connection to a hub.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected: Option<bool>,
    /// Hashrate measured from accepted shares.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashrate: Option<WorkerHashrate>,
    /// When the hub last received a valid share from the miner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_share_time: Option<Time>,
    /// PoolEndpoint the hub currently sends this miner's shares to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_pool: Option<String>,
    /// Contract and role right now; unset while idle (mining for the house).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_assignment: Option<Assignment>,
    /// Lend/return ledger, oldest first, at most 20 entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_HISTORY))]
    pub history: Vec<AssignmentRecord>,
    /// Conditions: `Healthy`, `Connected`, `SpecValid`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "super::conditions::conditions_schema")]
    pub conditions: Vec<Condition>,
    /// `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
