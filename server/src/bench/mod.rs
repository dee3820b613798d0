//! `shopwatch bench <name>`: benchmarks that print figures next to their targets. They never
//! fail on speed; the machines are shared and noisy.

mod complete;
mod day;
mod fold;
mod hostile;
mod ingest;
mod instances;
mod lakefill;
mod parse;
mod query;
mod startup;
mod steady;
mod ws;

use clap::{Args, Subcommand};

use crate::config::Config;

#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    which: BenchCommand,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Latency of the dashboard's KPI query set through Flight SQL, on a lake of ≥ N raw events.
    Query(query::QueryBenchArgs),
    /// Pre-filled broker → pipeline process, timed until every table is complete; bare
    /// consumer ratio, events per CPU-second, commits, files, bytes, peak RSS.
    Ingest(ingest::IngestArgs),
    /// The KPI work per event: folded by an aggregator, into partial windows, merged from them.
    Fold(fold::FoldArgs),
    /// Decode + validate only: events per CPU-second on one core (the pipeline's ceiling).
    Parse(parse::ParseArgs),
    /// Steady 20,000 ev/s: produce → row visible over Flight SQL, window end → row visible.
    Freshness(steady::SteadyArgs),
    /// Steady 20,000 ev/s: the pipeline's RSS after 2 minutes.
    Memory(steady::SteadyArgs),
    /// `shopwatch demo` launch → first KPI message on the websocket.
    Startup(startup::StartupArgs),
    /// One simulated day of commits (86,400 per raw table): files, metadata, commit and
    /// dashboard query latency every simulated hour, with or without data-file compaction.
    Day(day::DayArgs),
    /// Websocket soak: N dashboard clients (some slow) against a running shopwatch.
    Ws(ws::WsBenchArgs),
    /// A login flood, a Flight handshake flood and query bombs against a running pipeline:
    /// RSS before and at peak, `/livez` latency meanwhile, rows landing meanwhile.
    Hostile(hostile::HostileArgs),
}

pub async fn run(cfg: Config, args: BenchArgs) -> anyhow::Result<i32> {
    match args.which {
        BenchCommand::Query(a) => query::run(cfg, a).await,
        BenchCommand::Ws(a) => ws::run(a).await,
        BenchCommand::Day(a) => day::run(cfg, a).await,
        BenchCommand::Ingest(a) => ingest::run(cfg, a).await,
        BenchCommand::Parse(a) => parse::run(a),
        BenchCommand::Fold(a) => fold::run(cfg, a),
        BenchCommand::Freshness(a) => steady::run(cfg, a, false).await,
        BenchCommand::Memory(a) => steady::run(cfg, a, true).await,
        BenchCommand::Startup(a) => startup::run(a).await,
        BenchCommand::Hostile(a) => hostile::run(cfg, a).await,
    }
}

/// A free loopback port (bound then released; good enough for a benchmark).
/// Tansu with `memory://` storage (fast, gone on exit) and the config's three topics, which
/// it returns with the broker.
pub async fn memory_broker(
    cfg: &Config,
    dir: &std::path::Path,
    partitions: i32,
) -> anyhow::Result<(shopwatch_load::broker::Broker, Vec<String>)> {
    local_broker(cfg, dir, partitions, false).await
}

/// Tansu on `memory://` storage, or on SQLite (`sqlite`: what `demo` and the drills run; its
/// high watermarks are exact, where memory's under-report, see the README "Several instances").
pub async fn local_broker(
    cfg: &Config,
    dir: &std::path::Path,
    partitions: i32,
    sqlite: bool,
) -> anyhow::Result<(shopwatch_load::broker::Broker, Vec<String>)> {
    use shopwatch_load::broker::{Broker, BrokerParams, BrokerStorage};
    let topics = vec![
        cfg.topics.orders.clone(),
        cfg.topics.clicks.clone(),
        cfg.topics.errors.clone(),
    ];
    let broker = Broker::start(BrokerParams {
        listen: free_addr()?.parse()?,
        data_dir: dir.join("broker"),
        partitions,
        topics: topics.clone(),
        storage: if sqlite {
            BrokerStorage::Sqlite
        } else {
            BrokerStorage::Memory
        },
    })
    .await?;
    Ok((broker, topics))
}

pub fn free_addr() -> anyhow::Result<String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.to_string())
}

/// `shopwatch run` as its own process (what users run), logging to `dir/pipeline.log`.
pub struct PipelineProcess {
    pub child: tokio::process::Child,
    pub pid: u32,
    pub http: String,
    pub flight: String,
}

impl PipelineProcess {
    pub fn spawn(
        dir: &std::path::Path,
        brokers: &str,
        env: &[(&str, &str)],
    ) -> anyhow::Result<PipelineProcess> {
        Self::spawn_named(dir, brokers, env, "pipeline.log")
    }

    /// One of several instances on the same lake, logging to `dir/{log}`.
    pub fn spawn_named(
        dir: &std::path::Path,
        brokers: &str,
        env: &[(&str, &str)],
        log: &str,
    ) -> anyhow::Result<PipelineProcess> {
        use anyhow::Context;
        let http = free_addr()?;
        let flight = free_addr()?;
        let log = std::fs::File::create(dir.join(log))?;
        let child = tokio::process::Command::new(std::env::current_exe()?)
            .args([
                "run",
                "--brokers",
                brokers,
                "--http",
                &http,
                "--flight",
                &flight,
            ])
            .arg("--data-dir")
            .arg(dir.join("lake"))
            // WARN unless asked (SHOPWATCH_BENCH_RUST_LOG=info to read a run that went wrong).
            .env(
                "RUST_LOG",
                std::env::var("SHOPWATCH_BENCH_RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("starting the pipeline")?;
        let pid = child.id().context("pipeline pid")?;
        Ok(PipelineProcess {
            child,
            pid,
            http,
            flight,
        })
    }

    /// SIGTERM (final commit), then wait up to 30 s.
    pub async fn stop(mut self) {
        // SAFETY: plain signal to our own child.
        unsafe {
            libc::kill(self.pid as i32, libc::SIGTERM);
        }
        let _ = tokio::time::timeout(std::time::Duration::from_secs(30), self.child.wait()).await;
    }
}
