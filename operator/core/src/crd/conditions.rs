//! Standard Kubernetes conditions for the status of every hashsched kind.
//!
//! Conditions are `metav1.Condition` (type, status, reason, message, lastTransitionTime,
//! observedGeneration), kept as a list-map keyed by `type` so that server-side apply merges them
//! per type. The helpers here are pure: the operator computes the desired condition and
//! [`set_condition`] keeps `lastTransitionTime` stable unless the status really changed.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::{Schema, SchemaGenerator, json_schema};

/// Condition type: the object is reconciled and doing its job.
pub const READY: &str = "Ready";
/// Condition type: the spec is valid beyond what admission can check (references resolve, etc.).
pub const SPEC_VALID: &str = "SpecValid";
/// Condition type (RentalContract): delivered hashrate is below `(1 − tolerance) × contracted`.
pub const DEGRADED: &str = "Degraded";
/// Condition type (RentalContract): a failover was needed and no healthy spare was left.
pub const SPARES_EXHAUSTED: &str = "SparesExhausted";
/// Condition type (RentalContract): uptime is below the SLA target.
pub const SLA_BREACHED: &str = "SlaBreached";
/// Condition type (Worker): shares arrive as expected for its hashrate.
pub const HEALTHY: &str = "Healthy";
/// Condition type (Worker): connected to a hub.
pub const CONNECTED: &str = "Connected";
/// Condition type (PoolEndpoint): the hub can log in and gets work.
pub const REACHABLE: &str = "Reachable";
/// Condition type (StratumHub): the hub applied the latest routing generation.
pub const ROUTING_APPLIED: &str = "RoutingApplied";

/// `status` value of a condition that holds.
pub const TRUE: &str = "True";
/// `status` value of a condition that does not hold.
pub const FALSE: &str = "False";
/// `status` value when the operator cannot tell yet.
pub const UNKNOWN: &str = "Unknown";

/// Most conditions kept on one object.
pub const MAX_CONDITIONS: u32 = 16;

/// A condition with the given fields, to be stored with [`set_condition`].
pub fn new_condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    observed_generation: Option<i64>,
    now: &Time,
) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: if status { TRUE } else { FALSE }.to_owned(),
        reason: reason.to_owned(),
        message: message.into(),
        observed_generation,
        last_transition_time: now.clone(),
    }
}

/// Inserts or updates `condition` by type. `lastTransitionTime` is kept from the existing condition
/// when the status did not change (reason and message may change without a transition). Returns
/// whether anything changed, so callers can skip a status patch.
pub fn set_condition(conditions: &mut Vec<Condition>, mut condition: Condition) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == condition.type_) {
        Some(existing) => {
            if existing.status == condition.status {
                condition.last_transition_time = existing.last_transition_time.clone();
            }
            if *existing == condition {
                return false;
            }
            *existing = condition;
            true
        }
        None => {
            conditions.push(condition);
            true
        }
    }
}

/// The condition of the given type, if present.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of the given type is present with status `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find_condition(conditions, type_).is_some_and(|c| c.status == TRUE)
}

/// Schema of a `conditions` list: `metav1.Condition` items, a list-map keyed by `type`.
pub fn conditions_schema(generator: &mut SchemaGenerator) -> Schema {
    let item = generator.subschema_for::<Condition>();
    json_schema!({
        "description": "Standard conditions (Ready, …), one per type; see each kind's documentation for the types it uses.",
        "type": "array",
        "items": item,
        "maxItems": MAX_CONDITIONS,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Time {
        Time(jiff::Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn transition_time_moves_only_when_status_changes() {
        let mut conds = Vec::new();
        assert!(set_condition(
            &mut conds,
            new_condition(READY, true, "Reconciled", "ok", Some(1), &at(10))
        ));
        // Same status, new message: updated, transition time kept.
        assert!(set_condition(
            &mut conds,
            new_condition(READY, true, "Reconciled", "still ok", Some(2), &at(20))
        ));
        assert_eq!(conds.len(), 1);
        assert_eq!(conds[0].last_transition_time, at(10));
        assert_eq!(conds[0].message, "still ok");
        // Identical: nothing to write.
        assert!(!set_condition(
            &mut conds,
            new_condition(READY, true, "Reconciled", "still ok", Some(2), &at(30))
        ));
        // Status flips: transition time moves.
        assert!(set_condition(
            &mut conds,
            new_condition(READY, false, "NoSpares", "no spare left", Some(2), &at(40))
        ));
        assert_eq!(conds[0].last_transition_time, at(40));
        assert!(!is_true(&conds, READY));
        assert!(find_condition(&conds, DEGRADED).is_none());
    }
}
