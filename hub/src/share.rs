//! Share math for SHA256d Stratum V1: hashing, merkle roots, 80-byte headers, 256-bit targets and
//! difficulties, hashrate from difficulty sums.
//!
//! Pure functions, no I/O, no panics on input: everything from miners and pools arrives as hex
//! strings and is parsed into typed values here (errors are [`ShareError`]). The byte-order rules
//! are those of docs/protocol.md ("Building a share"), pinned by unit tests that rebuild
//! real mainnet headers (blocks 1 and 125552).
//!
//! The hub validates every share, so the hot path is a [`JobTemplate`] parsed once per job: the
//! SHA-256 state after the job's coinbase prefix (`coinb1`) is precomputed (a midstate), and each
//! share then costs only the remaining coinbase blocks, the merkle branch and the header; a share
//! on the same extranonce2 as the miner's last one costs only the header's last block
//! ([`WorkMemo`]).

use sha2::digest::generic_array::GenericArray;
use sha2::{Digest, Sha256};
use std::cmp::Ordering;
use std::fmt;

/// Errors for malformed share or job fields. Every variant names the field so a log line or a
/// stratum error answer can say exactly what was wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ShareError {
    #[error("{field}: not valid hex")]
    BadHex { field: &'static str },
    #[error("{field}: expected {expected} bytes, got {got}")]
    BadLength {
        field: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("difficulty must be a positive finite number, got {0}")]
    BadDifficulty(f64),
    #[error("nbits {0:08x} does not encode a positive 256-bit target")]
    BadNbits(u32),
}

/// Field names used in errors (one place, so answers and logs stay consistent).
pub mod field {
    pub const PREVHASH: &str = "prevhash";
    pub const COINB1: &str = "coinb1";
    pub const COINB2: &str = "coinb2";
    pub const MERKLE_BRANCH: &str = "merkle_branch";
    pub const VERSION: &str = "version";
    pub const NBITS: &str = "nbits";
    pub const NTIME: &str = "ntime";
    pub const NONCE: &str = "nonce";
    pub const EXTRANONCE1: &str = "extranonce1";
    pub const EXTRANONCE2: &str = "extranonce2";
    pub const VERSION_BITS: &str = "version_bits";
    pub const VERSION_MASK: &str = "version_mask";
}

// ---------------------------------------------------------------------------------------------
// Hashing
// ---------------------------------------------------------------------------------------------

/// SHA-256 applied twice, as Bitcoin does everywhere.
pub fn sha256d(data: &[u8]) -> [u8; 32] {
    let first = Sha256::digest(data);
    Sha256::digest(first).into()
}

/// SHA-256 initial state (FIPS 180-4).
const SHA256_IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

fn compress(state: &mut [u32; 8], block: &[u8; 64]) {
    sha2::compress256(state, std::slice::from_ref(GenericArray::from_slice(block)));
}

fn state_bytes(state: &[u32; 8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (chunk, word) in out.chunks_exact_mut(4).zip(state) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
}

/// A SHA-256 computation resumed from a saved state (a "midstate"): `done` bytes already
/// compressed into `state`. Finishing appends the remaining data and the padding.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Midstate {
    state: [u32; 8],
    done: u64,
}

impl Midstate {
    const fn start() -> Self {
        Midstate {
            state: SHA256_IV,
            done: 0,
        }
    }

    /// Compresses the whole 64-byte blocks of `data`, returns the unprocessed tail.
    fn absorb<'a>(&mut self, data: &'a [u8]) -> &'a [u8] {
        let mut blocks = data.chunks_exact(64);
        for block in blocks.by_ref() {
            let mut b = [0u8; 64];
            b.copy_from_slice(block);
            compress(&mut self.state, &b);
            self.done += 64;
        }
        blocks.remainder()
    }

    /// Finishes the hash over `parts` (concatenated) without allocating.
    fn finish(mut self, parts: &[&[u8]]) -> [u8; 32] {
        let mut buf = [0u8; 64];
        let mut fill = 0usize;
        let mut total = self.done;
        for part in parts {
            let mut p: &[u8] = part;
            total += p.len() as u64;
            while !p.is_empty() {
                let n = (64 - fill).min(p.len());
                buf[fill..fill + n].copy_from_slice(&p[..n]);
                fill += n;
                p = &p[n..];
                if fill == 64 {
                    compress(&mut self.state, &buf);
                    fill = 0;
                }
            }
        }
        buf[fill] = 0x80;
        buf[fill + 1..].fill(0);
        if fill >= 56 {
            compress(&mut self.state, &buf);
            buf = [0u8; 64];
        }
        buf[56..].copy_from_slice(&(total.wrapping_mul(8)).to_be_bytes());
        compress(&mut self.state, &buf);
        state_bytes(&self.state)
    }
}

/// SHA-256 of a 32-byte value (the second round of sha256d): exactly one block.
fn sha256_32(data: &[u8; 32]) -> [u8; 32] {
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(data);
    block[32] = 0x80;
    block[62] = 0x01; // 256 bits, big-endian length in the last 8 bytes
    let mut state = SHA256_IV;
    compress(&mut state, &block);
    state_bytes(&state)
}

/// sha256d of the 64-byte concatenation `a ‖ b` (one merkle step).
fn sha256d_pair(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(a);
    block[32..].copy_from_slice(b);
    let mut state = SHA256_IV;
    compress(&mut state, &block);
    let mut pad = [0u8; 64];
    pad[0] = 0x80;
    pad[62] = 0x02; // 512 bits
    compress(&mut state, &pad);
    sha256_32(&state_bytes(&state))
}

/// sha256d of an 80-byte block header.
pub fn header_hash(header: &[u8; 80]) -> [u8; 32] {
    HeaderHasher::new(header).hash(u32::from_le_bytes([
        header[76], header[77], header[78], header[79],
    ]))
}

/// Hashes one header over many nonces: the first 64 bytes are compressed once (the header
/// midstate), each nonce then costs one block plus the second SHA-256. This is what a miner's
/// inner loop does; the simulated miners use it.
#[derive(Clone, Copy)]
pub struct HeaderHasher {
    midstate: [u32; 8],
    tail: [u8; 64],
}

