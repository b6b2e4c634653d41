//! Worker health from shares: a verdict with a known false-alarm rate instead of "offline after ten
//! minutes".
//!
//! # The math (docs/scheduler.md has the same)
//!
//! The hub sets each miner's difficulty `d` (vardiff) and validates every share. A worker hashing at
//! `H` hashes/s finds shares as a Poisson process with rate
//!
//! ```text
//! λ = H / (d · 2^32)            (shares per second)
//! ```
//!
//! We take `H = expectedHashrate` and `d` = the miner-facing difficulty the hub reports; if the hub
//! does not know it, `λ = 1 / shareInterval` (the hub's configured target interval).
//!
//! **Dead.** For a healthy worker, the gap before the next share is exponential:
//! `P(gap > t) = e^(−λt)`. A worker has about `λ · 86400` gaps a day, so with a farm-wide budget of
//! `B` false "Dead" verdicts per worker-day (default `B = 10⁻⁴`, one per 10,000 worker-days) each
//! gap may exceed the limit with probability `α = B / (λ · 86400)`, which gives
//!
//! ```text
//! t_dead = ln(1/α) / λ = ln(λ · 86400 / B) / λ
//! ```
//!
//! At one share every 2 s that is ≈ 40 s. The expected number of false "Dead" verdicts per
//! worker-day is then exactly `λ · 86400 · e^(−λ t_dead) = B` for continuous evaluation; any
//! discrete evaluation schedule (the operator's cycle) only lowers it. `t_dead` is never shorter
//! than `minDeadAfter` (scrape latency must not look like a dead miner). A worker that is
//! disconnected for longer than `disconnectGrace` is Dead too (miners reconnect within seconds).
//!
//! **Degraded.** Over the health window of `s` seconds the hub counted `n` valid shares. Under the
//! hypothesis "the worker delivers at least `(1 − tolerance)` of expected", `n` is at least Poisson
//! with mean `μ₀ = (1 − tolerance) · λ · s`. The worker is Degraded when the one-sided p-value
//! `P(X ≤ n | μ₀)` (exact Poisson CDF, computed in log space) is below
//!
//! ```text
//! α_deg = B · (s / 86400) / (1 + z²),     z = √(2 · ln(86400 / (B · s)))
//! ```
//!
//! The expected count uses the mean difficulty of the window's shares (`Σd / n`, which the hub's
//! window hashrate gives), not today's difficulty: vardiff retargets inside the window would
//! otherwise make a healthy worker look short by the size of the step.
//!
//! `B · s / 86400` spends the budget over the `86400 / s` disjoint windows of a day; the `1 + z²`
//! factor pays for evaluating a sliding window many times per window length (the scan statistic
//! of a moving Poisson count crosses a `z`-sigma boundary about `z²` times as often as a single
//! window does). The statistical tests check the resulting rate against `B`.
//!
//! **Unknown.** Fewer than `minExpectedShares` expected since the worker connected (not enough
//! data to judge), no expected hashrate, or facts from the hub older than `staleAfter`.
//!
//! **Maintenance.** The Worker is cordoned; nothing else is evaluated.
//!
//! **Hysteresis.** Getting worse is immediate. Getting back to Healthy from Dead or Degraded needs
//! `minDwell` of uninterrupted healthy evidence; until then the worker keeps its failed verdict
//! (reason "recovering"), so a flapping miner is not given back and taken away every cycle.
//!
//! Everything here is a pure function of its inputs: time comes in as `now`, nothing is random.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// Seconds in a day: the unit of the false-alarm budget ("per worker-day").
pub const SECONDS_PER_DAY: f64 = 86_400.0;
/// 2^32: hashes per unit of share difficulty.
pub const HASHES_PER_DIFFICULTY: f64 = 4_294_967_296.0;

/// The five health phases of a Worker (its `status.phase`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Verdict {
    Healthy,
    Degraded,
    Dead,
    Unknown,
    Maintenance,
}

