//! A bare rdkafka consumer: reads topics from the start to their high watermarks and does
//! nothing with the records. The ceiling the broker allows on this machine, which the ingest
//! benchmark divides the pipeline's rate by.

use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use crate::stats::cpu_seconds;

#[derive(Clone, Debug)]
pub struct BareReport {
    pub records: u64,
    pub bytes: u64,
    pub wall: Duration,
    /// CPU of this process while consuming (librdkafka's threads included).
    pub cpu_s: f64,
}

/// High watermark of every partition of `topics`.
pub fn high_watermarks(
    brokers: &str,
    topics: &[String],
) -> anyhow::Result<Vec<(String, i32, i64)>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .context("creating Kafka consumer")?;
    let mut out = Vec::new();
    for topic in topics {
        let md = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .with_context(|| format!("metadata of {topic}"))?;
        for t in md.topics() {
            for p in t.partitions() {
                let (_, high) = consumer
                    .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
                    .with_context(|| format!("watermarks of {topic}/{}", p.id()))?;
                out.push((topic.clone(), p.id(), high));
            }
        }
    }
    Ok(out)
}

/// Read every record of `topics` once (the settings the pipeline's consumers use).
pub fn consume_all(brokers: &str, topics: &[String]) -> anyhow::Result<BareReport> {
    let marks = high_watermarks(brokers, topics)?;
    let expected: i64 = marks.iter().map(|(_, _, h)| *h).sum();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "shopwatch-bench-bare")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("fetch.wait.max.ms", "100")
        .set("enable.partition.eof", "false")
        .create()
        .context("creating Kafka consumer")?;
    let mut tpl = TopicPartitionList::new();
    for (t, p, _) in &marks {
        tpl.add_partition_offset(t, *p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let pid = std::process::id();
    let cpu0 = cpu_seconds(pid).unwrap_or(0.0);
    let started = Instant::now();
    let (mut records, mut bytes) = (0u64, 0u64);
    while (records as i64) < expected {
        if started.elapsed() > Duration::from_secs(1800) {
            anyhow::bail!("bare consumer read {records} of {expected} records in 30 min");
        }
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => {
                records += 1;
                bytes += m.payload().map(|p| p.len() as u64).unwrap_or(0);
            }
            Some(Err(e)) => anyhow::bail!("bare consumer: {e}"),
            None => {}
        }
    }
    Ok(BareReport {
        records,
        bytes,
        wall: started.elapsed(),
        cpu_s: cpu_seconds(pid).unwrap_or(0.0) - cpu0,
    })
}
