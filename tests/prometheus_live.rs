//! A real Prometheus (Debian's `prometheus`, the package that brings promtool) scraping a running
//! local mode — the real hub and the real scheduler — with simulated miners mining to simulated
//! pools that validate every share. Prometheus loads the chart's rule files (the same expressions;
//! only the group intervals are shortened to 2 s so the test takes a minute, not an hour) and:
//!
//! - every rule evaluates without error against real series;
//! - the recording rules give the values the hub's own counters and gauges imply (read from the
//!   hub's /metrics directly), within the sampling error of two reads seconds apart;
//! - every dashboard query evaluates without error;
//! - (once local mode exports the per-contract SLI series) the customer dashboard's uptime query
//!   returns one series per customer.

mod observability_common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hashsched_hub::admin::client::request;
use hashsched_hub::metrics::{WORKER_HASHRATE, WORKER_SHARE_DIFFICULTY_TOTAL, WORKER_SHARES_TOTAL};
use hashsched_hub::sim::miner::{MinerConfig, SimMiner};
use hashsched_hub::sim::pool::{PoolConfig, SimPool};
use hashsched_operator::local::runner::{LocalHandle, LocalOptions, Runner};
use observability_common::{dashboard_files, prometheus, rule_files};
use serde_json::Value;

/// Generous deadline for anything to appear (a loaded 2-core machine is slow).
const DEADLINE: Duration = Duration::from_secs(120);
const SCRAPE: &str = "2s";

struct Farm {
    dir: tempfile::TempDir,
    _pools: Vec<SimPool>,
}

async fn pool(name: &str) -> SimPool {
    SimPool::start(PoolConfig {
        name: name.into(),
        difficulty: 5e-5,
        record_shares: false,
        ..PoolConfig::default()
    })
    .await
    .expect("simulated pool starts")
}

