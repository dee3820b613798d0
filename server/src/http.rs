//! HTTP: the dashboard page and its websocket, liveness, readiness per pipeline, Prometheus
//! metrics, and the dashboard's state as JSON.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use axum::{Json, Router};
use shopwatch_actors::handoff::Ownership;
use shopwatch_actors::supervision::StatusHandle;
use shopwatch_actors::telemetry::Metrics;

use crate::auth::http as auth_http;
use crate::auth::Auth;
use crate::live::alerts::{post_action, ActionsApi};
use crate::live::hub::{Hub, Message};
use crate::live::metrics::LiveMetrics;
use crate::live::rows::{get_rows, PageQueries};
use crate::live::trends::{get_trends, TrendsCache};
use crate::live::ws::{ws_handler, WsParams, WsState};

#[derive(Clone)]
pub struct AppState {
    pub metrics: Metrics,
    /// Per topic, where partitions without an offset in the lake start (`kafka.start`).
    pub start: Arc<std::collections::BTreeMap<String, String>>,
    /// Whether this instance computes the derived tables, and the election's members.
    pub ownership: Ownership,
    pub pipelines: Arc<Vec<StatusHandle>>,
    pub hub: Hub,
    pub live: LiveMetrics,
    pub ws: Arc<WsParams>,
    /// Where operators' alert actions are recorded (`None`: read-only).
    pub actions: Option<Arc<ActionsApi>>,
    /// Logins, tokens and roles (`None`: no auth configured, loopback only).
    pub auth: Option<Arc<Auth>>,
    /// The rows behind figures and the time ranges (`None`: no query server).
    pub queries: Option<Arc<PageQueries>>,
    pub trends: Arc<TrendsCache>,
}

impl axum::extract::FromRef<AppState> for Arc<TrendsCache> {
    fn from_ref(app: &AppState) -> Self {
        app.trends.clone()
    }
}

impl axum::extract::FromRef<AppState> for Option<Arc<PageQueries>> {
    fn from_ref(app: &AppState) -> Self {
        app.queries.clone()
    }
}

impl axum::extract::FromRef<AppState> for Option<Arc<Auth>> {
    fn from_ref(app: &AppState) -> Self {
        app.auth.clone()
    }
}

impl axum::extract::FromRef<AppState> for Option<Arc<ActionsApi>> {
    fn from_ref(app: &AppState) -> Self {
        app.actions.clone()
    }
}

impl axum::extract::FromRef<AppState> for WsState {
    fn from_ref(app: &AppState) -> WsState {
        WsState {
            hub: app.hub.clone(),
            live: app.live.clone(),
            params: app.ws.clone(),
            auth: app.auth.clone(),
        }
    }
}

pub fn router(state: AppState) -> Router {
    let gate = axum::middleware::from_fn_with_state(state.auth.clone(), auth_http::gate);
    Router::new()
        .route("/", get(index))
        .route("/app.js", get(script))
        .route("/style.css", get(style))
        .route("/ws", get(ws_handler))
        .route("/api/dashboard", get(dashboard))
        .route("/api/alerts/actions", post(post_action))
        .route("/api/rows", get(get_rows))
        .route("/api/trends", get(get_trends))
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/login", get(auth_http::login_page).post(auth_http::login))
        .route("/logout", post(auth_http::logout))
        .route("/api/session", get(auth_http::session))
        .layer(gate)
        .with_state(state)
}

// The page cannot be framed by other sites and runs only its own script.
const CSP: &str = "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; \
                   style-src 'self'; script-src 'self'; frame-ancestors 'none'";

async fn index() -> impl IntoResponse {
    (
        [
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Html(include_str!("../../web/index.html")),
    )
}

async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("../../web/app.js"),
    )
}

async fn style() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("../../web/style.css"),
    )
}

/// The newest value of every dashboard message, for scripts and curl.
async fn dashboard(State(state): State<AppState>) -> impl IntoResponse {
    let mut out = serde_json::Map::new();
    for kind in Message::KEPT {
        if let Some(v) = state.hub.latest(kind) {
            out.insert(kind.as_str().to_string(), v);
        }
    }
    Json(serde_json::Value::Object(out))
}

/// Ready or not, for anyone (a load balancer's probe); the details (pipelines and their last
/// errors, partitions, recovery, the election's members) for a logged-in caller, or for
/// everyone when no logins are configured (loopback only).
async fn readyz(
    State(state): State<AppState>,
    caller: Option<axum::Extension<auth_http::Caller>>,
) -> axum::response::Response {
    let pipelines: Vec<_> = state
        .pipelines
        .iter()
        .filter_map(StatusHandle::snapshot)
        .collect();
    let ready = !pipelines.is_empty() && pipelines.iter().all(|p| p.state.is_ready());
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    if state.auth.is_some() && caller.is_none() {
        return (code, Json(serde_json::json!({ "ready": ready }))).into_response();
    }
    // Maintenance that keeps failing does not stop ingestion, so it does not flip readiness;
    // it is listed so an operator sees it (a lake that is never maintained slows down).
    let maintenance = state.metrics.maintenance.failing();
    // Which partitions the consumer groups gave this instance (several instances share them).
    let assigned = state.metrics.group.snapshot();
    // What taking them cost: the recovery in progress, and the last one (records read again,
    // time until the lake held what the broker had when they were taken).
    let recovery: serde_json::Map<String, serde_json::Value> = state
        .metrics
        .group
        .holds()
        .into_iter()
        .map(|(topic, h)| {
            let v = serde_json::json!({
                "recovering_since_ms": h.recovering_since_ms,
                "last": h.last_recovery,
            });
            (topic, v)
        })
        .collect();
    let ownership = state.ownership.view();
    (
        code,
        Json(serde_json::json!({
            "ready": ready,
            "pipelines": pipelines,
            "maintenance_failing": maintenance,
            "assigned_partitions": assigned,
            "recovery": recovery,
            "start": *state.start,
            "derived_owner": ownership.derived_owner,
            "election": ownership,
        })),
    )
        .into_response()
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
