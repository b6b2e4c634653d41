//! Metric and label names of the hub's `/metrics` page: the one place the hub, the operator,
//! recording rules and dashboards take them from (the encoder is `hashsched_hub::metrics`, which
//! re-exports everything here).
//!
//! Names below are the EXPOSED sample names (counters end in `_total`), i.e. what PromQL uses.

// ---- per worker -------------------------------------------------------------------------------
/// Gauge 0/1: the worker has an authorized miner connection. `{worker}`
pub const WORKER_CONNECTED: &str = "hashsched_worker_connected";
/// Counter: final share count per bucket. `{worker, result}`; `result` ∈ [`result`].
pub const WORKER_SHARES_TOTAL: &str = "hashsched_worker_shares_total";
/// Counter: sum of miner-facing difficulty per bucket. `{worker, result}`
pub const WORKER_SHARE_DIFFICULTY_TOTAL: &str = "hashsched_worker_share_difficulty_total";
/// Gauge: forwarded shares waiting for the pool's verdict. `{worker}`
pub const WORKER_SHARES_PENDING: &str = "hashsched_worker_shares_pending";
/// Gauge: hashes per second from valid work (every share that proves work, stale by a job change included) over a window. `{worker, window}`
pub const WORKER_HASHRATE: &str = "hashsched_worker_hashrate_hashes_per_second";
/// Gauge: unix time of the last share of valid work. `{worker}` (absent before the first share)
pub const WORKER_LAST_SHARE: &str = "hashsched_worker_last_share_timestamp_seconds";
/// Gauge: miner-facing difficulty. `{worker}`
pub const WORKER_DIFFICULTY: &str = "hashsched_worker_difficulty";
/// Info-style gauge (value 1): the pool the worker mines for and its assignment.
/// `{worker, pool, contract, customer, role}` (empty string when unset)
pub const WORKER_INFO: &str = "hashsched_worker_info";

// ---- per pool ---------------------------------------------------------------------------------
/// Gauge 0/1: at least one authorized upstream session. `{pool}`
pub const POOL_UP: &str = "hashsched_pool_up";
/// Gauge: smoothed submit round-trip time in seconds. `{pool}`
pub const POOL_LATENCY: &str = "hashsched_pool_latency_seconds";
/// Gauge: upstream sessions. `{pool}`
pub const POOL_SESSIONS: &str = "hashsched_pool_sessions";
/// Gauge: workers whose shares go to this pool. `{pool}`
pub const POOL_WORKERS: &str = "hashsched_pool_workers";
/// Gauge: pool difficulty of the newest session. `{pool}`
pub const POOL_DIFFICULTY: &str = "hashsched_pool_difficulty";
/// Counter: forwarded shares by pool verdict. `{pool, result}`; `result` ∈ accepted/rejected/lost
pub const POOL_SHARES_TOTAL: &str = "hashsched_pool_shares_total";
/// Counter: miners moved onto this pool, by why. `{pool, reason}`; `reason` is
/// `hashsched_hub::pool_health::SwitchReason::as_str` (`routing`, `failover_<why>`, `return`).
pub const POOL_SWITCHES_TOTAL: &str = "hashsched_pool_switches_total";
/// Counter: failed connection attempts and dropped sessions. `{pool}`
pub const POOL_DISCONNECTS_TOTAL: &str = "hashsched_pool_disconnects_total";

