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
