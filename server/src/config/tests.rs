//! Configuration tests: layering, unknown keys, key-naming errors and redaction.

use super::*;

fn env(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn layers_override_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.toml");
    std::fs::write(
        &file,
        "[kafka]\nbrokers = \"file:1\"\n[pipeline]\ncommit_interval_ms = 500\n",
    )
    .unwrap();
    let c = load(Some(&file), &[], vec![]).unwrap();
    assert_eq!(
        (c.kafka.brokers.as_str(), c.pipeline.commit_interval_ms),
        ("file:1", 500)
    );
    let c = load(
        Some(&file),
        &env(&[
            ("SHOPWATCH_KAFKA__BROKERS", "env:2"),
            ("SHOPWATCH_TOOLS_DIR", "/x"),
        ]),
        vec![],
    )
    .unwrap();
    assert_eq!(c.kafka.brokers, "env:2");
    let c = load(
        Some(&file),
        &env(&[("SHOPWATCH_KAFKA__BROKERS", "env:2")]),
        vec![("kafka.brokers", Value::String("flag:3".into()))],
    )
    .unwrap();
    assert_eq!(c.kafka.brokers, "flag:3");
    assert_eq!(c.topics.orders, "orders_topic");
    assert_eq!(c.lake.namespace, "ecommerce_db");
}

#[test]
fn unknown_keys_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.toml");
    std::fs::write(&file, "[kafka]\nbrokerz = \"x\"\n").unwrap();
    let e = load(Some(&file), &[], vec![]).unwrap_err().to_string();
    assert!(e.contains("kafka.brokerz") && e.contains("s.toml"), "{e}");
    let e = load(None, &env(&[("SHOPWATCH_LAKE__DATADIR", "x")]), vec![])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("lake.datadir") && e.contains("SHOPWATCH_LAKE__DATADIR"),
        "{e}"
    );
    std::fs::write(&file, "[kafka.extra]\n\"sasl.password\" = \"hunter2\"\n").unwrap();
    let c = load(Some(&file), &[], vec![]).unwrap();
    assert!(!c.redacted_toml().contains("hunter2"));
    let c = load(
        None,
        &env(&[(
            "SHOPWATCH_ALERTS__WEBHOOK_URL",
            "https://hooks.example/T0/secret-path",
        )]),
        vec![],
    )
    .unwrap();
    assert!(!c.redacted_toml().contains("secret-path"));
}

#[test]
fn kpi_windows_are_nested_keys_and_checked() {
    let c = load(
        None,
        &env(&[("SHOPWATCH_WINDOWS__ACTIVE_USERS__LATENESS_S", "360")]),
        vec![],
    )
    .unwrap();
    assert_eq!(c.windows.kpis["active_users"].lateness_s, 360);
    assert_eq!(c.windows.kpis["orders_revenue"].lateness_s, 10);
    let e = load(
        None,
        &env(&[("SHOPWATCH_WINDOWS__ERRORS__SLIDE_S", "120")]),
        vec![],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("windows.errors.slide_s"), "{e}");
    let e = load(
        None,
        &env(&[("SHOPWATCH_WINDOWS__ERRORS__SIZE", "1")]),
        vec![],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("windows.errors.size"), "{e}");
    let e = load(
        None,
        &env(&[("SHOPWATCH_ALERTS__WEBHOOK_URL", "slack")]),
        vec![],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("alerts.webhook_url"), "{e}");
}

#[test]
fn bad_values_name_the_key_and_fix() {
    let e = load(None, &env(&[("SHOPWATCH_HTTP__LISTEN", "nowhere")]), vec![])
        .unwrap_err()
        .to_string();
    assert!(e.contains("http.listen") && e.contains("--http"), "{e}");
    let e = load(
        None,
        &env(&[("SHOPWATCH_PIPELINE__COMMIT_INTERVAL_MS", "\"soon\"")]),
        vec![],
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("commit_interval_ms") || e.contains("soon"),
        "{e}"
    );
    for (v, ok) in [("0", false), ("99", false), ("100", true), ("2000", true)] {
        let got = load(
            None,
            &env(&[("SHOPWATCH_PIPELINE__DEAD_LETTER_FLUSH_INTERVAL_MS", v)]),
            vec![],
        );
        match got {
            Ok(c) => assert!(ok, "{v} accepted: {:?}", c.pipeline),
            Err(e) => {
                let e = e.to_string();
                assert!(!ok, "{v} refused: {e}");
                assert!(
                    e.contains("pipeline.dead_letter_flush_interval_ms")
                        && e.contains("at least 100"),
                    "{e}"
                );
            }
        }
    }
}

