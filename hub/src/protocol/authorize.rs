//! `mining.authorize`: worker name and password.

use serde_json::{Value, json};

use super::message::{ProtocolError, value_to_text};
use super::method;
use super::params::Params;

/// `mining.authorize` parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Authorize {
    pub user: String,
    pub password: Option<String>,
}

impl Authorize {
    pub(super) fn parse(params: &Value) -> Result<Self, ProtocolError> {
        let p = Params::new(method::AUTHORIZE, params)?;
        let user = p.str(0, "username")?.to_owned();
        // Passwords are often numbers or missing; they carry no meaning for the hub.
        let password = p.get(1).map(value_to_text);
        Ok(Self { user, password })
    }

    pub(super) fn to_params(&self) -> Value {
        json!([self.user, self.password.as_deref().unwrap_or("x")])
    }
}
