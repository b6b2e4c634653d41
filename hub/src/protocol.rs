//! Stratum V1 JSON-RPC codec: one JSON object per `\n`-terminated line, in both directions.
//!
//! The hub speaks it towards miners (as a server) and towards pools (as a client); the simulated
//! miner and pool speak the other side with the same types, so every method has a typed form that
//! can be parsed AND serialized. Parsing is lenient where real software differs (ids are numbers or
//! strings and are echoed verbatim, errors come as arrays, objects or strings) and precise where the
//! bytes matter (hex fields, sizes, difficulty values): a bad field gives a [`ProtocolError`] that
//! names the method and parameter, never a panic. Method names and submit error codes live here
//! and nowhere else (see docs/protocol.md).

mod message;
mod params;

// ---------------------------------------------------------------------------------------------
// Miner → server requests.

mod authorize;
mod configure;
mod miner_request;
mod submit;
mod subscribe;

// ---------------------------------------------------------------------------------------------
// Server → miner requests and notifications.

mod server_request;

pub use authorize::Authorize;
pub use configure::{Configure, ConfigureResult};
pub use message::{
    Message, ProtocolError, Request, Response, StratumError, error_line, id, notification_line,
    parse_line, parse_line_without_shortcut, push_true_line, request_line, result_line, true_line,
};
pub use miner_request::MinerRequest;
pub use params::{check_difficulty, difficulty_value, hex_u32, parse_hex_bytes, parse_hex_u32};
pub use server_request::{Notify, Reconnect, ServerRequest, SetExtranonce};
pub use submit::{Extranonce2, Submit, SubmitRef};
pub use subscribe::{Subscribe, SubscribeResult, standard_subscriptions};

/// Method names, in one place.
pub mod method {
    pub const CONFIGURE: &str = "mining.configure";
    pub const SUBSCRIBE: &str = "mining.subscribe";
    pub const EXTRANONCE_SUBSCRIBE: &str = "mining.extranonce.subscribe";
    pub const AUTHORIZE: &str = "mining.authorize";
    pub const SUGGEST_DIFFICULTY: &str = "mining.suggest_difficulty";
    pub const SUBMIT: &str = "mining.submit";
    pub const SET_DIFFICULTY: &str = "mining.set_difficulty";
    pub const SET_EXTRANONCE: &str = "mining.set_extranonce";
    pub const SET_VERSION_MASK: &str = "mining.set_version_mask";
    pub const NOTIFY: &str = "mining.notify";
    pub const RECONNECT: &str = "client.reconnect";
    pub const GET_VERSION: &str = "client.get_version";
    pub const SHOW_MESSAGE: &str = "client.show_message";
}

/// `mining.configure` extension names (BIP 310).
pub mod extension {
    pub const VERSION_ROLLING: &str = "version-rolling";
    pub const VERSION_ROLLING_MASK: &str = "version-rolling.mask";
    pub const VERSION_ROLLING_MIN_BIT_COUNT: &str = "version-rolling.min-bit-count";
    pub const MINIMUM_DIFFICULTY: &str = "minimum-difficulty";
    pub const MINIMUM_DIFFICULTY_VALUE: &str = "minimum-difficulty.value";
    pub const SUBSCRIBE_EXTRANONCE: &str = "subscribe-extranonce";
}

/// Stratum error codes (submit and general), in one place.
pub mod error_code {
    /// Other / unknown (also: unknown method).
    pub const OTHER: i64 = 20;
    /// Job not found (stale share).
    pub const JOB_NOT_FOUND: i64 = 21;
    /// Duplicate share.
    pub const DUPLICATE: i64 = 22;
    /// Low difficulty share.
    pub const LOW_DIFFICULTY: i64 = 23;
    /// Unauthorized worker.
    pub const UNAUTHORIZED: i64 = 24;
    /// Not subscribed.
    pub const NOT_SUBSCRIBED: i64 = 25;
}

/// BIP 320 general-purpose version bits: what the hub offers miners.
pub const BIP320_VERSION_MASK: u32 = 0x1fff_e000;
// The default line bound is a config default too: defined with the hub config in the contract.
pub use hashsched_contract::config::DEFAULT_MAX_LINE_BYTES;
/// Largest extranonce (1 or 2) we accept in bytes; real values are 0..=16.
pub const MAX_EXTRANONCE_BYTES: usize = 32;
/// Largest coinbase part (coinb1 or coinb2) we accept in bytes.
pub const MAX_COINBASE_PART_BYTES: usize = 8 * 1024;
/// Deepest merkle branch we accept (2^32 transactions is far beyond any block).
pub const MAX_MERKLE_BRANCH: usize = 32;

#[cfg(test)]
mod tests;
