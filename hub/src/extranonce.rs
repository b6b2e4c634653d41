//! Extranonce layout: hub-unique miner tails and the folding that keeps a miner's extranonce1
//! stable across pools.
//!
//! A pool session gives the hub `(E1, n2)`. Each miner connection gets a `k`-byte tail `t` that is
//! unique across the WHOLE hub (not just one session), and an extranonce2 size `m`:
//!
//! ```text
//! miner sees:  extranonce1 = t            coinb1' = coinb1 ‖ E1 ‖ 0^p      en2 size = m
//! pool gets:   extranonce2 = 0^p ‖ t ‖ en2_miner                           p = n2 − k − m
//! coinbase:    coinb1 ‖ E1 ‖ 0^p ‖ t ‖ en2_miner ‖ coinb2   (identical on both sides)
//! ```
//!
//! Because `t` is hub-unique and the pool's `E1` lives in the (per job) coinb1, a miner moves to
//! another session or pool with only a new `mining.notify`: no `set_extranonce`, no reconnect,
//! provided the new pool's `n2 >= k + m`. Fallbacks when it is smaller (see [`fit_miner_en2`]
//! and docs/protocol.md): at subscribe the hub picks `m` to fit the smallest `n2` of the pools
//! it already knows; a miner that subscribed to extranonce changes gets
//! `mining.set_extranonce(t, n2 − k)`; any other miner is asked to reconnect (`client.reconnect`)
//! and gets a fitting `m` on its new subscribe. A pool with `n2 < k + 1` cannot carry any tail and is
//! treated as failed (logged with the sizes).
//!
//! Tails released by a disconnecting miner are quarantined before reuse, so late shares of the
//! previous owner can never be credited to a new miner.

use crate::protocol::Extranonce2;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Hands out hub-unique tails.
#[derive(Debug)]
pub struct TailAllocator {
    k: usize,
    capacity: u64,
    next: u64,
    free: VecDeque<u32>,
    quarantine: VecDeque<(u32, Instant)>,
    hold: Duration,
    in_use: u64,
}

impl TailAllocator {
    /// `k` in 1..=4 bytes.
    pub fn new(k: usize, hold: Duration) -> Self {
        let k = k.clamp(1, 4);
        Self {
            k,
            capacity: 1u64 << (8 * k as u32),
            next: 0,
            free: VecDeque::new(),
            quarantine: VecDeque::new(),
            hold,
            in_use: 0,
        }
    }

    pub fn tail_bytes(&self) -> usize {
        self.k
    }

    pub fn in_use(&self) -> u64 {
        self.in_use
    }

    /// A fresh tail, or `None` when every tail is in use or quarantined.
    pub fn alloc(&mut self, now: Instant) -> Option<Tail> {
        while let Some((t, at)) = self.quarantine.front().copied() {
            if now.saturating_duration_since(at) >= self.hold {
                self.quarantine.pop_front();
                self.free.push_back(t);
            } else {
                break;
            }
        }
        let v = if self.next < self.capacity {
            let v = self.next as u32;
            self.next += 1;
            v
        } else {
            self.free.pop_front()?
        };
        self.in_use += 1;
        Some(Tail::new(v, self.k))
    }

    /// Give a tail back; it becomes reusable after the quarantine.
    pub fn release(&mut self, tail: &Tail, now: Instant) {
        self.in_use = self.in_use.saturating_sub(1);
        self.quarantine.push_back((tail.value, now));
    }
}

/// A miner's tail: `k` big-endian bytes of `value`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tail {
    value: u32,
    bytes: [u8; 4],
    k: u8,
}

impl Tail {
    pub fn new(value: u32, k: usize) -> Self {
        let k = k.clamp(1, 4);
        let be = value.to_be_bytes();
        let mut bytes = [0u8; 4];
        bytes[..k].copy_from_slice(&be[4 - k..]);
        Self {
            value,
            bytes,
            k: k as u8,
        }
    }
    pub fn bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.k)]
    }
    pub fn value(&self) -> u32 {
        self.value
    }
}

/// The miner extranonce2 size to offer at subscribe: the preferred `m`, shrunk so that
/// `k + m <= n2` for the smallest pool `n2` known (`None` if no pool is known yet), but never
/// below `m_min`.
/// The pool extranonce2 size a new miner's size is fitted to when no pool of the routing has
/// answered yet: 4 bytes is the smallest size common pools give, and a miner fitted to it fits
/// any larger pool too (the difference becomes padding).
pub const ASSUMED_POOL_EXTRANONCE2_SIZE: usize = 4;

pub fn fit_miner_en2(k: usize, m_pref: usize, m_min: usize, min_pool_n2: Option<usize>) -> usize {
    match min_pool_n2 {
        Some(n2) if n2 >= k + m_min => m_pref.min(n2 - k),
        _ => m_pref,
    }
}

/// How a miner with en2 size `m` can sit on a session with `n2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// Fits with `padding` zero bytes.
    Fits { padding: usize },
    /// Fits only after `mining.set_extranonce(tail, m)` with this smaller `m`.
    Shrink { m: usize },
    /// Does not fit at all (the pool cannot carry a tail).
    Impossible,
}

