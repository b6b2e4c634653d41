//! One full decision cycle — classify every worker, allocate, account every contract, render
//! routing (and, on request, the hubs' Kubernetes objects) — from the custom resources and the
//! hubs' facts. The Kubernetes operator, `hashsched local` and the demo all call [`run_cycle`];
//! what they do with the output (patch statuses, emit Events, push routing, print) is theirs.
//!
//! Pure: time is `input.now`, state between cycles is the [`CycleMemory`] passed in and returned.
//! A fresh memory (after a restart) is seeded from the objects' statuses: worker phase and
//! assignment, contract ledger and recent reassignments, and the hub's routing generation, so a
//! restart neither forgets what it owes nor reshuffles the farm.

use crate::crd::{
    AccountingState, Assignment, ContractMode, ContractPhase, Customer, PoolEndpoint,
    RentalContract, StratumHub, UnknownWorkerPolicy as CrdUnknown, Worker, WorkerOwner,
    WorkerPhase,
};
use crate::scheduler::accounting::{
    ClosedSlot, Delivery, Ledger, OpenSlot, SlaTerms, SlotVerdict, Unobserved, record,
};
use crate::scheduler::allocation::{
    Allocation, Change, ContractCondition, ContractView, Mode, Owner, Placement, Role, Selector,
    SelectorExt, WorkerView, World, allocate,
};
use crate::scheduler::health::{
    HASHES_PER_DIFFICULTY, HealthPolicy, HealthState, Observation, Thresholds, Verdict, classify,
};
use crate::scheduler::render::kubernetes::{HubObjects, HubRenderOptions, RenderError, render_hub};
use crate::scheduler::render::routing::{
    ContractRoute, RoutedWorker, RoutingInputs, render_routing, stamp_generation,
};
use hashsched_contract::facts::WorkerFacts;
use hashsched_contract::routing::{
    FailoverPolicy as HubFailover, HealthWindows, PasswordRef, PoolSpec, PoolTlsSpec,
    RoutingDocument, SecretKeyRef as HubSecretKeyRef, UnknownWorkerPolicy as HubUnknown,
};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Window used for "delivered" hashrate in accounting (the hub's shortest by default).
pub const DELIVERED_WINDOW_SECS: u64 = 60;
/// Window used for the measured hashrate shown in status and used for Degraded originals.
pub const MEASURED_WINDOW_SECS: u64 = 300;
/// Reassignment history kept for `maxReassignmentsPerHour`.
const HOUR_MS: i64 = 3_600_000;

/// A worker's cumulative delivered-share counters as the hub last reported them (accepted and
/// below-target buckets: locally valid work the pool did not reject or lose).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryCounter {
    pub shares: u64,
    pub difficulty: f64,
}

impl DeliveryCounter {
    /// The delivered part of a worker's facts.
    pub fn of(f: &WorkerFacts) -> Self {
        DeliveryCounter {
            shares: f.shares.accepted.saturating_add(f.shares.below_target),
            difficulty: f.difficulty.accepted + f.difficulty.below_target,
        }
    }
}

/// State carried from one cycle to the next (serializable, so local mode can keep it on disk).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CycleMemory {
    pub health: BTreeMap<String, HealthState>,
    pub placements: BTreeMap<String, Placement>,
    pub ledgers: BTreeMap<String, Ledger>,
    /// Times of lends and give-backs per contract within the last hour.
    pub reassignments: BTreeMap<String, Vec<Timestamp>>,
    pub failover_counts: BTreeMap<String, u64>,
    pub last_failover: BTreeMap<String, Timestamp>,
    /// Last routing document per hub.
    pub routing: BTreeMap<String, RoutingDocument>,
    /// Every reported worker's delivered-share counters at the last cycle with facts (the SLA
    /// ledger accounts the difference).
    pub delivery_counters: BTreeMap<String, DeliveryCounter>,
    /// When those counters were read; `None` after a restart (the first interval is unobserved).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counters_as_of: Option<Timestamp>,
}

/// Everything one cycle decides from.
#[derive(Debug, Clone, Copy)]
pub struct CycleInput<'a> {
    pub now: Timestamp,
    pub workers: &'a [Worker],
    pub contracts: &'a [RentalContract],
    pub customers: &'a [Customer],
    pub pools: &'a [PoolEndpoint],
    pub hubs: &'a [StratumHub],
    /// The hubs' facts by Worker name (merged over all hub pods).
    pub facts: &'a BTreeMap<String, WorkerFacts>,
    /// When the facts were taken; `None` when no hub could be read (verdicts are held).
    pub facts_as_of: Option<Timestamp>,
    /// Also render each hub's Kubernetes objects.
    pub render_objects: bool,
    /// Include a PodMonitor in those objects.
    pub pod_monitor: bool,
}

/// One worker after the cycle.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerReport {
    pub name: String,
    pub verdict: Verdict,
    /// One line for status and Events.
    pub reason: String,
    pub thresholds: Option<Thresholds>,
    pub health: HealthState,
    pub placement: Placement,
    /// Customer of the placement's contract, if any.
    pub customer: Option<String>,
    /// Hashes per second over [`MEASURED_WINDOW_SECS`].
    pub measured_hashrate: Option<f64>,
    pub connected: bool,
    /// `metadata.generation` of the Worker this report describes.
    pub generation: Option<i64>,
}

impl WorkerReport {
    /// The Worker phase for `status.phase`.
    pub fn phase(&self) -> WorkerPhase {
        match self.verdict {
            Verdict::Healthy => WorkerPhase::Healthy,
            Verdict::Degraded => WorkerPhase::Degraded,
            Verdict::Dead => WorkerPhase::Dead,
            Verdict::Unknown => WorkerPhase::Unknown,
            Verdict::Maintenance => WorkerPhase::Maintenance,
        }
    }

    /// `status.currentAssignment`. A benched original is `Spare` with its contract kept.
    pub fn assignment(&self) -> Assignment {
        Assignment {
            contract: self.placement.contract.clone(),
            customer: self.customer.clone(),
            role: self.placement.role.in_status(),
            replaces: self.placement.covers.clone(),
            since: Time(self.placement.since),
        }
    }
}

/// A worker serving a contract: (name, role, the original it covers).
pub type AssignedWorker = (String, Role, Option<String>);

