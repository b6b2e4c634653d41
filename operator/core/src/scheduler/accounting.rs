//! SLA accounting: per contract and per slot (default one minute) — was the contract up, down, or
//! not judgeable; how much hashrate it is owed, with a confidence interval; what credit that is
//! worth; and whether the uptime target is missed with confidence.
//!
//! # Why counting shares needs statistics
//!
//! The hub measures a worker from its shares. At miner-facing difficulty `d` a worker hashing at
//! `H` finds shares as a Poisson process of rate `λ = H / (d · 2^32)`, so a slot's delivery is a
//! count with Poisson noise: one machine at one share per 2 s sends ~30 shares a minute, ±18 %
//! from luck alone. A plain threshold ("up iff measured ≥ (1 − tolerance) × contracted") would
//! call about four in ten minutes of a perfectly healthy machine down. The verdicts here are tests
//! with a stated error budget instead, like the health verdicts.
//!
//! # Slot verdicts
//!
//! Each cycle feeds a [`Delivery`]: the shares the contract's serving workers delivered since the
//! previous cycle (the hub's *accepted* and *below-target* buckets — locally valid work that was
//! not rejected or lost at the pool — by count and by difficulty sum), or the reason the interval
//! cannot be judged. Intervals are cut at slot boundaries (pro rata by time) and summed into the
//! open slot. When a slot closes, with `T` the seconds it was observed, `D = Σ d` and
//! `Q = Σ d²` (per worker and interval, `Δ(Σd)² / Δn`: each worker weighed by the mean difficulty
//! its shares were found at, as the health test does):
//!
//! ```text
//! d_eff = Q / D                          effective share size (= d when the difficulty is fixed)
//! x     = D / d_eff                      effective share count (= n when the difficulty is fixed)
//! μ₀    = (1 − tolerance) · C · T / (2^32 · d_eff)     expected count at the required line
//! down  ⇔  P(X ≤ x | Poisson(μ₀)) < α,   α = falseDownBudget / 10⁴
//! ```
//!
//! `d_eff` makes a mix of difficulties (vardiff steps, workers of different sizes) behave like a
//! Poisson count with the same mean and variance as the work `Σ d`. A healthy contract is called
//! down with probability at most `α` per slot — one false down slot per 10,000 contract-slots by
//! default; slots are disjoint and judged once, so no scan correction is needed. A slot is
//! *unobserved* (neither up nor down) when less than half of it was observed, and time is not
//! observed when: no hub could be read; the gap since the previous cycle exceeds `max_gap`
//! (operator down); a serving worker has no verdict yet (warm-up of a fresh miner, or a hub that
//! restarted); a hub's counters went backwards (hub restart); or the contract has not delivered
//! its first share yet and none of its workers is judged failing.
//!
//! **Resolution.** With `μ_C = C · T / (2^32 · d)` shares expected at the contracted rate, a slot
//! is down for sure-ish (99 % of slots) when the delivered fraction `f` satisfies
//! `f·μ_C + 2.33·√(f·μ_C) ≤ (1 − tol)·μ_C − z_α·√((1 − tol)·μ_C)` with `z_α ≈ 3.72` at
//! `α = 10⁻⁴`. For 80 % delivered at 5 % tolerance that needs `μ_C ≳ 1,450` shares per slot; at
//! 30 shares per slot (one machine, one share per 2 s, one-minute slots) only a slot below about
//! a third of contracted is called down. Choose the slot length and the miner-facing share rate
//! so that `μ_C` is large enough for the shortfall you want each slot to see (or rely on the
//! credit, which needs no per-slot resolution): `docs/scheduler.md` has the table.
//!
//! # Shortfall and credit: unbiased
//!
//! Per observed slot of length `L` the shortfall against the contracted rate is estimated as
//! `s = (C · T − 2^32 · D) · L / T` hashes — signed: luck above and below the line cancels over
//! time, so a healthy contract accumulates ≈ 0 and a contract delivering 80 % accumulates 20 %
//! of its contracted hashes. Its variance is `(2^32)² · Q · (L/T)²`. The ledger keeps the signed
//! sum `S` and its variance `V`; what is owed is `max(0, S)` with the 95 % interval
//! `[max(0, S − 1.96√V), max(0, S + 1.96√V)]`, and credit = owed (TH/s·h) × `creditRate`. The
//! tolerance is the uptime line; it is not a discount on hashes not delivered.
//!
//! # Breached, with confidence
//!
//! With `k` down slots out of `N` judged (up + down), the contract is Breached only when the exact
//! one-sided binomial test rejects "the down rate is within the target" at the 1 % level:
//! `P(Bin(N, 1 − target) ≥ k) < 0.01`. One down slot never breaches; uptime is shown with its
//! 95 % (Wilson) interval.
//!
//! The whole state is a small serializable [`Ledger`] kept in the contract's status, so a restart
//! loses at most the samples it did not see (unobserved time, never a wrong verdict), and a
//! replayed sample (at or before the last one) is ignored instead of counted twice.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::time::Duration;

