//! The endpoint that records an acknowledgement or a silence in `alert_actions` (what the page
//! shows of the groups is `model/alert_groups.rs`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use shopwatch_actors::alerts::actions::{self, Action, Actions, Request};
use shopwatch_actors::alerts::RULES;
use shopwatch_actors::lake::{append_once, HygieneParams, Lake};
use tracing::{info, warn};

use crate::auth::http::{local, Caller};

/// What the endpoint needs to record an action.
pub struct ActionsApi {
    pub lake: Lake,
    pub hygiene: HygieneParams,
    /// Actions per user per minute (`http.actions_per_minute`): each is a commit to the lake.
    pub limiter: std::sync::Mutex<crate::auth::limiter::Limiter>,
}

impl ActionsApi {
    pub fn new(lake: Lake, hygiene: HygieneParams, per_minute: u32) -> Self {
        ActionsApi {
            lake,
            hygiene,
            limiter: std::sync::Mutex::new(crate::auth::limiter::Limiter::new(
                per_minute,
                std::time::Duration::from_secs(60),
            )),
        }
    }

    /// Count one action of `actor`; `Err(wait)` past the limit.
    fn take(&self, actor: &str) -> Result<(), std::time::Duration> {
        let now = std::time::Instant::now();
        let mut l = self.limiter.lock().unwrap_or_else(|e| e.into_inner());
        l.check(actor, now)?;
        l.fail(actor, now);
        Ok(())
    }
}

fn refuse(code: StatusCode, error: impl Into<String>) -> Response {
    (code, Json(json!({ "error": error.into() }))).into_response()
}

/// A browser only sends a JSON body cross-site after a CORS preflight we never answer, and its
/// `Origin` names the page it came from: both together keep other sites from acting here.
fn same_site(headers: &HeaderMap, uri: &axum::http::Uri) -> Result<(), &'static str> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return Err("send the action as Content-Type: application/json");
    }
    crate::auth::http::same_origin(headers, uri)?;
    Ok(())
}

/// `POST /api/alerts/actions`: `{"action": "acknowledge|unacknowledge|silence|unsilence",
/// "alert_type", "alert_key", "through"?, "duration_s"?, "note"?}`.
pub async fn post_action(
    State(api): State<Option<Arc<ActionsApi>>>,
    caller: Option<axum::Extension<Caller>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(api) = api else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "no lake to record actions in",
        );
    };
    if let Err(e) = same_site(&headers, &uri) {
        return refuse(StatusCode::FORBIDDEN, e);
    }
    let req: Request = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("body: {e}")),
    };
    let rules: Vec<&str> = RULES.iter().map(|r| r.name).collect();
    let now = chrono::Utc::now().timestamp_micros();
    let id = uuid::Uuid::now_v7().to_string();
    // Without auth (loopback only) everyone is the local operator.
    let actor = caller.map_or_else(|| local().principal.name, |c| c.0.principal.name);
    if let Err(wait) = api.take(&actor) {
        let mut r = refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "too many alert actions; at most http.actions_per_minute a minute",
        );
        if let Ok(v) = axum::http::HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    let action = match Action::from_request(&req, &rules, &actor, id.clone(), now) {
        Ok(a) => a,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e),
    };
    let rows = Actions(vec![action.clone()]);
    match append_once(
        api.lake.clone(),
        &actions::spec(),
        api.hygiene.clone(),
        &id,
        &rows,
    )
    .await
    {
        Ok(_) => {
            info!(action = action.kind.as_str(), alert_type = %action.rule, key = %action.key, actor = %action.actor, "alert action recorded");
            (
                StatusCode::CREATED,
                Json(json!({
                    "action_id": action.action_id,
                    "action": action.kind.as_str(),
                    "alert_type": action.rule,
                    "alert_key": action.key,
                    "through": action.through,
                    "until": action.until,
                })),
            )
                .into_response()
        }
        Err(e) => {
            warn!(error = %e, "recording an alert action failed");
            refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "the lake did not take the action; try again",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_same_site_json_may_act() {
        let uri: axum::http::Uri = "/api/alerts/actions".parse().unwrap();
        let mut h = HeaderMap::new();
        assert!(same_site(&h, &uri).is_err(), "a form post has no JSON type");
        h.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        assert!(same_site(&h, &uri).is_ok(), "scripts send no Origin");
        h.insert(header::HOST, "127.0.0.1:8080".parse().unwrap());
        h.insert(header::ORIGIN, "http://127.0.0.1:8080".parse().unwrap());
        assert!(same_site(&h, &uri).is_ok());
        h.insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        assert_eq!(same_site(&h, &uri), Err("cross-site request refused"));
        // HTTP/2 has no Host header: the authority is the URI's.
        h.remove(header::HOST);
        h.insert(header::ORIGIN, "https://localhost:8443".parse().unwrap());
        let h2: axum::http::Uri = "https://localhost:8443/api/alerts/actions".parse().unwrap();
        assert!(same_site(&h, &h2).is_ok());
        assert!(same_site(&h, &uri).is_err());
    }
}
