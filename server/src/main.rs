//! The `shopwatch` binary: real-time e-commerce monitoring from Kafka into Iceberg.

mod auth;
mod bench;
mod bootstrap;
mod cli;
mod config;
mod demo;
#[cfg(feature = "failpoints")]
mod drill_endpoint;
mod flight;
mod guard;
mod handover;
mod http;
mod live;
mod run;
mod serve;
mod services;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::cli::Ctx;

#[derive(Parser)]
#[command(
    name = "shopwatch",
    version,
    about = "Real-time e-commerce monitoring: Kafka → exactly-once Iceberg, KPIs, alerts"
)]
struct Cli {
    /// Configuration file (default: ./shopwatch.toml if present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Built-in configuration profile under the file, e.g. `compose` (env SHOPWATCH_PROFILE).
    #[arg(long, global = true)]
    profile: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Local broker, pipeline, lake and HTTP in one command.
    Demo(cli::demo::DemoArgs),
    /// Run the pipeline against an existing Kafka.
    Run(cli::RunArgs),
    /// Run the local Kafka-protocol broker (Tansu) with the topics created.
    Broker(cli::broker::BrokerArgs),
    /// Generate the seed's payloads into Kafka.
    Produce(cli::produce::ProduceArgs),
    /// Run one SQL query through Flight SQL (the embedded server by default) and print it.
    Query(cli::query::QueryArgs),
    /// Every table shopwatch writes, with its columns (and, for KPIs, inputs and windows).
    Tables(cli::tables::TablesArgs),
    /// Benchmarks that print figures (see BENCHMARKS.md).
    Bench(bench::BenchArgs),
    /// One-shot set-up of the production-like stack's parts (idempotent).
    Bootstrap {
        #[command(subcommand)]
        target: cli::bootstrap::BootstrapTarget,
    },
    /// Fault-injection drill: faults against a live broker and pipeline, then independent
    /// checks for loss, duplicates and KPI drift (needs a build with `--features failpoints`).
    Drill(cli::drill::DrillArgs),
    /// GET a URL and exit 0 on a 2xx answer (the container healthcheck; no curl in the image).
    Probe(cli::probe::ProbeArgs),
    /// Logins and tokens: hash a password, make a bearer token.
    Auth {
        #[command(subcommand)]
        command: cli::auth::AuthCommand,
    },
    /// Hand a lake over from the old stack's Spark job: plan, then apply (docs/migration.md).
    Migrate {
        #[command(subcommand)]
        command: cli::migrate::MigrateCommand,
    },
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        command: cli::config::ConfigCommand,
    },
}

fn init_tracing(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() {
    let cli = Cli::parse();
    // The drill's own producer sees every injected broker outage: its verdict table is the
    // output, not librdkafka's reconnect errors.
    init_tracing(match cli.command {
        Command::Drill(_) => "warn,rdkafka=off,librdkafka=off,iceberg=warn,sqlx=warn",
        _ => "info,iceberg=warn,sqlx=warn",
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    };
    runtime.shutdown_timeout(Duration::from_secs(2));
    std::process::exit(code);
}

async fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    let ctx = Ctx {
        file: cli.config,
        profile: cli.profile,
    };
    match cli.command {
        Command::Demo(args) => cli::demo::run(args, &ctx).await,
        Command::Run(args) => cli::run::run(args, &ctx).await,
        Command::Broker(args) => cli::broker::run(args, &ctx).await,
        Command::Produce(args) => cli::produce::run(args, &ctx).await,
        Command::Query(args) => cli::query::run(args, &ctx).await,
        Command::Tables(args) => cli::tables::run(args, &ctx).await,
        Command::Bench(args) => cli::bench::run(args, &ctx).await,
        Command::Bootstrap { target } => cli::bootstrap::run(target).await,
        Command::Drill(args) => cli::drill::run(args, &ctx).await,
        Command::Probe(args) => cli::probe::run(args).await,
        Command::Config { command } => cli::config::run(command, &ctx).await,
        Command::Migrate { command } => cli::migrate::run(command, &ctx).await,
        Command::Auth { command } => cli::auth::run(command),
    }
}
