//! The live dashboard end to end: real broker, real `shopwatch run`, the page in Debian's
//! headless Chromium, a real Prometheus scraping /metrics, and the websocket protocol spoken by
//! an independent client (tokio-tungstenite).

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::*;

const ENV: [(&str, &str); 4] = [
    ("SHOPWATCH_WINDOWS__IDLE_TIMEOUT_S", "5"),
    ("SHOPWATCH_QUERY__MIN_INTERVAL_MS", "500"),
    ("SHOPWATCH_QUERY__REFRESH_MS", "2000"),
    ("SHOPWATCH_HTTP__WS_MAX_CLIENTS", "4"),
];

fn artifacts() -> std::path::PathBuf {
    std::env::var_os("SHOPWATCH_TEST_ARTIFACTS")
        .map(Into::into)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../test-artifacts")
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_in_chromium_shows_the_lake_live_and_safely() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, brokers) = broker(dir.path());
    let data = dir.path().join("lake");
    // A shop that sells in euros, seen from a German browser.
    let mut env = ENV.to_vec();
    env.push(("SHOPWATCH_HTTP__CURRENCY", "EUR"));
    let (mut run, http, _flight) = run_pipeline_env(&brokers, &data, &env);
    python("dashboard_stream.py", &[&brokers, "phase1"]);
    wait_caught_up(&brokers, &data, Duration::from_secs(120)).await;
    let summary = chromium_check_with(
        "browser_check.py",
        &http,
        &data,
        &brokers,
        "dashboard.png",
        &["--locale", "de-DE", "--currency-symbol", "€"],
    );
    // German grouping and the euro sign after the amount: "1.234,56 €".
    let shown = summary["amounts shown as"][0]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(shown.ends_with('€') && shown.contains(','), "{summary}");
    run.signal(libc::SIGTERM);
    assert!(run.wait_exit(Duration::from_secs(30)).unwrap().success());
}

/// Run a Chromium check script against the page; it must report 0 console errors and leave
/// the `screenshot` artifact.
fn chromium_check(
    script: &str,
    http: &str,
    data: &std::path::Path,
    brokers: &str,
    screenshot: &str,
) -> serde_json::Value {
    chromium_check_with(script, http, data, brokers, screenshot, &[])
}

fn chromium_check_with(
    script: &str,
    http: &str,
    data: &std::path::Path,
    brokers: &str,
    screenshot: &str,
    extra: &[&str],
) -> serde_json::Value {
    let url = format!("http://{http}/");
    let dir = artifacts();
    let mut args = vec![
        "--url",
        &url,
        "--data-dir",
        data.to_str().unwrap(),
        "--brokers",
        brokers,
        "--artifacts",
        dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = python(script, &args);
    eprintln!("{out}");
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["console errors"], 0, "{out}");
    assert!(artifacts().join(screenshot).is_file());
    summary
}

/// Issue 22: provisional values, time ranges, top products, conversion, drill-down, local
/// time, phone width (`live_check.py`: Chromium against pyiceberg recounts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_see_live_values_ranges_and_the_rows_behind_them() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, brokers) = broker(dir.path());
    let data = dir.path().join("lake");
    let (mut run, http, _flight) = run_pipeline_env(&brokers, &data, &ENV);
    let summary = chromium_check(
        "live_check.py",
        &http,
        &data,
        &brokers,
        "live-provisional.png",
    );
    assert!(summary["provisional: broker ack → card, s"]
        .as_f64()
        .is_some());
    run.signal(libc::SIGTERM);
    assert!(run.wait_exit(Duration::from_secs(30)).unwrap().success());
}