impl HeaderHasher {
    /// Prepares hashing for `header` (its nonce bytes are ignored).
    pub fn new(header: &[u8; 80]) -> Self {
        Self::resume(header_midstate(header), header)
    }

    /// As [`HeaderHasher::new`], with `midstate` the state after `header`'s first 64 bytes,
    /// computed earlier for the same bytes.
    fn resume(midstate: [u32; 8], header: &[u8; 80]) -> Self {
        let mut tail = [0u8; 64];
        tail[..12].copy_from_slice(&header[64..76]);
        tail[16] = 0x80;
        tail[62] = 0x02;
        tail[63] = 0x80; // 640 bits
        HeaderHasher { midstate, tail }
    }

    /// sha256d of the header with `nonce` (the numeric nonce, written little-endian).
    pub fn hash(&self, nonce: u32) -> [u8; 32] {
        let mut state = self.midstate;
        let mut tail = self.tail;
        tail[12..16].copy_from_slice(&nonce.to_le_bytes());
        compress(&mut state, &tail);
        sha256_32(&state_bytes(&state))
    }
}

/// The SHA-256 state after a header's first 64 bytes (version, prevhash, 28 bytes of the root).
fn header_midstate(header: &[u8; 80]) -> [u32; 8] {
    let mut state = SHA256_IV;
    let mut first = [0u8; 64];
    first.copy_from_slice(&header[..64]);
    compress(&mut state, &first);
    state
}

/// Merkle root from the coinbase transaction and the branch sent in `mining.notify`
/// (docs/protocol.md, "Building a share", step 2): the result goes into the header as is.
pub fn merkle_root(coinbase: &[u8], branch: &[[u8; 32]]) -> [u8; 32] {
    fold_branch(sha256d(coinbase), branch)
}

fn fold_branch(mut root: [u8; 32], branch: &[[u8; 32]]) -> [u8; 32] {
    for b in branch {
        root = sha256d_pair(&root, b);
    }
    root
}

// ---------------------------------------------------------------------------------------------
// Hex fields
// ---------------------------------------------------------------------------------------------

/// Decodes a hex field of any length.
pub fn decode_hex(field: &'static str, s: &str) -> Result<Vec<u8>, ShareError> {
    hex::decode(s).map_err(|_| ShareError::BadHex { field })
}

/// Decodes a hex field that must be exactly `N` bytes.
pub fn decode_hex_array<const N: usize>(
    field: &'static str,
    s: &str,
) -> Result<[u8; N], ShareError> {
    if s.len() != 2 * N {
        return Err(ShareError::BadLength {
            field,
            expected: N,
            got: s.len() / 2,
        });
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).map_err(|_| ShareError::BadHex { field })?;
    Ok(out)
}

/// Parses an 8-hex-digit stratum number (version, nbits, ntime, nonce, version bits/mask):
/// the string is a big-endian u32.
pub fn parse_u32_hex(field: &'static str, s: &str) -> Result<u32, ShareError> {
    Ok(u32::from_be_bytes(decode_hex_array::<4>(field, s)?))
}

/// Formats a u32 the way stratum sends it (8 lowercase hex digits, big-endian).
pub fn format_u32_hex(x: u32) -> String {
    format!("{x:08x}")
}

/// Converts the `mining.notify` prevhash into header byte order (reverse the bytes inside each
/// 4-byte word).
pub fn prevhash_from_notify(s: &str) -> Result<[u8; 32], ShareError> {
    Ok(swap32(decode_hex_array::<32>(field::PREVHASH, s)?))
}

/// Converts a header-order prevhash back into the `mining.notify` form (hex).
pub fn prevhash_to_notify(header_order: &[u8; 32]) -> String {
    hex::encode(swap32(*header_order))
}

/// Reverses the bytes inside each 4-byte word (its own inverse).
pub fn swap32(mut b: [u8; 32]) -> [u8; 32] {
    for w in b.chunks_exact_mut(4) {
        w.reverse();
    }
    b
}

/// Converts a displayed (big-endian hex) block hash into internal byte order.
pub fn hash_from_display(s: &str) -> Result<[u8; 32], ShareError> {
    let mut b = decode_hex_array::<32>("hash", s)?;
    b.reverse();
    Ok(b)
}

/// Formats an internal-order hash the way block explorers display it.
pub fn hash_to_display(h: &[u8; 32]) -> String {
    let mut b = *h;
    b.reverse();
    hex::encode(b)
}

/// BIP 310 version rolling: the miner may change only the bits in `mask`.
pub fn roll_version(job_version: u32, version_bits: u32, mask: u32) -> u32 {
    (job_version & !mask) | (version_bits & mask)
}

/// Builds the 80-byte header: `le32(version) ‖ prevhash ‖ root ‖ le32(ntime) ‖ le32(nbits) ‖
/// le32(nonce)`; `prevhash` already in header order (see [`prevhash_from_notify`]).
pub fn build_header(
    version: u32,
    prevhash: &[u8; 32],
    merkle_root: &[u8; 32],
    ntime: u32,
    nbits: u32,
    nonce: u32,
) -> [u8; 80] {
    let mut h = [0u8; 80];
    h[0..4].copy_from_slice(&version.to_le_bytes());
    h[4..36].copy_from_slice(prevhash);
    h[36..68].copy_from_slice(merkle_root);
    h[68..72].copy_from_slice(&ntime.to_le_bytes());
    h[72..76].copy_from_slice(&nbits.to_le_bytes());
    h[76..80].copy_from_slice(&nonce.to_le_bytes());
    h
}

// ---------------------------------------------------------------------------------------------
// Jobs
// ---------------------------------------------------------------------------------------------

/// A `mining.notify` job parsed once, ready to hash many shares quickly.
///
/// `coinb1` here is whatever precedes the extranonce1 the share is checked with: the pool's
/// `coinb1` when checking against the pool's extranonce1, or `coinb1 ‖ E1` when a proxy hands the
/// miner only its own tail as extranonce1. The SHA-256 state after its whole 64-byte blocks is
/// precomputed.
#[derive(Clone, PartialEq, Eq)]
pub struct JobTemplate {
    prevhash: [u8; 32],
    coinb1: Vec<u8>,
    coinb1_mid: Midstate,
    coinb2: Vec<u8>,
    branch: Vec<[u8; 32]>,
    version: u32,
    nbits: u32,
    ntime: u32,
}

