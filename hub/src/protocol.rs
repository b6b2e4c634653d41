//! Stratum V1 JSON-RPC codec: one JSON object per `\n`-terminated line, in both directions.
//!
//! The hub speaks it towards miners (as a server) and towards pools (as a client); the simulated
//! miner and pool speak the other side with the same types, so every method has a typed form that
//! can be parsed AND serialized. Parsing is lenient where real software differs (ids are numbers or
//! strings and are echoed verbatim, errors come as arrays, objects or strings) and precise where the
//! bytes matter (hex fields, sizes, difficulty values): a bad field gives a [`ProtocolError`] that
//! names the method and parameter, never a panic. Method names and submit error codes live here
//! and nowhere else (see docs/protocol.md).

use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::fmt::Write as _;

/// Method names, in one place.
pub mod method {
    pub const CONFIGURE: &str = "mining.configure";
    pub const SUBSCRIBE: &str = "mining.subscribe";
    pub const EXTRANONCE_SUBSCRIBE: &str = "mining.extranonce.subscribe";
    pub const AUTHORIZE: &str = "mining.authorize";
    pub const SUGGEST_DIFFICULTY: &str = "mining.suggest_difficulty";
    pub const SUBMIT: &str = "mining.submit";
    pub const SET_DIFFICULTY: &str = "mining.set_difficulty";
    pub const SET_EXTRANONCE: &str = "mining.set_extranonce";
    pub const SET_VERSION_MASK: &str = "mining.set_version_mask";
    pub const NOTIFY: &str = "mining.notify";
    pub const RECONNECT: &str = "client.reconnect";
    pub const GET_VERSION: &str = "client.get_version";
    pub const SHOW_MESSAGE: &str = "client.show_message";
}

/// `mining.configure` extension names (BIP 310).
pub mod extension {
    pub const VERSION_ROLLING: &str = "version-rolling";
    pub const VERSION_ROLLING_MASK: &str = "version-rolling.mask";
    pub const VERSION_ROLLING_MIN_BIT_COUNT: &str = "version-rolling.min-bit-count";
    pub const MINIMUM_DIFFICULTY: &str = "minimum-difficulty";
    pub const MINIMUM_DIFFICULTY_VALUE: &str = "minimum-difficulty.value";
    pub const SUBSCRIBE_EXTRANONCE: &str = "subscribe-extranonce";
}

/// Stratum error codes (submit and general), in one place.
pub mod error_code {
    /// Other / unknown (also: unknown method).
    pub const OTHER: i64 = 20;
    /// Job not found (stale share).
    pub const JOB_NOT_FOUND: i64 = 21;
    /// Duplicate share.
    pub const DUPLICATE: i64 = 22;
    /// Low difficulty share.
    pub const LOW_DIFFICULTY: i64 = 23;
    /// Unauthorized worker.
    pub const UNAUTHORIZED: i64 = 24;
    /// Not subscribed.
    pub const NOT_SUBSCRIBED: i64 = 25;
}

/// BIP 320 general-purpose version bits: what the hub offers miners.
pub const BIP320_VERSION_MASK: u32 = 0x1fff_e000;
/// Default bound on one line (real messages are < 4 KiB; a deep-branch notify is the longest).
pub const DEFAULT_MAX_LINE_BYTES: usize = 16 * 1024;
/// Largest extranonce (1 or 2) we accept in bytes; real values are 0..=16.
pub const MAX_EXTRANONCE_BYTES: usize = 32;
/// Largest coinbase part (coinb1 or coinb2) we accept in bytes.
pub const MAX_COINBASE_PART_BYTES: usize = 8 * 1024;
/// Deepest merkle branch we accept (2^32 transactions is far beyond any block).
pub const MAX_MERKLE_BRANCH: usize = 32;

/// Why a line or a parameter could not be understood. Messages name the method and parameter so
/// that the error answer to a miner and the log line tell exactly what was wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProtocolError {
    #[error("line is not valid JSON: {0}")]
    Json(String),
    #[error("line is not a JSON object")]
    NotAnObject,
    #[error("message has neither a method nor a result/error")]
    NotAMessage,
    #[error("method is not a string")]
    MethodNotString,
    #[error("{method}: params must be an array")]
    ParamsNotArray { method: String },
    #[error("{method}: missing parameter {index} ({name})")]
    Missing {
        method: &'static str,
        index: usize,
        name: &'static str,
    },
    #[error("{method}: parameter {name}: expected {expected}")]
    WrongType {
        method: &'static str,
        name: &'static str,
        expected: &'static str,
    },
    #[error("{method}: parameter {name}: bad hex ({reason})")]
    BadHex {
        method: &'static str,
        name: &'static str,
        reason: String,
    },
    #[error("{method}: parameter {name}: {reason}")]
    BadValue {
        method: &'static str,
        name: &'static str,
        reason: String,
    },
    #[error("result of {what}: {reason}")]
    BadResult { what: &'static str, reason: String },
}

