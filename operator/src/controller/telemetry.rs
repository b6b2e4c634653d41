//! The operator's own `/metrics`: reconciles, hub scrapes and routing pushes, cycle duration,
//! apiserver writes and leadership, under the names of [`crate::metric_names`].
//!
//! The per-contract SLIs and per-worker phases (`hashsched_contract_*`, `hashsched_worker_phase`)
//! are encoded by the shared SLI collector; [`OperatorMetrics::new_with`] is where the operator
//! registers it next to these.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::metric_names::{self as names, label};

type Labels2 = [(&'static str, String); 2];
type Labels3 = [(&'static str, String); 3];

fn family(exposed: &str) -> &str {
    exposed.strip_suffix("_total").unwrap_or(exposed)
}

/// Result label values.
pub const OK: &str = "ok";
pub const ERROR: &str = "error";

/// Counters and gauges updated by the controllers and the scheduling loop.
#[derive(Debug)]
pub struct OperatorMetrics {
    registry: Registry,
    reconciles: Family<Labels2, Counter>,
    scrapes: Family<Labels3, Counter>,
    pushes: Family<Labels3, Counter>,
    writes: Family<Labels2, Counter>,
    cycle: Histogram,
    leader: Gauge,
}

impl Default for OperatorMetrics {
    fn default() -> Self {
        Self::new_with(|_| {})
    }
}

impl OperatorMetrics {
    /// The operator's metrics; `extra` registers more (the contract and worker SLI collector).
    pub fn new_with(extra: impl FnOnce(&mut Registry)) -> Self {
        let mut registry = Registry::default();
        let reconciles = Family::<Labels2, Counter>::default();
        registry.register(
            family(names::OPERATOR_RECONCILES_TOTAL),
            "Reconciles by kind and result",
            reconciles.clone(),
        );
        let scrapes = Family::<Labels3, Counter>::default();
        registry.register(
            family(names::OPERATOR_HUB_SCRAPES_TOTAL),
            "Scrapes of hub pods' /metrics by hub, pod and result",
            scrapes.clone(),
        );
        let pushes = Family::<Labels3, Counter>::default();
        registry.register(
            family(names::OPERATOR_ROUTING_PUSHES_TOTAL),
            "Routing documents pushed to hub pods by hub, pod and result",
            pushes.clone(),
        );
        let writes = Family::<Labels2, Counter>::default();
        registry.register(
            family(names::OPERATOR_API_WRITES_TOTAL),
            "Writes to the Kubernetes API by kind and verb",
            writes.clone(),
        );
        // 1 ms .. ~16 s
        let cycle = Histogram::new(exponential_buckets(1e-3, 2.0, 15));
        registry.register(
            names::OPERATOR_CYCLE_DURATION,
            "One scrape-decide-write cycle",
            cycle.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            names::OPERATOR_LEADER,
            "1 while this replica holds the leader lease",
            leader.clone(),
        );
        // Hook: the shared contract / worker SLI collector registers here.
        extra(&mut registry);
        Self {
            registry,
            reconciles,
            scrapes,
            pushes,
            writes,
            cycle,
            leader,
        }
    }

    pub fn reconcile(&self, kind: &str, ok: bool) {
        self.reconciles
            .get_or_create(&[
                (label::KIND, kind.to_owned()),
                (label::RESULT, if ok { OK } else { ERROR }.to_owned()),
            ])
            .inc();
    }

    pub fn scrape(&self, hub: &str, pod: &str, ok: bool) {
        self.scrapes
            .get_or_create(&[
                (label::HUB, hub.to_owned()),
                (label::POD, pod.to_owned()),
                (label::RESULT, if ok { OK } else { ERROR }.to_owned()),
            ])
            .inc();
    }

    pub fn push(&self, hub: &str, pod: &str, ok: bool) {
        self.pushes
            .get_or_create(&[
                (label::HUB, hub.to_owned()),
                (label::POD, pod.to_owned()),
                (label::RESULT, if ok { OK } else { ERROR }.to_owned()),
            ])
            .inc();
    }

    /// One write to the apiserver; `verb` ∈ apply / patch_status / delete / event / create.
    pub fn write(&self, kind: &str, verb: &str) {
        self.writes
            .get_or_create(&[
                (label::KIND, kind.to_owned()),
                (label::VERB, verb.to_owned()),
            ])
            .inc();
    }

    /// Total writes so far (for the benchmark and tests).
    pub fn writes_total(&self) -> u64 {
        let text = self.render();
        let prefix = names::OPERATOR_API_WRITES_TOTAL;
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    pub fn cycle_seconds(&self, secs: f64) {
        self.cycle.observe(secs);
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// OpenMetrics text of everything.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_the_catalogue_names() {
        let m = OperatorMetrics::default();
        m.reconcile("StratumHub", true);
        m.scrape("mining/site-a", "10.0.0.1", false);
        m.push("mining/site-a", "10.0.0.1", true);
        m.write("Worker", "patch_status");
        m.write("Worker", "patch_status");
        m.cycle_seconds(0.01);
        m.set_leader(true);
        let text = m.render();
        for name in [
            names::OPERATOR_RECONCILES_TOTAL,
            names::OPERATOR_HUB_SCRAPES_TOTAL,
            names::OPERATOR_ROUTING_PUSHES_TOTAL,
            names::OPERATOR_API_WRITES_TOTAL,
            names::OPERATOR_LEADER,
        ] {
            assert!(text.contains(name), "{name} missing in\n{text}");
        }
        assert!(text.contains(&format!("{}_count 1", names::OPERATOR_CYCLE_DURATION)));
        assert_eq!(m.writes_total(), 2);
    }
}
