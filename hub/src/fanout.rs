//! Job fan-out: a pool job to every miner of an upstream session, spread over the cores.
//!
//! A new block means a new job for every miner at once, and its broadcast is the hub's one
//! burst of work: on 10,000 connections the socket writes alone take tens of milliseconds of
//! CPU. Written from the session task they would all run on one core; waking a task per miner
//! costs more than the writes. So the session cuts its miners into chunks and hands them to the
//! hub's fan-out threads (one per core), which write the job straight to the miners' sockets
//! ([`MinerLink::send_job`]). Plain threads, not runtime tasks: a chunk is milliseconds of
//! back-to-back non-blocking writes that must run in parallel, and the runtime's threads keep
//! serving shares meanwhile.
//!
//! The threads take chunks from one queue, whichever is free first, so that a thread that gets
//! less CPU (the machine is shared) does not leave the other idle at the end. Order per miner:
//! a miner always falls in the same chunk of its session (by connection id), and a chunk is
//! not started while an earlier chunk with the same key is queued or being written; so a
//! miner never receives two jobs out of order, however close together the pool sends them.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use tracing::warn;

use crate::jobs::JobVariant;
use crate::link::MinerLink;

/// Up to this many miners in all are written by the session itself when nothing is in
/// flight: a small farm gets its job with no hand-off at all.
const INLINE: usize = 32;

/// Chunks per thread and session: small enough that the threads finish together.
const CHUNKS_PER_THREAD: usize = 4;

/// The miners of one chunk and the job variant each gets (an index into `variants`; each
/// chunk has its own copies, so that the threads do not all count references on one variant).
#[derive(Debug, Default)]
pub struct Batch {
    variants: Vec<Arc<JobVariant>>,
    miners: Vec<(Arc<MinerLink>, usize)>,
}

impl Batch {
    pub fn push(&mut self, link: Arc<MinerLink>, variant: usize) {
        self.miners.push((link, variant));
    }

    fn send(&self) {
        for (link, v) in &self.miners {
            if let Some(v) = self.variants.get(*v) {
                link.send_job(v);
            }
        }
    }
}

/// Which miners a chunk holds: (session, chunk index). Chunks with one key go in order.
type Key = (u64, usize);

#[derive(Debug, Default)]
struct Queue {
    waiting: VecDeque<(Key, Batch)>,
    writing: Vec<Key>,
    closed: bool,
}

#[derive(Debug, Default)]
struct Work {
    queue: Mutex<Queue>,
    ready: Condvar,
    /// Chunks queued or being written.
    in_flight: AtomicUsize,
}

impl Work {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fan-out thread: the first chunk whose key is free, written, until the hub goes.
    fn serve(&self) {
        loop {
            let (key, batch) = {
                let mut q = self.lock();
                loop {
                    let free = q.waiting.iter().position(|(k, _)| !q.writing.contains(k));
                    if let Some(chunk) = free.and_then(|i| q.waiting.remove(i)) {
                        q.writing.push(chunk.0);
                        break chunk;
                    }
                    if q.closed {
                        return;
                    }
                    q = self.ready.wait(q).unwrap_or_else(|p| p.into_inner());
                }
            };
            batch.send();
            drop(batch);
            self.lock().writing.retain(|k| *k != key);
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            // A chunk with the same key may have been waiting for this one.
            self.ready.notify_all();
        }
    }
}

/// The hub's fan-out threads and their queue.
#[derive(Debug)]
pub struct FanOut {
    chunks: usize,
    work: Arc<Work>,
    /// False when no thread could be started: sessions write in place.
    threaded: bool,
}

impl FanOut {
    /// One thread per core this process may use (at most 8).
    pub fn for_this_machine() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::with_threads(cores.clamp(1, 8))
    }

    pub fn with_threads(n: usize) -> Self {
        let work = Arc::new(Work::default());
        let mut started = 0;
        for k in 0..n.max(1) {
            let w = work.clone();
            match std::thread::Builder::new()
                .name(format!("hub-fanout-{k}"))
                .spawn(move || w.serve())
            {
                Ok(_) => started += 1,
                Err(e) => warn!(thread = k, error = %e, "cannot start a job fan-out thread"),
            }
        }
        if started == 0 {
            warn!("no job fan-out thread; sessions write jobs themselves");
        }
        Self {
            chunks: n.max(1) * CHUNKS_PER_THREAD,
            work,
            threaded: started > 0,
        }
    }

    /// Empty chunks for a job in these variants (each with copies of its own, see
    /// [`JobVariant::own_copy`]).
    pub fn batches(&self, variants: &[Arc<JobVariant>]) -> Vec<Batch> {
        (0..self.chunks)
            .map(|_| Batch {
                variants: variants.iter().map(|v| Arc::new(v.own_copy())).collect(),
                miners: Vec::new(),
            })
            .collect()
    }

    /// The chunk of a miner: fixed for its connection's life.
    pub fn chunk_of(&self, miner: u64) -> usize {
        usize::try_from(miner % self.chunks as u64).unwrap_or(0)
    }

    /// Write one broadcast of `session` after that session's earlier broadcasts.
    pub fn dispatch(&self, session: u64, batches: Vec<Batch>) {
        let miners: usize = batches.iter().map(|b| b.miners.len()).sum();
        if miners == 0 {
            return;
        }
        let idle = self.work.in_flight.load(Ordering::Acquire) == 0;
        if !self.threaded || (idle && miners <= INLINE) {
            batches.iter().for_each(Batch::send);
            return;
        }
        {
            let mut q = self.work.lock();
            for (i, b) in batches.into_iter().enumerate() {
                if !b.miners.is_empty() {
                    self.work.in_flight.fetch_add(1, Ordering::AcqRel);
                    q.waiting.push_back(((session, i), b));
                }
            }
        }
        self.work.ready.notify_all();
    }
}

impl Drop for FanOut {
    fn drop(&mut self) {
        self.work.lock().closed = true;
        self.work.ready.notify_all();
    }
}
