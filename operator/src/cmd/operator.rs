//! `hashsched operator`: the controller a cluster runs (the container's entrypoint).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use hashsched_operator::controller::hub_io;
use hashsched_operator::controller::run::{OperatorOptions, run};
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio_util::sync::CancellationToken;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Kubeconfig file; without it, in-cluster config (the pod's ServiceAccount) or the default
    /// kubeconfig.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Watch one namespace only (default: all).
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub metrics_addr: String,
    /// Leader election through a Lease; `--leader-election=false` for a single replica or a
    /// laptop.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,
    /// Namespace of the leader-election Lease (default: the operator pod's namespace, from
    /// POD_NAMESPACE or the ServiceAccount mount, else `default`).
    #[arg(long, env = "POD_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// This replica's identity in the Lease (default: POD_NAME, else the host name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Reach one StratumHub's hub at fixed addresses instead of discovering its pods:
    /// `NAMESPACE/NAME=http://HOST:METRICS_PORT[,http://HOST:ADMIN_PORT]` (repeatable; without
    /// the admin URL the admin API is expected on the metrics address). The admin token is still
    /// read from the hub's Secret `<NAME>-admin-token`. E.g.
    /// `--hub-url mining/site-a=http://127.0.0.1:9100,http://127.0.0.1:9091`
    #[arg(long = "hub-url", value_name = "NAMESPACE/NAME=URL[,ADMIN_URL]")]
    pub hub_urls: Vec<String>,
    /// Time between two decision cycles when nothing changes (e.g. `5s`, `1m`).
    #[arg(long, default_value = "5s", value_parser = super::parse_duration)]
    pub period: Duration,
    /// Longest time a status whose only changes are measurements waits to be written.
    #[arg(long, default_value = "60s", value_parser = super::parse_duration)]
    pub status_heartbeat: Duration,
    /// Hub image for StratumHubs that do not name one.
    #[arg(long, env = "HASHSCHED_HUB_IMAGE")]
    pub hub_image: Option<String>,
    /// Log one JSON object per line.
    #[arg(long)]
    pub log_json: bool,
}

const SA_NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

async fn client(kubeconfig: Option<&PathBuf>) -> anyhow::Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .with_context(|| format!("kubeconfig {}", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .context("no --kubeconfig/KUBECONFIG and no in-cluster ServiceAccount")?,
    };
    kube::Client::try_from(config).context("building the Kubernetes client")
}

pub async fn run_cmd(args: Args) -> anyhow::Result<()> {
    hashsched_hub::logging::init(hashsched_hub::logging::LogFormat::from_flag(args.log_json));
    let hub_urls = hub_io::hub_urls(&args.hub_urls)?;
    let client = client(args.kubeconfig.as_ref()).await?;
    let mut opts = OperatorOptions::new(args.metrics_addr.clone());
    opts.namespace = args.namespace.clone();
    opts.leader_election = args.leader_election;
    opts.lease_namespace = args
        .lease_namespace
        .clone()
        .or_else(|| {
            std::fs::read_to_string(SA_NAMESPACE_FILE)
                .ok()
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "default".into());
    opts.identity = args.identity.clone().unwrap_or_else(|| {
        std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| format!("hashsched-operator-{}", std::process::id()))
    });
    opts.hub_urls = hub_urls;
    opts.period = args.period.max(Duration::from_millis(200));
    opts.heartbeat = args.status_heartbeat;
    opts.default_image = args.hub_image.clone();

    let stop = CancellationToken::new();
    let trigger = stop.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("signal received: shutting down");
        trigger.cancel();
    });
    run(client, opts, stop).await?;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = tokio::signal::ctrl_c() => {},
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