impl Verdict {
    /// Dead or Degraded: a rented worker with this verdict is replaced.
    pub fn is_failed(self) -> bool {
        matches!(self, Verdict::Dead | Verdict::Degraded)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Healthy => "Healthy",
            Verdict::Degraded => "Degraded",
            Verdict::Dead => "Dead",
            Verdict::Unknown => "Unknown",
            Verdict::Maintenance => "Maintenance",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a worker is judged (docs/scheduler.md, "Health from shares", lists the defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct HealthPolicy {
    /// Length of the share-count window for the Degraded test.
    pub window: Duration,
    /// Farm-wide false-alarm budget `B`: false verdicts per worker-day (each of Dead and Degraded).
    pub false_alarms_per_worker_day: f64,
    /// Shortfall tolerated before a worker counts as Degraded (0.1 = 10 %).
    pub tolerance: f64,
    /// Healthy evidence needed before a failed worker is Healthy again.
    pub min_dwell: Duration,
    /// How long a disconnected worker may take to come back before it is Dead.
    pub disconnect_grace: Duration,
    /// Lower bound for the no-share limit `t_dead`.
    pub min_dead_after: Duration,
    /// Expected shares needed before a verdict other than Unknown/Dead is given.
    pub min_expected_shares: f64,
    /// Share interval assumed when the hub does not report the miner-facing difficulty.
    pub fallback_share_interval: Duration,
    /// Facts older than this are not trusted (hub unreachable): the worker is Unknown.
    pub stale_after: Duration,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        HealthPolicy {
            window: Duration::from_secs(600),
            false_alarms_per_worker_day: 1e-4,
            tolerance: 0.10,
            min_dwell: Duration::from_secs(300),
            disconnect_grace: Duration::from_secs(15),
            min_dead_after: Duration::from_secs(10),
            min_expected_shares: 20.0,
            fallback_share_interval: Duration::from_secs(5),
            stale_after: Duration::from_secs(120),
        }
    }
}

/// What the hub knows about one worker, reduced to what health needs (built from
/// `hashsched_contract::facts::WorkerFacts` by the cycle).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Observation {
    /// When the hub took this snapshot; `None` = the hub never reported this worker.
    pub as_of: Option<Timestamp>,
    pub connected: bool,
    /// Start of the current connection (if connected).
    pub connected_since: Option<Timestamp>,
    /// When the worker went away (if known to the hub).
    pub disconnected_since: Option<Timestamp>,
    pub last_valid_share_at: Option<Timestamp>,
    /// Miner-facing share difficulty.
    pub difficulty: Option<f64>,
    /// Valid shares over the last `window_seconds` (the hub's window closest to the policy's).
    pub window_valid_shares: u64,
    /// Mean difficulty of those shares (`Σ difficulty / count`, from the hub's window hashrate).
    /// Vardiff moves the difficulty within a window; the Degraded test weighs the count by the
    /// difficulty the shares were really found at, not by today's. `None`: use `difficulty`.
    pub window_mean_difficulty: Option<f64>,
    /// Span the count covers (clipped to the connection age by the classifier).
    pub window_seconds: f64,
}

/// The part of a worker's health that must survive between cycles (and restarts: it is
/// serialized into the Worker's status).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthState {
    pub verdict: Verdict,
    /// When `verdict` began.
    pub since: Timestamp,
    /// Start of the current run of healthy evidence while recovering from Dead/Degraded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovering_since: Option<Timestamp>,
    /// First cycle that saw the worker disconnected (when the hub cannot say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disconnected_since: Option<Timestamp>,
}

