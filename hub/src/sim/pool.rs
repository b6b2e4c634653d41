//! A simulated Stratum V1 pool that behaves like a real one: it hands out extranonce1 per
//! session, sends real-looking jobs (a coinbase with a height push and a payout output, a merkle
//! branch), and validates EVERY share with real sha256d, recording per-worker verdicts and a log
//! of accepted shares (worker, extranonce1, extranonce2) so tests can prove that no two miners
//! behind a proxy ever did the same work.
//!
//! Controllable at runtime through [`SimPool`]: refuse connections, close all sessions, go silent,
//! reject everything, send `client.reconnect`, change difficulty or extranonce, push new jobs,
//! pause the job feed (a starving pool).
//!
//! Its defaults are the hard cases real pools present to a proxy, not the easy ones: a 4-byte
//! extranonce2 (no room left to vary work per re-send once a proxy takes its tail), hex job ids,
//! and the current job sent again (clean) right after every successful `mining.authorize`, as
//! pool servers do to give a connection its first work. Optional: decimal job ids, and timed jobs
//! sent with `clean_jobs` but an unchanged prevhash (the pool forgets the earlier jobs anyway).

use super::spawn_line_writer;
use crate::protocol::{
    self, ConfigureResult, MinerRequest, Notify, Reconnect, ServerRequest, SetExtranonce,
    StratumError, Submit, SubscribeResult, error_code,
};
use crate::share::{JobTemplate, Target, roll_version};
use futures::StreamExt;
use rand::Rng;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_util::codec::{FramedRead, LinesCodec};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

/// How the pool answers `mining.configure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigureSupport {
    /// BIP 310 version rolling with this pool mask (granted mask = pool mask & miner mask).
    VersionRolling(u32),
    /// Answers `{"version-rolling": false}`.
    NoVersionRolling,
    /// NOMP-style: closes the connection on `mining.configure`.
    Disconnect,
}

/// How the pool writes job ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JobIds {
    /// `1a2b` (what most pools send).
    #[default]
    Hex,
    /// `6699`.
    Decimal,
}

/// Pool settings; `Default` is a sensible pool for tests.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Name used in logs.
    pub name: String,
    /// Bytes of extranonce1 handed to each session.
    pub extranonce1_size: usize,
    /// extranonce2 size the miner (or proxy) must submit.
    pub extranonce2_size: usize,
    /// Share difficulty sent with `mining.set_difficulty` (fractional allowed).
    pub difficulty: f64,
    pub configure: ConfigureSupport,
    /// Answer `mining.extranonce.subscribe` with `true` (else error 20).
    pub extranonce_subscribe: bool,
    /// When set, `mining.authorize` must carry exactly this password.
    pub password: Option<String>,
    /// New job every interval (not clean unless `timed_jobs_clean`); `None`: only on demand.
    pub job_interval: Option<Duration>,
    /// Timed jobs carry `clean_jobs = true` with the prevhash unchanged; the pool forgets every
    /// earlier job (shares on them are stale), as pools that restart work on new transactions do.
    pub timed_jobs_clean: bool,
    pub job_ids: JobIds,
    /// After a successful `mining.authorize`, send `set_difficulty` and the current job again
    /// (with `clean_jobs`), as pool servers do.
    pub resend_job_on_authorize: bool,
    /// Merkle branch depth of the jobs.
    pub merkle_branch_len: usize,
    /// How many recent jobs stay valid for shares.
    pub jobs_kept: usize,
    /// Keep a log of every accepted share (turn off for long benchmarks).
    pub record_shares: bool,
    /// Accept submitted ntime up to this far ahead of now.
    pub ntime_future_slack: Duration,
    pub max_line_bytes: usize,
    /// Pools that take one authorize per connection: later `mining.authorize` requests are
    /// read and never answered, and shares are not checked against an authorized name.
    pub ignores_extra_authorizes: bool,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            name: "simpool".into(),
            extranonce1_size: 4,
            extranonce2_size: 4,
            difficulty: 1e-3,
            configure: ConfigureSupport::VersionRolling(protocol::BIP320_VERSION_MASK),
            extranonce_subscribe: true,
            password: None,
            job_interval: Some(Duration::from_secs(30)),
            timed_jobs_clean: false,
            job_ids: JobIds::Hex,
            resend_job_on_authorize: true,
            merkle_branch_len: 3,
            jobs_kept: 16,
            record_shares: true,
            ntime_future_slack: Duration::from_secs(7200),
            max_line_bytes: protocol::DEFAULT_MAX_LINE_BYTES,
            ignores_extra_authorizes: false,
        }
    }
}

/// One share the pool accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct AcceptedShare {
    pub worker: String,
    pub session: u64,
    pub job_id: String,
    pub extranonce1: Vec<u8>,
    pub extranonce2: Vec<u8>,
    pub ntime: u32,
    pub nonce: u32,
    pub version: u32,
    /// Difficulty the share was credited at (the job's difficulty for that session).
    pub difficulty: f64,
    /// Difficulty the hash actually achieved.
    pub hash_difficulty: f64,
    /// When the pool read the submit.
    pub received_at: Instant,
}

/// Verdicts per worker name (as submitted).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkerCounts {
    pub accepted: u64,
    pub accepted_difficulty: f64,
    /// Rejections by stratum error code.
    pub rejected: BTreeMap<i64, u64>,
}