#[test]
fn query_backend_is_checked_and_resolved() {
    let c = load(None, &[], vec![]).unwrap();
    let t = c.query_target();
    assert_eq!(
        (t.backend, t.addr.as_str(), t.username.as_str()),
        ("embedded", "127.0.0.1:32010", "dremio")
    );
    assert_eq!(t.source, "nessie_minio_catalog");
    let e = load(None, &env(&[("SHOPWATCH_QUERY__BACKEND", "spark")]), vec![])
        .unwrap_err()
        .to_string();
    assert!(e.contains("query.backend") && e.contains("dremio"), "{e}");
    let e = load(
        None,
        &env(&[("SHOPWATCH_QUERY__BACKEND", "dremio")]),
        vec![],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("query.endpoint"), "{e}");
    let e = load(
        None,
        &env(&[
            ("SHOPWATCH_QUERY__BACKEND", "dremio"),
            ("SHOPWATCH_QUERY__ENDPOINT", "dremio:32010"),
        ]),
        vec![],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("query.password"), "{e}");
    let c = load(
        None,
        &env(&[
            ("SHOPWATCH_QUERY__BACKEND", "dremio"),
            ("SHOPWATCH_QUERY__ENDPOINT", "dremio:32010"),
            ("SHOPWATCH_QUERY__USERNAME", "admin"),
            ("SHOPWATCH_QUERY__PASSWORD", "canary-pw-7"),
            ("SHOPWATCH_FLIGHT__ENABLED", "false"),
        ]),
        vec![],
    )
    .unwrap();
    let t = c.query_target();
    assert_eq!(
        (t.backend, t.addr.as_str(), t.username.as_str()),
        ("dremio", "dremio:32010", "admin")
    );
    assert!(!c.redacted_toml().contains("canary-pw-7"));
    let e = load(
        None,
        &env(&[("SHOPWATCH_FLIGHT__ENABLED", "false")]),
        vec![],
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("query.backend") && e.contains("flight.enabled"),
        "{e}"
    );
    let c = load(
        None,
        &env(&[
            ("SHOPWATCH_FLIGHT__LISTEN", "0.0.0.0:32011"),
            ("SHOPWATCH_FLIGHT__USERNAME", "u"),
            ("SHOPWATCH_FLIGHT__PASSWORD", "p"),
            // Off loopback, logins are required (see the access test below).
            ("SHOPWATCH_AUTH__TOKENS__CI__ROLE", "viewer"),
            ("SHOPWATCH_AUTH__TOKENS__CI__SHA256", SHA),
        ]),
        vec![],
    )
    .unwrap();
    assert_eq!(c.query_target().addr, "127.0.0.1:32011");
}

const SHA: &str = "bca0cf990be1825c6e925c7dac95fd88f52175d4cddb058654290ad458ed15b5";

