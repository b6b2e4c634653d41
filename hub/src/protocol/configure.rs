//! `mining.configure` (BIP 310): the request parameters and the per-extension result.

use serde_json::{Map, Value, json};

use super::message::ProtocolError;
use super::params::{Params, check_difficulty, difficulty_value, hex_u32, parse_hex_u32, truthy};
use super::{extension, method};

/// `mining.configure` parameters (BIP 310).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Configure {
    pub extensions: Vec<String>,
    pub version_rolling_mask: Option<u32>,
    pub version_rolling_min_bit_count: Option<u32>,
    pub minimum_difficulty: Option<f64>,
}

impl Configure {
    pub(super) fn parse(params: &Value) -> Result<Self, ProtocolError> {
        let p = Params::new(method::CONFIGURE, params)?;
        let mut out = Configure::default();
        if let Some(exts) = p.get(0) {
            let exts = exts
                .as_array()
                .ok_or_else(|| p.wrong("extensions", "an array of strings"))?;
            for e in exts {
                let e = e
                    .as_str()
                    .ok_or_else(|| p.wrong("extensions", "an array of strings"))?;
                out.extensions.push(e.to_owned());
            }
        }
        if let Some(opts) = p.get(1) {
            let opts = opts
                .as_object()
                .ok_or_else(|| p.wrong("options", "an object"))?;
            if let Some(m) = opts.get(extension::VERSION_ROLLING_MASK) {
                let s = m
                    .as_str()
                    .ok_or_else(|| p.wrong("version-rolling.mask", "a hex string"))?;
                out.version_rolling_mask =
                    Some(parse_hex_u32(s).map_err(|reason| ProtocolError::BadHex {
                        method: method::CONFIGURE,
                        name: "version-rolling.mask",
                        reason,
                    })?);
            }
            if let Some(c) = opts.get(extension::VERSION_ROLLING_MIN_BIT_COUNT) {
                let c = c
                    .as_u64()
                    .and_then(|c| u32::try_from(c).ok())
                    .ok_or_else(|| p.wrong("version-rolling.min-bit-count", "an integer"))?;
                out.version_rolling_min_bit_count = Some(c);
            }
            if let Some(d) = opts.get(extension::MINIMUM_DIFFICULTY_VALUE) {
                let d = d
                    .as_f64()
                    .ok_or_else(|| p.wrong("minimum-difficulty.value", "a number"))?;
                out.minimum_difficulty =
                    Some(
                        check_difficulty(d).map_err(|reason| ProtocolError::BadValue {
                            method: method::CONFIGURE,
                            name: "minimum-difficulty.value",
                            reason,
                        })?,
                    );
            }
        }
        Ok(out)
    }

    pub(super) fn to_params(&self) -> Value {
        let mut opts = Map::new();
        if let Some(m) = self.version_rolling_mask {
            opts.insert(extension::VERSION_ROLLING_MASK.into(), hex_u32(m).into());
        }
        if let Some(c) = self.version_rolling_min_bit_count {
            opts.insert(extension::VERSION_ROLLING_MIN_BIT_COUNT.into(), c.into());
        }
        if let Some(d) = self.minimum_difficulty {
            opts.insert(
                extension::MINIMUM_DIFFICULTY_VALUE.into(),
                difficulty_value(d),
            );
        }
        json!([self.extensions, opts])
    }

    pub fn wants(&self, ext: &str) -> bool {
        self.extensions.iter().any(|e| e == ext)
    }
}

/// `mining.configure` result: one key per requested extension.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConfigureResult {
    /// `Some(true)` with a mask when version rolling is granted.
    pub version_rolling: Option<bool>,
    pub version_rolling_mask: Option<u32>,
    pub minimum_difficulty: Option<bool>,
    pub subscribe_extranonce: Option<bool>,
    /// Requested extensions we do not know: answered `false`.
    pub unsupported: Vec<String>,
}

impl ConfigureResult {
    pub fn to_value(&self) -> Value {
        let mut o = Map::new();
        if let Some(v) = self.version_rolling {
            o.insert(extension::VERSION_ROLLING.into(), v.into());
            if v {
                o.insert(
                    extension::VERSION_ROLLING_MASK.into(),
                    hex_u32(self.version_rolling_mask.unwrap_or(0)).into(),
                );
            }
        }
        if let Some(v) = self.minimum_difficulty {
            o.insert(extension::MINIMUM_DIFFICULTY.into(), v.into());
        }
        if let Some(v) = self.subscribe_extranonce {
            o.insert(extension::SUBSCRIBE_EXTRANONCE.into(), v.into());
        }
        for e in &self.unsupported {
            o.insert(e.clone(), false.into());
        }
        Value::Object(o)
    }

    /// Lenient: anything that is not an object means "nothing supported".
    pub fn from_value(v: &Value) -> Self {
        let mut out = ConfigureResult::default();
        let Some(o) = v.as_object() else {
            return out;
        };
        for (k, v) in o {
            match k.as_str() {
                extension::VERSION_ROLLING => out.version_rolling = Some(truthy(v)),
                extension::VERSION_ROLLING_MASK => {
                    out.version_rolling_mask = v.as_str().and_then(|s| parse_hex_u32(s).ok())
                }
                extension::MINIMUM_DIFFICULTY => out.minimum_difficulty = Some(truthy(v)),
                extension::SUBSCRIBE_EXTRANONCE => out.subscribe_extranonce = Some(truthy(v)),
                other if !other.contains('.') => out.unsupported.push(other.to_owned()),
                _ => {}
            }
        }
        if out.version_rolling == Some(true) && out.version_rolling_mask.is_none() {
            out.version_rolling = Some(false);
        }
        out
    }

    /// The granted mask (0 when version rolling is not granted).
    pub fn granted_mask(&self) -> u32 {
        if self.version_rolling == Some(true) {
            self.version_rolling_mask.unwrap_or(0)
        } else {
            0
        }
    }
}
