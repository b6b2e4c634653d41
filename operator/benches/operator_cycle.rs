//! Benchmark: the operator's scheduling loop at scale, against an in-memory apiserver (the
//! reconcile tests' `tower_test` fake): scrape (a page the hub's own `/metrics` encoder wrote
//! before the cycle, read with the operator's parser), decide, diff statuses, write. For 1,000
//! workers (baseline) and 10,000 workers / 1,000 contracts it prints the time of a steady cycle (after the farm settled) and the
//! apiserver writes per cycle — first cycle (every status is new), steady cycles (target: zero
//! beyond the heartbeat), and a cycle with 1 % of the rented workers failing (O(changes)).
//!
//! `cargo bench -p hashsched-operator --bench operator_cycle`. Target: ≤ 1 s per cycle at
//! 10,000 workers.

#[path = "../tests/operator_common/mod.rs"]
mod operator_common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hashsched_hub::admin::client::AdminResponse;
use hashsched_hub::facts::{AssignmentLabels, ShareBuckets, WindowHashrate, WorkerFacts};
use hashsched_hub::metrics::{HubMetrics, Snapshot, SnapshotSource};
use hashsched_hub::routing::RoutingDocument;
use hashsched_operator::controller::Shared;
use hashsched_operator::controller::hub_io::{BoxFut, HubIo, HubIoError, HubTarget};
use hashsched_operator::controller::schedule::{ScheduleOptions, Scheduler, World};
use hashsched_operator::crd::{Customer, PoolEndpoint, RentalContract, StratumHub, Worker};
use jiff::Timestamp;
use kube::runtime::events::{Recorder, Reporter};
use operator_common::{FakeApi, base64, collection};
use serde_json::json;

const NS: &str = "farm";
const T0: i64 = 1_782_864_000;
const PER_CONTRACT: usize = 8;

#[derive(Debug)]
struct Fixed(Snapshot);
impl SnapshotSource for Fixed {
    fn snapshot(&self) -> Snapshot {
        self.0.clone()
    }
}

/// The hub pod: its state, and its `/metrics` page rendered when the state changes (the hub
/// renders in its own process; the operator's cycle pays for reading and parsing the page, not
/// for writing it).
#[derive(Clone, Default)]
struct Page(Arc<Mutex<Snapshot>>, Arc<Mutex<String>>);

impl Page {
    fn render(&self) {
        let text = HubMetrics::new(Arc::new(Fixed(self.0.lock().unwrap().clone()))).render();
        *self.1.lock().unwrap() = text;
    }
}

impl HubIo for Page {
    fn scrape<'a>(&'a self, _t: &'a HubTarget) -> BoxFut<'a, Result<String, HubIoError>> {
        let text = self.1.lock().unwrap().clone();
        Box::pin(async move { Ok(text) })
    }
    fn push<'a>(
        &'a self,
        _t: &'a HubTarget,
        _token: &'a str,
        document: &'a [u8],
    ) -> BoxFut<'a, Result<AdminResponse, HubIoError>> {
        let doc: RoutingDocument = serde_json::from_slice(document).unwrap();
        // Shown from the next cycle's page on (rendered before each cycle).
        self.0.lock().unwrap().routing_generation = doc.generation;
        let g = doc.generation;
        Box::pin(async move {
            Ok(AdminResponse {
                status: 200,
                body: json!({"generation": g}).to_string(),
            })
        })
    }
}

fn facts(name: &str, expected: f64, connected: bool, last: i64) -> WorkerFacts {
    let d = expected / (0.5 * 4_294_967_296.0);
    WorkerFacts {
        worker: name.into(),
        connected,
        shares: ShareBuckets {
            accepted: 1000,
            ..ShareBuckets::default()
        },
        difficulty: ShareBuckets {
            accepted: 1000.0 * d,
            ..ShareBuckets::default()
        },
        pending: 0,
        hashrate: [60u64, 300, 900]
            .iter()
            .map(|&w| WindowHashrate {
                window_seconds: w,
                hashes_per_second: if connected { expected } else { 0.0 },
                shares: 0,
            })
            .collect(),
        last_share_unix: Some((T0 + last) as f64),
        last_change_unix: None,
        miner_difficulty: Some(d),
        pool: None,
        labels: AssignmentLabels::default(),
    }
}

fn populate(api: &FakeApi, contracts: usize) -> Vec<(String, f64)> {
    let v1 = "hashsched.io/v1alpha1";
    let mut workers = Vec::new();
    api.put(json!({"apiVersion": v1, "kind": "PoolEndpoint", "metadata": {"name": "house", "namespace": NS},
        "spec": {"url": "stratum+tcp://house.example:3333", "user": "farm"}}));
    api.put(json!({"apiVersion": v1, "kind": "StratumHub", "metadata": {"name": "site-a", "namespace": NS},
        "spec": {"housePools": ["house"]}}));
    api.put(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "site-a-admin-token", "namespace": NS},
        "data": {"token": base64(b"t")}}));
    for c in 0..contracts / 10 + 1 {
        api.put(json!({"apiVersion": v1, "kind": "PoolEndpoint", "metadata": {"name": format!("p{c}"), "namespace": NS},
            "spec": {"url": format!("stratum+tcp://p{c}.example:3333"), "user": format!("c{c}")}}));
        api.put(json!({"apiVersion": v1, "kind": "Customer", "metadata": {"name": format!("c{c}"), "namespace": NS},
            "spec": {"pools": [format!("p{c}")]}}));
    }
    for c in 0..contracts {
        let names: Vec<String> = (0..PER_CONTRACT).map(|k| format!("r{c:04}-{k}")).collect();
        for n in &names {
            api.put(
                json!({"apiVersion": v1, "kind": "Worker", "metadata": {"name": n, "namespace": NS},
                "spec": {"owner": "house", "expectedHashrate": "100 TH/s"}}),
            );
            workers.push((n.clone(), 1e14));
        }
        api.put(json!({"apiVersion": v1, "kind": "RentalContract", "metadata": {"name": format!("k{c:04}"), "namespace": NS},
            "spec": {"customer": format!("c{}", c / 10), "mode": "MinerToMiner", "workers": names}}));
    }
    for s in 0..contracts * 2 {
        let n = format!("spare{s:05}");
        api.put(
            json!({"apiVersion": v1, "kind": "Worker", "metadata": {"name": n, "namespace": NS,
            "labels": {"hashsched.io/role": "spare"}},
            "spec": {"owner": "house", "expectedHashrate": "100 TH/s"}}),
        );
        workers.push((n, 1e14));
    }
    workers
}