/// Why a verdict was given; `Display` is the one-line reason shown in status and Events.
#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    Cordoned,
    NoExpectedHashrate,
    NeverSeen,
    StaleFacts {
        age_secs: f64,
    },
    Disconnected {
        for_secs: f64,
        grace_secs: f64,
    },
    Reconnecting {
        for_secs: f64,
    },
    NoShares {
        for_secs: f64,
        limit_secs: f64,
        shares_per_sec: f64,
    },
    LowShares {
        shares: u64,
        expected: f64,
        p_value: f64,
        alpha: f64,
    },
    NotEnoughData {
        expected: f64,
        needed: f64,
    },
    Recovering {
        healthy_secs: f64,
        dwell_secs: f64,
        inner: Box<Reason>,
    },
    SharesOk {
        shares: u64,
        expected: f64,
    },
    Holding {
        inner: Box<Reason>,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Cordoned => write!(f, "cordoned for maintenance"),
            Reason::NoExpectedHashrate => write!(f, "no expected hashrate set"),
            Reason::NeverSeen => write!(f, "never seen by a hub yet"),
            Reason::StaleFacts { age_secs } => {
                write!(f, "hub facts are {age_secs:.0}s old; hub unreachable?")
            }
            Reason::Disconnected {
                for_secs,
                grace_secs,
            } => {
                write!(
                    f,
                    "disconnected for {for_secs:.0}s (grace {grace_secs:.0}s)"
                )
            }
            Reason::Reconnecting { for_secs } => {
                write!(f, "disconnected for {for_secs:.0}s, within grace")
            }
            Reason::NoShares {
                for_secs,
                limit_secs,
                shares_per_sec,
            } => write!(
                f,
                "no valid share for {for_secs:.0}s (limit {limit_secs:.0}s at {shares_per_sec:.3} shares/s)"
            ),
            Reason::LowShares {
                shares,
                expected,
                p_value,
                alpha,
            } => write!(
                f,
                "{shares} valid shares in window, {expected:.1} expected at full rate (p={p_value:.2e} < {alpha:.2e})"
            ),
            Reason::NotEnoughData { expected, needed } => write!(
                f,
                "not enough data yet ({expected:.1} of {needed:.0} expected shares)"
            ),
            Reason::Recovering {
                healthy_secs,
                dwell_secs,
                inner,
            } => write!(
                f,
                "recovering: healthy for {healthy_secs:.0}s of {dwell_secs:.0}s ({inner})"
            ),
            Reason::SharesOk { shares, expected } => {
                write!(f, "{shares} valid shares in window, {expected:.1} expected")
            }
            Reason::Holding { inner } => write!(f, "keeping last verdict: {inner}"),
        }
    }
}

/// The thresholds derived for one worker: shown in reasons, used by tests and the docs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Expected shares per second, `λ`.
    pub shares_per_sec: f64,
    /// No-share limit `t_dead` in seconds.
    pub dead_after_secs: f64,
}

/// The result of one classification.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    pub verdict: Verdict,
    pub reason: Reason,
    /// Feed back as `previous` next cycle.
    pub state: HealthState,
    pub thresholds: Option<Thresholds>,
}

/// `λ = H / (d · 2^32)`; falls back to `1 / fallback_interval` when the difficulty is unknown.
pub fn share_rate(
    expected_hashrate: f64,
    difficulty: Option<f64>,
    fallback_interval: Duration,
) -> f64 {
    match difficulty {
        Some(d) if d.is_finite() && d > 0.0 => expected_hashrate / (d * HASHES_PER_DIFFICULTY),
        _ => {
            let s = fallback_interval.as_secs_f64();
            if s > 0.0 { 1.0 / s } else { 0.0 }
        }
    }
}

/// `t_dead = ln(λ · 86400 / B) / λ`: the gap after which a healthy worker is called Dead at the
/// budgeted rate `B` per worker-day. Never below `floor_secs`. Infinite when `λ` is not positive.
pub fn dead_after_secs(shares_per_sec: f64, budget_per_day: f64, floor_secs: f64) -> f64 {
    if shares_per_sec.is_nan() || shares_per_sec <= 0.0 || shares_per_sec.is_infinite() {
        return f64::INFINITY;
    }
    let budget = if budget_per_day > 0.0 {
        budget_per_day
    } else {
        f64::MIN_POSITIVE
    };
    let gaps_per_day = shares_per_sec * SECONDS_PER_DAY;
    let ln_inv_alpha = (gaps_per_day / budget).ln().max(0.0);
    (ln_inv_alpha / shares_per_sec).max(floor_secs)
}

/// Per-evaluation false-alarm probability of the Degraded test for a window of `window_secs`
/// (see the module doc for the `1 + z²` scan correction). Clamped to (0, 0.5].
pub fn degraded_alpha(window_secs: f64, budget_per_day: f64) -> f64 {
    let per_window = (budget_per_day * window_secs / SECONDS_PER_DAY).clamp(f64::MIN_POSITIVE, 0.5);
    let z2 = 2.0 * (1.0 / per_window).ln();
    (per_window / (1.0 + z2)).clamp(f64::MIN_POSITIVE, 0.5)
}

