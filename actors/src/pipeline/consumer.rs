//! Consumer actor: one per topic and instance, a member of the topic's consumer group.
//! librdkafka runs on a blocking thread (as Quickwit does); the actor applies what the group
//! changed, decodes the records, splits them into raw rows and dead letters, and hands each
//! batch to the committers with a `call`, so at most one batch per pipeline is in memory.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef};
use rdkafka::consumer::Consumer;
use tracing::info;

use super::group::{GroupChange, GroupConsumer, GroupContext, LakePositions};
use super::kafka::{
    cached_high_watermark, kafka_consumer, poll_batch, session_timeout, topic_partitions, Polled,
};
use super::messages::{CommitterMsg, ConsumerMsg, Reply};
use super::params::PipelineParams;
use super::preview::preview;
use super::recovery::Recovery;
use crate::error::{into_actor, Error, Handled};
use crate::handoff::Delivery;
use crate::lake::{CommitReport, Offsets, Ranges, Recorded, TableBatch};
use crate::schema::{DeadLetter, Rows};
use crate::supervision::Progress;

const COMMIT_CALL_TIMEOUT: Duration = Duration::from_secs(300);

pub struct ConsumerActor;

pub struct ConsumerArgs {
    pub params: PipelineParams,
    pub raw: ActorRef<CommitterMsg>,
    pub dead_letters: ActorRef<CommitterMsg>,
    pub progress: Arc<Progress>,
    /// Records that made a handler fail twice: dead-lettered without being handled again.
    pub poison: HashSet<(i32, i64)>,
}

pub struct ConsumerState {
    pub(super) args: ConsumerArgs,
    pub(super) consumer: Arc<GroupConsumer>,
    /// The topic's partitions (all of them, not only ours).
    pub(super) partitions: Vec<i32>,
    /// Next offset per partition the raw table expects (= what it records once committed).
    /// Its keys are the partitions the group assigned to this instance.
    pub(super) position: Offsets,
    /// Next offset per partition the dead-letter table expects. Dead letters are committed
    /// lazily (a commit per second per topic would bloat the shared table's metadata), so this
    /// may trail `position`; every raw commit records where the buffered ones begin, and a
    /// new owner re-reads from there, taking only dead letters from the re-read part.
    pub(super) dl_position: Offsets,
    pub(super) dl_buffer: Vec<DeadLetter>,
    pub(super) dl_ranges: Ranges,
    pub(super) dl_since: Option<Instant>,
    pub(super) dl_flushed: Instant,
    /// Dead letters rebuilt by a replay are committed at once, not a flush interval later:
    /// otherwise crashes in quick succession would each re-read the span again, and more.
    pub(super) dl_rebuilt: bool,
    /// The raw table's offsets at the last abandoned-partition check, and when it was.
    pub(super) guard: (Instant, Option<Offsets>),
    /// How often that check runs: longer than a session timeout, so a dead member's
    /// partitions have had their chance to move on; and never sooner than that after this
    /// member's assignment changed.
    pub(super) guard_every: Duration,
    /// The highest watermark the broker ever answered per partition (an answer below it is
    /// not trusted).
    pub(super) highest_seen: Offsets,
    /// What taking partitions costs until the lake has caught up with them.
    pub(super) recovery: Recovery,
}

impl Actor for ConsumerActor {
    type Msg = ConsumerMsg;
    type State = ConsumerState;
    type Arguments = ConsumerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: ConsumerArgs,
    ) -> Result<ConsumerState, ActorProcessingErr> {
        into_actor(start(myself, args).await)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: ConsumerMsg,
        state: &mut ConsumerState,
    ) -> Result<(), ActorProcessingErr> {
        into_actor(state.handle(myself, msg).await)
    }
}

/// What a committer's table has recorded for `topic` (a typed failure keeps its kind).
pub(super) async fn recorded(
    role: &'static str,
    committer: &ActorRef<CommitterMsg>,
    topic: &str,
) -> Result<Recorded, Error> {
    let answer: Reply<Recorded> =
        ractor::call_t!(committer, CommitterMsg::Recorded, 30_000, topic.to_string())
            .map_err(Error::call("reading committed offsets"))?;
    answer.map_err(|source| Error::Downstream {
        actor: role,
        source,
    })
}