use crate::scheduler::health::{HASHES_PER_DIFFICULTY, ln_factorial, poisson_ln_cdf};

/// Hashes in one TH/s·hour.
pub const HASHES_PER_TH_HOUR: f64 = 1e12 * 3600.0;
/// Two-sided 95 % normal quantile, for the shortfall and uptime intervals.
pub const Z95: f64 = 1.959_963_984_540_054;
/// Level of the Breached test: the target is missed with 99 % confidence.
pub const BREACH_TEST_LEVEL: f64 = 0.01;

/// The promise being measured.
#[derive(Debug, Clone, PartialEq)]
pub struct SlaTerms {
    /// Hashes per second.
    pub contracted_hashrate: f64,
    /// 0.05 = 5 %.
    pub tolerance: f64,
    /// Credit per TH/s·hour of shortfall.
    pub credit_rate: f64,
    pub slot: Duration,
    /// Longest interval one sample may stand for.
    pub max_gap: Duration,
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
    /// `α`: probability that a slot of a contract delivering exactly the required line is called
    /// down (`falseDownBudget / 10⁴`).
    pub false_down_probability: f64,
    /// Share of judged slots that must be up (0.99).
    pub uptime_target: f64,
}

impl SlaTerms {
    /// `(1 − tolerance) × contracted`, in hashes per second.
    pub fn required(&self) -> f64 {
        (1.0 - self.tolerance.clamp(0.0, 1.0)) * self.contracted()
    }

    fn contracted(&self) -> f64 {
        if self.contracted_hashrate.is_finite() {
            self.contracted_hashrate.max(0.0)
        } else {
            0.0
        }
    }

    fn alpha(&self) -> f64 {
        if self.false_down_probability.is_finite() {
            self.false_down_probability.clamp(1e-300, 0.5)
        } else {
            1e-4
        }
    }

    fn credit_rate(&self) -> f64 {
        if self.credit_rate.is_finite() {
            self.credit_rate.max(0.0)
        } else {
            0.0
        }
    }

    fn slot_ms(&self) -> i64 {
        i64::try_from(self.slot.as_millis())
            .unwrap_or(i64::MAX)
            .max(1000)
    }

    fn origin_ms(&self) -> i64 {
        self.start.map(|s| s.as_millisecond()).unwrap_or(0)
    }

    /// Start of the slot containing `ms`.
    fn slot_start(&self, ms: i64) -> i64 {
        let origin = self.origin_ms();
        let len = self.slot_ms();
        origin.saturating_add(
            ms.saturating_sub(origin)
                .div_euclid(len)
                .saturating_mul(len),
        )
    }

    /// Length of the slot starting at `start_ms` (clipped at the contract's end), seconds.
    fn span_secs(&self, start_ms: i64) -> f64 {
        let mut end_ms = start_ms.saturating_add(self.slot_ms());
        if let Some(end) = self.end {
            end_ms = end_ms.min(end.as_millisecond());
        }
        end_ms.saturating_sub(start_ms).max(0) as f64 / 1000.0
    }
}

/// Why an interval cannot be judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Unobserved {
    /// No hub could be read this cycle.
    NoData,
    /// A serving worker has no verdict yet (a fresh miner warming up, or after a hub restart).
    WarmUp,
    /// A hub's counters went backwards (the hub restarted): the interval's shares are unknown.
    CounterReset,
    /// The first cycle after a (re)start: no previous counters to subtract.
    NoBaseline,
    /// The contract has not delivered its first share and none of its workers is failing.
    NotStarted,
}

