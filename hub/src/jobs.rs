//! Proxy jobs: one pool job turned into what miners receive, and each miner's table of the jobs
//! it was sent (for stale/duplicate detection and for the difficulty each job carries).
//!
//! Per-job work is done once per job, not per share or per miner: a [`JobVariant`] (one per miner
//! extranonce2 size in the session, normally exactly one) holds the folded coinb1 with its SHA-256
//! midstate ([`crate::share::JobTemplate`]) and the serialized `mining.notify` line, shared as
//! `Bytes` by every miner of the session. Job ids are hub-unique decimal numbers (pool id spaces
//! collide, and some firmware parses ids as decimal integers) and map back to `(session, pool job
//! id, pool difficulty, folded coinb1, mask)` through the variant, so a late share is still
//! forwarded to the session that issued its job.
//!
//! Job identity. Work is what the miner hashes, not the id it came under: a miner that gets
//! byte-identical work under a new id may keep mining (and submitting) under the old id (cpuminer),
//! or redo the same work and find the same shares again (the SRI miner). So the hub never presents
//! identical work as new: a pool's re-send of its current work (after an authorize, as a
//! keepalive) updates the pool id and difficulty shares are forwarded with ([`PoolJob::resent`])
//! and reaches no miner; when the hub itself must send the current job again (a difficulty that
//! must apply now, a keepalive), the copy is different work ([`JobVariant::resent`]: another
//! padding salt, or a later ntime when there is no padding to salt). Shares on every id of the
//! same work stay valid until the pool's next clean job, and the duplicate check spans them all.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;

use crate::extranonce::{folded_coinb1, salted_padding};
use crate::protocol::Notify;
use crate::share::{JobTemplate, Target, swap32};

/// Where shares of one pool job go: the pool's id for the work and the difficulty it counts
/// them at. A pool may send the same work again under another id or difficulty (the newest wins).
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamJob {
    pub pool_job_id: Arc<str>,
    pub difficulty: f64,
    pub target: Target,
}

/// One job as a pool sent it on one upstream session.
#[derive(Debug)]
pub struct PoolJob {
    pub session_id: u64,
    pub pool: Arc<str>,
    /// The pool's notify (coinb1 NOT folded).
    pub notify: Notify,
    /// The pool's extranonce1 at the time of the job.
    pub pool_e1: Vec<u8>,
    pub pool_n2: usize,
    /// Pool id and difficulty in force for this work (updated by [`PoolJob::resent`]).
    upstream: Mutex<UpstreamJob>,
    /// Bumped after every change of `upstream`: read without the lock, it tells a miner's
    /// cached copy from a stale one (see [`PoolJob::upstream_version`]).
    upstream_changes: AtomicU64,
    /// Network target (a share at or below it is a block).
    pub network_target: Option<Target>,
    /// Version bits the pool allows (0: no version rolling upstream).
    pub pool_version_mask: u32,
    pub received: Instant,
}

