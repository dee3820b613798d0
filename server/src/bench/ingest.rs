//! `shopwatch bench ingest`: a broker pre-filled with N events, then the pipeline as its own
//! process, timed until every event is in the raw tables and every window and alert derived
//! from them is committed. In the same run a bare rdkafka consumer reads the same topics from
//! the same broker: the ratio says how much of the broker's ceiling the pipeline uses.
//! With `--live` the instances start first and the events arrive while they run, shared by the
//! group as in production (how `--instances 1,2,3` compares fairly).

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use shopwatch_actors::lake::{Lake, LakeParams};
use shopwatch_load::bare::{consume_all, high_watermarks};
use shopwatch_load::generator::EventClock;
use shopwatch_load::produce::{produce, ProduceParams};
use shopwatch_load::stats::{cpu_seconds, rss_bytes};

use super::complete::{alerts_evaluated, kpis_closed, raw_progress, scrape_by, scrape_sum};
use super::instances::{group_settled, idle_sample, side_by_side, watch_dashboard, Run};
use super::PipelineProcess;
use crate::config::Config;

#[derive(Args)]
pub struct IngestArgs {
    /// Events pre-filled into the broker (60 % clicks, 30 % orders, 10 % errors).
    #[arg(long, default_value_t = 2_000_000)]
    pub events: u64,
    /// Scratch directory (broker log, lake, pipeline log); default: a temporary one.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    #[arg(long, default_value_t = 3)]
    pub partitions: i32,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Skip the bare-consumer baseline.
    #[arg(long)]
    pub no_bare: bool,
    /// `shopwatch run` processes sharing the work in one group (README "Several instances");
    /// several counts (`1,2,3`) run one after the other, each on a fresh broker and lake,
    /// and end with a table side by side.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub instances: Vec<usize>,
    /// The broker on SQLite storage instead of memory. Several instances need it: memory's
    /// high watermarks under-report, and the rollup owner never counts another instance's
    /// partitions as drained on such a broker (its windows would wait forever).
    #[arg(long)]
    pub sqlite_broker: bool,
    /// The pipeline's `pipeline.commit_interval_ms` (its default when not given): what a
    /// commit costs, against freshness (BENCHMARKS.md, "The cost of a commit").
    #[arg(long)]
    pub commit_interval_ms: Option<u64>,
    /// Start the instances first, wait until the group has given each its partitions, then
    /// produce: they share the traffic as in production. Without it, the first instance up
    /// drains most of a pre-filled backlog before the others join (a catch-up, not a share).
    /// Times and CPU count from the first event produced; the bare baseline runs after.
    #[arg(long)]
    pub live: bool,
}

/// A bare rdkafka consumer per topic reading what was acked: the broker's ceiling.
async fn bare_baseline(
    brokers: &str,
    topics: &[String],
    acked: u64,
) -> anyhow::Result<shopwatch_load::bare::BareReport> {
    let (b, t) = (brokers.to_string(), topics.to_vec());
    let r = tokio::task::spawn_blocking(move || consume_all(&b, &t, acked)).await??;
    println!(
        "  bare consumers (one per topic): {} of {acked} acked records in {:.2} s ({:.0} ev/s, {:.2} CPU-s)",
        r.records,
        r.wall.as_secs_f64(),
        r.records as f64 / r.wall.as_secs_f64(),
        r.cpu_s
    );
    Ok(r)
}

fn scratch_dir() -> PathBuf {
    std::env::temp_dir().join(format!("shopwatch-bench-ingest-{}", std::process::id()))
}

pub async fn run(cfg: Config, args: IngestArgs) -> anyhow::Result<i32> {
    if let Some(n) = args.instances.iter().find(|n| **n > 1) {
        if !args.sqlite_broker {
            anyhow::bail!("--instances {n} needs --sqlite-broker (memory storage under-reports high watermarks; see --help)");
        }
    }
    if args.instances.is_empty() || args.instances.contains(&0) {
        anyhow::bail!("--instances: one or more counts of 1 or more, like 1,2,3");
    }
    let mut runs = Vec::new();
    for n in args.instances.clone() {
        runs.push(run_one(&cfg, &args, n).await?);
    }
    if args.dir.is_none() {
        // Each run removed its own directory; the scratch parent goes when it is empty.
        let _ = std::fs::remove_dir(scratch_dir());
    }
    if runs.len() > 1 {
        side_by_side(&runs);
    }
    Ok(0)
}

