//! Metric and label names of the scheduler side (the operator, and local mode which runs the same
//! scheduler): the one place the operator, local mode, the recording rules and the dashboards take
//! them from. The hub's own names live in `hashsched_contract::metric_names` (re-exported as
//! `hashsched_hub::metrics`); together the two modules are the product's metric catalogue
//! ([`CATALOGUE`] lists this side's names for the rules check).
//!
//! Names below are the EXPOSED sample names (counters end in `_total`), i.e. what PromQL uses.
//! Per-contract series carry `{namespace, contract, customer}`; per-worker series `{namespace,
//! worker}`. A series disappears when its object does.

// ---- per rental contract (the SLIs behind the per-customer uptime dashboards) -----------------
/// Gauge: contracted hashrate, hashes per second. `{namespace, contract, customer}`
pub const CONTRACT_CONTRACTED_HASHRATE: &str = "hashsched_contract_contracted_hashes_per_second";
/// Gauge: delivered hashrate estimated from the shares of the contract's workers, hashes per
/// second. `{namespace, contract, customer}`
pub const CONTRACT_DELIVERED_HASHRATE: &str = "hashsched_contract_delivered_hashes_per_second";
/// Gauge 0/1: the newest closed SLA slot was up (1) or down (0); absent while no slot was
/// observed. `{namespace, contract, customer}`
pub const CONTRACT_UP: &str = "hashsched_contract_up";
/// Counter: closed SLA slots by verdict. `{namespace, contract, customer, verdict}`; `verdict` ∈
/// [`verdict`]. Uptime over any range is `up / (up + down)` of these.
pub const CONTRACT_SLOTS_TOTAL: &str = "hashsched_contract_slots_total";
/// Gauge: uptime ratio (up / observed slots) over the contract's ledger. `{namespace, contract,
/// customer}`
pub const CONTRACT_UPTIME_RATIO: &str = "hashsched_contract_uptime_ratio";
/// Gauge: shortfall owed so far, in hashes (hashrate × seconds below the contracted line).
/// `{namespace, contract, customer}`
pub const CONTRACT_SHORTFALL_HASHES: &str = "hashsched_contract_shortfall_hashes";
/// Gauge: credit owed so far, in the contract's SLA currency units. `{namespace, contract,
/// customer}`
pub const CONTRACT_CREDIT: &str = "hashsched_contract_credit";
/// Counter: spares lent to the contract (failovers). `{namespace, contract, customer}`
pub const CONTRACT_FAILOVERS_TOTAL: &str = "hashsched_contract_failovers_total";
/// Gauge 1 for the contract's current phase, 0 for the others. `{namespace, contract, customer,
/// phase}`
pub const CONTRACT_PHASE: &str = "hashsched_contract_phase";
/// Gauge 0/1: the contract wants a spare and none is free. `{namespace, contract, customer}`
pub const CONTRACT_NO_SPARE: &str = "hashsched_contract_no_spare_capacity";

// ---- per worker (the scheduler's verdicts; the hub exports the share facts) -------------------
/// Gauge 1 for the worker's current phase, 0 for the others. `{namespace, worker, owner, phase}`
pub const WORKER_PHASE: &str = "hashsched_worker_phase";

// ---- operator internals -----------------------------------------------------------------------
/// Counter: reconciles by kind and result. `{kind, result}`; `result` ∈ ok/error
pub const OPERATOR_RECONCILES_TOTAL: &str = "hashsched_operator_reconciles_total";
/// Counter: scrapes of hub pods' `/metrics`. `{hub, pod, result}`; `result` ∈ ok/error
pub const OPERATOR_HUB_SCRAPES_TOTAL: &str = "hashsched_operator_hub_scrapes_total";
/// Counter: routing documents pushed to hub pods. `{hub, pod, result}`
pub const OPERATOR_ROUTING_PUSHES_TOTAL: &str = "hashsched_operator_routing_pushes_total";
/// Histogram: one scrape-decide-write cycle, seconds.
pub const OPERATOR_CYCLE_DURATION: &str = "hashsched_operator_cycle_duration_seconds";
/// Counter: writes to the Kubernetes API. `{kind, verb}`; `verb` ∈ apply/patch_status/delete/event
pub const OPERATOR_API_WRITES_TOTAL: &str = "hashsched_operator_api_writes_total";
/// Gauge 0/1: this replica holds the leader lease.
pub const OPERATOR_LEADER: &str = "hashsched_operator_leader";

/// Label names: the ones both sides use are the hub's, so a join in PromQL cannot drift.
pub mod label {
    pub use hashsched_contract::metric_names::label::{CONTRACT, CUSTOMER, KIND, RESULT, WORKER};
    pub const NAMESPACE: &str = "namespace";
    pub const OWNER: &str = "owner";
    pub const PHASE: &str = "phase";
    pub const VERDICT: &str = "verdict";
    pub const HUB: &str = "hub";
    pub const POD: &str = "pod";
    pub const VERB: &str = "verb";
}

/// Values of the `verdict` label of [`CONTRACT_SLOTS_TOTAL`].
pub mod verdict {
    pub const UP: &str = "up";
    pub const DOWN: &str = "down";
    pub const UNOBSERVED: &str = "unobserved";
}

/// Every name above, for the check that rules and dashboards use only exported names.
pub const CATALOGUE: &[&str] = &[
    CONTRACT_CONTRACTED_HASHRATE,
    CONTRACT_DELIVERED_HASHRATE,
    CONTRACT_UP,
    CONTRACT_SLOTS_TOTAL,
    CONTRACT_UPTIME_RATIO,
    CONTRACT_SHORTFALL_HASHES,
    CONTRACT_CREDIT,
    CONTRACT_FAILOVERS_TOTAL,
    CONTRACT_PHASE,
    CONTRACT_NO_SPARE,
    WORKER_PHASE,
    OPERATOR_RECONCILES_TOTAL,
    OPERATOR_HUB_SCRAPES_TOTAL,
    OPERATOR_ROUTING_PUSHES_TOTAL,
    OPERATOR_CYCLE_DURATION,
    OPERATOR_API_WRITES_TOTAL,
    OPERATOR_LEADER,
];
