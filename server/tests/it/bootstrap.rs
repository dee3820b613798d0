//! `shopwatch bootstrap dremio` against a local HTTP server that plays Dremio's side of the
//! documented sequence (ecosystem.md §1.5.2, from Dremio 25.2's sources) and refuses anything
//! out of order or with a wrong body. Not a live Dremio: no Docker engine here.

use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::harness::BIN;

const PASSWORD: &str = "Sup3rSecretPw";
const S3_SECRET: &str = "minio-secret-canary";
const TOKEN: &str = "tok-4711";

#[derive(Default)]
struct Fake {
    /// Every request, in order: "status 503", "firstuser 200", …
    log: Vec<String>,
    /// Broken rules (order, headers, bodies).
    violations: Vec<String>,
    status_calls: u32,
    ready: bool,
    user: Option<(String, String)>,
    logged_in: bool,
    source: Option<Value>,
    bad_source: bool,
}

type Shared = Arc<Mutex<Fake>>;

fn require_fields(body: &Value, fields: &[(&str, &str)], what: &str, v: &mut Vec<String>) {
    for (field, kind) in fields {
        let ok = match (*kind, body.get(*field)) {
            ("string", Some(Value::String(s))) => !s.is_empty(),
            ("int", Some(Value::Number(n))) => n.is_i64(),
            _ => false,
        };
        if !ok {
            v.push(format!("{what}: field {field} missing or not a {kind}"));
        }
    }
}

async fn status(State(s): State<Shared>) -> (StatusCode, &'static str) {
    let mut f = s.lock().unwrap();
    f.status_calls += 1;
    // Starting up for the first two polls, as a JVM does.
    let code = if f.status_calls > 2 {
        f.ready = true;
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    f.log.push(format!("status {}", code.as_u16()));
    (
        code,
        if code == StatusCode::OK {
            "OK"
        } else {
            "starting"
        },
    )
}

async fn first_user(
    State(s): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let mut f = s.lock().unwrap();
    let f = &mut *f;
    if !f.ready {
        f.violations
            .push("firstuser before server_status answered 200".into());
    }
    if headers.get("authorization").and_then(|h| h.to_str().ok()) != Some("_dremionull") {
        f.violations
            .push("firstuser without Authorization: _dremionull".into());
    }
    require_fields(
        &body,
        &[
            ("userName", "string"),
            ("password", "string"),
            ("firstName", "string"),
            ("lastName", "string"),
            ("email", "string"),
            ("createdAt", "int"),
        ],
        "firstuser",
        &mut f.violations,
    );
    if f.user.is_some() {
        f.log.push("firstuser 400".into());
        return (
            StatusCode::BAD_REQUEST,
            Json(
                json!({"errorMessage": "First user can only be created when no user is already registered"}),
            ),
        );
    }
    f.user = Some((
        body["userName"].as_str().unwrap_or_default().to_string(),
        body["password"].as_str().unwrap_or_default().to_string(),
    ));
    f.log.push("firstuser 200".into());
    (StatusCode::OK, Json(json!({"userName": body["userName"]})))
}

async fn login(State(s): State<Shared>, Json(body): Json<Value>) -> (StatusCode, Json<Value>) {
    let mut f = s.lock().unwrap();
    require_fields(
        &body,
        &[("userName", "string"), ("password", "string")],
        "login",
        &mut f.violations,
    );
    let given = (
        body["userName"].as_str().unwrap_or_default().to_string(),
        body["password"].as_str().unwrap_or_default().to_string(),
    );
    if f.user.as_ref() != Some(&given) {
        f.log.push("login 401".into());
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"errorMessage": "Login failed: Invalid username or password"})),
        );
    }
    f.logged_in = true;
    f.log.push("login 200".into());
    (
        StatusCode::OK,
        Json(json!({"token": TOKEN, "userName": given.0, "admin": true, "expires": 0})),
    )
}

fn authorized(f: &mut Fake, headers: &HeaderMap, what: &str) -> bool {
    let ok = headers.get("authorization").and_then(|h| h.to_str().ok())
        == Some(&format!("_dremio{TOKEN}"));
    if !ok || !f.logged_in {
        f.violations.push(format!(
            "{what} without the _dremio<token> header of a login"
        ));
    }
    ok
}