fn world(api: &FakeApi) -> World {
    let c = |kind: &str| collection("hashsched.io/v1alpha1", kind, NS);
    World {
        workers: api.list::<Worker>(&c("Worker")),
        contracts: api.list::<RentalContract>(&c("RentalContract")),
        customers: api.list::<Customer>(&c("Customer")),
        pools: api.list::<PoolEndpoint>(&c("PoolEndpoint")),
        hubs: api.list::<StratumHub>(&c("StratumHub")),
    }
}

struct Figures {
    workers: usize,
    first_writes: usize,
    steady_ms: Vec<f64>,
    steady_writes: Vec<usize>,
    failure_writes: usize,
    failure_ms: f64,
}

async fn run(contracts: usize) -> Figures {
    let api = FakeApi::default();
    let workers = populate(&api, contracts);
    let client = api.client();
    let page = Page::default();
    let shared = Arc::new(Shared::new(false, None));
    let target = HubTarget {
        pod: "site-a-0".into(),
        metrics: "127.0.0.1:9".parse().unwrap(),
        admin: "127.0.0.1:9".parse().unwrap(),
    };
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "bench".into(),
            instance: None,
        },
    );
    let mut sched = Scheduler::new(
        client,
        shared,
        Arc::new(page.clone()),
        recorder,
        ScheduleOptions {
            hub_urls: BTreeMap::from([((NS.to_owned(), "site-a".to_owned()), vec![target])]),
            ..ScheduleOptions::default()
        },
    );
    let set = |t: i64, dead: &dyn Fn(usize) -> bool| {
        page.0.lock().unwrap().workers = workers
            .iter()
            .enumerate()
            .map(|(i, (n, h))| {
                if dead(i) {
                    facts(n, *h, false, 0)
                } else {
                    facts(n, *h, true, t - 1)
                }
            })
            .collect();
        page.render();
    };
    let writes = |api: &FakeApi| api.take_log().iter().filter(|r| r.is_write()).count();
    set(0, &|_| false);
    sched
        .cycle(&world(&api), Timestamp::from_second(T0).unwrap())
        .await;
    let first_writes = writes(&api);
    // Settle (Unknown → Healthy).
    for t in (5..=60).step_by(5) {
        set(t, &|_| false);
        sched
            .cycle(&world(&api), Timestamp::from_second(T0 + t).unwrap())
            .await;
    }
    writes(&api);
    let mut steady_ms = Vec::new();
    let mut steady_writes = Vec::new();
    for t in (65..=90).step_by(5) {
        set(t, &|_| false);
        let w = world(&api);
        let started = Instant::now();
        sched
            .cycle(&w, Timestamp::from_second(T0 + t).unwrap())
            .await;
        steady_ms.push(started.elapsed().as_secs_f64() * 1e3);
        steady_writes.push(writes(&api));
    }
    // 1 % of the rented workers disconnect at t=100; the cycle that sees them Dead.
    let rented = contracts * PER_CONTRACT;
    let dead = move |i: usize| i < rented && i % 100 == 7;
    let mut failure_writes = 0;
    let mut failure_ms = 0.0;
    for t in (95..=200).step_by(5) {
        set(t, &|i| t >= 100 && dead(i));
        let w = world(&api);
        let started = Instant::now();
        let s = sched
            .cycle(&w, Timestamp::from_second(T0 + t).unwrap())
            .await;
        let ms = started.elapsed().as_secs_f64() * 1e3;
        let n = writes(&api);
        if s.pushes > 0 && t > 100 {
            failure_writes = n;
            failure_ms = ms;
            break;
        }
    }
    Figures {
        workers: workers.len(),
        first_writes,
        steady_ms,
        steady_writes,
        failure_writes,
        failure_ms,
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!("operator cycle against an in-memory apiserver (writes = non-GET requests)");
    println!(
        "{:>8} {:>12} {:>16} {:>18} {:>16} {:>14}",
        "workers",
        "first writes",
        "steady writes",
        "steady cycle ms",
        "failure writes",
        "failure ms"
    );
    for contracts in [100usize, 1_000] {
        let f = rt.block_on(run(contracts));
        let mut ms = f.steady_ms.clone();
        ms.sort_by(f64::total_cmp);
        println!(
            "{:>8} {:>12} {:>16} {:>18.1} {:>16} {:>14.1}",
            f.workers,
            f.first_writes,
            format!("{:?}", f.steady_writes),
            ms[ms.len() / 2],
            f.failure_writes,
            f.failure_ms
        );
        println!(
            "{}",
            json!({"bench": "operator_cycle", "workers": f.workers, "contracts": contracts,
                "first_cycle_writes": f.first_writes, "steady_cycle_writes": f.steady_writes,
                "steady_cycle_ms_median": ms[ms.len() / 2], "failure_cycle_writes": f.failure_writes,
                "failure_cycle_ms": f.failure_ms})
        );
    }
}
