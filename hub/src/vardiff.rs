//! Per-miner variable difficulty: keep each miner sending a share about every `target_interval`.
//!
//! The hub, not the pool, picks the miner-facing difficulty: one share every ~2 s gives the health
//! code a dense, Poisson-distributed signal (docs/protocol.md, "Hashrate and health from
//! shares"), while the pool only sees shares that meet its own target. Pure state machine, no
//! I/O, no clock: the caller passes `now` in seconds.
//!
//! The estimate is work-based, not count-based: `Σ difficulty of shares / elapsed` is the miner's
//! hashrate in difficulty units per second, so shares still arriving at the previous difficulty
//! right after a change do not distort it. A retarget happens when enough shares were seen
//! (`retarget_shares`), when the window is long (`retarget_after`), or early when the miner is
//! far too fast (ramp-up from the initial difficulty); changes within ±`tolerance` are ignored so
//! that Poisson noise does not make the difficulty flap.
//!
//! A miner far too slow for its difficulty (a CPU miner at the default 1024 needs ~0.001) finds
//! no share at all, so it gives no rate to estimate. Zero shares over `NO_SHARE_INTERVALS`
//! expected share intervals has probability e^-5 < 1 % if the difficulty were right, so the
//! difficulty is then cut by `NO_SHARE_STEP` at once and the check repeats every 5 intervals:
//! 1024 → 0.001 in four steps, ~40 s at the default 2 s interval.
//!
//! The first minute ([`Vardiff::for_new_miner`]): a miner that has not found its first share yet
//! and told the hub nothing about its speed (no `mining.suggest_difficulty`, no expected
//! hashrate) is stepped down faster, by `FIRST_SHARE_STEP` after each single expected interval
//! without a share: 1024 → 4 → 1/64 → 1/16384 (clamped to `minDifficulty`), so a one-thread CPU
//! miner (~7 MH/s) finds its first share within about 10 s instead of a minute. This cannot
//! flood a fast miner: a miner fast enough to matter finds shares at 1024 within the first
//! interval and never takes the step; one that is just slow enough to miss it lands at most 256×
//! too low and is lifted by the "far too fast" retarget after its 4th share, a fraction of a
//! second later. After the first share the normal rules apply.

/// The settings, defined with the hub config in [`hashsched_contract::config`].
pub use hashsched_contract::config::VardiffConfig;

/// Largest factor one retarget may change the difficulty by (up and down).
const MAX_STEP_UP: f64 = 64.0;
const MAX_STEP_DOWN: f64 = 1.0 / 16.0;
/// Expected share intervals without any share before the no-share step down (P = e^-5 < 1 %).
const NO_SHARE_INTERVALS: f64 = 5.0;
/// Factor of the no-share step down.
const NO_SHARE_STEP: f64 = 1.0 / 32.0;
/// Factor of the step down before a new miner's first share (after one silent interval).
const FIRST_SHARE_STEP: f64 = 1.0 / 256.0;

/// One miner's vardiff state.
#[derive(Debug, Clone, PartialEq)]
pub struct Vardiff {
    difficulty: f64,
    window_start: f64,
    shares: u32,
    work: f64,
    /// Before the first share of a miner nobody told us the speed of: faster steps down.
    first_share_pending: bool,
}

impl Vardiff {
    pub fn new(cfg: &VardiffConfig, initial: f64, now: f64) -> Self {
        Self {
            difficulty: cfg.clamp(initial),
            window_start: now,
            shares: 0,
            work: 0.0,
            first_share_pending: false,
        }
    }

    /// A new miner connection at `initial`, with the faster steps down before its first share
    /// (module docs, "the first minute") until a share comes or [`Self::set`] picks a difficulty.
    pub fn for_new_miner(cfg: &VardiffConfig, initial: f64, now: f64) -> Self {
        Self {
            first_share_pending: cfg.fast_first_share,
            ..Self::new(cfg, initial, now)
        }
    }

    /// Whether the first-minute steps are still armed.
    pub fn first_share_pending(&self) -> bool {
        self.first_share_pending
    }

