//! hashsched stratum hub: a Stratum V1 proxy that routes each worker to the pool of the customer it
//! serves, switches pools without reconnecting miners, and measures every worker from its shares.
//!
//! The contract with the operator (routing document types, metric names, per-worker facts) is
//! defined once in the `hashsched-contract` crate and re-exported here under the paths it had:
//! [`routing`], [`metrics`], [`facts`].

pub mod admin;
pub mod config;
pub(crate) mod downstream;
pub mod extranonce;
pub mod facts;
pub(crate) mod fanout;
pub mod http;
pub(crate) mod in_flight;
pub mod jobs;
pub mod lines;
pub(crate) mod link;
pub mod logging;
pub mod metrics;
#[cfg(test)]
mod module_graph;
pub mod pool_health;
pub mod protocol;
pub mod routing;
pub mod server;
pub mod share;
pub(crate) mod shared;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
pub mod stats;
pub(crate) mod switchboard;
pub mod tls;
pub(crate) mod upstream;
pub mod vardiff;

pub use server::{Hub, HubError, HubHandle};
