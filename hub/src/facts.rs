//! Per-worker and per-pool facts: the types are defined once in [`hashsched_contract::facts`]
//! (the contract with the operator) and re-exported here under their old paths; the hub fills
//! them in from its state ([`crate::server::HubHandle::facts`]).

pub use hashsched_contract::facts::*;
