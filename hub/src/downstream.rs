//! One miner connection: the Stratum V1 server side of the hub.
//!
//! The task owns everything about its miner (negotiated mask, tail, workers, jobs it was sent,
//! vardiff), so the share path takes no hub-wide lock: look the job up locally, check it with
//! sha256d, book the result on the worker, forward it to the job's session if it meets the pool
//! target. A share below the pool target (or refused locally) is answered at once; a forwarded
//! share is answered with the pool's own verdict under the miner's request id (so the miner's
//! accepted/rejected counts match the pool's, even when miners reuse ids like cpuminer's `4`).
//! Switches, answers and fallbacks arrive on the connection's queue ([`ToMiner`]) from upstream
//! sessions and the switchboard.
//!
//! Jobs take a shorter road: the miner's state sits behind a small lock ([`MinerCell`]) that
//! its session's fan-out takes to record the job and write it straight to the socket, without
//! waking the miner's task (at 10,000 miners per job, the wake-ups cost more than the writes).
//! Order is kept by one rule: a job goes straight to the socket only when nothing sent to the
//! miner earlier is still waiting in its queue; otherwise it joins the queue behind it. Every
//! byte for the miner, from the task or the fan-out, goes through the same buffer under the
//! same lock, so the difficulty and mask recorded with a job are the ones the miner was told
//! just before it.
//!
//! Hygiene: bounded lines, a token bucket against floods, handshake and idle timeouts, a bounded
//! outgoing queue (a miner that stops reading is closed), every bad input answered with a Stratum
//! error and counted; a connection never takes another down.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::extranonce::{ASSUMED_POOL_EXTRANONCE2_SIZE, Tail, fit_miner_en2, pool_extranonce2};
use crate::facts::ShareResult;
use crate::jobs::{JobVariant, MinerJobs, PoolJob, Sighting, UpstreamJob};
use crate::lines::{LineRead, SocketLines};
use crate::link::{
    BatchedShare, MinerDoor, MinerInbox, MinerJoin, MinerLink, SessionHandle, SubmitBatch, ToMiner,
};
use crate::metrics::{protocol_error, reconnect, side, unattributed};
use crate::protocol::{
    self, BIP320_VERSION_MASK, Configure, ConfigureResult, Message, MinerRequest, ServerRequest,
    SetExtranonce, Submit, SubmitRef, SubscribeResult, error_code, extension, method,
};
use crate::routing::{ResolvedPool, Route, WorkerDecision};
use crate::share::{HASHES_PER_DIFFICULTY, Target, WorkMemo};
use crate::shared::Shared;
use crate::stats::{WorkerEntry, unix_now};
use crate::vardiff::Vardiff;

/// A miner's state and the write side of its socket, shared by the miner's task and the job
/// fan-out of its session. The lock is held for microseconds and never across an await.
pub struct MinerCell {
    /// Messages from the switchboard and the sessions (applied by the task under the lock).
    inbox: MinerInbox,
    miner: Mutex<Miner>,
    writer: OwnedWriteHalf,
}

impl MinerDoor for MinerCell {
    fn inbox(&self) -> &MinerInbox {
        &self.inbox
    }

    fn job_now(&self, v: &Arc<JobVariant>) -> Option<bool> {
        let mut m = self.lock();
        // Read under the lock: the task applies a message and counts it off under it too.
        (self.inbox.unapplied() == 0).then(|| m.job_direct(v, &self.writer))
    }
}

impl MinerCell {
    /// A poisoned lock (a panic elsewhere) still yields the state.
    fn lock(&self) -> MutexGuard<'_, Miner> {
        self.miner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Apply one message from the queue (counted off the unapplied ones under the lock).
    fn apply(&self, m: &mut Miner, msg: ToMiner) -> Result<(), Closed> {
        let r = m.on_message(msg);
        self.inbox.applied();
        r
    }

    /// Write everything pending, waiting for the socket up to a bound. A miner whose queue
    /// overflows meanwhile (`kill`) is not waited for.
    async fn flush(&self, kill: &CancellationToken) -> Result<(), Closed> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match self.lock().try_flush(&self.writer) {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => {
                    debug!(error = %e, "write to miner failed");
                    return Err("write error");
                }
            }
            tokio::select! {
                r = tokio::time::timeout_at(deadline, self.writer.writable()) => match r {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        debug!(error = %e, "write to miner failed");
                        return Err("write error");
                    }
                    Err(_) => return Err("write timed out (miner not reading)"),
                },
                _ = kill.cancelled() => return Err(QUEUE_FULL),
            }
        }
    }
}

struct AuthWorker {
    login: String,
    entry: Arc<WorkerEntry>,
    /// Name on the current pool.
    upstream: Arc<str>,
}

struct Miner {
    sh: Arc<Shared>,
    id: u64,
    _peer: SocketAddr,
    out: Vec<u8>,
    /// Shared with every forwarded share's reply (an `Arc`: cloning the link itself takes the
    /// cancellation token's lock, twice per share).
    link: Arc<MinerLink>,
    miner_mask: Option<u32>,
    announced_mask: Option<u32>,
    extranonce_subscribed: bool,
    tail: Option<Tail>,
    m: usize,
    workers: Vec<AuthWorker>,
    registered: bool,
    pending_route: Option<Route>,
    session: Option<Arc<SessionHandle>>,
    pool: Option<Arc<ResolvedPool>>,
    pool_mask: u32,
    /// Sessions the miner was moved away from (at most two), with the name each worker had
    /// there: a late share goes to the session that issued its job, under that pool's name.
    previous: Vec<PreviousSession>,
    switched_at: Instant,
    /// Shares checked in this turn of the task and bound for a pool, handed to their session
    /// as one command at the end of the turn ([`Miner::send_forwards`]). Boxed: an idle
    /// miner pays a pointer for it.
    forwards: Option<Box<Forwards>>,
    /// Shares in the last batch handed over: the next batch's room is reserved at once (a
    /// pipelining miner sends about as many per turn each time; growing the `Vec` share by
    /// share cost a reallocation and a copy at every doubling).
    last_batch_len: u16,
    /// The pool id and target of the job last forwarded to (see [`UpstreamCache`]).
    upstream_cache: Option<Box<UpstreamCache>>,
    /// The work of the miner's last share (merkle root, header midstate): its next share on
    /// the same extranonce2 is hashed from there. Boxed on the first share.
    work_memo: Option<Box<WorkMemo>>,
    /// A move to another pool whose first job has not reached the miner yet (decision time).
    switch_started: Option<Instant>,
    /// That first job is in `out`: observe the switch duration once it is written.
    switch_written: Option<Instant>,
    jobs: MinerJobs,
    vardiff: Vardiff,
    difficulty_set: bool,
    announced: f64,
    target_cache: (f64, Target),
    tokens: f64,
    refill_at: Instant,
    errors: u32,
    last_line: Instant,
    connected_at: Instant,
    /// A monotonic instant and the Unix time it was, refreshed on every tick: shares are
    /// stamped from the instant their line was read, without a second clock read each.
    clock: (Instant, f64),
    /// A subscribe held until a pool's extranonce2 size is known: its id and the deadline.
    subscribe_held: Option<Box<(Value, tokio::time::Instant)>>,
}

