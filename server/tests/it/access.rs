//! Access off loopback: start-up refuses a public listener without auth; with `[auth]` and
//! `[tls]` the page, its API, its websocket and Flight SQL need a login or a token, a viewer
//! cannot act, a cookie without the CSRF token cannot act, wrong passwords are limited,
//! plaintext is refused, and the secrets (passwords, token, hash, certificate key) appear in no
//! log, metric, response or table.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::harness::*;

const OPS_PW: &str = "canary-ops-pw-7f3a9c2e";
const VIEW_PW: &str = "canary-view-pw-1b2c3d4e";
const TOKEN: &str = "sw_canarytoken5e6f7a8b9c0d1e2f3a4b";

fn certificate(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        // An end-entity certificate (webpki refuses a CA certificate as a server's).
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success(), "openssl could not make the test certificate");
    (cert, key)
}

fn session_cookie(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("shopwatch_session="))
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_loopback_needs_auth_and_auth_holds_for_page_api_websocket_and_flight() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, brokers) = broker(dir.path());
    let data = dir.path().join("lake");

    // A public listener without logins does not start, and says which key to set.
    let out = Command::new(BIN)
        .args([
            "run",
            "--brokers",
            &brokers,
            "--http",
            &format!("0.0.0.0:{}", free_port()),
        ])
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("auth.users") && text.contains("http.listen"),
        "{text}"
    );

    let (cert, key) = certificate(dir.path());
    let (ops_hash, view_hash) = (hash_password(OPS_PW), hash_password(VIEW_PW));
    let token_sha: String = Sha256::digest(TOKEN.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let (cert_s, key_s) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let env = [
        ("SHOPWATCH_AUTH__USERS__OPS__ROLE", "operator"),
        (
            "SHOPWATCH_AUTH__USERS__OPS__PASSWORD_HASH",
            ops_hash.as_str(),
        ),
        ("SHOPWATCH_AUTH__USERS__VIEW__ROLE", "viewer"),
        (
            "SHOPWATCH_AUTH__USERS__VIEW__PASSWORD_HASH",
            view_hash.as_str(),
        ),
        ("SHOPWATCH_AUTH__TOKENS__CI__ROLE", "viewer"),
        ("SHOPWATCH_AUTH__TOKENS__CI__SHA256", token_sha.as_str()),
        ("SHOPWATCH_AUTH__LOGIN_ATTEMPTS_PER_MINUTE", "3"),
        ("SHOPWATCH_TLS__CERT_FILE", cert_s),
        ("SHOPWATCH_TLS__KEY_FILE", key_s),
        ("RUST_LOG", "debug,h2=info,hyper=info,tower=info"),
    ];
    let (mut run, http, flight) = run_pipeline_env(&brokers, &data, &env);
    let port = http.rsplit(':').next().unwrap().to_string();
    let base = format!("https://localhost:{port}");
    let pem = std::fs::read(&cert).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while client.get(format!("{base}/livez")).send().await.is_err() {
        assert!(Instant::now() < deadline, "no TLS answer on {base}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let mut seen = String::new(); // every response body, for the canary check

    // TLS on: plaintext gets no HTTP answer.
    let plain = reqwest::Client::new()
        .get(format!("http://{http}/livez"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());

    // No session: 401 on the API and the websocket; the page sends the browser to /login.
    for path in ["/api/dashboard", "/api/session", "/metrics"] {
        let r = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
    }
    let ws = client
        .get(format!("{base}/ws"))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    assert_eq!(ws.status(), 401, "websocket without a session");
    let r = client.get(format!("{base}/")).send().await.unwrap();
    assert!(r.status().is_redirection() && r.headers()["location"] == "/login");
    let login_page = client.get(format!("{base}/login")).send().await.unwrap();
    assert_eq!(login_page.status(), 200);

    // A viewer logs in with the form, reads, and may not act (403).
    let r = client
        .post(format!("{base}/login"))
        .form(&[("username", "view"), ("password", VIEW_PW)])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection(), "{}", r.status());
    let view_cookie = session_cookie(&r).expect("a session cookie");
    for attr in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
        assert!(view_cookie.contains(attr), "{view_cookie}");
    }
    let view_cookie = view_cookie.split(';').next().unwrap().to_string();
    let s: serde_json::Value = client
        .get(format!("{base}/api/session"))
        .header("cookie", &view_cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (s["user"].as_str(), s["role"].as_str()),
        (Some("view"), Some("viewer"))
    );
    let action = serde_json::json!({"action": "silence", "alert_type": "FATAL_ERROR", "alert_key": "payment", "duration_s": 600, "note": "maintenance"});
    let r = client
        .post(format!("{base}/api/alerts/actions"))
        .header("cookie", &view_cookie)
        .header("x-csrf-token", s["csrf"].as_str().unwrap())
        .json(&action)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "a viewer acted");
    let r = client
        .get(format!("{base}/api/dashboard"))
        .header("cookie", &view_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    seen += &r.text().await.unwrap();

    // An operator (JSON login) acts only with the session's CSRF token and from its own origin.
    let r = client
        .post(format!("{base}/login"))
        .json(&serde_json::json!({"username": "ops", "password": OPS_PW}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let ops_cookie = session_cookie(&r)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let body: serde_json::Value = r.json().await.unwrap();
    seen += &body.to_string();
    let csrf = body["csrf"].as_str().unwrap().to_string();
    let post = |cookie: &str, csrf: Option<&str>, origin: Option<&str>| {
        let mut b = client
            .post(format!("{base}/api/alerts/actions"))
            .header("cookie", cookie)
            .json(&action);
        if let Some(c) = csrf {
            b = b.header("x-csrf-token", c);
        }
        if let Some(o) = origin {
            b = b.header("origin", o);
        }
        b.send()
    };
    assert_eq!(
        post(&ops_cookie, None, None).await.unwrap().status(),
        403,
        "no CSRF token"
    );
    assert_eq!(
        post(&ops_cookie, Some("forged"), None)
            .await
            .unwrap()
            .status(),
        403,
        "wrong CSRF token"
    );
    assert_eq!(
        post(&ops_cookie, Some(&csrf), Some("https://evil.example"))
            .await
            .unwrap()
            .status(),
        403,
        "cross-site"
    );
    let r = post(&ops_cookie, Some(&csrf), Some(&base)).await.unwrap();
    assert_eq!(r.status(), 201);
    let recorded: serde_json::Value = r.json().await.unwrap();
    seen += &recorded.to_string();

    // A script's token reads (viewer) but cannot act; a made-up one is refused.
    let r = client
        .get(format!("{base}/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let metrics = r.text().await.unwrap();
    let r = client
        .post(format!("{base}/api/alerts/actions"))
        .bearer_auth(TOKEN)
        .json(&action)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = client
        .get(format!("{base}/api/dashboard"))
        .bearer_auth("sw_guess")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Logging out ends the session.
    let r = client
        .post(format!("{base}/logout"))
        .header("cookie", &ops_cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = client
        .get(format!("{base}/api/session"))
        .header("cookie", &ops_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Wrong passwords: three refusals, then limited even with the right one.
    for _ in 0..3 {
        let r = client
            .post(format!("{base}/login"))
            .json(&serde_json::json!({"username": "view", "password": "guess"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let r = client
        .post(format!("{base}/login"))
        .json(&serde_json::json!({"username": "view", "password": VIEW_PW}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));

    // Flight SQL: the same users and token, over TLS only.
    let flight_out = python("access_flight.py", &[&flight, cert_s, "ops", OPS_PW, TOKEN]);
    eprintln!("{flight_out}");
    let f: serde_json::Value = serde_json::from_str(&flight_out).unwrap();
    assert_eq!(f["no credentials"], "UNAUTHENTICATED");
    assert_eq!(
        f["user over TLS"][0]["n"], 1,
        "the one action recorded: {f}"
    );
    seen += &flight_out;

    // The page's own reads go through Flight over TLS with its credential: a refresh lands.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let dash: serde_json::Value = client
            .get(format!("{base}/api/dashboard"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let q = &dash["health"]["query"];
        if q["last_ok_ms"].is_number() && q["last_error"].is_null() {
            seen += &dash.to_string();
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the refresher never read over TLS: {q}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    run.signal(libc::SIGTERM);
    assert!(run.wait_exit(Duration::from_secs(30)).unwrap().success());

    // Canaries: no password, token, hash or key material anywhere a user can look.
    let log = std::fs::read_to_string(data.with_extension("log")).unwrap();
    assert!(log.contains("login"), "the log is the process's");
    let key_pem = std::fs::read_to_string(&key).unwrap();
    let key_body: String = key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let mut canaries = vec![
        OPS_PW,
        VIEW_PW,
        TOKEN,
        ops_hash.as_str(),
        view_hash.as_str(),
    ];
    canaries.push(&key_body[..32]);
    let mut lake = Vec::new();
    for entry in walk(&data) {
        lake.extend(std::fs::read(entry).unwrap_or_default());
    }
    let lake = String::from_utf8_lossy(&lake).to_string();
    for c in canaries {
        for (place, text) in [
            ("log", &log),
            ("metrics", &metrics),
            ("responses", &seen),
            ("lake", &lake),
        ] {
            assert!(
                !text.contains(c),
                "a secret ({}…) is in the {place}",
                &c[..6]
            );
        }
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
