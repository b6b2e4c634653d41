//! Per-worker share accounting: final buckets (conservation), pending forwarded shares, hashrate
//! windows, last share time; and the table of workers the hub currently reports.
//!
//! Pure bookkeeping with time passed in (unix seconds). The share path touches one worker's
//! entry under its own small lock; the table lock is taken only when a worker appears, on a
//! snapshot, and when expired workers are pruned.
//!
//! Hashrate windows use a ring of fixed buckets (default 5 s): a 15-minute window costs 181
//! buckets × 16 bytes per worker, allocated with the worker's first valid share (a connected
//! worker that has not submitted any — idle, or still warming up — holds no ring: 2.8 KiB of
//! a ~12 KiB idle miner). Hashrate over a window is `Σ difficulty · 2^32 / span`, with
//! `span = min(window, age of the worker)` so that a worker that just appeared is not reported
//! at a fraction of its speed (the share count tells the reader how much data there is).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::facts::{AssignmentLabels, ShareBuckets, ShareResult, WindowHashrate, WorkerFacts};
use crate::share::HASHES_PER_DIFFICULTY;

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    index: u32,
    count: u32,
    difficulty: f64,
}

/// Everything counted for one worker.
#[derive(Debug)]
pub struct WorkerStats {
    pub shares: ShareBuckets<u64>,
    pub difficulty: ShareBuckets<f64>,
    pub pending: u64,
    pub pending_difficulty: f64,
    /// Empty until the first valid share, then `ring_len` buckets.
    ring: Vec<Bucket>,
    ring_len: u32,
    bucket_seconds: f64,
    first_seen: f64,
    pub last_share: Option<f64>,
    pub last_change: Option<f64>,
    /// Miner connections that have this worker authorized.
    pub connections: u32,
    pub miner_difficulty: Option<f64>,
    pub pool: Option<String>,
    pub labels: AssignmentLabels,
}

impl WorkerStats {
    /// `max_window` seconds of history at `bucket_seconds` resolution.
    pub fn new(now: f64, max_window: u64, bucket_seconds: u64) -> Self {
        let bucket_seconds = bucket_seconds.max(1);
        let n = (max_window / bucket_seconds + 2).min(100_000) as usize;
        Self {
            shares: ShareBuckets::default(),
            difficulty: ShareBuckets::default(),
            pending: 0,
            pending_difficulty: 0.0,
            ring: Vec::new(),
            ring_len: n as u32,
            bucket_seconds: bucket_seconds as f64,
            first_seen: now,
            last_share: None,
            last_change: Some(now),
            connections: 0,
            miner_difficulty: None,
            pool: None,
            labels: AssignmentLabels::default(),
        }
    }

    fn bucket_index(&self, t: f64) -> u32 {
        let i = (t / self.bucket_seconds).floor();
        if i.is_finite() && i >= 0.0 && i < f64::from(u32::MAX) {
            i as u32
        } else {
            0
        }
    }

    /// A share of valid work at `difficulty` (feeds the hashrate windows and last share time).
    fn note_valid(&mut self, difficulty: f64, now: f64) {
        self.note_valid_many(1, difficulty, now);
    }

    /// `count` shares of valid work whose difficulties sum to `difficulty`, all at `now`.
    fn note_valid_many(&mut self, count: u32, difficulty: f64, now: f64) {
        self.last_share = Some(now);
        let idx = self.bucket_index(now);
        if self.ring.is_empty() {
            self.ring = vec![Bucket::default(); self.ring_len as usize];
        }
        let n = self.ring.len();
        if n == 0 {
            return;
        }
        let slot = &mut self.ring[idx as usize % n];
        if slot.index != idx {
            *slot = Bucket {
                index: idx,
                count: 0,
                difficulty: 0.0,
            };
        }
        slot.count = slot.count.saturating_add(count);
        slot.difficulty += difficulty;
    }

    /// A share whose fate is final now (not forwarded, or refused locally).
    pub fn record(&mut self, result: ShareResult, difficulty: f64, now: f64) {
        if result.is_valid_work() {
            self.note_valid(difficulty, now);
        }
        self.shares.add(result, 1);
        self.difficulty.add(result, difficulty);
    }

    /// A locally valid share forwarded to the pool: pending until [`Self::verdict`].
    pub fn forwarded(&mut self, difficulty: f64, now: f64) {
        self.forwarded_many(1, difficulty, now);
    }

