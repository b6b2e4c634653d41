//! Hub configuration: static settings (addresses, vardiff, limits, extranonce layout) plus the
//! routing document (inline, or a file the hub reloads), read from YAML or built by the
//! quick-start flags (`--pool URL --user ACCOUNT`).
//!
//! Everything is checked up front ([`HubConfig::validate`]) so that a bad file stops the hub at
//! start with a message naming the field, never later on the data path.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::routing::{DurationSpec, PasswordRef, PoolSpec, PoolTlsSpec, RoutingDocument};

/// Why a configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot parse config: {0}")]
    Parse(String),
    #[error("invalid config: {0}")]
    Invalid(String),
}

/// The whole hub configuration (YAML, camelCase keys). Durations are written in the project's
/// one duration grammar ([`DurationSpec`]: `90s`, `5m`, `500ms`), as in the custom resources
/// and the routing document.
///
/// ```yaml
/// listen: 0.0.0.0:3333
/// metrics: 0.0.0.0:9100
/// admin: { listen: 0.0.0.0:9200, tokenFile: /etc/hashsched/admin-token }
/// routingFile: /etc/hashsched/routing/routing.yaml   # or `routing:` inline (a routing document)
/// secretsDir: /etc/hashsched/secrets
/// vardiff: { shareInterval: 2s, initialDifficulty: 1024 }
/// limits: { maxConnections: 20000, maxLineBytes: 16384, idleTimeout: 10m }
/// extranonce: { tailBytes: 2, minerExtranonce2Size: 4, maxMinersPerSession: 1024 }
/// upstream: { submitTimeout: 30s }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HubConfig {
    /// Stratum listen address for miners (`host:port`; port 0 picks a free port).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// `/metrics` listen address; absent disables the metrics endpoint.
    #[serde(default)]
    pub metrics: Option<String>,
    /// Admin API (routing pushes); served by `hashsched_hub::admin`.
    #[serde(default)]
    pub admin: Option<AdminConfig>,
    /// Inline routing document.
    #[serde(default)]
    pub routing: Option<RoutingDocument>,
    /// Routing document file, reloaded when it changes (exclusive with `routing`).
    #[serde(default)]
    pub routing_file: Option<PathBuf>,
    /// Directory of mounted Secrets (`<dir>/<secret>/<key>`) for pool passwords.
    #[serde(default)]
    pub secrets_dir: Option<PathBuf>,
    #[serde(default)]
    pub vardiff: VardiffConfig,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub extranonce: ExtranonceConfig,
    #[serde(default)]
    pub upstream: UpstreamConfig,
    #[serde(default)]
    pub stats: StatsConfig,
}

fn default_listen() -> String {
    "0.0.0.0:3333".into()
}

/// Admin API settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdminConfig {
    pub listen: String,
    /// File holding the bearer token (a mounted Secret).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

/// Limits and hygiene towards miners.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Limits {
    /// Miner connections at once; more are closed right after accept.
    pub max_connections: usize,
    /// Longest line accepted from a miner or a pool, bytes.
    pub max_line_bytes: usize,
    /// A miner that sends nothing for this long is disconnected.
    pub idle_timeout: DurationSpec,
    /// A miner must subscribe and authorize within this time.
    pub handshake_timeout: DurationSpec,
    /// Workers that may authorize on one connection.
    pub max_workers_per_connection: usize,
    /// Sustained messages per second from one miner (token bucket refill).
    pub max_messages_per_second: f64,
    /// Burst of messages from one miner (token bucket size).
    pub message_burst: f64,
    /// Consecutive malformed lines before the connection is closed.
    pub max_consecutive_errors: u32,
    /// Outgoing messages queued for one miner before it is considered stuck and closed.
    pub write_queue: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 20_000,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            idle_timeout: DurationSpec::from_mins(10),
            handshake_timeout: DurationSpec::from_secs(60),
            max_workers_per_connection: 16,
            max_messages_per_second: 200.0,
            message_burst: 2000.0,
            max_consecutive_errors: 20,
            write_queue: 256,
        }
    }
}

