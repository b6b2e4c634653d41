//! The links between the hub's tasks: how the switchboard and pool sessions reach a miner's
//! connection ([`MinerLink`], [`ToMiner`]), how miners and the switchboard reach a pool session
//! ([`SessionHandle`], [`SessionCmd`], [`SubmitBatch`], [`UpSubmit`]), and what sessions and
//! miners report to the switchboard ([`SessionEvent`], [`MinerJoin`]).
//!
//! A leaf module on purpose: the connection, session and switchboard modules all speak these
//! types, and none of them has to import another to do so, so the hub's modules form no import
//! circle (the connection's state stays private behind [`MinerDoor`]). A miner's inbox
//! ([`MinerInbox`]) lives here too: it is what a [`MinerLink`] sends into.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::jobs::JobVariant;
use crate::protocol::Extranonce2;
use crate::routing::{ResolvedPool, Route};
use crate::stats::WorkerEntry;

/// Messages to a miner connection.
#[derive(Debug)]
pub enum ToMiner {
    /// A new job of the miner's current session.
    Job(Arc<JobVariant>),
    /// The miner now mines on `session` (first assignment or a switch).
    Attached {
        session: Arc<SessionHandle>,
        pool: Arc<ResolvedPool>,
        job: Option<Arc<JobVariant>>,
        pool_mask: u32,
        /// When the switchboard decided to move the miner here from another pool (`None`: first
        /// assignment or another session of the same pool).
        switch_started: Option<Instant>,
    },
    /// The pool changed its version mask.
    PoolMask { session_id: u64, mask: u32 },
    /// Fallback: the next pool needs a smaller extranonce2 (`mining.set_extranonce`).
    SetExtranonce { m: usize },
    /// Fallback: ask the miner to reconnect, then close. `reason` is logged and labels the
    /// close; `metric` is a [`crate::metrics::reconnect`] value.
    Reconnect {
        reason: &'static str,
        metric: &'static str,
    },
    /// Close the connection.
    Close { reason: &'static str },
    /// The pool accepted a forwarded share: `true` under the miner's request id (written
    /// straight into the connection's output, the common verdict).
    Accepted(Value),
    /// A ready answer line (the pool's refusal of a forwarded share, or a share lost).
    Answer(String),
    /// A job fan-out left bytes the socket did not take: the task finishes the write, waiting
    /// for the socket (and closes a miner that stops reading).
    Flush,
}

/// How the switchboard and sessions reach a miner.
#[derive(Debug, Clone)]
pub struct MinerLink {
    pub id: u64,
    /// Extranonce2 size the miner works with.
    pub m: usize,
    kill: CancellationToken,
    door: Weak<dyn MinerDoor>,
}

/// The part of a miner's connection that others reach without waking the miner's task (the
/// connection module implements it on its shared cell): its inbox, and a job fan-out's direct
/// write.
pub trait MinerDoor: Send + Sync {
    /// The miner's inbox.
    fn inbox(&self) -> &MinerInbox;
    /// Record the job and write it to the socket now, if nothing queued earlier is still
    /// unapplied (checked under the miner's lock): `Some(false)` when the miner is gone,
    /// `None` when the job must queue behind earlier messages.
    fn job_now(&self, v: &Arc<JobVariant>) -> Option<bool>;
}

/// A miner's inbox: messages from the switchboard and the pool sessions, in order, bounded,
/// and woken with a [`Notify`].
///
/// Not a tokio `mpsc` channel: a bounded channel allocates its first 32-slot block and its
/// shared state up front, 2 KB per connection, for 10,000 miners that are mostly idle. An empty
/// inbox here holds no allocation once [`MinerInbox::release_memory`] has run.
#[derive(Debug)]
pub struct MinerInbox {
    items: Mutex<VecDeque<ToMiner>>,
    /// Messages pushed and not yet applied by the miner's task (a popped message counts until
    /// the task has applied it under the miner's lock; see [`MinerDoor::job_now`]).
    unapplied: AtomicUsize,
    wake: Notify,
    capacity: usize,
}

impl MinerInbox {
    /// An inbox that takes up to `capacity` messages (a full one means the miner stopped
    /// reading).
    pub fn new(capacity: usize) -> Self {
        MinerInbox {
            items: Mutex::new(VecDeque::new()),
            unapplied: AtomicUsize::new(0),
            wake: Notify::new(),
            capacity: capacity.max(1),
        }
    }

    fn items(&self) -> MutexGuard<'_, VecDeque<ToMiner>> {
        self.items.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue a message and wake the task; `false` when the inbox is full.
    fn push(&self, msg: ToMiner) -> bool {
        {
            let mut items = self.items();
            if items.len() >= self.capacity {
                return false;
            }
            self.unapplied.fetch_add(1, Ordering::AcqRel);
            items.push_back(msg);
        }
        self.wake.notify_one();
        true
    }

