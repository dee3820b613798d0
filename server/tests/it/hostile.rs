//! Hostile input against a real `shopwatch run` (real broker, loopback), one door after the
//! other, each with its safe outcome: a producer with a fast clock, query bombs and write
//! statements over Flight SQL, oversized ids, half-sent requests, a DNS-rebinding POST and a
//! drill-down overflow (no logins: the loopback operator); then, with a login configured, a
//! login flood, a Flight handshake flood and a websocket that must close at logout.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

use crate::harness::*;

/// Resident memory of a process now, and its peak so far (bytes).
fn rss(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn stamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

fn order(id: &str, user: &str, at: chrono::DateTime<chrono::Utc>) -> String {
    serde_json::json!({
        "order_id": id, "user_id": user, "product_id": "p1", "quantity": 1,
        "price": 10.0, "order_time": stamp(at), "status": "CREATED",
    })
    .to_string()
}

async fn send(p: &FutureProducer, topic: &str, partition: i32, payload: &str) {
    p.send(
        FutureRecord::<(), str>::to(topic)
            .partition(partition)
            .payload(payload),
        Duration::from_secs(10),
    )
    .await
    .map_err(|(e, _)| e)
    .unwrap();
}

fn hostile_queries(flight: &str, sqls: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec!["--flight", flight];
    args.extend(sqls);
    python("hostile_queries.py", &args)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `/livez` answered while `during` runs (every 50 ms); returns how many probes failed and
/// how many ran.
async fn livez_during<F: std::future::Future>(http: &str, during: F) -> (F::Output, usize, usize) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let probe = {
        let (stop, url) = (stop.clone(), format!("http://{http}/livez"));
        tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap();
            let (mut failed, mut ran) = (0, 0);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                ran += 1;
                if !client
                    .get(&url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
                {
                    failed += 1;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (failed, ran)
        })
    };
    let out = during.await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (failed, ran) = probe.await.unwrap();
    (out, failed, ran)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_cannot_take_shopwatch_down_or_skew_its_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, brokers) = broker(dir.path());
    let data = dir.path().join("lake");
    // Short windows, so the clock case sees closed windows within the test.
    let env = [
        ("SHOPWATCH_WINDOWS__ORDERS_REVENUE__SIZE_S", "10"),
        ("SHOPWATCH_WINDOWS__ORDERS_REVENUE__SLIDE_S", "5"),
        ("SHOPWATCH_WINDOWS__ORDERS_REVENUE__LATENESS_S", "2"),
        ("SHOPWATCH_WINDOWS__IDLE_TIMEOUT_S", "5"),
        ("SHOPWATCH_FLIGHT__QUERY_TIMEOUT_S", "10"),
        ("SHOPWATCH_FLIGHT__QUERY_MAX_MEMORY_MB", "128"),
        ("SHOPWATCH_HTTP__HEADER_TIMEOUT_S", "3"),
    ];
    let (mut run, http, flight) = run_pipeline_env(&brokers, &data, &env);
    let pid = run.0.id();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    // Up: the first orders land.
    send(
        &producer,
        "orders_topic",
        0,
        &order("warm", "u0", chrono::Utc::now()),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while metric(
        &http,
        r#"shopwatch_rows_committed_total{table="orders_processed"}"#,
    )
    .await
        < 1.0
    {
        assert!(Instant::now() < deadline, "shopwatch did not start");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // 1. A producer with a fast clock amid a steady stream stamped now: 40 s of orders, 20 a
    //    second, and after 10 s one order per partition stamped four minutes ahead.
    let stream = {
        let producer = producer.clone();
        tokio::spawn(async move {
            for i in 0..800 {
                let now = chrono::Utc::now();
                send(
                    &producer,
                    "orders_topic",
                    i % 3,
                    &order(&format!("o{i}"), &format!("u{}", i % 17), now),
                )
                .await;
                if i == 200 {
                    for p in 0..3 {
                        let ahead = now + chrono::Duration::minutes(4);
                        send(
                            &producer,
                            "orders_topic",
                            p,
                            &order(&format!("fast{p}"), "clock", ahead),
                        )
                        .await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    // 2. Query bombs over Flight while the stream flows: each ends with a limit error within
    //    its limit, the process grows far less than 1 GiB, and rows keep landing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (before, _) = rss(pid);
    let landed_before = metric(
        &http,
        r#"shopwatch_rows_committed_total{table="orders_processed"}"#,
    )
    .await;
    let fl = flight.clone();
    let (answers, failed, ran) = livez_during(&http, async move {
        tokio::task::spawn_blocking(move || {
            hostile_queries(
                &fl,
                &[
                    "SELECT count(*) FROM generate_series(1, 10000000000000)",
                    "SELECT array_agg(value) FROM generate_series(1, 400000000)",
                ],
            )
        })
        .await
        .unwrap()
    })
    .await;
    let landed = metric(
        &http,
        r#"shopwatch_rows_committed_total{table="orders_processed"}"#,
    )
    .await
        - landed_before;
    let (_, peak) = rss(pid);
    eprintln!("query bombs: {answers:?}; RSS {} → peak {} MB; {landed} orders landed meanwhile; /livez {failed} of {ran} failed", before >> 20, peak >> 20);
    assert!(!answers[0]["ok"].as_bool().unwrap(), "{answers:?}");
    assert!(
        answers[0]["error"]
            .as_str()
            .unwrap()
            .contains("flight.query_timeout_s"),
        "{answers:?}"
    );
    assert!(
        answers[0]["seconds"].as_f64().unwrap() < 60.0,
        "{answers:?}"
    );
    assert!(!answers[1]["ok"].as_bool().unwrap(), "{answers:?}");
    assert!(
        answers[1]["error"]
            .as_str()
            .unwrap()
            .contains("flight.query_max_memory_mb"),
        "{answers:?}"
    );
    assert!(
        peak.saturating_sub(before) < 768 << 20,
        "grew {} MB",
        (peak - before) >> 20
    );
    assert!(landed > 0.0, "ingestion stopped during the queries");
    assert_eq!(failed, 0, "/livez failed during the queries");

    // 3. Statements that write, and files as tables: refused, nothing created.
    let target = dir.path().join("written.csv");
    let copy = format!("COPY (SELECT 1) TO '{}'", target.display());
    let read_file = "SELECT * FROM '/etc/passwd'".to_string();
    let writes = [
        "CREATE TABLE t AS SELECT 1",
        "INSERT INTO orders_processed SELECT * FROM orders_processed",
        "DROP TABLE orders_processed",
        copy.as_str(),
        read_file.as_str(),
    ];
    for a in hostile_queries(&flight, &writes) {
        assert!(!a["ok"].as_bool().unwrap(), "{a}");
    }
    assert!(!target.exists(), "COPY wrote a file");

    // 4. Clicks with 100 KiB user ids: dead-lettered with the field named, memory flat.
    let (before, _) = rss(pid);
    let long = "u".repeat(100 * 1024);
    for i in 0..1_000 {
        let click = serde_json::json!({
            "click_id": format!("big{i}"), "user_id": format!("{long}{i}"), "url": "/",
            "device_type": "mobile", "click_time": stamp(chrono::Utc::now()),
        });
        send(&producer, "clicks_topic", i % 3, &click.to_string()).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(
        &http,
        r#"shopwatch_dead_letters_total{reason="field_too_long",topic="clicks_topic"}"#,
    )
    .await
        < 1_000.0
    {
        assert!(
            Instant::now() < deadline,
            "the long ids were not dead-lettered"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (after, _) = rss(pid);
    eprintln!(
        "1,000 clicks with 100 KiB ids: RSS {} → {} MB",
        before >> 20,
        after >> 20
    );
    assert!(
        after.saturating_sub(before) < 256 << 20,
        "grew {} MB",
        (after - before) >> 20
    );

    // 5. 1,000 half-sent requests: /livez answers meanwhile, and they are closed.
    let mut held: Vec<TcpStream> = (0..1_000)
        .map(|_| {
            let mut s = TcpStream::connect(&http).unwrap();
            s.write_all(b"GET /api/dashboard HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                .unwrap();
            s
        })
        .collect();
    let livez = reqwest::Client::new()
        .get(format!("http://{http}/livez"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap();
    assert!(livez.status().is_success());
    tokio::time::sleep(Duration::from_secs(6)).await;
    let closed = tokio::task::spawn_blocking(move || {
        held.iter_mut()
            .map(|s| {
                // Closed: whatever the server said (a 408), then end of stream.
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                let mut rest = Vec::new();
                s.read_to_end(&mut rest).is_ok()
            })
            .filter(|closed| *closed)
            .count()
    })
    .await
    .unwrap();
    assert_eq!(
        closed, 1_000,
        "half-sent requests still open after the header timeout"
    );

    // 6. A DNS-rebinding page: foreign Host and Origin. Refused, no action recorded.
    let body = r#"{"action":"silence","alert_type":"FATAL_ERROR","alert_key":"x"}"#;
    let raw = format!(
        "POST /api/alerts/actions HTTP/1.1\r\nHost: evil.example:{port}\r\nOrigin: http://evil.example:{port}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len(),
        port = http.rsplit(':').next().unwrap()
    );
    let mut s = TcpStream::connect(&http).unwrap();
    s.write_all(raw.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 421"), "{answer}");
    assert!(answer.contains("request_id"), "{answer}");
    assert_eq!(
        metric(
            &http,
            r#"shopwatch_rows_committed_total{table="alert_actions"}"#
        )
        .await,
        0.0
    );

    // 7. Drill-down numbers that would overflow: 400 naming the field.
    let r = reqwest::get(format!(
        "http://{http}/api/rows?what=orders&from=-9223372036854775808&to=0"
    ))
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().await.unwrap().contains("from"));

    // The clock case, once the stream is over and its windows have closed: every closed
    // window equals the pyiceberg recount, no on-time order was dropped as late.
    stream.await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let summary = python_env(
            "check_kpis.py",
            &["--data-dir", data.to_str().unwrap()],
            &env,
        );
        let v: serde_json::Value = serde_json::from_str(&summary).unwrap_or_default();
        let expected = v["orders_revenue_per_minute"]["windows_expected_so_far"]
            .as_u64()
            .unwrap_or(0);
        if expected >= 8 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the stream's windows never closed: {summary}"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    assert_eq!(
        metric(
            &http,
            r#"shopwatch_late_events_total{topic="orders_topic"}"#
        )
        .await,
        0.0
    );
    assert!(
        metric(
            &http,
            r#"shopwatch_clock_ahead_events_total{topic="orders_topic"}"#
        )
        .await
            >= 3.0
    );
    // 8. With no other traffic, a burst of orders over 100 distinct past days: all stored,
    //    committed in parts of at most pipeline.max_days_per_batch (32) day partitions each.
    let stored = r#"shopwatch_rows_committed_total{table="orders_processed"}"#;
    let commits = r#"shopwatch_commits_total{outcome="ok",table="orders_processed"}"#;
    let (rows_before, commits_before) = (metric(&http, stored).await, metric(&http, commits).await);
    let burst: Vec<String> = (0..100)
        .map(|d| {
            order(
                &format!("day{d}"),
                "u-days",
                chrono::Utc::now() - chrono::Duration::days(d + 1),
            )
        })
        .collect();
    for o in &burst {
        send(&producer, "orders_topic", 1, o).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(&http, stored).await < rows_before + 100.0 {
        assert!(
            Instant::now() < deadline,
            "the orders over 100 days did not land"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let parts = metric(&http, commits).await - commits_before;
    eprintln!("100 orders over 100 days: {parts} commits");
    assert!(parts >= 4.0, "{parts} commits for 100 day partitions");

    run.signal(libc::SIGTERM);
    assert!(run.wait_exit(Duration::from_secs(30)).unwrap().success());

    logins_and_sessions(&brokers, &data).await;
}

/// With a login configured: floods of page logins and Flight handshakes are refused in part,
/// `/livez` keeps answering, memory stays bounded; a websocket closes at logout.
async fn logins_and_sessions(brokers: &str, data: &Path) {
    let hash = hash_password("right horse battery");
    let env = [
        ("SHOPWATCH_AUTH__USERS__OPS__ROLE", "operator"),
        ("SHOPWATCH_AUTH__USERS__OPS__PASSWORD_HASH", hash.as_str()),
    ];
    let (mut run, http, flight) = run_pipeline_env(brokers, data, &env);
    let pid = run.0.id();
    let deadline = Instant::now() + Duration::from_secs(60);
    while reqwest::get(format!("http://{http}/livez")).await.is_err() {
        assert!(Instant::now() < deadline, "shopwatch did not start");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Unauthenticated readiness says only whether it is ready.
    let ready: serde_json::Value = reqwest::get(format!("http://{http}/readyz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        ready.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["ready"]
    );

    // A websocket of a session closes when the session logs out (before the floods: they
    // use up this address's login attempts for a minute).
    let login = reqwest::Client::new()
        .post(format!("http://{http}/login"))
        .json(&serde_json::json!({"username": "ops", "password": "right horse battery"}))
        .send()
        .await
        .unwrap();
    assert!(login.status().is_success());
    let cookie = login
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let csrf = login.json::<serde_json::Value>().await.unwrap()["csrf"]
        .as_str()
        .unwrap()
        .to_string();
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://{http}/ws").into_client_request().unwrap();
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let out = reqwest::Client::new()
        .post(format!("http://{http}/logout"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status().as_u16(), 204);
    use futures::StreamExt;
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(m) = ws.next().await {
            match m {
                Ok(tokio_tungstenite::tungstenite::Message::Close(f)) => {
                    return f.map(|f| u16::from(f.code))
                }
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
        None
    })
    .await
    .expect("the websocket stayed open after logout");
    assert_eq!(closed, Some(4001));

    let (before, _) = rss(pid);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let h = http.clone();
    let (codes, failed, ran) = livez_during(&http, async move {
        let tries = (0..300).map(|i| {
            let (client, url) = (client.clone(), format!("http://{h}/login"));
            let name = format!("{}{i}", "x".repeat(15 * 1024));
            async move {
                client
                    .post(url)
                    .json(&serde_json::json!({"username": name, "password": "guess"}))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0)
            }
        });
        futures::future::join_all(tries).await
    })
    .await;
    let (_, peak) = rss(pid);
    let busy = codes.iter().filter(|c| **c == 503).count();
    eprintln!("300 logins: {busy} answered 503, {} 401; RSS {} → peak {} MB; /livez {failed} of {ran} failed",
        codes.iter().filter(|c| **c == 401).count(), before >> 20, peak >> 20);
    assert!(
        codes.iter().all(|c| [401, 429, 503].contains(c)),
        "{codes:?}"
    );
    assert!(busy > 0, "no login was refused at once");
    assert_eq!(failed, 0, "/livez failed during the login flood");
    assert!(
        peak.saturating_sub(before) < 512 << 20,
        "grew {} MB",
        (peak - before) >> 20
    );

    // A Flight handshake flood with made-up users: refused (busy or unauthenticated), and
    // the server keeps answering.
    let f = flight.clone();
    let (answers, failed, ran) = livez_during(&http, async move {
        let tries = (0..300).map(|i| {
            let f = f.clone();
            async move {
                let channel = tonic::transport::Endpoint::from_shared(format!("http://{f}"))
                    .unwrap()
                    .connect()
                    .await
                    .unwrap();
                let mut c = arrow_flight::sql::client::FlightSqlServiceClient::new(channel);
                match c.handshake(&format!("nobody{i}"), "guess").await {
                    Ok(_) => "accepted".to_string(),
                    Err(e) => format!("{e}").chars().take(40).collect(),
                }
            }
        });
        futures::future::join_all(tries).await
    })
    .await;
    let accepted = answers.iter().filter(|a| *a == "accepted").count();
    eprintln!(
        "300 Flight handshakes: {accepted} accepted; /livez {failed} of {ran} failed; e.g. {:?}",
        &answers[..3]
    );
    assert_eq!(accepted, 0);
    assert_eq!(failed, 0, "/livez failed during the handshake flood");

    run.signal(libc::SIGTERM);
    assert!(run.wait_exit(Duration::from_secs(30)).unwrap().success());
}
