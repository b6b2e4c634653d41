//! `stratum-hub`: the hashsched Stratum V1 hub as a process.
//!
//! Either a YAML config file (`--config hub.yaml`, what the operator's Deployment uses) or a
//! quick start from flags: `stratum-hub --pool stratum+tcp://pool:3333 --user ACCOUNT`.
//! Stops gracefully on SIGTERM / Ctrl-C: stop accepting, tell miners to reconnect, let forwarded
//! shares get their verdicts, close pool sessions.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Parser;
use hashsched_hub::Hub;
use hashsched_hub::config::{AdminConfig, HubConfig, QuickStart};

/// Stratum V1 hub for SHA256d mining farms: routes each worker to its pool, switches pools
/// without reconnecting miners, validates every share and measures every worker from its shares.
///
/// Quick start (one default route over a failover list of pools, every worker accepted):
///   stratum-hub --listen 0.0.0.0:3333 --metrics 0.0.0.0:9100 \
///     --pool stratum+tcp://pool-a:3333 --pool stratum+tcp://pool-b:3333 --user ACCOUNT
///
/// Workers authorize upstream as ACCOUNT.<their login>. With --config, flags given explicitly
/// override the file's listen/metrics addresses.
///
/// Metrics (OpenMetrics on --metrics, path /metrics; per-worker facts as JSON on /facts):
/// per worker `hashsched_worker_shares_total{worker,result}` (result = accepted, below_target,
/// rejected, lost, stale, switch_stale, job_change_stale, duplicate, invalid), `..._share_difficulty_total`,
/// `hashsched_worker_hashrate_hashes_per_second{worker,window}`, `..._last_share_timestamp_seconds`,
/// `hashsched_worker_connected`, `hashsched_worker_difficulty`, `hashsched_worker_info{pool,...}`;
/// per pool `hashsched_pool_up`, `..._latency_seconds`, `..._shares_total`,
/// `..._switches_total{pool,reason}`; hub `hashsched_hub_connections`,
/// `..._share_forward_latency_seconds`, `..._switch_duration_seconds`, `..._routing_generation`,
/// `..._miner_reconnects_total{reason}`, `..._protocol_errors_total{side,kind}`.
///
/// CPU miner trial: stratum-hub --listen 127.0.0.1:3333 --pool stratum+tcp://POOL --user ACCOUNT
///   then: minerd -a sha256d -o stratum+tcp://127.0.0.1:3333 -u rig-01 -p x
///   (first shares within a minute; add --initial-difficulty 0.001 to see them at once).
///
/// Logging: RUST_LOG (default "info"), e.g. RUST_LOG=hashsched_hub=debug.
#[derive(Debug, Parser)]
#[command(name = "stratum-hub", version, verbatim_doc_comment)]
struct Args {
    /// YAML config file (listen, metrics, admin, routing or routingFile, vardiff, limits,
    /// extranonce, upstream, stats). See docs/hub.md / `hashsched_hub::config::HubConfig`.
    #[arg(long, short = 'c', env = "STRATUM_HUB_CONFIG")]
    config: Option<PathBuf>,

    /// Stratum address miners connect to [default: 0.0.0.0:3333].
    #[arg(long, env = "STRATUM_HUB_LISTEN")]
    listen: Option<String>,

    /// Address of the /metrics endpoint (disabled when absent in quick start).
    #[arg(long, env = "STRATUM_HUB_METRICS")]
    metrics: Option<String>,

    /// Quick start: pool URL (stratum+tcp://host:port, or stratum+ssl://host:port for TLS);
    /// repeat for a failover list, in order.
    #[arg(long = "pool", value_name = "URL")]
    pools: Vec<String>,

    /// Quick start: pool account (workers authorize upstream as ACCOUNT.<login>).
    #[arg(long, value_name = "ACCOUNT", env = "STRATUM_HUB_USER")]
    user: Option<String>,

    /// Quick start: pool password (most pools ignore it or take hints like d=65536).
    #[arg(
        long,
        default_value = "x",
        env = "STRATUM_HUB_PASSWORD",
        hide_env_values = true
    )]
    password: String,

    /// Quick start: CA bundle (PEM) to verify the stratum+ssl pools against instead of the
    /// system trust store (a private CA, or the pool's self-signed certificate).
    #[arg(long, value_name = "FILE")]
    tls_ca_file: Option<PathBuf>,

    /// Quick start: time between shares the hub asks of each miner (vardiff target), e.g. 2s.
    #[arg(long, value_name = "DURATION")]
    share_interval: Option<hashsched_hub::routing::DurationSpec>,

    /// Miner-facing difficulty a new miner starts at [default: 1024]. Vardiff moves it toward
    /// one share per --share-interval; a miner finding no share is stepped down 32x every 5
    /// intervals (1024 -> 0.001 in ~40 s). For CPU miners (cpuminer: ~3 MH/s per thread) start
    /// at e.g. 0.001 to see shares at once. Lowered to the vardiff minimum if below it.
    #[arg(long, value_name = "D")]
    initial_difficulty: Option<f64>,

    /// Quick start: admin API address (routing pushes); needs --admin-token-file.
    #[arg(long, value_name = "ADDR")]
    admin: Option<String>,

    /// File holding the admin API bearer token (re-read on each request).
    #[arg(long, value_name = "FILE")]
    admin_token_file: Option<PathBuf>,

    /// Log as JSON lines instead of text.
    #[arg(long)]
    log_json: bool,

    /// Validate the configuration (and routing) and exit.
    #[arg(long)]
    check: bool,
}

