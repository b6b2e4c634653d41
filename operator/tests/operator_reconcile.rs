//! The operator's reconciles against an in-memory apiserver (`tower_test` mock): the exact
//! requests for a new StratumHub (server-side applies with owner references, the admin token
//! created once, stale children deleted), a new contract, a failed rented worker, its recovery
//! and give-back (status patches, Events on the Worker and the RentalContract, routing pushes
//! and the routing ConfigMap), a bad object and a missing Secret, a PoolEndpoint the hub would
//! refuse (left out of the routing, `SpecValid` False), and a steady farm (no writes).

mod operator_common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use hashsched_hub::admin::client::AdminResponse;
use hashsched_hub::facts::{AssignmentLabels, ShareBuckets, WindowHashrate, WorkerFacts};
use hashsched_hub::metrics::{HubMetrics, Snapshot, SnapshotSource};
use hashsched_hub::routing::{PoolUrl, RoutingDocument, check_login};
use hashsched_operator::controller::hub_io::{BoxFut, HubIo, HubIoError, HubTarget};
use hashsched_operator::controller::schedule::{CycleSummary, ScheduleOptions, Scheduler, World};
use hashsched_operator::controller::{Context, FIELD_MANAGER, Shared, children};
use hashsched_operator::crd::{
    Customer, PoolEndpoint, RentalContract, StratumHub, Worker, conditions,
};
use hashsched_operator::metric_names::{CONTRACT_UPTIME_RATIO, WORKER_PHASE};
use jiff::Timestamp;
use kube::runtime::events::{Recorder, Reporter};
use operator_common::{FakeApi, Recorded, base64};
use serde::Deserialize;
use serde_json::{Value, json};

const NS: &str = "mining";
const T0: i64 = 1_782_864_000; // 2026-07-01T00:00:00Z
const HUB_PATH: &str = "/apis/hashsched.io/v1alpha1/namespaces/mining/stratumhubs/site-a";

fn examples() -> Vec<Value> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let v = Value::deserialize(doc).unwrap();
            if v["metadata"]["namespace"].is_string() {
                out.push(v);
            }
        }
    }
    out
}

fn api_with_examples(admin_token: bool) -> FakeApi {
    let api = FakeApi::default();
    for o in examples() {
        api.put(o);
    }
    if admin_token {
        api.put(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "site-a-admin-token", "namespace": NS},
            "data": {"token": base64(b"s3cret-token\n")}}));
    }
    api
}

fn world(api: &FakeApi) -> World {
    let c = |kind: &str| operator_common::collection("hashsched.io/v1alpha1", kind, NS);
    World {
        workers: api.list::<Worker>(&c("Worker")),
        contracts: api.list::<RentalContract>(&c("RentalContract")),
        customers: api.list::<Customer>(&c("Customer")),
        pools: api.list::<PoolEndpoint>(&c("PoolEndpoint")),
        hubs: api.list::<StratumHub>(&c("StratumHub")),
    }
}

// ---- a hub pod serving pages from the hub's own encoder -------------------------------------

#[derive(Debug, Default)]
struct PageState {
    snapshot: Snapshot,
    down: bool,
    pushes: Vec<(String, u64, String)>,
    /// Replicas of the hub (empty: one pod serves every worker). With several, worker `i` is
    /// connected to pod `i % n` and each pod has its own applied generation.
    pods: Vec<String>,
    generation_by_pod: BTreeMap<String, u64>,
    /// Pods whose admin API cannot be reached (the push fails, the scrape still answers).
    unreachable_admin: std::collections::BTreeSet<String>,
}

#[derive(Debug, Clone, Default)]
struct FakeHub(Arc<Mutex<PageState>>);

#[derive(Debug)]
struct Fixed(Snapshot);
impl SnapshotSource for Fixed {
    fn snapshot(&self) -> Snapshot {
        self.0.clone()
    }
}

impl HubIo for FakeHub {
    fn scrape<'a>(&'a self, t: &'a HubTarget) -> BoxFut<'a, Result<String, HubIoError>> {
        let st = self.0.lock().unwrap();
        let r = if st.down {
            Err(HubIoError::Timeout(std::time::Duration::from_secs(3)))
        } else if let Some(k) = st.pods.iter().position(|p| *p == t.pod) {
            let mut page = st.snapshot.clone();
            let n = st.pods.len();
            page.workers = page
                .workers
                .into_iter()
                .enumerate()
                .filter(|(i, _)| i % n == k)
                .map(|(_, w)| w)
                .collect();
            page.routing_generation = st.generation_by_pod.get(&t.pod).copied().unwrap_or(0);
            Ok(HubMetrics::new(Arc::new(Fixed(page))).render())
        } else {
            Ok(HubMetrics::new(Arc::new(Fixed(st.snapshot.clone()))).render())
        };
        Box::pin(async move { r })
    }

    fn push<'a>(
        &'a self,
        t: &'a HubTarget,
        token: &'a str,
        document: &'a [u8],
    ) -> BoxFut<'a, Result<AdminResponse, HubIoError>> {
        let doc: RoutingDocument = serde_json::from_slice(document).unwrap();
        doc.validate()
            .expect("the hub accepts what the operator pushes");
        let mut st = self.0.lock().unwrap();
        st.pushes
            .push((t.pod.clone(), doc.generation, token.to_owned()));
        if st.unreachable_admin.contains(&t.pod) {
            return Box::pin(
                async move { Err(HubIoError::Timeout(std::time::Duration::from_secs(3))) },
            );
        }
        st.snapshot.routing_generation = doc.generation;
        st.generation_by_pod.insert(t.pod.clone(), doc.generation);
        let g = doc.generation;
        Box::pin(async move {
            Ok(AdminResponse {
                status: 200,
                body: json!({"generation": g, "changed": true}).to_string(),
            })
        })
    }
}

