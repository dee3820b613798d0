//! librdkafka's side of the consumer, run on blocking threads (as Quickwit does): the client's
//! settings, polling a batch (with what the group changed meanwhile, `group.rs`), seeking, and
//! asking the broker whether a partition is drained.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset};
use tracing::warn;

use super::group::{GroupChange, GroupConsumer, GroupContext, Start};
use super::params::{KafkaParams, PipelineParams};
use crate::error::Error;
use crate::handoff::BrokerView;
use crate::lake::Offsets;
use crate::supervision::Progress;

const KAFKA_TIMEOUT: Duration = Duration::from_secs(10);
/// A dead instance's partitions move on after this long (`session.timeout.ms`, which
/// `kafka.extra` may override): Kafka's smallest allowed (`group.min.session.timeout.ms`), since
/// it is also how long a single instance restarted after a crash waits for its own old member
/// to go. Heartbeats come from librdkafka's own thread, so a long commit does not count.
const SESSION_TIMEOUT_MS: u64 = 6_000;
/// How often a member asks the coordinator whether the group changed. A member learns of a
/// rebalance only at its next heartbeat, and until then it keeps reading partitions the new
/// assignment may already have given someone else (Tansu 0.6.0 completes a round without
/// waiting for every member, from each one's last metadata: docs/development.md, "Scenarios
/// and rolling restarts"), so both read them. Kafka's default (a fifth of the session here,
/// 1.2 s) let that overlap last ~5 s; heartbeats are a few bytes.
const HEARTBEAT_INTERVAL_MS: u64 = 300;

/// The group session timeout in effect.
pub fn session_timeout(params: &PipelineParams) -> Duration {
    session_timeout_of(&params.kafka)
}

pub fn session_timeout_of(kafka: &KafkaParams) -> Duration {
    let ms = kafka
        .extra
        .get("session.timeout.ms")
        .and_then(|v| v.parse().ok())
        .unwrap_or(SESSION_TIMEOUT_MS);
    Duration::from_millis(ms)
}

/// One record as read from Kafka; its value lives in its batch's buffer ([`Polled::payload`]).
pub struct RawRecord {
    pub partition: i32,
    pub offset: i64,
    /// Where the value sits in `bytes` (`None`: a tombstone).
    value: Option<(usize, usize)>,
}

/// A polled batch, owned so it can leave the blocking thread. The values are copied into one
/// buffer rather than a `Vec` each: a malloc and a cross-thread free per record were 2 % of
/// the pipeline's CPU in the ingest profile.
#[derive(Default)]
pub struct Polled {
    pub records: Vec<RawRecord>,
    bytes: Vec<u8>,
}

impl Polled {
    fn with_capacity(records: usize, bytes: usize) -> Self {
        Polled {
            records: Vec::with_capacity(records),
            bytes: Vec::with_capacity(bytes),
        }
    }

    pub fn push(&mut self, partition: i32, offset: i64, payload: Option<&[u8]>) {
        let value = payload.map(|p| {
            let at = self.bytes.len();
            self.bytes.extend_from_slice(p);
            (at, p.len())
        });
        self.records.push(RawRecord {
            partition,
            offset,
            value,
        });
    }

    /// The value of `record`, one of this batch's.
    pub fn payload(&self, record: &RawRecord) -> Option<&[u8]> {
        record
            .value
            .and_then(|(at, len)| self.bytes.get(at..at + len))
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Bytes of values held.
    pub fn value_bytes(&self) -> usize {
        self.bytes.len()
    }
}

/// A group member's settings: cooperative-sticky (a rebalance moves only what must move), our
/// session timeout, never the group's offsets, then `kafka.extra` over all of it.
pub fn group_config(kafka: &KafkaParams, group_id: &str) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &kafka.brokers)
        .set("group.id", group_id)
        .set("client.id", &kafka.instance)
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("session.timeout.ms", SESSION_TIMEOUT_MS.to_string())
        .set("heartbeat.interval.ms", HEARTBEAT_INTERVAL_MS.to_string())
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false");
    for (k, v) in &kafka.extra {
        cfg.set(k, v);
    }
    cfg
}

