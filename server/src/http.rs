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
use crate::live::api::actions::{post_action, ActionsApi};
use crate::live::api::rows::{get_rows, PageQueries};
use crate::live::api::trends::{get_trends, TrendsCache};
use crate::live::api::ws::{ws_handler, WsParams, WsState};
use crate::live::tasks::hub::{Hub, Message};
use crate::live::tasks::metrics::LiveMetrics;

#[derive(Clone)]
pub struct AppState {
    pub metrics: Metrics,
    /// Per topic, where partitions without an offset in the lake start (`kafka.start`).
    pub start: Arc<std::collections::BTreeMap<String, String>>,
    /// Whether this instance computes the rollup tables, and the election's members.
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

/// Who may call a route when logins are on (on loopback without logins: anyone).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// No login needed.
    Open,
    /// A session or a bearer token, any role.
    Login,
    /// A session or a bearer token with the `operator` role.
    Operator,
    /// A login, unless `auth.public_metrics`.
    Metrics,
}

/// One route: documented here, mounted from here (docs/reference/http.md is generated from
/// this table, so what is served and what is documented are one list).
pub struct Route {
    pub path: &'static str,
    pub methods: &'static str,
    pub access: Access,
    pub doc: &'static str,
    mount: fn(Router<AppState>) -> Router<AppState>,
}

pub const ROUTES: &[Route] = &[
    Route { path: "/", methods: "GET", access: Access::Login, doc: "The dashboard page (a browser without a session is sent to /login).", mount: |r| r.route("/", get(index)) },
    Route { path: "/views.js", methods: "GET", access: Access::Login, doc: "The page's script, part 1: the cards each KPI declares.", mount: |r| r.route("/views.js", get(|| async { script(include_str!("../../web/views.js")) })) },
    Route { path: "/charts.js", methods: "GET", access: Access::Login, doc: "The page's script, part 2: charts, funnels and tables.", mount: |r| r.route("/charts.js", get(|| async { script(include_str!("../../web/charts.js")) })) },
    Route { path: "/app.js", methods: "GET", access: Access::Login, doc: "The page's script, part 3: state, tables, alerts, health, the socket.", mount: |r| r.route("/app.js", get(|| async { script(include_str!("../../web/app.js")) })) },
    Route { path: "/style.css", methods: "GET", access: Access::Open, doc: "The page's stylesheet (the login page uses it too).", mount: |r| r.route("/style.css", get(style)) },
    Route { path: "/ws", methods: "GET (websocket)", access: Access::Login, doc: "The page's websocket: a snapshot, then the messages below as they change. Origin must be the page's own or in http.ws_allowed_origins.", mount: |r| r.route("/ws", get(ws_handler)) },
    Route { path: "/api/dashboard", methods: "GET", access: Access::Login, doc: "Everything the page shows, as one JSON document (the websocket snapshot's data).", mount: |r| r.route("/api/dashboard", get(dashboard)) },
    Route { path: "/api/alerts/actions", methods: "POST", access: Access::Operator, doc: "Acknowledge, silence or undo an alert group: JSON {action, alert_type, alert_key, through?, duration_s?, note?}; 201 with the recorded action, 400 naming the field. Sessions also need X-CSRF-Token.", mount: |r| r.route("/api/alerts/actions", post(post_action)) },
    Route { path: "/api/rows", methods: "GET", access: Access::Login, doc: "The raw rows behind a figure: ?what=orders|errors|clicks&from=ms&to=ms (at most 24 h), optional service, serious=true (ERROR and FATAL only), product, step (funnel step 0–2); 400 naming a bad parameter.", mount: |r| r.route("/api/rows", get(get_rows)) },
    Route { path: "/api/trends", methods: "GET", access: Access::Login, doc: "Every declared chart over a longer range: ?range=30m|6h|24h.", mount: |r| r.route("/api/trends", get(get_trends)) },
    Route { path: "/livez", methods: "GET", access: Access::Open, doc: "200 `ok` while the process serves HTTP.", mount: |r| r.route("/livez", get(|| async { "ok" })) },
    Route { path: "/readyz", methods: "GET", access: Access::Open, doc: "200 when every supervised group runs, else 503. Without a login only {\"ready\": …}; with one, each group's state and why it stopped, recovery, start positions, assignment, election and failing maintenance steps.", mount: |r| r.route("/readyz", get(readyz)) },
    Route { path: "/metrics", methods: "GET", access: Access::Metrics, doc: "Prometheus text format (see metrics.md). Also on http.metrics_listen, without a login, when set.", mount: |r| r.route("/metrics", get(metrics)) },
    Route { path: "/login", methods: "GET, POST", access: Access::Open, doc: "The login form; POST (form or JSON {user, password}) sets the session cookie. Limited per name and address (429) and in concurrent checks (503).", mount: |r| r.route("/login", get(auth_http::login_page).post(auth_http::login)) },
    Route { path: "/logout", methods: "POST", access: Access::Login, doc: "Ends the session; its websockets close with code 4001.", mount: |r| r.route("/logout", post(auth_http::logout)) },
    Route { path: "/api/session", methods: "GET", access: Access::Login, doc: "Who is logged in, their role, and the CSRF token for state changes.", mount: |r| r.route("/api/session", get(auth_http::session)) },
];

/// `/metrics` alone, no login: for `http.metrics_listen`.
pub fn metrics_router(state: AppState) -> Router {
    ROUTES
        .iter()
        .filter(|r| r.access == Access::Metrics)
        .fold(Router::new(), |r, route| (route.mount)(r))
        .with_state(state)
}

pub fn router(state: AppState) -> Router {
    let gate = axum::middleware::from_fn_with_state(state.auth.clone(), auth_http::gate);
    ROUTES
        .iter()
        .fold(Router::new(), |r, route| (route.mount)(r))
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

fn script(body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
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
    // Wakes an idle refresher: the next read has fresh values (this one may not).
    state.hub.asked();
    let mut out = serde_json::Map::new();
    for &kind in Message::KEPT {
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
            "rollup_owner": ownership.rollup_owner,
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

#[cfg(test)]
mod route_tests {
    use super::*;

    /// The routes documented as open are exactly the ones the login gate lets through.
    #[test]
    fn documented_access_is_the_gates() {
        for r in ROUTES {
            assert_eq!(
                r.access == Access::Open,
                auth_http::OPEN.contains(&r.path),
                "{}: documented {:?}",
                r.path,
                r.access
            );
        }
        for p in auth_http::OPEN {
            assert!(
                ROUTES.iter().any(|r| r.path == p),
                "{p} is open but not a route"
            );
        }
    }
}
