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

pub mod control;
pub mod reload;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

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

// ---------------------------------------------------------------------------------------------
// The document as written by the operator.
// ---------------------------------------------------------------------------------------------

/// One routing document, exactly as rendered by the operator (see the module doc for an example).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoutingDocument {
    /// Must be [`ROUTING_API_VERSION`].
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

/// Pool failover settings (see [`crate::pool_health`] for how they are used).
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

// ---------------------------------------------------------------------------------------------
// Durations written as `90s`, `1m`, `500ms`, `1h` or a number of seconds.
// ---------------------------------------------------------------------------------------------

/// A duration in a document: `"250ms"`, `"30s"`, `"5m"`, `"1h"`, or a number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DurationSpec(pub Duration);

impl DurationSpec {
    pub const fn from_secs(s: u64) -> Self {
        Self(Duration::from_secs(s))
    }
    pub const fn from_millis(ms: u64) -> Self {
        Self(Duration::from_millis(ms))
    }
    pub fn get(self) -> Duration {
        self.0
    }

    /// Parses `<number><unit>` with unit `ms`, `s`, `m` or `h` (a bare number is seconds).
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let value: f64 = num
            .parse()
            .map_err(|_| format!("invalid duration {text:?} (expected e.g. 500ms, 30s, 5m, 1h)"))?;
        let scale = match unit.trim() {
            "ms" => 0.001,
            "" | "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            other => {
                return Err(format!(
                    "invalid duration unit {other:?} in {text:?} (use ms, s, m or h)"
                ));
            }
        };
        Self::from_secs_f64(value * scale).ok_or_else(|| format!("duration {text:?} out of range"))
    }

    fn from_secs_f64(secs: f64) -> Option<Self> {
        // Bounded to ~31 years: beyond that a duration is a typo, and try_from cannot overflow.
        // Whole milliseconds, the grammar's finest unit: what is parsed prints back the same
        // (`0.610610` was 610.61 ms, printed `610ms`; found by the `quantities` fuzz target).
        if secs.is_finite() && (0.0..1e9).contains(&secs) {
            Some(Self(Duration::from_millis((secs * 1000.0).round() as u64)))
        } else {
            None
        }
    }
}

impl fmt::Display for DurationSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms.is_multiple_of(3_600_000) && ms > 0 {
            write!(f, "{}h", ms / 3_600_000)
        } else if ms.is_multiple_of(60_000) && ms > 0 {
            write!(f, "{}m", ms / 60_000)
        } else if ms.is_multiple_of(1000) {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

impl Serialize for DurationSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DurationSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(f64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Secs(s) => DurationSpec::from_secs_f64(s).ok_or_else(|| {
                serde::de::Error::custom(format!("duration {s} seconds out of range"))
            }),
            Raw::Text(t) => DurationSpec::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Pool URLs and upstream worker names.
// ---------------------------------------------------------------------------------------------

/// Transport of a pool connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PoolScheme {
    /// `stratum+tcp://`
    Tcp,
    /// `stratum+ssl://` (TLS)
    Ssl,
}

/// A parsed `stratum+tcp://host:port` URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoolUrl {
    pub scheme: PoolScheme,
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    pub port: u16,
}

impl PoolUrl {
    /// Parses a pool URL; the error says what is wrong.
    pub fn parse(url: &str) -> Result<Self, String> {
        let (scheme, rest) = if let Some(r) = url.strip_prefix("stratum+tcp://") {
            (PoolScheme::Tcp, r)
        } else if let Some(r) = url.strip_prefix("stratum+ssl://") {
            (PoolScheme::Ssl, r)
        } else if let Some(r) = url.strip_prefix("stratum+tls://") {
            (PoolScheme::Ssl, r)
        } else {
            return Err("scheme must be stratum+tcp:// or stratum+ssl://".into());
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@']) {
            return Err("expected only host:port after the scheme (no path, query or user)".into());
        }
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| "unterminated IPv6 address".to_string())?;
            let port = after
                .strip_prefix(':')
                .ok_or_else(|| "missing :port".to_string())?;
            (h, port)
        } else {
            rest.rsplit_once(':')
                .ok_or_else(|| "missing :port".to_string())?
        };
        if host.is_empty() {
            return Err("missing host".into());
        }
        if !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))
        {
            return Err(format!("invalid host {host:?}"));
        }
        let port: u16 = port
            .parse()
            .map_err(|_| format!("invalid port {port:?} (expected 1-65535)"))?;
        if port == 0 {
            return Err("port 0 is not a valid pool port".into());
        }
        Ok(Self {
            scheme,
            host: host.to_string(),
            port,
        })
    }

    /// `host:port` suitable for `TcpStream::connect`.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for PoolUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            PoolScheme::Tcp => "stratum+tcp",
            PoolScheme::Ssl => "stratum+ssl",
        };
        write!(f, "{scheme}://{}", self.authority())
    }
}

