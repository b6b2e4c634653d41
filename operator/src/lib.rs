//! hashsched operator library.
pub mod crd;
pub mod demo;
pub mod local;
pub mod quantity;
pub mod scheduler;