impl WorkerCounts {
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

/// A snapshot of what the pool saw.
#[derive(Debug, Clone, Default)]
pub struct PoolStats {
    /// TCP connections accepted (including refused ones).
    pub connections_seen: u64,
    /// TLS pools: sessions whose TLS handshake failed (e.g. the client refused the certificate).
    pub tls_handshake_failures: u64,
    /// Connections closed immediately because the pool was refusing.
    pub connections_refused: u64,
    pub active_sessions: u64,
    pub subscribes: u64,
    pub configures: u64,
    pub authorizes_ok: u64,
    pub authorizes_failed: u64,
    /// Authorizes left unanswered (`ignores_extra_authorizes`).
    pub authorizes_ignored: u64,
    /// Jobs and commands a session skipped because it fell too far behind the pool's burst
    /// (a test that counts jobs must see 0 here).
    pub commands_skipped: u64,
    pub jobs_created: u64,
    /// Current jobs sent again after a successful `mining.authorize`.
    pub jobs_resent_on_authorize: u64,
    /// Requests received while silent (not answered).
    pub ignored_while_silent: u64,
    /// Lines that were not valid Stratum (answered with an error or dropped).
    pub malformed_lines: u64,
    /// Runs of one connection's shares checked by several tasks side by side (a proxy's
    /// burst; see the module's `PARALLEL_RUN`).
    pub share_runs_split: u64,
    pub workers: BTreeMap<String, WorkerCounts>,
}

impl PoolStats {
    pub fn accepted_total(&self) -> u64 {
        self.workers.values().map(|w| w.accepted).sum()
    }
    pub fn rejected_total(&self) -> u64 {
        self.workers.values().map(|w| w.rejected_total()).sum()
    }
    pub fn worker(&self, name: &str) -> WorkerCounts {
        self.workers.get(name).cloned().unwrap_or_default()
    }
}

/// A job as the pool keeps it.
struct PoolJob {
    id: String,
    /// Creation order (the job ids are its hex or decimal form).
    seq: u64,
    template: JobTemplate,
    line: Arc<str>,
    /// The same job with `clean_jobs = true` (re-sent after an authorize).
    clean_line: Arc<str>,
    /// Submitted (en1, en2, ntime, nonce, version) already seen, for duplicate detection.
    seen: Mutex<HashSet<Vec<u8>>>,
}

#[derive(Clone)]
enum SessionCmd {
    Notify(Arc<PoolJob>),
    SetDifficulty(f64),
    Close,
    Reconnect(Reconnect),
    NewExtranonce,
}

struct Shared {
    config: PoolConfig,
    addr: SocketAddr,
    refuse: AtomicBool,
    silent: AtomicBool,
    reject_all: AtomicBool,
    jobs_paused: AtomicBool,
    /// Worker names `mining.authorize` refuses (whatever the password).
    refused_names: Mutex<HashSet<String>>,
    difficulty: Mutex<f64>,
    jobs: RwLock<VecDeque<Arc<PoolJob>>>,
    job_seq: AtomicU64,
    session_seq: AtomicU64,
    prevhash: Mutex<[u8; 32]>,
    stats: Mutex<PoolStats>,
    shares: Mutex<Vec<AcceptedShare>>,
    cmds: broadcast::Sender<SessionCmd>,
    /// `Some` for a TLS pool.
    tls: Option<tokio_rustls::TlsAcceptor>,
}

/// Handle to a running simulated pool. Dropping it stops the pool and closes its sessions.
pub struct SimPool {
    shared: Arc<Shared>,
    cancel: CancellationToken,
}

impl Drop for SimPool {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl SimPool {
    /// Listens on 127.0.0.1 on a free port and starts serving.
    pub async fn start(config: PoolConfig) -> std::io::Result<SimPool> {
        Self::start_on("127.0.0.1:0".parse().expect("literal address"), config).await
    }

    /// Listens on `addr` (e.g. to come back on the same port after a restart).
    pub async fn start_on(addr: SocketAddr, config: PoolConfig) -> std::io::Result<SimPool> {
        Self::start_with(addr, config, None).await
    }

    /// A `stratum+ssl://` pool on 127.0.0.1: every session starts with a TLS handshake under
    /// `tls` (tests give it a certificate of their own making).
    pub async fn start_tls(
        config: PoolConfig,
        tls: Arc<tokio_rustls::rustls::ServerConfig>,
    ) -> std::io::Result<SimPool> {
        let addr = "127.0.0.1:0".parse().expect("literal address");
        Self::start_with(addr, config, Some(tokio_rustls::TlsAcceptor::from(tls))).await
    }

    async fn start_with(
        addr: SocketAddr,
        config: PoolConfig,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> std::io::Result<SimPool> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        // Room for a test's burst of jobs (the fan-out tests send thousands while a stalled
        // miner fills its buffers): a session that lags behind this skips jobs, counted in
        // `PoolStats::commands_skipped`.
        let (cmds, _) = broadcast::channel(16_384);
        let shared = Arc::new(Shared {
            difficulty: Mutex::new(config.difficulty),
            config,
            addr,
            refuse: AtomicBool::new(false),
            silent: AtomicBool::new(false),
            reject_all: AtomicBool::new(false),
            jobs_paused: AtomicBool::new(false),
            refused_names: Mutex::new(HashSet::new()),
            jobs: RwLock::new(VecDeque::new()),
            job_seq: AtomicU64::new(0),
            session_seq: AtomicU64::new(0),
            prevhash: Mutex::new(rand::rng().random()),
            stats: Mutex::new(PoolStats::default()),
            shares: Mutex::new(Vec::new()),
            cmds,
            tls,
        });
        new_job(&shared, true, true);
        let cancel = CancellationToken::new();
        tokio::spawn(accept_loop(listener, shared.clone(), cancel.clone()));
        if let Some(every) = shared.config.job_interval {
            let (s, c) = (shared.clone(), cancel.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.tick().await;
                loop {
                    tokio::select! {
                        _ = c.cancelled() => break,
                        _ = tick.tick() => {
                            if !s.jobs_paused.load(Ordering::SeqCst) {
                                new_job(&s, s.config.timed_jobs_clean, false);
                            }
                        }
                    }
                }
            });
        }
        info!(pool = %shared.config.name, %addr, "simulated pool listening");
        Ok(SimPool { shared, cancel })
    }

    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// `stratum+tcp://127.0.0.1:<port>` (`stratum+ssl://` for a TLS pool).
    pub fn url(&self) -> String {
        let scheme = if self.shared.tls.is_some() {
            "stratum+ssl"
        } else {
            "stratum+tcp"
        };
        format!("{scheme}://{}", self.shared.addr)
    }

