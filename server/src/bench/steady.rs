//! `shopwatch bench freshness` and `bench memory`: the pipeline as its own process under a
//! steady produce rate (default 20,000 ev/s for 2 minutes).
//!
//! Freshness: a poller asks the pipeline's Flight SQL server every `--poll-ms` for the newest
//! event time visible in the raw tables and the newest closed window. An event produced at t
//! becomes visible at the first poll whose newest visible time is ≥ t, so each poll interval
//! yields the latencies of the events it revealed (sampled every 10 ms of event time; at a
//! steady rate that weights them as the events are). Event times are the generator's wall
//! clock at production, on this same machine. Window freshness is poll time − window end for
//! each newly visible window. Memory: the pipeline's RSS at the end and its peak.
//!
//! Event → page: a websocket client (what the page is) reads the `kpis` frames, which carry
//! the newest event time the live orders figures include (`newest_event_ms`); an event is on
//! the page when the first frame whose stamp is ≥ its time arrives (sampled the same way).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMicrosecondType;
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use clap::Args;
use shopwatch_load::produce::{produce, ProduceParams};
use shopwatch_load::stats::{cpu_seconds, rss_bytes, summarize};

use super::PipelineProcess;
use crate::config::{Config, SEED_FLIGHT_PASSWORD, SEED_FLIGHT_USER};
use crate::flight::client::{timestamp_literal, FlightQueryClient};
use shopwatch_actors::kpis::{orders_revenue::OrdersRevenue, KpiDef};

#[derive(Args, Clone)]
pub struct SteadyArgs {
    /// Produce rate, events per second over the three topics.
    #[arg(long, default_value_t = 20_000.0)]
    pub rate: f64,
    /// Seconds of steady production.
    #[arg(long, default_value_t = 120.0)]
    pub duration: f64,
    /// Seconds at the start left out of the figures (start-up, table creation).
    #[arg(long, default_value_t = 15.0)]
    pub warmup: f64,
    #[arg(long, default_value_t = 100)]
    pub poll_ms: u64,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// The pipeline's `pipeline.commit_interval_ms` (its default when not given).
    #[arg(long)]
    pub commit_interval_ms: Option<u64>,
}

fn max_micros(batches: &[RecordBatch]) -> Option<i64> {
    let col = batches.first()?.columns().first()?.clone();
    let col = arrow::compute::cast(&col, &DataType::Timestamp(TimeUnit::Microsecond, None)).ok()?;
    let arr = col.as_primitive::<TimestampMicrosecondType>();
    (arr.len() > 0 && arr.is_valid(0)).then(|| arr.value(0))
}

fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// Event → page samples, filled by [`watch_page`] while the run lasts.
static PAGE_SAMPLES: std::sync::Mutex<Vec<f64>> = std::sync::Mutex::new(Vec::new());

/// Read the dashboard's websocket as the page does; each `kpis` frame reveals the events up
/// to its orders stamp.
async fn watch_page(url: String, warm_until: i64) {
    use futures::StreamExt;
    let mut last: Option<i64> = None;
    loop {
        let Ok((mut ws, _)) = tokio_tungstenite::connect_async(url.as_str()).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        while let Some(Ok(msg)) = ws.next().await {
            let tokio_tungstenite::tungstenite::Message::Text(text) = msg else {
                continue;
            };
            let seen = now_us();
            let Ok(v) = serde_json::from_str::<serde_json::Value>(text.as_str()) else {
                continue;
            };
            let data = match v["type"].as_str() {
                Some("kpis") => &v["data"],
                Some("snapshot") => &v["data"]["kpis"],
                _ => continue,
            };
            let Some(m) = data["newest_event_ms"].as_i64() else {
                continue;
            };
            let m = m * 1000;
            if let Some(prev) = last {
                let mut samples = PAGE_SAMPLES.lock().unwrap_or_else(|p| p.into_inner());
                let mut t = prev + 10_000;
                while t <= m {
                    if t >= warm_until {
                        samples.push((seen - t) as f64 / 1e3);
                    }
                    t += 10_000;
                }
            }
            if last.is_none_or(|p| m > p) {
                last = Some(m);
            }
        }
    }
}

