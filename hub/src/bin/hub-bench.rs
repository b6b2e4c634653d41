//! `hub-bench`: measures the stratum hub against a baseline of the same simulated miners mining
//! straight on the same simulated pool, in one run.
//!
//! Three processes, so each side's memory and CPU are its own: this process runs the simulated
//! miners; a child runs the simulated pool (`hub-bench serve-pool`); another child runs the hub
//! (`hub-bench serve-hub`). Children talk to the parent over stdin/stdout (one command per line).
//!
//! Figures (targets on 2 cores in brackets):
//! - throughput: shares/s validated by the hub, forwarded and accepted by the pool (≥ 50,000);
//! - latency: submit → answer at 5,000 shares/s from 1,000 miners, p50/p99, added by the hub
//!   (≤ 1 ms at p99);
//! - memory: hub RSS per connected miner (≤ 16 KiB at 10,000 miners);
//! - broadcast: a new job reaching every miner (≤ 50 ms at 10,000 miners). Measured with light
//!   receivers (raw sockets that only timestamp `mining.notify` lines) so that the figure is the
//!   pool's and the hub's, not the cost of 10,000 simulated miners parsing jobs; the same figure
//!   with full simulated miners is kept alongside. A third sender, the floor (`serve-floor`: one
//!   fixed line written to every socket, nothing else), shows what the machine itself allows.
//!
//! The figures print as a table and, last, as one JSON line. `--quick` keeps the run under a
//! minute.

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, Subcommand};
use hashsched_hub::share::HASHES_PER_DIFFICULTY;
use hashsched_hub::sim::miner::{MinerConfig, SimMiner};
use hashsched_hub::sim::pool::{PoolConfig, SimPool};
use serde_json::json;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// Difficulty at which every hash is a share (the target saturates at 2^256 − 1).
const EVERY_HASH: f64 = 1e-12;
/// Difficulty for the latency phase: about one hash in four is a share.
const LATENCY_DIFFICULTY: f64 = 1e-9;

#[derive(Parser, Debug)]
#[command(about = "Benchmark the stratum hub against miners mining straight on the pool")]
struct Args {
    /// A run under a minute (fewer miners, shorter phases).
    #[arg(long)]
    quick: bool,
    /// Only these phases (comma separated: throughput,latency,memory,broadcast).
    #[arg(long, value_delimiter = ',')]
    phases: Vec<String>,
    /// Miners for the memory and broadcast phases (default 10,000).
    #[arg(long)]
    idle_miners: Option<usize>,
    /// Measure only the hub, no direct baseline.
    #[arg(long)]
    no_baseline: bool,
    /// Rounds of the broadcast phase per sender [default: 5 with --quick, else 9]; more rounds
    /// give a profiler more samples.
    #[arg(long)]
    broadcast_rounds: Option<usize>,
    #[command(subcommand)]
    serve: Option<Serve>,
}

#[derive(Subcommand, Debug)]
enum Serve {
    /// (internal) run the simulated pool; prints `READY <addr>`, obeys `job` / `stats`.
    #[command(name = "serve-pool")]
    Pool {
        #[arg(long)]
        difficulty: f64,
    },
    /// (internal) run the floor sender: accepts connections, writes one notify-sized line to
    /// every one of them on `job`; prints `READY <addr>`.
    #[command(name = "serve-floor")]
    Floor,
    /// (internal) run the hub in front of `pool`; prints `READY <addr>`.
    #[command(name = "serve-hub")]
    Hub {
        #[arg(long)]
        pool: String,
        /// Fixed miner-facing difficulty (vardiff pinned).
        #[arg(long)]
        difficulty: f64,
    },
}

fn main() -> Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    match args.serve {
        Some(Serve::Pool { difficulty }) => rt.block_on(serve_pool(difficulty)),
        Some(Serve::Floor) => serve_floor(),
        Some(Serve::Hub {
            ref pool,
            difficulty,
        }) => rt.block_on(serve_hub(pool.clone(), difficulty)),
        None => rt.block_on(bench(&args)),
    }
}

// ---------------------------------------------------------------------------------------------
// Children
// ---------------------------------------------------------------------------------------------

async fn serve_pool(difficulty: f64) -> Result<()> {
    let pool = SimPool::start(PoolConfig {
        name: "bench-pool".into(),
        difficulty,
        job_interval: None,
        record_shares: false,
        jobs_kept: 64,
        ..PoolConfig::default()
    })
    .await?;
    let mut out = tokio::io::stdout();
    out.write_all(format!("READY {}\n", pool.addr()).as_bytes())
        .await?;
    out.flush().await?;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(cmd) = lines.next_line().await? {
        let reply = match cmd.trim() {
            "job" => format!("OK {}", pool.new_job(true)),
            "stats" => {
                let s = pool.stats();
                format!(
                    "STATS {} {} {}",
                    s.accepted_total(),
                    s.rejected_total(),
                    s.active_sessions
                )
            }
            other => format!("ERR unknown command {other:?}"),
        };
        out.write_all(reply.as_bytes()).await?;
        out.write_all(b"\n").await?;
        out.flush().await?;
    }
    Ok(())
}

