//! A bare rdkafka consumer: reads topics from the start to their high watermarks and does
//! nothing with the records. The ceiling the broker allows on this machine, which the ingest
//! benchmark divides the pipeline's rate by.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
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

/// Read every record of `topics` once: one consumer per topic, each on its own thread, with
/// librdkafka's fetch queue opened wide, doing nothing but count. As strong a reader as
/// librdkafka allows here, so the pipeline is compared with the broker's ceiling, not with a
/// weak loop. It stops once `expected` records (what the producer had acknowledged) are read,
/// or when every topic has been quiet for 2 s (a broker that serves fewer than it acked).
pub fn consume_all(brokers: &str, topics: &[String], expected: u64) -> anyhow::Result<BareReport> {
    let marks = high_watermarks(brokers, topics)?;
    let total = Arc::new(AtomicU64::new(0));
    let pid = std::process::id();
    let cpu0 = cpu_seconds(pid).unwrap_or(0.0);
    let threads: Vec<_> = topics
        .iter()
        .map(|topic| {
            let partitions: Vec<i32> = marks
                .iter()
                .filter(|(t, _, _)| t == topic)
                .map(|(_, p, _)| *p)
                .collect();
            let (brokers, topic, total) = (brokers.to_string(), topic.clone(), total.clone());
            std::thread::spawn(move || read_topic(&brokers, &topic, &partitions, &total, expected))
        })
        .collect();
    let mut records = 0;
    let mut bytes = 0;
    let mut last = Duration::ZERO;
    for t in threads {
        let r = t
            .join()
            .map_err(|_| anyhow::anyhow!("a bare consumer thread panicked"))??;
        records += r.0;
        bytes += r.1;
        last = last.max(r.2);
    }
    Ok(BareReport {
        records,
        bytes,
        // Until the last record arrived: the quiet wait at the end is not reading.
        wall: last,
        cpu_s: cpu_seconds(pid).unwrap_or(0.0) - cpu0,
    })
}

/// One topic's reader: (records, bytes, time of its last record since the start).
fn read_topic(
    brokers: &str,
    topic: &str,
    partitions: &[i32],
    total: &AtomicU64,
    expected: u64,
) -> anyhow::Result<(u64, u64, Duration)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("shopwatch-bench-bare-{topic}"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("fetch.wait.max.ms", "100")
        .set("enable.partition.eof", "false")
        // A deep prefetch queue and big fetches: librdkafka's broker thread keeps reading
        // while this thread counts.
        .set("queued.min.messages", "1000000")
        .set("queued.max.messages.kbytes", "1048576")
        .set("fetch.max.bytes", "104857600")
        .set("max.partition.fetch.bytes", "10485760")
        .create()
        .context("creating Kafka consumer")?;
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition_offset(topic, *p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let started = Instant::now();
    let (mut records, mut bytes, mut last) = (0u64, 0u64, Duration::ZERO);
    let (mut stamped, mut quiet_since) = (0u64, Instant::now());
    loop {
        if total.load(Ordering::Relaxed) >= expected || quiet_since.elapsed() > QUIET {
            break;
        }
        if started.elapsed() > Duration::from_secs(1800) {
            anyhow::bail!("bare consumer read {records} records of {topic} in 30 min");
        }
        let polled = consumer.poll(Duration::from_millis(100));
        let dry = polled.is_none();
        match polled {
            Some(Ok(m)) => {
                records += 1;
                bytes += m.payload().map(|p| p.len() as u64).unwrap_or(0);
                total.fetch_add(1, Ordering::Relaxed);
            }
            Some(Err(e)) => anyhow::bail!("bare consumer of {topic}: {e}"),
            None => {}
        }
        // The clock only now and then (it costs more than counting a record), and when the
        // queue ran dry.
        if records != stamped && (records % 1024 == 0 || dry) {
            (last, quiet_since, stamped) = (started.elapsed(), Instant::now(), records);
        }
    }
    if records != stamped {
        last = started.elapsed();
    }
    Ok((records, bytes, last.max(Duration::from_millis(1))))
}

/// A topic this long without a record is drained (its broker served all it has).
const QUIET: Duration = Duration::from_secs(2);
