//! The scheduling loop: the one writer of decisions. On a change (debounced) and on a period it
//!
//! 1. finds each StratumHub's pods ([`super::hub_io`]) and scrapes their `/metrics`,
//! 2. reads the pages back into facts ([`super::exposition`]) and merges the pods of each hub,
//! 3. runs the decision core ([`run_cycle`]) once per namespace,
//! 4. pushes each hub's routing document to every pod over the admin API (token from the hub's
//!    Secret) and writes it into the routing ConfigMap (new pods start with it), confirming the
//!    applied generation per pod,
//! 5. writes the statuses that changed ([`super::status_writes`]) through `/status`, and
//! 6. publishes the cycle's Events ([`super::events`]).
//!
//! A namespace whose hubs cannot all be read is decided with `facts_as_of = None`: verdicts are
//! held, so no one is declared Dead because the operator is blind.
//!
//! [`Scheduler::cycle`] takes a [`World`] (the objects as the reflector stores hold them), so the
//! mocked-apiserver tests drive exactly the code the cluster runs.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hashsched_contract::facts::WorkerFacts;
use hashsched_contract::routing::RoutingDocument;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde_json::Value;
use tracing::{error, info, warn};

use super::events::{PlannedEvent, PreviousPhases, Regarding, plan_events};
use super::exposition::{self, HubReport};
use super::hub_io::{HubIo, HubKey, HubTarget};
use super::status_writes::{self, WriteReason, volatile};
use super::{FIELD_MANAGER, Shared};
use crate::crd::conditions;
use crate::crd::{
    Customer, PoolEndpoint, PoolEndpointStatus, RentalContract, StratumHub, StratumHubStatus,
    Worker,
};
use crate::scheduler::cycle::{CycleInput, CycleMemory, CycleOutput, facts_by_worker, run_cycle};
use crate::scheduler::render::kubernetes::{
    ADMIN_TOKEN_KEY, ROUTING_KEY, admin_token_secret_name, metrics_service_name,
    routing_config_map_name,
};
use crate::scheduler::sli::{ContractSli, SliSnapshot, WorkerSli};
use crate::scheduler::status::{
    HubObservation, contract_status, customer_status, merge_pool_facts, pool_endpoint_status,
    pool_spec_condition, reports_by_name, stratum_hub_status, worker_status,
};

/// Default time between two cycles when nothing changes.
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(5);
/// Changes arriving within this time are decided together.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(500);

/// The objects one cycle decides from (what the reflector stores hold).
#[derive(Debug, Clone, Default)]
pub struct World {
    pub workers: Vec<Worker>,
    pub contracts: Vec<RentalContract>,
    pub customers: Vec<Customer>,
    pub pools: Vec<PoolEndpoint>,
    pub hubs: Vec<StratumHub>,
}

impl World {
    fn namespaces(&self) -> BTreeSet<String> {
        let ns = |m: &kube::api::ObjectMeta| m.namespace.clone().unwrap_or_default();
        self.workers
            .iter()
            .map(|o| ns(&o.metadata))
            .chain(self.contracts.iter().map(|o| ns(&o.metadata)))
            .chain(self.hubs.iter().map(|o| ns(&o.metadata)))
            .collect()
    }

    /// The objects of one namespace, borrowed when every object is in it (the common
    /// single-namespace farm: no copy of 10,000 Workers per cycle).
    pub fn part(&self, namespace: &str) -> std::borrow::Cow<'_, World> {
        fn all_in<K: ResourceExt>(v: &[K], ns: &str) -> bool {
            v.iter()
                .all(|o| o.meta().namespace.as_deref().unwrap_or_default() == ns)
        }
        if all_in(&self.workers, namespace)
            && all_in(&self.contracts, namespace)
            && all_in(&self.customers, namespace)
            && all_in(&self.pools, namespace)
            && all_in(&self.hubs, namespace)
        {
            std::borrow::Cow::Borrowed(self)
        } else {
            std::borrow::Cow::Owned(self.in_namespace(namespace))
        }
    }

    /// The objects of one namespace.
    pub fn in_namespace(&self, namespace: &str) -> World {
        fn pick<K: ResourceExt + Clone>(v: &[K], ns: &str) -> Vec<K> {
            v.iter()
                .filter(|o| o.namespace().as_deref().unwrap_or_default() == ns)
                .cloned()
                .collect()
        }
        World {
            workers: pick(&self.workers, namespace),
            contracts: pick(&self.contracts, namespace),
            customers: pick(&self.customers, namespace),
            pools: pick(&self.pools, namespace),
            hubs: pick(&self.hubs, namespace),
        }
    }
}