/// The floor of the broadcast figure: the least any program can do to put one job line on
/// every connection. No protocol, no parsing, no per-connection task: blocking writes of one
/// fixed ~600-byte `mining.notify` line from one thread per core. Whatever the pool and the hub
/// add above this is theirs; this much is the machine's (on loopback the kernel also runs the
/// receiving side of TCP inside the sender's `send`).
fn serve_floor() -> Result<()> {
    use std::io::{BufRead, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let conns: Arc<Mutex<Vec<std::net::TcpStream>>> = Arc::default();
    let accepted = conns.clone();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let _ = s.set_nodelay(true);
            // A first line, as a server answers a subscribe: the receivers pace their connects
            // by answers. Not a job, so not counted.
            let _ = s.write_all(b"{\"id\":1,\"result\":true,\"error\":null}\n");
            if let Ok(mut c) = accepted.lock() {
                c.push(s);
            }
        }
    });
    let padding = "0".repeat(420);
    let mut job = 0u64;
    let line = |job: u64| {
        format!(
            "{{\"id\":null,\"method\":\"mining.notify\",\"params\":[\"{job:x}\",\"{padding}\",[],\"20000000\",\"1d00ffff\",\"5f5e1000\",true]}}\n"
        )
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "READY {addr}")?;
    out.flush()?;
    for cmd in std::io::stdin().lock().lines() {
        let reply = match cmd?.trim() {
            "job" => {
                job += 1;
                let l = line(job);
                let mut conns = conns
                    .lock()
                    .map_err(|_| anyhow!("connection list poisoned"))?;
                let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
                let per = conns.len().div_ceil(threads).max(1);
                let failed = AtomicUsize::new(0);
                std::thread::scope(|scope| {
                    for chunk in conns.chunks_mut(per) {
                        let (l, failed) = (&l, &failed);
                        scope.spawn(move || {
                            for c in chunk {
                                if c.write_all(l.as_bytes()).is_err() {
                                    failed.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        });
                    }
                });
                format!("OK {job} failed {}", failed.into_inner())
            }
            other => format!("ERR unknown command {other:?}"),
        };
        writeln!(out, "{reply}")?;
        out.flush()?;
    }
    Ok(())
}

async fn serve_hub(pool: String, difficulty: f64) -> Result<()> {
    // Logging on as in production (`stratum-hub` defaults to `info`): per-miner spans are
    // entered on every poll, and that cost belongs in the figures. Lines go nowhere, unless
    // HUB_BENCH_HUB_LOG (a filter) asks for them on stderr.
    let wanted = std::env::var("HUB_BENCH_HUB_LOG").ok();
    let to_stderr = wanted.is_some();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            wanted.unwrap_or_else(|| "info".into()),
        ))
        .with_writer(tracing_subscriber::fmt::writer::BoxMakeWriter::new(
            move || -> Box<dyn std::io::Write> {
                if to_stderr {
                    Box::new(std::io::stderr())
                } else {
                    Box::new(std::io::sink())
                }
            },
        ))
        .init();
    let hub = hashsched_hub_bench_support::start_hub(&pool, difficulty).await?;
    let mut out = tokio::io::stdout();
    out.write_all(format!("READY {}\n", hub.0).as_bytes())
        .await?;
    out.flush().await?;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(cmd) = lines.next_line().await? {
        let reply = match cmd.trim() {
            "stats" => format!("STATS {} {}", hub.1.connections(), hub.1.facts().len()),
            other => format!("ERR unknown command {other:?}"),
        };
        out.write_all(reply.as_bytes()).await?;
        out.write_all(b"\n").await?;
        out.flush().await?;
    }
    Ok(())
}

/// Hub wiring: the library's own entry point, configured like `stratum-hub --pool URL` with the
/// miner-facing difficulty pinned and the per-miner message rate limit lifted (bench miners
/// submit thousands of shares per second each).
mod hashsched_hub_bench_support {
    use anyhow::Result;
    use hashsched_hub::config::{HubConfig, QuickStart};
    use hashsched_hub::server::{Hub, HubHandle};
    use std::net::SocketAddr;

    pub async fn start_hub(pool: &str, difficulty: f64) -> Result<(SocketAddr, HubHandle)> {
        let mut cfg = HubConfig::quick_start(QuickStart {
            listen: "127.0.0.1:0".into(),
            metrics: None,
            pools: vec![pool.to_owned()],
            user: "bench".into(),
            password: "x".into(),
            tls_ca_file: None,
        })?;
        cfg.vardiff.initial_difficulty = difficulty;
        cfg.vardiff.min_difficulty = difficulty;
        cfg.vardiff.max_difficulty = difficulty;
        cfg.limits.max_messages_per_second = 1e9;
        cfg.limits.message_burst = 1e9;
        cfg.limits.write_queue = 4096;
        let hub = Hub::start(cfg).await?;
        Ok((hub.stratum_addr(), hub))
    }
}

/// A child process speaking the READY / command protocol.
struct ChildProc {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    addr: SocketAddr,
}

impl ChildProc {
    async fn spawn(args: &[String]) -> Result<ChildProc> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("spawning child")?;
        let stdin = child.stdin.take().ok_or_else(|| anyhow!("no stdin"))?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let mut stdout = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(30), stdout.next_line())
            .await
            .context("child did not start in 30 s")??
            .ok_or_else(|| anyhow!("child exited before READY ({args:?})"))?;
        let addr = first
            .strip_prefix("READY ")
            .ok_or_else(|| anyhow!("unexpected first line from child: {first}"))?
            .parse()?;
        Ok(ChildProc {
            child,
            stdin,
            stdout,
            addr,
        })
    }

    async fn command(&mut self, cmd: &str) -> Result<String> {
        self.stdin.write_all(format!("{cmd}\n").as_bytes()).await?;
        self.stdin.flush().await?;
        tokio::time::timeout(Duration::from_secs(30), self.stdout.next_line())
            .await
            .context("child did not answer")??
            .ok_or_else(|| anyhow!("child exited"))
    }

    /// Kills the child and waits for it to exit (its sockets are closed by then).
    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }

    fn rss_kib(&self) -> Option<u64> {
        let pid = self.child.id()?;
        rss_kib_of(&format!("/proc/{pid}/status"))
    }
}

/// CPU time (user + system) a process has used so far, ms; its exited threads included.
/// Assumes USER_HZ = 100, as on every mainstream Linux.
fn cpu_ms_of(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut f = s.get(s.rfind(')')? + 1..)?.split_whitespace();
    // After the command: field 3 (state) first; utime and stime are fields 14 and 15.
    let utime: f64 = f.nth(11)?.parse().ok()?;
    let stime: f64 = f.next()?.parse().ok()?;
    Some((utime + stime) * 10.0)
}

fn rss_kib_of(path: &str) -> Option<u64> {
    let s = std::fs::read_to_string(path).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

// ---------------------------------------------------------------------------------------------
// Phases
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq)]
enum Via {
    Direct,
    Hub,
}

impl Via {
    fn name(self) -> &'static str {
        match self {
            Via::Direct => "direct",
            Via::Hub => "hub",
        }
    }
}

/// Pool and (for `Via::Hub`) hub children for one phase.
struct Rig {
    pool: ChildProc,
    hub: Option<ChildProc>,
}

impl Rig {
    async fn start(via: Via, pool_difficulty: f64, miner_difficulty: f64) -> Result<Rig> {
        let pool = ChildProc::spawn(&[
            "serve-pool".into(),
            "--difficulty".into(),
            pool_difficulty.to_string(),
        ])
        .await?;
        let hub = match via {
            Via::Direct => None,
            Via::Hub => Some(
                ChildProc::spawn(&[
                    "serve-hub".into(),
                    "--pool".into(),
                    format!("stratum+tcp://{}", pool.addr),
                    "--difficulty".into(),
                    miner_difficulty.to_string(),
                ])
                .await?,
            ),
        };
        Ok(Rig { pool, hub })
    }