    /// The oldest message, if any (it counts as unapplied until [`MinerInbox::applied`]).
    pub fn pop(&self) -> Option<ToMiner> {
        self.items().pop_front()
    }

    /// The task applied one popped message.
    pub fn applied(&self) {
        self.unapplied.fetch_sub(1, Ordering::AcqRel);
    }

    /// Messages pushed and not yet applied.
    pub fn unapplied(&self) -> usize {
        self.unapplied.load(Ordering::Acquire)
    }

    /// Resolves when a message may have arrived since the last wake-up (spurious wake-ups
    /// happen: the caller drains what is there). Cancel-safe: a wake-up taken by a dropped
    /// waiter is passed on.
    pub async fn changed(&self) {
        self.wake.notified().await;
    }

    /// Give the queue's memory back while it is empty (the miner's housekeeping tick).
    pub fn release_memory(&self) {
        let mut items = self.items();
        if items.is_empty() && items.capacity() > 0 {
            *items = VecDeque::new();
        }
    }
}

impl MinerLink {
    pub fn new(id: u64, m: usize, kill: CancellationToken, door: Weak<dyn MinerDoor>) -> Self {
        MinerLink { id, m, kill, door }
    }

    /// Queue a message; a full queue means the miner stopped reading: it is closed.
    pub fn send(&self, msg: ToMiner) -> bool {
        // No door: the miner's task has ended.
        let Some(door) = self.door.upgrade() else {
            return false;
        };
        if door.inbox().push(msg) {
            true
        } else {
            self.kill.cancel();
            false
        }
    }

    /// Hand a job of the miner's session to the miner: recorded and written to its socket
    /// here and now when nothing queued for the miner is still unapplied, else queued behind
    /// it. False when the miner is gone.
    pub fn send_job(&self, v: &Arc<JobVariant>) -> bool {
        let Some(door) = self.door.upgrade() else {
            return false;
        };
        match door.job_now(v) {
            Some(sent) => sent,
            None => self.send(ToMiner::Job(v.clone())),
        }
    }
}

/// What the pool gave this session.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionInfo {
    pub e1: Vec<u8>,
    pub n2: usize,
    /// Version bits the pool granted (0 = none).
    pub version_mask: u32,
}

/// A share on its way to the pool, as the session handles it (unpacked from a [`SubmitBatch`]
/// on the session's thread).
#[derive(Debug)]
pub struct UpSubmit {
    pub worker: Arc<WorkerEntry>,
    /// The name the worker uses on this pool (`{user}.{worker}`).
    pub upstream_user: Arc<str>,
    pub pool_job_id: Arc<str>,
    /// Pool-form extranonce2 (`0^p ‖ tail ‖ en2`), inline.
    pub extranonce2: Extranonce2,
    pub ntime: u32,
    pub nonce: u32,
    pub version_bits: Option<u32>,
    /// Miner-facing difficulty the share is credited at.
    pub difficulty: f64,
    pub received: Instant,
    /// Where the pool's verdict goes: the miner gets the pool's answer under its own request id.
    pub reply: Option<Reply>,
}

/// The miner waiting for a forwarded share's verdict.
#[derive(Debug)]
pub struct Reply {
    pub link: Arc<MinerLink>,
    pub id: Value,
}

impl Reply {
    pub fn answer(self, line: String) {
        self.link.send(ToMiner::Answer(line));
    }

    /// The pool's `true`.
    pub fn accept(self) {
        self.link.send(ToMiner::Accepted(self.id));
    }
}

/// The shares one miner forwarded in one turn of its task for one worker and one pool job,
/// handed to the session as one command: how every share reaches its session. A miner that
/// pipelines its shares sends many lines at once; one queue operation and one set of reference
/// counts (worker, name, job id, link) per batch, not per share, keeps the miner's and the
/// session's threads from trading the same cache lines for every share. The `Vec` is one
/// allocation per batch (a miner that is not pipelining sends batches of one).
#[derive(Debug)]
pub struct SubmitBatch {
    pub worker: Arc<WorkerEntry>,
    /// The name the worker uses on this pool (`{user}.{worker}`).
    pub upstream_user: Arc<str>,
    pub pool_job_id: Arc<str>,
    /// Where the pool's verdicts go.
    pub link: Arc<MinerLink>,
    pub shares: Vec<BatchedShare>,
}

/// One share of a [`SubmitBatch`]: what differs from share to share.
#[derive(Debug)]
pub struct BatchedShare {
    pub extranonce2: Extranonce2,
    pub ntime: u32,
    pub nonce: u32,
    pub version_bits: Option<u32>,
    pub difficulty: f64,
    pub received: Instant,
    /// The miner's request id, for the answer.
    pub id: Value,
}

