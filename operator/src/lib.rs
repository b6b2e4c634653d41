//! hashsched operator library: everything above the hub.
//!
//! - [`crd`], [`quantity`], [`scheduler`] and [`metric_names`] come from the pure core crate
//!   `hashsched-core` (`operator/core/`), re-exported here under their usual paths: the five
//!   custom resources and their quantities, the decision core (health from shares, allocation,
//!   SLA accounting, rendering of routing documents, Kubernetes objects and statuses) and the
//!   scheduler side's metric names. The core has no async runtime and no HTTP; this crate adds the
//!   I/O shells around it.
//! - [`local`]: local mode — a folder of manifests as the "API server", the scheduler loop and an
//!   embedded hub. [`demo`]: simulated pools and miners driving local mode through a scripted story.
//! - [`controller`]: the Kubernetes shell (`hashsched operator`): StratumHub children, the
//!   scheduling loop over the hubs' metrics, status writes and Events.
pub mod controller;
pub mod demo;
pub mod local;
pub use hashsched_core::{crd, metric_names, quantity, scheduler};
