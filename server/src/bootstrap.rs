//! `shopwatch bootstrap dremio`: the seed's afternoon of clicking, as one idempotent command.
//!
//! Waits for Dremio, creates the first user if there is none, logs in, and creates the Nessie
//! source (Nessie API v2 + MinIO) unless it exists, then checks the source's state. The
//! request sequence follows Dremio 25.2's own resources (../shared/reference/ecosystem.md
//! §1.5.2). Running it again changes nothing: an existing user and source are accepted.
//! Secrets (passwords, S3 keys) never appear in output or errors.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use serde_json::{json, Value};

#[derive(Args, Clone, Debug)]
pub struct DremioArgs {
    /// Dremio's REST address.
    #[arg(long, env = "DREMIO_URL", default_value = "http://localhost:9047")]
    pub url: String,
    /// The admin user to create (first start) and log in as.
    #[arg(long, env = "DREMIO_USER", default_value = "admin")]
    pub user: String,
    /// Its password: at least 8 characters with letters and digits (Dremio's rule).
    #[arg(long, env = "DREMIO_PASSWORD", hide_env_values = true)]
    pub password: String,
    #[arg(long, env = "DREMIO_EMAIL", default_value = "admin@shopwatch.local")]
    pub email: String,
    /// Source name: the first part of every table name in SQL.
    #[arg(long, env = "DREMIO_SOURCE", default_value = "nessie_minio_catalog")]
    pub source: String,
    /// Nessie's API v2 as Dremio reaches it (v1 URLs leave the source in a bad state).
    #[arg(
        long,
        env = "NESSIE_API_URI",
        default_value = "http://nessie:19120/api/v2"
    )]
    pub nessie: String,
    /// S3 endpoint as Dremio reaches it, HOST:PORT without scheme.
    #[arg(long, env = "S3_ENDPOINT_HOSTPORT", default_value = "minio:9000")]
    pub s3_endpoint: String,
    /// Bucket (and optional folder) where Dremio itself would write tables.
    #[arg(long, env = "S3_ROOT_PATH", default_value = "lakehouse")]
    pub s3_root_path: String,
    #[arg(long, env = "S3_ACCESS_KEY", hide_env_values = true)]
    pub s3_access_key: String,
    #[arg(long, env = "S3_SECRET_KEY", hide_env_values = true)]
    pub s3_secret_key: String,
    /// Use TLS to the S3 endpoint.
    #[arg(long, env = "S3_SECURE", default_value_t = false)]
    pub s3_secure: bool,
    /// Give up waiting for Dremio after this many seconds.
    #[arg(long, default_value_t = 300)]
    pub wait_s: u64,
    /// Time limit for each request, in seconds.
    #[arg(long, default_value_t = 30)]
    pub request_timeout_s: u64,
}

/// Dremio's password rule, checked before anything is sent.
pub fn check_password(password: &str) -> Result<(), String> {
    let long = password.chars().count() >= 8;
    let letter = password.chars().any(|c| c.is_alphabetic());
    let digit = password.chars().any(|c| c.is_ascii_digit());
    if long && letter && digit {
        Ok(())
    } else {
        Err(
            "the Dremio password must have at least 8 characters, with letters and digits \
             (set DREMIO_PASSWORD in .env)"
                .into(),
        )
    }
}

/// What the first-user call's status means.
#[derive(Debug, PartialEq, Eq)]
pub enum FirstUser {
    Created,
    /// A user exists already: the resource refuses (400/409) or is gone (404/405).
    AlreadyBootstrapped,
    Failed,
}

pub fn first_user_outcome(status: u16) -> FirstUser {
    match status {
        200..=299 => FirstUser::Created,
        400 | 404 | 405 | 409 => FirstUser::AlreadyBootstrapped,
        _ => FirstUser::Failed,
    }
}

/// The `PUT /apiv2/bootstrap/firstuser` body (every field the UI's signup form sends).
pub fn first_user_body(args: &DremioArgs, now_ms: i64) -> Value {
    json!({
        "userName": args.user,
        "password": args.password,
        "firstName": "Shopwatch",
        "lastName": "Admin",
        "email": args.email,
        "createdAt": now_ms,
    })
}

