//! `mining.submit`: one share, the hot path of the protocol.

use serde::Deserialize;
use serde::de::{SeqAccess, Visitor};
use serde_json::Value;
use std::borrow::Cow;

use super::message::{LineSink, ProtocolError, push_hex, push_hex_u32, push_json_str, push_u64};
use super::params::{Params, hex_u32, parse_hex_bytes, parse_hex_u32};
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

/// A `mining.submit` line read in one pass, strings borrowed from the line where they have no
/// escapes ([`Submit::parse_line`]).
#[derive(Deserialize)]
struct SubmitLine<'a> {
    #[serde(default)]
    id: Value,
    #[serde(borrow)]
    method: Cow<'a, str>,
    #[serde(borrow)]
    params: SubmitParams<'a>,
}

/// `[worker, job_id, extranonce2, ntime, nonce (, version_bits)]`, all strings (version bits may
/// be null); further items are ignored, as `Submit::parse` ignores them.
struct SubmitParams<'a> {
    fields: [Cow<'a, str>; 5],
    version_bits: Option<Cow<'a, str>>,
}

impl<'de: 'a, 'a> Deserialize<'de> for SubmitParams<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SubmitParams<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("mining.submit parameters")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut next = || -> Result<Cow<'de, str>, A::Error> {
                    seq.next_element::<Cow<'de, str>>()?
                        .ok_or_else(|| serde::de::Error::custom("missing"))
                };
                let fields = [next()?, next()?, next()?, next()?, next()?];
                let version_bits = seq.next_element::<Option<Cow<'de, str>>>()?.flatten();
                // Read (and dropped) as `Value`s, as the generic path reads them: the same
                // nesting limit applies (serde's `IgnoredAny` would skip any depth).
                while seq.next_element::<Value>()?.is_some() {}
                Ok(SubmitParams {
                    fields,
                    version_bits,
                })
            }
        }
        d.deserialize_seq(V)
    }
}

impl Submit {
    /// A whole `mining.submit` line parsed straight into its id and typed fields, without a
    /// `Value` tree: `Some` only when the line is a `mining.submit` request whose parameters
    /// are all valid (strings; hex within bounds), and then exactly what
    /// `parse_line` + [`super::MinerRequest::parse`] give for it. `None` for anything else,
    /// valid or not, which the caller hands to the generic path for its answer (so error
    /// answers and metrics stay those of the generic path).
    pub fn parse_line(line: &str) -> Option<(Value, Submit)> {
        let line = line.trim();
        // A derived struct also reads from an array; the generic path wants an object.
        if !line.starts_with('{') {
            return None;
        }
        let raw: SubmitLine = serde_json::from_str(line).ok()?;
        if raw.method != method::SUBMIT {
            return None;
        }
        let [worker, job_id, en2, ntime, nonce] = raw.params.fields;
        let submit = Submit {
            worker: worker.into_owned(),
            job_id: job_id.into_owned(),
            extranonce2: parse_hex_bytes(&en2, MAX_EXTRANONCE_BYTES).ok()?,
            ntime: parse_hex_u32(&ntime).ok()?,
            nonce: parse_hex_u32(&nonce).ok()?,
            version_bits: match raw.params.version_bits {
                None => None,
                Some(b) => Some(parse_hex_u32(&b).ok()?),
            },
        };
        Some((raw.id, submit))
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