impl PoolJob {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        session_id: u64,
        pool: Arc<str>,
        notify: Notify,
        pool_e1: Vec<u8>,
        pool_n2: usize,
        pool_difficulty: f64,
        pool_target: Target,
        pool_version_mask: u32,
    ) -> Self {
        Self {
            session_id,
            pool,
            upstream: Mutex::new(UpstreamJob {
                pool_job_id: Arc::from(notify.job_id.as_str()),
                difficulty: pool_difficulty,
                target: pool_target,
            }),
            upstream_changes: AtomicU64::new(0),
            network_target: Target::from_nbits(notify.nbits).ok(),
            notify,
            pool_e1,
            pool_n2,
            pool_version_mask,
            received: Instant::now(),
        }
    }

    /// The pool id and difficulty a share of this work is forwarded with now.
    pub fn upstream(&self) -> UpstreamJob {
        self.upstream
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// How many times [`PoolJob::resent`] changed the upstream id or difficulty. Read before
    /// [`PoolJob::upstream`], a copy taken then is current while this stays the same: the
    /// share path checks it per share instead of taking the job's lock, which every miner
    /// of the session shares.
    pub fn upstream_version(&self) -> u64 {
        self.upstream_changes.load(Ordering::Acquire)
    }

    /// Whether `n` carries exactly this work (everything a header is built from; the id and the
    /// clean flag aside) for the same extranonce1 and size.
    pub fn same_work(&self, n: &Notify, pool_e1: &[u8], pool_n2: usize) -> bool {
        let j = &self.notify;
        j.prevhash == n.prevhash
            && j.coinb1 == n.coinb1
            && j.coinb2 == n.coinb2
            && j.merkle_branch == n.merkle_branch
            && j.version == n.version
            && j.nbits == n.nbits
            && j.ntime == n.ntime
            && self.pool_e1 == pool_e1
            && self.pool_n2 == pool_n2
    }

    /// The pool sent this work again, possibly under another id or difficulty: later shares go
    /// out under the new id at the new difficulty; miners keep the ids they have.
    pub fn resent(&self, pool_job_id: &str, difficulty: f64, target: Target) {
        let mut u = self.upstream.lock().unwrap_or_else(|p| p.into_inner());
        *u = UpstreamJob {
            pool_job_id: Arc::from(pool_job_id),
            difficulty,
            target,
        };
        // After the value: whoever sees the new version reads the new value.
        self.upstream_changes.fetch_add(1, Ordering::Release);
    }
}

/// A pool job for miners with one extranonce2 size: folded coinb1, midstate, notify line.
#[derive(Debug)]
pub struct JobVariant {
    pub job: Arc<PoolJob>,
    /// Hub-unique job id sent to miners.
    pub proxy_id: Arc<str>,
    /// Miner extranonce2 size this variant is for.
    pub miner_en2: usize,
    /// Padding between the pool E1 and the miner tail (see [`crate::extranonce`]); salted so
    /// that a re-send of the same pool job is different work.
    pub pad: Vec<u8>,
    pub template: JobTemplate,
    /// The miner-facing notify (folded coinb1, proxy id, the pool's clean flag).
    pub notify: Notify,
    /// `notify` serialized once, shared by all miners of the session.
    pub line: Bytes,
}

impl JobVariant {
    /// Build the variant for miners with `miner_en2`-byte extranonce2 and `tail_bytes` tails;
    /// `None` if the pool's n2 cannot hold them (caller checked with [`crate::extranonce::fit`]).
    pub fn build(
        job: Arc<PoolJob>,
        proxy_id: Arc<str>,
        tail_bytes: usize,
        miner_en2: usize,
        salt: u64,
    ) -> Option<Self> {
        let padding = job.pool_n2.checked_sub(tail_bytes + miner_en2)?;
        let pad = salted_padding(padding, salt);
        let coinb1 = folded_coinb1(&job.notify.coinb1, &job.pool_e1, &pad);
        let template = JobTemplate::new(
            swap32(job.notify.prevhash),
            coinb1.clone(),
            job.notify.coinb2.clone(),
            job.notify.merkle_branch.clone(),
            job.notify.version,
            job.notify.nbits,
            job.notify.ntime,
        );
        let notify = Notify {
            job_id: proxy_id.to_string(),
            coinb1,
            ..job.notify.clone()
        };
        let line = Bytes::from(notify.to_line());
        Some(Self {
            job,
            proxy_id,
            miner_en2,
            pad,
            template,
            notify,
            line,
        })
    }

    /// The same pool job as new work for one miner (a difficulty that must apply now, a
    /// keepalive, a move back to a job the miner already mined): another id, not clean, and
    /// different work — another padding salt, or, with no padding to salt, an ntime one second
    /// past the one this variant carries (or `now_unix` if later), which every pool accepts as
    /// rolled time. A miner given identical work under a new id keeps the old id or mines the
    /// same shares twice; different work it simply takes.
    pub fn resent(
        &self,
        proxy_id: Arc<str>,
        tail_bytes: usize,
        salt: u64,
        now_unix: u32,
    ) -> Option<Self> {
        if !self.pad.is_empty() {
            return Some(
                Self::build(self.job.clone(), proxy_id, tail_bytes, self.miner_en2, salt)?
                    .not_clean(),
            );
        }
        let notify = Notify {
            job_id: proxy_id.to_string(),
            ntime: self.notify.ntime.wrapping_add(1).max(now_unix),
            clean_jobs: false,
            ..self.notify.clone()
        };
        let line = Bytes::from(notify.to_line());
        Some(Self {
            job: self.job.clone(),
            proxy_id,
            miner_en2: self.miner_en2,
            pad: self.pad.clone(),
            template: self.template.clone(),
            notify,
            line,
        })
    }