async fn start(myself: ActorRef<ConsumerMsg>, args: ConsumerArgs) -> Result<ConsumerState, Error> {
    let topic = args.params.topic.clone();
    // The rebalance callback reads the lake's offsets for the partitions it receives; it runs
    // on our blocking polling thread, which may wait on the committers — or, when the consumer
    // is dropped with its actor and librdkafka serves a last rebalance while closing, on a
    // runtime worker, where a bare block_on panics (seen in the partition drill, taking the
    // group's supervisor with it): block_in_place hands that worker's tasks over first.
    let runtime = tokio::runtime::Handle::current();
    let (raw, dead_letters, t) = (args.raw.clone(), args.dead_letters.clone(), topic.clone());
    let lake = Box::new(move || {
        tokio::task::block_in_place(|| runtime.block_on(lake_positions(&raw, &dead_letters, &t)))
    });
    let consumer = Arc::new(
        kafka_consumer(
            &args.params,
            GroupContext::new(
                &topic,
                lake,
                args.params.kafka.start.for_topic(&topic).clone(),
                args.params.kafka.start.pins.clone(),
            ),
        )
        .map_err(Error::kafka("creating the consumer"))?,
    );
    let c = consumer.clone();
    let t = topic.clone();
    let partitions = tokio::task::spawn_blocking(move || {
        let partitions = topic_partitions(&c, &t)?;
        c.subscribe(&[&t]).map_err(Error::kafka("subscribing"))?;
        Ok::<_, Error>(partitions)
    })
    .await
    .map_err(Error::call("subscribing"))??;
    info!(%topic, group = %args.params.kafka.group, "consumer joined its group; partitions start where the lake says");
    // The first look is now: a restart after a crash (whose old member still holds the
    // partitions for a session timeout) is checked one interval later, not two.
    let initial = Some(
        recorded(super::RAW_COMMITTER, &args.raw, &topic)
            .await?
            .offsets,
    );
    args.params.metrics.group.reset(&topic);
    args.params.subscribers.know_partitions(&topic, &partitions);
    // Two sessions: a partition another member holds can stand still for one while a busy
    // broker or catalog delays its commits, and each false alarm rebalances the whole group
    // (bench ingest --instances 2: 26 rejoins in 3 minutes at one session).
    let guard_every = session_timeout(&args.params) * 2 + Duration::from_secs(1);
    myself
        .send_message(ConsumerMsg::Poll)
        .map_err(Error::call("starting to poll"))?;
    Ok(ConsumerState {
        args,
        consumer,
        partitions,
        position: Offsets::new(),
        dl_position: Offsets::new(),
        dl_buffer: Vec::new(),
        dl_ranges: Ranges::new(),
        dl_since: None,
        dl_flushed: Instant::now(),
        dl_rebuilt: false,
        guard: (Instant::now(), initial),
        guard_every,
        highest_seen: Offsets::new(),
        recovery: Recovery::default(),
    })
}

/// What both tables recorded for `topic`, for placing partitions.
pub(super) async fn lake_positions(
    raw: &ActorRef<CommitterMsg>,
    dead_letters: &ActorRef<CommitterMsg>,
    topic: &str,
) -> Result<LakePositions, Error> {
    let r = recorded(super::RAW_COMMITTER, raw, topic).await?;
    let d = recorded(super::DEAD_LETTER_COMMITTER, dead_letters, topic).await?;
    Ok(LakePositions {
        raw: r.offsets,
        dead_letters_from: r.dead_letters_from,
        dead_letters: d.offsets,
    })
}

impl ConsumerState {
    async fn handle(&mut self, myself: ActorRef<ConsumerMsg>, msg: ConsumerMsg) -> Handled {
        match msg {
            ConsumerMsg::Poll => {
                let shutting_down = self.args.params.shutdown.load(Ordering::Relaxed);
                if !shutting_down {
                    let (records, changes) = poll(self).await?;
                    for change in changes {
                        self.apply(change);
                    }
                    // Usually one part; more when the batch spans too many day partitions.
                    let mut from = 0;
                    while from < records.len() {
                        let (ranges, raw, dead, next) = self.split(&records, from).await?;
                        self.hand_off(ranges, raw, dead).await?;
                        from = next;
                    }
                    // A replay below the raw position commits nothing; it may still end a
                    // recovery.
                    self.recovery_progress();
                }
                let stopping = self.args.params.shutdown.load(Ordering::Relaxed);
                if !shutting_down {
                    self.confirm_drained().await;
                    self.check_abandoned().await?;
                }
                self.flush_dead_letters(stopping).await?;
                if stopping {
                    // Everything read has been committed above: stop cleanly.
                    info!(topic = %self.args.params.topic, "consumer drained");
                    myself.stop(Some("drained".into()));
                } else {
                    myself
                        .send_message(ConsumerMsg::Poll)
                        .map_err(Error::call("polling again"))?;
                }
            }
        }
        Ok(())
    }

