//! The state file next to the manifests (`DIR/.hashsched-state.json`): what the Kubernetes
//! operator keeps in the objects' status subresources, local mode keeps here, so a restart loses
//! nothing — worker phases and health state, assignments, contract ledgers, lend/return history.
//!
//! Written atomically (temp file in the same directory, fsync, rename), so a crash mid-write
//! leaves the previous state intact. A state file that cannot be read is an error at start,
//! never silently replaced: it holds money (SLA credit).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::store::{StatusDocument, Statuses};
use crate::scheduler::cycle::CycleMemory;

/// File name of the state file inside the manifests folder (hidden: manifests loading skips it).
pub const STATE_FILE_NAME: &str = ".hashsched-state.json";
/// Version of the file's layout.
pub const STATE_VERSION: u32 = 1;
/// Largest state file read.
const MAX_STATE_BYTES: u64 = 64 * 1024 * 1024;

/// Why the state file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read state file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "state file {path} is not a hashsched state file ({detail}); move it away to start from the manifests alone"
    )]
    Parse { path: PathBuf, detail: String },
    #[error("cannot write state file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Everything local mode carries across restarts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalState {
    pub version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saved_at: Option<Timestamp>,
    /// The scheduler's memory between cycles (health states, placements, ledgers, routing).
    #[serde(default)]
    pub memory: CycleMemory,
    /// The objects' statuses, as `kubectl get -o yaml` would show them.
    #[serde(default)]
    pub statuses: Statuses,
    /// The last status tables (what `hashsched status --manifests DIR` prints).
    #[serde(default)]
    pub last_status: StatusDocument,
}

/// The state file of a manifests folder.
pub fn state_path(manifests_dir: &Path) -> PathBuf {
    manifests_dir.join(STATE_FILE_NAME)
}

/// Reads the state file; `Ok(None)` when there is none yet.
pub fn load(path: &Path) -> Result<Option<LocalState>, StateError> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    if meta.len() > MAX_STATE_BYTES {
        return Err(StateError::Parse {
            path: path.to_owned(),
            detail: format!("larger than {MAX_STATE_BYTES} bytes"),
        });
    }
    let bytes = std::fs::read(path).map_err(|source| StateError::Read {
        path: path.to_owned(),
        source,
    })?;
    let parse_error = |detail: String| StateError::Parse {
        path: path.to_owned(),
        detail,
    };
    let raw: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
        parse_error(if bytes.iter().all(u8::is_ascii_whitespace) {
            format!(
                "empty ({} bytes): truncated by a crash or a full disk?",
                bytes.len()
            )
        } else if e.is_eof() {
            format!(
                "truncated: it ends in the middle of the document after {} bytes ({e})",
                bytes.len()
            )
        } else {
            e.to_string()
        })
    })?;
    let state = LocalState::deserialize(&raw).map_err(|e| parse_error(e.to_string()))?;
    // Fields with defaults would swallow a damaged key (`"memory"` misspelt would load as an
    // empty memory: every contract's ledger silently reset). Everything in the file must be
    // something this layout reads.
    let understood = serde_json::to_value(&state).map_err(|e| parse_error(e.to_string()))?;
    if let Some(field) = first_unread_field(&raw, &understood, String::new()) {
        return Err(parse_error(format!(
            "field {field} is not part of the layout (damaged, or written by another version)"
        )));
    }
    if state.version != STATE_VERSION {
        return Err(StateError::Parse {
            path: path.to_owned(),
            detail: format!(
                "layout version {} (this hashsched reads {STATE_VERSION})",
                state.version
            ),
        });
    }
    Ok(Some(state))
}

/// The first key (as a path, `memory.ledgers.acme`) present in `raw` with a value that says
/// something but absent from `understood` (the parsed state written back).
fn first_unread_field(
    raw: &serde_json::Value,
    understood: &serde_json::Value,
    at: String,
) -> Option<String> {
    use serde_json::Value;
    let says_something = |v: &Value| match v {
        Value::Null => false,
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    };
    let join = |k: &str| {
        if at.is_empty() {
            k.to_owned()
        } else {
            format!("{at}.{k}")
        }
    };
    match (raw, understood) {
        (Value::Object(r), Value::Object(u)) => r.iter().find_map(|(k, v)| match u.get(k) {
            Some(w) => first_unread_field(v, w, join(k)),
            None => says_something(v).then(|| join(k)),
        }),
        (Value::Array(r), Value::Array(u)) => r
            .iter()
            .zip(u)
            .enumerate()
            .find_map(|(i, (v, w))| first_unread_field(v, w, format!("{at}[{i}]"))),
        _ => None,
    }
}

