//! Routing in the hub: the routing document and its validated form are the contract with the
//! operator, defined once in [`hashsched_contract::routing`] and re-exported here under their old
//! paths; this module adds what does I/O with them: [`control`] (admitting documents from the
//! admin API and the file, the applied generation, the update counters) and [`reload`] (watching
//! the routing file).

pub use hashsched_contract::routing::*;

pub mod control;
pub mod reload;
