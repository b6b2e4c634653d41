//! The operator on a real kube-apiserver (`HASHSCHED_E2E_KUBECONFIG` names an admin kubeconfig;
//! without it the test is listed as ignored with its reason, and run with `--ignored` it fails
//! saying what is missing — never a silent pass).
//!
//! The suite applies `crds/` and the examples, creates its own namespace with a small farm, binds
//! a ServiceAccount to a ClusterRole built from the shipped RBAC rules
//! (`charts/hashsched/files/operator-rbac.yaml`), and runs `hashsched operator` as a process with
//! that ServiceAccount's token and `--hub-url` pointing at a hub run here with simulated pools and
//! miners. Then, through the Kubernetes API only: a rented miner is stopped → its Worker turns
//! Dead, a spare is assigned to the contract, the routing generation is applied, Events appear on
//! both objects and the delivered hashrate is restored; the operator is restarted mid-failover
//! (no reassignment, accounting unchanged); the original recovers and is given back; deleting the
//! StratumHub garbage-collects its children. Namespaces and cluster objects it creates are
//! deleted at the end.
//!
//! Run: `HASHSCHED_E2E_KUBECONFIG=/path/admin.kubeconfig cargo test -p hashsched-operator e2e -- --include-ignored`

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hashsched_hub::config::{AdminConfig, HubConfig};
use hashsched_hub::sim::miner::{MinerConfig, SimMiner};
use hashsched_hub::sim::pool::{PoolConfig, SimPool};
use hashsched_hub::vardiff::VardiffConfig;
use hashsched_operator::crd;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, Config};
use serde_json::{Value, json};

const MANAGER: &str = "hashsched-e2e";
/// The last state a wait printed (see the "workers Healthy" wait).
static LAST_SEEN: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());
const NEEDS: &str =
    "needs a real cluster: set HASHSCHED_E2E_KUBECONFIG and run with --include-ignored";

fn kubeconfig_path() -> PathBuf {
    match std::env::var_os("HASHSCHED_E2E_KUBECONFIG") {
        Some(p) => PathBuf::from(p),
        None => panic!("HASHSCHED_E2E_KUBECONFIG is not set: this suite {NEEDS}"),
    }
}

async fn admin_client(path: &Path) -> Client {
    let kc = Kubeconfig::read_from(path).expect("readable kubeconfig");
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("usable kubeconfig");
    Client::try_from(config).expect("client")
}

fn api_for(client: &Client, doc: &Value, ns: &str) -> Api<DynamicObject> {
    let api_version = doc["apiVersion"].as_str().unwrap_or_default();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let kind = doc["kind"].as_str().unwrap_or_default();
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let plural = format!("{}s", kind.to_lowercase());
    let ar = ApiResource::from_gvk_with_plural(&gvk, &plural);
    Api::namespaced_with(client.clone(), ns, &ar)
}

async fn apply_doc(client: &Client, mut doc: Value, ns: &str) {
    doc["metadata"]["namespace"] = json!(ns);
    let name = doc["metadata"]["name"].as_str().unwrap().to_owned();
    api_for(client, &doc, ns)
        .patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&doc),
        )
        .await
        .unwrap_or_else(|e| panic!("{} {name} refused: {e}", doc["kind"]));
}

async fn install_crds(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for c in crd::all_crds() {
        let name = c.metadata.name.clone().unwrap();
        crds.patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&c),
        )
        .await
        .unwrap_or_else(|e| panic!("CRD {name} refused: {e}"));
        wait_for(
            Duration::from_secs(30),
            &format!("{name} Established"),
            || {
                let crds = crds.clone();
                let name = name.clone();
                async move {
                    let c = crds.get(&name).await.ok()?;
                    c.status?
                        .conditions?
                        .iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                        .then_some(())
                }
            },
        )
        .await;
    }
}

async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn create_namespace(client: &Client, name: &str) {
    let nss: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    nss.create(&PostParams::default(), &ns)
        .await
        .expect("namespace created");
}

