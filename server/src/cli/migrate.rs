//! `shopwatch migrate plan|apply`: hand a lake over from the old stack's Spark job
//! (docs/migration.md). `plan` changes nothing; `apply` records the plan's start offsets in
//! the raw tables, all or nothing, and only when every topic is clean.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use shopwatch_actors::migrate::{self, TopicPlan};

use super::Ctx;

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

fn print(plans: &[TopicPlan]) {
    for p in plans {
        println!(
            "{} → {}  (Spark query {}, landed epoch {})",
            p.topic,
            p.table,
            if p.query_id.is_empty() {
                "?"
            } else {
                &p.query_id
            },
            p.landed_epoch.map_or("none".to_string(), |e| e.to_string())
        );
        if !p.how.is_empty() {
            println!("  {}", p.how);
        }
        if !p.partitions.is_empty() {
            println!(
                "  {:>9}  {:>10}  {:>10}  {:>21}  {:>8}  {:>8}  {:>9}  note",
                "partition",
                "spark end",
                "start",
                "broker [low, high)",
                "skipped",
                "re-read",
                "to read"
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
        overrides.push((
            "lake.data_dir",
            toml::Value::String(d.display().to_string()),
        ));
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
    let plans = crate::handover::plans(&cfg, &lake, &dir, None).await?;
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
