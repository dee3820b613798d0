//! Auth on the HTTP side: the gate every request passes (session cookie or bearer token, the
//! role, CSRF for cookie-borne state changes), the login page, login, logout and
//! `/api/session`. With no users configured (loopback only) the gate lets everything through
//! as the local operator.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use tracing::info;

use super::{Auth, LoginError, Principal};
use crate::config::Role;

pub const COOKIE: &str = "shopwatch_session";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Who made a request (put in its extensions by [`gate`]).
#[derive(Clone, Debug)]
pub struct Caller {
    pub principal: Principal,
    /// Authenticated by a session cookie (a browser): state changes need the CSRF token.
    pub csrf: Option<String>,
    /// The session's id (a browser), so its websockets can close when it ends.
    pub session: Option<String>,
}

/// Without auth, everything runs as the local operator.
pub fn local() -> Caller {
    Caller {
        principal: Principal {
            name: "local".into(),
            role: Role::Operator,
        },
        csrf: None,
        session: None,
    }
}

/// Paths served without a login: the login itself, liveness and readiness probes, the style.
pub const OPEN: [&str; 4] = ["/login", "/livez", "/readyz", "/style.css"];

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A browser names the page a request came from; it must be this server's own (the `Host`
/// header, or over HTTP/2 the URI's authority).
pub fn same_origin(headers: &HeaderMap, uri: &axum::http::Uri) -> Result<(), &'static str> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(()); // scripts send none
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()));
    let origin = origin.to_str().unwrap_or_default();
    let same =
        host.is_some_and(|h| origin == format!("http://{h}") || origin == format!("https://{h}"));
    if same {
        Ok(())
    } else {
        Err("cross-site request refused")
    }
}

fn json_error(code: StatusCode, error: &str) -> Response {
    (code, Json(json!({ "error": error }))).into_response()
}

/// Which role a request needs: acting on alerts needs an operator.
fn needs(method: &Method, path: &str) -> Role {
    if method == Method::POST && path.starts_with("/api/alerts/") {
        Role::Operator
    } else {
        Role::Viewer
    }
}

fn identify(auth: &Auth, headers: &HeaderMap) -> Option<Caller> {
    if let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return auth.bearer(token.trim()).map(|principal| Caller {
            principal,
            csrf: None,
            session: None,
        });
    }
    let id = cookie(headers, COOKIE)?;
    auth.session(id).map(|(principal, csrf)| Caller {
        principal,
        csrf: Some(csrf),
        session: Some(id.to_string()),
    })
}