/// `ln(n!)`, exact summation for small `n`, Stirling series (error < 2e-15) above.
pub fn ln_factorial(n: u64) -> f64 {
    if n < 20 {
        return (2..=n).map(|i| (i as f64).ln()).sum();
    }
    let x = n as f64;
    let inv = 1.0 / x;
    let inv2 = inv * inv;
    x * x.ln() - x
        + 0.5 * (2.0 * std::f64::consts::PI * x).ln()
        + inv * (1.0 / 12.0 - inv2 * (1.0 / 360.0 - inv2 * (1.0 / 1260.0 - inv2 / 1680.0)))
}

/// `ln P(X ≤ k)` for `X ~ Poisson(mu)`, exact up to floating point, for any `mu` (the series is
/// summed outward from `k` in log space, so it neither underflows for small p-values nor loses
/// precision for large means).
pub fn poisson_ln_cdf(k: u64, mu: f64) -> f64 {
    if mu.is_nan() || mu <= 0.0 {
        return 0.0;
    }
    if !mu.is_finite() {
        return f64::NEG_INFINITY;
    }
    let kf = k as f64;
    let ln_pmf_k = kf * mu.ln() - mu - ln_factorial(k);
    if kf < mu {
        // P(X ≤ k) = pmf(k) · (1 + k/μ + k(k−1)/μ² + …), terms shrink since i < μ.
        let mut term = 1.0_f64;
        let mut sum = 1.0_f64;
        let mut i = k;
        while i > 0 {
            term *= i as f64 / mu;
            sum += term;
            if term < sum * 1e-17 {
                break;
            }
            i -= 1;
        }
        ln_pmf_k + sum.ln()
    } else {
        // P(X > k) = pmf(k) · (μ/(k+1) + μ²/((k+1)(k+2)) + …), then the complement.
        let mut term = 1.0_f64;
        let mut sum = 0.0_f64;
        let mut i = kf + 1.0;
        loop {
            term *= mu / i;
            sum += term;
            if term < sum * 1e-17 || term == 0.0 {
                break;
            }
            i += 1.0;
        }
        let ln_upper = ln_pmf_k + sum.ln();
        if ln_upper >= 0.0 {
            return f64::NEG_INFINITY.max((-(ln_upper.exp() - 1.0)).ln());
        }
        (-ln_upper.exp()).ln_1p()
    }
}

fn secs_between(later: Timestamp, earlier: Timestamp) -> f64 {
    (later
        .as_millisecond()
        .saturating_sub(earlier.as_millisecond())) as f64
        / 1000.0
}

/// What the evidence says right now, before hysteresis.
struct Raw {
    verdict: Verdict,
    reason: Reason,
    thresholds: Option<Thresholds>,
    /// The hub could not be heard: keep whatever we had.
    blind: bool,
}

