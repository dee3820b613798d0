//! `shopwatch bench day`: one simulated day of commits against a fresh lake, to see whether
//! query cost stays flat while shopwatch runs for days. Every simulated second each raw table
//! gets one commit (a few events each: the file count, not the row count, is what grows), and
//! every simulated minute each KPI table one window row, through the real committers with
//! their real maintenance (manifest compaction, snapshot expiry, data-file compaction unless
//! `--no-compaction`). Every simulated hour it prints files per table, metadata bytes, commit
//! p50/p99 of that hour, the dashboard query set p50/p99 through Flight SQL, and the page's
//! 24-hour range view (its 5 queries over two days of whole-minute windows, one round trip).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use shopwatch_actors::events::{Click, ErrorEvent, EventKind, Order};
use shopwatch_actors::kpis::{KpiRow, KpiRows, REGISTRY};
use shopwatch_actors::lake::maintenance::rewrite::files_per_partition;
use shopwatch_actors::lake::{Lake, OffsetRule, RollupCommitter, TableBatch, TableCommitter};
use shopwatch_actors::schema::columns::{ColumnType, Value};
use shopwatch_actors::schema::{raw_table_spec, Rows, Source};
use shopwatch_load::stats::{millis, summarize};

use crate::config::Config;
use crate::flight::client::FlightQueryClient;
use crate::flight::kpis::kpi_queries;
use crate::live::api::trends::{range_queries, Range};

#[derive(Args)]
pub struct DayArgs {
    /// A fresh directory for the lake (removed first if it exists).
    #[arg(long, default_value = "./shopwatch-data/bench-day")]
    data_dir: PathBuf,
    /// Simulated hours.
    #[arg(long, default_value_t = 24)]
    hours: u32,
    /// Events per raw table per commit.
    #[arg(long, default_value_t = 3)]
    events_per_commit: usize,
    /// Run without data-file compaction (the comparison).
    #[arg(long)]
    no_compaction: bool,
    /// Stop after this much wall time (0: never), printing the hours reached.
    #[arg(long, default_value_t = 0)]
    wall_limit_s: u64,
    /// Runs of the dashboard query set per simulated hour.
    #[arg(long, default_value_t = 20)]
    query_iterations: usize,
}

/// 2026-12-01T00:00:00Z: a whole past day, so every row lands in one day partition.
const DAY_START_US: i64 = 1_796_083_200_000_000;

fn raw_batch(kind: EventKind, second: i64, n: usize, topic: &str) -> TableBatch {
    let ts = DAY_START_US + second * 1_000_000;
    let first = second * n as i64;
    let source = |i: usize| Source {
        partition: 0,
        offset: first + i as i64,
        ingested_at: ts,
    };
    let id = |i: usize| format!("{}-{}", kind.raw_table(), first + i as i64).into();
    let rows = match kind {
        EventKind::Orders => Rows::Orders(
            (0..n)
                .map(|i| {
                    let o = Order {
                        order_id: id(i),
                        user_id: format!("u{}", (first + i as i64) % 997).into(),
                        product_id: format!("p{}", (first + i as i64) % 101).into(),
                        quantity: 1 + (i as i32 % 3),
                        price: 9.99 + i as f64,
                        status: "CREATED",
                        order_ts: ts,
                    };
                    (source(i), o)
                })
                .collect(),
        ),
        EventKind::Clicks => Rows::Clicks(
            (0..n)
                .map(|i| {
                    let c = Click {
                        click_id: id(i),
                        user_id: format!("u{}", (first + i as i64) % 997).into(),
                        url: "/products".into(),
                        device_type: "mobile",
                        click_ts: ts,
                    };
                    (source(i), c)
                })
                .collect(),
        ),
        EventKind::Errors => Rows::Errors(
            (0..n)
                .map(|i| {
                    let e = ErrorEvent {
                        error_id: id(i),
                        service_name: "checkout".into(),
                        error_message: "timeout calling upstream".into(),
                        severity: "ERROR",
                        error_ts: ts,
                    };
                    (source(i), e)
                })
                .collect(),
        ),
    };
    TableBatch {
        topic: topic.to_string(),
        ranges: [(0, (first, first + n as i64))].into(),
        rows: Arc::new(rows),
        dead_letters_from: Default::default(),
    }
}

/// One window row of a KPI, every column filled by its type (the shape, not the value, matters).
fn kpi_row(kpi: &'static dyn shopwatch_actors::kpis::Kpi, minute: i64) -> KpiRows {
    let start = DAY_START_US + minute * 60_000_000;
    let values = kpi
        .columns()
        .iter()
        .map(|c| match c.ty {
            ColumnType::Int => Value::Int(1),
            ColumnType::Long => Value::Long(1),
            ColumnType::Double => Value::Double(1.0),
            ColumnType::Str => Value::Str("checkout".into()),
            ColumnType::Timestamp => Value::Timestamp(start),
        })
        .collect();
    KpiRows {
        kpi,
        rows: vec![KpiRow {
            start,
            end: start + 60_000_000,
            values,
        }],
    }
}

