//! Shared helpers for the end-to-end tests (spawning hubs, simulated miners and pools on 127.0.0.1).
//!
//! Everything here is test plumbing: a raw TCP client for feeding bad input, polling helpers with
//! generous deadlines (the tests run on a loaded 2-core machine, so they poll for conditions and
//! never assert on timing), and config shortcuts for the simulators in `hashsched_hub::sim`.

use hashsched_hub::share::HASHES_PER_DIFFICULTY;
use hashsched_hub::sim::miner::MinerConfig;
use hashsched_hub::sim::pool::PoolConfig;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

pub use hashsched_hub::sim::{wait_until, wait_until_async};

pub mod properties;
pub mod properties_operator;

/// Generous deadline for "eventually" conditions.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Installs a test log subscriber once (`RUST_LOG` controls it; quiet by default).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

/// A pool for tests: tiny difficulty, no timed jobs (tests push jobs themselves).
pub fn test_pool(difficulty: f64) -> PoolConfig {
    PoolConfig {
        difficulty,
        job_interval: None,
        ..PoolConfig::default()
    }
}

/// A miner that finds about `shares_per_sec` shares per second at `difficulty`.
pub fn test_miner(worker: &str, difficulty: f64, shares_per_sec: f64) -> MinerConfig {
    MinerConfig {
        hashrate: Some(shares_per_sec * difficulty * HASHES_PER_DIFFICULTY),
        tick: Duration::from_millis(50),
        ..MinerConfig::new(worker)
    }
}

/// A raw line-oriented TCP client for feeding arbitrary bytes to a server.
pub struct RawClient {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl RawClient {
    pub async fn connect(addr: SocketAddr) -> std::io::Result<RawClient> {
        let s = TcpStream::connect(addr).await?;
        let (r, w) = s.into_split();
        Ok(RawClient {
            reader: BufReader::new(r),
            writer: w,
        })
    }

    /// Sends raw bytes; an error means the server already closed the connection.
    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.writer.write_all(bytes).await?;
        self.writer.flush().await
    }

    /// Sends one line (a `\n` is appended).
    pub async fn send_line(&mut self, line: &str) -> std::io::Result<()> {
        let mut b = line.as_bytes().to_vec();
        b.push(b'\n');
        self.send(&b).await
    }

    /// Reads the next line; `None` on EOF, error or timeout.
    pub async fn read_line(&mut self, timeout: Duration) -> Option<String> {
        let mut s = String::new();
        match tokio::time::timeout(timeout, self.reader.read_line(&mut s)).await {
            Ok(Ok(n)) if n > 0 => Some(s),
            _ => None,
        }
    }

    /// Reads lines until one parses as JSON with the given `id`; `None` if the connection
    /// ends or `timeout` passes first.
    pub async fn read_answer(
        &mut self,
        id: &serde_json::Value,
        timeout: Duration,
    ) -> Option<serde_json::Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let line = self.read_line(left).await?;
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                && v.get("id") == Some(id)
                && v.get("method").is_none_or(|m| m.is_null())
            {
                return Some(v);
            }
        }
    }

    /// The next line, or whether the connection ended or `timeout` passed first: a test that
    /// must tell a close from a server that merely stays quiet.
    pub async fn next_event(&mut self, timeout: Duration) -> RawRead {
        let mut s = String::new();
        match tokio::time::timeout(timeout, self.reader.read_line(&mut s)).await {
            Ok(Ok(0)) | Ok(Err(_)) => RawRead::Closed,
            Ok(Ok(_)) => RawRead::Line(s),
            Err(_) => RawRead::TimedOut,
        }
    }

    /// True when the server closed the connection within `timeout` (reads until EOF).
    pub async fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            let mut s = String::new();
            match tokio::time::timeout(left, self.reader.read_line(&mut s)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }
}

/// What [`RawClient::next_event`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawRead {
    /// A line (with its newline, if it had one before EOF).
    Line(String),
    /// EOF or a connection error (reset): the server closed the connection.
    Closed,
    /// Nothing within the timeout; the connection is still open.
    TimedOut,
}

/// What a [`ScriptedPool`] sends back for one request (`id`, `method`): raw bytes, sent as is.
pub type Script = std::sync::Arc<dyn Fn(&serde_json::Value, &str) -> Vec<Vec<u8>> + Send + Sync>;

