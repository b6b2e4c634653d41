//! One upstream pool session: a Stratum V1 client connection that many miners share.
//!
//! The session does the handshake (`mining.configure` for version rolling unless the pool is known
//! to choke on it, `mining.subscribe`, `mining.authorize` of the pool account), turns each pool job
//! into [`JobVariant`]s once and hands the same bytes to every member miner, authorizes each
//! worker's upstream name as soon as its miner joins (pools answer an authorize by sending their
//! current work again: recognised as the same work, see [`crate::jobs`]), forwards shares with its own request ids (miner ids are
//! not unique), books the pool's verdicts on the worker that found the share and relays each
//! verdict to the miner under the miner's own id (a share without a verdict after
//! `upstream.submitTimeout`, or when the session dies, is `lost` and answered with error 20). It
//! reports to the switchboard ([`crate::switchboard`]) only: ready (subscribed, authorized, first
//! job in hand — "connect first, then cut over"), failed or closed, each job (starvation clock),
//! verdict counts (reject ratio), and a pool's `client.reconnect` (the switchboard opens a
//! replacement and moves the miners; they are not disturbed).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::facts::ShareResult;
use crate::in_flight::InFlight;
use crate::jobs::{JobVariant, PoolJob};
use crate::lines::{LineRead, buffered_line, line, read_line};
use crate::link::{
    MinerLink, Reply, SessionCmd, SessionEvent, SessionHandle, SessionInfo, ToMiner, UpSubmit,
};
use crate::metrics::{protocol_error, side};
use crate::pool_health::SwitchReason;
use crate::protocol::{
    self, Authorize, BIP320_VERSION_MASK, Configure, ConfigureResult, Message, MinerRequest,
    ServerRequest, Submit, Subscribe, SubscribeResult, extension,
};
use crate::routing::ResolvedPool;
use crate::share::Target;
use crate::shared::Shared;
use crate::stats::WorkerEntry;

/// Counters of one pool, shared by its sessions and read by `/metrics`.
#[derive(Debug, Default)]
pub struct PoolCounters {
    pub accepted: AtomicU64,
    pub rejected: AtomicU64,
    pub lost: AtomicU64,
    pub switches: AtomicU64,
    /// Switches per [`SwitchReason::as_str`] (a handful of keys).
    switch_reasons: Mutex<BTreeMap<&'static str, u64>>,
    pub disconnects: AtomicU64,
    /// f64 bits of the smoothed submit RTT in seconds (0 = none yet).
    latency_bits: AtomicU64,
    /// f64 bits of the newest pool difficulty (0 = none yet).
    difficulty_bits: AtomicU64,
}

impl PoolCounters {
    /// A miner was moved onto this pool.
    pub fn count_switch(&self, reason: SwitchReason) {
        self.switches.fetch_add(1, Ordering::Relaxed);
        let mut m = self
            .switch_reasons
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let n = m.entry(reason.as_str()).or_default();
        *n = n.saturating_add(1);
    }
    /// Switches by reason (label value → count), every reason present (0 when none).
    pub fn switches_by_reason(&self) -> BTreeMap<String, u64> {
        let seen = self
            .switch_reasons
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        SwitchReason::ALL
            .iter()
            .map(|r| {
                let k = r.as_str();
                (k.to_owned(), seen.get(k).copied().unwrap_or(0))
            })
            .collect()
    }
    fn observe_latency(&self, secs: f64) {
        let old = f64::from_bits(self.latency_bits.load(Ordering::Relaxed));
        let new = if old > 0.0 {
            old * 0.9 + secs * 0.1
        } else {
            secs
        };
        self.latency_bits.store(new.to_bits(), Ordering::Relaxed);
    }
    pub fn latency(&self) -> Option<f64> {
        let v = f64::from_bits(self.latency_bits.load(Ordering::Relaxed));
        (v > 0.0).then_some(v)
    }
    fn set_difficulty(&self, d: f64) {
        self.difficulty_bits.store(d.to_bits(), Ordering::Relaxed);
    }
    pub fn difficulty(&self) -> Option<f64> {
        let v = f64::from_bits(self.difficulty_bits.load(Ordering::Relaxed));
        (v > 0.0).then_some(v)
    }
}

/// Everything a session needs to start.
#[derive(Debug, Clone)]
pub struct SessionParams {
    pub pool: Arc<ResolvedPool>,
    /// `host:port` to dial instead of the pool URL (after a pool's `client.reconnect`).
    pub dial_override: Option<String>,
    pub delay: Duration,
    pub send_configure: bool,
    pub connect_timeout: Duration,
    pub counters: Arc<PoolCounters>,
}

/// Start a session task; returns its handle at once (the switchboard attaches miners when it is ready).
pub fn spawn(shared: &Arc<Shared>, params: SessionParams) -> Arc<SessionHandle> {
    let id = shared.next_session_id();
    let (handle, rx) = SessionHandle::new(id, Arc::from(params.pool.name.as_str()), 16 * 1024);
    let handle = Arc::new(handle);
    let sh = shared.clone();
    let h = handle.clone();
    shared.tracker.spawn(async move {
        let pool = h.pool.clone();
        let span = tracing::info_span!("upstream", pool = %pool, session = h.id);
        let counters = params.counters.clone();
        let mut rx = rx;
        let event = tracing::Instrument::instrument(
            run(sh.clone(), h.clone(), &mut rx, params),
            span.clone(),
        )
        .await;
        h.mark_closed();
        span.in_scope(|| lose_queued(&mut rx, &counters));
        sh.session_event(&pool, h.id, event);
    });
    handle
}

