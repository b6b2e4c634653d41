//! Scenario tests for SLA accounting: scripted outages give exactly the expected up, down and
//! unobserved slots and credit, across restarts, gaps, warm-ups and contract boundaries.
//!
//! Deliveries here are exact (no Poisson noise: 100 shares a second at the contracted rate, so
//! 6,000 per one-minute slot), which makes every verdict and every hash owed exact; the
//! statistics under noise are `scheduler_sla_stats.rs`'s job.

use hashsched_operator::scheduler::accounting::{
    Delivery, HASHES_PER_TH_HOUR, Ledger, SlaTerms, Unobserved, record,
};
use hashsched_operator::scheduler::health::HASHES_PER_DIFFICULTY;
use jiff::Timestamp;
use std::time::Duration;

const TH: f64 = 1e12;
const T0: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z, a slot boundary
/// Shares per second at the contracted 100 TH/s.
const RATE: f64 = 100.0;

fn ts(secs: i64) -> Timestamp {
    Timestamp::from_second(T0 + secs).unwrap()
}

fn terms() -> SlaTerms {
    SlaTerms {
        contracted_hashrate: 100.0 * TH,
        tolerance: 0.10,
        credit_rate: 2.0,
        slot: Duration::from_secs(60),
        max_gap: Duration::from_secs(120),
        start: Some(ts(0)),
        end: None,
        false_down_probability: 1e-4,
        uptime_target: 0.99,
    }
}

fn difficulty() -> f64 {
    100.0 * TH / (RATE * HASHES_PER_DIFFICULTY)
}

/// `secs` seconds at `ths` TH/s, exactly.
fn at_rate(ths: f64, secs: f64) -> Delivery {
    Delivery::shares_at(RATE * ths / 100.0 * secs, difficulty())
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * b.abs().max(1.0)
}

/// Samples every `step` seconds over `[0, until]`; `script(t)` is what was delivered in the
/// interval ending at `t` (TH/s, or why it cannot be judged; `None`: no sample). Every ledger
/// goes through JSON between samples, as it does through the contract's status.
fn run(
    terms: &SlaTerms,
    until: i64,
    step: i64,
    script: impl Fn(i64) -> Option<Result<f64, Unobserved>>,
) -> Ledger {
    let mut ledger = Ledger::default();
    let mut last = None;
    for t in (0..=until).step_by(step as usize) {
        let Some(what) = script(t) else { continue };
        let secs = last.map_or(step, |l| t - l) as f64;
        let delivery = match what {
            // Nothing delivered: the contract's worker is dead (judged failing).
            Ok(0.0) => Delivery {
                failing: true,
                ..at_rate(0.0, secs)
            },
            Ok(ths) => at_rate(ths, secs),
            Err(why) => Delivery::unobserved(why),
        };
        let (next, _) = record(&ledger, terms, ts(t), &delivery);
        let json = serde_json::to_string(&next).unwrap();
        ledger = serde_json::from_str(&json).unwrap();
        assert_eq!(
            (ledger.up_slots, ledger.down_slots, ledger.unobserved_slots),
            (next.up_slots, next.down_slots, next.unobserved_slots)
        );
        last = Some(t);
    }
    ledger
}

fn th_hours(l: &Ledger) -> f64 {
    l.shortfall_hashes / HASHES_PER_TH_HOUR
}

#[test]
fn scripted_outages_give_exact_slots_shortfall_and_credit() {
    let script = |t: i64| {
        Some(Ok(match t {
            601..=900 => 0.0,    // minutes 10–14 dead
            1801..=1920 => 45.0, // minutes 30–31 at 45 %
            2701..=2730 => 0.0,  // half of minute 45 dead: 50 TH/s on average
            _ => 100.0,
        }))
    };
    let ledger = run(&terms(), 3600, 10, script);
    // The first sample opens the ledger; every later one is judged.
    assert_eq!(
        (ledger.up_slots, ledger.down_slots, ledger.unobserved_slots),
        (52, 8, 0)
    );
    // Against contracted: 5 slots × 100 TH/s + 2 × 55 + 1 × 50, each for a minute.
    let shortfall = (5.0 * 100.0 + 2.0 * 55.0 + 50.0) / 60.0;
    assert!(close(th_hours(&ledger), shortfall), "{}", th_hours(&ledger));
    assert!(close(ledger.shortfall_hashrate_hours(), shortfall));
    assert!(close(ledger.credit(&terms()), 2.0 * shortfall));
    // The interval holds the estimate and is narrow at 6,000 shares a slot.
    let i = ledger.owed_interval();
    assert!(i.low < ledger.owed_hashes() && ledger.owed_hashes() < i.high);
    assert!((i.high - i.low) / ledger.owed_hashes() < 0.1, "{i:?}");
    assert!(close(ledger.uptime(), 52.0 / 60.0));
    assert!(
        ledger.breached(0.99).0,
        "8 down of 60 misses 99 % with confidence"
    );
    assert!(ledger.open.is_none(), "slot 59 closed at t=3600");
}