/// What the contract's serving workers delivered in one interval (since the previous cycle).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Delivery {
    /// Shares delivered (not rejected or lost at the pool).
    pub shares: f64,
    /// Their difficulty sum `Σ d`.
    pub difficulty: f64,
    /// `Σ d²`, estimated per worker as `Δ(Σd)² / Δn`.
    pub difficulty_squared: f64,
    /// Miner-facing difficulty to assume when no share arrived (the serving workers' current
    /// difficulty, weighed by expected hashrate); `None`: unknown.
    pub reference_difficulty: Option<f64>,
    /// `Some`: this interval cannot be judged.
    pub unobserved: Option<Unobserved>,
    /// A serving worker is judged failing (Dead or Degraded): the contract has started even
    /// without a share.
    pub failing: bool,
}

impl Delivery {
    /// An interval that cannot be judged.
    pub fn unobserved(why: Unobserved) -> Self {
        Delivery {
            unobserved: Some(why),
            ..Delivery::default()
        }
    }

    /// `n` shares at fixed difficulty `d`.
    pub fn shares_at(n: f64, d: f64) -> Self {
        Delivery {
            shares: n,
            difficulty: n * d,
            difficulty_squared: n * d * d,
            reference_difficulty: Some(d),
            ..Delivery::default()
        }
    }

    fn scaled(&self, f: f64) -> Delivery {
        Delivery {
            shares: self.shares * f,
            difficulty: self.difficulty * f,
            difficulty_squared: self.difficulty_squared * f,
            ..*self
        }
    }
}

/// Verdict of one closed slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SlotVerdict {
    Up,
    Down,
    Unobserved,
}

/// The slot being filled.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct OpenSlot {
    pub start: Option<Timestamp>,
    pub observed_seconds: f64,
    pub shares: f64,
    pub difficulty: f64,
    pub difficulty_squared: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_difficulty: Option<f64>,
}

/// A contract's SLA ledger (mirrors the RentalContract status fields). Reads the first layout
/// too (see [`LedgerRepr`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, from = "LedgerRepr")]
pub struct Ledger {
    pub up_slots: u64,
    pub down_slots: u64,
    pub unobserved_slots: u64,
    /// Signed shortfall against the contracted rate, hashes (negative: delivered more).
    pub shortfall_hashes: f64,
    /// Variance of that estimate, hashes².
    pub shortfall_variance: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open: Option<OpenSlot>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_sample_at: Option<Timestamp>,
    /// When accounting began (the contract's first share, or a worker judged failing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    /// Verdict of the newest closed slot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_slot: Option<SlotVerdict>,
}

/// The open slot as either layout stored it.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct OpenSlotRepr {
    start: Option<Timestamp>,
    observed_seconds: f64,
    shares: f64,
    difficulty: f64,
    difficulty_squared: f64,
    reference_difficulty: Option<f64>,
    /// First layout: a hashrate integral, which the share-based ledger cannot use.
    delivered_hashes: Option<f64>,
}

/// A ledger as either layout stored it: the first one (`observedSlots`, `upSlots`,
/// `shortfallHashrateHours`, `credit`, an open slot of integrated hashrate) is migrated — its
/// counts and shortfall kept, its open slot dropped as unobserved.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LedgerRepr {
    up_slots: u64,
    down_slots: Option<u64>,
    unobserved_slots: u64,
    shortfall_hashes: Option<f64>,
    shortfall_variance: f64,
    open: Option<OpenSlotRepr>,
    last_sample_at: Option<Timestamp>,
    started_at: Option<Timestamp>,
    last_slot: Option<SlotVerdict>,
    // First layout.
    observed_slots: Option<u64>,
    shortfall_hashrate_hours: Option<f64>,
}

