//! The `shopwatch` binary: real-time e-commerce monitoring from Kafka into Iceberg.

mod bench;
mod bootstrap;
mod config;
mod demo;
mod drill_endpoint;
mod flight;
mod http;
mod live;
mod run;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use shopwatch_load::broker::{Broker, BrokerParams, BrokerStorage};
use shopwatch_load::produce::{produce, ProduceParams};
use toml::Value;

use crate::config::{Config, Overrides};

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
    /// Local broker, pipeline, lake and HTTP in one command (installs the broker if missing).
    Demo(DemoArgs),
    /// Run the pipeline against an existing Kafka.
    Run(RunArgs),
    /// Run the local Kafka-protocol broker (Tansu) with the topics created.
    Broker(BrokerArgs),
    /// Generate the seed's payloads into Kafka.
    Produce(ProduceArgs),
    /// Run one SQL query through Flight SQL (the embedded server by default) and print it.
    Query(QueryArgs),
    /// Benchmarks that print figures (see BENCHMARKS.md).
    Bench(bench::BenchArgs),
    /// One-shot set-up of the production-like stack's parts (idempotent).
    Bootstrap {
        #[command(subcommand)]
        target: BootstrapTarget,
    },
    /// Fault-injection drill: faults against a live broker and pipeline, then independent
    /// checks for loss, duplicates and KPI drift (needs a build with `--features failpoints`).
    Drill(DrillArgs),
    /// GET a URL and exit 0 on a 2xx answer (the container healthcheck; no curl in the image).
    Probe {
        url: String,
        #[arg(long, default_value_t = 5.0)]
        timeout: f64,
    },
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Args)]
struct DrillArgs {
    /// Events to produce (unique ids; 1 % malformed).
    #[arg(long, default_value_t = 200_000)]
    events: u64,
    /// Events per second over the three topics.
    #[arg(long, default_value_t = 1_500.0)]
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
}

#[derive(Subcommand)]
enum BootstrapTarget {
    /// Wait for Dremio, create its first user if none, create the Nessie source if missing.
    Dremio(bootstrap::DremioArgs),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the effective configuration (secrets redacted), or the error in it.
    Check(RunArgs),
}

#[derive(Args, Clone, Default)]
struct RunArgs {
    /// Kafka bootstrap servers, HOST:PORT (config `kafka.brokers`).
    #[arg(long)]
    brokers: Option<String>,
    /// Directory of the SQLite catalog and the warehouse (config `lake.data_dir`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// HTTP listen address for /metrics, /livez, /readyz and the page (config `http.listen`).
    #[arg(long)]
    http: Option<String>,
    /// Arrow Flight SQL listen address (config `flight.listen`, default 127.0.0.1:32010).
    #[arg(long)]
    flight: Option<String>,
}

#[derive(Args)]
struct DemoArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Generator rate, events per second (config `demo.rate`).
    #[arg(long)]
    rate: Option<f64>,
    /// Generator seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

#[derive(Args)]
struct QueryArgs {
    /// The SQL, e.g. "SELECT * FROM nessie_minio_catalog.ecommerce_db.alerts LIMIT 5".
    #[arg(required_unless_present = "kpis")]
    sql: Option<String>,
    /// Run the dashboard's KPI query set instead (the same SQL for Dremio and the embedded server).
    #[arg(long)]
    kpis: bool,
    /// With --kpis: print the queries as JSON instead of running them.
    #[arg(long, requires = "kpis")]
    print_sql: bool,
    /// Flight SQL address (default: per config `query.backend`, the embedded server's `flight.listen`).
    #[arg(long)]
    flight: Option<String>,
    /// Time limit for connecting and for each call, in seconds.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
}

#[derive(Args)]
struct BrokerArgs {
    #[arg(long, default_value = "127.0.0.1:9092")]
    listen: SocketAddr,
    #[arg(long, default_value = "./shopwatch-data/broker")]
    data_dir: PathBuf,
    /// Partitions per topic (default: config `kafka.partitions`, 3).
    #[arg(long)]
    partitions: Option<i32>,
    /// Topics to create, comma-separated (default: the configured topics).
    #[arg(long, value_delimiter = ',')]
    topics: Option<Vec<String>>,
    /// Keep data in memory only (fast, lost on exit).
    #[arg(long)]
    memory: bool,
}

