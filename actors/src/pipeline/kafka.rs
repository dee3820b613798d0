//! librdkafka's side of the consumer, run on blocking threads (as Quickwit does): the client's
//! settings, assignment at the lake's offsets, polling a batch, and asking the broker whether a
//! partition is drained.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tracing::warn;

use super::params::PipelineParams;
use crate::error::Error;
use crate::lake::Offsets;
use crate::supervision::Progress;

const KAFKA_TIMEOUT: Duration = Duration::from_secs(10);

/// One record as read from Kafka, owned so it can leave the blocking thread.
pub struct RawRecord {
    pub partition: i32,
    pub offset: i64,
    pub payload: Option<Vec<u8>>,
}

pub fn kafka_consumer(params: &PipelineParams) -> Result<BaseConsumer, KafkaError> {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &params.kafka.brokers)
        .set(
            "group.id",
            format!("{}-{}", params.kafka.group_prefix, params.topic),
        )
        // Positions come from the lake, never from the group or a reset policy: an
        // out-of-range position is an error we surface, not a silent jump.
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "error")
        .set("isolation.level", "read_committed")
        .set("fetch.wait.max.ms", "100")
        .set("enable.partition.eof", "false");
    for (k, v) in &params.kafka.extra {
        cfg.set(k, v);
    }
    cfg.create()
}

/// Assign every partition of `topic` at the lower of the raw table's and the dead-letter
/// table's offsets (the earliest retained offset for a partition a table has never seen),
/// after checking the broker still has them. Returns (raw position, dead-letter position).
pub fn assign_from_lake(
    consumer: &BaseConsumer,
    topic: &str,
    lake: &Offsets,
    dead_letters: &Offsets,
) -> Result<(Offsets, Offsets), Error> {
    let metadata = consumer
        .fetch_metadata(Some(topic), KAFKA_TIMEOUT)
        .map_err(Error::kafka(format!("metadata of {topic}")))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(Error::Transient(format!(
            "topic {topic} does not exist on the broker (or has no partitions)"
        )));
    }
    let mut tpl = TopicPartitionList::new();
    let mut position = Offsets::new();
    let mut dl_position = Offsets::new();
    for p in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, KAFKA_TIMEOUT)
            .map_err(Error::kafka(format!("watermarks of {topic}/{p}")))?;
        let start = match lake.get(&p).copied() {
            Some(o) if o > high => {
                return Err(Error::Unrecoverable(format!(
                    "topic {topic} partition {p}: the lake has consumed up to offset {o} but the broker ends at {high}; \
                     the broker was probably recreated. Refusing to skip or duplicate data: point shopwatch at the original \
                     broker, or use a new data dir for a new broker"
                )));
            }
            Some(o) if o < low => {
                return Err(Error::Unrecoverable(format!(
                    "topic {topic} partition {p}: next offset {o} recorded in the lake was deleted by the broker \
                     (earliest retained is {low}); records {o}..{low} are lost. Refusing to continue silently"
                )));
            }
            Some(o) => o,
            None => low,
        };
        let dl_start = match dead_letters.get(&p).copied() {
            Some(o) if o < low => {
                warn!(%topic, partition = p, next = o, low, "dead-letter position was deleted by the broker; resuming at the earliest retained offset");
                low
            }
            Some(o) => o.min(high),
            None => low,
        };
        tpl.add_partition_offset(topic, p, Offset::Offset(start.min(dl_start)))
            .map_err(Error::kafka("assigning"))?;
        position.insert(p, start);
        dl_position.insert(p, dl_start);
    }
    consumer.assign(&tpl).map_err(Error::kafka("assigning"))?;
    Ok((position, dl_position))
}

/// Partitions of `topic` whose `position` has reached the broker's high watermark, asked now
/// (a cached one could be stale while the broker is unreachable), with that watermark.
pub fn drained_partitions(
    consumer: &BaseConsumer,
    topic: &str,
    position: &Offsets,
) -> Vec<(i32, i64)> {
    position
        .iter()
        .filter(|(p, pos)| cached_high_watermark(consumer, topic, **p).is_some_and(|h| **pos >= h))
        .filter_map(|(p, pos)| {
            let (_, high) = consumer
                .fetch_watermarks(topic, *p, Duration::from_secs(1))
                .ok()?;
            (*pos >= high).then_some((*p, high))
        })
        .collect()
}

/// Poll until `interval` elapses, `max_rows` records are read, or `shutdown` is set.
pub fn poll_batch(
    consumer: &BaseConsumer,
    topic: &str,
    progress: &Progress,
    shutdown: &AtomicBool,
    interval: Duration,
    max_rows: usize,
) -> Result<Vec<RawRecord>, Error> {
    let deadline = Instant::now() + interval;
    let mut records = Vec::new();
    let mut consecutive_errors = 0u32;
    let mut per_partition_last: BTreeMap<i32, i64> = BTreeMap::new();
    while Instant::now() < deadline && records.len() < max_rows && !shutdown.load(Ordering::Relaxed)
    {
        progress.beat();
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => {
                consecutive_errors = 0;
                per_partition_last.insert(m.partition(), m.offset());
                records.push(RawRecord {
                    partition: m.partition(),
                    offset: m.offset(),
                    payload: m.payload().map(<[u8]>::to_vec),
                });
            }
            Some(Err(KafkaError::MessageConsumption(RDKafkaErrorCode::OffsetOutOfRange))) => {
                return Err(Error::Unrecoverable(format!(
                    "topic {topic}: broker reports our position out of range; data may have been deleted or the broker recreated"
                )));
            }
            Some(Err(e)) => {
                consecutive_errors += 1;
                warn!(%topic, error = %e, consecutive_errors, "kafka poll error");
                if consecutive_errors >= 50 {
                    return Err(Error::Transient(format!(
                        "topic {topic}: {consecutive_errors} consecutive poll errors, last: {e}"
                    )));
                }
            }
        }
    }
    Ok(records)
}

/// The high watermark librdkafka cached from its last fetch response (no network round trip).
pub fn cached_high_watermark(consumer: &BaseConsumer, topic: &str, partition: i32) -> Option<i64> {
    let topic = std::ffi::CString::new(topic).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client pointer is valid for the consumer's lifetime; the call only reads
    // librdkafka's cached offsets into the two out-parameters.
    let err = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (err == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0)
        .then_some(high)
}
