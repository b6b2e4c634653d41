//! `mining.submit`: one share, the hot path of the protocol.

use serde_json::Value;
use std::borrow::Cow;

use super::message::{LineSink, ProtocolError, push_hex, push_hex_u32, push_json_str, push_u64};
use super::params::{Params, hex_u32, parse_hex_u32};
use super::{MAX_EXTRANONCE_BYTES, method};

/// `mining.submit` parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Submit {
    pub worker: String,
    pub job_id: String,
    pub extranonce2: Vec<u8>,
    pub ntime: u32,
    pub nonce: u32,
    /// BIP 310 version bits (6th parameter), already masked by nobody: check against the mask.
    pub version_bits: Option<u32>,
}

/// An extranonce2 held inline (at most [`MAX_EXTRANONCE_BYTES`]): a share's bytes go from the
/// miner's line to the pool session's output without a heap allocation on the way (an
/// allocation made on one thread and freed on another is the dearest kind).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Extranonce2 {
    len: u8,
    bytes: [u8; MAX_EXTRANONCE_BYTES],
}

impl Extranonce2 {
    /// `parts` one after the other; `None` when they are longer than [`MAX_EXTRANONCE_BYTES`].
    pub fn concat(parts: &[&[u8]]) -> Option<Self> {
        let mut e = Extranonce2 {
            len: 0,
            bytes: [0; MAX_EXTRANONCE_BYTES],
        };
        let mut at = 0usize;
        for p in parts {
            let end = at
                .checked_add(p.len())
                .filter(|&n| n <= MAX_EXTRANONCE_BYTES)?;
            e.bytes[at..end].copy_from_slice(p);
            at = end;
        }
        e.len = at as u8;
        Some(e)
    }

    /// Exactly what [`super::parse_hex_bytes`] accepts with the [`MAX_EXTRANONCE_BYTES`] bound: an even
    /// number of hex digits (either case), at most that many bytes.
    pub fn from_hex(s: &str) -> Option<Self> {
        if !s.len().is_multiple_of(2) || s.len() / 2 > MAX_EXTRANONCE_BYTES {
            return None;
        }
        let len = s.len() / 2;
        let mut e = Extranonce2 {
            len: len as u8,
            bytes: [0; MAX_EXTRANONCE_BYTES],
        };
        hex::decode_to_slice(s, &mut e.bytes[..len]).ok()?;
        Some(e)
    }
}

impl std::ops::Deref for Extranonce2 {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

impl std::fmt::Debug for Extranonce2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Extranonce2({})", hex::encode(&**self))
    }
}

/// A share as the hub's connection handles it: [`Submit`]'s fields, with the strings borrowed
/// from the miner's line where they have no escapes and the extranonce2 inline.
#[derive(Debug, Clone, PartialEq)]
pub struct SubmitRef<'a> {
    pub worker: Cow<'a, str>,
    pub job_id: Cow<'a, str>,
    pub extranonce2: Extranonce2,
    pub ntime: u32,
    pub nonce: u32,
    pub version_bits: Option<u32>,
}

impl SubmitRef<'_> {
    /// The owned form.
    pub fn to_submit(&self) -> Submit {
        Submit {
            worker: self.worker.to_string(),
            job_id: self.job_id.to_string(),
            extranonce2: self.extranonce2.to_vec(),
            ntime: self.ntime,
            nonce: self.nonce,
            version_bits: self.version_bits,
        }
    }
}

