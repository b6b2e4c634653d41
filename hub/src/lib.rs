//! hashsched stratum hub: a Stratum V1 proxy that routes each worker to the pool of the customer it
//! serves, switches pools without reconnecting miners, and measures every worker from its shares.
//!
//! The library is also the contract with the operator: routing document types ([`routing`]),
//! metric names ([`metrics`]) and per-worker facts ([`facts`]) are defined here once.

pub mod admin;
pub mod config;
pub(crate) mod downstream;
pub mod extranonce;
pub mod facts;
pub(crate) mod fanout;
pub mod http;
pub mod jobs;
pub(crate) mod lines;
pub mod logging;
pub mod metrics;
pub mod pool_health;
pub mod protocol;
pub mod routing;
pub mod server;
pub mod share;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
pub mod stats;
pub(crate) mod switchboard;
pub mod tls;
pub(crate) mod upstream;
pub mod vardiff;

pub use server::{Hub, HubError, HubHandle};
