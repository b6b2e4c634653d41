//! The operator↔hub contract: whatever the hub's own encoder writes on `/metrics`, the operator
//! reads back into the same facts (names from the hub's catalogue, label escapes, `_total`
//! families, histograms and `# EOF` skipped), for hand-picked and generated hub states.

use std::collections::BTreeMap;
use std::sync::Arc;

use hashsched_hub::facts::{
    AssignmentLabels, PoolFacts, ShareBuckets, ShareResult, WindowHashrate, WorkerFacts,
};
use hashsched_hub::metrics::{HubMetrics, Snapshot, SnapshotSource, reconnect, side};
use hashsched_operator::controller::exposition::{HubReport, hub_report, parse};
use proptest::prelude::*;

#[derive(Debug)]
struct Fixed(Snapshot);
impl SnapshotSource for Fixed {
    fn snapshot(&self) -> Snapshot {
        self.0.clone()
    }
}

fn render(s: &Snapshot) -> String {
    let m = HubMetrics::new(Arc::new(Fixed(s.clone())));
    // Hub-wide families with labels the parser must step over.
    m.protocol_error(side::MINER, "json");
    m.miner_reconnect(reconnect::SHUTDOWN);
    m.forward_latency.observe(0.001);
    m.render()
}

/// What the page can carry of `f` (the hub's change time is not on it; window share counts are
/// estimated and compared separately).
fn on_the_page(f: &WorkerFacts) -> WorkerFacts {
    let mut f = f.clone();
    f.last_change_unix = None;
    f.hashrate.sort_by_key(|w| w.window_seconds);
    for w in &mut f.hashrate {
        w.shares = 0;
    }
    f
}

fn pool_on_the_page(p: &PoolFacts) -> PoolFacts {
    let mut p = p.clone();
    p.last_failure = None;
    p.last_failure_unix = None;
    p
}

fn compare(snapshot: &Snapshot, got: &HubReport) {
    let mut want: Vec<WorkerFacts> = snapshot.workers.iter().map(on_the_page).collect();
    want.sort_by(|a, b| a.worker.cmp(&b.worker));
    let got_workers: Vec<WorkerFacts> = got.workers.iter().map(on_the_page).collect();
    assert_eq!(got_workers, want);
    let mut want_pools: Vec<PoolFacts> = snapshot.pools.iter().map(pool_on_the_page).collect();
    want_pools.sort_by(|a, b| a.pool.cmp(&b.pool));
    assert_eq!(got.pools, want_pools);
    assert_eq!(got.connections, snapshot.connections);
    assert_eq!(got.routing_generation, snapshot.routing_generation);
    assert_eq!(got.pending, snapshot.pending);
}

fn worker(name: &str) -> WorkerFacts {
    let mut shares = ShareBuckets::<u64>::default();
    let mut difficulty = ShareBuckets::<f64>::default();
    for (i, r) in ShareResult::ALL.iter().enumerate() {
        shares.add(*r, i as u64 * 3 + 1);
        difficulty.add(*r, (i as f64 * 3.0 + 1.0) * 0.125);
    }
    WorkerFacts {
        worker: name.into(),
        connected: true,
        shares,
        difficulty,
        pending: 2,
        hashrate: vec![
            WindowHashrate {
                window_seconds: 60,
                hashes_per_second: 1.25e12,
                shares: 17,
            },
            WindowHashrate {
                window_seconds: 900,
                hashes_per_second: 1.0e12,
                shares: 250,
            },
            WindowHashrate {
                window_seconds: 300,
                hashes_per_second: 1.1e12,
                shares: 80,
            },
        ],
        last_share_unix: Some(1_764_000_000.125),
        last_change_unix: Some(1_763_999_000.0),
        miner_difficulty: Some(4096.0),
        pool: Some("customer-a".into()),
        labels: AssignmentLabels {
            contract: Some("contract-a".into()),
            customer: Some("acme".into()),
            role: Some(hashsched_hub::routing::Role::Substitute),
        },
    }
}

fn pool(name: &str) -> PoolFacts {
    PoolFacts {
        pool: name.into(),
        up: true,
        sessions: 2,
        workers: 7,
        latency_seconds: Some(0.0125),
        difficulty: Some(65536.0),
        accepted: 100,
        rejected: 3,
        lost: 1,
        switches: 5,
        switches_by_reason: BTreeMap::from([("routing".into(), 2), ("failover_down".into(), 3)]),
        disconnects: 4,
        last_failure: Some("pool closed the connection".into()),
        last_failure_unix: Some(1.7e9),
    }
}

