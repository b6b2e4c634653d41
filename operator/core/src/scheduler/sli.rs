//! The per-contract and per-worker SLIs of [`crate::metric_names`] (`hashsched_contract_*`,
//! `hashsched_worker_phase`), encoded from the objects' statuses — the ledger the scheduler keeps —
//! into a prometheus-client registry on each scrape. One encoder for every front end: local mode
//! serves it next to its embedded hub's series, the Kubernetes operator registers the same
//! collector next to its own internals.
//!
//! Series are built from a [`SliSnapshot`] at scrape time (like the hub's per-worker series), so
//! a deleted object's series disappear with it and nothing is kept twice.

use std::fmt::Debug;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::crd::{ContractPhase, RentalContract, Worker, WorkerPhase, conditions};
use crate::metric_names::{self, label, verdict};
use crate::scheduler::accounting::HASHES_PER_TH_HOUR;

/// One contract's SLIs, read from its status.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContractSli {
    pub namespace: String,
    pub contract: String,
    pub customer: String,
    /// H/s.
    pub contracted: f64,
    /// H/s.
    pub delivered: f64,
    /// The newest closed slot: `Some(true)` up, `Some(false)` down, `None` unobserved or none yet.
    pub up: Option<bool>,
    pub up_slots: u64,
    pub down_slots: u64,
    pub unobserved_slots: u64,
    pub uptime_ratio: f64,
    /// Hashes owed.
    pub shortfall_hashes: f64,
    pub credit: f64,
    pub failovers: u64,
    pub phase: ContractPhase,
    pub no_spare: bool,
}

impl ContractSli {
    /// From a RentalContract object; `namespace` when the object has none (local mode).
    pub fn from_object(c: &RentalContract, namespace: &str) -> Self {
        let st = c.status.clone().unwrap_or_default();
        let uptime = st.uptime.clone().unwrap_or_default();
        ContractSli {
            namespace: c
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| namespace.to_owned()),
            contract: c.metadata.name.clone().unwrap_or_default(),
            customer: c.spec.customer.clone(),
            contracted: st
                .contracted_hashrate
                .or(c.spec.contracted_hashrate)
                .map_or(0.0, |h| h.as_f64()),
            delivered: st.delivered_hashrate.map_or(0.0, |h| h.as_f64()),
            up: match st.accounting.as_ref().and_then(|a| a.last_slot.as_deref()) {
                Some(verdict::UP) => Some(true),
                Some(verdict::DOWN) => Some(false),
                _ => None,
            },
            up_slots: uptime.up_slots,
            down_slots: uptime
                .down_slots
                .max(uptime.observed_slots.saturating_sub(uptime.up_slots)),
            unobserved_slots: uptime.unobserved_slots,
            uptime_ratio: uptime.ratio.as_fraction(),
            shortfall_hashes: st.shortfall_hashrate_hours.unwrap_or(0.0).max(0.0)
                * HASHES_PER_TH_HOUR,
            credit: st.credit.unwrap_or(0.0).max(0.0),
            failovers: st.failover_count.unwrap_or(0),
            phase: st.phase.unwrap_or_default(),
            no_spare: conditions::is_true(&st.conditions, conditions::SPARES_EXHAUSTED),
        }
    }
}

/// One worker's phase, read from its status.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkerSli {
    pub namespace: String,
    pub worker: String,
    pub owner: String,
    pub phase: WorkerPhase,
}

impl WorkerSli {
    /// From a Worker object; `namespace` when the object has none (local mode).
    pub fn from_object(w: &Worker, namespace: &str) -> Self {
        WorkerSli {
            namespace: w
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| namespace.to_owned()),
            worker: w.metadata.name.clone().unwrap_or_default(),
            owner: w.spec.owner.to_string(),
            phase: w.status.as_ref().and_then(|s| s.phase).unwrap_or_default(),
        }
    }
}

/// Everything one scrape encodes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SliSnapshot {
    pub contracts: Vec<ContractSli>,
    pub workers: Vec<WorkerSli>,
}