/// One contract after the cycle.
#[derive(Debug, Clone, PartialEq)]
pub struct ContractReport {
    pub name: String,
    /// `spec.customer`.
    pub customer: String,
    /// `metadata.generation` of the RentalContract this report describes.
    pub generation: Option<i64>,
    pub phase: ContractPhase,
    /// `Some` when the spec is invalid (nothing is scheduled for it).
    pub spec_error: Option<String>,
    /// Hashes per second.
    pub contracted_hashrate: f64,
    pub required_hashrate: f64,
    /// Expected hashrate of the workers now serving it.
    pub planned_hashrate: f64,
    /// Delivered hashrate sampled this cycle (accepted at the pools, last minute).
    pub delivered_hashrate: f64,
    /// `spec.sla.uptimeTarget` as a fraction.
    pub uptime_target: f64,
    /// The SLA terms the ledger is kept under.
    pub sla: SlaTerms,
    /// What the serving workers delivered since the previous cycle (or why it cannot count).
    pub delivery: Delivery,
    pub ledger: Ledger,
    pub closed_slots: Vec<ClosedSlot>,
    pub conditions: Vec<ContractCondition>,
    /// Lends and give-backs within the last hour, newest last.
    pub recent_reassignments: Vec<Timestamp>,
    pub failover_count: u64,
    pub last_failover: Option<Timestamp>,
    /// Serving workers.
    pub assigned: Vec<AssignedWorker>,
}

impl ContractReport {
    /// The ledger in the CRD's shape.
    pub fn accounting_state(&self) -> AccountingState {
        let l = &self.ledger;
        let open = l.open.unwrap_or_default();
        AccountingState {
            version: Some(ACCOUNTING_VERSION),
            slot_start: open.start.map(Time),
            slot_delivered_hashes: None,
            slot_observed_seconds: open.observed_seconds,
            slot_shares: Some(open.shares),
            slot_difficulty: Some(open.difficulty),
            slot_difficulty_squared: Some(open.difficulty_squared),
            slot_reference_difficulty: open.reference_difficulty,
            shortfall_hashes: Some(l.shortfall_hashes),
            shortfall_variance: Some(l.shortfall_variance),
            started_time: l.started_at.map(Time),
            last_slot: l.last_slot.map(|v| slot_verdict_name(v).to_owned()),
            last_sample_time: l.last_sample_at.map(Time),
        }
    }

    /// Writes the ledger's fields (slots, uptime with its interval, shortfall and credit with
    /// theirs, the accounting state) into a RentalContract status.
    pub fn write_ledger(&self, s: &mut crate::crd::RentalContractStatus) {
        use crate::crd::rental_contract::ConfidenceInterval;
        use crate::quantity::Percentage;
        use crate::scheduler::accounting::HASHES_PER_TH_HOUR;
        let l = &self.ledger;
        let iv = l.uptime_interval();
        s.uptime = Some(crate::crd::Uptime {
            observed_slots: l.observed_slots(),
            up_slots: l.up_slots,
            down_slots: l.down_slots,
            unobserved_slots: l.unobserved_slots,
            ratio: Percentage::from_ratio(l.up_slots, l.observed_slots()),
            ratio_low: (l.observed_slots() > 0).then(|| Percentage::from_fraction(iv.low)),
            ratio_high: (l.observed_slots() > 0).then(|| Percentage::from_fraction(iv.high)),
        });
        s.shortfall_hashrate_hours = Some(l.shortfall_hashrate_hours());
        let owed = l.owed_interval();
        s.shortfall_interval = Some(ConfidenceInterval {
            low: owed.low / HASHES_PER_TH_HOUR,
            high: owed.high / HASHES_PER_TH_HOUR,
        });
        s.credit = Some(l.credit(&self.sla));
        let c = l.credit_interval(&self.sla);
        s.credit_interval = Some(ConfidenceInterval {
            low: c.low,
            high: c.high,
        });
        s.accounting = Some(self.accounting_state());
    }

    /// (up, judged) slots of the ledger.
    pub fn up_and_observed_slots(&self) -> (u64, u64) {
        (self.ledger.up_slots, self.ledger.observed_slots())
    }

    /// The `SlaBreached` condition: (breached, reason, message).
    pub fn sla_verdict(&self) -> (bool, &'static str, String) {
        let l = &self.ledger;
        let (breached, p) = l.breached(self.uptime_target);
        let iv = l.uptime_interval();
        let msg = format!(
            "{} up, {} down, {} unobserved slots: uptime {:.3}% (95% interval {:.3}–{:.3}%), target {:.3}%; P(this many down slots within the target) = {p:.2e}",
            l.up_slots,
            l.down_slots,
            l.unobserved_slots,
            l.uptime() * 100.0,
            iv.low * 100.0,
            iv.high * 100.0,
            self.uptime_target * 100.0
        );
        if breached {
            (true, "TargetMissed", msg)
        } else {
            (false, "WithinTarget", msg)
        }
    }
}

/// Layout version of `status.accounting` written by this scheduler.
pub const ACCOUNTING_VERSION: u32 = 2;

/// `up`, `down`, `unobserved`: the metric label values of slot verdicts.
pub fn slot_verdict_name(v: SlotVerdict) -> &'static str {
    match v {
        SlotVerdict::Up => crate::metric_names::verdict::UP,
        SlotVerdict::Down => crate::metric_names::verdict::DOWN,
        SlotVerdict::Unobserved => crate::metric_names::verdict::UNOBSERVED,
    }
}

/// The result of [`run_cycle`].
#[derive(Debug, Clone)]
pub struct CycleOutput {
    pub workers: Vec<WorkerReport>,
    pub contracts: Vec<ContractReport>,
    /// Every move, with reasons (Events on Worker and contract, the Worker's ledger).
    pub changes: Vec<Change>,
    /// Routing document per hub (generation bumped only on change).
    pub routing: BTreeMap<String, RoutingDocument>,
    /// Kubernetes objects per hub, when asked for.
    pub hub_objects: BTreeMap<String, Result<HubObjects, RenderError>>,
    /// PoolEndpoints left out of every routing document, by name, with the reason (the hub
    /// would refuse a whole document naming one; the other pools keep being routed).
    pub invalid_pools: BTreeMap<String, String>,
    /// Hubs whose new document the hub's own validation refused, with the reason: they keep
    /// the previous document (absent from `routing` when there is none).
    pub routing_errors: BTreeMap<String, String>,
    /// Feed into the next cycle.
    pub memory: CycleMemory,
}

/// A contract after spec checks, as the cycle uses it.
struct ContractPlan<'a> {
    name: String,
    object: &'a RentalContract,
    spec_error: Option<String>,
    active: bool,
    primaries: Vec<String>,
    contracted: f64,
    tolerance: f64,
    spare_selector: Option<Selector>,
    health: HealthPolicy,
}