/// Writes the state file atomically: a temp file in the same folder, fsync, rename over.
pub fn save(path: &Path, state: &LocalState) -> Result<(), StateError> {
    let err = |source| StateError::Write {
        path: path.to_owned(),
        source,
    };
    let mut state = state.clone();
    state.version = STATE_VERSION;
    let bytes =
        serde_json::to_vec_pretty(&state).map_err(|e| err(std::io::Error::other(e.to_string())))?;
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(STATE_FILE_NAME);
    let tmp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        err(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_then_load_round_trips_and_garbage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = state_path(dir.path());
        assert!(load(&path).unwrap().is_none());
        let mut s = LocalState::default();
        s.last_status.source = "local test".into();
        s.memory.failover_counts.insert("acme".into(), 3);
        save(&path, &s).unwrap();
        let back = load(&path).unwrap().unwrap();
        assert_eq!(back.memory.failover_counts.get("acme"), Some(&3));
        assert_eq!(back.version, STATE_VERSION);
        // No temp files left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        std::fs::write(&path, b"{not json").unwrap();
        let e = load(&path).unwrap_err().to_string();
        assert!(e.contains("not a hashsched state file"), "{e}");
    }

    /// A state with money in it: two contract ledgers, a failover count, statuses.
    fn state_with_ledgers() -> LocalState {
        let mut s = LocalState::default();
        s.last_status.source = "local test".into();
        s.memory.failover_counts.insert("acme".into(), 3);
        for (name, credit) in [("acme-2026", 12.5), ("borealis-th", 0.25)] {
            s.memory.ledgers.insert(
                name.into(),
                crate::scheduler::accounting::Ledger {
                    up_slots: 1437,
                    down_slots: 3,
                    shortfall_hashes: credit * 1e12,
                    ..Default::default()
                },
            );
        }
        s
    }

    /// A crash or a full disk can leave any prefix of the file: every one of them is refused
    /// with an error that says so, and the file is left for the operator to restore.
    #[test]
    fn a_truncated_state_file_is_refused_never_reset() {
        let dir = tempfile::tempdir().unwrap();
        let path = state_path(dir.path());
        save(&path, &state_with_ledgers()).unwrap();
        let full = std::fs::read(&path).unwrap();
        for len in (0..full.len()).step_by(7).chain([full.len() - 1]) {
            std::fs::write(&path, &full[..len]).unwrap();
            let e = load(&path).expect_err("a prefix must not load").to_string();
            let hint = if full[..len].iter().all(u8::is_ascii_whitespace) {
                "empty"
            } else {
                "truncated"
            };
            assert!(e.contains(hint) && e.contains("move it away"), "{len}: {e}");
            assert_eq!(
                std::fs::read(&path).unwrap(),
                &full[..len],
                "file left as found"
            );
        }
        std::fs::write(&path, &full).unwrap();
        assert_eq!(load(&path).unwrap().unwrap().memory.ledgers.len(), 2);
    }

    /// A damaged key must not make a defaulted field swallow the ledgers.
    #[test]
    fn a_damaged_key_is_refused_never_read_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = state_path(dir.path());
        save(&path, &state_with_ledgers()).unwrap();
        let good = std::fs::read_to_string(&path).unwrap();
        for (from, to, field) in [
            ("\"memory\"", "\"memorx\"", "memorx"),
            ("\"statuses\"", "\"statusez\"", "statusez"),
            ("\"ledgers\"", "\"ledgerz\"", "ledger"),
        ] {
            assert!(good.contains(from), "{from} in the file");
            std::fs::write(&path, good.replacen(from, to, 1)).unwrap();
            let e = load(&path)
                .expect_err("a damaged key must not load")
                .to_string();
            assert!(e.contains(field), "{from} → {to}: {e}");
        }
        // Other kinds of damage: a wrong type, garbage appended, another layout version.
        for bad in [
            good.replacen("1437", "\"1437\"", 1),
            format!("{good}}}"),
            good.replacen("\"version\": 1", "\"version\": 2", 1),
            "null".to_owned(),
            "[]".to_owned(),
            "{}".to_owned(),
        ] {
            std::fs::write(&path, &bad).unwrap();
            let e = load(&path).expect_err("damage must not load").to_string();
            assert!(e.contains("not a hashsched state file"), "{e}");
        }
    }
}
