//! `hashsched demo` end to end, in process: simulated pools and twelve hashing miners, the
//! manifests of `examples/demo/`, the scripted story. Every incident must be injected, detected
//! and restored within the run, shares must reach every pool, and the hub must not have caused
//! a single miner reconnect. (The story is bounded by the health math — ~10 s to call a silent
//! miner dead, a minute of shares to call one degraded — so this test takes about 1.5 minutes;
//! the deadline is generous for a loaded machine.)

use std::time::Duration;

use hashsched_operator::demo::story::IncidentKind;
use hashsched_operator::demo::{DemoOptions, LiveView, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_story_is_handled_end_to_end() {
    let summary = run(DemoOptions {
        duration: Duration::from_secs(240),
        view: LiveView::Quiet,
    })
    .await
    .expect("demo runs");
    let text = summary.render();
    assert!(summary.all_handled, "{text}");
    assert_eq!(summary.incidents.len(), IncidentKind::ALL.len());
    for i in &summary.incidents {
        let (d, r) = (
            i.detected_after_seconds.unwrap(),
            i.restored_after_seconds.unwrap(),
        );
        assert!(d >= 0.0 && r >= d, "{text}");
        assert!(!i.outcome.is_empty(), "{text}");
    }
    let dies = &summary.incidents[0];
    assert_eq!(dies.kind, IncidentKind::MinerDies);
    assert!(
        dies.outcome
            .contains("lent to acme-m2m in place of acme-02"),
        "{text}"
    );
    assert_eq!(summary.miner_reconnects, 0, "{text}");
    assert_eq!(summary.miners, 12);
    assert_eq!(summary.pools.len(), 4);
    for p in &summary.pools {
        assert!(p.accepted > 0, "{text}");
    }
    let m2m = summary
        .contracts
        .iter()
        .find(|c| c.name == "acme-m2m")
        .unwrap();
    assert!(m2m.failovers >= 1, "{text}");
    assert!(m2m.observed_slots >= 1, "{text}");
    // The JSON the CLI writes with --summary-json.
    let json = serde_json::to_value(&summary).unwrap();
    assert_eq!(json["allHandled"], true);
    assert!(
        json["incidents"][3]["restoredAfterSeconds"]
            .as_f64()
            .is_some()
    );
}
