//! `mining.submit`: one share, the hot path of the protocol.

use serde_json::Value;

use super::message::{LineSink, ProtocolError, push_hex, push_hex_u32, push_json_str, push_u64};
use super::params::{Params, hex_u32};
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

impl Submit {
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
