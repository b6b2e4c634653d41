//! `hashsched status`: the tables people want — workers (phase, hashrate, assignment, owner, last
//! share) and contracts (customer, contracted, delivered, uptime, credit, failovers) — from a
//! running local mode (`--url`), a local mode's state file (`--manifests DIR`), or a cluster
//! (`--kubeconfig`, or `KUBECONFIG`). The tables are the same pure functions in every case.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use hashsched_operator::crd::{RentalContract, Worker};
use hashsched_operator::local::state;
use hashsched_operator::local::store::{ContractRow, StatusDocument, WorkerRow};
use hashsched_operator::local::table::status_text;
use jiff::Timestamp;
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

/// Where `hashsched local` serves its status by default (the StratumHub's default metricsPort).
const DEFAULT_URL: &str = "http://127.0.0.1:9090";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A running `hashsched local` (its --http address), e.g. http://127.0.0.1:9090.
    #[arg(long, conflicts_with_all = ["manifests", "kubeconfig"])]
    pub url: Option<String>,
    /// A local-mode manifests folder: print the status its state file holds (works while local
    /// mode is stopped).
    #[arg(long, short = 'm', conflicts_with = "kubeconfig")]
    pub manifests: Option<PathBuf>,
    /// A cluster: list Workers and RentalContracts and print their status.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Namespace in the cluster (default: the kubeconfig context's); with --all-namespaces, all.
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    #[arg(long, short = 'A')]
    pub all_namespaces: bool,
    /// Print the status document as JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let doc = if let Some(url) = &args.url {
        from_url(url).await?
    } else if let Some(dir) = &args.manifests {
        let path = state::state_path(dir);
        match state::load(&path)? {
            Some(s) => s.last_status,
            None => bail!(
                "{} has no state file yet ({}): has `hashsched local --manifests {}` run there?",
                dir.display(),
                path.display(),
                dir.display()
            ),
        }
    } else if let Some(kubeconfig) = &args.kubeconfig {
        from_cluster(kubeconfig, args.namespace.as_deref(), args.all_namespaces).await?
    } else {
        from_url(DEFAULT_URL).await.with_context(|| {
            format!(
                "no --url, --manifests or --kubeconfig given (and no KUBECONFIG), and no local \
                 mode answers on {DEFAULT_URL}"
            )
        })?
    };
    let mut doc = doc;
    if args.all_namespaces {
        doc.all_namespaces = true;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print!("{}", status_text(&doc, Timestamp::now()));
    }
    Ok(())
}

/// `http://host:port[/status]` or `host:port` → the socket address and path.
fn parse_url(url: &str) -> anyhow::Result<(String, String)> {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    if rest.starts_with("https://") || url.starts_with("https://") {
        bail!("{url}: local mode serves plain HTTP (use http://)");
    }
    let (authority, path) = match rest.split_once('/') {
        Some((a, p)) if !p.is_empty() => (a, format!("/{p}")),
        Some((a, _)) => (
            a,
            hashsched_operator::local::endpoint::STATUS_PATH.to_owned(),
        ),
        None => (
            rest,
            hashsched_operator::local::endpoint::STATUS_PATH.to_owned(),
        ),
    };
    if authority.is_empty() {
        bail!("{url}: no host:port");
    }
    Ok((authority.to_owned(), path))
}

async fn from_url(url: &str) -> anyhow::Result<StatusDocument> {
    let (authority, path) = parse_url(url)?;
    let addr: SocketAddr = tokio::net::lookup_host(&authority)
        .await
        .with_context(|| format!("resolving {authority}"))?
        .next()
        .with_context(|| format!("{authority} resolves to no address"))?;
    let resp = hashsched_hub::admin::client::request(addr, "GET", &path, None, b"")
        .await
        .with_context(|| format!("GET {url}"))?;
    if resp.status != 200 {
        bail!("GET {url}: HTTP {}: {}", resp.status, resp.body.trim());
    }
    serde_json::from_str(&resp.body).with_context(|| format!("GET {url}: not a status document"))
}

async fn from_cluster(
    kubeconfig: &PathBuf,
    namespace: Option<&str>,
    all: bool,
) -> anyhow::Result<StatusDocument> {
    let kc = Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading kubeconfig {}", kubeconfig.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .with_context(|| format!("kubeconfig {}", kubeconfig.display()))?;
    let ns = namespace
        .map(str::to_owned)
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = kube::Client::try_from(config).context("building the Kubernetes client")?;
    cluster_status(client, if all { None } else { Some(&ns) }).await
}

