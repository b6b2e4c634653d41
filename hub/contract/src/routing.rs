//! The routing document: the contract between the operator and the hub.
//!
//! The operator renders one [`RoutingDocument`] per hub (a ConfigMap file, or a push to the admin
//! API). It says which pools exist, which ordered pool list each worker mines on (with the
//! contract / customer / role it serves and its expected hashrate), where unassigned and unknown
//! workers go, the hashrate windows the hub reports, and how the hub fails pools over.
//!
//! A document only reaches the engine as a [`ValidRouting`]: parsed, checked as a whole (every
//! problem is reported with the path of the offending field, e.g.
//! `workers[3].pools[1]: unknown pool "acme-backup"`), and with pool passwords resolved from
//! Secrets. An invalid document is rejected whole; whoever holds the last good one keeps it.
//!
//! Pool passwords never appear in the document. A pool names where its password lives:
//! - `password.secretRef: {name, key}`: a Kubernetes Secret key. The operator mounts each referenced
//!   Secret into the hub pod as a directory (`<secretsDir>/<name>/<key>`, the kubelet's layout for
//!   a Secret volume), and the hub reads that file ([`SecretStore`]).
//! - `password.file: /path`: any file (e.g. a Secret mounted elsewhere).
//! - `password.public: "x"`: a value that is not a secret (most pools ignore the password or take
//!   hints such as `d=65536`). It must be spelled out so that a forgotten reference is an error
//!   ("missing password reference") rather than a silent empty password.
//!
//! Example (YAML; JSON with the same field names is accepted too):
//! ```yaml
//! apiVersion: routing.hashsched.io/v1
//! generation: 42
//! pools:
//!   - name: acme-main
//!     url: stratum+tcp://pool.acme.example:3333
//!     user: acme
//!     workerNameTemplate: "{user}.{worker}"
//!     password: { secretRef: { name: acme-pool, key: password } }
//!   - name: house
//!     url: stratum+tcp://house.example:3333
//!     user: farm
//!     password: { public: x }
//! workers:
//!   - name: rig-001
//!     pools: [acme-main, house]
//!     assignment: { contract: acme-2026, customer: acme, role: primary }
//!     expectedHashrate: 1.1e14
//!   - name: rig-002            # no `pools`: the default route
//!     assignment: { role: spare }
//! defaultRoute: { pools: [house] }
//! unknownWorkers: { policy: reject }
//! health: { windows: [1m, 5m, 15m] }
//! failover: { starvation: 90s, rejectRatio: 0.9, returnAfter: 30s }
//! ```

mod compiled;
mod document;
mod error;
mod pool_url;
mod secrets;
mod validate;

use std::time::Duration;

/// Durations in a routing document: the one duration grammar of the project (`90s`, `5m`,
/// `1h30m`, `500ms`), the same as in the custom resources and on the command line.
pub use crate::quantity::Duration as DurationSpec;
pub use compiled::{ResolvedPool, Route, RouteSource, ValidRouting, WorkerDecision};
pub use document::{
    Assignment, DefaultRoute, FailoverPolicy, HealthWindows, PasswordRef, PoolSpec, PoolTlsSpec,
    Role, RoutingDocument, SecretKeyRef, UnknownWorkerPolicy, WorkerRoute,
};
pub use error::{RoutingError, RoutingRejected};
pub use pool_url::{PoolScheme, PoolUrl, WorkerNameTemplate, check_login};
pub use secrets::{Password, SecretStore};

/// The `apiVersion` this hub understands.
pub const ROUTING_API_VERSION: &str = "routing.hashsched.io/v1";
/// Default upstream worker name: the pool account, a dot, the worker's name.
pub const DEFAULT_WORKER_NAME_TEMPLATE: &str = "{user}.{worker}";
/// Upper bound on hashrate windows (each window is a metric series per worker).
pub const MAX_HEALTH_WINDOWS: usize = 8;
/// Longest hashrate window the hub keeps share history for.
pub const MAX_HEALTH_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// Longest name accepted for pools, workers, contracts and customers (a Kubernetes object name).
pub const MAX_NAME_LEN: usize = 253;
/// Longest accepted pool list per worker.
pub const MAX_POOLS_PER_ROUTE: usize = 16;
/// Largest expected hashrate accepted (1 ZH/s: far beyond any single machine or farm).
pub const MAX_EXPECTED_HASHRATE: f64 = 1e21;

#[cfg(test)]
mod tests;
