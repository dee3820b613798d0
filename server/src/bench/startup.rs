//! `shopwatch bench startup`: from launching `shopwatch demo` (fresh data directory, the
//! broker already built) to the first KPI message on the dashboard's websocket.

use std::process::Stdio;
use std::time::{Duration, Instant};

use clap::Args;
use futures::StreamExt;
use tokio_tungstenite::tungstenite::Message;

use super::free_addr;

#[derive(Args)]
pub struct StartupArgs {
    /// Runs (each from a fresh data directory).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
}

/// Seconds to (first frame, first frame carrying KPIs), per run.
async fn one_run() -> anyhow::Result<(f64, f64)> {
    let dir = std::env::temp_dir().join(format!(
        "shopwatch-bench-startup-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4()
    ));
    std::fs::create_dir_all(&dir)?;
    let http = free_addr()?;
    let log = std::fs::File::create(dir.join("demo.log"))?;
    let started = Instant::now();
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .args(["demo", "--http", &http, "--flight", &free_addr()?])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env("SHOPWATCH_DEMO__BROKER_LISTEN", free_addr()?)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()?;
    let url = format!("ws://{http}/ws");
    let deadline = started + Duration::from_secs(120);
    let result = async {
        let mut ws = loop {
            anyhow::ensure!(Instant::now() < deadline, "no websocket within 120 s");
            if let Ok(Ok((ws, _))) = tokio::time::timeout(
                Duration::from_secs(2),
                tokio_tungstenite::connect_async(url.as_str()),
            )
            .await
            {
                break ws;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let mut first = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(Some(Ok(msg))) = tokio::time::timeout(left, ws.next()).await else {
                anyhow::bail!("no KPI message within 120 s");
            };
            let Message::Text(text) = msg else { continue };
            let at = started.elapsed().as_secs_f64();
            first.get_or_insert(at);
            let v: serde_json::Value = serde_json::from_str(text.as_str())?;
            let kpis = match v["type"].as_str() {
                Some("kpis") => Some(&v["data"]),
                Some("snapshot") => v["data"].get("kpis"),
                _ => None,
            };
            if kpis.is_some_and(|k| !k.is_null()) {
                return Ok((first.unwrap_or(at), at));
            }
        }
    }
    .await;
    if let Some(pid) = child.id() {
        // SAFETY: plain signal to our own child.
        unsafe {
            libc::kill(pid as i32, libc::SIGTERM);
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

pub async fn run(args: StartupArgs) -> anyhow::Result<i32> {
    println!("startup: `shopwatch demo` launch → first websocket frame → first KPI message");
    let mut kpi = Vec::new();
    for i in 0..args.runs.max(1) {
        let (frame, k) = one_run().await?;
        println!(
            "  run {}: first frame {frame:.2} s, first KPI message {k:.2} s",
            i + 1
        );
        kpi.push(k);
    }
    let worst = kpi.iter().copied().fold(0.0, f64::max);
    println!("{:<40} {:>10} {:>12}", "figure", "value", "target");
    println!(
        "{:<40} {:>10.2} {:>12}",
        "first KPI message, worst run, s", worst, "<= 20"
    );
    Ok(0)
}