/// Extranonce layout (see `hashsched_hub::extranonce`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ExtranonceConfig {
    /// `k`: bytes of the hub-unique tail each miner gets as its extranonce1 (1..=4).
    pub tail_bytes: usize,
    /// `m`: preferred extranonce2 size for miners (shrunk to fit the pools' sizes).
    pub miner_extranonce2_size: usize,
    /// Smallest extranonce2 a miner is given before the hub prefers a reconnect instead.
    pub min_miner_extranonce2_size: usize,
    /// Cap of miners per upstream session (more sessions are opened when full).
    pub max_miners_per_session: usize,
    /// A released tail is not reused for this long (late shares of its previous owner).
    pub tail_quarantine: DurationSpec,
}

impl Default for ExtranonceConfig {
    fn default() -> Self {
        Self {
            tail_bytes: 2,
            miner_extranonce2_size: 4,
            min_miner_extranonce2_size: 2,
            max_miners_per_session: 1024,
            tail_quarantine: DurationSpec::from_mins(5),
        }
    }
}

/// Upstream (pool) session settings not in the routing document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct UpstreamConfig {
    /// User agent sent in `mining.subscribe` and answered to `client.get_version`.
    pub user_agent: String,
    /// A forwarded share without a pool verdict after this long counts as lost.
    pub submit_timeout: DurationSpec,
    /// After a miner leaves a session, its late shares for that session's jobs are still
    /// forwarded for this long.
    pub late_share_grace: DurationSpec,
    /// An idle session (no miners) is closed after this long unless it is the pool's last one.
    pub idle_session: DurationSpec,
    /// Keep one warm session to every pool that a route uses, even without miners.
    pub keep_warm: bool,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            user_agent: concat!("hashsched-hub/", env!("CARGO_PKG_VERSION")).into(),
            submit_timeout: DurationSpec::from_secs(30),
            late_share_grace: DurationSpec::from_secs(10),
            idle_session: DurationSpec::from_secs(60),
            keep_warm: true,
        }
    }
}

/// Per-worker statistics settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct StatsConfig {
    /// A disconnected worker's series stay this long (so "disconnected" is visible), then go.
    pub worker_retention: DurationSpec,
    /// Resolution of the hashrate windows: whole seconds, 1s to 60s.
    pub bucket: DurationSpec,
}

impl Default for StatsConfig {
    fn default() -> Self {
        Self {
            worker_retention: DurationSpec::from_mins(15),
            bucket: DurationSpec::from_secs(5),
        }
    }
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            metrics: None,
            admin: None,
            routing: None,
            routing_file: None,
            secrets_dir: None,
            vardiff: VardiffConfig::default(),
            limits: Limits::default(),
            extranonce: ExtranonceConfig::default(),
            upstream: UpstreamConfig::default(),
            stats: StatsConfig::default(),
        }
    }
}

/// Quick-start parameters (the CLI flags without a config file).
#[derive(Debug, Clone, PartialEq)]
pub struct QuickStart {
    pub listen: String,
    pub metrics: Option<String>,
    /// Pool URLs in failover order.
    pub pools: Vec<String>,
    /// Pool account; workers authorize upstream as `{user}.{worker}`.
    pub user: String,
    pub password: String,
    /// CA bundle (PEM) for the `stratum+ssl://` pools instead of the system trust store.
    pub tls_ca_file: Option<PathBuf>,
}

impl HubConfig {
    /// Parse YAML (or JSON) text.
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        let cfg: HubConfig =
            serde_yaml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Read and parse a file.
    pub fn from_file(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_yaml(&text)
    }