/// Settings of the loop.
#[derive(Debug, Clone)]
pub struct ScheduleOptions {
    /// `--hub-url`: hub pods named by hand instead of discovered.
    pub hub_urls: BTreeMap<HubKey, Vec<HubTarget>>,
    /// Time between two writes of a status whose only changes are measurements.
    pub heartbeat: Duration,
}

impl Default for ScheduleOptions {
    fn default() -> Self {
        ScheduleOptions {
            hub_urls: BTreeMap::new(),
            heartbeat: status_writes::DEFAULT_HEARTBEAT,
        }
    }
}

/// What one cycle did (logs, tests, the benchmark).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CycleSummary {
    pub status_writes: usize,
    pub heartbeat_writes: usize,
    pub events: usize,
    pub pushes: usize,
    pub config_maps: usize,
    /// Hubs (`ns/name`) that could not be read: their namespaces' verdicts were held.
    pub blind_hubs: Vec<String>,
    pub errors: Vec<String>,
}

/// One hub pod after this cycle's scrape.
#[derive(Debug)]
struct PodScrape {
    target: HubTarget,
    report: Result<HubReport, String>,
}

/// The scheduling loop's state (one per operator; only the leader runs it).
pub struct Scheduler {
    client: Client,
    shared: Arc<Shared>,
    io: Arc<dyn HubIo>,
    recorder: Recorder,
    opts: ScheduleOptions,
    memory: BTreeMap<String, CycleMemory>,
    /// Per (namespace, stratum login): connected or not, and since when (unix seconds) as this
    /// operator saw it — the page does not carry the hub's own change time.
    connection_seen: BTreeMap<(String, String), (bool, f64)>,
    last_write: BTreeMap<(Regarding, String, String), Instant>,
    /// Generation each hub pod confirmed (by push answer or scrape).
    applied: BTreeMap<(HubKey, String), u64>,
    /// Generation last written into each hub's routing ConfigMap.
    config_map_generation: BTreeMap<HubKey, u64>,
    /// Hubs whose routing was seeded from their ConfigMap (once per process).
    seeded: BTreeSet<HubKey>,
    /// Per namespace: the SLIs of the statuses this cycle decided (published after the cycle).
    slis: BTreeMap<String, SliSnapshot>,
}

/// Status patches in flight at once (a failover burst; the apiserver's default in-flight limit
/// for mutating requests is 200).
pub const STATUS_WRITES_IN_FLIGHT: usize = 16;

/// One queued `/status` merge patch.
struct StatusWrite {
    key: (Regarding, String, String),
    kind: String,
    reason: WriteReason,
    send: std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), kube::Error>> + Send>>,
}

fn key_of<K: ResourceExt>(o: &K) -> String {
    format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any())
}

fn to_value<T: Serialize>(t: &T) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}

/// Sets `observedGeneration` on the status and on each of its conditions.
fn stamp_observed(status: &mut Value, generation: Option<i64>) {
    let Some(g) = generation else { return };
    if let Value::Object(m) = status {
        m.insert("observedGeneration".into(), Value::from(g));
        if let Some(Value::Array(cs)) = m.get_mut("conditions") {
            for c in cs {
                if let Value::Object(c) = c {
                    c.insert("observedGeneration".into(), Value::from(g));
                }
            }
        }
    }
}

impl Scheduler {
    pub fn new(
        client: Client,
        shared: Arc<Shared>,
        io: Arc<dyn HubIo>,
        recorder: Recorder,
        opts: ScheduleOptions,
    ) -> Self {
        Scheduler {
            client,
            shared,
            io,
            recorder,
            opts,
            memory: BTreeMap::new(),
            connection_seen: BTreeMap::new(),
            last_write: BTreeMap::new(),
            applied: BTreeMap::new(),
            config_map_generation: BTreeMap::new(),
            seeded: BTreeSet::new(),
            slis: BTreeMap::new(),
        }
    }

