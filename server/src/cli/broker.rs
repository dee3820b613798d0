//! `shopwatch broker`: the local Kafka-protocol broker (Tansu) with the topics created.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use shopwatch_load::broker::{Broker, BrokerParams, BrokerStorage};

use super::Ctx;

#[derive(Args)]
pub struct BrokerArgs {
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

pub async fn run(args: BrokerArgs, ctx: &Ctx) -> anyhow::Result<i32> {
    let cfg = ctx.config(Vec::new())?;
    let topics = args.topics.unwrap_or_else(|| cfg.topics.names().to_vec());
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
    broker.supervise(super::stop_flag()).await?;
    Ok(0)
}
