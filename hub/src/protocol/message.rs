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

/// Plain serde form of an id for callers that want to build ids from numbers.
pub fn id(n: u64) -> Value {
    Value::from(n)
}
