//! Why a routing document is refused: one [`RoutingError`] per problem, naming the field, and
//! the whole-document rejection [`RoutingRejected`] that carries all of them.

use std::fmt;

use thiserror::Error;

use super::ROUTING_API_VERSION;

/// One problem in a routing document, naming the offending field.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum RoutingError {
    #[error("cannot parse routing document: {0}")]
    Parse(String),
    #[error("apiVersion: unsupported {found:?} (this hub reads {ROUTING_API_VERSION:?})")]
    ApiVersion { found: String },
    #[error("{path}: unknown pool {pool:?}")]
    UnknownPool { path: String, pool: String },
    #[error("{path}: duplicate pool {name:?} (first defined at {first})")]
    DuplicatePool {
        path: String,
        name: String,
        first: String,
    },
    #[error("{path}: duplicate worker {name:?} (first listed at {first})")]
    DuplicateWorker {
        path: String,
        name: String,
        first: String,
    },
    #[error("{path}: malformed URL {url:?}: {reason}")]
    MalformedUrl {
        path: String,
        url: String,
        reason: String,
    },
    #[error(
        "{path}: missing password reference (set password.secretRef, password.file, or password.public for a non-secret value such as \"x\")"
    )]
    MissingPasswordRef { path: String },
    #[error("{path}: missing secret: {detail}")]
    MissingSecret { path: String, detail: String },
    #[error("{path}: empty pool list{hint}")]
    EmptyPoolList { path: String, hint: &'static str },
    #[error("{path}: {reason}")]
    Invalid { path: String, reason: String },
}

/// A document rejected whole, with every problem found.
#[derive(Debug, Clone, PartialEq, Error)]
pub struct RoutingRejected {
    pub errors: Vec<RoutingError>,
}

impl fmt::Display for RoutingRejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.errors.as_slice() {
            [] => write!(f, "routing document rejected"),
            [one] => write!(f, "routing document rejected: {one}"),
            many => {
                write!(f, "routing document rejected ({} problems): ", many.len())?;
                for (i, e) in many.iter().enumerate() {
                    if i > 0 {
                        write!(f, "; ")?;
                    }
                    write!(f, "{e}")?;
                }
                Ok(())
            }
        }
    }
}

impl From<RoutingError> for RoutingRejected {
    fn from(e: RoutingError) -> Self {
        Self { errors: vec![e] }
    }
}
