//! The load generator's producer: idempotent, paced, with an optional log of acked records.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::stream::{FuturesUnordered, StreamExt};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

use crate::generator::{Generator, Stream};

#[derive(Clone, Debug)]
pub struct ProduceParams {
    pub brokers: String,
    pub orders_topic: String,
    pub clicks_topic: String,
    pub errors_topic: String,
    /// Total events per second over all topics; `None` = as fast as possible.
    pub rate: Option<f64>,
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    pub seed: u64,
    pub malformed_fraction: f64,
    /// Append one JSON line per acked record (topic, partition, offset, id, malformed kind).
    pub ack_log: Option<PathBuf>,
    /// Print a progress line to stderr every second.
    pub progress: bool,
    /// Synthetic event times (benchmarks); `None` = the wall clock.
    pub event_clock: Option<crate::generator::EventClock>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProduceReport {
    pub sent: u64,
    pub acked: u64,
    pub errors: u64,
    pub malformed_acked: u64,
}

const MAX_IN_FLIGHT: usize = 20_000;

pub async fn produce(
    params: ProduceParams,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<ProduceReport> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &params.brokers)
        // Idempotent: a retried send never writes a record twice.
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "60000")
        .create()
        .context("creating Kafka producer")?;
    let mut log = match &params.ack_log {
        Some(path) => Some(std::io::BufWriter::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening ack log {}", path.display()))?,
        )),
        None => None,
    };
    let mut generator = Generator::new(params.seed, params.malformed_fraction);
    if let Some(clock) = params.event_clock {
        generator = generator.with_clock(clock);
    }
    let mut report = ProduceReport::default();
    let mut in_flight = FuturesUnordered::new();
    let start = Instant::now();
    let mut last_progress = Instant::now();
    let mut last_acked = 0;
    loop {
        let done = stop.load(Ordering::Relaxed)
            || params.count.is_some_and(|c| report.sent >= c)
            || params.duration.is_some_and(|d| start.elapsed() >= d);
        if done {
            break;
        }
        if let Some(rate) = params.rate {
            let due = start + Duration::from_secs_f64(report.sent as f64 / rate);
            let now = Instant::now();
            if due > now {
                // Collect acks while waiting for the next send slot.
                if let Ok(Some(result)) = tokio::time::timeout(due - now, in_flight.next()).await {
                    record_ack(result, &mut report, &mut log)?;
                }
                continue;
            }
        }
        while in_flight.len() >= MAX_IN_FLIGHT {
            if let Some(result) = in_flight.next().await {
                record_ack(result, &mut report, &mut log)?;
            }
        }
        let event = generator.next();
        let topic = match event.stream {
            Stream::Orders => &params.orders_topic,
            Stream::Clicks => &params.clicks_topic,
            Stream::Errors => &params.errors_topic,
        };
        let record: FutureRecord<'_, (), [u8]> = FutureRecord::to(topic).payload(&event.payload);
        match producer.send_result(record) {
            Ok(delivery) => {
                let topic = topic.clone();
                in_flight.push(async move { (delivery.await, topic, event.id, event.malformed) });
                report.sent += 1;
            }
            Err((e, _)) => {
                report.errors += 1;
                if matches!(
                    e,
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull
                    )
                ) {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                } else {
                    tracing::warn!(error = %e, "send failed");
                }
            }
        }
        if params.progress && last_progress.elapsed() >= Duration::from_secs(1) {
            let rate = (report.acked - last_acked) as f64 / last_progress.elapsed().as_secs_f64();
            eprint!(
                "\r  rate {rate:>9.0} ev/s  sent {:>10}  acked {:>10}  errors {:>6}   ",
                report.sent, report.acked, report.errors
            );
            last_acked = report.acked;
            last_progress = Instant::now();
        }
    }
    while let Some(result) = in_flight.next().await {
        record_ack(result, &mut report, &mut log)?;
    }
    if let Some(log) = log.as_mut() {
        log.flush()?;
    }
    if params.progress {
        eprintln!(
            "\r  sent {}  acked {}  errors {}  ({:.1} s)                      ",
            report.sent,
            report.acked,
            report.errors,
            start.elapsed().as_secs_f64()
        );
    }
    Ok(report)
}

type Ack = (
    Result<
        rdkafka::producer::future_producer::OwnedDeliveryResult,
        futures::channel::oneshot::Canceled,
    >,
    String,
    String,
    Option<&'static str>,
);

fn record_ack(
    ack: Ack,
    report: &mut ProduceReport,
    log: &mut Option<std::io::BufWriter<std::fs::File>>,
) -> anyhow::Result<()> {
    let (result, topic, id, malformed) = ack;
    match result {
        Ok(Ok(delivery)) => {
            report.acked += 1;
            if malformed.is_some() {
                report.malformed_acked += 1;
            }
            if let Some(log) = log.as_mut() {
                let line = serde_json::json!({
                    "topic": topic, "partition": delivery.partition, "offset": delivery.offset,
                    "id": id, "malformed": malformed,
                });
                writeln!(log, "{line}")?;
            }
        }
        _ => report.errors += 1,
    }
    Ok(())
}