/// The `POST /api/v3/catalog` body: a NESSIE source on Nessie API v2 with MinIO storage.
pub fn source_body(args: &DremioArgs) -> Value {
    let endpoint = args
        .s3_endpoint
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .trim_end_matches('/');
    json!({
        "entityType": "source",
        "type": "NESSIE",
        "name": args.source,
        "config": {
            "nessieEndpoint": args.nessie,
            "nessieAuthType": "NONE",
            "storageProvider": "AWS",
            "awsRootPath": args.s3_root_path,
            "credentialType": "ACCESS_KEY",
            "awsAccessKey": args.s3_access_key,
            "awsAccessSecret": args.s3_secret_key,
            "secure": args.s3_secure,
            "asyncEnabled": true,
            "isCachingEnabled": true,
            "maxCacheSpacePct": 100,
            "propertyList": [
                {"name": "fs.s3a.endpoint", "value": endpoint},
                {"name": "fs.s3a.path.style.access", "value": "true"},
                {"name": "dremio.s3.compat", "value": "true"},
            ],
        },
    })
}

/// A source entity's state: Ok unless Dremio calls it bad (its messages say why).
pub fn source_state(entity: &Value) -> Result<String, String> {
    let status = entity
        .pointer("/state/status")
        .and_then(Value::as_str)
        .unwrap_or("unknown")
        .to_string();
    if status == "bad" {
        let messages: Vec<String> = entity
            .pointer("/state/messages")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|m| m.get("message").and_then(Value::as_str))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        return Err(format!(
            "Dremio reports the source in a bad state: {}",
            if messages.is_empty() {
                "no message".to_string()
            } else {
                messages.join("; ")
            }
        ));
    }
    Ok(status)
}

/// Dremio's error text from a response body (`errorMessage`), without echoing the request.
fn error_text(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| {
            v.get("errorMessage")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| body.chars().take(200).collect())
}

