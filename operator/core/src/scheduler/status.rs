//! Status rendering: from one decision cycle's outcome (and what the hubs report) to the status
//! subresource of every hashsched kind — Worker, RentalContract, Customer, PoolEndpoint and
//! StratumHub — plus the test "did this status change in a way worth writing".
//!
//! Pure functions, shared by the Kubernetes operator (which patches `/status` with the result),
//! local mode (which keeps the result in its state file) and the demo, so every front end shows
//! the same words. Conditions keep `lastTransitionTime` unless their status flips
//! ([`set_condition`]) and carry the `metadata.generation` the status describes.

use std::collections::BTreeMap;

use hashsched_contract::facts::{PoolFacts, WorkerFacts};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::crd::common::{AssignmentRecord, push_history};
use crate::crd::conditions::{self, new_condition, set_condition};
use crate::crd::{
    AssignedWorker, ContractPhase, CustomerStatus, PoolEndpointStatus, RentalContractStatus,
    StratumHubStatus, WorkerHashrate, WorkerStatus,
};
use crate::quantity::{Hashrate, Percentage};
use crate::scheduler::allocation::ContractCondition;
use crate::scheduler::cycle::{ContractReport, WorkerReport};
use crate::scheduler::health::Verdict;

/// `status.reason` of a failed worker (Dead or Degraded) that mines again: healthy evidence is
/// accumulating towards `minDwell`, so it is shown as recovering rather than failed with a live
/// hashrate.
pub const REASON_RECOVERING: &str = "Recovering";

/// Longest free text kept in a status message (the CRD's bound).
pub const MAX_MESSAGE: usize = 1024;

/// Relative change of a hashrate that is worth a status write on its own (5 %).
const HASHRATE_WRITE_THRESHOLD: f64 = 0.05;
/// A last-share time that moved less than this is not worth a write on its own.
const LAST_SHARE_WRITE_SECONDS: i64 = 60;

/// `s` cut to at most `max` bytes on a character boundary.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

fn ts_from_unix(secs: Option<f64>) -> Option<Time> {
    let s = secs.filter(|s| s.is_finite())?;
    Timestamp::from_millisecond((s * 1000.0).round().clamp(-8e15, 8e15) as i64)
        .ok()
        .map(Time)
}

fn hashrate_of(f: &WorkerFacts, window: u64) -> Option<Hashrate> {
    f.hashrate_over(window).map(Hashrate::from_f64_saturating)
}

/// Stamps every condition with the generation the status describes.
fn stamp_generation(conds: &mut [Condition], generation: Option<i64>) {
    for c in conds {
        c.observed_generation = generation;
    }
}

/// A failed worker that mines again: it is past the failure (its dwell runs), or it is Dead and
/// connected with a valid share more recent than the no-share limit.
fn recovering(r: &WorkerReport, facts: Option<&WorkerFacts>, now: Timestamp) -> bool {
    if !r.verdict.is_failed() {
        return false;
    }
    if r.health.recovering_since.is_some() {
        return true;
    }
    let limit = r.thresholds.map_or(60.0, |t| t.dead_after_secs);
    r.verdict == Verdict::Dead
        && r.connected
        && facts
            .and_then(|f| f.last_share_unix)
            .is_some_and(|t| now.as_millisecond() as f64 / 1000.0 - t <= limit)
}