    /// Restart the measuring window (e.g. when the miner got its first job: the time before it
    /// had work says nothing about its speed).
    pub fn start_window(&mut self, now: f64) {
        self.restart(now);
    }

    pub fn difficulty(&self) -> f64 {
        self.difficulty
    }

    /// Force a difficulty (e.g. `mining.suggest_difficulty`); restarts the window.
    pub fn set(&mut self, cfg: &VardiffConfig, d: f64, now: f64) -> f64 {
        // A difficulty chosen on evidence (the miner's suggestion, an expected hashrate).
        self.first_share_pending = false;
        self.difficulty = cfg.clamp(d);
        self.restart(now);
        self.difficulty
    }

    fn restart(&mut self, now: f64) {
        self.window_start = now;
        self.shares = 0;
        self.work = 0.0;
    }

    /// A locally valid share credited at `share_difficulty`. Returns the new difficulty when
    /// it changes.
    pub fn on_share(
        &mut self,
        cfg: &VardiffConfig,
        share_difficulty: f64,
        now: f64,
    ) -> Option<f64> {
        self.shares = self.shares.saturating_add(1);
        self.first_share_pending = false;
        if share_difficulty.is_finite() && share_difficulty > 0.0 {
            self.work += share_difficulty;
        }
        let elapsed = now - self.window_start;
        let interval = cfg.share_interval.as_secs_f64();
        let retarget_after = cfg.retarget_after.as_secs_f64();
        let far_too_fast = self.shares >= 4 && elapsed < interval * f64::from(self.shares) / 8.0;
        if self.shares >= cfg.retarget_shares || elapsed >= retarget_after || far_too_fast {
            return self.retarget(cfg, now);
        }
        None
    }

    /// Periodic check (e.g. every 1-2 s): lowers the difficulty of a miner that finds no shares
    /// at the current one (started too high, or switched to a weaker model) — fast when it found
    /// none at all (see the module docs), by the work-based estimate otherwise.
    pub fn on_tick(&mut self, cfg: &VardiffConfig, now: f64) -> Option<f64> {
        let elapsed = now - self.window_start;
        // 0.1 % slack: the window restarts on one tick and is checked on a later tick of the
        // same periodic timer, so "exactly 5 intervals" would otherwise often miss by a hair
        // and wait a whole tick more.
        let (intervals, step) = if self.first_share_pending {
            (1.0, FIRST_SHARE_STEP)
        } else {
            (NO_SHARE_INTERVALS, NO_SHARE_STEP)
        };
        let due = intervals * cfg.share_interval.as_secs_f64() * 0.999;
        if self.shares == 0 && elapsed >= due {
            let next = cfg.clamp(self.difficulty * step);
            self.restart(now);
            if next >= self.difficulty {
                return None; // already at the minimum
            }
            self.difficulty = next;
            return Some(next);
        }
        if elapsed
            >= cfg
                .retarget_after
                .as_secs_f64()
                .max(8.0 * cfg.share_interval.as_secs_f64())
        {
            return self.retarget(cfg, now);
        }
        None
    }

