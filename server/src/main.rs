//! The `shopwatch` binary: real-time e-commerce monitoring from Kafka into Iceberg.

mod auth;
#[cfg(feature = "bench")]
mod bench;
mod bootstrap;
mod cli;
mod config;
mod demo;
#[cfg(feature = "failpoints")]
mod drill_endpoint;
mod exit;
mod flight;
mod guard;
mod handover;
mod http;
mod live;
mod logging;
mod params;
mod reference;
mod run;
mod serve;
mod services;
mod version;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::cli::Ctx;
use crate::logging::LogFormat;

#[derive(Parser)]
#[command(
    name = "shopwatch",
    version = version::VERSION,
    about = "Real-time e-commerce monitoring: Kafka → exactly-once Iceberg, KPIs, alerts",
    after_help = "Commands marked [dev] are for developing and testing shopwatch itself.\n\
                  Exit codes: 0 stopped cleanly, 1 failed (the message says why), 2 usage error, \
                  3 the supervisor gave up (every pipeline failed past its restart budget)."
)]
pub struct Cli {
    /// Configuration file (default: ./shopwatch.toml if present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Built-in configuration profile under the file, e.g. `compose` (env SHOPWATCH_PROFILE).
    #[arg(long, global = true)]
    profile: Option<String>,
    /// Log lines as human text or as one JSON object per line (for Loki, Elasticsearch).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "SHOPWATCH_LOG_FORMAT", hide_env_values = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

// Operator commands first; the developer ones after, marked [dev] (clap lists them in this order).
#[derive(Subcommand)]
enum Command {
    /// Local broker, pipeline, lake, Flight SQL and dashboard in one command (no Docker).
    Demo(cli::demo::DemoArgs),
    /// Run the pipeline, Flight SQL and the dashboard against an existing Kafka.
    Run(cli::RunArgs),
    /// Run one SQL query through Flight SQL (the embedded server by default) and print it.
    Query(cli::query::QueryArgs),
    /// Every table shopwatch writes, with its columns (and, for KPIs, inputs and windows).
    Tables(cli::tables::TablesArgs),
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        command: cli::config::ConfigCommand,
    },
    /// Hand a lake over from the old stack's Spark job: plan, then apply (docs/migration.md).
    Migrate {
        #[command(subcommand)]
        command: cli::migrate::MigrateCommand,
    },
    /// Logins and tokens: hash a password, make a bearer token.
    Auth {
        #[command(subcommand)]
        command: cli::auth::AuthCommand,
    },
    /// One-shot set-up of the production-like stack's parts (idempotent).
    Bootstrap {
        #[command(subcommand)]
        target: cli::bootstrap::BootstrapTarget,
    },
    /// GET a URL and exit 0 on a 2xx answer (the container healthcheck; no curl in the image).
    Probe(cli::probe::ProbeArgs),
    /// [dev] Run the local Kafka-protocol broker (Tansu) with the topics created.
    Broker(cli::broker::BrokerArgs),
    /// [dev] Generate the seed's payloads into Kafka.
    Produce(cli::produce::ProduceArgs),
    /// [dev] Benchmarks that print figures (see BENCHMARKS.md; builds with `--features bench`).
    #[cfg(feature = "bench")]
    Bench(bench::BenchArgs),
    /// [dev] Fault-injection drill: faults against a live broker and pipeline, then independent
    /// checks for loss, duplicates and KPI drift (needs a build with `--features failpoints`).
    Drill(cli::drill::DrillArgs),
    /// [dev] Write the generated references (docs/reference/) from the code, or check them.
    Reference(cli::reference::ReferenceArgs),
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let usage = e.use_stderr();
            let _ = e.print();
            std::process::exit(if usage { exit::USAGE } else { exit::OK });
        }
    };
    // The drill's own producer sees every injected broker outage: its verdict table is the
    // output, not librdkafka's reconnect errors.
    logging::init(
        cli.log_format,
        match cli.command {
            Command::Drill(_) => "warn,rdkafka=off,librdkafka=off,iceberg=warn,sqlx=warn",
            _ => "info,iceberg=warn,sqlx=warn",
        },
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("starting the async runtime: {e}");
            std::process::exit(exit::ERROR);
        }
    };
    let code = match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            if logging::format() == LogFormat::Json {
                tracing::error!("{e:#}");
            } else {
                eprintln!("error: {e:#}");
            }
            exit::ERROR
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
        #[cfg(feature = "bench")]
        Command::Bench(args) => cli::bench::run(args, &ctx).await,
        Command::Bootstrap { target } => cli::bootstrap::run(target).await,
        Command::Drill(args) => cli::drill::run(args, &ctx).await,
        Command::Probe(args) => cli::probe::run(args).await,
        Command::Config { command } => cli::config::run(command, &ctx).await,
        Command::Migrate { command } => cli::migrate::run(command, &ctx).await,
        Command::Auth { command } => cli::auth::run(command),
        Command::Reference(args) => cli::reference::run(args),
    }
}
