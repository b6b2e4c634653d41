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
//!
//! `--against "COMMAND"` puts another Stratum V1 proxy through the same phases, in a column of
//! its own: the command gets `{pool}` (the simulated pool) and `{listen}` (a free port the bench
//! picked), is split into words like a shell would (no shell runs it; give `sh -c '… exec …'`
//! for one) and started in a process group of its own, whose RSS and CPU are measured. A peer
//! that gives the miners a higher difficulty than a phase asks for (its floor) has that phase
//! reported as `n/a: floor D`, not as a figure; a peer that fails a phase has the error in its
//! column, and the bench goes on. `HUB_BENCH_HUB_WRAP="valgrind --tool=dhat"` (or `perf
//! record …`) runs the hub child under a profiler.

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
    /// Rounds of the throughput phase: direct, hub (and peer) measured in turn this many
    /// times; the table shows each side's median and the median of the per-round ratios (the
    /// machine's speed drifts between runs, less within a round) [default: 1].
    #[arg(long, default_value_t = 1)]
    throughput_rounds: usize,
    /// Throughput phase: every miner moves to a fresh extranonce2 after each share (an ASIC at
    /// farm difficulty), so the hub's memo of a miner's last work never hits: its worst case.
    #[arg(long)]
    extranonce2_per_share: bool,
    /// Rounds of the broadcast phase per sender [default: 5 with --quick, else 9]; more rounds
    /// give a profiler more samples.
    #[arg(long)]
    broadcast_rounds: Option<usize>,
    /// Also measure another Stratum V1 proxy under the same load, in a column of its own: a
    /// command line with {pool} (host:port of the simulated pool) and {listen} (host:port to
    /// listen on, chosen by the bench); also {pool_host} {pool_port} {listen_host} {listen_port}
    /// {dir} (a fresh directory, the peer's working directory) {config} (the rendered
    /// --against-config). Split into words like a shell would (quotes, backslashes), not run by
    /// one: give `sh -c '... exec PROXY ...'` for shell features. Its whole process group is
    /// measured.
    #[arg(long, value_name = "COMMAND")]
    against: Option<String>,
    /// Heading of the --against column [default: the program's file name].
    #[arg(long, value_name = "NAME", requires = "against")]
    against_name: Option<String>,
    /// A config file template for the peer: placeholders filled in as in the command, written
    /// to {dir} under the template's file name, its path given as {config}.
    #[arg(long, value_name = "FILE", requires = "against")]
    against_config: Option<std::path::PathBuf>,
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
    let threads = match args.serve {
        Some(Serve::Hub { .. }) => std::env::var("HUB_BENCH_HUB_THREADS")
            .ok()
            .and_then(|t| t.parse().ok())
            .unwrap_or(2),
        _ => 2,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
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
    /// Runs under HUB_BENCH_HUB_WRAP: it is let exit (stdin closed) so the wrapper can write
    /// its report.
    wrapped: bool,
}

impl ChildProc {
    async fn spawn(args: &[String]) -> Result<ChildProc> {
        let exe = std::env::current_exe()?;
        // HUB_BENCH_HUB_WRAP: a command line the hub child runs under (a profiler).
        let wrap = match std::env::var("HUB_BENCH_HUB_WRAP") {
            Ok(w) if args.first().is_some_and(|a| a == "serve-hub") => split_words(&w)?,
            _ => Vec::new(),
        };
        let mut command = match wrap.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        let mut child = command
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
            wrapped: !wrap.is_empty(),
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

    /// Kills the child and waits for it to exit (its sockets are closed by then). A wrapped
    /// child gets its stdin closed and up to 120 s to exit on its own first.
    async fn stop(mut self) {
        if self.wrapped {
            drop(self.stdin);
            if tokio::time::timeout(Duration::from_secs(120), self.child.wait())
                .await
                .is_ok()
            {
                return;
            }
        }
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

/// What the miners connect to: the pool itself, the hub in front of it, or the peer given
/// with `--against`.
#[derive(Clone, Copy, Debug)]
enum Via<'a> {
    Direct,
    Hub,
    Against(&'a PeerSpec),
}

impl Via<'_> {
    /// The name in the JSON keys.
    fn name(self) -> &'static str {
        match self {
            Via::Direct => "direct",
            Via::Hub => "hub",
            Via::Against(_) => "against",
        }
    }

    /// Its column in the table.
    fn slot(self) -> usize {
        match self {
            Via::Direct => 0,
            Via::Hub => 1,
            Via::Against(_) => 2,
        }
    }

    /// Its name in progress lines.
    fn label(self) -> String {
        match self {
            Via::Against(p) => format!("{} (--against)", p.name),
            v => v.name().into(),
        }
    }
}

/// Pool child and (unless direct) the hub or the peer in front of it, for one phase.
struct Rig {
    pool: ChildProc,
    hub: Option<Front>,
}

impl Rig {
    async fn start(via: Via<'_>, pool_difficulty: f64, miner_difficulty: f64) -> Result<Rig> {
        let pool = ChildProc::spawn(&[
            "serve-pool".into(),
            "--difficulty".into(),
            pool_difficulty.to_string(),
        ])
        .await?;
        let hub = Front::start(via, pool.addr, miner_difficulty).await?;
        Ok(Rig { pool, hub })
    }

    fn miner_addr(&self) -> SocketAddr {
        self.hub
            .as_ref()
            .map(|h| h.addr())
            .unwrap_or(self.pool.addr)
    }

    /// CPU so far of the process the miners talk to (hub, peer, or the pool when direct), ms.
    fn front_cpu_ms(&self) -> Option<f64> {
        match &self.hub {
            Some(h) => h.cpu_ms(),
            None => self.pool.child.id().and_then(cpu_ms_of),
        }
    }

