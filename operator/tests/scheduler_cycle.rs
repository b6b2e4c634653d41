//! The full decision cycle on the shipped example manifests (`examples/`), with hub facts
//! scripted per worker: a rented miner dies, a spare takes its place within the derived Dead
//! limit, the routing document follows, the SLA ledger records the outage, and the original is
//! given back after its dwell.

use hashsched_hub::facts::{AssignmentLabels, ShareBuckets, WindowHashrate, WorkerFacts};
use hashsched_operator::crd::{
    ContractPhase, Customer, PoolEndpoint, RentalContract, StratumHub, Worker,
};
use hashsched_operator::scheduler::allocation::Role;
use hashsched_operator::scheduler::cycle::{CycleInput, CycleMemory, CycleOutput, run_cycle};
use hashsched_operator::scheduler::health::Verdict;
use jiff::Timestamp;
use std::collections::BTreeMap;

#[derive(Default)]
struct Objects {
    workers: Vec<Worker>,
    contracts: Vec<RentalContract>,
    customers: Vec<Customer>,
    pools: Vec<PoolEndpoint>,
    hubs: Vec<StratumHub>,
}

fn load_examples() -> Objects {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut o = Objects::default();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "yaml"))
    {
        let text = std::fs::read_to_string(f).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let v = serde_yaml::Value::deserialize(doc).unwrap();
            let kind = v
                .get("kind")
                .and_then(|k| k.as_str())
                .unwrap_or_default()
                .to_string();
            let parse = |v: serde_yaml::Value| v;
            match kind.as_str() {
                "Worker" => o.workers.push(serde_yaml::from_value(parse(v)).unwrap()),
                "RentalContract" => o.contracts.push(serde_yaml::from_value(parse(v)).unwrap()),
                "Customer" => o.customers.push(serde_yaml::from_value(parse(v)).unwrap()),
                "PoolEndpoint" => o.pools.push(serde_yaml::from_value(parse(v)).unwrap()),
                "StratumHub" => o.hubs.push(serde_yaml::from_value(parse(v)).unwrap()),
                _ => {}
            }
        }
    }
    o
}

use serde::Deserialize;

const T0: i64 = 1_782_864_000; // 2026-07-01T00:00:00Z

fn unix(t: i64) -> f64 {
    (T0 + t) as f64
}

/// Facts of a worker that hashed at full rate until `silent` seconds ago (0: still hashing),
/// connected since `since`, last share at `last`. Window counts are the expected ones; the
/// cumulative counters (what the SLA ledger subtracts cycle to cycle) hold the shares of a
/// worker hashing at full rate since an hour before T0 up to its last share.
fn facts(name: &str, expected: f64, silent: i64, since: i64, last: i64) -> WorkerFacts {
    let lambda = 0.5;
    let d = expected / (lambda * 4_294_967_296.0);
    let windows = [60u64, 300, 900]
        .iter()
        .map(|&w| {
            let active = (w as f64 - silent as f64).max(0.0) / w as f64;
            WindowHashrate {
                window_seconds: w,
                hashes_per_second: expected * active,
                shares: (lambda * active * w as f64).round() as u64,
            }
        })
        .collect();
    let delivered = (lambda * (last + 3600) as f64).round().max(1.0) as u64;
    let difficulty = ShareBuckets::<f64> {
        accepted: delivered as f64 * d,
        ..ShareBuckets::default()
    };
    let shares = ShareBuckets::<u64> {
        accepted: delivered,
        ..ShareBuckets::default()
    };
    WorkerFacts {
        worker: name.into(),
        connected: true,
        shares,
        difficulty,
        pending: 0,
        hashrate: windows,
        last_share_unix: Some(unix(last)),
        last_change_unix: Some(unix(since)),
        miner_difficulty: Some(d),
        pool: None,
        labels: AssignmentLabels::default(),
    }
}