#[test]
fn delivery_at_the_line_is_up_and_well_below_it_is_down() {
    let at_line = run(&terms(), 600, 10, |_| Some(Ok(90.0)));
    assert_eq!((at_line.up_slots, at_line.down_slots), (10, 0));
    // Still owed: 10 TH/s for ten minutes (the tolerance is the uptime line, not a discount).
    assert!(close(th_hours(&at_line), 10.0 * 10.0 / 60.0));
    // 85 % of contracted at 6,000 shares a slot is significantly below the 90 % line.
    let below = run(&terms(), 600, 10, |_| Some(Ok(85.0)));
    assert_eq!((below.up_slots, below.down_slots), (0, 10));
    // Delivering more than contracted is not owed anything back, and cancels earlier luck.
    let above = run(&terms(), 600, 10, |_| Some(Ok(101.0)));
    assert_eq!(above.owed_hashes(), 0.0);
    assert!(above.shortfall_hashes < 0.0);
}

#[test]
fn operator_downtime_is_unobserved_not_down() {
    // No samples between t=1200 and t=1800 (the operator was down); a sample after a gap longer
    // than max_gap stands for nothing, since its counters cover the whole gap.
    let ledger = run(&terms(), 3600, 10, |t| {
        (!(1201..1800).contains(&t)).then_some(Ok(100.0))
    });
    assert_eq!(
        (ledger.up_slots, ledger.down_slots, ledger.unobserved_slots),
        (50, 0, 10)
    );
    assert!(ledger.credit(&terms()).abs() < 1e-9, "float rounding only");
}

#[test]
fn warm_up_no_data_and_counter_resets_are_unobserved() {
    let ledger = run(&terms(), 3600, 10, |t| {
        Some(match t {
            ..=180 => Err(Unobserved::WarmUp), // minutes 0–2: miners warming up
            1201..=1260 => Err(Unobserved::NoData), // minute 20: hub unreadable
            2401..=2440 => Err(Unobserved::CounterReset), // 40 s of minute 40: hub restarted
            2441..=2460 => Ok(0.0),            // (only 20 s seen: not judged)
            _ => Ok(100.0),
        })
    });
    assert_eq!(
        (ledger.up_slots, ledger.down_slots, ledger.unobserved_slots),
        (55, 0, 5)
    );
    // Exact deliveries owe nothing (up to float rounding of the signed sum).
    assert!(th_hours(&ledger).abs() < 1e-9, "{}", th_hours(&ledger));
}

#[test]
fn nothing_counts_before_the_first_share_unless_a_worker_is_failing() {
    let t = terms();
    // A new contract whose routing is not in effect yet: no share for 90 s.
    let mut ledger = Ledger::default();
    for s in (0..=300).step_by(10) {
        let d = if s <= 90 {
            Delivery::shares_at(0.0, difficulty())
        } else {
            at_rate(100.0, 10.0)
        };
        ledger = record(&ledger, &t, ts(s), &d).0;
    }
    // Minute 0 unobserved, minute 1 judged from its 30 s (≥ half), 2–4 up.
    assert_eq!(
        (ledger.up_slots, ledger.down_slots, ledger.unobserved_slots),
        (4, 0, 1)
    );
    assert_eq!(ledger.started_at, Some(ts(100)));

    // Its only worker is Dead from the start: that is the farm's failure and counts.
    let mut dead = Ledger::default();
    for s in (0..=120).step_by(10) {
        let d = Delivery {
            failing: true,
            ..Delivery::shares_at(0.0, difficulty())
        };
        dead = record(&dead, &t, ts(s), &d).0;
    }
    assert_eq!((dead.up_slots, dead.down_slots), (0, 2));
    assert!(close(th_hours(&dead), 2.0 * 100.0 / 60.0));
}

#[test]
fn replayed_and_out_of_order_samples_are_not_counted_twice() {
    let t = terms();
    let mut ledger = Ledger::default();
    for s in (0..=120).step_by(10) {
        ledger = record(&ledger, &t, ts(s), &at_rate(50.0, 10.0)).0;
    }
    let before = ledger.clone();
    for s in [0, 60, 115, 120] {
        let (again, rec) = record(&ledger, &t, ts(s), &at_rate(0.0, 10.0));
        assert_eq!(again, before, "sample at {s} replayed");
        assert!(rec.closed.is_empty());
    }
    assert_eq!((before.up_slots, before.down_slots), (0, 2));
}

#[test]
fn contract_window_clips_slots_and_short_coverage_is_unobserved() {
    // Starts at 00:00:20 (slots aligned to it), ends 30.5 minutes later.
    let mut t = terms();
    t.start = Some(ts(20));
    t.end = Some(ts(20 + 30 * 60 + 30));
    let ledger = run(&t, 3600, 10, |s| {
        Some(Ok(if s <= 20 + 600 { 0.0 } else { 100.0 }))
    });
    // 30 whole slots + the 30 s tail slot; the first 10 are down at 0 TH/s.
    assert_eq!((ledger.up_slots, ledger.down_slots), (21, 10));
    assert!(close(th_hours(&ledger), 10.0 * 100.0 / 60.0));
    assert!(ledger.open.is_none());

    // A slot seen for 20 s of 60 is not judged.
    let mut gap = terms();
    gap.max_gap = Duration::from_secs(20);
    let mut short = Ledger::default();
    for s in [0, 40, 60] {
        short = record(&short, &gap, ts(s), &at_rate(100.0, 20.0)).0;
    }
    assert_eq!(
        (short.up_slots, short.down_slots, short.unobserved_slots),
        (0, 0, 1)
    );
}
