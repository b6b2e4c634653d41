//! Hub configuration: the types, defaults and checks are defined once in
//! [`hashsched_contract::config`] (the operator renders the same types into the hub's config
//! file) and re-exported here under their old paths.

pub use hashsched_contract::config::*;