    /// A config with one default route over `pools` (failover order) for every worker.
    pub fn quick_start(q: QuickStart) -> Result<Self, ConfigError> {
        if q.pools.is_empty() {
            return Err(ConfigError::Invalid(
                "at least one --pool is required".into(),
            ));
        }
        let pools = q
            .pools
            .iter()
            .enumerate()
            .map(|(i, url)| PoolSpec {
                name: format!("pool-{}", i + 1),
                url: url.clone(),
                user: q.user.clone(),
                worker_name_template: crate::routing::DEFAULT_WORKER_NAME_TEMPLATE.into(),
                password: Some(PasswordRef::public(q.password.clone())),
                tls: q
                    .tls_ca_file
                    .as_ref()
                    .filter(|_| {
                        url.starts_with("stratum+ssl://") || url.starts_with("stratum+tls://")
                    })
                    .map(|f| PoolTlsSpec {
                        ca_file: Some(f.clone()),
                        ..PoolTlsSpec::default()
                    }),
            })
            .collect();
        let cfg = HubConfig {
            listen: q.listen,
            metrics: q.metrics,
            routing: Some(RoutingDocument::failover_list(1, pools)),
            ..HubConfig::default()
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks the static settings (the routing document is validated by [`crate::routing`]).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.listen.trim().is_empty() {
            return bad("listen: empty address".into());
        }
        if self.routing.is_some() && self.routing_file.is_some() {
            return bad("give either routing (inline) or routingFile, not both".into());
        }
        if self.routing.is_none() && self.routing_file.is_none() {
            return bad("no routing: give routing (inline), routingFile, or --pool".into());
        }
        self.vardiff
            .validate()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let l = &self.limits;
        if l.max_connections == 0 {
            return bad("limits.maxConnections must be at least 1".into());
        }
        if !(256..=1 << 20).contains(&l.max_line_bytes) {
            return bad(format!(
                "limits.maxLineBytes must be within 256..=1048576, got {}",
                l.max_line_bytes
            ));
        }
        if l.idle_timeout.is_zero() || l.handshake_timeout.is_zero() {
            return bad("limits.idleTimeout and handshakeTimeout must be > 0".into());
        }
        if l.max_workers_per_connection == 0 {
            return bad("limits.maxWorkersPerConnection must be at least 1".into());
        }
        let rate_ok = l.max_messages_per_second.is_finite() && l.max_messages_per_second > 0.0;
        let burst_ok = l.message_burst.is_finite() && l.message_burst >= 1.0;
        if !(rate_ok && burst_ok) {
            return bad("limits.maxMessagesPerSecond must be > 0 and messageBurst >= 1".into());
        }
        if l.write_queue < 8 {
            return bad("limits.writeQueue must be at least 8".into());
        }
        let e = &self.extranonce;
        if !(1..=4).contains(&e.tail_bytes) {
            return bad(format!(
                "extranonce.tailBytes must be 1..=4, got {}",
                e.tail_bytes
            ));
        }
        if !(1..=16).contains(&e.miner_extranonce2_size)
            || e.min_miner_extranonce2_size == 0
            || e.min_miner_extranonce2_size > e.miner_extranonce2_size
        {
            return bad(
                "extranonce: need 1 <= minMinerExtranonce2Size <= minerExtranonce2Size <= 16"
                    .into(),
            );
        }
        if e.max_miners_per_session == 0 {
            return bad("extranonce.maxMinersPerSession must be at least 1".into());
        }
        if self.upstream.submit_timeout.is_zero() {
            return bad("upstream.submitTimeout must be > 0".into());
        }
        let bucket = self.stats.bucket.as_millis();
        if !(1_000..=60_000).contains(&bucket) || !bucket.is_multiple_of(1_000) {
            return bad(format!(
                "stats.bucket must be whole seconds within 1s..=60s, got {}",
                self.stats.bucket
            ));
        }
        Ok(())
    }

    pub fn idle_timeout(&self) -> Duration {
        self.limits.idle_timeout.as_std()
    }
    pub fn handshake_timeout(&self) -> Duration {
        self.limits.handshake_timeout.as_std()
    }
}

/// Default bound on one line (real messages are < 4 KiB; a deep-branch notify is the longest).
/// The stratum codec's default too (re-exported as
/// `hashsched_hub::protocol::DEFAULT_MAX_LINE_BYTES`).
pub const DEFAULT_MAX_LINE_BYTES: usize = 16 * 1024;

/// Vardiff settings (part of the hub config; the algorithm is `hashsched_hub::vardiff`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct VardiffConfig {
    /// Desired time between shares of one miner.
    pub share_interval: DurationSpec,
    /// Difficulty a new miner starts at (before `mining.suggest_difficulty` or vardiff).
    pub initial_difficulty: f64,
    pub min_difficulty: f64,
    pub max_difficulty: f64,
    /// Retarget after this many shares in the window...
    pub retarget_shares: u32,
    /// ...or after this long, whichever comes first.
    pub retarget_after: DurationSpec,
    /// Relative deviation below which the difficulty is left alone.
    pub tolerance: f64,
    /// Faster steps down before a new miner's first share (`hashsched_hub::vardiff` module docs,
    /// "the first minute").
    pub fast_first_share: bool,
}

