//! routing-bench: how fast the hub moves miners between pools, against a baseline in the same run.
//!
//! Everything runs in this process over real TCP on 127.0.0.1: two simulated pools (real sha256d
//! share checks), a hub with an admin API, and simulated miners that really hash.
//!
//! - re-route: a routing document pushed over the admin API (HTTP, bearer token) moves every
//!   miner to the other pool; measured per miner from just before the push to (a) the first job
//!   of the new pool at the miner and (b) the first share the new pool accepted.
//! - pool death: the pool the miners are on closes its sockets and stops listening; measured to
//!   the first job from the backup at the miner and the first share the backup accepted.
//! - baseline: a fresh miner connecting straight to the pool (no hub): connect → first job,
//!   connect → first accepted share. That is what a miner-side failover (reconnect) costs at best.
//!
//! Targets (issue): re-route ≤ 100 ms to the first new-pool job at the miner; pool death → miners
//! on the backup within 2 s. Prints a table, then one JSON line last.
//!
//! Moves alternate between the same two pools, which send a job every 5 s: without
//! `--fresh-jobs` a miner often moves back to a pool job it already mined a moment ago, and a miner
//! that restarts its extranonce2 per job then re-finds the same shares (duplicates at the pool).
//! Run both ways: the difference is the cost of re-mined work on quick back-and-forth moves.
//!
//! `cargo run -p hashsched-hub --bin routing-bench -- [--fresh-jobs] [--miners 20]`

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use hashsched_hub::admin::client::push_routing;
use hashsched_hub::config::{AdminConfig, HubConfig};
use hashsched_hub::routing::{
    DefaultRoute, DurationSpec, FailoverPolicy, PasswordRef, PoolSpec, ROUTING_API_VERSION,
    RoutingDocument, UnknownWorkerPolicy, WorkerRoute,
};
use hashsched_hub::server::{Hub, HubHandle};
use hashsched_hub::share::HASHES_PER_DIFFICULTY;
use hashsched_hub::sim::miner::{MinerConfig, SimMiner};
use hashsched_hub::sim::pool::{PoolConfig, SimPool};
use hashsched_hub::vardiff::VardiffConfig;
use serde_json::json;

/// Share difficulty of pools and miners (tiny: the CPU miners find shares quickly).
const D: f64 = 1e-7;
const TOKEN: &str = "routing-bench-token";
const ACCOUNT: &str = "bench";
const DEADLINE: Duration = Duration::from_secs(30);

#[derive(Parser, Debug)]
#[command(about = "Re-route and pool-failover latency of the hub, with a direct-connect baseline")]
struct Args {
    /// Simulated miners behind the hub.
    #[arg(long, default_value_t = 20)]
    miners: usize,
    /// Shares per second each miner finds.
    #[arg(long, default_value_t = 20.0)]
    shares_per_sec: f64,
    /// Re-route rounds (alternating between the two pools).
    #[arg(long, default_value_t = 6)]
    reroute_rounds: usize,
    /// Pool-death rounds.
    #[arg(long, default_value_t = 3)]
    failover_rounds: usize,
    /// Baseline rounds (fresh miner straight to the pool).
    #[arg(long, default_value_t = 6)]
    baseline_rounds: usize,
    /// Have the target pool issue a new job 50 ms before each move, so miners never get a pool
    /// job they already mined before an earlier move (isolates the switch path from re-mined
    /// work; without it, a move back to a job already mined shows up as duplicates).
    #[arg(long)]
    fresh_jobs: bool,
}

fn pool_spec(name: &str, addr: SocketAddr) -> PoolSpec {
    PoolSpec {
        name: name.into(),
        url: format!("stratum+tcp://{addr}"),
        user: ACCOUNT.into(),
        worker_name_template: "{user}.{worker}".into(),
        password: Some(PasswordRef::public("x")),
        tls: None,
    }
}

fn worker_name(i: usize) -> String {
    format!("rig-{i:04}")
}

fn document(
    generation: u64,
    pools: &[(&str, SocketAddr)],
    miners: usize,
    order: &[&str],
) -> RoutingDocument {
    RoutingDocument {
        api_version: ROUTING_API_VERSION.into(),
        generation,
        pools: pools.iter().map(|(n, a)| pool_spec(n, *a)).collect(),
        workers: (0..miners)
            .map(|i| WorkerRoute {
                name: worker_name(i),
                user: None,
                pools: Some(order.iter().map(|s| (*s).to_string()).collect()),
                assignment: None,
                expected_hashrate: None,
            })
            .collect(),
        default_route: Some(DefaultRoute {
            pools: order.iter().map(|s| (*s).to_string()).collect(),
        }),
        unknown_workers: UnknownWorkerPolicy::Reject,
        health: Default::default(),
        failover: FailoverPolicy {
            starvation: DurationSpec::from_secs(60),
            return_after: DurationSpec::from_secs(1),
            backoff_min: DurationSpec::from_millis(50),
            backoff_max: DurationSpec::from_millis(500),
            ..FailoverPolicy::default()
        },
    }
}