/// A Stratum error as carried in a response.
#[derive(Debug, Clone, PartialEq)]
pub struct StratumError {
    pub code: i64,
    pub message: String,
}

impl StratumError {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// Lenient: `[code, "msg", data]`, `{"code":..,"message":..}`, a bare string or number.
    pub fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Null => None,
            Value::Array(a) => {
                let code = a
                    .first()
                    .and_then(value_as_i64)
                    .unwrap_or(error_code::OTHER);
                let message = a.get(1).map(value_to_text).unwrap_or_default();
                Some(Self { code, message })
            }
            Value::Object(o) => {
                let code = o
                    .get("code")
                    .and_then(value_as_i64)
                    .unwrap_or(error_code::OTHER);
                let message = o
                    .get("message")
                    .or_else(|| o.get("msg"))
                    .map(value_to_text)
                    .unwrap_or_default();
                Some(Self { code, message })
            }
            Value::Bool(false) => None,
            other => Some(Self {
                code: value_as_i64(other).unwrap_or(error_code::OTHER),
                message: value_to_text(other),
            }),
        }
    }

    /// The canonical `[code, "message", null]` form.
    pub fn to_value(&self) -> Value {
        json!([self.code, self.message, null])
    }
}

impl std::fmt::Display for StratumError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

fn value_as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && f.abs() < 1e15)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn value_to_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A request or notification (notification: `id` is `null` or absent).
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub id: Value,
    pub method: String,
    pub params: Value,
}

impl Request {
    pub fn is_notification(&self) -> bool {
        self.id.is_null()
    }
}

/// A response to a request: `result` plus an optional error.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub id: Value,
    pub result: Value,
    pub error: Option<StratumError>,
}

impl Response {
    /// True when the result is `true` and there is no error (authorize/submit verdicts).
    pub fn is_true(&self) -> bool {
        self.error.is_none() && self.result == Value::Bool(true)
    }
}

/// One parsed line.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Request(Request),
    Response(Response),
}

#[derive(Deserialize)]
struct RawMessage {
    #[serde(default)]
    id: Value,
    #[serde(default)]
    method: Option<Value>,
    #[serde(default)]
    params: Option<Value>,
    #[serde(default)]
    result: Option<Value>,
    #[serde(default)]
    error: Option<Value>,
}

/// Parse one line (without or with its trailing newline) into a [`Message`].
pub fn parse_line(line: &str) -> Result<Message, ProtocolError> {
    let line = line.trim();
    if !line.starts_with('{') {
        // Distinguish "valid JSON but not an object" from junk for clearer errors.
        return match serde_json::from_str::<Value>(line) {
            Ok(_) => Err(ProtocolError::NotAnObject),
            Err(e) => Err(ProtocolError::Json(e.to_string())),
        };
    }
    let raw: RawMessage =
        serde_json::from_str(line).map_err(|e| ProtocolError::Json(e.to_string()))?;
    match raw.method {
        Some(Value::String(method)) => Ok(Message::Request(Request {
            id: raw.id,
            method,
            params: raw.params.unwrap_or(Value::Array(Vec::new())),
        })),
        Some(Value::Null) | None => {
            if raw.result.is_none() && raw.error.is_none() {
                return Err(ProtocolError::NotAMessage);
            }
            Ok(Message::Response(Response {
                id: raw.id,
                result: raw.result.unwrap_or(Value::Null),
                error: raw.error.as_ref().and_then(StratumError::from_value),
            }))
        }
        Some(_) => Err(ProtocolError::MethodNotString),
    }
}

// ---------------------------------------------------------------------------------------------
// Serialization: each function returns exactly one `\n`-terminated line.

/// `{"id":..,"method":..,"params":..}\n`
pub fn request_line(id: &Value, method: &str, params: &Value) -> String {
    let mut s = String::with_capacity(128);
    s.push_str("{\"id\":");
    push_json(&mut s, id);
    s.push_str(",\"method\":");
    push_json(&mut s, &Value::String(method.to_owned()));
    s.push_str(",\"params\":");
    push_json(&mut s, params);
    s.push_str("}\n");
    s
}

/// A notification (`"id":null`).
pub fn notification_line(method: &str, params: &Value) -> String {
    request_line(&Value::Null, method, params)
}

/// `{"id":..,"result":..,"error":null}\n`
pub fn result_line(id: &Value, result: &Value) -> String {
    let mut s = String::with_capacity(64);
    s.push_str("{\"id\":");
    push_json(&mut s, id);
    s.push_str(",\"result\":");
    push_json(&mut s, result);
    s.push_str(",\"error\":null}\n");
    s
}

/// `{"id":..,"result":true,"error":null}\n` without building a `Value` (the share hot path).
pub fn true_line(id: &Value) -> String {
    let mut s = String::with_capacity(48);
    s.push_str("{\"id\":");
    push_json(&mut s, id);
    s.push_str(",\"result\":true,\"error\":null}\n");
    s
}