pub async fn run(cfg: Config, args: SteadyArgs, memory_only: bool) -> anyhow::Result<i32> {
    let dir = std::env::temp_dir().join(format!("shopwatch-bench-steady-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (broker, _) = super::memory_broker(&cfg, &dir, cfg.kafka.partitions).await?;
    let brokers = broker.brokers();
    let interval = args.commit_interval_ms.map(|ms| ms.to_string());
    let env: Vec<(&str, &str)> = interval
        .as_deref()
        .map(|ms| ("SHOPWATCH_PIPELINE__COMMIT_INTERVAL_MS", ms))
        .into_iter()
        .collect();
    let mut pipeline = PipelineProcess::spawn(&dir, &brokers, &env)?;
    let (pid, flight) = (pipeline.pid, pipeline.flight.clone());
    let warm_until = now_us() + (args.warmup * 1e6) as i64;
    let page = (!memory_only)
        .then(|| tokio::spawn(watch_page(format!("ws://{}/ws", pipeline.http), warm_until)));

    let stop = Arc::new(AtomicBool::new(false));
    let producer = tokio::spawn(produce(
        ProduceParams {
            brokers: brokers.clone(),
            orders_topic: cfg.topics.orders.clone(),
            clicks_topic: cfg.topics.clicks.clone(),
            errors_topic: cfg.topics.errors.clone(),
            rate: Some(args.rate),
            count: None,
            duration: Some(Duration::from_secs_f64(args.duration)),
            seed: args.seed,
            malformed_fraction: 0.0,
            ack_log: None,
            progress: false,
            event_clock: None,
        },
        stop.clone(),
    ));
    println!(
        "steady: {:.0} ev/s for {:.0} s into Tansu (memory://), pipeline process {pid}",
        args.rate, args.duration
    );

    let started = Instant::now();
    let mut client: Option<FlightQueryClient> = None;
    let mut raw_lat: Vec<f64> = Vec::new();
    let mut win_lat: Vec<f64> = Vec::new();
    let mut last_raw: Option<i64> = None;
    let mut last_win: Option<i64> = None;
    let mut cpu_at_warm: Option<(Instant, f64)> = None;
    let mut rss_samples: Vec<f64> = Vec::new();
    let mut last_error: Option<String> = None;
    let lateness_s = cfg
        .windows
        .kpis
        .get(OrdersRevenue::NAME)
        .map_or(0, |w| w.lateness_s) as f64;
    while !producer.is_finished() {
        tokio::time::sleep(Duration::from_millis(args.poll_ms)).await;
        if let Ok(Some(status)) = pipeline.child.try_wait() {
            anyhow::bail!(
                "pipeline exited ({status}); see {}",
                dir.join("pipeline.log").display()
            );
        }
        if cpu_at_warm.is_none() && now_us() >= warm_until {
            cpu_at_warm = Some((Instant::now(), cpu_seconds(pid).unwrap_or(0.0)));
        }
        if cpu_at_warm.is_some() {
            if let Some((rss, _)) = rss_bytes(pid) {
                rss_samples.push(rss as f64 / 1e6);
            }
        }
        if memory_only {
            continue;
        }
        if client.is_none() {
            client = FlightQueryClient::connect(
                &flight,
                SEED_FLIGHT_USER,
                SEED_FLIGHT_PASSWORD,
                Duration::from_secs(10),
            )
            .await
            .ok();
        }
        let Some(c) = client.as_mut() else { continue };
        let src = format!("{}.{}", cfg.flight.source, cfg.lake.namespace);
        // Only recent files are opened: the time filter prunes by the files' column bounds.
        let since = timestamp_literal(now_us() - 60_000_000);
        let sqls = vec![
            format!("SELECT MAX(click_ts) FROM {src}.clicks_processed WHERE click_ts > {since}"),
            format!(
                "SELECT MAX(window_end) FROM {src}.{} WHERE window_end > {since}",
                OrdersRevenue::TABLE
            ),
        ];
        let results = match c.query_all(&sqls).await {
            Ok(r) => r,
            Err(e) => {
                last_error = Some(format!("{e:#}"));
                client = None;
                continue;
            }
        };
        let polled = now_us();
        if let Some(m) = results.first().and_then(|b| max_micros(b)) {
            if let Some(prev) = last_raw {
                let mut t = prev + 10_000;
                while t <= m {
                    if t >= warm_until {
                        raw_lat.push((polled - t) as f64 / 1e3);
                    }
                    t += 10_000;
                }
            }
            if last_raw.is_none_or(|p| m > p) {
                last_raw = Some(m);
            }
        }
        if let Some(w) = results.get(1).and_then(|b| max_micros(b)) {
            if last_win.is_some_and(|p| w > p) && w >= warm_until {
                win_lat.push((polled - w) as f64 / 1e3);
            }
            if last_win.is_none_or(|p| w > p) {
                last_win = Some(w);
            }
        }
    }
    let report = producer.await??;
    stop.store(true, Ordering::Relaxed);
    let page_lat = match page {
        Some(task) => {
            task.abort();
            let _ = task.await;
            std::mem::take(&mut *PAGE_SAMPLES.lock().unwrap_or_else(|p| p.into_inner()))
        }
        None => Vec::new(),
    };
    let elapsed = started.elapsed().as_secs_f64();
    let (rss_now, rss_peak) = rss_bytes(pid).unwrap_or((0, 0));
    let cpu_util =
        cpu_at_warm.map(|(t, c)| (cpu_seconds(pid).unwrap_or(0.0) - c) / t.elapsed().as_secs_f64());
    pipeline.stop().await;
    broker.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);

    println!(
        "produced {} events in {elapsed:.0} s ({:.0} ev/s achieved)",
        report.acked,
        report.acked as f64 / elapsed
    );
    println!("{:<48} {:>22} {:>20}", "figure", "value", "target");
    let row = |k: &str, v: String, t: String| println!("{k:<48} {v:>22} {t:>20}");
    if !memory_only {
        let r = summarize(&raw_lat);
        let w = summarize(&win_lat);
        let pg = summarize(&page_lat);
        row(
            "event → page (websocket frame), ms p50/p95/p99",
            if page_lat.is_empty() {
                "n/a (http.provisional_ms = 0?)".into()
            } else {
                format!("{:.0} / {:.0} / {:.0}", pg.p50, pg.p95, pg.p99)
            },
            "p99 <= 1000".into(),
        );
        row(
            "  samples (10 ms of event time each)",
            page_lat.len().to_string(),
            String::new(),
        );
        row(
            "raw: produce → visible via Flight, ms p50/p95/p99",
            format!("{:.0} / {:.0} / {:.0}", r.p50, r.p95, r.p99),
            "p99 <= 1500".into(),
        );
        row(
            "  samples (10 ms of event time each)",
            raw_lat.len().to_string(),
            String::new(),
        );
        row(
            "window end → visible via Flight, ms p50/p95/p99",
            format!("{:.0} / {:.0} / {:.0}", w.p50, w.p95, w.p99),
            format!("p99 <= {:.0}", lateness_s * 1e3 + 1500.0),
        );
        row("  windows seen", win_lat.len().to_string(), String::new());
        row(
            "  poll interval, ms (adds up to this)",
            args.poll_ms.to_string(),
            String::new(),
        );
    }
    let m = summarize(&rss_samples);
    row(
        "pipeline RSS at the end / peak, MB",
        format!("{:.0} / {:.0}", rss_now as f64 / 1e6, rss_peak as f64 / 1e6),
        "<= 200".into(),
    );
    row(
        "  RSS after warm-up p50 / max, MB",
        format!("{:.0} / {:.0}", m.p50, m.max),
        String::new(),
    );
    if let Some(u) = cpu_util {
        row(
            "pipeline CPU, cores busy (of 2)",
            format!("{u:.2}"),
            String::new(),
        );
        row(
            "  events per CPU-second",
            format!("{:.0}", args.rate / u.max(1e-9)),
            String::new(),
        );
    }
    if !memory_only && (raw_lat.is_empty() || win_lat.is_empty()) {
        anyhow::bail!(
            "no freshness samples (last Flight error: {})",
            last_error.unwrap_or_else(|| "none".into())
        );
    }
    Ok(0)
}
