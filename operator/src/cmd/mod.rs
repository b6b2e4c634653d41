//! One module per `hashsched` subcommand; each is a thin shell over the library.

pub mod crdgen;
pub mod demo;
pub mod local;
pub mod operator;
pub mod status;

/// Command-line durations: seconds (`120`) or a Kubernetes-style duration (`2m`, `90s`, `1h30m`).
pub(crate) fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(std::time::Duration::from_secs(secs));
    }
    s.parse::<hashsched_operator::quantity::Duration>()
        .map(|d| d.as_std())
        .map_err(|e| e.to_string())
}