/// A ServiceAccount bound to a ClusterRole built from the shipped rules file; a kubeconfig with
/// its token.
async fn operator_kubeconfig(
    client: &Client,
    admin: &Kubeconfig,
    ns: &str,
    dir: &Path,
) -> (PathBuf, String) {
    let rules_text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/hashsched/files/operator-rbac.yaml"),
    )
    .unwrap();
    #[derive(serde::Deserialize)]
    struct Rules {
        rules: Vec<PolicyRule>,
    }
    let rules: Rules =
        serde_yaml::from_str(&rules_text).expect("the RBAC file is {rules: [PolicyRule]}");
    let role_name = format!("{ns}-operator");
    let roles: Api<ClusterRole> = Api::all(client.clone());
    let role = ClusterRole {
        metadata: kube::api::ObjectMeta {
            name: Some(role_name.clone()),
            ..Default::default()
        },
        rules: Some(rules.rules),
        ..Default::default()
    };
    roles
        .patch(
            &role_name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&role),
        )
        .await
        .unwrap();
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let sa: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "hashsched-operator"}})).unwrap();
    sas.create(&PostParams::default(), &sa).await.unwrap();
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": role_name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role_name},
        "subjects": [{"kind": "ServiceAccount", "name": "hashsched-operator", "namespace": ns}]
    }))
    .unwrap();
    bindings
        .patch(
            &role_name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&binding),
        )
        .await
        .unwrap();
    let tr: TokenRequest =
        serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 3600}}))
            .unwrap();
    let token: TokenRequest = sas
        .create_subresource("token", "hashsched-operator", &PostParams::default(), &tr)
        .await
        .expect("TokenRequest");
    let token = token.status.expect("token issued").token;
    // The admin kubeconfig's cluster with the ServiceAccount's token.
    let ctx_name = admin.current_context.clone().unwrap_or_default();
    let ctx = admin
        .contexts
        .iter()
        .find(|c| c.name == ctx_name)
        .and_then(|c| c.context.clone())
        .unwrap();
    let cluster = admin
        .clusters
        .iter()
        .find(|c| c.name == ctx.cluster)
        .unwrap()
        .clone();
    let kc = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [serde_json::to_value(&cluster).unwrap()],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": cluster.name, "user": "operator", "namespace": ns}}],
        "current-context": "operator",
    });
    let path = dir.join("operator.kubeconfig");
    std::fs::write(&path, serde_yaml::to_string(&kc).unwrap()).unwrap();
    (path, role_name)
}

struct Operator(Child);

impl Operator {
    fn start(kubeconfig: &Path, ns: &str, hub_url: &str, metrics: &str, log: &Path) -> Operator {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_hashsched"))
            // All namespaces: the examples' objects are reconciled too, so re-applying them
            // afterwards shows whether the operator left field-manager conflicts behind.
            .args(["operator", "--lease-namespace", ns, "--identity", "e2e"])
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args([
                "--hub-url",
                hub_url,
                "--metrics-addr",
                metrics,
                "--period",
                "1s",
            ])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .expect("hashsched operator starts");
        Operator(child)
    }

