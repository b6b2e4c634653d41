//! The local-mode loop: the embedded hub plus one decision cycle per tick, fed by a folder of
//! manifests that may be edited while it runs.
//!
//! Every tick (1 s by default): re-read the folder (cheap: a few small files; compared by
//! content, so editors that rewrite files in place or by rename both work; a change is admitted
//! once two reads a tick apart agree), admit it or keep the last good manifests and say precisely
//! why; read the hub's per-worker facts in process; run
//! the same [`run_cycle`] the Kubernetes operator runs; push the routing document to the hub
//! when it changed (miners move without reconnecting); write statuses; persist the state file.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hashsched_contract::config::{HubConfig, Limits, VardiffConfig};
use hashsched_contract::facts::WorkerFacts;
use hashsched_contract::routing::{FailoverPolicy as HubFailover, RoutingDocument};
use hashsched_hub::{Hub, HubHandle};
use jiff::Timestamp;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::endpoint;
use super::load::{self, Manifests, ManifestsError, Source};
use super::state::{self, LocalState, StateError};
use super::store::{HubRow, PoolRow, StatusDocument, Store};
use crate::crd::StratumHub;
use crate::scheduler::cycle::{CycleInput, CycleMemory, CycleOutput, run_cycle};
use crate::scheduler::health::HASHES_PER_DIFFICULTY;
use crate::scheduler::sli::SliSnapshot;

/// Default time between two decision cycles.
pub const DEFAULT_TICK: Duration = Duration::from_secs(1);

/// Why local mode could not start.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(transparent)]
    Manifests(#[from] ManifestsError),
    #[error("{0}")]
    Hub(String),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("cannot bind the status endpoint on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot prepare the pool passwords for the hub: {0}")]
    Secrets(std::io::Error),
}

/// Settings the hub takes that no CRD field carries: the demo compresses time with them.
#[derive(Debug, Clone, Default)]
pub struct HubTuning {
    /// Replaces the vardiff settings derived from the StratumHub (share interval) and Workers.
    pub vardiff: Option<VardiffConfig>,
    /// Replaces the pool failover policy of the rendered routing documents.
    pub failover: Option<HubFailover>,
    /// Replaces the hub's connection limits.
    pub limits: Option<Limits>,
}

/// How to run local mode.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// The folder of manifests (the state file lives in it too).
    pub manifests: PathBuf,
    /// Which StratumHub to run when the folder declares several.
    pub hub: Option<String>,
    /// Stratum listen address; default `0.0.0.0:<spec.stratumPort>`.
    pub listen: Option<String>,
    /// Address of `/status` and `/metrics`; default `127.0.0.1:<spec.metricsPort>`; `None` with
    /// `serve_http: false` serves nothing.
    pub http: Option<String>,
    pub serve_http: bool,
    /// Time between decision cycles.
    pub tick: Duration,
    /// Keep the state file (`DIR/.hashsched-state.json`).
    pub persist: bool,
    pub tuning: HubTuning,
}

impl LocalOptions {
    pub fn new(manifests: impl Into<PathBuf>) -> Self {
        LocalOptions {
            manifests: manifests.into(),
            hub: None,
            listen: None,
            http: None,
            serve_http: true,
            tick: DEFAULT_TICK,
            persist: true,
            tuning: HubTuning::default(),
        }
    }
}

/// Entry point: `Runner::start(options).await`.
pub struct Runner;

/// A running local mode.
pub struct LocalHandle {
    hub: Arc<HubHandle>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    http_task: Option<tokio::task::JoinHandle<()>>,
    status: watch::Receiver<Arc<StatusDocument>>,
    http_addr: Option<SocketAddr>,
    _secrets: tempfile::TempDir,
}

impl LocalHandle {
    /// Where miners connect.
    pub fn stratum_addr(&self) -> SocketAddr {
        self.hub.stratum_addr()
    }
    /// Where `/status` and `/metrics` are served.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }
    /// The latest status (refreshed every tick).
    pub fn status(&self) -> Arc<StatusDocument> {
        self.status.borrow().clone()
    }
    /// A receiver that sees every new status.
    pub fn watch(&self) -> watch::Receiver<Arc<StatusDocument>> {
        self.status.clone()
    }
    /// The embedded hub (facts, pool facts, metrics).
    pub fn hub(&self) -> &HubHandle {
        &self.hub
    }
    /// Stops the loop (after its current tick, which persists the state), then the hub.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.task.await;
        if let Some(h) = self.http_task {
            h.abort();
            let _ = h.await;
        }
        match Arc::try_unwrap(self.hub) {
            Ok(hub) => hub.shutdown().await,
            Err(hub) => drop(hub), // dropping cancels it
        }
    }
}

