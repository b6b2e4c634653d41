//! The tables `hashsched status`, the demo's live view and its summary print: pure functions from
//! rows to text, aligned like `kubectl get`.

use jiff::Timestamp;

#[cfg(test)]
use super::store::AssignedRow;
use super::store::{ContractRow, PoolRow, StatusDocument, WorkerRow};
use crate::scheduler::fmt_hashrate;

/// Left-aligned columns separated by three spaces; the header is the first row.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let cols = header.len();
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, cell) in r.iter().enumerate().take(cols) {
            width[i] = width[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::new();
        for (i, c) in cells.enumerate().take(cols) {
            if i + 1 == cols {
                l.push_str(c);
            } else {
                l.push_str(c);
                let pad = width[i].saturating_sub(c.chars().count()) + 3;
                l.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for r in rows {
        line(&mut r.iter().map(String::as_str));
    }
    out
}

fn or_dash(s: Option<&str>) -> String {
    s.filter(|s| !s.is_empty()).unwrap_or("-").to_owned()
}

/// `12s ago`, `3m ago`, `2h ago`; `-` when unknown.
pub fn ago(t: Option<Timestamp>, now: Timestamp) -> String {
    let Some(t) = t else {
        return "-".into();
    };
    let secs = (now.as_millisecond().saturating_sub(t.as_millisecond()) / 1000).max(0);
    match secs {
        s if s < 120 => format!("{s}s ago"),
        s if s < 7200 => format!("{}m ago", s / 60),
        s if s < 172_800 => format!("{}h ago", s / 3600),
        s => format!("{}d ago", s / 86400),
    }
}

/// Shortfall (kept in TH/s·hours) in the unit that fits: `1.2 TH/s·h`, `25.0 kH/s·h`.
pub fn shortfall(th_hours: f64) -> String {
    if !th_hours.is_finite() || th_hours <= 0.0 {
        return "0".into();
    }
    format!("{}·h", fmt_hashrate(th_hours * 1e12))
}

fn percent(x: Option<f64>) -> String {
    match x {
        Some(x) if x.is_finite() => format!("{:.2}%", x * 100.0),
        _ => "-".into(),
    }
}

/// With `-A`: a NAMESPACE column first, so rows of two namespaces with the same names stay
/// apart.
fn with_namespace(
    header: &[&str],
    body: Vec<Vec<String>>,
    namespaces: Option<Vec<Option<String>>>,
) -> String {
    match namespaces {
        None => render(header, &body),
        Some(ns) => {
            let mut h = vec!["NAMESPACE"];
            h.extend_from_slice(header);
            let body: Vec<Vec<String>> = body
                .into_iter()
                .zip(ns)
                .map(|(mut r, n)| {
                    r.insert(0, or_dash(n.as_deref()));
                    r
                })
                .collect();
            render(&h, &body)
        }
    }
}

/// Workers: phase, hashrate (measured / expected), assignment, owner, pool, last share.
pub fn workers_table(rows: &[WorkerRow], now: Timestamp) -> String {
    workers_table_in(rows, now, false)
}

/// [`workers_table`], with a NAMESPACE column when `all_namespaces`.
pub fn workers_table_in(rows: &[WorkerRow], now: Timestamp, all_namespaces: bool) -> String {
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|w| {
            let assignment = match (&w.contract, &w.role) {
                (Some(c), Some(r)) => match &w.replaces {
                    Some(x) => format!("{c} ({r} for {x})"),
                    None => format!("{c} ({r})"),
                },
                (None, Some(r)) => format!("house ({r})"),
                _ => "-".into(),
            };
            vec![
                w.name.clone(),
                StatusDocument::worker_phase_display(w),
                w.hashrate.map(fmt_hashrate).unwrap_or_else(|| "-".into()),
                fmt_hashrate(w.expected),
                assignment,
                w.owner.clone(),
                or_dash(w.pool.as_deref()),
                ago(w.last_share, now),
            ]
        })
        .collect();
    with_namespace(
        &[
            "WORKER",
            "PHASE",
            "HASHRATE",
            "EXPECTED",
            "ASSIGNMENT",
            "OWNER",
            "POOL",
            "LAST SHARE",
        ],
        body,
        all_namespaces.then(|| rows.iter().map(|w| w.namespace.clone()).collect()),
    )
}

/// Contracts: customer, mode, phase, contracted, delivered, uptime (up of judged slots), down and
/// unobserved slots, shortfall and credit (with their 95 % intervals), failovers, workers.
pub fn contracts_table(rows: &[ContractRow]) -> String {
    contracts_table_in(rows, false)
}

fn interval(low: Option<f64>, high: Option<f64>, f: impl Fn(f64) -> String) -> String {
    match (low, high) {
        (Some(l), Some(h)) if h > 0.0 => format!(" [{}–{}]", f(l), f(h)),
        _ => String::new(),
    }
}

/// [`contracts_table`], with a NAMESPACE column when `all_namespaces`.
pub fn contracts_table_in(rows: &[ContractRow], all_namespaces: bool) -> String {
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|c| {
            let credit_iv = interval(c.credit_low, c.credit_high, |x| format!("{x:.4}"));
            let credit = match &c.currency {
                Some(cur) => format!("{:.4} {cur}{credit_iv}", c.credit),
                None => format!("{:.4}{credit_iv}", c.credit),
            };
            vec![
                c.name.clone(),
                c.customer.clone(),
                c.mode.clone(),
                c.phase.clone(),
                c.contracted.map(fmt_hashrate).unwrap_or_else(|| "-".into()),
                c.delivered.map(fmt_hashrate).unwrap_or_else(|| "-".into()),
                format!(
                    "{} ({}/{})",
                    percent(c.uptime),
                    c.up_slots,
                    c.observed_slots
                ),
                format!("{}/{}", c.down_slots, c.unobserved_slots),
                format!(
                    "{}{}",
                    shortfall(c.shortfall_th_hours),
                    interval(c.shortfall_low, c.shortfall_high, shortfall)
                ),
                credit,
                c.failovers.to_string(),
                if c.workers.is_empty() {
                    "-".into()
                } else {
                    c.workers_display().join(",")
                },
            ]
        })
        .collect();
    with_namespace(
        &[
            "CONTRACT",
            "CUSTOMER",
            "MODE",
            "PHASE",
            "CONTRACTED",
            "DELIVERED",
            "UPTIME (UP/SLOTS)",
            "DOWN/UNOBSERVED",
            "SHORTFALL [95%]",
            "CREDIT [95%]",
            "FAILOVERS",
            "WORKERS",
        ],
        body,
        all_namespaces.then(|| rows.iter().map(|c| c.namespace.clone()).collect()),
    )
}

/// Pools as the hub sees them.
pub fn pools_table(rows: &[PoolRow]) -> String {
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                if p.up { "up" } else { "down" }.into(),
                p.workers.to_string(),
                p.accepted.to_string(),
                p.rejected.to_string(),
                p.switches.to_string(),
                p.disconnects.to_string(),
            ]
        })
        .collect();
    render(
        &[
            "POOL",
            "STATE",
            "WORKERS",
            "ACCEPTED",
            "REJECTED",
            "SWITCHES",
            "DISCONNECTS",
        ],
        &body,
    )
}

