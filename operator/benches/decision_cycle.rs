//! Benchmark: one full decision cycle (classify + allocate + account + render routing and the
//! hub's Kubernetes objects) for 10,000 workers and 1,000 contracts.
//!
//! `cargo bench -p hashsched-operator --bench decision_cycle`
//!
//! The world: 100 customers with two pools each, one StratumHub; 500 MinerToMiner contracts and
//! 500 Threshold contracts of 8 workers each (8,000 rented workers), 2,000 house spares. The
//! measured cycle sees 2 % of the rented workers Dead and 1 % Degraded (every failover decision
//! is made each iteration: the memory is the settled pre-failure one). Baseline in the same run:
//! the same world with no failure (classify, account and render, nothing to move). Prints a
//! table and one JSON line. Target: ≤ 100 ms per cycle.

use hashsched_contract::facts::{AssignmentLabels, ShareBuckets, WindowHashrate, WorkerFacts};
use hashsched_operator::crd::{
    ContractMode, Customer, CustomerSpec, PoolEndpoint, PoolEndpointSpec, RentalContract,
    RentalContractSpec, StratumHub, StratumHubSpec, Worker, WorkerOwner, WorkerSpec,
};
use hashsched_operator::quantity::Hashrate;
use hashsched_operator::scheduler::cycle::{CycleInput, CycleMemory, run_cycle};
use jiff::Timestamp;
use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Instant;

const WORKERS_PER_CONTRACT: usize = 8;
const CONTRACTS: usize = 1_000;
const SPARES: usize = 2_000;
const CUSTOMERS: usize = 100;
const ITERATIONS: usize = 40;
const T0: i64 = 1_782_864_000;

struct Farm {
    workers: Vec<Worker>,
    contracts: Vec<RentalContract>,
    customers: Vec<Customer>,
    pools: Vec<PoolEndpoint>,
    hubs: Vec<StratumHub>,
}

fn farm() -> Farm {
    let mut workers = Vec::new();
    let mut contracts = Vec::new();
    let tera = |i: usize| [100u64, 104, 110, 140, 200][i % 5];
    for c in 0..CONTRACTS {
        let names: Vec<String> = (0..WORKERS_PER_CONTRACT)
            .map(|k| format!("r{c:04}-{k}"))
            .collect();
        let mut sum = 0;
        for (k, n) in names.iter().enumerate() {
            let th = tera(c + k);
            sum += th;
            workers.push(Worker::new(
                n,
                WorkerSpec {
                    asset_tag: None,
                    model: None,
                    owner: WorkerOwner::House,
                    expected_hashrate: Hashrate::from_terahashes(th),
                    stratum_user: None,
                    hub: None,
                    maintenance: false,
                    description: None,
                },
            ));
        }
        let threshold = c % 2 == 1;
        let spec: RentalContractSpec = serde_json::from_value(serde_json::json!({
            "customer": format!("cust{:03}", c % CUSTOMERS),
            "mode": if threshold { "Threshold" } else { "MinerToMiner" },
            "workers": names,
            "contractedHashrate": if threshold { Some(format!("{sum} TH/s")) } else { None },
            "priority": (c % 3) as i32,
            "sla": { "creditRate": 0.002 },
        }))
        .expect("contract spec");
        assert_eq!(
            spec.mode,
            if threshold {
                ContractMode::Threshold
            } else {
                ContractMode::MinerToMiner
            }
        );
        contracts.push(RentalContract::new(&format!("k{c:04}"), spec));
    }
    for s in 0..SPARES {
        let mut w = Worker::new(
            &format!("spare{s:04}"),
            WorkerSpec {
                asset_tag: None,
                model: None,
                owner: WorkerOwner::House,
                expected_hashrate: Hashrate::from_terahashes(tera(s)),
                stratum_user: None,
                hub: None,
                maintenance: false,
                description: None,
            },
        );
        w.metadata.labels = Some(BTreeMap::from([(
            "hashsched.io/role".into(),
            "spare".into(),
        )]));
        workers.push(w);
    }
    let mut pools = Vec::new();
    let mut customers = Vec::new();
    for c in 0..CUSTOMERS {
        let mut names = Vec::new();
        for p in 0..2 {
            let name = format!("cust{c:03}-pool{p}");
            pools.push(PoolEndpoint::new(
                &name,
                PoolEndpointSpec {
                    url: format!("stratum+tcp://pool{p}.cust{c:03}.example:3333"),
                    user: format!("cust{c:03}"),
                    worker_name_template: None,
                    password_secret_ref: None,
                    tls: None,
                    description: None,
                },
            ));
            names.push(name);
        }
        customers.push(Customer::new(
            &format!("cust{c:03}"),
            CustomerSpec {
                display_name: None,
                contact: None,
                pools: names,
            },
        ));
    }
    pools.push(PoolEndpoint::new(
        "house",
        PoolEndpointSpec {
            url: "stratum+tcp://house.example:3333".into(),
            user: "farm".into(),
            worker_name_template: None,
            password_secret_ref: None,
            tls: None,
            description: None,
        },
    ));
    let hub_spec: StratumHubSpec =
        serde_json::from_value(serde_json::json!({ "housePools": ["house"] })).expect("hub");
    let mut hub = StratumHub::new("site-a", hub_spec);
    hub.metadata.uid = Some("bench-uid".into());
    Farm {
        workers,
        contracts,
        customers,
        pools,
        hubs: vec![hub],
    }
}

