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

use super::control::{Admission, RoutingControl, RoutingSource, SubmitError, admit};

/// Default poll interval of the routing file.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Every this many polls the file is re-submitted even when its bytes did not change, so that a
/// rotated Secret (the referenced password file changed) reaches new upstream sessions.
pub const RESUBMIT_EVERY_POLLS: u32 = 30;
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
    polls_since_submit: u32,
}

impl FileReloader {
    pub fn new(path: impl Into<PathBuf>, control: Arc<RoutingControl>) -> Self {
        Self {
            path: path.into(),
            control,
            last_seen: None,
            last_unreadable: None,
            polls_since_submit: 0,
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
            self.polls_since_submit = self.polls_since_submit.saturating_add(1);
            if self.polls_since_submit < RESUBMIT_EVERY_POLLS {
                return ReloadOutcome::NoChange;
            }
            // Same bytes: only a secret rotation can make this worth applying; stay quiet
            // otherwise (an invalid file was already reported).
            self.polls_since_submit = 0;
            let Ok(valid) = super::ValidRouting::from_bytes(&bytes, self.control.secrets()) else {
                return ReloadOutcome::NoChange;
            };
            if admit(self.control.current().as_deref(), &valid) != Admission::SecretsRefresh {
                return ReloadOutcome::NoChange;
            }
            return match self.control.submit(valid, RoutingSource::File) {
                Ok(a) if a.changed => ReloadOutcome::Applied(a.generation),
                _ => ReloadOutcome::NoChange,
            };
        }
        self.last_seen = Some(hash);
        self.polls_since_submit = 0;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::SecretStore;
    use crate::routing::control::{RecordingSink, test_doc};
    use std::os::unix::fs::symlink;

    /// A ConfigMap volume as the kubelet writes it: `<dir>/..<ts>/routing.yaml`,
    /// `<dir>/..data -> ..<ts>`, `<dir>/routing.yaml -> ..data/routing.yaml`.
    struct ConfigMapDir {
        dir: tempfile::TempDir,
        n: u32,
    }

    impl ConfigMapDir {
        fn new(content: &str) -> Self {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut me = Self { dir, n: 0 };
            me.swap(content);
            symlink("..data/routing.yaml", me.dir.path().join("routing.yaml")).expect("link");
            me
        }
        fn file(&self) -> PathBuf {
            self.dir.path().join("routing.yaml")
        }
        /// Atomic update the way the kubelet does it.
        fn swap(&mut self, content: &str) {
            self.n += 1;
            let ts = format!("..2026_11_24_04_00_{:02}.{}", self.n, 1000 + self.n);
            let ts_dir = self.dir.path().join(&ts);
            std::fs::create_dir(&ts_dir).expect("mkdir");
            std::fs::write(ts_dir.join("routing.yaml"), content).expect("write");
            let tmp = self.dir.path().join("..data_tmp");
            symlink(&ts, &tmp).expect("tmp link");
            let old = std::fs::read_link(self.dir.path().join("..data")).ok();
            std::fs::rename(&tmp, self.dir.path().join("..data")).expect("swap");
            if let Some(old) = old {
                std::fs::remove_dir_all(self.dir.path().join(old)).expect("rm old");
            }
        }
    }

    #[test]
    fn reloads_on_symlink_swap_and_keeps_last_good() {
        let mut cm = ConfigMapDir::new(&test_doc(1, 3333));
        let sink = Arc::new(RecordingSink::default());
        let control = Arc::new(RoutingControl::new(SecretStore::none(), sink.clone()));
        let mut r = FileReloader::new(cm.file(), control.clone());
        assert_eq!(r.poll_once(), ReloadOutcome::Applied(1));
        assert_eq!(r.poll_once(), ReloadOutcome::NoChange);

        cm.swap(&test_doc(2, 4444));
        assert_eq!(r.poll_once(), ReloadOutcome::Applied(2));

        cm.swap(&test_doc(3, 4444).replace("pools: [main]", "pools: [nope]"));
        let ReloadOutcome::Refused(e) = r.poll_once() else {
            panic!("invalid file must be refused")
        };
        assert!(
            e.to_string()
                .contains(r#"workers[0].pools[0]: unknown pool "nope""#),
            "{e}"
        );
        assert_eq!(control.applied_generation(), Some(2), "last good kept");
        assert_eq!(
            r.poll_once(),
            ReloadOutcome::NoChange,
            "one complaint per content"
        );

        // An API push got ahead; the file catching up later is not an error.
        control
            .submit_bytes(test_doc(4, 5555).as_bytes(), RoutingSource::Api)
            .expect("api");
        cm.swap(&test_doc(3, 4444));
        assert!(matches!(
            r.poll_once(),
            ReloadOutcome::Refused(SubmitError::Stale { .. })
        ));
        cm.swap(&test_doc(4, 5555));
        assert_eq!(r.poll_once(), ReloadOutcome::Unchanged(4));
        cm.swap(&test_doc(5, 5555));
        assert_eq!(r.poll_once(), ReloadOutcome::Applied(5));
        assert_eq!(sink.generations(), vec![1, 2, 4, 5]);
    }

    #[test]
    fn rotated_secret_is_picked_up_without_a_new_generation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secrets = dir.path().join("secrets");
        std::fs::create_dir_all(secrets.join("acme-pool")).expect("mkdir");
        std::fs::write(secrets.join("acme-pool/password"), "old\n").expect("write");
        let doc = test_doc(1, 3333).replace(
            "password: { public: x }",
            "password: { secretRef: { name: acme-pool, key: password } }",
        );
        let path = dir.path().join("routing.yaml");
        std::fs::write(&path, &doc).expect("write");
        let sink = Arc::new(RecordingSink::default());
        let control = Arc::new(RoutingControl::new(
            SecretStore::new(&secrets),
            sink.clone(),
        ));
        let mut r = FileReloader::new(&path, control.clone());
        assert_eq!(r.poll_once(), ReloadOutcome::Applied(1));
        let password = |c: &RoutingControl| {
            c.current()
                .and_then(|v| v.pool("main").map(|p| p.password.expose().to_string()))
        };
        assert_eq!(password(&control).as_deref(), Some("old"));
        // Unchanged secret: the periodic re-check applies nothing.
        for _ in 0..RESUBMIT_EVERY_POLLS {
            assert_eq!(r.poll_once(), ReloadOutcome::NoChange);
        }
        std::fs::write(secrets.join("acme-pool/password"), "new\n").expect("rotate");
        let mut applied = None;
        for _ in 0..=RESUBMIT_EVERY_POLLS {
            if let ReloadOutcome::Applied(g) = r.poll_once() {
                applied = Some(g);
            }
        }
        assert_eq!(
            applied,
            Some(1),
            "same generation re-applied with the new password"
        );
        assert_eq!(password(&control).as_deref(), Some("new"));
        assert_eq!(sink.generations(), vec![1, 1]);
        assert_eq!(control.stats().stale + control.stats().conflict, 0);
    }

    #[test]
    fn missing_file_keeps_running() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sink = Arc::new(RecordingSink::default());
        let control = Arc::new(RoutingControl::new(SecretStore::none(), sink.clone()));
        let path = dir.path().join("routing.yaml");
        let mut r = FileReloader::new(&path, control.clone());
        assert!(matches!(r.poll_once(), ReloadOutcome::Unreadable(_)));
        std::fs::write(&path, test_doc(3, 3333)).expect("write");
        assert_eq!(r.poll_once(), ReloadOutcome::Applied(3));
        std::fs::remove_file(&path).expect("rm");
        assert!(matches!(r.poll_once(), ReloadOutcome::Unreadable(_)));
        assert_eq!(control.applied_generation(), Some(3));
    }

    #[tokio::test]
    async fn background_poller_sees_swaps() {
        let mut cm = ConfigMapDir::new(&test_doc(1, 3333));
        let sink = Arc::new(RecordingSink::default());
        let control = Arc::new(RoutingControl::new(SecretStore::none(), sink.clone()));
        let task = tokio::spawn(
            FileReloader::new(cm.file(), control.clone()).run(Duration::from_millis(20)),
        );
        let wait_for = |g: u64| {
            let control = control.clone();
            async move {
                for _ in 0..1500 {
                    if control.applied_generation() == Some(g) {
                        return true;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                false
            }
        };
        assert!(wait_for(1).await);
        cm.swap(&test_doc(2, 3333));
        assert!(wait_for(2).await);
        task.abort();
    }
}