impl Default for VardiffConfig {
    fn default() -> Self {
        Self {
            share_interval: DurationSpec::from_secs(2),
            initial_difficulty: 1024.0,
            min_difficulty: 0.001,
            max_difficulty: 1e15,
            retarget_shares: 30,
            retarget_after: DurationSpec::from_secs(60),
            tolerance: 0.25,
            fast_first_share: true,
        }
    }
}

impl VardiffConfig {
    /// Checks the settings; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        let pos = |v: f64, name: &str| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(format!(
                    "vardiff.{name} must be a finite positive number, got {v}"
                ))
            }
        };
        if self.share_interval.is_zero() || self.retarget_after.is_zero() {
            return Err("vardiff.shareInterval and vardiff.retargetAfter must be > 0".into());
        }
        pos(self.initial_difficulty, "initialDifficulty")?;
        pos(self.min_difficulty, "minDifficulty")?;
        pos(self.max_difficulty, "maxDifficulty")?;
        if self.min_difficulty > self.max_difficulty {
            return Err("vardiff.minDifficulty is larger than vardiff.maxDifficulty".into());
        }
        if self.retarget_shares == 0 {
            return Err("vardiff.retargetShares must be at least 1".into());
        }
        if !(self.tolerance.is_finite() && (0.0..1.0).contains(&self.tolerance)) {
            return Err(format!(
                "vardiff.tolerance must be in [0, 1), got {}",
                self.tolerance
            ));
        }
        Ok(())
    }

    /// Clamp a difficulty into [min, max] and round it to a value miners render well
    /// (whole numbers at or above 1).
    pub fn clamp(&self, d: f64) -> f64 {
        let d = if d.is_finite() {
            d
        } else {
            self.initial_difficulty
        };
        let d = d.clamp(self.min_difficulty, self.max_difficulty);
        if d >= 1.0 { d.round().max(1.0) } else { d }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_start_builds_a_failover_list() {
        let cfg = HubConfig::quick_start(QuickStart {
            listen: "127.0.0.1:0".into(),
            metrics: Some("127.0.0.1:0".into()),
            pools: vec![
                "stratum+tcp://a.example:3333".into(),
                "stratum+tcp://b.example:3333".into(),
            ],
            user: "acct".into(),
            password: "x".into(),
            tls_ca_file: None,
        })
        .unwrap();
        let doc = cfg.routing.unwrap();
        assert_eq!(doc.pools.len(), 2);
        assert_eq!(
            doc.default_route.unwrap().pools,
            vec!["pool-1".to_string(), "pool-2".to_string()]
        );
    }

    #[test]
    fn yaml_with_inline_routing_and_defaults() {
        let y = r#"
listen: 127.0.0.1:0
metrics: 127.0.0.1:0
vardiff: { shareInterval: 5s }
routing:
  apiVersion: routing.hashsched.io/v1
  generation: 3
  pools:
    - { name: p, url: "stratum+tcp://127.0.0.1:1", user: u, password: { public: x } }
  defaultRoute: { pools: [p] }
  unknownWorkers: { policy: defaultRoute }
"#;
        let cfg = HubConfig::from_yaml(y).unwrap();
        assert_eq!(cfg.vardiff.share_interval, DurationSpec::from_secs(5));
        assert_eq!(cfg.limits, Limits::default());
        assert_eq!(cfg.routing.unwrap().generation, 3);
    }

    #[test]
    fn bad_configs_name_the_field() {
        let cases = [
            ("listen: x\n", "no routing"),
            ("listen: x\nrouting_file: y\n", "unknown field"),
            (
                "routingFile: /r\nextranonce: { tailBytes: 9 }\n",
                "extranonce.tailBytes",
            ),
            (
                "routingFile: /r\nlimits: { maxLineBytes: 10 }\n",
                "limits.maxLineBytes",
            ),
            (
                "routingFile: /r\nvardiff: { shareInterval: 0s }\n",
                "vardiff.shareInterval",
            ),
            (
                "routingFile: /r\nvardiff: { shareInterval: 2 }\n",
                "vardiff.shareInterval",
            ),
            (
                "routingFile: /r\nstats: { bucket: 1500ms }\n",
                "stats.bucket",
            ),
        ];
        for (y, want) in cases {
            let e = HubConfig::from_yaml(y).unwrap_err().to_string();
            assert!(e.contains(want), "{y:?}: {e}");
        }
    }
}