    /// An equal variant with reference counts of its own (id, line): each fan-out thread gets
    /// one, so that 10,000 miners taking the job do not all count references on one shared
    /// counter from several cores (the cache line would bounce between them).
    pub fn own_copy(&self) -> Self {
        Self {
            job: self.job.clone(),
            proxy_id: Arc::from(&*self.proxy_id),
            miner_en2: self.miner_en2,
            pad: self.pad.clone(),
            template: self.template.clone(),
            notify: self.notify.clone(),
            line: Bytes::copy_from_slice(&self.line),
        }
    }

    /// The same variant without `clean_jobs` (work re-sent as a keepalive must not make the
    /// miner's earlier ids for this job stale).
    pub fn not_clean(mut self) -> Self {
        if self.notify.clean_jobs {
            self.notify.clean_jobs = false;
            self.line = Bytes::from(self.notify.to_line());
        }
        self
    }

    /// The notify line under another id and clean flag (one miner: a switch or a difficulty
    /// change that must take effect now).
    pub fn line_as(&self, id: &str, clean: bool) -> Bytes {
        let n = Notify {
            job_id: id.to_owned(),
            clean_jobs: clean,
            ..self.notify.clone()
        };
        Bytes::from(n.to_line())
    }
}

/// Why a miner's share cannot use a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobLookup {
    Unknown,
    /// Superseded by a clean job of the same session.
    Superseded,
}

/// Whether a share was seen before ([`MinerJobs::sighting`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sighting {
    First,
    /// Submitted before under the same job id: the miner sent it twice.
    SameId,
    /// Submitted before under another id of the same work: the miner mined work it was given
    /// again (some firmware restarts identical work when it gets it under a new id).
    OtherId,
}

/// A job as one miner received it.
#[derive(Debug)]
pub struct MinerJob {
    /// Shared with the variant's `proxy_id` unless the job was re-sent under an alias.
    pub id: Arc<str>,
    pub variant: Arc<JobVariant>,
    /// The session that issued the job (kept here: a broadcast looks at it for every miner).
    pub session_id: u64,
    /// Position in the miner's job sequence.
    seq: u64,
    /// Miner-facing difficulty announced before this job was sent.
    pub difficulty: f64,
    /// Version mask in force for this miner and this job's session (miner ∩ pool).
    pub mask: u32,
    /// Keys of the shares seen for this job: the low 64 bits of each share's hash (see
    /// [`MinerJobs::sighting`]).
    /// Boxed on the job's first share: most of the 16 jobs a miner holds never get one, and a
    /// slot costs 8 bytes instead of an empty set's 32 (the table is per miner).
    seen: Option<Box<SeenSet>>,
}

type SeenSet = HashSet<u64, BuildHasherDefault<KeyHasher>>;

/// The seen set's hasher: its keys are already uniformly random (the low bits of a share's
/// sha256d, [`MinerJobs::sighting`]), so hashing them again would add nothing but time; the
/// key is used as it is.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys go in; kept correct (if slow) for anything else.
        let mut h = DefaultHasher::new();
        h.write_u64(self.0);
        h.write(bytes);
        self.0 = h.finish();
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl MinerJob {
    /// Position in the miner's job sequence: never given to another job of the same miner,
    /// so it keys what is remembered of this job's work ([`crate::share::WorkMemo`]).
    pub fn seq(&self) -> u64 {
        self.seq
    }
}

