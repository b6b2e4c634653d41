//! Simulated Stratum V1 miners and pools that do real sha256d work, for the end-to-end tests,
//! the `hub-bench` benchmark and the demo.
//!
//! They are honest doubles of the real thing: the [`pool::SimPool`] validates every share
//! exactly as a pool does (job, extranonce2 size, duplicate, ntime, version mask, target) and
//! the [`miner::SimMiner`] really hashes headers at a throttled rate, so shares arrive as a
//! Poisson process. Both run in-process on a tokio runtime over real TCP on 127.0.0.1 and expose
//! simple handles to control them (stall, die, refuse, go silent, …) and to read what happened.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use hashsched_hub::sim::{miner::{MinerConfig, SimMiner}, pool::{PoolConfig, SimPool}};
//! use hashsched_hub::share::HASHES_PER_DIFFICULTY;
//! // A pool at difficulty 1e-6 and a miner finding about 2 shares/s there.
//! let pool = SimPool::start(PoolConfig { difficulty: 1e-6, ..PoolConfig::default() }).await?;
//! let miner = SimMiner::spawn(pool.addr(), MinerConfig {
//!     hashrate: Some(2.0 * 1e-6 * HASHES_PER_DIFFICULTY),
//!     ..MinerConfig::new("alice.rig1")
//! });
//! miner.wait_for(std::time::Duration::from_secs(30), |s| s.accepted >= 10).await.ok();
//! assert_eq!(pool.worker("alice.rig1").accepted, miner.stats().accepted);
//! # Ok(()) }
//! ```
//!
//! Every hash is real sha256d, so a simulated fleet costs CPU in proportion to its total hash
//! rate (a few MH/s per core with SHA extensions): give simulated miners small rates and the
//! hub/pool tiny difficulties (fractional difficulties are fine, e.g. 1e-6).

pub mod miner;
pub mod pool;

use std::future::Future;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// Bound on bytes gathered into one socket write by [`spawn_line_writer`].
const WRITE_BATCH_BYTES: usize = 64 * 1024;

/// Spawns a task that writes the lines it receives, batching whatever is queued into one write
/// (so a burst of answers costs one syscall). The task ends when the sender is dropped or the
/// socket fails; dropping the sender closes the write side.
pub(crate) fn spawn_line_writer<W>(mut w: W) -> mpsc::UnboundedSender<String>
where
    W: tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        let mut buf: Vec<u8> = Vec::with_capacity(4096);
        while let Some(line) = rx.recv().await {
            buf.clear();
            buf.extend_from_slice(line.as_bytes());
            while buf.len() < WRITE_BATCH_BYTES {
                match rx.try_recv() {
                    Ok(more) => buf.extend_from_slice(more.as_bytes()),
                    Err(_) => break,
                }
            }
            if w.write_all(&buf).await.is_err() {
                break;
            }
        }
        let _ = w.shutdown().await;
    });
    tx
}

/// Polls `cond` every 20 ms until it returns `Some`, or gives up after `timeout`.
/// Tests use this with generous deadlines instead of sleeping and asserting.
pub async fn wait_until<T>(timeout: Duration, mut cond: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = cond() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Like [`wait_until`] for an async condition.
pub async fn wait_until_async<T, F, Fut>(timeout: Duration, mut cond: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = cond().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Deposits the low bits of `counter` into the set bits of `mask` (a software `pdep`): the
/// `counter`-th combination of version bits a miner may roll under `mask`.
pub fn spread_bits(mut counter: u32, mask: u32) -> u32 {
    let mut out = 0u32;
    let mut m = mask;
    while m != 0 && counter != 0 {
        let bit = m & m.wrapping_neg();
        if counter & 1 == 1 {
            out |= bit;
        }
        counter >>= 1;
        m &= m - 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_bits_stays_inside_the_mask() {
        assert_eq!(spread_bits(0, 0x1fffe000), 0);
        assert_eq!(spread_bits(1, 0x1fffe000), 0x2000);
        assert_eq!(spread_bits(3, 0x1fffe000), 0x6000);
        assert_eq!(spread_bits(0xffff, 0x1fffe000), 0x1fffe000);
        assert_eq!(spread_bits(0x1_0000, 0x1fffe000), 0);
        assert_eq!(spread_bits(5, 0), 0);
        for c in 0..1000 {
            assert_eq!(spread_bits(c, 0x00f0_0f00) & !0x00f0_0f00, 0);
        }
    }
}