    /// `count` shares forwarded together at `now` (one turn of a miner's connection), whose
    /// difficulties sum to `difficulty`: one booking under one lock, not one per share.
    pub fn forwarded_many(&mut self, count: u32, difficulty: f64, now: f64) {
        self.note_valid_many(count, difficulty, now);
        self.pending += u64::from(count);
        self.pending_difficulty += difficulty;
    }

    /// The pool's verdict (accepted / rejected / lost) on a forwarded share.
    pub fn verdict(&mut self, result: ShareResult, difficulty: f64) {
        self.verdicts(result, 1, difficulty);
    }

    /// The same verdict on `count` forwarded shares whose difficulties sum to `difficulty`.
    pub fn verdicts(&mut self, result: ShareResult, count: u64, difficulty: f64) {
        self.pending = self.pending.saturating_sub(count);
        self.pending_difficulty = (self.pending_difficulty - difficulty).max(0.0);
        self.shares.add(result, count);
        self.difficulty.add(result, difficulty);
    }

    /// Hashrate and share count over each window ending at `now`.
    pub fn hashrate(&self, windows: &[u64], now: f64) -> Vec<WindowHashrate> {
        let cur = self.bucket_index(now);
        let age = (now - self.first_seen).max(self.bucket_seconds);
        windows
            .iter()
            .map(|&w| {
                let nb = ((w as f64) / self.bucket_seconds).ceil() as u32;
                let oldest = cur.saturating_sub(nb.saturating_sub(1));
                let (mut d, mut c) = (0.0, 0u64);
                for b in &self.ring {
                    if b.count > 0 && b.index >= oldest && b.index <= cur {
                        d += b.difficulty;
                        c += u64::from(b.count);
                    }
                }
                let span = (w as f64).min(age);
                WindowHashrate {
                    window_seconds: w,
                    hashes_per_second: if span > 0.0 {
                        d * HASHES_PER_DIFFICULTY / span
                    } else {
                        0.0
                    },
                    shares: c,
                }
            })
            .collect()
    }

    pub fn facts(&self, worker: &str, windows: &[u64], now: f64) -> WorkerFacts {
        WorkerFacts {
            worker: worker.to_owned(),
            connected: self.connections > 0,
            shares: self.shares,
            difficulty: self.difficulty,
            pending: self.pending,
            hashrate: self.hashrate(windows, now),
            last_share_unix: self.last_share,
            last_change_unix: self.last_change,
            miner_difficulty: self.miner_difficulty,
            pool: self.pool.clone(),
            labels: self.labels.clone(),
        }
    }
}

/// One worker's entry, shared by its miner connection(s) and the upstream sessions that carry
/// its forwarded shares.
#[derive(Debug)]
pub struct WorkerEntry {
    pub name: String,
    stats: Mutex<WorkerStats>,
}

impl WorkerEntry {
    /// Lock the stats; a poisoned lock (a panic elsewhere) still yields the data.
    pub fn lock(&self) -> MutexGuard<'_, WorkerStats> {
        self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// All workers the hub reports.
#[derive(Debug)]
pub struct WorkerTable {
    map: Mutex<HashMap<String, Arc<WorkerEntry>>>,
    windows: Mutex<Vec<u64>>,
    bucket_seconds: u64,
    retention_seconds: f64,
}

impl WorkerTable {
    pub fn new(windows: Vec<u64>, bucket_seconds: u64, retention_seconds: u64) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            windows: Mutex::new(windows),
            bucket_seconds,
            retention_seconds: retention_seconds as f64,
        }
    }

    fn map(&self) -> MutexGuard<'_, HashMap<String, Arc<WorkerEntry>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn windows(&self) -> Vec<u64> {
        self.windows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// New windows (routing change): histories longer than before start empty for new workers.
    pub fn set_windows(&self, w: Vec<u64>) {
        *self.windows.lock().unwrap_or_else(|p| p.into_inner()) = w;
    }

    /// The entry for `name`, created when missing.
    pub fn entry(&self, name: &str, now: f64) -> Arc<WorkerEntry> {
        let mut map = self.map();
        if let Some(e) = map.get(name) {
            return e.clone();
        }
        let max_window = self.windows().into_iter().max().unwrap_or(900);
        let e = Arc::new(WorkerEntry {
            name: name.to_owned(),
            stats: Mutex::new(WorkerStats::new(now, max_window, self.bucket_seconds)),
        });
        map.insert(name.to_owned(), e.clone());
        e
    }

    pub fn get(&self, name: &str) -> Option<Arc<WorkerEntry>> {
        self.map().get(name).cloned()
    }

    pub fn len(&self) -> usize {
        self.map().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drop workers disconnected for longer than the retention, with nothing pending.
    pub fn prune(&self, now: f64) {
        let retention = self.retention_seconds;
        self.map().retain(|_, e| {
            let s = e.lock();
            s.connections > 0 || s.pending > 0 || s.last_change.is_none_or(|t| now - t < retention)
        });
    }

    /// Facts of every worker, sorted by name.
    pub fn facts(&self, now: f64) -> Vec<WorkerFacts> {
        let windows = self.windows();
        let entries: Vec<Arc<WorkerEntry>> = self.map().values().cloned().collect();
        let mut out: Vec<WorkerFacts> = entries
            .iter()
            .map(|e| e.lock().facts(&e.name, &windows, now))
            .collect();
        out.sort_by(|a, b| a.worker.cmp(&b.worker));
        out
    }

    /// Pending shares over all workers.
    pub fn pending(&self) -> u64 {
        let entries: Vec<Arc<WorkerEntry>> = self.map().values().cloned().collect();
        entries.iter().map(|e| e.lock().pending).sum()
    }
}

