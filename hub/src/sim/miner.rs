//! A simulated Stratum V1 miner that behaves like real firmware and really hashes.
//!
//! It configures (BIP 310 version rolling on or off), subscribes, optionally sends
//! `mining.extranonce.subscribe`, authorizes, follows `set_difficulty` (from the next job),
//! `set_extranonce` (from the next job), `set_version_mask` (at once), `notify` and
//! `client.reconnect`, answers `client.get_version`, and hashes real headers (sha256d over
//! extranonce2 / version bits / nonce) at a throttled rate of H hashes per second — so shares
//! arrive as a Poisson process with rate `H / (d · 2^32)`; tests use tiny difficulties. With no
//! rate it mines at full speed (benchmarks).
//!
//! Three behaviours ([`MinerMode`]) copy real clients where they differ in ways that lose shares
//! behind a careless proxy: generic firmware (restarts on every job), pooler's cpuminer (keeps
//! mining its current work, under the old job id and at the old difficulty, when a job carries
//! byte-identical work) and the Stratum V2 reference implementation's SV1 miner (accepts only
//! decimal job ids, rolls ntime a minute ahead, redoes identical work and so finds the same share
//! again, and quits on any error reply to a share).
//!
//! [`SimMiner`] is its handle: stall / resume / die / change speed, and a [`MinerStats`]
//! snapshot of everything it sent and got back, so tests can check conservation of shares and
//! that the miner never had to reconnect.

use super::spread_bits;
use crate::protocol::{
    self, Configure, ConfigureResult, Message, MinerRequest, ServerRequest, Submit, Subscribe,
    SubscribeResult,
};
use crate::share::{HeaderHasher, JobTemplate, Target, swap32};
use futures::StreamExt;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, LinesCodec};
use tracing::debug;

/// Nonces tried per (extranonce2, version bits) before moving to the next combination.
const NONCES_PER_UNIT: u64 = 1 << 24;
/// Hashes done per step when mining at full speed (then the task yields).
const FULL_SPEED_STEP: u64 = 512;
/// Most hashes one throttled step does, so one miner never holds a runtime thread for long
/// (about 20 ms with SHA extensions). Real sha256d is done for every hash: a simulated fleet
/// costs CPU in proportion to its total hash rate, so demos use small rates and tiny
/// difficulties.
const MAX_STEP_HASHES: u64 = 1 << 16;

/// Which real client the simulated miner behaves like (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MinerMode {
    /// ASIC-like firmware: version rolling, every job restarts the work.
    #[default]
    Firmware,
    /// pooler cpuminer 2.5.1: no `mining.configure`; a job whose work is byte-identical to the
    /// current one is not taken (the old job id and difficulty stay); a difficulty applies with
    /// the next job that is taken; every submit has id 4.
    Cpuminer,
    /// The SRI SV1 miner (v1.5.0): an empty `mining.configure`; a job id that is not a decimal
    /// `u32` ends it; every job restarts the same extranonce2/nonce sequence (identical work
    /// gives identical shares); ntime = now + 60; any error reply to a submit ends it.
    Sri,
}

/// Miner settings; `MinerConfig::new(worker)` gives firmware-like defaults.
#[derive(Debug, Clone)]
pub struct MinerConfig {
    pub worker: String,
    pub mode: MinerMode,
    pub password: String,
    pub user_agent: String,
    /// Hashes per second; `None` mines at full speed.
    pub hashrate: Option<f64>,
    /// Send `mining.configure` asking for BIP 310 version rolling (mask 0x1fffe000).
    pub version_rolling: bool,
    /// Send `mining.extranonce.subscribe` after subscribing.
    pub extranonce_subscribe: bool,
    /// Use this id for every submit (cpuminer uses 4); `None`: a fresh id per request.
    pub fixed_submit_id: Option<u64>,
    /// Reconnect this long after the connection drops; `None`: stay down.
    pub reconnect_delay: Option<Duration>,
    /// Obey `client.reconnect` (some firmware ignores it).
    pub follow_reconnect: bool,
    /// Stop hashing while this many submits are unanswered (0 = no limit).
    pub max_in_flight: usize,
    /// Keep every submit→answer latency (microseconds) in the stats.
    pub record_latency: bool,
    /// Keep a log of submitted shares in the stats (first 100,000).
    pub record_shares: bool,
    /// How often the throttled miner wakes up to hash its budget.
    pub tick: Duration,
    /// Submit ntime = now + this (the SRI miner rolls ntime 60 s ahead); `None`: the job's ntime.
    pub ntime_ahead: Option<u32>,
    /// Move to a fresh extranonce2 after every share found, as an ASIC at farm difficulty
    /// practically does (no two shares of one miner on the same merkle root, so a server's
    /// memo of the last work never hits); `false`: 16 M nonces per extranonce2 and version.
    pub extranonce2_per_share: bool,
    pub max_line_bytes: usize,
}

