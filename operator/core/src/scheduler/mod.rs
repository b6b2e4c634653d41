//! The scheduler core: health verdicts, allocation and failover, SLA accounting and rendering.
//!
//! Every decision here is a pure function of its inputs (time is an argument, nothing is random),
//! so the Kubernetes operator, `hashsched local` and the demo share one implementation and the
//! tests can drive it with hand-written worlds.
//!
//! - [`health`]: per-worker verdict (Healthy / Degraded / Dead / Unknown / Maintenance) from the
//!   hub's share facts, with thresholds derived from a false-alarm budget (the math is in its
//!   module doc) and hysteresis.
//! - [`allocation`]: one deterministic pass over all contracts: who serves whom, every move with
//!   its reason, and per-contract conditions such as `NoSpareCapacity`.
//! - [`accounting`]: per-slot uptime, shortfall (TH/s·h) and credit in a small serializable ledger.
//! - [`render`]: the hub routing document and a StratumHub's Kubernetes objects.
//! - [`status`]: the status subresource of every kind from a cycle's outcome, and whether a new
//!   status is worth writing.
//! - [`cycle`]: all of the above in order, from the custom resources and the hubs' facts — the
//!   one entry point for the operator, local mode and the demo ([`cycle::run_cycle`]).

pub mod accounting;
pub mod allocation;
pub mod cycle;
pub mod health;
pub mod render;
pub mod sli;
pub mod status;

/// Human-readable hashrate for reasons and Events (`123.4 TH/s`).
pub fn fmt_hashrate(hashes_per_second: f64) -> String {
    const UNITS: [&str; 7] = ["H/s", "kH/s", "MH/s", "GH/s", "TH/s", "PH/s", "EH/s"];
    if !hashes_per_second.is_finite() {
        return format!("{hashes_per_second} H/s");
    }
    let mut v = hashes_per_second;
    let mut unit = 0;
    while v.abs() >= 1000.0 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}