/// Unix time now in seconds.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conservation_every_share_in_exactly_one_bucket() {
        let mut s = WorkerStats::new(1000.0, 900, 5);
        let mut submitted = 0u64;
        let outcomes = [
            ShareResult::BelowTarget,
            ShareResult::Stale,
            ShareResult::Duplicate,
            ShareResult::Invalid,
        ];
        for i in 0..100u64 {
            submitted += 1;
            let t = 1000.0 + i as f64;
            if i % 5 == 4 {
                s.forwarded(8.0, t);
            } else {
                s.record(outcomes[(i % 4) as usize], 8.0, t);
            }
            assert_eq!(s.shares.total() + s.pending, submitted);
        }
        // the pool answers the 20 forwarded ones: 15 accepted, 3 rejected, 2 lost
        for i in 0..20 {
            let r = match i {
                0..15 => ShareResult::Accepted,
                15..18 => ShareResult::Rejected,
                _ => ShareResult::Lost,
            };
            s.verdict(r, 8.0);
            assert_eq!(s.shares.total() + s.pending, submitted);
        }
        assert_eq!(s.pending, 0);
        assert_eq!(s.shares.total(), 100);
        assert_eq!(s.shares.accepted, 15);
        assert_eq!(s.difficulty.total(), 800.0);
    }

    #[test]
    fn hashrate_windows() {
        let mut s = WorkerStats::new(0.0, 900, 5);
        // one share of difficulty 2 every 2 seconds for 15 minutes: 1 diff/s → 2^32 H/s
        let mut t = 0.0;
        while t < 900.0 {
            s.record(ShareResult::BelowTarget, 2.0, t);
            t += 2.0;
        }
        for w in s.hashrate(&[60, 300, 900], 899.9) {
            let ratio = w.hashes_per_second / HASHES_PER_DIFFICULTY;
            assert!((0.9..1.1).contains(&ratio), "{w:?}");
        }
        // 15 minutes of silence: windows drain
        let later = s.hashrate(&[60, 300, 900], 1900.0);
        assert!(
            later
                .iter()
                .all(|w| w.shares == 0 && w.hashes_per_second == 0.0)
        );
        // invalid shares do not count as hashrate
        s.record(ShareResult::Invalid, 1e6, 1900.0);
        assert_eq!(s.hashrate(&[60], 1900.0)[0].shares, 0);
    }

    #[test]
    fn table_prunes_only_departed_workers_after_retention() {
        let t = WorkerTable::new(vec![60], 5, 100);
        let a = t.entry("a", 0.0);
        a.lock().connections = 1;
        let b = t.entry("b", 0.0);
        b.lock().last_change = Some(10.0);
        t.prune(50.0);
        assert_eq!(t.len(), 2);
        t.prune(200.0);
        assert_eq!(t.len(), 1);
        assert!(t.get("a").is_some());
        assert_eq!(t.facts(200.0)[0].worker, "a");
    }
}
