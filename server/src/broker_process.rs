//! `shopwatch-broker`: the local Kafka-protocol broker process, Tansu 0.6.0 linked in as a
//! library with its `libsql` (SQLite) and `dynostore` (`memory://`) storage engines. Started
//! and supervised by `shopwatch broker` (shopwatch_load::broker), which creates the topics;
//! takes the flags of `tansu broker` that shopwatch uses, so `TANSU_BIN` can name a Tansu
//! binary instead.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tansu_broker::broker::Broker;
use tansu_broker::coordinator::group::administrator::Controller;
use tansu_storage::StorageContainer;

#[derive(Parser)]
#[command(
    name = "shopwatch-broker",
    version,
    about = "Tansu 0.6.0, as shopwatch runs it"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the Kafka protocol until SIGTERM or Ctrl-C.
    Broker {
        #[arg(long)]
        listener_url: url::Url,
        #[arg(long)]
        advertised_listener_url: url::Url,
        /// `sqlite://FILE` (persistent) or `memory://tansu/` (lost on exit).
        #[arg(long)]
        storage_engine: url::Url,
    },
}

async fn serve(listener: url::Url, advertised: url::Url, storage: url::Url) -> anyhow::Result<()> {
    let broker = Broker::<Controller<StorageContainer>, StorageContainer>::builder()
        .node_id(tansu_broker::NODE_ID)
        .cluster_id("tansu_cluster")
        .incarnation_id(uuid::Uuid::now_v7())
        .advertised_listener(advertised)
        .storage(storage)
        .listener(listener)
        .silent(true)
        .build()
        .await
        // Tansu's error type is not `Sync`; its text is what a user needs.
        .map_err(|e| anyhow::anyhow!("starting the broker: {e:?}"))?;
    // Returns on SIGTERM or Ctrl-C, after Tansu's own clean-up.
    let code = broker
        .main(tokio::time::Instant::now())
        .await
        .map_err(|e| anyhow::anyhow!("broker failed: {e:?}"))?;
    if code != tansu_sans_io::ErrorCode::None {
        anyhow::bail!("broker stopped with {code:?}");
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let Cli {
        command:
            Command::Broker {
                listener_url,
                advertised_listener_url,
                storage_engine,
            },
    } = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match serve(listener_url, advertised_listener_url, storage_engine).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
