//! Local mode end to end over real TCP: simulated pools that validate every share, a simulated
//! miner that really hashes, the embedded hub and the decision loop fed by a folder of manifests.
//!
//! - the miner is routed as the manifests say, and editing the contract file re-routes it to
//!   another pool without a reconnect (its TCP connection count stays 1);
//! - a bad edit is refused with a file:field message while the last good state keeps running,
//!   and fixing the file clears the error;
//! - the state file carries statuses, assignments and the SLA ledger across a restart;
//! - restarted mid-failover from the state file, it accounts as a twin run without the restart
//!   does, and every share lands in exactly one bucket;
//! - a damaged state file stops it at start, named, and is left as found.

mod local_common;

use std::collections::BTreeMap;
use std::path::Path;

use hashsched_hub::facts::WorkerFacts;
use hashsched_hub::metrics::WORKER_CONNECTED;
use hashsched_hub::sim::miner::{MinerConfig, SimMiner};
use hashsched_operator::crd::Role;
use hashsched_operator::local::runner::{LocalHandle, Runner};
use hashsched_operator::local::state::{self, LocalState};
use hashsched_operator::local::store::StatusDocument;
use hashsched_operator::metric_names::{CONTRACT_SLOTS_TOTAL, WORKER_PHASE};
use hashsched_operator::scheduler::accounting::Ledger;
use hashsched_operator::scheduler::health::Verdict;
use local_common::{DEADLINE, Farm, contract_yaml, wait_for, wait_status};

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

