//! The scheduler core: health verdicts, allocation and failover, SLA accounting and rendering.
//!
//! Every decision here is a pure function of its inputs (time is an argument, nothing is random),
//! so the Kubernetes operator, `hashsched local` and the demo share one implementation and the
//! tests can drive it with hand-written worlds.

pub mod accounting;
pub mod allocation;
pub mod health;

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
pub mod cycle;
pub mod render;