impl Submit {
    /// A whole `mining.submit` line read in one pass, without serde or a `Value` tree: `Some`
    /// only when the line is a `mining.submit` request whose parameters are all valid (strings;
    /// hex within bounds), and then exactly the id and fields that `parse_line` +
    /// [`super::MinerRequest::parse`] give for it. `None` for anything else, valid or not,
    /// which the caller hands to the generic path for its answer (so error answers and metrics
    /// stay those of the generic path).
    ///
    /// Shares are nearly every line a miner sends, so this reads the JSON itself: an object
    /// with the keys `id` (an unsigned integer, a string or null), `method` and `params`, in
    /// any order and with any JSON whitespace; `params` holds five strings and optionally a
    /// sixth string or null. Anything outside that (another key, a key twice, a float or
    /// negative id, a seventh parameter, a number where a string belongs, a key or method
    /// written with escapes) is `None`, and the generic path decides. A parameter or string id
    /// with escapes is decoded by serde_json, so its meaning is serde's.
    pub fn parse_line(line: &str) -> Option<(Value, SubmitRef<'_>)> {
        let mut p = Scan::new(line.trim());
        p.eat(b'{')?;
        let (mut id, mut is_submit, mut params) = (None, false, None);
        loop {
            let key = p.plain_string()?;
            p.eat(b':')?;
            match key {
                "id" if id.is_none() => id = Some(p.id()?),
                "method" if !is_submit => {
                    if p.plain_string()? != method::SUBMIT {
                        return None;
                    }
                    is_submit = true;
                }
                "params" if params.is_none() => params = Some(p.params()?),
                _ => return None,
            }
            match p.next()? {
                b',' => continue,
                b'}' => break,
                _ => return None,
            }
        }
        p.ws();
        if !p.at_end() || !is_submit {
            return None;
        }
        Some((id.unwrap_or(Value::Null), params?))
    }

    /// The borrowed form; `None` for an extranonce2 over [`MAX_EXTRANONCE_BYTES`] (a parsed
    /// `Submit` never has one).
    pub fn as_submit_ref(&self) -> Option<SubmitRef<'_>> {
        Some(SubmitRef {
            worker: Cow::Borrowed(&self.worker),
            job_id: Cow::Borrowed(&self.job_id),
            extranonce2: Extranonce2::concat(&[&self.extranonce2])?,
            ntime: self.ntime,
            nonce: self.nonce,
            version_bits: self.version_bits,
        })
    }

    pub(super) fn parse(params: &Value) -> Result<Self, ProtocolError> {
        let p = Params::new(method::SUBMIT, params)?;
        Ok(Self {
            worker: p.str(0, "worker")?.to_owned(),
            job_id: p.id_str(1, "job_id")?,
            extranonce2: p.hex_bytes(2, "extranonce2", MAX_EXTRANONCE_BYTES)?,
            ntime: p.hex_u32(3, "ntime")?,
            nonce: p.hex_u32(4, "nonce")?,
            version_bits: match p.get(5) {
                None => None,
                Some(_) => Some(p.hex_u32(5, "version_bits")?),
            },
        })
    }

    /// Appends the `mining.submit` request line with numeric id `id` to `out`: the same bytes as
    /// `MinerRequest::Submit(..).to_line(&Value::from(id))` for these fields, written straight
    /// from borrowed fields (the hub forwards every share this way, without building a `Submit`,
    /// a `Value` tree or a `String`).
    #[allow(clippy::too_many_arguments)]
    pub fn write_line<W: LineSink + ?Sized>(
        out: &mut W,
        id: u64,
        worker: &str,
        job_id: &str,
        extranonce2: &[u8],
        ntime: u32,
        nonce: u32,
        version_bits: Option<u32>,
    ) {
        out.put("{\"id\":");
        push_u64(out, id);
        out.put(",\"method\":");
        push_json_str(out, method::SUBMIT);
        out.put(",\"params\":[");
        push_json_str(out, worker);
        out.put(",");
        push_json_str(out, job_id);
        out.put(",\"");
        push_hex(out, extranonce2);
        out.put("\",\"");
        push_hex_u32(out, ntime);
        out.put("\",\"");
        push_hex_u32(out, nonce);
        if let Some(b) = version_bits {
            out.put("\",\"");
            push_hex_u32(out, b);
        }
        out.put("\"]}\n");
    }

    pub fn to_params(&self) -> Value {
        let mut v = vec![
            Value::from(self.worker.as_str()),
            Value::from(self.job_id.as_str()),
            Value::from(hex::encode(&self.extranonce2)),
            Value::from(hex_u32(self.ntime)),
            Value::from(hex_u32(self.nonce)),
        ];
        if let Some(b) = self.version_bits {
            v.push(Value::from(hex_u32(b)));
        }
        Value::Array(v)
    }
}

