//! hashsched operator library.
pub mod scheduler;
pub mod crd;
pub mod quantity;
pub mod local;
pub mod demo;