    async fn stop(self) {
        if let Some(h) = self.hub {
            h.stop().await;
        }
        self.pool.stop().await;
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
            let why = miners
                .iter()
                .filter_map(|m| {
                    m.with_stats(|s| {
                        let ready = s.authorized == Some(true) && s.jobs_received > 0;
                        (!ready).then(|| {
                            s.last_error.clone().unwrap_or_else(|| {
                                format!(
                                    "connected {}, subscribed {}, authorized {:?}, jobs {}",
                                    s.connected, s.subscribed, s.authorized, s.jobs_received
                                )
                            })
                        })
                    })
                    .flatten()
                })
                .next()
                .unwrap_or_default();
            bail!(
                "only {ready} of {} miners got work (a miner without: {why})",
                miners.len()
            );
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
    /// CPU of the process the miners talk to (hub, peer; the pool when direct) per 1,000
    /// shares accepted at the pool, ms.
    cpu_per_1000_ms: Option<f64>,
    /// The difficulty the miners were given.
    received_difficulty: f64,
    /// Set when that is above the phase's difficulty (a peer's floor): nothing was measured.
    floor: Option<f64>,
}

/// The median of `xs` (the mean of the middle two for an even count); `None` when empty.
fn median(xs: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// One side's throughput over several rounds: each figure's median (the first round's floor
/// and difficulty; rejects summed).
fn median_throughput(runs: &[Throughput]) -> Option<Throughput> {
    let first = *runs.first()?;
    let of = |f: fn(&Throughput) -> f64| median(&runs.iter().map(f).collect::<Vec<_>>());
    Some(Throughput {
        shares_per_sec: of(|t| t.shares_per_sec).unwrap_or(0.0),
        pool_shares_per_sec: of(|t| t.pool_shares_per_sec).unwrap_or(0.0),
        rejected: runs.iter().map(|t| t.rejected).sum(),
        cpu_per_1000_ms: median(
            &runs
                .iter()
                .filter_map(|t| t.cpu_per_1000_ms)
                .collect::<Vec<_>>(),
        ),
        ..first
    })
}

/// Accepted shares so far, as the pool child counts them.
async fn pool_accepted(pool: &mut ChildProc) -> Result<u64> {
    let line = pool.command("stats").await?;
    line.strip_prefix("STATS ")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| anyhow!("unexpected stats line from the pool: {line}"))
}

async fn throughput(via: Via<'_>, quick: bool, en2_per_share: bool) -> Result<Throughput> {
    let mut rig = Rig::start(via, EVERY_HASH, EVERY_HASH).await?;
    let n = if quick { 40 } else { 100 };
    let miners = spawn_miners(rig.miner_addr(), n, |i| MinerConfig {
        hashrate: None,
        max_in_flight: 32,
        record_shares: false,
        version_rolling: i % 2 == 0,
        reconnect_delay: None,
        extranonce2_per_share: en2_per_share,
        ..MinerConfig::new(format!("tp.{i}"))
    });
    let ready = wait_ready(&miners, Duration::from_secs(60)).await;
    let received = received_difficulty(&miners);
    // A peer that served only some of the miners may still show its floor (the phase is moot
    // then anyway); otherwise its failure is the result.
    if let Err(e) = ready {
        if floor_of(received, EVERY_HASH).is_none() {
            return Err(e);
        }
        eprintln!("[hub-bench] throughput via {}: {e:#}", via.label());
    }
    if let Some(floor) = floor_of(received, EVERY_HASH) {
        // At the peer's floor the miners find a share every few seconds, not thousands per
        // second: a figure would measure the miners' hashing, not the peer.
        drop(miners);
        rig.stop().await;
        return Ok(Throughput {
            received_difficulty: received,
            floor: Some(floor),
            ..Throughput::default()
        });
    }
    tokio::time::sleep(Duration::from_secs(if quick { 1 } else { 3 })).await;
    let p0 = pool_accepted(&mut rig.pool).await?;
    let c0 = rig.front_cpu_ms();
    let (a0, r0) = total_accepted(&miners);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(if quick { 5 } else { 15 })).await;
    let (a1, r1) = total_accepted(&miners);
    let c1 = rig.front_cpu_ms();
    let p1 = pool_accepted(&mut rig.pool).await?;
    let secs = t0.elapsed().as_secs_f64();
    drop(miners);
    rig.stop().await;
    let at_pool = p1.saturating_sub(p0);
    Ok(Throughput {
        shares_per_sec: (a1 - a0) as f64 / secs,
        pool_shares_per_sec: at_pool as f64 / secs,
        rejected: r1 - r0,
        cpu_per_1000_ms: match (c0, c1) {
            (Some(c0), Some(c1)) if at_pool > 0 => Some((c1 - c0) / (at_pool as f64 / 1000.0)),
            _ => None,
        },
        received_difficulty: received,
        floor: None,
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
    /// The difficulty the miners were given.
    received_difficulty: f64,
    /// Set when that is above the phase's difficulty (a peer's floor): nothing was measured.
    floor: Option<f64>,
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
async fn latency(via: Via<'_>, quick: bool) -> Result<Latency> {
    let pool = SimPool::start(PoolConfig {
        name: "bench-latency-pool".into(),
        difficulty: LATENCY_DIFFICULTY,
        job_interval: None,
        jobs_kept: 64,
        ..PoolConfig::default()
    })
    .await?;
    let hub = Front::start(via, pool.addr(), LATENCY_DIFFICULTY).await?;
    let addr = hub.as_ref().map(|h| h.addr()).unwrap_or(pool.addr());
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
    let ready = wait_ready(&miners, Duration::from_secs(120)).await;
    let received = received_difficulty(&miners);
    if let Err(e) = ready {
        if floor_of(received, LATENCY_DIFFICULTY).is_none() {
            return Err(e);
        }
        eprintln!("[hub-bench] latency via {}: {e:#}", via.label());
    }
    if let Some(floor) = floor_of(received, LATENCY_DIFFICULTY) {
        // At the floor the miners' shares come millions of times rarer than 5/s: no samples.
        drop(miners);
        if let Some(h) = hub {
            h.stop().await;
        }
        return Ok(Latency {
            received_difficulty: received,
            floor: Some(floor),
            ..Latency::default()
        });
    }
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
    if let Some(h) = hub {
        h.stop().await;
    }
    Ok(Latency {
        shares_per_sec: (a1 - a0) as f64 / secs,
        to_pool_p50_ms: percentile(&to_pool, 0.50),
        to_pool_p99_ms: percentile(&to_pool, 0.99),
        to_pool_samples: to_pool.len(),
        answer_p50_ms: percentile(&answers, 0.50),
        answer_p99_ms: percentile(&answers, 0.99),
        received_difficulty: received,
        floor: None,
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
    /// The difficulty the miners were given (1 asked).
    received_difficulty: f64,
}

async fn memory_and_broadcast(via: Via<'_>, n: usize) -> Result<Memory> {
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
    let received = received_difficulty(&miners);
    // Idle means quiet for a while: 3 s, past the hub's 2 s housekeeping tick on which a quiet
    // connection gives its read, write and queue buffers back (the same wait for every side).
    tokio::time::sleep(Duration::from_secs(3)).await;
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
    rig.stop().await;
    Ok(Memory {
        miners: n,
        rss_per_miner_kib: loaded.saturating_sub(idle) as f64 / n as f64,
        rss_idle_kib: idle,
        rss_loaded_kib: loaded,
        broadcast_median_ms: samples.get(samples.len() / 2).copied().unwrap_or(f64::NAN),
        broadcast_max_ms: samples.last().copied().unwrap_or(f64::NAN),
        received_difficulty: received,
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
#[derive(Clone, Copy, Debug)]
enum Sender<'a> {
    /// The floor: a raw sender with no protocol (`serve-floor`).
    Floor,
    /// The simulated pool, straight or through the hub or the peer.
    Via(Via<'a>),
}

impl Sender<'_> {
    fn name(self) -> &'static str {
        match self {
            Sender::Floor => "floor",
            Sender::Via(v) => v.name(),
        }
    }

    fn label(self) -> String {
        match self {
            Sender::Floor => "floor".into(),
            Sender::Via(v) => v.label(),
        }
    }
}

/// `n` light receivers connected to the sender; `rounds` rounds of "the sender is asked for a
/// new job, time until every receiver has it".
async fn broadcast_light(from: Sender<'_>, n: usize, rounds: usize) -> Result<Broadcast> {
    // `jobs` is asked for new jobs (the floor or the pool); `hub` relays them when present.
    let (mut jobs, hub) = match from {
        Sender::Floor => (ChildProc::spawn(&["serve-floor".into()]).await?, None),
        Sender::Via(via) => {
            let rig = Rig::start(via, 1.0, 1.0).await?;
            (rig.pool, rig.hub)
        }
    };
    let addr = hub.as_ref().map_or(jobs.addr, |h| h.addr());
    let rx = LightReceivers::connect(addr, n).await?;
    let none = vec![0; n];
    if matches!(from, Sender::Floor) {
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
    let jobs_pid = jobs.child.id();
    let sender_cpu = || match &hub {
        Some(h) => h.cpu_ms(),
        None => jobs_pid.and_then(cpu_ms_of),
    };
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
        from.label(),
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
// Peer (`--against`)
// ---------------------------------------------------------------------------------------------

/// A placeholder of an `--against` command line or of an `--against-config` template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Placeholder {
    /// `host:port` of the simulated pool the bench started for the phase.
    Pool,
    /// `host:port` the peer must listen on (a free loopback port chosen by the bench).
    Listen,
    PoolHost,
    PoolPort,
    ListenHost,
    ListenPort,
    /// A fresh directory for the peer (its working directory; removed when it stops).
    Dir,
    /// Path of the `--against-config` template, rendered into `{dir}`.
    Config,
}

impl Placeholder {
    const ALL: [Placeholder; 8] = [
        Placeholder::Pool,
        Placeholder::Listen,
        Placeholder::PoolHost,
        Placeholder::PoolPort,
        Placeholder::ListenHost,
        Placeholder::ListenPort,
        Placeholder::Dir,
        Placeholder::Config,
    ];

    fn name(self) -> &'static str {
        match self {
            Placeholder::Pool => "pool",
            Placeholder::Listen => "listen",
            Placeholder::PoolHost => "pool_host",
            Placeholder::PoolPort => "pool_port",
            Placeholder::ListenHost => "listen_host",
            Placeholder::ListenPort => "listen_port",
            Placeholder::Dir => "dir",
            Placeholder::Config => "config",
        }
    }

    fn known() -> String {
        Placeholder::ALL
            .iter()
            .map(|p| format!("{{{}}}", p.name()))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Part of a template: text, or a value filled in when the peer starts.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    Value(Placeholder),
}

/// Why an `--against` command line (or config template) cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
enum AgainstError {
    #[error("the --against command is empty")]
    Empty,
    #[error("the --against command has an unterminated {0} quote")]
    UnterminatedQuote(char),
    #[error("the --against command ends with a lone backslash")]
    TrailingBackslash,
    #[error("unknown placeholder {{{name}}} in {place} (known: {known}; write {{{{ for a literal brace)", known = Placeholder::known())]
    UnknownPlaceholder { name: String, place: &'static str },
    #[error(
        "the --against command never says where the peer listens: put {{listen}} (or \
         {{listen_port}}) in the command or in the --against-config template"
    )]
    MissingListen,
    #[error(
        "the --against command never names the upstream pool: put {{pool}} (or {{pool_port}}) in \
         the command or in the --against-config template"
    )]
    MissingPool,
    #[error("{{config}} is used but no --against-config template was given")]
    ConfigWithoutTemplate,
    #[error("an --against-config template is given but the command never uses {{config}}")]
    TemplateUnused,
}

/// Splits a command line into words as a POSIX shell would, without running one: blanks
/// separate words; `'…'` is literal; in `"…"` a backslash escapes `"` and `\`; elsewhere a
/// backslash escapes the next character. No variables, globs or redirections (give
/// `sh -c '…'` as the command for those).
fn split_words(line: &str) -> Result<Vec<String>, AgainstError> {
    let mut words = Vec::new();
    let mut word = String::new();
    // A word has started (so `''` gives an empty word).
    let mut started = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            '\'' => {
                started = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(AgainstError::UnterminatedQuote('\'')),
                    }
                }
            }
            '"' => {
                started = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(AgainstError::UnterminatedQuote('"')),
                        },
                        Some(c) => word.push(c),
                        None => return Err(AgainstError::UnterminatedQuote('"')),
                    }
                }
            }
            '\\' => {
                started = true;
                word.push(chars.next().ok_or(AgainstError::TrailingBackslash)?);
            }
            c => {
                started = true;
                word.push(c);
            }
        }
    }
    if started {
        words.push(word);
    }
    Ok(words)
}