/// `{"id":..,"result":null,"error":[code,"message",null]}\n`
pub fn error_line(id: &Value, code: i64, message: &str) -> String {
    let mut s = String::with_capacity(80);
    s.push_str("{\"id\":");
    push_json(&mut s, id);
    let _ = write!(s, ",\"result\":null,\"error\":[{code},");
    push_json(&mut s, &Value::String(message.to_owned()));
    s.push_str(",null]}\n");
    s
}

fn push_json(s: &mut String, v: &Value) {
    // Serializing a Value into a String cannot fail.
    match serde_json::to_string(v) {
        Ok(j) => s.push_str(&j),
        Err(_) => s.push_str("null"),
    }
}

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
    if !t.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("non-hex character".into());
    }
    u32::from_str_radix(t, 16).map_err(|e| e.to_string())
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

fn parse_hex_32(s: &str) -> Result<[u8; 32], String> {
    let v = parse_hex_bytes(s, 32)?;
    v.try_into()
        .map_err(|v: Vec<u8>| format!("expected 32 bytes, got {}", v.len()))
}

// ---------------------------------------------------------------------------------------------
// Parameter access helpers.

struct Params<'a> {
    method: &'static str,
    items: &'a [Value],
}

impl<'a> Params<'a> {
    fn new(method: &'static str, params: &'a Value) -> Result<Self, ProtocolError> {
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

    fn get(&self, index: usize) -> Option<&'a Value> {
        self.items.get(index).filter(|v| !v.is_null())
    }

    fn req(&self, index: usize, name: &'static str) -> Result<&'a Value, ProtocolError> {
        self.get(index).ok_or(ProtocolError::Missing {
            method: self.method,
            index,
            name,
        })
    }

    fn wrong(&self, name: &'static str, expected: &'static str) -> ProtocolError {
        ProtocolError::WrongType {
            method: self.method,
            name,
            expected,
        }
    }

    fn str(&self, index: usize, name: &'static str) -> Result<&'a str, ProtocolError> {
        self.req(index, name)?
            .as_str()
            .ok_or_else(|| self.wrong(name, "a string"))
    }

    fn opt_str(&self, index: usize, name: &'static str) -> Result<Option<&'a str>, ProtocolError> {
        match self.get(index) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.wrong(name, "a string")),
        }
    }

    /// A string, or a number rendered as a string (job ids from some software).
    fn id_str(&self, index: usize, name: &'static str) -> Result<String, ProtocolError> {
        match self.req(index, name)? {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            _ => Err(self.wrong(name, "a string")),
        }
    }

    fn hex_u32(&self, index: usize, name: &'static str) -> Result<u32, ProtocolError> {
        let s = self.str(index, name)?;
        parse_hex_u32(s).map_err(|reason| ProtocolError::BadHex {
            method: self.method,
            name,
            reason,
        })
    }

    fn hex_bytes(
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

    fn difficulty(&self, index: usize, name: &'static str) -> Result<f64, ProtocolError> {
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

    fn size(&self, index: usize, name: &'static str, max: u64) -> Result<usize, ProtocolError> {
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

// ---------------------------------------------------------------------------------------------
// Miner → server requests.

/// `mining.configure` parameters (BIP 310).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Configure {
    pub extensions: Vec<String>,
    pub version_rolling_mask: Option<u32>,
    pub version_rolling_min_bit_count: Option<u32>,
    pub minimum_difficulty: Option<f64>,
}

impl Configure {
    fn parse(params: &Value) -> Result<Self, ProtocolError> {
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

    fn to_params(&self) -> Value {
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

fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => s == "true",
        _ => false,
    }
}

/// `mining.subscribe` parameters.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Subscribe {
    pub user_agent: Option<String>,
    pub session: Option<String>,
}

impl Subscribe {
    fn parse(params: &Value) -> Result<Self, ProtocolError> {
        let p = Params::new(method::SUBSCRIBE, params)?;
        // Lenient: some firmware sends non-string junk here; it carries no meaning for us.
        Ok(Self {
            user_agent: p.get(0).map(value_to_text),
            session: p.get(1).map(value_to_text).filter(|s| !s.is_empty()),
        })
    }

    fn to_params(&self) -> Value {
        let mut v = Vec::new();
        if let Some(a) = &self.user_agent {
            v.push(Value::from(a.as_str()));
            if let Some(s) = &self.session {
                v.push(Value::from(s.as_str()));
            }
        }
        Value::Array(v)
    }
}

/// `mining.subscribe` result: `[[["mining.set_difficulty",sid],["mining.notify",sid]], en1, n2]`.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscribeResult {
    pub subscriptions: Vec<(String, String)>,
    pub extranonce1: Vec<u8>,
    pub extranonce2_size: usize,
}

impl SubscribeResult {
    pub fn to_value(&self) -> Value {
        let subs: Vec<Value> = self
            .subscriptions
            .iter()
            .map(|(m, id)| json!([m, id]))
            .collect();
        json!([subs, hex::encode(&self.extranonce1), self.extranonce2_size])
    }

    pub fn from_value(v: &Value) -> Result<Self, ProtocolError> {
        let bad = |reason: &str| ProtocolError::BadResult {
            what: method::SUBSCRIBE,
            reason: reason.to_owned(),
        };
        let a = v.as_array().ok_or_else(|| bad("not an array"))?;
        let mut subscriptions = Vec::new();
        if let Some(Value::Array(subs)) = a.first() {
            // Either a list of pairs or one bare pair.
            if subs.first().is_some_and(Value::is_string) {
                if let (Some(m), Some(id)) = (subs.first(), subs.get(1)) {
                    subscriptions.push((value_to_text(m), value_to_text(id)));
                }
            } else {
                for s in subs {
                    if let Some(pair) = s.as_array()
                        && let (Some(m), Some(id)) = (pair.first(), pair.get(1))
                    {
                        subscriptions.push((value_to_text(m), value_to_text(id)));
                    }
                }
            }
        }
        let e1 = a
            .get(1)
            .and_then(Value::as_str)
            .ok_or_else(|| bad("extranonce1 missing or not a string"))?;
        let extranonce1 = parse_hex_bytes(e1, MAX_EXTRANONCE_BYTES)
            .map_err(|r| bad(&format!("extranonce1: {r}")))?;
        let n2 = a
            .get(2)
            .and_then(Value::as_u64)
            .ok_or_else(|| bad("extranonce2_size missing or not an integer"))?;
        if n2 > MAX_EXTRANONCE_BYTES as u64 {
            return Err(bad("extranonce2_size too large"));
        }
        Ok(Self {
            subscriptions,
            extranonce1,
            extranonce2_size: n2 as usize,
        })
    }
}

/// `mining.authorize` parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Authorize {
    pub user: String,
    pub password: Option<String>,
}

impl Authorize {
    fn parse(params: &Value) -> Result<Self, ProtocolError> {
        let p = Params::new(method::AUTHORIZE, params)?;
        let user = p.str(0, "username")?.to_owned();
        // Passwords are often numbers or missing; they carry no meaning for the hub.
        let password = p.get(1).map(value_to_text);
        Ok(Self { user, password })
    }

    fn to_params(&self) -> Value {
        json!([self.user, self.password.as_deref().unwrap_or("x")])
    }
}

/// `mining.submit` parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Submit {
    pub worker: String,
    pub job_id: String,
    pub extranonce2: Vec<u8>,
    pub ntime: u32,
    pub nonce: u32,
    /// BIP 310 version bits (6th parameter), already masked by nobody: check against the mask.
    pub version_bits: Option<u32>,
}

impl Submit {
    fn parse(params: &Value) -> Result<Self, ProtocolError> {
        let p = Params::new(method::SUBMIT, params)?;
        Ok(Self {
            worker: p.str(0, "worker")?.to_owned(),
            job_id: p.id_str(1, "job_id")?,
            extranonce2: p.hex_bytes(2, "extranonce2", MAX_EXTRANONCE_BYTES)?,
            ntime: p.hex_u32(3, "ntime")?,
            nonce: p.hex_u32(4, "nonce")?,
            version_bits: match p.get(5) {
                None => None,
                Some(_) => Some(p.hex_u32(5, "version_bits")?),
            },
        })
    }