/// A checked worker-name template: literal text with `{user}` and `{worker}` placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerNameTemplate {
    parts: Vec<TemplatePart>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TemplatePart {
    Lit(String),
    User,
    Worker,
}

impl WorkerNameTemplate {
    pub fn parse(template: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            let (lit, after) = rest.split_at(open);
            if lit.contains('}') {
                return Err(format!("unmatched '}}' in template {template:?}"));
            }
            if !lit.is_empty() {
                parts.push(TemplatePart::Lit(lit.to_string()));
            }
            let close = after
                .find('}')
                .ok_or_else(|| format!("unterminated placeholder in template {template:?}"))?;
            let name = after.get(1..close).unwrap_or("");
            parts.push(match name {
                "user" => TemplatePart::User,
                "worker" => TemplatePart::Worker,
                other => {
                    return Err(format!(
                        "unknown placeholder {{{other}}} in template {template:?} (use {{user}} and {{worker}})"
                    ));
                }
            });
            rest = after.get(close + 1..).unwrap_or("");
        }
        if rest.contains('}') {
            return Err(format!("unmatched '}}' in template {template:?}"));
        }
        if !rest.is_empty() {
            parts.push(TemplatePart::Lit(rest.to_string()));
        }
        if parts.is_empty() {
            return Err("empty worker name template".into());
        }
        if template
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(format!(
                "template {template:?} contains whitespace or control characters"
            ));
        }
        Ok(Self { parts })
    }

    /// The upstream worker name for `worker` under pool account `user`.
    pub fn render(&self, user: &str, worker: &str) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                TemplatePart::Lit(s) => out.push_str(s),
                TemplatePart::User => out.push_str(user),
                TemplatePart::Worker => out.push_str(worker),
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Errors.
// ---------------------------------------------------------------------------------------------

/// One problem in a routing document, naming the offending field.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum RoutingError {
    #[error("cannot parse routing document: {0}")]
    Parse(String),
    #[error("apiVersion: unsupported {found:?} (this hub reads {ROUTING_API_VERSION:?})")]
    ApiVersion { found: String },
    #[error("{path}: unknown pool {pool:?}")]
    UnknownPool { path: String, pool: String },
    #[error("{path}: duplicate pool {name:?} (first defined at {first})")]
    DuplicatePool {
        path: String,
        name: String,
        first: String,
    },
    #[error("{path}: duplicate worker {name:?} (first listed at {first})")]
    DuplicateWorker {
        path: String,
        name: String,
        first: String,
    },
    #[error("{path}: malformed URL {url:?}: {reason}")]
    MalformedUrl {
        path: String,
        url: String,
        reason: String,
    },
    #[error(
        "{path}: missing password reference (set password.secretRef, password.file, or password.public for a non-secret value such as \"x\")"
    )]
    MissingPasswordRef { path: String },
    #[error("{path}: missing secret: {detail}")]
    MissingSecret { path: String, detail: String },
    #[error("{path}: empty pool list{hint}")]
    EmptyPoolList { path: String, hint: &'static str },
    #[error("{path}: {reason}")]
    Invalid { path: String, reason: String },
}

/// A document rejected whole, with every problem found.
#[derive(Debug, Clone, PartialEq, Error)]
pub struct RoutingRejected {
    pub errors: Vec<RoutingError>,
}