/// Convert a Kubernetes label selector with kube's [`Selector`]; an unknown operator, or `In` /
/// `NotIn` without values, is a spec error that names the operator.
pub fn selector_from(ls: &LabelSelector) -> Result<Selector, String> {
    for e in ls.match_expressions.iter().flatten() {
        match e.operator.as_str() {
            "In" | "NotIn" if e.values.as_ref().is_none_or(Vec::is_empty) => {
                return Err(format!(
                    "label selector operator {:?} on key {:?} needs values",
                    e.operator, e.key
                ));
            }
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => {
                return Err(format!(
                    "label selector operator {other:?} is not In, NotIn, Exists or DoesNotExist"
                ));
            }
        }
    }
    Selector::try_from(ls.clone()).map_err(|e| e.to_string())
}

fn health_policy(spec: &crate::crd::RentalContractSpec, share_interval: Duration) -> HealthPolicy {
    let hp = spec.health_policy();
    HealthPolicy {
        window: hp.window().as_std(),
        // The CRD counts per 10,000 worker-days.
        false_alarms_per_worker_day: hp.false_alarm_budget() / 1e4,
        tolerance: spec.tolerance().as_fraction(),
        min_dwell: hp.min_dwell().as_std(),
        disconnect_grace: hp.disconnect_grace().as_std(),
        fallback_share_interval: share_interval,
        ..HealthPolicy::default()
    }
}

fn worker_name(w: &Worker) -> Option<&str> {
    w.metadata.name.as_deref()
}

fn ts_from_unix(secs: Option<f64>) -> Option<Timestamp> {
    let s = secs.filter(|s| s.is_finite())?;
    Timestamp::from_millisecond((s * 1000.0).round().clamp(-8e15, 8e15) as i64).ok()
}

/// The reduced observation health needs, from the hub's facts.
pub fn observation(facts: Option<&WorkerFacts>, as_of: Timestamp, window: Duration) -> Observation {
    let Some(f) = facts else {
        // The hubs were read and none has this worker: it is not connected.
        return Observation {
            as_of: Some(as_of),
            connected: false,
            ..Observation::default()
        };
    };
    let changed = ts_from_unix(f.last_change_unix);
    // The hub window nearest the policy's (ties to the longer: more power).
    let want = window.as_secs();
    let w = f
        .hashrate
        .iter()
        .min_by_key(|w| (w.window_seconds.abs_diff(want), u64::MAX - w.window_seconds));
    Observation {
        as_of: Some(as_of),
        connected: f.connected,
        connected_since: if f.connected { changed } else { None },
        disconnected_since: if f.connected { None } else { changed },
        last_valid_share_at: ts_from_unix(f.last_share_unix),
        difficulty: f.miner_difficulty,
        window_valid_shares: w.map(|w| w.shares).unwrap_or(0),
        // The hub's window hashrate is `Σ difficulty · 2^32 / window`: recover the mean share
        // difficulty of the window from it.
        window_mean_difficulty: w.filter(|w| w.shares > 0).map(|w| {
            w.hashes_per_second * w.window_seconds as f64
                / (HASHES_PER_DIFFICULTY * w.shares as f64)
        }),
        window_seconds: w.map(|w| w.window_seconds as f64).unwrap_or(0.0),
    }
}

/// Index the hubs' facts by Worker name. The hub reports each worker under the name it
/// authorized as (`WorkerFacts::worker`), which is the Worker's stratum user (default: its name).
/// When several hub pods report the same worker, the connected report wins, then the one with
/// the latest share.
pub fn facts_by_worker(
    workers: &[Worker],
    facts: impl IntoIterator<Item = WorkerFacts>,
) -> BTreeMap<String, WorkerFacts> {
    let mut login_to_name: BTreeMap<&str, &str> = BTreeMap::new();
    for w in workers {
        if let Some(name) = worker_name(w) {
            login_to_name.entry(w.stratum_user()).or_insert(name);
            login_to_name.entry(name).or_insert(name);
        }
    }
    let mut out: BTreeMap<String, WorkerFacts> = BTreeMap::new();
    for f in facts {
        let Some(&name) = login_to_name.get(f.worker.as_str()) else {
            continue;
        };
        let better = |old: &WorkerFacts| {
            (f.connected, f.last_share_unix.unwrap_or(f64::MIN))
                > (old.connected, old.last_share_unix.unwrap_or(f64::MIN))
        };
        match out.get(name) {
            Some(old) if !better(old) => {}
            _ => {
                out.insert(name.to_string(), f);
            }
        }
    }
    out
}

/// Hashrate accepted at the pools: the window's locally valid hashrate scaled by the pools'
/// acceptance of forwarded work.
pub fn delivered_hashrate(f: &WorkerFacts) -> f64 {
    let h = f
        .hashrate
        .iter()
        .min_by_key(|w| w.window_seconds.abs_diff(DELIVERED_WINDOW_SECS))
        .map(|w| w.hashes_per_second)
        .unwrap_or(0.0);
    let forwarded = f.difficulty.accepted + f.difficulty.rejected + f.difficulty.lost;
    let accepted = if forwarded > 0.0 {
        (f.difficulty.accepted / forwarded).clamp(0.0, 1.0)
    } else {
        1.0
    };
    if h.is_finite() && h > 0.0 {
        h * accepted
    } else {
        0.0
    }
}

fn placement_from_status(w: &Worker, now: Timestamp) -> Placement {
    let Some(a) = w
        .status
        .as_ref()
        .and_then(|s| s.current_assignment.as_ref())
    else {
        return Placement::spare(now);
    };
    // A status shows a benched original as `Spare` with its contract kept (`Role::in_status`).
    let role = match (a.role, &a.contract) {
        (Role::Primary, Some(_)) => Role::Primary,
        (Role::Substitute, Some(_)) => Role::Substitute,
        (Role::Spare | Role::Benched, Some(_)) => Role::Benched,
        (_, None) => Role::Spare,
    };
    let contract = if role == Role::Spare {
        None
    } else {
        a.contract.clone()
    };
    Placement {
        contract,
        role,
        covers: a.replaces.clone(),
        since: a.since.0,
    }
}

fn health_from_status(w: &Worker, now: Timestamp) -> Option<HealthState> {
    let s = w.status.as_ref()?;
    let verdict = match s.phase? {
        WorkerPhase::Healthy => Verdict::Healthy,
        WorkerPhase::Degraded => Verdict::Degraded,
        WorkerPhase::Dead => Verdict::Dead,
        WorkerPhase::Unknown => Verdict::Unknown,
        WorkerPhase::Maintenance => Verdict::Maintenance,
    };
    let since = s.phase_since.as_ref().map(|t| t.0).unwrap_or(now);
    Some(HealthState {
        verdict,
        since,
        recovering_since: None,
        disconnected_since: None,
    })
}