pub async fn run(args: DremioArgs) -> anyhow::Result<()> {
    check_password(&args.password).map_err(anyhow::Error::msg)?;
    if args.s3_access_key.is_empty() || args.s3_secret_key.is_empty() {
        bail!("S3_ACCESS_KEY and S3_SECRET_KEY (or --s3-access-key/--s3-secret-key) are required for the source's storage");
    }
    let base = args.url.trim_end_matches('/').to_string();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(args.request_timeout_s))
        .build()
        .context("building the HTTP client")?;

    // 1. Wait until Dremio answers 200 on its status resource.
    let started = Instant::now();
    loop {
        let status = http
            .get(format!("{base}/apiv2/server_status"))
            .send()
            .await
            .map(|r| r.status().as_u16());
        match status {
            Ok(200) => break,
            other => {
                if started.elapsed() > Duration::from_secs(args.wait_s) {
                    bail!(
                        "Dremio at {base} is not ready after {} s (last answer: {})",
                        args.wait_s,
                        match other {
                            Ok(s) => format!("HTTP {s}"),
                            Err(e) => e.to_string(),
                        }
                    );
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
    println!(
        "dremio: up at {base} after {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // 2. The first user, unless one exists.
    let resp = http
        .put(format!("{base}/apiv2/bootstrap/firstuser"))
        .header("Authorization", "_dremionull")
        .json(&first_user_body(
            &args,
            chrono::Utc::now().timestamp_millis(),
        ))
        .send()
        .await
        .context("creating Dremio's first user")?;
    let status = resp.status().as_u16();
    match first_user_outcome(status) {
        FirstUser::Created => println!("dremio: user {} created", args.user),
        FirstUser::AlreadyBootstrapped => println!("dremio: a user exists already (HTTP {status})"),
        FirstUser::Failed => {
            let body = resp.text().await.unwrap_or_default();
            bail!(
                "creating Dremio's first user: HTTP {status}: {}",
                error_text(&body)
            );
        }
    }

    // 3. Log in.
    let resp = http
        .post(format!("{base}/apiv2/login"))
        .json(&json!({"userName": args.user, "password": args.password}))
        .send()
        .await
        .context("logging in to Dremio")?;
    let status = resp.status().as_u16();
    if status != 200 {
        let body = resp.text().await.unwrap_or_default();
        bail!(
            "logging in to Dremio as {}: HTTP {status}: {} (if the user was created earlier with another password, use that one)",
            args.user,
            error_text(&body)
        );
    }
    let session: Value = resp.json().await.context("reading Dremio's login answer")?;
    let token = session
        .get("token")
        .and_then(Value::as_str)
        .context("Dremio's login answer has no token")?;
    let auth = format!("_dremio{token}");

    // 4. The source: look it up, create it if missing.
    let resp = http
        .get(format!("{base}/api/v3/catalog/by-path/{}", args.source))
        .header("Authorization", &auth)
        .send()
        .await
        .context("looking up the Dremio source")?;
    let entity: Value = match resp.status().as_u16() {
        200 => {
            println!("dremio: source {} exists", args.source);
            resp.json().await.context("reading the source")?
        }
        404 => {
            let resp = http
                .post(format!("{base}/api/v3/catalog"))
                .header("Authorization", &auth)
                .json(&source_body(&args))
                .send()
                .await
                .context("creating the Dremio source")?;
            match resp.status().as_u16() {
                200 => {
                    println!("dremio: source {} created", args.source);
                    resp.json().await.context("reading the created source")?
                }
                // Created by a concurrent run between our lookup and our create.
                409 => {
                    println!(
                        "dremio: source {} exists (created concurrently)",
                        args.source
                    );
                    http.get(format!("{base}/api/v3/catalog/by-path/{}", args.source))
                        .header("Authorization", &auth)
                        .send()
                        .await
                        .context("looking up the Dremio source")?
                        .json()
                        .await
                        .context("reading the source")?
                }
                s => {
                    let body = resp.text().await.unwrap_or_default();
                    bail!(
                        "creating the Dremio source {}: HTTP {s}: {}",
                        args.source,
                        error_text(&body)
                    );
                }
            }
        }
        s => {
            let body = resp.text().await.unwrap_or_default();
            bail!(
                "looking up the Dremio source {}: HTTP {s}: {}",
                args.source,
                error_text(&body)
            );
        }
    };

    // 5. Its state.
    let state = source_state(&entity).map_err(anyhow::Error::msg)?;
    println!("dremio: source {} state {state}; ready", args.source);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> DremioArgs {
        DremioArgs {
            url: "http://d:9047".into(),
            user: "admin".into(),
            password: "secret123".into(),
            email: "a@b".into(),
            source: "nessie_minio_catalog".into(),
            nessie: "http://nessie:19120/api/v2".into(),
            s3_endpoint: "http://minio:9000/".into(),
            s3_root_path: "lakehouse".into(),
            s3_access_key: "ak".into(),
            s3_secret_key: "sk".into(),
            s3_secure: false,
            wait_s: 1,
            request_timeout_s: 1,
        }
    }

    #[test]
    fn password_rule_is_dremios() {
        for (p, ok) in [
            ("secret123", true),
            ("short1", false),
            ("lettersonly", false),
            ("12345678", false),
            ("pässwört9", true),
        ] {
            assert_eq!(check_password(p).is_ok(), ok, "{p}");
        }
    }

    #[test]
    fn first_user_statuses() {
        for (s, want) in [
            (200, FirstUser::Created),
            (204, FirstUser::Created),
            (400, FirstUser::AlreadyBootstrapped),
            (404, FirstUser::AlreadyBootstrapped),
            (405, FirstUser::AlreadyBootstrapped),
            (409, FirstUser::AlreadyBootstrapped),
            (401, FirstUser::Failed),
            (500, FirstUser::Failed),
            (503, FirstUser::Failed),
        ] {
            assert_eq!(first_user_outcome(s), want, "{s}");
        }
    }

    #[test]
    fn source_body_has_the_documented_fields() {
        let b = source_body(&args());
        assert_eq!(b["type"], "NESSIE");
        assert_eq!(b["entityType"], "source");
        assert_eq!(b["config"]["nessieEndpoint"], "http://nessie:19120/api/v2");
        assert_eq!(b["config"]["nessieAuthType"], "NONE");
        assert_eq!(b["config"]["credentialType"], "ACCESS_KEY");
        assert_eq!(b["config"]["secure"], false);
        // host:port, without the scheme or a trailing slash.
        assert_eq!(b["config"]["propertyList"][0]["value"], "minio:9000");
    }

    #[test]
    fn bad_state_is_an_error_with_its_messages() {
        let ok = json!({"state": {"status": "good"}});
        assert_eq!(source_state(&ok).unwrap(), "good");
        let bad = json!({"state": {"status": "bad", "messages": [{"level": "ERROR", "message": "Unable to connect to Nessie"}]}});
        assert!(source_state(&bad)
            .unwrap_err()
            .contains("Unable to connect to Nessie"));
    }
}