/// Parses placeholders in `text`: `{name}` (lower-case letters and `_`) is a placeholder and
/// must be a known one; `{{` and `}}` are literal braces; any other brace is literal (so JSON
/// such as `{"url":"{pool}"}` needs no escaping).
fn parse_template(text: &str, place: &'static str) -> Result<Vec<Piece>, AgainstError> {
    let mut pieces = Vec::new();
    let mut lit = String::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if rest.starts_with("{{") || rest.starts_with("}}") {
            lit.push(c);
            rest = &rest[2..];
            continue;
        }
        if c == '{' {
            let after = &rest[1..];
            let name_len = after
                .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
                .unwrap_or(after.len());
            if name_len > 0 && after[name_len..].starts_with('}') {
                let name = &after[..name_len];
                let p = Placeholder::ALL
                    .into_iter()
                    .find(|p| p.name() == name)
                    .ok_or_else(|| AgainstError::UnknownPlaceholder {
                        name: name.to_owned(),
                        place,
                    })?;
                if !lit.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut lit)));
                }
                pieces.push(Piece::Value(p));
                rest = &after[name_len + 1..];
                continue;
            }
        }
        lit.push(c);
        rest = &rest[c.len_utf8()..];
    }
    if !lit.is_empty() {
        pieces.push(Piece::Text(lit));
    }
    Ok(pieces)
}

/// The values a peer's templates are rendered with.
struct PeerValues {
    pool: SocketAddr,
    listen: SocketAddr,
    dir: std::path::PathBuf,
    config: std::path::PathBuf,
}

fn render(pieces: &[Piece], v: &PeerValues) -> String {
    pieces
        .iter()
        .map(|p| match p {
            Piece::Text(t) => t.clone(),
            Piece::Value(Placeholder::Pool) => v.pool.to_string(),
            Piece::Value(Placeholder::Listen) => v.listen.to_string(),
            Piece::Value(Placeholder::PoolHost) => v.pool.ip().to_string(),
            Piece::Value(Placeholder::PoolPort) => v.pool.port().to_string(),
            Piece::Value(Placeholder::ListenHost) => v.listen.ip().to_string(),
            Piece::Value(Placeholder::ListenPort) => v.listen.port().to_string(),
            Piece::Value(Placeholder::Dir) => v.dir.display().to_string(),
            Piece::Value(Placeholder::Config) => v.config.display().to_string(),
        })
        .collect()
}

/// A config file rendered for each start of the peer.
#[derive(Clone, Debug)]
struct ConfigTemplate {
    /// Name of the rendered file in `{dir}` (the template's own file name).
    file_name: String,
    pieces: Vec<Piece>,
}

/// A Stratum V1 proxy to measure under the hub's load: `--against "COMMAND"`.
#[derive(Clone, Debug)]
struct PeerSpec {
    /// Its column's heading: `--against-name`, else the program's file name.
    name: String,
    /// The command line as given.
    command: String,
    argv: Vec<Vec<Piece>>,
    config: Option<ConfigTemplate>,
}

