//! The `/metrics` HTTP endpoint (OpenMetrics text from [`crate::metrics`]), plus `/facts` (the
//! same per-worker facts as JSON, for people and scripts) and `/healthz`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tracing::error;

use crate::shared::Shared;
use crate::stats::unix_now;

/// OpenMetrics content type (what Prometheus negotiates for).
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub(crate) async fn serve_metrics(sh: Arc<Shared>, listener: TcpListener) {
    let stop = sh.shutdown.clone();
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/facts", get(facts))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(sh);
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
    {
        error!(error = %e, "metrics endpoint stopped");
    }
}

async fn metrics(State(sh): State<Arc<Shared>>) -> Response {
    let body = sh.metrics.render();
    ([(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], body).into_response()
}

async fn facts(State(sh): State<Arc<Shared>>) -> Response {
    let f = sh.core.workers.facts(unix_now());
    match serde_json::to_string(&f) {
        Ok(j) => ([(header::CONTENT_TYPE, "application/json")], j).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}