/// Everything the loop owns.
struct Loop {
    dir: PathBuf,
    hub_name: String,
    hub_spec: StratumHub,
    hub: Arc<HubHandle>,
    store: Store,
    memory: CycleMemory,
    last_sources: Vec<Source>,
    /// A changed folder seen once, waiting for a second identical read.
    settling: Option<Vec<Source>>,
    /// A Secret changed: the hub must re-read pool passwords even if the routing did not change.
    secrets_changed: bool,
    last_read_error: Option<String>,
    manifests_error: Option<String>,
    last_applied: Option<RoutingDocument>,
    last_routing_error: Option<String>,
    last_save_error: Option<String>,
    secrets_dir: PathBuf,
    state_path: Option<PathBuf>,
    tuning: HubTuning,
    status_tx: watch::Sender<Arc<StatusDocument>>,
    sli_tx: watch::Sender<Arc<SliSnapshot>>,
}

impl Runner {
    /// Loads the folder (refusing to start on bad manifests), restores the state file, starts
    /// the embedded hub with the routing the scheduler renders, and starts the loop.
    pub async fn start(opts: LocalOptions) -> Result<LocalHandle, LocalError> {
        let dir = opts.manifests.clone();
        let sources = load::read_dir(&dir)?;
        let m = load::load(&sources)?;
        let hub_spec = m.hub(opts.hub.as_deref()).map_err(LocalError::Hub)?.clone();
        let hub_name = hub_spec.metadata.name.clone().unwrap_or_default();
        let state_path = opts.persist.then(|| state::state_path(&dir));
        let saved = match &state_path {
            Some(p) => state::load(p)?,
            None => None,
        };
        let (memory, statuses) = match saved {
            Some(s) => {
                info!(
                    path = %state_path.as_deref().unwrap_or(Path::new("")).display(),
                    saved_at = ?s.saved_at,
                    "restored local state (health, assignments, ledgers)"
                );
                (s.memory, s.statuses)
            }
            None => (CycleMemory::default(), Default::default()),
        };
        let secrets = tempfile::Builder::new()
            .prefix("hashsched-secrets-")
            .tempdir()
            .map_err(LocalError::Secrets)?;
        write_secrets(secrets.path(), &m).map_err(LocalError::Secrets)?;

        let store = Store {
            manifests: m,
            statuses,
        };
        // The hub starts with the routing of the restored placements, rendered without judging
        // anyone (no facts yet), so no miner ever sees a stale picture.
        let initial = cycle_of(
            &store,
            &memory,
            &hub_spec,
            Timestamp::now(),
            &BTreeMap::new(),
            None,
        )
        .routing
        .get(&hub_name)
        .cloned()
        .map(|d| tuned(&opts.tuning, d))
        .ok_or_else(|| LocalError::Hub(format!("no routing rendered for hub {hub_name:?}")))?;
        let hub = start_hub(
            &hub_spec,
            &store.manifests,
            &opts,
            initial.clone(),
            secrets.path(),
        )
        .await?;
        let (status_tx, status_rx) = watch::channel(Arc::new(StatusDocument::default()));
        let (sli_tx, sli_rx) = watch::channel(Arc::new(SliSnapshot::default()));
        let mut lp = Loop {
            dir: dir.clone(),
            hub_name: hub_name.clone(),
            hub_spec: hub_spec.clone(),
            hub: Arc::new(hub),
            store,
            memory,
            last_sources: sources,
            settling: None,
            secrets_changed: false,
            last_read_error: None,
            manifests_error: None,
            last_applied: Some(initial),
            last_routing_error: None,
            last_save_error: None,
            secrets_dir: secrets.path().to_owned(),
            state_path,
            tuning: opts.tuning.clone(),
            status_tx,
            sli_tx,
        };
        let first = Arc::new(lp.status_document(Timestamp::now()));
        lp.status_tx.send_replace(first);
        lp.sli_tx.send_replace(Arc::new(lp.sli_snapshot()));

        let http_addr_opt = match (&opts.http, opts.serve_http) {
            (_, false) => None,
            (Some(a), true) => Some(a.clone()),
            (None, true) => Some(format!("127.0.0.1:{}", hub_spec.spec.metrics_port())),
        };
        let (http_task, http_addr) = match http_addr_opt {
            Some(addr) => {
                let listener = tokio::net::TcpListener::bind(&addr)
                    .await
                    .map_err(|source| LocalError::Bind {
                        addr: addr.clone(),
                        source,
                    })?;
                let bound = listener.local_addr().ok();
                let state = endpoint::HttpState {
                    status: status_rx.clone(),
                    hub: lp.hub.clone(),
                    slis: sli_rx.clone(),
                };
                (Some(tokio::spawn(endpoint::serve(listener, state))), bound)
            }
            None => (None, None),
        };
        info!(
            manifests = %dir.display(),
            hub = %hub_name,
            stratum = %lp.hub.stratum_addr(),
            http = ?http_addr,
            "local mode running: edit the manifests to change routing and contracts"
        );
        let hub = lp.hub.clone();
        let stop = CancellationToken::new();
        let token = stop.clone();
        let tick = opts.tick.max(Duration::from_millis(100));
        let task = tokio::spawn(async move {
            let mut interval = tokio::time::interval(tick);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = interval.tick() => lp.tick(Timestamp::now()),
                }
            }
            lp.persist(Timestamp::now());
        });
        Ok(LocalHandle {
            hub,
            stop,
            task,
            http_task,
            status: status_rx,
            http_addr,
            _secrets: secrets,
        })
    }
}

