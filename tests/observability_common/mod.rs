//! Shared by the rule, dashboard and live-Prometheus tests: where the rule files and dashboards
//! live, the product's metric catalogue (hub and scheduler side, from the one place each name is
//! defined), the scan for metric and recording-rule names in PromQL text, and promtool.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn rules_dir() -> PathBuf {
    repo().join("charts/hashsched/files/rules")
}

pub fn dashboards_dir() -> PathBuf {
    repo().join("charts/hashsched/files/dashboards")
}

/// The plain rule files (`*.rules.yml`), sorted.
pub fn rule_files() -> Vec<PathBuf> {
    files_with_suffix(&rules_dir(), ".rules.yml")
}

pub fn dashboard_files() -> Vec<PathBuf> {
    files_with_suffix(&dashboards_dir(), ".json")
}

fn files_with_suffix(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    v.sort();
    v
}

/// Every name a Prometheus scraping the product can hold: both catalogues, plus the `_bucket`,
/// `_sum` and `_count` series of their histograms.
pub fn catalogue() -> BTreeSet<String> {
    let mut names: BTreeSet<String> = hashsched_hub::metrics::CATALOGUE
        .iter()
        .chain(hashsched_operator::metric_names::CATALOGUE)
        .map(|s| (*s).to_owned())
        .collect();
    let histograms = hashsched_hub::metrics::HISTOGRAMS
        .iter()
        .chain([&hashsched_operator::metric_names::OPERATOR_CYCLE_DURATION]);
    for h in histograms {
        for suffix in ["_bucket", "_sum", "_count"] {
            names.insert(format!("{h}{suffix}"));
        }
    }
    names
}

/// Recording-rule names (`hashsched:…`) defined by the rule files.
pub fn recorded_names() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for f in rule_files() {
        let doc: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(&f).expect("rules")).expect("YAML");
        for g in doc["groups"].as_sequence().expect("groups") {
            for r in g["rules"].as_sequence().expect("rules") {
                if let Some(name) = r["record"].as_str() {
                    out.insert(name.to_owned());
                }
            }
        }
    }
    out
}

/// Identifiers in `text` starting with `prefix` (`hashsched_` or `hashsched:`) that are not part
/// of a longer identifier.
pub fn identifiers(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(pos) = text[i..].find(prefix) {
        let start = i + pos;
        let preceded_by_ident = start > 0
            && (bytes[start - 1].is_ascii_alphanumeric()
                || bytes[start - 1] == b'_'
                || bytes[start - 1] == b':');
        let mut end = start + prefix.len();
        while end < bytes.len()
            && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_' || bytes[end] == b':')
        {
            end += 1;
        }
        if !preceded_by_ident {
            out.insert(text[start..end].to_owned());
        }
        i = end;
    }
    out
}

/// Names `text` reads that neither catalogue nor the recording rules define.
pub fn unknown_names(text: &str) -> Vec<String> {
    let cat = catalogue();
    let rec = recorded_names();
    let mut unknown: Vec<String> = identifiers(text, "hashsched_")
        .into_iter()
        .filter(|n| !cat.contains(n))
        .collect();
    unknown.extend(
        identifiers(text, "hashsched:")
            .into_iter()
            .filter(|n| !rec.contains(n)),
    );
    unknown
}

/// promtool (Debian package `prometheus`, installed by `.ci/run`). Without it a developer run
/// says so and skips; under CI its absence is a failure.
pub fn promtool() -> Option<PathBuf> {
    tool("promtool")
}

/// The Prometheus server of the same package.
pub fn prometheus() -> Option<PathBuf> {
    tool("prometheus")
}

fn tool(name: &str) -> Option<PathBuf> {
    if Command::new(name).arg("--version").output().is_ok() {
        return Some(PathBuf::from(name));
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{name} not found under CI: .ci/run must install it (apt-get install -y prometheus)"
    );
    eprintln!("SKIPPED: {name} not found (apt-get install -y prometheus); this test did not run");
    None
}

/// Runs promtool with `args`; panics with its output on failure.
pub fn run_promtool(promtool: &Path, args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new(promtool)
        .args(args)
        .output()
        .expect("run promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}