/// A consumer in the topic's group (`{kafka.group}-{topic}`): instances with the same group
/// share the partitions.
pub fn kafka_consumer(
    params: &PipelineParams,
    context: GroupContext,
) -> Result<GroupConsumer, KafkaError> {
    let mut cfg = group_config(
        &params.kafka,
        &format!("{}-{}", params.kafka.group, params.topic),
    );
    // Positions come from the lake, never from the group or a reset policy: an out-of-range
    // position is an error we surface, not a silent jump.
    cfg.set("auto.offset.reset", "error")
        .set("isolation.level", "read_committed")
        .set("fetch.wait.max.ms", "100")
        // librdkafka prefetches up to 64 MiB per consumer by default: in a catch-up that was
        // most of the process's peak memory. 16 MiB still holds several batches of events.
        .set("queued.max.messages.kbytes", "16384");
    for (k, v) in &params.kafka.extra {
        cfg.set(k, v);
    }
    cfg.create_with_context(context)
}

/// The partitions of `topic`; an error when the broker does not have it.
pub fn topic_partitions<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
) -> Result<Vec<i32>, Error> {
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
    Ok(partitions)
}

/// The broker's high watermark of each of `partitions`, asked now.
pub fn high_watermarks<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partitions: &[i32],
) -> Result<BTreeMap<i32, i64>, Error> {
    partitions
        .iter()
        .map(|&p| {
            consumer
                .fetch_watermarks(topic, p, KAFKA_TIMEOUT)
                .map(|(_, high)| (p, high))
                .map_err(Error::kafka(format!("watermarks of {topic}/{p}")))
        })
        .collect()
}

/// Read `starts` again (after a fence: the lake moved past us), if still assigned.
pub fn seek_to(consumer: &GroupConsumer, topic: &str, starts: &[Start]) -> Result<(), Error> {
    for s in starts {
        consumer
            .seek(topic, s.partition, Offset::Offset(s.seek()), KAFKA_TIMEOUT)
            .map_err(Error::kafka(format!("seeking {topic}/{}", s.partition)))?;
    }
    Ok(())
}

/// The broker's high watermark, asked now (a cached one could be stale while the broker is
/// unreachable), for the partitions of `topic` whose `position` has reached the watermark
/// librdkafka cached from its last fetch: the candidates for being drained.
pub fn drained_candidates<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    position: &Offsets,
) -> Vec<(i32, i64, i64)> {
    position
        .iter()
        .filter(|(p, pos)| cached_high_watermark(consumer, topic, **p).is_some_and(|h| **pos >= h))
        .filter_map(|(p, pos)| {
            let (_, high) = consumer
                .fetch_watermarks(topic, *p, Duration::from_secs(1))
                .ok()?;
            Some((*p, *pos, high))
        })
        .collect()
}

/// The broker as the rollup owner asks it about partitions other instances read.
pub struct BrokerProbe {
    consumer: BaseConsumer,
}

impl std::fmt::Debug for BrokerProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BrokerProbe")
    }
}

impl BrokerProbe {
    /// A client that joins no group and reads nothing: it only asks for watermarks.
    pub fn new(kafka: &KafkaParams) -> Result<Self, Error> {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", &kafka.brokers);
        for (k, v) in &kafka.extra {
            cfg.set(k, v);
        }
        Ok(BrokerProbe {
            consumer: cfg
                .create()
                .map_err(Error::kafka("creating the watermark client"))?,
        })
    }
}

impl BrokerProbe {
    /// The retained range `[low, high)` of every partition of `topic`, asked now (blocking).
    pub fn ranges(&self, topic: &str) -> Result<BTreeMap<i32, (i64, i64)>, Error> {
        topic_partitions(&self.consumer, topic)?
            .into_iter()
            .map(|p| {
                self.consumer
                    .fetch_watermarks(topic, p, KAFKA_TIMEOUT)
                    .map(|range| (p, range))
                    .map_err(Error::kafka(format!("watermarks of {topic}/{p}")))
            })
            .collect()
    }
}