impl fmt::Debug for JobTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobTemplate")
            .field("prevhash", &prevhash_to_notify(&self.prevhash))
            .field("coinb1_len", &self.coinb1.len())
            .field("coinb2_len", &self.coinb2.len())
            .field("branch_len", &self.branch.len())
            .field("version", &format_u32_hex(self.version))
            .field("nbits", &format_u32_hex(self.nbits))
            .field("ntime", &format_u32_hex(self.ntime))
            .finish()
    }
}

impl JobTemplate {
    /// Builds a template from decoded parts; `prevhash` in header order.
    pub fn new(
        prevhash: [u8; 32],
        coinb1: Vec<u8>,
        coinb2: Vec<u8>,
        branch: Vec<[u8; 32]>,
        version: u32,
        nbits: u32,
        ntime: u32,
    ) -> Self {
        let mut coinb1_mid = Midstate::start();
        coinb1_mid.absorb(&coinb1);
        JobTemplate {
            prevhash,
            coinb1,
            coinb1_mid,
            coinb2,
            branch,
            version,
            nbits,
            ntime,
        }
    }

    /// Parses the hex fields of a `mining.notify`
    /// (`prevhash, coinb1, coinb2, branch, version, nbits, ntime`).
    pub fn from_notify<S: AsRef<str>>(
        prevhash: &str,
        coinb1: &str,
        coinb2: &str,
        branch: &[S],
        version: &str,
        nbits: &str,
        ntime: &str,
    ) -> Result<Self, ShareError> {
        let branch = branch
            .iter()
            .map(|b| decode_hex_array::<32>(field::MERKLE_BRANCH, b.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(JobTemplate::new(
            prevhash_from_notify(prevhash)?,
            decode_hex(field::COINB1, coinb1)?,
            decode_hex(field::COINB2, coinb2)?,
            branch,
            parse_u32_hex(field::VERSION, version)?,
            parse_u32_hex(field::NBITS, nbits)?,
            parse_u32_hex(field::NTIME, ntime)?,
        ))
    }

    /// The same job with `suffix` appended to `coinb1` (a proxy sending `coinb1 ‖ E1` to miners).
    pub fn with_coinb1_suffix(&self, suffix: &[u8]) -> Self {
        let mut coinb1 = self.coinb1.clone();
        coinb1.extend_from_slice(suffix);
        JobTemplate::new(
            self.prevhash,
            coinb1,
            self.coinb2.clone(),
            self.branch.clone(),
            self.version,
            self.nbits,
            self.ntime,
        )
    }

    pub fn prevhash(&self) -> &[u8; 32] {
        &self.prevhash
    }
    pub fn coinb1(&self) -> &[u8] {
        &self.coinb1
    }
    pub fn coinb2(&self) -> &[u8] {
        &self.coinb2
    }
    pub fn branch(&self) -> &[[u8; 32]] {
        &self.branch
    }
    pub fn version(&self) -> u32 {
        self.version
    }
    pub fn nbits(&self) -> u32 {
        self.nbits
    }
    pub fn ntime(&self) -> u32 {
        self.ntime
    }

    /// The full coinbase transaction `coinb1 ‖ en1 ‖ en2 ‖ coinb2`.
    pub fn coinbase(&self, extranonce1: &[u8], extranonce2: &[u8]) -> Vec<u8> {
        let mut c = Vec::with_capacity(
            self.coinb1.len() + extranonce1.len() + extranonce2.len() + self.coinb2.len(),
        );
        c.extend_from_slice(&self.coinb1);
        c.extend_from_slice(extranonce1);
        c.extend_from_slice(extranonce2);
        c.extend_from_slice(&self.coinb2);
        c
    }

    /// Merkle root for this job with the given extranonces (uses the coinb1 midstate).
    pub fn merkle_root(&self, extranonce1: &[u8], extranonce2: &[u8]) -> [u8; 32] {
        let tail = self
            .coinb1
            .get(self.coinb1_mid.done as usize..)
            .unwrap_or(&[]);
        let first = self
            .coinb1_mid
            .finish(&[tail, extranonce1, extranonce2, &self.coinb2]);
        fold_branch(sha256_32(&first), &self.branch)
    }

    /// The header a miner built for this job. `version` is the final (already rolled) version,
    /// see [`JobTemplate::rolled_version`].
    pub fn header(
        &self,
        extranonce1: &[u8],
        extranonce2: &[u8],
        ntime: u32,
        nonce: u32,
        version: u32,
    ) -> [u8; 80] {
        let root = self.merkle_root(extranonce1, extranonce2);
        build_header(version, &self.prevhash, &root, ntime, self.nbits, nonce)
    }

    /// The job version with the miner's rolled bits applied under `mask` (no rolling: `None`).
    pub fn rolled_version(&self, version_bits: Option<u32>, mask: u32) -> u32 {
        match version_bits {
            Some(bits) => roll_version(self.version, bits, mask),
            None => self.version,
        }
    }

    /// sha256d of the share's header (internal byte order; compare with [`Target::is_met_by`]).
    pub fn share_hash(
        &self,
        extranonce1: &[u8],
        extranonce2: &[u8],
        ntime: u32,
        nonce: u32,
        version: u32,
    ) -> [u8; 32] {
        header_hash(&self.header(extranonce1, extranonce2, ntime, nonce, version))
    }

    /// The network target this job's nbits encodes.
    pub fn network_target(&self) -> Result<Target, ShareError> {
        Target::from_nbits(self.nbits)
    }
}

/// One miner's last checked work, kept so that its next share on the same work hashes only
/// what differs from the last one: the merkle root of (job, extranonce1, extranonce2) and the
/// header's first 64 bytes under one version.
///
/// A share costs the coinbase's last blocks, three compressions per merkle level and three for
/// the header; a share on the same extranonce2 as the miner's last one costs two (the header's
/// second block and the second SHA-256), as in a miner's own inner loop. Which shares hit:
/// - a miner that rolls nonces (and ntime) over one extranonce2 and version (cpuminer, GPU
///   miners, the simulated miners): every share after the first of its extranonce2;
/// - an ASIC rolling version bits over one extranonce2: the merkle root hits (the version does
///   not take part in it), the header's first block is hashed again;
/// - an ASIC at a difficulty where every share comes from a fresh extranonce2: nothing hits,
///   and the memo costs one comparison of the extranonces.
///
/// The caller names the job by a key it never gives to other work while the memo lives
/// (a miner's job sequence number); everything else that shapes the hash is compared here.
#[derive(Debug, Clone, Default)]
pub struct WorkMemo {
    job: u64,
    /// `extranonce1 ‖ extranonce2` of the memorized work, and where the first ends.
    extranonces: Vec<u8>,
    en1_len: usize,
    root: [u8; 32],
    /// The version the header midstate is for, and the SHA-256 state after the header's first
    /// 64 bytes (version, prevhash, the root's first 28 bytes).
    header: Option<(u32, [u32; 8])>,
    /// Set once a work is memorized (a fresh memo holds nothing).
    filled: bool,
}

impl WorkMemo {
    fn holds(&self, job: u64, extranonce1: &[u8], extranonce2: &[u8]) -> bool {
        self.job == job
            && self.en1_len == extranonce1.len()
            && self.extranonces.len() == extranonce1.len() + extranonce2.len()
            && self.extranonces[..self.en1_len] == *extranonce1
            && self.extranonces[self.en1_len..] == *extranonce2
            && self.filled
    }
}

impl JobTemplate {
    /// [`JobTemplate::share_hash`] through `memo`: the same hash, with the merkle root and the
    /// header midstate reused when the share is on the memorized work (see [`WorkMemo`]).
    /// `job` is the caller's key for this template (never reused for other work).
    #[allow(clippy::too_many_arguments)]
    pub fn share_hash_memo(
        &self,
        memo: &mut WorkMemo,
        job: u64,
        extranonce1: &[u8],
        extranonce2: &[u8],
        ntime: u32,
        nonce: u32,
        version: u32,
    ) -> [u8; 32] {
        if !memo.holds(job, extranonce1, extranonce2) {
            memo.filled = true;
            memo.root = self.merkle_root(extranonce1, extranonce2);
            memo.job = job;
            memo.en1_len = extranonce1.len();
            memo.extranonces.clear();
            memo.extranonces.extend_from_slice(extranonce1);
            memo.extranonces.extend_from_slice(extranonce2);
            memo.header = None;
        }
        let header = build_header(
            version,
            &self.prevhash,
            &memo.root,
            ntime,
            self.nbits,
            nonce,
        );
        let midstate = match memo.header {
            Some((v, state)) if v == version => state,
            _ => {
                let state = header_midstate(&header);
                memo.header = Some((version, state));
                state
            }
        };
        HeaderHasher::resume(midstate, &header).hash(nonce)
    }
}

/// The hex fields of one `mining.submit`, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmitFields {
    pub extranonce2: Vec<u8>,
    pub ntime: u32,
    pub nonce: u32,
    pub version_bits: Option<u32>,
}

impl SubmitFields {
    /// Decodes `extranonce2` (must be `en2_size` bytes), `ntime`, `nonce` and the optional
    /// `version_bits`.
    pub fn parse(
        extranonce2: &str,
        en2_size: usize,
        ntime: &str,
        nonce: &str,
        version_bits: Option<&str>,
    ) -> Result<Self, ShareError> {
        let en2 = decode_hex(field::EXTRANONCE2, extranonce2)?;
        if en2.len() != en2_size {
            return Err(ShareError::BadLength {
                field: field::EXTRANONCE2,
                expected: en2_size,
                got: en2.len(),
            });
        }
        Ok(SubmitFields {
            extranonce2: en2,
            ntime: parse_u32_hex(field::NTIME, ntime)?,
            nonce: parse_u32_hex(field::NONCE, nonce)?,
            version_bits: version_bits
                .map(|v| parse_u32_hex(field::VERSION_BITS, v))
                .transpose()?,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// 256-bit targets and difficulty
// ---------------------------------------------------------------------------------------------

/// An unsigned 256-bit integer as four little-endian u64 limbs (limb 0 least significant).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct U256(pub [u64; 4]);

impl U256 {
    pub const ZERO: U256 = U256([0; 4]);
    pub const MAX: U256 = U256([u64::MAX; 4]);

    /// Reads 32 bytes as a little-endian integer (how a block hash is compared to a target).
    pub fn from_le_bytes(b: &[u8; 32]) -> Self {
        let mut limbs = [0u64; 4];
        for (limb, chunk) in limbs.iter_mut().zip(b.chunks_exact(8)) {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            *limb = u64::from_le_bytes(w);
        }
        U256(limbs)
    }

    pub fn to_le_bytes(&self) -> [u8; 32] {
        let mut b = [0u8; 32];
        for (chunk, limb) in b.chunks_exact_mut(8).zip(self.0) {
            chunk.copy_from_slice(&limb.to_le_bytes());
        }
        b
    }

    pub fn to_be_bytes(&self) -> [u8; 32] {
        let mut b = self.to_le_bytes();
        b.reverse();
        b
    }

    /// Nearest f64 (used for difficulty ratios; 53 bits of precision are plenty).
    pub fn to_f64(&self) -> f64 {
        self.0.iter().rev().fold(0.0f64, |acc, &limb| {
            acc * 18_446_744_073_709_551_616.0 + limb as f64
        })
    }

    pub fn is_zero(&self) -> bool {
        self.0 == [0; 4]
    }
}

impl Ord for U256 {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.iter().rev().cmp(other.0.iter().rev())
    }
}

impl PartialOrd for U256 {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Debug for U256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.to_be_bytes()))
    }
}

/// Difficulty-1 target `T1 = 0xFFFF · 2^208`.
pub const DIFF1_TARGET: U256 = U256([0, 0, 0, 0x0000_0000_FFFF_0000]);
/// `T1` as f64.
const DIFF1_F64: f64 = 65535.0 * f64::from_bits((1023 + 208) << 52); // 2^208 exactly

/// A share target: a hash meets it iff `hash <= target` (hash read little-endian).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target(pub U256);

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Target({:?})", self.0)
    }
}

