//! Local mode's "API server": the shipped manifests load, and bad ones are refused with messages
//! that name the file, the object and the field — also through the `hashsched local` CLI.

use std::path::Path;
use std::process::Command;

use hashsched_operator::local::load::load_dir;

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

#[test]
fn shipped_manifests_load_as_local_mode_reads_them() {
    let demo = load_dir(&repo("examples/demo")).unwrap();
    assert_eq!(demo.workers.len(), 12);
    assert_eq!(demo.contracts.len(), 2);
    assert_eq!(demo.namespace.as_deref(), Some("demo"));
    assert_eq!(
        demo.secret_value("acme-pool-credentials", "primary")
            .unwrap(),
        b"acme-demo-primary"
    );
    // The example farm (namespace, Secrets, 20 workers, 3 contracts) is a valid local folder too.
    let farm = load_dir(&repo("examples")).unwrap();
    assert_eq!(farm.hubs.len(), 1);
    assert!(farm.workers.len() >= 20, "{}", farm.workers.len());
}

/// The demo folder plus one bad file.
fn folder_with(bad: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(repo("examples/demo")).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
    }
    std::fs::write(dir.path().join("90-bad.yaml"), bad).unwrap();
    dir
}

const BAD: &str = r#"
apiVersion: hashsched.io/v1alpha1
kind: Frobnicator
metadata: { name: gizmo, namespace: demo }
spec: {}
---
apiVersion: hashsched.io/v1alpha1
kind: Worker
metadata: { name: no-rate, namespace: demo }
spec: { owner: house }
---
apiVersion: hashsched.io/v1alpha1
kind: RentalContract
metadata: { name: dangling, namespace: demo }
spec:
  customer: acme
  mode: MinerToMiner
  workers: [acme-01, s19-99]
  pools: [acme-primary, nowhere-pool]
---
apiVersion: hashsched.io/v1alpha1
kind: Worker
metadata: { name: orphan, namespace: demo }
spec: { owner: globex, expectedHashrate: 1 TH/s, hub: site-z }
"#;

#[test]
fn unknown_kind_missing_field_and_dangling_references_name_file_and_field() {
    let dir = folder_with(BAD);
    let err = load_dir(dir.path()).unwrap_err();
    let file = dir.path().join("90-bad.yaml").display().to_string();
    let text = err.to_string();
    for want in [
        format!("{file}: Frobnicator gizmo: unknown kind \"Frobnicator\""),
        format!("{file}: Worker no-rate: spec.expectedHashrate: Required value"),
        format!("{file}: RentalContract dangling: spec.workers[1]: Worker \"s19-99\" not found"),
        format!(
            "{file}: RentalContract dangling: spec.pools[1]: PoolEndpoint \"nowhere-pool\" not found"
        ),
        format!("{file}: Worker orphan: spec.owner: Customer \"globex\" not found"),
        format!("{file}: Worker orphan: spec.hub: StratumHub \"site-z\" not found"),
    ] {
        assert!(text.contains(&want), "missing {want:?} in:\n{text}");
    }
    assert_eq!(err.problems().len(), 6, "{text}");
}

#[test]
fn hashsched_local_refuses_to_start_on_bad_manifests() {
    let dir = folder_with(BAD);
    let out = Command::new(env!("CARGO_BIN_EXE_hashsched"))
        .args([
            "local",
            "--no-state",
            "--listen",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
        ])
        .arg("--manifests")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success(), "must fail: {out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "90-bad.yaml: RentalContract dangling: spec.workers[1]: Worker \"s19-99\" not found"
        ),
        "{stderr}"
    );
    assert!(!dir.path().join(".hashsched-state.json").exists());
}