impl fmt::Display for RoutingRejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.errors.as_slice() {
            [] => write!(f, "routing document rejected"),
            [one] => write!(f, "routing document rejected: {one}"),
            many => {
                write!(f, "routing document rejected ({} problems): ", many.len())?;
                for (i, e) in many.iter().enumerate() {
                    if i > 0 {
                        write!(f, "; ")?;
                    }
                    write!(f, "{e}")?;
                }
                Ok(())
            }
        }
    }
}

impl From<RoutingError> for RoutingRejected {
    fn from(e: RoutingError) -> Self {
        Self { errors: vec![e] }
    }
}

// ---------------------------------------------------------------------------------------------
// Secrets.
// ---------------------------------------------------------------------------------------------

/// Where pool passwords are read from: the directory the operator mounts Secrets under.
#[derive(Debug, Clone, Default)]
pub struct SecretStore {
    /// `<dir>/<secret name>/<key>`; `None` when the hub runs without mounted Secrets.
    pub dir: Option<PathBuf>,
}

impl SecretStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: Some(dir.into()),
        }
    }
    /// No Secret directory: only `public` passwords and absolute `file` references resolve.
    pub fn none() -> Self {
        Self { dir: None }
    }

    /// Resolves a password reference; the error explains what is missing.
    pub fn resolve(&self, r: &PasswordRef) -> Result<Password, String> {
        if let Some(v) = &r.public {
            return Ok(Password(v.clone()));
        }
        if let Some(s) = &r.secret_ref {
            let dir = self.dir.as_ref().ok_or_else(|| {
                format!(
                    "secret {}/{}: this hub has no secrets directory configured",
                    s.name, s.key
                )
            })?;
            let path = dir.join(&s.name).join(&s.key);
            return read_password_file(&path)
                .map_err(|e| format!("secret {}/{}: {e}", s.name, s.key));
        }
        if let Some(f) = &r.file {
            return read_password_file(f);
        }
        Err("no password source".into())
    }

    /// Resolves a pool's TLS settings (`None` for a plain-TCP pool); reads and checks the CA.
    pub fn resolve_tls(
        &self,
        url: &PoolUrl,
        spec: Option<&PoolTlsSpec>,
    ) -> Result<Option<crate::tls::PoolTls>, String> {
        if url.scheme != PoolScheme::Ssl {
            return Ok(None);
        }
        let spec = spec.cloned().unwrap_or_default();
        let source = match (&spec.ca_secret_ref, &spec.ca_file) {
            (Some(s), _) => {
                let dir = self.dir.as_ref().ok_or_else(|| {
                    format!(
                        "secret {}/{}: this hub has no secrets directory configured",
                        s.name, s.key
                    )
                })?;
                Some((
                    dir.join(&s.name).join(&s.key),
                    format!("secret {}/{}", s.name, s.key),
                ))
            }
            (None, Some(f)) => Some((f.clone(), f.display().to_string())),
            (None, None) => None,
        };
        let ca = match source {
            Some((path, what)) => {
                let meta = std::fs::metadata(&path).map_err(|e| format!("{what}: {e}"))?;
                if meta.len() > crate::tls::MAX_CA_BYTES as u64 {
                    return Err(format!(
                        "{what}: larger than {} bytes",
                        crate::tls::MAX_CA_BYTES
                    ));
                }
                let pem = std::fs::read(&path).map_err(|e| format!("{what}: {e}"))?;
                Some(crate::tls::parse_ca(&pem, &what).map_err(|e| e.to_string())?)
            }
            None => None,
        };
        Ok(Some(crate::tls::PoolTls {
            server_name: spec.server_name.unwrap_or_else(|| url.host.clone()),
            ca,
        }))
    }
}