/// The ledger a RentalContract's status holds. A status written by an older hashsched (no
/// `accounting.version`) is migrated: its up and observed slots and its shortfall are kept, its
/// open slot (a hashrate integral the new ledger cannot use) is dropped as unobserved.
pub fn ledger_from_status(c: &RentalContract) -> Ledger {
    let Some(s) = c.status.as_ref() else {
        return Ledger::default();
    };
    let uptime = s.uptime.clone().unwrap_or_default();
    let acc = s.accounting.clone().unwrap_or_default();
    let finite = |x: Option<f64>| x.filter(|x| x.is_finite()).unwrap_or(0.0);
    if acc.version.unwrap_or(1) >= ACCOUNTING_VERSION {
        let open = acc.slot_start.as_ref().map(|t| OpenSlot {
            start: Some(t.0),
            observed_seconds: finite(Some(acc.slot_observed_seconds)).max(0.0),
            shares: finite(acc.slot_shares).max(0.0),
            difficulty: finite(acc.slot_difficulty).max(0.0),
            difficulty_squared: finite(acc.slot_difficulty_squared).max(0.0),
            reference_difficulty: acc.slot_reference_difficulty.filter(|d| d.is_finite()),
        });
        Ledger {
            up_slots: uptime.up_slots,
            down_slots: uptime.down_slots,
            unobserved_slots: uptime.unobserved_slots,
            shortfall_hashes: finite(acc.shortfall_hashes),
            shortfall_variance: finite(acc.shortfall_variance).max(0.0),
            open,
            last_sample_at: acc.last_sample_time.map(|t| t.0),
            started_at: acc.started_time.map(|t| t.0),
            last_slot: match acc.last_slot.as_deref() {
                Some("up") => Some(SlotVerdict::Up),
                Some("down") => Some(SlotVerdict::Down),
                Some("unobserved") => Some(SlotVerdict::Unobserved),
                _ => None,
            },
        }
    } else {
        let up = uptime.up_slots.min(uptime.observed_slots);
        Ledger {
            up_slots: up,
            down_slots: uptime.observed_slots - up,
            unobserved_slots: 0,
            shortfall_hashes: finite(s.shortfall_hashrate_hours).max(0.0)
                * crate::scheduler::accounting::HASHES_PER_TH_HOUR,
            shortfall_variance: 0.0,
            open: None,
            last_sample_at: acc.last_sample_time.as_ref().map(|t| t.0),
            started_at: (uptime.observed_slots > 0)
                .then(|| acc.last_sample_time.as_ref().map(|t| t.0))
                .flatten(),
            last_slot: None,
        }
    }
}

fn pool_spec(p: &PoolEndpoint) -> Option<PoolSpec> {
    Some(PoolSpec {
        name: p.metadata.name.clone()?,
        url: p.spec.url.clone(),
        user: p.spec.user.clone(),
        worker_name_template: p.spec.worker_name_template().to_string(),
        password: Some(match &p.spec.password_secret_ref {
            Some(s) => PasswordRef::secret(s.name.clone(), s.key.clone()),
            None => PasswordRef::public(crate::crd::pool_endpoint::DEFAULT_POOL_PASSWORD),
        }),
        tls: p.spec.tls.as_ref().map(|t| PoolTlsSpec {
            ca_secret_ref: t.ca_secret_ref.as_ref().map(|s| HubSecretKeyRef {
                name: s.name.clone(),
                key: s.key.clone(),
            }),
            ca_file: None,
            server_name: t.server_name.clone(),
        }),
    })
}

/// The objects of one cycle, read and checked (phase 1).
struct Objects<'a> {
    /// Workers by name (first object wins on duplicates).
    workers: BTreeMap<&'a str, &'a Worker>,
    customers: BTreeMap<&'a str, &'a Customer>,
    /// The first hub's share interval: the fallback share rate of workers without difficulty.
    default_interval: Duration,
    /// Contracts after spec checks, by name.
    plans: Vec<ContractPlan<'a>>,
}

/// The verdicts of one cycle (phase 2).
struct Classified {
    reports: Vec<WorkerReport>,
    views: Vec<WorkerView>,
}

/// The allocation of one cycle with the per-contract history it was decided from (phase 3).
struct Allocated<'a> {
    world: World,
    allocation: Allocation,
    ledgers: BTreeMap<&'a str, Ledger>,
    recent: BTreeMap<&'a str, Vec<Timestamp>>,
}

/// Run one decision cycle. Never fails: problems land in reports and conditions.
///
/// Phases, in order: [`read_objects`] (specs checked, contracts planned) → [`classify_workers`]
/// (health verdicts) → [`allocate_workers`] (who serves whom) → [`account_contracts`] (SLA
/// ledgers, phases) → [`render_hubs`] (routing documents and, when asked, Kubernetes objects).
pub fn run_cycle(input: &CycleInput<'_>, memory: &CycleMemory) -> CycleOutput {
    // Everything in the next memory is rebuilt below (a deleted hub's document goes with it).
    let mut next = CycleMemory::default();
    let objects = read_objects(input);
    let Classified { mut reports, views } = classify_workers(input, memory, &objects, &mut next);
    let allocated = allocate_workers(input, memory, &objects, views);
    let contract_reports = account_contracts(input, memory, &objects, &allocated, &mut next);
    let Allocated {
        allocation:
            Allocation {
                placements,
                changes,
                ..
            },
        ..
    } = allocated;
    place_reports(&mut reports, &placements, &objects);
    let rendered = render_hubs(input, memory, &objects, &placements, &mut next);
    next.placements = placements;
    CycleOutput {
        workers: reports,
        contracts: contract_reports,
        changes,
        routing: rendered.routing,
        hub_objects: rendered.hub_objects,
        invalid_pools: rendered.invalid_pools,
        routing_errors: rendered.routing_errors,
        memory: next,
    }
}

