//! `hashsched operator` as a process: the endpoint, leader election, the reflectors that feed the
//! scheduling loop, the StratumHub controller, and a clean stop.
//!
//! Only the replica holding the Lease (`kube-lease-manager`) reconciles and decides; the others
//! serve `/healthz` and `/readyz` and wait. Losing the lease stops the work at once (another
//! replica takes over; this process exits non-zero so it restarts as a standby). On SIGTERM the
//! loop finishes the cycle in flight (its writes land), the controller drains, and the lease is
//! released so a successor takes over without waiting for it to expire.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::Api;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::hub_io::{HttpHubIo, HubKey, HubTarget};
use super::schedule::{DEFAULT_DEBOUNCE, DEFAULT_PERIOD, ScheduleOptions, Scheduler, World};
use super::serve::{self, Health};
use super::{Context, EVENT_REPORTER, Shared, children};
use crate::crd::{Customer, PoolEndpoint, RentalContract, StratumHub, Worker};

/// Name of the leader-election Lease.
pub const LEASE_NAME: &str = "hashsched-operator";

/// How to run the operator.
#[derive(Debug, Clone)]
pub struct OperatorOptions {
    /// Watch one namespace; `None` watches all.
    pub namespace: Option<String>,
    pub metrics_addr: String,
    pub leader_election: bool,
    /// Namespace of the Lease (the operator's own).
    pub lease_namespace: String,
    /// This replica's identity in the Lease (its pod name).
    pub identity: String,
    pub hub_urls: BTreeMap<HubKey, Vec<HubTarget>>,
    pub period: Duration,
    pub debounce: Duration,
    pub heartbeat: Duration,
    pub default_image: Option<String>,
}

impl OperatorOptions {
    pub fn new(metrics_addr: impl Into<String>) -> Self {
        OperatorOptions {
            namespace: None,
            metrics_addr: metrics_addr.into(),
            leader_election: true,
            lease_namespace: "default".into(),
            identity: "hashsched-operator".into(),
            hub_urls: BTreeMap::new(),
            period: DEFAULT_PERIOD,
            debounce: DEFAULT_DEBOUNCE,
            heartbeat: super::status_writes::DEFAULT_HEARTBEAT,
            default_image: None,
        }
    }
}

/// Why the operator stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot bind --metrics-addr {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("leader election: {0}")]
    Lease(String),
    #[error("lost the leader lease to another replica; exiting so this one restarts as a standby")]
    LostLease,
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Debug,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// A reflector store of `K`, kept up to date by a task that also pokes `changed` on every event.
fn reflect<K>(
    api: Api<K>,
    changed: Arc<Notify>,
    stop: CancellationToken,
) -> (Store<K>, tokio::task::JoinHandle<()>)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .touched_objects();
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                ev = stream.next() => match ev {
                    Some(Ok(_)) => changed.notify_one(),
                    Some(Err(e)) => warn!(kind = %K::kind(&()), error = %e,
                        "watch failed; retrying (check the operator's RBAC and the apiserver)"),
                    None => break,
                },
            }
        }
    });
    (reader, task)
}

fn snapshot<K>(s: &Store<K>) -> Vec<K>
where
    K: Clone + Resource<DynamicType = ()> + 'static,
{
    s.state().iter().map(|o| (**o).clone()).collect()
}

/// Runs the operator until `stop` is cancelled (SIGTERM) or the lease is lost.
pub async fn run(
    client: Client,
    opts: OperatorOptions,
    stop: CancellationToken,
) -> Result<(), RunError> {
    let listener = tokio::net::TcpListener::bind(&opts.metrics_addr)
        .await
        .map_err(|source| RunError::Bind {
            addr: opts.metrics_addr.clone(),
            source,
        })?;
    let pod_monitor_api = children::pod_monitor_api_exists(&client).await;
    info!(pod_monitor_api, namespace = opts.namespace.as_deref().unwrap_or("(all)"),
        metrics = %opts.metrics_addr, "hashsched operator starting");
    let shared = Arc::new(Shared::new(pod_monitor_api, opts.default_image.clone()));
    let health = Arc::new(Health {
        shared: shared.clone(),
        ready: Default::default(),
    });
    let http_stop = CancellationToken::new();
    let http = tokio::spawn(serve::serve(listener, health.clone(), http_stop.clone()));

    let mut lease = None;
    if opts.leader_election {
        let manager = kube_lease_manager::LeaseManagerBuilder::new(client.clone(), LEASE_NAME)
            .with_namespace(&opts.lease_namespace)
            .with_identity(&opts.identity)
            .with_duration(15)
            .with_grace(5)
            .build()
            .await
            .map_err(|e| RunError::Lease(e.to_string()))?;
        let (rx, task) = manager.watch().await;
        // A standby is ready: it serves and waits.
        health.ready.store(true, Ordering::Release);
        let mut rx = rx;
        info!(lease = %format!("{}/{LEASE_NAME}", opts.lease_namespace), identity = %opts.identity,
            "waiting for the leader lease");
        loop {
            if *rx.borrow_and_update() {
                break;
            }
            tokio::select! {
                _ = stop.cancelled() => {
                    drop(rx);
                    let _ = task.await;
                    http_stop.cancel();
                    let _ = http.await;
                    return Ok(());
                }
                r = rx.changed() => if r.is_err() {
                    return Err(RunError::Lease("the lease manager stopped".into()));
                },
            }
        }
        info!(identity = %opts.identity, "leader lease acquired: reconciling");
        lease = Some((rx, task));
    }
    shared.metrics.set_leader(true);

    let work = CancellationToken::new();
    let result = {
        let work_done = lead(
            client.clone(),
            &opts,
            shared.clone(),
            health.clone(),
            work.clone(),
        );
        tokio::pin!(work_done);
        let lost = async {
            match lease.as_mut() {
                Some((rx, _)) => loop {
                    if rx.changed().await.is_err() || !*rx.borrow() {
                        break;
                    }
                },
                None => std::future::pending::<()>().await,
            }
        };
        enum Outcome {
            Done,
            Stop,
            Lost,
        }
        let outcome = tokio::select! {
            _ = &mut work_done => Outcome::Done,
            _ = stop.cancelled() => Outcome::Stop,
            _ = lost => Outcome::Lost,
        };
        match outcome {
            Outcome::Done => Ok(()),
            Outcome::Stop => {
                info!("stopping: finishing the cycle in flight");
                work.cancel();
                work_done.await;
                Ok(())
            }
            Outcome::Lost => {
                error!("lost the leader lease: stopping all work");
                work.cancel();
                work_done.await;
                Err(RunError::LostLease)
            }
        }
    };
    shared.metrics.set_leader(false);
    if let Some((rx, task)) = lease {
        drop(rx); // the lease manager releases the Lease when its channel closes
        match task.await {
            Ok(Ok(_)) => info!("leader lease released"),
            Ok(Err(e)) => {
                warn!(error = %e, "could not release the leader lease; it expires on its own")
            }
            Err(e) => warn!(error = %e, "lease task failed"),
        }
    }
    http_stop.cancel();
    let _ = http.await;
    result
}

