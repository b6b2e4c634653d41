//! Typed quantities of the hashsched API: hashrate, duration and percentage.
//!
//! People write these by hand in YAML (`104TH/s`, `1.5 PH/s`, `90s`, `99.5%`), so each type parses
//! the human form, prints one canonical human form, and carries a JSON schema with a `pattern` so that
//! the kube-apiserver rejects junk at admission, before the operator ever sees it. Parsing is exact
//! (decimal arithmetic on integers, never through `f64`) and never panics: every failure is a
//! [`QuantityError`] that says what was expected.
//!
//! Hashrate and percentage also accept plain YAML numbers (`hashrate: 5` is 5 H/s, `tolerance: 5` is
//! 5 %), so their schemas are `x-kubernetes-int-or-string` with the string `pattern` and a `minimum`
//! on the integer branch (Kubernetes applies `pattern` only to strings and `minimum` only to numbers).

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Regular expression the apiserver applies to hashrate strings (RE2 syntax).
pub const HASHRATE_PATTERN: &str = r"^[0-9]+(\.[0-9]+)?\s*([kKMGTPE]?[hH]/s)?$";
/// Regular expression the apiserver applies to duration strings (RE2 syntax).
pub const DURATION_PATTERN: &str = r"^(0|([0-9]+(ms|s|m|h))+)$";
/// Regular expression the apiserver applies to percentage strings (RE2 syntax): 0 to 100, at most
/// three decimals, optional `%`.
pub const PERCENTAGE_PATTERN: &str = r"^(100(\.0{1,3})?|[0-9]{1,2}(\.[0-9]{1,3})?)\s*%?$";

/// Longest quantity string accepted (keeps CEL cost estimates and error messages bounded).
pub const MAX_QUANTITY_LEN: usize = 40;

/// Why a quantity string or number was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("empty {what}: expected e.g. {example}")]
    Empty {
        what: &'static str,
        example: &'static str,
    },
    #[error("{what} {input:?} is longer than {MAX_QUANTITY_LEN} characters")]
    TooLong { what: &'static str, input: String },
    #[error("{what} {input:?} is not a valid number: expected e.g. {example}")]
    BadNumber {
        what: &'static str,
        input: String,
        example: &'static str,
    },
    #[error(
        "hashrate {input:?} has unknown unit {unit:?}: use H/s, kH/s, MH/s, GH/s, TH/s, PH/s or EH/s (e.g. \"104 TH/s\")"
    )]
    BadHashrateUnit { input: String, unit: String },
    #[error(
        "duration {input:?} has unknown unit {unit:?}: use ms, s, m or h (e.g. \"90s\", \"5m\", \"1h30m\")"
    )]
    BadDurationUnit { input: String, unit: String },
    #[error("{what} {input:?} is too large (maximum {max})")]
    TooLarge {
        what: &'static str,
        input: String,
        max: &'static str,
    },
    #[error("{what} must not be negative, got {input}")]
    Negative { what: &'static str, input: String },
    #[error(
        "{what} {input} is a fractional number: write it as a string with a unit, e.g. {example}"
    )]
    Fractional {
        what: &'static str,
        input: String,
        example: &'static str,
    },
}

/// A decimal number split into its integer digits and fraction digits (both ASCII digits only).
struct Decimal<'a> {
    int: &'a str,
    frac: &'a str,
}

/// Splits `s` into a leading decimal number and the (trimmed) rest.
fn split_decimal(s: &str) -> Option<(Decimal<'_>, &str)> {
    let int_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (int, rest) = s.split_at(int_end);
    if int.is_empty() {
        return None;
    }
    let (frac, rest) = match rest.strip_prefix('.') {
        Some(after) => {
            let frac_end = after
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(after.len());
            if frac_end == 0 {
                return None;
            }
            after.split_at(frac_end)
        }
        None => ("", rest),
    };
    Some((Decimal { int, frac }, rest.trim_start()))
}

/// `10^n` as `u128`, `None` when it does not fit.
fn pow10(n: usize) -> Option<u128> {
    let exp = u32::try_from(n).ok()?;
    10u128.checked_pow(exp)
}

impl Decimal<'_> {
    /// `self × scale`, rounded half up to an integer; `None` on overflow.
    fn scaled(&self, scale: u128) -> Option<u128> {
        // Digits beyond what u128 can hold are meaningless for our ranges: refuse them.
        if self.int.len() > 30 || self.frac.len() > 30 {
            return None;
        }
        let int: u128 = self.int.parse().ok()?;
        let whole = int.checked_mul(scale)?;
        if self.frac.is_empty() {
            return Some(whole);
        }
        let frac: u128 = self.frac.parse().ok()?;
        let denom = pow10(self.frac.len())?;
        let num = frac.checked_mul(scale)?;
        let rounded = num.checked_add(denom / 2)? / denom;
        whole.checked_add(rounded)
    }
}

