//! Websocket soak client: many dashboard clients at once against a running shopwatch, some of
//! them reading slowly. Prints push latency for healthy clients (server send time → receipt,
//! same machine clock), what happened to the slow ones, and the server's RSS before and after.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use tokio::net::TcpSocket;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

use crate::stats::{summarize, Summary};

#[derive(Clone, Debug)]
pub struct SoakParams {
    /// ws://HOST:PORT/ws
    pub url: String,
    pub clients: usize,
    pub slow_fraction: f64,
    pub duration: Duration,
    /// A slow client reads one message per this interval, through a tiny receive buffer.
    pub slow_read_every: Duration,
}

#[derive(Debug, Default)]
pub struct SoakReport {
    pub healthy: usize,
    pub slow: usize,
    pub connect_failures: usize,
    pub latency_ms: Summary,
    pub messages: u64,
    /// Healthy clients the server closed (should be 0).
    pub healthy_closed: usize,
    /// Snapshots received after the first one: the server skipped the client ahead.
    pub slow_skips_seen: u64,
    pub slow_closed_by_server: usize,
    pub rss_before: Option<f64>,
    pub rss_after: Option<f64>,
    /// Server RSS shortly before the end, with every client connected.
    pub rss_during: Option<f64>,
    pub server_skipped: Option<f64>,
    pub server_dropped_slow: Option<f64>,
    /// Clients the server closed because a send blocked for its write timeout.
    pub server_dropped_write_timeout: Option<f64>,
}

#[derive(Default)]
struct ClientResult {
    latencies: Vec<f64>,
    messages: u64,
    snapshots: u64,
    closed_by_server: bool,
}

fn host_port(url: &str) -> anyhow::Result<String> {
    let rest = url
        .strip_prefix("ws://")
        .context("only ws:// URLs are supported by the soak client")?;
    Ok(rest.split('/').next().unwrap_or(rest).to_string())
}

/// One sample from the server's /metrics (`name` with no labels), if it has it.
pub async fn server_metric(url: &str, name: &str) -> Option<f64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = host_port(url).ok()?;
    let mut s = tokio::net::TcpStream::connect(&addr).await.ok()?;
    let req = format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).await.ok()?;
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

async fn client(
    url: String,
    slow: bool,
    p: SoakParams,
    deadline: Instant,
) -> anyhow::Result<ClientResult> {
    let addr: std::net::SocketAddr = tokio::net::lookup_host(host_port(&url)?)
        .await?
        .next()
        .context("no address")?;
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if slow {
        // A small window makes the server's sends back up, as a phone on a bad link would.
        socket.set_recv_buffer_size(4 * 1024)?;
    }
    let stream = socket.connect(addr).await?;
    // tungstenite reads up to 128 KiB per call by default, which would drain the socket for a
    // "slow" reader; a slow client reads 4 KiB at a time.
    let config = slow.then(|| {
        tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .read_buffer_size(4 * 1024)
    });
    let (mut ws, _) =
        tokio_tungstenite::client_async_with_config(url.as_str(), stream, config).await?;
    let mut r = ClientResult::default();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let msg = match tokio::time::timeout(left, ws.next()).await {
            Err(_) => break,
            Ok(None) | Ok(Some(Err(_))) => {
                r.closed_by_server = true;
                break;
            }
            Ok(Some(Ok(m))) => m,
        };
        match msg {
            Message::Text(t) => {
                let now = chrono::Utc::now().timestamp_millis();
                r.messages += 1;
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(t.as_str()) {
                    if v["type"] == "snapshot" {
                        r.snapshots += 1;
                    } else if let Some(sent) = v["ts_ms"].as_i64() {
                        r.latencies.push((now - sent) as f64);
                    }
                }
            }
            Message::Close(_) => {
                r.closed_by_server = true;
                break;
            }
            _ => {}
        }
        if slow {
            tokio::time::sleep(p.slow_read_every).await;
        }
    }
    Ok(r)
}

pub async fn soak(p: SoakParams) -> anyhow::Result<SoakReport> {
    let rss = "process_resident_memory_bytes";
    let mut report = SoakReport {
        rss_before: server_metric(&p.url, rss).await,
        ..SoakReport::default()
    };
    let skipped0 = server_metric(&p.url, "shopwatch_ws_skipped_total").await;
    let dropped0 = server_metric(&p.url, "shopwatch_ws_dropped_total{reason=\"slow\"}").await;
    let timeout0 = server_metric(
        &p.url,
        "shopwatch_ws_dropped_total{reason=\"write_timeout\"}",
    )
    .await;
    let slow_n = ((p.clients as f64) * p.slow_fraction.clamp(0.0, 1.0)).round() as usize;
    let deadline = Instant::now() + p.duration;
    let results = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..p.clients {
        let slow = i < slow_n;
        let (url, p2, results) = (p.url.clone(), p.clone(), results.clone());
        tasks.push(tokio::spawn(async move {
            let r = client(url, slow, p2, deadline).await;
            results.lock().await.push((slow, r));
        }));
        // Connect at ~200/s, as a crowd arriving, not one burst.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Memory with everyone connected: 3 s before the end.
    let sample_at = deadline
        .checked_sub(Duration::from_secs(3))
        .unwrap_or(deadline);
    tokio::time::sleep_until(tokio::time::Instant::from_std(sample_at)).await;
    report.rss_during = server_metric(&p.url, rss).await;
    for t in tasks {
        let _ = t.await;
    }
    let mut latencies = Vec::new();
    for (slow, r) in results.lock().await.drain(..) {
        match r {
            Err(_) => report.connect_failures += 1,
            Ok(r) if slow => {
                report.slow += 1;
                report.slow_skips_seen += r.snapshots.saturating_sub(1);
                report.slow_closed_by_server += usize::from(r.closed_by_server);
            }
            Ok(r) => {
                report.healthy += 1;
                report.messages += r.messages;
                report.healthy_closed += usize::from(r.closed_by_server);
                latencies.extend(r.latencies);
            }
        }
    }
    report.latency_ms = summarize(&latencies);
    // Let the server notice the closed sockets before reading its memory again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    report.rss_after = server_metric(&p.url, rss).await;
    let delta = |a: Option<f64>, b: Option<f64>| Some(b? - a.unwrap_or(0.0));
    report.server_skipped = delta(
        skipped0,
        server_metric(&p.url, "shopwatch_ws_skipped_total").await,
    );
    report.server_dropped_slow = delta(
        dropped0,
        server_metric(&p.url, "shopwatch_ws_dropped_total{reason=\"slow\"}").await,
    );
    report.server_dropped_write_timeout = delta(
        timeout0,
        server_metric(
            &p.url,
            "shopwatch_ws_dropped_total{reason=\"write_timeout\"}",
        )
        .await,
    );
    Ok(report)
}
