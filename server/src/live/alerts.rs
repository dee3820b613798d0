//! The page's alerts: groups per rule and key with what operators said about them (read back
//! from the lake through Flight SQL, decided by the one [`Mutes`] reading the detector uses),
//! and the endpoint that records an acknowledgement or a silence in `alert_actions`.

use std::sync::Arc;

use arrow_array::RecordBatch;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use shopwatch_actors::alerts::actions::{self, Action, Actions, Kind, Mutes, Request};
use shopwatch_actors::alerts::RULES;
use shopwatch_actors::events::Micros;
use shopwatch_actors::lake::{append_once, HygieneParams, Lake};
use shopwatch_actors::schema::columns::ColumnType;
use tracing::{info, warn};

use super::results::{rows, Kind as Col};
use crate::auth::http::{local, Caller};

pub const GROUP_COLUMNS: [(&str, Col); 6] = [
    ("alert_type", Col::Text),
    ("alert_key", Col::Text),
    ("alert_count", Col::Int),
    ("first_at", Col::Ts),
    ("last_at", Col::Ts),
    ("description", Col::Text),
];

/// The actions table's columns as the dashboard reads them (from its one definition).
fn action_columns() -> Vec<(&'static str, Col)> {
    actions::COLUMNS
        .iter()
        .map(|c| {
            let kind = match c.ty {
                ColumnType::Timestamp => Col::Ts,
                ColumnType::Double => Col::Float,
                ColumnType::Int | ColumnType::Long => Col::Int,
                ColumnType::Str => Col::Text,
            };
            (c.name, kind)
        })
        .collect()
}

/// Actions as the page's query returns them (milliseconds) in the table's terms (micros).
pub fn actions_from(batches: &[RecordBatch]) -> Vec<Action> {
    let ms = |v: &Value| v.as_i64().map(|t| t * 1_000);
    let text = |v: &Value| v.as_str().map(str::to_string);
    rows(batches, &action_columns())
        .iter()
        .filter_map(|r| {
            Some(Action {
                action_id: text(&r["action_id"])?,
                kind: Kind::parse(r["action"].as_str()?)?,
                rule: text(&r["alert_type"])?,
                key: text(&r["alert_key"])?,
                // Stored in micros, read in millis: the last millisecond is covered whole.
                through: ms(&r["through"]).map(|t| t + 999),
                until: ms(&r["until"]),
                note: text(&r["note"]),
                actor: text(&r["actor"]).unwrap_or_default(),
                at: ms(&r["at"])?,
            })
        })
        .collect()
}

/// Each group row with its state: `silenced` (until, by whom), `acknowledged` (an
/// acknowledgement given while this group was open, and how far it saw), or `open` (with an
/// older group's acknowledgement, if any).
pub fn groups(groups: &[RecordBatch], actions: &[Action], now: Micros) -> Vec<Value> {
    let mutes = Mutes::new(actions);
    let who = |a: &Action| json!({"by": a.actor, "at": a.at / 1_000, "note": a.note});
    rows(groups, &GROUP_COLUMNS)
        .into_iter()
        .map(|mut g| {
            let rule = g["alert_type"].as_str().unwrap_or_default().to_string();
            let key = g["alert_key"].as_str().unwrap_or_default().to_string();
            let first = g["first_at"].as_i64().unwrap_or(0) * 1_000;
            let (state, detail) = if let Some(s) = mutes.silence(&rule, &key, now) {
                let mut d = who(s);
                d["until"] = json!(s.until.map(|u| u / 1_000));
                ("silenced", d)
            } else if let Some(a) = mutes.acknowledgement(&rule, &key, first) {
                // As the detector reads it: the group it was given in stays acknowledged
                // (newer alerts in it do not page); `through` says how far the operator saw.
                let mut d = who(a);
                d["through"] = json!(a.through.map(|t| t / 1_000));
                ("acknowledged", d)
            } else if let Some(a) = mutes.acknowledgement(&rule, &key, Micros::MIN) {
                let mut d = who(a);
                d["through"] = json!(a.through.map(|t| t / 1_000));
                ("open", d)
            } else {
                ("open", Value::Null)
            };
            g["state"] = json!(state);
            g["action"] = detail;
            g
        })
        .collect()
}

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
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Int64Array, StringArray, TimestampMillisecondArray};
    use arrow_schema::{DataType, Field, Schema, TimeUnit};

    use super::*;

    fn group_batch(rows: &[(&str, &str, i64, i64, i64)]) -> RecordBatch {
        let ts = || DataType::Timestamp(TimeUnit::Millisecond, None);
        let schema = Schema::new(vec![
            Field::new("alert_type", DataType::Utf8, false),
            Field::new("alert_key", DataType::Utf8, false),
            Field::new("alert_count", DataType::Int64, false),
            Field::new("first_at", ts(), false),
            Field::new("last_at", ts(), false),
            Field::new("description", DataType::Utf8, false),
        ]);
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
            Arc::new(TimestampMillisecondArray::from_iter_values(
                rows.iter().map(|r| r.3),
            )),
            Arc::new(TimestampMillisecondArray::from_iter_values(
                rows.iter().map(|r| r.4),
            )),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|_| "d"))),
        ];
        RecordBatch::try_new(Arc::new(schema), cols).unwrap()
    }

    fn action(
        kind: Kind,
        key: &str,
        at_ms: i64,
        through_ms: Option<i64>,
        until_ms: Option<i64>,
    ) -> Action {
        Action {
            action_id: format!("{at_ms}"),
            kind,
            rule: "FATAL_ERROR".into(),
            key: key.into(),
            through: through_ms.map(|t| t * 1_000 + 999),
            until: until_ms.map(|t| t * 1_000),
            note: Some("n".into()),
            actor: "operator".into(),
            at: at_ms * 1_000,
        }
    }

    #[test]
    fn each_group_shows_what_operators_said() {
        let batch = group_batch(&[
            ("FATAL_ERROR", "payment", 57, 1_000, 9_000),
            ("FATAL_ERROR", "search", 3, 2_000, 8_000),
            ("FATAL_ERROR", "cart", 2, 2_000, 8_000),
            ("FATAL_ERROR", "db", 1, 2_000, 8_000),
        ]);
        let actions = [
            action(Kind::Silence, "payment", 9_500, None, Some(60_000)),
            action(Kind::Acknowledge, "search", 8_500, Some(8_000), None),
            action(Kind::Acknowledge, "cart", 1_600, Some(1_500), None),
            action(Kind::Acknowledge, "db", 5_000, Some(5_000), None),
        ];
        let g = groups(&[batch], &actions, 10_000_000);
        let states: Vec<&str> = g.iter().map(|r| r["state"].as_str().unwrap()).collect();
        assert_eq!(states, ["silenced", "acknowledged", "open", "acknowledged"]);
        assert_eq!(g[0]["action"]["until"], 60_000);
        assert_eq!(g[0]["alert_count"], 57);
        assert_eq!(
            g[2]["action"]["through"], 1_500,
            "an older group's acknowledgement"
        );
        assert_eq!(
            g[3]["action"]["through"], 5_000,
            "newer alerts since, still acknowledged"
        );
        let none = groups(
            &[group_batch(&[("FATAL_ERROR", "x", 1, 1, 1)])],
            &actions,
            0,
        );
        assert!(none[0]["action"].is_null());
        // The silence over, the group is open again.
        let later = groups(
            &[group_batch(&[("FATAL_ERROR", "payment", 57, 1_000, 9_000)])],
            &actions,
            60_000_000,
        );
        assert_eq!(later[0]["state"], "open");
    }

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
