//! Group membership: instances with the same `kafka.group` share each topic's partitions
//! through Kafka's consumer-group protocol (cooperative-sticky), and the lake, never the
//! group, says where each partition starts. librdkafka calls [`GroupContext::rebalance`] on
//! our polling thread; the context seeks new partitions to the lake's offsets and queues what
//! changed for the consumer actor, which applies it before it handles the records that follow.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tracing::{info, warn};

use crate::error::Error;
use crate::lake::Offsets;
use crate::pipeline::start_at::{Pins, StartAt};

const KAFKA_TIMEOUT: Duration = Duration::from_secs(10);

/// What the lake recorded for a topic, read when partitions are assigned (or fenced).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LakePositions {
    /// The raw table's next offset per partition.
    pub raw: Offsets,
    /// Recorded by the raw table in the same commit: per partition, the lowest offset whose
    /// dead letter may not be in the dead-letter table yet (the raw position when none was
    /// buffered). Absent for tables written before it existed.
    pub dead_letters_from: Offsets,
    /// The dead-letter table's next offset per partition (it moves only when dead letters
    /// are committed, so it may trail far behind on a clean topic).
    pub dead_letters: Offsets,
}

/// Where a partition starts: the raw table's next offset and the offset from which dead
/// letters are rebuilt (it may trail the raw offset by what was buffered at the last raw
/// commit: only those records are read again).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Start {
    pub partition: i32,
    pub raw: i64,
    pub dead_letters: i64,
    /// The broker's high watermark when the partition was taken: caught up once the lake
    /// holds everything below it.
    pub high: i64,
}

impl Start {
    /// The offset to read from.
    pub fn seek(&self) -> i64 {
        self.raw.min(self.dead_letters)
    }

    /// Records that will be read again below the raw position.
    pub fn rereads(&self) -> i64 {
        (self.raw - self.seek()).max(0)
    }
}

/// Where `partition` starts, from the broker's retained range `[low, high)` and what the lake
/// recorded (`None`: never seen). Refuses to skip or duplicate: a lake past the broker (a
/// recreated broker) or before its retention (deleted records) is an error no restart fixes.
///
/// Dead letters are rebuilt from the higher of the dead-letter table's position and the raw
/// table's `dead_letters_from`: below either, every dead letter is already committed.
pub fn start_position(
    topic: &str,
    partition: i32,
    (low, high): (i64, i64),
    raw: Option<i64>,
    (dead_letters_from, dead_letters): (Option<i64>, Option<i64>),
    fresh: i64,
) -> Result<Start, Error> {
    // A partition the lake never saw starts where `kafka.start` says, dead letters included.
    let unknown = if raw.is_none() { fresh } else { low };
    let raw = match raw {
        Some(o) if o > high => {
            return Err(Error::Unrecoverable(format!(
                "topic {topic} partition {partition}: the lake has consumed up to offset {o} but the broker ends at {high}; \
                 the broker was probably recreated. Refusing to skip or duplicate data: point shopwatch at the original \
                 broker, or use a new data dir for a new broker"
            )));
        }
        Some(o) if o < low => {
            return Err(Error::Unrecoverable(format!(
                "topic {topic} partition {partition}: next offset {o} recorded in the lake was deleted by the broker \
                 (earliest retained is {low}); records {o}..{low} are lost. Refusing to continue silently"
            )));
        }
        Some(o) => o,
        None => fresh,
    };
    let done = match (dead_letters_from, dead_letters) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    let dead_letters = match done {
        Some(o) if o < low => {
            warn!(%topic, partition, next = o, low, "dead-letter position was deleted by the broker; resuming at the earliest retained offset");
            low
        }
        Some(o) => o.min(high),
        None => unknown,
    };
    Ok(Start {
        partition,
        raw,
        dead_letters,
        high,
    })
}

/// What the group changed during a poll, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupChange {
    /// New partitions, already seeked to where the lake says they start.
    Assigned(Vec<Start>),
    /// Partitions taken away: records of theirs not yet committed are dropped.
    Revoked(Vec<i32>),
}

