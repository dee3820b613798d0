//! What the consumer group changes, applied by the consumer actor: partitions assigned
//! (positions from the lake) or revoked (everything held for them dropped), partitions the
//! lake is already past after a commit (fenced: read again from the lake), and the check for
//! partitions nobody reads (leave and rejoin the group).

use std::collections::BTreeSet;
use std::time::Instant;

use rdkafka::consumer::Consumer;
use tracing::{info, warn};

use super::consumer::{lake_positions, recorded, ConsumerState};
use super::group::{abandoned, starts_from, GroupChange, Start};
use super::kafka::{high_watermarks, seek_to};
use crate::error::{Error, Handled};
use crate::lake::Offsets;

impl ConsumerState {
    /// The lake is past our batch on these partitions: count it and read them again from where
    /// the lake is, exactly as if they had just been assigned (dead letters included).
    pub(super) async fn fenced(&mut self, fenced: &Offsets) -> Handled {
        let topic = self.args.params.topic.clone();
        self.args
            .params
            .metrics
            .fenced_batches
            .with_label_values(&[&topic])
            .inc_by(fenced.len() as u64);
        warn!(%topic, ?fenced, "another writer is past our batch on these partitions; dropped our part, reading again from the lake's offsets");
        let lake = lake_positions(&self.args.raw, &self.args.dead_letters, &topic).await?;
        let consumer = self.consumer.clone();
        let partitions: Vec<i32> = fenced.keys().copied().collect();
        let start = self.args.params.kafka.start.for_topic(&topic).clone();
        let pins = self.args.params.kafka.start.pins.clone();
        let (starts, gone) = tokio::task::spawn_blocking(move || {
            // Partitions already taken from us wait for their revocation; the others are read
            // again from the lake. A seek that fails is an error (the consumer restarts and
            // rejoins): never read on from a stale position.
            let held = consumer
                .assignment()
                .map_err(Error::kafka("reading the assignment"))?;
            let (ours, gone): (Vec<i32>, Vec<i32>) = partitions.into_iter().partition(|p| {
                held.elements_for_topic(&topic)
                    .iter()
                    .any(|e| e.partition() == *p)
            });
            let starts = starts_from(&consumer, &topic, &ours, &lake, &start, &pins)?;
            seek_to(&consumer, &topic, &starts)?;
            Ok::<_, Error>((starts, gone))
        })
        .await
        .map_err(Error::call("seeking"))??;
        self.take_over(&starts);
        for p in gone {
            self.forget(p);
        }
        Ok(())
    }

    /// Start `starts` afresh: positions from the lake, nothing of theirs buffered.
    fn take_over(&mut self, starts: &[Start]) {
        for s in starts {
            self.forget(s.partition);
            self.position.insert(s.partition, s.raw);
            self.dl_position.insert(s.partition, s.dead_letters);
        }
        self.recovery.assigned(starts, Instant::now());
        self.args
            .params
            .metrics
            .group
            .recovering(&self.args.params.topic);
        let done = self.recovery.finished(Instant::now());
        self.report_recovery(done);
    }

    /// The raw table now holds `partition` up to `position`: the recovery may be over.
    pub(super) fn caught_up(&mut self, partition: i32, position: i64) {
        if self.recovery.running() {
            let done = self.recovery.committed(partition, position, Instant::now());
            self.report_recovery(done);
        }
    }

    /// Report the recovery if what it waited for has been read and committed.
    pub(super) fn recovery_progress(&mut self) {
        if self.recovery.running() {
            let done = self.recovery.finished(Instant::now());
            self.report_recovery(done);
        }
    }

    fn report_recovery(&mut self, done: Option<super::recovery::Recovered>) {
        let Some(done) = done else { return };
        self.dl_rebuilt |= done.reread > 0;
        let topic = &self.args.params.topic;
        let metrics = &self.args.params.metrics;
        metrics
            .recovery_seconds
            .with_label_values(&[topic])
            .set(done.took_ms as f64 / 1000.0);
        info!(%topic, partitions = ?done.partitions, took_ms = done.took_ms, reread = done.reread, read = done.read, "caught up with the partitions taken");
        metrics.group.recovered(topic, done);
    }

