//! Scenario tests for SLA accounting: scripted outages give exactly the expected uptime,
//! shortfall and credit, across restarts, gaps and contract boundaries.

use hashsched_operator::scheduler::accounting::{Ledger, SlaTerms, record};
use jiff::Timestamp;
use std::time::Duration;

const TH: f64 = 1e12;
const T0: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z, a slot boundary

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
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

/// Runs samples every `step` seconds over `[0, until]`, the delivered hashrate (TH/s) given by
/// `script(t)` for the interval ending at `t`. Every ledger goes through JSON between samples,
/// as it does through the contract's status.
fn run(
    terms: &SlaTerms,
    until: i64,
    step: i64,
    script: impl Fn(i64) -> Option<f64>,
) -> (Ledger, u64) {
    let mut ledger = Ledger::default();
    let mut unobserved = 0;
    for t in (0..=until).step_by(step as usize) {
        let Some(ths) = script(t) else { continue };
        let (next, rec) = record(&ledger, terms, ts(t), ths * TH);
        unobserved += rec.unobserved_slots;
        let json = serde_json::to_string(&next).unwrap();
        ledger = serde_json::from_str(&json).unwrap();
        // JSON parsing may round the last bit of a float; counts and slots are exact.
        assert_eq!(
            (
                ledger.observed_slots,
                ledger.up_slots,
                ledger.last_sample_at
            ),
            (next.observed_slots, next.up_slots, next.last_sample_at)
        );
        assert!(close(
            ledger.shortfall_hashrate_hours,
            next.shortfall_hashrate_hours
        ));
    }
    (ledger, unobserved)
}

#[test]
fn scripted_outages_give_exact_uptime_shortfall_and_credit() {
    let script = |t: i64| {
        Some(match t {
            601..=900 => 0.0,    // minutes 10–14 dead
            1801..=1920 => 45.0, // minutes 30–31 at 45 %
            2701..=2730 => 0.0,  // half of minute 45 dead: average 50 TH/s
            _ => 100.0,
        })
    };
    let (ledger, unobserved) = run(&terms(), 3600, 10, script);
    assert_eq!(unobserved, 0);
    assert_eq!(ledger.observed_slots, 60);
    assert_eq!(ledger.up_slots, 52);
    // 5 slots × 90 TH/s + 2 slots × 45 TH/s + 1 slot × 40 TH/s, each for one minute.
    let shortfall = (5.0 * 90.0 + 2.0 * 45.0 + 40.0) / 60.0;
    assert!(
        close(ledger.shortfall_hashrate_hours, shortfall),
        "{}",
        ledger.shortfall_hashrate_hours
    );
    assert!(close(ledger.credit, 2.0 * shortfall), "{}", ledger.credit);
    assert!(close(ledger.uptime(), 52.0 / 60.0));
    assert!(ledger.open.is_none(), "slot 59 closed at t=3600");
}

#[test]
fn delivery_exactly_at_the_floor_is_up_and_just_below_is_down() {
    let (at_floor, _) = run(&terms(), 600, 10, |_| Some(90.0));
    assert_eq!((at_floor.observed_slots, at_floor.up_slots), (10, 10));
    assert_eq!(at_floor.shortfall_hashrate_hours, 0.0);
    let (below, _) = run(&terms(), 600, 10, |_| Some(89.0));
    assert_eq!((below.observed_slots, below.up_slots), (10, 0));
    assert!(close(below.shortfall_hashrate_hours, 10.0 / 60.0));
}

#[test]
fn operator_downtime_is_unobserved_not_down() {
    // No samples between t=1200 and t=1800; a sample stands for at most 120 s.
    let (ledger, unobserved) = run(&terms(), 3600, 10, |t| {
        (!(1201..1800).contains(&t)).then_some(100.0)
    });
    // Slots 20–27 unobserved; 28–29 covered by the first sample after the gap.
    assert_eq!(unobserved, 8);
    assert_eq!(ledger.observed_slots, 52);
    assert_eq!(ledger.up_slots, 52);
    assert_eq!(ledger.credit, 0.0);
}

#[test]
fn replayed_and_out_of_order_samples_are_not_counted_twice() {
    let t = terms();
    let mut ledger = Ledger::default();
    for s in (0..=120).step_by(10) {
        ledger = record(&ledger, &t, ts(s), 50.0 * TH).0;
    }
    let before = ledger.clone();
    for s in [0, 60, 115, 120] {
        let (again, rec) = record(&ledger, &t, ts(s), 0.0);
        assert_eq!(again, before, "sample at {s} replayed");
        assert!(rec.closed.is_empty());
    }
    assert_eq!((before.observed_slots, before.up_slots), (2, 0));
}

#[test]
fn contract_window_clips_slots_and_short_coverage_is_unobserved() {
    // Starts at 00:00:20 (slots aligned to it), ends 30.5 minutes later.
    let mut t = terms();
    t.start = Some(ts(20));
    t.end = Some(ts(20 + 30 * 60 + 30));
    let (ledger, _) = run(&t, 3600, 10, |s| {
        Some(if s <= 20 + 600 { 0.0 } else { 100.0 })
    });
    // 30 whole slots + the 30 s tail slot; the first 10 are down at 0 TH/s.
    assert_eq!(ledger.observed_slots, 31);
    assert_eq!(ledger.up_slots, 21);
    assert!(close(ledger.shortfall_hashrate_hours, 10.0 * 90.0 / 60.0));
    assert!(ledger.open.is_none());

    // Samples covering only 20 s of a minute: the slot is not counted.
    let sparse = terms();
    let mut ledger = Ledger::default();
    for s in [0, 40, 60] {
        ledger = record(
            &ledger,
            &sparse,
            ts(s),
            if s == 60 { 100.0 * TH } else { 0.0 },
        )
        .0;
    }
    // 0 → 40 covers 40 s (≥ half): observed. Use a fresh case for the short one:
    assert_eq!(ledger.observed_slots, 1);
    let mut short = Ledger::default();
    let mut gap = terms();
    gap.max_gap = Duration::from_secs(20);
    for s in [0, 60] {
        short = record(&short, &gap, ts(s), 100.0 * TH).0;
    }
    assert_eq!(short.observed_slots, 0, "20 s of 60 s covered");
}