/// Shares handed to a session that ended before it read them (they were queued behind a
/// `Close`, or came in while the pool connection broke): each is lost and its miner answered
/// with error 20, or the miner would wait forever for a verdict. The channel is closed first, so
/// a later [`SessionHandle::submit`] fails and its caller books the share itself.
fn lose_queued(rx: &mut mpsc::Receiver<SessionCmd>, counters: &PoolCounters) {
    rx.close();
    let mut n = 0u64;
    let mut lose = |u: UpSubmit| {
        answer_lost(
            &u.worker,
            u.difficulty,
            u.reply,
            "pool connection lost before the share could be sent",
        );
        n += 1;
    };
    while let Ok(cmd) = rx.try_recv() {
        if let SessionCmd::SubmitBatch(b) = cmd {
            b.into_submits().for_each(&mut lose);
        }
    }
    if n > 0 {
        counters.lost.fetch_add(n, Ordering::Relaxed);
        warn!(
            lost = n,
            "session ended with shares still queued for it; counted as lost"
        );
    }
}

/// Books a share the pool will never judge as lost and answers its miner with error 20,
/// saying `why` (the one way a share ends without the pool's verdict).
fn answer_lost(worker: &WorkerEntry, difficulty: f64, reply: Option<Reply>, why: &str) {
    worker.lock().verdict(ShareResult::Lost, difficulty);
    if let Some(r) = reply {
        let l = protocol::error_line(&r.id, protocol::error_code::OTHER, why);
        r.answer(l);
    }
}

/// Re-send work to miners after this long without a new pool job.
const KEEPALIVE: Duration = Duration::from_secs(45);

/// Request ids of the handshake.
const ID_CONFIGURE: u64 = 1;
const ID_SUBSCRIBE: u64 = 2;
const ID_AUTHORIZE: u64 = 3;
const FIRST_FREE_ID: u64 = 10;
/// Unusable lines a pool session logs at warn before it logs them at debug only.
const BAD_LINES_WARNED: u32 = 5;

#[derive(Debug)]
enum Pending {
    Submit {
        worker: Arc<WorkerEntry>,
        /// The name the share went out under.
        user: Arc<str>,
        difficulty: f64,
        sent: Instant,
        reply: Option<Reply>,
    },
    Authorize {
        user: Arc<str>,
        sent: Instant,
    },
}

/// Requests in flight by id: shares and worker authorizes (see [`InFlight`]).
type PendingMap = InFlight<Pending>;

/// Where a worker name stands on one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UserAuth {
    /// `mining.authorize` sent, no answer yet: the name's shares wait in [`Session::held`]
    /// until the pool answers (a pool that dropped the authorize would refuse them with 24).
    Sent,
    /// The pool said true.
    Authorized,
    /// The pool said no: not asked again before this instant (a refused name is not
    /// re-authorized on every share).
    RefusedUntil(Instant),
    /// The pool kept talking (answers, jobs) but left this name's authorize unanswered
    /// [`AUTHORIZE_ATTEMPTS`] times: a pool that ignores extra authorizes on a connection. The
    /// name's shares go out without waiting; the pool's verdict on them decides.
    Ignored,
}

/// Unanswered authorizes of one name, while the pool kept sending other lines, after which the
/// pool is taken to ignore them (one unanswered authorize is a pool that dropped it).
const AUTHORIZE_ATTEMPTS: u8 = 2;

/// How long a worker name the pool refused is left alone before the next share asks again.
const REFUSED_NAME_RETRY: Duration = Duration::from_secs(30);

/// Shares one worker name may have waiting for its authorize; more are answered as lost (a
/// miner this far ahead of a silent pool would lose them to the submit timeout anyway).
const MAX_HELD_PER_NAME: usize = 256;

/// An authorize unanswered this long is sent again (sooner when the submit timeout is
/// shorter). Pools answer it within milliseconds; one that dropped it (silent for a moment)
/// would otherwise hold the name's shares for the whole submit timeout.
const AUTHORIZE_RETRY: Duration = Duration::from_secs(5);

/// A share waiting for the pool's answer to its worker name's authorize.
#[derive(Debug)]
struct Held {
    share: UpSubmit,
    since: Instant,
}

/// The pool's accepted verdicts in one turn of the session, for consecutive shares of one
/// worker: booked under one lock of the worker's entry, then answered, at the end of the turn
/// (or when the next verdict is for another worker). A pool answers a burst of submits with a
/// burst of `true`s, mostly for the shares of one miner's batch; locking the worker's entry
/// per verdict, while the miner's thread locks it per share, moved its cache line between the
/// two threads for every share. Booked before answered: a miner holding its `true` finds the
/// share accepted in the worker's facts.
#[derive(Default)]
struct AcceptedRun {
    worker: Option<Arc<WorkerEntry>>,
    count: u64,
    difficulty: f64,
    replies: Vec<Reply>,
}

impl AcceptedRun {
    fn add(&mut self, worker: Arc<WorkerEntry>, difficulty: f64, reply: Option<Reply>) {
        if !self
            .worker
            .as_ref()
            .is_some_and(|w| Arc::ptr_eq(w, &worker))
        {
            self.settle();
            self.worker = Some(worker);
        }
        self.count += 1;
        self.difficulty += difficulty;
        self.replies.extend(reply);
    }

    /// Books and answers what was gathered.
    fn settle(&mut self) {
        let Some(worker) = self.worker.take() else {
            return;
        };
        worker
            .lock()
            .verdicts(ShareResult::Accepted, self.count, self.difficulty);
        self.count = 0;
        self.difficulty = 0.0;
        for reply in self.replies.drain(..) {
            reply.accept();
        }
        if self.replies.capacity() > 256 {
            self.replies = Vec::new();
        }
    }
}

