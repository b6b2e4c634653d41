//! Helpers shared by the `routing_*` end-to-end tests: a hub started with a routing document over
//! simulated pools, routing documents built from those pools, and conservation checks that tie
//! what each miner saw to what the hub counted and what the pools accepted.

#![allow(dead_code)]

use std::path::PathBuf;

use hashsched_hub::config::{AdminConfig, HubConfig};
use hashsched_hub::facts::WorkerFacts;
use hashsched_hub::routing::{
    DefaultRoute, DurationSpec, FailoverPolicy, PasswordRef, PoolSpec, ROUTING_API_VERSION,
    RoutingDocument, UnknownWorkerPolicy, WorkerRoute,
};
use hashsched_hub::server::{Hub, HubHandle};
use hashsched_hub::sim::miner::{MinerStats, SimMiner};
use hashsched_hub::sim::pool::SimPool;
use hashsched_hub::vardiff::VardiffConfig;

/// Share difficulty used everywhere (pool and miner-facing): every share meets the pool target,
/// so every locally valid share is forwarded and the pools' counts can be compared exactly.
pub const D: f64 = 1e-7;
/// Pool account in every document: upstream worker names are `acme.<worker>`.
pub const ACCOUNT: &str = "acme";
pub const TOKEN: &str = "test-admin-token";

pub fn upstream(worker: &str) -> String {
    format!("{ACCOUNT}.{worker}")
}

/// A simulated pool for these tests: difficulty `D` and a job every 500 ms, like a live pool (a
/// pool that sends no job for `starvation` is failed, see [`fast_failover`]).
///
/// Its extranonce2 is 8 bytes, room for the hub's tail, a salt and the miners' 4 bytes: these
/// tests move miners between pools, and the ones about a smaller pool make it 4 bytes on purpose
/// (`hub_real_world` covers miners that start on a 4-byte pool).
pub fn live_pool(name: &str) -> hashsched_hub::sim::pool::PoolConfig {
    hashsched_hub::sim::pool::PoolConfig {
        name: name.into(),
        extranonce2_size: 8,
        job_interval: Some(std::time::Duration::from_millis(500)),
        ..hashsched_tests::test_pool(D)
    }
}

/// A pool entry pointing at a simulated pool.
pub fn pool_spec(name: &str, pool: &SimPool) -> PoolSpec {
    PoolSpec {
        name: name.into(),
        url: pool.url(),
        user: ACCOUNT.into(),
        worker_name_template: "{user}.{worker}".into(),
        password: Some(PasswordRef::public("x")),
        tls: None,
    }
}

/// Fast failover settings so the tests see every transition within seconds.
pub fn fast_failover() -> FailoverPolicy {
    FailoverPolicy {
        starvation: DurationSpec::from_secs(2),
        reject_ratio: 0.9,
        reject_window: 10,
        return_after: DurationSpec::from_secs(2),
        backoff_min: DurationSpec::from_millis(100),
        backoff_max: DurationSpec::from_secs(1),
        connect_timeout: DurationSpec::from_secs(2),
    }
}

/// A document over `pools` where each worker has its own ordered pool list.
pub fn document(
    generation: u64,
    pools: Vec<PoolSpec>,
    workers: &[(&str, &[&str])],
) -> RoutingDocument {
    RoutingDocument {
        api_version: ROUTING_API_VERSION.into(),
        generation,
        workers: workers
            .iter()
            .map(|(name, list)| WorkerRoute {
                name: (*name).into(),
                user: None,
                pools: Some(list.iter().map(|s| (*s).to_string()).collect()),
                assignment: None,
                expected_hashrate: None,
            })
            .collect(),
        default_route: pools.first().map(|p| DefaultRoute {
            pools: vec![p.name.clone()],
        }),
        pools,
        unknown_workers: UnknownWorkerPolicy::Reject,
        health: Default::default(),
        failover: fast_failover(),
    }
}

/// A running hub plus the files it reads.
pub struct TestHub {
    pub hub: HubHandle,
    pub dir: tempfile::TempDir,
}

impl TestHub {
    pub fn token_file(&self) -> PathBuf {
        self.dir.path().join("admin-token")
    }
}

