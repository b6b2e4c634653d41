//! `hashsched demo`: the whole product in one command, no cluster, no miners, no pools.
//!
//! Simulated pools (one house pool, acme's primary and backup, borealis's; each validates every
//! share with sha256d) and twelve simulated miners that really hash, run against local mode on
//! the manifests of `examples/demo/` (embedded; pool URLs pointed at the simulators). A scripted
//! story then breaks things — a rented miner dies and returns, a miner degrades to half speed, a
//! customer's primary pool dies and recovers — and measures from the status how long detection
//! and restoration took. It ends with a [`summary::Summary`].

pub mod examples;
pub mod live;
pub mod story;
pub mod summary;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hashsched_contract::routing::{DurationSpec, FailoverPolicy};
use hashsched_hub::sim::miner::{MinerConfig, SimMiner};
use hashsched_hub::sim::pool::{PoolConfig, SimPool};
use jiff::Timestamp;

use crate::local::runner::{HubTuning, LocalError, LocalOptions, Runner};
use crate::local::store::StatusDocument;
use story::{Cast, IncidentKind, IncidentReport};
use summary::{PoolShares, Summary};

/// Share difficulty of the simulated pools: about one forwarded share per second per miner at
/// 200 kH/s (the hub validates four a second and forwards those that meet the pool's target).
const POOL_DIFFICULTY: f64 = 5e-5;
/// Longest warm-up before the story starts anyway.
const WARM_UP_MAX: Duration = Duration::from_secs(30);

/// How the demo shows progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveView {
    /// Redraw a full table each second (a terminal).
    Redraw,
    /// One line per second and per story event (a pipe or a file).
    Lines,
    /// Nothing (tests).
    Quiet,
}

/// Demo settings.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Upper bound of the whole run (warm-up included).
    pub duration: Duration,
    pub view: LiveView,
}

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot start a simulated pool: {0}")]
    Pool(std::io::Error),
    #[error("cannot write the demo manifests: {0}")]
    Manifests(std::io::Error),
    #[error(transparent)]
    Local(#[from] LocalError),
}

/// When each incident is injected, relative to the end of warm-up and to the other incidents.
fn due(kind: IncidentKind, story: Duration, reports: &BTreeMap<IncidentKind, Inc>) -> bool {
    let restored_for = |k: IncidentKind| -> Option<Duration> {
        let i = reports.get(&k)?;
        let at = i.restored_at?;
        Some(at.elapsed())
    };
    let injected_for =
        |k: IncidentKind| -> Option<Duration> { reports.get(&k)?.injected_at.map(|t| t.elapsed()) };
    let s = Duration::from_secs;
    match kind {
        IncidentKind::MinerDies => story >= s(2),
        IncidentKind::MinerDegrades => story >= s(4),
        IncidentKind::MinerReturns => {
            restored_for(IncidentKind::MinerDies).is_some_and(|d| d >= s(5)) && story >= s(20)
                || injected_for(IncidentKind::MinerDies).is_some_and(|d| d >= s(40))
        }
        IncidentKind::PoolDies => {
            restored_for(IncidentKind::MinerReturns).is_some_and(|d| d >= s(3)) || story >= s(60)
        }
        IncidentKind::PoolRecovers => {
            restored_for(IncidentKind::PoolDies).is_some_and(|d| d >= s(8))
                || injected_for(IncidentKind::PoolDies).is_some_and(|d| d >= s(20))
        }
    }
}

struct Inc {
    report: IncidentReport,
    injected_at: Option<Instant>,
    restored_at: Option<Instant>,
}

/// CPU seconds (user + system) this process used so far, from `/proc/self/stat` (Linux).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line: 12 and 13 after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // USER_HZ is 100 on every Linux architecture that matters.
    Some((utime + stime) / 100.0)
}

/// The hub's pool failover, compressed like the rest of the story: a failed pool is retried
/// quickly and workers go back after 10 s of health instead of 30 s.
fn demo_failover() -> FailoverPolicy {
    FailoverPolicy {
        return_after: DurationSpec::from_secs(10),
        backoff_min: DurationSpec::from_millis(250),
        backoff_max: DurationSpec::from_secs(2),
        connect_timeout: DurationSpec::from_secs(2),
        starvation: DurationSpec::from_secs(30),
        ..FailoverPolicy::default()
    }
}