fn read_password_file(path: &Path) -> Result<Password, String> {
    const MAX: u64 = 4096;
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.len() > MAX {
        return Err(format!("{}: larger than {MAX} bytes", path.display()));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let text = String::from_utf8(bytes).map_err(|_| format!("{}: not UTF-8", path.display()))?;
    Ok(Password(text.trim_end_matches(['\n', '\r']).to_string()))
}

/// A pool password; `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

// ---------------------------------------------------------------------------------------------
// Validation.
// ---------------------------------------------------------------------------------------------

impl RoutingDocument {
    /// Parses YAML or JSON (JSON is YAML); the error names the field and line.
    pub fn parse(bytes: &[u8]) -> Result<Self, RoutingError> {
        let text = std::str::from_utf8(bytes)
            .map_err(|e| RoutingError::Parse(format!("not UTF-8: {e}")))?;
        if text.trim().is_empty() {
            return Err(RoutingError::Parse("empty document".into()));
        }
        serde_yaml::from_str(text).map_err(|e| RoutingError::Parse(e.to_string()))
    }

    /// The quick-start document: every worker (known or not) on one failover list of pools.
    pub fn failover_list(generation: u64, pools: Vec<PoolSpec>) -> Self {
        let names = pools.iter().map(|p| p.name.clone()).collect();
        Self {
            api_version: ROUTING_API_VERSION.to_string(),
            generation,
            pools,
            workers: Vec::new(),
            default_route: Some(DefaultRoute { pools: names }),
            unknown_workers: UnknownWorkerPolicy::DefaultRoute,
            health: HealthWindows::default(),
            failover: FailoverPolicy::default(),
        }
    }

    /// Checks everything that does not need the file system; returns every problem found.
    pub fn validate(&self) -> Result<(), RoutingRejected> {
        let mut errs = Vec::new();
        if self.api_version != ROUTING_API_VERSION {
            errs.push(RoutingError::ApiVersion {
                found: self.api_version.clone(),
            });
        }

        let mut pool_index: HashMap<&str, usize> = HashMap::new();
        for (i, p) in self.pools.iter().enumerate() {
            let path = format!("pools[{i}]");
            if let Err(reason) = check_object_name(&p.name) {
                errs.push(invalid(format!("{path}.name"), reason));
            } else if let Some(first) = pool_index.get(p.name.as_str()) {
                errs.push(RoutingError::DuplicatePool {
                    path: format!("{path}.name"),
                    name: p.name.clone(),
                    first: format!("pools[{first}]"),
                });
            } else {
                pool_index.insert(&p.name, i);
            }
            if let Err(reason) = PoolUrl::parse(&p.url) {
                errs.push(RoutingError::MalformedUrl {
                    path: format!("{path}.url"),
                    url: p.url.clone(),
                    reason,
                });
            }
            if let Err(reason) = check_login(&p.user) {
                errs.push(invalid(format!("{path}.user"), reason));
            }
            if let Err(reason) = WorkerNameTemplate::parse(&p.worker_name_template) {
                errs.push(invalid(format!("{path}.workerNameTemplate"), reason));
            }
            check_password_ref(&path, p.password.as_ref(), &mut errs);
            if let Some(tls) = &p.tls {
                let ssl = PoolUrl::parse(&p.url).is_ok_and(|u| u.scheme == PoolScheme::Ssl);
                if !ssl {
                    errs.push(invalid(
                        format!("{path}.tls"),
                        "only for stratum+ssl:// pools".into(),
                    ));
                }
                if tls.ca_secret_ref.is_some() && tls.ca_file.is_some() {
                    errs.push(invalid(
                        format!("{path}.tls"),
                        "give caSecretRef or caFile, not both".into(),
                    ));
                }
                if let Some(r) = &tls.ca_secret_ref {
                    check_secret_key_ref(&format!("{path}.tls.caSecretRef"), r, &mut errs);
                }
                if let Some(f) = &tls.ca_file
                    && !f.is_absolute()
                {
                    errs.push(invalid(
                        format!("{path}.tls.caFile"),
                        format!("{} is not an absolute path", f.display()),
                    ));
                }
                if let Some(name) = &tls.server_name
                    && let Err(e) = crate::tls::check_server_name(name)
                {
                    errs.push(invalid(format!("{path}.tls.serverName"), e.to_string()));
                }
            }
        }
        if self.pools.is_empty() {
            errs.push(invalid("pools".into(), "no pools defined".into()));
        }

        let check_list = |path: String, list: &[String], errs: &mut Vec<RoutingError>| {
            if list.is_empty() {
                errs.push(RoutingError::EmptyPoolList { path, hint: "" });
                return;
            }
            if list.len() > MAX_POOLS_PER_ROUTE {
                errs.push(invalid(
                    path.clone(),
                    format!("{} pools (at most {MAX_POOLS_PER_ROUTE})", list.len()),
                ));
            }
            for (j, name) in list.iter().enumerate() {
                if !pool_index.contains_key(name.as_str()) {
                    errs.push(RoutingError::UnknownPool {
                        path: format!("{path}[{j}]"),
                        pool: name.clone(),
                    });
                } else if list.get(..j).is_some_and(|before| before.contains(name)) {
                    errs.push(invalid(
                        format!("{path}[{j}]"),
                        format!("pool {name:?} listed twice"),
                    ));
                }
            }
        };

        if let Some(d) = &self.default_route {
            check_list("defaultRoute.pools".into(), &d.pools, &mut errs);
        }

        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut logins: HashMap<&str, usize> = HashMap::new();
        for (i, w) in self.workers.iter().enumerate() {
            let path = format!("workers[{i}]");
            if let Err(reason) = check_login(&w.name) {
                errs.push(invalid(format!("{path}.name"), reason));
            } else if let Some(first) = names.get(w.name.as_str()) {
                errs.push(RoutingError::DuplicateWorker {
                    path: format!("{path}.name"),
                    name: w.name.clone(),
                    first: format!("workers[{first}]"),
                });
            } else {
                names.insert(&w.name, i);
            }
            if let Some(u) = &w.user
                && let Err(reason) = check_login(u)
            {
                errs.push(invalid(format!("{path}.user"), reason));
            }
            let login = w.login();
            if let Some(first) = logins.get(login) {
                // Only reported when the names differ; equal names were reported above.
                if self.workers.get(*first).is_some_and(|f| f.name != w.name) {
                    let field = if w.user.is_some() { "user" } else { "name" };
                    errs.push(RoutingError::DuplicateWorker {
                        path: format!("{path}.{field}"),
                        name: login.to_string(),
                        first: format!("workers[{first}]"),
                    });
                }
            } else {
                logins.insert(login, i);
            }
            match &w.pools {
                Some(list) if list.is_empty() => errs.push(RoutingError::EmptyPoolList {
                    path: format!("{path}.pools"),
                    hint: " (omit `pools` to use defaultRoute)",
                }),
                Some(list) => check_list(format!("{path}.pools"), list, &mut errs),
                None if self.default_route.is_none() => errs.push(invalid(
                    format!("{path}.pools"),
                    "no pools and no defaultRoute to fall back on".into(),
                )),
                None => {}
            }
            if let Some(a) = &w.assignment {
                for (field, value) in [("contract", &a.contract), ("customer", &a.customer)] {
                    if let Some(v) = value
                        && let Err(reason) = check_object_name(v)
                    {
                        errs.push(invalid(format!("{path}.assignment.{field}"), reason));
                    }
                }
            }
            if let Some(h) = w.expected_hashrate
                && !(h.is_finite() && h > 0.0 && h <= MAX_EXPECTED_HASHRATE)
            {
                errs.push(invalid(
                    format!("{path}.expectedHashrate"),
                    format!(
                        "{h} H/s is not a positive hashrate (at most {MAX_EXPECTED_HASHRATE:e})"
                    ),
                ));
            }
        }

        match &self.unknown_workers {
            UnknownWorkerPolicy::Reject => {}
            UnknownWorkerPolicy::DefaultRoute => {
                if self.default_route.is_none() {
                    errs.push(invalid(
                        "unknownWorkers.policy".into(),
                        "defaultRoute policy but no defaultRoute is defined".into(),
                    ));
                }
            }
            UnknownWorkerPolicy::Quarantine { pools } => {
                check_list("unknownWorkers.pools".into(), pools, &mut errs);
            }
        }

        let windows = &self.health.windows;
        if windows.is_empty() {
            errs.push(invalid("health.windows".into(), "no windows".into()));
        }
        if windows.len() > MAX_HEALTH_WINDOWS {
            errs.push(invalid(
                "health.windows".into(),
                format!("{} windows (at most {MAX_HEALTH_WINDOWS})", windows.len()),
            ));
        }
        for (i, w) in windows.iter().enumerate() {
            let path = format!("health.windows[{i}]");
            if w.0 < Duration::from_secs(1) || w.0 > MAX_HEALTH_WINDOW {
                errs.push(invalid(path, format!("{w} is outside 1s..24h")));
            } else if i > 0 && windows.get(i - 1).is_some_and(|prev| prev >= w) {
                errs.push(invalid(
                    path,
                    format!("{w} does not follow the previous window (windows must increase)"),
                ));
            }
        }

        let f = &self.failover;
        let positive = |name: &str, d: DurationSpec, errs: &mut Vec<RoutingError>| {
            if d.0.is_zero() {
                errs.push(invalid(
                    format!("failover.{name}"),
                    "must be greater than 0".into(),
                ));
            }
        };
        positive("starvation", f.starvation, &mut errs);
        positive("backoffMin", f.backoff_min, &mut errs);
        positive("backoffMax", f.backoff_max, &mut errs);
        positive("connectTimeout", f.connect_timeout, &mut errs);
        if f.backoff_min > f.backoff_max {
            errs.push(invalid(
                "failover.backoffMin".into(),
                format!("{} is above backoffMax {}", f.backoff_min, f.backoff_max),
            ));
        }
        if !(f.reject_ratio > 0.0 && f.reject_ratio <= 1.0) {
            errs.push(invalid(
                "failover.rejectRatio".into(),
                format!("{} is not in (0, 1]", f.reject_ratio),
            ));
        }
        if f.reject_window == 0 || f.reject_window > 10_000 {
            errs.push(invalid(
                "failover.rejectWindow".into(),
                format!("{} shares is not in 1..=10000", f.reject_window),
            ));
        }

        if errs.is_empty() {
            Ok(())
        } else {
            Err(RoutingRejected { errors: errs })
        }
    }
}

fn invalid(path: String, reason: String) -> RoutingError {
    RoutingError::Invalid { path, reason }
}

/// A Secret name and key become path components under the secrets directory: no `..`, no `/`.
fn check_secret_key_ref(path: &str, s: &SecretKeyRef, errs: &mut Vec<RoutingError>) {
    for (field, v) in [("name", &s.name), ("key", &s.key)] {
        let ok = !v.is_empty()
            && v.len() <= MAX_NAME_LEN
            && v != "."
            && v != ".."
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ok {
            errs.push(invalid(
                format!("{path}.{field}"),
                format!("{v:?} is not a valid Secret {field}"),
            ));
        }
    }
}

fn check_password_ref(path: &str, r: Option<&PasswordRef>, errs: &mut Vec<RoutingError>) {
    let Some(r) = r else {
        errs.push(RoutingError::MissingPasswordRef {
            path: format!("{path}.password"),
        });
        return;
    };
    let set = [r.secret_ref.is_some(), r.file.is_some(), r.public.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    if set == 0 {
        errs.push(RoutingError::MissingPasswordRef {
            path: format!("{path}.password"),
        });
    } else if set > 1 {
        errs.push(invalid(
            format!("{path}.password"),
            "set exactly one of secretRef, file, public".into(),
        ));
    }
    if let Some(s) = &r.secret_ref {
        check_secret_key_ref(&format!("{path}.password.secretRef"), s, errs);
    }
    if let Some(f) = &r.file
        && !f.is_absolute()
    {
        errs.push(invalid(
            format!("{path}.password.file"),
            format!("{} is not an absolute path", f.display()),
        ));
    }
    if let Some(p) = &r.public
        && p.chars().any(|c| c.is_control())
    {
        errs.push(invalid(
            format!("{path}.password.public"),
            "contains control characters".into(),
        ));
    }
}

/// A Kubernetes-style object name (pools, contracts, customers).
fn check_object_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty name".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!("name longer than {MAX_NAME_LEN} characters"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.'))
        || name.starts_with(['-', '.'])
        || name.ends_with(['-', '.'])
    {
        return Err(format!(
            "{name:?} is not a valid name (lowercase letters, digits, '-' and '.')"
        ));
    }
    Ok(())
}

/// A stratum login or worker name: printable, no whitespace, bounded. The operator checks pool
/// accounts with it before they reach a routing document (one refused login would have the hub
/// refuse the whole document).
pub fn check_login(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty name".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!("longer than {MAX_NAME_LEN} characters"));
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{name:?} contains whitespace or control characters"
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The validated form the engine consumes.
// ---------------------------------------------------------------------------------------------

/// A pool ready to connect to: URL parsed, template checked, password resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedPool {
    pub name: String,
    pub url: PoolUrl,
    pub user: String,
    pub worker_name_template: WorkerNameTemplate,
    pub password: Password,
    /// Certificate checks (`Some` exactly for `stratum+ssl://` pools).
    pub tls: Option<crate::tls::PoolTls>,
}

impl ResolvedPool {
    /// The name `worker` authorizes as on this pool.
    pub fn upstream_worker_name(&self, worker: &str) -> String {
        self.worker_name_template.render(&self.user, worker)
    }
}

/// Why a worker got the route it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteSource {
    /// Listed with its own pool list.
    Listed,
    /// Listed without pools: the default route.
    Default,
    /// Not listed; the default route by `unknownWorkers: defaultRoute`.
    UnknownDefault,
    /// Not listed; quarantine pools.
    Quarantine,
}