// ---------------------------------------------------------------------------------------------
// Hashrate
// ---------------------------------------------------------------------------------------------

/// A hashrate in hashes per second (SHA256d).
///
/// Written as `104TH/s`, `1.5 PH/s`, `950 GH/s`, or a plain number of H/s (`5`, `"5"`). Printed as the
/// largest unit that keeps the integer part non-zero, exactly (`104 TH/s`, `1.5 PH/s`). Stored as an
/// integer number of H/s, so 18.4 EH/s is the maximum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hashrate(u64);

/// Hashrate units, largest first: (suffix, H/s per unit).
const HASHRATE_UNITS: [(&str, u64); 7] = [
    ("EH/s", 1_000_000_000_000_000_000),
    ("PH/s", 1_000_000_000_000_000),
    ("TH/s", 1_000_000_000_000),
    ("GH/s", 1_000_000_000),
    ("MH/s", 1_000_000),
    ("kH/s", 1_000),
    ("H/s", 1),
];

impl Hashrate {
    /// No hashrate.
    pub const ZERO: Hashrate = Hashrate(0);
    /// The largest representable hashrate (about 18.4 EH/s).
    pub const MAX: Hashrate = Hashrate(u64::MAX);

    /// A hashrate of `hs` hashes per second.
    pub const fn from_hashes_per_second(hs: u64) -> Self {
        Hashrate(hs)
    }

    /// A hashrate of `th` TH/s (saturating at [`Hashrate::MAX`]).
    pub const fn from_terahashes(th: u64) -> Self {
        Hashrate(th.saturating_mul(1_000_000_000_000))
    }

    /// A hashrate from a measured `f64` in H/s: negative and NaN become zero, too large saturates.
    pub fn from_f64_saturating(hs: f64) -> Self {
        if hs.is_nan() || hs <= 0.0 {
            Hashrate::ZERO
        } else if hs >= u64::MAX as f64 {
            Hashrate::MAX
        } else {
            // In range and non-negative: the cast rounds toward zero and cannot wrap.
            Hashrate(hs.round() as u64)
        }
    }

    /// Hashes per second.
    pub const fn hashes_per_second(self) -> u64 {
        self.0
    }

    /// Hashes per second as `f64` (for statistics; may round above 2^53 H/s).
    pub fn as_f64(self) -> f64 {
        self.0 as f64
    }

    /// TH/s as `f64`.
    pub fn as_terahashes(self) -> f64 {
        self.0 as f64 / 1e12
    }

    /// Whether this is zero.
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// Sum, or `None` on overflow.
    pub fn checked_add(self, other: Hashrate) -> Option<Hashrate> {
        self.0.checked_add(other.0).map(Hashrate)
    }

    /// Sum, saturating at [`Hashrate::MAX`].
    pub fn saturating_add(self, other: Hashrate) -> Hashrate {
        Hashrate(self.0.saturating_add(other.0))
    }

    /// Difference, saturating at zero.
    pub fn saturating_sub(self, other: Hashrate) -> Hashrate {
        Hashrate(self.0.saturating_sub(other.0))
    }

    /// `self × fraction` for a fraction in `[0, 1]` (e.g. `1 − tolerance`), saturating.
    pub fn scale(self, fraction: f64) -> Hashrate {
        Hashrate::from_f64_saturating(self.0 as f64 * fraction)
    }

    /// This hashrate rounded (half up) to `digits` significant digits, for display of measured
    /// values: `104_231_977_000_001 H/s` to 4 digits is `104.2 TH/s`. `digits == 0` returns `self`.
    pub fn rounded(self, digits: u32) -> Hashrate {
        if digits == 0 || self.0 == 0 {
            return self;
        }
        let len = self.0.ilog10() + 1;
        if len <= digits {
            return self;
        }
        let Some(factor) = 10u128.checked_pow(len - digits) else {
            return self;
        };
        let v = u128::from(self.0);
        let r = (v + factor / 2) / factor * factor;
        Hashrate(u64::try_from(r).unwrap_or(u64::MAX))
    }
}

impl fmt::Display for Hashrate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (unit, per) = HASHRATE_UNITS
            .iter()
            .copied()
            .find(|&(_, per)| self.0 >= per)
            .unwrap_or(("H/s", 1));
        let whole = self.0 / per;
        let rem = self.0 % per;
        if rem == 0 {
            return write!(f, "{whole} {unit}");
        }
        let width = per.ilog10() as usize;
        let frac = format!("{rem:0width$}");
        write!(f, "{whole}.{} {unit}", frac.trim_end_matches('0'))
    }
}