struct Session {
    shared: Arc<Shared>,
    handle: Arc<SessionHandle>,
    params: SessionParams,
    info: Option<SessionInfo>,
    version_mask: u32,
    authorized: bool,
    ready: bool,
    /// Pool difficulty for the next job (set_difficulty applies from the next notify).
    next_difficulty: f64,
    job: Option<Arc<PoolJob>>,
    variants: Vec<Arc<JobVariant>>,
    members: HashMap<u64, Arc<MinerLink>>,
    /// Worker names authorized on this session, or with an authorize in flight. A name is
    /// taken out again when the pool refuses it, does not answer in time, or rejects a share
    /// with "unauthorized" (24), so that the next share authorizes it again: a pool that
    /// dropped one authorize (silent for a moment, restarted) must not refuse every later share.
    users: HashMap<Arc<str>, UserAuth>,
    /// Shares of names in [`UserAuth::Sent`], in arrival order: sent when the pool accepts the
    /// name, answered 24 when it refuses it, lost when they wait longer than the submit timeout.
    held: HashMap<Arc<str>, Vec<Held>>,
    /// Authorizes of a name that expired unanswered since its last answer.
    authorize_misses: HashMap<Arc<str>, u8>,
    /// When the pool last sent anything (an answer, a job): a pool that keeps talking but leaves
    /// an authorize unanswered ignores authorizes; one that sends nothing is silent.
    last_heard: Instant,
    pending: PendingMap,
    next_id: u64,
    accepted_batch: u64,
    /// When members last got a job (keepalive: miners give up on a pool after ~1 min of silence).
    last_broadcast: Instant,
    /// Building keepalive variants (not clean).
    resending: bool,
    rejected_batch: u64,
    out: Vec<u8>,
    /// Accepted verdicts of this turn not yet booked (see [`AcceptedRun`]).
    accepted_run: AcceptedRun,
    /// When the session's task last woke (read, command or tick): the clock for everything
    /// handled in that turn (a clock read per share is measurable).
    now: Instant,
    /// Lines from the pool this session could not use so far ([`Session::bad_line`]).
    bad_lines: u32,
}