fn raw_verdict(
    obs: &Observation,
    expected_hashrate: f64,
    policy: &HealthPolicy,
    disconnected_since: Timestamp,
    now: Timestamp,
) -> Raw {
    let raw = |verdict, reason| Raw {
        verdict,
        reason,
        thresholds: None,
        blind: false,
    };
    // Away for longer than the grace: Dead; within it: Unknown (blind) for `within`.
    let away = |for_secs: f64, within: Reason| {
        let grace = policy.disconnect_grace.as_secs_f64();
        if for_secs > grace {
            raw(
                Verdict::Dead,
                Reason::Disconnected {
                    for_secs,
                    grace_secs: grace,
                },
            )
        } else {
            Raw {
                blind: true,
                ..raw(Verdict::Unknown, within)
            }
        }
    };
    let Some(as_of) = obs.as_of else {
        return away(secs_between(now, disconnected_since), Reason::NeverSeen);
    };
    let age = secs_between(now, as_of);
    if age > policy.stale_after.as_secs_f64() {
        return Raw {
            blind: true,
            ..raw(Verdict::Unknown, Reason::StaleFacts { age_secs: age })
        };
    }
    if !obs.connected {
        let for_secs = secs_between(as_of, disconnected_since);
        return away(for_secs, Reason::Reconnecting { for_secs });
    }
    if expected_hashrate.is_nan() || expected_hashrate <= 0.0 || expected_hashrate.is_infinite() {
        return raw(Verdict::Unknown, Reason::NoExpectedHashrate);
    }
    let lambda = share_rate(
        expected_hashrate,
        obs.difficulty,
        policy.fallback_share_interval,
    );
    let budget = policy.false_alarms_per_worker_day;
    let t_dead = dead_after_secs(lambda, budget, policy.min_dead_after.as_secs_f64());
    let thresholds = Some(Thresholds {
        shares_per_sec: lambda,
        dead_after_secs: t_dead,
    });
    let connected_since = obs.connected_since.unwrap_or(as_of);
    let gap_from = match obs.last_valid_share_at {
        Some(last) if last > connected_since => last,
        _ => connected_since,
    };
    let gap = secs_between(as_of, gap_from);
    if gap > t_dead {
        let reason = Reason::NoShares {
            for_secs: gap,
            limit_secs: t_dead,
            shares_per_sec: lambda,
        };
        return Raw {
            verdict: Verdict::Dead,
            reason,
            thresholds,
            blind: false,
        };
    }
    let connected_for = secs_between(as_of, connected_since);
    let span = obs.window_seconds.min(connected_for).max(0.0);
    let expected = lambda * span;
    if expected < policy.min_expected_shares {
        let reason = Reason::NotEnoughData {
            expected,
            needed: policy.min_expected_shares,
        };
        return Raw {
            verdict: Verdict::Unknown,
            reason,
            thresholds,
            blind: false,
        };
    }
    let shares = obs.window_valid_shares;
    // The count was accumulated at the difficulties the shares were found at: the expected count
    // at full rate uses their mean, so a vardiff retarget inside the window (say −30 %) does not
    // make a healthy worker look 30 % short.
    let expected = match obs.window_mean_difficulty {
        Some(d) if shares > 0 && d.is_finite() && d > 0.0 => {
            share_rate(expected_hashrate, Some(d), policy.fallback_share_interval) * span
        }
        _ => expected,
    };
    let mu0 = (1.0 - policy.tolerance.clamp(0.0, 1.0)) * expected;
    let alpha = degraded_alpha(span, budget);
    if (shares as f64) < mu0 {
        let ln_p = poisson_ln_cdf(shares, mu0);
        if ln_p < alpha.ln() {
            let reason = Reason::LowShares {
                shares,
                expected,
                p_value: ln_p.exp(),
                alpha,
            };
            return Raw {
                verdict: Verdict::Degraded,
                reason,
                thresholds,
                blind: false,
            };
        }
    }
    Raw {
        verdict: Verdict::Healthy,
        reason: Reason::SharesOk { shares, expected },
        thresholds,
        blind: false,
    }
}