fn pool_config(name: &str) -> PoolConfig {
    PoolConfig {
        name: name.into(),
        difficulty: D,
        // A new job every few seconds, like a real pool (a pool without jobs is starved out).
        job_interval: Some(Duration::from_secs(5)),
        record_shares: false,
        ..PoolConfig::default()
    }
}

fn miner_config(worker: String, shares_per_sec: f64) -> MinerConfig {
    MinerConfig {
        hashrate: Some(shares_per_sec * D * HASHES_PER_DIFFICULTY),
        tick: Duration::from_millis(5),
        record_shares: false,
        reconnect_delay: Some(Duration::from_millis(100)),
        ..MinerConfig::new(worker)
    }
}

/// Polls `cond` every millisecond until it holds; returns when it first held.
async fn when(deadline: Duration, mut cond: impl FnMut() -> bool) -> Option<Instant> {
    let end = Instant::now() + deadline;
    loop {
        if cond() {
            return Some(Instant::now());
        }
        if Instant::now() >= end {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Per-miner latencies of one move: (first job at miner, first accepted share at the new pool).
/// All miners are watched together every millisecond, so one slow miner does not delay the
/// observation of the others. The job time is the miner's own receive timestamp of the newest job
/// when a new job is first seen (pools send a job only every few seconds, so that is the first).
async fn measure_move(
    t0: Instant,
    miners: &[SimMiner],
    jobs_before: &[u64],
    to: &SimPool,
    accepted_before: &[u64],
) -> Result<Vec<(f64, f64)>> {
    let names: Vec<String> = miners
        .iter()
        .map(|m| format!("{ACCOUNT}.{}", m.worker()))
        .collect();
    let n = miners.len();
    let mut accepted_at: Vec<Option<Instant>> = vec![None; n];
    let mut job_at: Vec<Option<Instant>> = vec![None; n];
    let end = Instant::now() + DEADLINE;
    while accepted_at.iter().chain(&job_at).any(Option::is_none) {
        if Instant::now() >= end {
            bail!(
                "not every miner got a job and an accepted share at {} within {DEADLINE:?}",
                to.config().name
            );
        }
        let stats = to.stats();
        let now = Instant::now();
        for i in 0..n {
            let (Some(m), Some(name)) = (miners.get(i), names.get(i)) else {
                continue;
            };
            if let Some(slot) = accepted_at.get_mut(i)
                && slot.is_none()
                && stats.worker(name).accepted > accepted_before.get(i).copied().unwrap_or(0)
            {
                *slot = Some(now);
            }
            let jb = jobs_before.get(i).copied().unwrap_or(0);
            if let Some(slot) = job_at.get_mut(i)
                && slot.is_none()
                && let Some(Some(at)) =
                    m.with_stats(|s| (s.jobs_received > jb).then_some(s.last_job_at).flatten())
            {
                *slot = Some(at);
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(job_at
        .iter()
        .zip(&accepted_at)
        .map(|(j, a)| {
            let since =
                |x: &Option<Instant>| x.map_or(f64::NAN, |x| ms(x.saturating_duration_since(t0)));
            (since(j), since(a))
        })
        .collect())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn snapshot(miners: &[SimMiner], pool: &SimPool) -> (Vec<u64>, Vec<u64>) {
    let jobs = miners.iter().map(|m| m.stats().jobs_received).collect();
    let acc = miners
        .iter()
        .map(|m| pool.worker(&format!("{ACCOUNT}.{}", m.worker())).accepted)
        .collect();
    (jobs, acc)
}

/// Baseline: a fresh miner straight to `pool`: connect → first job, connect → first accepted.
async fn baseline(pool: &SimPool, round: usize, sps: f64) -> Result<(f64, f64)> {
    let name = format!("direct-{round}");
    let up = format!("{ACCOUNT}.{name}");
    let t0 = Instant::now();
    let m = SimMiner::spawn(pool.addr(), miner_config(up.clone(), sps));
    let mut job_at = None;
    let accepted_at = when(DEADLINE, || {
        if job_at.is_none() {
            job_at = m
                .with_stats(|s| (s.jobs_received > 0).then_some(s.last_job_at).flatten())
                .flatten();
        }
        job_at.is_some() && pool.worker(&up).accepted > 0
    })
    .await
    .context("baseline miner: no job and accepted share")?;
    let job_at = job_at.context("job time")?;
    m.die();
    Ok((
        ms(job_at.saturating_duration_since(t0)),
        ms(accepted_at.saturating_duration_since(t0)),
    ))
}

#[derive(Debug, Default)]
struct Summary {
    n: usize,
    p50: f64,
    p95: f64,
    max: f64,
}

fn summarize(mut v: Vec<f64>) -> Summary {
    if v.is_empty() {
        return Summary::default();
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let i = ((v.len() as f64 - 1.0) * q).round() as usize;
        v.get(i).copied().unwrap_or(f64::NAN)
    };
    Summary {
        n: v.len(),
        p50: at(0.5),
        p95: at(0.95),
        max: v.last().copied().unwrap_or(f64::NAN),
    }
}

fn js(s: &Summary) -> serde_json::Value {
    json!({ "n": s.n, "p50_ms": round(s.p50), "p95_ms": round(s.p95), "max_ms": round(s.max) })
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

async fn start_hub(doc: RoutingDocument, token: std::path::PathBuf) -> Result<HubHandle> {
    let mut cfg = HubConfig {
        listen: "127.0.0.1:0".into(),
        admin: Some(AdminConfig {
            listen: "127.0.0.1:0".into(),
            token_file: Some(token),
        }),
        routing: Some(doc),
        vardiff: VardiffConfig {
            initial_difficulty: D,
            min_difficulty: D,
            max_difficulty: D,
            ..VardiffConfig::default()
        },
        ..HubConfig::default()
    };
    cfg.upstream.submit_timeout = DurationSpec::from_secs(5);
    Ok(Hub::start(cfg).await?)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .init();
    if args.miners == 0 {
        bail!("--miners must be at least 1");
    }

    let mut a = SimPool::start(pool_config("a")).await?;
    let b = SimPool::start(pool_config("b")).await?;
    let (a_addr, b_addr) = (a.addr(), b.addr());
    let pools = [("a", a_addr), ("b", b_addr)];
    let token = std::env::temp_dir().join(format!("routing-bench-token-{}", std::process::id()));
    std::fs::write(&token, TOKEN)?;
    let mut generation = 1;
    let hub = start_hub(
        document(generation, &pools, args.miners, &["a", "b"]),
        token.clone(),
    )
    .await?;
    let admin = hub.admin_addr().context("admin API")?;
    let miners: Vec<SimMiner> = (0..args.miners)
        .map(|i| {
            SimMiner::spawn(
                hub.stratum_addr(),
                miner_config(worker_name(i), args.shares_per_sec),
            )
        })
        .collect();
    for m in &miners {
        let up = format!("{ACCOUNT}.{}", m.worker());
        when(DEADLINE, || a.worker(&up).accepted > 0)
            .await
            .with_context(|| format!("{} never mined on pool a", m.worker()))?;
    }
    eprintln!("{} miners mining on pool a through the hub", args.miners);

    // --- re-route rounds --------------------------------------------------------------------
    let (mut rr_job, mut rr_acc) = (Vec::new(), Vec::new());
    let mut on_a = true;
    for round in 0..args.reroute_rounds {
        let (to, order) = if on_a {
            (&b, ["b", "a"])
        } else {
            (&a, ["a", "b"])
        };
        if args.fresh_jobs {
            to.new_job(false);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (jobs, acc) = snapshot(&miners, to);
        generation += 1;
        let body = serde_yaml::to_string(&document(generation, &pools, args.miners, &order))?;
        let t0 = Instant::now();
        let r = push_routing(admin, TOKEN, body.as_bytes()).await?;
        if r.status != 200 {
            bail!("routing push refused: {} {}", r.status, r.body);
        }
        let push_ms = ms(t0.elapsed());
        let v = measure_move(t0, &miners, &jobs, to, &acc).await?;
        let worst = v.iter().map(|x| x.0).fold(0.0, f64::max);
        eprintln!(
            "re-route round {round} → {}: push answered in {push_ms:.2} ms, slowest first job {worst:.2} ms",
            to.config().name
        );
        for (j, s) in v {
            rr_job.push(j);
            rr_acc.push(s);
        }
        on_a = !on_a;
    }
    // Make sure everyone is on a, with a then b as the order, before the death rounds.
    if !on_a {
        generation += 1;
        let body = serde_yaml::to_string(&document(generation, &pools, args.miners, &["a", "b"]))?;
        push_routing(admin, TOKEN, body.as_bytes()).await?;
    }

    // --- pool death rounds --------------------------------------------------------------------
    let (mut fo_job, mut fo_acc) = (Vec::new(), Vec::new());
    for round in 0..args.failover_rounds {
        // Everyone on a (after a restart, wait for the return to the preferred pool).
        for m in &miners {
            let up = format!("{ACCOUNT}.{}", m.worker());
            let before = a.worker(&up).accepted;
            when(DEADLINE, || a.worker(&up).accepted > before)
                .await
                .with_context(|| format!("{} not back on pool a", m.worker()))?;
        }
        if args.fresh_jobs {
            b.new_job(false);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (jobs, acc) = snapshot(&miners, &b);
        let t0 = Instant::now();
        a.shutdown();
        let v = measure_move(t0, &miners, &jobs, &b, &acc).await?;
        let worst = v.iter().map(|x| x.0).fold(0.0, f64::max);
        eprintln!(
            "pool death round {round}: all {} miners on the backup, slowest first job {worst:.2} ms",
            v.len()
        );
        for (j, s) in v {
            fo_job.push(j);
            fo_acc.push(s);
        }
        // Restart a on the same port; the hub returns after `returnAfter`.
        let restarted = loop {
            match SimPool::start_on(a_addr, pool_config("a")).await {
                Ok(p) => break p,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        a = restarted;
    }

    // --- baseline ---------------------------------------------------------------------------
    let (mut bl_job, mut bl_acc) = (Vec::new(), Vec::new());
    for round in 0..args.baseline_rounds {
        let (j, s) = baseline(&b, round, args.shares_per_sec).await?;
        bl_job.push(j);
        bl_acc.push(s);
    }

    let rows = [
        (
            "re-route: push → first new-pool job at miner",
            summarize(rr_job),
        ),
        (
            "re-route: push → first accepted share at new pool",
            summarize(rr_acc),
        ),
        ("pool death → first backup job at miner", summarize(fo_job)),
        (
            "pool death → first accepted share at backup",
            summarize(fo_acc),
        ),
        (
            "baseline: fresh connect → first job (direct)",
            summarize(bl_job),
        ),
        (
            "baseline: fresh connect → first accepted (direct)",
            summarize(bl_acc),
        ),
    ];
    println!(
        "{:<52} {:>5} {:>10} {:>10} {:>10}",
        "measurement", "n", "p50 ms", "p95 ms", "max ms"
    );
    for (name, s) in &rows {
        println!(
            "{name:<52} {:>5} {:>10.2} {:>10.2} {:>10.2}",
            s.n, s.p50, s.p95, s.max
        );
    }
    let [rr_j, rr_a, fo_j, fo_a, bl_j, bl_a] = &rows;
    let reroute_ok = rr_j.1.max <= 100.0;
    let failover_ok = fo_j.1.max <= 2000.0;
    println!(
        "targets: re-route max {:.2} ms ≤ 100 ms: {}; pool death max {:.2} ms ≤ 2000 ms: {}",
        rr_j.1.max,
        if reroute_ok { "met" } else { "MISSED" },
        fo_j.1.max,
        if failover_ok { "met" } else { "MISSED" }
    );
    let ratio = |x: &Summary, base: &Summary| {
        if base.p50 > 0.0 {
            round(x.p50 / base.p50)
        } else {
            f64::NAN
        }
    };
    println!(
        "{}",
        json!({
            "bench": "routing",
            "fresh_jobs": args.fresh_jobs,
            "miners": args.miners,
            "shares_per_sec": args.shares_per_sec,
            "reroute_first_job": js(&rr_j.1),
            "reroute_first_accepted": js(&rr_a.1),
            "pool_death_first_job": js(&fo_j.1),
            "pool_death_first_accepted": js(&fo_a.1),
            "baseline_first_job": js(&bl_j.1),
            "baseline_first_accepted": js(&bl_a.1),
            "reroute_first_accepted_vs_baseline_p50": ratio(&rr_a.1, &bl_a.1),
            "pool_death_first_accepted_vs_baseline_p50": ratio(&fo_a.1, &bl_a.1),
            "target_reroute_100ms": reroute_ok,
            "target_pool_death_2s": failover_ok,
        })
    );
    drop(miners);
    hub.shutdown().await;
    let _ = std::fs::remove_file(&token);
    Ok(())
}