/// A Worker's status after one cycle. `changes` are the reasons of this worker's moves in the
/// cycle (each closes the open entry of the lend/return history and opens a new one).
pub fn worker_status(
    prev: Option<&WorkerStatus>,
    r: &WorkerReport,
    facts: Option<&WorkerFacts>,
    changes: &[String],
    now: Timestamp,
) -> WorkerStatus {
    let mut s = prev.cloned().unwrap_or_default();
    let now_t = Time(now);
    s.phase = Some(r.phase());
    s.phase_since = Some(Time(r.health.since));
    s.reason = Some(if recovering(r, facts, now) {
        REASON_RECOVERING.to_owned()
    } else {
        r.verdict.as_str().to_owned()
    });
    s.message = Some(truncate(&r.reason, MAX_MESSAGE));
    s.connected = Some(r.connected);
    if let Some(f) = facts {
        s.hashrate = Some(WorkerHashrate {
            avg1m: hashrate_of(f, 60),
            avg5m: hashrate_of(f, 300),
            avg15m: hashrate_of(f, 900),
        });
        if let Some(t) = ts_from_unix(f.last_share_unix) {
            s.last_share_time = Some(t);
        }
        s.current_pool = f.pool.clone();
    } else {
        s.current_pool = None;
    }
    let assignment = r.assignment();
    let moved = !changes.is_empty();
    if moved || s.history.is_empty() {
        if let Some(open) = s.history.last_mut().filter(|h| h.end.is_none()) {
            open.end = Some(now_t.clone());
        }
        push_history(
            &mut s.history,
            AssignmentRecord {
                contract: assignment.contract.clone(),
                customer: assignment.customer.clone(),
                role: assignment.role,
                replaces: assignment.replaces.clone(),
                start: if moved {
                    now_t.clone()
                } else {
                    assignment.since.clone()
                },
                end: None,
                reason: changes.first().map(|c| truncate(c, MAX_MESSAGE)),
            },
        );
    }
    s.current_assignment = Some(assignment);
    set_condition(
        &mut s.conditions,
        new_condition(
            conditions::HEALTHY,
            r.verdict == Verdict::Healthy,
            r.verdict.as_str(),
            truncate(&r.reason, MAX_MESSAGE),
            r.generation,
            &now_t,
        ),
    );
    set_condition(
        &mut s.conditions,
        new_condition(
            conditions::CONNECTED,
            r.connected,
            if r.connected {
                "Connected"
            } else {
                "Disconnected"
            },
            if r.connected {
                "the miner holds a stratum connection to the hub"
            } else {
                "no stratum connection from this miner"
            },
            r.generation,
            &now_t,
        ),
    );
    stamp_generation(&mut s.conditions, r.generation);
    s.observed_generation = r.generation;
    s
}

/// The cycle's worker reports by name, built once per cycle for every contract's status (a
/// search per assigned worker would be O(contracts × workers)).
pub fn reports_by_name(workers: &[WorkerReport]) -> BTreeMap<&str, &WorkerReport> {
    workers.iter().map(|w| (w.name.as_str(), w)).collect()
}

/// A RentalContract's status (its SLA ledger) after one cycle; `workers` from
/// [`reports_by_name`].
pub fn contract_status(
    prev: Option<&RentalContractStatus>,
    r: &ContractReport,
    workers: &BTreeMap<&str, &WorkerReport>,
    now: Timestamp,
) -> RentalContractStatus {
    let mut s = prev.cloned().unwrap_or_default();
    let now_t = Time(now);
    s.phase = Some(r.phase);
    let since_of = |name: &str| {
        workers
            .get(name)
            .map(|w| Time(w.placement.since))
            .unwrap_or_else(|| now_t.clone())
    };
    let mut assigned: Vec<AssignedWorker> = r
        .assigned
        .iter()
        .map(|(name, role, covers)| AssignedWorker {
            worker: name.clone(),
            role: role.in_status(),
            replaces: covers.clone(),
            since: since_of(name),
        })
        .collect();
    // Primaries first, then substitutes; by name within a role.
    assigned.sort_by(|a, b| (a.role, &a.worker).cmp(&(b.role, &b.worker)));
    s.assigned_workers = assigned;
    s.contracted_hashrate = Some(Hashrate::from_f64_saturating(r.contracted_hashrate));
    s.delivered_hashrate = Some(Hashrate::from_f64_saturating(r.delivered_hashrate));
    r.write_ledger(&mut s);
    s.last_failover = r.last_failover.map(Time);
    s.failover_count = Some(r.failover_count);
    s.recent_reassignments = r.recent_reassignments.iter().copied().map(Time).collect();
    let spec_ok = r.spec_error.is_none();
    set_condition(
        &mut s.conditions,
        new_condition(
            conditions::SPEC_VALID,
            spec_ok,
            if spec_ok { "Valid" } else { "Invalid" },
            r.spec_error.clone().unwrap_or_default(),
            r.generation,
            &now_t,
        ),
    );
    let no_spares = r
        .conditions
        .iter()
        .find(|c| matches!(c, ContractCondition::NoSpareCapacity { .. }));
    set_condition(
        &mut s.conditions,
        new_condition(
            conditions::SPARES_EXHAUSTED,
            no_spares.is_some(),
            if no_spares.is_some() {
                "NoSpareCapacity"
            } else {
                "SparesAvailable"
            },
            no_spares.map(ToString::to_string).unwrap_or_default(),
            r.generation,
            &now_t,
        ),
    );
    let others: Vec<String> = r
        .conditions
        .iter()
        .filter(|c| !matches!(c, ContractCondition::NoSpareCapacity { .. }))
        .map(ToString::to_string)
        .collect();
    let ready = matches!(r.phase, ContractPhase::Active);
    set_condition(
        &mut s.conditions,
        new_condition(
            conditions::READY,
            ready,
            &r.phase.to_string(),
            truncate(&others.join("; "), MAX_MESSAGE),
            r.generation,
            &now_t,
        ),
    );
    let (breached, reason, message) = r.sla_verdict();
    set_condition(
        &mut s.conditions,
        new_condition(
            conditions::SLA_BREACHED,
            breached,
            reason,
            truncate(&message, MAX_MESSAGE),
            r.generation,
            &now_t,
        ),
    );
    stamp_generation(&mut s.conditions, r.generation);
    s.observed_generation = r.generation;
    s
}