/// Classify one worker. `previous` is last cycle's [`HealthState`] (None for a worker never
/// classified). Pure: same inputs, same output.
pub fn classify(
    obs: &Observation,
    expected_hashrate: f64,
    maintenance: bool,
    policy: &HealthPolicy,
    previous: Option<&HealthState>,
    now: Timestamp,
) -> Assessment {
    let keep_since = |v: Verdict| match previous {
        Some(p) if p.verdict == v => p.since,
        _ => now,
    };
    if maintenance {
        let state = HealthState {
            verdict: Verdict::Maintenance,
            since: keep_since(Verdict::Maintenance),
            recovering_since: None,
            disconnected_since: None,
        };
        return Assessment {
            verdict: Verdict::Maintenance,
            reason: Reason::Cordoned,
            state,
            thresholds: None,
        };
    }
    // When the worker went away: the hub's word, else the first cycle that saw it gone.
    let disconnected_since = if obs.connected {
        None
    } else {
        Some(
            obs.disconnected_since
                .or(previous.and_then(|p| p.disconnected_since))
                .unwrap_or(now),
        )
    };
    let raw = raw_verdict(
        obs,
        expected_hashrate,
        policy,
        disconnected_since.unwrap_or(now),
        now,
    );
    let prev_verdict = previous
        .map(|p| p.verdict)
        .filter(|v| *v != Verdict::Maintenance);
    let (verdict, reason, recovering_since) = match (prev_verdict, raw.verdict) {
        // Blind (hub silent, or a short disconnect): hold a known verdict instead of guessing.
        (Some(prev), _) if raw.blind && prev != Verdict::Unknown => {
            let recovering = previous.and_then(|p| p.recovering_since);
            (
                prev,
                Reason::Holding {
                    inner: Box::new(raw.reason),
                },
                recovering,
            )
        }
        // Recovery from a failure needs minDwell of uninterrupted healthy evidence.
        (Some(prev), Verdict::Healthy) if prev.is_failed() => {
            let start = previous.and_then(|p| p.recovering_since).unwrap_or(now);
            let healthy_secs = secs_between(now, start);
            let dwell_secs = policy.min_dwell.as_secs_f64();
            if healthy_secs >= dwell_secs {
                (Verdict::Healthy, raw.reason, None)
            } else {
                let reason = Reason::Recovering {
                    healthy_secs,
                    dwell_secs,
                    inner: Box::new(raw.reason),
                };
                (prev, reason, Some(start))
            }
        }
        // A failed worker that is back but not yet judgeable stays failed; the dwell restarts.
        (Some(prev), Verdict::Unknown) if prev.is_failed() => (
            prev,
            Reason::Holding {
                inner: Box::new(raw.reason),
            },
            None,
        ),
        // Dead → Degraded: it delivers something again; still failed, no dwell needed.
        (_, v) => (v, raw.reason, None),
    };
    let state = HealthState {
        verdict,
        since: keep_since(verdict),
        recovering_since,
        disconnected_since,
    };
    Assessment {
        verdict,
        reason,
        state,
        thresholds: raw.thresholds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    /// Direct summation of the pmf, good enough for small means.
    fn direct_cdf(k: u64, mu: f64) -> f64 {
        let mut term = (-mu).exp();
        let mut sum = term;
        for i in 1..=k {
            term *= mu / i as f64;
            sum += term;
        }
        sum
    }

    #[test]
    fn ln_factorial_matches_summation() {
        let mut exact = 0.0_f64;
        for n in 1..400u64 {
            exact += (n as f64).ln();
            let got = ln_factorial(n);
            assert!(
                (got - exact).abs() <= 1e-12 * exact.max(1.0),
                "n={n}: {got} vs {exact}"
            );
        }
        assert_eq!(ln_factorial(0), 0.0);
    }

    #[test]
    fn poisson_cdf_matches_direct_sum_for_small_means() {
        for &mu in &[0.1, 1.0, 3.5, 10.0, 42.0, 100.0, 300.0] {
            for k in 0..(3.0 * mu) as u64 + 5 {
                let direct = direct_cdf(k, mu);
                let got = poisson_ln_cdf(k, mu).exp();
                assert!(
                    (got - direct).abs() <= 1e-12 + 1e-10 * direct,
                    "mu={mu} k={k}: {got} vs {direct}"
                );
            }
        }
    }

    #[test]
    fn poisson_cdf_is_right_in_far_tails_and_for_large_means() {
        // P(X ≤ 0 | μ) = e^−μ, far below f64's smallest normal number for μ = 1000.
        assert!((poisson_ln_cdf(0, 1000.0) + 1000.0).abs() < 1e-9);
        // P(X ≤ 1 | μ) = e^−μ (1 + μ).
        assert!((poisson_ln_cdf(1, 800.0) - (-800.0 + 801f64.ln())).abs() < 1e-9);
        // Large mean: median ≈ μ, and the CDF at μ is ½ + 2/(3√(2πμ)) to first order.
        let mu = 1e6;
        let at_mu = poisson_ln_cdf(1_000_000, mu).exp();
        let approx = 0.5 + 2.0 / (3.0 * (2.0 * std::f64::consts::PI * mu).sqrt());
        assert!((at_mu - approx).abs() < 1e-5, "{at_mu} vs {approx}");
        // 5σ below the mean of a big Poisson: close to the normal tail 2.87e-7 (skew makes the
        // Poisson lower tail lighter; within a factor of 2 is the right ballpark at 1e6).
        let p = poisson_ln_cdf(995_000, mu).exp();
        assert!(p > 1.4e-7 && p < 2.9e-7, "{p}");
        // Monotone in k.
        let mut last = f64::NEG_INFINITY;
        for k in (990_000..1_010_000).step_by(997) {
            let v = poisson_ln_cdf(k, mu);
            assert!(v >= last);
            last = v;
        }
    }

    #[test]
    fn dead_limit_is_forty_seconds_at_one_share_every_two_seconds() {
        let t = dead_after_secs(0.5, 1e-4, 0.0);
        // ln(0.5 · 86400 · 10⁴) / 0.5 = 39.77 s (docs/scheduler.md: "≈ 40 s").
        assert!((t - 39.77).abs() < 0.01, "{t}");
        // And the budget identity: λ·86400·e^(−λt) = B.
        assert!((0.5 * 86400.0 * (-0.5 * t).exp() - 1e-4).abs() < 1e-12);
        assert_eq!(dead_after_secs(0.0, 1e-4, 10.0), f64::INFINITY);
        assert_eq!(dead_after_secs(100.0, 1e-4, 10.0), 10.0);
    }

    #[test]
    fn share_rate_from_difficulty_and_fallback() {
        // 100 TH/s at d = 65536: 0.355 shares/s (docs/protocol.md).
        let l = share_rate(100e12, Some(65536.0), Duration::from_secs(5));
        assert!((l - 0.3553).abs() < 1e-3, "{l}");
        assert_eq!(share_rate(100e12, None, Duration::from_secs(4)), 0.25);
        assert_eq!(share_rate(100e12, Some(0.0), Duration::from_secs(4)), 0.25);
    }

    fn policy() -> HealthPolicy {
        HealthPolicy {
            fallback_share_interval: Duration::from_secs(2),
            ..HealthPolicy::default()
        }
    }

    fn connected(now: i64, since: i64, last_share: i64, shares: u64) -> Observation {
        Observation {
            as_of: Some(ts(now)),
            connected: true,
            connected_since: Some(ts(since)),
            disconnected_since: None,
            last_valid_share_at: Some(ts(last_share)),
            difficulty: None,
            window_valid_shares: shares,
            window_mean_difficulty: None,
            window_seconds: 900.0,
        }
    }

    /// Vardiff tripled the share rate halfway through the window (difficulty ÷ 3). Judged at
    /// today's difficulty the healthy worker looks a third short; judged at the difficulty its
    /// shares were found at, it is healthy — and a worker at half speed is still caught.
    #[test]
    fn degraded_test_weighs_shares_by_the_difficulty_they_were_found_at() {
        let p = HealthPolicy {
            tolerance: 0.1,
            ..policy()
        };
        let h = 1e14;
        let d_old = h / (10.0 * HASHES_PER_DIFFICULTY); // 10 shares/s
        let d_now = d_old / 3.0; // 30 shares/s
        let window = |shares: u64, mean: Option<f64>| Observation {
            difficulty: Some(d_now),
            window_valid_shares: shares,
            window_mean_difficulty: mean,
            window_seconds: 60.0,
            ..connected(1_000, 0, 999, shares)
        };
        let judge = |o: &Observation| classify(o, h, false, &p, None, ts(1_000)).verdict;
        // Healthy: 30 s at 10/s + 30 s at 30/s = 1200 shares, work 300·d_old + 900·d_old/3.
        let mean = (300.0 * d_old + 900.0 * d_now) / 1200.0;
        assert_eq!(
            judge(&window(1200, None)),
            Verdict::Degraded,
            "today's difficulty misjudges"
        );
        assert_eq!(judge(&window(1200, Some(mean))), Verdict::Healthy);
        // Half speed over the same history: 600 shares at the same mean difficulty.
        assert_eq!(judge(&window(600, Some(mean))), Verdict::Degraded);
    }

    #[test]
    fn verdicts_for_plain_cases() {
        let p = policy();
        let h = 1e14;
        let c = |o: &Observation, now| classify(o, h, false, &p, None, ts(now));
        // 450 expected in 900 s at 0.5/s.
        assert_eq!(
            c(&connected(1000, 0, 999, 450), 1000).verdict,
            Verdict::Healthy
        );
        assert_eq!(
            c(&connected(1000, 0, 999, 420), 1000).verdict,
            Verdict::Healthy
        );
        assert_eq!(
            c(&connected(1000, 0, 999, 250), 1000).verdict,
            Verdict::Degraded
        );
        assert_eq!(
            c(&connected(1000, 0, 950, 450), 1000).verdict,
            Verdict::Dead
        );
        assert_eq!(
            c(&connected(1000, 990, 995, 3), 1000).verdict,
            Verdict::Unknown
        );
        let m = classify(&connected(1000, 0, 999, 450), h, true, &p, None, ts(1000));
        assert_eq!(m.verdict, Verdict::Maintenance);
        let zero = classify(
            &connected(1000, 0, 999, 450),
            0.0,
            false,
            &p,
            None,
            ts(1000),
        );
        assert_eq!(zero.verdict, Verdict::Unknown);
        // Hub silent for too long: Unknown, not Dead.
        assert_eq!(
            c(&connected(1000, 0, 999, 450), 1500).verdict,
            Verdict::Unknown
        );
    }

    #[test]
    fn disconnect_grace_then_dead() {
        let p = policy();
        let mut obs = connected(100, 0, 99, 50);
        obs.connected = false;
        obs.disconnected_since = Some(ts(90));
        let healthy = HealthState {
            verdict: Verdict::Healthy,
            since: ts(0),
            recovering_since: None,
            disconnected_since: None,
        };
        let a = classify(&obs, 1e14, false, &p, Some(&healthy), ts(100));
        assert_eq!(a.verdict, Verdict::Healthy, "{}", a.reason);
        obs.as_of = Some(ts(110));
        let a = classify(&obs, 1e14, false, &p, Some(&a.state), ts(130));
        assert_eq!(a.verdict, Verdict::Dead, "{}", a.reason);
        // Never seen by any hub: Dead once the grace has passed since we started looking.
        let unseen = Observation::default();
        let a = classify(&unseen, 1e14, false, &p, None, ts(0));
        assert_eq!(a.verdict, Verdict::Unknown);
        let a = classify(&unseen, 1e14, false, &p, Some(&a.state), ts(16));
        assert_eq!(a.verdict, Verdict::Dead, "{}", a.reason);
    }

    #[test]
    fn recovery_needs_min_dwell() {
        let p = policy(); // min_dwell 300 s
        let dead = HealthState {
            verdict: Verdict::Dead,
            since: ts(0),
            recovering_since: None,
            disconnected_since: None,
        };
        let mut state = dead;
        for t in (1000..1300).step_by(10) {
            let a = classify(
                &connected(t, 0, t - 1, 450),
                1e14,
                false,
                &p,
                Some(&state),
                ts(t),
            );
            assert_eq!(a.verdict, Verdict::Dead, "at {t}: {}", a.reason);
            state = a.state;
        }
        let a = classify(
            &connected(1300, 0, 1299, 450),
            1e14,
            false,
            &p,
            Some(&state),
            ts(1300),
        );
        assert_eq!(a.verdict, Verdict::Healthy, "{}", a.reason);
        assert_eq!(a.state.since, ts(1300));
        // A relapse during recovery resets the dwell.
        let mut state = HealthState {
            verdict: Verdict::Degraded,
            since: ts(0),
            recovering_since: None,
            disconnected_since: None,
        };
        for (t, shares) in [
            (1000, 450),
            (1100, 450),
            (1150, 100),
            (1200, 450),
            (1400, 450),
        ] {
            state = classify(
                &connected(t, 0, t - 1, shares),
                1e14,
                false,
                &p,
                Some(&state),
                ts(t),
            )
            .state;
        }
        assert_eq!(state.verdict, Verdict::Degraded);
        assert_eq!(state.recovering_since, Some(ts(1200)));
        let a = classify(
            &connected(1500, 0, 1499, 450),
            1e14,
            false,
            &p,
            Some(&state),
            ts(1500),
        );
        assert_eq!(a.verdict, Verdict::Healthy);
    }

    #[test]
    fn reasons_read_well() {
        let p = policy();
        let a = classify(
            &connected(1000, 0, 950, 450),
            1e14,
            false,
            &p,
            None,
            ts(1000),
        );
        assert_eq!(
            a.reason.to_string(),
            "no valid share for 50s (limit 40s at 0.500 shares/s)"
        );
        let s = serde_json::to_string(&a.state).unwrap();
        let back: HealthState = serde_json::from_str(&s).unwrap();
        assert_eq!(back, a.state);
    }
}