impl RouteSource {
    pub fn as_str(self) -> &'static str {
        match self {
            RouteSource::Listed => "listed",
            RouteSource::Default => "default",
            RouteSource::UnknownDefault => "unknown_default",
            RouteSource::Quarantine => "quarantine",
        }
    }
}

/// Where one worker mines, as the engine needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// The worker's name (the document's `name`, or the login of an unknown worker).
    pub worker: String,
    /// Pool names in failover order; every name is in [`ValidRouting::pool`].
    pub pools: Vec<String>,
    pub assignment: Option<Assignment>,
    pub expected_hashrate: Option<f64>,
    pub source: RouteSource,
}

/// The decision for a miner that authorizes as some login.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkerDecision {
    Route(Route),
    /// Unknown worker under `unknownWorkers: reject`.
    Reject,
}

/// A routing document that passed validation and whose secrets resolved. Only this reaches the
/// engine.
#[derive(Debug, Clone)]
pub struct ValidRouting {
    doc: RoutingDocument,
    pools: BTreeMap<String, ResolvedPool>,
    by_login: HashMap<String, usize>,
    doc_digest: [u8; 32],
    secrets_digest: [u8; 32],
}

impl ValidRouting {
    /// Validates `doc` and resolves its passwords; every problem is reported.
    pub fn new(doc: RoutingDocument, secrets: &SecretStore) -> Result<Self, RoutingRejected> {
        doc.validate()?;
        let mut errs = Vec::new();
        let mut pools = BTreeMap::new();
        let doc_digest: [u8; 32] =
            Sha256::digest(serde_json::to_vec(&doc).unwrap_or_default()).into();
        let mut hasher = Sha256::new();
        for (i, p) in doc.pools.iter().enumerate() {
            let path = format!("pools[{i}].password");
            let password = match p.password.as_ref().map(|r| secrets.resolve(r)) {
                Some(Ok(pw)) => pw,
                Some(Err(detail)) => {
                    errs.push(RoutingError::MissingSecret { path, detail });
                    continue;
                }
                None => {
                    errs.push(RoutingError::MissingPasswordRef { path });
                    continue;
                }
            };
            // Validation above guarantees these parse; map errors anyway rather than panic.
            let url = PoolUrl::parse(&p.url).map_err(|reason| RoutingError::MalformedUrl {
                path: format!("pools[{i}].url"),
                url: p.url.clone(),
                reason,
            });
            let tpl = WorkerNameTemplate::parse(&p.worker_name_template)
                .map_err(|reason| invalid(format!("pools[{i}].workerNameTemplate"), reason));
            let tls = match &url {
                Ok(u) => secrets.resolve_tls(u, p.tls.as_ref()).map_err(|detail| {
                    RoutingError::MissingSecret {
                        path: format!("pools[{i}].tls"),
                        detail,
                    }
                }),
                Err(_) => Ok(None),
            };
            match (url, tpl, tls) {
                (Ok(url), Ok(worker_name_template), Ok(tls)) => {
                    hasher.update(p.name.as_bytes());
                    hasher.update([0]);
                    hasher.update(Sha256::digest(password.expose().as_bytes()));
                    // A rotated CA counts as a changed secret, like a rotated password.
                    for c in tls
                        .iter()
                        .flat_map(|t| t.ca.iter())
                        .flat_map(|ca| ca.iter())
                    {
                        hasher.update(Sha256::digest(c.as_ref()));
                    }
                    pools.insert(
                        p.name.clone(),
                        ResolvedPool {
                            name: p.name.clone(),
                            url,
                            user: p.user.clone(),
                            worker_name_template,
                            password,
                            tls,
                        },
                    );
                }
                (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => errs.push(e),
            }
        }
        if !errs.is_empty() {
            return Err(RoutingRejected { errors: errs });
        }
        let by_login = doc
            .workers
            .iter()
            .enumerate()
            .map(|(i, w)| (w.login().to_string(), i))
            .collect();
        Ok(Self {
            doc,
            pools,
            by_login,
            doc_digest,
            secrets_digest: hasher.finalize().into(),
        })
    }

    /// Parses, validates and resolves in one step (what the admin API and file reloader do).
    pub fn from_bytes(bytes: &[u8], secrets: &SecretStore) -> Result<Self, RoutingRejected> {
        let doc = RoutingDocument::parse(bytes)?;
        Self::new(doc, secrets)
    }

    pub fn generation(&self) -> u64 {
        self.doc.generation
    }
    pub fn document(&self) -> &RoutingDocument {
        &self.doc
    }
    /// Content digest (document + resolved passwords): equal digests mean nothing changed.
    pub fn digest(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.doc_digest);
        h.update(self.secrets_digest);
        h.finalize().into()
    }
    /// Digest of the document alone (what the operator wrote, without resolved secrets).
    pub fn document_digest(&self) -> [u8; 32] {
        self.doc_digest
    }
    /// Digest of the resolved pool passwords (changes when a Secret is rotated).
    pub fn secrets_digest(&self) -> [u8; 32] {
        self.secrets_digest
    }
    pub fn pool(&self, name: &str) -> Option<&ResolvedPool> {
        self.pools.get(name)
    }
    /// All pools, by name.
    pub fn pools(&self) -> impl Iterator<Item = &ResolvedPool> {
        self.pools.values()
    }
    pub fn failover(&self) -> &FailoverPolicy {
        &self.doc.failover
    }
    pub fn health_windows(&self) -> Vec<Duration> {
        self.doc.health.windows.iter().map(|d| d.0).collect()
    }
    /// Listed workers (their routes, in document order).
    pub fn listed_workers(&self) -> impl Iterator<Item = (&str, Route)> + '_ {
        self.doc
            .workers
            .iter()
            .map(|w| (w.login(), self.listed_route(w)))
    }

    fn listed_route(&self, w: &WorkerRoute) -> Route {
        let (pools, source) = match &w.pools {
            Some(p) => (p.clone(), RouteSource::Listed),
            None => (self.default_pools(), RouteSource::Default),
        };
        Route {
            worker: w.name.clone(),
            pools,
            assignment: w.assignment.clone(),
            expected_hashrate: w.expected_hashrate,
            source,
        }
    }

    fn default_pools(&self) -> Vec<String> {
        self.doc
            .default_route
            .as_ref()
            .map(|d| d.pools.clone())
            .unwrap_or_default()
    }

    /// Where a miner authorizing as `login` mines.
    pub fn decide(&self, login: &str) -> WorkerDecision {
        if let Some(w) = self
            .by_login
            .get(login)
            .and_then(|i| self.doc.workers.get(*i))
        {
            return WorkerDecision::Route(self.listed_route(w));
        }
        let (pools, source) = match &self.doc.unknown_workers {
            UnknownWorkerPolicy::Reject => return WorkerDecision::Reject,
            UnknownWorkerPolicy::DefaultRoute => {
                (self.default_pools(), RouteSource::UnknownDefault)
            }
            UnknownWorkerPolicy::Quarantine { pools } => (pools.clone(), RouteSource::Quarantine),
        };
        WorkerDecision::Route(Route {
            worker: login.to_string(),
            pools,
            assignment: None,
            expected_hashrate: None,
            source,
        })
    }
}

#[cfg(test)]
mod tests;