fn print_now(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// Runs the demo and returns its summary (whether or not every incident was handled).
pub async fn run(opts: DemoOptions) -> Result<Summary, DemoError> {
    let started = Instant::now();
    let cpu_start = cpu_seconds();
    let cast = Cast::default();

    // Pools first: the hub connects to them as soon as it starts.
    let mut pools: BTreeMap<String, SimPool> = BTreeMap::new();
    for (name, _) in examples::POOLS {
        let password = match *name {
            "acme-primary" => Some("acme-demo-primary".to_owned()),
            "acme-backup" => Some("acme-demo-backup".to_owned()),
            _ => None,
        };
        let pool = SimPool::start(PoolConfig {
            name: (*name).to_owned(),
            difficulty: POOL_DIFFICULTY,
            password,
            record_shares: false,
            ..PoolConfig::default()
        })
        .await
        .map_err(DemoError::Pool)?;
        pools.insert((*name).to_owned(), pool);
    }
    let sources = examples::sources(|name| pools.get(name).map(SimPool::url));
    let dir = tempfile::Builder::new()
        .prefix("hashsched-demo-")
        .tempdir()
        .map_err(DemoError::Manifests)?;
    for s in &sources {
        let file = PathBuf::from(&s.name);
        let file_name = file.file_name().unwrap_or_default();
        std::fs::write(dir.path().join(file_name), &s.text).map_err(DemoError::Manifests)?;
    }
    let loaded = crate::local::load::load(&sources).map_err(LocalError::from)?;

    let local = Runner::start(LocalOptions {
        manifests: dir.path().to_owned(),
        hub: None,
        listen: Some("127.0.0.1:0".into()),
        http: Some("127.0.0.1:0".into()),
        serve_http: true,
        tick: Duration::from_millis(500),
        persist: true,
        tuning: HubTuning {
            failover: Some(demo_failover()),
            ..HubTuning::default()
        },
    })
    .await?;
    let hub_addr = local.stratum_addr();
    let miner_config = |name: &str, hashrate: f64| MinerConfig {
        hashrate: Some(hashrate),
        record_shares: false,
        ..MinerConfig::new(name)
    };
    let expected: BTreeMap<String, f64> = loaded
        .workers
        .iter()
        .filter_map(|w| Some((w.metadata.name.clone()?, w.spec.expected_hashrate.as_f64())))
        .collect();
    let mut miners: BTreeMap<String, SimMiner> = expected
        .iter()
        .map(|(name, h)| {
            (
                name.clone(),
                SimMiner::spawn(hub_addr, miner_config(name, *h)),
            )
        })
        .collect();
    let mut retired: Vec<SimMiner> = Vec::new();
    if opts.view != LiveView::Quiet {
        print_now(&format!(
            "hashsched demo: hub on {hub_addr}, status on http://{}/status, {} simulated miners, \
             {} simulated pools (manifests: examples/demo/)\n",
            local
                .http_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|| "-".into()),
            miners.len(),
            pools.len()
        ));
    }

    let mut incidents: BTreeMap<IncidentKind, Inc> = IncidentKind::ALL
        .iter()
        .map(|k| {
            (
                *k,
                Inc {
                    report: IncidentReport::new(*k, &cast),
                    injected_at: None,
                    restored_at: None,
                },
            )
        })
        .collect();
    let mut story_start: Option<Instant> = None;
    let mut last_print = Instant::now()
        .checked_sub(Duration::from_secs(2))
        .unwrap_or_else(Instant::now);
    let mut finished_at: Option<Instant> = None;
    let mut poll = tokio::time::interval(Duration::from_millis(250));
    loop {
        poll.tick().await;
        let elapsed = started.elapsed();
        let doc = local.status();
        let mut events: Vec<String> = Vec::new();

        // Warm-up: every miner connected and judged Healthy (or long enough).
        if story_start.is_none() {
            let warm = !doc.workers.is_empty() && doc.workers.iter().all(|w| w.phase == "Healthy");
            if warm || elapsed >= WARM_UP_MAX {
                story_start = Some(Instant::now());
                events.push(if warm {
                    format!(
                        "warm-up done: all {} miners Healthy; the story begins",
                        doc.workers.len()
                    )
                } else {
                    "warm-up took too long; the story begins anyway".into()
                });
            }
        }

        if let Some(t0) = story_start {
            let story = t0.elapsed();
            for kind in IncidentKind::ALL {
                let ready = incidents
                    .get(&kind)
                    .is_some_and(|i| i.injected_at.is_none())
                    && due(kind, story, &incidents);
                if !ready {
                    continue;
                }
                inject(
                    kind,
                    &cast,
                    &mut miners,
                    &mut retired,
                    &pools,
                    hub_addr,
                    &expected,
                    &miner_config,
                );
                if let Some(i) = incidents.get_mut(&kind) {
                    i.injected_at = Some(Instant::now());
                    i.report.injected_at_seconds = Some(story.as_secs_f64());
                    events.push(format!("INJECT {}: {}", kind.name(), i.report.description));
                }
            }
            for i in incidents.values_mut() {
                let Some(at) = i.injected_at else { continue };
                let was = (
                    i.report.detected_after_seconds,
                    i.report.restored_after_seconds,
                );
                if i.report.observe(&cast, &doc, at.elapsed()) {
                    if was.0.is_none()
                        && let Some(d) = i.report.detected_after_seconds
                    {
                        events.push(format!("DETECTED {} after {d:.1}s", i.report.name));
                    }
                    if was.1.is_none()
                        && let Some(r) = i.report.restored_after_seconds
                    {
                        i.restored_at = Some(Instant::now());
                        events.push(format!(
                            "RESTORED {} after {r:.1}s: {}",
                            i.report.name, i.report.outcome
                        ));
                    }
                }
            }
        }

        let all_done = incidents.values().all(|i| i.report.handled());
        if all_done && finished_at.is_none() {
            finished_at = Some(Instant::now());
        }
        match opts.view {
            LiveView::Quiet => {}
            LiveView::Lines => {
                for e in &events {
                    print_now(&format!("[{:>4.0}s] {e}\n", elapsed.as_secs_f64()));
                }
                if last_print.elapsed() >= Duration::from_secs(1) {
                    last_print = Instant::now();
                    print_now(&format!("{}\n", live::line(elapsed.as_secs_f64(), &doc)));
                }
            }
            LiveView::Redraw => {
                if last_print.elapsed() >= Duration::from_secs(1) || !events.is_empty() {
                    last_print = Instant::now();
                    let stage = match (story_start, all_done) {
                        (None, _) => "warming up (miners connecting, vardiff settling)",
                        (Some(_), false) => "story running",
                        (Some(_), true) => "story complete",
                    };
                    let reports: Vec<IncidentReport> =
                        incidents.values().map(|i| i.report.clone()).collect();
                    print_now(&format!(
                        "{}{}",
                        live::CLEAR,
                        live::frame(
                            elapsed.as_secs_f64(),
                            stage,
                            &doc,
                            &reports,
                            Timestamp::now()
                        )
                    ));
                }
            }
        }
        // Linger a little after the last restore so the final state is visible.
        if finished_at.is_some_and(|f| f.elapsed() >= Duration::from_secs(3))
            || elapsed >= opts.duration
        {
            break;
        }
    }

    let doc: StatusDocument = (*local.status()).clone();
    let miner_reconnects: u64 = miners
        .values()
        .chain(retired.iter())
        .map(|m| {
            m.with_stats(|s| s.connections.saturating_sub(1))
                .unwrap_or(0)
        })
        .sum();
    let pool_shares = pools
        .iter()
        .map(|(name, p)| {
            let s = p.stats();
            PoolShares {
                pool: name.clone(),
                accepted: s.accepted_total(),
                rejected: s.rejected_total(),
                rejected_by_code: s.workers.values().fold(BTreeMap::new(), |mut acc, w| {
                    for (code, n) in &w.rejected {
                        *acc.entry(*code).or_insert(0) += n;
                    }
                    acc
                }),
                connections: s.connections_seen,
            }
        })
        .collect();
    let duration = started.elapsed().as_secs_f64();
    let cpu_cores = match (cpu_start, cpu_seconds()) {
        (Some(a), Some(b)) if duration > 0.0 => Some((b - a) / duration),
        _ => None,
    };
    let reports: Vec<IncidentReport> = IncidentKind::ALL
        .iter()
        .filter_map(|k| incidents.get(k).map(|i| i.report.clone()))
        .collect();
    let costs = summary::incident_costs(
        &cast,
        &reports,
        &|w: &str| expected.get(w).copied().unwrap_or(0.0),
        story_start.map_or(0.0, |t| t.elapsed().as_secs_f64()),
    );
    let accounts = summary::accounts(&doc.contracts, &costs);
    let summary = Summary {
        duration_seconds: duration,
        all_handled: reports.iter().all(IncidentReport::handled),
        miners: expected.len(),
        incidents: reports,
        contracts: doc.contracts.clone(),
        accounts,
        pools: pool_shares,
        miner_reconnects,
        cpu_cores,
    };
    drop(miners);
    drop(retired);
    local.shutdown().await;
    drop(pools);
    Ok(summary)
}

