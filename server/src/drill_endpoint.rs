//! `/drill/*`: the fault-injection endpoint `shopwatch drill` drives. Mounted only when
//! `drill.enabled`; every request needs `Authorization: Bearer <drill.token>`.
//!
//! - `POST /drill/actor` `{"target":"consumer"|"committer"|ROLE,"action":"panic"|"freeze","freeze_ms":N}`:
//!   the next record (consumer) or batch (committer) of any pipeline panics or stalls; any
//!   other supervised actor by its role (`detector`, `refresher`, or a KPI's name) at its next
//!   message.
//! - `POST /drill/failpoints` `{"spec":"point[@target]=[N*]pause|error|fatal|panic|delay(MS)|timeout(MS);…"}`
//!   arms any point (the actor points too: `actor.handler@detector=1*panic`), `DELETE` disarms
//!   all, `GET` lists armed, paused and fired points (a drill waits for `paused`, then SIGKILLs).
//!
//! Both arm the one registry the process's actors and crash points check (`faults`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use shopwatch_actors::faults::{self, Action, Faults, Point, Rule};
use subtle::ConstantTimeEq;

use crate::config::Secret;
use tracing::warn;

#[derive(Clone)]
pub struct DrillState {
    pub token: Arc<Secret>,
    pub faults: Arc<Faults>,
}

pub fn routes(state: DrillState) -> Router {
    Router::new()
        .route("/drill/actor", post(actor))
        .route("/drill/failpoints", get(list).post(arm).delete(disarm))
        .with_state(state)
}

fn authorized(state: &DrillState, headers: &HeaderMap) -> bool {
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    !given.is_empty() && bool::from(given.as_bytes().ct_eq(state.token.expose().as_bytes()))
}

fn refused() -> Response {
    // The header's value is never echoed or logged.
    warn!("drill request refused: missing or wrong bearer token");
    (
        StatusCode::UNAUTHORIZED,
        [(axum::http::header::WWW_AUTHENTICATE, "Bearer")],
        "drill endpoint: missing or wrong bearer token\n",
    )
        .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActorFault {
    target: String,
    action: String,
    #[serde(default)]
    freeze_ms: u64,
}

fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, format!("{message}\n")).into_response()
}

/// Parse an actor fault request into the rule it arms.
fn actor_rule(req: &ActorFault) -> Result<Rule, String> {
    let (point, target) = match req.target.as_str() {
        "consumer" => (Point::ConsumerRecord, None),
        "committer" => (Point::CommitterBatch, None),
        role if handler_roles().contains(&role) => (Point::Handler, Some(role.to_string())),
        other => {
            return Err(format!(
            "target {other:?}: expected consumer or committer (or a supervised actor's role: {})",
            handler_roles().join(", ")
        ))
        }
    };
    let action = match req.action.as_str() {
        "panic" => Action::Panic,
        "freeze" if req.freeze_ms > 0 => Action::Delay(req.freeze_ms),
        "freeze" => return Err("freeze needs freeze_ms > 0".into()),
        other => return Err(format!("action {other:?}: expected panic or freeze")),
    };
    Ok(Rule {
        point,
        action,
        times: Some(1),
        marker: None,
        target,
    })
}

/// Supervised actors with a `Handler` fault point, by role.
fn handler_roles() -> Vec<&'static str> {
    let mut roles = vec![
        shopwatch_actors::rollup::DETECTOR,
        crate::live::tasks::refresher::GROUP,
    ];
    roles.extend(shopwatch_actors::kpis::REGISTRY.iter().map(|k| k.name()));
    roles
}

async fn actor(
    State(state): State<DrillState>,
    headers: HeaderMap,
    Json(req): Json<ActorFault>,
) -> Response {
    if !authorized(&state, &headers) {
        return refused();
    }
    match actor_rule(&req) {
        Ok(rule) => {
            warn!(target = %req.target, action = %req.action, "drill: actor fault armed");
            state.faults.add(rule);
            (StatusCode::ACCEPTED, "armed\n").into_response()
        }
        Err(e) => bad_request(e.to_string()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Arm {
    spec: String,
}

async fn arm(
    State(state): State<DrillState>,
    headers: HeaderMap,
    Json(req): Json<Arm>,
) -> Response {
    if !authorized(&state, &headers) {
        return refused();
    }
    if !faults::ENABLED {
        return (
            StatusCode::NOT_IMPLEMENTED,
            "this build has no failpoints (build with --features failpoints)\n",
        )
            .into_response();
    }
    match state.faults.arm(&req.spec) {
        Ok(n) => {
            warn!(spec = %req.spec, "drill: failpoints armed");
            (StatusCode::ACCEPTED, format!("armed {n}\n")).into_response()
        }
        Err(e) => bad_request(e.to_string()),
    }
}

async fn disarm(State(state): State<DrillState>, headers: HeaderMap) -> Response {
    if !authorized(&state, &headers) {
        return refused();
    }
    state.faults.clear();
    (StatusCode::OK, "disarmed\n").into_response()
}

async fn list(State(state): State<DrillState>, headers: HeaderMap) -> Response {
    if !authorized(&state, &headers) {
        return refused();
    }
    let now = state.faults.snapshot();
    Json(serde_json::json!({
        "compiled": faults::ENABLED,
        "armed": now.armed.iter().map(|r| serde_json::json!({
            "name": r.point.name(), "target": r.target, "action": r.action.to_string(),
            "times_left": r.times,
        })).collect::<Vec<_>>(),
        "paused": now.paused,
        "fired": now.fired,
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(target: &str, action: &str, freeze_ms: u64) -> ActorFault {
        ActorFault {
            target: target.into(),
            action: action.into(),
            freeze_ms,
        }
    }

    #[test]
    fn actor_requests_map_to_rules_or_clear_errors() {
        let r = actor_rule(&req("consumer", "panic", 0)).unwrap();
        assert_eq!(
            (r.point, r.action, r.times),
            (Point::ConsumerRecord, Action::Panic, Some(1))
        );
        let r = actor_rule(&req("committer", "freeze", 5000)).unwrap();
        assert_eq!(r.action, Action::Delay(5_000));
        assert!(actor_rule(&req("committer", "freeze", 0))
            .unwrap_err()
            .contains("freeze_ms"));
        assert!(actor_rule(&req("broker", "panic", 0))
            .unwrap_err()
            .contains("consumer or committer"));
        assert!(actor_rule(&req("consumer", "explode", 0))
            .unwrap_err()
            .contains("panic or freeze"));
    }

    #[test]
    fn only_the_exact_bearer_token_passes() {
        let state = DrillState {
            token: Arc::new(Secret::new("0123456789abcdef")),
            faults: Arc::new(Faults::default()),
        };
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(axum::http::header::AUTHORIZATION, v.parse().unwrap());
            h
        };
        assert!(authorized(&state, &with("Bearer 0123456789abcdef")));
        assert!(!authorized(&state, &with("Bearer 0123456789abcde")));
        assert!(!authorized(&state, &with("0123456789abcdef")));
        assert!(!authorized(&state, &with("Bearer ")));
        assert!(!authorized(&state, &HeaderMap::new()));
    }
}
