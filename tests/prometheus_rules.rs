//! The Prometheus rules shipped in the chart: `promtool` checks and unit-tests them, every
//! recording rule and alert has a unit-test case, every alert carries a runbook (what it means,
//! what to do) also listed in docs/observability.md, and every metric a rule reads is one the hub
//! or the scheduler really exports (names come from `hashsched_hub::metrics::CATALOGUE` and
//! `hashsched_operator::metric_names::CATALOGUE`, the one place each is defined).

mod observability_common;

use std::collections::BTreeSet;

use hashsched_hub::metrics::WORKER_HASHRATE;
use hashsched_operator::metric_names::CONTRACT_SLOTS_TOTAL;
use observability_common::{
    catalogue, identifiers, promtool, recorded_names, repo, rule_files, rules_dir, run_promtool,
    unknown_names,
};

fn yaml(path: &std::path::Path) -> serde_yaml::Value {
    let text = std::fs::read_to_string(path).expect("read");
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: not YAML: {e}", path.display()))
}

/// (record names, alert names, alert rules) of every rule file.
fn rules() -> (BTreeSet<String>, BTreeSet<String>, Vec<serde_yaml::Value>) {
    let (mut records, mut alerts, mut alert_rules) = (BTreeSet::new(), BTreeSet::new(), vec![]);
    for f in rule_files() {
        for g in yaml(&f)["groups"].as_sequence().expect("groups") {
            for r in g["rules"].as_sequence().expect("rules") {
                if let Some(n) = r["record"].as_str() {
                    assert!(records.insert(n.to_owned()), "recording rule {n} twice");
                }
                if let Some(n) = r["alert"].as_str() {
                    assert!(alerts.insert(n.to_owned()), "alert {n} twice");
                    alert_rules.push(r.clone());
                }
            }
        }
    }
    (records, alerts, alert_rules)
}

#[test]
fn rules_only_read_metrics_the_product_exports() {
    let exported = catalogue();
    assert!(exported.contains(WORKER_HASHRATE));
    assert!(exported.contains(CONTRACT_SLOTS_TOTAL));
    let files = rule_files();
    assert_eq!(files.len(), 2, "{files:?}");
    let mut used = BTreeSet::new();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("rules file");
        assert!(
            yaml(&path).get("groups").is_some(),
            "{}: no `groups`",
            path.display()
        );
        let unknown = unknown_names(&text);
        assert!(
            unknown.is_empty(),
            "{} reads names no catalogue or recording rule defines: {unknown:?}",
            path.display()
        );
        used.extend(identifiers(&text, "hashsched_"));
    }
    assert!(
        used.len() > 20,
        "expected the rules to read many metrics: {used:?}"
    );
}

#[test]
fn the_identifier_scan_finds_names_and_tells_recording_rules_apart() {
    let text =
        "sum(rate(hashsched_pool_shares_total[5m])) / hashsched:pool_x:5m + foo_hashsched_bar";
    assert_eq!(
        identifiers(text, "hashsched_")
            .into_iter()
            .collect::<Vec<_>>(),
        vec!["hashsched_pool_shares_total".to_owned()]
    );
    assert_eq!(
        identifiers(text, "hashsched:")
            .into_iter()
            .collect::<Vec<_>>(),
        vec!["hashsched:pool_x:5m".to_owned()]
    );
    assert_eq!(
        unknown_names("hashsched_no_such_metric + hashsched:no_such_rule:5m"),
        vec!["hashsched_no_such_metric", "hashsched:no_such_rule:5m"]
    );
}

#[test]
fn every_recording_rule_and_alert_has_a_unit_test_case() {
    let (records, alerts, _) = rules();
    let mut tested_records = BTreeSet::new();
    let mut tested_alerts = BTreeSet::new();
    let mut firing_alerts = BTreeSet::new();
    for entry in std::fs::read_dir(rules_dir().join("tests")).expect("rules/tests") {
        let doc = yaml(&entry.expect("entry").path());
        for t in doc["tests"].as_sequence().expect("tests") {
            for e in t["promql_expr_test"].as_sequence().into_iter().flatten() {
                let expr = e["expr"].as_str().expect("expr");
                tested_records.extend(identifiers(expr, "hashsched:"));
            }
            for a in t["alert_rule_test"].as_sequence().into_iter().flatten() {
                let name = a["alertname"].as_str().expect("alertname").to_owned();
                if a["exp_alerts"].as_sequence().is_some_and(|s| !s.is_empty()) {
                    firing_alerts.insert(name.clone());
                }
                tested_alerts.insert(name);
            }
        }
    }
    let untested: Vec<_> = records.difference(&tested_records).collect();
    assert!(
        untested.is_empty(),
        "recording rules without a promql_expr_test: {untested:?}"
    );
    let never_fired: Vec<_> = alerts.difference(&firing_alerts).collect();
    assert!(
        never_fired.is_empty(),
        "alerts no unit test sees firing: {never_fired:?}"
    );
    assert_eq!(
        tested_alerts, alerts,
        "alert tests name alerts that do not exist"
    );
    assert_eq!(recorded_names(), records);
}

#[test]
fn every_alert_has_a_runbook_here_and_in_the_docs() {
    let (_, _, alert_rules) = rules();
    let doc = std::fs::read_to_string(repo().join("docs/observability.md")).expect("docs");
    for r in alert_rules {
        let name = r["alert"].as_str().unwrap();
        let severity = r["labels"]["severity"].as_str().unwrap_or_default();
        assert!(
            ["warning", "critical"].contains(&severity),
            "{name}: severity must be warning or critical"
        );
        for key in ["summary", "description"] {
            let text = r["annotations"][key].as_str().unwrap_or_default();
            assert!(
                text.len() > 20,
                "{name}: annotation {key} missing or too short"
            );
        }
        assert!(
            doc.contains(&format!("| `{name}` |")),
            "docs/observability.md has no runbook row for {name}"
        );
    }
}

#[test]
fn promtool_checks_and_unit_tests_the_rules() {
    let Some(promtool) = promtool() else { return };
    for rules in rule_files() {
        let out = run_promtool(
            &promtool,
            &["check".as_ref(), "rules".as_ref(), rules.as_os_str()],
        );
        assert!(out.contains("SUCCESS"), "{out}");
    }
    for entry in std::fs::read_dir(rules_dir().join("tests")).expect("tests dir") {
        let tests = entry.expect("entry").path();
        let out = run_promtool(
            &promtool,
            &["test".as_ref(), "rules".as_ref(), tests.as_os_str()],
        );
        assert!(out.contains("SUCCESS"), "{out}");
    }
}