/// The checks every quantity parser starts with: not empty, bounded length, not negative.
/// Returns the trimmed text.
fn checked_text<'a>(
    input: &'a str,
    what: &'static str,
    example: &'static str,
) -> Result<&'a str, QuantityError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(QuantityError::Empty { what, example });
    }
    if s.len() > MAX_QUANTITY_LEN {
        return Err(QuantityError::TooLong {
            what,
            input: input.to_owned(),
        });
    }
    if s.starts_with('-') {
        return Err(QuantityError::Negative {
            what,
            input: input.to_owned(),
        });
    }
    Ok(s)
}

impl FromStr for Hashrate {
    type Err = QuantityError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        const WHAT: &str = "hashrate";
        const EXAMPLE: &str = "\"104 TH/s\", \"1.5 PH/s\" or a plain number of H/s";
        let s = checked_text(input, WHAT, EXAMPLE)?;
        let (number, unit) = split_decimal(s).ok_or_else(|| QuantityError::BadNumber {
            what: WHAT,
            input: input.to_owned(),
            example: EXAMPLE,
        })?;
        let per = hashrate_unit(unit).ok_or_else(|| QuantityError::BadHashrateUnit {
            input: input.to_owned(),
            unit: unit.to_owned(),
        })?;
        let hs = number
            .scaled(u128::from(per))
            .and_then(|v| u64::try_from(v).ok())
            .ok_or_else(|| QuantityError::TooLarge {
                what: WHAT,
                input: input.to_owned(),
                max: "18.4 EH/s",
            })?;
        Ok(Hashrate(hs))
    }
}

/// H/s per unit for a unit suffix (`""` is H/s); `k`/`K` and `h`/`H` are accepted in either case.
fn hashrate_unit(unit: &str) -> Option<u64> {
    if unit.is_empty() {
        return Some(1);
    }
    let prefix = unit
        .strip_suffix("H/s")
        .or_else(|| unit.strip_suffix("h/s"))?;
    let per = match prefix {
        "" => 1,
        "k" | "K" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "P" => 1_000_000_000_000_000,
        "E" => 1_000_000_000_000_000_000,
        _ => return None,
    };
    Some(per)
}

impl Serialize for Hashrate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Hashrate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(IntOrStringVisitor::<Hashrate>::new(
            "a hashrate such as \"104 TH/s\" or a non-negative integer of H/s",
            "\"1.5 PH/s\"",
        ))
    }
}

impl JsonSchema for Hashrate {
    fn schema_name() -> Cow<'static, str> {
        "Hashrate".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Hashrate: a number with a unit (`104 TH/s`, `1.5PH/s`, `950 GH/s`; units H/s, kH/s, MH/s, GH/s, TH/s, PH/s, EH/s) or a plain non-negative integer of H/s.",
            "x-kubernetes-int-or-string": true,
            "pattern": HASHRATE_PATTERN,
            "maxLength": MAX_QUANTITY_LEN,
            "minimum": 0,
        })
    }
}

impl FromIntValue for Hashrate {
    fn from_u64(v: u64) -> Result<Self, QuantityError> {
        Ok(Hashrate(v))
    }
}

// ---------------------------------------------------------------------------------------------
// Duration
// ---------------------------------------------------------------------------------------------

/// A duration written the Kubernetes (Go) way: `90s`, `5m`, `1h30m`, `500ms`, or `0`.
///
/// Printed canonically as the shortest exact form (`90s`, `5m`, `1h30m`, `1m30s500ms`). Stored in
/// milliseconds; the maximum is far beyond any sensible policy (about 584 million years).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(u64);

impl Duration {
    /// Zero.
    pub const ZERO: Duration = Duration(0);

    /// `ms` milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        Duration(ms)
    }

    /// `s` seconds (saturating).
    pub const fn from_secs(s: u64) -> Self {
        Duration(s.saturating_mul(1000))
    }

    /// `m` minutes (saturating).
    pub const fn from_mins(m: u64) -> Self {
        Duration(m.saturating_mul(60_000))
    }

    /// Milliseconds.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Seconds as `f64`.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    /// As a [`std::time::Duration`].
    pub const fn as_std(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.0)
    }

    /// From a [`std::time::Duration`], truncated to milliseconds and saturating.
    pub fn from_std(d: std::time::Duration) -> Self {
        Duration(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    /// Whether this is zero.
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("0s");
        }
        let ms = self.0 % 1000;
        let total_s = self.0 / 1000;
        let (h, m, s) = (total_s / 3600, (total_s / 60) % 60, total_s % 60);
        // Prefer "90s" over "1m30s" for short durations: that is how people write probe periods.
        if h == 0 && total_s < 120 && !total_s.is_multiple_of(60) {
            if total_s > 0 {
                write!(f, "{total_s}s")?;
            }
        } else {
            if h > 0 {
                write!(f, "{h}h")?;
            }
            if m > 0 {
                write!(f, "{m}m")?;
            }
            if s > 0 {
                write!(f, "{s}s")?;
            }
        }
        if ms > 0 {
            write!(f, "{ms}ms")?;
        }
        Ok(())
    }
}

