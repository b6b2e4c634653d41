//! Job fan-out: a pool job to every miner of an upstream session, spread over the cores.
//!
//! A new block means a new job for every miner at once, and its broadcast is the hub's one
//! burst of work: on 10,000 connections the socket writes alone take tens of milliseconds of
//! CPU. Written from the session task they would all run on one core; waking a task per miner
//! costs more than the writes. So the session splits the miners into one batch per core and
//! hands the batches to the hub's fan-out threads, which write the job straight to the miners'
//! sockets ([`MinerLink::send_job`]). Plain threads, not runtime tasks: a batch is a few
//! milliseconds of back-to-back non-blocking writes that must run in parallel, and it must
//! not hold up the runtime's threads, which keep serving shares meanwhile.
//!
//! A miner always belongs to the same shard (by connection id) and each shard thread takes its
//! batches in order, so a miner never receives two jobs out of order, however close together
//! the pool sends them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use tracing::warn;

use crate::downstream::MinerLink;
use crate::jobs::JobVariant;

/// Up to this many miners in a shard are written by the session itself when the shard has
/// nothing in flight: a small farm gets its job with no hand-off at all.
const INLINE: usize = 32;

/// The miners of one shard and the job variant each gets (an index into `variants`, so that
/// the shard threads do not all count references on the same variant).
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

#[derive(Debug)]
struct Shard {
    /// `None`: the thread could not be started (or died); the session writes in place.
    tx: Option<mpsc::Sender<Batch>>,
    /// Batches handed to the thread and not finished.
    in_flight: Arc<AtomicUsize>,
}

/// The hub's fan-out threads.
#[derive(Debug)]
pub struct FanOut {
    shards: Vec<Shard>,
}

impl FanOut {
    /// One shard per core this process may use (at most 8).
    pub fn for_this_machine() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::with_shards(cores.clamp(1, 8))
    }

    pub fn with_shards(n: usize) -> Self {
        let shards = (0..n.max(1))
            .map(|k| {
                let (tx, rx) = mpsc::channel::<Batch>();
                let in_flight = Arc::new(AtomicUsize::new(0));
                let done = in_flight.clone();
                let started = std::thread::Builder::new()
                    .name(format!("hub-fanout-{k}"))
                    .spawn(move || {
                        // Ends when the hub drops its sender.
                        while let Ok(batch) = rx.recv() {
                            batch.send();
                            done.fetch_sub(1, Ordering::AcqRel);
                        }
                    });
                let tx = match started {
                    Ok(_) => Some(tx),
                    Err(e) => {
                        warn!(shard = k, error = %e, "cannot start a job fan-out thread; sessions write that shard's jobs themselves");
                        None
                    }
                };
                Shard { tx, in_flight }
            })
            .collect();
        Self { shards }
    }

    /// Empty batches, one per shard, for a job in these variants (each shard with copies of
    /// its own, see [`JobVariant::own_copy`]).
    pub fn batches(&self, variants: &[Arc<JobVariant>]) -> Vec<Batch> {
        self.shards
            .iter()
            .map(|_| Batch {
                variants: variants.iter().map(|v| Arc::new(v.own_copy())).collect(),
                miners: Vec::new(),
            })
            .collect()
    }

    /// The shard of a miner: fixed for its connection's life.
    pub fn shard_of(&self, miner: u64) -> usize {
        usize::try_from(miner % self.shards.len() as u64).unwrap_or(0)
    }

    /// Send each batch from its shard, after that shard's earlier batches.
    pub fn dispatch(&self, batches: Vec<Batch>) {
        for (shard, batch) in self.shards.iter().zip(batches) {
            if batch.miners.is_empty() {
                continue;
            }
            let idle = shard.in_flight.load(Ordering::Acquire) == 0;
            let batch = match &shard.tx {
                Some(tx) if !(idle && batch.miners.len() <= INLINE) => {
                    shard.in_flight.fetch_add(1, Ordering::AcqRel);
                    match tx.send(batch) {
                        Ok(()) => continue,
                        Err(mpsc::SendError(b)) => {
                            shard.in_flight.fetch_sub(1, Ordering::AcqRel);
                            b
                        }
                    }
                }
                _ => batch,
            };
            batch.send();
        }
    }
}
