//! `shopwatch bench query`: the dashboard's KPI query set through Flight SQL against a lake of
//! at least N raw events written by the real pipeline, while the pipeline keeps ingesting.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use shopwatch_actors::events::EventKind;
use shopwatch_load::stats::{millis, summarize, Summary};

use super::lakefill::{data_files, LiveLake};
use crate::config::Config;
use crate::flight::kpis::kpi_queries;

#[derive(Args)]
pub struct QueryBenchArgs {
    /// Lake (and its broker) to query; reused across runs, filled first when short of --events.
    #[arg(long, default_value = "./shopwatch-data/bench-query")]
    data_dir: PathBuf,
    /// Raw events the lake must hold before measuring.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Producer rate while filling, events per second (the pipeline commits every second, so
    /// this sets rows per data file).
    #[arg(long, default_value_t = 10_000.0)]
    fill_rate: f64,
    /// Events per second produced while measuring (a live lake; 0 = idle).
    #[arg(long, default_value_t = 200.0)]
    live_rate: f64,
    /// Measured runs of the whole query set.
    #[arg(long, default_value_t = 200)]
    iterations: usize,
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

const TARGET_P99_MS: f64 = 100.0;

pub async fn run(cfg: Config, args: QueryBenchArgs) -> anyhow::Result<i32> {
    anyhow::ensure!(args.fill_rate > 0.0, "--fill-rate must be positive");
    anyhow::ensure!(args.iterations > 0, "--iterations must be at least 1");
    let mut lake = LiveLake::start(cfg, args.data_dir.clone()).await?;
    let rows = lake.fill(args.events, args.fill_rate, args.seed).await?;
    let live = (args.live_rate > 0.0)
        .then(|| lake.keep_producing(args.live_rate, args.seed.wrapping_add(rows)));
    let target = lake.cfg.query_target();
    println!("lake: {} ({rows} raw rows)", args.data_dir.display());
    for kind in EventKind::ALL {
        let (files, bytes) = data_files(&lake.cfg, kind.raw_table());
        println!(
            "  {:<18} {files:>6} data files {:>8.1} MB",
            kind.raw_table(),
            bytes as f64 / 1e6
        );
    }
    // Let the live producer's first commits land, then warm the caches.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut per_query: Vec<(&'static str, Vec<f64>)> = Vec::new();
    let mut sequential = Vec::new();
    let mut concurrent = Vec::new();
    for i in 0..args.iterations + 5 {
        let queries = kpi_queries(
            &target.source,
            &target.namespace,
            chrono::Utc::now().timestamp_micros(),
        );
        let set_start = Instant::now();
        for (j, q) in queries.iter().enumerate() {
            let t = Instant::now();
            lake.client.query(&q.sql).await?;
            if i >= 5 {
                if per_query.len() <= j {
                    per_query.push((q.name, Vec::new()));
                }
                per_query[j].1.push(millis(t.elapsed()));
            }
        }
        let seq = millis(set_start.elapsed());
        let t = Instant::now();
        crate::flight::kpis::fetch(
            &mut lake.client,
            &target.source,
            &target.namespace,
            chrono::Utc::now().timestamp_micros(),
        )
        .await?;
        if i >= 5 {
            sequential.push(seq);
            concurrent.push(millis(t.elapsed()));
        }
    }
    if let Some(live) = live {
        live.abort();
    }
    let line = |name: &str, s: Summary| {
        println!(
            "{name:<34} {:>5} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
            s.n, s.p50, s.p95, s.p99, s.max
        )
    };
    println!(
        "\nKPI query set through Flight SQL ({} backend), live producer {} ev/s",
        target.backend, args.live_rate
    );
    println!(
        "{:<34} {:>5} {:>8} {:>8} {:>8} {:>8}",
        "query (ms)", "n", "p50", "p95", "p99", "max"
    );
    for (name, samples) in &per_query {
        line(name, summarize(samples));
    }
    let seq = summarize(&sequential);
    let conc = summarize(&concurrent);
    line("whole set, one after another", seq);
    line("whole set as the refresher runs it", conc);
    let worst = per_query
        .iter()
        .map(|(_, s)| summarize(s).p99)
        .fold(0.0, f64::max);
    println!(
        "target: p99 ≤ {TARGET_P99_MS} ms per query — worst query p99 {worst:.1} ms ({}); whole set concurrent p99 {:.1} ms ({})",
        if worst <= TARGET_P99_MS { "met" } else { "MISSED" },
        conc.p99,
        if conc.p99 <= TARGET_P99_MS { "met" } else { "MISSED" },
    );
    lake.stop().await?;
    Ok(0)
}
