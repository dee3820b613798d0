//! `shopwatch produce`: the seed's payloads into Kafka (idempotent producer, ack log).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use shopwatch_load::produce::{produce, ProduceParams};

use super::Ctx;

#[derive(Args)]
pub struct ProduceArgs {
    #[arg(long)]
    brokers: Option<String>,
    /// Total events per second (omit for as fast as possible).
    #[arg(long)]
    rate: Option<f64>,
    /// Stop after this many events.
    #[arg(long)]
    count: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long)]
    duration: Option<f64>,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Fraction of deliberately malformed records (0..1).
    #[arg(long, default_value_t = 0.0)]
    malformed: f64,
    /// Append one JSON line per acked record to this file.
    #[arg(long)]
    ack_log: Option<PathBuf>,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
}

pub async fn run(args: ProduceArgs, ctx: &Ctx) -> anyhow::Result<i32> {
    let cfg = ctx.config(Vec::new())?;
    let stop = super::stop_flag();
    if args.rate.is_some_and(|r| r <= 0.0 || !r.is_finite()) {
        anyhow::bail!("--rate must be a positive number of events per second");
    }
    let params = ProduceParams {
        brokers: args.brokers.unwrap_or(cfg.kafka.brokers),
        orders_topic: cfg.topics.orders,
        clicks_topic: cfg.topics.clicks,
        errors_topic: cfg.topics.errors,
        rate: args.rate,
        count: args.count,
        duration: args.duration.map(Duration::from_secs_f64),
        seed: args.seed,
        malformed_fraction: args.malformed,
        ack_log: args.ack_log,
        progress: !args.quiet,
        event_clock: None,
    };
    let report = produce(params, stop).await.context("producing")?;
    println!(
        "sent {} acked {} errors {} malformed_acked {}",
        report.sent, report.acked, report.errors, report.malformed_acked
    );
    Ok(if report.errors > 0 { 3 } else { 0 })
}