/// Phase 1: index the objects, check every contract's spec, resolve its primaries and policies.
fn read_objects<'a>(input: &CycleInput<'a>) -> Objects<'a> {
    let now = input.now;
    let mut workers: BTreeMap<&str, &Worker> = BTreeMap::new();
    for w in input.workers {
        if let Some(n) = worker_name(w) {
            workers.entry(n).or_insert(w);
        }
    }
    let customers: BTreeMap<&str, &Customer> = input
        .customers
        .iter()
        .filter_map(|c| Some((c.metadata.name.as_deref()?, c)))
        .collect();
    let default_interval = input
        .hubs
        .first()
        .map(|h| h.spec.share_interval().as_std())
        .unwrap_or(Duration::from_secs(2));

    let mut plans: Vec<ContractPlan> = Vec::new();
    let mut seen = BTreeSet::new();
    for c in input.contracts {
        let Some(name) = c.metadata.name.clone() else {
            continue;
        };
        if !seen.insert(name.clone()) {
            continue;
        }
        let spec = &c.spec;
        let mut spec_error = spec.validate().err();
        let primaries: Vec<String> = match &spec.worker_selector {
            Some(ls) => match selector_from(ls) {
                Ok(sel) => workers
                    .iter()
                    .filter(|(_, w)| sel.matches(&w.metadata.labels.clone().unwrap_or_default()))
                    .map(|(n, _)| n.to_string())
                    .collect(),
                Err(e) => {
                    spec_error.get_or_insert(format!("spec.workerSelector: {e}"));
                    Vec::new()
                }
            },
            None => spec.workers.clone(),
        };
        let spare_selector = match selector_from(&spec.failover_policy().spare_selector()) {
            Ok(s) => Some(s),
            Err(e) => {
                spec_error.get_or_insert(format!("spec.failoverPolicy.spareSelector: {e}"));
                None
            }
        };
        let contracted = match spec.contracted_hashrate {
            Some(h) => h.as_f64(),
            None => primaries
                .iter()
                .filter_map(|p| workers.get(p.as_str()))
                .map(|w| w.spec.expected_hashrate.as_f64())
                .sum(),
        };
        plans.push(ContractPlan {
            active: spec_error.is_none() && spec.in_force_at(now),
            name,
            object: c,
            spec_error,
            primaries,
            contracted,
            tolerance: spec.tolerance().as_fraction(),
            spare_selector,
            health: health_policy(spec, default_interval),
        });
    }
    plans.sort_by(|a, b| a.name.cmp(&b.name));
    Objects {
        workers,
        customers,
        default_interval,
        plans,
    }
}

/// Phase 2: a health verdict for every worker (with the policy of the first active contract,
/// by name, it is a primary of).
fn classify_workers(
    input: &CycleInput<'_>,
    memory: &CycleMemory,
    objects: &Objects<'_>,
    next: &mut CycleMemory,
) -> Classified {
    let now = input.now;
    let mut policy_of: BTreeMap<&str, &HealthPolicy> = BTreeMap::new();
    for p in objects.plans.iter().filter(|p| p.active) {
        for w in &p.primaries {
            policy_of.entry(w.as_str()).or_insert(&p.health);
        }
    }
    let default_policy = HealthPolicy {
        fallback_share_interval: objects.default_interval,
        ..HealthPolicy::default()
    };
    let as_of = input.facts_as_of.unwrap_or(Timestamp::UNIX_EPOCH); // none at all: stale

    let mut reports: Vec<WorkerReport> = Vec::with_capacity(objects.workers.len());
    let mut views: Vec<WorkerView> = Vec::with_capacity(objects.workers.len());
    for (&name, w) in &objects.workers {
        let policy = policy_of.get(name).copied().unwrap_or(&default_policy);
        let facts = input.facts.get(name);
        let obs = observation(facts, as_of, policy.window);
        let prev = memory
            .health
            .get(name)
            .cloned()
            .or_else(|| health_from_status(w, now));
        let expected = w.spec.expected_hashrate.as_f64();
        let a = classify(
            &obs,
            expected,
            w.spec.maintenance,
            policy,
            prev.as_ref(),
            now,
        );
        let measured = facts.and_then(|f| {
            f.hashrate
                .iter()
                .min_by_key(|x| x.window_seconds.abs_diff(MEASURED_WINDOW_SECS))
                .map(|x| x.hashes_per_second)
        });
        let placement = memory
            .placements
            .get(name)
            .cloned()
            .unwrap_or_else(|| placement_from_status(w, now));
        let labels = w.metadata.labels.clone().unwrap_or_default();
        views.push(WorkerView {
            name: name.to_string(),
            owner: match &w.spec.owner {
                WorkerOwner::House => Owner::House,
                WorkerOwner::Customer(c) => Owner::Customer(c.clone()),
            },
            labels,
            expected_hashrate: expected,
            measured_hashrate: measured,
            health: a.verdict,
            maintenance: w.spec.maintenance,
            placement: placement.clone(),
        });
        next.health.insert(name.to_string(), a.state.clone());
        reports.push(WorkerReport {
            name: name.to_string(),
            verdict: a.verdict,
            reason: a.reason.to_string(),
            thresholds: a.thresholds,
            health: a.state,
            placement,
            customer: None,
            measured_hashrate: measured,
            connected: facts.is_some_and(|f| f.connected),
            generation: w.metadata.generation,
        });
    }
    Classified { reports, views }
}

/// Phase 3: one deterministic allocation pass over every contract.
fn allocate_workers<'a>(
    input: &CycleInput<'_>,
    memory: &CycleMemory,
    objects: &'a Objects<'a>,
    views: Vec<WorkerView>,
) -> Allocated<'a> {
    let now = input.now;
    let plans = &objects.plans;
    let ledgers: BTreeMap<&str, Ledger> = plans
        .iter()
        .map(|p| {
            let l = memory
                .ledgers
                .get(&p.name)
                .cloned()
                .unwrap_or_else(|| ledger_from_status(p.object));
            (p.name.as_str(), l)
        })
        .collect();
    let recent: BTreeMap<&str, Vec<Timestamp>> = plans
        .iter()
        .map(|p| {
            let mut times = match memory.reassignments.get(&p.name) {
                Some(t) => t.clone(),
                None => p
                    .object
                    .status
                    .as_ref()
                    .map(|s| s.recent_reassignments.iter().map(|t| t.0).collect())
                    .unwrap_or_default(),
            };
            times.retain(|t| now.as_millisecond().saturating_sub(t.as_millisecond()) < HOUR_MS);
            (p.name.as_str(), times)
        })
        .collect();
    let contract_views: Vec<ContractView> = plans
        .iter()
        .map(|p| {
            let spec = &p.object.spec;
            let fp = spec.failover_policy();
            let target = spec.sla().uptime_target().as_fraction();
            let uptime = ledgers
                .get(p.name.as_str())
                .map(Ledger::uptime)
                .unwrap_or(1.0);
            ContractView {
                name: p.name.clone(),
                customer: spec.customer.clone(),
                mode: match spec.mode {
                    ContractMode::MinerToMiner => Mode::MinerToMiner,
                    ContractMode::Threshold => Mode::Threshold,
                },
                active: p.active,
                priority: spec.priority(),
                sla_deficit: (target - uptime).max(0.0),
                primaries: p.primaries.clone(),
                contracted_hashrate: p.contracted,
                tolerance: p.tolerance,
                spare_selector: p.spare_selector.clone(),
                give_back: fp.give_back(),
                max_reassignments_per_hour: Some(fp.max_reassignments_per_hour()),
                reassignments_last_hour: u32::try_from(
                    recent.get(p.name.as_str()).map_or(0, Vec::len),
                )
                .unwrap_or(u32::MAX),
                min_dwell: p.health.min_dwell,
            }
        })
        .collect();
    let world = World {
        now,
        workers: views,
        contracts: contract_views,
    };
    let allocation = allocate(&world);
    Allocated {
        world,
        allocation,
        ledgers,
        recent,
    }
}