    /// The pods of one hub: `--hub-url` targets, or the ready endpoints of its metrics Service.
    async fn targets(&self, hub: &StratumHub) -> Result<Vec<HubTarget>, String> {
        let key = (hub.namespace().unwrap_or_default(), hub.name_any());
        if let Some(t) = self.opts.hub_urls.get(&key) {
            return Ok(t.clone());
        }
        let api: Api<EndpointSlice> = Api::namespaced(self.client.clone(), &key.0);
        let lp = ListParams::default().labels(&format!(
            "kubernetes.io/service-name={}",
            metrics_service_name(&key.1)
        ));
        let slices = api.list(&lp).await.map_err(|e| {
            format!(
                "listing the EndpointSlices of {}: {e}",
                metrics_service_name(&key.1)
            )
        })?;
        Ok(super::hub_io::targets_from_slices(&slices.items))
    }

    async fn scrape_hub(&self, hub: &StratumHub) -> Result<Vec<PodScrape>, String> {
        let targets = self.targets(hub).await?;
        let hub_key = key_of(hub);
        let scrapes = futures::future::join_all(targets.into_iter().map(|target| {
            let io = self.io.clone();
            async move {
                let report = match io.scrape(&target).await {
                    Ok(text) => exposition::parse(&text)
                        .map(|s| exposition::hub_report(&s))
                        .map_err(|e| format!("unreadable /metrics: {e}")),
                    Err(e) => Err(e.to_string()),
                };
                PodScrape { target, report }
            }
        }))
        .await;
        for s in &scrapes {
            self.shared
                .metrics
                .scrape(&hub_key, &s.target.pod, s.report.is_ok());
            if let Err(e) = &s.report {
                warn!(hub = %hub_key, pod = %s.target.pod, error = %e,
                    "cannot read the hub pod's metrics: verdicts in this namespace are held until it answers");
            }
        }
        Ok(scrapes)
    }