    pub fn to_params(&self) -> Value {
        let mut v = vec![
            Value::from(self.worker.as_str()),
            Value::from(self.job_id.as_str()),
            Value::from(hex::encode(&self.extranonce2)),
            Value::from(hex_u32(self.ntime)),
            Value::from(hex_u32(self.nonce)),
        ];
        if let Some(b) = self.version_bits {
            v.push(Value::from(hex_u32(b)));
        }
        Value::Array(v)
    }
}

/// A request a miner sends to a server (the hub, or a pool when the hub is the miner).
#[derive(Debug, Clone, PartialEq)]
pub enum MinerRequest {
    Configure(Configure),
    Subscribe(Subscribe),
    ExtranonceSubscribe,
    Authorize(Authorize),
    SuggestDifficulty(f64),
    Submit(Submit),
}

impl MinerRequest {
    /// `Ok(None)` for a method this enum does not know (answer error 20, do not disconnect).
    pub fn parse(method_name: &str, params: &Value) -> Result<Option<Self>, ProtocolError> {
        Ok(Some(match method_name {
            method::SUBMIT => MinerRequest::Submit(Submit::parse(params)?),
            method::CONFIGURE => MinerRequest::Configure(Configure::parse(params)?),
            method::SUBSCRIBE => MinerRequest::Subscribe(Subscribe::parse(params)?),
            method::EXTRANONCE_SUBSCRIBE => MinerRequest::ExtranonceSubscribe,
            method::AUTHORIZE => MinerRequest::Authorize(Authorize::parse(params)?),
            method::SUGGEST_DIFFICULTY => {
                let p = Params::new(method::SUGGEST_DIFFICULTY, params)?;
                MinerRequest::SuggestDifficulty(p.difficulty(0, "difficulty")?)
            }
            _ => return Ok(None),
        }))
    }