/// A Customer's status: the totals over its contracts in this cycle.
pub fn customer_status(
    prev: Option<&CustomerStatus>,
    customer: &str,
    contracts: &[ContractReport],
    generation: Option<i64>,
    now: Timestamp,
) -> CustomerStatus {
    let mut s = prev.cloned().unwrap_or_default();
    let now_t = Time(now);
    let mine: Vec<&ContractReport> = contracts
        .iter()
        .filter(|c| c.customer == customer)
        .collect();
    let active: Vec<&&ContractReport> = mine
        .iter()
        .filter(|c| {
            matches!(
                c.phase,
                ContractPhase::Active | ContractPhase::Degraded | ContractPhase::Breached
            )
        })
        .collect();
    s.active_contracts = Some(u32::try_from(active.len()).unwrap_or(u32::MAX));
    s.contracted_hashrate = Some(Hashrate::from_f64_saturating(
        active.iter().map(|c| c.contracted_hashrate).sum(),
    ));
    s.delivered_hashrate = Some(Hashrate::from_f64_saturating(
        active.iter().map(|c| c.delivered_hashrate).sum(),
    ));
    let (up, observed) = mine.iter().fold((0u64, 0u64), |(u, o), c| {
        let (cu, co) = c.up_and_observed_slots();
        (u.saturating_add(cu), o.saturating_add(co))
    });
    s.uptime = Some(Percentage::from_ratio(up, observed));
    let invalid: Vec<String> = mine
        .iter()
        .filter_map(|c| c.spec_error.as_ref().map(|e| format!("{}: {e}", c.name)))
        .collect();
    set_condition(
        &mut s.conditions,
        new_condition(
            conditions::SPEC_VALID,
            invalid.is_empty(),
            if invalid.is_empty() {
                "Valid"
            } else {
                "InvalidContracts"
            },
            truncate(&invalid.join("; "), MAX_MESSAGE),
            generation,
            &now_t,
        ),
    );
    let short: Vec<&str> = active
        .iter()
        .filter(|c| c.phase != ContractPhase::Active)
        .map(|c| c.name.as_str())
        .collect();
    set_condition(
        &mut s.conditions,
        new_condition(
            conditions::READY,
            short.is_empty(),
            if short.is_empty() {
                "Delivering"
            } else {
                "ContractsShort"
            },
            if short.is_empty() {
                String::new()
            } else {
                truncate(&format!("not Active: {}", short.join(", ")), MAX_MESSAGE)
            },
            generation,
            &now_t,
        ),
    );
    stamp_generation(&mut s.conditions, generation);
    s.observed_generation = generation;
    s
}

