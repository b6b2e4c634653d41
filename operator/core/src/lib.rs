//! The scheduler's pure core: hashsched's API types and every decision made from them.
//!
//! - [`crd`]: the five custom resources (`hashsched.io/v1alpha1`), their schemas and admission
//!   without an apiserver; [`quantity`]: the hashrate, duration and percentage grammar they use
//!   (from `hashsched-contract`).
//! - [`scheduler`]: health from shares, allocation of spares, SLA accounting, and the rendering
//!   of routing documents, hub Kubernetes objects, statuses and SLI series, as one decision
//!   cycle.
//! - [`metric_names`]: the scheduler side's metric and label names.
//!
//! Pure functions over plain data: no sockets, no async runtime, no HTTP. The Kubernetes operator,
//! local mode and the demo (crate `hashsched-operator`) are the I/O shells around the same core,
//! and `cargo tree -p hashsched-core -e normal` shows that no tokio or HTTP stack comes with it.

pub mod crd;
pub mod metric_names;
pub mod scheduler;

pub use hashsched_contract::quantity;