#[test]
fn off_loopback_needs_auth_and_auth_is_checked_key_by_key() {
    let fails = |vars: &[(&str, &str)]| load(None, &env(vars), vec![]).unwrap_err().to_string();
    // The page on every address without a login: refused, naming the key to set.
    let e = fails(&[("SHOPWATCH_HTTP__LISTEN", "0.0.0.0:8080")]);
    assert!(
        e.contains("auth.users") && e.contains("http.listen = 0.0.0.0:8080"),
        "{e}"
    );
    let e = fails(&[
        ("SHOPWATCH_FLIGHT__LISTEN", "10.1.2.3:32010"),
        ("SHOPWATCH_FLIGHT__PASSWORD", "not-the-seed"),
    ]);
    assert!(
        e.contains("auth.users") && e.contains("flight.listen"),
        "{e}"
    );
    // A user needs an argon2 hash, never a password; a token its SHA-256.
    let e = fails(&[
        ("SHOPWATCH_AUTH__USERS__ANA__ROLE", "operator"),
        (
            "SHOPWATCH_AUTH__USERS__ANA__PASSWORD_HASH",
            "hunter2hunter2",
        ),
    ]);
    assert!(
        e.contains("auth.users.ana.password_hash") && !e.contains("hunter2"),
        "{e}"
    );
    let e = fails(&[
        ("SHOPWATCH_AUTH__USERS__ANA__ROLE", "admin"),
        ("SHOPWATCH_AUTH__USERS__ANA__PASSWORD_HASH", "x"),
    ]);
    assert!(e.contains("auth.users.ana.role"), "{e}");
    let e = fails(&[
        ("SHOPWATCH_AUTH__TOKENS__CI__ROLE", "viewer"),
        ("SHOPWATCH_AUTH__TOKENS__CI__SHA256", "abc"),
    ]);
    assert!(e.contains("auth.tokens.ci.sha256"), "{e}");
    let e = fails(&[("SHOPWATCH_TLS__CERT_FILE", "/etc/hostname")]);
    assert!(e.contains("tls.key_file"), "{e}");
    // With a user, every address is fine.
    let hash = crate::auth::hash_password("a long password").unwrap();
    let c = load(
        None,
        &env(&[
            ("SHOPWATCH_HTTP__LISTEN", "0.0.0.0:8080"),
            ("SHOPWATCH_AUTH__USERS__ANA__ROLE", "operator"),
            ("SHOPWATCH_AUTH__USERS__ANA__PASSWORD_HASH", &hash),
        ]),
        vec![],
    )
    .unwrap();
    assert_eq!(c.auth.users["ana"].role, crate::config::Role::Operator);
    // `config check` never prints the hash.
    assert!(!c.redacted_toml().contains(&hash));
}

