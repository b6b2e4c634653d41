//! The routing control plane of a running hub: documents pushed over the authenticated admin API
//! and reloaded from a ConfigMap-style file take effect live; bad documents are refused whole with
//! a precise message while the hub keeps mining on the last good one; unauthenticated requests
//! are refused.

mod routing_common;

use std::os::unix::fs::symlink;
use std::path::Path;

use hashsched_hub::admin::client::{push_routing, request};
use hashsched_hub::metrics::HUB_ROUTING_UPDATES_TOTAL;
use hashsched_hub::routing::{PasswordRef, RoutingDocument};
use hashsched_hub::server::Hub;
use hashsched_hub::sim::miner::SimMiner;
use hashsched_hub::sim::pool::SimPool;
use hashsched_tests::{DEADLINE, init_tracing, test_miner, wait_until};
use routing_common::*;

fn yaml(doc: &RoutingDocument) -> String {
    serde_yaml::to_string(doc).expect("serializes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_documents_are_refused_and_the_hub_keeps_mining() {
    init_tracing();
    let a = SimPool::start(live_pool("a")).await.expect("pool a");
    let b = SimPool::start(live_pool("b")).await.expect("pool b");
    let pools = || vec![pool_spec("pool-a", &a), pool_spec("pool-b", &b)];
    let t = start_hub(document(1, pools(), &[("rig-1", &["pool-a"])])).await;
    let admin = t.hub.admin_addr().expect("admin API enabled");
    let m = SimMiner::spawn(t.hub.stratum_addr(), test_miner("rig-1", D, 20.0));
    wait_accepted_at(&a, "rig-1", 0, 5).await;

    // Unauthenticated and wrongly authenticated pushes are refused.
    let good2 = yaml(&document(2, pools(), &[("rig-1", &["pool-b"])]));
    let r = request(admin, "PUT", "/routing", None, good2.as_bytes())
        .await
        .expect("http");
    assert_eq!(r.status, 401, "{}", r.body);
    let r = push_routing(admin, "not-the-token", good2.as_bytes())
        .await
        .expect("http");
    assert_eq!(r.status, 401, "{}", r.body);
    let r = request(admin, "GET", "/routing", None, b"")
        .await
        .expect("http");
    assert_eq!(r.status, 401);

    // Each bad document: 400 with a message naming the field; generation 1 stays.
    let mut unknown_pool = document(2, pools(), &[("rig-1", &["pool-a", "acme-backup"])]);
    unknown_pool.generation = 2;
    let mut duplicate = document(
        2,
        pools(),
        &[("rig-1", &["pool-b"]), ("rig-1", &["pool-a"])],
    );
    duplicate.generation = 2;
    let mut bad_url = document(2, pools(), &[("rig-1", &["pool-b"])]);
    bad_url.pools[1].url = "stratum+tcp://127.0.0.1".into();
    let mut missing_secret = document(2, pools(), &[("rig-1", &["pool-b"])]);
    missing_secret.pools[1].password = Some(PasswordRef::secret("acme-pool", "password"));
    let mut no_password = document(2, pools(), &[("rig-1", &["pool-b"])]);
    no_password.pools[1].password = None;
    let cases = [
        (
            yaml(&unknown_pool),
            r#"workers[0].pools[1]: unknown pool "acme-backup""#,
        ),
        (
            yaml(&duplicate),
            r#"workers[1].name: duplicate worker "rig-1" (first listed at workers[0])"#,
        ),
        (
            yaml(&bad_url),
            r#"pools[1].url: malformed URL "stratum+tcp://127.0.0.1": missing :port"#,
        ),
        (
            yaml(&missing_secret),
            "pools[1].password: missing secret: secret acme-pool/password",
        ),
        (
            yaml(&no_password),
            "pools[1].password: missing password reference",
        ),
        ("pools: [".to_string(), "cannot parse routing document"),
    ];
    for (body, expected) in &cases {
        let r = push_routing(admin, TOKEN, body.as_bytes())
            .await
            .expect("http");
        assert_eq!(r.status, 400, "{expected}: {}", r.body);
        let error = r
            .json()
            .and_then(|j| j["error"].as_str().map(str::to_owned));
        assert!(
            error.as_deref().is_some_and(|e| e.contains(expected)),
            "expected {expected:?} in {}",
            r.body
        );
        assert_eq!(t.hub.applied_generation(), Some(1));
    }
    // Going back in time is refused too.
    let r = push_routing(
        admin,
        TOKEN,
        yaml(&document(0, pools(), &[("rig-1", &["pool-b"])])).as_bytes(),
    )
    .await
    .expect("http");
    assert_eq!(r.status, 409, "{}", r.body);

    // The hub was unaffected: same connection, still mining on pool a.
    let before = a.worker(&upstream("rig-1")).accepted;
    wait_accepted_at(&a, "rig-1", before, 5).await;
    assert_eq!(m.stats().connections, 1);
    assert_eq!(b.worker(&upstream("rig-1")).accepted, 0);
    assert_eq!(
        metric_value(
            &t.hub.metrics_text(),
            &format!(r#"{HUB_ROUTING_UPDATES_TOTAL}{{source="api",result="invalid"}}"#)
        ),
        Some(6.0),
        "invalid pushes are counted:\n{}",
        t.hub.metrics_text()
    );

    // A good push applies at once and reports its generation.
    let r = push_routing(admin, TOKEN, good2.as_bytes())
        .await
        .expect("http");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json().expect("json")["generation"], 2);
    wait_accepted_at(&b, "rig-1", 0, 5).await;
    let r = request(admin, "GET", "/routing", Some(TOKEN), b"")
        .await
        .expect("http");
    assert_eq!(r.json().expect("json")["generation"], 2);
    assert_eq!(m.stats().connections, 1);
    assert_conservation(&t.hub, &[&m], &[&a, &b]).await;
}

/// Writes `content` the way the kubelet updates a ConfigMap volume (new dir, `..data` swap).
fn kubelet_write(dir: &Path, n: u32, content: &str) {
    let ts = format!("..2026_11_24_05_00_{n:02}.{}", 100 + n);
    std::fs::create_dir(dir.join(&ts)).expect("mkdir");
    std::fs::write(dir.join(&ts).join("routing.yaml"), content).expect("write");
    let old = std::fs::read_link(dir.join("..data")).ok();
    symlink(&ts, dir.join("..data_tmp")).expect("link");
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).expect("swap");
    if let Some(old) = old {
        std::fs::remove_dir_all(dir.join(old)).expect("rm old");
    } else {
        symlink("..data/routing.yaml", dir.join("routing.yaml")).expect("file link");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configmap_file_changes_reroute_live_and_bad_files_are_ignored() {
    init_tracing();
    let a = SimPool::start(live_pool("a")).await.expect("pool a");
    let b = SimPool::start(live_pool("b")).await.expect("pool b");
    let pools = || vec![pool_spec("pool-a", &a), pool_spec("pool-b", &b)];
    let dir = tempfile::tempdir().expect("tempdir");
    let cm = dir.path().join("routing");
    std::fs::create_dir(&cm).expect("mkdir");
    kubelet_write(
        &cm,
        1,
        &yaml(&document(1, pools(), &[("rig-1", &["pool-a"])])),
    );
    let mut cfg = hub_config(&dir);
    cfg.routing_file = Some(cm.join("routing.yaml"));
    let hub = Hub::start(cfg).await.expect("hub starts");
    let m = SimMiner::spawn(hub.stratum_addr(), test_miner("rig-1", D, 20.0));
    wait_accepted_at(&a, "rig-1", 0, 5).await;

    // A broken file: refused, counted, hub keeps generation 1 and keeps mining.
    kubelet_write(
        &cm,
        2,
        "apiVersion: routing.hashsched.io/v1\ngeneration: 2\npools: []\n",
    );
    wait_until(DEADLINE, || {
        (metric_value(
            &hub.metrics_text(),
            &format!(r#"{HUB_ROUTING_UPDATES_TOTAL}{{source="file",result="invalid"}}"#),
        ) == Some(1.0))
        .then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("invalid file not counted:\n{}", hub.metrics_text()));
    assert_eq!(hub.applied_generation(), Some(1));
    let before = a.worker(&upstream("rig-1")).accepted;
    wait_accepted_at(&a, "rig-1", before, 3).await;

    // A good file: the worker moves to pool b on the same connection.
    kubelet_write(
        &cm,
        3,
        &yaml(&document(3, pools(), &[("rig-1", &["pool-b"])])),
    );
    wait_accepted_at(&b, "rig-1", 0, 5).await;
    assert_eq!(hub.applied_generation(), Some(3));
    assert_eq!(m.stats().connections, 1);
    assert_conservation(&hub, &[&m], &[&a, &b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_workers_are_refused_or_quarantined_never_given_to_a_customer() {
    use hashsched_hub::routing::UnknownWorkerPolicy;
    init_tracing();
    let customer = SimPool::start(live_pool("customer"))
        .await
        .expect("customer pool");
    let quarantine = SimPool::start(live_pool("quarantine"))
        .await
        .expect("quarantine pool");
    let pools = || {
        vec![
            pool_spec("customer", &customer),
            pool_spec("quarantine", &quarantine),
        ]
    };
    // defaultRoute is the customer's pool: unknown workers must still not land there.
    let t = start_hub(document(1, pools(), &[("rig-1", &["customer"])])).await;
    let stranger = SimMiner::spawn(t.hub.stratum_addr(), test_miner("stranger", D, 20.0));
    let s = stranger
        .wait_for(DEADLINE, |s| s.authorized.is_some())
        .await
        .expect("authorize answered");
    assert_eq!(s.authorized, Some(false), "unknown worker refused: {s:?}");

    let mut doc = document(2, pools(), &[("rig-1", &["customer"])]);
    doc.unknown_workers = UnknownWorkerPolicy::Quarantine {
        pools: vec!["quarantine".into()],
    };
    t.hub.apply_routing(doc).expect("applies");
    let stranger2 = SimMiner::spawn(t.hub.stratum_addr(), test_miner("stranger-2", D, 20.0));
    let known = SimMiner::spawn(t.hub.stratum_addr(), test_miner("rig-1", D, 20.0));
    wait_accepted_at(&quarantine, "stranger-2", 0, 5).await;
    wait_accepted_at(&customer, "rig-1", 0, 5).await;
    assert_eq!(customer.worker(&upstream("stranger-2")).accepted, 0);
    assert_eq!(customer.worker(&upstream("stranger")).accepted, 0);
    assert_eq!(quarantine.worker(&upstream("rig-1")).accepted, 0);
    assert_conservation(&t.hub, &[&stranger2, &known], &[&customer, &quarantine]).await;
}