impl Target {
    /// `floor(T1 / d)` for any positive finite difficulty, fractional too; saturates at
    /// `2^256 − 1` for tiny difficulties (below ≈ 2.3e-10 every hash is a share).
    pub fn from_difficulty(d: f64) -> Result<Target, ShareError> {
        if !(d.is_finite() && d > 0.0) {
            return Err(ShareError::BadDifficulty(d));
        }
        // d = m · 2^e exactly, m < 2^53.
        let bits = d.to_bits();
        let exp = ((bits >> 52) & 0x7ff) as i64;
        let frac = bits & ((1u64 << 52) - 1);
        let (m, e) = if exp == 0 {
            (frac, -1074i64)
        } else {
            (frac | (1u64 << 52), exp - 1075)
        };
        // T1 / d = 0xFFFF · 2^(208 − e) / m.
        let s = 208 - e;
        if s < 0 {
            let shift = -s;
            if shift >= 64 {
                return Ok(Target(U256::ZERO));
            }
            let denom = (m as u128) << shift;
            return Ok(Target(U256([(0xFFFFu128 / denom) as u64, 0, 0, 0])));
        }
        if s > 300 {
            return Ok(Target(U256::MAX));
        }
        // Numerator 0xFFFF << s in 6 limbs (≤ 316 bits), long division by m.
        let mut num = [0u64; 6];
        let s = s as usize;
        let (limb, bit) = (s / 64, s % 64);
        let wide = (0xFFFFu128) << bit;
        num[limb] = wide as u64;
        if limb + 1 < num.len() {
            num[limb + 1] = (wide >> 64) as u64;
        }
        let mut q = [0u64; 6];
        let mut rem: u128 = 0;
        for i in (0..6).rev() {
            let cur = (rem << 64) | num[i] as u128;
            q[i] = (cur / m as u128) as u64;
            rem = cur % m as u128;
        }
        if q[4] != 0 || q[5] != 0 {
            return Ok(Target(U256::MAX));
        }
        Ok(Target(U256([q[0], q[1], q[2], q[3]])))
    }