    pub fn config(&self) -> &PoolConfig {
        &self.shared.config
    }

    /// Sends a new job to every session; `clean` invalidates all earlier jobs (new prevhash).
    /// Returns the new job id.
    pub fn new_job(&self, clean: bool) -> String {
        new_job(&self.shared, clean, clean)
    }

    /// Sends a new job with `clean_jobs = true` but the same prevhash (no new block): the pool
    /// forgets its earlier jobs. Returns the new job id.
    pub fn new_clean_job_same_block(&self) -> String {
        new_job(&self.shared, true, false)
    }

    /// While true the timed job feed stops (the pool starves its sessions; shares are still
    /// answered).
    pub fn set_jobs_paused(&self, paused: bool) {
        self.shared.jobs_paused.store(paused, Ordering::SeqCst);
    }

    /// Changes the share difficulty: `mining.set_difficulty` to every session, then a new job
    /// (not clean) that carries it. Earlier jobs stay valid at their old difficulty.
    pub fn set_difficulty(&self, d: f64) {
        if let Ok(mut g) = self.shared.difficulty.lock() {
            *g = d;
        }
        let _ = self.shared.cmds.send(SessionCmd::SetDifficulty(d));
        new_job(&self.shared, false, false);
    }

    /// While true, new TCP connections are accepted and closed at once.
    pub fn set_refuse_connections(&self, refuse: bool) {
        self.shared.refuse.store(refuse, Ordering::SeqCst);
    }

    /// Closes every open session.
    pub fn close_all_sessions(&self) {
        let _ = self.shared.cmds.send(SessionCmd::Close);
    }

    /// While true the pool sends nothing: no answers, no jobs (sockets stay open).
    pub fn set_silent(&self, silent: bool) {
        self.shared.silent.store(silent, Ordering::SeqCst);
    }

    /// From now on `mining.authorize` for this worker name is answered false.
    pub fn refuse_worker_name(&self, name: &str) {
        if let Ok(mut names) = self.shared.refused_names.lock() {
            names.insert(name.to_owned());
        }
    }

    /// While true every share is answered with error 20 (after being checked).
    pub fn set_reject_all(&self, reject: bool) {
        self.shared.reject_all.store(reject, Ordering::SeqCst);
    }

    /// Sends `client.reconnect` to every session.
    pub fn send_reconnect(&self, host: Option<String>, port: Option<u16>, wait_seconds: u64) {
        let _ = self.shared.cmds.send(SessionCmd::Reconnect(Reconnect {
            host,
            port,
            wait_seconds: Some(wait_seconds),
        }));
    }

    /// Gives every session a new extranonce1: sessions that sent `mining.extranonce.subscribe`
    /// get `mining.set_extranonce` and a clean job; the others are closed (as real pools do when
    /// they cannot tell the miner).
    pub fn change_extranonce(&self) {
        let _ = self.shared.cmds.send(SessionCmd::NewExtranonce);
        // Work built on the old extranonce1 is void: start clean (sessions see this after the
        // set_extranonce, the broadcast keeps the order).
        new_job(&self.shared, true, true);
    }

    /// Stops accepting and closes every session (the handle stays usable for stats).
    pub fn shutdown(&self) {
        self.cancel.cancel();
    }

    pub fn stats(&self) -> PoolStats {
        let mut s = self
            .shared
            .stats
            .lock()
            .map(|g| g.clone())
            .unwrap_or_default();
        s.jobs_created = self.shared.job_seq.load(Ordering::SeqCst);
        s
    }

    pub fn worker(&self, name: &str) -> WorkerCounts {
        self.stats().worker(name)
    }

    pub fn accepted_shares(&self) -> Vec<AcceptedShare> {
        self.shared
            .shares
            .lock()
            .map(|g| g.clone())
            .unwrap_or_default()
    }

    pub fn connections_seen(&self) -> u64 {
        self.stats().connections_seen
    }

    pub fn active_sessions(&self) -> u64 {
        self.stats().active_sessions
    }

