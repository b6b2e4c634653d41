//! `stratum-sim`: the simulated pool and miner as standalone programs, so a person can put a real
//! miner (e.g. cpuminer) in front of the hub and a share-validating pool behind it:
//!
//! ```text
//! stratum-sim pool --listen 127.0.0.1:3334 --difficulty 0.001
//! stratum-hub --listen 127.0.0.1:3333 --metrics 127.0.0.1:9100 --pool stratum+tcp://127.0.0.1:3334 --user farm
//! minerd -a sha256d -o stratum+tcp://127.0.0.1:3333 -u rig-01 -p x
//! ```
//!
//! The pool validates every share with real sha256d and prints per-worker verdicts periodically.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use hashsched_hub::sim::miner::{MinerConfig, SimMiner};
use hashsched_hub::sim::pool::{ConfigureSupport, JobIds, PoolConfig, SimPool};

#[derive(Parser, Debug)]
#[command(
    name = "stratum-sim",
    version,
    about = "Simulated Stratum V1 pool and miner doing real sha256d"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// A pool that validates every share (job, extranonce2 size, duplicate, ntime, version mask,
    /// target) and prints accepted / rejected counts per worker.
    Pool {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:3334")]
        listen: SocketAddr,
        /// Share difficulty the pool sets (fractions allowed; real CPU miners need ~0.001).
        #[arg(long, default_value_t = 0.001)]
        difficulty: f64,
        /// extranonce1 bytes per session.
        #[arg(long, default_value_t = 4)]
        extranonce1_size: usize,
        /// extranonce2 bytes the miner (or proxy) must submit (4 is what many real pools give).
        #[arg(long, default_value_t = 4)]
        extranonce2_size: usize,
        /// BIP 310 version-rolling mask in hex; `none` answers version-rolling: false.
        #[arg(long, default_value = "1fffe000")]
        version_mask: String,
        /// Seconds between new jobs (not clean unless --clean-jobs).
        #[arg(long, default_value_t = 30)]
        job_interval: u64,
        /// Timed jobs carry clean_jobs=true with an unchanged prevhash (earlier jobs are forgotten).
        #[arg(long)]
        clean_jobs: bool,
        /// Job ids in decimal instead of hex.
        #[arg(long)]
        decimal_job_ids: bool,
        /// Do not send the current job again after a successful mining.authorize.
        #[arg(long)]
        no_resend_on_authorize: bool,
        /// Seconds between status lines.
        #[arg(long, default_value_t = 10)]
        report_every: u64,
    },
    /// A miner that really hashes at a throttled rate.
    Miner {
        /// Stratum endpoint, `host:port` or `stratum+tcp://host:port`.
        #[arg(long)]
        url: String,
        /// Worker name to authorize as.
        #[arg(long)]
        worker: String,
        /// Hashes per second (real sha256d).
        #[arg(long, default_value_t = 200_000.0)]
        hashrate: f64,
        /// Do not ask for BIP 310 version rolling.
        #[arg(long)]
        no_version_rolling: bool,
        /// Send mining.extranonce.subscribe.
        #[arg(long)]
        extranonce_subscribe: bool,
        /// Which real client to behave like: firmware, cpuminer or sri.
        #[arg(long, default_value = "firmware")]
        mode: String,
        /// Seconds between status lines.
        #[arg(long, default_value_t = 10)]
        report_every: u64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match Cli::parse().command {
        Command::Pool {
            listen,
            difficulty,
            extranonce1_size,
            extranonce2_size,
            version_mask,
            job_interval,
            clean_jobs,
            decimal_job_ids,
            no_resend_on_authorize,
            report_every,
        } => {
            let configure = if version_mask.eq_ignore_ascii_case("none") {
                ConfigureSupport::NoVersionRolling
            } else {
                let mask = u32::from_str_radix(version_mask.trim_start_matches("0x"), 16)
                    .with_context(|| {
                        format!(
                            "--version-mask {version_mask:?}: expected hex like 1fffe000 or `none`"
                        )
                    })?;
                ConfigureSupport::VersionRolling(mask)
            };
            let config = PoolConfig {
                name: format!("sim-pool-{}", listen.port()),
                extranonce1_size,
                extranonce2_size,
                difficulty,
                configure,
                job_interval: Some(Duration::from_secs(job_interval.max(1))),
                timed_jobs_clean: clean_jobs,
                job_ids: if decimal_job_ids {
                    JobIds::Decimal
                } else {
                    JobIds::Hex
                },
                resend_job_on_authorize: !no_resend_on_authorize,
                record_shares: false,
                ..PoolConfig::default()
            };
            let pool = SimPool::start_on(listen, config)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            println!("simulated pool listening on {}", pool.url());
            let mut tick = tokio::time::interval(Duration::from_secs(report_every.max(1)));
            loop {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => break,
                    _ = tick.tick() => {
                        let stats = pool.stats();
                        println!(
                            "sessions={} accepted={} rejected={} malformed={}",
                            stats.active_sessions,
                            stats.accepted_total(),
                            stats.rejected_total(),
                            stats.malformed_lines
                        );
                        for (worker, c) in &stats.workers {
                            println!(
                                "  worker={worker} accepted={} accepted_difficulty={:.6} rejected_by_code={:?}",
                                c.accepted, c.accepted_difficulty, c.rejected
                            );
                        }
                    }
                }
            }
        }
        Command::Miner {
            url,
            worker,
            hashrate,
            no_version_rolling,
            extranonce_subscribe,
            mode,
            report_every,
        } => {
            let hostport = url.trim_start_matches("stratum+tcp://");
            let addr = tokio::net::lookup_host(hostport)
                .await
                .with_context(|| format!("--url {url:?}: cannot resolve"))?
                .next()
                .with_context(|| format!("--url {url:?}: no address"))?;
            let mut config = match mode.as_str() {
                "firmware" => {
                    let mut c = MinerConfig::new(worker);
                    c.version_rolling = !no_version_rolling;
                    c
                }
                "cpuminer" => MinerConfig::cpuminer(worker),
                "sri" => MinerConfig::sri(worker),
                other => anyhow::bail!("--mode {other:?}: expected firmware, cpuminer or sri"),
            };
            config.hashrate = Some(hashrate);
            config.extranonce_subscribe = extranonce_subscribe;
            config.record_shares = false;
            let miner = SimMiner::spawn(addr, config);
            let mut tick = tokio::time::interval(Duration::from_secs(report_every.max(1)));
            loop {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => break,
                    _ = tick.tick() => {
                        let s = miner.stats();
                        println!(
                            "connections={} difficulty={} jobs={} submitted={} accepted={} rejected={:?} lost={}",
                            s.connections, s.difficulty, s.jobs_received, s.submitted, s.accepted, s.rejected, s.lost
                        );
                        if let Some(why) = &s.exited {
                            println!("miner quit: {why}");
                            break;
                        }
                    }
                }
            }
            miner.die();
        }
    }
    Ok(())
}
