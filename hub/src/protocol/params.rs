//! Reading method parameters: hex fields, the positional `Params` accessor whose errors name the
//! method and parameter, and difficulty values. Shared by every method's parser.

use serde_json::Value;

use super::message::ProtocolError;

// ---------------------------------------------------------------------------------------------
// Hex helpers: fields are hex strings; u32 fields are big-endian 8-digit hex.

/// Lower-case 8-digit hex of a u32 (version, nbits, ntime, nonce, masks).
pub fn hex_u32(x: u32) -> String {
    format!("{x:08x}")
}

/// Parse a hex u32 (1..=8 digits, optional `0x`).
pub fn parse_hex_u32(s: &str) -> Result<u32, String> {
    let t = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    if t.is_empty() || t.len() > 8 {
        return Err(format!(
            "expected 1..8 hex digits, got {} characters",
            t.len()
        ));
    }
    // Every share has three of these: digits folded in one pass (at most 8, so no overflow).
    let mut x = 0u32;
    for c in t.bytes() {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return Err("non-hex character".into()),
        };
        x = (x << 4) | u32::from(d);
    }
    Ok(x)
}

/// Decode hex into bytes with a length bound.
pub fn parse_hex_bytes(s: &str, max: usize) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) {
        return Err("odd number of hex digits".into());
    }
    if s.len() / 2 > max {
        return Err(format!("longer than {max} bytes"));
    }
    hex::decode(s).map_err(|e| e.to_string())
}

pub(super) fn parse_hex_32(s: &str) -> Result<[u8; 32], String> {
    let v = parse_hex_bytes(s, 32)?;
    v.try_into()
        .map_err(|v: Vec<u8>| format!("expected 32 bytes, got {}", v.len()))
}

// ---------------------------------------------------------------------------------------------
// Parameter access helpers.

pub(super) struct Params<'a> {
    method: &'static str,
    items: &'a [Value],
}

impl<'a> Params<'a> {
    pub(super) fn new(method: &'static str, params: &'a Value) -> Result<Self, ProtocolError> {
        match params {
            Value::Array(items) => Ok(Self { method, items }),
            // Some software sends `null` or `{}` for "no parameters".
            Value::Null => Ok(Self { method, items: &[] }),
            Value::Object(o) if o.is_empty() => Ok(Self { method, items: &[] }),
            _ => Err(ProtocolError::ParamsNotArray {
                method: method.to_owned(),
            }),
        }
    }

    pub(super) fn get(&self, index: usize) -> Option<&'a Value> {
        self.items.get(index).filter(|v| !v.is_null())
    }

    pub(super) fn req(&self, index: usize, name: &'static str) -> Result<&'a Value, ProtocolError> {
        self.get(index).ok_or(ProtocolError::Missing {
            method: self.method,
            index,
            name,
        })
    }

    pub(super) fn wrong(&self, name: &'static str, expected: &'static str) -> ProtocolError {
        ProtocolError::WrongType {
            method: self.method,
            name,
            expected,
        }
    }

    pub(super) fn str(&self, index: usize, name: &'static str) -> Result<&'a str, ProtocolError> {
        self.req(index, name)?
            .as_str()
            .ok_or_else(|| self.wrong(name, "a string"))
    }

    pub(super) fn opt_str(
        &self,
        index: usize,
        name: &'static str,
    ) -> Result<Option<&'a str>, ProtocolError> {
        match self.get(index) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.wrong(name, "a string")),
        }
    }

    /// A string, or a number rendered as a string (job ids from some software).
    pub(super) fn id_str(&self, index: usize, name: &'static str) -> Result<String, ProtocolError> {
        match self.req(index, name)? {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            _ => Err(self.wrong(name, "a string")),
        }
    }

    pub(super) fn hex_u32(&self, index: usize, name: &'static str) -> Result<u32, ProtocolError> {
        let s = self.str(index, name)?;
        parse_hex_u32(s).map_err(|reason| ProtocolError::BadHex {
            method: self.method,
            name,
            reason,
        })
    }

    pub(super) fn hex_bytes(
        &self,
        index: usize,
        name: &'static str,
        max: usize,
    ) -> Result<Vec<u8>, ProtocolError> {
        let s = self.str(index, name)?;
        parse_hex_bytes(s, max).map_err(|reason| ProtocolError::BadHex {
            method: self.method,
            name,
            reason,
        })
    }

    pub(super) fn difficulty(
        &self,
        index: usize,
        name: &'static str,
    ) -> Result<f64, ProtocolError> {
        let v = self.req(index, name)?;
        let d = match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        }
        .ok_or_else(|| self.wrong(name, "a number"))?;
        check_difficulty(d).map_err(|reason| ProtocolError::BadValue {
            method: self.method,
            name,
            reason,
        })
    }

    pub(super) fn size(
        &self,
        index: usize,
        name: &'static str,
        max: u64,
    ) -> Result<usize, ProtocolError> {
        let v = self.req(index, name)?;
        let n = v
            .as_u64()
            .ok_or_else(|| self.wrong(name, "a non-negative integer"))?;
        if n > max {
            return Err(ProtocolError::BadValue {
                method: self.method,
                name,
                reason: format!("{n} is larger than {max}"),
            });
        }
        usize::try_from(n).map_err(|e| ProtocolError::BadValue {
            method: self.method,
            name,
            reason: e.to_string(),
        })
    }
}

/// A difficulty must be a finite positive number.
pub fn check_difficulty(d: f64) -> Result<f64, String> {
    if d.is_finite() && d > 0.0 {
        Ok(d)
    } else {
        Err(format!("difficulty {d} is not a finite positive number"))
    }
}

/// Render a difficulty as JSON: integers without a fraction (`1024`, not `1024.0`) because some
/// miner firmware parses it as an integer.
pub fn difficulty_value(d: f64) -> Value {
    if d.fract() == 0.0 && d.abs() < 9.0e15 {
        Value::from(d as i64)
    } else {
        Value::from(d)
    }
}

pub(super) fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => s == "true",
        _ => false,
    }
}