/// CPU per event, total and the owner's, for every count run.
async fn run_one(cfg: &Config, args: &IngestArgs, instances: usize) -> anyhow::Result<Run> {
    let scratch = args.dir.is_none();
    let dir = args.dir.clone().unwrap_or_else(scratch_dir);
    let dir = dir.join(format!("instances-{instances}"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let (broker, topics) =
        super::local_broker(cfg, &dir, args.partitions, args.sqlite_broker).await?;
    let brokers = broker.brokers();

    // Event times: one hour of traffic that ended an hour ago, so every window can close.
    let now_us = chrono::Utc::now().timestamp_micros();
    let start_us = now_us - 2 * 3_600_000_000;
    let step_us = (3_600_000_000 / args.events.max(1)) as i64;
    let last_event_us = start_us + step_us * args.events as i64;
    println!(
        "ingest: {} {} events into Tansu ({}) at {brokers}",
        if args.live {
            "producing, while the instances run,"
        } else {
            "pre-filling"
        },
        args.events,
        if args.sqlite_broker {
            "sqlite://"
        } else {
            "memory://"
        }
    );
    // The pipeline, as users run it.
    let data = dir.join("lake");
    let interval = args.commit_interval_ms.map(|ms| ms.to_string());
    let mut env = vec![
        // Alerts checkpoint every 5 s instead of 60: the bench times work, not the cadence.
        // The idle timeout stays the default (30 s): the events' clock is an hour in the past,
        // and a second of silence on every partition (a rebalance, a slow commit) used to move
        // the watermark to processing time, so every later event was late and never folded,
        // and the last windows never closed (BENCHMARKS.md "Partial windows", the stalled runs).
        ("SHOPWATCH_ALERTS__CHECKPOINT_EVERY_S", "5"),
    ];
    if let Some(ms) = &interval {
        env.push(("SHOPWATCH_PIPELINE__COMMIT_INTERVAL_MS", ms.as_str()));
    }
    let start = || -> anyhow::Result<Vec<PipelineProcess>> {
        (0..instances)
            .map(|i| {
                let log = match i {
                    0 => "pipeline.log".to_string(),
                    i => format!("pipeline-{i}.log"),
                };
                PipelineProcess::spawn_named(&dir, &brokers, &env, &log)
            })
            .collect()
    };
    let mut pipelines = Vec::new();
    let mut viewer = None;
    if args.live {
        pipelines = start()?;
        let https: Vec<String> = pipelines.iter().map(|p| p.http.clone()).collect();
        let (took, owner) = group_settled(
            &https,
            topics.len(),
            args.partitions,
            Duration::from_secs(180),
        )
        .await?;
        // On the owner at every count, so that its CPU per event compares like with like.
        viewer = Some(watch_dashboard(&pipelines[owner].http));
        println!(
            "  {instances} instance(s) up, the group settled in {:.1} s; the dashboard open on #{owner}, the rollup owner",
            took.as_secs_f64()
        );
    }
    // CPU spent starting and settling is not the events' (0 without instances yet).
    let pids: Vec<u32> = pipelines.iter().map(|p| p.pid).collect();
    let (idle_cpu, idle_rate) = if args.live {
        idle_sample(&pids).await
    } else {
        (vec![0.0; pids.len()], 0.0)
    };
    let fill_started = Instant::now();
    let report = produce(
        ProduceParams {
            brokers: brokers.clone(),
            orders_topic: cfg.topics.orders.clone(),
            clicks_topic: cfg.topics.clicks.clone(),
            errors_topic: cfg.topics.errors.clone(),
            rate: None,
            count: Some(args.events),
            duration: None,
            seed: args.seed,
            malformed_fraction: 0.0,
            ack_log: None,
            progress: true,
            event_clock: Some(EventClock { start_us, step_us }),
        },
        Arc::new(AtomicBool::new(false)),
    )
    .await?;
    let fill = fill_started.elapsed().as_secs_f64();
    println!(
        "  {} {} in {fill:.1} s ({:.0} ev/s produce)",
        if args.live { "produced" } else { "pre-filled" },
        report.acked,
        report.acked as f64 / fill
    );
    // Only a fallback: events are counted by what the producer had acknowledged and what the
    // lake holds (Tansu `memory://` under-reports high watermarks; realparts.md).
    let marks = high_watermarks(&brokers, &topics)?;
    println!(
        "  high watermarks sum to {} (acked {})",
        marks.iter().map(|m| m.2).sum::<i64>(),
        report.acked
    );

    let bare_first = !args.live;
    let bare = if args.no_bare || !bare_first {
        None
    } else {
        Some(bare_baseline(&brokers, &topics, report.acked).await?)
    };

    let started = if args.live {
        fill_started
    } else {
        pipelines = start()?;
        viewer = Some(watch_dashboard(&pipelines[0].http));
        Instant::now()
    };
    let pids: Vec<u32> = pipelines.iter().map(|p| p.pid).collect();
    let idle = |i: usize| idle_cpu.get(i).copied().unwrap_or(0.0);
    let cpu = |i: usize| cpu_seconds(pids[i]).unwrap_or(0.0) - idle(i);
    let total_cpu = || (0..pids.len()).map(cpu).sum::<f64>();

    let mut raw_done: Option<(f64, f64)> = None;
    let mut kpi_done: Option<(f64, f64)> = None;
    let mut alerts_done: Option<(f64, f64)> = None;
    let mut lake: Option<Lake> = None;
    let mut short_since: Option<Instant> = None;
    let deadline = Instant::now() + Duration::from_secs(3600);
    while alerts_done.is_none() {
        if Instant::now() > deadline {
            anyhow::bail!(
                "pipeline did not finish within an hour; see {}",
                dir.join("pipeline.log").display()
            );
        }
        for p in &mut pipelines {
            if let Ok(Some(status)) = p.child.try_wait() {
                anyhow::bail!(
                    "pipeline {} exited ({status}); see the logs in {}",
                    p.pid,
                    dir.display()
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        if lake.is_none() && data.join("catalog.db").exists() {
            lake = Lake::open(LakeParams::local(
                &cfg.lake.catalog_name,
                &cfg.lake.namespace,
                data.clone(),
            ))
            .await
            .ok();
        }
        let Some(lake) = &lake else { continue };
        let at = || (started.elapsed().as_secs_f64(), total_cpu());
        if raw_done.is_none() {
            let (rows, offsets_at_marks) = raw_progress(lake, &marks, &cfg).await;
            if rows >= report.acked {
                raw_done = Some(at());
            } else if offsets_at_marks {
                // The broker served all it says it has, yet less than was acked: say so, and
                // wait a little in case the rest is still coming.
                let since = *short_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_secs(5) {
                    println!(
                        "  the broker served {rows} of {} acked records",
                        report.acked
                    );
                    raw_done = Some(at());
                }
            }
        }
        if raw_done.is_some() && kpi_done.is_none() && kpis_closed(lake, last_event_us).await {
            kpi_done = Some(at());
        }
        if kpi_done.is_some() && alerts_evaluated(lake, &cfg, last_event_us).await {
            alerts_done = Some(at());
        }
    }
    let (mut rss_now, mut rss_peak) = (0, 0);
    let (mut commits, mut conflicts) = (0.0, 0.0);
    let mut conflicts_by: std::collections::BTreeMap<String, f64> = Default::default();
    let (mut refreshes, mut query_s, mut unwatched) = (0.0, 0.0, 0.0);
    let (mut merged, mut raw_read, mut late) = (0.0, 0.0, 0.0);
    let mut raw_why: std::collections::BTreeMap<&str, f64> = Default::default();
    let mut per_instance = Vec::new();
    let mut owner = None;
    for (i, p) in pipelines.iter().enumerate() {
        if scrape_sum(&p.http, "shopwatch_rollup_owner", "").await > 0.0 {
            owner = Some((i, cpu(i)));
        }
        let (now, peak) = rss_bytes(p.pid).unwrap_or((0, 0));
        rss_now += now;
        rss_peak += peak;
        commits += scrape_sum(&p.http, "shopwatch_commits_total", "outcome=\"ok\"").await;
        conflicts += scrape_sum(&p.http, "shopwatch_commits_total", "outcome=\"conflict\"").await;
        for (table, n) in scrape_by(
            &p.http,
            "shopwatch_commits_total",
            "outcome=\"conflict\"",
            "table",
        )
        .await
        {
            *conflicts_by.entry(table).or_insert(0.0) += n;
        }
        refreshes += scrape_sum(&p.http, "shopwatch_kpi_refreshes_total", "outcome=\"ok\"").await;
        unwatched += scrape_sum(&p.http, "shopwatch_kpi_refreshes_total", "unwatched").await;
        merged += scrape_sum(&p.http, "shopwatch_partials_merged_total", "").await;
        raw_read += scrape_sum(&p.http, "shopwatch_partials_raw_events_total", "").await;
        late += scrape_sum(&p.http, "shopwatch_late_events_total", "").await;
        for why in ["gap", "stale", "aggregator"] {
            let n = scrape_sum(
                &p.http,
                "shopwatch_partials_raw_events_total",
                &format!("reason=\"{why}\""),
            )
            .await;
            *raw_why.entry(why).or_insert(0.0) += n;
        }
        query_s += scrape_sum(&p.http, "shopwatch_flight_query_duration_seconds_sum", "").await;
        per_instance.push(cpu(i));
    }
    let (files, bytes) = super::lakefill::files_under(&data.join("warehouse"), |_| true);
    if let Some(v) = viewer {
        v.abort();
    }
    for p in pipelines {
        p.stop().await;
    }
    let bare = match bare {
        None if !bare_first && !args.no_bare => {
            Some(bare_baseline(&brokers, &topics, report.acked).await?)
        }
        b => b,
    };
    broker.shutdown().await;

    let n = report.acked as f64;
    let (raw_s, raw_cpu) = raw_done.unwrap_or_default();
    let (kpi_s, _) = kpi_done.unwrap_or_default();
    let (all_s, all_cpu) = alerts_done.unwrap_or_default();
    println!();
    println!(
        "ingest of {} events ({} partitions per topic), {instances} pipeline process(es) {pids:?}",
        report.acked, args.partitions
    );
    println!("{:<52} {:>14} {:>16}", "figure", "value", "target");
    let row = |k: &str, v: String, t: &str| println!("{k:<52} {v:>14} {t:>16}");
    row("raw tables complete, wall s", format!("{raw_s:.1}"), "");
    row("KPI windows complete, wall s", format!("{kpi_s:.1}"), "");
    row(
        "alerts evaluated, wall s (all tables)",
        format!("{all_s:.1}"),
        "",
    );
    row(
        "events/s wall (raw)",
        format!("{:.0}", n / raw_s.max(1e-9)),
        "",
    );
    row(
        "events/s wall (all tables)",
        format!("{:.0}", n / all_s.max(1e-9)),
        "",
    );
    row(
        "pipeline CPU-s (raw / all)",
        format!("{raw_cpu:.1} / {all_cpu:.1}"),
        "",
    );
    row(
        "events per CPU-second of the pipeline (all)",
        format!("{:.0}", n / all_cpu.max(1e-9)),
        ">= 300000",
    );
    if let Some(b) = &bare {
        let bare_rate = b.records as f64 / b.wall.as_secs_f64().max(1e-9);
        let bare_cpu = b.records as f64 / b.cpu_s.max(1e-9);
        row(
            "baseline: bare consumers, events/s wall",
            format!("{bare_rate:.0}"),
            "",
        );
        row(
            "baseline: bare consumers, events per CPU-second",
            format!("{bare_cpu:.0}"),
            "",
        );
        row(
            "ratio pipeline (raw) / baseline, wall",
            format!("{:.2}", (n / raw_s.max(1e-9)) / bare_rate),
            "",
        );
        row(
            "ratio pipeline (all) / baseline, per CPU-second",
            format!("{:.2}", (n / all_cpu.max(1e-9)) / bare_cpu),
            "",
        );
    }
    row("commits (ok)", format!("{commits:.0}"), "");
    // Late events are not folded: a bench that drops many measures less KPI work.
    row(
        "events late to their windows (not folded)",
        format!("{late:.0}"),
        "0",
    );
    row(
        "owner: others' events merged (x KPIs) / read raw",
        format!("{merged:.0} / {raw_read:.0}"),
        "",
    );
    row(
        "  read raw because: gap / stale / aggregator",
        format!(
            "{:.0} / {:.0} / {:.0}",
            raw_why.get("gap").unwrap_or(&0.0),
            raw_why.get("stale").unwrap_or(&0.0),
            raw_why.get("aggregator").unwrap_or(&0.0)
        ),
        "",
    );
    row(
        "dashboard refreshes / query wall s / unwatched",
        format!("{refreshes:.0} / {query_s:.1} / {unwatched:.0}"),
        "",
    );
    row(
        "catalog commit conflicts / per minute",
        format!(
            "{conflicts:.0} / {:.1}",
            conflicts / (all_s.max(1e-9) / 60.0)
        ),
        "",
    );
    row(
        "  by table",
        conflicts_by
            .iter()
            .filter(|(_, n)| **n > 0.0)
            .map(|(t, n)| format!("{t} {n:.0}"))
            .collect::<Vec<_>>()
            .join(", "),
        "",
    );
    row(
        "CPU-s per instance",
        per_instance
            .iter()
            .map(|c| format!("{c:.1}"))
            .collect::<Vec<_>>()
            .join(" / "),
        "",
    );
    if args.live {
        row(
            "  idle, settled, all instances: CPU-ms per second",
            format!("{:.0}", idle_rate * 1e3),
            "",
        );
        row(
            "  before the first event (start, settle; not counted)",
            idle_cpu
                .iter()
                .map(|c| format!("{c:.1}"))
                .collect::<Vec<_>>()
                .join(" / "),
            "",
        );
    }
    row("files written (data + metadata)", files.to_string(), "");
    row("bytes written", format!("{:.1} MB", bytes as f64 / 1e6), "");
    row(
        "pipeline RSS now / peak (all instances)",
        format!(
            "{:.0} / {:.0} MB",
            rss_now as f64 / 1e6,
            rss_peak as f64 / 1e6
        ),
        "",
    );
    if scratch {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        println!("log: {}", dir.join("pipeline.log").display());
    }
    Ok(Run {
        instances,
        events: report.acked,
        all_s,
        cpu: all_cpu,
        owner,
        conflicts,
        idle_rate,
    })
}