/// The PoolEndpoint's `SpecValid` condition: `problem` is why the hub would refuse the pool
/// (the pool is then left out of every routing document; see `cycle::usable_pools`).
pub fn pool_spec_condition(s: &mut PoolEndpointStatus, problem: Option<&str>, now: Timestamp) {
    let valid = problem.is_none();
    set_condition(
        &mut s.conditions,
        new_condition(
            conditions::SPEC_VALID,
            valid,
            if valid { "Valid" } else { "InvalidSpec" },
            match problem {
                None => "the hub accepts this pool".to_owned(),
                Some(p) => truncate(
                    &format!(
                        "{p}: left out of every routing document (workers routed to it take their next pool or the default route); fix the PoolEndpoint"
                    ),
                    MAX_MESSAGE,
                ),
            },
            None,
            &Time(now),
        ),
    );
}

/// One view of a pool from what several hub pods report about it: up when any pod holds an
/// authorized session, counters summed, the worst latency, the highest difficulty, the first
/// failure reason. `None` when no pod reports the pool.
pub fn merge_pool_facts(facts: &[&PoolFacts]) -> Option<PoolFacts> {
    let (first, rest) = facts.split_first()?;
    let mut m = (*first).clone();
    for f in rest {
        m.up |= f.up;
        m.sessions = m.sessions.saturating_add(f.sessions);
        m.workers = m.workers.saturating_add(f.workers);
        m.accepted = m.accepted.saturating_add(f.accepted);
        m.rejected = m.rejected.saturating_add(f.rejected);
        m.lost = m.lost.saturating_add(f.lost);
        m.switches = m.switches.saturating_add(f.switches);
        m.disconnects = m.disconnects.saturating_add(f.disconnects);
        for (reason, n) in &f.switches_by_reason {
            let e = m.switches_by_reason.entry(reason.clone()).or_default();
            *e = e.saturating_add(*n);
        }
        m.latency_seconds = match (m.latency_seconds, f.latency_seconds) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        m.difficulty = match (m.difficulty, f.difficulty) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        if m.last_failure.is_none() {
            m.last_failure = f.last_failure.clone();
            m.last_failure_unix = f.last_failure_unix;
        }
    }
    Some(m)
}

/// A PoolEndpoint's status from the hubs' view of it (`None`: no hub uses it yet).
pub fn pool_endpoint_status(
    prev: Option<&PoolEndpointStatus>,
    facts: Option<&PoolFacts>,
    generation: Option<i64>,
    now: Timestamp,
) -> PoolEndpointStatus {
    let mut s = prev.cloned().unwrap_or_default();
    let now_t = Time(now);
    match facts {
        Some(p) => {
            s.reachable = Some(p.up);
            if p.up && prev.and_then(|x| x.reachable) != Some(true) {
                s.last_connect = Some(now_t.clone());
            }
            s.pool_difficulty = p.difficulty.filter(|d| d.is_finite());
            let answered = p.accepted.saturating_add(p.rejected);
            s.reject_ratio = (answered > 0).then(|| Percentage::from_ratio(p.rejected, answered));
            s.latency_ms = p
                .latency_seconds
                .filter(|l| l.is_finite() && *l >= 0.0)
                .map(|l| (l * 1000.0).round().min(f64::from(u32::MAX)) as u32);
            let why = p.last_failure.clone().unwrap_or_default();
            set_condition(
                &mut s.conditions,
                new_condition(
                    conditions::REACHABLE,
                    p.up,
                    if p.up { "SessionUp" } else { "Unreachable" },
                    if p.up {
                        format!(
                            "{} upstream session(s), {} worker(s)",
                            p.sessions, p.workers
                        )
                    } else {
                        let why = if why.is_empty() {
                            "no authorized session"
                        } else {
                            &why
                        };
                        truncate(
                            &format!("{why}: check the pool URL, credentials and network"),
                            MAX_MESSAGE,
                        )
                    },
                    generation,
                    &now_t,
                ),
            );
        }
        None => {
            s.reachable = None;
            set_condition(
                &mut s.conditions,
                Condition {
                    status: conditions::UNKNOWN.to_owned(),
                    ..new_condition(
                        conditions::REACHABLE,
                        false,
                        "NotUsed",
                        "no hub has a session to this pool (no worker routed to it)",
                        generation,
                        &now_t,
                    )
                },
            );
        }
    }
    stamp_generation(&mut s.conditions, generation);
    s.observed_generation = generation;
    s
}

