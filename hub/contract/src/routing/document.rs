//! The routing document as the operator writes it: plain serde types, no checks (those are in
//! `validate.rs`), and the worker [`Role`] shared by the scheduler, statuses and metric labels.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{DEFAULT_WORKER_NAME_TEMPLATE, DurationSpec};

/// One routing document, exactly as rendered by the operator (see the module doc for an example).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoutingDocument {
    /// Must be [`ROUTING_API_VERSION`](super::ROUTING_API_VERSION).
    pub api_version: String,
    /// Monotonic version stamped by the operator; the hub reports the one it applied and refuses to
    /// go back to a lower one.
    pub generation: u64,
    /// Every pool a worker may be routed to.
    pub pools: Vec<PoolSpec>,
    /// Workers the operator knows about, each at most once.
    #[serde(default)]
    pub workers: Vec<WorkerRoute>,
    /// Pool list for listed workers without their own `pools` (idle house workers, spares).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_route: Option<DefaultRoute>,
    /// What happens to a miner whose name is not in `workers`.
    #[serde(default)]
    pub unknown_workers: UnknownWorkerPolicy,
    /// Hashrate windows the hub reports per worker.
    #[serde(default)]
    pub health: HealthWindows,
    /// How the hub decides that a pool failed and when it goes back.
    #[serde(default)]
    pub failover: FailoverPolicy,
}

/// An upstream pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PoolSpec {
    /// Name used by worker pool lists (a Kubernetes object name, e.g. the PoolEndpoint's).
    pub name: String,
    /// `stratum+tcp://host:port` or `stratum+ssl://host:port`.
    pub url: String,
    /// Pool account the hub authorizes as.
    pub user: String,
    /// Upstream worker name: `{user}` is the pool account, `{worker}` the worker's name.
    #[serde(default = "default_worker_name_template")]
    pub worker_name_template: String,
    /// Where the pool password comes from; required (see the module doc).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<PasswordRef>,
    /// Certificate checks for a `stratum+ssl://` pool (absent: the system trust store and the
    /// URL's host name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<PoolTlsSpec>,
}

/// How the hub checks a TLS pool's certificate (see [`crate::tls`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PoolTlsSpec {
    /// CA certificates (PEM) to trust instead of the system store, from a Secret key mounted at
    /// `<secretsDir>/<name>/<key>` (a private CA, or the pool's self-signed certificate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
    /// The same from a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Name to verify the certificate against and send as SNI, when the URL's host is not that
    /// name (e.g. the URL holds an IP address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
}

fn default_worker_name_template() -> String {
    DEFAULT_WORKER_NAME_TEMPLATE.to_string()
}

/// Exactly one of the three fields must be set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PasswordRef {
    /// A Secret key, mounted by the operator at `<secretsDir>/<name>/<key>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeyRef>,
    /// A file holding the password (trailing newlines are ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// A password that is not a secret (`x`, `d=65536`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<String>,
}

impl PasswordRef {
    /// A non-secret password such as `x`.
    pub fn public(value: impl Into<String>) -> Self {
        Self {
            public: Some(value.into()),
            ..Self::default()
        }
    }
    /// A Secret key reference.
    pub fn secret(name: impl Into<String>, key: impl Into<String>) -> Self {
        Self {
            secret_ref: Some(SecretKeyRef {
                name: name.into(),
                key: key.into(),
            }),
            ..Self::default()
        }
    }
    /// A password file.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self {
            file: Some(path.into()),
            ..Self::default()
        }
    }
}

/// A key of a Kubernetes Secret in the hub's namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretKeyRef {
    pub name: String,
    pub key: String,
}

/// One worker (a physical miner) and where it mines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkerRoute {
    /// The Worker's name: used in metrics and in the upstream worker name.
    pub name: String,
    /// The stratum user the miner authorizes as; defaults to `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Pools in failover order; absent means the default route. Present but empty is an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pools: Option<Vec<String>>,
    /// Whom this worker serves right now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignment: Option<Assignment>,
    /// Hashrate the worker should deliver, in H/s (drives health verdicts and vardiff).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_hashrate: Option<f64>,
}

impl WorkerRoute {
    /// The stratum user this worker authorizes as.
    pub fn login(&self) -> &str {
        self.user.as_deref().unwrap_or(&self.name)
    }
}

/// Assignment labels: exported on the worker's metrics and used for accounting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Assignment {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
    pub role: Role,
}