/// The gate: 401 without a login (the page redirects to /login), 403 for a viewer acting, 403
/// for a cookie-borne state change without the session's CSRF token.
pub async fn gate(State(auth): State<Option<Arc<Auth>>>, mut req: Request, next: Next) -> Response {
    let Some(auth) = auth else {
        req.extensions_mut().insert(local());
        return next.run(req).await;
    };
    let path = req.uri().path().to_string();
    if OPEN.contains(&path.as_str()) || (path == "/metrics" && auth.public_metrics) {
        // Open, but a known caller may see more (`/readyz` details).
        if let Some(caller) = identify(&auth, req.headers()) {
            req.extensions_mut().insert(caller);
        }
        return next.run(req).await;
    }
    let Some(caller) = identify(&auth, req.headers()) else {
        if req.method() == Method::GET && path == "/" {
            return Redirect::to("/login").into_response();
        }
        let mut r = json_error(StatusCode::UNAUTHORIZED, "login required");
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    };
    let method = req.method().clone();
    if caller.principal.role < needs(&method, &path) {
        return json_error(StatusCode::FORBIDDEN, "this needs the operator role");
    }
    let changes = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    if changes {
        if let Some(expected) = &caller.csrf {
            let sent = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok());
            let same = sent.is_some_and(|s| {
                use subtle::ConstantTimeEq;
                bool::from(s.as_bytes().ct_eq(expected.as_bytes()))
            });
            if !same {
                return json_error(StatusCode::FORBIDDEN, "CSRF token missing or wrong");
            }
        }
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

const LOGIN_CSP: &str =
    "default-src 'none'; img-src data:; style-src 'self'; form-action 'self'; frame-ancestors 'none'";

pub async fn login_page(axum::extract::RawQuery(q): axum::extract::RawQuery) -> Response {
    let page = include_str!("../../../web/login.html");
    let page = if q.as_deref().is_some_and(|q| q.contains("failed")) {
        page.replace(
            "<!--failed-->",
            r#"<p class="error" role="alert">Wrong user name or password, or too many attempts.</p>"#,
        )
    } else {
        page.to_string()
    };
    (
        [
            (header::CONTENT_SECURITY_POLICY, LOGIN_CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Html(page),
    )
        .into_response()
}

#[derive(Deserialize)]
pub struct Credentials {
    username: String,
    password: String,
}

fn set_cookie(auth: &Auth, value: &str, max_age: u64) -> HeaderValue {
    let secure = if auth.secure_cookies { "; Secure" } else { "" };
    let text =
        format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}");
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `POST /login`: a form (the page) or JSON (scripts). Success sets the session cookie.
pub async fn login(State(auth): State<Option<Arc<Auth>>>, req: Request) -> Response {
    let Some(auth) = auth else {
        return Redirect::to("/").into_response();
    };
    if let Err(e) = same_origin(req.headers(), req.uri()) {
        return json_error(StatusCode::FORBIDDEN, e);
    }
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let Ok(body) = axum::body::to_bytes(req.into_body(), 16 * 1024).await else {
        return json_error(StatusCode::PAYLOAD_TOO_LARGE, "login body too large");
    };
    let creds: Option<Credentials> = if is_json {
        serde_json::from_slice(&body).ok()
    } else {
        serde_urlencoded::from_bytes(&body).ok()
    };
    let Some(c) = creds else {
        return json_error(StatusCode::BAD_REQUEST, "send username and password");
    };
    let verdict = auth.verify_async(&c.username, &c.password, peer).await;
    // Names are logged cut short: a made-up one may be kilobytes.
    let shown: String = c.username.chars().take(64).collect();
    match verdict {
        Ok(principal) => {
            info!(user = %principal.name, role = principal.role.as_str(), "login");
            let (id, csrf) = auth.open_session(principal.clone());
            let cookie = set_cookie(&auth, &id, auth.ttl().as_secs());
            let mut r = if is_json {
                Json(json!({"user": principal.name, "role": principal.role.as_str(), "csrf": csrf}))
                    .into_response()
            } else {
                Redirect::to("/").into_response()
            };
            r.headers_mut().insert(header::SET_COOKIE, cookie);
            r
        }
        Err(LoginError::Limited(wait)) => {
            info!(user = %shown, "login rate-limited");
            let mut r = json_error(
                StatusCode::TOO_MANY_REQUESTS,
                "too many failed logins; try again later",
            );
            if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
        Err(LoginError::Busy) => {
            let mut r = json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many logins at once; try again in a second",
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            r
        }
        Err(LoginError::Refused) => {
            info!(user = %shown, "login refused");
            if is_json {
                json_error(StatusCode::UNAUTHORIZED, "wrong user name or password")
            } else {
                Redirect::to("/login?failed=1").into_response()
            }
        }
    }
}

/// `POST /logout` (through the gate, so it needs the CSRF token).
pub async fn logout(State(auth): State<Option<Arc<Auth>>>, headers: HeaderMap) -> Response {
    let Some(auth) = auth else {
        return StatusCode::NO_CONTENT.into_response();
    };
    if let Some(id) = cookie(&headers, COOKIE) {
        auth.close_session(id);
    }
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, set_cookie(&auth, "", 0));
    r
}

/// `GET /api/session`: who the page belongs to and the token its state changes must send.
pub async fn session(
    caller: Option<axum::Extension<Caller>>,
    State(auth): State<Option<Arc<Auth>>>,
) -> Response {
    let c = caller.map(|c| c.0).unwrap_or_else(local);
    Json(json!({
        "auth": auth.is_some(),
        "user": c.principal.name,
        "role": c.principal.role.as_str(),
        "csrf": c.csrf,
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acting_on_alerts_needs_an_operator() {
        assert_eq!(needs(&Method::POST, "/api/alerts/actions"), Role::Operator);
        assert_eq!(needs(&Method::GET, "/api/dashboard"), Role::Viewer);
        assert!(Role::Viewer < Role::Operator);
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; shopwatch_session=abc; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h, COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