/// Lists Workers and RentalContracts (in `namespace`, or everywhere) and builds the rows from
/// their status subresources.
async fn cluster_status(
    client: kube::Client,
    namespace: Option<&str>,
) -> anyhow::Result<StatusDocument> {
    let (workers, contracts): (Api<Worker>, Api<RentalContract>) = match namespace {
        None => (Api::all(client.clone()), Api::all(client)),
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client, ns),
        ),
    };
    let lp = ListParams::default();
    let ws = workers
        .list(&lp)
        .await
        .context("listing Workers (are the hashsched CRDs installed?)")?;
    let cs = contracts
        .list(&lp)
        .await
        .context("listing RentalContracts")?;
    let mut doc = StatusDocument {
        source: match namespace {
            None => "cluster, all namespaces".into(),
            Some(ns) => format!("cluster, namespace {ns}"),
        },
        generated_at: Some(Timestamp::now()),
        workers: ws.items.iter().map(WorkerRow::from_object).collect(),
        contracts: cs.items.iter().map(ContractRow::from_object).collect(),
        all_namespaces: namespace.is_none(),
        ..StatusDocument::default()
    };
    doc.workers
        .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    doc.contracts
        .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_default_to_the_status_path() {
        assert_eq!(
            parse_url("http://127.0.0.1:9090").unwrap(),
            ("127.0.0.1:9090".into(), "/status".into())
        );
        assert_eq!(
            parse_url("localhost:9090/").unwrap(),
            ("localhost:9090".into(), "/status".into())
        );
        assert_eq!(
            parse_url("http://h:1/custom").unwrap(),
            ("h:1".into(), "/custom".into())
        );
        assert!(parse_url("https://h:1").is_err());
        assert!(parse_url("http://").is_err());
    }

    /// Against a mocked apiserver: the two list calls hit the CRDs' REST paths and the rows come
    /// from the objects' status subresources.
    #[tokio::test]
    async fn cluster_status_lists_workers_and_contracts_from_the_apiserver() {
        use http::{Request, Response};
        use kube::client::Body;
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let server = tokio::spawn(async move {
            let workers = serde_json::json!({
                "apiVersion": "hashsched.io/v1alpha1", "kind": "WorkerList",
                "metadata": {"resourceVersion": "7"},
                "items": [{
                    "apiVersion": "hashsched.io/v1alpha1", "kind": "Worker",
                    "metadata": {"name": "acme-s19-01", "namespace": "mining"},
                    "spec": {"owner": "acme", "expectedHashrate": "104 TH/s"},
                    "status": {
                        "phase": "Dead",
                        "currentPool": "acme-primary",
                        "currentAssignment": {"contract": "acme-m2m", "customer": "acme",
                            "role": "Spare", "since": "2026-07-01T00:00:00Z"}
                    }
                }]
            });
            let contracts = serde_json::json!({
                "apiVersion": "hashsched.io/v1alpha1", "kind": "RentalContractList",
                "metadata": {"resourceVersion": "7"},
                "items": [{
                    "apiVersion": "hashsched.io/v1alpha1", "kind": "RentalContract",
                    "metadata": {"name": "acme-m2m", "namespace": "mining"},
                    "spec": {"customer": "acme", "mode": "MinerToMiner", "workers": ["acme-s19-01"]},
                    "status": {
                        "phase": "Degraded",
                        "contractedHashrate": "104 TH/s",
                        "deliveredHashrate": "100 TH/s",
                        "uptime": {"observedSlots": 100, "upSlots": 99, "ratio": "99%"},
                        "failoverCount": 3,
                        "assignedWorkers": [{"worker": "spare-s21-01", "role": "Substitute",
                            "replaces": "acme-s19-01", "since": "2026-07-01T00:00:00Z"}]
                    }
                }]
            });
            for (path, body) in [
                (
                    "/apis/hashsched.io/v1alpha1/namespaces/mining/workers",
                    workers,
                ),
                (
                    "/apis/hashsched.io/v1alpha1/namespaces/mining/rentalcontracts",
                    contracts,
                ),
            ] {
                let (request, send) = handle.next_request().await.expect("a list call");
                assert_eq!(request.method(), http::Method::GET);
                assert_eq!(request.uri().path(), path);
                send.send_response(
                    Response::builder()
                        .body(Body::from(serde_json::to_vec(&body).unwrap()))
                        .unwrap(),
                );
            }
        });
        let client = kube::Client::new(service, "mining");
        let doc = cluster_status(client, Some("mining")).await.unwrap();
        server.await.unwrap();
        assert_eq!(doc.source, "cluster, namespace mining");
        let w = doc.worker("acme-s19-01").unwrap();
        assert_eq!((w.phase.as_str(), w.owner.as_str()), ("Dead", "acme"));
        assert_eq!(w.role, Some(hashsched_operator::crd::Role::Spare));
        let c = doc.contract("acme-m2m").unwrap();
        assert_eq!(c.failovers, 3);
        assert_eq!((c.up_slots, c.observed_slots), (99, 100));
        assert_eq!(
            c.workers_display(),
            vec!["spare-s21-01→acme-s19-01".to_string()]
        );
        assert_eq!(c.namespace.as_deref(), Some("mining"));
        let text = hashsched_operator::local::table::status_text(&doc, Timestamp::now());
        assert!(text.contains("acme-m2m (Spare)"), "{text}");
        assert!(text.contains("99.00% (99/100)"), "{text}");
    }
}
