//! The hub's admin HTTP API: the operator pushes routing here for instant effect, and probes hit
//! `/healthz` and `/readyz`.
//!
//! | route | auth | |
//! |---|---|---|
//! | `PUT`/`POST /routing` | bearer | body: a routing document (YAML or JSON). 200 `{"generation","changed"}`; 400 with every validation error; 409 for a generation lower than the applied one (or equal with other content) |
//! | `GET /routing` | bearer | `{"generation", "document", "lastError"}`; 404 before any routing was applied |
//! | `GET /healthz` | none | 200 while the process serves |
//! | `GET /readyz` | none | 200 once a routing document is applied, else 503 with the reason |
//!
//! The token comes from a file (a mounted Secret) and is re-read on every request, so rotating the
//! Secret needs no restart; a missing or empty token file refuses every request (fail closed).
//! [`client`] is a small HTTP/1.1 client for the same API (the operator's push, tests, benches).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::routing::control::{RoutingControl, RoutingSource, SubmitError};
use crate::routing::reload::MAX_ROUTING_FILE_BYTES;

/// Largest token accepted from the token file.
const MAX_TOKEN_BYTES: u64 = 4096;

/// Where the admin bearer token comes from.
#[derive(Debug, Clone)]
pub enum TokenSource {
    /// A file (mounted Secret), re-read on each request; trailing newlines ignored.
    File(PathBuf),
    /// A fixed token (in-process hubs of `hashsched local`, tests).
    Value(String),
}

impl TokenSource {
    fn load(&self) -> Result<String, String> {
        let token = match self {
            TokenSource::Value(v) => v.clone(),
            TokenSource::File(p) => {
                use std::io::Read;
                let f = std::fs::File::open(p).map_err(|e| format!("{}: {e}", p.display()))?;
                let mut buf = Vec::new();
                f.take(MAX_TOKEN_BYTES)
                    .read_to_end(&mut buf)
                    .map_err(|e| format!("{}: {e}", p.display()))?;
                String::from_utf8(buf)
                    .map_err(|_| format!("{}: not UTF-8", p.display()))?
                    .trim_end_matches(['\n', '\r'])
                    .to_string()
            }
        };
        if token.is_empty() {
            return Err("admin token is empty".into());
        }
        Ok(token)
    }
}

/// Why a request was not authorized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("invalid bearer token")]
    Invalid,
    #[error("admin token unavailable on the hub: {0}")]
    Unconfigured(String),
}

/// Checks an `Authorization` header value against the token (constant time in the token bytes).
pub fn check_bearer(
    source: &TokenSource,
    authorization: Option<&HeaderValue>,
) -> Result<(), AuthError> {
    let expected = source.load().map_err(AuthError::Unconfigured)?;
    let given = authorization
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .ok_or(AuthError::Missing)?;
    if constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        Ok(())
    } else {
        Err(AuthError::Invalid)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for (i, x) in b.iter().enumerate() {
        diff |= x ^ a.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

/// Shared state of the admin API.
#[derive(Clone)]
pub struct AdminState {
    pub control: Arc<RoutingControl>,
    pub token: TokenSource,
}

impl AdminState {
    pub fn new(control: Arc<RoutingControl>, token: TokenSource) -> Self {
        Self { control, token }
    }
}

/// The admin router (mount it on its own port).
pub fn router(state: AdminState) -> Router {
    let limit = usize::try_from(MAX_ROUTING_FILE_BYTES).unwrap_or(usize::MAX);
    Router::new()
        .route(
            "/routing",
            get(get_routing).put(put_routing).post(put_routing),
        )
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// Serves the admin API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AdminState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": message.into() }))).into_response()
}

fn unauthorized(e: &AuthError) -> Response {
    if let AuthError::Unconfigured(why) = e {
        tracing::error!(error = %why, "admin request refused: the hub cannot read its admin token");
    }
    let mut r = error(StatusCode::UNAUTHORIZED, e.to_string());
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

async fn put_routing(State(s): State<AdminState>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(e) = check_bearer(&s.token, headers.get(header::AUTHORIZATION)) {
        return unauthorized(&e);
    }
    let control = s.control.clone();
    // Secret files are read while validating: keep that off the async workers.
    let outcome =
        tokio::task::spawn_blocking(move || control.submit_bytes(&body, RoutingSource::Api)).await;
    match outcome {
        Ok(Ok(a)) => (
            StatusCode::OK,
            axum::Json(json!({ "generation": a.generation, "changed": a.changed })),
        )
            .into_response(),
        Ok(Err(SubmitError::Invalid(rej))) => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({
                "error": rej.to_string(),
                "errors": rej.errors.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
                "appliedGeneration": s.control.applied_generation(),
            })),
        )
            .into_response(),
        Ok(Err(e)) => (
            StatusCode::CONFLICT,
            axum::Json(json!({
                "error": e.to_string(),
                "appliedGeneration": s.control.applied_generation(),
            })),
        )
            .into_response(),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("routing apply task failed: {e}"),
        ),
    }
}