/// The whole status: a header line, the manifests error if any, and the three tables.
pub fn status_text(doc: &StatusDocument, now: Timestamp) -> String {
    let mut out = String::new();
    out.push_str(&doc.source);
    if let Some(h) = &doc.hub {
        out.push_str(&format!(
            " — hub {} on {} (routing generation {}, {} miner connection(s))",
            h.name,
            h.stratum,
            h.routing_generation
                .map(|g| g.to_string())
                .unwrap_or_else(|| "-".into()),
            h.connections
        ));
    }
    if let Some(t) = doc.generated_at {
        out.push_str(&format!(", as of {}", ago(Some(t), now)));
    }
    out.push('\n');
    if let Some(e) = &doc.manifests_error {
        out.push_str("\nMANIFESTS REFUSED (the last good ones stay in force):\n");
        out.push_str(e);
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&workers_table_in(&doc.workers, now, doc.all_namespaces));
    out.push('\n');
    out.push_str(&contracts_table_in(&doc.contracts, doc.all_namespaces));
    if !doc.pools.is_empty() {
        out.push('\n');
        out.push_str(&pools_table(&doc.pools));
        // Why a pool is down, in the hub's words: what to fix (a certificate, a firewall, a
        // password) is usually right there.
        for p in doc.pools.iter().filter(|p| !p.up) {
            if let Some(why) = &p.last_failure {
                out.push_str(&format!("pool {} is down: {why}\n", p.name));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::Role;

    #[test]
    fn columns_align_and_missing_values_are_dashes() {
        let now: Timestamp = "2026-07-01T00:01:00Z".parse().unwrap();
        let rows = vec![
            WorkerRow {
                name: "acme-01".into(),
                phase: "Healthy".into(),
                hashrate: Some(201_000.0),
                expected: 200_000.0,
                contract: Some("acme-m2m".into()),
                role: Some(Role::Primary),
                owner: "acme".into(),
                pool: Some("acme-primary".into()),
                last_share: Some("2026-07-01T00:00:58Z".parse().unwrap()),
                ..WorkerRow::default()
            },
            WorkerRow {
                name: "spare-1".into(),
                phase: "Unknown".into(),
                expected: 150_000.0,
                role: Some(Role::Spare),
                owner: "house".into(),
                ..WorkerRow::default()
            },
        ];
        let t = workers_table(&rows, now);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("WORKER    PHASE     HASHRATE"), "{t}");
        assert!(lines[1].contains("201.0 kH/s"), "{t}");
        assert!(lines[1].contains("acme-m2m (Primary)"), "{t}");
        assert!(lines[1].ends_with("2s ago"), "{t}");
        assert!(lines[2].contains("house (Spare)"), "{t}");
        assert!(lines[2].ends_with('-'), "{t}");
        // Every row's POOL column starts where the header's does.
        let col = lines[0].find("POOL").unwrap();
        assert_eq!(&lines[1][col..col + 12], "acme-primary");
    }

    #[test]
    fn contracts_show_uptime_slots_credit_and_failovers() {
        let rows = vec![ContractRow {
            name: "acme-m2m".into(),
            customer: "acme".into(),
            mode: "MinerToMiner".into(),
            phase: "Active".into(),
            contracted: Some(600_000.0),
            delivered: Some(590_000.0),
            uptime: Some(0.9),
            observed_slots: 10,
            up_slots: 9,
            shortfall_th_hours: 0.0000125,
            credit: 0.5,
            currency: Some("USD".into()),
            failovers: 2,
            workers: vec![
                AssignedRow {
                    worker: "acme-01".into(),
                    role: Role::Primary,
                    replaces: None,
                },
                AssignedRow {
                    worker: "spare-1".into(),
                    role: Role::Substitute,
                    replaces: Some("acme-02".into()),
                },
            ],
            ..ContractRow::default()
        }];
        let t = contracts_table(&rows);
        assert!(t.contains("90.00% (9/10)"), "{t}");
        assert!(t.contains("0.5000 USD"), "{t}");
        assert!(t.contains("600.0 kH/s"), "{t}");
        assert!(t.contains("12.5 MH/s·h"), "{t}");
        assert!(t.contains("spare-1→acme-02"), "{t}");
        assert!(t.lines().nth(1).unwrap().contains("   2   "), "{t}");
    }

    #[test]
    fn a_down_pool_shows_why() {
        let doc = StatusDocument {
            source: "local m".into(),
            pools: vec![
                PoolRow {
                    name: "acme-ssl".into(),
                    up: false,
                    disconnects: 4,
                    last_failure: Some(
                        "127.0.0.1:4443: TLS handshake: invalid peer certificate: UnknownIssuer"
                            .into(),
                    ),
                    ..PoolRow::default()
                },
                PoolRow {
                    name: "house".into(),
                    up: true,
                    last_failure: Some("pool closed the connection".into()),
                    ..PoolRow::default()
                },
            ],
            ..StatusDocument::default()
        };
        let t = status_text(&doc, Timestamp::now());
        assert!(
            t.contains("pool acme-ssl is down: 127.0.0.1:4443: TLS handshake: invalid peer certificate: UnknownIssuer"),
            "{t}"
        );
        // A pool that is up again does not dwell on its past.
        assert!(!t.contains("pool house is down"), "{t}");
    }

    /// `hashsched status -A`: two namespaces with the same names stay distinguishable, in the
    /// tables (a NAMESPACE column) and in JSON (per-item namespaces).
    #[test]
    fn all_namespaces_adds_a_namespace_column() {
        let now: Timestamp = "2026-07-01T00:01:00Z".parse().unwrap();
        let w = |ns: &str| WorkerRow {
            namespace: Some(ns.into()),
            name: "s19-01".into(),
            phase: if ns == "a" { "Healthy" } else { "Dead" }.into(),
            owner: "house".into(),
            ..WorkerRow::default()
        };
        let c = |ns: &str| ContractRow {
            namespace: Some(ns.into()),
            name: "rent".into(),
            phase: "Active".into(),
            ..ContractRow::default()
        };
        let mut doc = StatusDocument {
            source: "cluster, all namespaces".into(),
            workers: vec![w("a"), w("b")],
            contracts: vec![c("a"), c("b")],
            ..StatusDocument::default()
        };
        let plain = status_text(&doc, now);
        assert!(!plain.contains("NAMESPACE"), "{plain}");
        doc.all_namespaces = true;
        let t = status_text(&doc, now);
        let lines: Vec<&str> = t.lines().collect();
        assert!(
            lines.iter().any(|l| l.starts_with("NAMESPACE   WORKER")),
            "{t}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("a           s19-01   Healthy")),
            "{t}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("b           s19-01   Dead")),
            "{t}"
        );
        assert!(
            lines.iter().any(|l| l.starts_with("NAMESPACE   CONTRACT")),
            "{t}"
        );
        assert!(
            lines.iter().any(|l| l.starts_with("b           rent")),
            "{t}"
        );
        let j = serde_json::to_value(&doc).unwrap();
        assert_eq!(j["workers"][1]["namespace"], "b");
        assert_eq!(j["contracts"][0]["namespace"], "a");
        assert_eq!(j["allNamespaces"], true);
    }

    /// A failed worker that mines again reads as recovering, not as Dead with a live hashrate.
    #[test]
    fn a_recovering_worker_says_so() {
        let now: Timestamp = "2026-07-01T00:01:00Z".parse().unwrap();
        let rows = vec![WorkerRow {
            name: "acme-02".into(),
            phase: "Dead".into(),
            recovering: true,
            hashrate: Some(199_000.0),
            ..WorkerRow::default()
        }];
        let t = workers_table(&rows, now);
        assert!(
            t.contains("acme-02   Recovering (Dead)   199.0 kH/s"),
            "{t}"
        );
    }

    #[test]
    fn ago_is_coarse() {
        let now: Timestamp = "2026-07-01T03:00:00Z".parse().unwrap();
        let at = |s: &str| Some(s.parse::<Timestamp>().unwrap());
        assert_eq!(ago(at("2026-07-01T02:59:00Z"), now), "60s ago");
        assert_eq!(ago(at("2026-07-01T02:00:00Z"), now), "60m ago");
        assert_eq!(ago(at("2026-06-30T00:00:00Z"), now), "27h ago");
        assert_eq!(ago(None, now), "-");
    }
}