/// The part a worker plays: the one role type of the product. The scheduler places workers in
/// these roles, Worker and RentalContract statuses report them, routing documents carry them to
/// the hub, and the hub labels a worker's series with [`Role::as_str`].
///
/// Written `Primary`, `Substitute`, `Benched`, `Spare` (the Kubernetes enum style of the custom
/// resources); routing documents may also spell them in lower case, as they did before.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum Role {
    /// A rented worker mining for its own contract.
    #[serde(alias = "primary")]
    Primary,
    /// A spare lent to a contract in place of a failed primary (or to cover a shortfall).
    #[serde(alias = "substitute")]
    Substitute,
    /// A failed original swapped out of its contract: it mines for the house until it has
    /// recovered and is given back. Statuses show it as `Spare` of its contract.
    #[serde(alias = "benched")]
    Benched,
    /// Serves no contract: an idle house worker that may be lent.
    #[serde(alias = "spare")]
    #[default]
    Spare,
}

impl Role {
    /// Every role, in order.
    pub const ALL: [Role; 4] = [Role::Primary, Role::Substitute, Role::Benched, Role::Spare];

    /// Metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Substitute => "substitute",
            Role::Benched => "benched",
            Role::Spare => "spare",
        }
    }

    /// Whether the worker's hashrate goes to its contract's pools.
    pub fn serves(self) -> bool {
        matches!(self, Role::Primary | Role::Substitute)
    }

    /// The role an object's status shows: a benched original is a `Spare` (of its contract).
    pub fn in_status(self) -> Role {
        match self {
            Role::Benched => Role::Spare,
            r => r,
        }
    }

    /// The name written in objects and documents (`Primary`, …).
    pub fn name(self) -> &'static str {
        match self {
            Role::Primary => "Primary",
            Role::Substitute => "Substitute",
            Role::Benched => "Benched",
            Role::Spare => "Spare",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    /// The written name (`Primary`) or the label value (`primary`).
    fn from_str(s: &str) -> Result<Self, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.name() == s || r.as_str() == s)
            .ok_or_else(|| format!("unknown role {s:?} (Primary, Substitute, Benched or Spare)"))
    }
}

impl std::fmt::Display for Role {
    /// The written name (`Primary`), as in statuses and `kubectl get` columns.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The schema of a role in the custom resources: a plain string enum (a structural schema has
/// no per-value descriptions).
impl schemars::JsonSchema for Role {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Role".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let names: Vec<&str> = Role::ALL.iter().map(|r| r.name()).collect();
        schemars::json_schema!({ "type": "string", "enum": names })
    }
}

/// Route for listed workers without their own pool list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DefaultRoute {
    pub pools: Vec<String>,
}

/// What the hub does with a miner whose name is not listed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "camelCase", deny_unknown_fields)]
pub enum UnknownWorkerPolicy {
    /// Refuse its authorization (the safe default: never give a customer unknown hashrate).
    #[default]
    Reject,
    /// Send it along the default route.
    DefaultRoute,
    /// Send it to dedicated pools (e.g. a house pool) and flag it.
    Quarantine { pools: Vec<String> },
}

/// Hashrate windows reported per worker (e.g. 1m, 5m, 15m), strictly increasing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthWindows {
    pub windows: Vec<DurationSpec>,
}

impl Default for HealthWindows {
    fn default() -> Self {
        Self {
            windows: vec![
                DurationSpec::from_secs(60),
                DurationSpec::from_secs(300),
                DurationSpec::from_secs(900),
            ],
        }
    }
}

/// Pool failover settings (see `hashsched_hub::pool_health` for how they are used).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct FailoverPolicy {
    /// A connected pool that sends no job for this long is failed.
    pub starvation: DurationSpec,
    /// A pool that rejects at least this fraction of the last `rejectWindow` shares is failed.
    pub reject_ratio: f64,
    /// Number of most recent share verdicts the reject ratio is computed over (and the minimum
    /// before it is judged).
    pub reject_window: u32,
    /// A failed pool must be healthy this long before workers go back to it (hysteresis).
    pub return_after: DurationSpec,
    /// First reconnect delay after a failure; doubles per consecutive failure, with jitter.
    pub backoff_min: DurationSpec,
    /// Cap of the reconnect delay.
    pub backoff_max: DurationSpec,
    /// Connect + subscribe + authorize must finish within this time.
    pub connect_timeout: DurationSpec,
}

impl Default for FailoverPolicy {
    fn default() -> Self {
        Self {
            starvation: DurationSpec::from_secs(90),
            reject_ratio: 0.9,
            reject_window: 20,
            return_after: DurationSpec::from_secs(30),
            backoff_min: DurationSpec::from_millis(250),
            backoff_max: DurationSpec::from_secs(30),
            connect_timeout: DurationSpec::from_secs(5),
        }
    }
}