    /// Per partition, the lowest offset of a dead letter not yet committed (recorded with
    /// every raw commit: where a new owner must start rebuilding them).
    pub(super) fn buffered_dead_letters(&self) -> crate::lake::Offsets {
        let mut from = crate::lake::Offsets::new();
        for d in &self.dl_buffer {
            let o = from.entry(d.source.partition).or_insert(d.source.offset);
            *o = (*o).min(d.source.offset);
        }
        from
    }

    /// Drop everything held for `partition` (uncommitted dead letters included: whoever reads
    /// it next rebuilds them from the dead-letter table's offset).
    fn forget(&mut self, partition: i32) {
        self.position.remove(&partition);
        self.dl_position.remove(&partition);
        self.dl_ranges.remove(&partition);
        self.dl_buffer.retain(|d| d.source.partition != partition);
        if self.dl_buffer.is_empty() {
            self.dl_since = None;
        }
    }

    pub(super) fn apply(&mut self, change: GroupChange) {
        // The group just moved partitions: their new holders need a whole check interval to
        // start and commit before a partition that stood still counts as abandoned.
        self.guard.0 = Instant::now();
        let topic = self.args.params.topic.clone();
        let metrics = &self.args.params.metrics;
        match change {
            GroupChange::Assigned(starts) => {
                metrics
                    .rebalances
                    .with_label_values(&[&topic, "assigned"])
                    .inc_by(starts.len() as u64);
                metrics
                    .group
                    .assigned(&topic, starts.iter().map(|s| s.partition));
                self.take_over(&starts);
            }
            GroupChange::Revoked(partitions) => {
                metrics
                    .rebalances
                    .with_label_values(&[&topic, "revoked"])
                    .inc_by(partitions.len() as u64);
                metrics.group.revoked(&topic, &partitions);
                self.recovery.revoked(&partitions);
                let done = self.recovery.finished(Instant::now());
                self.report_recovery(done);
                for p in partitions {
                    self.forget(p);
                    let _ = self
                        .args
                        .params
                        .metrics
                        .consumer_lag
                        .remove_label_values(&[&topic, &p.to_string()]);
                }
            }
        }
    }

    /// When this instance does not hold every partition: if one nobody here reads has records
    /// on the broker and has not moved in the lake since the last check, leave and rejoin the
    /// group (see [`abandoned`]).
    pub(super) async fn check_abandoned(&mut self) -> Handled {
        if self.guard.0.elapsed() < self.guard_every {
            return Ok(());
        }
        self.guard.0 = Instant::now();
        let owned: BTreeSet<i32> = self.position.keys().copied().collect();
        if self.partitions.iter().all(|p| owned.contains(p)) {
            self.guard.1 = None;
            return Ok(());
        }
        let topic = self.args.params.topic.clone();
        let lake = recorded(super::RAW_COMMITTER, &self.args.raw, &topic)
            .await?
            .offsets;
        let consumer = self.consumer.clone();
        let (t, partitions) = (topic.clone(), self.partitions.clone());
        let highs =
            tokio::task::spawn_blocking(move || high_watermarks(&consumer, &t, &partitions))
                .await
                .map_err(Error::call("asking watermarks"))??;
        let stuck = match &self.guard.1 {
            Some(before) => abandoned(&owned, &highs, before, &lake),
            None => Vec::new(),
        };
        if stuck.is_empty() {
            self.guard.1 = Some(lake);
            return Ok(());
        }
        warn!(%topic, ?stuck, "partitions nobody reads (the group did not hand them on); rejoining the group");
        self.args
            .params
            .metrics
            .group_rejoins
            .with_label_values(&[&topic])
            .inc();
        self.guard.1 = None;
        let consumer = self.consumer.clone();
        tokio::task::spawn_blocking(move || {
            consumer.unsubscribe();
            consumer.subscribe(&[&topic])
        })
        .await
        .map_err(Error::call("rejoining"))?
        .map_err(Error::kafka("rejoining the group"))?;
        Ok(())
    }
}
