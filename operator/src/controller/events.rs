//! Which Kubernetes Events one decision cycle deserves: a pure function of the cycle's output and
//! the phases the objects showed before it, so the mocked-apiserver tests and the real cluster see
//! the same list. Publishing them is the shell's job ([`super::schedule`]).
//!
//! Events go on both sides of every move: the Worker that moved and the RentalContract it joined
//! or left, so `kubectl describe` of either tells the story. Reasons are PascalCase constants here
//! (alerting and runbooks match on them).

use std::collections::BTreeMap;

use crate::crd::{ContractPhase, WorkerPhase};
use crate::scheduler::allocation::{ChangeReason, ContractCondition};
use crate::scheduler::cycle::CycleOutput;

/// A spare was lent to a contract (failover or deficit).
pub const REASON_SPARE_LENT: &str = "SpareLent";
/// A lent spare went back to the house (original recovered, or no longer needed).
pub const REASON_SPARE_RETURNED: &str = "SpareReturned";
/// A worker turned Dead.
pub const REASON_WORKER_DEAD: &str = "WorkerDead";
/// A Dead or Degraded worker is Healthy again.
pub const REASON_WORKER_RECOVERED: &str = "WorkerRecovered";
/// A contract needs a spare and none is free.
pub const REASON_NO_SPARE_CAPACITY: &str = "NoSpareCapacity";
/// An object's spec is invalid or refers to something missing.
pub const REASON_INVALID_SPEC: &str = "InvalidSpec";
/// Any other move of a worker (joined, removed, swapped, substitute failed).
pub const REASON_REASSIGNED: &str = "Reassigned";

/// The object an Event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Regarding {
    Worker,
    RentalContract,
    StratumHub,
    PoolEndpoint,
    Customer,
}

/// One Event to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedEvent {
    pub regarding: Regarding,
    /// Name of the object in the cycle's namespace.
    pub name: String,
    pub warning: bool,
    pub reason: &'static str,
    /// What happened and, for warnings, what to do.
    pub note: String,
    /// Short PascalCase action (`Failover`, `GiveBack`, `Classify`, `Validate`).
    pub action: &'static str,
}

/// What the objects showed before this cycle (their status in the API), to see transitions
/// even across an operator restart.
#[derive(Debug, Clone, Default)]
pub struct PreviousPhases {
    pub workers: BTreeMap<String, WorkerPhase>,
    /// Whether the contract's `SparesExhausted` condition was already true.
    pub spares_exhausted: BTreeMap<String, bool>,
    /// Whether the contract's `SpecValid` condition was already false.
    pub spec_invalid: BTreeMap<String, bool>,
    pub contracts: BTreeMap<String, ContractPhase>,
}

fn both(
    out: &mut Vec<PlannedEvent>,
    worker: &str,
    contract: Option<&str>,
    warning: bool,
    reason: &'static str,
    action: &'static str,
    note: String,
) {
    out.push(PlannedEvent {
        regarding: Regarding::Worker,
        name: worker.to_owned(),
        warning,
        reason,
        note: note.clone(),
        action,
    });
    if let Some(c) = contract {
        out.push(PlannedEvent {
            regarding: Regarding::RentalContract,
            name: c.to_owned(),
            warning,
            reason,
            note,
            action,
        });
    }
}

/// The Events of one cycle, in a stable order.
pub fn plan_events(out: &CycleOutput, before: &PreviousPhases) -> Vec<PlannedEvent> {
    let mut events = Vec::new();
    // Verdict transitions, on the worker and the contract it serves.
    for w in &out.workers {
        let phase = w.phase();
        let prev = before.workers.get(&w.name).copied();
        let contract = w.placement.contract.as_deref();
        if phase == WorkerPhase::Dead && prev != Some(WorkerPhase::Dead) {
            both(
                &mut events,
                &w.name,
                contract,
                true,
                REASON_WORKER_DEAD,
                "Classify",
                format!(
                    "worker {} is Dead: {}; a spare is lent if the contract allows it — check the miner's power and network",
                    w.name, w.reason
                ),
            );
        } else if phase == WorkerPhase::Healthy
            && matches!(prev, Some(WorkerPhase::Dead | WorkerPhase::Degraded))
        {
            both(
                &mut events,
                &w.name,
                contract,
                false,
                REASON_WORKER_RECOVERED,
                "Classify",
                format!("worker {} is Healthy again: {}", w.name, w.reason),
            );
        }
    }
    for c in &out.changes {
        // A contract's own workers joining it (a new contract, an operator's first cycle on a
        // farm) is what the contract's status shows; an Event per worker would bury the ones
        // people act on.
        if matches!(c.reason, ChangeReason::JoinedContract) {
            continue;
        }
        let (reason, action, warning) = match &c.reason {
            ChangeReason::CoversFailedPrimary { .. } | ChangeReason::CoversDeficit { .. } => {
                (REASON_SPARE_LENT, "Failover", false)
            }
            ChangeReason::GivenBack { .. } | ChangeReason::NoLongerNeeded => {
                (REASON_SPARE_RETURNED, "GiveBack", false)
            }
            ChangeReason::PrimaryRecovered => (REASON_WORKER_RECOVERED, "GiveBack", false),
            _ => (REASON_REASSIGNED, "Reassign", false),
        };
        let note = match (&c.from_contract, &c.to_contract) {
            (_, Some(to)) => format!(
                "worker {} → contract {to} as {:?}: {}",
                c.worker, c.to_role, c.reason
            ),
            (Some(from), None) => format!("worker {} left contract {from}: {}", c.worker, c.reason),
            (None, None) => format!("worker {}: {}", c.worker, c.reason),
        };
        both(
            &mut events,
            &c.worker,
            c.contract(),
            warning,
            reason,
            action,
            note,
        );
        // A worker moved straight between two contracts: tell the one it left too.
        if let (Some(from), Some(to)) = (&c.from_contract, &c.to_contract)
            && from != to
        {
            events.push(PlannedEvent {
                regarding: Regarding::RentalContract,
                name: from.clone(),
                warning,
                reason,
                note: format!("worker {} moved to contract {to}: {}", c.worker, c.reason),
                action,
            });
        }
    }
    for r in &out.contracts {
        let no_spare = r
            .conditions
            .iter()
            .find(|c| matches!(c, ContractCondition::NoSpareCapacity { .. }));
        if let Some(cond) = no_spare
            && !before
                .spares_exhausted
                .get(&r.name)
                .copied()
                .unwrap_or(false)
        {
            events.push(PlannedEvent {
                regarding: Regarding::RentalContract,
                name: r.name.clone(),
                warning: true,
                reason: REASON_NO_SPARE_CAPACITY,
                note: format!(
                    "{cond}: add spare Workers matching the contract's spareSelector, or fix the failed miners"
                ),
                action: "Failover",
            });
        }
        if let Some(err) = &r.spec_error
            && !before.spec_invalid.get(&r.name).copied().unwrap_or(false)
        {
            events.push(PlannedEvent {
                regarding: Regarding::RentalContract,
                name: r.name.clone(),
                warning: true,
                reason: REASON_INVALID_SPEC,
                note: format!(
                    "nothing is scheduled for this contract until its spec is fixed: {err}"
                ),
                action: "Validate",
            });
        }
    }
    events
}
