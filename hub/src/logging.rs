//! One logging setup for every long-running binary (`stratum-hub`, `hashsched operator`): the
//! formats an operator reads in a terminal, in `kubectl logs` and in a log pipeline.
//!
//! - On a terminal: the usual coloured, human-readable lines.
//! - Not on a terminal (a container's stdout/stderr, a file, a pipe): the same lines without ANSI
//!   colour escapes, which otherwise end up as `\x1b[2m` garbage in every log viewer.
//! - `--log-json`: one JSON object per line (time, level, target, message, span fields), for
//!   pipelines that parse logs.
//!
//! The level comes from `RUST_LOG` (default `info`). Logs go to stderr.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines; colours only when stderr is a terminal.
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// `Json` when `json` is set (the `--log-json` flag), else `Text`.
    pub fn from_flag(json: bool) -> Self {
        if json {
            LogFormat::Json
        } else {
            LogFormat::Text
        }
    }
}

/// Whether text logs get ANSI colours: only when a person is looking at a terminal and
/// `NO_COLOR` is not set.
pub fn use_colour(stderr_is_terminal: bool, no_color_env: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color_env.is_none_or(|v| v.is_empty())
}

/// The filter from `RUST_LOG`, or `default` when it is unset or unreadable.
pub fn env_filter(default: &str) -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default))
}

/// Installs the global subscriber. A second call (a test harness that already installed one) is
/// ignored rather than a panic.
pub fn init(format: LogFormat) {
    let filter = env_filter("info");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().with_current_span(true).try_init(),
        LogFormat::Text => {
            let ansi = use_colour(
                std::io::stderr().is_terminal(),
                std::env::var_os("NO_COLOR").as_deref(),
            );
            builder.with_ansi(ansi).try_init()
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        assert!(use_colour(true, None));
        assert!(!use_colour(false, None), "container logs: no escapes");
        assert!(!use_colour(true, Some(OsStr::new("1"))));
        assert!(
            use_colour(true, Some(OsStr::new(""))),
            "empty NO_COLOR is unset"
        );
    }

    #[test]
    fn flag_picks_the_format() {
        assert_eq!(LogFormat::from_flag(true), LogFormat::Json);
        assert_eq!(LogFormat::from_flag(false), LogFormat::Text);
    }
}