    pub fn method(&self) -> &'static str {
        match self {
            MinerRequest::Configure(_) => method::CONFIGURE,
            MinerRequest::Subscribe(_) => method::SUBSCRIBE,
            MinerRequest::ExtranonceSubscribe => method::EXTRANONCE_SUBSCRIBE,
            MinerRequest::Authorize(_) => method::AUTHORIZE,
            MinerRequest::SuggestDifficulty(_) => method::SUGGEST_DIFFICULTY,
            MinerRequest::Submit(_) => method::SUBMIT,
        }
    }

    pub fn to_params(&self) -> Value {
        match self {
            MinerRequest::Configure(c) => c.to_params(),
            MinerRequest::Subscribe(s) => s.to_params(),
            MinerRequest::ExtranonceSubscribe => json!([]),
            MinerRequest::Authorize(a) => a.to_params(),
            MinerRequest::SuggestDifficulty(d) => json!([difficulty_value(*d)]),
            MinerRequest::Submit(s) => s.to_params(),
        }
    }

    /// One line with the given id.
    pub fn to_line(&self, id: &Value) -> String {
        request_line(id, self.method(), &self.to_params())
    }
}

// ---------------------------------------------------------------------------------------------
// Server → miner requests and notifications.

/// `mining.notify` parameters. Byte fields are kept exactly as sent (prevhash NOT swapped).
#[derive(Debug, Clone, PartialEq)]
pub struct Notify {
    pub job_id: String,
    pub prevhash: [u8; 32],
    pub coinb1: Vec<u8>,
    pub coinb2: Vec<u8>,
    pub merkle_branch: Vec<[u8; 32]>,
    pub version: u32,
    pub nbits: u32,
    pub ntime: u32,
    pub clean_jobs: bool,
}

impl Notify {
    fn parse(params: &Value) -> Result<Self, ProtocolError> {
        let p = Params::new(method::NOTIFY, params)?;
        let prev = p.str(1, "prevhash")?;
        let prevhash = parse_hex_32(prev).map_err(|reason| ProtocolError::BadHex {
            method: method::NOTIFY,
            name: "prevhash",
            reason,
        })?;
        let branch_v = p
            .req(4, "merkle_branch")?
            .as_array()
            .ok_or_else(|| p.wrong("merkle_branch", "an array of hex strings"))?;
        if branch_v.len() > MAX_MERKLE_BRANCH {
            return Err(ProtocolError::BadValue {
                method: method::NOTIFY,
                name: "merkle_branch",
                reason: format!("{} entries (max {MAX_MERKLE_BRANCH})", branch_v.len()),
            });
        }
        let mut merkle_branch = Vec::with_capacity(branch_v.len());
        for b in branch_v {
            let s = b
                .as_str()
                .ok_or_else(|| p.wrong("merkle_branch", "an array of hex strings"))?;
            merkle_branch.push(parse_hex_32(s).map_err(|reason| ProtocolError::BadHex {
                method: method::NOTIFY,
                name: "merkle_branch",
                reason,
            })?);
        }
        let clean_jobs = match p.get(8) {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(v) if v.is_number() => truthy(v),
            Some(_) => return Err(p.wrong("clean_jobs", "a boolean")),
        };
        Ok(Self {
            job_id: p.id_str(0, "job_id")?,
            prevhash,
            coinb1: p.hex_bytes(2, "coinb1", MAX_COINBASE_PART_BYTES)?,
            coinb2: p.hex_bytes(3, "coinb2", MAX_COINBASE_PART_BYTES)?,
            merkle_branch,
            version: p.hex_u32(5, "version")?,
            nbits: p.hex_u32(6, "nbits")?,
            ntime: p.hex_u32(7, "ntime")?,
            clean_jobs,
        })
    }

    pub fn to_params(&self) -> Value {
        let branch: Vec<Value> = self
            .merkle_branch
            .iter()
            .map(|b| Value::from(hex::encode(b)))
            .collect();
        json!([
            self.job_id,
            hex::encode(self.prevhash),
            hex::encode(&self.coinb1),
            hex::encode(&self.coinb2),
            branch,
            hex_u32(self.version),
            hex_u32(self.nbits),
            hex_u32(self.ntime),
            self.clean_jobs
        ])
    }

    /// The notification line. The hub builds this ONCE per job and shares the bytes.
    pub fn to_line(&self) -> String {
        notification_line(method::NOTIFY, &self.to_params())
    }
}

/// `mining.set_extranonce` parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct SetExtranonce {
    pub extranonce1: Vec<u8>,
    pub extranonce2_size: usize,
}

/// `client.reconnect` parameters (all optional: empty means "reconnect to the same place").
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Reconnect {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub wait_seconds: Option<u64>,
}

/// A request or notification a server sends to a miner.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerRequest {
    SetDifficulty(f64),
    SetExtranonce(SetExtranonce),
    SetVersionMask(u32),
    Notify(Notify),
    Reconnect(Reconnect),
    GetVersion,
    ShowMessage(String),
}

