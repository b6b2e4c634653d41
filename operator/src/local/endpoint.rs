//! Local mode's HTTP endpoint: `GET /status` (the status tables as JSON, what `hashsched status
//! --url` reads), `GET /metrics` (the embedded hub's metrics — the same series a cluster's hub pods
//! export — followed by the per-contract and per-worker SLIs the operator exports, encoded by
//! [`crate::scheduler::sli`], so the Prometheus rules and dashboards work unchanged) and
//! `GET /healthz`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hashsched_hub::HubHandle;
use hashsched_hub::http::OPENMETRICS_CONTENT_TYPE;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::error;

use super::store::StatusDocument;
use crate::scheduler::sli::{self, SliSnapshot};

/// Path of the status endpoint.
pub const STATUS_PATH: &str = "/status";

/// What the handlers read.
#[derive(Clone)]
pub struct HttpState {
    pub status: watch::Receiver<Arc<StatusDocument>>,
    pub hub: Arc<HubHandle>,
    /// The SLIs of the latest cycle.
    pub slis: watch::Receiver<Arc<SliSnapshot>>,
}

/// The routes, for serving and for in-process tests.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route(STATUS_PATH, get(status))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(state)
}

/// Serves until the task is aborted.
pub async fn serve(listener: TcpListener, state: HttpState) {
    if let Err(e) = axum::serve(listener, router(state)).await {
        error!(error = %e, "local status endpoint stopped");
    }
}

async fn status(State(s): State<HttpState>) -> Response {
    let doc = s.status.borrow().clone();
    match serde_json::to_string(&*doc) {
        Ok(j) => ([(header::CONTENT_TYPE, "application/json")], j).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn metrics(State(s): State<HttpState>) -> Response {
    let slis = s.slis.borrow().clone();
    (
        [(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)],
        merge_expositions(&s.hub.metrics_text(), &sli::render(slis)),
    )
        .into_response()
}

/// Two OpenMetrics expositions as one: the first's `# EOF` goes, the second's ends the text.
pub fn merge_expositions(first: &str, second: &str) -> String {
    let body = first
        .trim_end()
        .strip_suffix("# EOF")
        .unwrap_or(first.trim_end())
        .trim_end();
    let mut out = String::with_capacity(body.len() + second.len() + 1);
    out.push_str(body);
    if !body.is_empty() {
        out.push('\n');
    }
    out.push_str(second);
    out
}