/// The jobs one miner holds (bounded), newest last.
#[derive(Debug)]
pub struct MinerJobs {
    jobs: VecDeque<MinerJob>,
    cap: usize,
    max_seen_per_job: usize,
    next_seq: u64,
    /// Per session: the sequence number of its latest clean job; its jobs before it are
    /// superseded. Kept as marks, not flags on every job, so that a new block costs each
    /// miner one entry, not a walk over all its jobs (10,000 miners take it at once).
    clean_marks: Vec<(u64, u64)>,
}

impl MinerJobs {
    pub fn new(cap: usize) -> Self {
        Self {
            jobs: VecDeque::new(),
            cap: cap.max(2),
            max_seen_per_job: 1 << 16,
            next_seq: 0,
            clean_marks: Vec::new(),
        }
    }

    /// Record a job sent to the miner. A clean job supersedes earlier jobs of the same session.
    pub fn push(
        &mut self,
        id: Arc<str>,
        variant: Arc<JobVariant>,
        difficulty: f64,
        mask: u32,
        clean: bool,
    ) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let session_id = variant.job.session_id;
        if clean {
            match self.clean_marks.iter_mut().find(|(s, _)| *s == session_id) {
                Some(m) => m.1 = seq,
                None => {
                    // A miner is in one session at a time; a few marks cover its recent moves.
                    if self.clean_marks.len() >= 8 {
                        self.clean_marks.remove(0);
                    }
                    self.clean_marks.push((session_id, seq));
                }
            }
        }
        if self.jobs.len() >= self.cap {
            self.jobs.pop_front();
        }
        self.jobs.push_back(MinerJob {
            id,
            variant,
            session_id,
            seq,
            difficulty,
            mask,
            seen: None,
        });
    }

    /// Whether a clean job of the same session came after `j` (a new block: `j` is stale).
    pub fn is_superseded(&self, j: &MinerJob) -> bool {
        self.clean_marks
            .iter()
            .any(|&(s, q)| s == j.session_id && j.seq < q)
    }

    /// Whether the miner was already sent work from this pool job.
    pub fn has_pool_job(&self, job: &Arc<PoolJob>) -> bool {
        self.jobs.iter().any(|j| Arc::ptr_eq(&j.variant.job, job))
    }

    /// The newest variant of `job` for `miner_en2` this miner was sent.
    pub fn latest_of(&self, job: &Arc<PoolJob>, miner_en2: usize) -> Option<Arc<JobVariant>> {
        self.jobs
            .iter()
            .rev()
            .find(|j| Arc::ptr_eq(&j.variant.job, job) && j.variant.miner_en2 == miner_en2)
            .map(|j| j.variant.clone())
    }

    pub fn latest(&self) -> Option<&MinerJob> {
        self.jobs.back()
    }

    pub fn get(&self, id: &str) -> Result<&MinerJob, JobLookup> {
        match self.lookup(id) {
            Some((j, false)) => Ok(j),
            Some((_, true)) => Err(JobLookup::Superseded),
            None => Err(JobLookup::Unknown),
        }
    }

    /// The job sent under `id`, and whether a later clean job of its session superseded it
    /// (a superseded job still tells what work the share was, for the stale verdict).
    pub fn lookup(&self, id: &str) -> Option<(&MinerJob, bool)> {
        let j = self.jobs.iter().rev().find(|j| &*j.id == id)?;
        Some((j, self.is_superseded(j)))
    }

    /// Mark a share as seen for job `id`; `false` if it was seen before (a duplicate).
    pub fn first_sighting(&mut self, id: &str, share_hash: &[u8; 32]) -> bool {
        self.sighting(id, share_hash) == Sighting::First
    }

    /// Mark a share as seen for job `id` and say whether (and under which id) it was seen
    /// before. Every id of the same work (same pool job, same padding) counts: the same header
    /// is the same share whichever id it is submitted under.
    ///
    /// A share is known by its own hash (`share_hash`, the sha256d of its header in internal
    /// byte order), which the hub has computed anyway: within one work, the same hash is the
    /// same header (extranonce2, ntime, nonce and version bits alike). The low 64 bits are
    /// the key. They are uniformly random for every share that proves work (its difficulty
    /// bounds the high bytes, not the low ones), so they key the set with no second hash; a
    /// miner cannot steer them towards one bucket without grinding far more work than the
    /// shares are worth.
    pub fn sighting(&mut self, id: &str, share_hash: &[u8; 32]) -> Sighting {
        let mut low = [0u8; 8];
        low.copy_from_slice(&share_hash[..8]);
        let key = u64::from_le_bytes(low);
        let max = self.max_seen_per_job;
        // The same work (same pool job, same padding) may have been sent under several ids
        // (p = 0 leaves nothing to salt): a share seen under any of them is a duplicate.
        let Some(at) = self.jobs.iter().rposition(|j| &*j.id == id) else {
            return Sighting::First;
        };
        let work = &self.jobs[at].variant;
        let same_work =
            |j: &MinerJob| Arc::ptr_eq(&j.variant.job, &work.job) && j.variant.pad == work.pad;
        // A key is in at most one set (it is inserted only when no set of the work has it), so
        // the other ids are looked at first and this id's set takes one probe: the insert.
        if let Some(seen) = self.jobs.iter().enumerate().find_map(|(i, j)| {
            (i != at && same_work(j) && j.seen.as_ref().is_some_and(|s| s.contains(&key)))
                .then_some(j)
        }) {
            return if &*seen.id == id {
                Sighting::SameId
            } else {
                Sighting::OtherId
            };
        }
        let seen = self.jobs[at].seen.get_or_insert_with(Box::default);
        let new = if seen.len() < max {
            seen.insert(key)
        } else {
            !seen.contains(&key)
        };
        if new {
            Sighting::First
        } else {
            Sighting::SameId
        }
    }

    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }
}