impl From<LedgerRepr> for Ledger {
    fn from(r: LedgerRepr) -> Self {
        let finite = |x: f64| if x.is_finite() { x } else { 0.0 };
        let first_layout = r.down_slots.is_none() && r.shortfall_hashes.is_none();
        if first_layout {
            let observed = r.observed_slots.unwrap_or(0);
            let up = r.up_slots.min(observed);
            return Ledger {
                up_slots: up,
                down_slots: observed - up,
                unobserved_slots: r.unobserved_slots,
                shortfall_hashes: finite(r.shortfall_hashrate_hours.unwrap_or(0.0)).max(0.0)
                    * HASHES_PER_TH_HOUR,
                shortfall_variance: 0.0,
                open: None,
                last_sample_at: r.last_sample_at,
                started_at: if observed > 0 { r.last_sample_at } else { None },
                last_slot: None,
            };
        }
        Ledger {
            up_slots: r.up_slots,
            down_slots: r.down_slots.unwrap_or(0),
            unobserved_slots: r.unobserved_slots,
            shortfall_hashes: finite(r.shortfall_hashes.unwrap_or(0.0)),
            shortfall_variance: finite(r.shortfall_variance).max(0.0),
            open: r
                .open
                .filter(|o| o.delivered_hashes.is_none())
                .map(|o| OpenSlot {
                    start: o.start,
                    observed_seconds: finite(o.observed_seconds).max(0.0),
                    shares: finite(o.shares).max(0.0),
                    difficulty: finite(o.difficulty).max(0.0),
                    difficulty_squared: finite(o.difficulty_squared).max(0.0),
                    reference_difficulty: o.reference_difficulty,
                }),
            last_sample_at: r.last_sample_at,
            started_at: r.started_at,
            last_slot: r.last_slot,
        }
    }
}

/// A 95 % confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

impl Ledger {
    /// Judged slots: up + down.
    pub fn observed_slots(&self) -> u64 {
        self.up_slots.saturating_add(self.down_slots)
    }

    /// `up / (up + down)` (1.0 when nothing was judged yet).
    pub fn uptime(&self) -> f64 {
        let n = self.observed_slots();
        if n == 0 {
            1.0
        } else {
            self.up_slots as f64 / n as f64
        }
    }

    /// 95 % Wilson interval of the uptime.
    pub fn uptime_interval(&self) -> Interval {
        wilson(self.up_slots, self.observed_slots())
    }

    /// Hashes owed: `max(0, S)`.
    pub fn owed_hashes(&self) -> f64 {
        self.shortfall_hashes.max(0.0)
    }

    /// TH/s·hours owed.
    pub fn shortfall_hashrate_hours(&self) -> f64 {
        self.owed_hashes() / HASHES_PER_TH_HOUR
    }

    /// 95 % interval of the hashes owed.
    pub fn owed_interval(&self) -> Interval {
        let sd = self.shortfall_variance.max(0.0).sqrt();
        Interval {
            low: (self.shortfall_hashes - Z95 * sd).max(0.0),
            high: (self.shortfall_hashes + Z95 * sd).max(0.0),
        }
    }

    /// Credit owed: TH/s·hours owed × rate.
    pub fn credit(&self, terms: &SlaTerms) -> f64 {
        self.shortfall_hashrate_hours() * terms.credit_rate()
    }

    /// 95 % interval of the credit.
    pub fn credit_interval(&self, terms: &SlaTerms) -> Interval {
        let i = self.owed_interval();
        let r = terms.credit_rate() / HASHES_PER_TH_HOUR;
        Interval {
            low: i.low * r,
            high: i.high * r,
        }
    }

    /// Whether the uptime target is missed with confidence (see the module doc), and the
    /// test's p-value.
    pub fn breached(&self, target: f64) -> (bool, f64) {
        let p = binomial_upper_tail(
            self.down_slots,
            self.observed_slots(),
            (1.0 - target).clamp(0.0, 1.0),
        );
        (p < BREACH_TEST_LEVEL, p)
    }
}

/// Two-sided 95 % Wilson score interval of `k / n` (`[0, 1]` when `n = 0`).
pub fn wilson(k: u64, n: u64) -> Interval {
    if n == 0 {
        return Interval {
            low: 0.0,
            high: 1.0,
        };
    }
    let n_f = n as f64;
    let p = k.min(n) as f64 / n_f;
    let z2 = Z95 * Z95;
    let denom = 1.0 + z2 / n_f;
    let center = (p + z2 / (2.0 * n_f)) / denom;
    let half = Z95 * (p * (1.0 - p) / n_f + z2 / (4.0 * n_f * n_f)).sqrt() / denom;
    Interval {
        low: (center - half).clamp(0.0, 1.0),
        high: (center + half).clamp(0.0, 1.0),
    }
}