    /// SIGTERM and wait: the operator stops cleanly (exit 0).
    fn stop(mut self) {
        let pid = self.0.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let status = self.0.wait().unwrap();
        assert!(
            status.success(),
            "operator exit status after SIGTERM: {status}"
        );
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn hashsched(api_version_kind: (&str, &str), ns: &str, body: Value) -> Value {
    let mut v = body;
    v["apiVersion"] = json!(api_version_kind.0);
    v["kind"] = json!(api_version_kind.1);
    v["metadata"]["namespace"] = json!(ns);
    v
}

const V1A1: &str = "hashsched.io/v1alpha1";
const RATE: f64 = 200_000.0; // each simulated miner: 200 kH/s of real sha256d

fn farm(ns: &str, house_url: &str, acme_url: &str) -> Vec<Value> {
    let worker = |name: &str, owner: &str, labels: Value| {
        hashsched(
            (V1A1, "Worker"),
            ns,
            json!({
                "metadata": {"name": name, "labels": labels},
                "spec": {"owner": owner, "expectedHashrate": "200 kH/s", "hub": "site-a"}
            }),
        )
    };
    vec![
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pool-pass", "namespace": ns},
            "stringData": {"password": "x"}}),
        hashsched(
            (V1A1, "PoolEndpoint"),
            ns,
            json!({"metadata": {"name": "house"},
            "spec": {"url": house_url, "user": "house", "passwordSecretRef": {"name": "pool-pass", "key": "password"}}}),
        ),
        hashsched(
            (V1A1, "PoolEndpoint"),
            ns,
            json!({"metadata": {"name": "acme-pool"},
            "spec": {"url": acme_url, "user": "acme", "passwordSecretRef": {"name": "pool-pass", "key": "password"}}}),
        ),
        hashsched(
            (V1A1, "Customer"),
            ns,
            json!({"metadata": {"name": "acme"}, "spec": {"pools": ["acme-pool"]}}),
        ),
        hashsched(
            (V1A1, "StratumHub"),
            ns,
            json!({"metadata": {"name": "site-a"},
            "spec": {"replicas": 1, "shareInterval": "1s", "housePools": ["house"]}}),
        ),
        worker("acme-1", "acme", json!({"fleet": "acme"})),
        worker("acme-2", "acme", json!({"fleet": "acme"})),
        worker("spare-1", "house", json!({"hashsched.io/role": "spare"})),
        hashsched(
            (V1A1, "RentalContract"),
            ns,
            json!({"metadata": {"name": "acme-m2m"},
            "spec": {"customer": "acme", "mode": "MinerToMiner", "workers": ["acme-1", "acme-2"],
                "tolerance": "30%",
                "healthPolicy": {"window": "1m", "minDwell": "20s", "disconnectGrace": "5s"},
                "failoverPolicy": {"giveBack": true}}}),
        ),
    ]
}

