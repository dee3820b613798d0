//! `shopwatch migrate plan|apply`: hand a lake over from the old stack's Spark job
//! (docs/migration.md). `plan` changes nothing; `apply` records the plan's start offsets in
//! the raw tables, all or nothing, and only when every topic is clean. `kafka.start = "spark"`
//! runs the same plan at start-up instead of recording it.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use shopwatch_actors::events::EventKind;
use shopwatch_actors::lake::Lake;
use shopwatch_actors::migrate::{self, TopicPlan};
use shopwatch_actors::pipeline::kafka::BrokerProbe;
use shopwatch_actors::pipeline::{StartAt, StartPolicy};

use super::Ctx;
use crate::config::Config;

#[derive(Subcommand)]
pub enum MigrateCommand {
    /// Where shopwatch would start on each partition, and what that skips or reads again.
    Plan(MigrateArgs),
    /// Record the plan in the lake (refused unless every topic is clean).
    Apply(MigrateArgs),
}

#[derive(Args)]
pub struct MigrateArgs {
    /// The Spark job's checkpoint directory (default: kafka.spark_checkpoints).
    #[arg(long)]
    spark_checkpoints: Option<PathBuf>,
    #[arg(long)]
    brokers: Option<String>,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// One JSON document instead of the table.
    #[arg(long)]
    json: bool,
}

/// Plan every topic (or those in `only`) against the broker as it is now.
pub async fn plans(
    cfg: &Config,
    lake: &Lake,
    dir: &Path,
    only: Option<&[EventKind]>,
) -> anyhow::Result<Vec<TopicPlan>> {
    let probe = std::sync::Arc::new(BrokerProbe::new(&cfg.kafka.params())?);
    let mut out = Vec::new();
    for &kind in EventKind::ALL.iter() {
        if only.is_some_and(|o| !o.contains(&kind)) {
            continue;
        }
        let topic = cfg.topics.of(kind).to_string();
        let (p, t) = (probe.clone(), topic.clone());
        let broker = tokio::task::spawn_blocking(move || p.ranges(&t))
            .await
            .context("asking the broker")?
            .map_err(|e| e.to_string());
        out.push(migrate::plan_topic(lake, dir, kind, &topic, broker).await);
    }
    Ok(out)
}

fn print(plans: &[TopicPlan]) {
    for p in plans {
        println!(
            "{} → {}  (Spark query {}, landed epoch {})",
            p.topic,
            p.table,
            if p.query_id.is_empty() { "?" } else { &p.query_id },
            p.landed_epoch.map_or("none".to_string(), |e| e.to_string())
        );
        if !p.how.is_empty() {
            println!("  {}", p.how);
        }
        if !p.partitions.is_empty() {
            println!(
                "  {:>9}  {:>10}  {:>10}  {:>21}  {:>8}  {:>8}  {:>9}  note",
                "partition", "spark end", "start", "broker [low, high)", "skipped", "re-read", "to read"
            );
        }
        for x in &p.partitions {
            println!(
                "  {:>9}  {:>10}  {:>10}  {:>21}  {:>8}  {:>8}  {:>9}  {}",
                x.partition,
                x.spark_end.map_or("-".to_string(), |e| e.to_string()),
                x.start,
                format!("[{}, {})", x.low, x.high),
                x.skipped,
                x.reread,
                (x.high - x.start).max(0),
                x.note
            );
        }
        let skipped: i64 = p.partitions.iter().map(|x| x.skipped).sum();
        let reread: i64 = p.partitions.iter().map(|x| x.reread).sum();
        if p.clean() {
            println!("  clean: {skipped} skipped, {reread} re-read");
        } else {
            println!("  NOT CLEAN: {skipped} skipped, {reread} re-read");
            for problem in &p.problems {
                println!("    - {problem}");
            }
        }
    }
}

pub async fn run(command: MigrateCommand, ctx: &Ctx) -> anyhow::Result<i32> {
    let (args, apply) = match command {
        MigrateCommand::Plan(a) => (a, false),
        MigrateCommand::Apply(a) => (a, true),
    };
    let mut overrides: crate::config::Overrides = Vec::new();
    if let Some(b) = &args.brokers {
        overrides.push(("kafka.brokers", toml::Value::String(b.clone())));
    }
    if let Some(d) = &args.data_dir {
        overrides.push(("lake.data_dir", toml::Value::String(d.display().to_string())));
    }
    let cfg = ctx.config(overrides)?;
    let dir = match &args.spark_checkpoints {
        Some(d) => d.clone(),
        None if !cfg.kafka.spark_checkpoints.is_empty() => cfg.kafka.spark_checkpoints.clone().into(),
        None => anyhow::bail!(
            "no checkpoint directory: pass --spark-checkpoints DIR or set kafka.spark_checkpoints (the Spark job's is /tmp/spark_checkpoints_nessie)"
        ),
    };
    let lake = crate::run::open_lake(&cfg).await?;
    let plans = plans(&cfg, &lake, &dir, None).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&plans)?);
    } else {
        print(&plans);
    }
    let clean = plans.iter().all(TopicPlan::clean);
    if !apply {
        return Ok(if clean { 0 } else { 1 });
    }
    migrate::apply(&lake, &plans).await?;
    if !args.json {
        println!("recorded: `shopwatch run` continues from these offsets");
    }
    Ok(0)
}

/// `kafka.start` with every `spark` resolved to the offsets its plan gives; start-up is
/// refused when a plan is not clean. A topic whose raw table already records offsets needs no
/// plan (the lake decides).
pub async fn resolve_start(cfg: &Config, lake: &Lake) -> anyhow::Result<StartPolicy> {
    let mut policy = cfg.kafka.start_policy()?;
    let spark: Vec<EventKind> = EventKind::ALL
        .iter()
        .copied()
        .filter(|k| policy.for_topic(cfg.topics.of(*k)) == &StartAt::Spark)
        .collect();
    if spark.is_empty() {
        return Ok(policy);
    }
    let dir = PathBuf::from(&cfg.kafka.spark_checkpoints);
    for p in plans(cfg, lake, &dir, Some(&spark)).await? {
        let at = if p.applied {
            StartAt::Earliest
        } else if p.clean() {
            tracing::info!(topic = %p.topic, how = %p.how, starts = ?p.starts(), "starting where Spark stopped");
            StartAt::Offsets(p.starts())
        } else {
            anyhow::bail!(
                "config kafka.start: \"spark\" for {}: the handover is not clean: {}. Run `shopwatch migrate plan` for the details",
                p.topic,
                p.problems.join("; ")
            );
        };
        policy.topics.insert(p.topic.clone(), at);
    }
    Ok(policy)
}