/// What is known about a StratumHub's pods (the operator reads it from the hub pods it finds
/// and scrapes; local mode from its embedded hub).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HubObservation {
    /// Hub pods found (ready endpoints of the hub's metrics Service, or the configured URLs).
    pub pods: u32,
    /// Of those, the pods that answered on `/metrics` this cycle.
    pub answering: u32,
    /// Distinct workers connected over the answering pods.
    pub connected_workers: Option<u32>,
    /// Lowest routing generation applied by the answering pods.
    pub applied_generation: Option<u64>,
    /// Answering pods that have not confirmed the desired generation (a push failed or is
    /// pending), by name: the status says which replica lags.
    pub pods_behind: Vec<String>,
    /// Service host:port miners use.
    pub stratum_endpoint: Option<String>,
    /// The hub spec cannot be rendered into its objects (e.g. a bad image): why.
    pub render_error: Option<String>,
    /// The new routing document fails the hub's own validation and was not sent: why.
    pub routing_refused: Option<String>,
}

/// A StratumHub's status: pods, workers, and whether the pods run the routing generation the
/// scheduler rendered (`desired_generation`).
pub fn stratum_hub_status(
    prev: Option<&StratumHubStatus>,
    obs: &HubObservation,
    desired_generation: Option<u64>,
    generation: Option<i64>,
    now: Timestamp,
) -> StratumHubStatus {
    let mut s = prev.cloned().unwrap_or_default();
    let now_t = Time(now);
    let g = |x: u64| i64::try_from(x).unwrap_or(i64::MAX);
    s.ready_replicas = Some(i32::try_from(obs.answering).unwrap_or(i32::MAX));
    s.connected_workers = obs.connected_workers;
    s.desired_routing_generation = desired_generation.map(g);
    s.applied_routing_generation = obs.applied_generation.map(g);
    if obs.stratum_endpoint.is_some() {
        s.stratum_endpoint = obs.stratum_endpoint.clone();
    }
    let spec_ok = obs.render_error.is_none();
    set_condition(
        &mut s.conditions,
        new_condition(
            conditions::SPEC_VALID,
            spec_ok,
            if spec_ok { "Valid" } else { "Invalid" },
            match &obs.render_error {
                None => "the hub's objects render".to_owned(),
                Some(e) => truncate(
                    &format!("{e}: the hub's objects cannot be applied; fix the StratumHub spec"),
                    MAX_MESSAGE,
                ),
            },
            generation,
            &now_t,
        ),
    );
    let ready = obs.answering > 0 && obs.answering == obs.pods;
    set_condition(
        &mut s.conditions,
        new_condition(
            conditions::READY,
            ready,
            if ready {
                "PodsReady"
            } else if obs.pods == 0 {
                "NoReadyPods"
            } else {
                "PodsUnreachable"
            },
            if ready {
                format!("{} hub pod(s) answer on /metrics", obs.answering)
            } else if obs.pods == 0 {
                "no ready hub pod: check the Deployment's pods (kubectl describe deployment)"
                    .to_owned()
            } else {
                format!(
                    "{} of {} hub pod(s) do not answer on /metrics: verdicts are held",
                    obs.pods - obs.answering.min(obs.pods),
                    obs.pods
                )
            },
            generation,
            &now_t,
        ),
    );
    let applied = obs.applied_generation;
    let refused = obs.routing_refused.as_deref();
    let routing_ok = refused.is_none()
        && desired_generation.is_some()
        && applied == desired_generation
        && obs.answering > 0;
    set_condition(
        &mut s.conditions,
        new_condition(
            conditions::ROUTING_APPLIED,
            routing_ok,
            if refused.is_some() {
                "DocumentRefused"
            } else if routing_ok {
                "Applied"
            } else {
                "Pending"
            },
            match (refused, desired_generation, applied) {
                (Some(why), _, _) => truncate(
                    &format!(
                        "the new routing document fails the hub's validation and was not sent (the hub keeps generation {}): {why}",
                        applied.map_or("-".to_owned(), |a| a.to_string())
                    ),
                    MAX_MESSAGE,
                ),
                (None, Some(d), Some(a)) if a == d => {
                    format!("every ready pod runs routing generation {d}")
                }
                (None, Some(d), Some(a)) if obs.pods_behind.is_empty() => {
                    format!("routing generation {d} rendered; lowest applied by a pod is {a}")
                }
                (None, Some(d), Some(a)) => truncate(
                    &format!(
                        "routing generation {d} rendered; not yet applied by pod(s) {} (lowest applied: {a}); the push is retried every cycle: check those pods' admin port and the operator's log",
                        obs.pods_behind.join(", ")
                    ),
                    MAX_MESSAGE,
                ),
                (None, Some(d), None) => {
                    format!("routing generation {d} rendered; no pod confirmed it yet")
                }
                _ => "no routing rendered yet".to_owned(),
            },
            generation,
            &now_t,
        ),
    );
    stamp_generation(&mut s.conditions, generation);
    s.observed_generation = generation;
    s
}

