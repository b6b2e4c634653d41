//! The `/metrics` encoder, and the hub's metric and label names under their old paths (they are
//! defined once in [`hashsched_contract::metric_names`], the one place the hub, operator, recording
//! rules and dashboards take them from, and re-exported here).
//!
//! Per-worker and per-pool series are not kept in long-lived metric families: they are encoded on
//! each scrape from the hub's own state ([`Snapshot`]), so a worker's series vanish exactly when it
//! leaves the hub's table and cannot drift from [`crate::facts`]. Hub-wide counters and the forward
//! latency histogram are ordinary `prometheus-client` metrics updated on the hot path.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

pub use hashsched_contract::metric_names::*;

use crate::facts::{PoolFacts, ShareResult, WorkerFacts};

fn family(exposed: &str) -> &str {
    exposed.strip_suffix("_total").unwrap_or(exposed)
}

/// What the per-worker / per-pool encoder reads on each scrape.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub workers: Vec<WorkerFacts>,
    pub pools: Vec<PoolFacts>,
    pub connections: u64,
    pub routing_generation: u64,
    pub pending: u64,
}

/// Source of [`Snapshot`]s (the hub's state).
pub trait SnapshotSource: Send + Sync + std::fmt::Debug + 'static {
    fn snapshot(&self) -> Snapshot;
}

/// Hub-wide metrics updated on the hot path, plus the registry that encodes everything.
#[derive(Debug)]
pub struct HubMetrics {
    registry: Registry,
    pub connections_total: Counter,
    pub connections_closed: Family<[(&'static str, &'static str); 1], Counter>,
    pub protocol_errors: Family<[(&'static str, &'static str); 2], Counter>,
    pub unattributed_submits: Family<[(&'static str, &'static str); 1], Counter>,
    pub miner_reconnects: Family<[(&'static str, &'static str); 1], Counter>,
    pub forward_latency: Histogram,
    pub switch_duration: Histogram,
}

impl HubMetrics {
    pub fn new(source: Arc<dyn SnapshotSource>) -> Self {
        Self::new_with(source, |_| {})
    }

    /// Like [`Self::new`], letting the caller register more metrics (e.g. routing updates).
    pub fn new_with(source: Arc<dyn SnapshotSource>, extra: impl FnOnce(&mut Registry)) -> Self {
        let mut registry = Registry::default();
        extra(&mut registry);
        let connections_total = Counter::default();
        registry.register(
            family(HUB_CONNECTIONS_TOTAL),
            "Accepted miner connections",
            connections_total.clone(),
        );
        let connections_closed = Family::default();
        registry.register(
            family(HUB_CONNECTIONS_CLOSED_TOTAL),
            "Miner connections refused or closed by the hub, by reason",
            connections_closed.clone(),
        );
        let protocol_errors = Family::default();
        registry.register(
            family(HUB_PROTOCOL_ERRORS_TOTAL),
            "Malformed or unexpected input from miners and pools",
            protocol_errors.clone(),
        );
        let unattributed_submits = Family::default();
        registry.register(
            family(HUB_UNATTRIBUTED_SUBMITS_TOTAL),
            "Submits that could not be attributed to an authorized worker",
            unattributed_submits.clone(),
        );
        // 50 µs .. ~1.6 s
        let forward_latency = Histogram::new(
            prometheus_client::metrics::histogram::exponential_buckets(50e-6, 2.0, 16),
        );
        registry.register(
            HUB_SHARE_FORWARD_LATENCY,
            "Time from reading a share from a miner to writing it to the pool",
            forward_latency.clone(),
        );
        let miner_reconnects = Family::default();
        registry.register(
            family(HUB_MINER_RECONNECTS_TOTAL),
            "client.reconnect sent to miners by the hub, by reason",
            miner_reconnects.clone(),
        );
        // 1 ms .. ~131 s: a move waits for the new pool's session (connect first, then cut over).
        let switch_duration = Histogram::new(
            prometheus_client::metrics::histogram::exponential_buckets(1e-3, 2.0, 18),
        );
        registry.register(
            HUB_SWITCH_DURATION,
            "Per moved miner: decision to move it to another pool until the new pool's first job is written to it",
            switch_duration.clone(),
        );
        // Every counter with a known label set exists from startup (at 0): a missing series
        // must never have to mean zero.
        for s in [side::MINER, side::POOL] {
            let kinds: &[&str] = if s == side::MINER {
                &protocol_error::MINER
            } else {
                &protocol_error::POOL
            };
            for k in kinds {
                let _ = protocol_errors.get_or_create(&[(label::SIDE, s), (label::KIND, *k)]);
            }
        }
        for r in unattributed::ALL {
            let _ = unattributed_submits.get_or_create(&[(label::REASON, r)]);
        }
        for r in reconnect::ALL {
            let _ = miner_reconnects.get_or_create(&[(label::REASON, r)]);
        }
        for r in COMMON_CLOSE_REASONS {
            let _ = connections_closed.get_or_create(&[(label::REASON, r)]);
        }
        registry.register_collector(Box::new(StateCollector { source }));
        Self {
            registry,
            connections_total,
            connections_closed,
            protocol_errors,
            unattributed_submits,
            miner_reconnects,
            forward_latency,
            switch_duration,
        }
    }

