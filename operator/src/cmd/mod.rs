//! One module per `hashsched` subcommand; each is a thin shell over the library.

pub mod crdgen;
pub mod demo;
pub mod local;
pub mod operator;
pub mod status;

/// Command-line durations, in the one duration grammar of the API and the routing document
/// (`90s`, `2m`, `1h30m`, `500ms`; see `quantity::Duration`).
pub(crate) fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    s.parse::<hashsched_operator::quantity::Duration>()
        .map(|d| d.as_std())
        .map_err(|e| e.to_string())
}