impl SliSnapshot {
    /// From objects with status; `namespace` for objects without one (local mode's namespace).
    pub fn from_objects(workers: &[Worker], contracts: &[RentalContract], namespace: &str) -> Self {
        SliSnapshot {
            contracts: contracts
                .iter()
                .map(|c| ContractSli::from_object(c, namespace))
                .collect(),
            workers: workers
                .iter()
                .map(|w| WorkerSli::from_object(w, namespace))
                .collect(),
        }
    }
}

/// Where the collector reads the current snapshot on each scrape.
pub trait SliSource: Debug + Send + Sync + 'static {
    fn snapshot(&self) -> Arc<SliSnapshot>;
}

impl SliSource for Arc<SliSnapshot> {
    fn snapshot(&self) -> Arc<SliSnapshot> {
        self.clone()
    }
}

/// The collector; register it with [`register`].
#[derive(Debug)]
pub struct SliCollector<S: SliSource> {
    source: S,
}

/// Adds the SLI collector to a registry (the operator's, or local mode's own).
pub fn register<S: SliSource>(registry: &mut Registry, source: S) {
    registry.register_collector(Box::new(SliCollector { source }));
}

/// OpenMetrics text of one snapshot (ends with `# EOF`).
pub fn render(snapshot: Arc<SliSnapshot>) -> String {
    let mut registry = Registry::default();
    register(&mut registry, snapshot);
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
        out.clear(); // fmt::Write into a String does not fail; never panic on a scrape
    }
    out
}

const PHASES: [ContractPhase; 5] = [
    ContractPhase::Pending,
    ContractPhase::Active,
    ContractPhase::Degraded,
    ContractPhase::Breached,
    ContractPhase::Expired,
];
const WORKER_PHASES: [WorkerPhase; 5] = [
    WorkerPhase::Healthy,
    WorkerPhase::Degraded,
    WorkerPhase::Dead,
    WorkerPhase::Unknown,
    WorkerPhase::Maintenance,
];