/// Two customers with a contract each, one worker per contract, a house spare.
async fn farm() -> Farm {
    let house = pool("house").await;
    let acme = pool("acme-pool").await;
    let beta = pool("beta-pool").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let contract = |name: &str, customer: &str, worker: &str| {
        format!(
            "apiVersion: hashsched.io/v1alpha1
kind: RentalContract
metadata: {{ name: {name} }}
spec:
  customer: {customer}
  mode: MinerToMiner
  workers: [{worker}]
  healthPolicy: {{ window: 1m, falseAlarmBudget: 100, minDwell: 10s, disconnectGrace: 5s }}
  sla: {{ slot: 10s, creditRate: 1 }}
"
        )
    };
    let files = [
        (
            "10-hub.yaml",
            "apiVersion: hashsched.io/v1alpha1
kind: StratumHub
metadata: { name: hub }
spec:
  shareInterval: 250ms
  housePools: [house]
"
            .to_owned(),
        ),
        (
            "20-pools.yaml",
            format!(
                "apiVersion: hashsched.io/v1alpha1
kind: PoolEndpoint
metadata: {{ name: house }}
spec: {{ url: \"{}\", user: farm }}
---
apiVersion: hashsched.io/v1alpha1
kind: PoolEndpoint
metadata: {{ name: acme-pool }}
spec: {{ url: \"{}\", user: acme }}
---
apiVersion: hashsched.io/v1alpha1
kind: PoolEndpoint
metadata: {{ name: beta-pool }}
spec: {{ url: \"{}\", user: beta }}
---
apiVersion: hashsched.io/v1alpha1
kind: Customer
metadata: {{ name: acme }}
spec: {{ pools: [acme-pool] }}
---
apiVersion: hashsched.io/v1alpha1
kind: Customer
metadata: {{ name: beta }}
spec: {{ pools: [beta-pool] }}
",
                house.url(),
                acme.url(),
                beta.url()
            ),
        ),
        (
            "30-workers.yaml",
            "apiVersion: hashsched.io/v1alpha1
kind: Worker
metadata: { name: w-acme }
spec: { owner: acme, expectedHashrate: 200 kH/s }
---
apiVersion: hashsched.io/v1alpha1
kind: Worker
metadata: { name: w-beta }
spec: { owner: beta, expectedHashrate: 200 kH/s }
---
apiVersion: hashsched.io/v1alpha1
kind: Worker
metadata:
  name: spare-1
  labels: { hashsched.io/role: spare }
spec: { owner: house, expectedHashrate: 200 kH/s }
"
            .to_owned(),
        ),
        (
            "40-contracts.yaml",
            format!(
                "{}---\n{}",
                contract("c-acme", "acme", "w-acme"),
                contract("c-beta", "beta", "w-beta")
            ),
        ),
    ];
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write manifest");
    }
    Farm {
        dir,
        _pools: vec![house, acme, beta],
    }
}

/// A Prometheus child process, killed on drop.
struct PrometheusProcess {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for PrometheusProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// The chart's rule files with every group's interval set to `interval`.
fn rules_with_interval(interval: &str, dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for f in rule_files() {
        let mut doc: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(&f).expect("rules")).expect("YAML");
        for g in doc["groups"].as_sequence_mut().expect("groups") {
            g["interval"] = serde_yaml::Value::String(interval.into());
        }
        let path = dir.join(f.file_name().expect("name"));
        std::fs::write(&path, serde_yaml::to_string(&doc).expect("yaml")).expect("write");
        out.push(path.to_string_lossy().into_owned());
    }
    out
}

fn start_prometheus(binary: &Path, target: SocketAddr) -> PrometheusProcess {
    let dir = tempfile::tempdir().expect("temp dir");
    let rules = rules_with_interval(SCRAPE, dir.path());
    let config = serde_json::json!({
        "global": { "scrape_interval": SCRAPE, "evaluation_interval": SCRAPE },
        "rule_files": rules,
        "scrape_configs": [{
            "job_name": "hashsched-local",
            // Per-contract series carry their own namespace label; keep it.
            "honor_labels": true,
            "static_configs": [{ "targets": [target.to_string()] }],
        }],
    });
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(&config_path, serde_yaml::to_string(&config).expect("yaml")).expect("write");
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
    let child = Command::new(binary)
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start prometheus");
    PrometheusProcess {
        child,
        addr,
        _dir: dir,
    }
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `GET /api/v1/query`: the result vector, or the error Prometheus gives.
async fn query(prom: SocketAddr, promql: &str) -> Result<Vec<Value>, String> {
    let path = format!("/api/v1/query?query={}", percent_encode(promql));
    let resp = request(prom, "GET", &path, None, b"")
        .await
        .map_err(|e| e.to_string())?;
    let json = resp
        .json()
        .ok_or_else(|| format!("not JSON ({}): {}", resp.status, resp.body))?;
    if json["status"] != "success" {
        return Err(format!("{promql}: {}", resp.body));
    }
    Ok(match &json["data"]["result"] {
        Value::Array(a) => a.clone(),
        // A scalar result: one pseudo-sample.
        other => vec![serde_json::json!({ "metric": {}, "value": other })],
    })
}

fn sample_value(s: &Value) -> f64 {
    s["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Polls `promql` until it returns a sample satisfying `pred`.
async fn wait_query(prom: SocketAddr, promql: &str, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let last = query(prom, promql).await;
        if let Ok(r) = &last
            && pred(r)
        {
            return r.clone();
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {promql}: {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Sum of the hub's own samples of `name` whose labels contain every `(key, value)`, read from
/// local mode's /metrics.
async fn hub_sum(metrics: SocketAddr, name: &str, labels: &[(&str, &str)]) -> f64 {
    let body = request(metrics, "GET", "/metrics", None, b"")
        .await
        .expect("scrape /metrics")
        .body;
    let mut sum = 0.0;
    for line in body.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            continue;
        }
        let (label_part, value) = match rest.rsplit_once(' ') {
            Some(x) => x,
            None => continue,
        };
        if labels
            .iter()
            .all(|(k, v)| label_part.contains(&format!("{k}=\"{v}\"")))
        {
            sum += value.parse::<f64>().unwrap_or(0.0);
        }
    }
    sum
}

fn miner(hub: SocketAddr, name: &str) -> SimMiner {
    SimMiner::spawn(
        hub,
        MinerConfig {
            hashrate: Some(200e3),
            record_shares: false,
            ..MinerConfig::new(name)
        },
    )
}

struct Running {
    started: Instant,
    _farm: Farm,
    local: LocalHandle,
    _miners: Vec<SimMiner>,
    prom: PrometheusProcess,
    metrics: SocketAddr,
}

async fn start() -> Option<Running> {
    let binary = prometheus()?;
    let started = Instant::now();
    let farm = farm().await;
    let local = Runner::start(LocalOptions {
        listen: Some("127.0.0.1:0".into()),
        http: Some("127.0.0.1:0".into()),
        tick: Duration::from_millis(250),
        ..LocalOptions::new(farm.dir.path())
    })
    .await
    .expect("local mode starts");
    let metrics = local.http_addr().expect("local mode serves /metrics");
    let miners = ["w-acme", "w-beta", "spare-1"]
        .iter()
        .map(|w| miner(local.stratum_addr(), w))
        .collect();
    let prom = start_prometheus(&binary, metrics);
    Some(Running {
        started,
        _farm: farm,
        local,
        _miners: miners,
        prom,
        metrics,
    })
}

fn relative_gap(a: f64, b: f64) -> f64 {
    (a - b).abs() / a.abs().max(b.abs()).max(f64::MIN_POSITIVE)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_rules_agree_with_the_hubs_own_counters() {
    let Some(run) = start().await else { return };
    let prom = run.prom.addr;
    let m = run.metrics;

    wait_query(prom, "up{job=\"hashsched-local\"}", |r| {
        r.iter().any(|s| sample_value(s) == 1.0)
    })
    .await;
    // Both customers' workers mine on their pools and the hub's 5 m window has data.
    for customer in ["acme", "beta"] {
        wait_query(
            prom,
            &format!("hashsched:customer_hashrate:5m{{customer=\"{customer}\"}}"),
            |r| r.len() == 1 && sample_value(&r[0]) > 0.0,
        )
        .await;
    }
    // Let shares accumulate; read the hub's counters, then again after the rules have seen them.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let acme_diff = || {
        hub_sum(
            m,
            WORKER_SHARE_DIFFICULTY_TOTAL,
            &[("worker", "w-acme"), ("result", "accepted")],
        )
    };
    let accepted = || hub_sum(m, WORKER_SHARES_TOTAL, &[("result", "accepted")]);
    let (diff_before, shares_before) = (acme_diff().await, accepted().await);
    tokio::time::sleep(Duration::from_secs(10)).await;

    // Gauge rules: the hub's own 5 m hashrate of the customer's worker, read at the same moment.
    let hub_gauge = hub_sum(
        m,
        WORKER_HASHRATE,
        &[("worker", "w-acme"), ("window", "5m")],
    )
    .await;
    let rec = query(prom, "hashsched:customer_hashrate:5m{customer=\"acme\"}")
        .await
        .unwrap();
    let rec_value = sample_value(&rec[0]);
    assert!(hub_gauge > 0.0);
    assert!(
        relative_gap(rec_value, hub_gauge) < 0.15,
        "customer hashrate rule {rec_value} vs the hub's gauge {hub_gauge}"
    );
    let pools = query(prom, "sum(hashsched:pool_hashrate:5m)")
        .await
        .unwrap();
    let all_workers = hub_sum(m, WORKER_HASHRATE, &[("window", "5m")]).await;
    assert!(
        relative_gap(sample_value(&pools[0]), all_workers) < 0.15,
        "pool hashrate rules {pools:?} vs the hub's worker gauges {all_workers}"
    );

    // Counter rules. The whole life of these counters (they start at 0 with the hub) lies inside
    // the rules' 5 m window, so `rate(x[5m])` is what was counted between Prometheus's first and
    // last samples, divided by 300 s (the extrapolation stops near the series' start). Shares the
    // hub counted before the first scrape are not in it: on a slow machine Prometheus starts
    // seconds after the miners, so the lower bound subtracts the first sample, which for a
    // counter that never reset is its minimum over the window.
    let age = run.started.elapsed().as_secs_f64();
    assert!(
        age < 290.0,
        "the run outgrew the 5 m window ({age:.0} s): the comparison below assumes it did not"
    );
    let rec = query(
        prom,
        "hashsched:customer_accepted_hashrate:rate5m{customer=\"acme\"}",
    )
    .await
    .unwrap();
    let rec_hashrate = sample_value(&rec[0]);
    let rec = query(prom, "hashsched:hub_shares:rate5m{result=\"accepted\"}")
        .await
        .unwrap();
    let rec_shares = sample_value(&rec[0]);
    let (diff_after, shares_after) = (acme_diff().await, accepted().await);
    let first_sample = |promql: &'static str| async move {
        let r = query(prom, promql).await.unwrap();
        assert_eq!(r.len(), 1, "{promql}: {r:?}");
        sample_value(&r[0])
    };
    let diff_first = first_sample(
        "sum(min_over_time(hashsched_worker_share_difficulty_total{worker=\"w-acme\",result=\"accepted\"}[5m]))",
    )
    .await;
    let shares_first =
        first_sample("sum(min_over_time(hashsched_worker_shares_total{result=\"accepted\"}[5m]))")
            .await;
    let to_hashrate = |d: f64| d * 4_294_967_296.0 / 300.0;
    let (hashrate_lo, hashrate_hi) = (
        to_hashrate(diff_before - diff_first),
        to_hashrate(diff_after),
    );
    let (shares_lo, shares_hi) = ((shares_before - shares_first) / 300.0, shares_after / 300.0);
    eprintln!(
        "after {age:.0} s: acme accepted hashrate rule {rec_hashrate:.0} H/s, implied by the hub's counters {hashrate_lo:.0}..{hashrate_hi:.0} H/s \
         (difficulty {diff_first:.3e} counted before the first scrape); accepted shares/s rule {rec_shares:.3}, implied {shares_lo:.3}..{shares_hi:.3} \
         ({shares_first} before the first scrape); customer hashrate rule {rec_value:.0} H/s, hub gauge {hub_gauge:.0} H/s",
    );
    assert!(
        hashrate_lo > 0.0 && shares_lo > 0.0,
        "nothing counted after the first scrape"
    );
    // The rules saw the counters as of the last scrape and evaluation: between the two direct
    // reads 10 s apart (5 % slack for the extrapolation at the window's ends).
    let within = |rule: f64, lo: f64, hi: f64| rule >= lo * 0.95 && rule <= hi * 1.05;
    assert!(
        within(rec_hashrate, hashrate_lo, hashrate_hi),
        "accepted hashrate rule {rec_hashrate} outside what the hub's counters imply: {hashrate_lo}..{hashrate_hi}"
    );
    assert!(
        within(rec_shares, shares_lo, shares_hi),
        "accepted shares rule {rec_shares} outside what the hub's counters imply: {shares_lo}..{shares_hi}"
    );

    // Every rule evaluated without error against the real series.
    let rules = request(prom, "GET", "/api/v1/rules", None, b"")
        .await
        .unwrap()
        .json()
        .unwrap();
    let mut count = 0;
    for g in rules["data"]["groups"].as_array().expect("groups") {
        for r in g["rules"].as_array().expect("rules") {
            count += 1;
            assert_eq!(
                r["health"], "ok",
                "rule {} failed: {}",
                r["name"], r["lastError"]
            );
        }
    }
    assert!(count > 40, "only {count} rules loaded");

    // Every dashboard query evaluates (variables set to "all").
    for f in dashboard_files() {
        let d: Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        let mut panels: Vec<&Value> = d["panels"].as_array().unwrap().iter().collect();
        panels.extend(
            d["panels"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|p| p["panels"].as_array().into_iter().flatten()),
        );
        for p in panels {
            for t in p["targets"].as_array().into_iter().flatten() {
                let expr = t["expr"].as_str().unwrap();
                let e = grafana_all(expr);
                if let Err(err) = query(prom, &e).await {
                    panic!("{} / {}: {err}", f.display(), p["title"]);
                }
            }
        }
    }
    run.local.shutdown().await;
}

/// A dashboard query as Grafana sends it with every variable on "All".
fn grafana_all(expr: &str) -> String {
    let mut e = expr
        .replace("$__rate_interval", "30s")
        .replace("$__interval", "2s")
        .replace("$__range", "1h");
    for var in ["namespace", "customer", "contract", "worker", "pool"] {
        e = e.replace(&format!("=\"${var}\""), "=~\".*\"");
        e = e.replace(&format!("${var}"), ".*");
    }
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_customer_uptime_query_returns_one_series_per_customer() {
    let Some(run) = start().await else { return };
    let prom = run.prom.addr;
    let d: Value = serde_json::from_str(
        &std::fs::read_to_string(observability_common::dashboards_dir().join("customer.json"))
            .unwrap(),
    )
    .unwrap();
    let panel = d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["title"] == "Uptime (24 h)")
        .expect("uptime panel");
    let expr = grafana_all(panel["targets"][0]["expr"].as_str().unwrap());
    // SLA slots are 10 s in these manifests: a few close within the deadline.
    // A customer's ratio is 0/0 (NaN) until its first slot closes.
    let series = wait_query(prom, &expr, |r| {
        r.len() == 2 && r.iter().all(|s| sample_value(s).is_finite())
    })
    .await;
    let mut customers: Vec<_> = series
        .iter()
        .map(|s| {
            s["metric"]["customer"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    customers.sort();
    assert_eq!(customers, ["acme", "beta"]);
    for s in &series {
        let v = sample_value(s);
        assert!((0.0..=1.0).contains(&v), "uptime {v} of {s}");
    }
    run.local.shutdown().await;
}
