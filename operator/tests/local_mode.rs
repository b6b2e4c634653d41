//! Local mode end to end over real TCP: simulated pools that validate every share, a simulated
//! miner that really hashes, the embedded hub and the decision loop fed by a folder of manifests.
//!
//! - the miner is routed as the manifests say, and editing the contract file re-routes it to
//!   another pool without a reconnect (its TCP connection count stays 1);
//! - a bad edit is refused with a file:field message while the last good state keeps running,
//!   and fixing the file clears the error;
//! - the state file carries statuses, assignments and the SLA ledger across a restart.

mod local_common;

use hashsched_hub::metrics::WORKER_CONNECTED;
use hashsched_hub::sim::miner::{MinerConfig, SimMiner};
use hashsched_operator::crd::Role;
use hashsched_operator::metric_names::{CONTRACT_SLOTS_TOTAL, WORKER_PHASE};
use local_common::{Farm, contract_yaml, wait_for, wait_status};

fn miner(farm_hub: std::net::SocketAddr, name: &str) -> SimMiner {
    SimMiner::spawn(
        farm_hub,
        MinerConfig {
            hashrate: Some(200e3),
            record_shares: false,
            ..MinerConfig::new(name)
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_by_the_manifests_and_an_edit_reroutes_without_reconnect() {
    let farm = Farm::new().await;
    let local = farm.start().await;
    let w1 = miner(local.stratum_addr(), "w1");
    let spare = miner(local.stratum_addr(), "spare-1");

    wait_status(
        &local,
        "w1 serves c1 on pool-a, spare-1 mines for the house",
        |d| {
            let w = d.worker("w1");
            let s = d.worker("spare-1");
            w.is_some_and(|w| {
                w.pool.as_deref() == Some("pool-a")
                    && w.contract.as_deref() == Some("c1")
                    && w.role == Some(Role::Primary)
            }) && s.is_some_and(|s| s.pool.as_deref() == Some("house"))
        },
    )
    .await;
    wait_for("pool-a accepts w1's shares", || {
        farm.pool_a.stats().accepted_total() > 0
    })
    .await;
    assert_eq!(farm.pool_b.stats().accepted_total(), 0);

    // The contract now overrides acme's pools: w1 must move to pool-b, live.
    farm.write(
        "40-contract.yaml",
        &contract_yaml(&["w1"], Some(&["pool-b"])),
    );
    wait_status(&local, "w1 on pool-b after the edit", |d| {
        d.worker("w1")
            .is_some_and(|w| w.pool.as_deref() == Some("pool-b"))
            && d.manifests_error.is_none()
    })
    .await;
    wait_for("pool-b accepts w1's shares", || {
        farm.pool_b.stats().accepted_total() > 0
    })
    .await;
    let a_then = farm.pool_a.stats().accepted_total();
    let stats = w1.stats();
    assert_eq!(
        stats.connections, 1,
        "re-routing must not reconnect the miner"
    );
    assert_eq!(stats.reconnects_received, 0);
    assert!(stats.accepted > 0);
    assert_eq!(spare.stats().connections, 1);

    // The HTTP endpoint shows the same, and serves the hub's metrics.
    let addr = local.http_addr().expect("http served");
    let status = hashsched_hub::admin::client::request(addr, "GET", "/status", None, b"")
        .await
        .unwrap();
    assert_eq!(status.status, 200);
    let json = status.json().unwrap();
    let w = json["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "w1")
        .unwrap();
    assert_eq!(w["pool"], "pool-b");
    // `hashsched status --url` prints the same as tables.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hashsched"))
        .args(["status", "--url", &format!("http://{addr}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("w1 "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.contains("c1 (Primary)") && line.contains("pool-b"),
        "{text}"
    );
    let metrics = hashsched_hub::admin::client::request(addr, "GET", "/metrics", None, b"")
        .await
        .unwrap();
    assert_eq!(metrics.status, 200);
    assert!(metrics.body.contains("w1"), "{}", metrics.body);
    // Next to the hub's series: the scheduler's SLIs (one exposition, one `# EOF` at its end).
    let body = &metrics.body;
    assert_eq!(body.matches("# EOF").count(), 1, "{body}");
    assert!(body.trim_end().ends_with("# EOF"), "{body}");
    assert!(
        body.contains(&format!("{WORKER_PHASE}{{namespace=\"")) && body.contains("worker=\"w1\""),
        "{body}"
    );
    assert!(
        body.contains(&format!("{CONTRACT_SLOTS_TOTAL}{{"))
            && body.contains("contract=\"c1\"")
            && body.contains("verdict=\"unobserved\""),
        "{body}"
    );
    assert!(body.contains(WORKER_CONNECTED), "{body}");

    // pool-a gets nothing more from w1 (it may still answer shares in flight at the switch).
    wait_for("pool-b keeps receiving", || {
        farm.pool_b.stats().accepted_total() > 3
    })
    .await;
    assert!(farm.pool_a.stats().accepted_total() <= a_then + 2);
    local.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_edit_is_refused_and_the_last_good_state_keeps_running() {
    let farm = Farm::new().await;
    let local = farm.start().await;
    let w1 = miner(local.stratum_addr(), "w1");
    wait_status(&local, "w1 on pool-a", |d| {
        d.worker("w1")
            .is_some_and(|w| w.pool.as_deref() == Some("pool-a"))
    })
    .await;

    // A dangling worker and a pool move in the same edit: all of it is refused.
    farm.write(
        "40-contract.yaml",
        &contract_yaml(&["w1", "ghost"], Some(&["pool-b"])),
    );
    let file = farm.path().join("40-contract.yaml").display().to_string();
    let want = format!("{file}: RentalContract c1: spec.workers[1]: Worker \"ghost\" not found");
    let doc = wait_status(&local, "the bad edit is reported", |d| {
        d.manifests_error
            .as_deref()
            .is_some_and(|e| e.contains(&want))
    })
    .await;
    assert_eq!(
        doc.worker("w1").and_then(|w| w.pool.as_deref()),
        Some("pool-a")
    );
    let accepted = farm.pool_a.stats().accepted_total();
    wait_for(
        "w1 keeps mining to pool-a under the last good manifests",
        || farm.pool_a.stats().accepted_total() > accepted + 2,
    )
    .await;
    let doc = local.status();
    assert_eq!(
        doc.worker("w1").and_then(|w| w.pool.as_deref()),
        Some("pool-a")
    );
    assert_eq!(farm.pool_b.stats().accepted_total(), 0);
    assert!(doc.contract("c1").is_some());

    // Broken YAML is refused too.
    farm.write("40-contract.yaml", "kind: [unclosed\n");
    wait_status(&local, "broken YAML reported", |d| {
        d.manifests_error
            .as_deref()
            .is_some_and(|e| e.contains("40-contract.yaml: document 1: not valid YAML"))
    })
    .await;

    // Fixing the file clears the error and applies the edit.
    farm.write(
        "40-contract.yaml",
        &contract_yaml(&["w1"], Some(&["pool-b"])),
    );
    wait_status(&local, "fixed edit applied", |d| {
        d.manifests_error.is_none()
            && d.worker("w1")
                .is_some_and(|w| w.pool.as_deref() == Some("pool-b"))
    })
    .await;
    assert_eq!(w1.stats().connections, 1);
    local.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_file_carries_status_and_ledger_across_a_restart() {
    let farm = Farm::new().await;
    let local = farm.start().await;
    let w1 = miner(local.stratum_addr(), "w1");
    // Slots are 10 s: wait for one to close with w1 Healthy.
    let before = wait_status(&local, "c1 accounted a slot with w1 Healthy", |d| {
        d.contract("c1").is_some_and(|c| c.observed_slots >= 1)
            && d.worker("w1").is_some_and(|w| w.phase == "Healthy")
    })
    .await;
    local.shutdown().await;
    drop(w1);
    let path = farm.path().join(".hashsched-state.json");
    assert!(path.exists(), "state file written next to the manifests");
    let saved = hashsched_operator::local::state::load(&path)
        .unwrap()
        .unwrap();
    assert!(saved.statuses.contracts.contains_key("c1"));
    assert!(saved.memory.ledgers.contains_key("c1"));
    let saved_slots = saved
        .statuses
        .contracts
        .get("c1")
        .and_then(|c| c.uptime.as_ref())
        .map_or(0, |u| u.observed_slots);
    assert!(saved_slots >= before.contract("c1").unwrap().observed_slots);

    // `hashsched status --manifests DIR` reads it while local mode is stopped.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hashsched"))
        .arg("status")
        .arg("--manifests")
        .arg(farm.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("w1") && text.contains("c1") && text.contains("acme"),
        "{text}"
    );

    // Restart: before any miner is back, the status already shows what was known.
    let local = farm.start().await;
    let doc = local.status();
    let c1 = doc.contract("c1").expect("c1 restored");
    assert!(c1.observed_slots >= saved_slots, "{c1:?}");
    let w = doc.worker("w1").expect("w1 restored");
    assert_eq!(w.contract.as_deref(), Some("c1"));
    assert_eq!(w.role, Some(Role::Primary));
    // The ledger keeps counting from where it was, not from zero.
    let _w1 = miner(local.stratum_addr(), "w1");
    wait_status(&local, "ledger continues after the restart", |d| {
        d.contract("c1")
            .is_some_and(|c| c.observed_slots > saved_slots)
    })
    .await;
    local.shutdown().await;
}

/// Local mode stopped and started again in the middle of a failover (the rented miner dead, the
/// spare lent): the restarted loop keeps the spare where it is — no second lend, no give-back
/// before the original is back — the failover count and the ledger continue from the state file,
/// and the give-back happens once the original returns, as it would have without the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_failover_keeps_the_spare_lent_and_the_accounting() {
    let farm = Farm::new().await;
    let local = farm.start().await;
    let w1 = miner(local.stratum_addr(), "w1");
    let spare = miner(local.stratum_addr(), "spare-1");
    wait_status(&local, "w1 Healthy serving c1", |d| {
        d.worker("w1").is_some_and(|w| w.phase == "Healthy")
            && d.contract("c1").is_some_and(|c| c.observed_slots >= 1)
    })
    .await;

    // The rented miner dies: the spare is lent to c1 in its place.
    w1.die();
    let lent = |d: &hashsched_operator::local::store::StatusDocument| {
        d.worker("spare-1").is_some_and(|s| {
            s.contract.as_deref() == Some("c1")
                && s.role == Some(Role::Substitute)
                && s.replaces.as_deref() == Some("w1")
        })
    };
    let before = wait_status(&local, "w1 Dead and spare-1 lent to c1", |d| {
        d.worker("w1").is_some_and(|w| w.phase == "Dead") && lent(d)
    })
    .await;
    let c1 = before.contract("c1").unwrap().clone();
    assert_eq!(c1.failovers, 1, "{c1:?}");
    local.shutdown().await;
    drop(spare);

    // Restarted mid-failover, before any miner is back: nothing is reassigned.
    let local = farm.start().await;
    let restored = local.status();
    assert!(
        lent(&restored),
        "spare-1 still lent after the restart: {restored:?}"
    );
    assert_eq!(restored.contract("c1").unwrap().failovers, 1);
    let _spare = miner(local.stratum_addr(), "spare-1");
    let steady = wait_status(
        &local,
        "the ledger continues with spare-1 serving c1",
        |d| {
            d.contract("c1")
                .is_some_and(|c| c.observed_slots > c1.observed_slots)
                && d.worker("spare-1").is_some_and(|s| s.phase == "Healthy")
        },
    )
    .await;
    assert!(lent(&steady), "{steady:?}");
    let c = steady.contract("c1").unwrap();
    assert_eq!(c.failovers, 1, "no second lend after the restart: {c:?}");
    assert!(c.up_slots >= c1.up_slots, "up slots kept: {c:?} vs {c1:?}");
    assert!(
        c.down_slots >= c1.down_slots,
        "down slots kept: {c:?} vs {c1:?}"
    );

    // The original comes back: given back once, the spare returns to the house.
    let _w1 = miner(local.stratum_addr(), "w1");
    let back = wait_status(
        &local,
        "w1 Primary again and spare-1 back with the house",
        |d| {
            d.worker("w1").is_some_and(|w| {
                w.phase == "Healthy"
                    && w.contract.as_deref() == Some("c1")
                    && w.role == Some(Role::Primary)
            }) && d.worker("spare-1").is_some_and(|s| s.contract.is_none())
        },
    )
    .await;
    assert_eq!(
        back.contract("c1").unwrap().failovers,
        1,
        "{:?}",
        back.contract("c1")
    );
    local.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_passwords_come_from_secrets_and_a_secret_edit_reaches_the_pool() {
    use hashsched_hub::sim::pool::{PoolConfig, SimPool};
    let farm = Farm::new().await;
    let secure = SimPool::start(PoolConfig {
        name: "pool-s".into(),
        difficulty: 5e-5,
        password: Some("s3cret".into()),
        record_shares: false,
        ..PoolConfig::default()
    })
    .await
    .unwrap();
    let secret = |password: &str| {
        format!(
            "apiVersion: v1
kind: Secret
metadata: {{ name: creds }}
stringData: {{ password: \"{password}\" }}
---
apiVersion: hashsched.io/v1alpha1
kind: PoolEndpoint
metadata: {{ name: pool-s }}
spec:
  url: \"{}\"
  user: acme
  passwordSecretRef: {{ name: creds, key: password }}
",
            secure.url()
        )
    };
    farm.write("25-secure.yaml", &secret("s3cret"));
    farm.write(
        "40-contract.yaml",
        &contract_yaml(&["w1"], Some(&["pool-s"])),
    );
    let local = farm.start().await;
    let w1 = miner(local.stratum_addr(), "w1");
    wait_for(
        "pool-s accepts w1's shares under the Secret's password",
        || secure.stats().accepted_total() > 0,
    )
    .await;
    assert_eq!(secure.stats().authorizes_failed, 0);

    // Rotate the password in the Secret only: the hub must log in again with the new one (this
    // pool refuses it, which is how the test sees that it arrived).
    farm.write("25-secure.yaml", &secret("rotated"));
    wait_for("the hub re-authorizes with the rotated password", || {
        secure.stats().authorizes_failed > 0
    })
    .await;
    // And back: shares flow again, and the miner never reconnected.
    farm.write("25-secure.yaml", &secret("s3cret"));
    let accepted = secure.stats().accepted_total();
    wait_for(
        "pool-s accepts again after the password is restored",
        || secure.stats().accepted_total() > accepted + 2,
    )
    .await;
    assert_eq!(w1.stats().connections, 1);
    local.shutdown().await;
}

/// A PoolEndpoint whose port the hub would refuse is refused at admission, with the object and
/// field named, as a real apiserver refuses it (the schema carries the hub's port range). It
/// never reaches a routing document: every other worker keeps mining where it was routed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_with_a_bad_port_is_refused_and_every_other_worker_keeps_mining() {
    let farm = Farm::new().await;
    let local = farm.start().await;
    let _w1 = miner(local.stratum_addr(), "w1");
    let _spare = miner(local.stratum_addr(), "spare-1");
    wait_status(&local, "w1 on pool-a, spare-1 on house", |d| {
        d.worker("w1")
            .is_some_and(|w| w.pool.as_deref() == Some("pool-a"))
            && d.worker("spare-1")
                .is_some_and(|w| w.pool.as_deref() == Some("house"))
    })
    .await;

    // Another customer, with a typo in its pool's port.
    farm.write(
        "50-beta.yaml",
        "apiVersion: hashsched.io/v1alpha1
kind: PoolEndpoint
metadata: { name: beta-pool }
spec: { url: \"stratum+tcp://127.0.0.1:99999\", user: beta }
---
apiVersion: hashsched.io/v1alpha1
kind: Customer
metadata: { name: beta }
spec: { pools: [beta-pool] }
",
    );
    let doc = wait_status(&local, "the bad pool is reported", |d| {
        d.manifests_error
            .as_deref()
            .is_some_and(|e| e.contains("PoolEndpoint beta-pool") && e.contains("spec.url"))
    })
    .await;
    assert_eq!(
        doc.worker("w1").and_then(|w| w.pool.as_deref()),
        Some("pool-a")
    );
    let (a, house) = (
        farm.pool_a.stats().accepted_total(),
        farm.house.stats().accepted_total(),
    );
    wait_for("w1 and spare-1 keep mining to their pools", || {
        farm.pool_a.stats().accepted_total() > a + 2
            && farm.house.stats().accepted_total() > house + 2
    })
    .await;
    local.shutdown().await;
}