    /// Current difficulty.
    pub fn difficulty(&self) -> f64 {
        self.shared.difficulty.lock().map(|g| *g).unwrap_or(1.0)
    }
}

fn now_unix() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

/// Builds a real-looking coinbase split around the extranonces: a BIP 34 height push, then
/// extranonce1 ‖ extranonce2, then a tag naming the job, one P2PKH payout.
fn coinbase_parts(seq: u64, en_total: usize) -> (Vec<u8>, Vec<u8>) {
    let height = 840_000u32 + (seq as u32 % 100_000);
    let tag = format!("/hashsched-sim/{seq}/");
    let script_len = 4 + en_total + tag.len();
    let mut c1 = Vec::with_capacity(64);
    c1.extend_from_slice(&1u32.to_le_bytes()); // tx version
    c1.push(1); // one input
    c1.extend_from_slice(&[0u8; 32]); // null outpoint
    c1.extend_from_slice(&[0xff; 4]);
    c1.push(script_len.min(255) as u8);
    c1.push(3);
    c1.extend_from_slice(&height.to_le_bytes()[..3]);
    let mut c2 = Vec::with_capacity(64);
    c2.extend_from_slice(tag.as_bytes());
    c2.extend_from_slice(&[0xff; 4]); // sequence
    c2.push(1); // one output
    c2.extend_from_slice(&312_500_000u64.to_le_bytes());
    c2.push(25);
    c2.extend_from_slice(&[0x76, 0xa9, 0x14]);
    c2.extend_from_slice(&[0x5a; 20]);
    c2.extend_from_slice(&[0x88, 0xac]);
    c2.extend_from_slice(&0u32.to_le_bytes()); // lock time
    (c1, c2)
}

/// A new job for every session; `clean`: earlier jobs are forgotten; `new_block`: with a new
/// prevhash.
fn new_job(shared: &Shared, clean: bool, new_block: bool) -> String {
    let seq = shared.job_seq.fetch_add(1, Ordering::SeqCst) + 1;
    let mut rng = rand::rng();
    let prevhash = match shared.prevhash.lock() {
        Ok(mut p) => {
            if new_block {
                *p = rng.random();
            }
            *p
        }
        Err(_) => rng.random(),
    };
    let cfg = &shared.config;
    let (coinb1, coinb2) = coinbase_parts(seq, cfg.extranonce1_size + cfg.extranonce2_size);
    let branch: Vec<[u8; 32]> = (0..cfg.merkle_branch_len).map(|_| rng.random()).collect();
    let notify = Notify {
        job_id: match cfg.job_ids {
            JobIds::Hex => format!("{seq:x}"),
            JobIds::Decimal => seq.to_string(),
        },
        prevhash,
        coinb1,
        coinb2,
        merkle_branch: branch,
        version: 0x2000_0000,
        nbits: 0x1703_4219,
        ntime: now_unix(),
        clean_jobs: clean,
    };
    let template = JobTemplate::new(
        crate::share::swap32(notify.prevhash),
        notify.coinb1.clone(),
        notify.coinb2.clone(),
        notify.merkle_branch.clone(),
        notify.version,
        notify.nbits,
        notify.ntime,
    );
    let clean_line = Notify {
        clean_jobs: true,
        ..notify.clone()
    }
    .to_line()
    .into();
    let job = Arc::new(PoolJob {
        id: notify.job_id.clone(),
        seq,
        template,
        line: notify.to_line().into(),
        clean_line,
        seen: Mutex::new(HashSet::new()),
    });
    if let Ok(mut jobs) = shared.jobs.write() {
        if clean {
            jobs.clear();
        }
        jobs.push_back(job.clone());
        while jobs.len() > cfg.jobs_kept.max(1) {
            jobs.pop_front();
        }
    }
    let id = job.id.clone();
    let _ = shared.cmds.send(SessionCmd::Notify(job));
    id
}

fn bump(shared: &Shared, f: impl FnOnce(&mut PoolStats)) {
    if let Ok(mut s) = shared.stats.lock() {
        f(&mut s);
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, cancel: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            a = listener.accept() => a,
        };
        let Ok((stream, peer)) = accepted else {
            // Out of descriptors or similar: back off a little instead of spinning.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let refuse = shared.refuse.load(Ordering::SeqCst);
        bump(&shared, |s| {
            s.connections_seen += 1;
            if refuse {
                s.connections_refused += 1;
            }
        });
        if refuse {
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let (s, c) = (shared.clone(), cancel.child_token());
        tokio::spawn(async move {
            bump(&s, |st| st.active_sessions += 1);
            let id = s.session_seq.fetch_add(1, Ordering::SeqCst) + 1;
            debug!(pool = %s.config.name, session = id, %peer, "session opened");
            match &s.tls {
                None => serve_session(stream, s.clone(), id, c).await,
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(tls) => serve_session(tls, s.clone(), id, c).await,
                    Err(e) => {
                        debug!(pool = %s.config.name, session = id, error = %e, "TLS handshake failed");
                        bump(&s, |st| st.tls_handshake_failures += 1);
                    }
                },
            }
            bump(&s, |st| {
                st.active_sessions = st.active_sessions.saturating_sub(1)
            });
            debug!(pool = %s.config.name, session = id, "session closed");
        });
    }
}

/// What checking a share needs of its session. Shared with the tasks that check a long run of
/// one connection's shares side by side (see [`PARALLEL_RUN`]); changed copy-on-write by the
/// session, which never happens while such a run is out (the session awaits it).
#[derive(Clone)]
struct ShareContext {
    session: u64,
    subscribed: bool,
    authorized: HashSet<String>,
    /// Difficulty in force when each job was sent to this session.
    job_difficulty: HashMap<String, f64>,
    en1: Vec<u8>,
    en2_size: usize,
    mask: Option<u32>,
}

/// A run of at least this many shares read from one connection at once is checked by several
/// tasks side by side, as a real pool does (ckpool hands every submit to a pool of worker
/// threads): a proxy's one connection carries the shares of hundreds of miners, and checking
/// them one by one on one task would make the simulator, not the proxy, the limit. A miner's
/// own connection never has that many in flight in the tests and benches (at most 32), so
/// straight to the pool nothing changes.
const PARALLEL_RUN: usize = 64;

/// Most lines taken from a connection's read buffer in one go.
const MAX_LINES_AT_ONCE: usize = 4096;

struct Session {
    shared: Arc<Shared>,
    id: u64,
    out: tokio::sync::mpsc::UnboundedSender<String>,
    ctx: Arc<ShareContext>,
    extranonce_subscribed: bool,
    difficulty: f64,
    job_order: VecDeque<String>,
    /// The newest job this connection was sent. The subscribe and authorize answers send the
    /// pool's newest job at once, possibly ahead of broadcasts still queued for this session;
    /// those older jobs are then skipped, as a real pool never sends older work after newer
    /// (a job arriving twice, out of order, looked like new work to a proxy).
    newest_sent: u64,
}

impl Session {
    fn send(&self, line: impl Into<String>) {
        if !self.shared.silent.load(Ordering::SeqCst) {
            let _ = self.out.send(line.into());
        }
    }