impl FromStr for Duration {
    type Err = QuantityError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        const WHAT: &str = "duration";
        const EXAMPLE: &str = "\"90s\", \"5m\" or \"1h30m\"";
        let s = checked_text(input, WHAT, EXAMPLE)?;
        if s == "0" {
            return Ok(Duration::ZERO);
        }
        let too_large = || QuantityError::TooLarge {
            what: WHAT,
            input: input.to_owned(),
            max: "about 584 million years",
        };
        let mut rest = s;
        let mut total: u64 = 0;
        while !rest.is_empty() {
            let digits_end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if digits_end == 0 {
                return Err(QuantityError::BadNumber {
                    what: WHAT,
                    input: input.to_owned(),
                    example: EXAMPLE,
                });
            }
            let (digits, after) = rest.split_at(digits_end);
            let unit_end = after
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(after.len());
            let (unit, after) = after.split_at(unit_end);
            let per = match unit {
                "ms" => 1,
                "s" => 1000,
                "m" => 60_000,
                "h" => 3_600_000,
                "" => {
                    return Err(QuantityError::BadDurationUnit {
                        input: input.to_owned(),
                        unit: String::new(),
                    });
                }
                other => {
                    return Err(QuantityError::BadDurationUnit {
                        input: input.to_owned(),
                        unit: other.to_owned(),
                    });
                }
            };
            let n: u64 = digits.parse().map_err(|_| too_large())?;
            let part = n.checked_mul(per).ok_or_else(too_large)?;
            total = total.checked_add(part).ok_or_else(too_large)?;
            rest = after;
        }
        Ok(Duration(total))
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;
        impl Visitor<'_> for DurationVisitor {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string such as \"90s\", \"5m\" or \"1h30m\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(DurationVisitor)
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Duration in Kubernetes style: digits with a unit of ms, s, m or h, optionally combined (`90s`, `5m`, `1h30m`), or `0`.",
            "type": "string",
            "pattern": DURATION_PATTERN,
            "maxLength": MAX_QUANTITY_LEN,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Percentage
// ---------------------------------------------------------------------------------------------

/// A percentage from 0 % to 100 % with up to three decimals: `5%`, `"2.5%"`, `99.95%`, or a plain
/// integer (`5` is 5 %). Stored in thousandths of a percent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Percentage(u32);

impl Percentage {
    /// 0 %.
    pub const ZERO: Percentage = Percentage(0);
    /// 100 %.
    pub const HUNDRED: Percentage = Percentage(100_000);

    /// `p` percent, capped at 100 %.
    pub const fn from_percent(p: u32) -> Self {
        if p >= 100 {
            Percentage::HUNDRED
        } else {
            Percentage(p * 1000)
        }
    }

    /// `mp` thousandths of a percent, capped at 100 %.
    pub const fn from_millipercent(mp: u32) -> Self {
        if mp >= 100_000 {
            Percentage::HUNDRED
        } else {
            Percentage(mp)
        }
    }

    /// `num / den` as a percentage rounded down to 0.001 % (so 99.9996 % never shows as 100 %);
    /// `den == 0` gives 100 % (nothing observed, nothing missed) and `num > den` is capped.
    pub fn from_ratio(num: u64, den: u64) -> Self {
        if den == 0 || num >= den {
            return Percentage::HUNDRED;
        }
        let mp = u128::from(num) * 100_000 / u128::from(den);
        Percentage(u32::try_from(mp).unwrap_or(100_000))
    }

    /// From a fraction in `[0, 1]` (clamped; NaN is zero), rounded to 0.001 %.
    pub fn from_fraction(x: f64) -> Self {
        if x.is_nan() || x <= 0.0 {
            Percentage::ZERO
        } else if x >= 1.0 {
            Percentage::HUNDRED
        } else {
            // In (0, 1): the product is in (0, 100000) and the cast cannot wrap.
            Percentage((x * 100_000.0).round() as u32)
        }
    }

    /// Thousandths of a percent (100 % is 100 000).
    pub const fn millipercent(self) -> u32 {
        self.0
    }

    /// As a fraction in `[0, 1]` (5 % is 0.05).
    pub fn as_fraction(self) -> f64 {
        f64::from(self.0) / 100_000.0
    }