impl MinerConfig {
    pub fn new(worker: impl Into<String>) -> Self {
        MinerConfig {
            worker: worker.into(),
            mode: MinerMode::Firmware,
            password: "x".into(),
            user_agent: "hashsched-simminer/1.0".into(),
            hashrate: Some(1e6),
            version_rolling: true,
            extranonce_subscribe: false,
            fixed_submit_id: None,
            reconnect_delay: Some(Duration::from_secs(1)),
            follow_reconnect: true,
            max_in_flight: 0,
            record_latency: false,
            record_shares: true,
            tick: Duration::from_millis(50),
            ntime_ahead: None,
            extranonce2_per_share: false,
            max_line_bytes: protocol::DEFAULT_MAX_LINE_BYTES,
        }
    }
}

impl MinerConfig {
    /// Behaves like pooler's cpuminer 2.5.1 (see [`MinerMode::Cpuminer`]).
    pub fn cpuminer(worker: impl Into<String>) -> Self {
        MinerConfig {
            mode: MinerMode::Cpuminer,
            user_agent: "cpuminer/2.5.1".into(),
            version_rolling: false,
            extranonce_subscribe: false,
            fixed_submit_id: Some(4),
            ..MinerConfig::new(worker)
        }
    }

    /// Behaves like the Stratum V2 reference implementation's SV1 miner (see [`MinerMode::Sri`]).
    pub fn sri(worker: impl Into<String>) -> Self {
        MinerConfig {
            mode: MinerMode::Sri,
            user_agent: "sri-sv1-miner/1.5.0".into(),
            version_rolling: false,
            extranonce_subscribe: false,
            fixed_submit_id: Some(0),
            ntime_ahead: Some(60),
            // It exits instead of reconnecting.
            reconnect_delay: None,
            ..MinerConfig::new(worker)
        }
    }
}

/// One share the miner submitted.
#[derive(Debug, Clone, PartialEq)]
pub struct SubmittedShare {
    pub job_id: String,
    pub extranonce2: Vec<u8>,
    pub ntime: u32,
    pub nonce: u32,
    pub version_bits: Option<u32>,
    pub difficulty: f64,
    /// When it was handed to the socket writer.
    pub sent_at: Instant,
}

/// A snapshot of what the miner did and saw.
#[derive(Debug, Clone, Default)]
pub struct MinerStats {
    /// TCP connections made (1 when it never had to reconnect).
    pub connections: u64,
    pub connected: bool,
    pub subscribed: bool,
    /// Answer to the last `mining.authorize` (None before it came).
    pub authorized: Option<bool>,
    pub version_mask: Option<u32>,
    pub extranonce1: Vec<u8>,
    pub extranonce2_size: usize,
    /// Difficulty of the job being mined.
    pub difficulty: f64,
    pub jobs_received: u64,
    pub last_job_id: Option<String>,
    pub last_job_at: Option<Instant>,
    pub set_difficulty_received: u64,
    pub set_extranonce_received: u64,
    pub reconnects_received: u64,
    pub hashes: u64,
    pub submitted: u64,
    pub submitted_difficulty: f64,
    pub accepted: u64,
    pub accepted_difficulty: f64,
    /// Rejections by error code (20 also for a bare `false`).
    pub rejected: BTreeMap<i64, u64>,
    /// Submits whose connection closed before an answer came.
    pub lost: u64,
    /// Submits waiting for an answer.
    pub in_flight: u64,
    /// Submit → answer latencies in microseconds (when `record_latency`).
    pub latencies_us: Vec<u32>,
    pub last_error: Option<String>,
    pub shares: Vec<SubmittedShare>,
    /// Jobs not taken because their work was identical to the current work (cpuminer mode).
    pub identical_jobs_kept: u64,
    /// Why the miner quit for good (SRI mode: an error reply, a job id it cannot parse).
    pub exited: Option<String>,
    /// Set by [`SimMiner::stall`] before it returns: from then on nothing more is submitted, so a
    /// test that sees `in_flight == 0` after stalling has seen the miner's last share.
    pub stalled: bool,
}

