//! One module per `hashsched` subcommand; each is a thin shell over the library.

pub mod crdgen;
pub mod demo;
pub mod local;
pub mod status;