    fn miner_addr(&self) -> SocketAddr {
        self.hub.as_ref().map(|h| h.addr).unwrap_or(self.pool.addr)
    }
}

fn spawn_miners(addr: SocketAddr, n: usize, f: impl Fn(usize) -> MinerConfig) -> Vec<SimMiner> {
    (0..n).map(|i| SimMiner::spawn(addr, f(i))).collect()
}

async fn wait_ready(miners: &[SimMiner], timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let ready = miners
            .iter()
            .filter(|m| {
                m.with_stats(|s| s.authorized == Some(true) && s.jobs_received > 0)
                    .unwrap_or(false)
            })
            .count();
        if ready == miners.len() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("only {ready} of {} miners got work", miners.len());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn total_accepted(miners: &[SimMiner]) -> (u64, u64) {
    miners.iter().fold((0, 0), |(a, r), m| {
        m.with_stats(|s| (a + s.accepted, r + s.rejected_total()))
            .unwrap_or((a, r))
    })
}

#[derive(Debug, Clone, Copy, Default)]
struct Throughput {
    /// Shares answered `true` to the miners per second.
    shares_per_sec: f64,
    /// Shares the pool accepted per second in the same window (through the hub: validated by
    /// the hub, forwarded, validated again by the pool).
    pool_shares_per_sec: f64,
    rejected: u64,
}

/// Accepted shares so far, as the pool child counts them.
async fn pool_accepted(pool: &mut ChildProc) -> Result<u64> {
    let line = pool.command("stats").await?;
    line.strip_prefix("STATS ")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| anyhow!("unexpected stats line from the pool: {line}"))
}

async fn throughput(via: Via, quick: bool) -> Result<Throughput> {
    let mut rig = Rig::start(via, EVERY_HASH, EVERY_HASH).await?;
    let n = if quick { 40 } else { 100 };
    let miners = spawn_miners(rig.miner_addr(), n, |i| MinerConfig {
        hashrate: None,
        max_in_flight: 32,
        record_shares: false,
        version_rolling: i % 2 == 0,
        reconnect_delay: None,
        ..MinerConfig::new(format!("tp.{i}"))
    });
    wait_ready(&miners, Duration::from_secs(60)).await?;
    tokio::time::sleep(Duration::from_secs(if quick { 1 } else { 3 })).await;
    let p0 = pool_accepted(&mut rig.pool).await?;
    let (a0, r0) = total_accepted(&miners);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(if quick { 5 } else { 15 })).await;
    let (a1, r1) = total_accepted(&miners);
    let p1 = pool_accepted(&mut rig.pool).await?;
    let secs = t0.elapsed().as_secs_f64();
    drop(miners);
    drop(rig);
    Ok(Throughput {
        shares_per_sec: (a1 - a0) as f64 / secs,
        pool_shares_per_sec: p1.saturating_sub(p0) as f64 / secs,
        rejected: r1 - r0,
    })
}

#[derive(Debug, Clone, Copy, Default)]
struct Latency {
    shares_per_sec: f64,
    /// Miner sends a share → the pool has read and checked it (what a proxy adds to).
    to_pool_p50_ms: f64,
    to_pool_p99_ms: f64,
    to_pool_samples: usize,
    /// Miner sends a share → the miner has its answer (the hub answers after its own check).
    answer_p50_ms: f64,
    answer_p99_ms: f64,
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted.get(idx).copied().unwrap_or(0) as f64 / 1000.0
}

/// 1,000 miners at 5 shares/s each (Poisson). The pool runs in this process so that a share's
/// send time (miner) and receive time (pool) come from the same clock; every share meets the
/// pool's target, so through the hub every share is forwarded.
async fn latency(via: Via, quick: bool) -> Result<Latency> {
    let pool = SimPool::start(PoolConfig {
        name: "bench-latency-pool".into(),
        difficulty: LATENCY_DIFFICULTY,
        job_interval: None,
        jobs_kept: 64,
        ..PoolConfig::default()
    })
    .await?;
    let hub = match via {
        Via::Direct => None,
        Via::Hub => Some(
            ChildProc::spawn(&[
                "serve-hub".into(),
                "--pool".into(),
                pool.url(),
                "--difficulty".into(),
                LATENCY_DIFFICULTY.to_string(),
            ])
            .await?,
        ),
    };
    let addr = hub.as_ref().map(|h| h.addr).unwrap_or(pool.addr());
    let n = 1000;
    let per_miner = 5.0;
    let miners = spawn_miners(addr, n, |i| MinerConfig {
        hashrate: Some(per_miner * LATENCY_DIFFICULTY * HASHES_PER_DIFFICULTY),
        tick: Duration::from_millis(100),
        record_shares: true,
        record_latency: true,
        version_rolling: i % 2 == 0,
        reconnect_delay: None,
        ..MinerConfig::new(format!("lat.{i}"))
    });
    wait_ready(&miners, Duration::from_secs(120)).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    for m in &miners {
        m.take_latencies();
    }
    let (a0, _) = total_accepted(&miners);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(if quick { 6 } else { 20 })).await;
    let (a1, _) = total_accepted(&miners);
    let t1 = Instant::now();
    let secs = t1.duration_since(t0).as_secs_f64();
    let mut answers: Vec<u32> = miners.iter().flat_map(|m| m.take_latencies()).collect();
    answers.sort_unstable();

    // Match each share the pool accepted in the window to the miner's send time:
    // (miner, nonce, ntime, the miner's own extranonce2 = the tail of the pool's).
    type Key = (String, u32, u32, Vec<u8>);
    let mut sent: std::collections::HashMap<Key, Instant> = std::collections::HashMap::new();
    let mut en2_len = std::collections::HashMap::new();
    for m in &miners {
        let s = m.stats();
        en2_len.insert(m.worker().to_owned(), s.extranonce2_size);
        for sh in s.shares {
            sent.insert(
                (m.worker().to_owned(), sh.nonce, sh.ntime, sh.extranonce2),
                sh.sent_at,
            );
        }
    }
    let mut to_pool: Vec<u32> = Vec::new();
    for sh in pool.accepted_shares() {
        if sh.received_at < t0 || sh.received_at > t1 {
            continue;
        }
        let worker = sh
            .worker
            .rsplit_once("lat.")
            .map(|(_, i)| format!("lat.{i}"))
            .unwrap_or(sh.worker.clone());
        let Some(&m) = en2_len.get(&worker) else {
            continue;
        };
        let tail = sh.extranonce2[sh.extranonce2.len().saturating_sub(m)..].to_vec();
        if let Some(at) = sent.get(&(worker, sh.nonce, sh.ntime, tail)) {
            let us = sh.received_at.saturating_duration_since(*at).as_micros();
            to_pool.push(us.min(u32::MAX as u128) as u32);
        }
    }
    to_pool.sort_unstable();
    drop(miners);
    drop(hub);
    Ok(Latency {
        shares_per_sec: (a1 - a0) as f64 / secs,
        to_pool_p50_ms: percentile(&to_pool, 0.50),
        to_pool_p99_ms: percentile(&to_pool, 0.99),
        to_pool_samples: to_pool.len(),
        answer_p50_ms: percentile(&answers, 0.50),
        answer_p99_ms: percentile(&answers, 0.99),
    })
}