    fn extranonce1_for(shared: &Shared, session: u64, generation: u64) -> Vec<u8> {
        let n = shared.config.extranonce1_size;
        let v = (session << 16) ^ generation;
        let bytes = v.to_be_bytes();
        let mut e = vec![0u8; n];
        for (i, b) in e.iter_mut().rev().enumerate() {
            *b = bytes.get(7usize.wrapping_sub(i)).copied().unwrap_or(0);
        }
        e
    }

    /// A broadcast job, unless this connection was already sent it or newer work.
    fn send_job(&mut self, job: &PoolJob) {
        if job.seq <= self.newest_sent {
            return;
        }
        self.send_job_as(job, false);
    }

    /// Sends `job`; `force_clean`: with `clean_jobs = true` whatever it was created with.
    fn send_job_as(&mut self, job: &PoolJob, force_clean: bool) {
        if !self.ctx.subscribed {
            return;
        }
        self.newest_sent = self.newest_sent.max(job.seq);
        let difficulty = self.difficulty;
        Arc::make_mut(&mut self.ctx)
            .job_difficulty
            .insert(job.id.clone(), difficulty);
        // A job sent again (after every authorize) is one entry, not one per send: otherwise
        // 32 authorizes on one connection would evict the current job's own id.
        self.job_order.retain(|id| *id != job.id);
        self.job_order.push_back(job.id.clone());
        while self.job_order.len() > self.shared.config.jobs_kept.max(1) * 2 {
            if let Some(old) = self.job_order.pop_front() {
                Arc::make_mut(&mut self.ctx).job_difficulty.remove(&old);
            }
        }
        let line = if force_clean {
            &job.clean_line
        } else {
            &job.line
        };
        self.send(line.to_string());
    }

    fn current_job(&self) -> Option<Arc<PoolJob>> {
        self.shared.jobs.read().ok().and_then(|j| j.back().cloned())
    }

    fn handle_request(&mut self, id: Value, method: &str, params: &Value) -> bool {
        if self.shared.silent.load(Ordering::SeqCst) {
            bump(&self.shared, |s| s.ignored_while_silent += 1);
            return true;
        }
        let req = match MinerRequest::parse(method, params) {
            Ok(Some(r)) => r,
            Ok(None) => {
                self.send(protocol::error_line(
                    &id,
                    error_code::OTHER,
                    &format!("unknown method {method}"),
                ));
                return true;
            }
            Err(e) => {
                bump(&self.shared, |s| s.malformed_lines += 1);
                if method == protocol::method::SUBMIT
                    && let Some(w) = params.get(0).and_then(Value::as_str)
                {
                    let w = w.to_owned();
                    bump(&self.shared, |s| {
                        *s.workers
                            .entry(w)
                            .or_default()
                            .rejected
                            .entry(error_code::OTHER)
                            .or_default() += 1;
                    });
                }
                self.send(protocol::error_line(&id, error_code::OTHER, &e.to_string()));
                return true;
            }
        };
        match req {
            MinerRequest::Configure(c) => {
                bump(&self.shared, |s| s.configures += 1);
                let mut result = ConfigureResult::default();
                match self.shared.config.configure {
                    ConfigureSupport::Disconnect => return false,
                    ConfigureSupport::NoVersionRolling => {
                        if c.wants(protocol::extension::VERSION_ROLLING) {
                            result.version_rolling = Some(false);
                        }
                    }
                    ConfigureSupport::VersionRolling(pool_mask) => {
                        if c.wants(protocol::extension::VERSION_ROLLING) {
                            let m = pool_mask & c.version_rolling_mask.unwrap_or(u32::MAX);
                            Arc::make_mut(&mut self.ctx).mask = Some(m);
                            result.version_rolling = Some(true);
                            result.version_rolling_mask = Some(m);
                        }
                    }
                }
                for e in &c.extensions {
                    match e.as_str() {
                        protocol::extension::VERSION_ROLLING => {}
                        protocol::extension::MINIMUM_DIFFICULTY => {
                            result.minimum_difficulty = Some(false)
                        }
                        protocol::extension::SUBSCRIBE_EXTRANONCE => {
                            result.subscribe_extranonce = Some(false)
                        }
                        other => result.unsupported.push(other.to_owned()),
                    }
                }
                self.send(protocol::result_line(&id, &result.to_value()));
            }
            MinerRequest::Subscribe(_) => {
                bump(&self.shared, |s| s.subscribes += 1);
                Arc::make_mut(&mut self.ctx).subscribed = true;
                let sid = format!("{:x}", self.id);
                let r = SubscribeResult {
                    subscriptions: protocol::standard_subscriptions(&sid),
                    extranonce1: self.ctx.en1.clone(),
                    extranonce2_size: self.ctx.en2_size,
                };
                self.send(protocol::result_line(&id, &r.to_value()));
                self.send(ServerRequest::SetDifficulty(self.difficulty).to_notification());
                if let Some(job) = self.current_job() {
                    self.send_job_as(&job, false);
                }
            }
            MinerRequest::ExtranonceSubscribe => {
                if self.shared.config.extranonce_subscribe {
                    self.extranonce_subscribed = true;
                    self.send(protocol::true_line(&id));
                } else {
                    self.send(protocol::error_line(
                        &id,
                        error_code::OTHER,
                        "extranonce.subscribe not supported",
                    ));
                }
            }
            MinerRequest::Authorize(a) => {
                if self.shared.config.ignores_extra_authorizes && !self.ctx.authorized.is_empty() {
                    bump(&self.shared, |s| s.authorizes_ignored += 1);
                    return true;
                }
                let ok = match &self.shared.config.password {
                    Some(p) => a.password.as_deref() == Some(p.as_str()),
                    None => true,
                } && !self
                    .shared
                    .refused_names
                    .lock()
                    .is_ok_and(|names| names.contains(&a.user));
                bump(&self.shared, |s| {
                    if ok {
                        s.authorizes_ok += 1
                    } else {
                        s.authorizes_failed += 1
                    }
                });
                if ok {
                    Arc::make_mut(&mut self.ctx).authorized.insert(a.user);
                }
                self.send(protocol::result_line(&id, &Value::Bool(ok)));
                if ok && self.shared.config.resend_job_on_authorize && self.ctx.subscribed {
                    // What pool servers do: the connection's work, again, from the top.
                    self.send(ServerRequest::SetDifficulty(self.difficulty).to_notification());
                    if let Some(job) = self.current_job() {
                        self.send_job_as(&job, true);
                    }
                    bump(&self.shared, |s| s.jobs_resent_on_authorize += 1);
                }
            }
            MinerRequest::SuggestDifficulty(_) => {
                self.send(protocol::true_line(&id));
            }
            MinerRequest::Submit(s) => {
                let answer = submit_answer(&self.ctx, &self.shared, &id, s);
                self.send(answer);
            }
        }
        true
    }

