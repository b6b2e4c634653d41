//! The demo's live view: a full table redrawn each second on a terminal, one plain line per second
//! (plus one per story event) otherwise. Pure: frames are strings built from a status snapshot.

use jiff::Timestamp;

use super::story::IncidentReport;
use crate::local::store::StatusDocument;
use crate::local::table::{render, workers_table};
use crate::scheduler::fmt_hashrate;

/// ANSI: cursor home, clear screen.
pub const CLEAR: &str = "\x1b[H\x1b[2J";

fn pct(x: Option<f64>) -> String {
    x.map(|u| format!("{:.1}%", u * 100.0))
        .unwrap_or_else(|| "-".into())
}

/// One full frame for a terminal.
pub fn frame(
    elapsed_secs: f64,
    stage: &str,
    doc: &StatusDocument,
    incidents: &[IncidentReport],
    now: Timestamp,
) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "hashsched demo — t={elapsed_secs:>4.0}s — {stage}\n"
    ));
    if let Some(h) = &doc.hub {
        out.push_str(&format!(
            "hub {} on {} · routing generation {} · {} miners connected\n",
            h.name,
            h.stratum,
            h.routing_generation
                .map(|g| g.to_string())
                .unwrap_or_else(|| "-".into()),
            h.connections
        ));
    }
    out.push('\n');
    out.push_str(&workers_table(&doc.workers, now));
    out.push('\n');
    let rows: Vec<Vec<String>> = doc
        .contracts
        .iter()
        .map(|c| {
            vec![
                c.name.clone(),
                c.mode.clone(),
                c.phase.clone(),
                format!(
                    "{} / {}",
                    c.delivered.map(fmt_hashrate).unwrap_or_else(|| "-".into()),
                    c.contracted.map(fmt_hashrate).unwrap_or_else(|| "-".into())
                ),
                format!("{} ({}/{})", pct(c.uptime), c.up_slots, c.observed_slots),
                c.failovers.to_string(),
                c.workers_display().join(","),
            ]
        })
        .collect();
    out.push_str(&render(
        &[
            "CONTRACT",
            "MODE",
            "PHASE",
            "DELIVERED / CONTRACTED",
            "UPTIME",
            "FAILOVERS",
            "WORKERS",
        ],
        &rows,
    ));
    out.push('\n');
    let pools: Vec<Vec<String>> = doc
        .pools
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                if p.up { "up" } else { "DOWN" }.into(),
                p.workers.to_string(),
                p.accepted.to_string(),
            ]
        })
        .collect();
    out.push_str(&render(&["POOL", "STATE", "WORKERS", "ACCEPTED"], &pools));
    out.push_str("\nStory:\n");
    for i in incidents {
        let state = match (
            i.injected_at_seconds,
            i.detected_after_seconds,
            i.restored_after_seconds,
        ) {
            (None, _, _) => "waiting".to_owned(),
            (Some(_), None, _) => "injected, not detected yet".to_owned(),
            (Some(_), Some(d), None) => format!("detected after {d:.1}s, restoring"),
            (Some(_), Some(d), Some(r)) => {
                format!("detected after {d:.1}s, restored after {r:.1}s")
            }
        };
        out.push_str(&format!("  {:<15} {state:<45} {}\n", i.name, i.description));
    }
    out
}

/// One line per second when stdout is not a terminal.
pub fn line(elapsed_secs: f64, doc: &StatusDocument) -> String {
    let mut phases: std::collections::BTreeMap<&str, usize> = Default::default();
    for w in &doc.workers {
        *phases.entry(w.phase.as_str()).or_default() += 1;
    }
    let phases: Vec<String> = phases.iter().map(|(p, n)| format!("{n} {p}")).collect();
    let contracts: Vec<String> = doc
        .contracts
        .iter()
        .map(|c| {
            format!(
                "{} {} {}/{} up {}",
                c.name,
                c.phase,
                c.delivered.map(fmt_hashrate).unwrap_or_else(|| "-".into()),
                c.contracted.map(fmt_hashrate).unwrap_or_else(|| "-".into()),
                pct(c.uptime)
            )
        })
        .collect();
    format!(
        "[{elapsed_secs:>4.0}s] workers: {} | {}",
        phases.join(", "),
        contracts.join(" | ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::story::{Cast, IncidentKind};
    use crate::local::store::{ContractRow, WorkerRow};

    #[test]
    fn frames_and_lines_show_workers_contracts_and_story() {
        let doc = StatusDocument {
            workers: vec![
                WorkerRow {
                    name: "acme-01".into(),
                    phase: "Healthy".into(),
                    ..WorkerRow::default()
                },
                WorkerRow {
                    name: "acme-02".into(),
                    phase: "Dead".into(),
                    ..WorkerRow::default()
                },
            ],
            contracts: vec![ContractRow {
                name: "acme-m2m".into(),
                mode: "MinerToMiner".into(),
                phase: "Active".into(),
                contracted: Some(600e3),
                delivered: Some(400e3),
                uptime: Some(1.0),
                ..ContractRow::default()
            }],
            ..StatusDocument::default()
        };
        let now = Timestamp::UNIX_EPOCH;
        let mut inc = IncidentReport::new(IncidentKind::MinerDies, &Cast::default());
        inc.injected_at_seconds = Some(1.0);
        inc.detected_after_seconds = Some(5.0);
        let f = frame(12.0, "story", &doc, &[inc], now);
        assert!(f.contains("acme-02   Dead"), "{f}");
        assert!(f.contains("400.0 kH/s / 600.0 kH/s"), "{f}");
        assert!(f.contains("detected after 5.0s, restoring"), "{f}");
        assert!(!f.contains(CLEAR));
        let l = line(12.0, &doc);
        assert_eq!(
            l,
            "[  12s] workers: 1 Dead, 1 Healthy | acme-m2m Active 400.0 kH/s/600.0 kH/s up 100.0%"
        );
    }
}
