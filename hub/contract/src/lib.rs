//! The contract between the hashsched hub and the operator, in one place (issue #12, "one fact,
//! one place"): the routing document the operator renders and the hub applies ([`routing`]), the
//! per-worker and per-pool facts the hub reports ([`facts`]), the metric and label names of the
//! hub's `/metrics` page ([`metric_names`]), the pool TLS settings a document resolves to ([`tls`]),
//! the hub configuration the operator renders ([`config`]), and the grammar of every quantity
//! people write by hand — hashrate, duration, percentage ([`quantity`]) — used alike by the
//! custom resources, the routing document and the command line.
//!
//! Plain types, parsing and validation only: no sockets, no async runtime, no metrics registry.
//! The only I/O is synchronous file reading: [`routing::SecretStore`] reads pool passwords and CA
//! bundles from mounted Secret files when a document is loaded, and
//! [`config::HubConfig::from_file`] reads a config file. The scheduler core can depend on this
//! crate without pulling tokio.

pub mod config;
pub mod facts;
pub mod metric_names;
pub mod quantity;
pub mod routing;
pub mod tls;
