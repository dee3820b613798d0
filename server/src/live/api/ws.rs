//! `/ws`: the Origin check and connection cap before the upgrade, then one task per client that
//! drains its outbox, pings, and closes idle, slow or oversized-frame clients.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};

use crate::auth::http::Caller;
use crate::auth::{Auth, SessionWatch};
use crate::live::tasks::hub::{Hub, Outbox};
use crate::live::tasks::metrics::LiveMetrics;

#[derive(Clone, Debug)]
pub struct WsParams {
    /// Origins allowed besides the page's own (exact `scheme://host[:port]`; `*` = any).
    pub allowed_origins: Vec<String>,
    pub max_message_bytes: usize,
    pub ping_interval: Duration,
    /// No frame (pong included) from the client for this long: closed.
    pub idle_timeout: Duration,
    /// A send that does not finish in this long: the client is dropped.
    pub write_timeout: Duration,
}

impl Default for WsParams {
    fn default() -> Self {
        WsParams {
            allowed_origins: Vec::new(),
            max_message_bytes: 64 * 1024,
            ping_interval: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// Browsers always send Origin on a websocket; other clients (curl, the soak client) may not,
/// and cannot be used for cross-site request forgery, so they are let in.
pub fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return !headers.contains_key(header::ORIGIN);
    };
    if allowed
        .iter()
        .any(|a| a == "*" || a.eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin
        .split_once("://")
        .map(|(_, rest)| rest.trim_end_matches('/'));
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

/// What `/ws` needs from the application state.
#[derive(Clone)]
pub struct WsState {
    pub hub: Hub,
    pub live: LiveMetrics,
    pub params: Arc<WsParams>,
    pub auth: Option<Arc<Auth>>,
}

/// The login session a page's websocket lives in: it closes when the session ends (logout,
/// expiry, idle) and keeps it from idling out while open.
struct InSession {
    auth: Arc<Auth>,
    id: String,
    watch: SessionWatch,
}

/// Leaves the hub when the connection ends, or when the upgrade never happens.
struct Member {
    hub: Hub,
    id: u64,
}

impl Drop for Member {
    fn drop(&mut self) {
        self.hub.leave(self.id);
    }
}

pub async fn ws_handler(
    State(app): State<WsState>,
    caller: Option<axum::Extension<Caller>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if !origin_allowed(&headers, &app.params.allowed_origins) {
        app.live.ws_rejected.with_label_values(&["origin"]).inc();
        return (
            StatusCode::FORBIDDEN,
            "origin not allowed; add it to http.ws_allowed_origins",
        )
            .into_response();
    }
    let (id, outbox) = match app.hub.join() {
        Ok(joined) => joined,
        Err(full) => return (StatusCode::SERVICE_UNAVAILABLE, full.to_string()).into_response(),
    };
    let member = Member {
        hub: app.hub.clone(),
        id,
    };
    let session = match (&app.auth, caller.and_then(|c| c.0.session)) {
        (Some(auth), Some(id)) => auth.watch_session(&id).map(|watch| InSession {
            auth: auth.clone(),
            id,
            watch,
        }),
        _ => None,
    };
    let params = app.params.clone();
    let live = app.live.clone();
    ws.max_message_size(params.max_message_bytes)
        .max_frame_size(params.max_message_bytes)
        .on_upgrade(move |socket| async move {
            serve(socket, outbox, &params, &live, session).await;
            drop(member);
        })
}

/// Resolves when the session ends or expires; never without one.
async fn session_over(session: Option<&mut InSession>) {
    let Some(s) = session else {
        return std::future::pending().await;
    };
    let expires = tokio::time::Instant::from_std(s.watch.expires);
    tokio::select! {
        _ = async { while s.watch.ended.changed().await.is_ok() {} } => {}
        _ = tokio::time::sleep_until(expires) => {}
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

async fn serve(
    socket: WebSocket,
    outbox: Arc<Outbox>,
    p: &WsParams,
    live: &LiveMetrics,
    mut session: Option<InSession>,
) {
    let (mut sink, mut stream) = socket.split();
    let last_seen = Arc::new(AtomicI64::new(now_ms()));
    let too_large = Arc::new(AtomicBool::new(false));
    let (seen, big) = (last_seen.clone(), too_large.clone());
    let mut reader = tokio::spawn(async move {
        while let Some(msg) = stream.next().await {
            match msg {
                Ok(Message::Close(_)) => break,
                // Text from the page is not interpreted; any frame shows the client is alive.
                Ok(_) => seen.store(now_ms(), Ordering::Relaxed),
                Err(e) => {
                    // A frame or message past the limit, by the error's kind.
                    let cause = e.into_inner();
                    if matches!(
                        cause.downcast_ref::<tokio_tungstenite::tungstenite::Error>(),
                        Some(tokio_tungstenite::tungstenite::Error::Capacity(_))
                    ) {
                        big.store(true, Ordering::Relaxed);
                    }
                    break;
                }
            }
        }
    });
    let mut ping = tokio::time::interval(p.ping_interval);
    ping.tick().await;
    let close = |code: u16, reason: &'static str| {
        Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        }))
    };
    let touch = session.as_ref().map(|s| (s.auth.clone(), s.id.clone()));
    let over = session_over(session.as_mut());
    tokio::pin!(over);
    loop {
        tokio::select! {
            _ = &mut over => {
                live.ws_dropped.with_label_values(&["session_ended"]).inc();
                let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(close(4001, "session ended"))).await;
                break;
            }
            _ = outbox.ready.notified() => {
                if outbox.is_closed() {
                    // Counted by the hub ("slow").
                    let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(close(1008, "too slow"))).await;
                    break;
                }
                let mut failed = false;
                for frame in outbox.take() {
                    match tokio::time::timeout(p.write_timeout, sink.send(Message::Text(frame))).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => { failed = true; break; }
                        Err(_) => {
                            live.ws_dropped.with_label_values(&["write_timeout"]).inc();
                            failed = true;
                            break;
                        }
                    }
                }
                if failed {
                    break;
                }
            }
            _ = ping.tick() => {
                // An open page keeps its session from idling out (and notices it ended).
                if let Some((auth, id)) = &touch {
                    if auth.session(id).is_none() {
                        live.ws_dropped.with_label_values(&["session_ended"]).inc();
                        let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(close(4001, "session ended"))).await;
                        break;
                    }
                }
                let idle = now_ms() - last_seen.load(Ordering::Relaxed);
                if idle > p.idle_timeout.as_millis() as i64 {
                    live.ws_dropped.with_label_values(&["idle"]).inc();
                    let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(close(1001, "idle"))).await;
                    break;
                }
                if tokio::time::timeout(p.write_timeout, sink.send(Message::Ping(Default::default()))).await.is_err() {
                    live.ws_dropped.with_label_values(&["write_timeout"]).inc();
                    break;
                }
            }
            _ = &mut reader => {
                if too_large.load(Ordering::Relaxed) {
                    live.ws_dropped.with_label_values(&["frame_too_large"]).inc();
                    let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(close(1009, "frame too large"))).await;
                }
                break;
            }
        }
    }
    reader.abort();
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        if let Some(o) = origin {
            h.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
        }
        h
    }

    #[test]
    fn same_origin_and_listed_origins_only() {
        let none: Vec<String> = Vec::new();
        assert!(origin_allowed(
            &headers(Some("http://127.0.0.1:8080"), "127.0.0.1:8080"),
            &none
        ));
        assert!(origin_allowed(&headers(None, "127.0.0.1:8080"), &none));
        assert!(!origin_allowed(
            &headers(Some("http://evil.example"), "127.0.0.1:8080"),
            &none
        ));
        assert!(!origin_allowed(
            &headers(Some("http://127.0.0.1:9999"), "127.0.0.1:8080"),
            &none
        ));
        assert!(!origin_allowed(
            &headers(Some("null"), "127.0.0.1:8080"),
            &none
        ));
        let listed = vec!["https://ops.example".to_string()];
        assert!(origin_allowed(
            &headers(Some("https://ops.example"), "10.0.0.1:8080"),
            &listed
        ));
        assert!(origin_allowed(
            &headers(Some("https://x.example"), "h:1"),
            &["*".to_string()]
        ));
    }
}