impl PeerSpec {
    /// Checks the command (and template) once, before any phase runs: every later start only
    /// fills in values.
    fn parse(
        command: &str,
        name: Option<&str>,
        config: Option<(String, String)>,
    ) -> Result<PeerSpec, AgainstError> {
        let words = split_words(command)?;
        if words.is_empty() || words.first().is_some_and(|w| w.is_empty()) {
            return Err(AgainstError::Empty);
        }
        let argv = words
            .iter()
            .map(|w| parse_template(w, "the --against command"))
            .collect::<Result<Vec<_>, _>>()?;
        let config = config
            .map(|(file_name, text)| {
                Ok::<_, AgainstError>(ConfigTemplate {
                    file_name,
                    pieces: parse_template(&text, "the --against-config template")?,
                })
            })
            .transpose()?;
        let in_command = |p: Placeholder| argv.iter().flatten().any(|x| *x == Piece::Value(p));
        let anywhere = |p: Placeholder| {
            in_command(p)
                || config
                    .as_ref()
                    .is_some_and(|c| c.pieces.contains(&Piece::Value(p)))
        };
        if in_command(Placeholder::Config) && config.is_none() {
            return Err(AgainstError::ConfigWithoutTemplate);
        }
        if config.is_some() && !in_command(Placeholder::Config) {
            return Err(AgainstError::TemplateUnused);
        }
        if !anywhere(Placeholder::Listen) && !anywhere(Placeholder::ListenPort) {
            return Err(AgainstError::MissingListen);
        }
        if !anywhere(Placeholder::Pool) && !anywhere(Placeholder::PoolPort) {
            return Err(AgainstError::MissingPool);
        }
        let name = match name {
            Some(n) => n.to_owned(),
            None => match argv.first().map(|w| w.as_slice()) {
                Some([Piece::Text(program)]) => {
                    let base = program.rsplit('/').next().unwrap_or(program);
                    if matches!(base, "sh" | "bash" | "dash" | "env" | "exec") {
                        "peer".to_owned()
                    } else {
                        base.to_owned()
                    }
                }
                _ => "peer".to_owned(),
            },
        };
        Ok(PeerSpec {
            name,
            command: command.to_owned(),
            argv,
            config,
        })
    }

    fn render_argv(&self, v: &PeerValues) -> Vec<String> {
        self.argv.iter().map(|w| render(w, v)).collect()
    }
}

/// Fields of `/proc/<pid>/stat` after the command name, parsed for the process-group scan.
struct ProcStat {
    pgrp: u32,
    /// utime + stime + cutime + cstime, clock ticks.
    ticks: u64,
}

fn proc_stat(pid: u32) -> Option<ProcStat> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let f: Vec<&str> = s.get(s.rfind(')')? + 2..)?.split_whitespace().collect();
    // From field 3 (state): pgrp is field 5, utime..cstime fields 14..17.
    let num = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok());
    Some(ProcStat {
        pgrp: u32::try_from(num(2)?).ok()?,
        ticks: num(11)? + num(12)? + num(13)? + num(14)?,
    })
}

/// Processes of the group `pgid` (the peer and whatever it started: a `sh -c` wrapper, forked
/// workers).
fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| proc_stat(*pid).is_some_and(|s| s.pgrp == pgid))
        .collect()
}

/// A running peer: its process group (it is started as the leader of a new group), the address
/// it listens on and its directory. Dropping it kills the group.
struct PeerProc {
    child: Child,
    pgid: u32,
    addr: SocketAddr,
    dir: std::path::PathBuf,
    log: std::path::PathBuf,
    stopped: bool,
    /// Keep `{dir}` (its `peer.log` is named in a start error).
    keep_dir: bool,
}

/// Distinguishes the directories of the peers one bench run starts.
static PEER_STARTS: AtomicUsize = AtomicUsize::new(0);