/// The cursor of [`Submit::parse_line`] over one line.
struct Scan<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Scan<'a> {
    fn new(text: &'a str) -> Self {
        Scan { text, at: 0 }
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn at_end(&self) -> bool {
        self.at >= self.text.len()
    }

    /// Skips JSON whitespace.
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes().get(self.at) {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.bytes().get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.at += 1;
        Some(c)
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        // Most lines have no whitespace between tokens: the expected byte is right there.
        if self.bytes().get(self.at) == Some(&c) {
            self.at += 1;
            return Some(());
        }
        (self.next()? == c).then_some(())
    }

    fn literal(&mut self, word: &str) -> Option<()> {
        self.ws();
        let rest = self.text.get(self.at..)?;
        rest.starts_with(word).then(|| self.at += word.len())
    }

    /// A JSON string: borrowed when it has no escapes, else decoded by serde_json.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        self.eat(b'"')?;
        let open = self.at - 1;
        let mut escaped = false;
        let bytes = self.bytes();
        loop {
            // The fields are short: a plain loop beats a vectorized search here.
            while bytes
                .get(self.at)
                .is_some_and(|&c| c != b'"' && c != b'\\' && c >= 0x20)
            {
                self.at += 1;
            }
            match *bytes.get(self.at)? {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    self.at += 2;
                }
                // Raw control characters are not JSON: the generic path refuses them.
                _ => return None,
            }
        }
        let close = self.at;
        self.at += 1;
        // Both ends are `"` (ASCII), so both are char boundaries.
        if escaped {
            serde_json::from_str::<String>(self.text.get(open..=close)?)
                .ok()
                .map(Cow::Owned)
        } else {
            self.text.get(open + 1..close).map(Cow::Borrowed)
        }
    }

    /// A key or the method: a JSON string without escapes, borrowed (one with escapes is left
    /// to the generic path, which reads it the same way).
    fn plain_string(&mut self) -> Option<&'a str> {
        match self.string()? {
            Cow::Borrowed(s) => Some(s),
            Cow::Owned(_) => None,
        }
    }

    /// A request id as serde_json reads it into a `Value`, for the forms read here: an
    /// unsigned integer written as JSON writes one (no sign, leading zero, fraction or
    /// exponent; at most `u64::MAX`), a string, or null.
    fn id(&mut self) -> Option<Value> {
        match self.peek()? {
            b'"' => self.string().map(|s| Value::String(s.into_owned())),
            b'n' => self.literal("null").map(|()| Value::Null),
            b'0'..=b'9' => {
                let start = self.at;
                while self.bytes().get(self.at).is_some_and(u8::is_ascii_digit) {
                    self.at += 1;
                }
                let digits = &self.text[start..self.at];
                if digits.len() > 1 && digits.starts_with('0') {
                    return None;
                }
                // A `.`, `e` or `E` next is not a `,` or `}`: the caller returns `None`.
                digits.parse::<u64>().ok().map(Value::from)
            }
            _ => None,
        }
    }

    /// `[worker, job_id, extranonce2, ntime, nonce (, version_bits | null)]`, all valid.
    fn params(&mut self) -> Option<SubmitRef<'a>> {
        self.eat(b'[')?;
        let worker = self.string()?;
        self.eat(b',')?;
        let job_id = self.string()?;
        self.eat(b',')?;
        let extranonce2 = self.string()?;
        self.eat(b',')?;
        let ntime = self.string()?;
        self.eat(b',')?;
        let nonce = self.string()?;
        let version_bits = match self.next()? {
            b']' => None,
            b',' => {
                let bits = if self.peek()? == b'n' {
                    self.literal("null")?;
                    None
                } else {
                    Some(parse_hex_u32(&self.string()?).ok()?)
                };
                self.eat(b']')?;
                bits
            }
            _ => return None,
        };
        Some(SubmitRef {
            worker,
            job_id,
            extranonce2: Extranonce2::from_hex(&extranonce2)?,
            ntime: parse_hex_u32(&ntime).ok()?,
            nonce: parse_hex_u32(&nonce).ok()?,
            version_bits,
        })
    }
}