#[derive(Args)]
struct ProduceArgs {
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

impl RunArgs {
    fn overrides(&self) -> Overrides {
        let mut o: Overrides = Vec::new();
        if let Some(b) = &self.brokers {
            o.push(("kafka.brokers", Value::String(b.clone())));
        }
        if let Some(d) = &self.data_dir {
            o.push(("lake.data_dir", Value::String(d.display().to_string())));
        }
        if let Some(h) = &self.http {
            o.push(("http.listen", Value::String(h.clone())));
        }
        if let Some(f) = &self.flight {
            o.push(("flight.listen", Value::String(f.clone())));
        }
        o
    }
}

/// `--profile`, set once before anything loads the configuration.
static PROFILE_FLAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn load_config(file: Option<&std::path::Path>, overrides: Overrides) -> anyhow::Result<Config> {
    let mut env: Vec<(String, String)> = std::env::vars().collect();
    if let Some(p) = PROFILE_FLAG.get() {
        // Last wins: the flag over SHOPWATCH_PROFILE.
        env.push(("SHOPWATCH_PROFILE".into(), p.clone()));
    }
    Ok(config::load(file, &env, overrides)?)
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
    if let Some(p) = &cli.profile {
        let _ = PROFILE_FLAG.set(p.clone());
    }
    let file = cli.config.as_deref();
    match cli.command {
        Command::Bootstrap {
            target: BootstrapTarget::Dremio(args),
        } => {
            bootstrap::run(args).await?;
            Ok(0)
        }
        Command::Drill(args) => {
            if !shopwatch_actors::failpoint::ENABLED {
                anyhow::bail!(
                    "shopwatch drill needs a build with failpoints: \
                     cargo run --release -p shopwatch --features failpoints -- drill"
                );
            }
            let cfg = load_config(file, Vec::new())?;
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
                topics: [
                    cfg.topics.orders.clone(),
                    cfg.topics.clicks.clone(),
                    cfg.topics.errors.clone(),
                ],
            })
            .await?;
            Ok(if outcome.passed { 0 } else { 1 })
        }
        Command::Probe { url, timeout } => {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs_f64(timeout.clamp(0.1, 600.0)))
                .build()?;
            let status = client
                .get(&url)
                .send()
                .await
                .with_context(|| format!("GET {url}"))?
                .status();
            println!("{url}: HTTP {}", status.as_u16());
            Ok(if status.is_success() { 0 } else { 1 })
        }
        Command::Config {
            command: ConfigCommand::Check(args),
        } => {
            let cfg = load_config(file, args.overrides())?;
            print!("{}", cfg.redacted_toml());
            Ok(0)
        }
        Command::Query(args) if args.print_sql => {
            let cfg = load_config(file, Vec::new())?;
            let target = cfg.query_target();
            let set: Vec<serde_json::Value> = flight::kpis::kpi_queries(
                &target.source,
                &target.namespace,
                chrono::Utc::now().timestamp_micros(),
            )
            .into_iter()
            .map(|q| serde_json::json!({"name": q.name, "sql": q.sql}))
            .collect();
            println!("{}", serde_json::Value::Array(set));
            Ok(0)
        }
        Command::Query(args) => {
            let cfg = load_config(file, Vec::new())?;
            let target = cfg.query_target();
            let addr = args.flight.unwrap_or(target.addr.clone());
            let mut client = flight::client::FlightQueryClient::connect(
                &addr,
                &target.username,
                &target.password,
                Duration::from_secs_f64(args.timeout.max(0.1)),
            )
            .await?;
            let queries = match args.sql {
                Some(sql) => vec![("query", sql)],
                None => flight::kpis::kpi_queries(
                    &target.source,
                    &target.namespace,
                    chrono::Utc::now().timestamp_micros(),
                )
                .into_iter()
                .map(|q| (q.name, q.sql))
                .collect(),
            };
            for (name, sql) in queries {
                let batches = client.query(&sql).await?;
                let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
                println!("{name}: {rows} row(s)");
                println!("{}", arrow::util::pretty::pretty_format_batches(&batches)?);
            }
            Ok(0)
        }
        Command::Bench(args) => {
            let cfg = load_config(file, Vec::new())?;
            bench::run(cfg, args).await
        }
        Command::Run(args) => {
            let cfg = load_config(file, args.overrides())?;
            run::run_until(cfg, run::shutdown_signal()).await
        }
        Command::Demo(args) => {
            let mut overrides = args.run.overrides();
            if let Some(rate) = args.rate {
                overrides.push(("demo.rate", Value::Float(rate)));
            }
            let cfg = load_config(file, overrides)?;
            demo::demo(cfg, args.seed).await
        }
        Command::Broker(args) => {
            let cfg = load_config(file, Vec::new())?;
            let topics = args.topics.unwrap_or_else(|| {
                vec![
                    cfg.topics.orders.clone(),
                    cfg.topics.clicks.clone(),
                    cfg.topics.errors.clone(),
                ]
            });
            let params = BrokerParams {
                listen: args.listen,
                data_dir: args.data_dir,
                partitions: args.partitions.unwrap_or(cfg.kafka.partitions),
                topics,
                storage: if args.memory {
                    BrokerStorage::Memory
                } else {
                    BrokerStorage::Sqlite
                },
            };
            let broker = Broker::start(params.clone()).await?;
            // `shopwatch demo` and the tests wait for this exact line.
            println!(
                "broker ready on {} (topics: {})",
                broker.brokers(),
                params.topics.join(", ")
            );
            let stop = Arc::new(AtomicBool::new(false));
            let stop2 = stop.clone();
            tokio::spawn(async move {
                run::shutdown_signal().await;
                stop2.store(true, Ordering::Relaxed);
            });
            broker.supervise(stop).await?;
            Ok(0)
        }
        Command::Produce(args) => {
            let cfg = load_config(file, Vec::new())?;
            let stop = Arc::new(AtomicBool::new(false));
            let stop2 = stop.clone();
            tokio::spawn(async move {
                run::shutdown_signal().await;
                stop2.store(true, Ordering::Relaxed);
            });
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
    }
}
