//! Allocation and failover: which worker serves which contract, decided in one deterministic pass.
//!
//! Input is a plain [`World`] snapshot (built from the CRDs by the cycle, or by hand in tests);
//! output is the new placement of every worker, the list of [`Change`]s with reasons (Events and
//! the Worker's lend/return ledger) and per-contract outcomes (conditions like
//! `NoSpareCapacity`). Same world in, same allocation out: no clock, no randomness, every
//! iteration over names in sorted order.
//!
//! The pass:
//! 1. **Claim primaries.** Each active contract claims its own workers. A worker named by two
//!    contracts stays with the one that holds it now, else goes to the first by (priority, name);
//!    the other gets a `WorkerConflict` condition. A worker owned by another customer is never
//!    claimed (`OwnerMismatch`).
//! 2. **Keep what still works, release what does not.** Substitutes that failed, went into
//!    maintenance, stopped matching or were claimed as someone's primary are released.
//!    MinerToMiner: a recovered original (Healthy — its health verdict already includes `minDwell`
//!    of hysteresis) takes its place back once the substitute has served `minDwell`.
//!    Threshold: substitutes are released while delivered stays comfortably above the floor
//!    (`contracted · (1 − tolerance/2)`).
//! 3. **Fill**, contracts ordered by priority (high first), SLA deficit (large first), name.
//!    MinerToMiner: each failed original is benched (it mines for the house) and the best-fitting
//!    healthy spare (smallest expected hashrate ≥ the original's, else the largest below) takes
//!    its place. Threshold: the smallest number of spares whose expected hashrate covers
//!    `(1 − tolerance) · contracted − delivered`. No spare: the contract says so
//!    (`NoSpareCapacity`) and the failed original keeps serving.
//!
//! Spares are Healthy, not in maintenance, owned by the house (or by the contract's own customer),
//! match the contract's spare selector and serve no one. Lends and give-backs count against the
//! contract's `maxReassignmentsPerHour`; releasing a failed substitute does not (it serves
//! nothing).

use crate::scheduler::health::Verdict;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

/// Who owns a worker (the asset inventory).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Owner {
    House,
    Customer(String),
}

/// A worker's role in its placement: the product's one role type (the hub's, because routing
/// documents carry it there).
pub use hashsched_contract::routing::Role;

/// Where a worker is: contract (None for a spare), role, which original a substitute covers
/// (MinerToMiner), and since when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<String>,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub covers: Option<String>,
    pub since: Timestamp,
}

impl Placement {
    pub fn spare(since: Timestamp) -> Self {
        Placement {
            contract: None,
            role: Role::Spare,
            covers: None,
            since,
        }
    }

    fn same_slot(&self, other: &Placement) -> bool {
        self.contract == other.contract && self.role == other.role && self.covers == other.covers
    }
}

/// Label selectors are kube's own (`matchLabels` + `matchExpressions`, the empty selector matches
/// everything); the CRDs' `LabelSelector` converts through [`crate::scheduler::cycle::selector_from`].
pub use kube::core::{Expression, Selector, SelectorExt};

/// A worker as the allocator sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerView {
    pub name: String,
    pub owner: Owner,
    pub labels: BTreeMap<String, String>,
    /// Hashes per second.
    pub expected_hashrate: f64,
    /// Measured hashes per second (used for a Degraded original in Threshold mode).
    pub measured_hashrate: Option<f64>,
    pub health: Verdict,
    pub maintenance: bool,
    /// Current placement (from the Worker's status).
    pub placement: Placement,
}

impl WorkerView {
    fn out_of_service(&self) -> bool {
        self.maintenance || self.health == Verdict::Maintenance
    }

    /// Failed or cordoned: a MinerToMiner original in this state is replaced.
    fn needs_replacement(&self) -> bool {
        self.out_of_service() || self.health.is_failed()
    }

    /// Hashrate a Threshold contract can plan with.
    fn capacity(&self) -> f64 {
        if self.out_of_service() {
            return 0.0;
        }
        let expected = finite_non_negative(self.expected_hashrate);
        match self.health {
            Verdict::Healthy | Verdict::Unknown => expected,
            Verdict::Degraded => {
                finite_non_negative(self.measured_hashrate.unwrap_or(0.0)).min(expected)
            }
            Verdict::Dead | Verdict::Maintenance => 0.0,
        }
    }
}

fn finite_non_negative(x: f64) -> f64 {
    if x.is_finite() && x > 0.0 { x } else { 0.0 }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// Specific machines: a failed one is replaced one for one.
    MinerToMiner,
    /// An amount of hashrate: keep delivered ≥ (1 − tolerance) × contracted.
    Threshold,
}

