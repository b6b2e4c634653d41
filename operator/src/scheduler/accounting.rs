//! SLA accounting: per contract and per slot (default one minute), was the contract up, how much
//! hashrate is owed, and what credit that is worth.
//!
//! The cycle feeds one sample per decision cycle: the contract's delivered hashrate (accepted at
//! its pools) at time `t`. A sample stands for the interval since the previous sample (at most
//! `max_gap` back: when the operator was not running we do not know what happened, and such
//! time is neither up nor down). Samples are integrated into slots aligned to the contract's
//! start (or the Unix epoch when it has none). When a slot closes:
//!
//! - it counts only if samples cover at least half of it (else it is *unobserved*);
//! - delivered = hashes integrated / seconds covered;
//! - up iff delivered ≥ `(1 − tolerance) × contracted`;
//! - shortfall (TH/s·h) = `((1 − tolerance) × contracted − delivered) × slot length` when
//!   positive; credit = shortfall × `creditRate` (per TH/s·h).
//!
//! The whole state is a small serializable [`Ledger`] that lives in the contract's status, so an
//! operator restart loses at most the samples it did not see, and a replayed sample (at or before
//! the last one) is ignored instead of counted twice.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Hashes per second in one TH/s.
const TERA: f64 = 1e12;

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
}

impl SlaTerms {
    /// `(1 − tolerance) × contracted`, in hashes per second.
    pub fn required(&self) -> f64 {
        let c = if self.contracted_hashrate.is_finite() {
            self.contracted_hashrate.max(0.0)
        } else {
            0.0
        };
        (1.0 - self.tolerance.clamp(0.0, 1.0)) * c
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
}

/// The slot being filled.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenSlot {
    pub start: Timestamp,
    /// Hashrate × seconds integrated so far.
    pub delivered_hashes: f64,
    pub observed_seconds: f64,
}

/// A contract's SLA ledger (mirrors the RentalContract status fields).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ledger {
    pub observed_slots: u64,
    pub up_slots: u64,
    /// TH/s·hours owed.
    pub shortfall_hashrate_hours: f64,
    /// `shortfall × creditRate`, accumulated slot by slot.
    pub credit: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open: Option<OpenSlot>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sample_at: Option<Timestamp>,
}

impl Ledger {
    /// `up / observed` (1.0 when nothing was observed yet).
    pub fn uptime(&self) -> f64 {
        if self.observed_slots == 0 {
            1.0
        } else {
            self.up_slots as f64 / self.observed_slots as f64
        }
    }
}

/// A slot that closed during [`record`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClosedSlot {
    pub start: Timestamp,
    /// Average delivered hashrate over the covered part (H/s).
    pub delivered_hashrate: f64,
    pub observed_seconds: f64,
    /// False: too little coverage; not counted.
    pub observed: bool,
    pub up: bool,
    pub shortfall_hashrate_hours: f64,
    pub credit: f64,
}

/// What one [`record`] call did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recorded {
    pub closed: Vec<ClosedSlot>,
    /// Slots skipped entirely by a gap longer than `max_gap` (not stored: they are not counted).
    pub unobserved_slots: u64,
}