    /// Returns false when the session must close.
    fn handle_cmd(&mut self, cmd: SessionCmd, en1_generation: &mut u64) -> bool {
        match cmd {
            SessionCmd::Notify(job) => self.send_job(&job),
            SessionCmd::SetDifficulty(d) => {
                self.difficulty = d;
                if self.ctx.subscribed {
                    self.send(ServerRequest::SetDifficulty(d).to_notification());
                }
            }
            SessionCmd::Close => return false,
            SessionCmd::Reconnect(r) => {
                self.send(ServerRequest::Reconnect(r).to_notification());
            }
            SessionCmd::NewExtranonce => {
                if !self.ctx.subscribed {
                    return true;
                }
                if !self.extranonce_subscribed {
                    return false;
                }
                *en1_generation += 1;
                let en1 = Self::extranonce1_for(&self.shared, self.id, *en1_generation);
                Arc::make_mut(&mut self.ctx).en1 = en1;
                self.send(
                    ServerRequest::SetExtranonce(SetExtranonce {
                        extranonce1: self.ctx.en1.clone(),
                        extranonce2_size: self.ctx.en2_size,
                    })
                    .to_notification(),
                );
            }
        }
        true
    }
}

/// Validates one share exactly as a pool does.
fn check_share(
    ctx: &ShareContext,
    shared: &Shared,
    s: Submit,
) -> Result<AcceptedShare, StratumError> {
    if !ctx.subscribed {
        return Err(StratumError::new(
            error_code::NOT_SUBSCRIBED,
            "not subscribed",
        ));
    }
    if !ctx.authorized.contains(&s.worker) && !shared.config.ignores_extra_authorizes {
        return Err(StratumError::new(
            error_code::UNAUTHORIZED,
            "unauthorized worker",
        ));
    }
    let job = shared
        .jobs
        .read()
        .ok()
        .and_then(|jobs| jobs.iter().rev().find(|j| j.id == s.job_id).cloned());
    let (Some(job), Some(&difficulty)) = (job, ctx.job_difficulty.get(&s.job_id)) else {
        return Err(StratumError::new(
            error_code::JOB_NOT_FOUND,
            "job not found",
        ));
    };
    if s.extranonce2.len() != ctx.en2_size {
        return Err(StratumError::new(
            error_code::OTHER,
            format!(
                "extranonce2 is {} bytes, expected {}",
                s.extranonce2.len(),
                ctx.en2_size
            ),
        ));
    }
    let latest = now_unix() as u64 + shared.config.ntime_future_slack.as_secs();
    if (s.ntime as u64) < job.template.ntime() as u64 || s.ntime as u64 > latest {
        return Err(StratumError::new(error_code::OTHER, "ntime out of range"));
    }
    let version = match (s.version_bits, ctx.mask) {
        (None, _) => job.template.version(),
        (Some(bits), Some(mask)) if bits & !mask == 0 => {
            roll_version(job.template.version(), bits, mask)
        }
        (Some(_), Some(_)) => {
            return Err(StratumError::new(
                error_code::OTHER,
                "version bits outside the negotiated mask",
            ));
        }
        (Some(0), None) => job.template.version(),
        (Some(_), None) => {
            return Err(StratumError::new(
                error_code::OTHER,
                "version rolling was not negotiated",
            ));
        }
    };
    let mut key = Vec::with_capacity(ctx.en1.len() + s.extranonce2.len() + 12);
    key.extend_from_slice(&ctx.en1);
    key.extend_from_slice(&s.extranonce2);
    key.extend_from_slice(&s.ntime.to_le_bytes());
    key.extend_from_slice(&s.nonce.to_le_bytes());
    key.extend_from_slice(&version.to_le_bytes());
    let hash = job
        .template
        .share_hash(&ctx.en1, &s.extranonce2, s.ntime, s.nonce, version);
    let target = Target::from_difficulty(difficulty)
        .map_err(|e| StratumError::new(error_code::OTHER, e.to_string()))?;
    if !target.is_met_by(&hash) {
        return Err(StratumError::new(
            error_code::LOW_DIFFICULTY,
            "low difficulty share",
        ));
    }
    let fresh = job
        .seen
        .lock()
        .map(|mut seen| seen.insert(key))
        .unwrap_or(false);
    if !fresh {
        return Err(StratumError::new(error_code::DUPLICATE, "duplicate share"));
    }
    Ok(AcceptedShare {
        worker: s.worker,
        session: ctx.session,
        job_id: s.job_id,
        extranonce1: ctx.en1.clone(),
        extranonce2: s.extranonce2,
        ntime: s.ntime,
        nonce: s.nonce,
        version,
        difficulty,
        hash_difficulty: crate::share::hash_difficulty(&hash),
        received_at: Instant::now(),
    })
}

/// The whole of `mining.submit` but the send: the verdict (with the pool's reject-all switch),
/// its booking in the pool's counters and share log, and the answer line.
fn submit_answer(ctx: &ShareContext, shared: &Shared, id: &Value, s: Submit) -> String {
    let worker = s.worker.clone();
    let verdict = match check_share(ctx, shared, s) {
        Ok(share) if shared.reject_all.load(Ordering::SeqCst) => {
            drop(share);
            Err(StratumError::new(
                error_code::OTHER,
                "rejected by pool policy",
            ))
        }
        v => v,
    };
    match verdict {
        Ok(share) => {
            let d = share.difficulty;
            bump(shared, |st| {
                let w = st.workers.entry(worker).or_default();
                w.accepted += 1;
                w.accepted_difficulty += d;
            });
            if shared.config.record_shares
                && let Ok(mut log) = shared.shares.lock()
            {
                log.push(share);
            }
            protocol::true_line(id)
        }
        Err(e) => {
            bump(shared, |st| {
                *st.workers
                    .entry(worker)
                    .or_default()
                    .rejected
                    .entry(e.code)
                    .or_default() += 1;
            });
            protocol::error_line(id, e.code, &e.message)
        }
    }
}

/// How a connection's read ended, once the lines read before it are handled.
enum ReadEnd {
    Closed,
    Bad(tokio_util::codec::LinesCodecError),
}

/// One line read from a connection, sorted for handling.
enum Incoming {
    /// A well-formed `mining.submit` (checked in runs, see [`PARALLEL_RUN`]).
    Submit(Value, Submit),
    /// Anything else, handled in order as it comes.
    Line(String),
}

fn sort_line(line: String) -> Incoming {
    if let Ok(protocol::Message::Request(req)) = protocol::parse_line(&line)
        && req.method == protocol::method::SUBMIT
        && let Ok(Some(MinerRequest::Submit(s))) = MinerRequest::parse(&req.method, &req.params)
    {
        return Incoming::Submit(req.id, s);
    }
    Incoming::Line(line)
}

impl Session {
    /// One line that is not a well-formed submit; false when the session must close.
    fn handle_line(&mut self, line: &str) -> bool {
        match protocol::parse_line(line) {
            Ok(protocol::Message::Request(req)) => {
                self.handle_request(req.id, &req.method, &req.params)
            }
            // Answers to our (never sent) requests: ignore.
            Ok(protocol::Message::Response(_)) => true,
            Err(e) => {
                bump(&self.shared, |s| s.malformed_lines += 1);
                self.send(protocol::error_line(
                    &Value::Null,
                    error_code::OTHER,
                    &e.to_string(),
                ));
                true
            }
        }
    }