/// A contract as the allocator sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ContractView {
    pub name: String,
    pub customer: String,
    pub mode: Mode,
    /// Within start/end and not suspended.
    pub active: bool,
    /// Higher first.
    pub priority: i32,
    /// How far the contract is behind its SLA (larger = served earlier among equal priority).
    pub sla_deficit: f64,
    /// The contract's own workers (resolved from its worker list or selector).
    pub primaries: Vec<String>,
    pub contracted_hashrate: f64,
    pub tolerance: f64,
    /// Which workers may be lent; `None` = any house spare.
    pub spare_selector: Option<Selector>,
    /// MinerToMiner: give the substitute back when the original recovers.
    pub give_back: bool,
    /// `None` = unlimited.
    pub max_reassignments_per_hour: Option<u32>,
    /// Lends and give-backs already made in the last hour (from the ledger).
    pub reassignments_last_hour: u32,
    /// Minimum time a substitute serves before it is given back or released.
    pub min_dwell: Duration,
}

impl ContractView {
    fn required(&self) -> f64 {
        (1.0 - self.tolerance.clamp(0.0, 1.0)) * finite_non_negative(self.contracted_hashrate)
    }

    fn comfortable(&self) -> f64 {
        (1.0 - self.tolerance.clamp(0.0, 1.0) / 2.0) * finite_non_negative(self.contracted_hashrate)
    }
}

/// Everything the allocator decides from.
#[derive(Debug, Clone, PartialEq)]
pub struct World {
    pub now: Timestamp,
    pub workers: Vec<WorkerView>,
    pub contracts: Vec<ContractView>,
}

/// Why a worker moved; `Display` is the Event message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum ChangeReason {
    /// A MinerToMiner original failed and was swapped out.
    PrimaryFailed {
        verdict: Verdict,
        substitute: String,
    },
    /// Lent to cover a failed original.
    CoversFailedPrimary { primary: String, verdict: Verdict },
    /// Lent to cover a Threshold deficit (hashes/s missing before this lend).
    CoversDeficit { deficit_hashrate: f64 },
    /// The substitute failed or went into maintenance.
    SubstituteFailed { verdict: Verdict },
    /// The substitute no longer matches the spare selector or owner rules.
    NoLongerEligible,
    /// The original is healthy again and takes its place back.
    PrimaryRecovered,
    /// Given back to the house after the original recovered.
    GivenBack { primary: String },
    /// Threshold: delivered stays comfortably above the floor without it.
    NoLongerNeeded,
    /// The original's substitute failed and no spare was left: it serves as it is.
    ServingWithoutCover,
    /// The worker is one of the contract's own workers.
    JoinedContract,
    /// The worker is no longer one of the contract's workers.
    RemovedFromContract,
    /// The contract is not active (not started, ended, or deleted).
    ContractInactive,
}

impl fmt::Display for ChangeReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChangeReason::PrimaryFailed {
                verdict,
                substitute,
            } => {
                write!(f, "original is {verdict}; swapped out for {substitute}")
            }
            ChangeReason::CoversFailedPrimary { primary, verdict } => {
                write!(f, "lent to replace {primary} ({verdict})")
            }
            ChangeReason::CoversDeficit { deficit_hashrate } => {
                write!(
                    f,
                    "lent to cover a deficit of {}",
                    crate::scheduler::fmt_hashrate(*deficit_hashrate)
                )
            }
            ChangeReason::SubstituteFailed { verdict } => write!(f, "substitute is {verdict}"),
            ChangeReason::NoLongerEligible => {
                write!(f, "no longer matches the spare selector or owner rules")
            }
            ChangeReason::PrimaryRecovered => {
                write!(f, "original healthy again; given back its place")
            }
            ChangeReason::GivenBack { primary } => write!(f, "returned: {primary} recovered"),
            ChangeReason::NoLongerNeeded => write!(f, "released: contract covered without it"),
            ChangeReason::ServingWithoutCover => {
                write!(
                    f,
                    "substitute lost and no spare left; original serves as it is"
                )
            }
            ChangeReason::JoinedContract => write!(f, "one of the contract's workers"),
            ChangeReason::RemovedFromContract => {
                write!(f, "no longer one of the contract's workers")
            }
            ChangeReason::ContractInactive => write!(f, "contract not active"),
        }
    }
}

/// One worker's move.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    pub worker: String,
    pub from_contract: Option<String>,
    pub from_role: Role,
    pub to_contract: Option<String>,
    pub to_role: Role,
    pub reason: ChangeReason,
}

impl Change {
    /// The contract whose ledger and Events this change belongs to (the one it joins or leaves).
    pub fn contract(&self) -> Option<&str> {
        self.to_contract
            .as_deref()
            .or(self.from_contract.as_deref())
    }