type Labels = Vec<(&'static str, String)>;

fn gauge<N>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl Iterator<Item = (Labels, N)>,
) -> Result<(), std::fmt::Error>
where
    ConstGauge<N>: EncodeMetric,
{
    let mut rows = rows.peekable();
    if rows.peek().is_none() {
        return Ok(());
    }
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in rows {
        ConstGauge::new(v).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

fn counter(
    enc: &mut DescriptorEncoder,
    exposed: &str,
    help: &str,
    rows: impl Iterator<Item = (Labels, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut rows = rows.peekable();
    if rows.peek().is_none() {
        return Ok(());
    }
    // The encoder appends `_total` to counters.
    let family = exposed.strip_suffix("_total").unwrap_or(exposed);
    let mut m = enc.encode_descriptor(family, help, None, MetricType::Counter)?;
    for (labels, v) in rows {
        ConstCounter::new(v).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

fn contract_labels(c: &ContractSli) -> Labels {
    vec![
        (label::NAMESPACE, c.namespace.clone()),
        (label::CONTRACT, c.contract.clone()),
        (label::CUSTOMER, c.customer.clone()),
    ]
}

fn with(mut l: Labels, k: &'static str, v: &str) -> Labels {
    l.push((k, v.to_owned()));
    l
}

impl<S: SliSource> Collector for SliCollector<S> {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = self.source.snapshot();
        let cs = &s.contracts;
        gauge(
            &mut enc,
            metric_names::CONTRACT_CONTRACTED_HASHRATE,
            "Contracted hashrate, hashes per second",
            cs.iter().map(|c| (contract_labels(c), c.contracted)),
        )?;
        gauge(
            &mut enc,
            metric_names::CONTRACT_DELIVERED_HASHRATE,
            "Hashrate delivered to the contract's pools, estimated from shares, hashes per second",
            cs.iter().map(|c| (contract_labels(c), c.delivered)),
        )?;
        gauge(
            &mut enc,
            metric_names::CONTRACT_UP,
            "1 when the newest judged SLA slot was up, 0 when down (absent while unobserved)",
            cs.iter()
                .filter_map(|c| c.up.map(|u| (contract_labels(c), i64::from(u)))),
        )?;
        counter(
            &mut enc,
            metric_names::CONTRACT_SLOTS_TOTAL,
            "Closed SLA slots by verdict (up, down, unobserved)",
            cs.iter().flat_map(|c| {
                [
                    (verdict::UP, c.up_slots),
                    (verdict::DOWN, c.down_slots),
                    (verdict::UNOBSERVED, c.unobserved_slots),
                ]
                .into_iter()
                .map(move |(v, n)| (with(contract_labels(c), label::VERDICT, v), n))
            }),
        )?;
        gauge(
            &mut enc,
            metric_names::CONTRACT_UPTIME_RATIO,
            "Up slots over judged slots of the contract's ledger",
            cs.iter().map(|c| (contract_labels(c), c.uptime_ratio)),
        )?;
        gauge(
            &mut enc,
            metric_names::CONTRACT_SHORTFALL_HASHES,
            "Hashes owed (unbiased estimate of contracted minus delivered, when positive)",
            cs.iter().map(|c| (contract_labels(c), c.shortfall_hashes)),
        )?;
        gauge(
            &mut enc,
            metric_names::CONTRACT_CREDIT,
            "Credit owed, in the contract's SLA currency",
            cs.iter().map(|c| (contract_labels(c), c.credit)),
        )?;
        counter(
            &mut enc,
            metric_names::CONTRACT_FAILOVERS_TOTAL,
            "Spares lent to the contract",
            cs.iter().map(|c| (contract_labels(c), c.failovers)),
        )?;
        gauge(
            &mut enc,
            metric_names::CONTRACT_PHASE,
            "1 for the contract's current phase, 0 for the others",
            cs.iter().flat_map(|c| {
                PHASES.iter().map(move |p| {
                    (
                        with(contract_labels(c), label::PHASE, &p.to_string()),
                        i64::from(*p == c.phase),
                    )
                })
            }),
        )?;
        gauge(
            &mut enc,
            metric_names::CONTRACT_NO_SPARE,
            "1 while the contract wants a spare and none is free",
            cs.iter()
                .map(|c| (contract_labels(c), i64::from(c.no_spare))),
        )?;
        gauge(
            &mut enc,
            metric_names::WORKER_PHASE,
            "1 for the worker's current phase, 0 for the others",
            s.workers.iter().flat_map(|w| {
                WORKER_PHASES.iter().map(move |p| {
                    (
                        vec![
                            (label::NAMESPACE, w.namespace.clone()),
                            (label::WORKER, w.worker.clone()),
                            (label::OWNER, w.owner.clone()),
                            (label::PHASE, p.to_string()),
                        ],
                        i64::from(*p == w.phase),
                    )
                })
            }),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    /// `name{labels} value` lines of an exposition, labels parsed.
    fn samples(text: &str) -> Vec<(String, BTreeMap<String, String>, String)> {
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let (series, value) = l.rsplit_once(' ').unwrap();
                let (name, labels) = match series.split_once('{') {
                    Some((n, rest)) => (n, rest.trim_end_matches('}')),
                    None => (series, ""),
                };
                let labels = labels
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let (k, v) = p.split_once('=').unwrap();
                        (k.to_owned(), v.trim_matches('"').to_owned())
                    })
                    .collect();
                (name.to_owned(), labels, value.to_owned())
            })
            .collect()
    }

    fn snapshot() -> SliSnapshot {
        SliSnapshot {
            contracts: vec![ContractSli {
                namespace: "mining".into(),
                contract: "acme-m2m".into(),
                customer: "acme".into(),
                contracted: 416e12,
                delivered: 410e12,
                up: Some(true),
                up_slots: 99,
                down_slots: 1,
                unobserved_slots: 3,
                uptime_ratio: 0.99,
                shortfall_hashes: 3.6e15,
                credit: 0.0025,
                failovers: 2,
                phase: ContractPhase::Active,
                no_spare: false,
            }],
            workers: vec![WorkerSli {
                namespace: "mining".into(),
                worker: "acme-s19-01".into(),
                owner: "acme".into(),
                phase: WorkerPhase::Healthy,
            }],
        }
    }

    #[test]
    fn every_contract_sli_and_the_worker_phase_appear_with_their_labels() {
        let text = render(Arc::new(snapshot()));
        assert!(text.trim_end().ends_with("# EOF"), "{text}");
        let s = samples(&text);
        let contract_keys: BTreeSet<&str> = [label::NAMESPACE, label::CONTRACT, label::CUSTOMER]
            .into_iter()
            .collect();
        for name in metric_names::CATALOGUE
            .iter()
            .filter(|n| n.starts_with("hashsched_contract_") || **n == metric_names::WORKER_PHASE)
        {
            let rows: Vec<_> = s.iter().filter(|(n, _, _)| n == name).collect();
            assert!(!rows.is_empty(), "{name} missing:\n{text}");
            for (_, labels, _) in rows {
                let keys: BTreeSet<&str> = labels.keys().map(String::as_str).collect();
                let want: BTreeSet<&str> = if *name == metric_names::WORKER_PHASE {
                    [label::NAMESPACE, label::WORKER, label::OWNER, label::PHASE].into()
                } else if *name == metric_names::CONTRACT_SLOTS_TOTAL {
                    contract_keys
                        .iter()
                        .copied()
                        .chain([label::VERDICT])
                        .collect()
                } else if *name == metric_names::CONTRACT_PHASE {
                    contract_keys
                        .iter()
                        .copied()
                        .chain([label::PHASE])
                        .collect()
                } else {
                    contract_keys.clone()
                };
                assert_eq!(keys, want, "{name}");
                assert_eq!(labels[label::NAMESPACE], "mining");
            }
        }
        let value = |name: &str, extra: Option<(&str, &str)>| {
            s.iter()
                .find(|(n, l, _)| {
                    n == name && extra.is_none_or(|(k, v)| l.get(k).map(String::as_str) == Some(v))
                })
                .map(|(_, _, v)| v.clone())
                .unwrap_or_else(|| panic!("{name} {extra:?}"))
        };
        assert_eq!(
            value(
                metric_names::CONTRACT_SLOTS_TOTAL,
                Some(("verdict", "down"))
            ),
            "1"
        );
        assert_eq!(
            value(
                metric_names::CONTRACT_SLOTS_TOTAL,
                Some(("verdict", "unobserved"))
            ),
            "3"
        );
        assert_eq!(
            value(metric_names::CONTRACT_PHASE, Some(("phase", "Active"))),
            "1"
        );
        assert_eq!(
            value(metric_names::CONTRACT_PHASE, Some(("phase", "Breached"))),
            "0"
        );
        assert_eq!(value(metric_names::CONTRACT_UP, None), "1");
        assert_eq!(
            value(metric_names::WORKER_PHASE, Some(("phase", "Healthy"))),
            "1"
        );
        assert_eq!(
            value(metric_names::WORKER_PHASE, Some(("phase", "Dead"))),
            "0"
        );
        // Operator internals are the operator's, not this encoder's.
        assert!(!text.contains("hashsched_operator_"));
    }

    #[test]
    fn an_unobserved_newest_slot_has_no_up_series_and_nothing_renders_for_nothing() {
        let mut snap = snapshot();
        snap.contracts[0].up = None;
        let text = render(Arc::new(snap));
        assert!(!text.contains(&format!("{} ", metric_names::CONTRACT_UP)));
        assert!(!text.contains(&format!("{}{{", metric_names::CONTRACT_UP)));
        let empty = render(Arc::new(SliSnapshot::default()));
        assert_eq!(empty.trim(), "# EOF");
    }
}