    /// Buffer the dead letters, commit the raw rows, then hand them to the rollup actors.
    /// Each `call` waits for the commit: that is the back-pressure.
    async fn hand_off(&mut self, ranges: Ranges, raw: Rows, dead: Vec<DeadLetter>) -> Handled {
        let state = self;
        if !dead.is_empty() {
            state.dl_since.get_or_insert_with(Instant::now);
            state.dl_buffer.extend(dead);
        }
        if ranges.is_empty() {
            return Ok(());
        }
        let topic = state.args.params.topic.clone();
        let waited = Instant::now();
        let rows = Arc::new(raw);
        let report = commit_call(
            &state.args.progress,
            (super::RAW_COMMITTER, &state.args.raw),
            TableBatch {
                topic: topic.clone(),
                ranges: ranges.clone(),
                rows: rows.clone(),
                dead_letters_from: state.buffered_dead_letters(),
            },
        )
        .await?;
        // Parts another instance (or this one, before a freeze) got to first are not ours:
        // never delivered, read again from where the lake is.
        let (ranges, rows) = if report.fenced.is_empty() {
            (ranges, rows)
        } else {
            let mut kept = (*rows).clone();
            kept.retain(|p, _| !report.fenced.contains_key(&p));
            let ranges: Ranges = ranges
                .into_iter()
                .filter(|(p, _)| !report.fenced.contains_key(p))
                .collect();
            (ranges, Arc::new(kept))
        };
        state.args.params.subscribers.commits.landed();
        // Only now, with the batch durable in the raw table, may the rollup actors see it.
        if !ranges.is_empty() {
            state.args.params.subscribers.deliver(Delivery {
                topic: topic.clone(),
                kind: state.args.params.kind,
                ranges: ranges.clone(),
                rows,
            });
        }
        state
            .args
            .params
            .metrics
            .backpressure_seconds
            .with_label_values(&[&topic])
            .inc_by(waited.elapsed().as_secs_f64());
        for (partition, (_, end)) in ranges {
            state.position.insert(partition, end);
            state.caught_up(partition, end);
            if let Some(high) = cached_high_watermark(&state.consumer, &topic, partition) {
                state
                    .args
                    .params
                    .metrics
                    .consumer_lag
                    .with_label_values(&[&topic, &partition.to_string()])
                    .set((high - end).max(0));
            }
        }
        if !report.fenced.is_empty() {
            state.fenced(&report.fenced).await?;
        }
        state.args.progress.beat();
        Ok(())
    }

    /// Commit buffered dead letters (and the offsets they cover) when the buffer is big or
    /// old enough, or when stopping. Until then a restart re-reads them from Kafka.
    async fn flush_dead_letters(&mut self, force: bool) -> Handled {
        let state = self;
        if state.dl_ranges.is_empty() {
            return Ok(());
        }
        let batch = &state.args.params.batch;
        let due = state.dl_buffer.len() >= batch.dead_letter_flush_rows
            || state
                .dl_since
                .is_some_and(|t| t.elapsed() >= batch.dead_letter_flush_interval);
        // With no dead letters pending, the covered offsets still move now and then: raw
        // commits record where buffered dead letters begin, but a table written before they
        // did, with no new records since, relies on this to stop re-reading after a crash.
        let idle_due = state.dl_buffer.is_empty()
            && state.dl_since.is_none()
            && !state.dl_ranges.is_empty()
            // Every consumer of every instance commits this to the one dead-letter table: 30 ×
            // the flush interval, a minute at the default (at 6 × 2 s it was 8 of 45 catalog
            // conflicts in a minute with 3 instances).
            && state.dl_flushed.elapsed() >= batch.dead_letter_flush_interval * 30;
        if !(force || due || idle_due || state.dl_rebuilt) {
            return Ok(());
        }
        state.dl_rebuilt = false;
        let ranges = std::mem::take(&mut state.dl_ranges);
        let rows = std::mem::take(&mut state.dl_buffer);
        state.dl_since = None;
        state.dl_flushed = Instant::now();
        commit_call(
            &state.args.progress,
            (super::DEAD_LETTER_COMMITTER, &state.args.dead_letters),
            TableBatch {
                topic: state.args.params.topic.clone(),
                ranges: ranges.clone(),
                rows: Arc::new(Rows::DeadLetters(rows)),
                dead_letters_from: Offsets::new(),
            },
        )
        .await?;
        for (p, (_, end)) in ranges {
            let pos = state.dl_position.entry(p).or_insert(end);
            *pos = (*pos).max(end);
        }
        Ok(())
    }
}

/// Commit through a committer. While waiting the consumer is not busy itself: if the commit
/// hangs, the heartbeat must blame the committer, not its caller.
async fn commit_call(
    progress: &Progress,
    (role, committer): (&'static str, &ActorRef<CommitterMsg>),
    batch: TableBatch,
) -> Result<CommitReport, Error> {
    progress.set_busy(false);
    let result = ractor::call_t!(
        committer,
        CommitterMsg::Commit,
        COMMIT_CALL_TIMEOUT.as_millis() as u64,
        batch
    );
    progress.set_busy(true);
    result
        .map_err(Error::call("calling the committer"))?
        .map_err(|source| Error::Downstream {
            actor: role,
            source,
        })
}

/// Poll one batch on a blocking thread.
async fn poll(state: &ConsumerState) -> Result<(Polled, Vec<GroupChange>), Error> {
    let consumer = state.consumer.clone();
    let progress = state.args.progress.clone();
    let shutdown = state.args.params.shutdown.clone();
    let batch = state.args.params.batch.clone();
    let topic = state.args.params.topic.clone();
    let subscribers = state.args.params.subscribers.clone();
    let kind = state.args.params.kind;
    tokio::task::spawn_blocking(move || {
        let mut peek = |records: &Polled, shown: std::ops::Range<usize>| {
            if subscribers.watched() {
                subscribers.preview(preview(&topic, kind, (records, shown), &batch.limits));
            }
        };
        poll_batch(
            &consumer,
            &topic,
            &progress,
            &shutdown,
            batch.commit_interval,
            batch.max_batch_rows,
            &mut peek,
        )
    })
    .await
    .map_err(Error::call("polling"))?
}