    /// A lend or a give-back by its reason. A worker moved straight from one contract to
    /// another carries only the new contract's reason: count reassignments per contract with
    /// [`ContractOutcome::reassignments`], which is what the limit uses.
    pub fn is_reassignment(&self) -> bool {
        matches!(
            self.reason,
            ChangeReason::CoversFailedPrimary { .. }
                | ChangeReason::CoversDeficit { .. }
                | ChangeReason::GivenBack { .. }
                | ChangeReason::NoLongerNeeded
        )
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = |c: &Option<String>, r: Role| match c {
            Some(c) => format!("{c}/{r}"),
            None => r.to_string(),
        };
        write!(
            f,
            "{}: {} -> {} ({})",
            self.worker,
            side(&self.from_contract, self.from_role),
            side(&self.to_contract, self.to_role),
            self.reason
        )
    }
}

/// A contract-level finding (status condition and Event).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum ContractCondition {
    /// Not enough eligible spares: hashrate still missing and originals left uncovered.
    NoSpareCapacity {
        missing_hashrate: f64,
        uncovered: Vec<String>,
    },
    /// A needed lend or give-back was deferred by `maxReassignmentsPerHour`.
    ReassignmentLimit { limit: u32 },
    /// A named worker is held by another contract.
    WorkerConflict { worker: String, held_by: String },
    /// A named worker belongs to another customer.
    OwnerMismatch { worker: String },
    /// A named worker has no Worker object.
    UnknownWorker { worker: String },
}

impl fmt::Display for ContractCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContractCondition::NoSpareCapacity {
                missing_hashrate,
                uncovered,
            } => {
                write!(
                    f,
                    "no spare capacity: {} missing",
                    crate::scheduler::fmt_hashrate(*missing_hashrate)
                )?;
                if !uncovered.is_empty() {
                    write!(f, ", uncovered: {}", uncovered.join(", "))?;
                }
                Ok(())
            }
            ContractCondition::ReassignmentLimit { limit } => {
                write!(
                    f,
                    "reassignment limit of {limit} per hour reached; change deferred"
                )
            }
            ContractCondition::WorkerConflict { worker, held_by } => {
                write!(f, "worker {worker} is held by contract {held_by}")
            }
            ContractCondition::OwnerMismatch { worker } => {
                write!(f, "worker {worker} belongs to another customer")
            }
            ContractCondition::UnknownWorker { worker } => {
                write!(f, "worker {worker} does not exist")
            }
        }
    }
}

/// Per-contract result of the pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContractOutcome {
    /// Expected hashrate of the workers now serving it (Degraded at measured, failed at zero).
    pub planned_hashrate: f64,
    /// `(1 − tolerance) × contracted`.
    pub required_hashrate: f64,
    pub primaries: u32,
    pub substitutes: u32,
    /// Lends and give-backs made in this pass.
    pub reassignments: u32,
    pub conditions: Vec<ContractCondition>,
}

/// The output of [`allocate`].
#[derive(Debug, Clone, PartialEq)]
pub struct Allocation {
    /// New placement of every worker, by name.
    pub placements: BTreeMap<String, Placement>,
    /// Moves, in worker-name order within the order they were decided.
    pub changes: Vec<Change>,
    /// By contract name (active and inactive).
    pub contracts: BTreeMap<String, ContractOutcome>,
}

/// Working placement of one worker during the pass.
#[derive(Clone)]
struct Slot {
    contract: Option<usize>,
    role: Role,
    covers: Option<usize>,
    reason: Option<ChangeReason>,
}

struct Pass<'w> {
    world: &'w World,
    /// Worker index by name.
    by_name: BTreeMap<&'w str, usize>,
    /// Contract index by name.
    contract_by_name: BTreeMap<&'w str, usize>,
    /// Which active contract each worker is a primary of.
    primary_of: Vec<Option<usize>>,
    /// Primaries per contract (indices, name order).
    primaries: Vec<Vec<usize>>,
    slots: Vec<Slot>,
    budget: Vec<Option<u32>>,
    outcomes: Vec<ContractOutcome>,
    /// Threshold substitutes kept by phase 2, per contract.
    threshold_subs: BTreeMap<usize, Vec<usize>>,
    /// Workers whose current placement is Substitute, by the contract they claim to serve.
    current_subs: BTreeMap<usize, Vec<usize>>,
    /// Threshold lends made in this pass, per contract.
    lent: BTreeMap<usize, Vec<usize>>,
    /// Old substitutes released during the fill (spares for contracts still short).
    freed: Vec<usize>,
    /// Needs the fill could not meet for lack of spares (retried when spares are freed).
    unmet: BTreeMap<usize, Need>,
}