    /// As a number of percent (5 % is 5.0).
    pub fn as_percent(self) -> f64 {
        f64::from(self.0) / 1000.0
    }
}

impl fmt::Display for Percentage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / 1000;
        let frac = self.0 % 1000;
        if frac == 0 {
            write!(f, "{whole}%")
        } else {
            let digits = format!("{frac:03}");
            write!(f, "{whole}.{}%", digits.trim_end_matches('0'))
        }
    }
}

impl FromStr for Percentage {
    type Err = QuantityError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        const WHAT: &str = "percentage";
        const EXAMPLE: &str = "\"5%\", \"99.95%\" or a plain integer";
        let s = checked_text(input, WHAT, EXAMPLE)?;
        let bad = || QuantityError::BadNumber {
            what: WHAT,
            input: input.to_owned(),
            example: EXAMPLE,
        };
        let (number, rest) = split_decimal(s).ok_or_else(bad)?;
        if !(rest.is_empty() || rest == "%") || number.frac.len() > 3 {
            return Err(bad());
        }
        let mp = number.scaled(1000).ok_or_else(bad)?;
        if mp > 100_000 {
            return Err(QuantityError::TooLarge {
                what: WHAT,
                input: input.to_owned(),
                max: "100%",
            });
        }
        // mp ≤ 100 000 was checked just above.
        Ok(Percentage(u32::try_from(mp).unwrap_or(100_000)))
    }
}

impl Serialize for Percentage {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Percentage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(IntOrStringVisitor::<Percentage>::new(
            "a percentage such as \"5%\" or an integer from 0 to 100",
            "\"2.5%\"",
        ))
    }
}

impl JsonSchema for Percentage {
    fn schema_name() -> Cow<'static, str> {
        "Percentage".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Percentage from 0 to 100 with up to three decimals: `5%`, `99.95%`, or a plain integer (`5` means 5%).",
            "x-kubernetes-int-or-string": true,
            "pattern": PERCENTAGE_PATTERN,
            "maxLength": MAX_QUANTITY_LEN,
            "minimum": 0,
            "maximum": 100,
        })
    }
}

impl FromIntValue for Percentage {
    fn from_u64(v: u64) -> Result<Self, QuantityError> {
        if v > 100 {
            return Err(QuantityError::TooLarge {
                what: "percentage",
                input: v.to_string(),
                max: "100%",
            });
        }
        // v ≤ 100.
        Ok(Percentage::from_percent(u32::try_from(v).unwrap_or(100)))
    }
}

// ---------------------------------------------------------------------------------------------
// int-or-string deserialization shared by Hashrate and Percentage
// ---------------------------------------------------------------------------------------------

/// Quantities that also accept a plain non-negative integer.
trait FromIntValue: FromStr<Err = QuantityError> {
    fn from_u64(v: u64) -> Result<Self, QuantityError>;
}

struct IntOrStringVisitor<T> {
    expecting: &'static str,
    example: &'static str,
    _marker: std::marker::PhantomData<T>,
}

impl<T> IntOrStringVisitor<T> {
    fn new(expecting: &'static str, example: &'static str) -> Self {
        IntOrStringVisitor {
            expecting,
            example,
            _marker: std::marker::PhantomData,
        }
    }

    fn what(&self) -> &'static str {
        // The first word of `expecting` after the article names the quantity.
        self.expecting.split(' ').nth(1).unwrap_or("quantity")
    }
}