impl ServerRequest {
    /// `Ok(None)` for a method this enum does not know.
    pub fn parse(method_name: &str, params: &Value) -> Result<Option<Self>, ProtocolError> {
        Ok(Some(match method_name {
            method::NOTIFY => ServerRequest::Notify(Notify::parse(params)?),
            method::SET_DIFFICULTY => {
                let p = Params::new(method::SET_DIFFICULTY, params)?;
                ServerRequest::SetDifficulty(p.difficulty(0, "difficulty")?)
            }
            method::SET_EXTRANONCE => {
                let p = Params::new(method::SET_EXTRANONCE, params)?;
                ServerRequest::SetExtranonce(SetExtranonce {
                    extranonce1: p.hex_bytes(0, "extranonce1", MAX_EXTRANONCE_BYTES)?,
                    extranonce2_size: p.size(1, "extranonce2_size", MAX_EXTRANONCE_BYTES as u64)?,
                })
            }
            method::SET_VERSION_MASK => {
                let p = Params::new(method::SET_VERSION_MASK, params)?;
                ServerRequest::SetVersionMask(p.hex_u32(0, "mask")?)
            }
            method::RECONNECT => {
                let p = Params::new(method::RECONNECT, params)?;
                let host = p.opt_str(0, "host")?.map(str::to_owned);
                let port = match p.get(1) {
                    None => None,
                    Some(Value::Number(n)) => Some(
                        n.as_u64()
                            .and_then(|n| u16::try_from(n).ok())
                            .ok_or_else(|| p.wrong("port", "a port number"))?,
                    ),
                    Some(Value::String(s)) => Some(
                        s.trim()
                            .parse::<u16>()
                            .map_err(|_| p.wrong("port", "a port number"))?,
                    ),
                    Some(_) => return Err(p.wrong("port", "a port number")),
                };
                let wait_seconds = match p.get(2) {
                    None => None,
                    Some(v) => Some(
                        value_as_i64(v)
                            .and_then(|w| u64::try_from(w).ok())
                            .ok_or_else(|| p.wrong("wait", "a non-negative integer"))?,
                    ),
                };
                ServerRequest::Reconnect(Reconnect {
                    host,
                    port,
                    wait_seconds,
                })
            }
            method::GET_VERSION => ServerRequest::GetVersion,
            method::SHOW_MESSAGE => {
                let p = Params::new(method::SHOW_MESSAGE, params)?;
                ServerRequest::ShowMessage(p.get(0).map(value_to_text).unwrap_or_default())
            }
            _ => return Ok(None),
        }))
    }

    pub fn method(&self) -> &'static str {
        match self {
            ServerRequest::SetDifficulty(_) => method::SET_DIFFICULTY,
            ServerRequest::SetExtranonce(_) => method::SET_EXTRANONCE,
            ServerRequest::SetVersionMask(_) => method::SET_VERSION_MASK,
            ServerRequest::Notify(_) => method::NOTIFY,
            ServerRequest::Reconnect(_) => method::RECONNECT,
            ServerRequest::GetVersion => method::GET_VERSION,
            ServerRequest::ShowMessage(_) => method::SHOW_MESSAGE,
        }
    }

    pub fn to_params(&self) -> Value {
        match self {
            ServerRequest::SetDifficulty(d) => json!([difficulty_value(*d)]),
            ServerRequest::SetExtranonce(s) => {
                json!([hex::encode(&s.extranonce1), s.extranonce2_size])
            }
            ServerRequest::SetVersionMask(m) => json!([hex_u32(*m)]),
            ServerRequest::Notify(n) => n.to_params(),
            ServerRequest::Reconnect(r) => {
                let mut v = Vec::new();
                if let Some(h) = &r.host {
                    v.push(Value::from(h.as_str()));
                    if let Some(p) = r.port {
                        v.push(Value::from(p));
                        if let Some(w) = r.wait_seconds {
                            v.push(Value::from(w));
                        }
                    }
                }
                Value::Array(v)
            }
            ServerRequest::GetVersion => json!([]),
            ServerRequest::ShowMessage(m) => json!([m]),
        }
    }

    /// One line: a notification for everything except `client.get_version`, which needs an id.
    pub fn to_line(&self, id: &Value) -> String {
        request_line(id, self.method(), &self.to_params())
    }

    /// As a notification (`"id":null`).
    pub fn to_notification(&self) -> String {
        notification_line(self.method(), &self.to_params())
    }
}

/// The standard subscription list the hub (or a simulated pool) returns from `mining.subscribe`.
pub fn standard_subscriptions(sid: &str) -> Vec<(String, String)> {
    vec![
        (method::SET_DIFFICULTY.to_owned(), sid.to_owned()),
        (method::NOTIFY.to_owned(), sid.to_owned()),
    ]
}