// ---- hub --------------------------------------------------------------------------------------
/// Gauge: open miner connections.
pub const HUB_CONNECTIONS: &str = "hashsched_hub_connections";
/// Counter: accepted miner connections.
pub const HUB_CONNECTIONS_TOTAL: &str = "hashsched_hub_connections_accepted_total";
/// Counter: miner connections refused or closed by the hub. `{reason}`
pub const HUB_CONNECTIONS_CLOSED_TOTAL: &str = "hashsched_hub_connections_closed_total";
/// Histogram: time from reading a share to writing it upstream, seconds.
pub const HUB_SHARE_FORWARD_LATENCY: &str = "hashsched_hub_share_forward_latency_seconds";
/// Gauge: generation of the routing document in effect.
pub const HUB_ROUTING_GENERATION: &str = "hashsched_hub_routing_generation";
/// Counter: malformed or unexpected input. `{side, kind}`; `side` ∈ miner/pool
pub const HUB_PROTOCOL_ERRORS_TOTAL: &str = "hashsched_hub_protocol_errors_total";
/// Counter: submits that could not be attributed to an authorized worker. `{reason}`
pub const HUB_UNATTRIBUTED_SUBMITS_TOTAL: &str = "hashsched_hub_unattributed_submits_total";
/// Gauge: forwarded shares waiting for a pool verdict, all workers.
pub const HUB_SHARES_PENDING: &str = "hashsched_hub_shares_pending";
/// Counter: `client.reconnect` sent to miners by the hub. `{reason}`; `reason` ∈ [`reconnect`].
pub const HUB_MINER_RECONNECTS_TOTAL: &str = "hashsched_hub_miner_reconnects_total";
/// Histogram: per moved miner, seconds from the decision to move it to another pool (routing
/// applied, failover or return decided) to writing the new pool's first job to the miner.
pub const HUB_SWITCH_DURATION: &str = "hashsched_hub_switch_duration_seconds";

/// Counter: routing documents submitted, by where from and what became of them. `{source,
/// result}`; `source` ∈ file/api, `result` ∈ applied/unchanged/invalid/stale/conflict (counted
/// by `hashsched_hub::routing::control`).
pub const HUB_ROUTING_UPDATES_TOTAL: &str = "hashsched_hub_routing_updates_total";

/// Prefix of every per-worker series of the hub (the operator reads the hub's page by it).
pub const WORKER_PREFIX: &str = "hashsched_worker_";
/// Prefix of every per-pool series of the hub.
pub const POOL_PREFIX: &str = "hashsched_pool_";

/// Every exposed name of the hub, for the check that rules and dashboards read only exported
/// names. Histograms also expose `_bucket`, `_sum` and `_count` series of [`HISTOGRAMS`].
pub const CATALOGUE: &[&str] = &[
    WORKER_CONNECTED,
    WORKER_SHARES_TOTAL,
    WORKER_SHARE_DIFFICULTY_TOTAL,
    WORKER_SHARES_PENDING,
    WORKER_HASHRATE,
    WORKER_LAST_SHARE,
    WORKER_DIFFICULTY,
    WORKER_INFO,
    POOL_UP,
    POOL_LATENCY,
    POOL_SESSIONS,
    POOL_WORKERS,
    POOL_DIFFICULTY,
    POOL_SHARES_TOTAL,
    POOL_SWITCHES_TOTAL,
    POOL_DISCONNECTS_TOTAL,
    HUB_CONNECTIONS,
    HUB_CONNECTIONS_TOTAL,
    HUB_CONNECTIONS_CLOSED_TOTAL,
    HUB_SHARE_FORWARD_LATENCY,
    HUB_ROUTING_GENERATION,
    HUB_PROTOCOL_ERRORS_TOTAL,
    HUB_UNATTRIBUTED_SUBMITS_TOTAL,
    HUB_SHARES_PENDING,
    HUB_MINER_RECONNECTS_TOTAL,
    HUB_SWITCH_DURATION,
    HUB_ROUTING_UPDATES_TOTAL,
];

/// The histograms among [`CATALOGUE`].
pub const HISTOGRAMS: &[&str] = &[HUB_SHARE_FORWARD_LATENCY, HUB_SWITCH_DURATION];

/// Label names.
pub mod label {
    pub const WORKER: &str = "worker";
    pub const RESULT: &str = "result";
    pub const WINDOW: &str = "window";
    pub const POOL: &str = "pool";
    pub const CONTRACT: &str = "contract";
    pub const CUSTOMER: &str = "customer";
    pub const ROLE: &str = "role";
    pub const SIDE: &str = "side";
    pub const KIND: &str = "kind";
    pub const REASON: &str = "reason";
}