async fn get_status(client: &Client, ns: &str, kind: &str, name: &str) -> Value {
    let doc = json!({"apiVersion": V1A1, "kind": kind});
    match api_for(client, &doc, ns).get(name).await {
        Ok(o) => o.data.get("status").cloned().unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

async fn events_for(client: &Client, ns: &str, kind: &str, name: &str) -> Vec<String> {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    api.list(&ListParams::default())
        .await
        .map(|l| {
            l.items
                .into_iter()
                .filter(|e| {
                    e.regarding.as_ref().is_some_and(|r| {
                        r.kind.as_deref() == Some(kind) && r.name.as_deref() == Some(name)
                    })
                })
                .filter_map(|e| e.reason)
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real cluster: set HASHSCHED_E2E_KUBECONFIG and run with --include-ignored"]
async fn e2e_operator_fails_over_recovers_and_cleans_up_on_a_real_apiserver() {
    let path = kubeconfig_path();
    let admin_kc = Kubeconfig::read_from(&path).unwrap();
    let client = admin_client(&path).await;
    install_crds(&client).await;
    let ns = format!("hashsched-e2e-{}", std::process::id());
    let examples_ns = format!("{ns}-examples");
    create_namespace(&client, &ns).await;
    create_namespace(&client, &examples_ns).await;
    let dir = tempfile::tempdir().unwrap();

    // The examples are accepted (in their own namespace: their hub is not run here).
    let ex_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut files: Vec<_> = std::fs::read_dir(&ex_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut examples = Vec::new();
    for f in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "yaml"))
    {
        let text = std::fs::read_to_string(f).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let v: Value = serde::Deserialize::deserialize(doc).unwrap();
            if v["kind"] != "Namespace" && v.is_object() {
                examples.push(v);
            }
        }
    }
    for d in &examples {
        apply_doc(&client, d.clone(), &examples_ns).await;
    }

    // Simulated pools and a hub with metrics and the admin API, run here.
    let house = SimPool::start(PoolConfig {
        name: "house".into(),
        ..PoolConfig::default()
    })
    .await
    .unwrap();
    let acme = SimPool::start(PoolConfig {
        name: "acme".into(),
        ..PoolConfig::default()
    })
    .await
    .unwrap();
    let secrets = dir.path().join("secrets");
    std::fs::create_dir_all(secrets.join("pool-pass")).unwrap();
    std::fs::write(secrets.join("pool-pass/password"), "x").unwrap();
    let token_file = dir.path().join("admin-token");
    let (metrics_port, admin_port) = (free_port(), free_port());
    let hub = hashsched_hub::Hub::start(HubConfig {
        listen: "127.0.0.1:0".into(),
        metrics: Some(format!("127.0.0.1:{metrics_port}")),
        admin: Some(AdminConfig {
            listen: format!("127.0.0.1:{admin_port}"),
            token_file: Some(token_file.clone()),
        }),
        // Until the operator's first push: everyone on the house pool, as a hub started from
        // the routing ConfigMap of an earlier operator run would have them.
        routing: Some(
            serde_json::from_value(json!({
                "apiVersion": hashsched_hub::routing::ROUTING_API_VERSION,
                "generation": 0,
                "pools": [{"name": "house", "url": house.url(), "user": "house", "password": {"public": "x"}}],
                "defaultRoute": {"pools": ["house"]},
                "unknownWorkers": {"policy": "defaultRoute"},
            }))
            .expect("bootstrap routing"),
        ),
        secrets_dir: Some(secrets.clone()),
        vardiff: VardiffConfig {
            share_interval: hashsched_operator::quantity::Duration::from_secs(1),
            initial_difficulty: RATE / 4_294_967_296.0,
            min_difficulty: 1e-9,
            ..VardiffConfig::default()
        },
        ..HubConfig::default()
    })
    .await
    .expect("hub starts");

    // The miners are mining (on the house pool) before the operator first looks, as in a farm
    // that installs hashsched: a machine the operator first sees dead would have to prove
    // itself for its contract's minDwell (5 minutes for house spares) before it is lent.
    let miners: BTreeMap<&str, SimMiner> = ["acme-1", "acme-2", "spare-1"]
        .into_iter()
        .map(|w| {
            let mut c = MinerConfig::new(w);
            c.hashrate = Some(RATE);
            (w, SimMiner::spawn(hub.stratum_addr(), c))
        })
        .collect();
    for d in farm(&ns, &house.url(), &acme.url()) {
        apply_doc(&client, d, &ns).await;
    }
    let (op_kc, role_name) = operator_kubeconfig(&client, &admin_kc, &ns, dir.path()).await;
    let hub_url =
        format!("{ns}/site-a=http://127.0.0.1:{metrics_port},http://127.0.0.1:{admin_port}");
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    // HASHSCHED_E2E_OPERATOR_LOG keeps the operator's log where a failed run can be read.
    let log = std::env::var_os("HASHSCHED_E2E_OPERATOR_LOG")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.path().join("operator.log"));
    let mut operator = Some(Operator::start(&op_kc, &ns, &hub_url, &metrics_addr, &log));

    // The operator creates the hub's admin token Secret; the local hub reads it from a file.
    let secrets_api: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let token = wait_for(Duration::from_secs(60), "admin-token Secret", || {
        let s = secrets_api.clone();
        async move {
            let sec = s.get("site-a-admin-token").await.ok()?;
            let b = sec.data?.get("token")?.0.clone();
            Some(String::from_utf8(b).unwrap())
        }
    })
    .await;
    std::fs::write(&token_file, &token).unwrap();

    // The children exist, owned by the StratumHub.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    wait_for(Duration::from_secs(60), "hub children", || {
        let (cms, deployments) = (cms.clone(), deployments.clone());
        async move {
            cms.get("site-a-routing").await.ok()?;
            let d = deployments.get("site-a").await.ok()?;
            (d.metadata.owner_references?.first()?.kind == "StratumHub").then_some(())
        }
    })
    .await;

    // Everyone Healthy, contract Active, routing applied.
    wait_for(
        Duration::from_secs(180),
        "workers Healthy and contract Active",
        || {
            let client = client.clone();
            let ns = ns.clone();
            async move {
                let mut all = true;
                let mut seen = Vec::new();
                for w in ["acme-1", "acme-2", "spare-1"] {
                    let st = get_status(&client, &ns, "Worker", w).await;
                    all &= st["phase"] == "Healthy";
                    seen.push(format!("{w}: {} {}", st["phase"], st["message"]));
                }
                let c = get_status(&client, &ns, "RentalContract", "acme-m2m").await;
                seen.push(format!("acme-m2m: {}", c["phase"]));
                // What a failure needs to be understood (printed on change only).
                let seen = seen.join("; ");
                let mut last = LAST_SEEN.lock().unwrap();
                if *last != seen {
                    eprintln!("e2e: {seen}");
                    *last = seen;
                }
                (all && c["phase"] == "Active").then_some(())
            }
        },
    )
    .await;
    let hub_status = get_status(&client, &ns, "StratumHub", "site-a").await;
    assert_eq!(
        hub_status["appliedRoutingGeneration"], hub_status["desiredRoutingGeneration"],
        "{hub_status}"
    );

    // The rented miner acme-2 is switched off.
    miners["acme-2"].die();
    wait_for(
        Duration::from_secs(120),
        "acme-2 Dead and spare-1 lent",
        || {
            let client = client.clone();
            let ns = ns.clone();
            async move {
                let w = get_status(&client, &ns, "Worker", "acme-2").await;
                let c = get_status(&client, &ns, "RentalContract", "acme-m2m").await;
                let lent = c["assignedWorkers"].as_array()?.iter().any(|a| {
                    a["worker"] == "spare-1"
                        && a["role"] == "Substitute"
                        && a["replaces"] == "acme-2"
                });
                (w["phase"] == "Dead" && lent).then_some(())
            }
        },
    )
    .await;
    wait_for(
        Duration::from_secs(60),
        "Events on Worker and RentalContract",
        || {
            let client = client.clone();
            let ns = ns.clone();
            async move {
                let w = events_for(&client, &ns, "Worker", "acme-2").await;
                let c = events_for(&client, &ns, "RentalContract", "acme-m2m").await;
                let s = events_for(&client, &ns, "Worker", "spare-1").await;
                (w.iter().any(|r| r == "WorkerDead")
                    && s.iter().any(|r| r == "SpareLent")
                    && c.iter().any(|r| r == "SpareLent"))
                .then_some(())
            }
        },
    )
    .await;
    wait_for(
        Duration::from_secs(60),
        "routing applied after the failover",
        || {
            let client = client.clone();
            let ns = ns.clone();
            async move {
                let h = get_status(&client, &ns, "StratumHub", "site-a").await;
                (h["appliedRoutingGeneration"] == h["desiredRoutingGeneration"]
                    && !h["appliedRoutingGeneration"].is_null())
                .then_some(())
            }
        },
    )
    .await;
    // Delivered restored: the spare mines at acme's pool.
    wait_for(
        Duration::from_secs(60),
        "spare-1 shares at acme's pool",
        || {
            let stats = acme.stats();
            let spare: u64 = stats
                .workers
                .iter()
                .filter(|(k, _)| k.ends_with("spare-1"))
                .map(|(_, w)| w.accepted)
                .sum();
            std::future::ready((spare > 0).then_some(()))
        },
    )
    .await;

    // Restart the operator mid-failover: nothing is reassigned, accounting unchanged.
    let before = get_status(&client, &ns, "RentalContract", "acme-m2m").await;
    operator.take().unwrap().stop();
    operator = Some(Operator::start(&op_kc, &ns, &hub_url, &metrics_addr, &log));
    // Wait for the restarted operator to close one more slot (60 s slots, written at least once
    // per 60 s heartbeat: it has run its cycles), then compare; no fixed sleep.
    // Any closed slot counts (judged or not: the restarted operator may still be warming up).
    let slots = |s: &serde_json::Value| {
        s["uptime"]["observedSlots"].as_u64().unwrap_or(0)
            + s["uptime"]["unobservedSlots"].as_u64().unwrap_or(0)
    };
    let before_slots = slots(&before);
    wait_for(
        Duration::from_secs(240),
        "the restarted operator closes one more slot",
        || {
            let client = client.clone();
            let ns = ns.clone();
            async move {
                let s = get_status(&client, &ns, "RentalContract", "acme-m2m").await;
                (slots(&s) > before_slots).then_some(())
            }
        },
    )
    .await;
    let after = get_status(&client, &ns, "RentalContract", "acme-m2m").await;
    assert_eq!(
        after["assignedWorkers"], before["assignedWorkers"],
        "no reassignment on restart"
    );
    assert_eq!(after["failoverCount"], before["failoverCount"]);
    assert!(
        after["uptime"]["observedSlots"].as_u64() >= before["uptime"]["observedSlots"].as_u64(),
        "accounting resumed, not reset: {before} → {after}"
    );

    // The original comes back and is given back after the 20 s dwell.
    let mut c = MinerConfig::new("acme-2");
    c.hashrate = Some(RATE);
    let _back = SimMiner::spawn(hub.stratum_addr(), c);
    wait_for(Duration::from_secs(180), "acme-2 given back", || {
        let client = client.clone();
        let ns = ns.clone();
        async move {
            let c = get_status(&client, &ns, "RentalContract", "acme-m2m").await;
            let all_primary = c["assignedWorkers"]
                .as_array()?
                .iter()
                .all(|a| a["role"] == "Primary");
            let w = get_status(&client, &ns, "Worker", "acme-2").await;
            (all_primary && w["phase"] == "Healthy").then_some(())
        }
    })
    .await;
    assert!(
        events_for(&client, &ns, "RentalContract", "acme-m2m")
            .await
            .iter()
            .any(|r| r == "SpareReturned")
    );

    // Deleting the StratumHub garbage-collects its children (kube-controller-manager's GC).
    operator.take().unwrap().stop();
    let hubs = api_for(
        &client,
        &json!({"apiVersion": V1A1, "kind": "StratumHub"}),
        &ns,
    );
    hubs.delete("site-a", &DeleteParams::foreground())
        .await
        .unwrap();
    wait_for(
        Duration::from_secs(120),
        "children garbage-collected",
        || {
            let (cms, deployments) = (cms.clone(), deployments.clone());
            async move {
                (cms.get_opt("site-a-routing").await.ok()?.is_none()
                    && deployments.get_opt("site-a").await.ok()?.is_none())
                .then_some(())
            }
        },
    )
    .await;

    // The user who applied the examples applies them again (no force) and meets no conflict:
    // the operator took no field of theirs. (Another manager re-applying a Secret's
    // `stringData` always conflicts in Kubernetes, operator or not: it is never stored.)
    for d in &examples {
        let mut d = d.clone();
        d["metadata"]["namespace"] = json!(examples_ns);
        let name = d["metadata"]["name"].as_str().unwrap().to_owned();
        api_for(&client, &d, &examples_ns)
            .patch(&name, &PatchParams::apply(MANAGER), &Patch::Apply(&d))
            .await
            .unwrap_or_else(|e| panic!("re-applying {name} conflicts: {e}"));
    }

    // Clean up everything the suite created.
    let nss: Api<Namespace> = Api::all(client.clone());
    for n in [&ns, &examples_ns] {
        let _ = nss.delete(n, &DeleteParams::default()).await;
    }
    let _ = Api::<ClusterRoleBinding>::all(client.clone())
        .delete(&role_name, &DeleteParams::default())
        .await;
    let _ = Api::<ClusterRole>::all(client.clone())
        .delete(&role_name, &DeleteParams::default())
        .await;
    drop(miners);
    hub.shutdown().await;
}
