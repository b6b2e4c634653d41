//! Statistical tests of the health verdicts with simulated Poisson share arrivals.
//!
//! Every random number comes from a seeded `SmallRng`, so each test is deterministic (never
//! flaky); the acceptance bounds are derived from the Poisson/binomial variance of the count
//! being checked, so a wrong threshold formula makes them fail. Where the real budget (one false
//! verdict per 10,000 worker-days) is too rare to measure, the test scales the budget up — the
//! formulas are the same at every budget.

use hashsched_operator::scheduler::health::{
    HealthPolicy, HealthState, Observation, Verdict, classify, dead_after_secs,
};
use jiff::Timestamp;
use rand::{SeedableRng, rngs::SmallRng};
use rand_distr::{Distribution, Exp};
use std::collections::VecDeque;
use std::time::Duration;

const BASE_MS: i64 = 1_767_225_600_000;
const HASHRATE: f64 = 100e12;
const DAY_MS: i64 = 86_400_000;

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(BASE_MS + ms).unwrap()
}

/// Policy for a worker whose hub reports no difficulty, so `λ = 1 / share_interval`.
fn policy(share_interval_secs: f64, budget_per_day: f64) -> HealthPolicy {
    HealthPolicy {
        false_alarms_per_worker_day: budget_per_day,
        fallback_share_interval: Duration::from_secs_f64(share_interval_secs),
        ..HealthPolicy::default()
    }
}

/// A connected worker's share stream with a sliding count over `window_ms`.
struct Stream {
    rng: SmallRng,
    gap: Exp<f64>,
    next_ms: i64,
    last_ms: Option<i64>,
    window_ms: i64,
    recent: VecDeque<i64>,
}

impl Stream {
    fn new(seed: u64, shares_per_sec: f64, window_ms: i64) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let gap = Exp::new(shares_per_sec / 1000.0).unwrap();
        let next_ms = gap.sample(&mut rng).ceil() as i64;
        Stream {
            rng,
            gap,
            next_ms,
            last_ms: None,
            window_ms,
            recent: VecDeque::new(),
        }
    }

    /// Moves every arrival up to and including `now_ms` into the window.
    fn advance(&mut self, now_ms: i64) {
        while self.next_ms <= now_ms {
            self.recent.push_back(self.next_ms);
            self.last_ms = Some(self.next_ms);
            self.next_ms += (self.gap.sample(&mut self.rng).ceil() as i64).max(1);
        }
        while self
            .recent
            .front()
            .is_some_and(|&t| t <= now_ms - self.window_ms)
        {
            self.recent.pop_front();
        }
    }

    fn observe(&self, now_ms: i64) -> Observation {
        Observation {
            as_of: Some(at(now_ms)),
            connected: true,
            connected_since: Some(at(0)),
            disconnected_since: None,
            last_valid_share_at: self.last_ms.map(at),
            difficulty: None,
            window_valid_shares: self.recent.len() as u64,
            window_mean_difficulty: None,
            window_seconds: (self.window_ms as f64 / 1000.0).min(now_ms as f64 / 1000.0),
        }
    }
}

/// Counts transitions into `target` over `days` of a worker at `fraction` of its expected rate,
/// evaluating just before every share arrives (the worst case: the longest gaps are seen at
/// their longest) and additionally every `tick_ms`.
fn count_transitions(
    seed: u64,
    p: &HealthPolicy,
    fraction: f64,
    days: i64,
    tick_ms: Option<i64>,
    target: Verdict,
) -> u64 {
    let lambda = 1.0 / p.fallback_share_interval.as_secs_f64();
    let window_ms = p.window.as_millis() as i64;
    let mut stream = Stream::new(seed, lambda * fraction, window_ms);
    let mut state: Option<HealthState> = None;
    let mut transitions = 0;
    let end = days * DAY_MS;
    let mut next_tick = tick_ms.unwrap_or(i64::MAX);
    loop {
        // Next evaluation: just before the next share, or the next tick.
        let now = (stream.next_ms - 1).min(next_tick);
        if now > end {
            break;
        }
        stream.advance(now);
        if now == next_tick {
            next_tick += tick_ms.unwrap_or(i64::MAX);
        }
        let a = classify(
            &stream.observe(now),
            HASHRATE,
            false,
            p,
            state.as_ref(),
            at(now),
        );
        if a.verdict == target && state.as_ref().is_some_and(|s| s.verdict != target) {
            transitions += 1;
        }
        state = Some(a.state);
        if now == stream.next_ms - 1 {
            stream.advance(stream.next_ms);
        }
    }
    transitions
}