/// Plain serde form of an id for callers that want to build ids from numbers.
pub fn id(n: u64) -> Value {
    Value::from(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_request_with_numeric_and_string_ids_and_echoes_them() {
        let m = parse_line(
            r#"{"id":4,"method":"mining.submit","params":["w","1","00","00000000","00000000"]}"#,
        )
        .unwrap();
        let Message::Request(r) = m else { panic!() };
        assert_eq!(r.id, json!(4));
        assert_eq!(
            true_line(&r.id),
            "{\"id\":4,\"result\":true,\"error\":null}\n"
        );
        let m = parse_line(r#"{"id":"abc","method":"mining.subscribe","params":[]}"#).unwrap();
        let Message::Request(r) = m else { panic!() };
        assert_eq!(
            error_line(&r.id, 21, "Job \"x\""),
            "{\"id\":\"abc\",\"result\":null,\"error\":[21,\"Job \\\"x\\\"\",null]}\n"
        );
    }

    #[test]
    fn notification_has_null_id() {
        let l = ServerRequest::SetDifficulty(1024.0).to_notification();
        assert_eq!(
            l,
            "{\"id\":null,\"method\":\"mining.set_difficulty\",\"params\":[1024]}\n"
        );
        let Message::Request(r) = parse_line(&l).unwrap() else {
            panic!()
        };
        assert!(r.is_notification());
        assert_eq!(
            ServerRequest::parse(&r.method, &r.params).unwrap(),
            Some(ServerRequest::SetDifficulty(1024.0))
        );
    }

    #[test]
    fn responses_with_various_error_shapes() {
        let cases = [
            (
                r#"{"id":1,"result":null,"error":[21,"Job not found",null]}"#,
                Some(21),
            ),
            (
                r#"{"id":1,"result":null,"error":{"code":23,"message":"low"}}"#,
                Some(23),
            ),
            (r#"{"id":1,"result":false,"error":"nope"}"#, Some(20)),
            (r#"{"id":1,"result":true,"error":null}"#, None),
            (r#"{"id":1,"result":true}"#, None),
        ];
        for (line, code) in cases {
            let Message::Response(r) = parse_line(line).unwrap() else {
                panic!("{line}")
            };
            assert_eq!(r.error.as_ref().map(|e| e.code), code, "{line}");
        }
    }

    #[test]
    fn junk_gives_errors_not_panics() {
        for line in [
            "",
            "x",
            "[]",
            "42",
            "{",
            "{\"id\":1}",
            "{\"method\":5}",
            "\u{0}\u{1}",
        ] {
            assert!(parse_line(line).is_err(), "{line:?}");
        }
    }

    #[test]
    fn submit_round_trip_and_bad_fields() {
        let s = Submit {
            worker: "acct.w1".into(),
            job_id: "1a".into(),
            extranonce2: vec![0, 0, 0, 1],
            ntime: 0x4dd7f5c7,
            nonce: 0x9546a142,
            version_bits: Some(0x0000_2000),
        };
        let line = MinerRequest::Submit(s.clone()).to_line(&json!(7));
        let Message::Request(r) = parse_line(&line).unwrap() else {
            panic!()
        };
        assert_eq!(
            MinerRequest::parse(&r.method, &r.params).unwrap(),
            Some(MinerRequest::Submit(s))
        );

        let bad = [
            (
                json!(["w", "1", "zz", "00000000", "00000000"]),
                "extranonce2",
            ),
            (
                json!(["w", "1", "000", "00000000", "00000000"]),
                "extranonce2",
            ),
            (json!(["w", "1", "00", "123456789", "00000000"]), "ntime"),
            (json!(["w", "1", "00", "00000000", 5]), "nonce"),
            (json!(["w", "1", "00", "00000000"]), "nonce"),
            (json!([1, "1", "00", "00000000", "00000000"]), "worker"),
            (json!("w"), "params"),
        ];
        for (params, field) in bad {
            let e = MinerRequest::parse(method::SUBMIT, &params).unwrap_err();
            assert!(e.to_string().contains(field), "{e} should name {field}");
        }
        // numeric job ids are accepted as strings
        let Some(MinerRequest::Submit(s)) =
            MinerRequest::parse(method::SUBMIT, &json!(["w", 12, "00", "1", "2"])).unwrap()
        else {
            panic!()
        };
        assert_eq!(s.job_id, "12");
    }

    #[test]
    fn notify_round_trip() {
        let n = Notify {
            job_id: "j1".into(),
            prevhash: [0xab; 32],
            coinb1: vec![1, 2, 3],
            coinb2: vec![4, 5],
            merkle_branch: vec![[7; 32], [8; 32]],
            version: 0x2000_0000,
            nbits: 0x1a44b9f2,
            ntime: 0x4dd7f5c7,
            clean_jobs: true,
        };
        let line = n.to_line();
        assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'));
        let Message::Request(r) = parse_line(&line).unwrap() else {
            panic!()
        };
        assert_eq!(
            ServerRequest::parse(&r.method, &r.params).unwrap(),
            Some(ServerRequest::Notify(n))
        );
        // short branch entry is rejected precisely
        let mut p = r.params.clone();
        p[4] = json!(["abcd"]);
        let e = ServerRequest::parse(method::NOTIFY, &p).unwrap_err();
        assert!(e.to_string().contains("merkle_branch"));
    }

    #[test]
    fn configure_round_trip_and_result() {
        let c = Configure {
            extensions: vec![
                "version-rolling".into(),
                "minimum-difficulty".into(),
                "subscribe-extranonce".into(),
            ],
            version_rolling_mask: Some(0x1fffe000),
            version_rolling_min_bit_count: Some(2),
            minimum_difficulty: Some(512.0),
        };
        let line = MinerRequest::Configure(c.clone()).to_line(&json!(1));
        let Message::Request(r) = parse_line(&line).unwrap() else {
            panic!()
        };
        assert_eq!(
            MinerRequest::parse(&r.method, &r.params).unwrap(),
            Some(MinerRequest::Configure(c))
        );
        let res = ConfigureResult {
            version_rolling: Some(true),
            version_rolling_mask: Some(0x1fffe000),
            minimum_difficulty: Some(false),
            subscribe_extranonce: Some(true),
            unsupported: vec!["foo".into()],
        };
        let v = res.to_value();
        assert_eq!(v["version-rolling.mask"], json!("1fffe000"));
        assert_eq!(v["foo"], json!(false));
        assert_eq!(ConfigureResult::from_value(&v), res);
        assert_eq!(ConfigureResult::from_value(&json!(null)).granted_mask(), 0);
    }

    #[test]
    fn subscribe_result_round_trip_and_lenient_shapes() {
        let r = SubscribeResult {
            subscriptions: standard_subscriptions("s1"),
            extranonce1: vec![0xde, 0xad, 0xbe, 0xef],
            extranonce2_size: 4,
        };
        assert_eq!(SubscribeResult::from_value(&r.to_value()).unwrap(), r);
        let single = json!([
            ["mining.notify", "ae6812eb4cd7735a302a8a9dd95cf71f"],
            "08000002",
            4
        ]);
        let p = SubscribeResult::from_value(&single).unwrap();
        assert_eq!(p.extranonce1, vec![8, 0, 0, 2]);
        assert_eq!(p.subscriptions.len(), 1);
        assert!(SubscribeResult::from_value(&json!([[], "xyz", 4])).is_err());
        assert!(SubscribeResult::from_value(&json!([[], "00", 400])).is_err());
    }

    #[test]
    fn server_requests_round_trip() {
        let all = [
            ServerRequest::SetDifficulty(0.5),
            ServerRequest::SetExtranonce(SetExtranonce {
                extranonce1: vec![1, 2],
                extranonce2_size: 6,
            }),
            ServerRequest::SetVersionMask(0x1fffe000),
            ServerRequest::Reconnect(Reconnect {
                host: Some("h".into()),
                port: Some(3333),
                wait_seconds: Some(5),
            }),
            ServerRequest::Reconnect(Reconnect::default()),
            ServerRequest::GetVersion,
            ServerRequest::ShowMessage("hello".into()),
        ];
        for m in all {
            let line = m.to_line(&json!(9));
            let Message::Request(r) = parse_line(&line).unwrap() else {
                panic!()
            };
            assert_eq!(ServerRequest::parse(&r.method, &r.params).unwrap(), Some(m));
        }
        assert_eq!(ServerRequest::parse("x.y", &json!([])).unwrap(), None);
        assert!(ServerRequest::parse(method::SET_DIFFICULTY, &json!([-1])).is_err());
        assert!(ServerRequest::parse(method::SET_DIFFICULTY, &json!(["nan"])).is_err());
    }

    #[test]
    fn miner_requests_round_trip() {
        let all = [
            MinerRequest::Subscribe(Subscribe {
                user_agent: Some("cpuminer/2.5.1".into()),
                session: None,
            }),
            MinerRequest::ExtranonceSubscribe,
            MinerRequest::Authorize(Authorize {
                user: "a.b".into(),
                password: Some("x".into()),
            }),
            MinerRequest::SuggestDifficulty(1000.0),
        ];
        for m in all {
            let line = m.to_line(&json!("id"));
            let Message::Request(r) = parse_line(&line).unwrap() else {
                panic!()
            };
            assert_eq!(MinerRequest::parse(&r.method, &r.params).unwrap(), Some(m));
        }
        assert_eq!(MinerRequest::parse("mining.foo", &json!([])).unwrap(), None);
    }

    #[test]
    fn hex_u32_rules() {
        assert_eq!(parse_hex_u32("1fffe000"), Ok(0x1fffe000));
        assert_eq!(parse_hex_u32("2000"), Ok(0x2000));
        assert!(parse_hex_u32("").is_err());
        assert!(parse_hex_u32("+1").is_err());
        assert!(parse_hex_u32("123456789").is_err());
        assert_eq!(hex_u32(1), "00000001");
    }
}