    /// A run of submits read together, answered in the order they came. A long run is split
    /// over several tasks (see [`PARALLEL_RUN`]); a short one is checked here, one by one.
    async fn handle_submits(&mut self, mut run: Vec<(Value, Submit)>) {
        let parts = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .max(2)
            .min(run.len() / PARALLEL_RUN)
            .max(1);
        let mut rest = Vec::with_capacity(parts - 1);
        if parts > 1 {
            bump(&self.shared, |s| s.share_runs_split += 1);
        }
        let size = run.len().div_ceil(parts);
        // Each task checks, books and answers its chunk whole; the answers go out in the
        // order the shares came. As in a pool with worker threads, of two copies of one share
        // in one run, the one whose task gets to the job's duplicate set first is accepted.
        let answer = |ctx: &ShareContext, shared: &Shared, chunk: Vec<(Value, Submit)>| {
            chunk
                .into_iter()
                .map(|(id, s)| submit_answer(ctx, shared, &id, s))
                .collect::<Vec<_>>()
        };
        while run.len() > size {
            let chunk = run.split_off(run.len().saturating_sub(size).max(size));
            let (ctx, shared) = (self.ctx.clone(), self.shared.clone());
            rest.push(tokio::spawn(async move { answer(&ctx, &shared, chunk) }));
        }
        for (id, s) in run {
            let a = submit_answer(&self.ctx, &self.shared, &id, s);
            self.send(a);
        }
        // Spawned last chunk first: the chunks were split off the end.
        for task in rest.into_iter().rev() {
            match task.await {
                Ok(answers) => {
                    for a in answers {
                        self.send(a);
                    }
                }
                // Only if the runtime is shutting down (a check never panics): the
                // connection goes with it.
                Err(e) => {
                    debug!(pool = %self.shared.config.name, session = self.id, error = %e, "share check task ended");
                    return;
                }
            }
        }
    }

