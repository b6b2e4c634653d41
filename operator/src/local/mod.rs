//! Local mode: the whole product on one machine, no cluster needed.
//!
//! A folder of the same YAML manifests `kubectl apply` takes is the "API server"
//! ([`manifests`] loads and admits them, references included); [`store`] turns the scheduler's
//! decisions into the objects' statuses; [`state`] keeps those statuses in a file next to the
//! manifests so a restart loses nothing; [`runner`] runs the embedded hub and the decision cycle
//! and picks up edits; [`http`] serves `/status` and the hub's `/metrics`; [`table`] renders what
//! `hashsched status` prints.

pub mod endpoint;
pub mod load;
pub mod runner;
pub mod state;
pub mod store;
pub mod table;

pub use load::{Manifests, ManifestsError, Source};
pub use runner::{LocalHandle, LocalOptions, Runner};
pub use state::LocalState;
pub use store::{ContractRow, PoolRow, StatusDocument, WorkerRow};