/// `P(X ≥ k)` for `X ~ Binomial(n, q)`, summed in log space from `k` upward (the terms fall
/// geometrically above the mean); 1 when `k` is at or below the mean.
pub fn binomial_upper_tail(k: u64, n: u64, q: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if k > n {
        return 0.0;
    }
    if q <= 0.0 {
        return 0.0;
    }
    if q >= 1.0 {
        return 1.0;
    }
    if (k as f64) <= n as f64 * q {
        return 1.0; // at or below the mean: nothing to reject
    }
    let (lq, lp) = (q.ln(), (1.0 - q).ln());
    let ln_pmf = |i: u64| {
        ln_factorial(n) - ln_factorial(i) - ln_factorial(n - i)
            + i as f64 * lq
            + (n - i) as f64 * lp
    };
    let first = ln_pmf(k);
    let mut sum = 1.0_f64;
    let mut term = 1.0_f64;
    let mut i = k;
    while i < n {
        // pmf(i+1)/pmf(i) = (n − i)/(i + 1) · q/(1 − q)
        term *= (n - i) as f64 / (i + 1) as f64 * q / (1.0 - q);
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
        i += 1;
    }
    (first + sum.ln()).exp().min(1.0)
}

/// A slot that closed during [`record`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClosedSlot {
    pub start: Timestamp,
    pub verdict: SlotVerdict,
    pub observed_seconds: f64,
    /// Delivered hashrate over the observed part (H/s).
    pub delivered_hashrate: f64,
    /// Effective share count and its expectation at the required line.
    pub shares: f64,
    pub expected_at_required: f64,
    /// `ln P(X ≤ shares | expected_at_required)`.
    pub ln_p_value: f64,
    /// Signed shortfall estimate of the slot, hashes.
    pub shortfall_hashes: f64,
}

/// What one [`record`] call did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recorded {
    pub closed: Vec<ClosedSlot>,
    /// Slots skipped entirely by a gap longer than `max_gap` (counted as unobserved).
    pub skipped_slots: u64,
}

