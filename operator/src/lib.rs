//! hashsched operator library: everything above the hub.
//!
//! - [`crd`] and [`quantity`]: the five custom resources (`hashsched.io/v1alpha1`) and their
//!   hashrate / duration / percentage quantities — the product's API.
//! - [`scheduler`]: the pure decision core (health from shares, allocation, SLA accounting,
//!   rendering of routing documents and Kubernetes objects), shared by every front end.
//! - [`local`]: local mode — a folder of manifests as the "API server", the scheduler loop and an
//!   embedded hub. [`demo`]: simulated pools and miners driving local mode through a scripted story.
//! - [`controller`]: the Kubernetes shell (`hashsched operator`): StratumHub children, the
//!   scheduling loop over the hubs' metrics, status writes and Events.
//! - [`metrics`]: the scheduler side's metric names (per contract, per worker, operator internals).
pub mod controller;
pub mod crd;
pub mod demo;
pub mod local;
pub mod metrics;
pub use hashsched_contract::quantity;
pub mod scheduler;