/// Reads what both tables recorded for the topic. Blocking: it runs inside librdkafka's
/// rebalance callback, on our polling thread.
pub type LakeOffsets = Box<dyn Fn() -> Result<LakePositions, Error> + Send + Sync>;

pub type GroupConsumer = BaseConsumer<GroupContext>;

pub struct GroupContext {
    topic: String,
    lake: LakeOffsets,
    /// Where a partition without an offset in the lake starts.
    start: StartAt,
    pins: Pins,
    changes: Mutex<Vec<GroupChange>>,
    failure: Mutex<Option<Error>>,
    /// Something waits in `changes` or `failure`: polls check this instead of two locks.
    pending: AtomicBool,
}

impl GroupContext {
    pub fn new(topic: &str, lake: LakeOffsets, start: StartAt, pins: Pins) -> Self {
        GroupContext {
            topic: topic.to_string(),
            lake,
            start,
            pins,
            changes: Mutex::new(Vec::new()),
            failure: Mutex::new(None),
            pending: AtomicBool::new(false),
        }
    }

    /// What the callbacks left since the last take: a failure inside a rebalance callback
    /// (which cannot return one) and the changes, in order.
    pub fn take(&self) -> (Option<Error>, Vec<GroupChange>) {
        // The callbacks run inside `poll` on the polling thread, so nothing is pushed while
        // this runs; the flag spares two locks per record.
        if !self.pending.swap(false, Ordering::AcqRel) {
            return (None, Vec::new());
        }
        let failure = self.failure.lock().ok().and_then(|mut f| f.take());
        let changes = self
            .changes
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default();
        (failure, changes)
    }

    fn push(&self, change: GroupChange) {
        if let Ok(mut c) = self.changes.lock() {
            c.push(change);
        }
        self.pending.store(true, Ordering::Release);
    }

    fn fail(&self, e: Error) {
        warn!(topic = %self.topic, error = %e, "taking assigned partitions failed");
        if let Ok(mut f) = self.failure.lock() {
            f.get_or_insert(e);
        }
        self.pending.store(true, Ordering::Release);
    }

    /// Where each of `partitions` starts, from the lake as it is now.
    pub fn starts<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        partitions: &[i32],
    ) -> Result<Vec<Start>, Error> {
        let lake = (self.lake)()?;
        starts_from(
            consumer,
            &self.topic,
            partitions,
            &lake,
            &self.start,
            &self.pins,
        )
    }

    fn assign(&self, consumer: &GroupConsumer, partitions: &[i32]) -> Result<(), Error> {
        let starts = self.starts(consumer, partitions)?;
        let mut tpl = TopicPartitionList::new();
        for s in &starts {
            tpl.add_partition_offset(&self.topic, s.partition, Offset::Offset(s.seek()))
                .map_err(Error::kafka("assigning"))?;
        }
        let assigned = match consumer.rebalance_protocol() {
            RebalanceProtocol::Cooperative => consumer.incremental_assign(&tpl),
            _ => consumer.assign(&tpl),
        };
        assigned.map_err(Error::kafka("assigning"))?;
        info!(topic = %self.topic, ?starts, "partitions assigned at the lake's offsets");
        self.push(GroupChange::Assigned(starts));
        Ok(())
    }
}

/// Where each of `partitions` of `topic` starts, checked against the broker's retained range.
pub fn starts_from<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partitions: &[i32],
    lake: &LakePositions,
    start: &StartAt,
    pins: &Pins,
) -> Result<Vec<Start>, Error> {
    partitions
        .iter()
        .map(|&p| {
            let range = consumer
                .fetch_watermarks(topic, p, KAFKA_TIMEOUT)
                .map_err(Error::kafka(format!("watermarks of {topic}/{p}")))?;
            let fresh = match (lake.raw.get(&p), start) {
                (None, StartAt::Time(t)) => pins.pin(
                    topic,
                    p,
                    start.resolve(p, range, offset_for_time(consumer, topic, p, *t)?),
                ),
                (None, StartAt::Latest) => pins.pin(topic, p, start.resolve(p, range, None)),
                (None, _) => start.resolve(p, range, None),
                (Some(_), _) => range.0,
            };
            start_position(
                topic,
                p,
                range,
                lake.raw.get(&p).copied(),
                (
                    lake.dead_letters_from.get(&p).copied(),
                    lake.dead_letters.get(&p).copied(),
                ),
                fresh,
            )
        })
        .collect()
}

