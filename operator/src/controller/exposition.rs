//! The hub's `/metrics` page read back into the scheduler's facts: the operator↔hub contract.
//!
//! The hub encodes its per-worker and per-pool state as OpenMetrics text (`hashsched_hub::metrics`,
//! written by `prometheus-client`); the operator scrapes every hub pod and turns the samples back
//! into [`WorkerFacts`] and [`PoolFacts`], the same types local mode reads in process, so one
//! decision core serves both. Only the sample lines matter here (`# HELP`/`# TYPE`/`# UNIT`/`# EOF`
//! and exemplars are skipped); names and label names come from the hub's catalogue, never spelled
//! here. The parser is small and strict on what it reads (a bad line is an error naming its line
//! number, never a panic); a maintained crate that reads OpenMetrics label escapes and `_total`
//! families exactly as `prometheus-client` writes them was not available, and the tests hold this
//! one to a round trip of everything the hub's own encoder writes.
//!
//! What the page cannot carry is estimated (and said so): the number of shares in a hashrate
//! window (from the window's hashrate and the current difficulty) and the time of the last
//! connect/disconnect (the operator notes when it first saw the change).

use std::borrow::Cow;
use std::collections::BTreeMap;

use hashsched_contract::facts::{
    AssignmentLabels, PoolFacts, ShareResult, WindowHashrate, WorkerFacts,
};
use hashsched_contract::metric_names::{self as m, label};

use crate::scheduler::health::HASHES_PER_DIFFICULTY;

/// One sample line: `name{labels} value [timestamp]`. Names and label values borrow from the
/// page (a label value is copied only when it has escapes): a 10,000-worker page has some
/// 170,000 samples, read every cycle.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'a> {
    pub name: Cow<'a, str>,
    pub labels: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    pub value: f64,
}

impl Sample<'_> {
    /// The value of label `name`, if present.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_ref())
    }
}

/// A line of the page that is not valid exposition text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {detail}")]
pub struct ParseError {
    pub line: usize,
    pub detail: String,
}

/// Every sample of an exposition page (Prometheus text 0.0.4 or OpenMetrics 1.0), in order.
pub fn parse(text: &str) -> Result<Vec<Sample<'_>>, ParseError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        out.push(parse_sample(line).map_err(|detail| ParseError {
            line: i + 1,
            detail,
        })?);
    }
    Ok(out)
}

fn is_name_char(c: char, first: bool) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':' || (!first && c.is_ascii_digit())
}

fn parse_sample(line: &str) -> Result<Sample<'_>, String> {
    let name_end = line
        .char_indices()
        .find(|&(i, c)| !is_name_char(c, i == 0))
        .map(|(i, _)| i)
        .unwrap_or(line.len());
    if name_end == 0 {
        return Err(format!("no metric name in {line:?}"));
    }
    let name = Cow::Borrowed(&line[..name_end]);
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        let (l, tail) = parse_labels(after)?;
        labels = l;
        rest = tail;
    }
    // Value, optional timestamp, optional exemplar (` # {...} v`): only the value is used.
    let rest = rest.split(" # ").next().unwrap_or("");
    let mut fields = rest.split_ascii_whitespace();
    let value_text = fields.next().ok_or_else(|| format!("{name}: no value"))?;
    let value =
        parse_value(value_text).ok_or_else(|| format!("{name}: bad value {value_text:?}"))?;
    if let Some(ts) = fields.next()
        && ts.parse::<f64>().is_err()
    {
        return Err(format!("{name}: bad timestamp {ts:?}"));
    }
    if let Some(extra) = fields.next() {
        return Err(format!("{name}: unexpected {extra:?} after the value"));
    }
    Ok(Sample {
        name,
        labels,
        value,
    })
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

/// Label pairs of one sample, in the order written.
type Labels<'a> = Vec<(Cow<'a, str>, Cow<'a, str>)>;