#[test]
fn kpi_and_rule_sections_come_from_the_registries() {
    let c = load(None, &[], vec![]).unwrap();
    for kpi in shopwatch_actors::kpis::REGISTRY {
        assert!(c.windows.kpis.contains_key(kpi.name()), "{}", kpi.name());
    }
    assert_eq!(c.windows.kpis["conversion"].slide_s, 30);
    assert_eq!(
        c.windows.engines().unwrap().len(),
        shopwatch_actors::kpis::REGISTRY.len()
    );
    assert_eq!(
        c.alerts.rule_set().unwrap().len(),
        shopwatch_actors::alerts::RULES.len()
    );
    // An unknown KPI or rule is refused, and the error names it and what is known.
    let e = load(
        None,
        &env(&[("SHOPWATCH_WINDOWS__CONVERSON__SIZE_S", "60")]),
        vec![],
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("windows.converson") && e.contains("conversion"),
        "{e}"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.toml");
    std::fs::write(&file, "[alerts.orders_dropp]\nenabled = false\n").unwrap();
    let e = load(Some(&file), &[], vec![]).unwrap_err().to_string();
    assert!(
        e.contains("alerts.orders_dropp") && e.contains("orders_drop"),
        "{e}"
    );
    // A rule's own parameters are checked in its shape; the seed's flag form still reads.
    let e = load(
        None,
        &env(&[("SHOPWATCH_ALERTS__ERROR_SPIKE__HISTORY", "1")]),
        vec![],
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("alerts.error_spike") && e.contains("history"),
        "{e}"
    );
    let c = load(
        None,
        &env(&[("SHOPWATCH_ALERTS__FATAL_ERROR", "false")]),
        vec![],
    )
    .unwrap();
    let fatal = c
        .alerts
        .rule_set()
        .unwrap()
        .into_iter()
        .find(|(r, _)| r.key == "fatal_error")
        .unwrap();
    assert!(!fatal.1.enabled());
    let e = load(None, &env(&[("SHOPWATCH_LAKE__CATALOG", "hive")]), vec![])
        .unwrap_err()
        .to_string();
    assert!(e.contains("lake.catalog") && e.contains("rest"), "{e}");
}

#[test]
fn the_data_dir_is_resolved_once_to_a_clean_absolute_path() {
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::canonicalize(dir.path()).unwrap();
    std::fs::create_dir_all(base.join("real/lake")).unwrap();
    std::os::unix::fs::symlink(base.join("real"), base.join("link")).unwrap();
    let home = base.display().to_string();
    let with = |d: &str| {
        load(
            None,
            &env(&[("SHOPWATCH_LAKE__DATA_DIR", d), ("HOME", &home)]),
            vec![],
        )
    };
    // Every spelling of the same directory gives the same clean path.
    let want = base.join("real/lake");
    for spelling in [
        format!("{home}/real/lake"),
        format!("{home}/real/./lake/"),
        format!("{home}/real/other/../lake"),
        format!("{home}//real//lake"),
        format!("{home}/link/lake"),
        "~/real/lake".to_string(),
        "~/link/./lake/".to_string(),
    ] {
        let c = with(&spelling).unwrap();
        assert_eq!(c.lake.data_dir, want, "{spelling}");
    }
    // A relative path starts at the working directory and keeps no `.` segment.
    let c = load(None, &[], vec![]).unwrap();
    let shown = c.lake.data_dir.display().to_string();
    assert!(c.lake.data_dir.is_absolute(), "{shown}");
    assert!(
        !shown.contains("/./") && shown.ends_with("/shopwatch-data"),
        "{shown}"
    );
    // What can never work is refused, naming the key.
    let e = with("~someone/lake").unwrap_err().to_string();
    assert!(e.contains("lake.data_dir") && e.contains("~user"), "{e}");
    let e = with(&format!("{home}/a\tb")).unwrap_err().to_string();
    assert!(
        e.contains("lake.data_dir") && e.contains("control character"),
        "{e}"
    );
    let c = load(
        None,
        &env(&[("SHOPWATCH_LAKE__WAREHOUSE", "file:///srv/./wh/../lake/")]),
        vec![],
    )
    .unwrap();
    assert_eq!(c.lake.warehouse, "file:///srv/lake");
}

#[test]
fn rest_catalog_auth_is_checked_redacted_and_handed_to_the_catalog() {
    let rest = [
        ("SHOPWATCH_LAKE__CATALOG", "rest"),
        ("SHOPWATCH_LAKE__REST_URI", "http://127.0.0.1:8181"),
    ];
    let with = |extra: &[(&str, &str)]| {
        let mut v = rest.to_vec();
        v.extend_from_slice(extra);
        load(None, &env(&v), vec![])
    };
    // Each mistake names its key.
    let cases: [(&[(&str, &str)], &str); 4] = [
        (
            &[("SHOPWATCH_LAKE__REST_CREDENTIAL", "no-colon-here")],
            "lake.rest_credential",
        ),
        (
            &[
                ("SHOPWATCH_LAKE__REST_CREDENTIAL", "id:secret"),
                ("SHOPWATCH_LAKE__REST_TOKEN", "tok"),
            ],
            "lake.rest_token",
        ),
        (
            &[("SHOPWATCH_LAKE__REST_PROPS__credential", "id:s")],
            "lake.rest_credential",
        ),
        (
            &[("SHOPWATCH_LAKE__REST_PROPS__uri", "http://x")],
            "lake.rest_uri",
        ),
    ];
    for (extra, key) in cases {
        let e = with(extra).unwrap_err().to_string();
        assert!(e.contains(key), "{extra:?}: {e}");
        assert!(!e.contains("secret"), "{extra:?} echoes a secret: {e}");
    }
    // REST settings on the SQL catalog are a mistake, not silently ignored.
    let e = load(
        None,
        &env(&[("SHOPWATCH_LAKE__REST_CREDENTIAL", "id:secret")]),
        vec![],
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("lake.rest_credential") && e.contains("rest"),
        "{e}"
    );

    let c = with(&[
        ("SHOPWATCH_LAKE__REST_CREDENTIAL", "client:hunter2-cred"),
        ("SHOPWATCH_LAKE__REST_PROPS__scope", "PRINCIPAL_ROLE:ALL"),
        (
            "SHOPWATCH_LAKE__REST_PROPS__header.X-Api-Key",
            "hunter2-header",
        ),
    ])
    .unwrap();
    let shown = c.redacted_toml();
    for secret in ["hunter2-cred", "hunter2-header", "PRINCIPAL_ROLE"] {
        assert!(!shown.contains(secret), "{secret} shown:\n{shown}");
    }
    let params = c.lake.params();
    assert!(!format!("{params:?}").contains("hunter2"));
    let shopwatch_actors::lake::CatalogKind::Rest { uri, props } = &params.catalog else {
        panic!("not a REST catalog: {:?}", params.catalog);
    };
    assert_eq!(uri, "http://127.0.0.1:8181");
    assert_eq!(props.get("credential"), Some("client:hunter2-cred"));
    assert_eq!(props.get("scope"), Some("PRINCIPAL_ROLE:ALL"));
    // Environment keys are lower-cased; HTTP header names are case-insensitive.
    assert_eq!(props.get("header.x-api-key"), Some("hunter2-header"));
    assert_eq!(props.get("token"), None);
}

#[test]
fn secrets_from_the_environment_stay_text_and_are_never_echoed() {
    let c = load(
        None,
        &env(&[
            ("SHOPWATCH_FLIGHT__PASSWORD", "12345"),
            ("SHOPWATCH_FLIGHT__USERNAME", "true"),
            (
                "SHOPWATCH_AUTH__TOKENS__CI__SHA256",
                "1234567890123456789012345678901234567890123456789012345678901234",
            ),
            ("SHOPWATCH_AUTH__TOKENS__CI__ROLE", "viewer"),
        ]),
        vec![],
    )
    .unwrap();
    assert_eq!(c.flight.password.expose(), "12345");
    assert_eq!(c.flight.username, "true");
    // All digits: a number to TOML, still the hash's text here.
    assert_eq!(c.auth.tokens["ci"].sha256.expose().len(), 64);
    // A number where a number belongs still parses as one.
    let c = load(
        None,
        &env(&[("SHOPWATCH_PIPELINE__MAX_ID_BYTES", "77")]),
        vec![],
    )
    .unwrap();
    assert_eq!(c.pipeline.max_id_bytes, 77);
}

#[test]
fn the_drill_endpoint_needs_a_failpoints_build() {
    let r = load(
        None,
        &env(&[
            ("SHOPWATCH_DRILL__ENABLED", "true"),
            ("SHOPWATCH_DRILL__TOKEN", "0123456789abcdef0123"),
        ]),
        vec![],
    );
    if shopwatch_actors::faults::ENABLED {
        assert!(r.is_ok(), "{:?}", r.err());
    } else {
        let e = r.unwrap_err().to_string();
        assert!(
            e.contains("drill.enabled") && e.contains("failpoints"),
            "{e}"
        );
    }
}

#[test]
fn secrets_come_from_files_named_by_file_variables() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("flight_password");
    // A secret file as Docker writes it: the value and a newline.
    std::fs::write(&file, "from-a-file 12345\n").unwrap();
    let path = file.display().to_string();
    let c = load(
        None,
        &env(&[("SHOPWATCH_FLIGHT__PASSWORD_FILE", &path)]),
        vec![],
    )
    .unwrap();
    assert_eq!(c.flight.password.expose(), "from-a-file 12345");
    // A later plain variable still wins (last layer wins, as for every key).
    let c = load(
        None,
        &env(&[
            ("SHOPWATCH_FLIGHT__PASSWORD_FILE", &path),
            ("SHOPWATCH_FLIGHT__PASSWORD", "p2"),
        ]),
        vec![],
    )
    .unwrap();
    assert_eq!(c.flight.password.expose(), "p2");
    // A file that is not there names the key and the variable, never a value.
    let e = load(
        None,
        &env(&[("SHOPWATCH_FLIGHT__PASSWORD_FILE", "/nonexistent/secret")]),
        vec![],
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("flight.password") && e.contains("SHOPWATCH_FLIGHT__PASSWORD_FILE"),
        "{e}"
    );
    // An unknown key is still unknown when it comes from a file.
    let e = load(
        None,
        &env(&[("SHOPWATCH_FLIGHT__NOPE_FILE", &path)]),
        vec![],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("flight.nope"), "{e}");
    assert!(!e.contains("from-a-file"), "{e}");
    // An endless or huge file is refused, not read into memory.
    let e = load(
        None,
        &env(&[("SHOPWATCH_FLIGHT__PASSWORD_FILE", "/dev/zero")]),
        vec![],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("flight.password") && e.contains("64 KiB"), "{e}");
}

#[test]
fn keys_ending_in_file_are_keys_not_file_variables() {
    // `tls.cert_file` is a key: its value is a path, checked as one (not read as a secret).
    let e = load(
        None,
        &env(&[
            ("SHOPWATCH_TLS__CERT_FILE", "/nonexistent/cert.pem"),
            ("SHOPWATCH_TLS__KEY_FILE", "/nonexistent/key.pem"),
        ]),
        vec![],
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("tls.cert_file") && e.contains("/nonexistent/cert.pem"),
        "{e}"
    );
    assert!(!e.contains("cannot read the file"), "{e}");
}