fn dir_bytes(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() {
                        dir_bytes(&p)
                    } else {
                        e.metadata().map(|m| m.len()).unwrap_or(0)
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

pub async fn run(mut cfg: Config, args: DayArgs) -> anyhow::Result<i32> {
    anyhow::ensure!(
        args.events_per_commit > 0,
        "--events-per-commit must be at least 1"
    );
    anyhow::ensure!(args.hours > 0, "--hours must be at least 1");
    if args.data_dir.exists() {
        std::fs::remove_dir_all(&args.data_dir)
            .with_context(|| format!("removing {}", args.data_dir.display()))?;
    }
    cfg.lake.data_dir = args.data_dir.clone();
    let lake = Lake::open(cfg.lake.params()).await?;
    let mut hygiene = cfg.maintenance.hygiene();
    // The simulation runs about 40 simulated seconds per wall second, so the wall-clock
    // retention is scaled with it in both runs (defaults 15 s each): otherwise every table
    // would keep some 600 simulated seconds of snapshots and metadata files where production
    // at one commit per second keeps 15, and the metadata figure would measure the speed-up.
    hygiene.snapshot_max_age = Duration::from_secs(1);
    hygiene.min_file_age = Duration::from_secs(1);
    if args.no_compaction {
        hygiene.data.every = Duration::ZERO;
    } else {
        // Likewise the wall-clock compaction schedule (defaults: a round every 60 s, 30 s
        // freshness guard, 600 s grace): otherwise thousands of simulated seconds of files
        // would pile up between two rounds, and each compaction's two protected snapshots
        // would stay for hours of simulated time.
        hygiene.data.every = Duration::from_secs(1);
        hygiene.data.fresh_for = Duration::from_millis(250);
        hygiene.data.replaced_grace = Duration::from_secs(15);
    }
    let mut raw = Vec::new();
    for kind in EventKind::ALL {
        let c = TableCommitter::open(
            lake.clone(),
            &raw_table_spec(kind),
            OffsetRule::Strict,
            hygiene.clone(),
        )
        .await?;
        raw.push((kind, c));
    }
    let mut folded = Vec::new();
    for kpi in REGISTRY.iter() {
        let (c, _) =
            RollupCommitter::open(lake.clone(), &kpi.spec(), hygiene.clone(), None).await?;
        folded.push((*kpi, c));
    }
    // Every other table the dashboard reads (alerts, dead letters) exists, empty.
    for t in shopwatch_actors::tables::all() {
        lake.ensure_table(&t.spec()).await?;
    }
    // Flight SQL over the same lake, as the dashboard reads it.
    cfg.flight.listen = super::free_addr()?;
    let flight_stop = Arc::new(tokio::sync::Notify::new());
    let stopped = flight_stop.clone();
    let flight = crate::flight::serve(
        crate::params::flight_params(&cfg)?,
        lake.reader_catalog().await?,
        async move { stopped.notified().await },
    )
    .await?;
    let target = cfg.query_target();
    let mut client = FlightQueryClient::connect(
        &cfg.flight.listen,
        &target.username,
        target.password.expose(),
        Duration::from_secs(30),
    )
    .await?;
    let topics = [
        cfg.topics.orders.clone(),
        cfg.topics.clicks.clone(),
        cfg.topics.errors.clone(),
    ];
    let topic = |k: EventKind| match k {
        EventKind::Orders => &topics[0],
        EventKind::Clicks => &topics[1],
        EventKind::Errors => &topics[2],
    };
    let warehouse = lake.params.warehouse_dir().join(&cfg.lake.namespace);
    println!(
        "bench day: {} simulated hours, 1 commit per raw table per simulated second ({} events each), 1 row per KPI table per simulated minute, snapshots and metadata files kept {} s of wall time (scaled from 15 s), data compaction {}",
        args.hours,
        args.events_per_commit,
        hygiene.min_file_age.as_secs(),
        if args.no_compaction {
            "OFF".to_string()
        } else {
            format!(
                "on (wall-clock schedule scaled to the simulation: a round every {} ms, files younger than {} ms left, replaced files kept {} s)",
                hygiene.data.every.as_millis(),
                hygiene.data.fresh_for.as_millis(),
                hygiene.data.replaced_grace.as_secs()
            )
        }
    );
    println!(
        "{:>4} {:>7} {:>9} {:>9} {:>11} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "hour",
        "wall s",
        "raw files",
        "kpi files",
        "meta MB/tbl",
        "cmt p50",
        "cmt p99",
        "q p50",
        "q p99",
        "24h p50",
        "24h p99"
    );
    let started = Instant::now();
    // One task per table (the pipeline runs one committer per table too), so commits use
    // every core; a barrier at each simulated hour lets the figures be taken on a still lake.
    let hours = i64::from(args.hours);
    let barrier = Arc::new(tokio::sync::Barrier::new(raw.len() + 2));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let samples = Arc::new(std::sync::Mutex::new(Vec::<f64>::new()));
    let mut workers = Vec::new();
    for (kind, mut c) in raw {
        let (barrier, stop, samples) = (barrier.clone(), stop.clone(), samples.clone());
        let (topic, n) = (topic(kind).clone(), args.events_per_commit);
        workers.push(tokio::spawn(async move {
            for hour in 0..hours {
                for s in 0..3600 {
                    let batch = raw_batch(kind, hour * 3600 + s, n, &topic);
                    let t = Instant::now();
                    c.commit(batch).await?;
                    if let Ok(mut v) = samples.lock() {
                        v.push(millis(t.elapsed()));
                    }
                }
                barrier.wait().await;
                barrier.wait().await;
                if stop.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
            }
            anyhow::Ok(())
        }));
    }
    {
        let (barrier, stop) = (barrier.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            for hour in 0..hours {
                for m in 0..60 {
                    let minute = hour * 60 + m;
                    for (kpi, c) in folded.iter_mut() {
                        c.commit(
                            &kpi_row(*kpi, minute),
                            serde_json::json!({ "minute": minute }),
                        )
                        .await?;
                    }
                }
                barrier.wait().await;
                barrier.wait().await;
                if stop.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
            }
            anyhow::Ok(())
        }));
    }
    for hour in 0..hours {
        barrier.wait().await;
        if workers.iter().any(|w| w.is_finished()) {
            // A worker failed before the hour ended: stop the rest, report its error.
            for w in workers {
                if w.is_finished() {
                    w.await??;
                } else {
                    w.abort();
                }
            }
            anyhow::bail!("a committer stopped before simulated hour {}", hour + 1);
        }
        let commit_ms = samples
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default();
        // The hour's figures.
        let now_us = DAY_START_US + (hour + 1) * 3_600_000_000;
        let mut raw_files = 0usize;
        let mut max_per_partition = 0usize;
        let mut kpi_files = 0usize;
        let mut meta = 0u64;
        for name in EventKind::ALL
            .iter()
            .map(|k| k.raw_table())
            .chain(REGISTRY.iter().map(|k| k.table()))
        {
            let table = lake.catalog.load_unpinned(&lake.ident(name)).await?;
            let per = files_per_partition(&table).await?;
            let files: usize = per.values().sum();
            if EventKind::ALL.iter().any(|k| k.raw_table() == name) {
                raw_files += files;
                max_per_partition = max_per_partition.max(per.values().copied().max().unwrap_or(0));
            } else {
                kpi_files += files;
            }
            meta = meta.max(dir_bytes(&warehouse.join(name).join("metadata")));
        }
        let mut query_ms = Vec::new();
        for _ in 0..args.query_iterations {
            for q in kpi_queries(&target.source, &target.namespace, now_us) {
                let t = Instant::now();
                client.query(&q.sql).await?;
                query_ms.push(millis(t.elapsed()));
            }
        }
        let mut range_ms = Vec::new();
        let range = range_queries(&target.source, &target.namespace, Range::Hours24, now_us);
        for _ in 0..args.query_iterations {
            let t = Instant::now();
            client.query_all(&range).await?;
            range_ms.push(millis(t.elapsed()));
        }
        let c = summarize(&commit_ms);
        let q = summarize(&query_ms);
        let r = summarize(&range_ms);
        println!(
            "{:>4} {:>7.0} {:>9} {:>9} {:>11.2} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1}   (max files in one raw day partition: {max_per_partition})",
            hour + 1,
            started.elapsed().as_secs_f64(),
            raw_files,
            kpi_files,
            meta as f64 / 1e6,
            c.p50,
            c.p99,
            q.p50,
            q.p99,
            r.p50,
            r.p99
        );
        let last = hour + 1 == hours
            || (args.wall_limit_s > 0 && started.elapsed().as_secs() >= args.wall_limit_s);
        if last {
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        barrier.wait().await;
        if last {
            if hour + 1 < hours {
                println!("wall limit reached after {} simulated hours", hour + 1);
            }
            break;
        }
    }
    for w in workers {
        w.await??;
    }
    flight_stop.notify_waiters();
    let _ = flight.await;
    println!(
        "targets at the last hour: query set p99 ≤ 100 ms (24 h range view: measured, no target); files per day partition ≤ maintenance.data_max_files_per_partition ({}); metadata per table ≤ 100 MB; commit p99 within 2× of hour 1",
        cfg.maintenance.data_max_files_per_partition
    );
    Ok(0)
}