/// A pool job for unit tests (here and in the connection's), with a fixed notify.
#[cfg(test)]
pub(crate) fn test_pool_job(session_id: u64, n2: usize) -> Arc<PoolJob> {
    tests::pool_job(session_id, n2)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for a share's header hash: a function of the share's fields, as the real one
    /// is within one work.
    fn share_hash(extranonce2: &[u8], ntime: u32, nonce: u32, version_bits: u32) -> [u8; 32] {
        let mut bytes = extranonce2.to_vec();
        for x in [ntime, nonce, version_bits] {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        crate::share::sha256d(&bytes)
    }

    pub(super) fn pool_job(session_id: u64, n2: usize) -> Arc<PoolJob> {
        Arc::new(PoolJob::new(
            session_id,
            Arc::from("p"),
            Notify {
                job_id: "pj".into(),
                prevhash: [1; 32],
                coinb1: vec![1, 2, 3],
                coinb2: vec![4, 5],
                merkle_branch: vec![],
                version: 0x2000_0000,
                nbits: 0x1d00ffff,
                ntime: 1,
                clean_jobs: false,
            },
            vec![0xaa; 4],
            n2,
            1.0,
            Target::from_difficulty(1.0).unwrap(),
            0,
        ))
    }

    #[test]
    fn variant_folds_e1_and_padding_and_shares_one_line() {
        let v = JobVariant::build(pool_job(1, 8), "a1".into(), 2, 4, 0).unwrap();
        assert_eq!(v.pad, vec![0, 0]);
        assert_eq!(v.notify.coinb1, vec![1, 2, 3, 0xaa, 0xaa, 0xaa, 0xaa, 0, 0]);
        assert!(std::str::from_utf8(&v.line).unwrap().contains("\"a1\""));
        assert!(JobVariant::build(pool_job(1, 5), "x".into(), 2, 4, 0).is_none());
        let alias = v.line_as("b2", true);
        assert!(std::str::from_utf8(&alias).unwrap().ends_with("true]}\n"));
    }

    #[test]
    fn resends_are_new_work_or_caught_as_duplicates() {
        let job = pool_job(1, 8);
        let v = Arc::new(JobVariant::build(job.clone(), "a".into(), 2, 4, 1).unwrap());
        let r = v.resent("b".into(), 2, 2, 0).unwrap();
        assert_ne!(
            v.notify.coinb1, r.notify.coinb1,
            "salt changes the coinbase"
        );
        assert!(!r.notify.clean_jobs);
        // p = 0: nothing to salt; the same share under the new id is a duplicate
        let tight = pool_job(1, 6);
        let v0 = Arc::new(JobVariant::build(tight.clone(), "c".into(), 2, 4, 1).unwrap());
        let r0 = Arc::new(v0.resent("d".into(), 2, 2, 0).unwrap());
        assert_eq!(v0.notify.coinb1, r0.notify.coinb1);
        let mut t = MinerJobs::new(8);
        t.push("c".into(), v0, 1.0, 0, false);
        t.push("d".into(), r0, 1.0, 0, false);
        assert!(t.first_sighting("c", &share_hash(&[0; 4], 1, 2, 0)));
        assert!(!t.first_sighting("d", &share_hash(&[0; 4], 1, 2, 0)));
        // salted re-send: the same en2/nonce is new work
        t.push("a".into(), v, 1.0, 0, false);
        t.push("b".into(), Arc::new(r), 1.0, 0, false);
        assert!(t.first_sighting("a", &share_hash(&[0; 4], 1, 2, 0)));
        assert!(t.first_sighting("b", &share_hash(&[0; 4], 1, 2, 0)));
    }

    #[test]
    fn a_pool_resend_of_the_same_work_is_recognised_and_updates_where_shares_go() {
        let job = pool_job(1, 4);
        let mut again = job.notify.clone();
        again.job_id = "pj2".into();
        again.clean_jobs = true;
        assert!(
            job.same_work(&again, &job.pool_e1, 4),
            "id and clean flag aside"
        );
        assert!(!job.same_work(&again, &[0xbb; 4], 4), "another extranonce1");
        let mut other = again.clone();
        other.ntime += 1;
        assert!(
            !job.same_work(&other, &job.pool_e1, 4),
            "another ntime is other work"
        );
        let t2 = Target::from_difficulty(2.0).unwrap();
        job.resent("pj2", 2.0, t2);
        let u = job.upstream();
        assert_eq!(&*u.pool_job_id, "pj2");
        assert_eq!(u.difficulty, 2.0);
        assert_eq!(u.target, t2);
    }

    #[test]
    fn with_no_padding_a_resend_is_new_work_by_a_later_ntime() {
        // n2 = 6, k = 2, m = 4: p = 0, nothing to salt.
        let v = Arc::new(JobVariant::build(pool_job(1, 6), "1".into(), 2, 4, 0).unwrap());
        assert!(v.pad.is_empty());
        let r = v.resent("2".into(), 2, 7, 0).unwrap();
        assert_eq!(r.notify.ntime, v.notify.ntime + 1, "one second later");
        assert_ne!(r.line, v.line);
        assert!(!r.notify.clean_jobs);
        let r2 = r.resent("3".into(), 2, 8, 1_000).unwrap();
        assert_eq!(r2.notify.ntime, 1_000, "or now, if later");
        // Shares: the same header under another id of the same work is a duplicate, and
        // told apart from a miner sending one share twice under one id.
        let mut t = MinerJobs::new(8);
        t.push("1".into(), v.clone(), 1.0, 0, false);
        t.push("2".into(), Arc::new(r), 1.0, 0, false);
        assert_eq!(
            t.sighting("1", &share_hash(&[0; 4], 5, 9, 0)),
            Sighting::First
        );
        assert_eq!(
            t.sighting("1", &share_hash(&[0; 4], 5, 9, 0)),
            Sighting::SameId
        );
        assert_eq!(
            t.sighting("2", &share_hash(&[0; 4], 5, 9, 0)),
            Sighting::OtherId
        );
        assert_eq!(
            t.sighting("2", &share_hash(&[0; 4], 6, 9, 0)),
            Sighting::First,
            "other ntime"
        );
        let latest = t.latest_of(&v.job, 4).unwrap();
        assert_eq!(&*latest.proxy_id, "2");
    }

    #[test]
    fn a_superseded_job_is_still_found_for_its_verdict() {
        let mut t = MinerJobs::new(8);
        let a = |id: &str| Arc::new(JobVariant::build(pool_job(1, 8), id.into(), 2, 4, 0).unwrap());
        t.push("1".into(), a("1"), 1.0, 0, false);
        t.push("2".into(), a("2"), 1.0, 0, true);
        let (j, superseded) = t.lookup("1").unwrap();
        assert!(superseded);
        assert_eq!(&*j.id, "1");
        assert!(!t.lookup("2").unwrap().1);
        assert!(t.lookup("9").is_none());
    }

    #[test]
    fn stale_and_duplicate_detection() {
        let mut t = MinerJobs::new(4);
        let v1 = Arc::new(JobVariant::build(pool_job(1, 8), "1".into(), 2, 4, 0).unwrap());
        let v2 = Arc::new(JobVariant::build(pool_job(2, 8), "2".into(), 2, 4, 0).unwrap());
        t.push("1".into(), v1.clone(), 8.0, 0, false);
        t.push("2".into(), v2, 8.0, 0, true); // clean on another session: job 1 stays valid
        assert!(t.get("1").is_ok());
        t.push("3".into(), v1, 8.0, 0, true); // clean on session 1 supersedes job 1
        assert_eq!(t.get("1").unwrap_err(), JobLookup::Superseded);
        assert_eq!(t.get("nope").unwrap_err(), JobLookup::Unknown);
        assert!(t.first_sighting("2", &share_hash(&[1, 2], 5, 6, 0)));
        assert!(!t.first_sighting("2", &share_hash(&[1, 2], 5, 6, 0)));
        assert!(t.first_sighting("2", &share_hash(&[1, 2], 5, 7, 0)));
        for i in 0..10 {
            let v = Arc::new(
                JobVariant::build(pool_job(3, 8), format!("x{i}").into(), 2, 4, 0).unwrap(),
            );
            t.push(format!("x{i}").into(), v, 1.0, 0, false);
        }
        assert_eq!(t.len(), 4, "bounded");
        assert_eq!(t.get("2").unwrap_err(), JobLookup::Unknown);
    }

    #[test]
    fn a_clean_job_supersedes_only_what_came_before_it_in_its_session() {
        let mut t = MinerJobs::new(8);
        let a = |id: &str| Arc::new(JobVariant::build(pool_job(1, 8), id.into(), 2, 4, 0).unwrap());
        t.push("a1".into(), a("a1"), 1.0, 0, false);
        t.push("a2".into(), a("a2"), 1.0, 0, true);
        t.push("a3".into(), a("a3"), 1.0, 0, false);
        assert_eq!(t.get("a1").unwrap_err(), JobLookup::Superseded);
        assert!(t.get("a2").is_ok(), "the clean job itself");
        assert!(t.get("a3").is_ok(), "work after the clean job");
        t.push("a4".into(), a("a4"), 1.0, 0, true);
        for id in ["a1", "a2", "a3"] {
            assert_eq!(t.get(id).unwrap_err(), JobLookup::Superseded, "{id}");
        }
        assert!(t.get("a4").is_ok());
        assert!(!t.is_superseded(t.latest().unwrap()));
    }

    #[test]
    fn an_own_copy_is_the_same_work_with_counters_of_its_own() {
        let v = Arc::new(JobVariant::build(pool_job(1, 8), "7".into(), 2, 4, 9).unwrap());
        let c = v.own_copy();
        assert_eq!(c.line, v.line);
        assert_eq!(c.pad, v.pad);
        assert_eq!(&*c.proxy_id, &*v.proxy_id);
        assert!(!Arc::ptr_eq(&c.proxy_id, &v.proxy_id));
        assert!(Arc::ptr_eq(&c.job, &v.job), "the same pool job");
        // Shares on the copy are duplicates of shares on the original (same work).
        let mut t = MinerJobs::new(4);
        t.push("7".into(), v.clone(), 1.0, 0, false);
        t.push("8".into(), Arc::new(c), 1.0, 0, false);
        assert!(t.first_sighting("7", &share_hash(&[1; 4], 1, 2, 0)));
        assert!(!t.first_sighting("8", &share_hash(&[1; 4], 1, 2, 0)));
    }
}