/// The leader's work: reflectors, the scheduling loop and the StratumHub controller.
async fn lead(
    client: Client,
    opts: &OperatorOptions,
    shared: Arc<Shared>,
    health: Arc<Health>,
    stop: CancellationToken,
) {
    let ns = opts.namespace.as_deref();
    let changed = Arc::new(Notify::new());
    let (workers, t1) = reflect(api::<Worker>(&client, ns), changed.clone(), stop.clone());
    let (contracts, t2) = reflect(
        api::<RentalContract>(&client, ns),
        changed.clone(),
        stop.clone(),
    );
    let (customers, t3) = reflect(api::<Customer>(&client, ns), changed.clone(), stop.clone());
    let (pools, t4) = reflect(
        api::<PoolEndpoint>(&client, ns),
        changed.clone(),
        stop.clone(),
    );
    let (hubs, t5) = reflect(
        api::<StratumHub>(&client, ns),
        changed.clone(),
        stop.clone(),
    );
    let synced = async {
        let _ = workers.wait_until_ready().await;
        let _ = contracts.wait_until_ready().await;
        let _ = customers.wait_until_ready().await;
        let _ = pools.wait_until_ready().await;
        let _ = hubs.wait_until_ready().await;
    };
    tokio::select! {
        _ = synced => {},
        _ = stop.cancelled() => return,
    }
    health.ready.store(true, Ordering::Release);
    info!("caches synced");

    // The StratumHub controller.
    let owned =
        watcher::Config::default().labels("app.kubernetes.io/managed-by=hashsched-operator");
    let ctx = Arc::new(Context {
        client: client.clone(),
        shared: shared.clone(),
    });
    let controller_stop = stop.clone();
    let controller = Controller::new(api::<StratumHub>(&client, ns), watcher::Config::default())
        .owns(api::<Deployment>(&client, ns), owned.clone())
        .owns(api::<Service>(&client, ns), owned.clone())
        .owns(api::<ConfigMap>(&client, ns), owned.clone())
        .owns(api::<PodDisruptionBudget>(&client, ns), owned)
        .graceful_shutdown_on(async move { controller_stop.cancelled().await })
        .run(children::reconcile, children::error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                match e {
                    kube::runtime::controller::Error::ReconcilerFailed(_, _) => {} // logged there
                    other => warn!(error = %other, "StratumHub controller"),
                }
            }
        });
    let controller = tokio::spawn(controller);

    // The scheduling loop.
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: EVENT_REPORTER.into(),
            instance: Some(opts.identity.clone()),
        },
    );
    let mut scheduler = Scheduler::new(
        client.clone(),
        shared.clone(),
        Arc::new(HttpHubIo::default()),
        recorder,
        ScheduleOptions {
            hub_urls: opts.hub_urls.clone(),
            heartbeat: opts.heartbeat,
        },
    );
    let mut first = true;
    loop {
        if !first {
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                _ = changed.notified() => {
                    // Debounce: decide a burst of changes once.
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(opts.debounce) => {},
                    }
                }
                _ = tokio::time::sleep(opts.period) => {},
            }
        }
        first = false;
        let world = World {
            workers: snapshot(&workers),
            contracts: snapshot(&contracts),
            customers: snapshot(&customers),
            pools: snapshot(&pools),
            hubs: snapshot(&hubs),
        };
        let s = scheduler.cycle(&world, jiff::Timestamp::now()).await;
        if s.status_writes + s.events + s.pushes + s.config_maps > 0 || !s.blind_hubs.is_empty() {
            info!(
                status_writes = s.status_writes,
                heartbeat_writes = s.heartbeat_writes,
                events = s.events,
                pushes = s.pushes,
                blind_hubs = ?s.blind_hubs,
                "cycle"
            );
        }
    }
    let _ = controller.await;
    for t in [t1, t2, t3, t4, t5] {
        let _ = t.await;
    }
}