    pub fn protocol_error(&self, side: &'static str, kind: &'static str) {
        self.protocol_errors
            .get_or_create(&[(label::SIDE, side), (label::KIND, kind)])
            .inc();
    }

    pub fn connection_closed(&self, reason: &'static str) {
        self.connections_closed
            .get_or_create(&[(label::REASON, reason)])
            .inc();
    }

    pub fn unattributed_submit(&self, reason: &'static str) {
        self.unattributed_submits
            .get_or_create(&[(label::REASON, reason)])
            .inc();
    }

    /// The hub sent `client.reconnect` to a miner; `reason` from [`reconnect`].
    pub fn miner_reconnect(&self, reason: &'static str) {
        self.miner_reconnects
            .get_or_create(&[(label::REASON, reason)])
            .inc();
    }

    /// OpenMetrics text of everything.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            // Only a fmt::Write into a String: cannot fail in practice; never panic on scrape.
            out.clear();
        }
        out
    }
}

#[derive(Debug)]
struct StateCollector {
    source: Arc<dyn SnapshotSource>,
}

fn gauge<N>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl Iterator<Item = (Vec<(&'static str, String)>, N)>,
) -> Result<(), std::fmt::Error>
where
    ConstGauge<N>: EncodeMetric,
{
    let mut rows = rows.peekable();
    if rows.peek().is_none() {
        return Ok(());
    }
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in rows {
        let g = ConstGauge::new(v);
        g.encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn counter<N>(
    enc: &mut DescriptorEncoder,
    exposed: &str,
    help: &str,
    rows: impl Iterator<Item = (Vec<(&'static str, String)>, N)>,
) -> Result<(), std::fmt::Error>
where
    ConstCounter<N>: EncodeMetric,
{
    let mut rows = rows.peekable();
    if rows.peek().is_none() {
        return Ok(());
    }
    let mut m = enc.encode_descriptor(family(exposed), help, None, MetricType::Counter)?;
    for (labels, v) in rows {
        ConstCounter::new(v).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for StateCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = self.source.snapshot();
        let w = |f: &WorkerFacts| vec![(label::WORKER, f.worker.clone())];
        gauge(
            &mut enc,
            WORKER_CONNECTED,
            "1 when the worker has an authorized miner connection",
            s.workers.iter().map(|f| (w(f), i64::from(f.connected))),
        )?;
        // Only buckets that ever happened get a series (bounded: one per `ShareResult`).
        counter(
            &mut enc,
            WORKER_SHARES_TOTAL,
            "Shares per final bucket (conservation: every submitted share in exactly one)",
            s.workers.iter().flat_map(|f| {
                ShareResult::ALL.iter().filter_map(move |r| {
                    let n = f.shares.get(*r);
                    (n > 0 || *r == ShareResult::Accepted).then(|| {
                        (
                            vec![
                                (label::WORKER, f.worker.clone()),
                                (label::RESULT, r.label().to_owned()),
                            ],
                            n,
                        )
                    })
                })
            }),
        )?;
        counter(
            &mut enc,
            WORKER_SHARE_DIFFICULTY_TOTAL,
            "Sum of miner-facing share difficulty per final bucket",
            s.workers.iter().flat_map(|f| {
                ShareResult::ALL.iter().filter_map(move |r| {
                    let n = f.shares.get(*r);
                    (n > 0 || *r == ShareResult::Accepted).then(|| {
                        (
                            vec![
                                (label::WORKER, f.worker.clone()),
                                (label::RESULT, r.label().to_owned()),
                            ],
                            f.difficulty.get(*r),
                        )
                    })
                })
            }),
        )?;
        gauge(
            &mut enc,
            WORKER_SHARES_PENDING,
            "Forwarded shares waiting for the pool's verdict",
            s.workers.iter().map(|f| (w(f), to_i64(f.pending))),
        )?;
        gauge(
            &mut enc,
            WORKER_HASHRATE,
            "Hashrate from valid work (shares that prove work, stale by a job change included) over a window",
            s.workers.iter().flat_map(|f| {
                f.hashrate.iter().map(move |h| {
                    (
                        vec![
                            (label::WORKER, f.worker.clone()),
                            (label::WINDOW, window_label(h.window_seconds)),
                        ],
                        h.hashes_per_second,
                    )
                })
            }),
        )?;
        gauge(
            &mut enc,
            WORKER_LAST_SHARE,
            "Unix time of the last share of valid work",
            s.workers
                .iter()
                .filter_map(|f| f.last_share_unix.map(|t| (w(f), t))),
        )?;
        gauge(
            &mut enc,
            WORKER_DIFFICULTY,
            "Miner-facing difficulty",
            s.workers
                .iter()
                .filter_map(|f| f.miner_difficulty.map(|d| (w(f), d))),
        )?;
        gauge(
            &mut enc,
            WORKER_INFO,
            "Pool and assignment of the worker (value is always 1)",
            s.workers.iter().map(|f| {
                (
                    vec![
                        (label::WORKER, f.worker.clone()),
                        (label::POOL, f.pool.clone().unwrap_or_default()),
                        (
                            label::CONTRACT,
                            f.labels.contract.clone().unwrap_or_default(),
                        ),
                        (
                            label::CUSTOMER,
                            f.labels.customer.clone().unwrap_or_default(),
                        ),
                        (
                            label::ROLE,
                            f.labels.role.map(|r| r.as_str()).unwrap_or("").to_owned(),
                        ),
                    ],
                    1i64,
                )
            }),
        )?;

        let p = |f: &PoolFacts| vec![(label::POOL, f.pool.clone())];
        gauge(
            &mut enc,
            POOL_UP,
            "1 when at least one upstream session is authorized",
            s.pools.iter().map(|f| (p(f), i64::from(f.up))),
        )?;
        gauge(
            &mut enc,
            POOL_LATENCY,
            "Smoothed submit round-trip time",
            s.pools
                .iter()
                .filter_map(|f| f.latency_seconds.map(|l| (p(f), l))),
        )?;
        gauge(
            &mut enc,
            POOL_SESSIONS,
            "Upstream sessions",
            s.pools.iter().map(|f| (p(f), to_i64(f.sessions))),
        )?;
        gauge(
            &mut enc,
            POOL_WORKERS,
            "Workers whose shares go to this pool",
            s.pools.iter().map(|f| (p(f), to_i64(f.workers))),
        )?;
        gauge(
            &mut enc,
            POOL_DIFFICULTY,
            "Pool difficulty of the newest session",
            s.pools
                .iter()
                .filter_map(|f| f.difficulty.map(|d| (p(f), d))),
        )?;
        counter(
            &mut enc,
            POOL_SHARES_TOTAL,
            "Forwarded shares by pool verdict",
            s.pools.iter().flat_map(|f| {
                [
                    (result::ACCEPTED, f.accepted),
                    (result::REJECTED, f.rejected),
                    (result::LOST, f.lost),
                ]
                .into_iter()
                .map(move |(r, n)| {
                    (
                        vec![(label::POOL, f.pool.clone()), (label::RESULT, r.to_owned())],
                        n,
                    )
                })
            }),
        )?;
        counter(
            &mut enc,
            POOL_SWITCHES_TOTAL,
            "Miners moved onto this pool, by reason",
            s.pools.iter().flat_map(|f| {
                f.switches_by_reason.iter().map(move |(reason, n)| {
                    (
                        vec![
                            (label::POOL, f.pool.clone()),
                            (label::REASON, reason.clone()),
                        ],
                        *n,
                    )
                })
            }),
        )?;
        counter(
            &mut enc,
            POOL_DISCONNECTS_TOTAL,
            "Failed connection attempts and dropped upstream sessions",
            s.pools.iter().map(|f| (p(f), f.disconnects)),
        )?;

        gauge(
            &mut enc,
            HUB_CONNECTIONS,
            "Open miner connections",
            std::iter::once((Vec::new(), to_i64(s.connections))),
        )?;
        gauge(
            &mut enc,
            HUB_ROUTING_GENERATION,
            "Generation of the routing document in effect",
            std::iter::once((Vec::new(), to_i64(s.routing_generation))),
        )?;
        gauge(
            &mut enc,
            HUB_SHARES_PENDING,
            "Forwarded shares waiting for a pool verdict",
            std::iter::once((Vec::new(), to_i64(s.pending))),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::{AssignmentLabels, PoolFacts, ShareBuckets, WindowHashrate};

    #[derive(Debug)]
    struct Fixed(Snapshot);
    impl SnapshotSource for Fixed {
        fn snapshot(&self) -> Snapshot {
            self.0.clone()
        }
    }

    #[test]
    fn renders_worker_series_with_one_place_names() {
        let mut shares = ShareBuckets::<u64>::default();
        shares.add(ShareResult::Accepted, 3);
        shares.add(ShareResult::Stale, 1);
        let f = WorkerFacts {
            worker: "acct.w1".into(),
            connected: true,
            shares,
            difficulty: ShareBuckets::default(),
            pending: 0,
            hashrate: vec![WindowHashrate {
                window_seconds: 300,
                hashes_per_second: 5.0,
                shares: 3,
            }],
            last_share_unix: Some(100.0),
            last_change_unix: None,
            miner_difficulty: Some(8.0),
            pool: Some("p1".into()),
            labels: AssignmentLabels::default(),
        };
        let m = HubMetrics::new(Arc::new(Fixed(Snapshot {
            workers: vec![f],
            ..Default::default()
        })));
        m.protocol_error(side::MINER, "json");
        let text = m.render();
        assert!(text.contains(&format!(
            "{WORKER_SHARES_TOTAL}{{worker=\"acct.w1\",result=\"accepted\"}} 3"
        )));
        assert!(text.contains(&format!(
            "{WORKER_SHARES_TOTAL}{{worker=\"acct.w1\",result=\"stale\"}} 1"
        )));
        assert!(!text.contains("result=\"duplicate\""));
        assert!(text.contains(&format!(
            "{WORKER_HASHRATE}{{worker=\"acct.w1\",window=\"5m\"}} 5.0"
        )));
        assert!(text.contains(&format!(
            "{HUB_PROTOCOL_ERRORS_TOTAL}{{side=\"miner\",kind=\"json\"}} 1"
        )));
        assert!(text.contains(&format!("{HUB_SHARE_FORWARD_LATENCY}_bucket")));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn renders_switches_by_reason_reconnects_switch_duration_and_switch_stale() {
        let mut shares = ShareBuckets::<u64>::default();
        shares.add(ShareResult::SwitchStale, 2);
        let w = WorkerFacts {
            worker: "w".into(),
            connected: true,
            shares,
            difficulty: ShareBuckets::default(),
            pending: 0,
            hashrate: Vec::new(),
            last_share_unix: None,
            last_change_unix: None,
            miner_difficulty: None,
            pool: None,
            labels: AssignmentLabels::default(),
        };
        let p = PoolFacts {
            pool: "p2".into(),
            up: true,
            sessions: 1,
            workers: 1,
            latency_seconds: None,
            difficulty: None,
            accepted: 0,
            rejected: 0,
            lost: 0,
            switches: 3,
            switches_by_reason: [
                ("routing".to_owned(), 1),
                ("failover_dropped".to_owned(), 2),
            ]
            .into_iter()
            .collect(),
            disconnects: 0,
            last_failure: None,
            last_failure_unix: None,
        };
        let m = HubMetrics::new(Arc::new(Fixed(Snapshot {
            workers: vec![w],
            pools: vec![p],
            ..Default::default()
        })));
        m.miner_reconnect(reconnect::SHUTDOWN);
        m.switch_duration.observe(0.25);
        let text = m.render();
        for want in [
            format!("{POOL_SWITCHES_TOTAL}{{pool=\"p2\",reason=\"routing\"}} 1"),
            format!("{POOL_SWITCHES_TOTAL}{{pool=\"p2\",reason=\"failover_dropped\"}} 2"),
            format!("{HUB_MINER_RECONNECTS_TOTAL}{{reason=\"shutdown\"}} 1"),
            format!("{HUB_SWITCH_DURATION}_count 1"),
            format!("{HUB_SWITCH_DURATION}_bucket{{le=\"0.256\"}} 1"),
            format!("{WORKER_SHARES_TOTAL}{{worker=\"w\",result=\"switch_stale\"}} 2"),
        ] {
            assert!(text.contains(&want), "missing {want} in\n{text}");
        }
    }

    /// "Absent" never has to mean "zero": a hub that has seen nothing yet exports its counters
    /// with every known label set at 0.
    #[test]
    fn counters_are_present_at_zero_from_startup() {
        let m = HubMetrics::new(Arc::new(Fixed(Snapshot::default())));
        let text = m.render();
        let mut want = vec![format!("{HUB_CONNECTIONS_TOTAL} 0")];
        for r in reconnect::ALL {
            want.push(format!("{HUB_MINER_RECONNECTS_TOTAL}{{reason=\"{r}\"}} 0"));
        }
        for r in unattributed::ALL {
            want.push(format!(
                "{HUB_UNATTRIBUTED_SUBMITS_TOTAL}{{reason=\"{r}\"}} 0"
            ));
        }
        for k in protocol_error::MINER {
            want.push(format!(
                "{HUB_PROTOCOL_ERRORS_TOTAL}{{side=\"miner\",kind=\"{k}\"}} 0"
            ));
        }
        for k in protocol_error::POOL {
            want.push(format!(
                "{HUB_PROTOCOL_ERRORS_TOTAL}{{side=\"pool\",kind=\"{k}\"}} 0"
            ));
        }
        for r in COMMON_CLOSE_REASONS {
            want.push(format!(
                "{HUB_CONNECTIONS_CLOSED_TOTAL}{{reason=\"{r}\"}} 0"
            ));
        }
        for w in want {
            assert!(text.contains(&w), "missing {w} in:\n{text}");
        }
        // A pool's switch counters exist for every reason before any switch.
        let counters = crate::upstream::PoolCounters::default();
        let by_reason = counters.switches_by_reason();
        assert_eq!(by_reason.len(), crate::pool_health::SwitchReason::ALL.len());
        assert!(by_reason.values().all(|n| *n == 0));
    }
}