/// The first offset of `topic/partition` whose timestamp is at or after `micros` (`None`:
/// none that late).
fn offset_for_time<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partition: i32,
    micros: i64,
) -> Result<Option<i64>, Error> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(micros / 1000))
        .map_err(Error::kafka("asking for offsets by time"))?;
    let found = consumer
        .offsets_for_times(tpl, KAFKA_TIMEOUT)
        .map_err(Error::kafka(format!(
            "offsets by time of {topic}/{partition}"
        )))?;
    Ok(found
        .find_partition(topic, partition)
        .and_then(|e| match e.offset() {
            Offset::Offset(o) => Some(o),
            _ => None,
        }))
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let partitions: Vec<i32> = tpl
            .elements_for_topic(&self.topic)
            .iter()
            .map(|e| e.partition())
            .collect();
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS if consumer.closed() => {
                // The consumer is being closed (dropped with its actor, perhaps on a runtime
                // thread where reading the lake cannot block): it takes nothing and leaves.
                info!(topic = %self.topic, ?partitions, "assignment while closing: not taken");
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                // On failure nothing is assigned; the actor fails on the stored error and its
                // consumer leaves the group, so the partitions go to someone who can take them.
                if let Err(e) = self.assign(consumer, &partitions) {
                    self.fail(e);
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                info!(topic = %self.topic, ?partitions, lost = consumer.assignment_lost(), "partitions revoked");
                // Queued first: the polling loop drops their uncommitted records before it
                // reads on. Nothing is being committed meanwhile (commits happen between polls).
                self.push(GroupChange::Revoked(partitions));
                let result = if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                };
                if let Err(e) = result {
                    self.fail(Error::Transient(format!(
                        "topic {}: giving partitions back: {e}",
                        self.topic
                    )));
                }
            }
            other => {
                // A failed rebalance: let go of everything; the group will assign again.
                warn!(topic = %self.topic, error = ?other, "rebalance failed; releasing the assignment");
                let held: Vec<i32> = consumer
                    .assignment()
                    .map(|a| {
                        a.elements_for_topic(&self.topic)
                            .iter()
                            .map(|e| e.partition())
                            .collect()
                    })
                    .unwrap_or_default();
                self.push(GroupChange::Revoked(held));
                let _ = consumer.unassign();
            }
        }
    }
}