/// Phase 4: account every contract (delivered by the workers that served it until now), count
/// failovers, decide its phase.
fn account_contracts(
    input: &CycleInput<'_>,
    memory: &CycleMemory,
    objects: &Objects<'_>,
    allocated: &Allocated<'_>,
    next: &mut CycleMemory,
) -> Vec<ContractReport> {
    let now = input.now;
    let Allocated {
        world,
        allocation:
            Allocation {
                placements,
                changes,
                contracts: outcomes,
            },
        ledgers,
        recent,
    } = allocated;
    let mut delivered: BTreeMap<&str, f64> = BTreeMap::new();
    for v in &world.workers {
        if let (Some(c), true) = (v.placement.contract.as_deref(), v.placement.role.serves()) {
            let d = input
                .facts
                .get(&v.name)
                .map(delivered_hashrate)
                .unwrap_or(0.0);
            *delivered.entry(c).or_default() += d;
        }
    }
    // The counters the next cycle subtracts from.
    if input.facts_as_of.is_some() {
        next.delivery_counters = input
            .facts
            .iter()
            .map(|(n, f)| (n.clone(), DeliveryCounter::of(f)))
            .collect();
        next.counters_as_of = input.facts_as_of;
    }
    let mut assigned_by_contract: BTreeMap<&str, Vec<AssignedWorker>> = BTreeMap::new();
    for (n, pl) in placements {
        if let (Some(c), true) = (pl.contract.as_deref(), pl.role.serves()) {
            assigned_by_contract.entry(c).or_default().push((
                n.clone(),
                pl.role,
                pl.covers.clone(),
            ));
        }
    }
    // Built once for all contracts: a per-contract scan of every worker is O(contracts ×
    // workers), 10 million steps at 10,000 workers / 1,000 contracts.
    let index = DeliveryIndex::new(world);
    let mut contract_reports = Vec::with_capacity(objects.plans.len());
    for p in &objects.plans {
        let spec = &p.object.spec;
        let sla = spec.sla();
        let slot = sla.slot().as_std().max(Duration::from_secs(1));
        let terms = SlaTerms {
            contracted_hashrate: p.contracted,
            tolerance: p.tolerance,
            credit_rate: sla.credit_rate(),
            slot,
            max_gap: (slot * 2).max(Duration::from_secs(120)),
            start: spec.start.as_ref().map(|t| t.0),
            end: spec.end.as_ref().map(|t| t.0),
            false_down_probability: sla.false_down_budget() / 1e4,
            uptime_target: sla.uptime_target().as_fraction(),
        };
        let d = delivered.get(p.name.as_str()).copied().unwrap_or(0.0);
        let ledger = ledgers.get(p.name.as_str()).cloned().unwrap_or_default();
        let delivery = contract_delivery(input, memory, &index, p, objects.default_interval);
        // An invalid spec is not evidence: nothing is accounted for it.
        let (ledger, rec) = if p.spec_error.is_none() {
            record(&ledger, &terms, now, &delivery)
        } else {
            (ledger, Default::default())
        };
        let outcome = outcomes.get(&p.name).cloned();
        let mut times = recent.get(p.name.as_str()).cloned().unwrap_or_default();
        let mut failovers = memory
            .failover_counts
            .get(&p.name)
            .copied()
            .or_else(|| p.object.status.as_ref().and_then(|s| s.failover_count))
            .unwrap_or(0);
        let mut last_failover = memory.last_failover.get(&p.name).copied().or_else(|| {
            p.object
                .status
                .as_ref()
                .and_then(|s| s.last_failover.as_ref().map(|t| t.0))
        });
        // Lends and give-backs this pass (as the allocator counted them against the limit).
        let made = outcome.as_ref().map_or(0, |o| o.reassignments);
        for _ in 0..made {
            times.push(now);
            last_failover = Some(now);
        }
        let lends = changes
            .iter()
            .filter(|ch| {
                ch.to_contract.as_deref() == Some(p.name.as_str())
                    && ch.to_role == Role::Substitute
                    && (ch.from_contract != ch.to_contract || ch.from_role != Role::Substitute)
            })
            .count();
        failovers = failovers.saturating_add(lends as u64);
        let required = terms.required();
        let planned = outcome.as_ref().map_or(0.0, |o| o.planned_hashrate);
        let conditions = outcome.map(|o| o.conditions).unwrap_or_default();
        let target = sla.uptime_target().as_fraction();
        let phase = if p.spec_error.is_some() || spec.start.as_ref().is_some_and(|s| now < s.0) {
            ContractPhase::Pending
        } else if spec.end.as_ref().is_some_and(|e| now >= e.0) {
            ContractPhase::Expired
        } else if ledger.breached(target).0 {
            ContractPhase::Breached
        } else if planned < required
            || conditions
                .iter()
                .any(|c| matches!(c, ContractCondition::NoSpareCapacity { .. }))
        {
            ContractPhase::Degraded
        } else {
            ContractPhase::Active
        };
        let assigned = assigned_by_contract
            .remove(p.name.as_str())
            .unwrap_or_default();
        next.ledgers.insert(p.name.clone(), ledger.clone());
        next.reassignments.insert(p.name.clone(), times.clone());
        next.failover_counts.insert(p.name.clone(), failovers);
        if let Some(t) = last_failover {
            next.last_failover.insert(p.name.clone(), t);
        }
        contract_reports.push(ContractReport {
            name: p.name.clone(),
            customer: spec.customer.clone(),
            generation: p.object.metadata.generation,
            phase,
            spec_error: p.spec_error.clone(),
            contracted_hashrate: p.contracted,
            required_hashrate: required,
            planned_hashrate: planned,
            delivered_hashrate: d,
            uptime_target: target,
            sla: terms,
            delivery,
            ledger,
            closed_slots: rec.closed,
            conditions,
            recent_reassignments: times,
            failover_count: failovers,
            last_failover,
            assigned,
        });
    }
    contract_reports
}

/// What a contract's serving workers delivered since the previous cycle, from the hubs'
/// cumulative counters — or why the interval cannot be judged (see the accounting module doc).
/// Per cycle: each worker's verdict and the workers serving each contract.
struct DeliveryIndex<'w> {
    health: BTreeMap<&'w str, Verdict>,
    serving: BTreeMap<&'w str, Vec<&'w WorkerView>>,
}

