//! Allocation: scenario tests for each rule and property tests over random worlds.

use hashsched_operator::scheduler::allocation::{
    Allocation, Change, ChangeReason, ContractCondition, ContractView, Expression, Mode, Owner,
    Placement, Role, Selector, SelectorExt, WorkerView, World, allocate,
};
use hashsched_operator::scheduler::health::Verdict;
use jiff::Timestamp;
use proptest::prelude::*;
use rand::{Rng, SeedableRng, rngs::SmallRng, seq::SliceRandom};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const TH: f64 = 1e12;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(1_767_225_600 + secs).unwrap()
}

fn spare_label() -> BTreeMap<String, String> {
    [("hashsched.io/role".to_string(), "spare".to_string())].into()
}

fn worker(name: &str, ths: f64, spare: bool) -> WorkerView {
    WorkerView {
        name: name.into(),
        owner: Owner::House,
        labels: if spare {
            spare_label()
        } else {
            BTreeMap::new()
        },
        expected_hashrate: ths * TH,
        measured_hashrate: None,
        health: Verdict::Healthy,
        maintenance: false,
        placement: Placement::spare(at(0)),
    }
}

fn contract(name: &str, mode: Mode, primaries: &[&str], contracted_ths: f64) -> ContractView {
    ContractView {
        name: name.into(),
        customer: "acme".into(),
        mode,
        active: true,
        priority: 0,
        sla_deficit: 0.0,
        primaries: primaries.iter().map(|s| s.to_string()).collect(),
        contracted_hashrate: contracted_ths * TH,
        tolerance: 0.10,
        spare_selector: Some(spare_label().into_iter().collect()),
        give_back: true,
        max_reassignments_per_hour: Some(12),
        reassignments_last_hour: 0,
        min_dwell: Duration::from_secs(300),
    }
}

/// Writes the allocation back into the world as the next cycle would see it.
fn apply(world: &World, alloc: &Allocation, now: Timestamp) -> World {
    let mut next = world.clone();
    next.now = now;
    for w in &mut next.workers {
        if let Some(p) = alloc.placements.get(&w.name) {
            w.placement = p.clone();
        }
    }
    for c in &mut next.contracts {
        c.reassignments_last_hour += alloc.contracts[&c.name].reassignments;
    }
    next
}

fn set_health(world: &mut World, name: &str, v: Verdict) {
    world
        .workers
        .iter_mut()
        .find(|w| w.name == name)
        .unwrap()
        .health = v;
}

fn role_of(a: &Allocation, name: &str) -> (Option<String>, Role) {
    let p = &a.placements[name];
    (p.contract.clone(), p.role)
}

fn m2m_world() -> World {
    let mut workers = vec![worker("r1", 100.0, false), worker("r2", 100.0, false)];
    workers.push(worker("s-small", 90.0, true));
    workers.push(worker("s-fit", 110.0, true));
    workers.push(worker("s-big", 200.0, true));
    workers.push(worker("house", 100.0, false)); // no spare label: never lent
    let mut w = World {
        now: at(0),
        workers,
        contracts: vec![contract("k", Mode::MinerToMiner, &["r1", "r2"], 200.0)],
    };
    let a = allocate(&w);
    w = apply(&w, &a, at(0));
    w
}

