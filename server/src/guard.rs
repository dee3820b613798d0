//! The first thing every HTTP request meets: a request id (in the `x-request-id` header and
//! in every error), the `Host` allowlist (a DNS-rebinding page names its own host: 421), and
//! the error bodies: a 5xx answer says "internal error" and its request id, the detail goes to
//! the log only; a handler that panics answers the same instead of resetting the connection.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::FutureExt;
use serde_json::json;
use tracing::{error, warn};

/// Which `Host` names this server answers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostPolicy {
    /// These names (lowercase, without port).
    Only(Vec<String>),
    /// Anything (a non-loopback listener with no `http.allowed_hosts`; warned at start).
    Any,
}

const LOOPBACK_NAMES: [&str; 4] = ["localhost", "127.0.0.1", "[::1]", "::1"];

impl HostPolicy {
    /// `http.allowed_hosts` when set; on a loopback listener, the loopback names.
    pub fn new(listen: SocketAddr, configured: &[String]) -> Self {
        if !configured.is_empty() {
            return HostPolicy::Only(configured.iter().map(|h| h.to_lowercase()).collect());
        }
        if listen.ip().is_loopback() {
            return HostPolicy::Only(LOOPBACK_NAMES.iter().map(|s| s.to_string()).collect());
        }
        HostPolicy::Any
    }

    /// Whether a request naming `host` (`name[:port]`; `None`: a client that sent none, which
    /// no browser does) is for us.
    pub fn allows(&self, host: Option<&str>) -> bool {
        let (HostPolicy::Only(names), Some(host)) = (self, host) else {
            return true;
        };
        let name = strip_port(host.trim()).to_lowercase();
        // Literal loopback addresses are always ours on a loopback listener's list.
        names.iter().any(|n| *n == name)
            || (names.iter().any(|n| n == "127.0.0.1")
                && name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()))
    }
}

fn strip_port(host: &str) -> &str {
    if let Some(end) = host.strip_prefix('[').and_then(|h| h.find(']')) {
        return &host[..end + 2];
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) && !name.contains(':') => {
            name
        }
        _ => host,
    }
}

fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..16].to_string()
}

/// A JSON error with the request id.
pub fn error_body(code: StatusCode, error: &str, id: &str) -> Response {
    (code, Json(json!({ "error": error, "request_id": id }))).into_response()
}

pub async fn guard(State(hosts): State<Arc<HostPolicy>>, req: Request, next: Next) -> Response {
    let id = new_id();
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_string()));
    let path = req.uri().path().to_string();
    let mut response = if !hosts.allows(host.as_deref()) {
        warn!(request_id = %id, host = ?host.as_deref().map(|h| h.chars().take(100).collect::<String>()), "request for another host refused");
        error_body(
            StatusCode::MISDIRECTED_REQUEST,
            "this server does not answer to that host name (http.allowed_hosts)",
            &id,
        )
    } else {
        match std::panic::AssertUnwindSafe(next.run(req))
            .catch_unwind()
            .await
        {
            Ok(r) => r,
            Err(_) => {
                error!(request_id = %id, %path, "a handler panicked");
                let mut r = error_body(StatusCode::INTERNAL_SERVER_ERROR, "internal error", &id);
                r.extensions_mut().insert(Generic);
                r
            }
        }
    };
    let status = response.status();
    // Internal errors and upstream failures keep their detail in the log; "busy" and "not
    // ready" (503) are meant for the caller.
    if matches!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR | StatusCode::BAD_GATEWAY | StatusCode::GATEWAY_TIMEOUT
    ) && response.extensions().get::<Generic>().is_none()
    {
        let body = std::mem::replace(response.body_mut(), Body::empty());
        let detail = axum::body::to_bytes(body, 64 * 1024)
            .await
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        warn!(request_id = %id, %path, status = status.as_u16(), %detail, "request failed");
        response = error_body(status, "internal error", &id);
        response.extensions_mut().insert(Generic);
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

/// Marks a body that is already generic.
#[derive(Clone, Copy)]
struct Generic;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_only_on_a_loopback_listener() {
        let local = HostPolicy::new("127.0.0.1:8080".parse().unwrap(), &[]);
        for ok in [
            Some("127.0.0.1:8080"),
            Some("localhost:8080"),
            Some("LOCALHOST"),
            Some("[::1]:8080"),
            Some("127.0.0.2:80"),
            None,
        ] {
            assert!(local.allows(ok), "{ok:?}");
        }
        for bad in [
            "evil.example:8080",
            "evil.example",
            "127.0.0.1.evil.example",
            "10.0.0.1",
        ] {
            assert!(!local.allows(Some(bad)), "{bad}");
        }
        let named = HostPolicy::new(
            "0.0.0.0:8080".parse().unwrap(),
            &["Shop.Example".to_string()],
        );
        assert!(named.allows(Some("shop.example:443")));
        assert!(!named.allows(Some("localhost:8080")));
        assert_eq!(
            HostPolicy::new("0.0.0.0:8080".parse().unwrap(), &[]),
            HostPolicy::Any
        );
        assert!(HostPolicy::Any.allows(Some("anything")));
    }
}