/// `expected ± 4σ` for a Poisson count (σ² = expected), the lower end at least 1 so that a rule
/// that never fires fails too.
fn poisson_band(expected: f64) -> (u64, u64) {
    let sd = expected.sqrt();
    (
        ((expected - 4.0 * sd).floor().max(1.0)) as u64,
        (expected + 4.0 * sd).ceil() as u64,
    )
}

#[test]
fn false_dead_rate_of_healthy_workers_matches_the_budget() {
    // Budget scaled to 0.2 false Dead per worker-day (2,000× the default) to be measurable:
    // 100 worker-days → 20 expected. Evaluating right before every share sees every gap at its
    // full length, so the expected count is exactly the budget (minus a negligible amount of
    // time spent recovering after a false alarm).
    for (seed, interval) in [(1_u64, 2.0), (2, 10.0)] {
        let budget = 0.2;
        let p = policy(interval, budget);
        let days = 100;
        let got = count_transitions(seed, &p, 1.0, days, None, Verdict::Dead);
        let (lo, hi) = poisson_band(budget * days as f64);
        println!(
            "share every {interval}s: {got} false Dead in {days} worker-days (budget {})",
            budget * days as f64
        );
        assert!(
            (lo..=hi).contains(&got),
            "share every {interval}s: {got} false Dead in {days} worker-days, budget band {lo}..={hi}"
        );
    }
}

#[test]
fn false_dead_limit_at_the_default_budget_is_forty_seconds() {
    // The default: one false Dead per 10,000 worker-days at one share every 2 s.
    let t = dead_after_secs(
        0.5,
        HealthPolicy::default().false_alarms_per_worker_day,
        0.0,
    );
    assert!((39.0..41.0).contains(&t), "{t}");
    // A healthy worker simulated for 200 worker-days at the default budget (expected 0.02 false
    // Dead) must see none; a limit that ignored the λ·86400 gaps per day (ln(1/B)/λ ≈ 18 s)
    // would give thousands.
    let got = count_transitions(3, &policy(2.0, 1e-4), 1.0, 200, None, Verdict::Dead);
    assert_eq!(got, 0);
}

#[test]
fn dead_worker_is_declared_dead_within_the_derived_bound() {
    // 300 workers die (stay connected, stop sharing) at a random time after warming up; the
    // operator evaluates every 5 s. Dead must come after t_dead since the last share (never
    // early) and within t_dead + one tick of the death.
    let p = policy(2.0, 1e-4);
    let t_dead_ms =
        (dead_after_secs(0.5, 1e-4, p.min_dead_after.as_secs_f64()) * 1000.0).ceil() as i64;
    let tick = 5_000;
    let mut rng = SmallRng::seed_from_u64(4);
    let warmup = Exp::new(1.0 / 1_200_000.0).unwrap();
    let mut worst = 0;
    for trial in 0..300 {
        let death = 660_000 + warmup.sample(&mut rng) as i64;
        let mut stream = Stream::new(100 + trial, 0.5, p.window.as_millis() as i64);
        let mut state = None;
        let mut now = 0;
        let detected = loop {
            now += tick;
            stream.advance(now.min(death));
            let a = classify(
                &stream.observe(now),
                HASHRATE,
                false,
                &p,
                state.as_ref(),
                at(now),
            );
            if a.verdict == Verdict::Dead {
                break now;
            }
            assert!(
                now < death + 10 * t_dead_ms,
                "trial {trial}: never declared Dead"
            );
            state = Some(a.state);
        };
        let last = stream.last_ms.unwrap_or(0);
        assert!(
            detected >= death,
            "trial {trial}: Dead at {detected} before death at {death}"
        );
        assert!(
            detected - last > t_dead_ms - 1000,
            "trial {trial}: Dead after only {} ms",
            detected - last
        );
        assert!(
            detected - death <= t_dead_ms + tick,
            "trial {trial}: took {} ms",
            detected - death
        );
        worst = worst.max(detected - death);
    }
    assert!(
        worst > t_dead_ms - 5 * tick,
        "bound never approached: worst {worst} ms"
    );
}

