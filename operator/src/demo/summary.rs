//! What the demo reports when it ends (text for people, JSON for scripts with `--summary-json`):
//! each incident with its detection and restore times, per-contract uptime and shortfall, shares
//! per pool, and how many miner reconnects the hub caused.

use serde::{Deserialize, Serialize};

use super::story::{Cast, IncidentKind, IncidentReport};
use crate::local::store::ContractRow;
use crate::local::table::{contracts_table, render, shortfall};

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
    /// Each contract's uptime and credit explained by the incidents, one line each.
    #[serde(default)]
    pub accounts: Vec<ContractAccount>,
    pub pools: Vec<PoolShares>,
    /// Reconnects of simulated miners (TCP connections beyond each miner's first), i.e. caused
    /// by the hub; the story's own kill and restart of a miner is not one.
    pub miner_reconnects: u64,
    /// Average CPU use of the whole process (hub, scheduler, simulated miners and pools), in
    /// cores, when the OS tells.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_cores: Option<f64>,
}

/// One contract's ledger next to what the incidents should have cost it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContractAccount {
    pub contract: String,
    /// What the story's incidents should have cost the contract, TH/s·hours: each incident's
    /// missing hashrate (the expected hashrate of a dead miner until its spare served, half of
    /// a degraded miner's until the spare covering it served) × that time.
    pub incident_shortfall_hashrate_hours: f64,
    /// The ledger's signed shortfall (negative: delivered more than contracted), TH/s·hours.
    pub net_shortfall_hashrate_hours: f64,
    /// The explanation, one line.
    pub explanation: String,
}

/// The incidents' expected cost per contract: (contract, TH/s·h, words).
pub fn incident_costs(
    cast: &Cast,
    incidents: &[IncidentReport],
    expected_hashrate: &dyn Fn(&str) -> f64,
    run_seconds: f64,
) -> Vec<(String, f64, String)> {
    let mut out = Vec::new();
    for i in incidents {
        let Some(at) = i.injected_at_seconds else {
            continue;
        };
        // Until the spare served, or the end of the run.
        let lasted = i
            .restored_after_seconds
            .unwrap_or((run_seconds - at).max(0.0));
        let (contract, missing, who) = match i.kind {
            IncidentKind::MinerDies => (
                &cast.m2m_contract,
                expected_hashrate(&cast.rented),
                format!("{} dead {lasted:.1} s until its spare served", cast.rented),
            ),
            IncidentKind::MinerDegrades => (
                &cast.threshold_contract,
                expected_hashrate(&cast.degrading) / 2.0,
                format!(
                    "{} at half speed {lasted:.1} s until a spare served",
                    cast.degrading
                ),
            ),
            _ => continue,
        };
        out.push((contract.clone(), missing * lasted / 3600.0 / 1e12, who));
    }
    out
}

/// The one-line explanation of each contract's uptime and credit.
pub fn accounts(
    contracts: &[ContractRow],
    costs: &[(String, f64, String)],
) -> Vec<ContractAccount> {
    contracts
        .iter()
        .map(|c| {
            let mine: Vec<&(String, f64, String)> =
                costs.iter().filter(|(n, _, _)| *n == c.name).collect();
            let cost: f64 = mine.iter().map(|(_, x, _)| x).sum();
            let why = if mine.is_empty() {
                "no incident touched it".to_owned()
            } else {
                mine.iter()
                    .map(|(_, x, w)| format!("{w} ≈ {}", shortfall(*x)))
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            let net = c.net_shortfall_th_hours;
            let owed = if net > 0.0 {
                format!(
                    "owed {}{}",
                    shortfall(c.shortfall_th_hours),
                    match (c.shortfall_low, c.shortfall_high) {
                        (Some(l), Some(h)) =>
                            format!(" (95%: {} to {})", shortfall(l), shortfall(h)),
                        _ => String::new(),
                    }
                )
            } else {
                format!(
                    "delivered {} more than contracted over the run, owed 0",
                    shortfall(-net)
                )
            };
            let credit = match &c.currency {
                Some(cur) => format!("{:.4} {cur}", c.credit),
                None => format!("{:.4}", c.credit),
            };
            ContractAccount {
                contract: c.name.clone(),
                incident_shortfall_hashrate_hours: cost,
                net_shortfall_hashrate_hours: net,
                explanation: format!(
                    "{}: {} — uptime {:.2}% ({} up, {} down, {} unobserved slots); incidents: {why}; measured: {owed}; credit {credit}",
                    c.name,
                    c.phase,
                    c.uptime.unwrap_or(1.0) * 100.0,
                    c.up_slots,
                    c.down_slots,
                    c.unobserved_slots
                ),
            }
        })
        .collect()
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
        for a in &self.accounts {
            out.push_str(&format!("  {}\n", a.explanation));
        }
        if !self.accounts.is_empty() {
            out.push_str(
                "  (slots of the warm-up and before a contract's first share are unobserved; a \
                 slot is down only when its shares are significantly below the tolerance line)\n",
            );
        }
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