    /// The previous routing document of a hub the loop has not decided yet in this process:
    /// the one in its ConfigMap, so a restarted operator keeps the hub's generation.
    async fn seed_routing(&mut self, ns: &str, hub: &str) {
        let key = (ns.to_owned(), hub.to_owned());
        if !self.seeded.insert(key.clone()) {
            return;
        }
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), ns);
        let Ok(Some(cm)) = api.get_opt(&routing_config_map_name(hub)).await else {
            return;
        };
        let Some(doc) = cm
            .data
            .as_ref()
            .and_then(|d| d.get(ROUTING_KEY))
            .and_then(|t| serde_json::from_str::<RoutingDocument>(t).ok())
        else {
            return;
        };
        self.config_map_generation.insert(key, doc.generation);
        self.memory
            .entry(ns.to_owned())
            .or_default()
            .routing
            .insert(hub.to_owned(), doc);
    }

    /// One cycle over every namespace.
    pub async fn cycle(&mut self, world: &World, now: Timestamp) -> CycleSummary {
        let started = Instant::now();
        let mut summary = CycleSummary::default();
        // Scrape every hub pod (all hubs at once).
        let scrapes =
            futures::future::join_all(world.hubs.iter().map(|h| self.scrape_hub(h))).await;
        let mut by_hub: BTreeMap<HubKey, Result<Vec<PodScrape>, String>> = BTreeMap::new();
        for (h, s) in world.hubs.iter().zip(scrapes) {
            by_hub.insert((h.namespace().unwrap_or_default(), h.name_any()), s);
        }
        for ns in world.namespaces() {
            let part = world.part(&ns);
            for h in &part.hubs {
                self.seed_routing(&ns, &h.name_any()).await;
            }
            self.cycle_namespace(&ns, &part, &by_hub, now, &mut summary)
                .await;
        }
        // Namespaces that lost all their objects lose their memory.
        let live = world.namespaces();
        self.memory.retain(|ns, _| live.contains(ns));
        self.slis.retain(|ns, _| live.contains(ns));
        let mut snapshot = SliSnapshot::default();
        for part in self.slis.values() {
            snapshot.contracts.extend(part.contracts.iter().cloned());
            snapshot.workers.extend(part.workers.iter().cloned());
        }
        self.shared.slis.send_replace(Arc::new(snapshot));
        self.shared
            .metrics
            .cycle_seconds(started.elapsed().as_secs_f64());
        summary
    }

    async fn cycle_namespace(
        &mut self,
        ns: &str,
        world: &World,
        scrapes: &BTreeMap<HubKey, Result<Vec<PodScrape>, String>>,
        now: Timestamp,
        summary: &mut CycleSummary,
    ) {
        // Facts of every pod of every hub of the namespace; blind if any hub cannot be read.
        let mut facts: Vec<WorkerFacts> = Vec::new();
        let mut blind = world.hubs.is_empty();
        for h in &world.hubs {
            let key = (ns.to_owned(), h.name_any());
            match scrapes.get(&key) {
                Some(Ok(pods)) if !pods.is_empty() => {
                    for p in pods {
                        match &p.report {
                            Ok(r) => facts.extend(r.workers.iter().cloned()),
                            Err(_) => blind = true,
                        }
                    }
                }
                Some(Err(e)) => {
                    summary.errors.push(e.clone());
                    blind = true;
                }
                _ => blind = true,
            }
            if blind {
                summary.blind_hubs.push(format!("{ns}/{}", h.name_any()));
            }
        }
        let now_unix = now.as_millisecond() as f64 / 1000.0;
        for f in &mut facts {
            let seen = self
                .connection_seen
                .entry((ns.to_owned(), f.worker.clone()))
                .or_insert((f.connected, now_unix));
            if seen.0 != f.connected {
                *seen = (f.connected, now_unix);
            }
            f.last_change_unix = Some(seen.1);
        }
        let merged = facts_by_worker(&world.workers, facts);
        // Taken, not copied: the cycle returns the next memory, stored back below.
        let memory = self.memory.remove(ns).unwrap_or_default();
        let input = CycleInput {
            now,
            workers: &world.workers,
            contracts: &world.contracts,
            customers: &world.customers,
            pools: &world.pools,
            hubs: &world.hubs,
            facts: &merged,
            facts_as_of: (!blind).then_some(now),
            render_objects: false,
            pod_monitor: false,
        };
        let mut out = run_cycle(&input, &memory);
        // Never behind what a pod already applied (the hub refuses to go back).
        for h in &world.hubs {
            let key = (ns.to_owned(), h.name_any());
            let seen_max = match scrapes.get(&key) {
                Some(Ok(pods)) => pods
                    .iter()
                    .filter_map(|p| p.report.as_ref().ok().map(|r| r.routing_generation))
                    .max()
                    .unwrap_or(0),
                _ => 0,
            };
            if let Some(doc) = out.routing.get_mut(&key.1)
                && seen_max > doc.generation
                && memory.routing.get(&key.1).is_none_or(|prev| prev != doc)
            {
                doc.generation = seen_max + 1;
                out.memory.routing.insert(key.1.clone(), doc.clone());
            }
        }
        // The decision is kept at once (a cycle cut short by shutdown keeps it too; deliveries
        // and statuses are redone from it next cycle).
        self.memory
            .insert(ns.to_owned(), std::mem::take(&mut out.memory));
        for c in &out.changes {
            info!(namespace = %ns, worker = %c.worker, contract = c.contract().unwrap_or("-"), "{c}");
        }
        // Routing first: the decision takes effect at the hubs before it is reported.
        for h in &world.hubs {
            self.deliver_routing(ns, h, &out, scrapes, summary).await;
        }
        self.write_statuses(ns, world, &out, &merged, scrapes, now, summary)
            .await;
        let before = previous_phases(world);
        let events = plan_events(&out, &before);
        self.publish_all(ns, world, &events, summary).await;
    }

    async fn admin_token(&self, ns: &str, hub: &str) -> Result<String, String> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), ns);
        let name = admin_token_secret_name(hub);
        let secret = api
            .get_opt(&name)
            .await
            .map_err(|e| format!("reading Secret {ns}/{name}: {e}"))?
            .ok_or_else(|| format!("Secret {ns}/{name} does not exist (the operator creates it with the hub's objects)"))?;
        let bytes = secret
            .data
            .as_ref()
            .and_then(|d| d.get(ADMIN_TOKEN_KEY))
            .map(|b| b.0.clone())
            .ok_or_else(|| format!("Secret {ns}/{name} has no key {ADMIN_TOKEN_KEY:?}"))?;
        let token = String::from_utf8(bytes)
            .map_err(|_| format!("Secret {ns}/{name}: token is not UTF-8"))?;
        let token = token.trim_end_matches(['\n', '\r']).to_owned();
        if token.is_empty() {
            return Err(format!("Secret {ns}/{name}: token is empty"));
        }
        Ok(token)
    }

    /// Pushes the hub's document to each pod that has not confirmed it, and writes the
    /// ConfigMap when its generation moved.
    async fn deliver_routing(
        &mut self,
        ns: &str,
        hub: &StratumHub,
        out: &CycleOutput,
        scrapes: &BTreeMap<HubKey, Result<Vec<PodScrape>, String>>,
        summary: &mut CycleSummary,
    ) {
        let name = hub.name_any();
        let key: HubKey = (ns.to_owned(), name.clone());
        let hub_label = format!("{ns}/{name}");
        let Some(doc) = out.routing.get(&name) else {
            return;
        };
        if let Ok(mut r) = self.shared.routing.lock() {
            r.insert(key.clone(), doc.clone());
        }
        let generation = doc.generation;
        let pods: Vec<&PodScrape> = match scrapes.get(&key) {
            Some(Ok(p)) => p.iter().collect(),
            _ => Vec::new(),
        };
        for p in &pods {
            if let Ok(r) = &p.report {
                self.applied
                    .insert((key.clone(), p.target.pod.clone()), r.routing_generation);
            }
        }
        let behind: Vec<&HubTarget> = pods
            .iter()
            .filter(|p| p.report.is_ok())
            .filter(|p| self.applied.get(&(key.clone(), p.target.pod.clone())) != Some(&generation))
            .map(|p| &p.target)
            .collect();
        if !behind.is_empty() {
            match self.admin_token(ns, &name).await {
                Ok(token) => {
                    let body = serde_json::to_vec(doc).unwrap_or_default();
                    for t in behind {
                        summary.pushes += 1;
                        let res = self.io.push(t, &token, &body).await;
                        let ok = matches!(&res, Ok(r) if r.status == 200);
                        self.shared.metrics.push(&hub_label, &t.pod, ok);
                        match res {
                            Ok(r) if r.status == 200 => {
                                let applied = r
                                    .json()
                                    .and_then(|j| j["generation"].as_u64())
                                    .unwrap_or(generation);
                                self.applied.insert((key.clone(), t.pod.clone()), applied);
                                info!(hub = %hub_label, pod = %t.pod, generation = applied, "routing applied by the hub pod");
                            }
                            Ok(r) => {
                                let msg = format!(
                                    "hub pod {} refused routing generation {generation}: HTTP {}: {}",
                                    t.pod,
                                    r.status,
                                    r.body.trim()
                                );
                                error!(hub = %hub_label, pod = %t.pod, "{msg}; it keeps its last good routing");
                                summary.errors.push(msg);
                            }
                            Err(e) => {
                                let msg = format!("pushing routing to hub pod {}: {e}", t.pod);
                                warn!(hub = %hub_label, pod = %t.pod, error = %e, "routing push failed; retrying next cycle");
                                summary.errors.push(msg);
                            }
                        }
                    }
                }
                Err(e) => {
                    error!(hub = %hub_label, error = %e, "cannot push routing: no admin token");
                    summary.errors.push(e.clone());
                    let ev = PlannedEvent {
                        regarding: Regarding::StratumHub,
                        name: name.clone(),
                        warning: true,
                        reason: "AdminTokenMissing",
                        note: format!(
                            "{e}; routing reaches the hub pods only through the ConfigMap until it is readable"
                        ),
                        action: "PushRouting",
                    };
                    let w = World {
                        hubs: vec![hub.clone()],
                        ..World::default()
                    };
                    self.publish(ns, &w, &ev, summary).await;
                }
            }
        }
        // The ConfigMap: the copy new pods start with.
        if self.config_map_generation.get(&key) != Some(&generation)
            && let Some(objects) = super::children::render_children(hub, &self.shared)
        {
            match objects {
                Ok(o) if o.config_map_fits() => {
                    let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), ns);
                    let cm = &o.routing_config_map;
                    match api
                        .patch(
                            &routing_config_map_name(&name),
                            &PatchParams::apply(FIELD_MANAGER).force(),
                            &Patch::Apply(cm),
                        )
                        .await
                    {
                        Ok(_) => {
                            self.shared.metrics.write("ConfigMap", "apply");
                            summary.config_maps += 1;
                            self.config_map_generation.insert(key.clone(), generation);
                        }
                        Err(e) => {
                            warn!(hub = %hub_label, error = %e, "cannot write the routing ConfigMap; retrying next cycle");
                            summary.errors.push(e.to_string());
                        }
                    }
                }
                Ok(o) => {
                    // Too large for a ConfigMap: pods get it over the admin API only.
                    warn!(hub = %hub_label, bytes = o.config_map_bytes(),
                        "routing document too large for the routing ConfigMap: new pods get it over the admin API only");
                    self.config_map_generation.insert(key.clone(), generation);
                }
                Err(e) => summary.errors.push(e.to_string()),
            }
        }
    }

    /// Decides whether `desired` is worth writing over `current` and, if so, queues the
    /// `/status` merge patch (sent by [`Self::send_status_writes`]).
    #[allow(clippy::too_many_arguments)]
    fn plan_status<K>(
        &self,
        ns: &str,
        regarding: Regarding,
        obj: &K,
        current: Option<&Value>,
        mut desired: Value,
        vol: &[&str],
        queue: &mut Vec<StatusWrite>,
    ) where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug
            + Send
            + 'static,
    {
        stamp_observed(&mut desired, obj.meta().generation);
        let name = obj.meta().name.clone().unwrap_or_default();
        let key = (regarding, ns.to_owned(), name.clone());
        let Some(reason) = status_writes::decide(
            current,
            &desired,
            vol,
            self.last_write.get(&key).copied(),
            Instant::now(),
            self.opts.heartbeat,
        ) else {
            return;
        };
        let api: Api<K> = Api::namespaced(self.client.clone(), ns);
        let patch = status_writes::status_patch(current, &desired);
        queue.push(StatusWrite {
            key,
            kind: K::kind(&()).into_owned(),
            reason,
            send: Box::pin(async move {
                api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map(|_| ())
            }),
        });
    }

    /// Sends the queued status patches, [`STATUS_WRITES_IN_FLIGHT`] at a time: a failover burst
    /// (hundreds of Workers and contracts changing at once) costs round trips in parallel, not
    /// one after the other.
    async fn send_status_writes(&mut self, queue: Vec<StatusWrite>, summary: &mut CycleSummary) {
        use futures::StreamExt;
        let results: Vec<_> = futures::stream::iter(queue.into_iter().map(|w| async move {
            let r = w.send.await;
            (w.key, w.kind, w.reason, r)
        }))
        .buffer_unordered(STATUS_WRITES_IN_FLIGHT)
        .collect()
        .await;
        for (key, kind, reason, r) in results {
            match r {
                Ok(()) => {
                    self.shared.metrics.write(&kind, "patch_status");
                    self.last_write.insert(key, Instant::now());
                    match reason {
                        WriteReason::Changed => summary.status_writes += 1,
                        WriteReason::Heartbeat => summary.heartbeat_writes += 1,
                    }
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {} // deleted meanwhile
                Err(e) => {
                    warn!(object = %format!("{}/{}", key.1, key.2), kind = %kind, error = %e,
                        "cannot write status; retrying next cycle");
                    summary.errors.push(e.to_string());
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn write_statuses(
        &mut self,
        ns: &str,
        world: &World,
        out: &CycleOutput,
        facts: &BTreeMap<String, WorkerFacts>,
        scrapes: &BTreeMap<HubKey, Result<Vec<PodScrape>, String>>,
        now: Timestamp,
        summary: &mut CycleSummary,
    ) {
        // Indexes: a 10,000-worker farm must not search lists per object.
        let workers: BTreeMap<String, &Worker> =
            world.workers.iter().map(|w| (w.name_any(), w)).collect();
        let contracts: BTreeMap<String, &RentalContract> =
            world.contracts.iter().map(|c| (c.name_any(), c)).collect();
        let mut slis = SliSnapshot::default();
        let mut queue: Vec<StatusWrite> = Vec::new();
        let mut moves: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for c in &out.changes {
            moves
                .entry(c.worker.as_str())
                .or_default()
                .push(c.reason.to_string());
        }
        for r in &out.workers {
            let Some(obj) = workers.get(&r.name).copied() else {
                continue;
            };
            let changes = moves.get(r.name.as_str()).cloned().unwrap_or_default();
            let desired = worker_status(obj.status.as_ref(), r, facts.get(&r.name), &changes, now);
            slis.workers.push(WorkerSli {
                namespace: ns.to_owned(),
                worker: r.name.clone(),
                owner: obj.spec.owner.to_string(),
                phase: desired.phase.unwrap_or_default(),
            });
            let current = obj.status.as_ref().map(to_value);
            self.plan_status(
                ns,
                Regarding::Worker,
                obj,
                current.as_ref(),
                to_value(&desired),
                volatile::WORKER,
                &mut queue,
            );
        }
        let reports = reports_by_name(&out.workers);
        for r in &out.contracts {
            let Some(obj) = contracts.get(&r.name).copied() else {
                continue;
            };
            let desired = contract_status(obj.status.as_ref(), r, &reports, now);
            let mut decided = obj.clone();
            decided.status = Some(desired.clone());
            slis.contracts.push(ContractSli::from_object(&decided, ns));
            let current = obj.status.as_ref().map(to_value);
            self.plan_status(
                ns,
                Regarding::RentalContract,
                obj,
                current.as_ref(),
                to_value(&desired),
                volatile::CONTRACT,
                &mut queue,
            );
        }
        self.slis.insert(ns.to_owned(), slis);
        for p in &world.pools {
            let desired = pool_status(p, ns, scrapes, out.invalid_pools.get(&p.name_any()), now);
            let current = p.status.as_ref().map(to_value);
            self.plan_status(
                ns,
                Regarding::PoolEndpoint,
                p,
                current.as_ref(),
                to_value(&desired),
                volatile::POOL,
                &mut queue,
            );
        }
        for c in &world.customers {
            let desired = customer_status(
                c.status.as_ref(),
                &c.name_any(),
                &out.contracts,
                c.metadata.generation,
                now,
            );
            let current = c.status.as_ref().map(to_value);
            self.plan_status(
                ns,
                Regarding::Customer,
                c,
                current.as_ref(),
                to_value(&desired),
                volatile::CUSTOMER,
                &mut queue,
            );
        }
        for h in &world.hubs {
            let key: HubKey = (ns.to_owned(), h.name_any());
            let desired = self.hub_status(h, &key, out, scrapes, now);
            let current = h.status.as_ref().map(to_value);
            self.plan_status(
                ns,
                Regarding::StratumHub,
                h,
                current.as_ref(),
                to_value(&desired),
                volatile::HUB,
                &mut queue,
            );
        }
        self.send_status_writes(queue, summary).await;
    }

    fn hub_status(
        &self,
        hub: &StratumHub,
        key: &HubKey,
        out: &CycleOutput,
        scrapes: &BTreeMap<HubKey, Result<Vec<PodScrape>, String>>,
        now: Timestamp,
    ) -> StratumHubStatus {
        let pods: Vec<&PodScrape> = match scrapes.get(key) {
            Some(Ok(p)) => p.iter().collect(),
            _ => Vec::new(),
        };
        let ok: Vec<&PodScrape> = pods.iter().copied().filter(|p| p.report.is_ok()).collect();
        let connected: BTreeSet<&str> = ok
            .iter()
            .filter_map(|p| p.report.as_ref().ok())
            .flat_map(|r| {
                r.workers
                    .iter()
                    .filter(|w| w.connected)
                    .map(|w| w.worker.as_str())
            })
            .collect();
        let applied = ok
            .iter()
            .filter_map(|p| {
                self.applied
                    .get(&(key.clone(), p.target.pod.clone()))
                    .copied()
            })
            .min();
        let desired = out.routing.get(&key.1).map(|d| d.generation);
        let pods_behind = ok
            .iter()
            .filter(|p| {
                desired.is_some()
                    && self
                        .applied
                        .get(&(key.clone(), p.target.pod.clone()))
                        .copied()
                        != desired
            })
            .map(|p| p.target.pod.clone())
            .collect();
        let obs = HubObservation {
            pods: u32::try_from(pods.len()).unwrap_or(u32::MAX),
            answering: u32::try_from(ok.len()).unwrap_or(u32::MAX),
            connected_workers: Some(u32::try_from(connected.len()).unwrap_or(u32::MAX)),
            applied_generation: applied,
            pods_behind,
            stratum_endpoint: Some(format!(
                "{}.{}.svc:{}",
                hub.name_any(),
                key.0,
                hub.spec.stratum_port()
            )),
            render_error: self.shared.render_error(key),
            routing_refused: out.routing_errors.get(&key.1).cloned(),
        };
        stratum_hub_status(
            hub.status.as_ref(),
            &obs,
            desired,
            hub.metadata.generation,
            now,
        )
    }

    async fn publish(&self, ns: &str, world: &World, e: &PlannedEvent, summary: &mut CycleSummary) {
        self.publish_all(ns, world, std::slice::from_ref(e), summary)
            .await;
    }

    /// Publishes a cycle's Events, [`STATUS_WRITES_IN_FLIGHT`] at a time. The objects they are
    /// about are looked up in one pass per kind (a failover burst has hundreds of Events; a
    /// search of 10,000 Workers per Event would dominate the cycle).
    async fn publish_all(
        &self,
        ns: &str,
        world: &World,
        events: &[PlannedEvent],
        summary: &mut CycleSummary,
    ) {
        use futures::StreamExt;
        use k8s_openapi::api::core::v1::ObjectReference;
        fn refs<'a, K: Resource<DynamicType = ()>>(
            objects: &'a [K],
            wanted: &BTreeSet<&str>,
        ) -> BTreeMap<&'a str, ObjectReference> {
            objects
                .iter()
                .filter_map(|o| {
                    let name = o.meta().name.as_deref()?;
                    wanted.contains(name).then(|| (name, o.object_ref(&())))
                })
                .collect()
        }
        let wanted = |kind: Regarding| -> BTreeSet<&str> {
            events
                .iter()
                .filter(|e| e.regarding == kind)
                .map(|e| e.name.as_str())
                .collect()
        };
        let by_kind: BTreeMap<Regarding, BTreeMap<&str, ObjectReference>> = [
            (
                Regarding::Worker,
                refs(&world.workers, &wanted(Regarding::Worker)),
            ),
            (
                Regarding::RentalContract,
                refs(&world.contracts, &wanted(Regarding::RentalContract)),
            ),
            (
                Regarding::StratumHub,
                refs(&world.hubs, &wanted(Regarding::StratumHub)),
            ),
            (
                Regarding::PoolEndpoint,
                refs(&world.pools, &wanted(Regarding::PoolEndpoint)),
            ),
            (
                Regarding::Customer,
                refs(&world.customers, &wanted(Regarding::Customer)),
            ),
        ]
        .into_iter()
        .collect();
        let sends = events.iter().filter_map(|e| {
            let reference = by_kind.get(&e.regarding)?.get(e.name.as_str())?.clone();
            let ev = Event {
                type_: if e.warning {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                reason: e.reason.to_owned(),
                note: Some(e.note.chars().take(1000).collect()),
                action: e.action.to_owned(),
                secondary: None,
            };
            Some(async move { (e, self.recorder.publish(&ev, &reference).await) })
        });
        let results: Vec<_> = futures::stream::iter(sends)
            .buffer_unordered(STATUS_WRITES_IN_FLIGHT)
            .collect()
            .await;
        for (e, r) in results {
            match r {
                Ok(()) => {
                    self.shared.metrics.write("Event", "event");
                    summary.events += 1;
                }
                Err(err) => {
                    warn!(namespace = %ns, object = %e.name, reason = e.reason, error = %err, "cannot publish Event");
                }
            }
        }
    }
}

/// What the objects' statuses said before this cycle.
pub fn previous_phases(world: &World) -> PreviousPhases {
    let mut p = PreviousPhases::default();
    for w in &world.workers {
        if let Some(phase) = w.status.as_ref().and_then(|s| s.phase) {
            p.workers.insert(w.name_any(), phase);
        }
    }
    for c in &world.contracts {
        let Some(s) = c.status.as_ref() else { continue };
        let cond = |t: &str| conditions::find_condition(&s.conditions, t).map(|c| c.status.clone());
        p.spares_exhausted.insert(
            c.name_any(),
            cond(conditions::SPARES_EXHAUSTED).as_deref() == Some(conditions::TRUE),
        );
        p.spec_invalid.insert(
            c.name_any(),
            cond(conditions::SPEC_VALID).as_deref() == Some(conditions::FALSE),
        );
        if let Some(phase) = s.phase {
            p.contracts.insert(c.name_any(), phase);
        }
    }
    p
}

/// A PoolEndpoint's status from what the namespace's hub pods report about the pool of that name
/// (reachable when any pod has an authorized session).
fn pool_status(
    pool: &PoolEndpoint,
    ns: &str,
    scrapes: &BTreeMap<HubKey, Result<Vec<PodScrape>, String>>,
    invalid: Option<&String>,
    now: Timestamp,
) -> PoolEndpointStatus {
    let name = pool.name_any();
    let facts: Vec<&hashsched_contract::facts::PoolFacts> = scrapes
        .iter()
        .filter(|(k, _)| k.0 == ns)
        .filter_map(|(_, r)| r.as_ref().ok())
        .flatten()
        .filter_map(|p| p.report.as_ref().ok())
        .flat_map(|r| r.pools.iter().filter(|f| f.pool == name))
        .collect();
    let mut s = match merge_pool_facts(&facts) {
        Some(merged) => pool_endpoint_status(
            pool.status.as_ref(),
            Some(&merged),
            pool.metadata.generation,
            now,
        ),
        // No hub reports this pool (not routed to, or no hub readable): keep the last known.
        None => pool.status.clone().unwrap_or_default(),
    };
    pool_spec_condition(&mut s, invalid.map(String::as_str), now);
    s
}
