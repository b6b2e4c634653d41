//! When a status is worth a write: desired status values in, `/status` merge patches out.
//!
//! The decision core renders every object's full status each cycle; most of it is stable on a
//! steady farm, but measurements (hashrates, last share time, the open accounting slot, reason
//! texts with counts in them) move on every cycle. Writing them all every 5 s would make a steady
//! farm cost O(objects) writes per cycle. So a status is written when
//!
//! - anything but the volatile fields differs from what the API holds (phase, assignment,
//!   conditions, ledger, ...): at once; or
//! - only volatile fields differ and the object's last write is older than the heartbeat: once
//!   per heartbeat, so `kubectl get` hashrates and uptime stay fresh and the accounting state a
//!   restarted operator resumes from is at most one heartbeat old (a slot that closes down is a
//!   phase or condition change on a breach and is written at once).
//!
//! This module is I/O free; [`super::schedule`] sends what it returns.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Default time between two writes of a status whose only changes are measurements.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(60);

/// Dotted paths (inside `status`) of fields that move on every cycle of a steady farm.
pub mod volatile {
    /// Worker status.
    pub const WORKER: &[&str] = &["hashrate", "lastShareTime", "message", "conditions.message"];
    /// RentalContract status.
    pub const CONTRACT: &[&str] = &[
        "deliveredHashrate",
        "accounting",
        "uptime",
        "shortfallHashrateHours",
        "credit",
        "conditions.message",
    ];
    /// StratumHub status.
    pub const HUB: &[&str] = &["connectedWorkers", "conditions.message"];
    /// PoolEndpoint status.
    pub const POOL: &[&str] = &[
        "lastConnect",
        "latencyMs",
        "poolDifficulty",
        "rejectRatio",
        "conditions.message",
    ];
    /// Customer status.
    pub const CUSTOMER: &[&str] = &["deliveredHashrate", "uptime", "conditions.message"];
}

/// Why a status write happens (for the log and the write counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteReason {
    /// Something other than a measurement changed.
    Changed,
    /// Only measurements changed and the heartbeat is due.
    Heartbeat,
}

fn strip(value: &mut Value, path: &[&str]) {
    match (path, value) {
        ([last], Value::Object(map)) => {
            map.remove(*last);
        }
        ([first, rest @ ..], Value::Object(map)) => {
            if let Some(child) = map.get_mut(*first) {
                strip(child, rest);
            }
        }
        (p, Value::Array(items)) => {
            for item in items {
                strip(item, p);
            }
        }
        _ => {}
    }
}

/// `v` without the volatile fields.
pub fn stable_part(v: &Value, volatile: &[&str]) -> Value {
    let mut v = v.clone();
    for path in volatile {
        let parts: Vec<&str> = path.split('.').collect();
        strip(&mut v, &parts);
    }
    v
}

/// Whether to write `desired` over `current` (both the `status` object; `None` = no status yet).
pub fn decide(
    current: Option<&Value>,
    desired: &Value,
    volatile: &[&str],
    last_write: Option<Instant>,
    now: Instant,
    heartbeat: Duration,
) -> Option<WriteReason> {
    let current = current.filter(|c| !c.is_null());
    let Some(current) = current else {
        return Some(WriteReason::Changed);
    };
    if current == desired {
        return None;
    }
    if stable_part(current, volatile) != stable_part(desired, volatile) {
        return Some(WriteReason::Changed);
    }
    match last_write {
        Some(t) if now.saturating_duration_since(t) < heartbeat => None,
        _ => Some(WriteReason::Heartbeat),
    }
}

/// The merge patch for `/status` that replaces the status with `desired`: fields the desired
/// status no longer has are set to null (a merge patch otherwise keeps them).
pub fn status_patch(current: Option<&Value>, desired: &Value) -> Value {
    let mut status = desired.clone();
    if let (Some(Value::Object(cur)), Value::Object(want)) = (current, &mut status) {
        for k in cur.keys() {
            if !want.contains_key(k) {
                want.insert(k.clone(), Value::Null);
            }
        }
    }
    json!({ "status": status })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_status_and_real_changes_are_written_at_once() {
        let now = Instant::now();
        let want = json!({"phase": "Healthy", "hashrate": {"avg1m": "1T"}});
        assert_eq!(
            decide(None, &want, volatile::WORKER, None, now, DEFAULT_HEARTBEAT),
            Some(WriteReason::Changed)
        );
        let cur = json!({"phase": "Unknown", "hashrate": {"avg1m": "1T"}});
        assert_eq!(
            decide(
                Some(&cur),
                &want,
                volatile::WORKER,
                Some(now),
                now,
                DEFAULT_HEARTBEAT
            ),
            Some(WriteReason::Changed)
        );
        assert_eq!(
            decide(
                Some(&want),
                &want,
                volatile::WORKER,
                None,
                now,
                DEFAULT_HEARTBEAT
            ),
            None
        );
    }

    #[test]
    fn measurements_alone_wait_for_the_heartbeat() {
        let t0 = Instant::now();
        let cur = json!({"phase": "Healthy", "hashrate": {"avg1m": "1T"},
            "conditions": [{"type": "Healthy", "status": "True", "message": "12 shares"}]});
        let want = json!({"phase": "Healthy", "hashrate": {"avg1m": "2T"},
            "conditions": [{"type": "Healthy", "status": "True", "message": "13 shares"}]});
        let hb = Duration::from_secs(60);
        assert_eq!(
            decide(
                Some(&cur),
                &want,
                volatile::WORKER,
                Some(t0),
                t0 + Duration::from_secs(5),
                hb
            ),
            None
        );
        assert_eq!(
            decide(Some(&cur), &want, volatile::WORKER, Some(t0), t0 + hb, hb),
            Some(WriteReason::Heartbeat)
        );
        assert_eq!(
            decide(Some(&cur), &want, volatile::WORKER, None, t0, hb),
            Some(WriteReason::Heartbeat),
            "never written by this process: write once"
        );
        // A condition status flip is not volatile.
        let flipped = json!({"phase": "Healthy", "hashrate": {"avg1m": "1T"},
            "conditions": [{"type": "Healthy", "status": "False", "message": "12 shares"}]});
        assert_eq!(
            decide(Some(&cur), &flipped, volatile::WORKER, Some(t0), t0, hb),
            Some(WriteReason::Changed)
        );
    }

    #[test]
    fn patch_clears_fields_that_went_away() {
        let cur = json!({"phase": "Dead", "currentPool": "p"});
        let want = json!({"phase": "Healthy"});
        assert_eq!(
            status_patch(Some(&cur), &want),
            json!({"status": {"phase": "Healthy", "currentPool": null}})
        );
    }
}