impl<T: FromIntValue> Visitor<'_> for IntOrStringVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        T::from_u64(v).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        match u64::try_from(v) {
            Ok(v) => T::from_u64(v).map_err(E::custom),
            Err(_) => Err(E::custom(QuantityError::Negative {
                what: self.what(),
                input: v.to_string(),
            })),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        if v < 0.0 {
            return Err(E::custom(QuantityError::Negative {
                what: self.what(),
                input: v.to_string(),
            }));
        }
        Err(E::custom(QuantityError::Fractional {
            what: self.what(),
            input: v.to_string(),
            example: self.example,
        }))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        v.parse().map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hr(s: &str) -> Result<Hashrate, QuantityError> {
        s.parse()
    }

    #[test]
    fn hashrate_parses_human_forms() {
        assert_eq!(hr("104TH/s"), Ok(Hashrate::from_terahashes(104)));
        assert_eq!(hr("104 TH/s"), Ok(Hashrate::from_terahashes(104)));
        assert_eq!(
            hr("1.5 PH/s"),
            Ok(Hashrate::from_hashes_per_second(1_500_000_000_000_000))
        );
        assert_eq!(
            hr("950 GH/s"),
            Ok(Hashrate::from_hashes_per_second(950_000_000_000))
        );
        assert_eq!(hr("5"), Ok(Hashrate::from_hashes_per_second(5)));
        assert_eq!(hr("5 H/s"), Ok(Hashrate::from_hashes_per_second(5)));
        assert_eq!(hr("12kH/s"), Ok(Hashrate::from_hashes_per_second(12_000)));
        assert_eq!(hr("12 KH/s"), Ok(Hashrate::from_hashes_per_second(12_000)));
        assert_eq!(hr("2 Th/s"), Ok(Hashrate::from_terahashes(2)));
        assert_eq!(hr("  3TH/s "), Ok(Hashrate::from_terahashes(3)));
        assert_eq!(hr("0"), Ok(Hashrate::ZERO));
        assert_eq!(
            hr("18 EH/s"),
            Ok(Hashrate::from_hashes_per_second(18_000_000_000_000_000_000))
        );
    }

    #[test]
    fn hashrate_rejects_junk_with_clear_errors() {
        for (input, needle) in [
            ("", "empty hashrate"),
            ("fast", "not a valid number"),
            ("TH/s", "not a valid number"),
            ("-5 TH/s", "must not be negative"),
            ("104 TH", "unknown unit \"TH\""),
            ("104 XH/s", "unknown unit \"XH/s\""),
            ("1.5.2 TH/s", "unknown unit"),
            ("1. TH/s", "not a valid number"),
            ("19 EH/s", "too large"),
            ("99999999999999999999999999999999 H/s", "too large"),
            ("1e12", "unknown unit \"e12\""),
            (&"9".repeat(60), "longer than"),
        ] {
            let err = hr(input).expect_err(input).to_string();
            assert!(err.contains(needle), "{input:?}: {err:?} lacks {needle:?}");
        }
    }

    #[test]
    fn hashrate_display_is_canonical_and_round_trips() {
        for (hs, text) in [
            (0, "0 H/s"),
            (5, "5 H/s"),
            (1_500, "1.5 kH/s"),
            (950_000_000_000, "950 GH/s"),
            (104_000_000_000_000, "104 TH/s"),
            (104_230_000_000_001, "104.230000000001 TH/s"),
            (1_500_000_000_000_000, "1.5 PH/s"),
            (u64::MAX, "18.446744073709551615 EH/s"),
        ] {
            let h = Hashrate::from_hashes_per_second(hs);
            assert_eq!(h.to_string(), text);
            assert_eq!(hr(text), Ok(h), "{text} round trip");
        }
    }

    #[test]
    fn hashrate_rounding_for_display() {
        let h = Hashrate::from_hashes_per_second(104_231_977_000_001);
        assert_eq!(h.rounded(4).to_string(), "104.2 TH/s");
        assert_eq!(h.rounded(3).to_string(), "104 TH/s");
        assert_eq!(Hashrate::MAX.rounded(2).to_string(), "18 EH/s");
        // Rounding up past the maximum saturates instead of wrapping.
        assert_eq!(Hashrate::MAX.rounded(1), Hashrate::MAX);
        assert_eq!(
            Hashrate::from_hashes_per_second(7)
                .rounded(3)
                .hashes_per_second(),
            7
        );
    }

    #[test]
    fn hashrate_serde_accepts_int_or_string_and_rejects_negative_and_fractions() {
        let h: Hashrate = serde_json::from_str("5").unwrap();
        assert_eq!(h, Hashrate::from_hashes_per_second(5));
        let h: Hashrate = serde_json::from_str("\"104TH/s\"").unwrap();
        assert_eq!(serde_json::to_string(&h).unwrap(), "\"104 TH/s\"");
        let err = serde_json::from_str::<Hashrate>("-5")
            .unwrap_err()
            .to_string();
        assert!(err.contains("must not be negative"), "{err}");
        let err = serde_json::from_str::<Hashrate>("1.5")
            .unwrap_err()
            .to_string();
        assert!(err.contains("fractional"), "{err}");
        let err = serde_json::from_str::<Hashrate>("true")
            .unwrap_err()
            .to_string();
        assert!(err.contains("a hashrate such as"), "{err}");
        let h: Hashrate = serde_yaml::from_str("950 GH/s").unwrap();
        assert_eq!(h, Hashrate::from_hashes_per_second(950_000_000_000));
    }

    #[test]
    fn hashrate_saturating_conversions() {
        assert_eq!(Hashrate::from_f64_saturating(f64::NAN), Hashrate::ZERO);
        assert_eq!(Hashrate::from_f64_saturating(-1.0), Hashrate::ZERO);
        assert_eq!(Hashrate::from_f64_saturating(1e30), Hashrate::MAX);
        assert_eq!(
            Hashrate::from_f64_saturating(104e12),
            Hashrate::from_terahashes(104)
        );
        assert_eq!(
            Hashrate::MAX.saturating_add(Hashrate::from_terahashes(1)),
            Hashrate::MAX
        );
        assert_eq!(
            Hashrate::ZERO.saturating_sub(Hashrate::from_terahashes(1)),
            Hashrate::ZERO
        );
        assert_eq!(
            Hashrate::MAX.checked_add(Hashrate::from_hashes_per_second(1)),
            None
        );
        assert_eq!(
            Hashrate::from_terahashes(100).scale(0.95),
            Hashrate::from_terahashes(95)
        );
    }

    #[test]
    fn duration_parses_kubernetes_style() {
        let d = |s: &str| s.parse::<Duration>();
        assert_eq!(d("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(d("5m"), Ok(Duration::from_mins(5)));
        assert_eq!(d("1h30m"), Ok(Duration::from_mins(90)));
        assert_eq!(d("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(d("1m30s500ms"), Ok(Duration::from_millis(90_500)));
        assert_eq!(d("0"), Ok(Duration::ZERO));
        for (input, needle) in [
            ("", "empty duration"),
            ("90", "unknown unit \"\""),
            ("5 m", "unknown unit \" m\""),
            ("1d", "unknown unit \"d\""),
            ("1.5h", "unknown unit \".\""),
            ("-5s", "must not be negative"),
            ("s", "not a valid number"),
            ("99999999999999999999h", "too large"),
            ("9999999999999999h", "too large"),
        ] {
            let err = d(input).expect_err(input).to_string();
            assert!(err.contains(needle), "{input:?}: {err:?} lacks {needle:?}");
        }
    }

    #[test]
    fn duration_display_is_canonical_and_round_trips() {
        for (ms, text) in [
            (0, "0s"),
            (500, "500ms"),
            (90_000, "90s"),
            (90_500, "90s500ms"),
            (120_000, "2m"),
            (300_000, "5m"),
            (5_400_000, "1h30m"),
            (3_600_000, "1h"),
            (3_725_000, "1h2m5s"),
        ] {
            let dur = Duration::from_millis(ms);
            assert_eq!(dur.to_string(), text);
            assert_eq!(text.parse::<Duration>(), Ok(dur), "{text} round trip");
        }
        let dur: Duration = serde_json::from_str("\"5m\"").unwrap();
        assert_eq!(dur.as_std(), std::time::Duration::from_secs(300));
        let err = serde_json::from_str::<Duration>("300")
            .unwrap_err()
            .to_string();
        assert!(err.contains("a duration string"), "{err}");
    }

    #[test]
    fn percentage_parses_and_bounds() {
        let p = |s: &str| s.parse::<Percentage>();
        assert_eq!(p("5%"), Ok(Percentage::from_percent(5)));
        assert_eq!(p("5"), Ok(Percentage::from_percent(5)));
        assert_eq!(p("2.5%"), Ok(Percentage::from_millipercent(2_500)));
        assert_eq!(p("99.95 %"), Ok(Percentage::from_millipercent(99_950)));
        assert_eq!(p("100%"), Ok(Percentage::HUNDRED));
        assert_eq!(p("0%"), Ok(Percentage::ZERO));
        for (input, needle) in [
            ("", "empty percentage"),
            ("101%", "too large"),
            ("100.001%", "too large"),
            ("-1%", "must not be negative"),
            ("5%%", "not a valid number"),
            ("1.2345%", "not a valid number"),
            ("five", "not a valid number"),
        ] {
            let err = p(input).expect_err(input).to_string();
            assert!(err.contains(needle), "{input:?}: {err:?} lacks {needle:?}");
        }
        let v: Percentage = serde_json::from_str("5").unwrap();
        assert_eq!(v.as_fraction(), 0.05);
        let err = serde_json::from_str::<Percentage>("150")
            .unwrap_err()
            .to_string();
        assert!(err.contains("too large"), "{err}");
        let err = serde_json::from_str::<Percentage>("-3")
            .unwrap_err()
            .to_string();
        assert!(err.contains("must not be negative"), "{err}");
    }

    #[test]
    fn percentage_display_and_ratio() {
        assert_eq!(Percentage::from_millipercent(99_950).to_string(), "99.95%");
        assert_eq!(Percentage::from_millipercent(2_500).to_string(), "2.5%");
        assert_eq!(Percentage::HUNDRED.to_string(), "100%");
        assert_eq!(Percentage::from_ratio(0, 0), Percentage::HUNDRED);
        assert_eq!(Percentage::from_ratio(1439, 1440).to_string(), "99.93%");
        assert_eq!(
            Percentage::from_ratio(999_999, 1_000_000).to_string(),
            "99.999%"
        );
        assert_eq!(
            Percentage::from_ratio(u64::MAX - 1, u64::MAX).to_string(),
            "99.999%"
        );
        assert_eq!(Percentage::from_fraction(0.5), Percentage::from_percent(50));
        assert_eq!(Percentage::from_fraction(f64::NAN), Percentage::ZERO);
        assert_eq!(
            serde_json::to_string(&Percentage::from_percent(5)).unwrap(),
            "\"5%\""
        );
    }

    #[test]
    fn patterns_agree_with_parsers() {
        // The apiserver uses these patterns; the operator uses the parsers. A string one accepts and
        // the other rejects would be accepted at admission and fail later (or the reverse).
        let hashrate = regex_lite_match(HASHRATE_PATTERN);
        for s in ["104TH/s", "1.5 PH/s", "950 GH/s", "5", "12kH/s", "2 Th/s"] {
            assert!(hashrate(s) && s.parse::<Hashrate>().is_ok(), "{s}");
        }
        for s in ["fast", "-5", "104 TH", "1e12", "1. TH/s", "TH/s"] {
            assert!(!hashrate(s) && s.parse::<Hashrate>().is_err(), "{s}");
        }
        let duration = regex_lite_match(DURATION_PATTERN);
        for s in ["90s", "5m", "1h30m", "500ms", "0"] {
            assert!(duration(s) && s.parse::<Duration>().is_ok(), "{s}");
        }
        for s in ["90", "5 m", "1d", "-5s", "1.5h", ""] {
            assert!(!duration(s) && s.parse::<Duration>().is_err(), "{s}");
        }
        let percentage = regex_lite_match(PERCENTAGE_PATTERN);
        for s in ["5%", "5", "2.5%", "99.95%", "100%", "100.0%", "0"] {
            assert!(percentage(s) && s.parse::<Percentage>().is_ok(), "{s}");
        }
        for s in ["101%", "100.5%", "-1%", "5%%", "1.2345%", "five"] {
            assert!(!percentage(s) && s.parse::<Percentage>().is_err(), "{s}");
        }
    }

    proptest::proptest! {
        #[test]
        fn hashrate_display_parses_back(hs in proptest::num::u64::ANY) {
            let h = Hashrate::from_hashes_per_second(hs);
            proptest::prop_assert_eq!(h.to_string().parse::<Hashrate>(), Ok(h));
            let json = serde_json::to_string(&h).unwrap();
            proptest::prop_assert_eq!(serde_json::from_str::<Hashrate>(&json).unwrap(), h);
        }

        #[test]
        fn duration_display_parses_back(ms in 0u64..1_000_000_000_000_000) {
            let d = Duration::from_millis(ms);
            proptest::prop_assert_eq!(d.to_string().parse::<Duration>(), Ok(d));
        }

        #[test]
        fn percentage_display_parses_back(mp in 0u32..=100_000) {
            let p = Percentage::from_millipercent(mp);
            proptest::prop_assert_eq!(p.to_string().parse::<Percentage>(), Ok(p));
        }

        #[test]
        fn parsers_never_panic_and_agree_with_patterns(s in "[ 0-9.kKMGTPEHhs/%m-]{0,24}") {
            let hashrate = regex::Regex::new(HASHRATE_PATTERN).unwrap();
            let duration = regex::Regex::new(DURATION_PATTERN).unwrap();
            let percentage = regex::Regex::new(PERCENTAGE_PATTERN).unwrap();
            // Whatever the apiserver admits, the operator can parse (up to overflow of huge values).
            if hashrate.is_match(&s) && s.len() < 15 {
                proptest::prop_assert!(s.parse::<Hashrate>().is_ok(), "{s:?}");
            }
            if duration.is_match(&s) && s.len() < 12 {
                proptest::prop_assert!(s.parse::<Duration>().is_ok(), "{s:?}");
            }
            if percentage.is_match(&s) {
                proptest::prop_assert!(s.parse::<Percentage>().is_ok(), "{s:?}");
            }
            // And what the operator parses from a trimmed string, the apiserver admits.
            if s == s.trim() && s.parse::<Percentage>().is_ok() {
                proptest::prop_assert!(percentage.is_match(&s), "{s:?}");
            }
            if s == s.trim() && s.parse::<Duration>().is_ok() {
                proptest::prop_assert!(duration.is_match(&s), "{s:?}");
            }
            if s == s.trim() && s.parse::<Hashrate>().is_ok() {
                proptest::prop_assert!(hashrate.is_match(&s), "{s:?}");
            }
        }
    }

    /// The apiserver evaluates patterns with Go's RE2; the `regex` crate implements the same syntax
    /// and semantics for these constructs.
    fn regex_lite_match(pattern: &'static str) -> impl Fn(&str) -> bool {
        let re = regex::Regex::new(pattern).expect("pattern compiles");
        move |s: &str| re.is_match(s)
    }
}