fn cycle(
    o: &Objects,
    facts: &BTreeMap<String, WorkerFacts>,
    t: i64,
    memory: &CycleMemory,
) -> CycleOutput {
    let now = Timestamp::from_second(T0 + t).unwrap();
    let input = CycleInput {
        now,
        workers: &o.workers,
        contracts: &o.contracts,
        customers: &o.customers,
        pools: &o.pools,
        hubs: &o.hubs,
        facts,
        facts_as_of: Some(now),
        render_objects: true,
        pod_monitor: false,
    };
    let out = run_cycle(&input, memory);
    // The memory survives a trip through JSON (local mode keeps it on disk).
    let json = serde_json::to_string(&out.memory).unwrap();
    let back: CycleMemory = serde_json::from_str(&json).unwrap();
    assert_eq!(back.placements, out.memory.placements);
    out
}

#[test]
fn a_dead_rented_miner_is_replaced_accounted_and_given_back() {
    let o = load_examples();
    assert!(
        o.workers.len() >= 20 && !o.contracts.is_empty() && !o.hubs.is_empty(),
        "examples loaded"
    );
    let expected: BTreeMap<String, f64> = o
        .workers
        .iter()
        .map(|w| {
            (
                w.metadata.name.clone().unwrap(),
                w.spec.expected_hashrate.as_f64(),
            )
        })
        .collect();
    let victim = "acme-s19-02";
    let dies_at = 600; // last share
    let back_at = 1200; // shares again
    let script = |t: i64| -> BTreeMap<String, WorkerFacts> {
        expected
            .iter()
            .map(|(n, &h)| {
                let f = if n == victim && (dies_at..back_at).contains(&t) {
                    facts(n, h, t - dies_at, -3600, dies_at)
                } else if n == victim && t >= back_at {
                    // Reconnected at back_at: the windows only cover the new connection.
                    let mut f = facts(n, h, 0, back_at, t - 1);
                    for w in &mut f.hashrate {
                        let covered = (t - back_at).min(w.window_seconds as i64) as f64;
                        w.shares = (0.5 * covered).round() as u64;
                    }
                    f
                } else {
                    facts(n, h, 0, -3600, t - 1)
                };
                (n.clone(), f)
            })
            .collect()
    };

    let mut memory = CycleMemory::default();
    let mut out = cycle(&o, &script(0), 0, &memory);
    memory = out.memory.clone();
    let gen0 = out.routing["site-a"].generation;
    out.routing["site-a"]
        .validate()
        .expect("hub accepts the rendered routing");
    assert!(out.hub_objects["site-a"].is_ok());
    // Settled after the first cycle: a healthy farm moves nothing.
    for t in (5..dies_at).step_by(5) {
        out = cycle(&o, &script(t), t, &memory);
        memory = out.memory.clone();
        assert!(out.changes.is_empty(), "t={t}: {:?}", out.changes);
        assert_eq!(out.routing["site-a"].generation, gen0, "no routing churn");
    }
    let acme = |out: &CycleOutput| {
        out.contracts
            .iter()
            .find(|c| c.name == "acme-m2m")
            .unwrap()
            .clone()
    };
    assert_eq!(acme(&out).phase, ContractPhase::Active);

    // The victim stops sharing at t=600 (connected, silent).
    let mut swapped_at = None;
    for t in (dies_at + 5..back_at).step_by(5) {
        out = cycle(&o, &script(t), t, &memory);
        memory = out.memory.clone();
        if !out.changes.is_empty() && swapped_at.is_none() {
            swapped_at = Some(t);
            let w = out.workers.iter().find(|w| w.name == victim).unwrap();
            assert_eq!(w.verdict, Verdict::Dead, "{}", w.reason);
            let limit = w.thresholds.unwrap().dead_after_secs;
            assert!(
                ((t - dies_at) as f64) > limit && ((t - dies_at) as f64) <= limit + 5.0,
                "t={t} limit={limit}"
            );
            assert_eq!(out.changes.len(), 2, "{:?}", out.changes);
            let sub = out
                .changes
                .iter()
                .find(|c| c.to_role == Role::Substitute)
                .unwrap();
            assert!(
                sub.worker.starts_with("spare-s19-"),
                "best fit for a 104 TH/s miner: {}",
                sub.worker
            );
            let doc = &out.routing["site-a"];
            assert_eq!(doc.generation, gen0 + 1);
            let route = doc.workers.iter().find(|r| r.name == sub.worker).unwrap();
            let victim_route = doc.workers.iter().find(|r| r.name == victim).unwrap();
            assert!(route.pools.is_some(), "substitute mines on acme's pools");
            // The benched original is the customer's own machine: it stays on its owner's pools
            // but no longer counts for the contract.
            let a = victim_route.assignment.as_ref().unwrap();
            assert_eq!((a.contract.as_deref(), a.role.as_str()), (None, "spare"));
        }
    }
    let swapped_at = swapped_at.expect("victim replaced");
    let report = acme(&out);
    let ledger = &report.ledger;
    // Issue 14: ~45 s without one of four machines is 19 % of one 120-share slot, which one slot
    // cannot tell from luck at the false-down budget — it stays up, and the shortfall is owed all
    // the same (the ledger's estimate is unbiased).
    assert_eq!(ledger.down_slots, 0, "{ledger:?}");
    assert!(ledger.observed_slots() >= 10, "{ledger:?}");
    let owed = ledger.shortfall_hashrate_hours();
    // 104 TH/s for 45–50 s ≈ 1.3–1.45 TH/s·h, within the interval.
    assert!(owed > 1.0 && owed < 1.8, "{owed} {ledger:?}");
    assert!(ledger.credit(&report.sla) > 0.0);
    assert_eq!(acme(&out).failover_count, 1);

    // Back at t=1200: Healthy only after minDwell (5m) of healthy evidence, then given back.
    let mut given_back = None;
    for t in (back_at..back_at + 900).step_by(5) {
        out = cycle(&o, &script(t), t, &memory);
        memory = out.memory.clone();
        if out
            .changes
            .iter()
            .any(|c| c.worker == victim && c.to_role == Role::Primary)
        {
            given_back = Some(t);
            break;
        }
    }
    let given_back = given_back.expect("original given back");
    assert!(
        given_back - back_at >= 300,
        "given back after {}s",
        given_back - back_at
    );
    assert!(given_back - swapped_at >= 300);
    let after = acme(&out);
    assert!(
        after.assigned.iter().all(|(_, r, _)| *r == Role::Primary),
        "{:?}",
        after.assigned
    );
    // Memory dropped (restart) but placements kept via the world: no mass reshuffle.
    let mut restarted = CycleMemory {
        placements: memory.placements.clone(),
        ..CycleMemory::default()
    };
    restarted.routing = memory.routing.clone();
    let out2 = cycle(&o, &script(back_at + 905), back_at + 905, &restarted);
    assert!(out2.changes.is_empty(), "{:?}", out2.changes);
}

