//! One module per `hashsched` subcommand; each is a thin shell over the library.

pub mod crdgen;