/// Labels after `{` up to the closing `}`; returns them and the text after `}`.
fn parse_labels(mut s: &str) -> Result<(Labels<'_>, &str), String> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start_matches([' ', ',']);
        if let Some(after) = s.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = s.find('=').ok_or("label without '='")?;
        let key = s[..eq].trim();
        if key.is_empty()
            || !key
                .chars()
                .enumerate()
                .all(|(i, c)| is_name_char(c, i == 0))
        {
            return Err(format!("bad label name {key:?}"));
        }
        s = s[eq + 1..]
            .strip_prefix('"')
            .ok_or_else(|| format!("label {key}: value not quoted"))?;
        // The common case, no escape: borrow up to the closing quote.
        let plain_end = s.find(['"', '\\']);
        let (value, end) = match plain_end {
            Some(i) if s.as_bytes()[i] == b'"' => (Cow::Borrowed(&s[..i]), i),
            None => return Err(format!("label {key}: unterminated value")),
            Some(_) => {
                let mut value = String::new();
                let mut chars = s.char_indices();
                let end = loop {
                    match chars.next() {
                        None => return Err(format!("label {key}: unterminated value")),
                        Some((i, '"')) => break i,
                        Some((_, '\\')) => match chars.next() {
                            Some((_, 'n')) => value.push('\n'),
                            Some((_, '\\')) => value.push('\\'),
                            Some((_, '"')) => value.push('"'),
                            Some((_, c)) => {
                                value.push('\\');
                                value.push(c);
                            }
                            None => return Err(format!("label {key}: unterminated escape")),
                        },
                        Some((_, c)) => value.push(c),
                    }
                };
                (Cow::Owned(value), end)
            }
        };
        labels.push((Cow::Borrowed(key), value));
        s = &s[end + 1..];
        if !(s.starts_with(',') || s.starts_with('}') || s.starts_with(' ')) {
            return Err(format!("label {key}: expected ',' or '}}'"));
        }
    }
}

/// `1m` → 60, `5m` → 300, `1h` → 3600, `30s` → 30: the inverse of
/// [`hashsched_contract::metric_names::window_label`].
pub fn window_seconds(label: &str) -> Option<u64> {
    let (num, unit) = label.split_at(label.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = num.parse().ok()?;
    match unit {
        "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        _ => None,
    }
}

/// What one hub pod reported on one scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HubReport {
    pub workers: Vec<WorkerFacts>,
    pub pools: Vec<PoolFacts>,
    pub connections: u64,
    pub routing_generation: u64,
    pub pending: u64,
}

fn empty_worker(name: &str) -> WorkerFacts {
    WorkerFacts {
        worker: name.to_owned(),
        connected: false,
        shares: Default::default(),
        difficulty: Default::default(),
        pending: 0,
        hashrate: Vec::new(),
        last_share_unix: None,
        last_change_unix: None,
        miner_difficulty: None,
        pool: None,
        labels: AssignmentLabels::default(),
    }
}

fn empty_pool(name: &str) -> PoolFacts {
    PoolFacts {
        pool: name.to_owned(),
        up: false,
        sessions: 0,
        workers: 0,
        latency_seconds: None,
        difficulty: None,
        accepted: 0,
        rejected: 0,
        lost: 0,
        switches: 0,
        switches_by_reason: BTreeMap::new(),
        disconnects: 0,
        last_failure: None,
        last_failure_unix: None,
    }
}

fn count(v: f64) -> u64 {
    if v.is_finite() && v > 0.0 {
        v.round().min(u64::MAX as f64) as u64
    } else {
        0
    }
}

fn non_empty(s: Option<&str>) -> Option<String> {
    s.filter(|s| !s.is_empty()).map(str::to_owned)
}

fn share_result(label: &str) -> Option<ShareResult> {
    ShareResult::ALL
        .iter()
        .copied()
        .find(|r| r.label() == label)
}