impl SubmitBatch {
    /// The batch as single shares, in order (the shared parts cloned on the receiving side,
    /// where the clones stay local to its thread).
    pub fn into_submits(self) -> impl Iterator<Item = UpSubmit> {
        let SubmitBatch {
            worker,
            upstream_user,
            pool_job_id,
            link,
            shares,
        } = self;
        shares.into_iter().map(move |s| UpSubmit {
            worker: worker.clone(),
            upstream_user: upstream_user.clone(),
            pool_job_id: pool_job_id.clone(),
            extranonce2: s.extranonce2,
            ntime: s.ntime,
            nonce: s.nonce,
            version_bits: s.version_bits,
            difficulty: s.difficulty,
            received: s.received,
            reply: Some(Reply {
                link: link.clone(),
                id: s.id,
            }),
        })
    }
}

/// Commands to a session task.
#[derive(Debug)]
pub enum SessionCmd {
    /// Shares of one worker and pool job (see [`SubmitBatch`]).
    SubmitBatch(SubmitBatch),
    /// A miner joins the session; `switch_started`: when the switchboard decided to move it here from
    /// another pool (for the switch-duration histogram).
    Attach {
        link: MinerLink,
        switch_started: Option<Instant>,
    },
    Detach(u64),
    /// Authorize a worker's upstream name now (a miner joined or added a worker).
    Authorize(Arc<str>),
    Close,
}

/// The switchboard's and miners' handle on a session.
#[derive(Debug)]
pub struct SessionHandle {
    pub id: u64,
    pub pool: Arc<str>,
    tx: mpsc::Sender<SessionCmd>,
    alive: AtomicBool,
}

impl SessionHandle {
    /// A handle and the command queue its session task reads (`capacity` commands).
    pub fn new(id: u64, pool: Arc<str>, capacity: usize) -> (Self, mpsc::Receiver<SessionCmd>) {
        let (tx, rx) = mpsc::channel(capacity);
        let handle = SessionHandle {
            id,
            pool,
            tx,
            alive: AtomicBool::new(true),
        };
        (handle, rx)
    }

    /// The session task has ended (or is ending): shares are no longer taken.
    pub fn mark_closed(&self) {
        self.alive.store(false, Ordering::Relaxed);
    }

    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Relaxed) && !self.tx.is_closed()
    }

    /// Queue a batch of shares. On `Err` the batch comes back: the session is gone or backed
    /// up, and the caller books its shares as lost.
    pub fn submit_batch(&self, b: SubmitBatch) -> Result<(), SubmitBatch> {
        if !self.alive.load(Ordering::Relaxed) {
            return Err(b);
        }
        // A reserved slot cannot refuse the batch, so a refusal never has to be unpacked.
        match self.tx.try_reserve() {
            Ok(slot) => {
                slot.send(SessionCmd::SubmitBatch(b));
                Ok(())
            }
            Err(_) => Err(b),
        }
    }

    /// Attach a miner; `switch_started`: when the switchboard decided to move it here from another
    /// pool (`None` for a first assignment or another session of the same pool).
    pub fn attach(&self, link: MinerLink, switch_started: Option<Instant>) -> bool {
        self.tx
            .try_send(SessionCmd::Attach {
                link,
                switch_started,
            })
            .is_ok()
    }

    /// Authorize a worker's upstream name on this session (once; later calls do nothing).
    pub fn authorize(&self, user: Arc<str>) {
        let _ = self.tx.try_send(SessionCmd::Authorize(user));
    }

    pub fn detach(&self, miner: u64) {
        let _ = self.tx.try_send(SessionCmd::Detach(miner));
    }

    pub fn close(&self) {
        let _ = self.tx.try_send(SessionCmd::Close);
    }
}

/// What a session tells the switchboard.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEvent {
    /// Subscribed, authorized, first job received.
    Ready(SessionInfo),
    /// Never became ready. `configure_suspect`: the pool closed right after `mining.configure`.
    Failed {
        auth_rejected: bool,
        configure_suspect: bool,
        reason: String,
    },
    /// Was ready, now closed.
    Closed {
        reason: String,
    },
    Job,
    Verdicts {
        accepted: u64,
        rejected: u64,
    },
    /// The pool asked us to reconnect (optionally elsewhere, after a wait).
    Reconnect {
        host: Option<String>,
        port: Option<u16>,
        wait: Duration,
    },
}

/// A miner registering after its first successful authorize.
#[derive(Debug)]
pub struct MinerJoin {
    pub link: MinerLink,
    pub extranonce_subscribed: bool,
    pub login: String,
    pub route: Route,
    /// (login, stats entry) of every worker authorized on the connection.
    pub entries: Vec<(String, Arc<WorkerEntry>)>,
}