/// Facts of a worker hashing at `expected` H/s (one share every 2 s), silent for `silent` s.
fn facts(name: &str, expected: f64, connected: bool, silent: i64, last: i64) -> WorkerFacts {
    let lambda = 0.5;
    let d = expected / (lambda * 4_294_967_296.0);
    let windows = [60u64, 300, 900]
        .iter()
        .map(|&w| {
            let active = (w as f64 - silent as f64).max(0.0) / w as f64;
            WindowHashrate {
                window_seconds: w,
                hashes_per_second: expected * active,
                shares: (lambda * active * w as f64).round() as u64,
            }
        })
        .collect();
    WorkerFacts {
        worker: name.into(),
        connected,
        shares: ShareBuckets {
            accepted: 1000,
            ..ShareBuckets::default()
        },
        difficulty: ShareBuckets {
            accepted: 1000.0 * d,
            ..ShareBuckets::default()
        },
        pending: 0,
        hashrate: windows,
        last_share_unix: Some((T0 + last) as f64),
        last_change_unix: None,
        miner_difficulty: Some(d),
        pool: None,
        labels: AssignmentLabels::default(),
    }
}

struct Story {
    api: FakeApi,
    hub: FakeHub,
    shared: Arc<Shared>,
    scheduler: Scheduler,
    opts: ScheduleOptions,
}

impl Story {
    fn new(admin_token: bool) -> Story {
        Story::with_pods(admin_token, &["site-a-0"])
    }

    /// A story whose hub `site-a` runs as the given pods (replicas).
    fn with_pods(admin_token: bool, pods: &[&str]) -> Story {
        let api = api_with_examples(admin_token);
        let hub = FakeHub::default();
        if pods.len() > 1 {
            hub.0.lock().unwrap().pods = pods.iter().map(|p| (*p).to_owned()).collect();
        }
        let targets = pods
            .iter()
            .map(|p| HubTarget {
                pod: (*p).into(),
                metrics: "127.0.0.1:9".parse().unwrap(),
                admin: "127.0.0.1:9".parse().unwrap(),
            })
            .collect();
        let opts = ScheduleOptions {
            hub_urls: BTreeMap::from([((NS.to_owned(), "site-a".to_owned()), targets)]),
            ..ScheduleOptions::default()
        };
        Story::build(api, hub, opts)
    }

    /// A story around an existing apiserver and hub (a restarted operator is a new `Scheduler`
    /// over the same objects).
    fn build(api: FakeApi, hub: FakeHub, opts: ScheduleOptions) -> Story {
        let client = api.client();
        let shared = Arc::new(Shared::new(false, None));
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "hashsched.io/operator".into(),
                instance: Some("test".into()),
            },
        );
        let scheduler = Scheduler::new(
            client,
            shared.clone(),
            Arc::new(hub.clone()),
            recorder,
            opts.clone(),
        );
        Story {
            api,
            hub,
            shared,
            scheduler,
            opts,
        }
    }

    /// The operator process restarts: a new scheduler (no memory) over the same apiserver
    /// objects and hub.
    fn restart(self) -> Story {
        Story::build(self.api, self.hub, self.opts)
    }

    /// The SLIs of one contract the last cycle decided (what the operator's /metrics serves).
    fn sli(&self, contract: &str) -> hashsched_operator::scheduler::sli::ContractSli {
        self.shared
            .slis
            .borrow()
            .contracts
            .iter()
            .find(|c| c.contract == contract)
            .cloned()
            .expect("the contract's SLIs")
    }

    /// Sets the hub's facts: every Worker hashing, except as `tweak` says.
    fn farm(&self, t: i64, tweak: impl Fn(&str, f64) -> Option<WorkerFacts>) {
        let w = world(&self.api);
        let workers = w
            .workers
            .iter()
            .map(|wk| {
                let name = wk.metadata.name.clone().unwrap();
                let h = wk.spec.expected_hashrate.as_f64();
                tweak(&name, h).unwrap_or_else(|| facts(&name, h, true, 0, t - 1))
            })
            .collect();
        self.hub.0.lock().unwrap().snapshot.workers = workers;
    }

    async fn cycle(&mut self, t: i64) -> (CycleSummary, Vec<Recorded>) {
        let w = world(&self.api);
        let s = self
            .scheduler
            .cycle(&w, Timestamp::from_second(T0 + t).unwrap())
            .await;
        (s, self.api.take_log())
    }

    fn pushes(&self) -> Vec<(String, u64, String)> {
        std::mem::take(&mut self.hub.0.lock().unwrap().pushes)
    }

    fn status(&self, kind: &str, name: &str) -> Value {
        let path = format!(
            "{}/{name}",
            operator_common::collection("hashsched.io/v1alpha1", kind, NS)
        );
        self.api.get(&path).unwrap()["status"].clone()
    }
}