#[test]
fn miner_to_miner_swaps_in_the_best_fitting_spare_and_gives_it_back_after_dwell() {
    let mut w = m2m_world();
    assert_eq!(
        role_of(&allocate(&w), "r1"),
        (Some("k".into()), Role::Primary)
    );
    w.now = at(60);
    set_health(&mut w, "r1", Verdict::Dead);
    let a = allocate(&w);
    assert_eq!(a.changes.len(), 2, "{:#?}", a.changes);
    assert_eq!(role_of(&a, "r1"), (Some("k".into()), Role::Benched));
    assert_eq!(role_of(&a, "s-fit"), (Some("k".into()), Role::Substitute));
    assert_eq!(a.placements["s-fit"].covers.as_deref(), Some("r1"));
    assert!(matches!(
        a.changes[0].reason,
        ChangeReason::PrimaryFailed {
            verdict: Verdict::Dead,
            ..
        }
    ));
    assert_eq!(a.changes[1].reason.to_string(), "lent to replace r1 (Dead)");
    w = apply(&w, &a, at(60));

    // Original Healthy again (its verdict already includes the health dwell) but the
    // substitute has served only 100 s of its 300 s dwell: nothing moves.
    w.now = at(160);
    set_health(&mut w, "r1", Verdict::Healthy);
    assert!(allocate(&w).changes.is_empty());
    w.now = at(360);
    let a = allocate(&w);
    assert_eq!(role_of(&a, "r1"), (Some("k".into()), Role::Primary));
    assert_eq!(role_of(&a, "s-fit"), (None, Role::Spare));
    assert_eq!(a.changes.len(), 2);
    assert!(matches!(&a.changes[1].reason, ChangeReason::GivenBack { primary } if primary == "r1"));
}

#[test]
fn miner_to_miner_without_give_back_keeps_the_substitute() {
    let mut w = m2m_world();
    w.contracts[0].give_back = false;
    set_health(&mut w, "r2", Verdict::Degraded);
    let a = allocate(&w);
    w = apply(&w, &a, at(0));
    set_health(&mut w, "r2", Verdict::Healthy);
    w.now = at(10_000);
    assert!(allocate(&w).changes.is_empty());
    // Until the substitute itself fails: then the healthy original comes back.
    set_health(&mut w, "s-fit", Verdict::Dead);
    let a = allocate(&w);
    assert_eq!(role_of(&a, "r2"), (Some("k".into()), Role::Primary));
    assert_eq!(role_of(&a, "s-fit"), (None, Role::Spare));
}

#[test]
fn no_spare_left_is_a_condition_and_the_original_keeps_serving() {
    let mut w = m2m_world();
    for s in ["s-small", "s-fit", "s-big"] {
        w.workers
            .iter_mut()
            .find(|x| x.name == s)
            .unwrap()
            .maintenance = true;
    }
    set_health(&mut w, "r1", Verdict::Degraded);
    let a = allocate(&w);
    assert!(a.changes.is_empty());
    let conds = &a.contracts["k"].conditions;
    assert!(
        matches!(&conds[..], [ContractCondition::NoSpareCapacity { uncovered, .. }] if uncovered == &["r1".to_string()]),
        "{conds:?}"
    );
    assert_eq!(
        conds[0].to_string(),
        "no spare capacity: 100.0 TH/s missing, uncovered: r1"
    );
}

#[test]
fn reassignment_limit_defers_lends() {
    let mut w = m2m_world();
    w.contracts[0].max_reassignments_per_hour = Some(3);
    w.contracts[0].reassignments_last_hour = 3;
    set_health(&mut w, "r1", Verdict::Dead);
    let a = allocate(&w);
    assert!(a.changes.is_empty());
    assert_eq!(
        a.contracts["k"].conditions,
        vec![ContractCondition::ReassignmentLimit { limit: 3 }]
    );
}

