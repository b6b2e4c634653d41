//! Dispatch over the miner → server methods: one enum, parsed by method name, serialized back
//! to one line.

use serde_json::{Value, json};

use super::authorize::Authorize;
use super::configure::Configure;
use super::message::{ProtocolError, request_line};
use super::method;
use super::params::{Params, difficulty_value};
use super::submit::Submit;
use super::subscribe::Subscribe;

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