/// A misbehaving "pool" for robustness tests: it answers each request line with whatever its
/// script says (junk, wrong shapes, oversized lines), and counts connections.
pub struct ScriptedPool {
    pub addr: SocketAddr,
    pub connections: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ScriptedPool {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ScriptedPool {
    pub async fn start(script: Script) -> std::io::Result<ScriptedPool> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let connections = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let count = connections.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let script = script.clone();
                tokio::spawn(async move {
                    let (r, mut w) = stream.into_split();
                    let mut lines = BufReader::new(r).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                            continue;
                        };
                        let id = v.get("id").cloned().unwrap_or(serde_json::Value::Null);
                        let method = v.get("method").and_then(|m| m.as_str()).unwrap_or("");
                        for out in script(&id, method) {
                            if w.write_all(&out).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        Ok(ScriptedPool {
            addr,
            connections,
            task,
        })
    }

    pub fn url(&self) -> String {
        format!("stratum+tcp://{}", self.addr)
    }
}

// ---------------------------------------------------------------------------------------------
// The hub under test
// ---------------------------------------------------------------------------------------------

use hashsched_hub::config::{HubConfig, QuickStart};
use hashsched_hub::facts::WorkerFacts;
use hashsched_hub::server::{Hub, HubHandle};
use hashsched_hub::sim::pool::{SimPool, WorkerCounts};

/// Pool account the test hubs authorize upstream with.
pub const POOL_USER: &str = "acct";

/// A hub config for tests: listens on free ports of 127.0.0.1, one failover list over `pools`,
/// the miner-facing difficulty pinned to `difficulty` (vardiff cannot move it), quick failover.
pub fn hub_config(pools: &[String], difficulty: f64) -> HubConfig {
    let mut cfg = HubConfig::quick_start(QuickStart {
        listen: "127.0.0.1:0".into(),
        metrics: Some("127.0.0.1:0".into()),
        pools: pools.to_vec(),
        user: POOL_USER.into(),
        password: "x".into(),
        tls_ca_file: None,
    })
    .expect("quick-start config");
    cfg.vardiff.initial_difficulty = difficulty;
    cfg.vardiff.min_difficulty = difficulty;
    cfg.vardiff.max_difficulty = difficulty;
    cfg
}

/// Starts a hub with `cfg`.
pub async fn start_hub(cfg: HubConfig) -> HubHandle {
    Hub::start(cfg).await.expect("hub starts")
}

/// The hub's facts for one worker (the name the miner authorized as).
pub fn facts_of(hub: &HubHandle, worker: &str) -> Option<WorkerFacts> {
    hub.facts().into_iter().find(|f| f.worker == worker)
}

/// What the pool credited to the upstream name(s) of a miner's worker (the hub renders
/// `{user}.{worker}`; match on the suffix so the test does not depend on the template).
pub fn pool_counts_for(pool: &SimPool, worker: &str) -> WorkerCounts {
    let mut out = WorkerCounts::default();
    for (name, c) in pool.stats().workers {
        if name == worker || name.ends_with(&format!(".{worker}")) {
            out.accepted += c.accepted;
            out.accepted_difficulty += c.accepted_difficulty;
            for (code, n) in c.rejected {
                *out.rejected.entry(code).or_default() += n;
            }
        }
    }
    out
}

/// Stratum codes a pool answers a share with when a proxy sent it somewhere it does not belong:
/// 21 job not found (a job this pool, or this session, never issued), 22 duplicate (the same
/// share forwarded twice), 23 low difficulty (a share hashed against another pool's job or
/// extranonce, or below the pool's target).
pub const MISROUTED_SHARE_CODES: [i64; 3] = [21, 22, 23];

/// Checks what a simulated pool recorded, under every worker name it saw: it refused no share
/// with a code of [`MISROUTED_SHARE_CODES`] (no share forwarded twice, to a pool or session that
/// did not issue its job, or below its target), and it read no line from the hub it could not
/// parse. Refusals with other codes (a pool told to reject everything answers 20) are the
/// caller's to check.
pub fn assert_no_misrouted_shares(pool: &SimPool) {
    let stats = pool.stats();
    let name = &pool.config().name;
    for (worker, c) in &stats.workers {
        for code in MISROUTED_SHARE_CODES {
            assert_eq!(
                c.rejected.get(&code).copied().unwrap_or(0),
                0,
                "pool {name} ({}) refused shares of {worker} with code {code}: {c:?}",
                pool.addr()
            );
        }
    }
    assert_eq!(
        stats.malformed_lines,
        0,
        "pool {name} ({}) could not read lines the hub sent",
        pool.addr()
    );
}

/// `GET http://addr/path` over a plain TCP socket; returns (status, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    use tokio::io::AsyncReadExt;
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut buf))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "http timeout"))??;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// The value of the first sample of `metric` whose labels include every `labels` pair.
pub fn metric_value(text: &str, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name_labels, value) = l.rsplit_once(' ')?;
            let (name, label_text) = match name_labels.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (name_labels, ""),
            };
            if name != metric {
                return None;
            }
            let all = labels
                .iter()
                .all(|(k, v)| label_text.contains(&format!("{k}=\"{v}\"")));
            if all { value.parse().ok() } else { None }
        })
        .next()
}

/// Sum of every sample of `metric` (any labels).
pub fn metric_sum(text: &str, metric: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name_labels, value) = l.rsplit_once(' ')?;
            let name = name_labels.split('{').next()?;
            (name == metric)
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}

/// Sum of the samples of `metric` whose labels include every `labels` pair.
pub fn metric_sum_where(text: &str, metric: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name_labels, value) = l.rsplit_once(' ')?;
            let (name, label_text) = match name_labels.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (name_labels, ""),
            };
            let all = labels
                .iter()
                .all(|(k, v)| label_text.contains(&format!("{k}=\"{v}\"")));
            (name == metric && all)
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}

static PANICS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static PANIC_HOOK: std::sync::Once = std::sync::Once::new();

/// Starts counting panics on any thread of this test binary (hub tasks included: a panicking
/// tokio task would otherwise go unnoticed). Chains the default hook, so messages still print.
pub fn count_panics() {
    PANIC_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            previous(info);
        }));
    });
}

/// Panics seen since [`count_panics`] was first called in this binary.
pub fn panics_seen() -> u64 {
    PANICS.load(std::sync::atomic::Ordering::SeqCst)
}