// ---------------------------------------------------------------------------------------------
// Worth writing?
// ---------------------------------------------------------------------------------------------

/// Whether a newly rendered status differs from the stored one in a way worth a write to the
/// API server. Every field counts except measurement noise: hashrates that moved less than 5 %,
/// a last-share time that moved less than a minute, and the contract's open accounting slot
/// (written when a slot closes; what a restart loses of it is unobserved time, never a wrong
/// verdict).
pub trait WorthWriting {
    fn worth_writing(old: Option<&Self>, new: &Self) -> bool;
}

fn hashrate_moved(old: Option<Hashrate>, new: Option<Hashrate>) -> bool {
    match (old, new) {
        (None, None) => false,
        (Some(a), Some(b)) => {
            let (a, b) = (a.as_f64(), b.as_f64());
            let scale = a.abs().max(b.abs());
            scale > 0.0 && (a - b).abs() > HASHRATE_WRITE_THRESHOLD * scale
        }
        _ => true,
    }
}

fn time_moved(old: &Option<Time>, new: &Option<Time>, seconds: i64) -> bool {
    match (old, new) {
        (None, None) => false,
        (Some(a), Some(b)) => {
            (b.0.as_millisecond() - a.0.as_millisecond()).abs() >= seconds.saturating_mul(1000)
        }
        _ => true,
    }
}

impl WorthWriting for WorkerStatus {
    fn worth_writing(old: Option<&Self>, new: &Self) -> bool {
        let Some(old) = old else { return true };
        let rates = |s: &WorkerStatus| s.hashrate.clone().unwrap_or_default();
        let (a, b) = (rates(old), rates(new));
        if hashrate_moved(a.avg1m, b.avg1m)
            || hashrate_moved(a.avg5m, b.avg5m)
            || hashrate_moved(a.avg15m, b.avg15m)
            || time_moved(
                &old.last_share_time,
                &new.last_share_time,
                LAST_SHARE_WRITE_SECONDS,
            )
        {
            return true;
        }
        let strip = |s: &WorkerStatus| WorkerStatus {
            hashrate: None,
            last_share_time: None,
            ..s.clone()
        };
        strip(old) != strip(new)
    }
}

impl WorthWriting for RentalContractStatus {
    fn worth_writing(old: Option<&Self>, new: &Self) -> bool {
        let Some(old) = old else { return true };
        if hashrate_moved(old.delivered_hashrate, new.delivered_hashrate) {
            return true;
        }
        let strip = |s: &RentalContractStatus| RentalContractStatus {
            delivered_hashrate: None,
            accounting: s.accounting.as_ref().map(|a| a.closed_part()),
            ..s.clone()
        };
        strip(old) != strip(new)
    }
}

impl WorthWriting for CustomerStatus {
    fn worth_writing(old: Option<&Self>, new: &Self) -> bool {
        let Some(old) = old else { return true };
        if hashrate_moved(old.delivered_hashrate, new.delivered_hashrate) {
            return true;
        }
        let strip = |s: &CustomerStatus| CustomerStatus {
            delivered_hashrate: None,
            ..s.clone()
        };
        strip(old) != strip(new)
    }
}

