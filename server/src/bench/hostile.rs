//! `shopwatch bench hostile`: what a login flood and query bombs cost a running pipeline. One
//! `shopwatch run` process with a login configured and a steady produce rate; then, one after
//! the other: 300 concurrent page logins with distinct made-up names (three rounds), a Flight
//! handshake flood, an endless count and an `array_agg` over hundreds of millions of rows.
//! For each: the pipeline's RSS before and at its peak, `/livez` latency while it lasts, what
//! the server answered, and whether rows kept landing meanwhile.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use shopwatch_load::produce::{produce, ProduceParams};
use shopwatch_load::stats::{rss_bytes, summarize};

use super::PipelineProcess;
use crate::config::{Config, SEED_FLIGHT_PASSWORD, SEED_FLIGHT_USER};
use crate::flight::client::FlightQueryClient;

#[derive(Args, Clone)]
pub struct HostileArgs {
    /// Steady produce rate meanwhile, events per second.
    #[arg(long, default_value_t = 2_000.0)]
    pub rate: f64,
    /// Concurrent logins per round.
    #[arg(long, default_value_t = 300)]
    pub logins: usize,
    /// Rows of the `array_agg` bomb.
    #[arg(long, default_value_t = 400_000_000)]
    pub rows: u64,
}

/// Samples of the pipeline while one attack runs.
struct Watch {
    stop: Arc<AtomicBool>,
    peak_rss: Arc<Mutex<u64>>,
    livez_ms: Arc<Mutex<Vec<f64>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Watch {
    fn start(pid: u32, http: &str) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let peak_rss = Arc::new(Mutex::new(0));
        let livez_ms = Arc::new(Mutex::new(Vec::new()));
        let (s, p, l, url) = (
            stop.clone(),
            peak_rss.clone(),
            livez_ms.clone(),
            format!("http://{http}/livez"),
        );
        let task = tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default();
            while !s.load(Ordering::Relaxed) {
                if let Some((now, _)) = rss_bytes(pid) {
                    let mut peak = p.lock().unwrap_or_else(|e| e.into_inner());
                    *peak = (*peak).max(now);
                }
                let t = Instant::now();
                let ok = client
                    .get(&url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                let ms = if ok {
                    t.elapsed().as_secs_f64() * 1e3
                } else {
                    f64::INFINITY
                };
                l.lock().unwrap_or_else(|e| e.into_inner()).push(ms);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        Watch {
            stop,
            peak_rss,
            livez_ms,
            task,
        }
    }

    async fn finish(self, name: &str, before: u64, outcome: &str, took: Duration) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        let peak = *self.peak_rss.lock().unwrap_or_else(|e| e.into_inner());
        let samples = self
            .livez_ms
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let failed = samples.iter().filter(|v| !v.is_finite()).count();
        let s = summarize(&samples);
        println!(
            "{name:<34} {:>7.1} s  RSS {:>5} → {:>5} MB  /livez p50 {:>6.1} p99 {:>7.1} max {:>7.1} ms ({} probes, {failed} failed)  {outcome}",
            took.as_secs_f64(),
            before >> 20,
            peak.max(before) >> 20,
            s.p50,
            s.p99,
            s.max,
            samples.len(),
        );
    }
}

fn rss(pid: u32) -> u64 {
    rss_bytes(pid).map(|(now, _)| now).unwrap_or(0)
}

/// Rows committed to the raw tables so far (from `/metrics`).
async fn raw_rows(http: &str) -> f64 {
    let body = match reqwest::get(format!("http://{http}/metrics")).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => return 0.0,
    };
    body.lines()
        .filter(|l| l.starts_with("shopwatch_rows_committed_total{table=\""))
        .filter(|l| l.contains("_processed\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub async fn run(cfg: Config, args: HostileArgs) -> anyhow::Result<i32> {
    let dir = std::env::temp_dir().join(format!("shopwatch-bench-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (broker, _) = super::memory_broker(&cfg, &dir, cfg.kafka.partitions).await?;
    let brokers = broker.brokers();
    let hash = crate::auth::hash_password("right horse battery")?;
    let env = [
        ("SHOPWATCH_AUTH__USERS__OPS__ROLE", "operator"),
        ("SHOPWATCH_AUTH__USERS__OPS__PASSWORD_HASH", hash.as_str()),
        ("SHOPWATCH_AUTH__PUBLIC_METRICS", "true"),
    ];
    let pipeline = PipelineProcess::spawn(&dir, &brokers, &env)?;
    let (pid, http, flight) = (pipeline.pid, pipeline.http.clone(), pipeline.flight.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let producer = tokio::spawn(produce(
        ProduceParams {
            brokers: brokers.clone(),
            orders_topic: cfg.topics.orders.clone(),
            clicks_topic: cfg.topics.clicks.clone(),
            errors_topic: cfg.topics.errors.clone(),
            rate: Some(args.rate),
            count: None,
            duration: None,
            seed: 7,
            malformed_fraction: 0.0,
            ack_log: None,
            progress: false,
            event_clock: None,
        },
        stop.clone(),
    ));
    // Up and ingesting.
    let began = Instant::now();
    while raw_rows(&http).await < 1.0 {
        anyhow::ensure!(
            began.elapsed() < Duration::from_secs(120),
            "the pipeline did not start ingesting; see {}",
            dir.join("pipeline.log").display()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    println!(
        "bench hostile: shopwatch pid {pid}, {} ev/s steady, RSS {} MB at rest",
        args.rate,
        rss(pid) >> 20
    );

    // Page logins with distinct made-up names, 16 KiB each.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(60))
        .build()?;
    let before = rss(pid);
    let watch = Watch::start(pid, &http);
    let t = Instant::now();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for round in 0..3 {
        let tries = (0..args.logins).map(|i| {
            let client = client.clone();
            let url = format!("http://{http}/login");
            let name = format!("{}{round}-{i}", "x".repeat(15 * 1024));
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
        for code in futures::future::join_all(tries).await {
            *statuses.entry(code).or_default() += 1;
        }
    }
    watch
        .finish(
            &format!("login flood {}×3, distinct names", args.logins),
            before,
            &format!("answers {statuses:?}"),
            t.elapsed(),
        )
        .await;

    // Flight handshakes with made-up users.
    let before = rss(pid);
    let watch = Watch::start(pid, &http);
    let t = Instant::now();
    let tries = (0..args.logins).map(|i| {
        let flight = flight.clone();
        async move {
            FlightQueryClient::connect(
                &flight,
                &format!("nobody{i}"),
                "guess",
                Duration::from_secs(30),
            )
            .await
            .err()
            .map(|e| match crate::flight::client::status_code(&e) {
                Some(tonic::Code::Unavailable) => "unavailable",
                Some(tonic::Code::Unauthenticated) => "unauthenticated",
                _ => "other",
            })
            .unwrap_or("accepted")
        }
    });
    let mut answers = std::collections::BTreeMap::<&str, usize>::new();
    for a in futures::future::join_all(tries).await {
        *answers.entry(a).or_default() += 1;
    }
    watch
        .finish(
            &format!("Flight handshake flood {}", args.logins),
            before,
            &format!("answers {answers:?}"),
            t.elapsed(),
        )
        .await;

    // Query bombs, one after the other, while rows keep landing.
    let bombs = [
        (
            "endless count",
            "SELECT count(*) FROM generate_series(1, 10000000000000)".to_string(),
        ),
        (
            "array_agg over many rows",
            format!(
                "SELECT array_agg(value) FROM generate_series(1, {})",
                args.rows
            ),
        ),
    ];
    for (name, sql) in bombs {
        let mut client = FlightQueryClient::connect(
            &flight,
            SEED_FLIGHT_USER,
            SEED_FLIGHT_PASSWORD,
            Duration::from_secs(600),
        )
        .await?;
        let rows_before = raw_rows(&http).await;
        let before = rss(pid);
        let watch = Watch::start(pid, &http);
        let t = Instant::now();
        let outcome = match client.query(&sql).await {
            Ok(b) => format!("answered {} batches", b.len()),
            Err(e) => {
                let e = format!("{e:#}");
                e.split("message: \"")
                    .nth(1)
                    .and_then(|m| m.split('"').next())
                    .unwrap_or(&e)
                    .chars()
                    .take(90)
                    .collect()
            }
        };
        let took = t.elapsed();
        let landed = raw_rows(&http).await - rows_before;
        watch
            .finish(
                name,
                before,
                &format!("{outcome}; {landed:.0} rows landed meanwhile"),
                took,
            )
            .await;
    }
    stop.store(true, Ordering::Relaxed);
    let _ = producer.await;
    pipeline.stop().await;
    drop(broker);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(0)
}