/// Hub config for tests: fixed miner difficulty `D`, admin API with [`TOKEN`], short timeouts.
pub fn hub_config(dir: &tempfile::TempDir) -> HubConfig {
    let token = dir.path().join("admin-token");
    std::fs::write(&token, format!("{TOKEN}\n")).expect("write token");
    let mut cfg = HubConfig {
        listen: "127.0.0.1:0".into(),
        metrics: None,
        admin: Some(AdminConfig {
            listen: "127.0.0.1:0".into(),
            token_file: Some(token),
        }),
        vardiff: VardiffConfig {
            initial_difficulty: D,
            min_difficulty: D,
            max_difficulty: D,
            ..VardiffConfig::default()
        },
        ..HubConfig::default()
    };
    cfg.upstream.submit_timeout = DurationSpec::from_secs(5);
    cfg.upstream.late_share_grace = DurationSpec::from_secs(5);
    cfg
}

pub async fn start_hub(doc: RoutingDocument) -> TestHub {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = hub_config(&dir);
    cfg.routing = Some(doc);
    let hub = Hub::start(cfg).await.expect("hub starts");
    TestHub { hub, dir }
}

pub fn facts_of(hub: &HubHandle, worker: &str) -> Option<WorkerFacts> {
    hub.facts().into_iter().find(|f| f.worker == worker)
}

/// Waits until `worker` has at least `n` more accepted shares at `pool` than `since`.
pub async fn wait_accepted_at(pool: &SimPool, worker: &str, since: u64, n: u64) -> u64 {
    let up = upstream(worker);
    let got = hashsched_tests::wait_until(hashsched_tests::DEADLINE, || {
        let a = pool.worker(&up).accepted;
        (a >= since + n).then_some(a)
    })
    .await;
    match got {
        Some(a) => a,
        None => panic!(
            "{worker}: expected {n} more accepted shares at pool {} (had {since}); now {:?}",
            pool.config().name,
            pool.worker(&up)
        ),
    }
}

/// Stops the miners, lets every forwarded share get its verdict, then checks conservation:
/// each share the miner submitted is in exactly one hub bucket, the hub's accepted shares are
/// exactly the pools' accepted shares (none lost, none counted twice across a switch), the
/// miner's view agrees with the hub's, and no pool refused a share as job not found, duplicate
/// or low difficulty (none forwarded twice or to a pool that did not issue its job:
/// [`hashsched_tests::assert_no_misrouted_shares`]).
pub async fn assert_conservation(hub: &HubHandle, miners: &[&SimMiner], pools: &[&SimPool]) {
    for m in miners {
        m.stall();
    }
    for m in miners {
        let w = m.worker().to_string();
        let s: MinerStats = m
            .wait_for(hashsched_tests::DEADLINE, |s| s.in_flight == 0)
            .await
            .unwrap_or_else(|s| panic!("{w}: submits still unanswered: {s:?}"));
        let f = hashsched_tests::wait_until(hashsched_tests::DEADLINE, || {
            facts_of(hub, &w).filter(|f| f.pending == 0 && f.submitted() >= s.submitted - s.lost)
        })
        .await
        .unwrap_or_else(|| panic!("{w}: hub facts never settled: {:?}", facts_of(hub, &w)));
        assert!(s.is_conserved(), "{w}: miner stats not conserved: {s:?}");
        let at_pools: u64 = pools.iter().map(|p| p.worker(&upstream(&w)).accepted).sum();
        assert_eq!(
            f.shares.accepted, at_pools,
            "{w}: hub accepted {} but the pools accepted {at_pools} (lost or double counted)",
            f.shares.accepted
        );
        // Every share the miner got an answer for is in exactly one hub bucket.
        assert_eq!(
            f.submitted(),
            s.submitted - s.lost,
            "{w}: hub saw {} shares, miner submitted {} ({} lost on the wire): {f:?}",
            f.submitted(),
            s.submitted,
            s.lost
        );
        assert_eq!(
            s.accepted,
            f.shares.accepted + f.shares.below_target,
            "{w}: miner's accepted vs hub's accepted + below_target: {f:?}"
        );
    }
    for p in pools {
        hashsched_tests::assert_no_misrouted_shares(p);
    }
}

/// Waits until the miner got a job after `after_jobs` jobs (a job from the new pool).
pub async fn wait_jobs(m: &SimMiner, after_jobs: u64) -> MinerStats {
    m.wait_for(hashsched_tests::DEADLINE, |s| s.jobs_received > after_jobs)
        .await
        .unwrap_or_else(|s| panic!("{}: no new job: {s:?}", m.worker()))
}

/// Value of one sample in Prometheus text (`series` is the name with its labels, exactly as
/// exposed, e.g. `hashsched_hub_routing_generation` or `x_total{source="api",result="invalid"}`).
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| {
            let rest = l.strip_prefix(series)?;
            // An unlabelled series may be written `name{} value`.
            rest.strip_prefix(' ').or_else(|| rest.strip_prefix("{} "))
        })
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}