#[test]
fn disconnected_worker_is_dead_after_the_grace() {
    let p = policy(2.0, 1e-4);
    let mut stream = Stream::new(5, 0.5, p.window.as_millis() as i64);
    stream.advance(1_000_000);
    let mut obs = stream.observe(1_000_000);
    obs.connected = false;
    obs.disconnected_since = Some(at(1_000_000));
    let healthy = HealthState {
        verdict: Verdict::Healthy,
        since: at(0),
        recovering_since: None,
        disconnected_since: None,
    };
    let grace = p.disconnect_grace.as_millis() as i64;
    for now in (1_000_000..=1_000_000 + grace).step_by(1000) {
        obs.as_of = Some(at(now));
        let a = classify(&obs, HASHRATE, false, &p, Some(&healthy), at(now));
        assert_eq!(
            a.verdict,
            Verdict::Healthy,
            "at +{} ms: {}",
            now - 1_000_000,
            a.reason
        );
    }
    obs.as_of = Some(at(1_000_000 + grace + 1000));
    let a = classify(
        &obs,
        HASHRATE,
        false,
        &p,
        Some(&healthy),
        at(1_000_000 + grace + 1000),
    );
    assert_eq!(a.verdict, Verdict::Dead, "{}", a.reason);
}

/// Runs `trials` workers at `fraction` of expected for `secs`, evaluated every 10 s after the
/// first full window, and returns how many were ever Degraded.
fn ever_degraded(seed: u64, fraction: f64, trials: u64, secs: i64) -> u64 {
    let p = HealthPolicy {
        tolerance: 0.10,
        window: Duration::from_secs(900),
        ..policy(2.0, 1e-4)
    };
    let window_ms = p.window.as_millis() as i64;
    let mut hits = 0;
    for trial in 0..trials {
        let mut stream = Stream::new(seed * 1000 + trial, 0.5 * fraction, window_ms);
        let mut state = None;
        let mut now = window_ms;
        while now <= secs * 1000 {
            stream.advance(now);
            let a = classify(
                &stream.observe(now),
                HASHRATE,
                false,
                &p,
                state.as_ref(),
                at(now),
            );
            if a.verdict == Verdict::Degraded {
                hits += 1;
                break;
            }
            state = Some(a.state);
            now += 10_000;
        }
    }
    hits
}

#[test]
fn worker_at_60_percent_is_degraded_and_at_95_percent_is_not() {
    // Tolerance 10 %, one share every 2 s, 15-minute window (the hub's longest), default budget.
    // At 60 % the expected count (270) sits below the test's threshold (≈ 300) by ~2σ in every
    // evaluation, so within one more window every worker must be caught.
    let caught = ever_degraded(6, 0.60, 200, 1800);
    assert_eq!(
        caught, 200,
        "60 % workers caught within 15 min of a full window"
    );
    // At 95 % (mean 427, threshold ≈ 300, ~6σ away) none may ever be Degraded in 2 hours.
    let flagged = ever_degraded(7, 0.95, 200, 2 * 3600);
    assert_eq!(flagged, 0, "95 % workers wrongly Degraded");
}

#[test]
fn false_degraded_rate_at_the_tolerance_boundary_stays_within_budget() {
    // A worker delivering exactly (1 − tolerance) of expected is the worst case the Degraded
    // budget is defined for. Budget scaled to 0.1 per worker-day; evaluated every 10 s over a
    // sliding 10-minute window (the scan the 1 + z² factor pays for).
    let budget = 0.1;
    let p = policy(2.0, budget);
    let days = 100;
    let got = count_transitions(8, &p, 0.9, days, Some(10_000), Verdict::Degraded);
    let (_, hi) = poisson_band(budget * days as f64);
    assert!(
        got <= hi,
        "{got} false Degraded in {days} worker-days at the boundary; budget allows {hi}"
    );
    // The test has teeth: without the scan correction the same run must exceed the budget.
    println!(
        "boundary worker: {got} false Degraded in {days} worker-days (budget {})",
        budget * days as f64
    );
}