#[test]
fn threshold_lends_the_fewest_spares_and_releases_them_when_covered() {
    let mut workers: Vec<WorkerView> = (0..10)
        .map(|i| worker(&format!("base{i}"), 100.0, false))
        .collect();
    for (n, ths) in [
        ("sp-a", 50.0),
        ("sp-b", 120.0),
        ("sp-c", 300.0),
        ("sp-d", 260.0),
    ] {
        workers.push(worker(n, ths, true));
    }
    let names: Vec<String> = (0..10).map(|i| format!("base{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut w = World {
        now: at(0),
        workers,
        contracts: vec![contract("t", Mode::Threshold, &refs, 1000.0)],
    };
    w = apply(&w, &allocate(&w), at(0));
    assert!(
        allocate(&w).changes.is_empty(),
        "1000 TH/s from 10 × 100 covers 900 required"
    );
    // Three die: 700 delivered, 900 required, deficit 200 → one spare: the smallest that
    // covers it (260), not two small ones and not the biggest.
    for i in 0..3 {
        set_health(&mut w, &format!("base{i}"), Verdict::Dead);
    }
    w.now = at(10);
    let a = allocate(&w);
    assert_eq!(a.changes.len(), 1, "{:#?}", a.changes);
    assert_eq!(a.changes[0].worker, "sp-d");
    assert_eq!(a.contracts["t"].planned_hashrate, 960.0 * TH);
    w = apply(&w, &a, at(10));
    // All back: 1000 + 260 = 1260; without sp-d 1000 ≥ comfortable (950): released after dwell.
    for i in 0..3 {
        set_health(&mut w, &format!("base{i}"), Verdict::Healthy);
    }
    w.now = at(100);
    assert!(allocate(&w).changes.is_empty(), "dwell not served yet");
    w.now = at(400);
    let a = allocate(&w);
    assert_eq!(a.changes.len(), 1);
    assert_eq!(a.changes[0].reason, ChangeReason::NoLongerNeeded);
}

#[test]
fn scarce_spares_go_by_priority_then_deficit_then_name() {
    let mut workers = vec![
        worker("a1", 100.0, false),
        worker("b1", 100.0, false),
        worker("c1", 100.0, false),
    ];
    workers.push(worker("only-spare", 100.0, true));
    let mut ka = contract("a", Mode::MinerToMiner, &["a1"], 100.0);
    let mut kb = contract("b", Mode::MinerToMiner, &["b1"], 100.0);
    let kc = contract("c", Mode::MinerToMiner, &["c1"], 100.0);
    let mut w = World {
        now: at(0),
        workers,
        contracts: vec![ka.clone(), kb.clone(), kc.clone()],
    };
    w = apply(&w, &allocate(&w), at(0));
    for n in ["a1", "b1", "c1"] {
        set_health(&mut w, n, Verdict::Dead);
    }
    assert_eq!(
        allocate(&w).placements["only-spare"].contract.as_deref(),
        Some("a"),
        "name order"
    );
    kb.sla_deficit = 0.02;
    w.contracts[1] = kb.clone();
    assert_eq!(
        allocate(&w).placements["only-spare"].contract.as_deref(),
        Some("b"),
        "deficit first"
    );
    ka.priority = 0;
    w.contracts[2].priority = 5;
    assert_eq!(
        allocate(&w).placements["only-spare"].contract.as_deref(),
        Some("c"),
        "priority first"
    );
}

#[test]
fn foreign_owned_maintenance_and_conflicting_workers_are_respected() {
    let mut foreign = worker("foreign", 100.0, true);
    foreign.owner = Owner::Customer("other".into());
    let mut cordoned = worker("cordoned", 100.0, true);
    cordoned.maintenance = true;
    let workers = vec![
        worker("r1", 100.0, false),
        foreign,
        cordoned,
        worker("shared", 100.0, false),
    ];
    let mut k1 = contract("k1", Mode::MinerToMiner, &["r1", "shared", "ghost"], 300.0);
    k1.priority = 1;
    let k2 = contract("k2", Mode::MinerToMiner, &["shared", "foreign"], 200.0);
    let mut w = World {
        now: at(0),
        workers,
        contracts: vec![k1, k2],
    };
    set_health(&mut w, "r1", Verdict::Dead);
    let a = allocate(&w);
    assert_eq!(role_of(&a, "shared"), (Some("k1".into()), Role::Primary));
    assert_eq!(role_of(&a, "foreign"), (None, Role::Spare));
    assert_eq!(role_of(&a, "cordoned"), (None, Role::Spare));
    let k1c = &a.contracts["k1"].conditions;
    assert!(
        k1c.contains(&ContractCondition::UnknownWorker {
            worker: "ghost".into()
        }),
        "{k1c:?}"
    );
    assert!(
        k1c.iter()
            .any(|c| matches!(c, ContractCondition::NoSpareCapacity { .. }))
    );
    let k2c = &a.contracts["k2"].conditions;
    assert!(k2c.contains(&ContractCondition::WorkerConflict {
        worker: "shared".into(),
        held_by: "k1".into()
    }));
    assert!(k2c.contains(&ContractCondition::OwnerMismatch {
        worker: "foreign".into()
    }));
    // The holder keeps a contested worker even if the other contract outranks it later.
    let mut w2 = apply(&w, &a, at(1));
    w2.contracts[1].priority = 10;
    assert_eq!(
        role_of(&allocate(&w2), "shared"),
        (Some("k1".into()), Role::Primary)
    );
}

#[test]
fn ended_contract_returns_everyone() {
    let mut w = m2m_world();
    set_health(&mut w, "r1", Verdict::Dead);
    w = apply(&w, &allocate(&w), at(0));
    w.contracts[0].active = false;
    let a = allocate(&w);
    assert!(a.placements.values().all(|p| p.role == Role::Spare));
    assert!(
        a.changes
            .iter()
            .all(|c| c.reason == ChangeReason::ContractInactive),
        "{:#?}",
        a.changes
    );
    assert_eq!(a.changes.len(), 3);
}

// ---------------------------------------------------------------------------------------------
// Property tests over random worlds.

const SIZES: [f64; 6] = [50.0, 90.0, 100.0, 110.0, 150.0, 200.0];
const CUSTOMERS: [&str; 3] = ["c0", "c1", "c2"];

fn random_world(seed: u64, n_workers: usize, n_contracts: usize) -> World {
    let mut rng = SmallRng::seed_from_u64(seed);
    let now = at(10_000);
    let mut workers: Vec<WorkerView> = (0..n_workers)
        .map(|i| {
            let mut labels = BTreeMap::new();
            if rng.random_bool(0.5) {
                labels.insert("hashsched.io/role".into(), "spare".into());
            }
            labels.insert(
                "rack".into(),
                if rng.random_bool(0.5) { "a" } else { "b" }.into(),
            );
            let health = match rng.random_range(0..10) {
                0 => Verdict::Dead,
                1 => Verdict::Degraded,
                2 => Verdict::Unknown,
                _ => Verdict::Healthy,
            };
            WorkerView {
                name: format!("w{i:03}"),
                owner: if rng.random_bool(0.75) {
                    Owner::House
                } else {
                    Owner::Customer(CUSTOMERS[rng.random_range(0..3)].into())
                },
                labels,
                expected_hashrate: SIZES[rng.random_range(0..SIZES.len())] * TH,
                measured_hashrate: Some(rng.random_range(0.0..100.0) * TH),
                health,
                maintenance: rng.random_bool(0.1),
                placement: Placement::spare(at(rng.random_range(0..10_000))),
            }
        })
        .collect();
    let contracts: Vec<ContractView> = (0..n_contracts)
        .map(|i| {
            let k = rng.random_range(0..=4.min(n_workers));
            let primaries: Vec<String> = (0..k)
                .map(|_| format!("w{:03}", rng.random_range(0..n_workers.max(1))))
                .collect();
            let selector = match rng.random_range(0..3) {
                0 => None,
                1 => Some(spare_label().into_iter().collect()),
                _ => Some(Selector::from(Expression::In(
                    "rack".into(),
                    ["a".to_owned()].into(),
                ))),
            };
            ContractView {
                name: format!("k{i}"),
                customer: CUSTOMERS[rng.random_range(0..3)].into(),
                mode: if rng.random_bool(0.5) {
                    Mode::MinerToMiner
                } else {
                    Mode::Threshold
                },
                active: rng.random_bool(0.9),
                priority: rng.random_range(0..3),
                sla_deficit: rng.random_range(0.0..0.1),
                primaries,
                contracted_hashrate: rng.random_range(1..6) as f64 * 100.0 * TH,
                tolerance: 0.1,
                spare_selector: selector,
                give_back: rng.random_bool(0.8),
                max_reassignments_per_hour: if rng.random_bool(0.5) {
                    None
                } else {
                    Some(rng.random_range(0..6))
                },
                reassignments_last_hour: rng.random_range(0..3),
                min_dwell: Duration::from_secs(if rng.random_bool(0.5) { 0 } else { 300 }),
            }
        })
        .collect();
    // Arbitrary (possibly inconsistent) current placements: the allocator must cope.
    for w in &mut workers {
        if n_contracts > 0 && rng.random_bool(0.4) {
            let c = rng.random_range(0..n_contracts);
            w.placement.contract = Some(format!("k{c}"));
            w.placement.role =
                [Role::Primary, Role::Substitute, Role::Benched][rng.random_range(0..3)];
            if rng.random_bool(0.5) {
                w.placement.covers = Some(format!("w{:03}", rng.random_range(0..n_workers)));
            }
        }
    }
    World {
        now,
        workers,
        contracts,
    }
}

fn sorted_conditions(a: &Allocation) -> BTreeMap<String, Vec<String>> {
    a.contracts
        .iter()
        .map(|(k, o)| {
            let mut v: Vec<String> = o.conditions.iter().map(|c| format!("{c:?}")).collect();
            v.sort();
            (k.clone(), v)
        })
        .collect()
}

/// Invariants every allocation must satisfy.
fn check_invariants(world: &World, a: &Allocation) -> Result<(), TestCaseError> {
    let workers: BTreeMap<&str, &WorkerView> =
        world.workers.iter().map(|w| (w.name.as_str(), w)).collect();
    let contracts: BTreeMap<&str, &ContractView> = world
        .contracts
        .iter()
        .map(|c| (c.name.as_str(), c))
        .collect();
    prop_assert_eq!(a.placements.len(), world.workers.len());
    let mut covered: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (name, p) in &a.placements {
        let w = workers[name.as_str()];
        match (&p.contract, p.role) {
            (None, Role::Spare) => {}
            (Some(c), role) => {
                prop_assert!(role != Role::Spare, "{name}: spare role inside {c}");
                let k = contracts.get(c.as_str()).copied();
                prop_assert!(
                    k.is_some_and(|k| k.active),
                    "{name} placed in inactive or unknown {c}"
                );
                let k = k.unwrap();
                // Owners: a customer's worker only ever serves that customer.
                if let Owner::Customer(o) = &w.owner {
                    prop_assert_eq!(o, &k.customer, "{} owned by {} serves {}", name, o, c);
                }
                match role {
                    Role::Primary | Role::Benched => {
                        prop_assert!(
                            k.primaries.contains(name),
                            "{name} is {role} of {c} but not listed"
                        );
                    }
                    Role::Substitute => {
                        prop_assert!(
                            !w.maintenance && !w.health.is_failed(),
                            "{name}: {:?} substitute",
                            w.health
                        );
                        prop_assert!(
                            k.spare_selector
                                .as_ref()
                                .is_none_or(|s| s.matches(&w.labels)),
                            "{name} outside selector of {c}"
                        );
                        if let Some(p) = &p.covers {
                            *covered.entry((c.clone(), p.clone())).or_default() += 1;
                        }
                    }
                    Role::Spare => unreachable!(),
                }
                if k.mode == Mode::MinerToMiner && role == Role::Substitute {
                    let covers = p.covers.as_deref().unwrap_or("");
                    prop_assert_eq!(
                        a.placements
                            .get(covers)
                            .map(|q| (q.contract.clone(), q.role)),
                        Some((Some(c.clone()), Role::Benched)),
                        "{} covers {}",
                        name,
                        covers
                    );
                }
            }
            (None, role) => prop_assert!(false, "{name}: {role} without contract"),
        }
    }
    // Every benched original has exactly one substitute.
    for (name, p) in &a.placements {
        if p.role == Role::Benched {
            let c = p.contract.clone().unwrap_or_default();
            prop_assert_eq!(
                covered.get(&(c, name.clone())).copied().unwrap_or(0),
                1,
                "benched {}",
                name
            );
        }
    }
    // Changes describe exactly the placements that moved.
    let moved: BTreeSet<&str> = world
        .workers
        .iter()
        .filter(|w| {
            let p = &a.placements[&w.name];
            (p.contract.as_ref(), p.role, p.covers.as_ref())
                != (
                    w.placement.contract.as_ref(),
                    w.placement.role,
                    w.placement.covers.as_ref(),
                )
        })
        .map(|w| w.name.as_str())
        .collect();
    let changed: BTreeSet<&str> = a
        .changes
        .iter()
        .map(|c: &Change| c.worker.as_str())
        .collect();
    prop_assert_eq!(moved, changed);
    prop_assert_eq!(a.changes.len(), changed_len(a));
    Ok(())
}

fn changed_len(a: &Allocation) -> usize {
    a.changes
        .iter()
        .map(|c| c.worker.as_str())
        .collect::<BTreeSet<_>>()
        .len()
}

/// A world where everyone is healthy, every listed worker serves its (single) contract, and
/// every Threshold contract is covered by its own workers.
fn healthy_settled_world(seed: u64, n_workers: usize, n_contracts: usize) -> World {
    let mut w = random_world(seed, n_workers, n_contracts);
    for x in &mut w.workers {
        x.health = Verdict::Healthy;
        x.maintenance = false;
        x.owner = Owner::House;
        x.placement = Placement::spare(at(0));
    }
    let mut taken = BTreeSet::new();
    for c in &mut w.contracts {
        c.primaries.retain(|p| taken.insert(p.clone()));
        c.active = true;
        let sum: f64 = c
            .primaries
            .iter()
            .map(|p| {
                w.workers
                    .iter()
                    .find(|x| &x.name == p)
                    .unwrap()
                    .expected_hashrate
            })
            .sum();
        c.contracted_hashrate = sum;
        for p in &c.primaries {
            w.workers
                .iter_mut()
                .find(|x| &x.name == p)
                .unwrap()
                .placement = Placement {
                contract: Some(c.name.clone()),
                role: Role::Primary,
                covers: None,
                since: at(0),
            };
        }
    }
    w
}

/// Fewest spares (by brute force) whose hashrate sum reaches `deficit`; None if all together
/// do not.
fn brute_force_min_spares(caps: &[f64], deficit: f64) -> Option<usize> {
    let n = caps.len();
    (0u32..(1 << n))
        .filter(|m| {
            (0..n)
                .filter(|i| m & (1 << i) != 0)
                .map(|i| caps[i])
                .sum::<f64>()
                >= deficit
        })
        .map(|m| m.count_ones() as usize)
        .min()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn same_world_same_allocation_in_any_input_order(seed in any::<u64>(), n in 1usize..40, m in 0usize..8) {
        let world = random_world(seed, n, m);
        let a = allocate(&world);
        prop_assert_eq!(&a, &allocate(&world));
        let mut shuffled = world.clone();
        let mut rng = SmallRng::seed_from_u64(seed ^ 0x5eed);
        shuffled.workers.shuffle(&mut rng);
        shuffled.contracts.shuffle(&mut rng);
        let b = allocate(&shuffled);
        prop_assert_eq!(&a.placements, &b.placements);
        prop_assert_eq!(&a.changes, &b.changes);
        prop_assert_eq!(sorted_conditions(&a), sorted_conditions(&b));
    }

    #[test]
    fn allocations_respect_owners_selectors_maintenance_and_exclusivity(seed in any::<u64>(), n in 1usize..40, m in 0usize..8) {
        let world = random_world(seed, n, m);
        let a = allocate(&world);
        check_invariants(&world, &a)?;
        // Newly lent workers are Healthy and not cordoned.
        for ch in &a.changes {
            if ch.to_role == Role::Substitute && ch.from_role != Role::Substitute {
                let w = world.workers.iter().find(|w| w.name == ch.worker).unwrap();
                prop_assert_eq!(w.health, Verdict::Healthy);
                prop_assert!(!w.maintenance);
            }
        }
    }

    #[test]
    fn applying_an_allocation_reaches_a_fixed_point(seed in any::<u64>(), n in 1usize..40, m in 0usize..8) {
        // From any (even inconsistent) start, the pass's own output is stable: running it again
        // on the world it produced (same instant, same health) moves nothing. No flapping, and
        // a restarted operator that reads back its placements changes nothing.
        let world = random_world(seed, n, m);
        let a = allocate(&world);
        let next = apply(&world, &a, world.now);
        let b = allocate(&next);
        check_invariants(&next, &b)?;
        prop_assert!(b.changes.is_empty(), "second pass moved: {:#?}", b.changes);
    }

    #[test]
    fn a_healthy_world_produces_no_changes(seed in any::<u64>(), n in 1usize..40, m in 0usize..8) {
        let world = healthy_settled_world(seed, n, m);
        let a = allocate(&world);
        prop_assert!(a.changes.is_empty(), "{:#?}", a.changes);
        prop_assert!(a.contracts.values().all(|o| o.conditions.is_empty()));
    }

    #[test]
    fn a_single_failure_makes_the_fewest_possible_changes(seed in any::<u64>(), n in 2usize..24, m in 1usize..5, pick in any::<prop::sample::Index>()) {
        let mut world = healthy_settled_world(seed, n, m);
        let listed: Vec<(usize, String)> = world.contracts.iter().enumerate().flat_map(|(i, c)| c.primaries.iter().map(move |p| (i, p.clone()))).collect();
        if listed.is_empty() {
            return Ok(());
        }
        let (ci, failed) = pick.get(&listed).clone();
        set_health(&mut world, &failed, Verdict::Dead);
        let c = world.contracts[ci].clone();
        let a = allocate(&world);
        check_invariants(&world, &a)?;
        // Eligible spares, independently of the allocator.
        let listed_names: BTreeSet<&str> = listed.iter().map(|(_, p)| p.as_str()).collect();
        let eligible: Vec<f64> = world.workers.iter().filter(|w| {
            !listed_names.contains(w.name.as_str()) && w.health == Verdict::Healthy && !w.maintenance
                && c.spare_selector.as_ref().is_none_or(|s| s.matches(&w.labels))
        }).map(|w| w.expected_hashrate).collect();
        let budget = c.max_reassignments_per_hour.map(|m| m.saturating_sub(c.reassignments_last_hour) as usize).unwrap_or(usize::MAX);
        match c.mode {
            Mode::MinerToMiner => {
                let expected = if !eligible.is_empty() && budget >= 1 { 2 } else { 0 };
                prop_assert_eq!(a.changes.len(), expected, "{:#?}", a.changes);
            }
            Mode::Threshold => {
                let delivered: f64 = c.primaries.iter().filter(|p| **p != failed).map(|p| world.workers.iter().find(|w| &w.name == p).unwrap().expected_hashrate).sum();
                let deficit = 0.9 * c.contracted_hashrate - delivered;
                let expected = if deficit <= 0.0 {
                    0
                } else if eligible.len() <= 16 {
                    brute_force_min_spares(&eligible, deficit).unwrap_or(eligible.len()).min(budget)
                } else {
                    return Ok(());
                };
                prop_assert_eq!(a.changes.len(), expected, "deficit {} from {:?}: {:#?}", deficit, eligible, a.changes);
            }
        }
    }
}
