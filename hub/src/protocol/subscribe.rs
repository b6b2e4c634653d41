//! `mining.subscribe`: the request parameters, the result (subscriptions, extranonce1,
//! extranonce2 size) and the standard subscription list.

use serde_json::{Value, json};

use super::message::{ProtocolError, value_to_text};
use super::params::{Params, parse_hex_bytes};
use super::{MAX_EXTRANONCE_BYTES, method};

/// `mining.subscribe` parameters.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Subscribe {
    pub user_agent: Option<String>,
    pub session: Option<String>,
}

impl Subscribe {
    pub(super) fn parse(params: &Value) -> Result<Self, ProtocolError> {
        let p = Params::new(method::SUBSCRIBE, params)?;
        // Lenient: some firmware sends non-string junk here; it carries no meaning for us.
        Ok(Self {
            user_agent: p.get(0).map(value_to_text),
            session: p.get(1).map(value_to_text).filter(|s| !s.is_empty()),
        })
    }

    pub(super) fn to_params(&self) -> Value {
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

/// The standard subscription list the hub (or a simulated pool) returns from `mining.subscribe`.
pub fn standard_subscriptions(sid: &str) -> Vec<(String, String)> {
    vec![
        (method::SET_DIFFICULTY.to_owned(), sid.to_owned()),
        (method::NOTIFY.to_owned(), sid.to_owned()),
    ]
}