async fn connect(
    http: &str,
    origin: Option<&str>,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    tokio_tungstenite::tungstenite::Error,
> {
    let mut req = format!("ws://{http}/ws").into_client_request().unwrap();
    if let Some(o) = origin {
        req.headers_mut().insert("origin", o.parse().unwrap());
    }
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
}

async fn next_json(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> serde_json::Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("a message within 30 s")
            .expect("socket open")
            .expect("no error");
        if let Message::Text(t) = msg {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_protocol_and_prometheus_scrape() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, brokers) = broker(dir.path());
    let data = dir.path().join("lake");
    let (mut run, http, _flight) = run_pipeline_env(&brokers, &data, &ENV);
    let ack = dir.path().join("acks.jsonl");
    let mut producer = produce(&brokers, 3_000, Some(1_000), 0.0, 3, &ack);
    // The server comes up while the producer runs.
    let mut ws = loop {
        match connect(&http, Some(&format!("http://{http}"))).await {
            Ok(ws) => break ws,
            Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    };
    // First a snapshot, then typed messages, each with seq, server time and data.
    let first = next_json(&mut ws).await;
    assert_eq!(first["type"], "snapshot", "{first}");
    let mut seen = std::collections::BTreeSet::new();
    let mut last_seq = first["seq"].as_u64().unwrap();
    while !(seen.contains("kpis") && seen.contains("latest_orders") && seen.contains("health")) {
        let m = next_json(&mut ws).await;
        let seq = m["seq"].as_u64().unwrap();
        assert!(seq > last_seq, "seq must grow: {last_seq} then {seq}");
        last_seq = seq;
        assert!(m["ts_ms"].as_i64().unwrap() > 0 && m["ts"].as_str().unwrap().ends_with('Z'));
        assert!(m.get("data").is_some());
        seen.insert(m["type"].as_str().unwrap().to_string());
    }
    // A snapshot on a new connection carries everything the page needs.
    let mut ws2 = connect(&http, None).await.unwrap();
    let snap = next_json(&mut ws2).await;
    for key in ["views", "kpis", "series", "latest_orders", "health"] {
        assert!(
            snap["data"].get(key).is_some(),
            "snapshot lacks {key}: {snap}"
        );
    }
    // Cross-site pages are refused before the upgrade.
    let err = connect(&http, Some("http://evil.example"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("403"), "{err}");
    // At most 4 clients (ws, ws2, and two more); the fifth gets 503.
    let _c3 = connect(&http, None).await.unwrap();
    let mut c4 = connect(&http, None).await.unwrap();
    let err = connect(&http, None).await.unwrap_err();
    assert!(err.to_string().contains("503"), "{err}");
    // A client frame over 64 KiB closes the connection with 1009.
    c4.send(Message::text("x".repeat(70 * 1024))).await.ok();
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(m) = c4.next().await {
            match m {
                Ok(Message::Close(f)) => return f.map(|f| u16::from(f.code)),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
        None
    })
    .await
    .expect("closed within 10 s");
    assert_eq!(closed, Some(1009));
    assert!(producer
        .wait_exit(Duration::from_secs(60))
        .unwrap()
        .success());
    wait_caught_up(&brokers, &data, Duration::from_secs(120)).await;
    assert!(metric(&http, "shopwatch_ws_rejected_total{reason=\"origin\"}").await >= 1.0);
    assert!(metric(&http, "shopwatch_ws_rejected_total{reason=\"max_clients\"}").await >= 1.0);
    assert!(
        metric(
            &http,
            "shopwatch_ws_dropped_total{reason=\"frame_too_large\"}"
        )
        .await
            >= 1.0
    );
    assert!(metric(&http, "shopwatch_kpi_refreshes_total{outcome=\"ok\"}").await >= 1.0);
    // One instance alone: its groups gave it every partition of every topic, which /readyz
    // lists (and the rebalance counter agrees).
    let ready: serde_json::Value = reqwest::get(format!("http://{http}/readyz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for topic in ["orders_topic", "clicks_topic", "errors_topic"] {
        assert_eq!(
            ready["assigned_partitions"][topic],
            serde_json::json!([0, 1, 2]),
            "{ready}"
        );
        let body = metrics_body(&http).await;
        let assigned: f64 = body
            .lines()
            .filter(|l| l.starts_with("shopwatch_group_rebalances_total{"))
            .filter(|l| {
                l.contains(&format!("topic=\"{topic}\"")) && l.contains("change=\"assigned\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        assert!(assigned >= 3.0, "{topic}: {assigned}");
    }
    // Alone, it won the election for the rollup tables: /readyz, the gauge and the health
    // message the page shows say so.
    assert_eq!(ready["rollup_owner"], true, "{ready}");
    assert_eq!(ready["election"]["elected"], true, "{ready}");
    assert_eq!(metric(&http, "shopwatch_rollup_owner").await, 1.0);
    let health = &snap["data"]["health"]["instance"];
    assert!(health["assigned_partitions"].is_object(), "{health}");
    assert!(health["election"].get("rollup_owner").is_some(), "{health}");

    let out = python("prometheus_check.py", &["--target", &http]);
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["target"]["health"], "up", "{out}");
    assert_eq!(summary["promtool"], "clean", "{out}");
    eprintln!("prometheus: {out}");
    run.signal(libc::SIGTERM);
    assert!(run.wait_exit(Duration::from_secs(30)).unwrap().success());
}