#[test]
fn facts_are_indexed_by_worker_name_through_the_stratum_user() {
    use hashsched_operator::crd::{WorkerOwner, WorkerSpec};
    use hashsched_operator::quantity::Hashrate;
    use hashsched_operator::scheduler::cycle::facts_by_worker;
    let spec = |user: Option<&str>| WorkerSpec {
        asset_tag: None,
        model: None,
        owner: WorkerOwner::House,
        expected_hashrate: Hashrate::from_terahashes(100),
        stratum_user: user.map(Into::into),
        hub: None,
        maintenance: false,
        description: None,
    };
    let workers = vec![
        Worker::new("rig-1", spec(Some("farm.rig1"))),
        Worker::new("rig-2", spec(None)),
    ];
    let mut stale = facts("farm.rig1", 1e14, 0, 0, 10);
    stale.connected = false;
    let fresh = facts("farm.rig1", 1e14, 0, 0, 20);
    let other = facts("rig-2", 1e14, 0, 0, 5);
    let stranger = facts("nobody", 1e14, 0, 0, 5);
    let by = facts_by_worker(&workers, [fresh.clone(), stale, other, stranger]);
    assert_eq!(by.keys().collect::<Vec<_>>(), ["rig-1", "rig-2"]);
    assert_eq!(
        by["rig-1"], fresh,
        "connected report from another hub pod wins"
    );
}