/// Local mode restarted in the middle of a failover (the rented miner dead, the spare lent),
/// against a twin that is not restarted.
///
/// The twin is the same run: run A goes through the failover, then its folder (manifests and
/// the state file A last wrote, atomically, every tick) is copied and run B starts from the copy
/// with a new embedded hub and new miner connections — as A would come back after a crash at
/// that instant — while A carries on without a restart. Both share everything before the
/// restart, so whatever differs afterwards is the restart's doing (two independent runs would
/// differ by the miners' luck and by where their failovers fell on the wall clock instead).
///
/// Then, with B's spare connected, and again after the original returns to both and both give
/// the spare back:
/// - B keeps the spare where it is (no second lend, no early give-back); both count one failover,
///   the same lend time, and later one give-back each (its time is each run's own tick: only the
///   count is compared exactly);
/// - the SLA ledgers, read at the same open slot (slots are cut on the wall clock, so both runs
///   cut the same ones): the same number of closed slots (none lost or counted twice across the
///   restart), the same down slots, the same start of accounting, and B's up slots fewer than
///   A's only by slots overlapping the time B could not judge (from A's last sample before the
///   restart until B's new hub gave the spare a verdict again), which B counts unobserved, never
///   down. Those slots, and the shortfall (a sum of the shares each run's own miners found after
///   the restart, so luck differs), are the only differences allowed: how long the new
///   connection takes to be judged depends on the vardiff difficulty it gets, so on the
///   machine's load, which no exact comparison can fix;
/// - shares are conserved: every share a live miner got an answer for is in exactly one bucket
///   of the hub it sent it to (for the connection that died, the hub counted at least the shares
///   it answered and at most those sent), and the pools accepted exactly what the two hubs
///   counted as accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_failover_keeps_the_spare_lent_and_the_accounting() {
    let farm = Farm::new().await;
    let a = farm.start().await;
    let w1 = miner(a.stratum_addr(), "w1");
    let spare_a = miner(a.stratum_addr(), "spare-1");
    wait_status(&a, "w1 Healthy serving c1", |d| {
        d.worker("w1").is_some_and(|w| w.phase == "Healthy")
            && d.contract("c1").is_some_and(|c| c.observed_slots >= 1)
    })
    .await;

    // The rented miner dies: the spare is lent to c1 in its place.
    w1.die();
    let before = wait_status(&a, "w1 Dead and spare-1 lent to c1", |d| {
        d.worker("w1").is_some_and(|w| w.phase == "Dead") && lent(d)
    })
    .await;
    assert_eq!(before.contract("c1").unwrap().failovers, 1, "{before:?}");

    // The restart: B starts from A's folder as it is now, once A's state file holds the lend
    // (it is written right after the status is published, in the same tick).
    wait_for("A's state file holds the lend", || {
        let s = saved(&farm.path());
        s.memory.failover_counts.get("c1") == Some(&1) && lent(&s.last_status)
    })
    .await;
    let b_dir = farm.fork();
    let at_fork = saved(b_dir.path());
    assert_eq!(at_fork.memory.failover_counts.get("c1"), Some(&1));
    let b = farm.start_at(b_dir.path()).await;
    // Before any miner is back, B shows the failover as it was: nothing reassigned.
    let restored = b.status();
    assert!(
        lent(&restored),
        "spare-1 still lent after the restart: {restored:?}"
    );
    assert_eq!(restored.contract("c1").unwrap().failovers, 1);
    let spare_b = miner(b.stratum_addr(), "spare-1");
    // B's hub is new: the spare's new connection has no verdict until its first shares. When it
    // has one again, B can judge c1's slots again.
    let mut judged_from = None;
    wait_for("spare-1 judged Healthy again by B", || {
        let s = saved(b_dir.path());
        judged_from = s
            .memory
            .health
            .get("spare-1")
            .filter(|h| h.verdict == Verdict::Healthy && Some(h.since) > at_fork.saved_at)
            .map(|h| h.since);
        judged_from.is_some()
    })
    .await;
    let judged_from = judged_from.unwrap();
    // Two slots judged by both after that.
    let (sa, sb) = loop {
        let (x, y) = at_common_slot(&farm.path(), b_dir.path()).await;
        if open_slot(&x).as_millisecond() >= slot_of(judged_from) + 3 * SLOT_MS {
            break (x, y);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    for (run, s) in [("A", &sa), ("B", &sb)] {
        assert!(lent(&s.last_status), "{run}: {:?}", s.last_status);
    }
    accounts_alike(&sa, &sb, &at_fork, judged_from, "while the spare is lent");
    assert_eq!(
        assigned(&sa),
        assigned(&at_fork),
        "A: c1 served as at the lend"
    );
    assert_eq!(
        assigned(&sb),
        assigned(&at_fork),
        "B: c1 served as at the lend, since the lend"
    );
    assert_eq!(reassignments(&sa), reassignments(&at_fork), "A: one lend");
    assert_eq!(
        reassignments(&sb),
        reassignments(&at_fork),
        "B: no second lend, no give-back after the restart"
    );

    // The original comes back to both: each gives the spare back once.
    let w1_a = miner(a.stratum_addr(), "w1");
    let w1_b = miner(b.stratum_addr(), "w1");
    for local in [&a, &b] {
        wait_status(
            local,
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
    }
    // Two more slots closed after both gave back, so both judged slots served by w1 again.
    let (sa, _) = at_common_slot(&farm.path(), b_dir.path()).await;
    let then = open_slot(&sa);
    let (sa, sb) = loop {
        let (x, y) = at_common_slot(&farm.path(), b_dir.path()).await;
        if open_slot(&x).as_millisecond() >= then.as_millisecond() + 2 * SLOT_MS {
            break (x, y);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    accounts_alike(&sa, &sb, &at_fork, judged_from, "after the give-back");
    let (ra, rb) = (reassignments(&sa), reassignments(&sb));
    assert_eq!(ra.len(), 2, "A: one lend, one give-back: {ra:?}");
    assert_eq!(rb.len(), 2, "B: one lend, one give-back: {rb:?}");
    assert_eq!(ra[0], rb[0], "the same lend");
    for (run, st, r) in [("A", &sa, &ra), ("B", &sb, &rb)] {
        let w1_since = assigned(st)
            .into_iter()
            .find(|w| w.worker == "w1")
            .map(|w| w.since.0);
        assert_eq!(
            w1_since,
            Some(r[1]),
            "{run}: w1 serves c1 since the give-back"
        );
    }

    // Shares: stop the live miners and let every share get its verdict.
    let miners_a = [&w1, &w1_a, &spare_a];
    let miners_b = [&w1_b, &spare_b];
    for m in miners_a.iter().chain(&miners_b) {
        m.stall();
    }
    let mut stats = Vec::new();
    for m in miners_a.iter().chain(&miners_b) {
        let s = m
            .wait_for(DEADLINE, |s| s.in_flight == 0)
            .await
            .unwrap_or_else(|s| panic!("{}: submits unanswered: {s:?}", m.worker()));
        assert!(
            s.is_conserved(),
            "{}: miner stats not conserved: {s:?}",
            m.worker()
        );
        stats.push(s);
    }
    let (fa, fb) = (settled_facts(&a).await, settled_facts(&b).await);
    // A: w1 had two connections (the one that died, the one that came back).
    let w1_sub: u64 = stats[..2].iter().map(|s| s.submitted).sum();
    let w1_answered: u64 = stats[..2].iter().map(|s| s.submitted - s.lost).sum();
    let counted = fa["w1"].submitted();
    assert!(
        w1_answered <= counted && counted <= w1_sub,
        "A w1: miners submitted {w1_sub} ({w1_answered} answered), the hub counted {counted}: {:?}",
        fa["w1"]
    );
    assert_eq!(stats[1].lost, 0, "{:?}", stats[1]);
    for (run, facts, worker, s) in [
        ("A", &fa, "spare-1", &stats[2]),
        ("B", &fb, "w1", &stats[3]),
        ("B", &fb, "spare-1", &stats[4]),
    ] {
        let f = &facts[worker];
        assert_eq!(
            f.submitted(),
            s.submitted - s.lost,
            "{run} {worker}: every answered share in exactly one bucket: {f:?} vs {s:?}"
        );
        assert_eq!(
            s.accepted,
            f.shares.accepted + f.shares.below_target,
            "{run} {worker}: {f:?} vs {s:?}"
        );
    }
    let hubs_accepted: u64 = fa
        .values()
        .chain(fb.values())
        .map(|f| f.shares.accepted)
        .sum();
    let pools_accepted: u64 = [&farm.house, &farm.pool_a, &farm.pool_b]
        .iter()
        .map(|p| p.stats().accepted_total())
        .sum();
    assert_eq!(
        pools_accepted, hubs_accepted,
        "the pools accepted exactly what the hubs counted accepted: {fa:?} {fb:?}"
    );
    a.shutdown().await;
    b.shutdown().await;
}

/// spare-1 lent to c1 in w1's place.
fn lent(d: &StatusDocument) -> bool {
    d.worker("spare-1").is_some_and(|s| {
        s.contract.as_deref() == Some("c1")
            && s.role == Some(Role::Substitute)
            && s.replaces.as_deref() == Some("w1")
    })
}

/// The state file of a local mode's folder (written atomically every tick).
fn saved(dir: &Path) -> LocalState {
    state::load(&state::state_path(dir))
        .expect("state file readable")
        .expect("state file written")
}

fn ledger(s: &LocalState) -> &Ledger {
    s.memory.ledgers.get("c1").expect("c1's ledger")
}

/// Start of c1's open slot.
fn open_slot(s: &LocalState) -> jiff::Timestamp {
    ledger(s)
        .open
        .and_then(|o| o.start)
        .expect("c1 has an open slot")
}

/// Closed slots: up + down + unobserved.
fn total(s: &LocalState) -> u64 {
    let l = ledger(s);
    l.up_slots + l.down_slots + l.unobserved_slots
}

/// Who serves c1, as its status says.
fn assigned(s: &LocalState) -> Vec<hashsched_operator::crd::AssignedWorker> {
    s.statuses.contracts["c1"].assigned_workers.clone()
}

/// c1's lends and give-backs, as the status keeps them.
fn reassignments(s: &LocalState) -> Vec<jiff::Timestamp> {
    s.statuses.contracts["c1"]
        .recent_reassignments
        .iter()
        .map(|t| t.0)
        .collect()
}

/// Both runs' state files, read when c1's ledgers have the same open slot (the runs tick on
/// their own, so one may have closed a slot the other has not yet).
async fn at_common_slot(a: &Path, b: &Path) -> (LocalState, LocalState) {
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let (x, y) = (saved(a), saved(b));
        if open_slot(&x) == open_slot(&y) {
            return (x, y);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the runs never shared an open slot"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// c1's slot length (`sla.slot: 10s` in the farm's contract), ms.
const SLOT_MS: i64 = 10_000;

/// Start of the slot containing `t`, ms (slots are cut on the wall clock from the epoch).
fn slot_of(t: jiff::Timestamp) -> i64 {
    t.as_millisecond().div_euclid(SLOT_MS) * SLOT_MS
}

/// c1's accounting in the restarted run `b` against the run without the restart `a`, both read
/// at the same open slot, both continuing the state `fork`; `b` could judge the contract again
/// (its serving spare had a verdict from its new hub) from `judged_from`.
fn accounts_alike(
    a: &LocalState,
    b: &LocalState,
    fork: &LocalState,
    judged_from: jiff::Timestamp,
    when: &str,
) {
    let (la, lb) = (ledger(a), ledger(b));
    let slots_since_fork =
        (open_slot(a).as_millisecond() - open_slot(fork).as_millisecond()) / SLOT_MS;
    for (run, s) in [("A", a), ("B", b)] {
        // Every slot since the restart closed exactly once (none lost while B was down, none
        // counted twice by the state B restored).
        assert_eq!(
            total(s) - total(fork),
            u64::try_from(slots_since_fork).unwrap(),
            "{when}: {run} closed slots since the restart: {:?} (at the restart: {:?})",
            ledger(s),
            ledger(fork)
        );
        assert_eq!(
            s.memory.failover_counts.get("c1"),
            Some(&1),
            "{when}: {run}"
        );
        assert_eq!(
            s.statuses.contracts["c1"].failover_count,
            Some(1),
            "{when}: {run}"
        );
    }
    // Who serves c1, in which role (`since` is compared by the callers: a give-back happens at
    // each run's own tick).
    let serving = |s: &LocalState| {
        assigned(s)
            .iter()
            .map(|w| (w.worker.clone(), w.role, w.replaces.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(serving(a), serving(b), "{when}: c1 served alike");
    assert_eq!(total(a), total(b), "{when}: {la:?} vs {lb:?}");
    assert_eq!(
        la.down_slots, lb.down_slots,
        "{when}: down slots: {la:?} vs {lb:?}"
    );
    assert_eq!(la.started_at, lb.started_at, "{when}");
    // The restart may only turn slots it could not see from up into unobserved, never into
    // down: from the last sample A wrote before the restart until B's new hub gave the spare a
    // verdict again (the new connection needs its first shares; how long depends on the
    // difficulty its vardiff settles on, so on the machine's load: a wall-clock difference).
    // Only the slots overlapping that time can differ; every slot after it is judged by both.
    let blind_from = fork
        .memory
        .ledgers
        .get("c1")
        .and_then(|l| l.last_sample_at)
        .expect("a sample before the restart");
    let could_differ = u64::try_from((slot_of(judged_from) - slot_of(blind_from)) / SLOT_MS + 1)
        .expect("the verdict came after the restart");
    // A, never restarted, can miss a verdict too when the machine is loaded (the full suite in
    // parallel): its slot is then unobserved where B's is up. That is A's own blindness, not
    // the restart's, and is never down (the down slots are equal above); only B's shortfall is
    // the restart's, and it must fit B's blind time.
    let Some(lost) = la.up_slots.checked_sub(lb.up_slots) else {
        return;
    };
    assert_eq!(
        lb.unobserved_slots - la.unobserved_slots,
        lost,
        "{when}: {la:?} vs {lb:?}"
    );
    assert!(
        lost <= could_differ,
        "{when}: B lost {lost} slots to the restart, only {could_differ} overlap the time it \
         could not judge ({blind_from} to {judged_from}): {la:?} vs {lb:?}"
    );
}

/// The hub's facts by worker once no share is waiting for a verdict.
async fn settled_facts(local: &LocalHandle) -> BTreeMap<String, WorkerFacts> {
    let mut facts = BTreeMap::new();
    wait_for("every share has its verdict", || {
        facts = local
            .hub()
            .facts()
            .into_iter()
            .map(|f| (f.worker.clone(), f))
            .collect();
        facts.values().all(|f| f.pending == 0)
    })
    .await;
    facts
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

/// A damaged state file (a crash or a full disk can leave a truncated or empty one; a bad edit a
/// misspelt key) stops `hashsched local` at start with an error that names the file and the
/// damage — it holds the contracts' ledgers, so starting from the manifests alone would silently
/// reset the SLA accounting — and the file is left byte for byte as found, for the operator to
/// restore. The runner refuses it the same way; the intact file starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_state_file_stops_local_mode_and_is_left_as_found() {
    let farm = Farm::new().await;
    let local = farm.start().await;
    let _w1 = miner(local.stratum_addr(), "w1");
    wait_status(&local, "w1 serving c1 and mining", |d| {
        d.worker("w1").is_some_and(|w| w.connected == Some(true)) && d.contract("c1").is_some()
    })
    .await;
    local.shutdown().await;
    let path = farm.path().join(".hashsched-state.json");
    let full = std::fs::read(&path).expect("the state file was written");
    let text = String::from_utf8(full.clone()).unwrap();
    assert!(text.contains("\"ledgers\""), "{text}");
    let listing = || {
        let mut names: Vec<_> = std::fs::read_dir(farm.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        names
    };
    let files = listing();

    for (damaged, problem) in [
        (full[..full.len() / 2].to_vec(), "truncated"),
        (Vec::new(), "empty"),
        (
            text.replacen("\"memory\"", "\"memorx\"", 1).into_bytes(),
            "field memorx is not part of the layout",
        ),
    ] {
        std::fs::write(&path, &damaged).unwrap();
        let file = path.display().to_string();

        // The runner, in process.
        match Runner::start(farm.options()).await {
            Ok(local) => {
                local.shutdown().await;
                panic!("local mode started on a {problem} state file");
            }
            Err(e) => {
                let e = e.to_string();
                assert!(
                    e.contains(&file) && e.contains(problem) && e.contains("move it away"),
                    "{problem}: {e}"
                );
            }
        }
        assert_eq!(
            std::fs::read(&path).unwrap(),
            damaged,
            "{problem}: file left as found"
        );

        // The command.
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hashsched"))
            .arg("local")
            .arg("--manifests")
            .arg(farm.path())
            .args(["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .args(["--tick", "100ms"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("hashsched runs");
        let deadline = std::time::Instant::now() + DEADLINE;
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() >= deadline {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "{problem}: `hashsched local` kept running on a damaged state file\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{problem}: {out:?}");
        assert!(
            stderr.contains(&file) && stderr.contains(problem) && stderr.contains("move it away"),
            "{problem}: the error names the file and the damage:\n{stderr}"
        );
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("miners connect"),
            "{problem}: {out:?}"
        );
        assert_eq!(
            std::fs::read(&path).unwrap(),
            damaged,
            "{problem}: `hashsched local` left the file as found"
        );
        assert_eq!(listing(), files, "{problem}: nothing written next to it");
    }

    // The intact file starts, with what it held.
    std::fs::write(&path, &full).unwrap();
    let local = farm.start().await;
    let doc = local.status();
    assert_eq!(
        doc.worker("w1").and_then(|w| w.contract.as_deref()),
        Some("c1"),
        "{doc:?}"
    );
    local.shutdown().await;
}