    /// The network target from compact nbits: `mantissa · 256^(exponent − 3)`.
    pub fn from_nbits(nbits: u32) -> Result<Target, ShareError> {
        let exponent = nbits >> 24;
        let mantissa = nbits & 0x007f_ffff;
        if nbits & 0x0080_0000 != 0 || mantissa == 0 {
            return Err(ShareError::BadNbits(nbits));
        }
        let mut bytes = [0u8; 32]; // little-endian
        let m = mantissa.to_le_bytes(); // 3 significant bytes
        for (i, &byte) in m.iter().take(3).enumerate() {
            // byte i of the mantissa lands at position exponent − 3 + i
            let pos = exponent as i64 - 3 + i as i64;
            if byte == 0 {
                continue;
            }
            if pos >= 32 {
                return Err(ShareError::BadNbits(nbits));
            }
            if pos >= 0 {
                bytes[pos as usize] = byte;
            }
        }
        let t = U256::from_le_bytes(&bytes);
        if t.is_zero() {
            return Err(ShareError::BadNbits(nbits));
        }
        Ok(Target(t))
    }

    /// True iff `hash` (internal byte order, read little-endian) is at or below this target.
    pub fn is_met_by(&self, hash: &[u8; 32]) -> bool {
        U256::from_le_bytes(hash) <= self.0
    }

    /// The difficulty this target corresponds to (`T1 / target`).
    pub fn difficulty(&self) -> f64 {
        let t = self.0.to_f64();
        if t == 0.0 {
            f64::INFINITY
        } else {
            DIFF1_F64 / t
        }
    }
}

/// The difficulty a hash achieves (`T1 / h`); infinite for the all-zero hash.
pub fn hash_difficulty(hash: &[u8; 32]) -> f64 {
    let h = U256::from_le_bytes(hash).to_f64();
    if h == 0.0 {
        f64::INFINITY
    } else {
        DIFF1_F64 / h
    }
}

/// Difficulty of a compact nbits (network difficulty).
pub fn nbits_difficulty(nbits: u32) -> Result<f64, ShareError> {
    Ok(Target::from_nbits(nbits)?.difficulty())
}

/// Hashes per unit of difficulty: `2^32`. (The exact factor is `2^256/(T1+1)` ≈ 2^32·1.0000153;
/// pools and miners use 2^32.)
pub const HASHES_PER_DIFFICULTY: f64 = 4_294_967_296.0;

/// Hashrate (H/s) from the sum of share difficulties over `seconds`: `Σd · 2^32 / s`.
/// Zero for a non-positive or non-finite window.
pub fn hashrate(difficulty_sum: f64, seconds: f64) -> f64 {
    if !(seconds.is_finite() && seconds > 0.0 && difficulty_sum.is_finite()) {
        return 0.0;
    }
    difficulty_sum * HASHES_PER_DIFFICULTY / seconds
}

/// Expected shares per second for a miner of `hashrate` H/s at difficulty `d`:
/// `λ = H / (d · 2^32)`.
pub fn share_rate(hashrate: f64, difficulty: f64) -> f64 {
    if !(difficulty.is_finite() && difficulty > 0.0 && hashrate.is_finite()) {
        return 0.0;
    }
    hashrate / (difficulty * HASHES_PER_DIFFICULTY)
}

/// Verdict on one share: the hash, the difficulty it achieved, and whether it meets a target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShareCheck {
    pub hash: [u8; 32],
    pub hash_difficulty: f64,
}