#[test]
fn an_unreachable_hub_holds_verdicts_instead_of_failing_the_farm_over() {
    let o = load_examples();
    let all: BTreeMap<String, WorkerFacts> = o
        .workers
        .iter()
        .map(|w| {
            let n = w.metadata.name.clone().unwrap();
            let f = facts(&n, w.spec.expected_hashrate.as_f64(), 0, -3600, -1);
            (n, f)
        })
        .collect();
    let settled = cycle(&o, &all, 0, &CycleMemory::default());
    let healthy_before = settled
        .workers
        .iter()
        .filter(|w| w.verdict == Verdict::Healthy)
        .count();
    assert!(healthy_before >= 15, "{healthy_before} healthy");
    // For ten minutes no hub can be read: no facts at all.
    let mut memory = settled.memory.clone();
    for t in (5..600).step_by(5) {
        let now = Timestamp::from_second(T0 + t).unwrap();
        let empty = BTreeMap::new();
        let input = CycleInput {
            now,
            workers: &o.workers,
            contracts: &o.contracts,
            customers: &o.customers,
            pools: &o.pools,
            hubs: &o.hubs,
            facts: &empty,
            facts_as_of: None,
            render_objects: false,
            pod_monitor: false,
        };
        let out = run_cycle(&input, &memory);
        assert!(out.changes.is_empty(), "t={t}: {:?}", out.changes);
        let healthy = out
            .workers
            .iter()
            .filter(|w| w.verdict == Verdict::Healthy)
            .count();
        assert_eq!(healthy, healthy_before, "t={t}: verdicts held");
        // Nothing is accounted without evidence.
        let before = &settled.contracts[0].ledger;
        assert_eq!(
            out.contracts[0].ledger.observed_slots(),
            before.observed_slots()
        );
        memory = out.memory;
    }
}

#[test]
fn a_threshold_contract_borrows_the_fewest_spares_and_returns_them() {
    let o = load_examples();
    let expected: BTreeMap<String, f64> = o
        .workers
        .iter()
        .map(|w| {
            (
                w.metadata.name.clone().unwrap(),
                w.spec.expected_hashrate.as_f64(),
            )
        })
        .collect();
    // borealis-1ph: 1 PH/s from five 200 TH/s machines, tolerance 5 % (950 TH/s floor).
    let (victim, dies_at, back_at) = ("s21-03", 100, 400);
    let script = |t: i64| -> BTreeMap<String, WorkerFacts> {
        expected
            .iter()
            .map(|(n, &h)| {
                let f = if n == victim && (dies_at..back_at).contains(&t) {
                    let mut f = facts(n, h, t - dies_at, -3600, dies_at);
                    f.connected = false;
                    f.last_change_unix = Some(unix(dies_at));
                    f
                } else {
                    facts(n, h, 0, -3600, t - 1)
                };
                (n.clone(), f)
            })
            .collect()
    };
    let borealis = |out: &CycleOutput| {
        out.contracts
            .iter()
            .find(|c| c.name == "borealis-1ph")
            .unwrap()
            .clone()
    };
    let mut memory = cycle(&o, &script(0), 0, &CycleMemory::default()).memory;
    let mut lent_at = None;
    let mut returned_at = None;
    for t in (5..1200).step_by(5) {
        let out = cycle(&o, &script(t), t, &memory);
        memory = out.memory.clone();
        let b = borealis(&out);
        for ch in &out.changes {
            if ch.to_contract.as_deref() == Some("borealis-1ph") && ch.to_role == Role::Substitute {
                assert!(lent_at.is_none(), "only one lend: {ch}");
                lent_at = Some(t);
                // Disconnected beyond the 15 s grace → Dead → 800 of 950 TH/s: one 200 TH/s
                // house spare (selector: role=spare, fleet in [house]) covers it.
                assert!(
                    t - dies_at > 15 && t - dies_at <= 25,
                    "lent {}s after the disconnect",
                    t - dies_at
                );
                assert_eq!(out.changes.len(), 1, "{:?}", out.changes);
                assert!(b.planned_hashrate >= b.required_hashrate, "{b:?}");
            }
            if ch.from_contract.as_deref() == Some("borealis-1ph")
                && ch.from_role == Role::Substitute
            {
                returned_at = Some(t);
            }
        }
        if returned_at.is_some() {
            break;
        }
    }
    let (lent_at, returned_at) = (
        lent_at.expect("a spare was lent"),
        returned_at.expect("and returned"),
    );
    // Returned once the original has been healthy for minDwell (5 min default) and the
    // substitute has served its own dwell.
    assert!(
        returned_at - back_at >= 300 && returned_at - lent_at >= 300,
        "lent {lent_at}, back {back_at}, returned {returned_at}"
    );
}