/// Values of the `result` label (one per [`ShareResult`]).
pub mod result {
    pub const ACCEPTED: &str = "accepted";
    pub const BELOW_TARGET: &str = "below_target";
    pub const REJECTED: &str = "rejected";
    pub const LOST: &str = "lost";
    pub const STALE: &str = "stale";
    pub const SWITCH_STALE: &str = "switch_stale";
    pub const JOB_CHANGE_STALE: &str = "job_change_stale";
    pub const DUPLICATE: &str = "duplicate";
    pub const INVALID: &str = "invalid";
}

/// Values of the `reason` label of [`HUB_MINER_RECONNECTS_TOTAL`].
pub mod reconnect {
    /// The hub is shutting down (SIGTERM, rollout).
    pub const SHUTDOWN: &str = "shutdown";
    /// The miner's extranonce2 does not fit the new pool and it cannot take `set_extranonce`.
    pub const EXTRANONCE2_TOO_SMALL: &str = "extranonce2_too_small";
    pub const ALL: [&str; 2] = [SHUTDOWN, EXTRANONCE2_TOO_SMALL];
}

/// Values of the `side` label.
pub mod side {
    pub const MINER: &str = "miner";
    pub const POOL: &str = "pool";
}

/// Values of the `kind` label of [`HUB_PROTOCOL_ERRORS_TOTAL`].
pub mod protocol_error {
    pub const LINE_TOO_LONG: &str = "line_too_long";
    pub const FLOOD: &str = "flood";
    pub const UNKNOWN_METHOD: &str = "unknown_method";
    pub const PARAMS: &str = "params";
    pub const NOT_UTF8: &str = "not_utf8";
    pub const JSON: &str = "json";
    pub const UNKNOWN_ID: &str = "unknown_id";
    pub const SUBSCRIBE_RESULT: &str = "subscribe_result";
    /// A pool job whose coinbase would be too large for miners once the hub folds its
    /// extranonce in.
    pub const NOTIFY_TOO_BIG: &str = "notify_too_big";
    /// A pool's `client.reconnect` held back because it came again within the pace.
    pub const RECONNECT_PACED: &str = "reconnect_paced";
    /// What miners can do wrong.
    pub const MINER: [&str; 6] = [LINE_TOO_LONG, FLOOD, UNKNOWN_METHOD, PARAMS, NOT_UTF8, JSON];
    /// What pools can do wrong.
    pub const POOL: [&str; 9] = [
        LINE_TOO_LONG,
        NOT_UTF8,
        JSON,
        UNKNOWN_ID,
        SUBSCRIBE_RESULT,
        UNKNOWN_METHOD,
        PARAMS,
        NOTIFY_TOO_BIG,
        RECONNECT_PACED,
    ];
}

/// Values of the `reason` label of [`HUB_UNATTRIBUTED_SUBMITS_TOTAL`].
pub mod unattributed {
    pub const MALFORMED: &str = "malformed";
    pub const UNKNOWN_WORKER_AUTHORIZE: &str = "unknown_worker_authorize";
    pub const NOT_SUBSCRIBED: &str = "not_subscribed";
    pub const UNAUTHORIZED: &str = "unauthorized";
    pub const ALL: [&str; 4] = [
        MALFORMED,
        UNKNOWN_WORKER_AUTHORIZE,
        NOT_SUBSCRIBED,
        UNAUTHORIZED,
    ];
}

/// Reasons of [`HUB_CONNECTIONS_CLOSED_TOTAL`] present (at 0) from startup: the hub's limit, and
/// the ends every fleet sees. Other reasons appear when they first happen.
pub const COMMON_CLOSE_REASONS: [&str; 5] = [
    "max_connections",
    "miner closed the connection",
    "idle timeout",
    "message flood",
    "hub shutting down",
];

/// The `window` label value for a window length: `60` → `1m`, `300` → `5m`, `3600` → `1h`.
pub fn window_label(seconds: u64) -> String {
    if seconds > 0 && seconds.is_multiple_of(3600) {
        format!("{}h", seconds / 3600)
    } else if seconds > 0 && seconds.is_multiple_of(60) {
        format!("{}m", seconds / 60)
    } else {
        format!("{seconds}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_labels() {
        assert_eq!(window_label(60), "1m");
        assert_eq!(window_label(900), "15m");
        assert_eq!(window_label(3600), "1h");
        assert_eq!(window_label(90), "90s");
    }
}