/// The hub's config from the StratumHub, the Workers and the tuning, starting with `routing`.
async fn start_hub(
    hub: &StratumHub,
    m: &Manifests,
    opts: &LocalOptions,
    routing: RoutingDocument,
    secrets: &Path,
) -> Result<HubHandle, LocalError> {
    // At least a millisecond: the grammar's resolution, and vardiff divides by it.
    let interval = hub
        .spec
        .share_interval()
        .max(crate::quantity::Duration::from_millis(1));
    let vardiff = match &opts.tuning.vardiff {
        Some(v) => v.clone(),
        None => {
            let mut v = VardiffConfig {
                share_interval: interval,
                ..VardiffConfig::default()
            };
            // Small miners (CPU miners, the demo's simulated ones) need difficulties far below
            // the default floor to send a share every few seconds.
            let smallest = m
                .workers
                .iter()
                .map(|w| w.spec.expected_hashrate.as_f64())
                .filter(|h| *h > 0.0)
                .fold(f64::INFINITY, f64::min);
            if smallest.is_finite() {
                let d = smallest * interval.as_secs_f64() / HASHES_PER_DIFFICULTY;
                v.min_difficulty = v.min_difficulty.min(d / 16.0).max(1e-12);
                v.initial_difficulty = v.initial_difficulty.min(d.max(v.min_difficulty));
            }
            v
        }
    };
    let mut limits = opts.tuning.limits.clone().unwrap_or_default();
    if let Some(max) = hub.spec.max_connections {
        limits.max_connections = usize::try_from(max).unwrap_or(usize::MAX);
    }
    let config = HubConfig {
        listen: opts
            .listen
            .clone()
            .unwrap_or_else(|| format!("0.0.0.0:{}", hub.spec.stratum_port())),
        metrics: None,
        admin: None,
        routing: Some(routing),
        routing_file: None,
        secrets_dir: Some(secrets.to_owned()),
        vardiff,
        limits,
        ..HubConfig::default()
    };
    Hub::start(config)
        .await
        .map_err(|e| LocalError::Hub(format!("the embedded hub did not start: {e}")))
}

/// Writes each Secret key to `<dir>/<secret>/<key>` (mode 0600), the layout the hub reads
/// mounted Secrets from; Secrets no longer declared are removed.
fn write_secrets(dir: &Path, m: &Manifests) -> std::io::Result<()> {
    let mut keep = std::collections::BTreeSet::new();
    for s in &m.secrets {
        let Some(name) = s.metadata.name.as_deref() else {
            continue;
        };
        // Names and keys were checked by `load::load` (no path separators, no dot-names).
        keep.insert(name.to_owned());
        let sdir = dir.join(name);
        std::fs::create_dir_all(&sdir)?;
        let mut values: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for (k, v) in s.data.iter().flatten() {
            values.insert(k.clone(), v.0.clone());
        }
        for (k, v) in s.string_data.iter().flatten() {
            values.insert(k.clone(), v.as_bytes().to_vec());
        }
        for (k, v) in values {
            write_private(&sdir.join(k), &v)?;
        }
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(n) = entry.file_name().to_str()
            && !keep.contains(n)
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)
}

