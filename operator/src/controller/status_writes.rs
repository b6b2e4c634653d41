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

/// `v` without the volatile fields: the definition of "only measurements changed". [`decide`]
/// uses the copy-free [`same_ignoring`], which a test holds to this definition.
pub fn stable_part(v: &Value, volatile: &[&str]) -> Value {
    let mut v = v.clone();
    for path in volatile {
        let parts: Vec<&str> = path.split('.').collect();
        strip(&mut v, &parts);
    }
    v
}

/// `stable_part(a) == stable_part(b)` without copying either: called for every object on every
/// cycle, where cloning two status trees per object was most of a 10,000-worker cycle.
fn same_ignoring(a: &Value, b: &Value, paths: &[&[&str]]) -> bool {
    if paths.is_empty() {
        return a == b;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut below: Vec<&[&str]> = Vec::new();
            let keys = x.keys().chain(y.keys().filter(|k| !x.contains_key(*k)));
            for k in keys {
                below.clear();
                let mut leaf = false;
                for p in paths {
                    if let Some((first, rest)) = p.split_first()
                        && first == k
                    {
                        if rest.is_empty() {
                            leaf = true;
                        } else {
                            below.push(rest);
                        }
                    }
                }
                if leaf {
                    continue;
                }
                match (x.get(k), y.get(k)) {
                    (Some(u), Some(v)) if same_ignoring(u, v, &below) => {}
                    _ => return false,
                }
            }
            true
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(u, v)| same_ignoring(u, v, paths))
        }
        _ => a == b,
    }
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
    let paths: Vec<Vec<&str>> = volatile.iter().map(|p| p.split('.').collect()).collect();
    let paths: Vec<&[&str]> = paths.iter().map(Vec::as_slice).collect();
    if !same_ignoring(current, desired, &paths) {
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
    fn the_comparison_in_place_agrees_with_stripping_copies() {
        let vol = ["hashrate", "conditions.message", "a.b.c"];
        let paths: Vec<Vec<&str>> = vol.iter().map(|p| p.split('.').collect()).collect();
        let paths: Vec<&[&str]> = paths.iter().map(Vec::as_slice).collect();
        let base = json!({"phase": "Healthy", "hashrate": {"avg1m": "1"},
            "conditions": [{"type": "Ready", "message": "x"}, {"type": "B", "message": "y"}],
            "a": {"b": {"c": 1, "d": 2}, "e": 3}});
        let variants = [
            json!({"phase": "Healthy", "hashrate": {"avg1m": "2"},
                "conditions": [{"type": "Ready", "message": "z"}, {"type": "B", "message": "w"}],
                "a": {"b": {"c": 9, "d": 2}, "e": 3}}),
            json!({"phase": "Dead", "hashrate": {"avg1m": "1"},
                "conditions": [{"type": "Ready", "message": "x"}, {"type": "B", "message": "y"}],
                "a": {"b": {"c": 1, "d": 2}, "e": 3}}),
            json!({"phase": "Healthy",
                "conditions": [{"type": "Ready", "message": "x"}, {"type": "B", "message": "y"}],
                "a": {"b": {"c": 1, "d": 2}, "e": 3}}),
            json!({"phase": "Healthy", "hashrate": {"avg1m": "1"},
                "conditions": [{"type": "Ready", "message": "x"}],
                "a": {"b": {"c": 1, "d": 2}, "e": 3}}),
            json!({"phase": "Healthy", "hashrate": {"avg1m": "1"},
                "conditions": [{"type": "Ready", "message": "x"}, {"type": "B", "message": "y"}],
                "a": {"b": {"c": 1, "d": 3}, "e": 3}}),
            json!({"phase": "Healthy", "hashrate": {"avg1m": "1"}, "extra": 1,
                "conditions": [{"type": "Ready", "message": "x"}, {"type": "B", "message": "y"}],
                "a": {"b": {"c": 1, "d": 2}, "e": 3}}),
            json!({"phase": "Healthy", "hashrate": {"avg1m": "1"},
                "conditions": [{"type": "Ready"}, {"type": "B", "message": "y"}],
                "a": {"b": {"d": 2}, "e": 3}}),
        ];
        for v in &variants {
            for (x, y) in [(&base, v), (v, &base)] {
                assert_eq!(
                    same_ignoring(x, y, &paths),
                    stable_part(x, &vol) == stable_part(y, &vol),
                    "{x} vs {y}"
                );
            }
        }
        assert!(same_ignoring(&variants[0], &base, &paths));
        assert!(!same_ignoring(&variants[1], &base, &paths));
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