async fn run(
    shared: Arc<Shared>,
    handle: Arc<SessionHandle>,
    rx: &mut mpsc::Receiver<SessionCmd>,
    params: SessionParams,
) -> SessionEvent {
    let fail = |reason: String, configure_suspect: bool| SessionEvent::Failed {
        auth_rejected: false,
        configure_suspect,
        reason,
    };
    if !params.delay.is_zero() {
        tokio::select! {
            _ = tokio::time::sleep(params.delay) => {}
            _ = shared.shutdown.cancelled() => return fail("hub shutting down".into(), false),
        }
    }
    let addr = params
        .dial_override
        .clone()
        .unwrap_or_else(|| params.pool.url.authority());
    let connected = tokio::time::timeout(params.connect_timeout, async {
        let tcp = TcpStream::connect(&addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        open_transport(tcp, &params.pool)
            .await
            .map_err(|e| format!("{addr}: {e}"))
    })
    .await;
    let (r, w) = match connected {
        Ok(Ok(halves)) => halves,
        Ok(Err(e)) => return fail(e, false),
        Err(_) => return fail(format!("connect {addr}: timed out"), false),
    };
    let mut reader = BufReader::with_capacity(16 * 1024, r);
    let mut writer = BufWriter::with_capacity(64 * 1024, w);
    let max_line = shared.config.limits.max_line_bytes.max(64 * 1024);
    let mut s = Session {
        shared: shared.clone(),
        handle: handle.clone(),
        info: None,
        version_mask: 0,
        authorized: false,
        ready: false,
        next_difficulty: 1.0,
        job: None,
        variants: Vec::new(),
        members: HashMap::new(),
        users: HashMap::new(),
        held: HashMap::new(),
        authorize_misses: HashMap::new(),
        last_heard: Instant::now(),
        now: Instant::now(),
        pending: PendingMap::default(),
        next_id: FIRST_FREE_ID,
        accepted_batch: 0,
        last_broadcast: Instant::now(),
        resending: false,
        rejected_batch: 0,
        out: Vec::with_capacity(4096),
        accepted_run: AcceptedRun::default(),
        bad_lines: 0,
        params,
    };
    let ua = shared.config.upstream.user_agent.clone();
    if s.params.send_configure {
        let c = Configure {
            extensions: vec![extension::VERSION_ROLLING.into()],
            version_rolling_mask: Some(BIP320_VERSION_MASK),
            version_rolling_min_bit_count: Some(2),
            minimum_difficulty: None,
        };
        s.out.extend_from_slice(
            MinerRequest::Configure(c)
                .to_line(&Value::from(ID_CONFIGURE))
                .as_bytes(),
        );
    }
    s.out.extend_from_slice(
        MinerRequest::Subscribe(Subscribe {
            user_agent: Some(ua),
            session: None,
        })
        .to_line(&Value::from(ID_SUBSCRIBE))
        .as_bytes(),
    );
    s.out.extend_from_slice(
        MinerRequest::Authorize(Authorize {
            user: s.params.pool.user.clone(),
            password: Some(s.params.pool.password.expose().to_owned()),
        })
        .to_line(&Value::from(ID_AUTHORIZE))
        .as_bytes(),
    );
    if let Err(e) = flush(&mut writer, &mut s.out).await {
        return fail(format!("write handshake: {e}"), false);
    }
    let handshake_deadline = Instant::now() + s.params.connect_timeout * 2;
    let mut buf = Vec::with_capacity(4096);
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Made once, not per turn: a cancellation waiter registered and dropped on every line costs
    // two lock round trips per share.
    let stopping = shared.shutdown.cancelled();
    tokio::pin!(stopping);
    let outcome: SessionEvent = loop {
        tokio::select! {
            r = read_line(&mut reader, &mut buf, max_line) => {
                s.now = Instant::now();
                match r {
                    Ok(LineRead::Line) => {
                        if let Some(ev) = s.on_line(line(&buf)) {
                            break ev;
                        }
                        // The answers that came with it, in the same turn (one write after).
                        let mut ended = None;
                        while let Some(more) = buffered_line(&mut reader, &mut buf, max_line) {
                            let ev = match more {
                                LineRead::Line => s.on_line(line(&buf)),
                                LineRead::TooLong => {
                                    s.shared.metrics.protocol_error(side::POOL, protocol_error::LINE_TOO_LONG);
                                    Some(s.closed("pool sent an oversized line"))
                                }
                                LineRead::Eof => None,
                            };
                            if ev.is_some() {
                                ended = ev;
                                break;
                            }
                        }
                        if let Some(ev) = ended {
                            break ev;
                        }
                    }
                    Ok(LineRead::Eof) => break s.closed("pool closed the connection"),
                    Ok(LineRead::TooLong) => {
                        s.shared.metrics.protocol_error(side::POOL, protocol_error::LINE_TOO_LONG);
                        break s.closed("pool sent an oversized line");
                    }
                    Err(e) => break s.closed(&format!("read: {e}")),
                }
            }
            cmd = rx.recv() => {
                s.now = Instant::now();
                let Some(cmd) = cmd else { break s.closed("switchboard dropped the session") };
                if s.on_cmd(cmd) {
                    break s.closed("closed by the hub");
                }
                // drain what is queued, then write once; a `Close` among them ends the session
                // (the commands still queued behind it are answered below, not dropped)
                let mut close = false;
                for _ in 0..4096 {
                    match rx.try_recv() {
                        Ok(cmd) => {
                            if s.on_cmd(cmd) {
                                close = true;
                                break;
                            }
                        }
                        Err(_) => break,
                    }
                }
                if close {
                    // what was written for this batch still goes out before the close
                    let _ = flush(&mut writer, &mut s.out).await;
                    break s.closed("closed by the hub");
                }
            }
            _ = tick.tick() => {
                s.now = Instant::now();
                if !s.ready && Instant::now() > handshake_deadline {
                    break fail("handshake (subscribe, authorize, first job) timed out".into(), false);
                }
                s.on_tick();
            }
            _ = &mut stopping => {
                // Give in-flight shares a moment to get their verdicts.
                if s.pending.is_empty() {
                    break s.closed("hub shutting down");
                }
                let _ = flush(&mut writer, &mut s.out).await;
                let grace = tokio::time::sleep(Duration::from_secs(2));
                tokio::pin!(grace);
                loop {
                    tokio::select! {
                        _ = &mut grace => break,
                        r = read_line(&mut reader, &mut buf, max_line) => match r {
                            Ok(LineRead::Line) => {
                                s.now = Instant::now();
                                s.on_line(line(&buf));
                                if s.pending.is_empty() { break; }
                            }
                            _ => break,
                        }
                    }
                }
                break s.closed("hub shutting down");
            }
        }
        // The turn's accepted verdicts, booked and answered before anything waits.
        s.accepted_run.settle();
        if !s.out.is_empty()
            && let Err(e) = flush(&mut writer, &mut s.out).await
        {
            break s.closed(&format!("write: {e}"));
        }
    };
    s.accepted_run.settle();
    handle.mark_closed();
    // Sent but unanswered; the ones still queued are answered by `lose_queued`.
    s.lose_pending();
    let _ = writer.shutdown().await;
    match outcome {
        SessionEvent::Closed { .. } if !s.ready => SessionEvent::Failed {
            auth_rejected: false,
            configure_suspect: s.params.send_configure && s.info.is_none(),
            reason: match outcome {
                SessionEvent::Closed { reason } => reason,
                _ => String::new(),
            },
        },
        other => other,
    }
}

/// The two directions of a pool connection, plain TCP or TLS.
type PoolReader = Box<dyn AsyncRead + Send + Unpin>;
type PoolWriter = Box<dyn AsyncWrite + Send + Unpin>;

/// Plain TCP for `stratum+tcp://`; a verified TLS session for `stratum+ssl://`.
async fn open_transport(
    tcp: TcpStream,
    pool: &ResolvedPool,
) -> Result<(PoolReader, PoolWriter), crate::tls::TlsError> {
    match &pool.tls {
        None => {
            let (r, w) = tcp.into_split();
            Ok((Box::new(r), Box::new(w)))
        }
        Some(tls) => {
            let stream = crate::tls::connect(tcp, tls).await?;
            let (r, w) = tokio::io::split(stream);
            Ok((Box::new(r), Box::new(w)))
        }
    }
}

async fn flush<W: tokio::io::AsyncWrite + Unpin>(
    w: &mut BufWriter<W>,
    out: &mut Vec<u8>,
) -> std::io::Result<()> {
    w.write_all(out).await?;
    out.clear();
    w.flush().await
}

impl Session {
    fn closed(&self, reason: &str) -> SessionEvent {
        SessionEvent::Closed {
            reason: reason.to_owned(),
        }
    }

    fn counters(&self) -> &PoolCounters {
        &self.params.counters
    }

    /// Every forwarded share without a verdict is lost now.
    fn lose_pending(&mut self) {
        let lost: Vec<Pending> = self.pending.take_all();
        let mut n = 0u64;
        for h in std::mem::take(&mut self.held).into_values().flatten() {
            answer_lost(
                &h.share.worker,
                h.share.difficulty,
                h.share.reply,
                "pool connection lost before it answered the worker's authorize",
            );
            n += 1;
        }
        for p in lost {
            if let Pending::Submit {
                worker,
                difficulty,
                reply,
                ..
            } = p
            {
                answer_lost(
                    &worker,
                    difficulty,
                    reply,
                    "pool connection lost before its verdict",
                );
                n += 1;
            }
        }
        if n > 0 {
            self.counters().lost.fetch_add(n, Ordering::Relaxed);
            warn!(
                lost = n,
                "session closed with shares awaiting a verdict; counted as lost"
            );
        }
    }

    fn on_tick(&mut self) {
        // Keepalive: re-send the current work under fresh ids when the pool has been quiet, so
        // miners do not declare the hub dead; pool starvation is judged by the health machine.
        if self.ready
            && !self.members.is_empty()
            && self.last_broadcast.elapsed() >= KEEPALIVE
            && let Some(job) = self.job.clone()
        {
            self.variants.clear();
            self.resending = true;
            self.broadcast(&job);
            self.resending = false;
        }
        let timeout = self.shared.config.upstream.submit_timeout.as_std();
        let now = Instant::now();
        let expired: Vec<u64> = self
            .pending
            .iter()
            .filter_map(|(id, p)| match p {
                Pending::Submit { sent, .. } if now.duration_since(*sent) > timeout => Some(id),
                Pending::Authorize { sent, .. }
                    if now.duration_since(*sent) > timeout.min(AUTHORIZE_RETRY) =>
                {
                    Some(id)
                }
                _ => None,
            })
            .collect();
        let mut ask_again: Vec<Arc<str>> = Vec::new();
        let mut release: Vec<Arc<str>> = Vec::new();
        let mut unanswered: Vec<Arc<str>> = Vec::new();
        for id in expired {
            if let Some(Pending::Authorize { .. }) = self.pending.get(id)
                && let Some(Pending::Authorize { user, sent }) = self.pending.remove(id)
            {
                if self.users.get(&user) != Some(&UserAuth::Sent) {
                    continue;
                }
                let misses = self.authorize_misses.entry(user.clone()).or_default();
                *misses = misses.saturating_add(1);
                if self.last_heard > sent && *misses >= AUTHORIZE_ATTEMPTS {
                    warn!(user = %user, attempts = *misses, "pool answers other requests but not this worker's authorize; its shares are sent without waiting for it");
                    self.users.insert(user.clone(), UserAuth::Ignored);
                    release.push(user);
                    continue;
                }
                // Unanswered (the pool dropped it, or is silent): asked again now when shares
                // wait for it, else with the name's next share.
                unanswered.push(user.clone());
                self.users.remove(&user);
                if self.held.contains_key(&user) {
                    ask_again.push(user);
                }
                continue;
            }
            if let Some(Pending::Submit {
                worker,
                difficulty,
                reply,
                ..
            }) = self.pending.remove(id)
            {
                answer_lost(&worker, difficulty, reply, "pool did not answer in time");
                self.counters().lost.fetch_add(1, Ordering::Relaxed);
            }
        }
        if let Some(first) = unanswered.first() {
            // One line per session and tick: a silent pool leaves every member's name unanswered.
            warn!(names = unanswered.len(), first = %first, "pool did not answer worker authorizes in time; asking again");
        }
        for user in ask_again {
            self.authorize_user(&user);
        }
        for user in release {
            for h in self.held.remove(&user).unwrap_or_default() {
                self.forward(h.share);
            }
        }
        self.lose_stale_held(now, timeout);
        self.pending.release_memory();
        if self.accepted_batch > 0 || self.rejected_batch > 0 {
            let ev = SessionEvent::Verdicts {
                accepted: self.accepted_batch,
                rejected: self.rejected_batch,
            };
            self.accepted_batch = 0;
            self.rejected_batch = 0;
            self.shared
                .session_event(&self.handle.pool, self.handle.id, ev);
        }
    }

    /// Returns true when the session must close.
    fn on_cmd(&mut self, cmd: SessionCmd) -> bool {
        match cmd {
            SessionCmd::SubmitBatch(b) => {
                for s in b.into_submits() {
                    self.submit(s);
                }
            }
            SessionCmd::Attach {
                link,
                switch_started,
            } => self.attach(link, switch_started),
            SessionCmd::Detach(id) => {
                self.members.remove(&id);
            }
            SessionCmd::Authorize(user) => self.authorize_user(&user),
            SessionCmd::Close => return true,
        }
        false
    }

    /// Authorize a worker's upstream name on this session once. Done when a miner joins (or
    /// authorizes another worker), before its first share: pools answer an authorize by sending
    /// their current work again, which must not come between a miner and its first shares.
    /// Asked again only when the last authorize went unanswered, or was refused long enough ago.
    fn authorize_user(&mut self, user: &Arc<str>) {
        match self.users.get(user) {
            Some(UserAuth::Sent | UserAuth::Authorized | UserAuth::Ignored) => return,
            Some(UserAuth::RefusedUntil(t)) if Instant::now() < *t => return,
            _ => {}
        }
        let id = self.alloc_id();
        self.users.insert(user.clone(), UserAuth::Sent);
        self.pending.insert(
            id,
            Pending::Authorize {
                user: user.clone(),
                sent: Instant::now(),
            },
        );
        let line = MinerRequest::Authorize(Authorize {
            user: user.to_string(),
            password: Some(self.params.pool.password.expose().to_owned()),
        })
        .to_line(&Value::from(id));
        self.out.extend_from_slice(line.as_bytes());
    }

    fn submit(&mut self, s: UpSubmit) {
        // The common case, with one map lookup: the name is authorized (or the pool ignores
        // authorizes), so `authorize_user` would do nothing and the share goes out now.
        if matches!(
            self.users.get(&s.upstream_user),
            Some(UserAuth::Authorized | UserAuth::Ignored)
        ) {
            self.forward(s);
            return;
        }
        // Normally authorized when the miner joined; a worker added since is caught here.
        self.authorize_user(&s.upstream_user);
        if self.users.get(&s.upstream_user) == Some(&UserAuth::Sent) {
            self.hold(s);
            return;
        }
        self.forward(s);
    }

    /// Keeps a share until the pool answers its name's authorize.
    fn hold(&mut self, share: UpSubmit) {
        let waiting = self.held.entry(share.upstream_user.clone()).or_default();
        if waiting.len() >= MAX_HELD_PER_NAME {
            warn!(user = %share.upstream_user, waiting = waiting.len(), "too many shares waiting for the pool to answer a worker authorize; this one is lost");
            answer_lost(
                &share.worker,
                share.difficulty,
                share.reply,
                "pool has not answered the worker's authorize",
            );
            self.counters().lost.fetch_add(1, Ordering::Relaxed);
            return;
        }
        waiting.push(Held {
            share,
            since: Instant::now(),
        });
    }

    /// Held shares older than the submit timeout are lost, like a sent share the pool never
    /// answered.
    fn lose_stale_held(&mut self, now: Instant, timeout: Duration) {
        let mut n = 0u64;
        self.held.retain(|_, waiting| {
            let (stale, fresh): (Vec<Held>, Vec<Held>) = std::mem::take(waiting)
                .into_iter()
                .partition(|h| now.duration_since(h.since) > timeout);
            for h in stale {
                answer_lost(
                    &h.share.worker,
                    h.share.difficulty,
                    h.share.reply,
                    "pool did not answer the worker's authorize in time",
                );
                n += 1;
            }
            *waiting = fresh;
            !waiting.is_empty()
        });
        if n > 0 {
            self.counters().lost.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Sends a share of an authorized name (or of one the pool refused: its verdict decides).
    fn forward(&mut self, s: UpSubmit) {
        let id = self.alloc_id();
        let version_bits = if self.version_mask != 0 {
            Some(s.version_bits.unwrap_or(0) & self.version_mask)
        } else {
            None
        };
        // Written straight into the output buffer: the same line `MinerRequest::Submit` would
        // serialize, without a `Value` tree or a `String` per share.
        Submit::write_line(
            &mut self.out,
            id,
            &s.upstream_user,
            &s.pool_job_id,
            &s.extranonce2,
            s.ntime,
            s.nonce,
            version_bits,
        );
        let now = self.now;
        self.shared
            .metrics
            .forward_latency
            .observe(now.duration_since(s.received).as_secs_f64());
        self.pending.insert(
            id,
            Pending::Submit {
                worker: s.worker,
                user: s.upstream_user,
                difficulty: s.difficulty,
                sent: now,
                reply: s.reply,
            },
        );
    }

    fn alloc_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(FIRST_FREE_ID);
        id
    }

    fn attach(&mut self, link: MinerLink, switch_started: Option<Instant>) {
        let job = match self.job.clone() {
            Some(job) => self.variant_for(&job, link.m),
            None => None,
        };
        let msg = ToMiner::Attached {
            session: self.handle.clone(),
            pool: self.params.pool.clone(),
            job,
            pool_mask: self.version_mask,
            switch_started,
        };
        if link.send(msg) {
            self.members.insert(link.id, Arc::new(link));
        }
    }

    /// The variant of `job` for miners with `m`-byte extranonce2 (built once per job and `m`).
    fn variant_for(&mut self, job: &Arc<PoolJob>, m: usize) -> Option<Arc<JobVariant>> {
        if let Some(v) = self
            .variants
            .iter()
            .find(|v| v.miner_en2 == m && Arc::ptr_eq(&v.job, job))
        {
            return Some(v.clone());
        }
        let k = self.shared.config.extranonce.tail_bytes;
        let salt = self.shared.next_salt();
        let mut v = JobVariant::build(job.clone(), self.shared.next_job_id(), k, m, salt)?;
        if self.resending {
            // A keepalive copy is different work under a new id, not clean (see
            // `JobVariant::resent`): miners take it without dropping shares of the old id.
            v = v.resent(
                v.proxy_id.clone(),
                k,
                self.shared.next_salt(),
                crate::stats::unix_now() as u32,
            )?;
        }
        let v = Arc::new(v);
        self.variants.push(v.clone());
        Some(v)
    }

    /// A line from the pool the hub cannot use: counted, and logged. A broken or hostile pool
    /// can send such lines without end, so a session logs the first few at warn and the rest at
    /// debug (the counter keeps counting them all).
    fn bad_line(&mut self, kind: &'static str, what: &str, detail: &str) {
        self.shared.metrics.protocol_error(side::POOL, kind);
        self.bad_lines = self.bad_lines.saturating_add(1);
        match self.bad_lines.cmp(&BAD_LINES_WARNED) {
            std::cmp::Ordering::Less => warn!(kind, detail, "{what}"),
            std::cmp::Ordering::Equal => warn!(
                kind,
                detail,
                "{what} (further unusable lines from this pool session are logged at debug only; hashsched_hub_protocol_errors_total{{side=\"pool\"}} counts them all)"
            ),
            std::cmp::Ordering::Greater => debug!(kind, detail, "{what}"),
        }
    }

    /// Handle one line from the pool; `Some(event)` ends the session.
    fn on_line(&mut self, raw: &[u8]) -> Option<SessionEvent> {
        let Ok(text) = std::str::from_utf8(raw) else {
            self.bad_line(
                protocol_error::NOT_UTF8,
                "line from pool is not UTF-8; ignored",
                "",
            );
            return None;
        };
        if text.trim().is_empty() {
            return None;
        }
        let msg = match protocol::parse_line(text) {
            Ok(m) => m,
            Err(e) => {
                self.bad_line(
                    protocol_error::JSON,
                    "unparseable line from pool; ignored",
                    &e.to_string(),
                );
                return None;
            }
        };
        self.last_heard = self.now;
        match msg {
            Message::Response(r) => self.on_response(r),
            Message::Request(req) => self.on_request(req),
        }
    }

    fn on_response(&mut self, r: protocol::Response) -> Option<SessionEvent> {
        let Some(id) = r.id.as_u64() else {
            self.shared
                .metrics
                .protocol_error(side::POOL, protocol_error::UNKNOWN_ID);
            return None;
        };
        match id {
            ID_CONFIGURE => {
                let c = ConfigureResult::from_value(&r.result);
                self.version_mask = c.granted_mask() & BIP320_VERSION_MASK;
                if let Some(i) = self.info.as_mut() {
                    i.version_mask = self.version_mask;
                }
                debug!(
                    mask = format_args!("{:08x}", self.version_mask),
                    "pool version rolling"
                );
                None
            }
            ID_SUBSCRIBE => {
                if let Some(e) = r.error {
                    return Some(SessionEvent::Failed {
                        auth_rejected: false,
                        configure_suspect: false,
                        reason: format!("subscribe refused: {e}"),
                    });
                }
                match SubscribeResult::from_value(&r.result) {
                    Ok(sr) => {
                        self.info = Some(SessionInfo {
                            e1: sr.extranonce1,
                            n2: sr.extranonce2_size,
                            version_mask: self.version_mask,
                        });
                        self.maybe_ready()
                    }
                    Err(e) => {
                        self.shared
                            .metrics
                            .protocol_error(side::POOL, protocol_error::SUBSCRIBE_RESULT);
                        Some(SessionEvent::Failed {
                            auth_rejected: false,
                            configure_suspect: false,
                            reason: e.to_string(),
                        })
                    }
                }
            }
            ID_AUTHORIZE => {
                if r.is_true() {
                    self.authorized = true;
                    self.maybe_ready()
                } else {
                    Some(SessionEvent::Failed {
                        auth_rejected: true,
                        configure_suspect: false,
                        reason: format!(
                            "pool refused authorization of account {:?}: {}",
                            self.params.pool.user,
                            r.error
                                .map(|e| e.to_string())
                                .unwrap_or_else(|| "false".into())
                        ),
                    })
                }
            }
            _ => {
                match self.pending.remove(id) {
                    Some(Pending::Submit {
                        worker,
                        user,
                        difficulty,
                        sent,
                        reply,
                    }) => {
                        self.counters().observe_latency(
                            self.now.saturating_duration_since(sent).as_secs_f64(),
                        );
                        if r.is_true() {
                            self.counters().accepted.fetch_add(1, Ordering::Relaxed);
                            self.accepted_batch += 1;
                            self.accepted_run.add(worker, difficulty, reply);
                        } else {
                            let (code, msg) = match &r.error {
                                Some(e) => (e.code, format!("pool: {}", e.message)),
                                None => {
                                    (protocol::error_code::OTHER, "rejected by pool".to_owned())
                                }
                            };
                            if code == protocol::error_code::UNAUTHORIZED {
                                // The pool does not know this name on this connection (it lost
                                // an authorize, or restarted its side): authorize it again with
                                // the next share instead of having every later one refused.
                                if matches!(
                                    self.users.get(&user),
                                    Some(UserAuth::Authorized | UserAuth::Sent | UserAuth::Ignored)
                                ) {
                                    self.users.remove(&user);
                                }
                            }
                            self.reject(&worker, difficulty, reply, code, &msg);
                        }
                    }
                    Some(Pending::Authorize { user, .. }) => {
                        self.authorize_misses.remove(&user);
                        let waiting = self.held.remove(&user).unwrap_or_default();
                        if r.is_true() {
                            self.users.insert(user, UserAuth::Authorized);
                            for h in waiting {
                                self.forward(h.share);
                            }
                        } else {
                            warn!(user = %user, retry_in_secs = REFUSED_NAME_RETRY.as_secs(), "pool refused a worker name; its shares will be rejected until it accepts it");
                            self.users.insert(
                                user,
                                UserAuth::RefusedUntil(Instant::now() + REFUSED_NAME_RETRY),
                            );
                            let msg = match &r.error {
                                Some(e) => format!("pool refused the worker name: {}", e.message),
                                None => "pool refused the worker name".to_owned(),
                            };
                            for h in waiting {
                                self.reject(
                                    &h.share.worker,
                                    h.share.difficulty,
                                    h.share.reply,
                                    protocol::error_code::UNAUTHORIZED,
                                    &msg,
                                );
                            }
                        }
                    }
                    None => {
                        self.shared
                            .metrics
                            .protocol_error(side::POOL, protocol_error::UNKNOWN_ID);
                    }
                }
                None
            }
        }
    }

    /// Books a share the pool refused (or whose name it refused) and answers its miner with the
    /// pool's code.
    fn reject(
        &mut self,
        worker: &WorkerEntry,
        difficulty: f64,
        reply: Option<Reply>,
        code: i64,
        msg: &str,
    ) {
        worker.lock().verdict(ShareResult::Rejected, difficulty);
        self.counters().rejected.fetch_add(1, Ordering::Relaxed);
        self.rejected_batch += 1;
        debug!(worker = %worker.name, code, error = %msg, "pool rejected a share");
        if let Some(reply) = reply {
            let l = protocol::error_line(&reply.id, code, msg);
            reply.answer(l);
        }
    }

    fn maybe_ready(&mut self) -> Option<SessionEvent> {
        if self.ready || !self.authorized || self.job.is_none() {
            return None;
        }
        let info = self.info.clone()?;
        self.ready = true;
        info!(
            extranonce1 = %hex::encode(&info.e1),
            extranonce2_size = info.n2,
            version_mask = format_args!("{:08x}", info.version_mask),
            "upstream session ready"
        );
        self.shared
            .session_event(&self.handle.pool, self.handle.id, SessionEvent::Ready(info));
        None
    }

    fn on_request(&mut self, req: protocol::Request) -> Option<SessionEvent> {
        let parsed = match ServerRequest::parse(&req.method, &req.params) {
            Ok(Some(p)) => p,
            Ok(None) => {
                self.shared
                    .metrics
                    .protocol_error(side::POOL, protocol_error::UNKNOWN_METHOD);
                if !req.id.is_null() {
                    let l = protocol::error_line(
                        &req.id,
                        protocol::error_code::OTHER,
                        "unknown method",
                    );
                    self.out.extend_from_slice(l.as_bytes());
                }
                return None;
            }
            Err(e) => {
                let method: String = req.method.chars().take(64).collect();
                let detail = format!("{method}: {e}");
                self.bad_line(
                    protocol_error::PARAMS,
                    "bad parameters from pool; ignored",
                    &detail,
                );
                return None;
            }
        };
        match parsed {
            ServerRequest::SetDifficulty(d) => {
                self.next_difficulty = d;
                self.counters().set_difficulty(d);
            }
            ServerRequest::Notify(n) => self.on_notify(n),
            ServerRequest::SetExtranonce(se) => {
                info!(
                    extranonce1 = %hex::encode(&se.extranonce1),
                    extranonce2_size = se.extranonce2_size,
                    "pool changed extranonce; applies from its next job"
                );
                let k = self.shared.config.extranonce.tail_bytes;
                let misfit = self.members.values().any(|m| se.extranonce2_size < k + m.m);
                if let Some(i) = self.info.as_mut() {
                    i.e1 = se.extranonce1;
                    i.n2 = se.extranonce2_size;
                }
                if misfit {
                    return Some(SessionEvent::Reconnect {
                        host: None,
                        port: None,
                        wait: Duration::ZERO,
                    });
                }
            }
            ServerRequest::SetVersionMask(mask) => {
                self.version_mask = mask & BIP320_VERSION_MASK;
                if let Some(i) = self.info.as_mut() {
                    i.version_mask = self.version_mask;
                }
                for m in self.members.values() {
                    m.send(ToMiner::PoolMask {
                        session_id: self.handle.id,
                        mask: self.version_mask,
                    });
                }
            }
            ServerRequest::Reconnect(r) => {
                info!(host = ?r.host, port = ?r.port, wait = ?r.wait_seconds, "pool asked to reconnect; opening a replacement session");
                self.shared.session_event(
                    &self.handle.pool,
                    self.handle.id,
                    SessionEvent::Reconnect {
                        host: r.host.filter(|h| !h.is_empty()),
                        port: r.port.filter(|p| *p != 0),
                        wait: Duration::from_secs(r.wait_seconds.unwrap_or(0).min(300)),
                    },
                );
            }
            ServerRequest::GetVersion => {
                if !req.id.is_null() {
                    let l = protocol::result_line(
                        &req.id,
                        &Value::from(self.shared.config.upstream.user_agent.as_str()),
                    );
                    self.out.extend_from_slice(l.as_bytes());
                }
            }
            ServerRequest::ShowMessage(m) => {
                info!(message = %m, "message from pool");
            }
        }
        None
    }

    fn on_notify(&mut self, n: protocol::Notify) {
        let Some(info) = self.info.clone() else {
            // Jobs before the subscribe answer cannot be folded; the pool repeats work soon.
            debug!("job before subscribe result; ignored");
            return;
        };
        // Miners get `coinb1 ‖ E1 ‖ padding` as their coinb1: it must stay within the bound a
        // miner's parser (ours included) accepts, or every miner would refuse the job.
        if n.coinb1.len() + info.e1.len() + info.n2 > protocol::MAX_COINBASE_PART_BYTES {
            let detail = format!("coinb1 of {} bytes", n.coinb1.len());
            self.bad_line(
                protocol_error::NOTIFY_TOO_BIG,
                "pool job's coinbase too large to pass on to miners; ignored",
                &detail,
            );
            return;
        }
        let Ok(pool_target) = Target::from_difficulty(self.next_difficulty) else {
            return;
        };
        // The pool sending its current work again (after an authorize, as a keepalive, often with
        // clean_jobs): not new work. Miners keep their ids (a miner given identical work under a
        // new id keeps the old one, or mines the same shares twice); shares go out under the
        // pool's newest id and difficulty.
        if let Some(cur) = &self.job
            && cur.pool_version_mask == self.version_mask
            && cur.same_work(&n, &info.e1, info.n2)
        {
            debug!(pool_job = %n.job_id, clean = n.clean_jobs, "pool re-sent its current work; miners keep their jobs");
            cur.resent(&n.job_id, self.next_difficulty, pool_target);
            self.shared
                .session_event(&self.handle.pool, self.handle.id, SessionEvent::Job);
            return;
        }
        let job = Arc::new(PoolJob::new(
            self.handle.id,
            self.handle.pool.clone(),
            n,
            info.e1.clone(),
            info.n2,
            self.next_difficulty,
            pool_target,
            self.version_mask,
        ));
        self.variants.clear();
        self.job = Some(job.clone());
        // Miners first: the event takes the switchboard's lock, which a routing pass may hold.
        self.broadcast(&job);
        self.shared
            .session_event(&self.handle.pool, self.handle.id, SessionEvent::Job);
        if !self.ready {
            self.maybe_ready();
        }
    }

    /// Hand the job to every member: one variant per extranonce2 size, the same bytes for all,
    /// written by the fan-out threads in chunks. A member that is gone leaves by its own `Detach`.
    fn broadcast(&mut self, job: &Arc<PoolJob>) {
        self.last_broadcast = Instant::now();
        // The distinct extranonce2 sizes among members: one or two in practice.
        let mut ms: Vec<usize> = Vec::new();
        for link in self.members.values() {
            if !ms.contains(&link.m) {
                ms.push(link.m);
            }
        }
        for m in ms {
            self.variant_for(job, m);
        }
        let fanout = &self.shared.fanout;
        let mut batches = fanout.batches(&self.variants);
        for (id, link) in &self.members {
            let Some(v) = self.variants.iter().position(|v| v.miner_en2 == link.m) else {
                continue;
            };
            if let Some(b) = batches.get_mut(fanout.chunk_of(*id)) {
                b.push(link.clone(), v);
            }
        }
        fanout.dispatch(self.handle.id, batches);
    }
}
