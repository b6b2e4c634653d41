//! The server → miner direction: `mining.notify`, `mining.set_extranonce`, `client.reconnect`
//! and the dispatch enum over every request and notification a server sends.

use serde_json::{Value, json};

use super::message::{ProtocolError, notification_line, request_line, value_as_i64, value_to_text};
use super::params::{Params, difficulty_value, hex_u32, parse_hex_32, truthy};
use super::{MAX_COINBASE_PART_BYTES, MAX_EXTRANONCE_BYTES, MAX_MERKLE_BRANCH, method};

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