/// One decision cycle over the store for the one hub local mode runs.
fn cycle_of(
    store: &Store,
    memory: &CycleMemory,
    hub: &StratumHub,
    now: Timestamp,
    facts: &BTreeMap<String, WorkerFacts>,
    as_of: Option<Timestamp>,
) -> CycleOutput {
    let hub_name = hub.metadata.name.as_deref().unwrap_or_default();
    // Workers of other StratumHubs in the folder are not this hub's to judge: without facts they
    // would look dead and make contracts lend spares for nothing.
    let mut workers = store.workers();
    workers.retain(|w| w.spec.hub.as_deref().is_none_or(|h| h == hub_name));
    let contracts = store.contracts();
    let m = &store.manifests;
    let input = CycleInput {
        now,
        workers: &workers,
        contracts: &contracts,
        customers: &m.customers,
        pools: &m.pools,
        hubs: std::slice::from_ref(hub),
        facts,
        facts_as_of: as_of,
        render_objects: false,
        pod_monitor: false,
    };
    run_cycle(&input, memory)
}

/// The routing document with the tuning's pool failover policy.
fn tuned(tuning: &HubTuning, mut doc: RoutingDocument) -> RoutingDocument {
    if let Some(f) = &tuning.failover {
        doc.failover = f.clone();
    }
    doc
}

fn facts_by_worker(hub: &HubHandle) -> BTreeMap<String, WorkerFacts> {
    hub.facts()
        .into_iter()
        .map(|f| (f.worker.clone(), f))
        .collect()
}

impl Loop {
    fn push_routing(&mut self, doc: RoutingDocument) {
        let doc = tuned(&self.tuning, doc);
        if self.last_applied.as_ref() == Some(&doc) {
            return;
        }
        let generation = doc.generation;
        match self.hub.apply_routing(doc.clone()) {
            Ok(_) => {
                info!(hub = %self.hub_name, generation, "routing applied");
                self.last_applied = Some(doc);
                self.last_routing_error = None;
            }
            Err(e) => {
                let msg = e.to_string();
                if self.last_routing_error.as_deref() != Some(msg.as_str()) {
                    error!(hub = %self.hub_name, generation, error = %msg,
                        "the hub refused the routing document; it keeps the last good one");
                }
                self.last_routing_error = Some(msg);
            }
        }
    }

    /// Re-reads the folder; on a change, admits it or keeps the last good manifests.
    fn poll_manifests(&mut self) {
        let sources = match load::read_dir(&self.dir) {
            Ok(s) => s,
            Err(e) => {
                let msg = e.to_string();
                if self.last_read_error.as_deref() != Some(msg.as_str()) {
                    error!(error = %msg, "cannot read the manifests folder; keeping the last good manifests");
                    self.manifests_error = Some(msg.clone());
                }
                self.last_read_error = Some(msg);
                return;
            }
        };
        self.last_read_error = None;
        if sources == self.last_sources {
            self.settling = None;
            return;
        }
        // Editors that truncate and rewrite in place can be caught mid-write: admit a change only
        // once two reads a tick apart agree, so a half-written file is never reported as bad.
        if self.settling.as_ref() != Some(&sources) {
            self.settling = Some(sources);
            return;
        }
        self.settling = None;
        self.last_sources = sources;
        match load::load(&self.last_sources) {
            Ok(m) => match m.hub(Some(&self.hub_name)) {
                Ok(hub) => {
                    let hub = hub.clone();
                    if hub.spec.stratum_port() != self.hub_spec.spec.stratum_port()
                        || hub.spec.share_interval() != self.hub_spec.spec.share_interval()
                        || hub.spec.max_connections != self.hub_spec.spec.max_connections
                    {
                        warn!(hub = %self.hub_name,
                            "StratumHub port, share interval or connection limit changed: restart local mode to apply them");
                    }
                    if m.secrets != self.store.manifests.secrets {
                        match write_secrets(&self.secrets_dir, &m) {
                            Ok(()) => self.secrets_changed = true,
                            Err(e) => {
                                error!(error = %e, "cannot write pool passwords for the hub")
                            }
                        }
                    }
                    info!(
                        workers = m.workers.len(),
                        contracts = m.contracts.len(),
                        pools = m.pools.len(),
                        "manifests changed and were accepted"
                    );
                    self.hub_spec = hub;
                    self.store.manifests = m;
                    self.manifests_error = None;
                }
                Err(e) => {
                    let msg = format!(
                        "StratumHub {:?}, which this local mode runs, is gone: {e}",
                        self.hub_name
                    );
                    error!(error = %msg, "manifests refused; keeping the last good ones");
                    self.manifests_error = Some(msg);
                }
            },
            Err(e) => {
                error!("manifests refused, keeping the last good ones:\n{e}");
                self.manifests_error = Some(e.to_string());
            }
        }
    }

