//! Windows, KPIs and alerts end to end: a known stream through the real broker and the real
//! `shopwatch run`, checked by an independent pyiceberg recount.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::*;

/// Test settings: windows close 5 s after traffic stops, silence alerts after 15 s.
const ENV: [(&str, &str); 3] = [
    ("SHOPWATCH_WINDOWS__IDLE_TIMEOUT_S", "5"),
    ("SHOPWATCH_ALERTS__NO_DATA__AFTER_S", "15"),
    ("SHOPWATCH_FLIGHT__TOKEN_TTL_S", "3"),
];

/// Event time of the stream: 40 minutes ago, on a minute boundary.
fn base() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    now / 60 * 60 - 2_400
}

fn known_stream(brokers: &str, base: u64, step_delay: f64) -> Proc {
    Proc(
        Command::new("python3")
            .arg(py_dir().join("known_stream.py"))
            .args([brokers, &base.to_string(), &step_delay.to_string()])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// Wait until the silence alerts of all three topics are out: by then every window is closed.
async fn wait_quiet(http: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if metric(http, r#"shopwatch_alerts_total{alert_type="NO_DATA"}"#).await >= 3.0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("no NO_DATA alerts within {timeout:?}");
}

fn expected_alerts() -> serde_json::Value {
    // The minute without orders, and the end of the stream (a real drop: orders stopped).
    json!({"FATAL_ERROR": 3, "ERROR_SPIKE": 1, "HIGH_ERROR_RATE": 1,
           "ORDERS_DROP": 2, "REVENUE_DROP": 2, "NO_DATA": 3})
}

fn check(data: &std::path::Path, base: u64) -> serde_json::Value {
    let summary: serde_json::Value = serde_json::from_str(&python(
        "check_kpis.py",
        &["--data-dir", data.to_str().unwrap()],
    ))
    .unwrap();
    assert_eq!(summary["alerts"], expected_alerts(), "{summary:#}");
    // The first drop is the window that starts half a minute before the silent minute 14.
    let drop = chrono::DateTime::from_timestamp((base + 13 * 60 + 30) as i64, 0)
        .unwrap()
        .format("%H:%M:%S")
        .to_string();
    let descriptions = summary["alert_descriptions"].to_string();
    assert!(
        descriptions.contains(&format!("window {drop}")),
        "{descriptions}"
    );
    for table in [
        "orders_revenue_per_minute",
        "active_users_per_window",
        "errors_per_minute",
    ] {
        assert!(summary[table]["rows"].as_u64().unwrap() > 20, "{summary:#}");
    }
    // Every registered KPI was recounted (an empty table would pass the recount silently).
    for kpi in shopwatch_actors::kpis::REGISTRY {
        let rows = summary[kpi.table()]["rows"].as_u64().unwrap_or(0);
        assert!(rows > 20, "{}: {rows} rows; {summary:#}", kpi.table());
        assert_eq!(summary[kpi.table()]["mismatches"], 0, "{summary:#}");
    }
    summary
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_stream_gives_recounted_kpis_and_exactly_the_expected_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, brokers) = broker(dir.path());
    let data = dir.path().join("lake");
    let (mut run, http, flight) = run_pipeline_env(&brokers, &data, &ENV);
    let base = base();
    let mut producer = known_stream(&brokers, base, 0.0);
    assert!(producer
        .wait_exit(Duration::from_secs(60))
        .unwrap()
        .success());
    wait_caught_up(&brokers, &data, Duration::from_secs(120)).await;
    wait_quiet(&http, Duration::from_secs(120)).await;
    // The same lake through the embedded Flight SQL server, with pyarrow and ADBC.
    let flight_summary = python(
        "flight_check.py",
        &[
            "--flight",
            &flight,
            "--data-dir",
            data.to_str().unwrap(),
            "--token-ttl-s",
            "3",
        ],
    );
    assert!(
        flight_summary.contains("\"expired token\""),
        "{flight_summary}"
    );
    run.signal(libc::SIGTERM);
    assert!(run.wait_exit(Duration::from_secs(30)).unwrap().success());
    check(&data, base);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_keeps_kpis_and_alerts_exact() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, brokers) = broker(dir.path());
    let data = dir.path().join("lake");
    let (mut run, _, _) = run_pipeline_env(&brokers, &data, &ENV);
    let base = base();
    // 144 steps of 0.08 s: about 12 s of production, killed three times in the middle.
    let mut producer = known_stream(&brokers, base, 0.08);
    let mut http = String::new();
    for kill in 0..3u64 {
        tokio::time::sleep(Duration::from_millis(2_500 + kill * 700)).await;
        run.signal(libc::SIGKILL);
        run.wait_exit(Duration::from_secs(10)).expect("killed");
        (run, http, _) = run_pipeline_env(&brokers, &data, &ENV);
    }
    assert!(producer
        .wait_exit(Duration::from_secs(120))
        .unwrap()
        .success());
    wait_caught_up(&brokers, &data, Duration::from_secs(120)).await;
    wait_quiet(&http, Duration::from_secs(120)).await;
    run.signal(libc::SIGTERM);
    assert!(run.wait_exit(Duration::from_secs(30)).unwrap().success());
    check(&data, base);
}
