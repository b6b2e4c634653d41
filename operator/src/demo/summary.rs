//! What the demo reports when it ends (text for people, JSON for scripts with `--summary-json`):
//! each incident with its detection and restore times, per-contract uptime and shortfall, shares
//! per pool, and how many miner reconnects the hub caused.

use serde::{Deserialize, Serialize};

use super::story::IncidentReport;
use crate::local::store::ContractRow;
use crate::local::table::{contracts_table, render};

/// Shares the simulated pools accepted and rejected.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolShares {
    pub pool: String,
    pub accepted: u64,
    pub rejected: u64,
    /// Rejections by stratum error code (21 stale job, 22 duplicate, 23 low difficulty, ...).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub rejected_by_code: std::collections::BTreeMap<i64, u64>,
    /// TCP connections the pool saw from the hub (its upstream sessions).
    pub connections: u64,
}

/// The whole summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Wall time of the run, seconds.
    pub duration_seconds: f64,
    /// Every scripted incident was injected, detected and restored.
    pub all_handled: bool,
    pub miners: usize,
    pub incidents: Vec<IncidentReport>,
    pub contracts: Vec<ContractRow>,
    pub pools: Vec<PoolShares>,
    /// Reconnects of simulated miners (TCP connections beyond each miner's first), i.e. caused
    /// by the hub; the story's own kill and restart of a miner is not one.
    pub miner_reconnects: u64,
    /// Average CPU use of the whole process (hub, scheduler, simulated miners and pools), in
    /// cores, when the OS tells.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_cores: Option<f64>,
}

fn secs(x: Option<f64>) -> String {
    x.map(|s| format!("{s:.1}s")).unwrap_or_else(|| "-".into())
}

impl Summary {
    /// The summary as text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "hashsched demo — summary: {:.0} s, {} simulated miners{}\n\n",
            self.duration_seconds,
            self.miners,
            self.cpu_cores
                .map(|c| format!(", {c:.2} CPU cores on average"))
                .unwrap_or_default()
        ));
        out.push_str("Incidents (times measured from the injection):\n");
        let rows: Vec<Vec<String>> = self
            .incidents
            .iter()
            .map(|i| {
                vec![
                    i.name.clone(),
                    i.injected_at_seconds
                        .map(|t| format!("t+{t:.0}s"))
                        .unwrap_or_else(|| "not reached".into()),
                    secs(i.detected_after_seconds),
                    secs(i.restored_after_seconds),
                    if i.handled() { "yes" } else { "NO" }.into(),
                    if i.outcome.is_empty() {
                        i.description.clone()
                    } else {
                        i.outcome.clone()
                    },
                ]
            })
            .collect();
        out.push_str(&render(
            &[
                "INCIDENT",
                "INJECTED",
                "DETECTED",
                "RESTORED",
                "HANDLED",
                "WHAT HAPPENED",
            ],
            &rows,
        ));
        out.push_str("\nContracts:\n");
        out.push_str(&contracts_table(&self.contracts));
        out.push_str(
            "\nShares per pool (as the simulated pools counted them; rejections by stratum code: \
             21 stale job, 22 duplicate, 23 low difficulty):\n",
        );
        let rows: Vec<Vec<String>> = self
            .pools
            .iter()
            .map(|p| {
                vec![
                    p.pool.clone(),
                    p.accepted.to_string(),
                    if p.rejected_by_code.is_empty() {
                        p.rejected.to_string()
                    } else {
                        let codes: Vec<String> = p
                            .rejected_by_code
                            .iter()
                            .map(|(c, n)| format!("{n}×{c}"))
                            .collect();
                        format!("{} ({})", p.rejected, codes.join(" "))
                    },
                    p.connections.to_string(),
                ]
            })
            .collect();
        out.push_str(&render(
            &["POOL", "ACCEPTED", "REJECTED", "HUB CONNECTIONS"],
            &rows,
        ));
        out.push_str(&format!(
            "\nMiner reconnects caused: {} (pool failover and every lend/give-back moved miners \
             without a reconnect when 0)\n",
            self.miner_reconnects
        ));
        if self.all_handled {
            out.push_str("\nEvery scripted incident was detected and handled.\n");
        } else {
            let missing: Vec<&str> = self
                .incidents
                .iter()
                .filter(|i| !i.handled())
                .map(|i| i.name.as_str())
                .collect();
            out.push_str(&format!(
                "\nNOT HANDLED within the run: {} (try a longer --duration on a loaded machine)\n",
                missing.join(", ")
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::story::{Cast, IncidentKind};

    #[test]
    fn summary_text_lists_incidents_contracts_pools_and_reconnects() {
        let cast = Cast::default();
        let mut done = IncidentReport::new(IncidentKind::MinerDies, &cast);
        done.injected_at_seconds = Some(2.0);
        done.detected_after_seconds = Some(5.25);
        done.restored_after_seconds = Some(6.0);
        done.outcome = "spare-01 lent to acme-m2m".into();
        let pending = IncidentReport::new(IncidentKind::PoolRecovers, &cast);
        let s = Summary {
            duration_seconds: 100.0,
            all_handled: false,
            miners: 12,
            incidents: vec![done, pending],
            pools: vec![PoolShares {
                pool: "acme-primary".into(),
                accepted: 42,
                rejected: 1,
                connections: 3,
                ..PoolShares::default()
            }],
            miner_reconnects: 0,
            ..Summary::default()
        };
        let t = s.render();
        assert!(t.contains("miner-dies"), "{t}");
        assert!(t.contains("5.2s") && t.contains("6.0s"), "{t}");
        assert!(t.contains("spare-01 lent to acme-m2m"), "{t}");
        assert!(t.contains("not reached"), "{t}");
        assert!(
            t.contains("NOT HANDLED within the run: pool-recovers"),
            "{t}"
        );
        assert!(t.contains("acme-primary   42"), "{t}");
        assert!(t.contains("Miner reconnects caused: 0"), "{t}");
        let j = serde_json::to_value(&s).unwrap();
        assert_eq!(j["incidents"][0]["detectedAfterSeconds"], 5.25);
        assert_eq!(j["allHandled"], false);
    }
}