async fn get_routing(State(s): State<AdminState>, headers: HeaderMap) -> Response {
    if let Err(e) = check_bearer(&s.token, headers.get(header::AUTHORIZATION)) {
        return unauthorized(&e);
    }
    match s.control.current() {
        Some(r) => (
            StatusCode::OK,
            axum::Json(json!({
                "generation": r.generation(),
                "document": r.document(),
                "lastError": s.control.last_error(),
            })),
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({
                "error": "no routing document applied yet",
                "lastError": s.control.last_error(),
            })),
        )
            .into_response(),
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(s): State<AdminState>) -> Response {
    match s.control.applied_generation() {
        Some(g) => (StatusCode::OK, format!("ready: routing generation {g}\n")).into_response(),
        None => {
            let why = s
                .control
                .last_error()
                .unwrap_or_else(|| "waiting for the first routing document".into());
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {why}\n"),
            )
                .into_response()
        }
    }
}

/// A minimal HTTP/1.1 client for the admin API (one request per connection).
pub mod client {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Largest response read.
    const MAX_RESPONSE: usize = 64 * 1024 * 1024;

    /// Errors talking to a hub's admin API.
    #[derive(Debug, thiserror::Error)]
    pub enum ClientError {
        #[error("admin API {addr}: {source}")]
        Io {
            addr: SocketAddr,
            source: std::io::Error,
        },
        #[error("admin API {addr}: malformed HTTP response: {detail}")]
        Malformed { addr: SocketAddr, detail: String },
    }

    /// Status code and body of a response.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct AdminResponse {
        pub status: u16,
        pub body: String,
    }

    impl AdminResponse {
        pub fn json(&self) -> Option<serde_json::Value> {
            serde_json::from_str(&self.body).ok()
        }
    }

    /// Sends one request; `token` becomes `Authorization: Bearer <token>`.
    pub async fn request(
        addr: SocketAddr,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &[u8],
    ) -> Result<AdminResponse, ClientError> {
        let io = |source| ClientError::Io { addr, source };
        let mut stream = tokio::net::TcpStream::connect(addr).await.map_err(io)?;
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        if let Some(t) = token {
            head.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await.map_err(io)?;
        stream.write_all(body).await.map_err(io)?;
        let mut raw = Vec::new();
        (&mut stream)
            .take(MAX_RESPONSE as u64)
            .read_to_end(&mut raw)
            .await
            .map_err(io)?;
        parse_response(&raw).map_err(|detail| ClientError::Malformed { addr, detail })
    }

    /// `PUT /routing` with a document.
    pub async fn push_routing(
        addr: SocketAddr,
        token: &str,
        document: &[u8],
    ) -> Result<AdminResponse, ClientError> {
        request(addr, "PUT", "/routing", Some(token), document).await
    }

    fn parse_response(raw: &[u8]) -> Result<AdminResponse, String> {
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or("no end of headers")?;
        let head = std::str::from_utf8(raw.get(..split).ok_or("short")?)
            .map_err(|_| "headers not UTF-8")?;
        let body = raw.get(split + 4..).unwrap_or(&[]);
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|c| c.parse().ok())
            .ok_or("bad status line")?;
        let chunked = lines.any(|l| {
            l.split_once(':').is_some_and(|(k, v)| {
                k.trim().eq_ignore_ascii_case("transfer-encoding")
                    && v.trim().eq_ignore_ascii_case("chunked")
            })
        });
        let body = if chunked {
            dechunk(body)?
        } else {
            body.to_vec()
        };
        Ok(AdminResponse {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        loop {
            let eol = data
                .windows(2)
                .position(|w| w == b"\r\n")
                .ok_or("truncated chunk size")?;
            let size_text = std::str::from_utf8(data.get(..eol).unwrap_or(&[]))
                .map_err(|_| "bad chunk size")?;
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| format!("bad chunk size {size_text:?}"))?;
            data = data.get(eol + 2..).unwrap_or(&[]);
            if size == 0 {
                return Ok(out);
            }
            out.extend_from_slice(data.get(..size).ok_or("truncated chunk")?);
            data = data.get(size + 2..).unwrap_or(&[]);
        }
    }
}

#[cfg(test)]
mod tests;