impl<'w> DeliveryIndex<'w> {
    fn new(world: &'w World) -> Self {
        let mut serving: BTreeMap<&str, Vec<&WorkerView>> = BTreeMap::new();
        for v in &world.workers {
            if let (Some(c), true) = (v.placement.contract.as_deref(), v.placement.role.serves()) {
                serving.entry(c).or_default().push(v);
            }
        }
        DeliveryIndex {
            health: world
                .workers
                .iter()
                .map(|v| (v.name.as_str(), v.health))
                .collect(),
            serving,
        }
    }
}

fn contract_delivery(
    input: &CycleInput<'_>,
    memory: &CycleMemory,
    index: &DeliveryIndex<'_>,
    plan: &ContractPlan<'_>,
    share_interval: Duration,
) -> Delivery {
    if input.facts_as_of.is_none() {
        return Delivery::unobserved(Unobserved::NoData);
    }
    let mut d = Delivery::default();
    let mut serving = 0usize;
    let (mut ref_num, mut ref_den) = (0.0, 0.0);
    d.failing = plan
        .primaries
        .iter()
        .any(|p| index.health.get(p.as_str()).is_some_and(|v| v.is_failed()));
    for &v in index.serving.get(plan.name.as_str()).into_iter().flatten() {
        serving += 1;
        let facts = input.facts.get(&v.name);
        let connected = facts.is_some_and(|f| f.connected);
        match v.health {
            // No verdict yet: a fresh miner warming up, or the hub restarted.
            Verdict::Unknown => d.unobserved = d.unobserved.or(Some(Unobserved::WarmUp)),
            // Gone, but within its grace: a reconnect (or a hub restart) is not judged.
            Verdict::Healthy if !connected => {
                d.unobserved = d.unobserved.or(Some(Unobserved::WarmUp))
            }
            v if v.is_failed() => d.failing = true,
            _ => {}
        }
        let Some(f) = facts else { continue };
        let now = DeliveryCounter::of(f);
        // Absent from the previous cycle's facts: the hub's entry is new, it counted from zero.
        let before = memory
            .delivery_counters
            .get(&v.name)
            .copied()
            .unwrap_or_default();
        if now.shares < before.shares || now.difficulty + 1e-9 * now.difficulty < before.difficulty
        {
            d.unobserved = d.unobserved.or(Some(Unobserved::CounterReset));
            continue;
        }
        let dn = (now.shares - before.shares) as f64;
        let dd = (now.difficulty - before.difficulty).max(0.0);
        d.shares += dn;
        d.difficulty += dd;
        if dn > 0.0 {
            d.difficulty_squared += dd * dd / dn;
        }
        if let Some(md) = f.miner_difficulty.filter(|m| m.is_finite() && *m > 0.0) {
            ref_num += v.expected_hashrate.max(1.0) * md;
            ref_den += v.expected_hashrate.max(1.0);
        }
    }
    if memory.counters_as_of.is_none() {
        d.unobserved = d.unobserved.or(Some(Unobserved::NoBaseline));
    }
    d.failing |= serving == 0 && plan.active;
    d.reference_difficulty = if ref_den > 0.0 {
        Some(ref_num / ref_den)
    } else if plan.contracted > 0.0 {
        // Nobody reports a difficulty: each serving worker (at least one) at the hub's share
        // interval.
        Some(
            plan.contracted / serving.max(1) as f64 * share_interval.as_secs_f64()
                / HASHES_PER_DIFFICULTY,
        )
    } else {
        None
    };
    d
}

/// The final placements (and the customer they serve) into the worker reports.
fn place_reports(
    reports: &mut [WorkerReport],
    placements: &BTreeMap<String, Placement>,
    objects: &Objects<'_>,
) {
    let customer_of: BTreeMap<&str, &str> = objects
        .plans
        .iter()
        .map(|p| (p.name.as_str(), p.object.spec.customer.as_str()))
        .collect();
    for r in reports {
        if let Some(pl) = placements.get(&r.name) {
            r.placement = pl.clone();
        }
        r.customer = r
            .placement
            .contract
            .as_deref()
            .and_then(|c| customer_of.get(c))
            .map(|c| c.to_string());
    }
}

/// Phase 5: the routing document of every hub (generation bumped only on change) and, when
/// asked, its Kubernetes objects.
#[allow(clippy::type_complexity)]
/// What [`render_hubs`] produces (phase 5).
struct Rendered {
    routing: BTreeMap<String, RoutingDocument>,
    hub_objects: BTreeMap<String, Result<HubObjects, RenderError>>,
    invalid_pools: BTreeMap<String, String>,
    routing_errors: BTreeMap<String, String>,
}

/// The PoolEndpoints the hub would accept, and the reason for each one it would not. A pool
/// the hub refuses must not reach a document: the hub refuses the whole document, which would
/// freeze routing for every customer of that hub because of one typo.
fn usable_pools(pools: &[PoolEndpoint]) -> (Vec<PoolSpec>, BTreeMap<String, String>) {
    let mut usable = Vec::new();
    let mut invalid = BTreeMap::new();
    for p in pools {
        let Some(name) = p.metadata.name.clone() else {
            continue;
        };
        match p.spec.validate() {
            Ok(()) => usable.extend(pool_spec(p)),
            Err(e) => {
                invalid.insert(name, e);
            }
        }
    }
    (usable, invalid)
}