/// Partitions nobody here reads that look abandoned: the broker has records past what the
/// lake recorded, and the lake's offset has not moved since the previous look (`before`, taken
/// at least a session timeout earlier). A healthy group hands a dead member's partitions on
/// after its session times out; Tansu 0.6.0 can instead settle a member that joined meanwhile
/// with an empty assignment and never rebalance again (../shared/reference/realparts.md).
/// Leaving and rejoining then forms the group anew.
pub fn abandoned(
    owned: &BTreeSet<i32>,
    highs: &BTreeMap<i32, i64>,
    lake_before: &Offsets,
    lake_now: &Offsets,
) -> Vec<i32> {
    highs
        .iter()
        .filter(|(p, _)| !owned.contains(p))
        .filter(|(p, high)| {
            let now = lake_now.get(p).copied();
            now.unwrap_or(0) < **high && lake_before.get(p).copied() == now
        })
        .map(|(p, _)| *p)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_positions_table() {
        // (retained range, raw, (dead letters from, dead-letter table)) → Ok(raw, dead letters)
        // or an error
        type Case = (
            (i64, i64),
            Option<i64>,
            (Option<i64>, Option<i64>),
            Option<(i64, i64)>,
        );
        let cases: Vec<Case> = vec![
            ((0, 100), None, (None, None), Some((0, 0))),
            // Tables written before `dead_letters_from`: the dead-letter table decides.
            ((0, 100), Some(40), (None, Some(30)), Some((40, 30))),
            ((0, 100), Some(40), (None, None), Some((40, 0))),
            ((10, 100), Some(40), (None, Some(5)), Some((40, 10))), // falls back to low
            ((0, 100), Some(100), (None, Some(120)), Some((100, 100))), // capped at high
            // Nothing was buffered at the last raw commit: nothing to read again, however far
            // behind the dead-letter table is (a clean topic never moves it).
            ((0, 100), Some(40), (Some(40), None), Some((40, 40))),
            ((0, 100), Some(40), (Some(40), Some(0)), Some((40, 40))),
            // A dead letter at 33 was buffered: read again from there only.
            ((0, 100), Some(40), (Some(33), Some(10)), Some((40, 33))),
            // The dead-letter table got further than the raw commit knew (flushed after it).
            ((0, 100), Some(40), (Some(33), Some(38)), Some((40, 38))),
            ((50, 100), Some(60), (Some(45), None), Some((60, 50))), // below retention: low
            ((0, 100), Some(101), (None, None), None),               // broker recreated
            ((50, 100), Some(40), (None, None), None),               // retention deleted records
            ((50, 100), None, (None, None), Some((50, 50))),         // a new table starts at low
        ];
        for (range, raw, dl, want) in cases {
            let got = start_position("t", 0, range, raw, dl, range.0);
            match want {
                Some((r, d)) => {
                    let s = got.unwrap_or_else(|e| panic!("{range:?} {raw:?} {dl:?}: {e}"));
                    assert_eq!((s.raw, s.dead_letters), (r, d), "{range:?} {raw:?} {dl:?}");
                    assert_eq!(s.seek(), r.min(d));
                    assert_eq!(s.rereads(), (r - r.min(d)));
                    assert_eq!(s.high, range.1);
                }
                None => assert!(got.is_err(), "{range:?} {raw:?} {dl:?}: {got:?}"),
            }
        }
    }

    #[test]
    fn kafka_start_decides_only_what_the_lake_does_not() {
        // (raw, dead letters from, fresh) → (raw, dead letters)
        let cases = [
            (None, None, 70, (70, 70)),    // latest / a time / Spark's end: both there
            (Some(40), None, 70, (40, 0)), // the lake wins, whatever the policy says
            (Some(40), Some(40), 70, (40, 40)), // and its dead-letter bookkeeping too
        ];
        for (raw, dl_from, fresh, want) in cases {
            let s = start_position("t", 0, (0, 100), raw, (dl_from, None), fresh).unwrap();
            assert_eq!((s.raw, s.dead_letters), want, "{raw:?} {dl_from:?} {fresh}");
        }
    }

    #[test]
    fn abandoned_partitions_table() {
        let owned: BTreeSet<i32> = [0].into();
        let highs: BTreeMap<i32, i64> = [(0, 100), (1, 100), (2, 100), (3, 0)].into();
        let before: Offsets = [(0, 10), (1, 50), (2, 60)].into();
        // p0 is ours (never abandoned); p1 moved; p2 stuck behind the broker; p3 is empty.
        let now: Offsets = [(0, 10), (1, 70), (2, 60)].into();
        assert_eq!(abandoned(&owned, &highs, &before, &now), vec![2]);
        // Caught up with the broker: quiet, not abandoned.
        let caught: Offsets = [(0, 10), (1, 100), (2, 100)].into();
        assert_eq!(
            abandoned(&owned, &highs, &caught, &caught),
            Vec::<i32>::new()
        );
        // Never committed by anyone while the broker has records: abandoned.
        let highs: BTreeMap<i32, i64> = [(4, 5)].into();
        assert_eq!(
            abandoned(&owned, &highs, &Offsets::new(), &Offsets::new()),
            vec![4]
        );
        // First commit since the last look: moving.
        let first: Offsets = [(4, 2)].into();
        assert_eq!(
            abandoned(&owned, &highs, &Offsets::new(), &first),
            Vec::<i32>::new()
        );
    }
}