impl BrokerView for BrokerProbe {
    fn high_watermarks(&self, topic: &str) -> Result<BTreeMap<i32, i64>, String> {
        let partitions = topic_partitions(&self.consumer, topic).map_err(|e| e.to_string())?;
        high_watermarks(&self.consumer, topic, &partitions).map_err(|e| e.to_string())
    }
}

/// Poll until `interval` elapses, `max_rows` records (or 64 MiB of values) are read, or
/// `shutdown` is set. Returns the records and what the group changed meanwhile, in order;
/// records of a partition revoked during the batch are dropped (its new owner reads them from
/// the lake's offset).
pub fn poll_batch(
    consumer: &GroupConsumer,
    topic: &str,
    progress: &Progress,
    shutdown: &AtomicBool,
    interval: Duration,
    max_rows: usize,
    peek: &mut dyn FnMut(&Polled, std::ops::Range<usize>),
) -> Result<(Polled, Vec<GroupChange>), Error> {
    let deadline = Instant::now() + interval;
    // The values' buffer starts at 1 MiB and doubles: reserving a whole batch's worth up
    // front (16 MiB) raised the catch-up's peak RSS in two runs of six (385–390 MB).
    let mut records = Polled::with_capacity(max_rows.min(65_536), 1 << 20);
    // Records shown to `peek` so far, and when: the live page sees a batch as it fills.
    let (mut peeked, mut peeked_at) = (0usize, Instant::now());
    let mut changes = Vec::new();
    let mut consecutive_errors = 0u32;
    // The clock is read on every poll, once: reading it only every N records lets a trickle
    // (each poll waiting for its record) stretch a batch to N × 100 ms. One CI run with that
    // saw undercounted KPI windows; the link is not proven, the batch bound is kept exact.
    // The deadline, the heartbeat and the peek share that one reading (three reads per record
    // were 1.5 % of the pipeline's CPU in the ingest profile).
    loop {
        let now = Instant::now();
        if now >= deadline
            || records.len() >= max_rows
            || records.value_bytes() >= MAX_BATCH_VALUE_BYTES
            || shutdown.load(Ordering::Relaxed)
        {
            break;
        }
        progress.beat_at(now);
        let polled = consumer.poll(Duration::from_millis(100));
        // Rebalance callbacks ran inside that poll, before the message it returns.
        let (failure, taken) = consumer.context().take();
        if let Some(e) = failure {
            return Err(e);
        }
        for change in taken {
            if let GroupChange::Revoked(gone) = &change {
                // Their values stay in the buffer until the batch is dropped.
                records
                    .records
                    .retain(|r: &RawRecord| !gone.contains(&r.partition));
                peeked = peeked.min(records.len());
            }
            changes.push(change);
        }
        if now.saturating_duration_since(peeked_at) >= PEEK_EVERY && records.len() > peeked {
            peek(&records, peeked..records.len());
            (peeked, peeked_at) = (records.len(), now);
        }
        match polled {
            None => {}
            Some(Ok(m)) => {
                consecutive_errors = 0;
                records.push(m.partition(), m.offset(), m.payload());
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
    if records.len() > peeked {
        peek(&records, peeked..records.len());
    }
    Ok((records, changes))
}

/// How often a filling batch is shown to `peek` (provisional values on the live page).
const PEEK_EVERY: Duration = Duration::from_millis(100);

/// A batch closes once its values hold this much, whatever `max_batch_rows` says: large
/// events (stack traces in error messages) cannot make one batch's memory, or one string column
/// of its Arrow batch (2 GiB at most), unbounded.
const MAX_BATCH_VALUE_BYTES: usize = 64 << 20;

/// The high watermark librdkafka cached from its last fetch response (no network round trip).
pub fn cached_high_watermark<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partition: i32,
) -> Option<i64> {
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
