//! The Grafana dashboards of the chart (charts/hashsched/files/dashboards): each parses, has the
//! datasource as a variable and a unique uid, every panel has a query on that datasource, every
//! query reads only names of the metric catalogues or the recording rules, and every query parses
//! as PromQL (promtool checks them wrapped as recording rules).

mod observability_common;

use std::collections::BTreeSet;

use hashsched_hub::metrics::WORKER_INFO;
use hashsched_operator::metric_names::{CONTRACT_CREDIT, CONTRACT_FAILOVERS_TOTAL};
use observability_common::{dashboard_files, promtool, unknown_names};
use serde_json::Value;

struct Query {
    dashboard: String,
    panel: String,
    expr: String,
}

fn load() -> Vec<(String, Value)> {
    let files = dashboard_files();
    assert!(files.len() >= 6, "expected six dashboards: {files:?}");
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&p).expect("read"))
                .unwrap_or_else(|e| panic!("{name} is not JSON: {e}"));
            (name, v)
        })
        .collect()
}

fn panels(d: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().expect("panels") {
        out.push(p);
        out.extend(p["panels"].as_array().into_iter().flatten());
    }
    out
}

/// The metric selector inside `label_values(SELECTOR, label)`, or the query itself.
fn variable_query(v: &Value) -> Option<String> {
    let q = v["query"]["query"].as_str().or(v["query"].as_str())?;
    let inner = q
        .strip_prefix("label_values(")
        .and_then(|s| s.strip_suffix(')'))
        .map(|s| s.rsplit_once(',').map(|(sel, _)| sel).unwrap_or(s).trim())
        .unwrap_or(q);
    Some(inner.to_owned())
}

fn queries(dashboards: &[(String, Value)]) -> Vec<Query> {
    let mut out = Vec::new();
    for (name, d) in dashboards {
        for v in d["templating"]["list"].as_array().expect("templating.list") {
            if v["type"] == "query" {
                out.push(Query {
                    dashboard: name.clone(),
                    panel: format!("variable {}", v["name"]),
                    expr: variable_query(v).expect("variable query"),
                });
            }
        }
        for p in panels(d) {
            for t in p["targets"].as_array().into_iter().flatten() {
                out.push(Query {
                    dashboard: name.clone(),
                    panel: p["title"].as_str().unwrap_or_default().to_owned(),
                    expr: t["expr"].as_str().unwrap_or_default().to_owned(),
                });
            }
        }
    }
    out
}

/// Grafana's variables replaced by values PromQL accepts in their places.
fn substitute_variables(expr: &str) -> String {
    let mut e = expr
        .replace("$__rate_interval", "5m")
        .replace("$__interval", "1m")
        .replace("$__range", "1d");
    for var in ["namespace", "customer", "contract", "worker", "pool"] {
        e = e.replace(&format!("${var}"), "x");
    }
    e
}

#[test]
fn every_dashboard_parses_and_takes_the_datasource_as_a_variable() {
    let dashboards = load();
    let mut uids = BTreeSet::new();
    for (name, d) in &dashboards {
        let uid = d["uid"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no uid"));
        assert!(uids.insert(uid.to_owned()), "{name}: uid {uid} used twice");
        assert!(
            d["title"]
                .as_str()
                .is_some_and(|t| t.starts_with("hashsched / ")),
            "{name}: title"
        );
        let vars = d["templating"]["list"].as_array().expect("templating");
        assert!(
            vars.iter().any(|v| v["name"] == "datasource"
                && v["type"] == "datasource"
                && v["query"] == "prometheus"),
            "{name}: no `datasource` variable of type datasource"
        );
        for p in panels(d) {
            let title = p["title"].as_str().unwrap_or_default();
            assert!(!title.is_empty(), "{name}: a panel without a title");
            if p["type"] == "row" {
                continue;
            }
            assert_eq!(
                p["datasource"]["uid"], "${datasource}",
                "{name}/{title}: datasource"
            );
            let targets = p["targets"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            assert!(!targets.is_empty(), "{name}/{title}: panel without a query");
            for t in targets {
                assert!(
                    t["expr"].as_str().is_some_and(|e| !e.trim().is_empty()),
                    "{name}/{title}: empty query"
                );
                assert_eq!(
                    t["datasource"]["uid"], "${datasource}",
                    "{name}/{title}: target datasource"
                );
            }
        }
    }
}

#[test]
fn the_customer_dashboard_shows_what_the_customer_paid_for() {
    let dashboards = load();
    let (_, d) = dashboards
        .iter()
        .find(|(_, d)| d["uid"] == "hashsched-customer")
        .expect("customer dashboard");
    let vars = d["templating"]["list"].as_array().unwrap();
    assert!(
        vars.iter().any(|v| v["name"] == "customer"),
        "no customer variable"
    );
    let all: String = panels(d)
        .iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .map(|t| t["expr"].as_str().unwrap_or_default().to_owned() + "\n")
        .collect();
    for needle in [
        "hashsched:customer_contracted_hashrate:max",
        "hashsched:customer_delivered_hashrate:avg5m",
        "hashsched:customer_uptime:ratio24h",
        "hashsched:customer_uptime:ratio30d",
        CONTRACT_FAILOVERS_TOTAL,
        CONTRACT_CREDIT,
        WORKER_INFO,
    ] {
        assert!(
            all.contains(needle),
            "customer dashboard does not show {needle}"
        );
    }
}

#[test]
fn every_query_reads_only_catalogued_names() {
    let dashboards = load();
    let qs = queries(&dashboards);
    assert!(qs.len() > 60, "only {} queries", qs.len());
    let mut bad = Vec::new();
    for q in &qs {
        let unknown = unknown_names(&q.expr);
        if !unknown.is_empty() {
            bad.push(format!("{} / {}: {unknown:?}", q.dashboard, q.panel));
        }
    }
    assert!(
        bad.is_empty(),
        "dashboards read names no catalogue or rule defines:\n{}",
        bad.join("\n")
    );
}

#[test]
fn every_query_parses_as_promql() {
    let Some(promtool) = promtool() else { return };
    let qs = queries(&load());
    // Each query becomes a recording rule: `promtool check rules` parses every expression.
    let rules: Vec<Value> = qs
        .iter()
        .enumerate()
        .map(|(i, q)| serde_json::json!({ "record": format!("dashboard:query_{i}"), "expr": substitute_variables(&q.expr) }))
        .collect();
    let doc = serde_json::json!({ "groups": [ { "name": "dashboards", "rules": rules } ] });
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("dashboards.rules.yml");
    std::fs::write(&path, serde_yaml::to_string(&doc).expect("yaml")).expect("write");
    let listing: String = qs
        .iter()
        .enumerate()
        .map(|(i, q)| format!("query_{i}: {} / {}: {}\n", q.dashboard, q.panel, q.expr))
        .collect();
    let out = std::process::Command::new(&promtool)
        .args(["check", "rules"])
        .arg(&path)
        .output()
        .expect("promtool");
    assert!(
        out.status.success(),
        "a dashboard query does not parse:\n{}{}\n{listing}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