fn events(log: &[Recorded]) -> Vec<(String, String, String)> {
    log.iter()
        .filter(|r| {
            r.method == "POST" && r.path == "/apis/events.k8s.io/v1/namespaces/mining/events"
        })
        .map(|r| {
            (
                r.body["regarding"]["kind"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                r.body["regarding"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                r.body["reason"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn has_event(ev: &[(String, String, String)], kind: &str, name: &str, reason: &str) -> bool {
    ev.iter()
        .any(|(k, n, r)| k == kind && n == name && r == reason)
}

fn writes(log: &[Recorded]) -> Vec<String> {
    log.iter()
        .filter(|r| r.is_write())
        .map(Recorded::line)
        .collect()
}

// ---- StratumHub → children --------------------------------------------------------------------

#[tokio::test]
async fn a_new_stratum_hub_gets_its_children_by_server_side_apply() {
    let api = api_with_examples(false);
    // A child from an earlier spec, labelled for the hub: the operator deletes it.
    api.put(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "site-a-old", "namespace": NS, "labels": {
            "app.kubernetes.io/instance": "site-a", "app.kubernetes.io/managed-by": "hashsched-operator"}},
        "data": {}}));
    let client = api.client();
    let shared = Arc::new(Shared::new(false, None));
    let ctx = Arc::new(Context {
        client: client.clone(),
        shared: shared.clone(),
    });
    let hub: StratumHub = serde_json::from_value(api.get(HUB_PATH).unwrap()).unwrap();
    let uid = hub.metadata.uid.clone().unwrap();

    // Before the scheduling loop rendered the hub's routing: nothing is applied yet.
    children::reconcile(Arc::new(hub.clone()), ctx.clone())
        .await
        .unwrap();
    assert!(api.take_log().is_empty());

    let doc: RoutingDocument = serde_yaml::from_str(&format!(
        "apiVersion: {}\ngeneration: 3\npools: []\n",
        hashsched_hub::routing::ROUTING_API_VERSION
    ))
    .unwrap();
    shared
        .routing
        .lock()
        .unwrap()
        .insert((NS.into(), "site-a".into()), doc.clone());
    children::reconcile(Arc::new(hub.clone()), ctx.clone())
        .await
        .unwrap();
    let log = api.take_log();
    let lines: Vec<String> = log.iter().map(Recorded::line).collect();
    assert_eq!(
        lines,
        [
            "GET /api/v1/namespaces/mining/secrets/site-a-admin-token",
            "POST /api/v1/namespaces/mining/secrets",
            "PATCH /api/v1/namespaces/mining/configmaps/site-a-routing",
            "PATCH /api/v1/namespaces/mining/services/site-a",
            "PATCH /api/v1/namespaces/mining/services/site-a-metrics",
            "PATCH /apis/apps/v1/namespaces/mining/deployments/site-a",
            "PATCH /apis/policy/v1/namespaces/mining/poddisruptionbudgets/site-a",
            "GET /api/v1/namespaces/mining/services",
            "GET /api/v1/namespaces/mining/configmaps",
            "DELETE /api/v1/namespaces/mining/configmaps/site-a-old",
            "GET /apis/apps/v1/namespaces/mining/deployments",
            "GET /apis/policy/v1/namespaces/mining/poddisruptionbudgets",
        ]
    );
    // Every apply: one field manager, forced, the StratumHub as controller owner.
    for r in log.iter().filter(|r| r.method == "PATCH") {
        assert!(
            r.content_type.starts_with("application/apply-patch"),
            "{}",
            r.line()
        );
        assert!(
            r.query.contains(&format!("fieldManager={FIELD_MANAGER}")),
            "{}",
            r.query
        );
        assert!(r.query.contains("force=true"), "{}", r.query);
        let owner = &r.body["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "StratumHub", "{}", r.line());
        assert_eq!(owner["uid"], uid.as_str());
        assert_eq!(owner["controller"], true);
    }
    // The ConfigMap carries the loop's routing document.
    let cm = &log[2].body;
    let routing: RoutingDocument =
        serde_json::from_str(cm["data"]["routing.json"].as_str().unwrap()).unwrap();
    assert_eq!(routing.generation, 3);
    // The admin token: random, owned by the hub, created once.
    let secret = &log[1].body;
    assert_eq!(
        secret["metadata"]["ownerReferences"][0]["uid"],
        uid.as_str()
    );
    let token = secret["stringData"]["token"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 64);
    assert!(token.chars().all(|c| c.is_ascii_hexdigit()));
    // Selectors of the stale-children lists name the hub.
    for r in log
        .iter()
        .filter(|r| r.method == "GET" && !r.path.contains("secrets"))
    {
        assert!(
            r.query.contains("app.kubernetes.io%2Finstance%3Dsite-a"),
            "{}",
            r.query
        );
    }

    // Again: the Secret exists and is left alone (never regenerated); no deletes.
    let stored = api
        .get("/api/v1/namespaces/mining/secrets/site-a-admin-token")
        .unwrap();
    children::reconcile(Arc::new(hub), ctx).await.unwrap();
    let lines = writes(&api.take_log());
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("secrets") || l.starts_with("DELETE")),
        "{lines:?}"
    );
    assert_eq!(
        api.get("/api/v1/namespaces/mining/secrets/site-a-admin-token")
            .unwrap(),
        stored
    );
}

// ---- the scheduling loop ----------------------------------------------------------------------

#[tokio::test]
async fn contracts_failover_recovery_and_a_steady_farm() {
    let mut s = Story::new(true);
    let victim = "acme-s19-02";

    // A new farm and new contracts: routing goes to the hub pod and the ConfigMap, every
    // object gets a status.
    s.farm(0, |_, _| None);
    let (sum, log) = s.cycle(0).await;
    let w = writes(&log);
    assert!(
        w.contains(&"PATCH /api/v1/namespaces/mining/configmaps/site-a-routing".to_string()),
        "{w:?}"
    );
    assert!(
        w.contains(
            &"PATCH /apis/hashsched.io/v1alpha1/namespaces/mining/rentalcontracts/acme-m2m/status"
                .to_string()
        ),
        "{w:?}"
    );
    assert!(w.contains(&format!(
        "PATCH /apis/hashsched.io/v1alpha1/namespaces/mining/workers/{victim}/status"
    )));
    assert!(
        w.contains(
            &"PATCH /apis/hashsched.io/v1alpha1/namespaces/mining/stratumhubs/site-a/status"
                .to_string()
        )
    );
    let pushes = s.pushes();
    assert_eq!(pushes.len(), 1, "{pushes:?}");
    assert_eq!(
        pushes[0].2, "s3cret-token",
        "token from the hub's Secret, newline trimmed"
    );
    let gen0 = pushes[0].1;
    assert!(sum.blind_hubs.is_empty(), "{sum:?}");
    // Status patches go to /status as merge patches, with observedGeneration.
    for r in log.iter().filter(|r| r.path.ends_with("/status")) {
        assert_eq!(
            r.content_type,
            "application/merge-patch+json",
            "{}",
            r.line()
        );
        assert_eq!(r.body["status"]["observedGeneration"], 1, "{}", r.line());
    }
    // The contract's own workers joined it: its status lists them (no Event per worker).
    let c = s.status("RentalContract", "acme-m2m");
    let primaries: Vec<&str> = c["assignedWorkers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["role"] == "Primary")
        .map(|a| a["worker"].as_str().unwrap())
        .collect();
    assert_eq!(
        primaries,
        ["acme-s19-01", "acme-s19-02", "acme-s19-03", "acme-s19-04"],
        "{c}"
    );
    assert!(
        !events(&log)
            .iter()
            .any(|e| e.2 == "WorkerDead" || e.2 == "SpareLent"),
        "a new farm lends nothing"
    );

    // Settle: workers turn Healthy once the operator has seen enough shares.
    for t in (5..=120).step_by(5) {
        s.farm(t, |_, _| None);
        s.cycle(t).await;
    }
    assert_eq!(s.status("Worker", victim)["phase"], "Healthy");
    assert_eq!(s.status("RentalContract", "acme-m2m")["phase"], "Active");
    // The operator's /metrics carries the SLIs the rules and dashboards read, as local mode's
    // does: one series per contract, one phase series per worker.
    let page = s.shared.metrics.render();
    let sample = |metric: &str, must: &[&str]| {
        page.lines()
            .find(|l| l.starts_with(&format!("{metric}{{")) && must.iter().all(|m| l.contains(m)))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
    };
    let uptime = sample(
        CONTRACT_UPTIME_RATIO,
        &["namespace=\"mining\"", "contract=\"acme-m2m\""],
    );
    assert!(uptime.is_some_and(|u| (0.0..=1.0).contains(&u)), "{page}");
    assert_eq!(
        sample(
            WORKER_PHASE,
            &[&format!("worker=\"{victim}\""), "phase=\"Healthy\""]
        ),
        Some(1.0),
        "{page}"
    );
    let hub = s.status("StratumHub", "site-a");
    assert_eq!(
        hub["appliedRoutingGeneration"],
        hub["desiredRoutingGeneration"]
    );
    assert_eq!(hub["readyReplicas"], 1);
    let gen_settled = hub["desiredRoutingGeneration"].as_u64().unwrap();
    assert!(gen_settled >= gen0);
    s.pushes();

    // A steady farm: no writes at all (measurements wait for the heartbeat), no pushes.
    for t in [125, 130, 135] {
        s.farm(t, |_, _| None);
        let (sum, log) = s.cycle(t).await;
        assert!(writes(&log).is_empty(), "t={t}: {:?}", writes(&log));
        assert_eq!((sum.status_writes, sum.events, sum.pushes), (0, 0, 0));
    }
    assert!(s.pushes().is_empty());

    // The rented miner is switched off at t=200 (disconnects): Dead after the 15 s grace, a
    // spare is lent, routing generation +1 reaches the pod and the ConfigMap.
    let dies = 200;
    let mut failover = None;
    for t in (dies..dies + 120).step_by(5) {
        s.farm(t, |n, h| {
            (n == victim).then(|| facts(n, h, false, t - dies, dies))
        });
        let (_, log) = s.cycle(t).await;
        if events(&log).iter().any(|e| e.2 == "SpareLent") {
            failover = Some((t, log));
            break;
        }
    }
    let (t_fail, log) = failover.expect("a spare was lent");
    assert!(t_fail - dies <= 40, "failover after {} s", t_fail - dies);
    let ev = events(&log);
    assert!(has_event(&ev, "Worker", victim, "WorkerDead"), "{ev:?}");
    assert!(
        has_event(&ev, "RentalContract", "acme-m2m", "WorkerDead"),
        "{ev:?}"
    );
    assert!(
        has_event(&ev, "RentalContract", "acme-m2m", "SpareLent"),
        "{ev:?}"
    );
    let spare = ev
        .iter()
        .find(|(k, _, r)| k == "Worker" && r == "SpareLent")
        .map(|(_, n, _)| n.clone())
        .expect("SpareLent on the spare Worker");
    assert!(spare.starts_with("spare-"), "{spare}");
    let pushes = s.pushes();
    assert_eq!(pushes.len(), 1, "{pushes:?}");
    assert_eq!(pushes[0].1, gen_settled + 1);
    let w = writes(&log);
    assert!(
        w.contains(&"PATCH /api/v1/namespaces/mining/configmaps/site-a-routing".to_string()),
        "{w:?}"
    );
    assert_eq!(s.status("Worker", victim)["phase"], "Dead");
    let c = s.status("RentalContract", "acme-m2m");
    assert_eq!(c["failoverCount"], 1);
    assert!(
        c["assignedWorkers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["worker"] == spare.as_str()
                && a["role"] == "Substitute"
                && a["replaces"] == victim),
        "{c}"
    );
    let sw = s.status("Worker", &spare);
    assert_eq!(sw["currentAssignment"]["contract"], "acme-m2m");

    // Back at t=back: Healthy after the dwell, then given back; the spare returns to the house.
    let back = t_fail + 30;
    let mut returned = None;
    let mut recovered_seen = false;
    for t in (back..back + 900).step_by(5) {
        s.farm(t, |n, h| {
            (n == victim).then(|| {
                let mut f = facts(n, h, true, 0, t - 1);
                for w in &mut f.hashrate {
                    let covered = (t - back).min(w.window_seconds as i64) as f64;
                    w.shares = (0.5 * covered).round() as u64;
                    w.hashes_per_second = h * covered / w.window_seconds as f64;
                }
                f
            })
        });
        let (_, log) = s.cycle(t).await;
        let ev = events(&log);
        recovered_seen |= has_event(&ev, "Worker", victim, "WorkerRecovered");
        if ev.iter().any(|e| e.2 == "SpareReturned") {
            returned = Some((t, ev));
            break;
        }
    }
    let (t_back, ev) = returned.expect("the spare was given back");
    assert!(
        t_back - back >= 300,
        "given back after {} s (dwell 5m)",
        t_back - back
    );
    assert!(
        recovered_seen || has_event(&ev, "Worker", victim, "WorkerRecovered"),
        "{ev:?}"
    );
    assert!(has_event(&ev, "Worker", &spare, "SpareReturned"), "{ev:?}");
    assert!(
        has_event(&ev, "RentalContract", "acme-m2m", "SpareReturned"),
        "{ev:?}"
    );
    let pushes = s.pushes();
    assert!(
        pushes.last().is_some_and(|p| p.1 > gen_settled + 1),
        "{pushes:?}"
    );
    let c = s.status("RentalContract", "acme-m2m");
    assert!(
        c["assignedWorkers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["role"] == "Primary"),
        "{c}"
    );
    assert_eq!(
        s.status("Worker", &spare)["currentAssignment"]["role"],
        "Spare"
    );
}

/// The operator restarts in the middle of a failover (the rented miner Dead, a spare lent). The
/// new process has no memory: it reads its state back from the objects' statuses and the
/// routing ConfigMap. It lends nothing again, returns nothing early, keeps the routing
/// generation, and from then on every contract's accounting is the same as that of a twin
/// operator that ran the same story without the restart. (Statuses are written on every change
/// here, heartbeat 0, so the twin's objects hold exactly what it decided.)
#[tokio::test]
async fn an_operator_restarted_mid_failover_reassigns_nothing_and_accounts_alike() {
    let victim = "acme-s19-02";
    let every_change = |s: Story| {
        let opts = ScheduleOptions {
            heartbeat: std::time::Duration::ZERO,
            ..s.opts.clone()
        };
        Story::build(s.api, s.hub, opts)
    };
    let mut twin = every_change(Story::new(true));
    let mut s = every_change(Story::new(true));
    let dies = 200;
    let dead =
        |t: i64| move |n: &str, h: f64| (n == victim).then(|| facts(n, h, false, t - dies, dies));
    let mut t_fail = None;
    for t in (0..dies + 120).step_by(5) {
        for story in [&mut twin, &mut s] {
            if t < dies {
                story.farm(t, |_, _| None);
            } else {
                story.farm(t, dead(t));
            }
        }
        twin.cycle(t).await;
        let (_, log) = s.cycle(t).await;
        if events(&log).iter().any(|e| e.2 == "SpareLent") {
            t_fail = Some(t);
            break;
        }
    }
    let t_fail = t_fail.expect("a spare was lent");
    let before = s.status("RentalContract", "acme-m2m");
    assert_eq!(before["failoverCount"], 1, "{before}");
    let generation = s.status("StratumHub", "site-a")["desiredRoutingGeneration"].clone();
    s.pushes();

    let mut s = s.restart();
    // Still failed over: the restarted operator changes nothing.
    for t in (t_fail + 5..t_fail + 120).step_by(5) {
        for story in [&mut twin, &mut s] {
            story.farm(t, dead(t));
        }
        twin.cycle(t).await;
        let (_, log) = s.cycle(t).await;
        let ev = events(&log);
        assert!(
            !ev.iter()
                .any(|e| e.2 == "SpareLent" || e.2 == "SpareReturned" || e.2 == "WorkerDead"),
            "t={t}: the restarted operator re-decided the failover: {ev:?}"
        );
        let c = s.status("RentalContract", "acme-m2m");
        assert_eq!(c["assignedWorkers"], before["assignedWorkers"], "t={t}");
        assert_eq!(c["failoverCount"], 1, "t={t}");
        assert_eq!(
            s.status("StratumHub", "site-a")["desiredRoutingGeneration"],
            generation,
            "t={t}: routing generation kept"
        );
    }
    assert!(
        s.pushes().iter().all(|p| Some(p.1) == generation.as_u64()),
        "no new routing after the restart"
    );
    assert_eq!(
        s.sli("acme-m2m"),
        twin.sli("acme-m2m"),
        "accounting as without the restart"
    );

    // The original returns: given back once, by both, at the same moment.
    let back = t_fail + 120;
    let mut returned = (None, None);
    for t in (back..back + 900).step_by(5) {
        for story in [&mut twin, &mut s] {
            story.farm(t, |n, h| (n == victim).then(|| facts(n, h, true, 0, t - 1)));
        }
        let (_, twin_log) = twin.cycle(t).await;
        let (_, log) = s.cycle(t).await;
        if returned.0.is_none() && events(&twin_log).iter().any(|e| e.2 == "SpareReturned") {
            returned.0 = Some(t);
        }
        if returned.1.is_none() && events(&log).iter().any(|e| e.2 == "SpareReturned") {
            returned.1 = Some(t);
        }
        if returned.0.is_some() && returned.1.is_some() {
            break;
        }
    }
    assert!(
        returned.1.is_some(),
        "the restarted operator gave the spare back"
    );
    assert_eq!(
        returned.0, returned.1,
        "given back at the same cycle as the twin"
    );
    assert_eq!(
        s.sli("acme-m2m"),
        twin.sli("acme-m2m"),
        "accounting as without the restart"
    );
    assert_eq!(s.status("RentalContract", "acme-m2m")["failoverCount"], 1);
}

/// Events about Workers and RentalContracts (what a failover decides), without the
/// StratumHub's own (routing progress, which a failing push changes by design).
fn decision_events(log: &[Recorded]) -> Vec<(String, String, String)> {
    events(log)
        .into_iter()
        .filter(|e| e.0 == "Worker" || e.0 == "RentalContract")
        .collect()
}

/// Every contract's accounting in `s` equals that in `twin`: the SLIs the last cycle decided
/// (slots up/down/unobserved, shortfall, credit, failovers, phase) and the stored status
/// (assignments, failover count, lend/return times, the open slot's accounting state).
fn assert_accounts_alike(s: &Story, twin: &Story, when: &str) {
    let contracts = world(&s.api).contracts;
    assert!(!contracts.is_empty());
    for c in contracts {
        let name = c.metadata.name.clone().unwrap();
        assert_eq!(
            s.sli(&name),
            twin.sli(&name),
            "{when}: {name}'s SLIs differ from the twin's"
        );
        assert_eq!(
            s.status("RentalContract", &name),
            twin.status("RentalContract", &name),
            "{when}: {name}'s status differs from the twin's"
        );
    }
    for w in world(&s.api).workers {
        let name = w.metadata.name.clone().unwrap();
        assert_eq!(
            s.status("Worker", &name),
            twin.status("Worker", &name),
            "{when}: Worker {name}'s status differs from the twin's"
        );
    }
}

/// One cycle of `s` and of its `twin` at `t`, both fed the same facts; the decisions about
/// Workers and contracts (their Events) must be the same. Returns `s`'s cycle.
async fn lockstep(
    s: &mut Story,
    twin: &mut Story,
    t: i64,
    tweak: impl Fn(&str, f64) -> Option<WorkerFacts> + Copy,
) -> (CycleSummary, Vec<Recorded>) {
    s.farm(t, tweak);
    twin.farm(t, tweak);
    let (_, twin_log) = twin.cycle(t).await;
    let (sum, log) = s.cycle(t).await;
    assert_eq!(
        decision_events(&log),
        decision_events(&twin_log),
        "t={t}: decisions differ from the twin whose pushes all succeed"
    );
    (sum, log)
}

/// A hub of two replicas whose second pod's admin API cannot be reached while a failover happens:
/// the first pod gets the new routing at once, the failover is not held up, the StratumHub says
/// which pod lags, the push to that pod (only) is retried every cycle, and once it answers both
/// pods run the same generation. Facts from both pods are merged (each worker is on one). A twin
/// farm, the same story with every push succeeding, runs in lockstep: every cycle decides the
/// same lends and returns, and every contract's accounting (SLIs and stored status) and every
/// Worker's status are the same as the twin's — through the failover and after the give-back.
#[tokio::test]
async fn a_routing_push_failing_on_one_replica_is_retried_and_reported() {
    let pods = ["site-a-0", "site-a-1"];
    let mut s = Story::with_pods(true, &pods);
    let mut twin = Story::with_pods(true, &pods);
    let victim = "acme-s19-02";
    for t in (0..=120).step_by(5) {
        lockstep(&mut s, &mut twin, t, |_, _| None).await;
    }
    assert_eq!(s.status("Worker", victim)["phase"], "Healthy");
    let hub = s.status("StratumHub", "site-a");
    assert_eq!(hub["readyReplicas"], 2, "{hub}");
    let workers = world(&s.api).workers.len();
    assert_eq!(
        hub["connectedWorkers"], workers,
        "merged over both pods: {hub}"
    );
    let settled = hub["desiredRoutingGeneration"].as_u64().unwrap();
    assert_eq!(hub["appliedRoutingGeneration"], settled, "{hub}");
    let first = s.pushes();
    for pod in pods {
        assert!(
            first.iter().any(|p| p.0 == pod),
            "{pod} got routing: {first:?}"
        );
    }
    assert_accounts_alike(&s, &twin, "before the failure");

    // site-a-1's admin port stops answering (not the twin's); then the rented miner dies.
    s.hub
        .0
        .lock()
        .unwrap()
        .unreachable_admin
        .insert("site-a-1".into());
    let dies = 200;
    let dead =
        |t: i64| move |n: &str, h: f64| (n == victim).then(|| facts(n, h, false, t - dies, dies));
    let mut lent_at = None;
    for t in (dies..dies + 120).step_by(5) {
        let (_, log) = lockstep(&mut s, &mut twin, t, dead(t)).await;
        if events(&log).iter().any(|e| e.2 == "SpareLent") {
            lent_at = Some(t);
            break;
        }
    }
    let t_fail = lent_at.expect("the failover goes on with one replica unreachable");
    let pushes = s.pushes();
    let to = |pod: &str, p: &[(String, u64, String)]| {
        p.iter()
            .filter(|x| x.0 == pod)
            .map(|x| x.1)
            .collect::<Vec<_>>()
    };
    assert_eq!(to("site-a-0", &pushes), [settled + 1], "{pushes:?}");
    assert_eq!(to("site-a-1", &pushes), [settled + 1], "{pushes:?}");
    let hub = s.status("StratumHub", "site-a");
    let routing = |hub: &Value| {
        hub["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "RoutingApplied")
            .cloned()
            .unwrap()
    };
    let cond = routing(&hub);
    assert_eq!(cond["status"], "False", "{hub}");
    assert_eq!(cond["reason"], "Pending", "{hub}");
    assert!(
        cond["message"].as_str().unwrap().contains("site-a-1")
            && !cond["message"].as_str().unwrap().contains("site-a-0"),
        "the lagging pod is named: {cond}"
    );
    assert_eq!(
        hub["appliedRoutingGeneration"], settled,
        "lowest applied: {hub}"
    );
    assert_eq!(hub["desiredRoutingGeneration"], settled + 1, "{hub}");
    assert_eq!(
        twin.status("StratumHub", "site-a")["appliedRoutingGeneration"],
        settled + 1,
        "the twin's pushes all landed"
    );
    assert_accounts_alike(&s, &twin, "at the lend");

    // Retried every cycle, to the lagging pod only.
    for t in [t_fail + 5, t_fail + 10] {
        let (sum, _) = lockstep(&mut s, &mut twin, t, dead(t)).await;
        assert_eq!(sum.pushes, 1, "t={t}: {sum:?}");
        let p = s.pushes();
        assert_eq!(to("site-a-1", &p), [settled + 1], "t={t}: {p:?}");
        assert!(to("site-a-0", &p).is_empty(), "t={t}: {p:?}");
        assert_accounts_alike(&s, &twin, &format!("t={t}, push failing"));
    }

    // The pod answers again: the next cycle delivers, and the hub reports it applied.
    s.hub.0.lock().unwrap().unreachable_admin.clear();
    let t = t_fail + 15;
    lockstep(&mut s, &mut twin, t, dead(t)).await;
    let p = s.pushes();
    assert_eq!(to("site-a-1", &p), [settled + 1], "{p:?}");
    let hub = s.status("StratumHub", "site-a");
    assert_eq!(routing(&hub)["status"], "True", "{hub}");
    assert_eq!(hub["appliedRoutingGeneration"], settled + 1, "{hub}");
    let c = s.status("RentalContract", "acme-m2m");
    assert_eq!(c["failoverCount"], 1, "one lend, not one per retry: {c}");
    assert_accounts_alike(&s, &twin, "after the retry landed");

    // The original returns: both give the spare back at the same cycle, and every contract's
    // accounting stays the twin's.
    let back = t_fail + 20;
    let mut returned = None;
    for t in (back..back + 900).step_by(5) {
        let (_, log) = lockstep(&mut s, &mut twin, t, |n, h| {
            (n == victim).then(|| facts(n, h, true, 0, t - 1))
        })
        .await;
        if events(&log).iter().any(|e| e.2 == "SpareReturned") {
            returned = Some(t);
            break;
        }
    }
    assert!(returned.is_some(), "the spare was given back");
    assert_accounts_alike(&s, &twin, "after the give-back");
    let c = s.status("RentalContract", "acme-m2m");
    assert_eq!(c["failoverCount"], 1, "{c}");
    assert_eq!(
        c["recentReassignments"].as_array().map(Vec::len),
        Some(2),
        "{c}"
    );
}

#[tokio::test]
async fn an_unreachable_hub_holds_verdicts() {
    let mut s = Story::new(true);
    for t in (0..=120).step_by(5) {
        s.farm(t, |_, _| None);
        s.cycle(t).await;
    }
    s.pushes();
    // The hub cannot be read for five minutes: nobody turns Dead, nothing moves.
    s.hub.0.lock().unwrap().down = true;
    for t in (125..425).step_by(5) {
        let (sum, log) = s.cycle(t).await;
        assert_eq!(sum.blind_hubs, ["mining/site-a"]);
        let ev = events(&log);
        assert!(
            !ev.iter().any(|e| e.2 == "WorkerDead" || e.2 == "SpareLent"),
            "t={t}: {ev:?}"
        );
    }
    assert!(s.pushes().is_empty());
    assert_eq!(s.status("Worker", "acme-s19-02")["phase"], "Healthy");
    let hub = s.status("StratumHub", "site-a");
    let ready = hub["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(ready["status"], "False", "{hub}");
}

#[tokio::test]
async fn a_bad_contract_and_a_missing_admin_secret_are_reported_and_the_rest_goes_on() {
    let mut s = Story::new(false);
    s.api.put(json!({"apiVersion": "hashsched.io/v1alpha1", "kind": "RentalContract",
        "metadata": {"name": "broken", "namespace": NS},
        "spec": {"customer": "acme", "mode": "MinerToMiner",
            "workerSelector": {"matchExpressions": [{"key": "a", "operator": "Near", "values": ["b"]}]}}}));
    s.farm(0, |_, _| None);
    let (sum, log) = s.cycle(0).await;
    let ev = events(&log);
    assert!(
        has_event(&ev, "RentalContract", "broken", "InvalidSpec"),
        "{ev:?}"
    );
    assert!(
        has_event(&ev, "StratumHub", "site-a", "AdminTokenMissing"),
        "{ev:?}"
    );
    let warning = log
        .iter()
        .find(|r| r.body["reason"] == "InvalidSpec")
        .unwrap();
    assert_eq!(warning.body["type"], "Warning");
    assert!(
        warning.body["note"].as_str().unwrap().contains("Near"),
        "{}",
        warning.body
    );
    // No push without the token; the ConfigMap still carries the routing.
    assert!(s.pushes().is_empty());
    assert!(
        writes(&log)
            .contains(&"PATCH /api/v1/namespaces/mining/configmaps/site-a-routing".to_string())
    );
    assert!(
        sum.errors.iter().any(|e| e.contains("site-a-admin-token")),
        "{:?}",
        sum.errors
    );
    let broken = s.status("RentalContract", "broken");
    let valid = broken["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "SpecValid")
        .unwrap();
    assert_eq!(valid["status"], "False");
    // Every other contract got its status.
    assert!(s.status("RentalContract", "acme-m2m")["phase"].is_string());
    // The Warning is published once, not every cycle.
    s.farm(5, |_, _| None);
    let (_, log) = s.cycle(5).await;
    assert!(!events(&log).iter().any(|e| e.2 == "InvalidSpec"));
}

/// Two PoolEndpoints that slipped past admission (the fake apiserver does not enforce the CRD
/// schema): a `user` with a space and a URL with port 0, both of which the hub refuses. Each is
/// left out of the routing document (the hub would refuse the whole document, freezing routing
/// for every customer) and says so in a `SpecValid` False / `InvalidSpec` condition written
/// through `/status`; valid pools say `SpecValid` True / `Valid`; the document still reaches the
/// hub pod and the ConfigMap, another customer's workers still mine on their pools, and the
/// bad pools' customers fall back to their next pool.
#[tokio::test]
async fn a_pool_endpoint_the_hub_would_refuse_is_reported_invalid_and_left_out_while_the_rest_is_routed()
 {
    let mut s = Story::new(true);
    let pool_path = |name: &str| {
        format!(
            "{}/{name}",
            operator_common::collection("hashsched.io/v1alpha1", "PoolEndpoint", NS)
        )
    };
    let (typo_user, port_0) = ("cygnus team", "stratum+tcp://eu.borealis-pool.example:0");
    // The premise: the hub's own checks refuse both.
    assert!(check_login(typo_user).is_err());
    assert!(PoolUrl::parse(port_0).is_err());
    let mut typo = s.api.get(&pool_path("cygnus-primary")).unwrap();
    typo["spec"]["user"] = json!(typo_user);
    s.api.put(typo);
    let mut closed = s.api.get(&pool_path("borealis-primary")).unwrap();
    closed["spec"]["url"] = json!(port_0);
    s.api.put(closed);
    let bad = ["cygnus-primary", "borealis-primary"];

    s.farm(0, |_, _| None);
    let (_, log) = s.cycle(0).await;

    // The SpecValid condition of a pool, from its /status merge patch in this cycle.
    let spec_valid = |pool: &str| -> Value {
        let path = format!("{}/status", pool_path(pool));
        let patch = log
            .iter()
            .find(|r| r.method == "PATCH" && r.path == path)
            .unwrap_or_else(|| panic!("no status patch for {pool}: {:?}", writes(&log)));
        assert_eq!(
            patch.content_type,
            "application/merge-patch+json",
            "{}",
            patch.line()
        );
        patch.body["status"]["conditions"]
            .as_array()
            .unwrap_or_else(|| panic!("{pool}: {}", patch.body))
            .iter()
            .find(|c| c["type"] == conditions::SPEC_VALID)
            .cloned()
            .unwrap_or_else(|| panic!("{pool}: no {} in {}", conditions::SPEC_VALID, patch.body))
    };
    let typo_cond = spec_valid("cygnus-primary");
    assert_eq!(typo_cond["status"], conditions::FALSE, "{typo_cond}");
    assert_eq!(typo_cond["reason"], "InvalidSpec", "{typo_cond}");
    let msg = typo_cond["message"].as_str().unwrap();
    assert!(
        msg.contains("user") && msg.contains("whitespace") && msg.contains("left out"),
        "{typo_cond}"
    );
    let port_cond = spec_valid("borealis-primary");
    assert_eq!(port_cond["status"], conditions::FALSE, "{port_cond}");
    assert_eq!(port_cond["reason"], "InvalidSpec", "{port_cond}");
    assert!(
        port_cond["message"].as_str().unwrap().contains("port 0"),
        "{port_cond}"
    );
    for good in ["acme-primary", "cygnus-backup", "house-pool"] {
        let cond = spec_valid(good);
        assert_eq!(cond["status"], conditions::TRUE, "{good}: {cond}");
        assert_eq!(cond["reason"], "Valid", "{good}: {cond}");
    }
    // The apiserver holds it: the object's status says why.
    let stored = s.status("PoolEndpoint", "cygnus-primary");
    assert!(
        stored["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == conditions::SPEC_VALID
                && c["status"] == conditions::FALSE
                && c["reason"] == "InvalidSpec"),
        "{stored}"
    );

    // The routing document of this cycle (the ConfigMap the operator applied) leaves the bad
    // pools out, and the hub pod accepted it (the fake hub validates every push).
    let cm = log
        .iter()
        .find(|r| {
            r.method == "PATCH" && r.path == "/api/v1/namespaces/mining/configmaps/site-a-routing"
        })
        .unwrap_or_else(|| panic!("no routing ConfigMap written: {:?}", writes(&log)));
    let doc: RoutingDocument =
        serde_json::from_str(cm.body["data"]["routing.json"].as_str().unwrap()).unwrap();
    let pushes = s.pushes();
    assert_eq!(pushes.len(), 1, "{pushes:?}");
    assert_eq!(pushes[0].1, doc.generation, "{pushes:?}");
    let pools: Vec<&str> = doc.pools.iter().map(|p| p.name.as_str()).collect();
    for b in bad {
        assert!(!pools.contains(&b), "{b} in the document: {pools:?}");
    }
    for good in [
        "acme-primary",
        "acme-backup",
        "cygnus-backup",
        "borealis-backup",
    ] {
        assert!(pools.contains(&good), "{good} missing: {pools:?}");
    }
    for w in &doc.workers {
        let named = w.pools.as_deref().unwrap_or_default();
        assert!(
            !named.iter().any(|p| bad.contains(&p.as_str())),
            "{} routed to a refused pool: {named:?}",
            w.name
        );
    }
    let route = |worker: &str| -> Option<Vec<String>> {
        doc.workers
            .iter()
            .find(|w| w.name == worker)
            .unwrap_or_else(|| panic!("{worker} not in the document"))
            .pools
            .clone()
    };
    let names = |v: &[&str]| Some(v.iter().map(|p| p.to_string()).collect::<Vec<_>>());
    // Another customer's workers mine on their pools as before.
    for w in ["acme-s19-01", "acme-s19-04"] {
        assert_eq!(route(w), names(&["acme-primary", "acme-backup"]), "{w}");
    }
    // The typo's customer mines on its next pool.
    assert_eq!(route("cygnus-xp-01"), names(&["cygnus-backup"]));
}