    fn tick(&mut self, now: Timestamp) {
        self.poll_manifests();
        let facts = facts_by_worker(&self.hub);
        let mut out = cycle_of(
            &self.store,
            &self.memory,
            &self.hub_spec,
            now,
            &facts,
            Some(now),
        );
        if std::mem::take(&mut self.secrets_changed)
            && let Some(doc) = out.routing.get_mut(&self.hub_name)
        {
            // Same document, new generation: the hub resolves the passwords again and replaces
            // the sessions of pools whose password changed.
            doc.generation = doc.generation.saturating_add(1);
            out.memory
                .routing
                .insert(self.hub_name.clone(), doc.clone());
            info!(hub = %self.hub_name, "a Secret changed: re-applying routing so the hub reads the new pool passwords");
        }
        for c in &out.changes {
            info!(worker = %c.worker, contract = c.contract().unwrap_or("-"), "{c}");
        }
        for r in out.contracts.iter().filter(|r| r.spec_error.is_some()) {
            warn!(contract = %r.name, error = r.spec_error.as_deref().unwrap_or(""),
                "contract spec is invalid: nothing is scheduled for it");
        }
        if let Some(doc) = out.routing.get(&self.hub_name).cloned() {
            self.push_routing(doc);
        }
        self.store.apply_cycle(&out, &facts, now);
        self.memory = out.memory;
        let doc = Arc::new(self.status_document(now));
        self.status_tx.send_replace(doc);
        self.sli_tx.send_replace(Arc::new(self.sli_snapshot()));
        self.persist(now);
    }

    /// The SLIs `/metrics` serves, from the statuses just written.
    fn sli_snapshot(&self) -> SliSnapshot {
        let ns = self
            .store
            .manifests
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        SliSnapshot::from_objects(&self.store.workers(), &self.store.contracts(), &ns)
    }

    fn status_document(&self, now: Timestamp) -> StatusDocument {
        let mut doc =
            StatusDocument::from_store(format!("local {}", self.dir.display()), &self.store, now);
        doc.hub = Some(HubRow {
            name: self.hub_name.clone(),
            stratum: self.hub.stratum_addr().to_string(),
            routing_generation: self.hub.applied_generation(),
            connections: self.hub.connections(),
        });
        let mut pools: Vec<PoolRow> = self
            .hub
            .pool_facts()
            .iter()
            .map(PoolRow::from_facts)
            .collect();
        pools.sort_by(|a, b| a.name.cmp(&b.name));
        doc.pools = pools;
        doc.manifests_error = self.manifests_error.clone();
        doc
    }

    fn persist(&mut self, now: Timestamp) {
        let Some(path) = &self.state_path else {
            return;
        };
        let st = LocalState {
            version: state::STATE_VERSION,
            saved_at: Some(now),
            memory: self.memory.clone(),
            statuses: self.store.statuses.clone(),
            last_status: (**self.status_tx.borrow()).clone(),
        };
        match state::save(path, &st) {
            Ok(()) => self.last_save_error = None,
            Err(e) => {
                let msg = e.to_string();
                if self.last_save_error.as_deref() != Some(msg.as_str()) {
                    error!(error = %msg, "cannot persist local state; a restart would lose the latest ledger");
                }
                self.last_save_error = Some(msg);
            }
        }
    }
}