    /// Lines read together, in order: runs of submits in between the other lines.
    async fn handle_lines(&mut self, lines: Vec<String>) -> bool {
        let mut run: Vec<(Value, Submit)> = Vec::new();
        for line in lines {
            if line.trim().is_empty() {
                continue;
            }
            // While silent every request is only counted (see `handle_request`).
            let incoming = if self.shared.silent.load(Ordering::SeqCst) {
                Incoming::Line(line)
            } else {
                sort_line(line)
            };
            match incoming {
                Incoming::Submit(id, s) => run.push((id, s)),
                Incoming::Line(line) => {
                    if !run.is_empty() {
                        self.handle_submits(std::mem::take(&mut run)).await;
                    }
                    if !self.handle_line(&line) {
                        return false;
                    }
                }
            }
        }
        if !run.is_empty() {
            self.handle_submits(run).await;
        }
        true
    }
}

async fn serve_session<S>(stream: S, shared: Arc<Shared>, id: u64, cancel: CancellationToken)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    use futures::FutureExt;
    let (r, w) = tokio::io::split(stream);
    let mut lines = FramedRead::new(
        r,
        LinesCodec::new_with_max_length(shared.config.max_line_bytes),
    );
    let out = spawn_line_writer(w);
    let mut cmds = shared.cmds.subscribe();
    let difficulty = shared.difficulty.lock().map(|g| *g).unwrap_or(1.0);
    let mut en1_generation = 0u64;
    let mut session = Session {
        ctx: Arc::new(ShareContext {
            session: id,
            subscribed: false,
            authorized: HashSet::new(),
            job_difficulty: HashMap::new(),
            en1: Session::extranonce1_for(&shared, id, 0),
            en2_size: shared.config.extranonce2_size,
            mask: None,
        }),
        shared,
        id,
        out,
        extranonce_subscribed: false,
        difficulty,
        job_order: VecDeque::new(),
        newest_sent: 0,
    };
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            cmd = cmds.recv() => match cmd {
                Ok(cmd) => if !session.handle_cmd(cmd, &mut en1_generation) { break },
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    bump(&session.shared, |s| s.commands_skipped += n);
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            line = lines.next() => {
                // This line and every whole line already read behind it.
                let mut batch = Vec::new();
                let mut end = None;
                let mut next = line;
                loop {
                    match next {
                        Some(Ok(l)) => batch.push(l),
                        Some(Err(e)) => {
                            end = Some(ReadEnd::Bad(e));
                            break;
                        }
                        None => {
                            end = Some(ReadEnd::Closed);
                            break;
                        }
                    }
                    if batch.len() >= MAX_LINES_AT_ONCE {
                        break;
                    }
                    match lines.next().now_or_never() {
                        Some(n) => next = n,
                        None => break,
                    }
                }
                if !session.handle_lines(batch).await {
                    break;
                }
                match end {
                    None => {}
                    Some(ReadEnd::Closed) => break,
                    Some(ReadEnd::Bad(e)) => {
                        debug!(pool = %session.shared.config.name, session = id, error = %e, "closing session on bad input");
                        bump(&session.shared, |s| s.malformed_lines += 1);
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::share::{merkle_root, sha256d};

    #[test]
    fn coinbase_parses_as_a_transaction_prefix() {
        let (c1, c2) = coinbase_parts(7, 12);
        let mut tx = c1.clone();
        tx.extend_from_slice(&[0u8; 12]);
        tx.extend_from_slice(&c2);
        // script length byte covers height push + extranonces + tag
        let script_len = c1[41] as usize;
        assert_eq!(41 + 1 + script_len + 4, tx.len() - (1 + 8 + 1 + 25 + 4));
        assert_eq!(&tx[tx.len() - 4..], &[0, 0, 0, 0]);
        assert_ne!(merkle_root(&tx, &[]), sha256d(&c1));
    }

    #[test]
    fn extranonce1_is_unique_per_session_and_generation() {
        let (cmds, _) = broadcast::channel(1);
        let shared = Shared {
            config: PoolConfig::default(),
            addr: "127.0.0.1:1".parse().unwrap(),
            refuse: AtomicBool::new(false),
            silent: AtomicBool::new(false),
            reject_all: AtomicBool::new(false),
            jobs_paused: AtomicBool::new(false),
            refused_names: Mutex::new(HashSet::new()),
            difficulty: Mutex::new(1.0),
            jobs: RwLock::new(VecDeque::new()),
            job_seq: AtomicU64::new(0),
            session_seq: AtomicU64::new(0),
            prevhash: Mutex::new([0; 32]),
            stats: Mutex::new(PoolStats::default()),
            shares: Mutex::new(Vec::new()),
            cmds,
            tls: None,
        };
        let mut seen = HashSet::new();
        for s in 1..500u64 {
            for g in 0..3u64 {
                let e = Session::extranonce1_for(&shared, s, g);
                assert_eq!(e.len(), 4);
                assert!(seen.insert(e));
            }
        }
    }
}
