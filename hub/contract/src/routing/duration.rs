//! Durations written in documents as `90s`, `1m`, `500ms`, `1h` or a number of seconds: one
//! grammar for parsing, printing and serde, so that what is parsed prints back the same.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A duration in a document: `"250ms"`, `"30s"`, `"5m"`, `"1h"`, or a number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DurationSpec(pub Duration);

impl DurationSpec {
    pub const fn from_secs(s: u64) -> Self {
        Self(Duration::from_secs(s))
    }
    pub const fn from_millis(ms: u64) -> Self {
        Self(Duration::from_millis(ms))
    }
    pub fn get(self) -> Duration {
        self.0
    }

    /// Parses `<number><unit>` with unit `ms`, `s`, `m` or `h` (a bare number is seconds).
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let value: f64 = num
            .parse()
            .map_err(|_| format!("invalid duration {text:?} (expected e.g. 500ms, 30s, 5m, 1h)"))?;
        let scale = match unit.trim() {
            "ms" => 0.001,
            "" | "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            other => {
                return Err(format!(
                    "invalid duration unit {other:?} in {text:?} (use ms, s, m or h)"
                ));
            }
        };
        Self::from_secs_f64(value * scale).ok_or_else(|| format!("duration {text:?} out of range"))
    }

    fn from_secs_f64(secs: f64) -> Option<Self> {
        // Bounded to ~31 years: beyond that a duration is a typo, and try_from cannot overflow.
        // Whole milliseconds, the grammar's finest unit: what is parsed prints back the same
        // (`0.610610` was 610.61 ms, printed `610ms`; found by the `quantities` fuzz target).
        if secs.is_finite() && (0.0..1e9).contains(&secs) {
            Some(Self(Duration::from_millis((secs * 1000.0).round() as u64)))
        } else {
            None
        }
    }
}

impl fmt::Display for DurationSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms.is_multiple_of(3_600_000) && ms > 0 {
            write!(f, "{}h", ms / 3_600_000)
        } else if ms.is_multiple_of(60_000) && ms > 0 {
            write!(f, "{}m", ms / 60_000)
        } else if ms.is_multiple_of(1000) {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

impl Serialize for DurationSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DurationSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(f64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Secs(s) => DurationSpec::from_secs_f64(s).ok_or_else(|| {
                serde::de::Error::custom(format!("duration {s} seconds out of range"))
            }),
            Raw::Text(t) => DurationSpec::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}
