//! Shared by the local-mode tests: a small farm written to a temp folder, with simulated pools
//! that validate every share, and polling helpers with generous deadlines (no timing asserts).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hashsched_hub::sim::pool::{PoolConfig, SimPool};
use hashsched_operator::local::runner::{LocalHandle, LocalOptions, Runner};
use hashsched_operator::local::store::StatusDocument;

/// Generous deadline for anything the loop must do (a loaded 2-core machine is slow).
pub const DEADLINE: Duration = Duration::from_secs(60);

pub struct Farm {
    pub dir: tempfile::TempDir,
    pub house: SimPool,
    pub pool_a: SimPool,
    pub pool_b: SimPool,
}

pub async fn pool(name: &str) -> SimPool {
    SimPool::start(PoolConfig {
        name: name.into(),
        difficulty: 5e-5,
        record_shares: false,
        ..PoolConfig::default()
    })
    .await
    .expect("simulated pool starts")
}

/// The contract file: `w1` rented by acme, mining to `pools` (the contract's override).
pub fn contract_yaml(workers: &[&str], pools: Option<&[&str]>) -> String {
    let workers: Vec<String> = workers.iter().map(|w| format!("    - {w}\n")).collect();
    let pools = pools
        .map(|p| {
            let items: Vec<String> = p.iter().map(|x| format!("    - {x}\n")).collect();
            format!("  pools:\n{}", items.concat())
        })
        .unwrap_or_default();
    format!(
        "apiVersion: hashsched.io/v1alpha1
kind: RentalContract
metadata:
  name: c1
spec:
  customer: acme
  mode: MinerToMiner
  workers:
{}{}  healthPolicy:
    window: 1m
    falseAlarmBudget: 100
    minDwell: 10s
    disconnectGrace: 5s
  sla:
    slot: 10s
    creditRate: 1
",
        workers.concat(),
        pools
    )
}

impl Farm {
    /// Writes hub, pools, customer, workers (`w1` owned by acme, `spare-1` a house spare) and
    /// contract `c1` (w1, acme's pool `pool-a`).
    pub async fn new() -> Farm {
        let house = pool("house").await;
        let pool_a = pool("pool-a").await;
        let pool_b = pool("pool-b").await;
        let dir = tempfile::tempdir().expect("temp dir");
        let farm = Farm {
            dir,
            house,
            pool_a,
            pool_b,
        };
        farm.write(
            "10-hub.yaml",
            "apiVersion: hashsched.io/v1alpha1
kind: StratumHub
metadata:
  name: hub
spec:
  shareInterval: 250ms
  housePools: [house]
",
        );
        farm.write(
            "20-pools.yaml",
            &format!(
                "apiVersion: hashsched.io/v1alpha1
kind: PoolEndpoint
metadata: {{ name: house }}
spec: {{ url: \"{}\", user: farm }}
---
apiVersion: hashsched.io/v1alpha1
kind: PoolEndpoint
metadata: {{ name: pool-a }}
spec: {{ url: \"{}\", user: acme }}
---
apiVersion: hashsched.io/v1alpha1
kind: PoolEndpoint
metadata: {{ name: pool-b }}
spec: {{ url: \"{}\", user: acme }}
---
apiVersion: hashsched.io/v1alpha1
kind: Customer
metadata: {{ name: acme }}
spec: {{ pools: [pool-a] }}
",
                farm.house.url(),
                farm.pool_a.url(),
                farm.pool_b.url()
            ),
        );
        farm.write(
            "30-workers.yaml",
            "apiVersion: hashsched.io/v1alpha1
kind: Worker
metadata: { name: w1 }
spec: { owner: acme, expectedHashrate: 200 kH/s }
---
apiVersion: hashsched.io/v1alpha1
kind: Worker
metadata:
  name: spare-1
  labels: { hashsched.io/role: spare }
spec: { owner: house, expectedHashrate: 200 kH/s }
",
        );
        farm.write("40-contract.yaml", &contract_yaml(&["w1"], None));
        farm
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    pub fn write(&self, name: &str, text: &str) {
        write_file(&self.dir.path().join(name), text);
    }

    pub fn options(&self) -> LocalOptions {
        LocalOptions {
            listen: Some("127.0.0.1:0".into()),
            http: Some("127.0.0.1:0".into()),
            tick: Duration::from_millis(250),
            ..LocalOptions::new(self.path())
        }
    }

    pub async fn start(&self) -> LocalHandle {
        Runner::start(self.options())
            .await
            .expect("local mode starts")
    }

    /// Local mode on another folder (a copy made by [`Farm::fork`]), with this farm's pools.
    pub async fn start_at(&self, dir: &Path) -> LocalHandle {
        Runner::start(LocalOptions {
            manifests: dir.to_owned(),
            ..self.options()
        })
        .await
        .expect("local mode starts")
    }

    /// A copy of the folder as it is now: the manifests and the state file the running local
    /// mode last wrote (atomically, every tick), as a crash at this instant would leave them.
    pub fn fork(&self) -> tempfile::TempDir {
        let copy = tempfile::tempdir().expect("temp dir");
        for entry in std::fs::read_dir(self.dir.path()).expect("read the folder") {
            let entry = entry.expect("read the folder");
            let name = entry.file_name();
            let is_file = entry.file_type().is_ok_and(|t| t.is_file());
            // Skip half-written temp files (the state file's and `write_file`'s).
            let temp = name
                .to_str()
                .is_some_and(|n| n.ends_with(".tmp") || n.ends_with(".tmp~"));
            if is_file && !temp {
                std::fs::copy(entry.path(), copy.path().join(&name)).expect("copy");
            }
        }
        copy
    }
}

/// Replaces a file the way editors do (write a temp file, rename over).
pub fn write_file(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

/// Polls the status until `pred` holds; panics with the last status after the deadline.
pub async fn wait_status(
    local: &LocalHandle,
    what: &str,
    pred: impl Fn(&StatusDocument) -> bool,
) -> StatusDocument {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let doc = local.status();
        if pred(&doc) {
            return (*doc).clone();
        }
        if Instant::now() >= deadline {
            panic!(
                "timed out waiting for: {what}\nlast status:\n{}",
                serde_json::to_string_pretty(&*doc).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `cond` until it holds; panics after the deadline.
pub async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !cond() {
        if Instant::now() >= deadline {
            panic!("timed out waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
