//! The operator's HTTP endpoint (`--metrics-addr`): `/metrics` (OpenMetrics), `/healthz` (the
//! process serves) and `/readyz` (caches synced; a standby replica waiting for the lease is ready
//! too, so a rollout does not stall on it).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::Shared;

/// What the endpoint reports.
#[derive(Debug)]
pub struct Health {
    pub shared: Arc<Shared>,
    /// Set once the operator is ready (standby, or leader with synced caches).
    pub ready: AtomicBool,
}

async fn metrics(State(h): State<Arc<Health>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            hashsched_hub::http::OPENMETRICS_CONTENT_TYPE,
        )],
        h.shared.metrics.render(),
    )
        .into_response()
}

async fn readyz(State(h): State<Arc<Health>>) -> Response {
    if h.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: caches are still syncing\n",
        )
            .into_response()
    }
}

/// The router of the endpoint.
pub fn router(health: Arc<Health>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(health)
}

/// Serves until `stop` is cancelled.
pub async fn serve(listener: TcpListener, health: Arc<Health>, stop: CancellationToken) {
    if let Err(e) = axum::serve(listener, router(health))
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
    {
        tracing::error!(error = %e, "metrics endpoint stopped");
    }
}