impl PeerProc {
    /// Renders the templates, starts the peer in `{dir}` with its output in `{dir}/peer.log`,
    /// and waits (up to 30 s) until `{listen}` accepts TCP.
    async fn start(spec: &PeerSpec, pool: SocketAddr) -> Result<PeerProc> {
        let dir = std::env::temp_dir().join(format!(
            "hub-bench-peer.{}.{}",
            std::process::id(),
            PEER_STARTS.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let listen = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let values = PeerValues {
            pool,
            listen,
            config: dir.join(
                spec.config
                    .as_ref()
                    .map_or("peer.conf", |c| c.file_name.as_str()),
            ),
            dir: dir.clone(),
        };
        if let Some(c) = &spec.config {
            std::fs::write(&values.config, render(&c.pieces, &values))
                .with_context(|| format!("writing {}", values.config.display()))?;
        }
        let argv = spec.render_argv(&values);
        let (program, args) = argv.split_first().ok_or(AgainstError::Empty)?;
        let log = dir.join("peer.log");
        let out = std::fs::File::create(&log)?;
        let child = Command::new(program)
            .args(args)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting the peer: {}", argv.join(" ")))?;
        let pgid = child
            .id()
            .ok_or_else(|| anyhow!("the peer exited at once"))?;
        let mut peer = PeerProc {
            child,
            pgid,
            addr: listen,
            dir,
            log,
            stopped: false,
            keep_dir: std::env::var_os("HUB_BENCH_KEEP_PEER_DIR").is_some(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = peer.child.try_wait()? {
                peer.keep_dir = true;
                bail!(
                    "the peer ({}) exited ({status}) before listening on {listen}; its output: {}",
                    argv.join(" "),
                    peer.log.display()
                );
            }
            if tokio::net::TcpStream::connect(listen).await.is_ok() {
                return Ok(peer);
            }
            if Instant::now() >= deadline {
                peer.keep_dir = true;
                bail!(
                    "the peer ({}) did not listen on {listen} within 30 s; its output: {}",
                    argv.join(" "),
                    peer.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// RSS of the whole group, KiB (a `sh -c` wrapper's few hundred KiB included: constant,
    /// so out of every per-miner difference).
    fn rss_kib(&self) -> Option<u64> {
        let members = group_members(self.pgid);
        if members.is_empty() {
            return None;
        }
        Some(
            members
                .iter()
                .filter_map(|pid| rss_kib_of(&format!("/proc/{pid}/status")))
                .sum(),
        )
    }

    /// CPU time of the whole group so far (children it reaped included), ms; USER_HZ = 100.
    fn cpu_ms(&self) -> Option<f64> {
        let members = group_members(self.pgid);
        if members.is_empty() {
            return None;
        }
        let ticks: u64 = members
            .iter()
            .filter_map(|pid| proc_stat(*pid))
            .map(|s| s.ticks)
            .sum();
        Some(ticks as f64 * 10.0)
    }

    fn signal_group(&self, signal: &str) {
        let _ = std::process::Command::new("kill")
            .args([signal, "--", &format!("-{}", self.pgid)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// SIGTERM to the group, SIGKILL after 3 s; removes `{dir}` (kept when
    /// HUB_BENCH_KEEP_PEER_DIR is set, or when the peer never listened).
    async fn stop(mut self) {
        self.signal_group("-TERM");
        if tokio::time::timeout(Duration::from_secs(3), self.child.wait())
            .await
            .is_err()
        {
            self.signal_group("-KILL");
            let _ = self.child.wait().await;
        }
        // Whatever the leader left behind in its group.
        if !group_members(self.pgid).is_empty() {
            self.signal_group("-KILL");
        }
        self.stopped = true;
        if !self.keep_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A phase that failed drops its peer without [`PeerProc::stop`]: the group is killed and
/// `{dir}` removed all the same (kept as `stop` keeps it).
impl Drop for PeerProc {
    fn drop(&mut self) {
        if !self.stopped {
            self.signal_group("-KILL");
            if !self.keep_dir {
                let _ = std::fs::remove_dir_all(&self.dir);
            }
        }
    }
}

/// The server the miners connect to in front of the pool: the hub or the peer.
enum Front {
    Hub(ChildProc),
    Peer(PeerProc),
}

impl Front {
    /// Starts the front `via` names in front of the pool at `pool` (None for `Via::Direct`).
    async fn start(via: Via<'_>, pool: SocketAddr, difficulty: f64) -> Result<Option<Front>> {
        Ok(match via {
            Via::Direct => None,
            Via::Hub => Some(Front::Hub(
                ChildProc::spawn(&[
                    "serve-hub".into(),
                    "--pool".into(),
                    format!("stratum+tcp://{pool}"),
                    "--difficulty".into(),
                    difficulty.to_string(),
                ])
                .await?,
            )),
            Via::Against(spec) => Some(Front::Peer(PeerProc::start(spec, pool).await?)),
        })
    }

    fn addr(&self) -> SocketAddr {
        match self {
            Front::Hub(h) => h.addr,
            Front::Peer(p) => p.addr,
        }
    }

    fn rss_kib(&self) -> Option<u64> {
        match self {
            Front::Hub(h) => h.rss_kib(),
            Front::Peer(p) => p.rss_kib(),
        }
    }

    fn cpu_ms(&self) -> Option<f64> {
        match self {
            Front::Hub(h) => h.child.id().and_then(cpu_ms_of),
            Front::Peer(p) => p.cpu_ms(),
        }
    }

    async fn stop(self) {
        match self {
            Front::Hub(h) => h.stop().await,
            Front::Peer(p) => p.stop().await,
        }
    }
}

/// The difficulty the miners were given (the highest any of them mines at).
fn received_difficulty(miners: &[SimMiner]) -> f64 {
    miners
        .iter()
        .filter_map(|m| m.with_stats(|s| s.difficulty))
        .fold(0.0, f64::max)
}

/// `Some(received)` when the miners got a higher difficulty than the phase asked for: the
/// front's difficulty floor, which makes a phase built on that difficulty meaningless.
fn floor_of(received: f64, asked: f64) -> Option<f64> {
    (received > asked * (1.0 + 1e-9)).then_some(received)
}

/// A difficulty as people write it: `1`, `0.5`, `1e-12`.
fn fmt_difficulty(d: f64) -> String {
    if d >= 1e-3 {
        format!("{d}")
    } else {
        format!("{d:e}")
    }
}

// ---------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------

/// One line of the table: the figure, its value per column (direct, hub, peer), the target.
struct Row {
    what: String,
    cells: [String; 3],
    target: String,
}

/// A failed phase in the table: the start of the error (the whole of it is in the JSON line
/// and on stderr).
fn error_cell(e: &anyhow::Error) -> String {
    const MAX: usize = 40;
    let full = format!("error: {e:#}");
    if full.chars().count() <= MAX {
        full
    } else {
        format!("{}…", full.chars().take(MAX - 1).collect::<String>())
    }
}

/// Reads `--against` (and its template) into a checked spec.
fn peer_spec(args: &Args) -> Result<Option<PeerSpec>> {
    let Some(command) = &args.against else {
        return Ok(None);
    };
    let config = match &args.against_config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading --against-config {}", path.display()))?;
            let file_name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("peer.conf")
                .to_owned();
            Some((file_name, text))
        }
        None => None,
    };
    Ok(Some(PeerSpec::parse(
        command,
        args.against_name.as_deref(),
        config,
    )?))
}

async fn bench(args: &Args) -> Result<()> {
    let peer = peer_spec(args)?;
    let want = |p: &str| args.phases.is_empty() || args.phases.iter().any(|x| x == p);
    let mut vias: Vec<Via> = if args.no_baseline {
        vec![Via::Hub]
    } else {
        vec![Via::Direct, Via::Hub]
    };
    if let Some(p) = &peer {
        vias.push(Via::Against(p));
    }
    let idle_miners = args.idle_miners.unwrap_or(10_000);
    let started = Instant::now();
    let mut report = serde_json::Map::new();
    report.insert("quick".into(), json!(args.quick));
    if let Some(p) = &peer {
        report.insert("against_name".into(), json!(p.name));
        report.insert("against_command".into(), json!(p.command));
    }
    let mut rows: Vec<Row> = Vec::new();
    let mut row3 = |what: &str, cells: [String; 3], target: &str| {
        rows.push(Row {
            what: what.into(),
            cells,
            target: target.into(),
        })
    };
    let fmt = |v: Option<f64>, prec: usize| match v {
        Some(x) if x.is_finite() => format!("{x:.prec$}"),
        _ => "-".into(),
    };
    // A peer's cell for a phase its difficulty floor made meaningless.
    let floored = |floor: f64| format!("n/a: floor {}", fmt_difficulty(floor));

    if want("throughput") {
        let rounds = args.throughput_rounds.max(1);
        let mut runs: [Vec<Throughput>; 3] = [Vec::new(), Vec::new(), Vec::new()];
        let mut errors: [Option<String>; 3] = [None, None, None];
        for round in 1..=rounds {
            for via in &vias {
                eprintln!(
                    "[hub-bench] throughput via {} (round {round} of {rounds}) ...",
                    via.label()
                );
                match throughput(*via, args.quick, args.extranonce2_per_share).await {
                    Ok(t) => runs[via.slot()].push(t),
                    Err(e) => {
                        eprintln!("[hub-bench] throughput via {}: {e:#}", via.label());
                        report.insert(
                            format!("throughput_{}_error", via.name()),
                            json!(format!("{e:#}")),
                        );
                        errors[via.slot()] = Some(error_cell(&e));
                    }
                }
            }
        }
        // Each side's median over the rounds (one round: its figures).
        let r: [Option<Throughput>; 3] = std::array::from_fn(|i| median_throughput(&runs[i]));
        // Each round's ratio to the direct figure of the same round.
        let ratios = |i: usize| -> Vec<f64> {
            runs[0]
                .iter()
                .zip(&runs[i])
                .filter(|(d, t)| {
                    d.floor.is_none() && t.floor.is_none() && d.pool_shares_per_sec > 0.0
                })
                .map(|(d, t)| t.pool_shares_per_sec / d.pool_shares_per_sec)
                .collect()
        };
        for via in &vias {
            if let Some(t) = r[via.slot()] {
                {
                    let v = via.name();
                    report.insert(
                        format!("throughput_{v}_received_difficulty"),
                        json!(t.received_difficulty),
                    );
                    if let Some(floor) = t.floor {
                        report.insert(format!("throughput_{v}_difficulty_floor"), json!(floor));
                        continue;
                    }
                    report.insert(
                        format!("throughput_{v}_shares_per_sec"),
                        json!(t.shares_per_sec.round()),
                    );
                    report.insert(
                        format!("throughput_{v}_pool_accepted_per_sec"),
                        json!(t.pool_shares_per_sec.round()),
                    );
                    report.insert(format!("throughput_{v}_rejected"), json!(t.rejected));
                    if let Some(c) = t.cpu_per_1000_ms {
                        report.insert(format!("throughput_{v}_cpu_ms_per_1000_shares"), json!(c));
                    }
                }
            }
        }
        // The peer's cell: its figure, its floor, or its error.
        let cell = |i: usize, f: &dyn Fn(&Throughput) -> String| match (&r[i], &errors[i]) {
            (Some(t), _) if t.floor.is_some() => floored(t.received_difficulty),
            (Some(t), _) => f(t),
            (None, Some(e)) if i == 2 => e.clone(),
            _ => "-".into(),
        };
        let sps = |t: &Throughput| fmt(Some(t.shares_per_sec), 0);
        let pool = |t: &Throughput| fmt(Some(t.pool_shares_per_sec), 0);
        row3(
            "throughput, shares/s answered to miners",
            [cell(0, &sps), cell(1, &sps), cell(2, &sps)],
            "",
        );
        row3(
            "throughput, shares/s accepted at the pool",
            [cell(0, &pool), cell(1, &pool), cell(2, &pool)],
            ">= 50000",
        );
        if r[0].is_some_and(|d| d.floor.is_none() && d.pool_shares_per_sec > 0.0) {
            let mut ratio_cells = [String::new(), String::new(), String::new()];
            for (i, cell_text) in ratio_cells.iter_mut().enumerate().skip(1) {
                let per_round = ratios(i);
                let Some(m) = median(&per_round) else {
                    *cell_text = cell(i, &|_| "-".into());
                    continue;
                };
                let v = if i == 1 { "hub" } else { "against" };
                report.insert(format!("throughput_{v}_over_direct"), json!(m));
                *cell_text = fmt(Some(m), 2);
                if rounds > 1 {
                    report.insert(
                        format!("throughput_{v}_over_direct_rounds"),
                        json!(per_round),
                    );
                    let each: Vec<String> = per_round.iter().map(|x| fmt(Some(*x), 2)).collect();
                    *cell_text = format!("{} ({})", fmt(Some(m), 2), each.join(" "));
                }
            }
            row3(
                if rounds > 1 {
                    "throughput at the pool, / direct (median; each round)"
                } else {
                    "throughput at the pool, / direct"
                },
                ratio_cells,
                "",
            );
        }
        let rejects = |t: &Throughput| t.rejected.to_string();
        let cpu = |t: &Throughput| fmt(t.cpu_per_1000_ms, 1);
        let diff = |t: &Throughput| fmt_difficulty(t.received_difficulty);
        row3(
            "throughput, shares rejected",
            [cell(0, &rejects), cell(1, &rejects), cell(2, &rejects)],
            "",
        );
        row3(
            if peer.is_some() {
                "throughput, CPU ms per 1000 shares (pool | hub | peer)"
            } else {
                "throughput, CPU ms per 1000 shares (pool | hub)"
            },
            [cell(0, &cpu), cell(1, &cpu), cell(2, &cpu)],
            "",
        );
        if peer.is_some() {
            let diff_cell = |i: usize| r[i].as_ref().map_or("-".into(), diff);
            row3(
                &format!(
                    "throughput, difficulty the miners got (asked {})",
                    fmt_difficulty(EVERY_HASH)
                ),
                [diff_cell(0), diff_cell(1), diff_cell(2)],
                "",
            );
        }
    }
    if want("latency") {
        let mut r: [Option<Latency>; 3] = [None, None, None];
        let mut errors: [Option<String>; 3] = [None, None, None];
        for via in &vias {
            eprintln!("[hub-bench] latency via {} ...", via.label());
            match latency(*via, args.quick).await {
                Ok(l) => {
                    r[via.slot()] = Some(l);
                    let v = via.name();
                    if let Some(floor) = l.floor {
                        report.insert(format!("latency_{v}_difficulty_floor"), json!(floor));
                        continue;
                    }
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
                Err(e) => {
                    eprintln!("[hub-bench] latency via {}: {e:#}", via.label());
                    report.insert(
                        format!("latency_{}_error", via.name()),
                        json!(format!("{e:#}")),
                    );
                    errors[via.slot()] = Some(error_cell(&e));
                }
            }
        }
        let cell = |i: usize, f: &dyn Fn(&Latency) -> f64, prec: usize| match (&r[i], &errors[i]) {
            (Some(l), _) if l.floor.is_some() => floored(l.received_difficulty),
            (Some(l), _) => fmt(Some(f(l)), prec),
            (None, Some(e)) if i == 2 => e.clone(),
            _ => "-".into(),
        };
        let cells = |f: &dyn Fn(&Latency) -> f64, prec: usize| {
            [cell(0, f, prec), cell(1, f, prec), cell(2, f, prec)]
        };
        row3(
            "latency load, shares/s (1000 miners)",
            cells(&|l| l.shares_per_sec, 0),
            "5000",
        );
        row3("miner -> pool p50, ms", cells(&|l| l.to_pool_p50_ms, 3), "");
        row3("miner -> pool p99, ms", cells(&|l| l.to_pool_p99_ms, 3), "");
        row3("miner answer p50, ms", cells(&|l| l.answer_p50_ms, 3), "");
        row3("miner answer p99, ms", cells(&|l| l.answer_p99_ms, 3), "");
        let measured = |i: usize| r[i].filter(|l| l.floor.is_none());
        if let Some(d) = measured(0)
            && (measured(1).is_some() || measured(2).is_some())
        {
            let mut added = [String::new(), String::new(), String::new()];
            let mut added99 = [String::new(), String::new(), String::new()];
            for i in 1..3 {
                if let Some(h) = measured(i) {
                    let (a50, a99) = (
                        h.to_pool_p50_ms - d.to_pool_p50_ms,
                        h.to_pool_p99_ms - d.to_pool_p99_ms,
                    );
                    // The hub's keys stay as they were; the peer's carry its name.
                    let key = if i == 1 { "latency" } else { "latency_against" };
                    report.insert(format!("{key}_added_p50_ms"), json!(a50));
                    report.insert(format!("{key}_added_p99_ms"), json!(a99));
                    added[i] = fmt(Some(a50), 3);
                    added99[i] = fmt(Some(a99), 3);
                } else {
                    added[i] = cell(i, &|_| f64::NAN, 3);
                    added99[i] = added[i].clone();
                }
            }
            row3("added latency to pool p50, ms", added, "");
            row3("added latency to pool p99, ms", added99, "<= 1");
        }
        if peer.is_some() {
            let diff_cell = |i: usize| {
                r[i].as_ref()
                    .map_or("-".into(), |l| fmt_difficulty(l.received_difficulty))
            };
            row3(
                &format!(
                    "latency, difficulty the miners got (asked {})",
                    fmt_difficulty(LATENCY_DIFFICULTY)
                ),
                [diff_cell(0), diff_cell(1), diff_cell(2)],
                "",
            );
        }
    }
    if want("memory") {
        let mut r: [Option<Memory>; 3] = [None, None, None];
        let mut errors: [Option<String>; 3] = [None, None, None];
        for via in &vias {
            eprintln!(
                "[hub-bench] memory and broadcast with {idle_miners} miners via {} ...",
                via.label()
            );
            match memory_and_broadcast(*via, idle_miners).await {
                Ok(m) => {
                    r[via.slot()] = Some(m);
                    let v = via.name();
                    report.insert(format!("memory_{v}_miners"), json!(m.miners));
                    report.insert(
                        format!("memory_{v}_rss_per_miner_kib"),
                        json!(m.rss_per_miner_kib),
                    );
                    report.insert(format!("memory_{v}_rss_idle_kib"), json!(m.rss_idle_kib));
                    report.insert(
                        format!("memory_{v}_rss_loaded_kib"),
                        json!(m.rss_loaded_kib),
                    );
                    report.insert(
                        format!("broadcast_{v}_median_ms"),
                        json!(m.broadcast_median_ms),
                    );
                    report.insert(format!("broadcast_{v}_max_ms"), json!(m.broadcast_max_ms));
                    if peer.is_some() {
                        report.insert(
                            format!("memory_{v}_received_difficulty"),
                            json!(m.received_difficulty),
                        );
                    }
                }
                Err(e) => {
                    eprintln!("[hub-bench] memory via {}: {e:#}", via.label());
                    report.insert(
                        format!("memory_{}_error", via.name()),
                        json!(format!("{e:#}")),
                    );
                    errors[via.slot()] = Some(error_cell(&e));
                }
            }
        }
        let cells = |f: &dyn Fn(&Memory) -> f64, prec: usize| {
            let cell = |i: usize| match (&r[i], &errors[i]) {
                (Some(m), _) => fmt(Some(f(m)), prec),
                (None, Some(e)) if i == 2 => e.clone(),
                _ => "-".into(),
            };
            [cell(0), cell(1), cell(2)]
        };
        row3(
            &if peer.is_some() {
                format!("RSS per miner, KiB ({idle_miners} miners; pool | hub | peer)")
            } else {
                format!("RSS per miner, KiB ({idle_miners} miners; pool | hub)")
            },
            cells(&|m| m.rss_per_miner_kib, 2),
            "<= 16",
        );
        if let (Some(h), Some(p)) = (r[1], r[2]) {
            let ratio = h.rss_per_miner_kib / p.rss_per_miner_kib;
            report.insert("memory_hub_over_against".into(), json!(ratio));
            row3(
                "RSS per miner, hub / peer",
                ["".into(), fmt(Some(ratio), 2), "".into()],
                "",
            );
        }
        row3(
            &format!("new job to all {idle_miners} miners (SimMiners), median ms"),
            cells(&|m| m.broadcast_median_ms, 1),
            "",
        );
        row3(
            &format!("new job to all {idle_miners} miners (SimMiners), max ms"),
            cells(&|m| m.broadcast_max_ms, 1),
            "",
        );
        if peer.is_some() {
            row3(
                "memory, difficulty the miners got (asked 1)",
                [0, 1, 2].map(|i| {
                    r[i].as_ref()
                        .map_or("-".into(), |m| fmt_difficulty(m.received_difficulty))
                }),
                "",
            );
        }
    }
    if want("broadcast") {
        let mut senders: Vec<Sender> = vias.iter().map(|v| Sender::Via(*v)).collect();
        if !args.no_baseline {
            senders.insert(0, Sender::Floor);
        }
        // Direct, hub, peer, floor.
        let who = if peer.is_some() { "hub|peer" } else { "hub" };
        let mut r: [Option<Broadcast>; 4] = [None, None, None, None];
        let mut peer_error = None;
        for from in &senders {
            eprintln!(
                "[hub-bench] broadcast to {idle_miners} light receivers from {} ...",
                from.label()
            );
            let rounds = args
                .broadcast_rounds
                .unwrap_or(if args.quick { 5 } else { 9 });
            let slot = match from {
                Sender::Via(v) => v.slot(),
                Sender::Floor => 3,
            };
            match broadcast_light(*from, idle_miners, rounds).await {
                Ok(b) => {
                    r[slot] = Some(b);
                    let v = from.name();
                    report.insert("broadcast_light_receivers".into(), json!(b.receivers));
                    report.insert(format!("broadcast_light_{v}_median_ms"), json!(b.median_ms));
                    report.insert(format!("broadcast_light_{v}_max_ms"), json!(b.max_ms));
                    if let Some(c) = b.cpu_per_job_ms {
                        report.insert(format!("broadcast_light_{v}_cpu_ms_per_job"), json!(c));
                    }
                }
                Err(e) => {
                    eprintln!("[hub-bench] broadcast from {}: {e:#}", from.label());
                    report.insert(
                        format!("broadcast_light_{}_error", from.name()),
                        json!(format!("{e:#}")),
                    );
                    if slot == 2 {
                        peer_error = Some(error_cell(&e));
                    }
                }
            }
        }
        let cells = |f: &dyn Fn(&Broadcast) -> Option<f64>| {
            let cell = |i: usize| match (&r[i], &peer_error) {
                (Some(b), _) => fmt(f(b), 1),
                (None, Some(e)) if i == 2 => e.clone(),
                _ => "-".into(),
            };
            [cell(0), cell(1), cell(2)]
        };
        row3(
            &format!("new job to all {idle_miners} miners (light receivers), median ms"),
            cells(&|b| Some(b.median_ms)),
            "<= 50",
        );
        row3(
            &format!("new job to all {idle_miners} miners (light receivers), max ms"),
            cells(&|b| Some(b.max_ms)),
            "",
        );
        if let Some(f) = r[3] {
            row3(
                "  floor: raw writes of one line to every socket, median ms",
                [fmt(Some(f.median_ms), 1), "".into(), "".into()],
                "",
            );
        }
        row3(
            "sender CPU per job (all cores), ms",
            cells(&|b| b.cpu_per_job_ms),
            "",
        );
        if let Some(f) = r[3] {
            row3(
                "  floor: sender CPU per job, ms",
                [fmt(f.cpu_per_job_ms, 1), "".into(), "".into()],
                "",
            );
        }
        if let (Some(d), true) = (r[0], r[1].is_some() || r[2].is_some()) {
            let mut ratio = [String::new(), String::new(), String::new()];
            let mut added = [String::new(), String::new(), String::new()];
            for (i, b) in r.iter().enumerate().take(3).skip(1) {
                if let Some(h) = b {
                    let (q, a) = (h.median_ms / d.median_ms, h.median_ms - d.median_ms);
                    let v = if i == 1 { "hub" } else { "against" };
                    report.insert(format!("broadcast_light_{v}_over_direct"), json!(q));
                    report.insert(
                        if i == 1 {
                            "broadcast_light_added_median_ms".to_owned()
                        } else {
                            "broadcast_light_against_added_median_ms".to_owned()
                        },
                        json!(a),
                    );
                    ratio[i] = fmt(Some(q), 2);
                    added[i] = fmt(Some(a), 1);
                }
            }
            row3(
                &format!("light receivers, {who} / direct (median)"),
                ratio,
                "",
            );
            row3(
                &format!("light receivers, added by the {who} (median), ms"),
                added,
                "",
            );
        }
        if let Some(f) = r[3] {
            let mut ratio = [String::new(), String::new(), String::new()];
            let mut cpu = [String::new(), String::new(), String::new()];
            for (i, b) in r.iter().enumerate().take(3).skip(1) {
                if let Some(h) = b {
                    let v = if i == 1 { "hub" } else { "against" };
                    let q = h.median_ms / f.median_ms;
                    report.insert(format!("broadcast_light_{v}_over_floor"), json!(q));
                    ratio[i] = fmt(Some(q), 2);
                    if let (Some(fc), Some(hc)) = (f.cpu_per_job_ms, h.cpu_per_job_ms) {
                        report.insert(
                            format!("broadcast_light_{v}_cpu_over_floor"),
                            json!(hc / fc),
                        );
                        cpu[i] = fmt(Some(hc / fc), 2);
                    }
                }
            }
            if r[1].is_some() || r[2].is_some() {
                row3(
                    &format!("light receivers, {who} / floor (median)"),
                    ratio,
                    "",
                );
                if cpu.iter().any(|c| !c.is_empty()) {
                    row3(&format!("sender CPU per job, {who} / floor"), cpu, "");
                }
            }
        }
    }
    report.insert(
        "seconds".into(),
        json!((started.elapsed().as_secs_f64() * 10.0).round() / 10.0),
    );
    match &peer {
        None => {
            println!(
                "{:<64} {:>12} {:>12} {:>10}",
                "figure", "direct", "via hub", "target"
            );
            for Row {
                what,
                cells: [d, h, _],
                target,
            } in &rows
            {
                println!("{what:<64} {d:>12} {h:>12} {target:>10}");
            }
        }
        Some(p) => {
            let heading = format!("via {}", p.name);
            let wide = rows
                .iter()
                .map(|r| r.cells[2].chars().count())
                .chain([heading.chars().count(), 12])
                .max()
                .unwrap_or(12);
            println!(
                "{:<64} {:>12} {:>12} {:>wide$} {:>10}",
                "figure", "direct", "via hub", heading, "target"
            );
            for Row {
                what,
                cells: [d, h, x],
                target,
            } in &rows
            {
                println!("{what:<64} {d:>12} {h:>12} {x:>wide$} {target:>10}");
            }
        }
    }
    println!("{}", serde_json::Value::Object(report));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> PeerValues {
        PeerValues {
            pool: "127.0.0.1:3333".parse().unwrap(),
            listen: "127.0.0.1:4444".parse().unwrap(),
            dir: "/tmp/d".into(),
            config: "/tmp/d/ckproxy.conf".into(),
        }
    }

    #[test]
    fn splits_like_a_shell() {
        assert_eq!(
            split_words(r#"  a 'b c'  "d \"e\" \\ \x" f\ g '' "#).unwrap(),
            vec!["a", "b c", r#"d "e" \ \x"#, "f g", ""]
        );
        assert_eq!(split_words("").unwrap(), Vec::<String>::new());
        assert_eq!(
            split_words("a 'b"),
            Err(AgainstError::UnterminatedQuote('\''))
        );
        assert_eq!(
            split_words(r#"a "b"#),
            Err(AgainstError::UnterminatedQuote('"'))
        );
        assert_eq!(split_words("a \\"), Err(AgainstError::TrailingBackslash));
    }

    #[test]
    fn fills_in_placeholders() {
        let spec = PeerSpec::parse(
            "stratum-hub --pool stratum+tcp://{pool} --listen {listen}",
            None,
            None,
        )
        .unwrap();
        assert_eq!(spec.name, "stratum-hub");
        assert_eq!(
            spec.render_argv(&values()),
            vec![
                "stratum-hub",
                "--pool",
                "stratum+tcp://127.0.0.1:3333",
                "--listen",
                "127.0.0.1:4444"
            ]
        );
        // Inside quotes too (one word for `sh -c`), every placeholder, literal braces.
        let spec = PeerSpec::parse(
            "sh -c 'exec p {pool_host}:{pool_port} {listen_host} {listen_port} {dir} {{x}} {\"k\"}'",
            None,
            None,
        )
        .unwrap();
        assert_eq!(spec.name, "peer");
        assert_eq!(
            spec.render_argv(&values()),
            vec![
                "sh",
                "-c",
                "exec p 127.0.0.1:3333 127.0.0.1 4444 /tmp/d {x} {\"k\"}"
            ]
        );
    }

    #[test]
    fn renders_a_config_template() {
        let spec = PeerSpec::parse(
            "/opt/ckpool -p -c {config} -s {dir}",
            Some("ckpool"),
            Some((
                "ckproxy.conf".into(),
                r#"{"proxy":[{"url":"{pool}"}],"serverurl":["{listen}"]}"#.into(),
            )),
        )
        .unwrap();
        assert_eq!(spec.name, "ckpool");
        let v = values();
        assert_eq!(
            spec.render_argv(&v),
            vec![
                "/opt/ckpool",
                "-p",
                "-c",
                "/tmp/d/ckproxy.conf",
                "-s",
                "/tmp/d"
            ]
        );
        let c = spec.config.as_ref().unwrap();
        assert_eq!(
            render(&c.pieces, &v),
            r#"{"proxy":[{"url":"127.0.0.1:3333"}],"serverurl":["127.0.0.1:4444"]}"#
        );
    }

    #[test]
    fn refuses_bad_commands_with_reasons() {
        let parse = |c: &str| PeerSpec::parse(c, None, None).map(|_| ());
        assert_eq!(parse(""), Err(AgainstError::Empty));
        assert_eq!(parse("   "), Err(AgainstError::Empty));
        assert_eq!(parse("'' {pool} {listen}"), Err(AgainstError::Empty));
        assert_eq!(parse("proxy --up {pool}"), Err(AgainstError::MissingListen));
        assert_eq!(
            parse("proxy --listen {listen}"),
            Err(AgainstError::MissingPool)
        );
        let unknown = parse("proxy {pool} {listen} {poool}").unwrap_err();
        assert_eq!(
            unknown,
            AgainstError::UnknownPlaceholder {
                name: "poool".into(),
                place: "the --against command"
            }
        );
        assert!(unknown.to_string().contains("{poool}"), "{unknown}");
        assert!(unknown.to_string().contains("{listen}"), "{unknown}");
        assert_eq!(
            parse("proxy {pool} {listen} -c {config}"),
            Err(AgainstError::ConfigWithoutTemplate)
        );
        assert_eq!(
            PeerSpec::parse(
                "proxy {dir}",
                None,
                Some(("c".into(), "{pool} {listen}".into()))
            )
            .map(|_| ()),
            Err(AgainstError::TemplateUnused)
        );
        assert_eq!(
            PeerSpec::parse(
                "proxy {config}",
                None,
                Some(("c".into(), "{pool} {lisen}".into()))
            )
            .map(|_| ()),
            Err(AgainstError::UnknownPlaceholder {
                name: "lisen".into(),
                place: "the --against-config template"
            })
        );
        assert_eq!(
            parse("proxy '{pool} {listen}"),
            Err(AgainstError::UnterminatedQuote('\''))
        );
        // Where listen and pool come from the template, the command needs neither.
        assert!(
            PeerSpec::parse(
                "proxy {config}",
                None,
                Some(("c".into(), "{pool} {listen}".into()))
            )
            .is_ok()
        );
    }

    #[test]
    fn reports_a_floor_only_above_the_asked_difficulty() {
        assert_eq!(floor_of(1.0, EVERY_HASH), Some(1.0));
        assert_eq!(floor_of(EVERY_HASH, EVERY_HASH), None);
        assert_eq!(floor_of(1.0, 1.0), None);
        assert_eq!(fmt_difficulty(1.0), "1");
        assert_eq!(fmt_difficulty(EVERY_HASH), "1e-12");
    }

    #[test]
    fn rounds_report_each_figure_s_median() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0]), Some(3.0));
        assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[f64::NAN, 2.0]), Some(2.0));
        let t = |pool: f64, cpu: Option<f64>| Throughput {
            shares_per_sec: pool,
            pool_shares_per_sec: pool,
            rejected: 1,
            cpu_per_1000_ms: cpu,
            ..Throughput::default()
        };
        let m =
            median_throughput(&[t(300.0, Some(3.0)), t(100.0, None), t(200.0, Some(5.0))]).unwrap();
        assert_eq!(m.pool_shares_per_sec, 200.0);
        assert_eq!(m.cpu_per_1000_ms, Some(4.0));
        assert_eq!(m.rejected, 3);
        assert!(median_throughput(&[]).is_none());
    }
}