impl ShareCheck {
    pub fn of(hash: [u8; 32]) -> Self {
        ShareCheck {
            hash,
            hash_difficulty: hash_difficulty(&hash),
        }
    }
    pub fn meets(&self, target: &Target) -> bool {
        target.is_met_by(&self.hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOCK1_COINBASE: &str = "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff0704ffff001d0104ffffffff0100f2052a0100000043410496b538e853519c726a2c91e61ec11600ae1390813a627c66fb8be7947be63c52da7589379515d4e0a604f8141781e62294721166bf621e73a82cbf2342c858eeac00000000";
    const GENESIS: &str = "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f";
    const BLOCK1_HASH: &str = "00000000839a8e6886ab5951d76f411475428afc90947ee320161bbf18eb6048";

    /// The notify prevhash for a displayed block hash: its 4-byte groups in reverse order.
    fn notify_prevhash_from_display(display: &str) -> String {
        let groups: Vec<&str> = (0..8).map(|i| &display[i * 8..i * 8 + 8]).collect();
        groups.into_iter().rev().collect()
    }

    #[test]
    fn block_125552_header_hashes_to_the_real_block_hash() {
        let prev_display = "00000000000008a3a41b85b8b29ad444def299fee21793cd8b9e567eab02cd81";
        let notify_prev = "ab02cd818b9e567ee21793cddef299feb29ad444a41b85b8000008a300000000";
        assert_eq!(notify_prevhash_from_display(prev_display), notify_prev);
        let prev = prevhash_from_notify(notify_prev).unwrap();
        assert_eq!(prev, hash_from_display(prev_display).unwrap());
        assert_eq!(prevhash_to_notify(&prev), notify_prev);

        let root =
            hash_from_display("2b12fcf1b09288fcaff797d71e950e71ae42b91e8bdb2304758dfcffc2b620e3")
                .unwrap();
        let header = build_header(
            parse_u32_hex(field::VERSION, "00000001").unwrap(),
            &prev,
            &root,
            parse_u32_hex(field::NTIME, "4dd7f5c7").unwrap(),
            parse_u32_hex(field::NBITS, "1a44b9f2").unwrap(),
            parse_u32_hex(field::NONCE, "9546a142").unwrap(),
        );
        let h = header_hash(&header);
        assert_eq!(h, sha256d(&header));
        assert_eq!(
            hash_to_display(&h),
            "00000000000000001e8d6829a8a21adc5d38d0a473b144b6765798e61f98bd1d"
        );
        let net = Target::from_nbits(0x1a44b9f2).unwrap();
        assert!(net.is_met_by(&h));
        let d = net.difficulty();
        assert!((d - 244_112.49).abs() < 0.01, "difficulty {d}");
        assert!(hash_difficulty(&h) > d);
    }

    #[test]
    fn block_1_rebuilt_from_stratum_fields_at_every_split() {
        let coinbase = hex::decode(BLOCK1_COINBASE).unwrap();
        // The scriptSig "04ffff001d0104" starts after version(4) + count(1) + outpoint(36) +
        // script length(1) = byte 42 and is 7 bytes long.
        let script = 42..49;
        let mut checked = 0;
        for en1_start in script.clone() {
            for en1_len in 0..=(script.end - en1_start) {
                for en2_len in 0..=(script.end - en1_start - en1_len) {
                    let en2_start = en1_start + en1_len;
                    let c1 = &coinbase[..en1_start];
                    let e1 = &coinbase[en1_start..en2_start];
                    let e2 = &coinbase[en2_start..en2_start + en2_len];
                    let c2 = &coinbase[en2_start + en2_len..];
                    let job = JobTemplate::from_notify::<&str>(
                        &notify_prevhash_from_display(GENESIS),
                        &hex::encode(c1),
                        &hex::encode(c2),
                        &[],
                        "00000001",
                        "1d00ffff",
                        "4966bc61",
                    )
                    .unwrap();
                    assert_eq!(job.coinbase(e1, e2), coinbase);
                    assert_eq!(job.merkle_root(e1, e2), merkle_root(&coinbase, &[]));
                    let fields = SubmitFields::parse(
                        &hex::encode(e2),
                        en2_len,
                        "4966bc61",
                        "9962e301",
                        None,
                    )
                    .unwrap();
                    let h = job.share_hash(
                        e1,
                        &fields.extranonce2,
                        fields.ntime,
                        fields.nonce,
                        job.rolled_version(fields.version_bits, 0),
                    );
                    assert_eq!(hash_to_display(&h), BLOCK1_HASH);
                    assert!(job.network_target().unwrap().is_met_by(&h));
                    checked += 1;
                }
            }
        }
        assert!(checked > 50);
    }

    #[test]
    fn midstate_matches_plain_hash_for_every_length() {
        for len in 0..300usize {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let split = len / 3;
            let job = JobTemplate::new(
                [0; 32],
                data[..split].to_vec(),
                data[split..].to_vec(),
                vec![[5u8; 32], [9u8; 32]],
                2,
                0x1d00ffff,
                0,
            );
            assert_eq!(
                job.merkle_root(&[], &[]),
                merkle_root(&data, &[[5u8; 32], [9u8; 32]]),
                "len {len}"
            );
            // suffix moves bytes from en1 into coinb1 without changing the result
            let k = (len - split).min(3);
            let moved = job.with_coinb1_suffix(&data[split..split + k]);
            let moved = JobTemplate::new(
                [0; 32],
                moved.coinb1().to_vec(),
                data[split + k..].to_vec(),
                vec![[5u8; 32], [9u8; 32]],
                2,
                0x1d00ffff,
                0,
            );
            assert_eq!(moved.merkle_root(&[], &[]), job.merkle_root(&[], &[]));
        }
    }

    #[test]
    fn merkle_pair_matches_generic_hash() {
        let a = [1u8; 32];
        let b = [2u8; 32];
        let mut cat = a.to_vec();
        cat.extend_from_slice(&b);
        assert_eq!(sha256d_pair(&a, &b), sha256d(&cat));
        assert_eq!(sha256_32(&a), <[u8; 32]>::from(Sha256::digest(a)));
    }

    #[test]
    fn header_hasher_matches_generic_hash() {
        let mut header = [0u8; 80];
        for (i, b) in header.iter_mut().enumerate() {
            *b = i as u8;
        }
        let hasher = HeaderHasher::new(&header);
        for nonce in [0u32, 1, 0xdeadbeef, u32::MAX] {
            header[76..].copy_from_slice(&nonce.to_le_bytes());
            assert_eq!(hasher.hash(nonce), sha256d(&header));
        }
    }

    #[test]
    fn difficulty_one_target_and_nbits() {
        let t1 = Target::from_difficulty(1.0).unwrap();
        assert_eq!(t1.0, DIFF1_TARGET);
        assert_eq!(
            hex::encode(t1.0.to_be_bytes()),
            "00000000ffff0000000000000000000000000000000000000000000000000000"
        );
        assert_eq!(Target::from_nbits(0x1d00ffff).unwrap(), t1);
        assert_eq!(t1.difficulty(), 1.0);
        assert_eq!(nbits_difficulty(0x1d00ffff).unwrap(), 1.0);
    }

    #[test]
    fn targets_for_fractional_and_large_difficulties() {
        // d = 2: exactly half of T1
        let t2 = Target::from_difficulty(2.0).unwrap();
        assert_eq!(t2.0, U256([0, 0, 0, 0x0000_0000_7FFF_8000]));
        // d = 0.5: 2·T1
        let th = Target::from_difficulty(0.5).unwrap();
        assert_eq!(th.0, U256([0, 0, 0, 0x0000_0001_FFFE_0000]));
        // d = 1e-6: floor(T1 · 10^6), relative error within f64 precision
        let tiny = Target::from_difficulty(1e-6).unwrap();
        let ratio = tiny.0.to_f64() / (DIFF1_F64 * 1e6);
        assert!((ratio - 1.0).abs() < 1e-12, "ratio {ratio}");
        assert!((tiny.difficulty() - 1e-6).abs() < 1e-18);
        // monotone
        let mut last = U256::MAX;
        for d in [1e-9, 1e-6, 1e-3, 0.1, 1.0, 3.7, 1e3, 1e6, 1e12, 1e20] {
            let t = Target::from_difficulty(d).unwrap().0;
            assert!(t < last, "d={d}");
            last = t;
            let back = Target(t).difficulty();
            assert!((back / d - 1.0).abs() < 1e-9, "d={d} back={back}");
        }
        // saturation and huge difficulty
        assert_eq!(Target::from_difficulty(1e-12).unwrap().0, U256::MAX);
        assert_eq!(
            Target::from_difficulty(f64::MIN_POSITIVE).unwrap().0,
            U256::MAX
        );
        assert_eq!(Target::from_difficulty(1e300).unwrap().0, U256::ZERO);
        assert_eq!(Target::from_difficulty(f64::MAX).unwrap().0, U256::ZERO);
        // hash of all 0xff never meets difficulty 1; the zero hash always does
        assert!(!t1_target().is_met_by(&[0xff; 32]));
        assert!(t1_target().is_met_by(&[0; 32]));
        // an "every hash" target accepts everything
        assert!(
            Target::from_difficulty(1e-10)
                .unwrap()
                .is_met_by(&[0xff; 32])
        );
    }

    fn t1_target() -> Target {
        Target::from_difficulty(1.0).unwrap()
    }

    #[test]
    fn bad_difficulties_are_errors() {
        for d in [0.0, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(Target::from_difficulty(d).is_err(), "{d}");
        }
    }

    #[test]
    fn boundary_hash_equal_to_target_is_valid() {
        let t = t1_target();
        let at = t.0.to_le_bytes();
        assert!(t.is_met_by(&at));
        let mut above = at;
        above[0] = 1; // t has zero low bytes, so this is t + 1
        assert!(!t.is_met_by(&above));
        assert!((hash_difficulty(&at) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn nbits_edge_cases() {
        assert!(Target::from_nbits(0).is_err());
        assert!(Target::from_nbits(0x1d80ffff).is_err()); // sign bit
        assert!(Target::from_nbits(0xff00ffff).is_err()); // overflow
        assert!(Target::from_nbits(0x0100ffff).is_err()); // shifted to zero
        assert_eq!(
            Target::from_nbits(0x03123456).unwrap().0,
            U256([0x123456, 0, 0, 0])
        );
        assert_eq!(
            Target::from_nbits(0x02123456).unwrap().0,
            U256([0x1234, 0, 0, 0])
        );
        // regtest-style maximum
        assert!(Target::from_nbits(0x207fffff).is_ok());
    }

    #[test]
    fn malformed_fields_are_typed_errors() {
        assert_eq!(
            parse_u32_hex(field::NONCE, "zzzzzzzz"),
            Err(ShareError::BadHex {
                field: field::NONCE
            })
        );
        assert!(matches!(
            parse_u32_hex(field::NTIME, "123"),
            Err(ShareError::BadLength { .. })
        ));
        assert!(matches!(
            parse_u32_hex(field::NTIME, "é1234567"),
            Err(ShareError::BadLength { .. } | ShareError::BadHex { .. })
        ));
        assert!(prevhash_from_notify("00").is_err());
        assert!(matches!(
            SubmitFields::parse("0000", 4, "00000000", "00000000", None),
            Err(ShareError::BadLength {
                field: "extranonce2",
                ..
            })
        ));
        assert!(SubmitFields::parse("00000000", 4, "00000000", "00000000", Some("xyz")).is_err());
        assert!(
            JobTemplate::from_notify(
                &"00".repeat(32),
                "00",
                "00",
                &["abcd"],
                "00000001",
                "1d00ffff",
                "00000000"
            )
            .is_err()
        );
        // multi-byte UTF-8 must not panic on slicing
        assert!(decode_hex_array::<2>("x", "éé").is_err());
    }

    #[test]
    fn version_rolling() {
        assert_eq!(
            roll_version(0x2000_0000, 0xffff_ffff, 0x1fff_e000),
            0x3fff_e000
        );
        assert_eq!(
            roll_version(0x2000_0004, 0x0000_2000, 0x1fff_e000),
            0x2000_2004
        );
        assert_eq!(roll_version(0x2000_0004, 0x1234_5678, 0), 0x2000_0004);
    }

    #[test]
    fn hashrate_from_difficulty_sums() {
        // 100 TH/s at d = 65536: 0.355 shares/s
        let l = share_rate(100e12, 65536.0);
        assert!((l - 0.3553).abs() < 1e-3, "{l}");
        assert_eq!(hashrate(1.0, 1.0), 4_294_967_296.0);
        let h = hashrate(65536.0 * 107.0, 300.0);
        assert!((h / 100e12 - 1.0).abs() < 0.01, "{h}");
        assert_eq!(hashrate(1.0, 0.0), 0.0);
        assert_eq!(share_rate(1.0, 0.0), 0.0);
    }

    /// The same bytes split differently between extranonce1 and extranonce2 are the same
    /// coinbase; a memo must still not confuse the splits' keys with other work, and a fresh
    /// memo with empty extranonces must not answer from its zeroed root.
    #[test]
    fn memo_is_keyed_by_job_and_both_extranonces() {
        let job = |prevhash| {
            JobTemplate::new(
                prevhash,
                vec![2; 70],
                vec![3; 40],
                vec![[4; 32]],
                0x2000_0000,
                0x1d00ffff,
                9,
            )
        };
        let (a, b) = (job([1; 32]), job([5; 32]));
        let mut memo = WorkMemo::default();
        assert_eq!(
            a.share_hash_memo(&mut memo, 0, &[], &[], 1, 2, 0x2000_0000),
            a.share_hash(&[], &[], 1, 2, 0x2000_0000)
        );
        assert_eq!(
            a.share_hash_memo(&mut memo, 0, &[1, 2], &[3], 1, 2, 0x2000_0000),
            a.share_hash(&[1, 2], &[3], 1, 2, 0x2000_0000)
        );
        assert_eq!(
            a.share_hash_memo(&mut memo, 0, &[1], &[2, 3], 1, 2, 0x2000_0000),
            a.share_hash(&[1], &[2, 3], 1, 2, 0x2000_0000)
        );
        assert_eq!(
            a.share_hash_memo(&mut memo, 0, &[1], &[2, 4], 1, 2, 0x2000_6000),
            a.share_hash(&[1], &[2, 4], 1, 2, 0x2000_6000)
        );
        // Another job under another key: another prevhash, so another hash.
        assert_eq!(
            b.share_hash_memo(&mut memo, 1, &[1], &[2, 4], 1, 2, 0x2000_6000),
            b.share_hash(&[1], &[2, 4], 1, 2, 0x2000_6000)
        );
        assert_ne!(
            a.share_hash(&[1], &[2, 4], 1, 2, 0x2000_6000),
            b.share_hash(&[1], &[2, 4], 1, 2, 0x2000_6000)
        );
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn target_round_trips_through_difficulty(exp in -30.0f64..30.0, frac in 1.0f64..2.0) {
                let d = frac * 10f64.powf(exp);
                let t = Target::from_difficulty(d).unwrap();
                if d > 3e-10 {
                    prop_assert!((t.difficulty() / d - 1.0).abs() < 1e-9);
                }
                let bigger = Target::from_difficulty(d * 1.001).unwrap();
                prop_assert!(bigger <= t);
            }

            #[test]
            fn midstate_root_equals_plain_root(
                coinbase in proptest::collection::vec(any::<u8>(), 0..400),
                cut1 in 0usize..400, cut2 in 0usize..400, cut3 in 0usize..400,
                branch in proptest::collection::vec(any::<[u8; 32]>(), 0..5),
            ) {
                let mut cuts = [cut1 % (coinbase.len() + 1), cut2 % (coinbase.len() + 1), cut3 % (coinbase.len() + 1)];
                cuts.sort_unstable();
                let [a, b, c] = cuts;
                let job = JobTemplate::new([0; 32], coinbase[..a].to_vec(), coinbase[c..].to_vec(), branch.clone(), 1, 0x1d00ffff, 0);
                prop_assert_eq!(job.merkle_root(&coinbase[a..b], &coinbase[b..c]), merkle_root(&coinbase, &branch));
            }

            /// Whatever sequence of shares a miner sends (jobs, extranonces of any length,
            /// versions, ntimes, nonces, in any order), the memo gives the plain hash.
            #[test]
            fn memo_hash_equals_plain_hash(
                jobs in proptest::collection::vec(
                    (any::<[u8; 32]>(), proptest::collection::vec(any::<u8>(), 0..130),
                     proptest::collection::vec(any::<u8>(), 0..70),
                     proptest::collection::vec(any::<[u8; 32]>(), 0..4)), 1..4),
                shares in proptest::collection::vec(
                    (0usize..4, 0usize..3, 0usize..3, 0u32..3, any::<u32>(), any::<u32>()), 1..40),
                en1s in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..9), 3),
                en2s in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..9), 3),
            ) {
                let templates: Vec<JobTemplate> = jobs
                    .iter()
                    .map(|(prev, c1, c2, branch)| {
                        JobTemplate::new(*prev, c1.clone(), c2.clone(), branch.clone(), 0x2000_0000, 0x1d00ffff, 7)
                    })
                    .collect();
                let mut memo = WorkMemo::default();
                for (j, e1, e2, v, ntime, nonce) in shares {
                    let j = j % templates.len();
                    let version = 0x2000_0000 | (v << 13);
                    let plain = templates[j].share_hash(&en1s[e1], &en2s[e2], ntime, nonce, version);
                    let memoized = templates[j].share_hash_memo(&mut memo, j as u64, &en1s[e1], &en2s[e2], ntime, nonce, version);
                    prop_assert_eq!(plain, memoized);
                }
            }

            #[test]
            fn parsing_arbitrary_text_never_panics(s in ".{0,80}", n in 0usize..40) {
                let _ = parse_u32_hex(field::NONCE, &s);
                let _ = prevhash_from_notify(&s);
                let _ = decode_hex(field::COINB1, &s);
                let _ = SubmitFields::parse(&s, n, &s, &s, Some(&s));
                let _ = JobTemplate::from_notify(&s, &s, &s, &[&s], &s, &s, &s);
            }

            #[test]
            fn nbits_never_panics(nbits in any::<u32>()) {
                if let Ok(t) = Target::from_nbits(nbits) {
                    prop_assert!(!t.0.is_zero());
                    prop_assert!(t.difficulty() > 0.0);
                }
            }

            #[test]
            fn hash_comparison_matches_big_endian_bytes(a in any::<[u8; 32]>(), b in any::<[u8; 32]>()) {
                let mut ra = a; ra.reverse();
                let mut rb = b; rb.reverse();
                prop_assert_eq!(U256::from_le_bytes(&a).cmp(&U256::from_le_bytes(&b)), ra.cmp(&rb));
                prop_assert_eq!(Target(U256::from_le_bytes(&b)).is_met_by(&a), ra <= rb);
            }
        }
    }
}