async fn by_path(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> (StatusCode, Json<Value>) {
    let mut f = s.lock().unwrap();
    if !authorized(&mut f, &headers, "by-path") {
        return (StatusCode::UNAUTHORIZED, Json(json!({})));
    }
    match f.source.clone() {
        Some(src) if src["name"] == name.as_str() => {
            f.log.push("by-path 200".into());
            (StatusCode::OK, Json(src))
        }
        _ => {
            f.log.push("by-path 404".into());
            (
                StatusCode::NOT_FOUND,
                Json(
                    json!({"errorMessage": format!("Could not find entity with path [[{name}]]")}),
                ),
            )
        }
    }
}

async fn create_source(
    State(s): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let mut f = s.lock().unwrap();
    if !authorized(&mut f, &headers, "catalog POST") {
        return (StatusCode::UNAUTHORIZED, Json(json!({})));
    }
    let c = &body["config"];
    let expect = [
        ("/entityType", json!("source")),
        ("/type", json!("NESSIE")),
        ("/name", json!("nessie_minio_catalog")),
        (
            "/config/nessieEndpoint",
            json!("http://nessie:19120/api/v2"),
        ),
        ("/config/nessieAuthType", json!("NONE")),
        ("/config/storageProvider", json!("AWS")),
        ("/config/awsRootPath", json!("lakehouse")),
        ("/config/credentialType", json!("ACCESS_KEY")),
        ("/config/awsAccessKey", json!("minio-user")),
        ("/config/awsAccessSecret", json!(S3_SECRET)),
        ("/config/secure", json!(false)),
    ];
    for (ptr, want) in expect {
        if body.pointer(ptr) != Some(&want) {
            f.violations.push(format!(
                "source body {ptr}: {:?}, want {want}",
                body.pointer(ptr)
            ));
        }
    }
    let props: Vec<(String, String)> = c["propertyList"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    (
                        p["name"].as_str().unwrap_or_default().to_string(),
                        p["value"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    for (k, v) in [
        ("fs.s3a.endpoint", "minio:9000"),
        ("fs.s3a.path.style.access", "true"),
        ("dremio.s3.compat", "true"),
    ] {
        if !props.contains(&(k.to_string(), v.to_string())) {
            f.violations
                .push(format!("source propertyList lacks {k}={v}: {props:?}"));
        }
    }
    if f.source.is_some() {
        f.log.push("create 409".into());
        return (
            StatusCode::CONFLICT,
            Json(json!({"errorMessage": "exists"})),
        );
    }
    let mut entity = body.clone();
    entity["id"] = json!("3f0e-source");
    entity["state"] = if f.bad_source {
        json!({"status": "bad", "messages": [{"level": "ERROR", "message": "Unable to connect to Nessie: Connection refused"}]})
    } else {
        json!({"status": "good", "messages": []})
    };
    f.source = Some(entity.clone());
    f.log.push("create 200".into());
    (StatusCode::OK, Json(entity))
}

async fn fake_dremio(bad_source: bool) -> (String, Shared) {
    let state: Shared = Arc::new(Mutex::new(Fake {
        bad_source,
        ..Fake::default()
    }));
    let app = Router::new()
        .route("/apiv2/server_status", get(status))
        .route("/apiv2/bootstrap/firstuser", put(first_user))
        .route("/apiv2/login", post(login))
        .route("/api/v3/catalog/by-path/{name}", get(by_path))
        .route("/api/v3/catalog", post(create_source))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), state)
}

/// Run the real binary; returns (success, stdout + stderr).
async fn bootstrap(url: &str, password: &str) -> (bool, String) {
    let out = tokio::process::Command::new(BIN)
        .args(["bootstrap", "dremio", "--url", url, "--wait-s", "20"])
        .env("DREMIO_PASSWORD", password)
        .env("S3_ACCESS_KEY", "minio-user")
        .env("S3_SECRET_KEY", S3_SECRET)
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains(PASSWORD), "password printed:\n{text}");
    assert!(!text.contains(S3_SECRET), "S3 secret printed:\n{text}");
    (out.status.success(), text)
}

fn take_log(state: &Shared) -> Vec<String> {
    std::mem::take(&mut state.lock().unwrap().log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dremio_bootstrap_follows_the_documented_sequence_and_is_idempotent() {
    let (url, state) = fake_dremio(false).await;

    let (ok, out) = bootstrap(&url, PASSWORD).await;
    assert!(ok, "{out}");
    assert_eq!(
        take_log(&state),
        [
            "status 503",
            "status 503",
            "status 200",
            "firstuser 200",
            "login 200",
            "by-path 404",
            "create 200"
        ]
    );
    assert!(
        out.contains("source nessie_minio_catalog state good"),
        "{out}"
    );

    // Again: the user and the source exist; nothing is created twice.
    let (ok, out) = bootstrap(&url, PASSWORD).await;
    assert!(ok, "{out}");
    assert_eq!(
        take_log(&state),
        ["status 200", "firstuser 400", "login 200", "by-path 200"]
    );
    assert!(out.contains("a user exists already"), "{out}");

    // A different password than the one the user was created with: a clear error.
    let (ok, out) = bootstrap(&url, "0therPassw0rd").await;
    assert!(!ok);
    assert!(
        out.contains("logging in to Dremio as admin: HTTP 401"),
        "{out}"
    );
    assert!(!out.contains("0therPassw0rd"));

    // Refused before any request: Dremio's own password rule.
    let before = state.lock().unwrap().log.len();
    let (ok, out) = bootstrap(&url, "short").await;
    assert!(!ok);
    assert!(out.contains("at least 8 characters"), "{out}");
    assert_eq!(state.lock().unwrap().log.len(), before);

    let f = state.lock().unwrap();
    assert!(f.violations.is_empty(), "{:#?}", f.violations);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dremio_bootstrap_fails_on_a_bad_source_state_and_an_absent_dremio() {
    let (url, state) = fake_dremio(true).await;
    let (ok, out) = bootstrap(&url, PASSWORD).await;
    assert!(!ok);
    assert!(
        out.contains("bad state: Unable to connect to Nessie: Connection refused"),
        "{out}"
    );
    assert!(state.lock().unwrap().violations.is_empty());

    // Nothing listening: gives up after --wait-s with the address in the message.
    let port = crate::harness::free_port();
    let out = tokio::process::Command::new(BIN)
        .args(["bootstrap", "dremio", "--wait-s", "3"])
        .arg("--url")
        .arg(format!("http://127.0.0.1:{port}"))
        .env("DREMIO_PASSWORD", PASSWORD)
        .env("S3_ACCESS_KEY", "minio-user")
        .env("S3_SECRET_KEY", S3_SECRET)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not ready after 3 s"), "{err}");
}