/// Run the allocation pass. Never fails: problems become contract conditions.
pub fn allocate(world: &World) -> Allocation {
    let mut by_name = BTreeMap::new();
    for (i, w) in world.workers.iter().enumerate() {
        by_name.entry(w.name.as_str()).or_insert(i);
    }
    let mut contract_by_name = BTreeMap::new();
    for (i, c) in world.contracts.iter().enumerate() {
        contract_by_name.entry(c.name.as_str()).or_insert(i);
    }
    let n = world.workers.len();
    let slots = vec![
        Slot {
            contract: None,
            role: Role::Spare,
            covers: None,
            reason: None
        };
        n
    ];
    let outcomes = world
        .contracts
        .iter()
        .map(|c| ContractOutcome {
            planned_hashrate: 0.0,
            required_hashrate: c.required(),
            primaries: 0,
            substitutes: 0,
            reassignments: 0,
            conditions: Vec::new(),
        })
        .collect();
    let budget = world
        .contracts
        .iter()
        .map(|c| {
            c.max_reassignments_per_hour
                .map(|m| m.saturating_sub(c.reassignments_last_hour))
        })
        .collect();
    let mut pass = Pass {
        world,
        by_name,
        contract_by_name,
        primary_of: vec![None; n],
        primaries: vec![Vec::new(); world.contracts.len()],
        slots,
        budget,
        outcomes,
        threshold_subs: BTreeMap::new(),
        current_subs: BTreeMap::new(),
        lent: BTreeMap::new(),
        freed: Vec::new(),
        unmet: BTreeMap::new(),
    };
    for (w, worker) in world.workers.iter().enumerate() {
        if worker.placement.role == Role::Substitute
            && let Some(c) = pass.current_contract(w)
        {
            pass.current_subs.entry(c).or_default().push(w);
        }
    }
    pass.claim_primaries();
    let needs = pass.keep_or_release();
    pass.fill(needs);
    pass.finish()
}

/// What phase 2 left for phase 3 to fill.
enum Need {
    /// MinerToMiner originals without a cover.
    Cover(Vec<usize>),
    /// Threshold hashrate deficit.
    Deficit(f64),
}

impl<'w> Pass<'w> {
    fn current_contract(&self, w: usize) -> Option<usize> {
        self.world.workers[w]
            .placement
            .contract
            .as_deref()
            .and_then(|c| self.contract_by_name.get(c).copied())
    }