/// The hub's state from its samples. Unknown series are ignored (a newer hub may export more);
/// series of a known name without their identifying label are ignored too.
pub fn hub_report(samples: &[Sample<'_>]) -> HubReport {
    let mut workers: BTreeMap<String, WorkerFacts> = BTreeMap::new();
    let mut pools: BTreeMap<String, PoolFacts> = BTreeMap::new();
    let mut report = HubReport::default();
    for s in samples {
        let name = s.name.as_ref();
        if let Some(w) = s
            .label(label::WORKER)
            .filter(|_| name.starts_with(m::WORKER_PREFIX))
        {
            // Looked up before inserting: a worker has a dozen samples, one key copy is enough.
            if !workers.contains_key(w) {
                workers.insert(w.to_owned(), empty_worker(w));
            }
            let Some(f) = workers.get_mut(w) else {
                continue;
            };
            match name {
                m::WORKER_CONNECTED => f.connected = s.value >= 0.5,
                m::WORKER_SHARES_TOTAL => {
                    if let Some(r) = s.label(label::RESULT).and_then(share_result) {
                        f.shares.add(r, count(s.value));
                    }
                }
                m::WORKER_SHARE_DIFFICULTY_TOTAL => {
                    if let Some(r) = s.label(label::RESULT).and_then(share_result) {
                        f.difficulty.add(r, s.value);
                    }
                }
                m::WORKER_SHARES_PENDING => f.pending = count(s.value),
                m::WORKER_HASHRATE => {
                    if let Some(secs) = s.label(label::WINDOW).and_then(window_seconds) {
                        f.hashrate.push(WindowHashrate {
                            window_seconds: secs,
                            hashes_per_second: s.value,
                            shares: 0,
                        });
                    }
                }
                m::WORKER_LAST_SHARE => f.last_share_unix = Some(s.value),
                m::WORKER_DIFFICULTY => f.miner_difficulty = Some(s.value),
                m::WORKER_INFO => {
                    f.pool = non_empty(s.label(label::POOL));
                    f.labels = AssignmentLabels {
                        contract: non_empty(s.label(label::CONTRACT)),
                        customer: non_empty(s.label(label::CUSTOMER)),
                        // a role this operator does not know (a newer hub) is left out
                        role: s.label(label::ROLE).and_then(|r| r.parse().ok()),
                    };
                }
                _ => {}
            }
            continue;
        }
        if let Some(p) = s
            .label(label::POOL)
            .filter(|_| name.starts_with(m::POOL_PREFIX))
        {
            let f = pools.entry(p.to_owned()).or_insert_with(|| empty_pool(p));
            match name {
                m::POOL_UP => f.up = s.value >= 0.5,
                m::POOL_LATENCY => f.latency_seconds = Some(s.value),
                m::POOL_SESSIONS => f.sessions = count(s.value),
                m::POOL_WORKERS => f.workers = count(s.value),
                m::POOL_DIFFICULTY => f.difficulty = Some(s.value),
                m::POOL_SHARES_TOTAL => match s.label(label::RESULT) {
                    Some(m::result::ACCEPTED) => f.accepted = count(s.value),
                    Some(m::result::REJECTED) => f.rejected = count(s.value),
                    Some(m::result::LOST) => f.lost = count(s.value),
                    _ => {}
                },
                m::POOL_SWITCHES_TOTAL => {
                    if let Some(reason) = s.label(label::REASON) {
                        let n = count(s.value);
                        f.switches_by_reason.insert(reason.to_owned(), n);
                        f.switches = f.switches_by_reason.values().sum();
                    }
                }
                m::POOL_DISCONNECTS_TOTAL => f.disconnects = count(s.value),
                _ => {}
            }
            continue;
        }
        match name {
            m::HUB_CONNECTIONS => report.connections = count(s.value),
            m::HUB_ROUTING_GENERATION => report.routing_generation = count(s.value),
            m::HUB_SHARES_PENDING => report.pending = count(s.value),
            _ => {}
        }
    }
    for f in workers.values_mut() {
        f.hashrate.sort_by_key(|w| w.window_seconds);
        // The page carries each window's hashrate, not its share count: at a steady difficulty
        // `shares = hashrate · window / (difficulty · 2^32)`.
        if let Some(d) = f.miner_difficulty.filter(|d| d.is_finite() && *d > 0.0) {
            for w in &mut f.hashrate {
                w.shares = count(
                    w.hashes_per_second * w.window_seconds as f64 / (d * HASHES_PER_DIFFICULTY),
                );
            }
        }
    }
    report.workers = workers.into_values().collect();
    report.pools = pools.into_values().collect();
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_labels_with_escapes_values_and_timestamps() {
        let text = "# HELP x y\n# TYPE x gauge\n\
                    x{a=\"q\\\"uote\",b=\"back\\\\slash\",c=\"new\\nline\"} 1.5\n\
                    y_total 3 1700000000\n\
                    z{le=\"+Inf\"} +Inf\n\
                    n NaN\n\
                    e_total{a=\"1\"} 2 # {trace_id=\"x\"} 1.0\n# EOF\n";
        let s = parse(text).unwrap();
        assert_eq!(s.len(), 5);
        assert_eq!(s[0].label("a"), Some("q\"uote"));
        assert_eq!(s[0].label("b"), Some("back\\slash"));
        assert_eq!(s[0].label("c"), Some("new\nline"));
        assert_eq!(s[0].value, 1.5);
        assert_eq!((s[1].name.as_ref(), s[1].value), ("y_total", 3.0));
        assert_eq!(s[2].value, f64::INFINITY);
        assert!(s[3].value.is_nan());
        assert_eq!(s[4].value, 2.0);
    }

    #[test]
    fn bad_lines_are_errors_with_their_line_number() {
        for bad in [
            "ok 1\n{a=\"b\"} 1\n",
            "ok 1\nx{a=b} 1\n",
            "ok 1\nx{a=\"b} 1\n",
            "ok 1\nx\n",
            "ok 1\nx one\n",
            "ok 1\nx 1 2 3\n",
            "ok 1\nx{=\"v\"} 1\n",
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.line, 2, "{bad:?}: {e}");
        }
    }

    #[test]
    fn window_labels_invert_the_hubs() {
        for secs in [1, 30, 60, 300, 900, 3600, 7200, 90] {
            assert_eq!(window_seconds(&m::window_label(secs)), Some(secs));
        }
        assert_eq!(window_seconds("5x"), None);
        assert_eq!(window_seconds("m"), None);
    }
}
