//! `shopwatch bench <name>`: benchmarks that print figures next to their targets. They never
//! fail on speed; the machines are shared and noisy.

mod lakefill;
mod query;
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
    /// Websocket soak: N dashboard clients (some slow) against a running shopwatch.
    Ws(ws::WsBenchArgs),
}

pub async fn run(cfg: Config, args: BenchArgs) -> anyhow::Result<i32> {
    match args.which {
        BenchCommand::Query(a) => query::run(cfg, a).await,
        BenchCommand::Ws(a) => ws::run(a).await,
    }
}

/// A free loopback port (bound then released; good enough for a benchmark).
pub fn free_addr() -> anyhow::Result<String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.to_string())
}