pub fn fit(n2: usize, k: usize, m: usize) -> Fit {
    match n2.checked_sub(k + m) {
        Some(padding) => Fit::Fits { padding },
        None if n2 > k => Fit::Shrink { m: n2 - k },
        None => Fit::Impossible,
    }
}

/// The `p` padding bytes of one job variant: zeros, with the low bytes of `salt` at the end.
///
/// A miner restarts its extranonce2 on every job it is sent, so the same pool job sent again
/// (a vardiff change, a keepalive, moving back to a session) must be different work: a fresh
/// salt gives a different coinbase. With `p = 0` there is nothing to vary and the hub's
/// duplicate check (per pool job, across ids) catches re-mined shares instead.
pub fn salted_padding(p: usize, salt: u64) -> Vec<u8> {
    let mut v = vec![0u8; p];
    let be = salt.to_be_bytes();
    let n = p.min(8);
    if let (Some(dst), Some(src)) = (v.get_mut(p - n..), be.get(8 - n..)) {
        dst.copy_from_slice(src);
    }
    v
}

/// `coinb1 ‖ E1 ‖ pad`: the coinb1 sent to miners.
pub fn folded_coinb1(coinb1: &[u8], pool_e1: &[u8], pad: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(coinb1.len() + pool_e1.len() + pad.len());
    v.extend_from_slice(coinb1);
    v.extend_from_slice(pool_e1);
    v.extend_from_slice(pad);
    v
}

/// `pad ‖ tail ‖ en2`: the extranonce2 sent to the pool (`None` past 32 bytes, which a job
/// the hub built never reaches: the pool's size is at most that).
pub fn pool_extranonce2(pad: &[u8], tail: &[u8], miner_en2: &[u8]) -> Option<Extranonce2> {
    Extranonce2::concat(&[pad, tail, miner_en2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_are_unique_and_quarantined() {
        let t0 = Instant::now();
        let mut a = TailAllocator::new(1, Duration::from_secs(60));
        let mut all: Vec<Tail> = (0..256).map(|_| a.alloc(t0).unwrap()).collect();
        let set: std::collections::HashSet<_> = all.iter().map(|t| t.bytes().to_vec()).collect();
        assert_eq!(set.len(), 256);
        assert!(a.alloc(t0).is_none(), "space exhausted");
        let gone = all.remove(7);
        a.release(&gone, t0);
        assert!(
            a.alloc(t0 + Duration::from_secs(59)).is_none(),
            "still quarantined"
        );
        let again = a.alloc(t0 + Duration::from_secs(60)).unwrap();
        assert_eq!(again, gone);
    }

    #[test]
    fn tail_bytes_are_big_endian_k_bytes() {
        assert_eq!(Tail::new(0x0102, 2).bytes(), &[1, 2]);
        assert_eq!(Tail::new(0x0102, 4).bytes(), &[0, 0, 1, 2]);
    }

    #[test]
    fn folding_reproduces_the_pool_coinbase() {
        let (coinb1, e1, coinb2) = (vec![1u8, 2, 3], vec![0xaa, 0xbb, 0xcc, 0xdd], vec![9u8, 9]);
        let tail = Tail::new(0x0507, 2);
        let en2 = [0x11u8, 0x22];
        for n2 in 4..=8 {
            let Fit::Fits { padding } = fit(n2, 2, 2) else {
                panic!("n2 {n2} must fit k=2,m=2")
            };
            let pad = salted_padding(padding, 0x0102_0304);
            let miner: Vec<u8> = [
                &folded_coinb1(&coinb1, &e1, &pad)[..],
                tail.bytes(),
                &en2,
                &coinb2,
            ]
            .concat();
            let pool_en2 = pool_extranonce2(&pad, tail.bytes(), &en2).expect("fits 32 bytes");
            assert_eq!(pool_en2.len(), n2);
            let pool: Vec<u8> = [&coinb1[..], &e1, &pool_en2, &coinb2].concat();
            assert_eq!(miner, pool);
        }
    }

    #[test]
    fn salted_padding_varies_within_p_bytes() {
        assert_eq!(salted_padding(0, 7), Vec::<u8>::new());
        assert_eq!(salted_padding(2, 0x0102_0304), vec![3, 4]);
        assert_eq!(salted_padding(10, 1), vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_ne!(salted_padding(2, 1), salted_padding(2, 2));
    }

    #[test]
    fn fit_and_fallbacks() {
        assert_eq!(fit(8, 2, 4), Fit::Fits { padding: 2 });
        assert_eq!(fit(4, 2, 4), Fit::Shrink { m: 2 });
        assert_eq!(fit(2, 2, 4), Fit::Impossible);
        assert_eq!(fit_miner_en2(2, 4, 2, Some(4)), 2);
        assert_eq!(fit_miner_en2(2, 4, 2, Some(8)), 4);
        assert_eq!(
            fit_miner_en2(2, 4, 2, Some(3)),
            4,
            "too small a pool does not shrink below m_min"
        );
        assert_eq!(fit_miner_en2(2, 4, 2, None), 4);
    }
}