impl MinerStats {
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
    /// Every submitted share is accepted, rejected, lost or still waiting.
    pub fn is_conserved(&self) -> bool {
        self.submitted == self.accepted + self.rejected_total() + self.lost + self.in_flight
    }
}

enum Cmd {
    Stall,
    Resume,
    Die,
    SetHashrate(Option<f64>),
}

struct Shared {
    stats: Mutex<MinerStats>,
}

/// Handle to a running simulated miner; dropping it kills the miner.
pub struct SimMiner {
    worker: String,
    ctrl: mpsc::UnboundedSender<Cmd>,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SimMiner {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SimMiner {
    /// Starts a miner that connects to `addr` (and keeps reconnecting per its config).
    pub fn spawn(addr: SocketAddr, config: MinerConfig) -> SimMiner {
        let (ctrl, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            stats: Mutex::new(MinerStats::default()),
        });
        let worker = config.worker.clone();
        let task = tokio::spawn(run(addr, config, rx, shared.clone()));
        SimMiner {
            worker,
            ctrl,
            shared,
            task,
        }
    }

    pub fn worker(&self) -> &str {
        &self.worker
    }

    /// Stops hashing and submitting; the socket stays open and jobs are still followed.
    ///
    /// Takes effect when it returns, not when the miner's task next runs: shares the task finds
    /// afterwards are dropped under the same lock that counts a submit (a test that stalls and
    /// then waits for `in_flight == 0` would otherwise race a share found in between).
    pub fn stall(&self) {
        self.set_stalled(true);
        let _ = self.ctrl.send(Cmd::Stall);
    }

    /// Undoes [`SimMiner::stall`].
    pub fn resume(&self) {
        self.set_stalled(false);
        let _ = self.ctrl.send(Cmd::Resume);
    }

    fn set_stalled(&self, stalled: bool) {
        if let Ok(mut s) = self.shared.stats.lock() {
            s.stalled = stalled;
        }
    }

    /// Closes the connection and stays down.
    pub fn die(&self) {
        let _ = self.ctrl.send(Cmd::Die);
    }

    /// Changes the hash rate (e.g. half speed); `None` = full speed.
    pub fn set_hashrate(&self, hashrate: Option<f64>) {
        let _ = self.ctrl.send(Cmd::SetHashrate(hashrate));
    }

    pub fn stats(&self) -> MinerStats {
        self.shared
            .stats
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// Reads the stats under the lock without cloning the share and latency logs.
    pub fn with_stats<T>(&self, f: impl FnOnce(&MinerStats) -> T) -> Option<T> {
        self.shared.stats.lock().ok().map(|s| f(&s))
    }

    /// Takes (and clears) the recorded latencies.
    pub fn take_latencies(&self) -> Vec<u32> {
        self.shared
            .stats
            .lock()
            .map(|mut s| std::mem::take(&mut s.latencies_us))
            .unwrap_or_default()
    }

    /// Polls the stats until `pred` holds or `timeout` passes; returns the last snapshot.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        pred: impl Fn(&MinerStats) -> bool,
    ) -> Result<MinerStats, MinerStats> {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.stats();
            if pred(&s) {
                return Ok(s);
            }
            if Instant::now() >= deadline {
                return Err(s);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// True once the task has ended (after `die`, or when it will never reconnect).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Configure,
    Subscribe,
    ExtranonceSubscribe,
    Authorize,
    Submit,
}

struct Pending {
    kind: Kind,
    sent: Instant,
    /// Difficulty of the submitted share (0 for other requests).
    difficulty: f64,
}

/// The work being hashed.
struct Work {
    job_id: String,
    template: JobTemplate,
    target: Target,
    difficulty: f64,
    en1: Vec<u8>,
    en2_size: usize,
    mask: u32,
    /// extranonce2 counter the units count from (moves on a mask change).
    en2_base: u64,
    unit: u64,
    nonce: u64,
    en2: Vec<u8>,
    version_bits: u32,
    ntime: u32,
    hasher: Option<HeaderHasher>,
    /// [`MinerConfig::extranonce2_per_share`]: every unit on its own extranonce2.
    en2_per_unit: bool,
}

impl Work {
    /// Version-bit combinations per extranonce2 under the current mask.
    fn combos(&self) -> u64 {
        if self.mask != 0 {
            1u64 << self.mask.count_ones().min(32)
        } else {
            1
        }
    }

    /// The current unit's extranonce2, counted from `en2_base`.
    fn en2_offset(&self) -> u64 {
        if self.en2_per_unit {
            self.unit
        } else {
            self.unit / self.combos()
        }
    }

    /// A new mask in the middle of a job: continue on a fresh extranonce2 so no (extranonce2,
    /// version, nonce) is ever hashed twice (which would submit duplicates).
    fn change_mask(&mut self, mask: u32) {
        self.en2_base += self.en2_offset() + 1;
        self.mask = mask;
        self.unit = 0;
        // Rebuilt lazily by the next mining step.
        self.hasher = None;
    }

    fn start_unit(&mut self, ntime_ahead: Option<u32>) {
        // ASIC style: roll version bits first, extranonce2 when they run out.
        let combos = self.combos();
        let en2_counter = self.en2_base + self.en2_offset();
        let roll = if self.mask != 0 {
            (self.unit % combos) as u32 + 1
        } else {
            0
        };
        let bytes = en2_counter.to_be_bytes();
        self.en2 = vec![0u8; self.en2_size];
        for (i, b) in self.en2.iter_mut().rev().enumerate() {
            *b = bytes.get(7usize.wrapping_sub(i)).copied().unwrap_or(0);
        }
        self.version_bits = spread_bits(roll, self.mask);
        let version = self
            .template
            .rolled_version(Some(self.version_bits), self.mask);
        self.ntime = match ntime_ahead {
            Some(ahead) => now_unix().saturating_add(ahead).max(self.template.ntime()),
            None => self.template.ntime(),
        };
        let header = self
            .template
            .header(&self.en1, &self.en2, self.ntime, 0, version);
        self.hasher = Some(HeaderHasher::new(&header));
        self.nonce = 0;
    }
}

fn now_unix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

/// Per-connection state.
struct Conn<'a> {
    config: &'a MinerConfig,
    shared: &'a Shared,
    out: mpsc::UnboundedSender<String>,
    next_id: u64,
    pending: HashMap<String, VecDeque<Pending>>,
    mask: u32,
    en1: Option<Vec<u8>>,
    en2_size: usize,
    pending_en1: Option<(Vec<u8>, usize)>,
    difficulty: f64,
    pending_difficulty: Option<f64>,
    authorized: bool,
    work: Option<Work>,
    reconnect_to: Option<(SocketAddr, Duration)>,
}

enum Flow {
    Continue,
    Close,
    /// Quit for good (the SRI miner's reaction to what it cannot handle).
    Exit(String),
}

impl Conn<'_> {
    fn stats(&self, f: impl FnOnce(&mut MinerStats)) {
        if let Ok(mut s) = self.shared.stats.lock() {
            f(&mut s);
        }
    }

    fn request(&mut self, req: MinerRequest, kind: Kind) {
        self.request_with(req, kind, 0.0);
    }

    fn request_with(&mut self, req: MinerRequest, kind: Kind, difficulty: f64) {
        let id = match (kind, self.config.fixed_submit_id) {
            (Kind::Submit, Some(fixed)) => fixed,
            _ => {
                self.next_id += 1;
                self.next_id
            }
        };
        let idv = protocol::id(id);
        self.pending
            .entry(idv.to_string())
            .or_default()
            .push_back(Pending {
                kind,
                sent: Instant::now(),
                difficulty,
            });
        let _ = self.out.send(req.to_line(&idv));
    }

    fn start(&mut self) {
        if self.config.mode == MinerMode::Sri {
            // `[[], {}]`: no extensions at all.
            self.request(
                MinerRequest::Configure(Configure::default()),
                Kind::Configure,
            );
        } else if self.config.version_rolling {
            self.request(
                MinerRequest::Configure(Configure {
                    extensions: vec![protocol::extension::VERSION_ROLLING.into()],
                    version_rolling_mask: Some(protocol::BIP320_VERSION_MASK),
                    version_rolling_min_bit_count: Some(2),
                    minimum_difficulty: None,
                }),
                Kind::Configure,
            );
        } else {
            self.subscribe();
        }
    }

    fn subscribe(&mut self) {
        self.request(
            MinerRequest::Subscribe(Subscribe {
                user_agent: Some(self.config.user_agent.clone()),
                session: None,
            }),
            Kind::Subscribe,
        );
    }

    /// `received`: when the line was read off the socket (job arrival time, before parsing).
    fn handle_line(&mut self, line: &str, received: Instant, peer: SocketAddr) -> Flow {
        let msg = match protocol::parse_line(line) {
            Ok(m) => m,
            Err(e) => {
                self.stats(|s| s.last_error = Some(format!("bad line from server: {e}")));
                return Flow::Continue;
            }
        };
        match msg {
            Message::Response(r) => {
                let key = r.id.to_string();
                let Some(p) = self.pending.get_mut(&key).and_then(VecDeque::pop_front) else {
                    self.stats(|s| s.last_error = Some(format!("answer to unknown id {key}")));
                    return Flow::Continue;
                };
                if self.pending.get(&key).is_some_and(VecDeque::is_empty) {
                    self.pending.remove(&key);
                }
                match p.kind {
                    Kind::Configure => {
                        let granted = if r.error.is_none() {
                            ConfigureResult::from_value(&r.result).granted_mask()
                        } else {
                            0
                        };
                        self.mask = granted & protocol::BIP320_VERSION_MASK;
                        let m = self.mask;
                        self.stats(|s| s.version_mask = Some(m));
                        self.subscribe();
                    }
                    Kind::Subscribe => {
                        let parsed = if r.error.is_none() {
                            SubscribeResult::from_value(&r.result).ok()
                        } else {
                            None
                        };
                        let Some(sub) = parsed else {
                            self.stats(|s| {
                                s.last_error = Some(format!("subscribe failed: {:?}", r.error))
                            });
                            return Flow::Close;
                        };
                        self.en1 = Some(sub.extranonce1.clone());
                        self.en2_size = sub.extranonce2_size;
                        self.stats(|s| {
                            s.subscribed = true;
                            s.extranonce1 = sub.extranonce1;
                            s.extranonce2_size = sub.extranonce2_size;
                        });
                        if self.config.extranonce_subscribe {
                            self.request(
                                MinerRequest::ExtranonceSubscribe,
                                Kind::ExtranonceSubscribe,
                            );
                        }
                        self.request(
                            MinerRequest::Authorize(protocol::Authorize {
                                user: self.config.worker.clone(),
                                password: Some(self.config.password.clone()),
                            }),
                            Kind::Authorize,
                        );
                    }
                    Kind::ExtranonceSubscribe => {}
                    Kind::Authorize => {
                        let ok = r.is_true();
                        self.authorized = ok;
                        self.stats(|s| s.authorized = Some(ok));
                    }
                    Kind::Submit => {
                        let us = p.sent.elapsed().as_micros().min(u32::MAX as u128) as u32;
                        let ok = r.is_true();
                        let code = r
                            .error
                            .as_ref()
                            .map(|e| e.code)
                            .unwrap_or(protocol::error_code::OTHER);
                        let record = self.config.record_latency;
                        self.stats(|s| {
                            s.in_flight = s.in_flight.saturating_sub(1);
                            if ok {
                                s.accepted += 1;
                                s.accepted_difficulty += p.difficulty;
                            } else {
                                *s.rejected.entry(code).or_default() += 1;
                            }
                            if record {
                                s.latencies_us.push(us);
                            }
                        });
                        if !ok && self.config.mode == MinerMode::Sri {
                            return Flow::Exit(format!(
                                "error reply to a submit: {}",
                                r.error.map(|e| e.to_string()).unwrap_or_default()
                            ));
                        }
                    }
                }
            }
            Message::Request(req) => {
                let parsed = match ServerRequest::parse(&req.method, &req.params) {
                    Ok(p) => p,
                    Err(e) => {
                        self.stats(|s| s.last_error = Some(format!("bad {}: {e}", req.method)));
                        return Flow::Continue;
                    }
                };
                match parsed {
                    None => {
                        if !req.id.is_null() {
                            let _ = self.out.send(protocol::error_line(
                                &req.id,
                                protocol::error_code::OTHER,
                                "unknown method",
                            ));
                        }
                    }
                    Some(ServerRequest::GetVersion) => {
                        let _ = self.out.send(protocol::result_line(
                            &req.id,
                            &Value::from(self.config.user_agent.as_str()),
                        ));
                    }
                    Some(ServerRequest::ShowMessage(_)) => {}
                    Some(ServerRequest::SetDifficulty(d)) => {
                        self.pending_difficulty = Some(d);
                        self.stats(|s| s.set_difficulty_received += 1);
                    }
                    Some(ServerRequest::SetExtranonce(e)) => {
                        self.pending_en1 = Some((e.extranonce1, e.extranonce2_size));
                        self.stats(|s| s.set_extranonce_received += 1);
                    }
                    Some(ServerRequest::SetVersionMask(m)) => {
                        self.mask = m & protocol::BIP320_VERSION_MASK;
                        let mask = self.mask;
                        self.stats(|s| s.version_mask = Some(mask));
                        if let Some(w) = self.work.as_mut() {
                            w.change_mask(mask);
                        }
                    }
                    Some(ServerRequest::Reconnect(r)) => {
                        self.stats(|s| s.reconnects_received += 1);
                        if self.config.follow_reconnect {
                            let host = r.host.filter(|h| !h.is_empty());
                            let ip = match host {
                                None => Some(peer.ip()),
                                Some(h) => h
                                    .parse()
                                    .ok()
                                    .or_else(|| (h == "localhost").then_some(peer.ip())),
                            };
                            if let Some(ip) = ip {
                                let port = r.port.unwrap_or(peer.port());
                                let wait = Duration::from_secs(r.wait_seconds.unwrap_or(0).min(60));
                                self.reconnect_to = Some((SocketAddr::new(ip, port), wait));
                                return Flow::Close;
                            }
                        }
                    }
                    Some(ServerRequest::Notify(n)) => {
                        if self.config.mode == MinerMode::Sri && n.job_id.parse::<u32>().is_err() {
                            return Flow::Exit(format!(
                                "job id {:?} is not a decimal u32",
                                n.job_id
                            ));
                        }
                        if let Some(d) = self.pending_difficulty.take() {
                            self.difficulty = d;
                        }
                        if let Some((e1, n2)) = self.pending_en1.take() {
                            self.en1 = Some(e1.clone());
                            self.en2_size = n2;
                            self.stats(|s| {
                                s.extranonce1 = e1;
                                s.extranonce2_size = n2;
                            });
                        }
                        let template = JobTemplate::new(
                            swap32(n.prevhash),
                            n.coinb1,
                            n.coinb2,
                            n.merkle_branch,
                            n.version,
                            n.nbits,
                            n.ntime,
                        );
                        // cpuminer compares the work, not the id: identical work under a new
                        // id leaves its threads on the old job (old id, old difficulty).
                        if self.config.mode == MinerMode::Cpuminer
                            && let (Some(w), Some(en1)) = (&self.work, &self.en1)
                            && w.template == template
                            && &w.en1 == en1
                            && w.en2_size == self.en2_size
                        {
                            self.stats(|s| {
                                s.jobs_received += 1;
                                s.last_job_at = Some(received);
                                s.identical_jobs_kept += 1;
                            });
                            return Flow::Continue;
                        }
                        let d = self.difficulty;
                        let job_id = n.job_id.clone();
                        self.stats(|s| {
                            s.jobs_received += 1;
                            s.last_job_id = Some(job_id);
                            s.last_job_at = Some(received);
                            s.difficulty = d;
                        });
                        let Ok(target) = Target::from_difficulty(d) else {
                            return Flow::Continue;
                        };
                        let Some(en1) = self.en1.clone() else {
                            return Flow::Continue;
                        };
                        let work = Work {
                            job_id: n.job_id,
                            template,
                            target,
                            difficulty: d,
                            en1,
                            en2_size: self.en2_size,
                            mask: self.mask,
                            en2_base: 0,
                            unit: 0,
                            nonce: 0,
                            en2: Vec::new(),
                            version_bits: 0,
                            ntime: 0,
                            hasher: None,
                            en2_per_unit: self.config.extranonce2_per_share,
                        };
                        // The header is built by the first mining step (`hasher: None`): an idle
                        // miner pays only for parsing, so job broadcasts measure the server.
                        self.work = Some(work);
                    }
                }
            }
        }
        Flow::Continue
    }

    fn can_mine(&self, stalled: bool) -> bool {
        if stalled || !self.authorized || self.work.is_none() {
            return false;
        }
        let max = self.config.max_in_flight;
        max == 0
            || self
                .shared
                .stats
                .lock()
                .map(|s| (s.in_flight as usize) < max)
                .unwrap_or(true)
    }

    /// Hashes `budget` nonces and submits every share found.
    fn mine(&mut self, budget: u64) {
        let Some(work) = self.work.as_mut() else {
            return;
        };
        let mut found: Vec<SubmittedShare> = Vec::new();
        let version_bits = |w: &Work| (w.mask != 0).then_some(w.version_bits);
        if budget > 0 && work.hasher.is_none() {
            work.start_unit(self.config.ntime_ahead);
        }
        for _ in 0..budget {
            let Some(hasher) = work.hasher.as_ref() else {
                break;
            };
            let nonce = work.nonce as u32;
            let h = hasher.hash(nonce);
            let share = work.target.is_met_by(&h);
            if share {
                found.push(SubmittedShare {
                    job_id: work.job_id.clone(),
                    extranonce2: work.en2.clone(),
                    ntime: work.ntime,
                    nonce,
                    version_bits: version_bits(work),
                    difficulty: work.difficulty,
                    sent_at: Instant::now(),
                });
            }
            work.nonce += 1;
            if work.nonce >= NONCES_PER_UNIT || (share && work.en2_per_unit) {
                work.unit += 1;
                work.start_unit(self.config.ntime_ahead);
            }
        }
        let n = found.len() as u64;
        let d: f64 = found.iter().map(|s| s.difficulty).sum();
        let keep_log = self.config.record_shares;
        // Counted before they are sent (their answers are read by this same task, so never
        // before), and under the lock `stall` takes: a share found after a stall is not sent.
        let mut send = true;
        self.stats(|s| {
            s.hashes += budget;
            if s.stalled {
                send = false;
                return;
            }
            s.submitted += n;
            s.in_flight += n;
            s.submitted_difficulty += d;
            if keep_log && s.shares.len() < 100_000 {
                s.shares.extend(found.iter().cloned());
            }
        });
        if !send {
            return;
        }
        for share in found {
            self.request_with(
                MinerRequest::Submit(Submit {
                    worker: self.config.worker.clone(),
                    job_id: share.job_id,
                    extranonce2: share.extranonce2,
                    ntime: share.ntime,
                    nonce: share.nonce,
                    version_bits: share.version_bits,
                }),
                Kind::Submit,
                share.difficulty,
            );
        }
    }
}

async fn run(
    mut addr: SocketAddr,
    config: MinerConfig,
    mut ctrl: mpsc::UnboundedReceiver<Cmd>,
    shared: Arc<Shared>,
) {
    let mut stalled = false;
    let mut hashrate = config.hashrate;
    let mut dead = false;
    loop {
        let stream = TcpStream::connect(addr).await;
        let mut next: Option<(SocketAddr, Duration)> = None;
        match stream {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                if let Ok(mut s) = shared.stats.lock() {
                    s.connections += 1;
                    s.connected = true;
                }
                let peer = stream.peer_addr().unwrap_or(addr);
                let (r, w) = stream.into_split();
                let mut lines =
                    FramedRead::new(r, LinesCodec::new_with_max_length(config.max_line_bytes));
                let mut conn = Conn {
                    config: &config,
                    shared: &shared,
                    out: super::spawn_line_writer(w),
                    next_id: 0,
                    pending: HashMap::new(),
                    mask: 0,
                    en1: None,
                    en2_size: 0,
                    pending_en1: None,
                    difficulty: 1.0,
                    pending_difficulty: None,
                    authorized: false,
                    work: None,
                    reconnect_to: None,
                };
                conn.start();
                let mut last_tick = Instant::now();
                let mut carry = 0.0f64;
                loop {
                    // A zero rate is an idle miner: no timer at all (benchmarks hold 10,000).
                    let idle = hashrate.is_some_and(|h| h.is_nan() || h <= 0.0);
                    let mining = !idle && conn.can_mine(stalled);
                    let wait = async {
                        match hashrate {
                            Some(_) => tokio::time::sleep(config.tick).await,
                            None => tokio::task::yield_now().await,
                        }
                    };
                    tokio::select! {
                        biased;
                        cmd = ctrl.recv() => match cmd {
                            Some(Cmd::Stall) => stalled = true,
                            Some(Cmd::Resume) => stalled = false,
                            Some(Cmd::SetHashrate(h)) => hashrate = h,
                            Some(Cmd::Die) | None => { dead = true; break; }
                        },
                        line = lines.next() => match line {
                            Some(Ok(l)) => match conn.handle_line(&l, Instant::now(), peer) {
                                Flow::Continue => {}
                                Flow::Close => {
                                    next = conn.reconnect_to.take();
                                    break;
                                }
                                Flow::Exit(why) => {
                                    debug!(worker = %config.worker, reason = %why, "miner quits");
                                    if let Ok(mut s) = shared.stats.lock() {
                                        s.exited = Some(why);
                                    }
                                    dead = true;
                                    break;
                                }
                            },
                            Some(Err(e)) => {
                                if let Ok(mut s) = shared.stats.lock() {
                                    s.last_error = Some(format!("read: {e}"));
                                }
                                break;
                            }
                            None => break,
                        },
                        _ = wait, if mining => {
                            let now = Instant::now();
                            let budget = match hashrate {
                                Some(h) => {
                                    let dt = now.duration_since(last_tick).as_secs_f64().min(1.0);
                                    // Faster than this machine can hash: do what fits in one
                                    // step and drop the rest (at most 1 s of backlog).
                                    let h = if h.is_finite() { h.max(0.0) } else { 0.0 };
                                    carry = (carry + h * dt).min(h.max(1.0));
                                    let b = carry.floor().min(MAX_STEP_HASHES as f64);
                                    carry -= b;
                                    b as u64
                                }
                                None => FULL_SPEED_STEP,
                            };
                            last_tick = now;
                            conn.mine(budget);
                        }
                    }
                    if !mining {
                        last_tick = Instant::now();
                    }
                }
                // Whatever was unanswered on this connection is lost.
                let unanswered: u64 = conn
                    .pending
                    .values()
                    .flatten()
                    .filter(|p| p.kind == Kind::Submit)
                    .count() as u64;
                if let Ok(mut s) = shared.stats.lock() {
                    s.lost += unanswered;
                    s.in_flight = s.in_flight.saturating_sub(unanswered);
                    s.connected = false;
                    s.subscribed = false;
                    s.authorized = None;
                }
                debug!(worker = %config.worker, "connection closed");
            }
            Err(e) => {
                if let Ok(mut s) = shared.stats.lock() {
                    s.last_error = Some(format!("connect {addr}: {e}"));
                }
            }
        }
        if dead {
            return;
        }
        let delay = match next {
            Some((to, wait)) => {
                addr = to;
                wait
            }
            None => match config.reconnect_delay {
                Some(d) => d,
                None => return,
            },
        };
        // Commands still count while we are down.
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => break,
                cmd = ctrl.recv() => match cmd {
                    Some(Cmd::Stall) => stalled = true,
                    Some(Cmd::Resume) => stalled = false,
                    Some(Cmd::SetHashrate(h)) => hashrate = h,
                    Some(Cmd::Die) | None => return,
                },
            }
        }
    }
}