fn ts_ms(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(if ms < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

fn close(ledger: &mut Ledger, terms: &SlaTerms, slot: OpenSlot) -> ClosedSlot {
    let start_ms = slot.start.as_millisecond();
    let mut end_ms = start_ms.saturating_add(terms.slot_ms());
    if let Some(end) = terms.end {
        end_ms = end_ms.min(end.as_millisecond());
    }
    let span_secs = (end_ms.saturating_sub(start_ms)).max(0) as f64 / 1000.0;
    let observed = span_secs > 0.0 && slot.observed_seconds * 2.0 >= span_secs;
    let delivered = if slot.observed_seconds > 0.0 {
        slot.delivered_hashes / slot.observed_seconds
    } else {
        0.0
    };
    let required = terms.required();
    let up = delivered >= required;
    let (shortfall, credit) = if observed && !up {
        let s = (required - delivered) / TERA * span_secs / 3600.0;
        let rate = if terms.credit_rate.is_finite() {
            terms.credit_rate.max(0.0)
        } else {
            0.0
        };
        (s, s * rate)
    } else {
        (0.0, 0.0)
    };
    if observed {
        ledger.observed_slots = ledger.observed_slots.saturating_add(1);
        if up {
            ledger.up_slots = ledger.up_slots.saturating_add(1);
        }
        ledger.shortfall_hashrate_hours += shortfall;
        ledger.credit += credit;
    }
    ClosedSlot {
        start: slot.start,
        delivered_hashrate: delivered,
        observed_seconds: slot.observed_seconds,
        observed,
        up: observed && up,
        shortfall_hashrate_hours: shortfall,
        credit,
    }
}

/// Fold one sample (`delivered_hashrate` H/s at `at`) into the ledger. Pure.
pub fn record(
    ledger: &Ledger,
    terms: &SlaTerms,
    at: Timestamp,
    delivered_hashrate: f64,
) -> (Ledger, Recorded) {
    let mut next = ledger.clone();
    let mut out = Recorded::default();
    let at_ms = at.as_millisecond();
    let Some(last) = ledger.last_sample_at else {
        next.last_sample_at = Some(at);
        return (next, out);
    };
    let last_ms = last.as_millisecond();
    if at_ms <= last_ms {
        return (next, out); // replay or clock step back: already counted
    }
    next.last_sample_at = Some(at);
    let rate = if delivered_hashrate.is_finite() {
        delivered_hashrate.max(0.0)
    } else {
        0.0
    };
    let max_gap_ms = i64::try_from(terms.max_gap.as_millis()).unwrap_or(i64::MAX);
    let mut from = last_ms.max(at_ms.saturating_sub(max_gap_ms));
    let mut to = at_ms;
    if let Some(start) = terms.start {
        from = from.max(start.as_millisecond());
    }
    if let Some(end) = terms.end {
        to = to.min(end.as_millisecond());
    }
    let len = terms.slot_ms();
    // A slot the interval does not reach is final; whole slots inside a skipped gap are
    // unobserved (not counted either way).
    if let Some(open) = next.open {
        let open_end = open.start.as_millisecond().saturating_add(len);
        if from >= open_end {
            out.closed.push(close(&mut next, terms, open));
            next.open = None;
        }
    }
    if from > last_ms && to > from {
        let mut first_whole = terms.slot_start(last_ms);
        if first_whole < last_ms {
            first_whole = first_whole.saturating_add(len);
        }
        let skipped = terms.slot_start(from).saturating_sub(first_whole) / len;
        out.unobserved_slots = u64::try_from(skipped).unwrap_or(0);
    }
    let mut cursor = from;
    while cursor < to {
        let slot_start = terms.slot_start(cursor);
        let slot_end = slot_start.saturating_add(len);
        let piece_end = slot_end.min(to);
        let secs = (piece_end - cursor) as f64 / 1000.0;
        let open = match next.open {
            Some(o) if o.start.as_millisecond() == slot_start => o,
            Some(o) => {
                out.closed.push(close(&mut next, terms, o));
                OpenSlot {
                    start: ts_ms(slot_start),
                    delivered_hashes: 0.0,
                    observed_seconds: 0.0,
                }
            }
            None => OpenSlot {
                start: ts_ms(slot_start),
                delivered_hashes: 0.0,
                observed_seconds: 0.0,
            },
        };
        next.open = Some(OpenSlot {
            delivered_hashes: open.delivered_hashes + rate * secs,
            observed_seconds: open.observed_seconds + secs,
            ..open
        });
        cursor = piece_end;
    }
    // A slot whose end has been reached is final now.
    if let Some(open) = next.open {
        let mut open_end = open.start.as_millisecond().saturating_add(len);
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
