//! Minimal HTTP: liveness, readiness per pipeline, Prometheus metrics, and the page.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::{Json, Router};
use shopwatch_actors::pipeline::{PipelineState, StatusHandle};
use shopwatch_actors::telemetry::Metrics;

#[derive(Clone)]
pub struct AppState {
    pub metrics: Metrics,
    pub pipelines: Arc<Vec<StatusHandle>>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn index() -> Html<&'static str> {
    Html(include_str!("../../web/index.html"))
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let pipelines: Vec<_> = state
        .pipelines
        .iter()
        .filter_map(StatusHandle::snapshot)
        .collect();
    let ready =
        !pipelines.is_empty() && pipelines.iter().all(|p| p.state == PipelineState::Running);
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        Json(serde_json::json!({ "ready": ready, "pipelines": pipelines })),
    )
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    // Prometheus 3 rejects a missing or malformed Content-Type.
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