#[test]
fn reads_back_everything_the_hub_writes() {
    let mut odd = worker("acct.\"quoted\"\\back\nslash λ");
    odd.connected = false;
    odd.pool = None;
    odd.labels = AssignmentLabels::default();
    odd.miner_difficulty = None;
    odd.last_share_unix = None;
    odd.hashrate.clear();
    // Buckets that never happened get no series; counts of zero must read back as zero.
    odd.shares = ShareBuckets::default();
    odd.difficulty = ShareBuckets::default();
    let snapshot = Snapshot {
        workers: vec![worker("acct.w1"), odd, worker("acct.w0")],
        pools: vec![pool("house"), pool("customer-a")],
        connections: 42,
        routing_generation: 9,
        pending: 3,
    };
    let text = render(&snapshot);
    let samples = parse(&text).unwrap();
    let got = hub_report(&samples);
    compare(&snapshot, &got);
    // Window share counts are estimated from hashrate and the current difficulty.
    let w1 = got.workers.iter().find(|w| w.worker == "acct.w1").unwrap();
    let est = |secs: u64| {
        w1.hashrate
            .iter()
            .find(|w| w.window_seconds == secs)
            .unwrap()
            .shares
    };
    let exact = |h: f64, secs: f64| (h * secs / (4096.0 * 4_294_967_296.0)).round() as u64;
    assert_eq!(est(60), exact(1.25e12, 60.0));
    assert_eq!(est(300), exact(1.1e12, 300.0));
    assert!(est(60) > 0);
}

#[test]
fn an_empty_hub_reads_as_an_empty_report() {
    let s = Snapshot::default();
    let got = hub_report(&parse(&render(&s)).unwrap());
    compare(&s, &got);
    assert!(got.workers.is_empty() && got.pools.is_empty());
}

fn arb_name() -> impl Strategy<Value = String> {
    // Printable text with the characters label escaping must handle.
    proptest::string::string_regex("[a-zA-Z0-9._\"\\\\\n λ{}=,#-]{1,24}").unwrap()
}

fn arb_float() -> impl Strategy<Value = f64> {
    prop_oneof![Just(0.0), 1e-9..1e18f64, Just(0.1), Just(1e300)]
}

prop_compose! {
    fn arb_worker()(
        name in arb_name(),
        connected in any::<bool>(),
        counts in proptest::collection::vec(0u64..(1u64 << 52), ShareResult::ALL.len()),
        diffs in proptest::collection::vec(arb_float(), ShareResult::ALL.len()),
        pending in 0u64..1_000_000,
        windows in proptest::collection::btree_map(1u64..100_000, arb_float(), 0..4),
        last in proptest::option::of(1e9..2e9f64),
        difficulty in proptest::option::of(1e-9..1e12f64),
        pool in proptest::option::of(arb_name()),
        contract in proptest::option::of(arb_name()),
    ) -> WorkerFacts {
        let mut shares = ShareBuckets::<u64>::default();
        let mut difficulty_sums = ShareBuckets::<f64>::default();
        for (i, r) in ShareResult::ALL.iter().enumerate() {
            shares.add(*r, counts[i]);
            // No shares in a bucket means no difficulty either (what the hub keeps).
            difficulty_sums.add(*r, if counts[i] == 0 { 0.0 } else { diffs[i] });
        }
        WorkerFacts {
            worker: name,
            connected,
            shares,
            difficulty: difficulty_sums,
            pending,
            hashrate: windows
                .into_iter()
                .map(|(s, h)| WindowHashrate { window_seconds: s, hashes_per_second: h, shares: 0 })
                .collect(),
            last_share_unix: last,
            last_change_unix: None,
            miner_difficulty: difficulty,
            pool,
            labels: AssignmentLabels { contract, customer: None, role: Some(hashsched_hub::routing::Role::Primary) },
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn any_hub_state_round_trips(
        workers in proptest::collection::btree_map(arb_name(), arb_worker(), 0..6),
        connections in 0u64..1_000_000,
        generation in 0u64..1_000_000,
    ) {
        let workers: Vec<WorkerFacts> = workers
            .into_iter()
            .map(|(n, mut w)| { w.worker = n; w })
            .collect();
        let snapshot = Snapshot { workers, pools: vec![pool("p")], connections, routing_generation: generation, pending: 0 };
        let got = hub_report(&parse(&render(&snapshot)).unwrap());
        compare(&snapshot, &got);
    }
}