/// A session the miner was moved away from; `names[i]` is what `workers[i]` was called there.
struct PreviousSession {
    handle: Arc<SessionHandle>,
    names: Vec<Arc<str>>,
}

/// Shares of one turn for one session, worker and pool job.
struct Forwards {
    session: Arc<SessionHandle>,
    batch: SubmitBatch,
    /// When the turn's lines arrived (unix seconds): the batch is booked as forwarded at that
    /// time, in one go, when it is handed over ([`Miner::send_forwards`]).
    at: f64,
}

/// A job's pool id and target as last read, with the version it was read at. The pool can
/// re-send a job under another id or difficulty ([`PoolJob::resent`]), so the current pair
/// sits behind a lock that every miner of the session would take for every share, from every
/// core; a version number read without a lock says whether the copy here is still current.
struct UpstreamCache {
    job: Arc<PoolJob>,
    version: u64,
    upstream: UpstreamJob,
}

/// The current pool id and target of `job`, read through the miner's one-entry cache.
fn upstream_of<'c>(
    cache: &'c mut Option<Box<UpstreamCache>>,
    job: &Arc<PoolJob>,
) -> &'c UpstreamJob {
    // The version is read before the value: a change in between is seen as a newer version
    // next time, never as an old value under a new version.
    let version = job.upstream_version();
    let stale =
        !matches!(cache.as_deref(), Some(c) if c.version == version && Arc::ptr_eq(&c.job, job));
    if stale {
        *cache = None;
    }
    &cache
        .get_or_insert_with(|| {
            Box::new(UpstreamCache {
                job: job.clone(),
                version,
                upstream: job.upstream(),
            })
        })
        .upstream
}

/// Why a connection ended (metric label + log).
type Closed = &'static str;

const QUEUE_FULL: Closed = "write queue full (miner not reading)";

/// How long a subscribe is held unanswered while no pool of the routing has answered its own
/// subscribe yet (just after the hub starts, when every miner reconnects at once). The answer
/// names the miner's extranonce2 size, which must fit the pool's; a guess that is too big
/// would cost a miner without `mining.extranonce.subscribe` (cpuminer) a reconnect as soon
/// as the pool answers. Lines after the subscribe wait too, so answers keep their order.
const SUBSCRIBE_WAIT_FOR_POOL: Duration = Duration::from_secs(3);

/// Resolves when a pool's extranonce2 size is known or at `deadline`, whichever is first.
async fn first_pool_answer(sh: &Shared, deadline: Option<tokio::time::Instant>) {
    let Some(deadline) = deadline else { return };
    let mut answered = sh.pool_answered.subscribe();
    let _ = tokio::time::timeout_at(deadline, answered.wait_for(|seen| *seen)).await;
}

