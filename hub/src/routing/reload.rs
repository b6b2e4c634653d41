//! Loads the routing file at start and reloads it when it changes.
//!
//! The file is usually a ConfigMap key mounted by the kubelet, which updates it by writing a new
//! timestamped directory and swapping the `..data` symlink: the file's own inode, mtime and even its
//! path resolution change in ways inotify-style watchers miss. Polling the *content* (sha256 of the
//! bytes, about once a second) sees every swap, works on any file system, and costs one small read.
//! A changed file goes through [`RoutingControl::submit_bytes`]; an invalid one is logged and
//! counted once per distinct content, and the last good document stays applied.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::control::{RoutingControl, RoutingSource, SubmitError};

/// Default poll interval of the routing file.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Largest routing file read (a 10 k-worker document is about 2 MiB).
pub const MAX_ROUTING_FILE_BYTES: u64 = 32 * 1024 * 1024;

/// What one poll found.
#[derive(Debug, Clone, PartialEq)]
pub enum ReloadOutcome {
    /// Same bytes as last time.
    NoChange,
    /// File absent or unreadable (kept the last good document).
    Unreadable(String),
    /// New content applied at this generation.
    Applied(u64),
    /// New bytes but the same document as applied (e.g. the file caught up with an API push).
    Unchanged(u64),
    /// New content refused (kept the last good document).
    Refused(SubmitError),
}

/// Polls one routing file.
pub struct FileReloader {
    path: PathBuf,
    control: Arc<RoutingControl>,
    last_seen: Option<[u8; 32]>,
    last_unreadable: Option<String>,
}

impl FileReloader {
    pub fn new(path: impl Into<PathBuf>, control: Arc<RoutingControl>) -> Self {
        Self {
            path: path.into(),
            control,
            last_seen: None,
            last_unreadable: None,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file once and submits it if its content changed since the last poll.
    pub fn poll_once(&mut self) -> ReloadOutcome {
        let bytes = match read_bounded(&self.path) {
            Ok(b) => b,
            Err(e) => {
                let msg = format!("{}: {e}", self.path.display());
                if self.last_unreadable.as_deref() != Some(msg.as_str()) {
                    tracing::warn!(file = %self.path.display(), error = %e,
                        "routing file unreadable; keeping the last good routing");
                    self.last_unreadable = Some(msg.clone());
                }
                return ReloadOutcome::Unreadable(msg);
            }
        };
        self.last_unreadable = None;
        let hash: [u8; 32] = Sha256::digest(&bytes).into();
        if self.last_seen == Some(hash) {
            return ReloadOutcome::NoChange;
        }
        self.last_seen = Some(hash);
        match self.control.submit_bytes(&bytes, RoutingSource::File) {
            Ok(a) if a.changed => ReloadOutcome::Applied(a.generation),
            Ok(a) => ReloadOutcome::Unchanged(a.generation),
            Err(e) => {
                tracing::error!(file = %self.path.display(), error = %e,
                    "routing file refused; keeping the last good routing");
                ReloadOutcome::Refused(e)
            }
        }
    }

    /// Polls forever (spawn it; abort the task to stop).
    pub async fn run(mut self, interval: Duration) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            // File reads are small; spawn_blocking keeps a slow volume from stalling the runtime.
            self = match tokio::task::spawn_blocking(move || {
                self.poll_once();
                self
            })
            .await
            {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "routing file poller stopped");
                    return;
                }
            };
        }
    }
}

fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(path)?;
    let mut buf = Vec::new();
    f.take(MAX_ROUTING_FILE_BYTES + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_ROUTING_FILE_BYTES {
        return Err(std::io::Error::other(format!(
            "larger than {MAX_ROUTING_FILE_BYTES} bytes"
        )));
    }
    Ok(buf)
}