/// Facts for every worker at time `t`; rented worker `i` is Dead if `i % 50 == 7`, Degraded
/// (55 %) if `i % 100 == 13`, when `failures` is set.
fn facts(farm: &Farm, t: i64, failures: bool) -> BTreeMap<String, WorkerFacts> {
    farm.workers
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let name = w.metadata.name.clone().unwrap_or_default();
            let h = w.spec.expected_hashrate.as_f64();
            let rented = name.starts_with('r');
            let dead = failures && rented && i % 50 == 7;
            let fraction = if failures && rented && i % 100 == 13 {
                0.55
            } else {
                1.0
            };
            let lambda = 0.5;
            let d = h / (lambda * 4_294_967_296.0);
            let hashrate = [60u64, 300, 900]
                .iter()
                .map(|&win| WindowHashrate {
                    window_seconds: win,
                    hashes_per_second: if dead { 0.0 } else { h * fraction },
                    shares: if dead {
                        0
                    } else {
                        (lambda * fraction * win as f64) as u64
                    },
                })
                .collect();
            let difficulty = ShareBuckets::<f64> {
                accepted: 1e3 * d,
                ..ShareBuckets::default()
            };
            let f = WorkerFacts {
                worker: name.clone(),
                connected: true,
                shares: ShareBuckets::default(),
                difficulty,
                pending: 0,
                hashrate,
                last_share_unix: Some((T0 + if dead { t - 600 } else { t - 1 }) as f64),
                last_change_unix: Some((T0 - 86_400) as f64),
                miner_difficulty: Some(d),
                pool: None,
                labels: AssignmentLabels::default(),
            };
            (name, f)
        })
        .collect()
}

/// Size of the routing ConfigMap for this farm (bytes) and the routing document's generation.
fn config_map_bytes(
    farm: &Farm,
    facts: &BTreeMap<String, WorkerFacts>,
    memory: &CycleMemory,
    now: Timestamp,
) -> usize {
    let input = CycleInput {
        now,
        workers: &farm.workers,
        contracts: &farm.contracts,
        customers: &farm.customers,
        pools: &farm.pools,
        hubs: &farm.hubs,
        facts,
        facts_as_of: Some(now),
        render_objects: true,
        pod_monitor: true,
    };
    let out = run_cycle(&input, memory);
    out.hub_objects
        .values()
        .filter_map(|o| o.as_ref().ok())
        .map(|o| o.config_map_bytes())
        .sum()
}

fn time_cycles(
    farm: &Farm,
    facts: &BTreeMap<String, WorkerFacts>,
    memory: &CycleMemory,
    now: Timestamp,
) -> (Vec<f64>, usize) {
    let input = CycleInput {
        now,
        workers: &farm.workers,
        contracts: &farm.contracts,
        customers: &farm.customers,
        pools: &farm.pools,
        hubs: &farm.hubs,
        facts,
        facts_as_of: Some(now),
        render_objects: true,
        pod_monitor: true,
    };
    let mut samples = Vec::with_capacity(ITERATIONS);
    let mut changes = 0;
    for _ in 0..ITERATIONS {
        let start = Instant::now();
        let out = black_box(run_cycle(black_box(&input), black_box(memory)));
        samples.push(start.elapsed().as_secs_f64() * 1e3);
        changes = out.changes.len();
    }
    samples.sort_by(f64::total_cmp);
    (samples, changes)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn main() {
    let farm = farm();
    let at = |t: i64| Timestamp::from_second(T0 + t).expect("time");
    // Settle: two healthy cycles give the steady-state memory.
    let mut memory = CycleMemory::default();
    for t in [0, 5] {
        let healthy = facts(&farm, t, false);
        let input = CycleInput {
            now: at(t),
            workers: &farm.workers,
            contracts: &farm.contracts,
            customers: &farm.customers,
            pools: &farm.pools,
            hubs: &farm.hubs,
            facts: &healthy,
            facts_as_of: Some(at(t)),
            render_objects: true,
            pod_monitor: true,
        };
        memory = run_cycle(&input, &memory).memory;
    }
    let healthy = facts(&farm, 10, false);
    let failing = facts(&farm, 10, true);
    let (base, base_changes) = time_cycles(&farm, &healthy, &memory, at(10));
    let (full, full_changes) = time_cycles(&farm, &failing, &memory, at(10));
    let cm_bytes = config_map_bytes(&farm, &failing, &memory, at(10));
    let (bm, b99) = (pct(&base, 0.5), pct(&base, 0.99));
    let (fm, f99) = (pct(&full, 0.5), pct(&full, 0.99));
    println!(
        "decision cycle: {} workers, {} contracts, {} iterations each",
        farm.workers.len(),
        farm.contracts.len(),
        ITERATIONS
    );
    println!(
        "{:<34} {:>10} {:>10} {:>9}",
        "case", "median ms", "p99 ms", "changes"
    );
    println!(
        "{:<34} {:>10.2} {:>10.2} {:>9}",
        "baseline: healthy farm", bm, b99, base_changes
    );
    println!(
        "{:<34} {:>10.2} {:>10.2} {:>9}",
        "full: 2% Dead + 1% Degraded", fm, f99, full_changes
    );
    println!("routing ConfigMap: {cm_bytes} bytes (apiserver limit ~1 MiB)");
    println!(
        "ratio full/baseline (median): {:.2}; target <= 100 ms: {}",
        fm / bm,
        if f99 <= 100.0 { "met" } else { "MISSED" }
    );
    println!(
        "{}",
        serde_json::json!({
            "bench": "decision_cycle",
            "workers": farm.workers.len(),
            "contracts": farm.contracts.len(),
            "iterations": ITERATIONS,
            "baseline_median_ms": bm,
            "baseline_p99_ms": b99,
            "full_median_ms": fm,
            "full_p99_ms": f99,
            "ratio_median": fm / bm,
            "changes": full_changes,
            "target_ms": 100,
            "routing_config_map_bytes": cm_bytes,
        })
    );
}