fn ts_ms(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(if ms < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

/// The verdict of a slot with the given sums: (down, effective count, μ₀, ln p).
pub fn slot_test(
    terms: &SlaTerms,
    observed_seconds: f64,
    difficulty: f64,
    difficulty_squared: f64,
    reference_difficulty: Option<f64>,
) -> (bool, f64, f64, f64) {
    let d_eff = if difficulty > 0.0 && difficulty_squared > 0.0 {
        difficulty_squared / difficulty
    } else {
        reference_difficulty
            .filter(|d| d.is_finite() && *d > 0.0)
            .unwrap_or(0.0)
    };
    if d_eff <= 0.0 || !d_eff.is_finite() {
        // No share and no difficulty known: no evidence either way.
        return (false, 0.0, 0.0, 0.0);
    }
    let x = difficulty / d_eff;
    let mu0 = terms.required() * observed_seconds / (HASHES_PER_DIFFICULTY * d_eff);
    // NaN as well as zero or negative: no expectation to test against.
    if mu0.is_nan() || mu0 <= 0.0 || x >= mu0 {
        return (false, x, mu0.max(0.0), 0.0);
    }
    let k = x.round().max(0.0) as u64;
    let ln_p = poisson_ln_cdf(k, mu0);
    (ln_p < terms.alpha().ln(), x, mu0, ln_p)
}

fn close(ledger: &mut Ledger, terms: &SlaTerms, slot: OpenSlot) -> ClosedSlot {
    let start = slot.start.unwrap_or(Timestamp::UNIX_EPOCH);
    let span = terms.span_secs(start.as_millisecond());
    let observed = span > 0.0 && slot.observed_seconds * 2.0 >= span;
    let delivered_hashes = slot.difficulty * HASHES_PER_DIFFICULTY;
    let delivered = if slot.observed_seconds > 0.0 {
        delivered_hashes / slot.observed_seconds
    } else {
        0.0
    };
    let mut out = ClosedSlot {
        start,
        verdict: SlotVerdict::Unobserved,
        observed_seconds: slot.observed_seconds,
        delivered_hashrate: delivered,
        shares: slot.shares,
        expected_at_required: 0.0,
        ln_p_value: 0.0,
        shortfall_hashes: 0.0,
    };
    if !observed {
        ledger.unobserved_slots = ledger.unobserved_slots.saturating_add(1);
        ledger.last_slot = Some(SlotVerdict::Unobserved);
        return out;
    }
    let (down, x, mu0, ln_p) = slot_test(
        terms,
        slot.observed_seconds,
        slot.difficulty,
        slot.difficulty_squared,
        slot.reference_difficulty,
    );
    let scale = span / slot.observed_seconds;
    let s = (terms.contracted() * slot.observed_seconds - delivered_hashes) * scale;
    let var =
        slot.difficulty_squared * HASHES_PER_DIFFICULTY * HASHES_PER_DIFFICULTY * scale * scale;
    ledger.shortfall_hashes += s;
    ledger.shortfall_variance += var;
    let verdict = if down {
        ledger.down_slots = ledger.down_slots.saturating_add(1);
        SlotVerdict::Down
    } else {
        ledger.up_slots = ledger.up_slots.saturating_add(1);
        SlotVerdict::Up
    };
    ledger.last_slot = Some(verdict);
    out.verdict = verdict;
    out.shares = x;
    out.expected_at_required = mu0;
    out.ln_p_value = ln_p;
    out.shortfall_hashes = s;
    out
}

/// Fold one cycle's [`Delivery`] (for the interval since the previous sample, ending at `at`)
/// into the ledger. Pure.
pub fn record(
    ledger: &Ledger,
    terms: &SlaTerms,
    at: Timestamp,
    delivery: &Delivery,
) -> (Ledger, Recorded) {
    let mut next = ledger.clone();
    let mut out = Recorded::default();
    let at_ms = at.as_millisecond();
    let len = terms.slot_ms();
    let Some(last) = ledger.last_sample_at else {
        next.last_sample_at = Some(at);
        return (next, out);
    };
    let last_ms = last.as_millisecond();
    if at_ms <= last_ms {
        return (next, out); // replay or clock step back: already counted
    }
    next.last_sample_at = Some(at);
    let max_gap_ms = i64::try_from(terms.max_gap.as_millis()).unwrap_or(i64::MAX);
    let gap = at_ms - last_ms > max_gap_ms;
    // Has the contract started (its first share, or a worker judged failing)?
    let mut unobserved = delivery.unobserved;
    if unobserved.is_none() && next.started_at.is_none() {
        if delivery.shares > 0.0 || delivery.failing {
            next.started_at = Some(at);
        } else {
            unobserved = Some(Unobserved::NotStarted);
        }
    }
    let mut from = if gap { at_ms } else { last_ms };
    let mut to = at_ms;
    if let Some(start) = terms.start {
        from = from.max(start.as_millisecond());
    }
    if let Some(end) = terms.end {
        to = to.min(end.as_millisecond());
    }
    // Slots the open one cannot reach any more are final.
    if let Some(open) = next.open
        && let Some(s) = open.start
        && s.as_millisecond().saturating_add(len) <= from
    {
        out.closed.push(close(&mut next, terms, open));
        next.open = None;
    }
    if gap {
        // Whole slots inside the gap: unobserved.
        let mut first_whole = terms.slot_start(last_ms);
        if first_whole < last_ms {
            first_whole = first_whole.saturating_add(len);
        }
        let skipped = terms.slot_start(from).saturating_sub(first_whole) / len;
        out.skipped_slots = u64::try_from(skipped).unwrap_or(0);
        next.unobserved_slots = next.unobserved_slots.saturating_add(out.skipped_slots);
    }
    let total_ms = (to - from).max(0) as f64;
    let mut cursor = from;
    while cursor < to {
        let slot_start = terms.slot_start(cursor);
        let slot_end = slot_start.saturating_add(len);
        let piece_end = slot_end.min(to);
        let secs = (piece_end - cursor) as f64 / 1000.0;
        let open = match next.open {
            Some(o) if o.start.map(|s| s.as_millisecond()) == Some(slot_start) => o,
            Some(o) => {
                out.closed.push(close(&mut next, terms, o));
                OpenSlot {
                    start: Some(ts_ms(slot_start)),
                    ..OpenSlot::default()
                }
            }
            None => OpenSlot {
                start: Some(ts_ms(slot_start)),
                ..OpenSlot::default()
            },
        };
        let mut o = open;
        if unobserved.is_none() {
            let part = delivery.scaled((piece_end - cursor) as f64 / total_ms.max(1.0));
            o.observed_seconds += secs;
            o.shares += part.shares;
            o.difficulty += part.difficulty;
            o.difficulty_squared += part.difficulty_squared;
            if delivery.reference_difficulty.is_some() {
                o.reference_difficulty = delivery.reference_difficulty;
            }
        }
        next.open = Some(o);
        cursor = piece_end;
    }
    // A slot whose end has been reached is final now.
    if let Some(open) = next.open
        && let Some(s) = open.start
    {
        let mut open_end = s.as_millisecond().saturating_add(len);
        if let Some(end) = terms.end {
            open_end = open_end.min(end.as_millisecond());
        }
        if at_ms >= open_end {
            out.closed.push(close(&mut next, terms, open));
            next.open = None;
        }
    }
    (next, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ledger_of_the_first_layout_is_migrated() {
        let old = serde_json::json!({
            "observedSlots": 60, "upSlots": 52, "shortfallHashrateHours": 10.0, "credit": 20.0,
            "open": {"start": "2026-01-01T00:00:00Z", "deliveredHashes": 1e15,
                     "observedSeconds": 30.0},
            "lastSampleAt": "2026-01-01T00:00:30Z"
        });
        let l: Ledger = serde_json::from_value(old).unwrap();
        assert_eq!((l.up_slots, l.down_slots, l.observed_slots()), (52, 8, 60));
        assert!((l.shortfall_hashrate_hours() - 10.0).abs() < 1e-9);
        assert_eq!(l.open, None, "the old open slot is dropped as unobserved");
        assert!(l.last_sample_at.is_some() && l.started_at.is_some());
        // And the new layout round-trips.
        let back: Ledger = serde_json::from_str(&serde_json::to_string(&l).unwrap()).unwrap();
        assert_eq!(back, l);
    }

    #[test]
    fn binomial_tail_matches_direct_sums() {
        // P(X ≥ 1 | 5, 0.01) = 1 − 0.99⁵.
        let p = binomial_upper_tail(1, 5, 0.01);
        assert!((p - (1.0 - 0.99f64.powi(5))).abs() < 1e-12, "{p}");
        // P(X ≥ 2 | 10, 0.01)
        let direct = 1.0 - 0.99f64.powi(10) - 10.0 * 0.01 * 0.99f64.powi(9);
        assert!((binomial_upper_tail(2, 10, 0.01) - direct).abs() < 1e-12);
        assert_eq!(binomial_upper_tail(0, 10, 0.5), 1.0);
        assert_eq!(binomial_upper_tail(11, 10, 0.5), 0.0);
        assert_eq!(binomial_upper_tail(3, 1000, 0.01), 1.0, "below the mean");
        assert!(binomial_upper_tail(1000, 100_000, 0.001) < 1e-100);
    }

    #[test]
    fn one_down_slot_never_breaches_and_many_do() {
        let l = Ledger {
            up_slots: 4,
            down_slots: 1,
            ..Ledger::default()
        };
        assert!(!l.breached(0.99).0);
        let l = Ledger {
            up_slots: 8,
            down_slots: 2,
            ..Ledger::default()
        };
        assert!(l.breached(0.99).0, "{}", l.breached(0.99).1);
        let w = wilson(99, 100);
        assert!(w.low > 0.94 && w.low < 0.96 && w.high > 0.99, "{w:?}");
    }

    #[test]
    fn the_effective_count_of_a_fixed_difficulty_is_the_share_count() {
        let t = SlaTerms {
            contracted_hashrate: 100e12,
            tolerance: 0.05,
            credit_rate: 1.0,
            slot: Duration::from_secs(60),
            max_gap: Duration::from_secs(120),
            start: None,
            end: None,
            false_down_probability: 1e-4,
            uptime_target: 0.99,
        };
        let d = 100e12 * 2.0 / HASHES_PER_DIFFICULTY; // one share per 2 s at contracted
        let (down, x, mu0, _) = slot_test(&t, 60.0, 30.0 * d, 30.0 * d * d, None);
        assert!(!down);
        assert!((x - 30.0).abs() < 1e-9);
        assert!((mu0 - 28.5).abs() < 1e-9);
        assert!(
            slot_test(&t, 60.0, 0.0, 0.0, Some(d)).0,
            "nothing in a minute is down"
        );
        assert!(
            !slot_test(&t, 60.0, 0.0, 0.0, None).0,
            "no difficulty: no evidence"
        );
    }
}