/// One customer's PoolEndpoint has a URL the hub refuses (port 0, e.g. stored before the
/// schema was tightened): it is left out of the routing document with the reason, the document
/// still passes the hub's validation, and the other customers' workers keep their routes.
#[test]
fn a_pool_the_hub_refuses_is_left_out_and_everyone_else_is_routed() {
    type Spoil = fn(&mut hashsched_operator::crd::PoolEndpointSpec);
    let cases: [(&str, Spoil, &str); 3] = [
        (
            "port 0",
            |p| p.url = "stratum+ssl://stratum.acme-pool.example:0".into(),
            "port",
        ),
        // The hub refuses a login with whitespace; a document carrying it would be refused
        // whole and freeze every customer's routing on that hub.
        ("user with a space", |p| p.user = "acme ops".into(), "user"),
        ("user too long", |p| p.user = "a".repeat(254), "user"),
    ];
    for (case, spoil, expected) in cases {
        let out = one_pool_spoiled(spoil);
        let reason = out
            .invalid_pools
            .get("acme-primary")
            .unwrap_or_else(|| panic!("{case}: not reported: {:?}", out.invalid_pools));
        assert!(reason.contains(expected), "{case}: {reason}");
    }
}

/// The examples with acme's primary PoolEndpoint spoiled by `spoil`: that pool is left out of
/// the routing document, which the hub accepts, and every other worker keeps its route.
fn one_pool_spoiled(spoil: fn(&mut hashsched_operator::crd::PoolEndpointSpec)) -> CycleOutput {
    let mut o = load_examples();
    let bad = o
        .pools
        .iter_mut()
        .find(|p| p.metadata.name.as_deref() == Some("acme-primary"))
        .unwrap();
    spoil(&mut bad.spec);
    let facts: BTreeMap<String, WorkerFacts> = o
        .workers
        .iter()
        .map(|w| {
            let n = w.metadata.name.clone().unwrap();
            let f = facts(&n, w.spec.expected_hashrate.as_f64(), 0, -3600, -1);
            (n, f)
        })
        .collect();
    let out = cycle(&o, &facts, 0, &CycleMemory::default());
    assert!(
        out.invalid_pools.contains_key("acme-primary"),
        "{:?}",
        out.invalid_pools
    );
    assert_eq!(out.invalid_pools.len(), 1, "{:?}", out.invalid_pools);
    assert!(out.routing_errors.is_empty(), "{:?}", out.routing_errors);
    let doc = &out.routing["site-a"];
    doc.validate().expect("the hub accepts the document");
    assert!(doc.pools.iter().all(|p| p.name != "acme-primary"));
    let route = |w: &str| {
        doc.workers
            .iter()
            .find(|r| r.name == w)
            .and_then(|r| r.pools.clone())
            .unwrap_or_default()
    };
    // acme keeps its backup pool; borealis is untouched.
    assert_eq!(route("acme-s19-01"), ["acme-backup"]);
    let borealis: Vec<&Vec<String>> = doc
        .workers
        .iter()
        .filter(|r| {
            r.assignment
                .as_ref()
                .is_some_and(|a| a.customer.as_deref() == Some("borealis"))
        })
        .filter_map(|r| r.pools.as_ref())
        .collect();
    assert!(!borealis.is_empty(), "borealis's workers are routed");
    for pools in borealis {
        assert!(pools.contains(&"borealis-primary".to_owned()), "{pools:?}");
    }
    out
}