#[derive(Debug, Clone, Copy, Default)]
struct Memory {
    miners: usize,
    /// RSS of the process the miners connect to (pool or hub) per miner, KiB.
    rss_per_miner_kib: f64,
    rss_idle_kib: u64,
    rss_loaded_kib: u64,
    /// New job → last simulated miner has it, ms (median and worst of several); bounded below
    /// by the simulated miners' own parsing (see `broadcast_light` for the hub's figure).
    broadcast_median_ms: f64,
    broadcast_max_ms: f64,
}

async fn memory_and_broadcast(via: Via, n: usize) -> Result<Memory> {
    let mut rig = Rig::start(via, 1.0, 1.0).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let measured = |rig: &Rig| match &rig.hub {
        Some(h) => h.rss_kib(),
        None => rig.pool.rss_kib(),
    };
    let idle = measured(&rig).unwrap_or(0);
    let addr = rig.miner_addr();
    let mut miners = Vec::with_capacity(n);
    for i in 0..n {
        miners.push(SimMiner::spawn(
            addr,
            MinerConfig {
                hashrate: Some(0.0),
                tick: Duration::from_secs(1),
                record_shares: false,
                version_rolling: i % 2 == 0,
                reconnect_delay: Some(Duration::from_secs(1)),
                ..MinerConfig::new(format!("mem.{i}"))
            },
        ));
        if i % 500 == 499 {
            // Let the accept loops keep up instead of overflowing listen backlogs.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    wait_ready(&miners, Duration::from_secs(180)).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let loaded = measured(&rig).unwrap_or(0);

    let mut samples = Vec::new();
    for _ in 0..5 {
        let before: Vec<u64> = miners
            .iter()
            .map(|m| m.with_stats(|s| s.jobs_received).unwrap_or(0))
            .collect();
        let t0 = Instant::now();
        rig.pool.command("job").await?;
        let deadline = t0 + Duration::from_secs(60);
        let mut latest = t0;
        loop {
            let mut all = true;
            for (m, b) in miners.iter().zip(&before) {
                match m.with_stats(|s| (s.jobs_received > *b).then_some(s.last_job_at)) {
                    Some(Some(Some(at))) => latest = latest.max(at),
                    _ => {
                        all = false;
                        break;
                    }
                }
            }
            if all {
                break;
            }
            if Instant::now() > deadline {
                bail!("a new job did not reach every miner within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        samples.push(latest.duration_since(t0).as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    samples.sort_by(f64::total_cmp);
    drop(miners);
    Ok(Memory {
        miners: n,
        rss_per_miner_kib: loaded.saturating_sub(idle) as f64 / n as f64,
        rss_idle_kib: idle,
        rss_loaded_kib: loaded,
        broadcast_median_ms: samples.get(samples.len() / 2).copied().unwrap_or(f64::NAN),
        broadcast_max_ms: samples.last().copied().unwrap_or(f64::NAN),
    })
}

/// Marker of a job line; a substring check, not a JSON parse, keeps receivers cheap.
const NOTIFY_MARKER: &[u8] = b"\"mining.notify\"";

/// Connections that only handshake and timestamp `mining.notify` lines: the cheapest possible
/// miners, so that the time for a job to reach all of them is the sender's (floor, pool or
/// hub), not the receivers' (10,000 `SimMiner`s parsing a ~600-byte notify each dominate that
/// figure). All of them are served by one thread with a bare `mio` poll loop: one wake-up per
/// batch of ready sockets and one `read` per notify, instead of a task wake-up and two reads
/// per receiver, which leaves the two cores to the sender being measured. Each receiver holds
/// one socket in this process: `n` must fit under RLIMIT_NOFILE (a refusal shows as the first
/// receiver error, "Too many open files").
struct LightReceivers {
    slots: ReceiverSlots,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Shared by the poll thread and the measuring side.
#[derive(Clone)]
struct ReceiverSlots {
    /// Clock origin of `arrival_ns`.
    base: Instant,
    /// Per receiver: arrival of its last notify, ns since `base` (valid once `notifies` > 0).
    arrival_ns: Arc<[AtomicU64]>,
    /// Per receiver: notifies received so far (stored after `arrival_ns`, with release order).
    notifies: Arc<[AtomicU64]>,
    /// Receivers whose connection failed or closed, and the first reason.
    closed: Arc<AtomicUsize>,
    first_error: Arc<Mutex<Option<String>>>,
    /// Tells the poll thread to stop (it closes every socket on its way out).
    stop: Arc<AtomicBool>,
}

impl ReceiverSlots {
    fn fail(&self, i: usize, why: impl std::fmt::Display) {
        if let Ok(mut first) = self.first_error.lock() {
            first.get_or_insert_with(|| format!("receiver light.{i}: {why}"));
        }
        self.closed.fetch_add(1, Ordering::Release);
    }
}

impl LightReceivers {
    /// Opens `n` receivers to `addr` (in batches, so that the accept loop keeps up with the
    /// listen backlog) and starts the poll thread; returns once all are connected.
    async fn connect(addr: SocketAddr, n: usize) -> Result<LightReceivers> {
        let slots = ReceiverSlots {
            base: Instant::now(),
            arrival_ns: (0..n).map(|_| AtomicU64::new(0)).collect(),
            notifies: (0..n).map(|_| AtomicU64::new(0)).collect(),
            closed: Arc::new(AtomicUsize::new(0)),
            first_error: Arc::new(Mutex::new(None)),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let for_thread = slots.clone();
        let thread = std::thread::Builder::new()
            .name("light-receivers".into())
            .spawn(move || light_receivers_thread(addr, n, for_thread, ready_tx))?;
        ready_rx
            .await
            .map_err(|_| anyhow!("light receivers thread ended before connecting"))??;
        Ok(LightReceivers {
            slots,
            thread: Some(thread),
        })
    }

    fn counts(&self) -> Vec<u64> {
        self.slots
            .notifies
            .iter()
            .map(|c| c.load(Ordering::Acquire))
            .collect()
    }

    /// Fails if any receiver lost its connection (a broadcast to "all" would then be moot).
    fn check_open(&self) -> Result<()> {
        let closed = self.slots.closed.load(Ordering::Acquire);
        if closed == 0 {
            return Ok(());
        }
        let why = self
            .slots
            .first_error
            .lock()
            .ok()
            .and_then(|e| e.clone())
            .unwrap_or_default();
        bail!(
            "{closed} of {} light receivers lost their connection (first: {why})",
            self.slots.notifies.len()
        )
    }

    /// Latest notify arrival (ns since `base`) once every receiver has more notifies than in
    /// `before`; `None` while some receiver has not.
    fn all_past(&self, before: &[u64]) -> Option<u64> {
        let mut latest = 0;
        for ((count, arrival), b) in self
            .slots
            .notifies
            .iter()
            .zip(self.slots.arrival_ns.iter())
            .zip(before)
        {
            if count.load(Ordering::Acquire) <= *b {
                return None;
            }
            latest = latest.max(arrival.load(Ordering::Relaxed));
        }
        Some(latest)
    }

    /// The earliest of the receivers' latest arrivals (ns since `base`): right after a round,
    /// when its first line arrived.
    fn first_arrival(&self) -> u64 {
        self.slots
            .arrival_ns
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .min()
            .unwrap_or(0)
    }

    fn ns_since_base(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.slots.base).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Waits until every receiver has more notifies than in `before`; returns the latest
    /// arrival (ns since `base`).
    async fn wait_all_past(&self, before: &[u64], timeout: Duration) -> Result<u64> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_open()?;
            if let Some(latest) = self.all_past(before) {
                return Ok(latest);
            }
            if Instant::now() >= deadline {
                let behind = self
                    .counts()
                    .iter()
                    .zip(before)
                    .filter(|(c, b)| c <= b)
                    .count();
                bail!(
                    "{behind} of {} light receivers got no new job within {timeout:?}",
                    before.len()
                );
            }
            // Polling 10,000 atomics costs microseconds; the arrival times come from the
            // receivers, so the poll period does not bound the measurement.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

impl Drop for LightReceivers {
    fn drop(&mut self) {
        self.slots.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The poll thread: opens every receiver with a non-blocking connect, greets it once
/// connected, and then serves them all from one `mio::Poll` until told to stop. At most
/// `WINDOW` receivers wait for their first bytes from the server at any time: a connection
/// storm beyond the server's accept rate overflows its listen queue, the kernel falls back to
/// SYN cookies, and on loopback (TIME_WAIT reuse, timestamps) a few of those end in a reset. `ready` fires once every receiver is greeted or
/// failed. A failed receiver is counted in `closed`; the first reason is kept.
fn light_receivers_thread(
    addr: SocketAddr,
    n: usize,
    slots: ReceiverSlots,
    ready: tokio::sync::oneshot::Sender<Result<()>>,
) {
    use mio::{Events, Interest, Poll, Token};
    use std::io::{Read, Write};
    const WINDOW: usize = 256;
    const PACE: Duration = Duration::from_millis(20);
    const EVENTS: usize = 1024;
    const TICK: Duration = Duration::from_micros(200);
    const BUSY_SPELL: Duration = Duration::from_millis(20);
    let mut poll = match Poll::new() {
        Ok(p) => p,
        Err(e) => {
            let _ = ready.send(Err(anyhow!("poll: {e}")));
            return;
        }
    };
    let mut ready = Some(ready);
    let mut conns: Vec<Option<mio::net::TcpStream>> = Vec::with_capacity(n);
    let mut greeted = vec![false; n];
    // Receivers neither greeted nor failed yet.
    let mut waiting = n;
    // Receivers opened that have not yet heard from the server (nor failed).
    let mut unanswered = 0usize;
    let mut answered = vec![false; n];
    // Per receiver: the unfinished line carried over between reads (empty between lines).
    let mut partial: Vec<Vec<u8>> = vec![Vec::new(); n];
    let mut events = Events::with_capacity(EVENTS);
    let mut busy_until: Option<Instant> = None;
    let mut buf = vec![0u8; 16 * 1024];
    // A receiver heard from its server (first bytes) or failed: it leaves the window.
    let settle = |answered: &mut Vec<bool>, unanswered: &mut usize, i: usize| {
        if let Some(a) = answered.get_mut(i)
            && !*a
        {
            *a = true;
            *unanswered -= 1;
        }
    };
    let drop_conn = |conns: &mut Vec<Option<mio::net::TcpStream>>,
                     answered: &mut Vec<bool>,
                     unanswered: &mut usize,
                     i: usize,
                     why: String| {
        if let Some(slot) = conns.get_mut(i)
            && slot.take().is_some()
        {
            settle(answered, unanswered, i);
            slots.fail(i, why);
        }
    };
    while !slots.stop.load(Ordering::Acquire) {
        if conns.len() < n && unanswered < WINDOW {
            for _ in 0..(WINDOW - unanswered).min(n - conns.len()) {
                let i = conns.len();
                match mio::net::TcpStream::connect(addr) {
                    Ok(mut s) => {
                        match poll.registry().register(
                            &mut s,
                            Token(i),
                            Interest::READABLE | Interest::WRITABLE,
                        ) {
                            Ok(()) => {
                                conns.push(Some(s));
                                unanswered += 1;
                            }
                            Err(e) => {
                                conns.push(None);
                                slots.fail(i, format!("register: {e}"));
                                waiting -= 1;
                            }
                        }
                    }
                    Err(e) => {
                        conns.push(None);
                        slots.fail(i, format!("connect to {addr}: {e}"));
                        waiting -= 1;
                    }
                }
            }
        }
        if waiting == 0
            && let Some(r) = ready.take()
        {
            let _ = r.send(Ok(()));
        }
        // While lines are arriving, poll without blocking and sleep a tick between polls:
        // a thread blocked in `epoll_wait` is woken by every arriving line, and on loopback
        // that wake-up (a cross-CPU interrupt, a VM exit here) runs inside the *sender's*
        // `send` and is billed to it. Real miners are other machines and never cost the hub
        // that. Ticking costs each arrival at most one tick of delay.
        let now = Instant::now();
        let ticking = busy_until.is_some_and(|t| now < t);
        if let Err(e) = poll.poll(
            &mut events,
            Some(if ticking { Duration::ZERO } else { PACE }),
        ) {
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            slots.fail(0, format!("poll: {e}"));
            return;
        }
        if !events.is_empty() && waiting == 0 {
            busy_until = Some(now + BUSY_SPELL);
        }
        if ticking && events.iter().count() < EVENTS {
            std::thread::sleep(TICK);
        }
        for ev in events.iter() {
            let i = ev.token().0;
            let Some(Some(conn)) = conns.get_mut(i) else {
                continue;
            };
            if !greeted.get(i).copied().unwrap_or(true) {
                // Connected once the socket has no error and a peer (mio's documented check).
                let outcome = match conn.take_error() {
                    Ok(Some(e)) | Err(e) => Err(format!("connect to {addr}: {e}")),
                    Ok(None) => match conn.peer_addr() {
                        Ok(_) => Ok(true),
                        Err(e) if e.kind() == std::io::ErrorKind::NotConnected => Ok(false),
                        Err(e) => Err(format!("connect to {addr}: {e}")),
                    },
                };
                match outcome {
                    Ok(false) => continue,
                    Ok(true) => {
                        let hello = format!(
                            "{{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[\"bench/1\"]}}\n\
                             {{\"id\":2,\"method\":\"mining.authorize\",\"params\":[\"light.{i}\",\"x\"]}}\n"
                        );
                        // A fresh socket takes ~150 bytes at once; a short write is a failure.
                        let greet = match conn.write(hello.as_bytes()) {
                            Ok(k) if k == hello.len() => poll
                                .registry()
                                .reregister(conn, Token(i), Interest::READABLE)
                                .map_err(|e| format!("reregister: {e}")),
                            Ok(k) => Err(format!("handshake: short write ({k} bytes)")),
                            Err(e) => Err(format!("handshake: {e}")),
                        };
                        waiting -= 1;
                        if let Some(g) = greeted.get_mut(i) {
                            *g = true;
                        }
                        if let Err(why) = greet {
                            drop_conn(&mut conns, &mut answered, &mut unanswered, i, why);
                        }
                        continue;
                    }
                    Err(why) => {
                        waiting -= 1;
                        drop_conn(&mut conns, &mut answered, &mut unanswered, i, why);
                        continue;
                    }
                }
            }
            // Edge-triggered: read until the socket is drained; a short read means it is.
            loop {
                match conn.read(&mut buf) {
                    Ok(0) => {
                        drop_conn(
                            &mut conns,
                            &mut answered,
                            &mut unanswered,
                            i,
                            format!("connection closed by {addr}"),
                        );
                        break;
                    }
                    Ok(got) => {
                        settle(&mut answered, &mut unanswered, i);
                        let at = u64::try_from(slots.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
                        let jobs = count_notify_lines(partial.get_mut(i), &buf[..got]);
                        if jobs > 0
                            && let (Some(arrival), Some(count)) =
                                (slots.arrival_ns.get(i), slots.notifies.get(i))
                        {
                            arrival.store(at, Ordering::Relaxed);
                            count.fetch_add(jobs, Ordering::Release);
                        }
                        if got < buf.len() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        drop_conn(
                            &mut conns,
                            &mut answered,
                            &mut unanswered,
                            i,
                            format!("read: {e}"),
                        );
                        break;
                    }
                }
            }
        }
    }
}

/// Complete `mining.notify` lines in `carried` + `bytes`; leaves the unfinished tail in
/// `carried`. A substring check, not a JSON parse, keeps receivers cheap.
fn count_notify_lines(carried: Option<&mut Vec<u8>>, bytes: &[u8]) -> u64 {
    let Some(carried) = carried else { return 0 };
    let mut jobs = 0;
    for piece in bytes.split_inclusive(|b| *b == b'\n') {
        let complete = piece.last() == Some(&b'\n');
        let is_job = if carried.is_empty() {
            contains(piece, NOTIFY_MARKER)
        } else {
            carried.extend_from_slice(piece);
            contains(carried, NOTIFY_MARKER)
        };
        if complete {
            jobs += u64::from(is_job);
            carried.clear();
        } else if carried.is_empty() {
            carried.extend_from_slice(piece);
        }
    }
    jobs
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[derive(Debug, Clone, Copy, Default)]
struct Broadcast {
    receivers: usize,
    /// New job asked of the pool → the last light receiver has it, ms.
    median_ms: f64,
    max_ms: f64,
    /// The sender's CPU time per job, ms (all its cores; its idle use subtracted). Steadier
    /// than the wall-clock figures, which swing with whatever else the VM's cores run.
    cpu_per_job_ms: Option<f64>,
}

/// Who sends the jobs in the broadcast phase.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Sender {
    /// The floor: a raw sender with no protocol (`serve-floor`).
    Floor,
    /// The simulated pool, straight or through the hub.
    Via(Via),
}

impl Sender {
    fn name(self) -> &'static str {
        match self {
            Sender::Floor => "floor",
            Sender::Via(v) => v.name(),
        }
    }
}

/// `n` light receivers connected to the sender; `rounds` rounds of "the sender is asked for a
/// new job, time until every receiver has it".
async fn broadcast_light(from: Sender, n: usize, rounds: usize) -> Result<Broadcast> {
    // `jobs` is asked for new jobs (the floor or the pool); `hub` relays them when present.
    let (mut jobs, hub) = match from {
        Sender::Floor => (ChildProc::spawn(&["serve-floor".into()]).await?, None),
        Sender::Via(via) => {
            let rig = Rig::start(via, 1.0, 1.0).await?;
            (rig.pool, rig.hub)
        }
    };
    let addr = hub.as_ref().map_or(jobs.addr, |h| h.addr);
    let rx = LightReceivers::connect(addr, n).await?;
    let none = vec![0; n];
    if from == Sender::Floor {
        // The floor has no job to hand out on subscribe: send jobs until everyone has one.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let deadline = Instant::now() + Duration::from_secs(180);
        while rx.all_past(&none).is_none() {
            rx.check_open()?;
            if Instant::now() >= deadline {
                bail!("floor: receivers got no first job within 180 s");
            }
            jobs.command("job").await?;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    rx.wait_all_past(&none, Duration::from_secs(180))
        .await
        .context("waiting for the first job")?;
    // The sender's CPU per job: its CPU over the rounds, less what it uses idle (timers,
    // housekeeping) over the same time, measured on a quiet second first.
    let sender_pid = hub.as_ref().unwrap_or(&jobs).child.id();
    let sender_cpu = || sender_pid.and_then(cpu_ms_of);
    let idle_from = (Instant::now(), sender_cpu());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rate = match (idle_from.1, sender_cpu()) {
        (Some(a), Some(b)) => Some((b - a) / idle_from.0.elapsed().as_secs_f64()),
        _ => None,
    };
    let busy_from = (Instant::now(), sender_cpu());
    let mut samples = Vec::new();
    let mut firsts = Vec::new();
    for _ in 0..rounds.max(1) {
        let before = rx.counts();
        let t0 = Instant::now();
        jobs.command("job").await?;
        let latest = rx.wait_all_past(&before, Duration::from_secs(60)).await?;
        let ns = latest.saturating_sub(rx.ns_since_base(t0));
        let first = rx.first_arrival().saturating_sub(rx.ns_since_base(t0));
        firsts.push(format!("{:.1}", first as f64 / 1e6));
        samples.push(ns as f64 / 1e6);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    eprintln!(
        "[hub-bench] broadcast from {}: rounds, ms: {}",
        from.name(),
        samples
            .iter()
            .map(|s| format!("{s:.1}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    eprintln!("[hub-bench]   first arrival, ms: {}", firsts.join(" "));
    let cpu_per_job_ms = match (busy_from.1, sender_cpu(), idle_rate) {
        (Some(a), Some(b), Some(idle)) => {
            Some(((b - a) - idle * busy_from.0.elapsed().as_secs_f64()) / samples.len() as f64)
        }
        _ => None,
    };
    samples.sort_by(f64::total_cmp);
    // Senders close first, so that TIME_WAIT lands on their side: 10,000 client-side TIME_WAIT
    // sockets per phase would use up the ephemeral ports, and the next phase's connects crawl.
    if let Some(hub) = hub {
        hub.stop().await;
    }
    jobs.stop().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(rx);
    Ok(Broadcast {
        receivers: n,
        median_ms: samples.get(samples.len() / 2).copied().unwrap_or(f64::NAN),
        max_ms: samples.last().copied().unwrap_or(f64::NAN),
        cpu_per_job_ms,
    })
}

// ---------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------

async fn bench(args: &Args) -> Result<()> {
    let want = |p: &str| args.phases.is_empty() || args.phases.iter().any(|x| x == p);
    let vias: Vec<Via> = if args.no_baseline {
        vec![Via::Hub]
    } else {
        vec![Via::Direct, Via::Hub]
    };
    let idle_miners = args.idle_miners.unwrap_or(10_000);
    let started = Instant::now();
    let mut report = serde_json::Map::new();
    report.insert("quick".into(), json!(args.quick));
    let mut rows: Vec<(String, String, String, String)> = Vec::new();
    let mut row = |what: &str, direct: String, hub: String, target: &str| {
        rows.push((what.into(), direct, hub, target.into()))
    };
    let fmt = |v: Option<f64>, prec: usize| match v {
        Some(x) if x.is_finite() => format!("{x:.prec$}"),
        _ => "-".into(),
    };

    if want("throughput") {
        let mut r = [None, None];
        for via in &vias {
            eprintln!("[hub-bench] throughput via {} ...", via.name());
            match throughput(*via, args.quick).await {
                Ok(t) => {
                    r[(*via == Via::Hub) as usize] = Some(t);
                    report.insert(
                        format!("throughput_{}_shares_per_sec", via.name()),
                        json!(t.shares_per_sec.round()),
                    );
                    report.insert(
                        format!("throughput_{}_pool_accepted_per_sec", via.name()),
                        json!(t.pool_shares_per_sec.round()),
                    );
                    report.insert(
                        format!("throughput_{}_rejected", via.name()),
                        json!(t.rejected),
                    );
                }
                Err(e) => eprintln!("[hub-bench] throughput via {}: {e:#}", via.name()),
            }
        }
        row(
            "throughput, shares/s answered to miners",
            fmt(r[0].map(|t| t.shares_per_sec), 0),
            fmt(r[1].map(|t| t.shares_per_sec), 0),
            "",
        );
        row(
            "throughput, shares/s accepted at the pool",
            fmt(r[0].map(|t| t.pool_shares_per_sec), 0),
            fmt(r[1].map(|t| t.pool_shares_per_sec), 0),
            ">= 50000",
        );
    }
    if want("latency") {
        let mut r = [None, None];
        for via in &vias {
            eprintln!("[hub-bench] latency via {} ...", via.name());
            match latency(*via, args.quick).await {
                Ok(l) => {
                    r[(*via == Via::Hub) as usize] = Some(l);
                    let v = via.name();
                    report.insert(
                        format!("latency_{v}_to_pool_p50_ms"),
                        json!(l.to_pool_p50_ms),
                    );
                    report.insert(
                        format!("latency_{v}_to_pool_p99_ms"),
                        json!(l.to_pool_p99_ms),
                    );
                    report.insert(
                        format!("latency_{v}_to_pool_samples"),
                        json!(l.to_pool_samples),
                    );
                    report.insert(format!("latency_{v}_answer_p50_ms"), json!(l.answer_p50_ms));
                    report.insert(format!("latency_{v}_answer_p99_ms"), json!(l.answer_p99_ms));
                    report.insert(
                        format!("latency_{v}_shares_per_sec"),
                        json!(l.shares_per_sec.round()),
                    );
                }
                Err(e) => eprintln!("[hub-bench] latency via {}: {e:#}", via.name()),
            }
        }
        row(
            "latency load, shares/s (1000 miners)",
            fmt(r[0].map(|l| l.shares_per_sec), 0),
            fmt(r[1].map(|l| l.shares_per_sec), 0),
            "5000",
        );
        row(
            "miner -> pool p50, ms",
            fmt(r[0].map(|l| l.to_pool_p50_ms), 3),
            fmt(r[1].map(|l| l.to_pool_p50_ms), 3),
            "",
        );
        row(
            "miner -> pool p99, ms",
            fmt(r[0].map(|l| l.to_pool_p99_ms), 3),
            fmt(r[1].map(|l| l.to_pool_p99_ms), 3),
            "",
        );
        row(
            "miner answer p50, ms",
            fmt(r[0].map(|l| l.answer_p50_ms), 3),
            fmt(r[1].map(|l| l.answer_p50_ms), 3),
            "",
        );
        row(
            "miner answer p99, ms",
            fmt(r[0].map(|l| l.answer_p99_ms), 3),
            fmt(r[1].map(|l| l.answer_p99_ms), 3),
            "",
        );
        if let (Some(d), Some(h)) = (r[0], r[1]) {
            let added50 = h.to_pool_p50_ms - d.to_pool_p50_ms;
            let added99 = h.to_pool_p99_ms - d.to_pool_p99_ms;
            report.insert("latency_added_p50_ms".into(), json!(added50));
            report.insert("latency_added_p99_ms".into(), json!(added99));
            row(
                "added latency to pool p50, ms",
                "".into(),
                fmt(Some(added50), 3),
                "",
            );
            row(
                "added latency to pool p99, ms",
                "".into(),
                fmt(Some(added99), 3),
                "<= 1",
            );
        }
    }
    if want("memory") {
        let mut r = [None, None];
        for via in &vias {
            eprintln!(
                "[hub-bench] memory and broadcast with {idle_miners} miners via {} ...",
                via.name()
            );
            match memory_and_broadcast(*via, idle_miners).await {
                Ok(m) => {
                    r[(*via == Via::Hub) as usize] = Some(m);
                    report.insert(format!("memory_{}_miners", via.name()), json!(m.miners));
                    report.insert(
                        format!("memory_{}_rss_per_miner_kib", via.name()),
                        json!(m.rss_per_miner_kib),
                    );
                    report.insert(
                        format!("memory_{}_rss_idle_kib", via.name()),
                        json!(m.rss_idle_kib),
                    );
                    report.insert(
                        format!("memory_{}_rss_loaded_kib", via.name()),
                        json!(m.rss_loaded_kib),
                    );
                    report.insert(
                        format!("broadcast_{}_median_ms", via.name()),
                        json!(m.broadcast_median_ms),
                    );
                    report.insert(
                        format!("broadcast_{}_max_ms", via.name()),
                        json!(m.broadcast_max_ms),
                    );
                }
                Err(e) => eprintln!("[hub-bench] memory via {}: {e:#}", via.name()),
            }
        }
        row(
            &format!("RSS per miner, KiB ({idle_miners} miners; pool | hub)"),
            fmt(r[0].map(|m| m.rss_per_miner_kib), 2),
            fmt(r[1].map(|m| m.rss_per_miner_kib), 2),
            "<= 16",
        );
        row(
            &format!("new job to all {idle_miners} miners (SimMiners), median ms"),
            fmt(r[0].map(|m| m.broadcast_median_ms), 1),
            fmt(r[1].map(|m| m.broadcast_median_ms), 1),
            "",
        );
        row(
            &format!("new job to all {idle_miners} miners (SimMiners), max ms"),
            fmt(r[0].map(|m| m.broadcast_max_ms), 1),
            fmt(r[1].map(|m| m.broadcast_max_ms), 1),
            "",
        );
    }
    if want("broadcast") {
        let mut senders: Vec<Sender> = vias.iter().map(|v| Sender::Via(*v)).collect();
        if !args.no_baseline {
            senders.insert(0, Sender::Floor);
        }
        let mut r: [Option<Broadcast>; 3] = [None, None, None];
        for from in &senders {
            eprintln!(
                "[hub-bench] broadcast to {idle_miners} light receivers from {} ...",
                from.name()
            );
            let rounds = args
                .broadcast_rounds
                .unwrap_or(if args.quick { 5 } else { 9 });
            match broadcast_light(*from, idle_miners, rounds).await {
                Ok(b) => {
                    let slot = match from {
                        Sender::Via(Via::Direct) => 0,
                        Sender::Via(Via::Hub) => 1,
                        Sender::Floor => 2,
                    };
                    r[slot] = Some(b);
                    let v = from.name();
                    report.insert("broadcast_light_receivers".into(), json!(b.receivers));
                    report.insert(format!("broadcast_light_{v}_median_ms"), json!(b.median_ms));
                    report.insert(format!("broadcast_light_{v}_max_ms"), json!(b.max_ms));
                    if let Some(c) = b.cpu_per_job_ms {
                        report.insert(format!("broadcast_light_{v}_cpu_ms_per_job"), json!(c));
                    }
                }
                Err(e) => eprintln!("[hub-bench] broadcast from {}: {e:#}", from.name()),
            }
        }
        row(
            &format!("new job to all {idle_miners} miners (light receivers), median ms"),
            fmt(r[0].map(|b| b.median_ms), 1),
            fmt(r[1].map(|b| b.median_ms), 1),
            "<= 50",
        );
        row(
            &format!("new job to all {idle_miners} miners (light receivers), max ms"),
            fmt(r[0].map(|b| b.max_ms), 1),
            fmt(r[1].map(|b| b.max_ms), 1),
            "",
        );
        if let Some(f) = r[2] {
            row(
                "  floor: raw writes of one line to every socket, median ms",
                fmt(Some(f.median_ms), 1),
                "".into(),
                "",
            );
        }
        row(
            "sender CPU per job (all cores), ms",
            fmt(r[0].and_then(|b| b.cpu_per_job_ms), 1),
            fmt(r[1].and_then(|b| b.cpu_per_job_ms), 1),
            "",
        );
        if let Some(f) = r[2] {
            row(
                "  floor: sender CPU per job, ms",
                fmt(f.cpu_per_job_ms, 1),
                "".into(),
                "",
            );
        }
        if let (Some(d), Some(h)) = (r[0], r[1]) {
            let ratio = h.median_ms / d.median_ms;
            let added = h.median_ms - d.median_ms;
            report.insert("broadcast_light_hub_over_direct".into(), json!(ratio));
            report.insert("broadcast_light_added_median_ms".into(), json!(added));
            row(
                "light receivers, hub / direct (median)",
                "".into(),
                fmt(Some(ratio), 2),
                "",
            );
            row(
                "light receivers, added by the hub (median), ms",
                "".into(),
                fmt(Some(added), 1),
                "",
            );
        }
        if let (Some(f), Some(h)) = (r[2], r[1]) {
            let ratio = h.median_ms / f.median_ms;
            report.insert("broadcast_light_hub_over_floor".into(), json!(ratio));
            row(
                "light receivers, hub / floor (median)",
                "".into(),
                fmt(Some(ratio), 2),
                "",
            );
            if let (Some(fc), Some(hc)) = (f.cpu_per_job_ms, h.cpu_per_job_ms) {
                report.insert("broadcast_light_hub_cpu_over_floor".into(), json!(hc / fc));
                row(
                    "sender CPU per job, hub / floor",
                    "".into(),
                    fmt(Some(hc / fc), 2),
                    "",
                );
            }
        }
    }
    report.insert(
        "seconds".into(),
        json!((started.elapsed().as_secs_f64() * 10.0).round() / 10.0),
    );
    println!(
        "{:<64} {:>12} {:>12} {:>10}",
        "figure", "direct", "via hub", "target"
    );
    for (what, d, h, t) in &rows {
        println!("{what:<64} {d:>12} {h:>12} {t:>10}");
    }
    println!("{}", serde_json::Value::Object(report));
    Ok(())
}