    /// Contracts that exist and are active, in claim order (priority, name).
    fn claim_order(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.world.contracts.len())
            .filter(|&c| {
                self.world.contracts[c].active
                    && self
                        .contract_by_name
                        .get(self.world.contracts[c].name.as_str())
                        == Some(&c)
            })
            .collect();
        order.sort_by(|&a, &b| {
            let (ca, cb) = (&self.world.contracts[a], &self.world.contracts[b]);
            cb.priority
                .cmp(&ca.priority)
                .then_with(|| ca.name.cmp(&cb.name))
        });
        order
    }

    /// Fill order: priority, SLA deficit, name.
    fn fill_order(&self) -> Vec<usize> {
        let mut order = self.claim_order();
        order.sort_by(|&a, &b| {
            let (ca, cb) = (&self.world.contracts[a], &self.world.contracts[b]);
            cb.priority
                .cmp(&ca.priority)
                .then_with(|| {
                    finite_non_negative(cb.sla_deficit)
                        .total_cmp(&finite_non_negative(ca.sla_deficit))
                })
                .then_with(|| ca.name.cmp(&cb.name))
        });
        order
    }

    fn owner_allows(&self, w: usize, c: usize) -> bool {
        match &self.world.workers[w].owner {
            Owner::House => true,
            Owner::Customer(x) => *x == self.world.contracts[c].customer,
        }
    }

    fn claim_primaries(&mut self) {
        let order = self.claim_order();
        // Candidates per worker, in claim order.
        let mut claimants: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for &c in &order {
            let contract = &self.world.contracts[c];
            let names: BTreeSet<&str> = contract.primaries.iter().map(String::as_str).collect();
            for name in names {
                let Some(&w) = self.by_name.get(name) else {
                    self.outcomes[c]
                        .conditions
                        .push(ContractCondition::UnknownWorker {
                            worker: name.to_string(),
                        });
                    continue;
                };
                if !self.owner_allows(w, c) {
                    self.outcomes[c]
                        .conditions
                        .push(ContractCondition::OwnerMismatch {
                            worker: name.to_string(),
                        });
                    continue;
                }
                claimants.entry(w).or_default().push(c);
            }
        }
        for (w, cs) in claimants {
            let holder = self.current_contract(w).filter(|h| {
                cs.contains(h)
                    && matches!(
                        self.world.workers[w].placement.role,
                        Role::Primary | Role::Benched
                    )
            });
            let Some(&first) = cs.first() else { continue };
            let winner = holder.unwrap_or(first);
            self.primary_of[w] = Some(winner);
            self.primaries[winner].push(w);
            for &c in cs.iter().filter(|&&c| c != winner) {
                self.outcomes[c]
                    .conditions
                    .push(ContractCondition::WorkerConflict {
                        worker: self.world.workers[w].name.clone(),
                        held_by: self.world.contracts[winner].name.clone(),
                    });
            }
        }
        for p in &mut self.primaries {
            p.sort_by(|&a, &b| self.world.workers[a].name.cmp(&self.world.workers[b].name));
        }
    }

    /// Current substitutes of contract `c` that may stay (healthy enough, eligible, not claimed),
    /// releasing the others. Returned in name order.
    fn retained_substitutes(&mut self, c: usize) -> Vec<usize> {
        let world = self.world;
        let mut kept = Vec::new();
        for w in self.current_subs.remove(&c).unwrap_or_default() {
            let worker = &world.workers[w];
            if self.by_name.get(worker.name.as_str()) != Some(&w) || self.primary_of[w].is_some() {
                continue; // duplicate name, or reclaimed by its own contract
            }
            if worker.needs_replacement() {
                let verdict = if worker.out_of_service() {
                    Verdict::Maintenance
                } else {
                    worker.health
                };
                self.slots[w].reason = Some(ChangeReason::SubstituteFailed { verdict });
                continue;
            }
            if !self.eligible_owner_and_selector(w, c) {
                self.slots[w].reason = Some(ChangeReason::NoLongerEligible);
                continue;
            }
            kept.push(w);
        }
        kept.sort_by(|&a, &b| self.world.workers[a].name.cmp(&self.world.workers[b].name));
        kept
    }

    fn eligible_owner_and_selector(&self, w: usize, c: usize) -> bool {
        let worker = &self.world.workers[w];
        let contract = &self.world.contracts[c];
        self.owner_allows(w, c)
            && contract
                .spare_selector
                .as_ref()
                .is_none_or(|s| s.matches(&worker.labels))
    }

    fn served_long_enough(&self, w: usize, c: usize) -> bool {
        let served_ms = self
            .world
            .now
            .as_millisecond()
            .saturating_sub(self.world.workers[w].placement.since.as_millisecond());
        let dwell_ms =
            i64::try_from(self.world.contracts[c].min_dwell.as_millis()).unwrap_or(i64::MAX);
        served_ms >= dwell_ms
    }

    fn spend(&mut self, c: usize) -> bool {
        match &mut self.budget[c] {
            None => true,
            Some(0) => {
                let limit = self.world.contracts[c]
                    .max_reassignments_per_hour
                    .unwrap_or(0);
                let cond = ContractCondition::ReassignmentLimit { limit };
                if !self.outcomes[c].conditions.contains(&cond) {
                    self.outcomes[c].conditions.push(cond);
                }
                false
            }
            Some(n) => {
                *n -= 1;
                self.outcomes[c].reassignments += 1;
                true
            }
        }
    }

    fn place(
        &mut self,
        w: usize,
        c: Option<usize>,
        role: Role,
        covers: Option<usize>,
        reason: Option<ChangeReason>,
    ) {
        let slot = &mut self.slots[w];
        slot.contract = c;
        slot.role = role;
        slot.covers = covers;
        if reason.is_some() {
            slot.reason = reason;
        }
    }

    fn keep_or_release(&mut self) -> Vec<(usize, Need)> {
        let mut needs = Vec::new();
        for c in self.claim_order() {
            let need = match self.world.contracts[c].mode {
                Mode::MinerToMiner => self.keep_miner_to_miner(c),
                Mode::Threshold => self.keep_threshold(c),
            };
            if let Some(need) = need {
                needs.push((c, need));
            }
        }
        needs
    }

    fn keep_miner_to_miner(&mut self, c: usize) -> Option<Need> {
        let subs = self.retained_substitutes(c);
        let primaries = self.primaries[c].clone();
        let world = self.world;
        let contract = &world.contracts[c];
        // Substitute by the original it covers (first by name wins; extras are released).
        let mut cover_of: BTreeMap<usize, usize> = BTreeMap::new();
        for s in subs {
            let covered = self.world.workers[s]
                .placement
                .covers
                .as_deref()
                .and_then(|p| self.by_name.get(p).copied())
                .filter(|p| self.primary_of[*p] == Some(c));
            match covered {
                Some(p) if !cover_of.contains_key(&p) => {
                    cover_of.insert(p, s);
                }
                _ => {
                    let reason = if covered.is_some() || contract.primaries.is_empty() {
                        ChangeReason::NoLongerNeeded
                    } else {
                        ChangeReason::RemovedFromContract
                    };
                    self.slots[s].reason = Some(reason);
                }
            }
        }
        let give_back = contract.give_back;
        let mut uncovered = Vec::new();
        for p in primaries {
            let worker = &world.workers[p];
            let sub = cover_of.get(&p).copied();
            match sub {
                Some(s) if worker.needs_replacement() => {
                    self.place(p, Some(c), Role::Benched, None, None);
                    self.place(s, Some(c), Role::Substitute, Some(p), None);
                }
                Some(s) => {
                    // The original is back. Swap when it is Healthy (dwell included in the
                    // verdict), the substitute has served its dwell, and the budget allows.
                    let swap = worker.health == Verdict::Healthy
                        && give_back
                        && self.served_long_enough(s, c)
                        && self.spend(c);
                    if swap {
                        self.place(
                            p,
                            Some(c),
                            Role::Primary,
                            None,
                            Some(ChangeReason::PrimaryRecovered),
                        );
                        let primary = worker.name.clone();
                        self.place(
                            s,
                            None,
                            Role::Spare,
                            None,
                            Some(ChangeReason::GivenBack { primary }),
                        );
                    } else {
                        self.place(p, Some(c), Role::Benched, None, None);
                        self.place(s, Some(c), Role::Substitute, Some(p), None);
                    }
                }
                None if worker.needs_replacement() => uncovered.push(p),
                None => {
                    let was_benched = self.world.workers[p].placement.role == Role::Benched
                        && self.current_contract(p) == Some(c);
                    let reason = if was_benched {
                        ChangeReason::PrimaryRecovered
                    } else {
                        ChangeReason::JoinedContract
                    };
                    self.place(p, Some(c), Role::Primary, None, Some(reason));
                }
            }
        }
        (!uncovered.is_empty()).then_some(Need::Cover(uncovered))
    }

    fn keep_threshold(&mut self, c: usize) -> Option<Need> {
        let subs = self.retained_substitutes(c);
        for p in self.primaries[c].clone() {
            let reason = Some(ChangeReason::JoinedContract);
            self.place(p, Some(c), Role::Primary, None, reason);
        }
        for &s in &subs {
            self.place(s, Some(c), Role::Substitute, None, None);
        }
        let delivered = self.release_surplus(c, &subs, &[], None);
        self.threshold_subs.insert(c, subs);
        let deficit = self.world.contracts[c].required() - delivered;
        (deficit > 0.0).then_some(Need::Deficit(deficit))
    }

    /// Threshold: release substitutes, biggest first, while delivered stays comfortably above
    /// the floor. `old` have served before (dwell and budget apply); `new` were lent in this
    /// pass (un-lending them costs nothing and frees them for later contracts). During the fill
    /// (`taken` given), old ones a bigger new lend made redundant are released too and offered
    /// to contracts still short (see the rounds in `fill`). Returns the hashrate delivered
    /// afterwards.
    fn release_surplus(
        &mut self,
        c: usize,
        old: &[usize],
        new: &[usize],
        mut taken: Option<&mut [bool]>,
    ) -> f64 {
        let world = self.world;
        let cap = |w: usize| world.workers[w].capacity();
        // Only those still serving `c` (earlier rounds may have released some).
        let here = |s: &usize| {
            self.slots[*s].contract == Some(c) && self.slots[*s].role == Role::Substitute
        };
        let old: Vec<usize> = old.iter().copied().filter(here).collect();
        let new: Vec<usize> = new.iter().copied().filter(here).collect();
        let (old, new) = (old.as_slice(), new.as_slice());
        let mut delivered: f64 = self.primaries[c].iter().map(|&p| cap(p)).sum::<f64>()
            + old.iter().map(|&s| cap(s)).sum::<f64>()
            + new.iter().map(|&s| cap(s)).sum::<f64>();
        let comfortable = world.contracts[c].comfortable();
        let mut order: Vec<usize> = old.iter().chain(new).copied().collect();
        order.sort_by(|&a, &b| {
            cap(b)
                .total_cmp(&cap(a))
                .then_with(|| world.workers[a].name.cmp(&world.workers[b].name))
        });
        for s in order {
            if delivered - cap(s) < comfortable {
                continue;
            }
            if new.contains(&s) {
                self.slots[s] = Slot {
                    contract: None,
                    role: Role::Spare,
                    covers: None,
                    reason: None,
                };
                if let Some(t) = taken.as_deref_mut() {
                    t[s] = false;
                }
                if let Some(l) = self.lent.get_mut(&c) {
                    l.retain(|&x| x != s);
                }
                if let Some(b) = &mut self.budget[c] {
                    *b += 1;
                    self.outcomes[c].reassignments =
                        self.outcomes[c].reassignments.saturating_sub(1);
                }
                delivered -= cap(s);
            } else if self.served_long_enough(s, c) && self.spend(c) {
                self.place(
                    s,
                    None,
                    Role::Spare,
                    None,
                    Some(ChangeReason::NoLongerNeeded),
                );
                delivered -= cap(s);
                if taken.is_some() {
                    self.freed.push(s);
                }
            }
        }
        delivered
    }

    fn fill(&mut self, needs: Vec<(usize, Need)>) {
        if needs.is_empty() {
            return;
        }
        let mut pending: BTreeMap<usize, Need> = needs.into_iter().collect();
        // Free spares: healthy, in service, not a primary, not placed in a contract by phase 2,
        // sorted by (expected hashrate, name) for best-fit search.
        let mut free: Vec<usize> = (0..self.world.workers.len())
            .filter(|&w| {
                let worker = &self.world.workers[w];
                self.by_name.get(worker.name.as_str()) == Some(&w)
                    && self.primary_of[w].is_none()
                    && self.slots[w].contract.is_none()
                    && worker.health == Verdict::Healthy
                    && !worker.out_of_service()
                    && finite_non_negative(worker.expected_hashrate) > 0.0
            })
            .collect();
        free.sort_by(|&a, &b| {
            let (wa, wb) = (&self.world.workers[a], &self.world.workers[b]);
            wa.expected_hashrate
                .total_cmp(&wb.expected_hashrate)
                .then_with(|| wa.name.cmp(&wb.name))
        });
        let mut taken = vec![false; self.world.workers.len()];
        // Rounds: a Threshold lend can make an old substitute redundant; it is released at once
        // and offered to the contracts that were still short, so that the next pass finds
        // nothing to do (a fixed point). Each round frees at least one old substitute, so this
        // ends.
        loop {
            // Keyed by the selector's canonical text (kube's selectors are not `Ord`).
            let mut selector_cache: BTreeMap<Option<String>, Vec<usize>> = BTreeMap::new();
            for c in self.fill_order() {
                let Some(need) = pending.remove(&c) else {
                    continue;
                };
                // Selector matches are cached per distinct selector (contracts share a few).
                let selector = self.world.contracts[c].spare_selector.as_ref();
                let matching = selector_cache
                    .entry(selector.map(|s| s.to_string()))
                    .or_insert_with(|| {
                        free.iter()
                            .copied()
                            .filter(|&w| {
                                selector.is_none_or(|s| s.matches(&self.world.workers[w].labels))
                            })
                            .collect()
                    });
                let candidates: Vec<usize> = matching
                    .iter()
                    .copied()
                    .filter(|&w| !taken[w] && self.owner_allows(w, c))
                    .collect();
                match need {
                    Need::Cover(originals) => self.fill_cover(c, originals, candidates, &mut taken),
                    Need::Deficit(d) => self.fill_deficit(c, d, candidates, &mut taken),
                }
            }
            let freed = std::mem::take(&mut self.freed);
            if freed.is_empty() || self.unmet.is_empty() {
                break;
            }
            for w in freed {
                let worker = &self.world.workers[w];
                if worker.health == Verdict::Healthy
                    && !worker.out_of_service()
                    && !free.contains(&w)
                {
                    free.push(w);
                }
                taken[w] = false;
            }
            free.sort_by(|&a, &b| {
                let (wa, wb) = (&self.world.workers[a], &self.world.workers[b]);
                wa.expected_hashrate
                    .total_cmp(&wb.expected_hashrate)
                    .then_with(|| wa.name.cmp(&wb.name))
            });
            pending = std::mem::take(&mut self.unmet);
            for c in pending.keys() {
                self.outcomes[*c]
                    .conditions
                    .retain(|k| !matches!(k, ContractCondition::NoSpareCapacity { .. }));
            }
        }
        self.unmet.clear();
    }

    fn fill_cover(
        &mut self,
        c: usize,
        originals: Vec<usize>,
        mut candidates: Vec<usize>,
        taken: &mut [bool],
    ) {
        let mut uncovered = Vec::new();
        let mut uncovered_idx = Vec::new();
        let mut missing = 0.0;
        let mut limited = false;
        let world = self.world;
        for p in originals {
            let want = finite_non_negative(self.world.workers[p].expected_hashrate);
            // Smallest spare at least as big as the original, else the biggest one below it.
            let pick = candidates
                .iter()
                .position(|&w| self.world.workers[w].expected_hashrate >= want)
                .or_else(|| candidates.len().checked_sub(1));
            let original = &world.workers[p];
            let verdict = if original.out_of_service() {
                Verdict::Maintenance
            } else {
                original.health
            };
            let was_benched =
                original.placement.role == Role::Benched && self.current_contract(p) == Some(c);
            match pick {
                Some(i) if !limited && self.spend(c) => {
                    let s = candidates.remove(i);
                    taken[s] = true;
                    let substitute = self.world.workers[s].name.clone();
                    let primary = original.name.clone();
                    self.place(
                        p,
                        Some(c),
                        Role::Benched,
                        None,
                        Some(ChangeReason::PrimaryFailed {
                            verdict,
                            substitute,
                        }),
                    );
                    self.place(
                        s,
                        Some(c),
                        Role::Substitute,
                        Some(p),
                        Some(ChangeReason::CoversFailedPrimary { primary, verdict }),
                    );
                }
                found => {
                    if found.is_some() {
                        limited = true;
                    } else {
                        uncovered.push(original.name.clone());
                        uncovered_idx.push(p);
                        missing += want;
                    }
                    let reason = if was_benched {
                        ChangeReason::ServingWithoutCover
                    } else {
                        ChangeReason::JoinedContract
                    };
                    self.place(p, Some(c), Role::Primary, None, Some(reason));
                }
            }
        }
        if !uncovered.is_empty() {
            self.outcomes[c]
                .conditions
                .push(ContractCondition::NoSpareCapacity {
                    missing_hashrate: missing,
                    uncovered,
                });
            self.unmet.insert(c, Need::Cover(uncovered_idx));
        }
    }

    fn fill_deficit(&mut self, c: usize, deficit: f64, candidates: Vec<usize>, taken: &mut [bool]) {
        let cap = |w: usize| finite_non_negative(self.world.workers[w].expected_hashrate);
        // Fewest spares: the k largest cover the deficit iff any k do; keep the k−1 largest and
        // pick the smallest spare that covers the rest.
        let mut by_size = candidates.clone();
        by_size.sort_by(|&a, &b| {
            cap(b)
                .total_cmp(&cap(a))
                .then_with(|| self.world.workers[a].name.cmp(&self.world.workers[b].name))
        });
        let mut chosen: Vec<usize> = Vec::new();
        let mut sum = 0.0;
        let mut k = None;
        for (i, &w) in by_size.iter().enumerate() {
            if sum + cap(w) >= deficit {
                k = Some(i);
                break;
            }
            sum += cap(w);
        }
        match k {
            Some(last) => {
                chosen.extend_from_slice(&by_size[..last]);
                let rest = deficit - sum;
                // `candidates` is sorted ascending; the first fitting one not already chosen.
                let fit = candidates
                    .iter()
                    .copied()
                    .find(|&w| cap(w) >= rest && !chosen.contains(&w))
                    .unwrap_or(by_size[last]);
                chosen.push(fit);
            }
            None => chosen = by_size.clone(),
        }
        let mut remaining = deficit;
        let mut lent = Vec::new();
        let mut limited = false;
        for s in chosen {
            if !self.spend(c) {
                limited = true;
                break;
            }
            taken[s] = true;
            lent.push(s);
            let reason = ChangeReason::CoversDeficit {
                deficit_hashrate: remaining,
            };
            remaining -= cap(s);
            self.place(s, Some(c), Role::Substitute, None, Some(reason));
        }
        if k.is_none() && remaining > 0.0 {
            self.outcomes[c]
                .conditions
                .push(ContractCondition::NoSpareCapacity {
                    missing_hashrate: remaining,
                    uncovered: Vec::new(),
                });
            if !limited {
                self.unmet.insert(c, Need::Deficit(remaining));
            }
        }
        if !lent.is_empty() {
            self.lent.entry(c).or_default().extend(lent);
            let old = self.threshold_subs.get(&c).cloned().unwrap_or_default();
            let new = self.lent.get(&c).cloned().unwrap_or_default();
            self.release_surplus(c, &old, &new, Some(taken));
        }
    }

    fn finish(mut self) -> Allocation {
        let world = self.world;
        let mut placements = BTreeMap::new();
        let mut changes = Vec::new();
        for (w, worker) in world.workers.iter().enumerate() {
            if self.by_name.get(worker.name.as_str()) != Some(&w) {
                continue;
            }
            let slot = &self.slots[w];
            let contract = slot.contract.map(|c| world.contracts[c].name.clone());
            let covers = slot.covers.map(|p| world.workers[p].name.clone());
            let mut placement = Placement {
                contract,
                role: slot.role,
                covers,
                since: world.now,
            };
            if placement.same_slot(&worker.placement) {
                placement.since = worker.placement.since;
            } else {
                let reason = slot
                    .reason
                    .clone()
                    .unwrap_or_else(|| self.default_reason(w));
                changes.push(Change {
                    worker: worker.name.clone(),
                    from_contract: worker.placement.contract.clone(),
                    from_role: worker.placement.role,
                    to_contract: placement.contract.clone(),
                    to_role: placement.role,
                    reason,
                });
            }
            if let Some(c) = slot.contract {
                let o = &mut self.outcomes[c];
                match slot.role {
                    Role::Primary => {
                        o.primaries += 1;
                        o.planned_hashrate += worker.capacity();
                    }
                    Role::Substitute => {
                        o.substitutes += 1;
                        o.planned_hashrate += worker.capacity();
                    }
                    Role::Benched => o.primaries += 1,
                    Role::Spare => {}
                }
            }
            placements.insert(worker.name.clone(), placement);
        }
        let contracts = world
            .contracts
            .iter()
            .zip(self.outcomes)
            .map(|(c, o)| (c.name.clone(), o))
            .collect();
        changes.sort_by(|a, b| a.worker.cmp(&b.worker));
        Allocation {
            placements,
            changes,
            contracts,
        }
    }

    /// Reason for a move no rule recorded one for: a worker leaving a contract.
    fn default_reason(&self, w: usize) -> ChangeReason {
        let worker = &self.world.workers[w];
        match self.current_contract(w) {
            Some(c) if !self.world.contracts[c].active => ChangeReason::ContractInactive,
            Some(_) => ChangeReason::RemovedFromContract,
            None if worker.placement.contract.is_some() => ChangeReason::ContractInactive,
            None => ChangeReason::JoinedContract,
        }
    }
}