fn build_config(a: &Args) -> anyhow::Result<HubConfig> {
    let mut cfg = match &a.config {
        Some(path) => {
            if !a.pools.is_empty() || a.user.is_some() || a.tls_ca_file.is_some() {
                bail!(
                    "--pool/--user/--tls-ca-file are for the quick start; put pools in the config's routing"
                );
            }
            HubConfig::from_file(path)?
        }
        None => {
            if a.pools.is_empty() {
                bail!(
                    "give --config FILE, or at least one --pool URL with --user ACCOUNT (see --help)"
                );
            }
            let user = a
                .user
                .clone()
                .context("--user ACCOUNT is required with --pool")?;
            HubConfig::quick_start(QuickStart {
                listen: a.listen.clone().unwrap_or_else(|| "0.0.0.0:3333".into()),
                metrics: a.metrics.clone(),
                pools: a.pools.clone(),
                user,
                password: a.password.clone(),
                tls_ca_file: a
                    .tls_ca_file
                    .as_deref()
                    .map(std::path::absolute)
                    .transpose()
                    .context("--tls-ca-file")?,
            })?
        }
    };
    if let Some(l) = &a.listen {
        cfg.listen = l.clone();
    }
    if let Some(m) = &a.metrics {
        cfg.metrics = Some(m.clone());
    }
    if let Some(i) = a.share_interval {
        cfg.vardiff.share_interval = i;
    }
    if let Some(d) = a.initial_difficulty {
        if !(d.is_finite() && d > 0.0) {
            bail!("--initial-difficulty must be a positive number, got {d}");
        }
        cfg.vardiff.initial_difficulty = d;
        cfg.vardiff.min_difficulty = cfg.vardiff.min_difficulty.min(d);
        cfg.vardiff.max_difficulty = cfg.vardiff.max_difficulty.max(d);
    }
    if let Some(addr) = &a.admin {
        cfg.admin = Some(AdminConfig {
            listen: addr.clone(),
            token_file: a.admin_token_file.clone(),
        });
    } else if let (Some(admin), Some(t)) = (cfg.admin.as_mut(), &a.admin_token_file) {
        admin.token_file = Some(t.clone());
    }
    cfg.validate()?;
    Ok(cfg)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stratum-hub: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    hashsched_hub::logging::init(hashsched_hub::logging::LogFormat::from_flag(args.log_json));
    let cfg = build_config(&args)?;
    if args.check {
        // Validate the routing the same way the hub would, without binding anything.
        let secrets = cfg
            .secrets_dir
            .clone()
            .map(hashsched_hub::routing::SecretStore::new)
            .unwrap_or_else(hashsched_hub::routing::SecretStore::none);
        if let Some(doc) = &cfg.routing {
            hashsched_hub::routing::ValidRouting::new(doc.clone(), &secrets)?;
        }
        if let Some(path) = &cfg.routing_file {
            let bytes = std::fs::read(path)
                .with_context(|| format!("reading routing file {}", path.display()))?;
            hashsched_hub::routing::ValidRouting::from_bytes(&bytes, &secrets)?;
        }
        println!("configuration OK");
        return Ok(());
    }
    let hub = Hub::start(cfg).await.context("starting the hub")?;
    eprintln!(
        "stratum-hub: stratum on {}, metrics on {}",
        hub.stratum_addr(),
        hub.metrics_addr()
            .map(|a| format!("http://{a}/metrics"))
            .unwrap_or_else(|| "(disabled)".into())
    );
    wait_for_signal().await;
    hub.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM received"),
                    _ = tokio::signal::ctrl_c() => tracing::info!("interrupt received"),
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> anyhow::Result<HubConfig> {
        build_config(&Args::try_parse_from(
            [
                "stratum-hub",
                "--pool",
                "stratum+tcp://127.0.0.1:3334",
                "--user",
                "farm",
            ]
            .iter()
            .chain(args),
        )?)
    }

    #[test]
    fn initial_difficulty_flag_sets_the_start_and_widens_the_bounds() {
        assert_eq!(config(&[]).unwrap().vardiff.initial_difficulty, 1024.0);
        let cfg = config(&["--initial-difficulty", "0.0001"]).unwrap();
        assert_eq!(cfg.vardiff.initial_difficulty, 0.0001);
        assert!(cfg.vardiff.min_difficulty <= 0.0001);
        assert_eq!(cfg.vardiff.clamp(0.0001), 0.0001);
        assert!(config(&["--initial-difficulty", "0"]).is_err());
        assert!(config(&["--initial-difficulty", "NaN"]).is_err());
    }

    #[test]
    fn help_is_well_formed() {
        use clap::CommandFactory;
        Args::command().debug_assert();
        let help = Args::command().render_long_help().to_string();
        assert!(help.contains("--initial-difficulty"), "{help}");
    }
}