fn render_hubs(
    input: &CycleInput<'_>,
    memory: &CycleMemory,
    objects: &Objects<'_>,
    placements: &BTreeMap<String, Placement>,
    next: &mut CycleMemory,
) -> Rendered {
    let (pools, invalid_pools) = usable_pools(input.pools);
    // Routes name only usable pools; a route left with none takes the default route, and the
    // contract reports that it has no pools.
    let usable = |names: &[String]| -> Vec<String> {
        names
            .iter()
            .filter(|n| !invalid_pools.contains_key(n.as_str()))
            .cloned()
            .collect()
    };
    let customer_pools: BTreeMap<String, Vec<String>> = objects
        .customers
        .iter()
        .map(|(n, c)| (n.to_string(), usable(&c.spec.pools)))
        .collect();
    let contract_routes: BTreeMap<String, ContractRoute> = objects
        .plans
        .iter()
        .map(|p| {
            let spec = &p.object.spec;
            let pools = if spec.pools.is_empty() {
                customer_pools
                    .get(&spec.customer)
                    .cloned()
                    .unwrap_or_default()
            } else {
                usable(&spec.pools)
            };
            (
                p.name.clone(),
                ContractRoute {
                    customer: spec.customer.clone(),
                    pools,
                },
            )
        })
        .collect();
    let mut routing = BTreeMap::new();
    let mut hub_objects = BTreeMap::new();
    let mut routing_errors = BTreeMap::new();
    for hub in input.hubs {
        let Some(hub_name) = hub.metadata.name.clone() else {
            continue;
        };
        let routed: Vec<RoutedWorker> = objects
            .workers
            .iter()
            .filter(|(_, w)| w.spec.hub.as_deref().is_none_or(|h| h == hub_name))
            .map(|(n, w)| RoutedWorker {
                name: n.to_string(),
                user: w.spec.stratum_user.clone(),
                owner: match &w.spec.owner {
                    WorkerOwner::House => Owner::House,
                    WorkerOwner::Customer(c) => Owner::Customer(c.clone()),
                },
                expected_hashrate: w.spec.expected_hashrate.as_f64(),
            })
            .collect();
        let unknown = match hub.spec.unknown_workers() {
            CrdUnknown::Reject => HubUnknown::Reject,
            CrdUnknown::HousePool => HubUnknown::DefaultRoute,
            CrdUnknown::Quarantine => match &hub.spec.quarantine_pool {
                Some(p) if !invalid_pools.contains_key(p) => HubUnknown::Quarantine {
                    pools: vec![p.clone()],
                },
                _ => HubUnknown::Reject,
            },
        };
        let inputs = RoutingInputs {
            pools: pools.clone(),
            house_pools: usable(&hub.spec.house_pools),
            contracts: contract_routes.clone(),
            customer_pools: customer_pools.clone(),
            unknown_workers: unknown,
            health: HealthWindows::default(),
            failover: HubFailover::default(),
        };
        let mut doc = render_routing(&inputs, &routed, placements);
        let previous = memory.routing.get(&hub_name);
        if previous.is_none() {
            // After a restart: continue above what the hub has seen.
            let seen = hub
                .status
                .as_ref()
                .map(|s| {
                    s.applied_routing_generation
                        .max(s.desired_routing_generation)
                        .unwrap_or(0)
                })
                .unwrap_or(0);
            doc.generation = u64::try_from(seen).unwrap_or(0).saturating_add(1);
        }
        let doc = stamp_generation(previous, doc);
        // The hub's own validation, before anything is delivered: a document it would refuse
        // is not sent; the hub keeps the last one it accepted.
        if let Err(e) = doc.validate() {
            routing_errors.insert(hub_name.clone(), e.to_string());
            if let Some(prev) = previous {
                next.routing.insert(hub_name.clone(), prev.clone());
                routing.insert(hub_name, prev.clone());
            }
            continue;
        }
        if input.render_objects {
            let opts = HubRenderOptions {
                pod_monitor: input.pod_monitor,
                default_image: None,
            };
            hub_objects.insert(hub_name.clone(), render_hub(hub, &doc, &opts));
        }
        next.routing.insert(hub_name.clone(), doc.clone());
        routing.insert(hub_name, doc);
    }
    Rendered {
        routing,
        hub_objects,
        invalid_pools,
        routing_errors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hashsched_contract::facts::{AssignmentLabels, ShareBuckets, WindowHashrate};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    #[test]
    fn pool_endpoints_become_routing_pools_with_their_tls_settings() {
        use crate::crd::common::SecretKeyRef;
        use crate::crd::pool_endpoint::{PoolEndpointSpec, PoolEndpointTls};
        let mut p = PoolEndpoint::new(
            "acme-ssl",
            PoolEndpointSpec {
                url: "stratum+ssl://10.0.0.9:443".into(),
                user: "acme".into(),
                worker_name_template: None,
                password_secret_ref: Some(SecretKeyRef {
                    name: "acme-pool".into(),
                    key: "password".into(),
                }),
                tls: Some(PoolEndpointTls {
                    ca_secret_ref: Some(SecretKeyRef {
                        name: "acme-ca".into(),
                        key: "ca.crt".into(),
                    }),
                    server_name: Some("pool.acme.example".into()),
                }),
                description: None,
            },
        );
        let spec = pool_spec(&p).expect("named");
        assert_eq!(spec.url, "stratum+ssl://10.0.0.9:443");
        let tls = spec.tls.expect("tls carried over");
        let ca = tls.ca_secret_ref.expect("ca secret");
        assert_eq!((ca.name.as_str(), ca.key.as_str()), ("acme-ca", "ca.crt"));
        assert_eq!(tls.server_name.as_deref(), Some("pool.acme.example"));
        assert_eq!(tls.ca_file, None);
        p.spec.tls = None;
        assert_eq!(pool_spec(&p).expect("named").tls, None);
    }

    #[test]
    fn label_selectors_convert_and_bad_operators_are_spec_errors() {
        let ls = LabelSelector {
            match_labels: Some([("a".to_string(), "1".to_string())].into()),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "rack".into(),
                operator: "In".into(),
                values: Some(vec!["r1".into(), "r2".into()]),
            }]),
        };
        let s = selector_from(&ls).unwrap();
        let labels = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(s.matches(&labels(&[("a", "1"), ("rack", "r2")])));
        assert!(!s.matches(&labels(&[("a", "1"), ("rack", "r3")])));
        let mut bad = ls.clone();
        bad.match_expressions.as_mut().unwrap()[0].operator = "Gt".into();
        assert!(selector_from(&bad).unwrap_err().contains("\"Gt\""));
    }

    #[test]
    fn observation_picks_the_nearest_window_and_delivered_scales_by_pool_acceptance() {
        let w = |secs, shares| WindowHashrate {
            window_seconds: secs,
            hashes_per_second: 1e14,
            shares,
        };
        let difficulty = ShareBuckets::<f64> {
            accepted: 90.0,
            rejected: 10.0,
            ..ShareBuckets::default()
        };
        let f = WorkerFacts {
            worker: "w".into(),
            connected: true,
            shares: ShareBuckets::default(),
            difficulty,
            pending: 0,
            hashrate: vec![w(60, 30), w(300, 150), w(900, 450)],
            last_share_unix: Some(1.7e9),
            last_change_unix: Some(1.6e9),
            miner_difficulty: Some(1024.0),
            pool: None,
            labels: AssignmentLabels::default(),
        };
        let now = Timestamp::from_second(1_700_000_001).unwrap();
        let o = observation(Some(&f), now, Duration::from_secs(600));
        assert_eq!(
            (o.window_seconds, o.window_valid_shares),
            (900.0, 450),
            "600 s is as near 300 as 900: longer wins"
        );
        let o = observation(Some(&f), now, Duration::from_secs(240));
        assert_eq!(o.window_seconds, 300.0);
        assert_eq!(
            o.connected_since,
            Timestamp::from_second(1_600_000_000).ok()
        );
        assert!((delivered_hashrate(&f) - 0.9e14).abs() < 1.0);
        let missing = observation(None, now, Duration::from_secs(600));
        assert!(!missing.connected && missing.as_of == Some(now));
    }
}
