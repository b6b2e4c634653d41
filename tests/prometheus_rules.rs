//! The Prometheus rules shipped in the chart: `promtool` checks and unit-tests them, and every
//! metric a rule reads must be one the hub really exports (names come from hub/src/metrics.rs, the
//! one place they are defined), so rules and hub cannot drift apart.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rules_dir() -> PathBuf {
    repo().join("charts/hashsched/files/rules")
}

/// Every `hashsched_…` identifier in `text` (recording-rule names use `hashsched:` and are skipped).
fn metric_identifiers(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(pos) = text[i..].find("hashsched_") {
        let start = i + pos;
        let preceded_by_ident = start > 0
            && (bytes[start - 1].is_ascii_alphanumeric()
                || bytes[start - 1] == b'_'
                || bytes[start - 1] == b':');
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        if !preceded_by_ident {
            out.insert(text[start..end].to_owned());
        }
        i = end;
    }
    out
}

/// Names the hub exports: the string constants of its metrics modules, plus the series a histogram
/// exposes.
fn exported_names() -> BTreeSet<String> {
    let sources = [
        include_str!("../hub/src/metrics.rs"),
        include_str!("../hub/src/routing/control.rs"),
    ];
    let mut names = BTreeSet::new();
    for src in sources {
        for line in src.lines() {
            let line = line.trim();
            if !(line.starts_with("pub const") || line.starts_with("const")) {
                continue;
            }
            if let Some(q) = line.find("\"hashsched_") {
                let rest = &line[q + 1..];
                if let Some(end) = rest.find('"') {
                    names.insert(rest[..end].to_owned());
                }
            }
        }
    }
    let histograms: Vec<String> = names
        .iter()
        .filter(|n| n.ends_with("_seconds") && (n.contains("latency") || n.contains("duration")))
        .cloned()
        .collect();
    for h in histograms {
        for suffix in ["_bucket", "_sum", "_count"] {
            names.insert(format!("{h}{suffix}"));
        }
    }
    names
}

#[test]
fn rules_only_read_metrics_the_hub_exports() {
    let exported = exported_names();
    assert!(
        exported.contains("hashsched_worker_hashrate_hashes_per_second"),
        "could not read the hub's metric names: {exported:?}"
    );
    let mut checked = 0;
    for entry in std::fs::read_dir(rules_dir()).expect("rules directory") {
        let path = entry.expect("dir entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("yml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("rules file");
        // Parse as YAML too: a rules file must at least be well-formed.
        let doc: serde_yaml::Value = serde_yaml::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: not YAML: {e}", path.display()));
        assert!(
            doc.get("groups").is_some(),
            "{}: no `groups`",
            path.display()
        );
        let used = metric_identifiers(&text);
        let unknown: Vec<_> = used.difference(&exported).collect();
        assert!(
            unknown.is_empty(),
            "{} reads metrics the hub does not export: {unknown:?}",
            path.display()
        );
        checked += used.len();
    }
    assert!(
        checked > 5,
        "expected the rules to read several hub metrics"
    );
}

#[test]
fn the_identifier_scan_finds_names_and_skips_recording_rules() {
    let found = metric_identifiers(
        "sum(rate(hashsched_pool_shares_total[5m])) / hashsched:pool_x:5m + foo_hashsched_bar",
    );
    assert_eq!(
        found.into_iter().collect::<Vec<_>>(),
        vec!["hashsched_pool_shares_total".to_owned()]
    );
}

/// promtool is installed by `.ci/run` (Debian package `prometheus`). Without it a developer run
/// says so and skips; under CI its absence is a failure.
fn promtool() -> Option<PathBuf> {
    let found = Command::new("promtool").arg("--version").output().is_ok();
    if found {
        return Some(PathBuf::from("promtool"));
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "promtool not found under CI: .ci/run must install it (apt-get install -y prometheus)"
    );
    eprintln!("SKIPPED: promtool not found (apt-get install -y prometheus); rule tests not run");
    None
}

#[test]
fn promtool_checks_and_unit_tests_the_rules() {
    let Some(promtool) = promtool() else { return };
    let rules = rules_dir().join("hashsched-hub.rules.yml");
    let out = Command::new(&promtool)
        .arg("check")
        .arg("rules")
        .arg(&rules)
        .output()
        .expect("run promtool check rules");
    assert!(
        out.status.success(),
        "promtool check rules failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let tests = rules_dir().join("tests/hashsched-hub.test.yml");
    let out = Command::new(&promtool)
        .arg("test")
        .arg("rules")
        .arg(&tests)
        .output()
        .expect("run promtool test rules");
    assert!(
        out.status.success(),
        "promtool test rules failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn chart_values_match_their_schema_and_the_template_wraps_the_tested_rules() {
    let chart = repo().join("charts/hashsched");
    let values: serde_json::Value = serde_yaml::from_str(
        &std::fs::read_to_string(chart.join("values.yaml")).expect("values.yaml"),
    )
    .expect("values.yaml is YAML");
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(chart.join("values.schema.json")).expect("values.schema.json"),
    )
    .expect("values.schema.json is JSON");
    // The schema is closed (additionalProperties: false): every value key must be declared.
    let declared = schema["properties"]["prometheusRule"]["properties"]
        .as_object()
        .expect("schema declares prometheusRule properties");
    let given = values["prometheusRule"]
        .as_object()
        .expect("values.prometheusRule");
    for key in given.keys() {
        assert!(
            declared.contains_key(key),
            "values.yaml key prometheusRule.{key} is not in values.schema.json"
        );
    }
    assert!(given["enabled"].is_boolean());
    let template =
        std::fs::read_to_string(chart.join("templates/prometheusrule.yaml")).expect("template");
    let marker = ".Files.Get \"";
    let start = template.find(marker).expect("template reads a rules file") + marker.len();
    let file = &template[start..start + template[start..].find('"').expect("closing quote")];
    assert!(
        chart.join(file).is_file(),
        "template wraps {file}, which does not exist"
    );
}