impl WorthWriting for PoolEndpointStatus {
    fn worth_writing(old: Option<&Self>, new: &Self) -> bool {
        let Some(old) = old else { return true };
        let strip = |s: &PoolEndpointStatus| PoolEndpointStatus {
            latency_ms: None,
            reject_ratio: None,
            ..s.clone()
        };
        let ratio_moved = match (old.reject_ratio, new.reject_ratio) {
            (Some(a), Some(b)) => (a.as_fraction() - b.as_fraction()).abs() >= 0.001,
            (a, b) => a.is_some() != b.is_some(),
        };
        let latency_moved = match (old.latency_ms, new.latency_ms) {
            (Some(a), Some(b)) => a.abs_diff(b) * 5 > a.max(b),
            (a, b) => a.is_some() != b.is_some(),
        };
        ratio_moved || latency_moved || strip(old) != strip(new)
    }
}

impl WorthWriting for StratumHubStatus {
    fn worth_writing(old: Option<&Self>, new: &Self) -> bool {
        old != Some(new)
    }
}

/// [`WorthWriting::worth_writing`] as a function.
pub fn worth_writing<T: WorthWriting>(old: Option<&T>, new: &T) -> bool {
    T::worth_writing(old, new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::Role;
    use crate::scheduler::allocation::Placement;
    use crate::scheduler::health::HealthState;

    fn report(verdict: Verdict, placement: Placement, customer: Option<&str>) -> WorkerReport {
        WorkerReport {
            name: "spare-1".into(),
            verdict,
            reason: "test".into(),
            thresholds: None,
            health: HealthState {
                verdict,
                since: placement.since,
                recovering_since: None,
                disconnected_since: None,
            },
            placement,
            customer: customer.map(Into::into),
            measured_hashrate: Some(2e5),
            connected: true,
            generation: Some(3),
        }
    }

    #[test]
    fn a_lend_closes_the_open_ledger_entry_and_opens_a_new_one() {
        let t0: Timestamp = "2026-07-01T00:00:00Z".parse().unwrap();
        let t1: Timestamp = "2026-07-01T00:10:00Z".parse().unwrap();
        let idle = report(Verdict::Healthy, Placement::spare(t0), None);
        let s0 = worker_status(None, &idle, None, &[], t0);
        assert_eq!(s0.history.len(), 1);
        assert_eq!(s0.history[0].role, Role::Spare);
        assert_eq!(s0.phase, Some(crate::crd::WorkerPhase::Healthy));
        // Nothing moved: the ledger does not grow.
        let s0b = worker_status(Some(&s0), &idle, None, &[], t1);
        assert_eq!(s0b.history.len(), 1);

        let lent = report(
            Verdict::Healthy,
            Placement {
                contract: Some("acme-m2m".into()),
                role: Role::Substitute,
                covers: Some("acme-02".into()),
                since: t1,
            },
            Some("acme"),
        );
        let s1 = worker_status(
            Some(&s0),
            &lent,
            None,
            &["covers acme-02 (Dead)".into()],
            t1,
        );
        assert_eq!(s1.history.len(), 2);
        assert_eq!(s1.history[0].end, Some(Time(t1)));
        let open = &s1.history[1];
        assert_eq!(open.contract.as_deref(), Some("acme-m2m"));
        assert_eq!(open.replaces.as_deref(), Some("acme-02"));
        assert_eq!(open.end, None);
        assert_eq!(open.reason.as_deref(), Some("covers acme-02 (Dead)"));
        let a = s1.current_assignment.as_ref().unwrap();
        assert_eq!(a.role, Role::Substitute);
        assert_eq!(a.customer.as_deref(), Some("acme"));
        // The row `hashsched status` prints from such a status: local::store's
        // `a_substitute_worker_row_shows_its_contract_and_whom_it_replaces`.
    }

    #[test]
    fn conditions_carry_the_generation_and_keep_their_transition_time() {
        let t0: Timestamp = "2026-07-01T00:00:00Z".parse().unwrap();
        let t1: Timestamp = "2026-07-01T00:01:00Z".parse().unwrap();
        let t2: Timestamp = "2026-07-01T00:02:00Z".parse().unwrap();
        let healthy = report(Verdict::Healthy, Placement::spare(t0), None);
        let s0 = worker_status(None, &healthy, None, &[], t0);
        assert_eq!(s0.observed_generation, Some(3));
        assert!(
            s0.conditions
                .iter()
                .all(|c| c.observed_generation == Some(3))
        );
        // Same verdict, new generation: transition times stay, the generation moves.
        let mut again = healthy.clone();
        again.generation = Some(4);
        let s1 = worker_status(Some(&s0), &again, None, &[], t1);
        let healthy_cond = |s: &WorkerStatus| {
            conditions::find_condition(&s.conditions, conditions::HEALTHY)
                .unwrap()
                .clone()
        };
        assert_eq!(healthy_cond(&s1).last_transition_time, Time(t0));
        assert_eq!(healthy_cond(&s1).observed_generation, Some(4));
        // Dead: the transition time moves.
        let mut dead = again.clone();
        dead.verdict = Verdict::Dead;
        let s2 = worker_status(Some(&s1), &dead, None, &[], t2);
        assert_eq!(healthy_cond(&s2).last_transition_time, Time(t2));
        assert_eq!(healthy_cond(&s2).status, conditions::FALSE);
    }

    #[test]
    fn noise_is_not_worth_a_write_but_a_verdict_is() {
        let t0: Timestamp = "2026-07-01T00:00:00Z".parse().unwrap();
        let r = report(Verdict::Healthy, Placement::spare(t0), None);
        let mut a = worker_status(None, &r, None, &[], t0);
        a.hashrate = Some(WorkerHashrate {
            avg1m: Some(Hashrate::from_f64_saturating(100e12)),
            ..WorkerHashrate::default()
        });
        assert!(worth_writing(None, &a));
        assert!(!worth_writing(Some(&a), &a.clone()));
        let mut b = a.clone();
        b.hashrate.as_mut().unwrap().avg1m = Some(Hashrate::from_f64_saturating(102e12));
        b.last_share_time = Some(Time("2026-07-01T00:00:05Z".parse().unwrap()));
        a.last_share_time = Some(Time(t0));
        assert!(!worth_writing(Some(&a), &b), "2 % and 5 s are noise");
        b.hashrate.as_mut().unwrap().avg1m = Some(Hashrate::from_f64_saturating(80e12));
        assert!(worth_writing(Some(&a), &b), "20 % is news");
        let mut c = a.clone();
        c.phase = Some(crate::crd::WorkerPhase::Dead);
        assert!(worth_writing(Some(&a), &c));
    }

    #[test]
    fn hub_and_pool_statuses_say_what_is_applied_and_reachable() {
        let t0: Timestamp = "2026-07-01T00:00:00Z".parse().unwrap();
        let obs = HubObservation {
            pods: 2,
            answering: 2,
            connected_workers: Some(12),
            applied_generation: Some(6),
            ..HubObservation::default()
        };
        let s = stratum_hub_status(None, &obs, Some(7), Some(1), t0);
        assert!(!conditions::is_true(
            &s.conditions,
            conditions::ROUTING_APPLIED
        ));
        assert!(conditions::is_true(&s.conditions, conditions::READY));
        let s = stratum_hub_status(Some(&s), &obs, Some(6), Some(1), t0);
        assert!(conditions::is_true(
            &s.conditions,
            conditions::ROUTING_APPLIED
        ));
        assert_eq!(s.desired_routing_generation, Some(6));

        let facts = PoolFacts {
            pool: "acme".into(),
            up: false,
            sessions: 0,
            workers: 0,
            latency_seconds: Some(0.012),
            difficulty: Some(1024.0),
            accepted: 99,
            rejected: 1,
            lost: 0,
            switches: 0,
            switches_by_reason: Default::default(),
            disconnects: 3,
            last_failure: Some("connect: Connection refused".into()),
            last_failure_unix: None,
        };
        let p = pool_endpoint_status(None, Some(&facts), Some(2), t0);
        assert_eq!(p.reachable, Some(false));
        assert_eq!(p.latency_ms, Some(12));
        assert_eq!(p.reject_ratio.unwrap().to_string(), "1%");
        let c = conditions::find_condition(&p.conditions, conditions::REACHABLE).unwrap();
        assert_eq!(
            c.message,
            "connect: Connection refused: check the pool URL, credentials and network"
        );
        assert_eq!(c.observed_generation, Some(2));
        let unused = pool_endpoint_status(None, None, None, t0);
        let c = conditions::find_condition(&unused.conditions, conditions::REACHABLE).unwrap();
        assert_eq!(c.status, conditions::UNKNOWN);
    }
}
