//! `hashsched local --manifests DIR`: the scheduler and an embedded hub on one machine, driven by a
//! folder of the same manifests `kubectl apply` takes (see `hashsched_operator::local`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use hashsched_operator::local::runner::{LocalOptions, Runner};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder of manifests (StratumHub, PoolEndpoints, Customers, Workers, RentalContracts,
    /// Secrets). Edits are picked up while running; the state file is kept here too.
    #[arg(long, short = 'm', env = "HASHSCHED_MANIFESTS")]
    pub manifests: PathBuf,
    /// StratumHub to run when the folder declares several.
    #[arg(long)]
    pub hub: Option<String>,
    /// Stratum address miners connect to (default 0.0.0.0:<spec.stratumPort>).
    #[arg(long)]
    pub listen: Option<String>,
    /// Address of GET /status and /metrics (default 127.0.0.1:<spec.metricsPort>).
    #[arg(long)]
    pub http: Option<String>,
    /// Time between decision cycles (e.g. 1s, 500ms).
    #[arg(long, default_value = "1s", value_parser = super::parse_duration)]
    pub tick: Duration,
    /// Do not read or write the state file (DIR/.hashsched-state.json): start from the
    /// manifests alone and forget everything on exit.
    #[arg(long)]
    pub no_state: bool,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    init_tracing("info");
    let opts = LocalOptions {
        hub: args.hub,
        listen: args.listen,
        http: args.http,
        tick: args.tick,
        persist: !args.no_state,
        ..LocalOptions::new(args.manifests.clone())
    };
    let local = Runner::start(opts)
        .await
        .with_context(|| format!("local mode on {}", args.manifests.display()))?;
    println!(
        "hashsched local: miners connect to stratum+tcp://{}; status on http://{}/status \
         (`hashsched status --manifests {}`); Ctrl-C stops",
        local.stratum_addr(),
        local
            .http_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|| "-".into()),
        args.manifests.display()
    );
    shutdown_signal().await;
    local.shutdown().await;
    Ok(())
}

/// Logs to stderr at `default` level unless `RUST_LOG` says otherwise (a no-op if another
/// subscriber is already installed).
pub fn init_tracing(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Resolves on Ctrl-C or SIGTERM (how systemd and container runtimes stop a process).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
