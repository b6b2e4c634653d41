//! The line codec itself: the message envelope (request, response, error) and its parsing and
//! serialization, independent of any one method. The per-method files build on these.

use serde::Deserialize;
use serde_json::{Value, json};
use std::fmt::Write as _;

use super::error_code;

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

pub(super) fn value_as_i64(v: &Value) -> Option<i64> {
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

pub(super) fn value_to_text(v: &Value) -> String {
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
    #[serde(default, deserialize_with = "params_value")]
    params: Option<Value>,
    #[serde(default)]
    result: Option<Value>,
    #[serde(default)]
    error: Option<Value>,
}

/// `params` as `Option<Value>` gives it, except that an array's vector is sized for a share's
/// five or six parameters at its first element (serde_json's `Value` grows it 0 → 4 → 8: two
/// allocations per `mining.submit`). Everything else is built exactly as `Value` builds it.
fn params_value<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Ok(Option::<ParamsValue>::deserialize(d)?.map(|p| p.0))
}

struct ParamsValue(Value);

impl<'de> Deserialize<'de> for ParamsValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ParamsVisitor).map(ParamsValue)
    }
}

struct ParamsVisitor;

impl<'de> serde::de::Visitor<'de> for ParamsVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items: Vec<Value> = Vec::new();
        while let Some(item) = seq.next_element()? {
            if items.is_empty() {
                items.reserve(6);
            }
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Value, A::Error> {
        Value::deserialize(serde::de::value::MapAccessDeserializer::new(map))
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
}

/// Parse one line (without or with its trailing newline) into a [`Message`].
pub fn parse_line(line: &str) -> Result<Message, ProtocolError> {
    let line = line.trim();
    if let Some(id) = canonical_true_answer(line) {
        return Ok(Message::Response(Response {
            id: Value::from(id),
            result: Value::Bool(true),
            error: None,
        }));
    }
    parse_trimmed_line(line)
}

/// [`parse_line`] without its shortcut for the most common answer: what every line would give
/// through serde alone. For differential tests and the fuzz target, which check that the two
/// always agree.
pub fn parse_line_without_shortcut(line: &str) -> Result<Message, ProtocolError> {
    parse_trimmed_line(line.trim())
}

/// [`parse_line`] without its shortcut, for a line already trimmed.
fn parse_trimmed_line(line: &str) -> Result<Message, ProtocolError> {
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

/// The id of a line that is exactly `{"id":N,"result":true,"error":null}` with `N` a `u64`
/// written as JSON writes it (no sign, no leading zero, no fraction or exponent): the form in
/// which pools accept most shares, and the one [`true_line`] writes. Recognized without the
/// generic parser; any other line (spaces, other order, another id) takes the generic path,
/// which gives the same [`Message`] for this form.
fn canonical_true_answer(line: &str) -> Option<u64> {
    let rest = line.strip_prefix("{\"id\":")?;
    let rest = rest.strip_suffix(",\"result\":true,\"error\":null}")?;
    let digits = rest.as_bytes();
    let ok = match digits {
        [b'0'] => true,
        [b'1'..=b'9', tail @ ..] => tail.len() < 20 && tail.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    if !ok {
        return None;
    }
    // At most 20 digits: a value above u64::MAX fails here and takes the generic path.
    rest.parse::<u64>().ok()
}

// ---------------------------------------------------------------------------------------------
// Serialization: each function returns exactly one `\n`-terminated line.

/// `{"id":..,"method":..,"params":..}\n`
pub fn request_line(id: &Value, method: &str, params: &Value) -> String {
    let mut s = String::with_capacity(128);
    s.push_str("{\"id\":");
    push_json(&mut s, id);
    s.push_str(",\"method\":");
    push_json_str(&mut s, method);
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

/// [`true_line`] appended to `out` (the share hot path: no `String`).
pub fn push_true_line(out: &mut Vec<u8>, id: &Value) {
    out.extend_from_slice(b"{\"id\":");
    match id.as_u64() {
        Some(n) => push_u64(out, n),
        // Writing JSON into a `Vec` cannot fail.
        None => {
            let _ = serde_json::to_writer(&mut *out, id);
        }
    }
    out.extend_from_slice(b",\"result\":true,\"error\":null}\n");
}

/// `{"id":..,"result":null,"error":[code,"message",null]}\n`
pub fn error_line(id: &Value, code: i64, message: &str) -> String {
    let mut s = String::with_capacity(80);
    s.push_str("{\"id\":");
    push_json(&mut s, id);
    let _ = write!(s, ",\"result\":null,\"error\":[{code},");
    push_json_str(&mut s, message);
    s.push_str(",null]}\n");
    s
}

fn push_json(s: &mut String, v: &Value) {
    // `Value`'s Display is serde_json's compact serializer writing straight into `s` (the same
    // bytes as `serde_json::to_string`, without a temporary string); it cannot fail.
    let before = s.len();
    if write!(s, "{v}").is_err() {
        s.truncate(before);
        s.push_str("null");
    }
}

// ---------------------------------------------------------------------------------------------
// Allocation-free pieces of lines for the share hot path: each writes exactly the bytes
// serde_json writes for the same value (pinned by tests against serde_json).

/// Where line pieces go: a `String` (answers to miners) or a `Vec<u8>` (a session's output).
pub trait LineSink {
    fn put(&mut self, s: &str);
    /// ASCII bytes (digits written here): a `Vec<u8>` takes them as they are, a `String`
    /// checks them.
    fn put_ascii(&mut self, b: &[u8]) {
        if let Ok(t) = std::str::from_utf8(b) {
            self.put(t);
        }
    }
}

impl LineSink for String {
    fn put(&mut self, s: &str) {
        self.push_str(s);
    }
}

impl LineSink for Vec<u8> {
    fn put(&mut self, s: &str) {
        self.extend_from_slice(s.as_bytes());
    }

    fn put_ascii(&mut self, b: &[u8]) {
        self.extend_from_slice(b);
    }
}

/// serde_json's escapes for the control characters U+0000..U+001F.
const CONTROL_ESCAPES: [&str; 32] = [
    "\\u0000", "\\u0001", "\\u0002", "\\u0003", "\\u0004", "\\u0005", "\\u0006", "\\u0007", "\\b",
    "\\t", "\\n", "\\u000b", "\\f", "\\r", "\\u000e", "\\u000f", "\\u0010", "\\u0011", "\\u0012",
    "\\u0013", "\\u0014", "\\u0015", "\\u0016", "\\u0017", "\\u0018", "\\u0019", "\\u001a",
    "\\u001b", "\\u001c", "\\u001d", "\\u001e", "\\u001f",
];

/// `s` as a JSON string, escaped as serde_json escapes it (`"`, `\\`, control characters).
pub fn push_json_str<W: LineSink + ?Sized>(out: &mut W, s: &str) {
    out.put("\"");
    let mut start = 0;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        let esc = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0..=0x1f => CONTROL_ESCAPES[usize::from(b)],
            _ => continue,
        };
        // `i` is at an ASCII byte: a char boundary on both sides.
        out.put(&s[start..i]);
        out.put(esc);
        start = i + 1;
    }
    out.put(&s[start..]);
    out.put("\"");
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Lower-case hex of `bytes` (as `hex::encode`), without a temporary string.
pub fn push_hex<W: LineSink + ?Sized>(out: &mut W, bytes: &[u8]) {
    let mut buf = [0u8; 64];
    for chunk in bytes.chunks(buf.len() / 2) {
        for (pair, &b) in buf.chunks_exact_mut(2).zip(chunk) {
            pair[0] = HEX_DIGITS[usize::from(b >> 4)];
            pair[1] = HEX_DIGITS[usize::from(b & 0x0f)];
        }
        out.put_ascii(&buf[..2 * chunk.len()]);
    }
}

/// Eight lower-case hex digits of `x` (as [`super::hex_u32`]).
pub fn push_hex_u32<W: LineSink + ?Sized>(out: &mut W, x: u32) {
    push_hex(out, &x.to_be_bytes());
}

/// `n` in decimal (as serde_json writes a `u64`).
pub fn push_u64<W: LineSink + ?Sized>(out: &mut W, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.put_ascii(&buf[i..]);
}

/// Plain serde form of an id for callers that want to build ids from numbers.
pub fn id(n: u64) -> Value {
    Value::from(n)
}