    fn retarget(&mut self, cfg: &VardiffConfig, now: f64) -> Option<f64> {
        let elapsed = (now - self.window_start).max(1e-3);
        // With no share at all, assume half a share's work: a gentle step down, not a cliff.
        let work = if self.shares == 0 {
            self.difficulty * 0.5
        } else {
            self.work
        };
        let ideal = work / elapsed * cfg.share_interval.as_secs_f64();
        let factor = (ideal / self.difficulty).clamp(MAX_STEP_DOWN, MAX_STEP_UP);
        self.restart(now);
        if !factor.is_finite() || (factor - 1.0).abs() <= cfg.tolerance {
            return None;
        }
        let next = cfg.clamp(self.difficulty * factor);
        if next == self.difficulty {
            return None;
        }
        self.difficulty = next;
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::DurationSpec;

    /// Drive a miner of `rate` difficulty-units per second with deterministic arrivals and a
    /// once-a-second tick, for an hour of simulated time.
    fn converge(rate: f64, start: f64) -> f64 {
        let cfg = VardiffConfig::default();
        let mut v = Vardiff::new(&cfg, start, 0.0);
        let mut t = 0.0;
        let mut next_share = v.difficulty() / rate;
        while t < 3600.0 {
            if next_share <= t + 1.0 {
                t = next_share;
                let d = v.difficulty();
                if v.on_share(&cfg, d, t).is_some() {
                    next_share = t + v.difficulty() / rate;
                } else {
                    next_share = t + d / rate;
                }
            } else {
                t += 1.0;
                if v.on_tick(&cfg, t).is_some() {
                    next_share = t + v.difficulty() / rate;
                }
            }
        }
        v.difficulty()
    }

    #[test]
    fn converges_to_the_share_interval_from_far_below_and_above() {
        // 100 TH/s ≈ 23283 difficulty units per second → ideal d ≈ 46566 at 2 s.
        let rate = 1e14 / 4_294_967_296.0;
        for start in [1.0, 1024.0, 1e9] {
            let d = converge(rate, start);
            let interval = d / rate;
            assert!(
                (1.4..=2.7).contains(&interval),
                "start {start}: ended at d={d}, interval {interval}"
            );
        }
    }

    #[test]
    fn silent_miner_steps_down_after_five_intervals_and_respects_min() {
        let cfg = VardiffConfig {
            min_difficulty: 16.0,
            ..Default::default()
        };
        let mut v = Vardiff::new(&cfg, 1024.0, 0.0);
        // Not before 5 expected intervals (10 s): P(no share | right difficulty) must be < 1 %.
        assert_eq!(v.on_tick(&cfg, 9.9), None);
        assert_eq!(v.on_tick(&cfg, 10.0), Some(32.0));
        assert_eq!(
            v.on_tick(&cfg, 19.0),
            None,
            "repeats only every 5 intervals"
        );
        assert_eq!(
            v.on_tick(&cfg, 19.999),
            Some(16.0),
            "clamped to the minimum; a tick a hair early counts"
        );
        assert_eq!(v.on_tick(&cfg, 30.0), None);
        assert_eq!(v.difficulty(), 16.0);
    }

    /// A cpuminer thread (~3 MH/s ≈ 7·10^-4 difficulty units per second) behind a hub at the
    /// default initial difficulty 1024, ticked every 2 s like a miner connection: its first
    /// share comes well within a minute, then vardiff settles at the 2 s interval.
    #[test]
    fn slow_miner_from_the_default_difficulty_shares_within_a_minute() {
        let cfg = VardiffConfig::default();
        let rate = 3e6 / 4_294_967_296.0;
        let mut v = Vardiff::new(&cfg, cfg.initial_difficulty, 0.0);
        let mut t = 0.0;
        // Deterministic arrivals: one share each `d / rate` seconds of work at the current d.
        let mut next_share = v.difficulty() / rate;
        let mut first_share = None;
        while t < 600.0 {
            let tick = (t / 2.0f64).floor() * 2.0 + 2.0;
            if next_share <= tick {
                t = next_share;
                first_share.get_or_insert(t);
                let d = v.difficulty();
                v.on_share(&cfg, d, t);
                next_share = t + v.difficulty() / rate;
            } else {
                t = tick;
                if v.on_tick(&cfg, t).is_some() {
                    next_share = t + v.difficulty() / rate;
                }
            }
        }
        let first = first_share.expect("a share within 10 minutes");
        assert!(first <= 50.0, "first share after {first} s");
        let interval = v.difficulty() / rate;
        assert!(
            (1.4..=2.7).contains(&interval),
            "ended at d={}, interval {interval}",
            v.difficulty()
        );
    }

    /// The first minute: a one-thread cpuminer (~7 MH/s) at the default 1024 finds its first
    /// share within about 10 s; a suggested difficulty turns the fast steps off; an ASIC that
    /// misses the first step is lifted again within its first few shares.
    #[test]
    fn a_new_slow_miner_shares_within_ten_seconds_and_a_fast_one_is_not_flooded() {
        let cfg = VardiffConfig::default();
        let rate = 7e6 / 4_294_967_296.0;
        let mut v = Vardiff::for_new_miner(&cfg, cfg.initial_difficulty, 0.0);
        let mut t = 0.0;
        let mut worked = 0.0; // difficulty units of work done at the current difficulty
        let first = loop {
            t += 0.1;
            worked += rate * 0.1;
            if worked >= v.difficulty() {
                break t;
            }
            // 2 s ticks
            if ((t * 10.0f64).round() as u64).is_multiple_of(20) && v.on_tick(&cfg, t).is_some() {
                worked = 0.0;
            }
            assert!(
                t < 60.0,
                "no share within a minute (d = {})",
                v.difficulty()
            );
        };
        assert!(first <= 12.0, "first share after {first} s");
        assert!(v.on_share(&cfg, v.difficulty(), first).is_none() || !v.first_share_pending());
        assert!(!v.first_share_pending());

        // Suggested difficulty: no fast steps.
        let mut s = Vardiff::for_new_miner(&cfg, 1024.0, 0.0);
        s.set(&cfg, 500.0, 0.0);
        assert_eq!(s.on_tick(&cfg, 2.0), None);

        // 4.4 TH/s (1024 difficulty units/s) that happened to miss the first 2 s at 1024:
        // cut once to 4, then its first shares come 256 a second and lift it right back up.
        let fast = 1024.0;
        let mut a = Vardiff::for_new_miner(&cfg, 1024.0, 0.0);
        assert_eq!(a.on_tick(&cfg, 2.0), Some(4.0));
        let mut t = 2.0;
        let mut shares_at_low = 0;
        while a.difficulty() < 64.0 {
            t += a.difficulty() / fast;
            shares_at_low += 1;
            a.on_share(&cfg, a.difficulty(), t);
            assert!(
                shares_at_low <= 8,
                "still at {} after {shares_at_low} shares",
                a.difficulty()
            );
        }
    }

    /// A miner with shares keeps the work-based retarget (no no-share cliff).
    #[test]
    fn a_miner_with_shares_is_not_cut_by_the_no_share_rule() {
        let cfg = VardiffConfig::default();
        let mut v = Vardiff::new(&cfg, 1000.0, 0.0);
        // One share in 30 s at d=1000 (interval 30 s: too slow but not silent).
        assert_eq!(v.on_share(&cfg, 1000.0, 9.0), None);
        assert_eq!(v.on_tick(&cfg, 30.0), None);
        let d = v
            .on_tick(&cfg, 60.0)
            .expect("work-based retarget at retargetAfter");
        assert!((1000.0 / 16.0..1000.0).contains(&d), "{d}");
    }

    #[test]
    fn steady_miner_does_not_flap() {
        let cfg = VardiffConfig::default();
        let mut v = Vardiff::new(&cfg, 1000.0, 0.0);
        let mut changes = 0;
        for i in 1..=300 {
            // exactly on target on average, with ±0.4 s alternating jitter
            let t = f64::from(i) * 2.0 + if i % 2 == 0 { -0.4 } else { 0.4 };
            if v.on_share(&cfg, 1000.0, t).is_some() {
                changes += 1;
            }
        }
        assert_eq!(changes, 0);
    }

    #[test]
    fn validate_rejects_nonsense() {
        assert!(VardiffConfig::default().validate().is_ok());
        for bad in [
            VardiffConfig {
                share_interval: DurationSpec::from_secs(0),
                ..Default::default()
            },
            VardiffConfig {
                min_difficulty: 10.0,
                max_difficulty: 1.0,
                ..Default::default()
            },
            VardiffConfig {
                tolerance: f64::NAN,
                ..Default::default()
            },
            VardiffConfig {
                retarget_shares: 0,
                ..Default::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn clamp_rounds_and_bounds() {
        let cfg = VardiffConfig::default();
        assert_eq!(cfg.clamp(1023.6), 1024.0);
        assert_eq!(cfg.clamp(f64::INFINITY), 1024.0);
        assert_eq!(cfg.clamp(1e30), 1e15);
        assert_eq!(cfg.clamp(0.5), 0.5);
    }
}