/// Serve one accepted miner connection until it closes.
pub async fn serve(sh: Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    let id = sh.next_miner_id();
    let _ = stream.set_nodelay(true);
    let (reader, writer) = stream.into_split();
    let mut lines = SocketLines::default();
    // A child of the hub's shutdown token: one future below wakes the task for either.
    let kill = sh.shutdown.child_token();
    let cfg = &sh.config;
    let now = Instant::now();
    let initial = cfg.vardiff.initial_difficulty;
    let cell = Arc::new_cyclic(|cell: &Weak<MinerCell>| MinerCell {
        inbox: MinerInbox::new(sh.config.limits.write_queue),
        writer,
        miner: Mutex::new(Miner {
            id,
            _peer: peer,
            out: Vec::new(),
            link: Arc::new(MinerLink::new(
                id,
                cfg.extranonce.miner_extranonce2_size,
                kill.clone(),
                cell.clone(),
            )),
            miner_mask: None,
            announced_mask: None,
            extranonce_subscribed: false,
            tail: None,
            m: cfg.extranonce.miner_extranonce2_size,
            workers: Vec::new(),
            registered: false,
            pending_route: None,
            session: None,
            pool: None,
            pool_mask: 0,
            previous: Vec::new(),
            forwards: None,
            last_batch_len: 1,
            upstream_cache: None,
            work_memo: None,
            switched_at: now,
            switch_started: None,
            switch_written: None,
            jobs: MinerJobs::new(16),
            vardiff: Vardiff::for_new_miner(&cfg.vardiff, initial, unix_now()),
            difficulty_set: false,
            announced: 0.0,
            target_cache: (
                1.0,
                Target::from_difficulty(1.0).unwrap_or(Target(crate::share::DIFF1_TARGET)),
            ),
            tokens: cfg.limits.message_burst,
            refill_at: now,
            errors: 0,
            last_line: now,
            connected_at: now,
            clock: (now, unix_now()),
            subscribe_held: None,
            sh: sh.clone(),
        }),
    });
    let span = tracing::info_span!("miner", conn = id, peer = %peer);
    let reason: Closed = tracing::Instrument::instrument(
        async {
            let max = sh.config.limits.max_line_bytes;
            // Housekeeping every 2 s, at a phase of its own: after a restart every miner
            // reconnects within a second, and ticks that fire together stall job broadcasts.
            let phase = Duration::from_millis((id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % 2000);
            let mut tick = tokio::time::interval_at(
                tokio::time::Instant::now() + phase,
                Duration::from_secs(2),
            );
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // Made once, not per turn of the loop: a job broadcast wakes every miner at once,
            // and re-registering a cancellation waiter per wake-up is measurable at 10,000.
            let stopped = kill.cancelled();
            tokio::pin!(stopped);
            loop {
                let held = cell.lock().subscribe_held.as_ref().map(|h| h.1);
                // Each branch takes the lock for its synchronous work only.
                let r: Result<(), Closed> = tokio::select! {
                    biased;
                    _ = &mut stopped => {
                        if !sh.shutdown.is_cancelled() {
                            break QUEUE_FULL;
                        }
                        {
                            let mut m = cell.lock();
                            m.sh.metrics.miner_reconnect(reconnect::SHUTDOWN);
                            m.write_notification(&ServerRequest::Reconnect(Default::default()));
                        }
                        // Best effort, and not for long: the hub is stopping.
                        let never = CancellationToken::new();
                        let _ = tokio::time::timeout(Duration::from_secs(2), cell.flush(&never)).await;
                        break "hub shutting down";
                    }
                    // Drain everything queued (a broadcast and an answer, a switch and its job)
                    // so that one write carries it all.
                    _ = cell.inbox.changed() => {
                        let mut m = cell.lock();
                        let mut r = Ok(());
                        while r.is_ok() {
                            match cell.inbox.pop() {
                                Some(msg) => r = cell.apply(&mut m, msg),
                                None => break,
                            }
                        }
                        r
                    }
                    _ = first_pool_answer(&sh, held), if held.is_some() => {
                        cell.lock().answer_held_subscribe()
                    }
                    r = lines.read_line(&reader, max), if held.is_none() => {
                        // One clock read for the lines of this read: they arrived together.
                        let now = Instant::now();
                        let mut m = cell.lock();
                        let mut r = m.on_read(r, &lines, now);
                        // The lines that came with it, in the same turn (one lock, one flush);
                        // a held subscribe stops the batch: later lines wait for its answer.
                        while r.is_ok() && m.subscribe_held.is_none() {
                            match lines.buffered_line(max) {
                                Some(more) => r = m.on_read(Ok(more), &lines, now),
                                None => break,
                            }
                        }
                        // The turn's shares for the pool, in one command per session, worker
                        // and job (even when the turn ended in an error: they were checked).
                        m.send_forwards();
                        r
                    }
                    _ = tick.tick() => {
                        // A quiet miner holds no read, write or queue buffer between ticks.
                        lines.release_memory();
                        cell.inbox.release_memory();
                        cell.lock().on_tick()
                    }
                };
                if let Err(why) = cell.flush(&kill).await {
                    break if sh.shutdown.is_cancelled() { "hub shutting down" } else { why };
                }
                if let Err(reason) = r {
                    break reason;
                }
            }
        },
        span.clone(),
    )
    .await;
    // Dropping the cell (the last strong reference is this task's) shuts the write side down.
    span.in_scope(|| cell.lock().cleanup(reason));
}

impl Miner {
    /// What one read gave: a line to handle, or the end of the connection; `now` is when it
    /// arrived.
    fn on_read(
        &mut self,
        r: std::io::Result<LineRead>,
        lines: &SocketLines,
        now: Instant,
    ) -> Result<(), Closed> {
        match r {
            Ok(LineRead::Line) => self.on_line(lines.line(), now),
            Ok(LineRead::Eof) => Err("miner closed the connection"),
            Ok(LineRead::TooLong) => {
                self.sh
                    .metrics
                    .protocol_error(side::MINER, protocol_error::LINE_TOO_LONG);
                self.write(protocol::error_line(
                    &Value::Null,
                    error_code::OTHER,
                    "line too long",
                ));
                Err("line too long")
            }
            Err(_) => Err("read error"),
        }
    }

    fn write(&mut self, line: String) {
        self.out.extend_from_slice(line.as_bytes());
    }

    fn write_notification(&mut self, r: &ServerRequest) {
        let l = r.to_notification();
        self.write(l);
    }

    /// Write what `out` holds as far as the socket takes it now, without waiting (no timer is
    /// armed: a job reaches every miner at the same moment, and a timer per miner per job
    /// would cost more than the write). `Ok(true)`: all of it is on the socket.
    fn try_flush(&mut self, w: &OwnedWriteHalf) -> std::io::Result<bool> {
        let mut done = 0;
        while done < self.out.len() {
            match w.try_write(&self.out[done..]) {
                Ok(0) => {
                    self.out.clear();
                    return Err(std::io::ErrorKind::WriteZero.into());
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    self.out.clear();
                    return Err(e);
                }
            }
        }
        self.out.drain(..done);
        if !self.out.is_empty() {
            return Ok(false);
        }
        if self.out.capacity() > 8 * 1024 {
            self.out.shrink_to(1024);
        }
        self.written();
        Ok(true)
    }

    /// The fan-out's road for a job (under the lock, nothing queued ahead of it): record it,
    /// write it; what the socket does not take now, the task writes. False: the miner is gone.
    fn job_direct(&mut self, v: &Arc<JobVariant>, w: &OwnedWriteHalf) -> bool {
        if !self.record_job(v) {
            return true;
        }
        let written = if self.out.is_empty() {
            // Nothing pending (the usual case): the socket gets the variant's own line, which
            // is hot in cache for the whole batch; only what it does not take is copied.
            match w.try_write(&v.line) {
                Ok(n) => {
                    self.out
                        .extend_from_slice(v.line.get(n..).unwrap_or_default());
                    Ok(self.out.is_empty())
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    self.out.extend_from_slice(&v.line);
                    Ok(false)
                }
                Err(e) => Err(e),
            }
        } else {
            self.out.extend_from_slice(&v.line);
            self.try_flush(w)
        };
        match written {
            Ok(true) => {
                self.written();
                true
            }
            Ok(false) => self.link.send(ToMiner::Flush),
            Err(e) => {
                debug!(conn = self.id, error = %e, "job write to miner failed");
                self.link.send(ToMiner::Close {
                    reason: "write error",
                });
                false
            }
        }
    }

    /// Everything queued so far reached the socket.
    fn written(&mut self) {
        if let Some(t) = self.switch_written.take() {
            self.sh
                .metrics
                .switch_duration
                .observe(t.elapsed().as_secs_f64());
        }
    }

    /// A job of the current session is in `out`: the pending move (if any) is complete.
    fn job_queued(&mut self) {
        if let Some(t) = self.switch_started.take() {
            self.switch_written = Some(t);
        }
    }

    fn cleanup(&mut self, reason: Closed) {
        let now = unix_now();
        let quiet = matches!(reason, "miner closed the connection" | "hub shutting down");
        if quiet {
            debug!(reason, "miner disconnected");
        } else {
            info!(reason, "miner connection closed by the hub");
        }
        self.sh.metrics.connection_closed(reason);
        // Normally sent at the end of the turn that read them; never left behind.
        self.send_forwards();
        if self.registered {
            self.sh.switchboard_miner_leave(self.id);
        }
        if let Some(t) = self.tail.take() {
            self.sh.release_tail(&t);
        }
        for w in &self.workers {
            let mut s = w.entry.lock();
            s.connections = s.connections.saturating_sub(1);
            s.last_change = Some(now);
        }
        self.sh.connection_closed();
        let _ = self.connected_at;
    }

    /// Unix time at `at`, from the clock pair (within the drift of the 2 s since its refresh).
    fn unix_at(&self, at: Instant) -> f64 {
        let (base, unix) = self.clock;
        match at.checked_duration_since(base) {
            Some(d) => unix + d.as_secs_f64(),
            None => unix - base.duration_since(at).as_secs_f64(),
        }
    }

    fn on_tick(&mut self) -> Result<(), Closed> {
        self.clock = (Instant::now(), unix_now());
        if self.out.is_empty() && self.out.capacity() > 0 {
            self.out = Vec::new();
        }
        let cfg = &self.sh.config;
        let idle = self.last_line.elapsed();
        if idle > cfg.idle_timeout() {
            return Err("idle timeout");
        }
        if (self.tail.is_none() || self.workers.is_empty())
            && self.connected_at.elapsed() > cfg.handshake_timeout()
        {
            return Err("no subscribe/authorize within the handshake timeout");
        }
        // Only a miner with work can be judged by its shares.
        if self.registered
            && !self.jobs.is_empty()
            && let Some(d) = self.vardiff.on_tick(&cfg.vardiff, unix_now())
        {
            self.announce_difficulty(d);
        }
        Ok(())
    }

    /// A job of a session: recorded and put in `out` if it is for the miner's current session
    /// and extranonce2 size, and not the job it was just given (a switch carries the current
    /// job, and a broadcast of the same job may come behind it).
    fn on_job(&mut self, v: Arc<JobVariant>) {
        if self.record_job(&v) {
            self.out.extend_from_slice(&v.line);
        }
    }

    /// [`Self::on_job`] without the write: true when the job is recorded and must be sent.
    fn record_job(&mut self, v: &Arc<JobVariant>) -> bool {
        let current = self.session.as_ref().map(|s| s.id);
        if current != Some(v.job.session_id) || v.miner_en2 != self.m {
            return false;
        }
        if self.jobs.latest().is_some_and(|j| j.id == v.proxy_id) {
            return false;
        }
        let mask = self.effective_mask();
        let clean = v.notify.clean_jobs;
        if self.jobs.is_empty() {
            self.vardiff.start_window(unix_now());
        }
        self.jobs
            .push(v.proxy_id.clone(), v.clone(), self.announced, mask, clean);
        self.job_queued();
        true
    }

    fn on_message(&mut self, msg: ToMiner) -> Result<(), Closed> {
        match msg {
            ToMiner::Job(v) => self.on_job(v),
            ToMiner::Attached {
                session,
                pool,
                job,
                pool_mask,
                switch_started,
            } => {
                if switch_started.is_some() {
                    self.switch_started = switch_started;
                }
                if let Some(old) = self.session.take() {
                    // Shares of this turn go out before the names change.
                    self.send_forwards();
                    self.previous.retain(|p| p.handle.is_alive());
                    self.previous.push(PreviousSession {
                        handle: old,
                        names: self.workers.iter().map(|w| w.upstream.clone()).collect(),
                    });
                    if self.previous.len() > 2 {
                        self.previous.remove(0);
                    }
                }
                info!(pool = %pool.name, session = session.id, "miner attached to pool session");
                for w in &mut self.workers {
                    w.upstream = Arc::from(pool.upstream_worker_name(&w.entry.name).as_str());
                    // Now, not at the first share: the pool's answer (its current work, again)
                    // then arrives before the miner has shares on it.
                    session.authorize(w.upstream.clone());
                }
                self.session = Some(session);
                self.pool = Some(pool);
                self.pool_mask = pool_mask;
                self.switched_at = Instant::now();
                // Order on a switch: set_version_mask (if it changed) → set_difficulty → notify.
                self.announce_mask();
                let d = self.vardiff.difficulty();
                self.write_notification(&ServerRequest::SetDifficulty(d));
                self.set_announced(d);
                if let Some(mut v) = job {
                    // Back on a pool job this miner already mined (moved away and back): send it
                    // as new work, or the miner would redo the same extranonce2 range.
                    if self.jobs.has_pool_job(&v.job)
                        && let Some(r) = self.latest_sent_of(&v).resent(
                            self.sh.next_job_id(),
                            self.sh.config.extranonce.tail_bytes,
                            self.sh.next_salt(),
                            unix_now() as u32,
                        )
                    {
                        v = Arc::new(r);
                    }
                    let line = v.line_as(&v.proxy_id, true);
                    self.out.extend_from_slice(&line);
                    if self.jobs.is_empty() {
                        // The miner's first work: its speed is measured from now.
                        self.vardiff.start_window(unix_now());
                    }
                    let mask = self.effective_mask();
                    self.jobs.push(v.proxy_id.clone(), v, d, mask, true);
                    self.job_queued();
                }
            }
            ToMiner::PoolMask { session_id, mask } => {
                if self.session.as_ref().map(|s| s.id) == Some(session_id) {
                    self.pool_mask = mask;
                    self.announce_mask();
                }
            }
            ToMiner::SetExtranonce { m } => {
                if let Some(t) = &self.tail {
                    let se = ServerRequest::SetExtranonce(SetExtranonce {
                        extranonce1: t.bytes().to_vec(),
                        extranonce2_size: m,
                    });
                    self.write_notification(&se);
                    self.m = m;
                    Arc::make_mut(&mut self.link).m = m;
                }
            }
            ToMiner::Reconnect { reason, metric } => {
                self.sh.metrics.miner_reconnect(metric);
                self.write_notification(&ServerRequest::Reconnect(Default::default()));
                return Err(reason);
            }
            ToMiner::Close { reason } => return Err(reason),
            ToMiner::Answer(line) => self.write(line),
            ToMiner::Accepted(id) => protocol::push_true_line(&mut self.out, &id),
            // The flush after every batch of messages writes what is pending.
            ToMiner::Flush => {}
        }
        Ok(())
    }

    /// The variant of `v`'s pool job the miner got last (an earlier copy may carry a later
    /// ntime than `v`): a re-send builds on it so that it is new work for this miner.
    fn latest_sent_of(&self, v: &Arc<JobVariant>) -> Arc<JobVariant> {
        self.jobs
            .latest_of(&v.job, v.miner_en2)
            .unwrap_or_else(|| v.clone())
    }

    fn effective_mask(&self) -> u32 {
        self.miner_mask.unwrap_or(0) & self.pool_mask
    }

    fn announce_mask(&mut self) {
        if self.miner_mask.is_none() {
            return;
        }
        let eff = self.effective_mask();
        if self.announced_mask != Some(eff) {
            self.write_notification(&ServerRequest::SetVersionMask(eff));
            self.announced_mask = Some(eff);
        }
    }

    fn set_announced(&mut self, d: f64) {
        self.announced = d;
        self.difficulty_set = true;
        for w in &self.workers {
            w.entry.lock().miner_difficulty = Some(d);
        }
    }

    /// New vardiff difficulty: `set_difficulty`, then the current job again, as different work
    /// under a new id, so that the difficulty applies now (miners apply a difficulty with the
    /// next job, and cpuminer only with work that differs from what it has). A step DOWN is sent with `clean_jobs=true`: cpuminer's threads keep scanning
    /// their current work for up to 60 s unless told to restart, and a miner too slow for its
    /// difficulty must get the lower one at once. The hub itself does not treat the re-send as
    /// clean: shares for the earlier ids are the same pool job and stay valid.
    fn announce_difficulty(&mut self, d: f64) {
        let down = d < self.announced;
        self.write_notification(&ServerRequest::SetDifficulty(d));
        self.set_announced(d);
        let current = self.session.as_ref().map(|s| s.id);
        let latest = self
            .jobs
            .latest()
            .filter(|j| Some(j.session_id) == current && !self.jobs.is_superseded(j))
            .map(|j| j.variant.clone());
        if let Some(v) = latest {
            // The same pool job as different work (fresh salt, or a later ntime when there is
            // no padding to salt): the miner takes it at the new difficulty at once. Identical
            // work under a new id would not do: cpuminer keeps the old id and difficulty, other
            // firmware mines the same shares again.
            let alias = self.sh.next_job_id();
            let v = match v.resent(
                alias.clone(),
                self.sh.config.extranonce.tail_bytes,
                self.sh.next_salt(),
                unix_now() as u32,
            ) {
                Some(r) => Arc::new(r),
                None => v,
            };
            let line = v.line_as(&alias, down);
            self.out.extend_from_slice(&line);
            let mask = self.effective_mask();
            self.jobs.push(alias, v, d, mask, false);
        }
        debug!(difficulty = d, "vardiff retarget");
    }

    fn on_line(&mut self, raw: &[u8], now: Instant) -> Result<(), Closed> {
        self.last_line = now;
        let lim = &self.sh.config.limits;
        let refill = now.duration_since(self.refill_at).as_secs_f64() * lim.max_messages_per_second;
        self.tokens = (self.tokens + refill).min(lim.message_burst);
        self.refill_at = now;
        self.tokens -= 1.0;
        if self.tokens < 0.0 {
            self.sh
                .metrics
                .protocol_error(side::MINER, protocol_error::FLOOD);
            return Err("message flood");
        }
        let text = match std::str::from_utf8(raw) {
            Ok(t) if t.trim().is_empty() => return Ok(()),
            Ok(t) => t,
            Err(_) => {
                return self.bad_input(Value::Null, protocol_error::NOT_UTF8, "line is not UTF-8");
            }
        };
        // Shares are nearly every line a miner sends: a valid submit is parsed straight into its
        // fields; anything else (other methods, any error) takes the generic path below, which
        // gives the answers and metrics.
        if let Some((id, submit)) = Submit::parse_line(text) {
            self.errors = 0;
            self.on_submit(id, submit, now);
            return Ok(());
        }
        let msg = match protocol::parse_line(text) {
            Ok(m) => m,
            Err(e) => return self.bad_input(Value::Null, protocol_error::JSON, &e.to_string()),
        };
        let req = match msg {
            Message::Request(r) => r,
            // Answers to our requests (none expected today): ignore.
            Message::Response(_) => return Ok(()),
        };
        let parsed = match MinerRequest::parse(&req.method, &req.params) {
            Ok(Some(p)) => p,
            Ok(None) => {
                self.sh
                    .metrics
                    .protocol_error(side::MINER, protocol_error::UNKNOWN_METHOD);
                if !req.id.is_null() {
                    self.write(protocol::error_line(
                        &req.id,
                        error_code::OTHER,
                        &format!("unknown method {}", truncate(&req.method, 64)),
                    ));
                }
                return Ok(());
            }
            Err(e) => {
                if req.method == method::SUBMIT {
                    self.invalid_submit_params(&req.params);
                }
                if req.method == method::CONFIGURE {
                    // Never an error to configure (the SRI miner crashes on one).
                    self.sh
                        .metrics
                        .protocol_error(side::MINER, protocol_error::PARAMS);
                    self.write(protocol::result_line(
                        &req.id,
                        &ConfigureResult::default().to_value(),
                    ));
                    return Ok(());
                }
                return self.bad_input(req.id, protocol_error::PARAMS, &e.to_string());
            }
        };
        self.errors = 0;
        let id = req.id;
        match parsed {
            MinerRequest::Submit(s) => match s.as_submit_ref() {
                Some(r) => self.on_submit(id, r, now),
                // A parsed submit's extranonce2 is within the bound; refused, not truncated.
                None => return self.bad_input(id, protocol_error::PARAMS, "extranonce2 too long"),
            },
            MinerRequest::Configure(c) => self.on_configure(id, c),
            MinerRequest::Subscribe(_) => return self.on_subscribe(id),
            MinerRequest::ExtranonceSubscribe => {
                self.extranonce_subscribed = true;
                if self.registered {
                    self.sh.switchboard_miner_extranonce_subscribed(self.id);
                }
                self.write(protocol::true_line(&id));
            }
            MinerRequest::Authorize(a) => self.on_authorize(id, a.user),
            MinerRequest::SuggestDifficulty(d) => {
                let d = self.vardiff.set(&self.sh.config.vardiff, d, unix_now());
                if self.registered {
                    self.announce_difficulty(d);
                }
                if !id.is_null() {
                    self.write(protocol::true_line(&id));
                }
            }
        }
        Ok(())
    }

    fn bad_input(&mut self, id: Value, kind: &'static str, msg: &str) -> Result<(), Closed> {
        self.sh.metrics.protocol_error(side::MINER, kind);
        self.write(protocol::error_line(&id, error_code::OTHER, msg));
        debug!(kind, error = msg, "bad input from miner");
        self.errors += 1;
        if self.errors > self.sh.config.limits.max_consecutive_errors {
            return Err("too many malformed messages");
        }
        Ok(())
    }

    /// A submit whose fields do not parse: invalid for its worker if we know it.
    fn invalid_submit_params(&mut self, params: &Value) {
        let worker = params.get(0).and_then(Value::as_str);
        match worker.and_then(|w| self.workers.iter().find(|a| a.login == w)) {
            Some(a) => a
                .entry
                .lock()
                .record(ShareResult::Invalid, self.announced, unix_now()),
            None => self.sh.metrics.unattributed_submit(unattributed::MALFORMED),
        }
    }

    fn on_configure(&mut self, id: Value, c: Configure) {
        let mut res = ConfigureResult::default();
        for ext in &c.extensions {
            match ext.as_str() {
                extension::VERSION_ROLLING => {
                    let mask =
                        c.version_rolling_mask.unwrap_or(BIP320_VERSION_MASK) & BIP320_VERSION_MASK;
                    res.version_rolling = Some(mask != 0);
                    res.version_rolling_mask = Some(mask);
                    self.miner_mask = (mask != 0).then_some(mask);
                    self.announced_mask = self.miner_mask;
                }
                extension::MINIMUM_DIFFICULTY => {
                    res.minimum_difficulty = Some(true);
                    if let Some(d) = c.minimum_difficulty
                        && d > self.vardiff.difficulty()
                    {
                        self.vardiff.set(&self.sh.config.vardiff, d, unix_now());
                    }
                }
                extension::SUBSCRIBE_EXTRANONCE => {
                    res.subscribe_extranonce = Some(true);
                    self.extranonce_subscribed = true;
                }
                other => res.unsupported.push(truncate(other, 64).to_owned()),
            }
        }
        self.write(protocol::result_line(&id, &res.to_value()));
    }

    fn on_subscribe(&mut self, id: Value) -> Result<(), Closed> {
        if self.tail.is_none() && self.sh.awaiting_first_pool() {
            let deadline = tokio::time::Instant::now() + SUBSCRIBE_WAIT_FOR_POOL;
            self.subscribe_held = Some(Box::new((id, deadline)));
            return Ok(());
        }
        self.answer_subscribe(id)
    }

    /// A pool answered, or the wait is over: answer the held subscribe with what is known.
    fn answer_held_subscribe(&mut self) -> Result<(), Closed> {
        match self.subscribe_held.take() {
            Some(held) => self.answer_subscribe(held.0),
            None => Ok(()),
        }
    }

    fn answer_subscribe(&mut self, id: Value) -> Result<(), Closed> {
        if self.tail.is_none() {
            let Some(t) = self.sh.alloc_tail() else {
                self.write(protocol::error_line(
                    &id,
                    error_code::OTHER,
                    "hub has no free extranonce space",
                ));
                return Err("extranonce space exhausted");
            };
            let e = &self.sh.config.extranonce;
            self.m = fit_miner_en2(
                e.tail_bytes,
                e.miner_extranonce2_size,
                e.min_miner_extranonce2_size,
                Some(
                    self.sh
                        .known_min_n2()
                        .unwrap_or(ASSUMED_POOL_EXTRANONCE2_SIZE),
                ),
            );
            Arc::make_mut(&mut self.link).m = self.m;
            self.tail = Some(t);
        }
        let Some(t) = &self.tail else {
            return Err("internal: no tail");
        };
        let sid = format!("{:08x}", self.id);
        let res = SubscribeResult {
            subscriptions: protocol::standard_subscriptions(&sid),
            extranonce1: t.bytes().to_vec(),
            extranonce2_size: self.m,
        };
        self.write(protocol::result_line(&id, &res.to_value()));
        self.maybe_register();
        Ok(())
    }

    fn on_authorize(&mut self, id: Value, login: String) {
        if self.workers.iter().any(|w| w.login == login) {
            self.write(protocol::true_line(&id));
            return;
        }
        if self.workers.len() >= self.sh.config.limits.max_workers_per_connection {
            self.sh
                .metrics
                .protocol_error(side::MINER, "too_many_workers");
            debug!(login = %truncate(&login, 128), "authorize refused: too many workers on one connection (limits.maxWorkersPerConnection)");
            self.write(protocol::error_line(
                &id,
                error_code::UNAUTHORIZED,
                "too many workers on one connection",
            ));
            return;
        }
        let route = match self.sh.decide(&login) {
            Some(WorkerDecision::Route(r)) => r,
            Some(WorkerDecision::Reject) | None => {
                warn!(login = %truncate(&login, 128), "unknown worker refused (unknownWorkers: reject)");
                self.sh
                    .metrics
                    .unattributed_submit(unattributed::UNKNOWN_WORKER_AUTHORIZE);
                self.write(protocol::error_line(
                    &id,
                    error_code::UNAUTHORIZED,
                    "unknown worker",
                ));
                return;
            }
        };
        let now = unix_now();
        let entry = self.sh.core.workers.entry(&route.worker, now);
        if self.workers.is_empty()
            && !self.difficulty_set
            && let Some(h) = route
                .expected_hashrate
                .filter(|h| h.is_finite() && *h > 0.0)
        {
            let cfg = &self.sh.config.vardiff;
            let d = h * cfg.share_interval.as_secs_f64() / HASHES_PER_DIFFICULTY;
            self.vardiff.set(cfg, d, now);
        }
        {
            let mut s = entry.lock();
            s.connections = s.connections.saturating_add(1);
            s.last_change = Some(now);
            s.labels = crate::facts::AssignmentLabels {
                contract: route.assignment.as_ref().and_then(|a| a.contract.clone()),
                customer: route.assignment.as_ref().and_then(|a| a.customer.clone()),
                role: route.assignment.as_ref().map(|a| a.role),
            };
            s.miner_difficulty = Some(self.vardiff.difficulty());
            if let Some(p) = &self.pool {
                s.pool = Some(p.name.clone());
            }
        }
        let upstream: Arc<str> = match &self.pool {
            Some(p) => Arc::from(p.upstream_worker_name(&route.worker).as_str()),
            None => Arc::from(route.worker.as_str()),
        };
        info!(worker = %route.worker, source = route.source.as_str(), "worker authorized");
        if let Some(s) = &self.session {
            s.authorize(upstream.clone());
        }
        // Most connections carry one worker: no room for four (a Vec's first growth).
        self.workers.reserve_exact(1);
        self.workers.push(AuthWorker {
            login: login.clone(),
            entry: entry.clone(),
            upstream,
        });
        self.write(protocol::true_line(&id));
        if self.registered {
            self.sh.switchboard_miner_add_worker(self.id, login, entry);
        } else {
            self.pending_route = Some(route);
            self.maybe_register();
        }
    }
    fn maybe_register(&mut self) {
        if self.registered || self.tail.is_none() {
            return;
        }
        let Some(route) = self.pending_route.take() else {
            return;
        };
        let Some(first) = self.workers.first() else {
            return;
        };
        self.registered = true;
        let join = MinerJoin {
            link: MinerLink::clone(&self.link),
            extranonce_subscribed: self.extranonce_subscribed,
            login: first.login.clone(),
            route,
            entries: self
                .workers
                .iter()
                .map(|w| (w.login.clone(), w.entry.clone()))
                .collect(),
        };
        self.sh.switchboard_miner_join(join);
    }

    fn reply_error(&mut self, id: &Value, code: i64, msg: &str) {
        debug!(code, error = msg, "share refused");
        self.write(protocol::error_line(id, code, msg));
    }

    /// The share path.
    /// One share: checked here (job, sizes, version bits, ntime, the hash against the job's
    /// target, duplicates), then forwarded to the session that issued the job when it meets the
    /// pool's target; `received` is when its line was read.
    fn on_submit(&mut self, id: Value, sub: SubmitRef<'_>, received: Instant) {
        // Names the worker in the refusals logged below (free when debug logs are off).
        let _span = tracing::debug_span!("submit", worker = %truncate(&sub.worker, 128)).entered();
        let Some(tail) = self.tail.clone() else {
            self.sh
                .metrics
                .unattributed_submit(unattributed::NOT_SUBSCRIBED);
            return self.reply_error(&id, error_code::NOT_SUBSCRIBED, "not subscribed");
        };
        let Some(wi) = self.workers.iter().position(|w| *w.login == *sub.worker) else {
            self.sh
                .metrics
                .unattributed_submit(unattributed::UNAUTHORIZED);
            return self.reply_error(&id, error_code::UNAUTHORIZED, "unauthorized worker");
        };
        let entry = self.workers[wi].entry.clone();
        let now = self.unix_at(received);
        // The job is borrowed from the miner's table, not cloned: its variant is shared by
        // every miner of the session, and a reference count bumped from every core is a
        // contended cache line per share. What is needed after the duplicate check (which
        // takes the table mutably) is copied out below.
        let Some((job, superseded)) = self.jobs.lookup(&sub.job_id) else {
            entry.lock().record(ShareResult::Stale, self.announced, now);
            return self.reply_error(&id, error_code::JOB_NOT_FOUND, "job not found");
        };
        let (variant, job_diff, mask) = (&job.variant, job.difficulty, job.mask);
        // What a late share is booked as when it proves no work: the job was stale anyway.
        let unproven = if superseded {
            ShareResult::Stale
        } else {
            ShareResult::Invalid
        };
        if sub.extranonce2.len() != variant.miner_en2 {
            entry.lock().record(unproven, job_diff, now);
            let msg = format!("extranonce2 must be {} bytes", variant.miner_en2);
            return self.reply_error(&id, error_code::OTHER, &msg);
        }
        let job_version = variant.job.notify.version;
        let bits = match sub.version_bits {
            None => 0,
            Some(b) if b & !mask == 0 => b,
            // Some firmware sends the whole version: accept when only masked bits differ.
            Some(b) if b & !mask == job_version & !mask => b & mask,
            Some(_) => {
                entry.lock().record(unproven, job_diff, now);
                return self.reply_error(
                    &id,
                    error_code::OTHER,
                    "version bits outside the negotiated mask",
                );
            }
        };
        let version = (job_version & !mask) | (bits & mask);
        let job_ntime = variant.job.notify.ntime;
        if sub.ntime.wrapping_sub(job_ntime) > 7200 && job_ntime.wrapping_sub(sub.ntime) > 600 {
            entry.lock().record(unproven, job_diff, now);
            return self.reply_error(&id, error_code::OTHER, "ntime out of range");
        }
        let memo = self.work_memo.get_or_insert_with(Box::default);
        let hash = variant.template.share_hash_memo(
            memo,
            job.seq(),
            tail.bytes(),
            &sub.extranonce2,
            sub.ntime,
            sub.nonce,
            version,
        );
        // Credit at the job's difficulty; right after a lowering, accept at the new one.
        let announced = self.announced;
        let credit = if target_of(&mut self.target_cache, job_diff).is_met_by(&hash) {
            Some(job_diff)
        } else if announced < job_diff
            && target_of(&mut self.target_cache, announced).is_met_by(&hash)
        {
            Some(announced)
        } else {
            None
        };
        let Some(d) = credit else {
            if superseded {
                entry.lock().record(ShareResult::Stale, job_diff, now);
                return self.reply_error(&id, error_code::JOB_NOT_FOUND, "stale job (new block)");
            }
            entry.lock().record(ShareResult::Invalid, job_diff, now);
            return self.reply_error(&id, error_code::LOW_DIFFICULTY, "low difficulty share");
        };
        if superseded {
            // Real work, too late only because the pool replaced the job: the pool would call
            // it stale, the worker's health counts it.
            entry.lock().record(ShareResult::JobChangeStale, d, now);
            return self.reply_error(&id, error_code::JOB_NOT_FOUND, "stale job (new block)");
        }
        // Everything the rest needs from the job, before the table is taken mutably.
        let pool_job = &variant.job;
        let sid = pool_job.session_id;
        let pool_target = upstream_of(&mut self.upstream_cache, pool_job).target;
        let block_candidate = pool_job.network_target.is_some_and(|t| t.is_met_by(&hash));
        let pool_name = block_candidate.then(|| pool_job.pool.clone());
        let pool_version_rolling = pool_job.pool_version_mask != 0;
        let pool_extranonce2 = pool_extranonce2(&variant.pad, tail.bytes(), &sub.extranonce2);
        // Only shares that prove work enter the duplicate set (junk cannot grow it).
        match self.jobs.sighting(&sub.job_id, &hash) {
            Sighting::First => {}
            Sighting::SameId => {
                entry.lock().record(ShareResult::Duplicate, d, now);
                return self.reply_error(&id, error_code::DUPLICATE, "duplicate share");
            }
            Sighting::OtherId => {
                // The hub gave the miner this work again under another id and the miner mined
                // it again: the share was already counted (and forwarded) under the first id.
                // Not forwarded twice; not an error either (the miner did what it was told, and
                // some firmware quits on an error reply).
                entry.lock().record(ShareResult::Duplicate, d, now);
                debug!(worker = %entry.name, job = %sub.job_id, "share already seen under another id of the same work; not forwarded again");
                protocol::push_true_line(&mut self.out, &id);
                return;
            }
        }
        // The session that issued the job: the current one, or a previous one within the grace.
        let Some(name_at) = self.session_for(sid, wi) else {
            // The hub moved the miner away from this job's session: not the worker's fault.
            entry.lock().record(ShareResult::SwitchStale, d, now);
            return self.reply_error(
                &id,
                error_code::JOB_NOT_FOUND,
                "job of a previous pool session",
            );
        };
        if let Some(pool) = pool_name {
            info!(worker = %entry.name, pool = %pool, hash = %crate::share::hash_to_display(&hash), "block candidate found");
        }
        if pool_target.is_met_by(&hash) {
            let Some(extranonce2) = pool_extranonce2 else {
                // Cannot happen for a job the hub built (pad, tail and the miner's part fill
                // the pool's extranonce2, at most 32 bytes); refused rather than mis-sent.
                entry.lock().record(ShareResult::Invalid, d, now);
                return self.reply_error(&id, error_code::OTHER, "extranonce2 too long");
            };
            let share = BatchedShare {
                extranonce2,
                ntime: sub.ntime,
                nonce: sub.nonce,
                version_bits: pool_version_rolling.then_some(bits),
                difficulty: d,
                received,
                id,
            };
            self.queue_forward(name_at, wi, share, now);
            // The pool's verdict answers the miner (ToMiner::Accepted, or an answer line).
        } else {
            entry.lock().record(ShareResult::BelowTarget, d, now);
            protocol::push_true_line(&mut self.out, &id);
        }
        if let Some(nd) = self.vardiff.on_share(&self.sh.config.vardiff, d, now) {
            self.announce_difficulty(nd);
        }
    }
}

impl Miner {
    /// Where worker `wi`'s share of session `sid`'s job goes: the current session, or a
    /// previous one within the late-share grace where the worker had a name (one authorized
    /// after the switch has none on the old pool).
    fn session_for(&self, sid: u64, wi: usize) -> Option<SessionAt> {
        if self.session.as_ref().is_some_and(|s| s.id == sid) {
            return Some(SessionAt::Current);
        }
        let grace = self.sh.config.upstream.late_share_grace.as_std();
        if self.switched_at.elapsed() > grace {
            return None;
        }
        self.previous
            .iter()
            .position(|p| p.handle.id == sid && p.handle.is_alive() && wi < p.names.len())
            .map(SessionAt::Previous)
    }

    /// Adds a checked share to this turn's shares for the pool (sent at the end of the turn by
    /// [`Miner::send_forwards`]); shares of another session, worker or pool job start a new
    /// batch.
    fn queue_forward(&mut self, at: SessionAt, wi: usize, share: BatchedShare, now: f64) {
        let (session, name) = match at {
            SessionAt::Current => match &self.session {
                Some(s) => (s, &self.workers[wi].upstream),
                None => return self.forward_lost(&self.workers[wi].entry.clone(), share, now),
            },
            SessionAt::Previous(i) => match self
                .previous
                .get(i)
                .and_then(|p| Some((&p.handle, p.names.get(wi)?)))
            {
                Some(at) => at,
                // `session_for` checked both; nothing is sent to a session it did not name.
                None => return self.forward_lost(&self.workers[wi].entry.clone(), share, now),
            },
        };
        let entry = &self.workers[wi].entry;
        let Some(up) = self.upstream_cache.as_deref() else {
            return self.forward_lost(&entry.clone(), share, now);
        };
        let job_id = &up.upstream.pool_job_id;
        let same = self.forwards.as_deref().is_some_and(|f| {
            f.at == now
                && Arc::ptr_eq(&f.session, session)
                && Arc::ptr_eq(&f.batch.worker, entry)
                && Arc::ptr_eq(&f.batch.upstream_user, name)
                && Arc::ptr_eq(&f.batch.pool_job_id, job_id)
        });
        if same {
            if let Some(f) = self.forwards.as_deref_mut() {
                f.batch.shares.push(share);
            }
            return;
        }
        let mut shares = Vec::with_capacity(usize::from(self.last_batch_len).max(1));
        shares.push(share);
        let next = Box::new(Forwards {
            session: session.clone(),
            batch: SubmitBatch {
                worker: entry.clone(),
                upstream_user: name.clone(),
                pool_job_id: job_id.clone(),
                link: self.link.clone(),
                shares,
            },
            at: now,
        });
        self.send_forwards();
        self.forwards = Some(next);
    }

    /// Hands this turn's shares for the pool to their session, booked as forwarded first (the
    /// session's verdicts must find them pending). Called at the end of every turn that read
    /// lines, and before the miner's session or worker names change.
    ///
    /// The booking is per batch, under one lock: the worker's entry is also locked by the
    /// session's thread for verdicts, and one lock per share moved its cache line between the
    /// two threads for every share.
    fn send_forwards(&mut self) {
        let Some(f) = self.forwards.take() else {
            return;
        };
        let Forwards { session, batch, at } = *f;
        let count = u32::try_from(batch.shares.len()).unwrap_or(u32::MAX);
        // Bounded: one huge turn must not make every later batch reserve as much.
        self.last_batch_len = u16::try_from(batch.shares.len().min(256)).unwrap_or(256);
        let difficulty: f64 = batch.shares.iter().map(|s| s.difficulty).sum();
        batch.worker.lock().forwarded_many(count, difficulty, at);
        if let Err(batch) = session.submit_batch(batch) {
            warn!(worker = %batch.worker.name, pool = %session.pool, shares = batch.shares.len(), "pool session gone before the shares could be forwarded; counted as lost");
            batch
                .worker
                .lock()
                .verdicts(ShareResult::Lost, u64::from(count), difficulty);
            for share in batch.shares {
                self.reply_error(&share.id, error_code::OTHER, "pool session unavailable");
            }
        }
    }

    /// A checked share that has no session to go to: booked as forwarded and lost at once.
    fn forward_lost(&mut self, worker: &WorkerEntry, share: BatchedShare, now: f64) {
        {
            let mut w = worker.lock();
            w.forwarded(share.difficulty, now);
            w.verdict(ShareResult::Lost, share.difficulty);
        }
        self.reply_error(&share.id, error_code::OTHER, "pool session unavailable");
    }
}

/// The session a share goes to (see [`Miner::session_for`]).
#[derive(Clone, Copy)]
enum SessionAt {
    Current,
    /// `previous[i]`.
    Previous(usize),
}

/// The target of difficulty `d`, through a one-entry cache (a miner's difficulty rarely
/// changes; a target is a 256-bit division).
fn target_of(cache: &mut (f64, Target), d: f64) -> Target {
    if cache.0 != d
        && let Ok(t) = Target::from_difficulty(d)
    {
        *cache = (d, t);
    }
    cache.1
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::test_pool_job;

    fn pool_job() -> Arc<PoolJob> {
        test_pool_job(1, 8)
    }

    /// The share path reads a job's pool id and target from the miner's copy; a pool that sends
    /// the same work again under another id or difficulty must be seen at the next share, and
    /// another job must never be answered from the copy of the last one.
    #[test]
    fn the_cached_pool_id_and_target_follow_a_resend_and_a_new_job() {
        let mut cache = None;
        let job = pool_job();
        let first = upstream_of(&mut cache, &job).clone();
        assert_eq!(&*first.pool_job_id, "pj");
        let copy = cache
            .as_deref()
            .map(|c| c.upstream.pool_job_id.clone())
            .unwrap();
        // Unchanged job: the same copy (no new read).
        upstream_of(&mut cache, &job);
        let again = cache
            .as_deref()
            .map(|c| c.upstream.pool_job_id.clone())
            .unwrap();
        assert!(Arc::ptr_eq(&copy, &again));

        let harder = Target::from_difficulty(4.0).unwrap();
        job.resent("pj-2", 4.0, harder);
        let now = upstream_of(&mut cache, &job);
        assert_eq!(&*now.pool_job_id, "pj-2");
        assert_eq!(now.difficulty, 4.0);
        assert!(now.target == harder);

        let other = pool_job();
        other.resent("other", 2.0, Target::from_difficulty(2.0).unwrap());
        other.resent("other-2", 2.0, Target::from_difficulty(2.0).unwrap());
        assert_eq!(&*upstream_of(&mut cache, &other).pool_job_id, "other-2");
        assert_eq!(&*upstream_of(&mut cache, &job).pool_job_id, "pj-2");
    }
}