/// Makes `kind` happen.
#[allow(clippy::too_many_arguments)]
fn inject(
    kind: IncidentKind,
    cast: &Cast,
    miners: &mut BTreeMap<String, SimMiner>,
    retired: &mut Vec<SimMiner>,
    pools: &BTreeMap<String, SimPool>,
    hub: std::net::SocketAddr,
    expected: &BTreeMap<String, f64>,
    config: &dyn Fn(&str, f64) -> MinerConfig,
) {
    match kind {
        IncidentKind::MinerDies => {
            if let Some(m) = miners.get(&cast.rented) {
                m.die();
            }
        }
        IncidentKind::MinerDegrades => {
            if let (Some(m), Some(h)) = (miners.get(&cast.degrading), expected.get(&cast.degrading))
            {
                m.set_hashrate(Some(h / 2.0));
            }
        }
        IncidentKind::MinerReturns => {
            let h = expected.get(&cast.rented).copied().unwrap_or(200e3);
            let fresh = SimMiner::spawn(hub, config(&cast.rented, h));
            if let Some(old) = miners.insert(cast.rented.clone(), fresh) {
                retired.push(old);
            }
        }
        IncidentKind::PoolDies => {
            if let Some(p) = pools.get(&cast.primary_pool) {
                p.set_refuse_connections(true);
                p.close_all_sessions();
            }
        }
        IncidentKind::PoolRecovers => {
            if let Some(p) = pools.get(&cast.primary_pool) {
                p.set_refuse_connections(false);
            }
        }
    }
}
