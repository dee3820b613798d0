//! Partial windows, the writing side: on every instance but the rollup owner, the batches its
//! consumers commit are folded, partition by partition, into per-pane partials of every KPI
//! and committed to the partials table with the raw tables' offset ledger. The owner merges
//! them ([`super::feed`]) instead of reading other instances' raw rows back and folding every
//! event again. The owner folds its own partitions itself and writes no partials: it only
//! maintains the table.

pub mod chain;
pub mod read;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tracing::{debug, warn};

use super::input::{positions, raw_table};
use super::messages::RollupMsg;
use super::RollupParams;
use crate::error::{into_actor, Error, Handled};
use crate::events::EventKind;
use crate::handoff::{Delivery, Slot};
use crate::kpis::{Kpi, KpiParts};
use crate::lake::maintenance::IDLE_ROUND;
use crate::lake::{OffsetRule, Ranges, TableBatch, TableCommitter};
use crate::schema::partials::{partials_spec, PartRow};
use crate::schema::Rows;
use crate::supervision::{ChildInfo, ChildSpecs, Progress, Spawner};
use chain::{on_commit, on_delivery, Chain, Plan, Step};

pub const GROUP: &str = "partials";
pub const WRITER: &str = "partials_writer";

/// A mark's `events` when its range was not folded: read it from the raw table.
pub const GAP: i64 = -1;

/// The group of the one writer (every instance runs it; standby never: the owner's writer
/// maintains the table).
pub struct PartialsGroup(pub RollupParams, pub Arc<Slot>);

#[async_trait::async_trait]
impl ChildSpecs for PartialsGroup {
    async fn spawn(&self, s: &mut Spawner) -> Result<(), Error> {
        let (params, slot) = (self.0.clone(), self.1.clone());
        s.spawn(WRITER, Writer, |progress| WriterArgs {
            params,
            slot,
            progress,
        })
        .await?;
        Ok(())
    }

    /// What was folded is committed before the process stops (the next writer of those
    /// partitions would otherwise leave them as gaps for the owner to read from raw).
    async fn drain(&self, children: &[ChildInfo]) {
        for child in children {
            let actor: ActorRef<RollupMsg> = child.cell.clone().into();
            let _ = ractor::call_t!(actor, RollupMsg::Sync, 10_000);
        }
    }
}

pub struct Writer;

pub struct WriterArgs {
    pub params: RollupParams,
    pub slot: Arc<Slot>,
    pub progress: Arc<Progress>,
}

pub struct WriterState {
    params: RollupParams,
    slot: Arc<Slot>,
    progress: Arc<Progress>,
    /// One per topic kind: each topic's partials have their own table.
    committers: BTreeMap<EventKind, TableCommitter>,
    /// Every KPI's partial builder.
    kpis: Vec<(&'static dyn Kpi, Box<dyn KpiParts>)>,
    /// Per (topic, partition): what was folded since the last commit.
    chains: BTreeMap<(String, i32), Chain>,
    last_commit: std::time::Instant,
}

impl Actor for Writer {
    type Msg = RollupMsg;
    type State = WriterState;
    type Arguments = WriterArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<RollupMsg>,
        args: WriterArgs,
    ) -> Result<WriterState, ActorProcessingErr> {
        args.slot.set(myself.clone());
        let p = &args.params;
        let mut committers = BTreeMap::new();
        for kind in EventKind::ALL {
            let committer = into_actor(
                TableCommitter::open(
                    p.lake.clone(),
                    &partials_spec(kind),
                    OffsetRule::Strict,
                    p.hygiene.clone(),
                )
                .await
                .map_err(Error::from),
            )?
            .with_metrics(p.metrics.clone());
            committers.insert(kind, committer);
        }
        myself.send_interval(p.tick, || RollupMsg::Tick);
        let kpis = p.kpis.iter().map(|(k, e)| (*k, k.parts(*e))).collect();
        Ok(WriterState {
            params: args.params,
            slot: args.slot,
            progress: args.progress,
            committers,
            kpis,
            chains: BTreeMap::new(),
            last_commit: std::time::Instant::now(),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<RollupMsg>,
        msg: RollupMsg,
        state: &mut WriterState,
    ) -> Result<(), ActorProcessingErr> {
        let progress = state.progress.clone();
        let _busy = progress.busy();
        into_actor(state.handle(msg).await)
    }
}

/// How often partials are committed: every tick would be a catalog commit per topic per
/// second per instance; the owner's windows wait for lateness anyway.
fn commit_every(tick: Duration) -> Duration {
    (tick * 2).max(Duration::from_millis(500))
}

impl WriterState {
    async fn handle(&mut self, msg: RollupMsg) -> Handled {
        match msg {
            RollupMsg::Ingest(d) => {
                self.slot.done();
                if self.params.ownership.is_owner() {
                    self.forget();
                } else {
                    self.fold(&d)?;
                }
            }
            RollupMsg::Tick => {
                if self.params.ownership.is_owner() {
                    self.forget();
                    if self.last_commit.elapsed() >= IDLE_ROUND {
                        for committer in self.committers.values_mut() {
                            committer.idle_maintenance().await;
                        }
                        self.last_commit = std::time::Instant::now();
                    }
                } else if self.last_commit.elapsed() >= commit_every(self.params.tick) {
                    self.mark_skipped().await?;
                    self.commit().await?;
                }
            }
            RollupMsg::Sync(reply) => {
                if !self.params.ownership.is_owner() {
                    self.commit().await?;
                }
                let _ = reply.send(());
            }
            RollupMsg::Preview(_) | RollupMsg::PushProvisional | RollupMsg::Closed(_) => {}
        }
        Ok(())
    }

    /// The owner folds everything itself: what this instance folded before it became the
    /// owner is not needed (its rebuild reads the raw tables).
    fn forget(&mut self) {
        let chains = std::mem::take(&mut self.chains);
        for (topic, partition) in chains.keys() {
            self.discard(topic, *partition);
        }
    }

    fn input(&self, kind: EventKind) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.kpis
            .iter()
            .enumerate()
            .filter_map(move |(k, (kpi, _))| {
                kpi.inputs().iter().position(|i| *i == kind).map(|i| (k, i))
            })
    }

    fn discard(&mut self, topic: &str, partition: i32) {
        let Some(kind) = self.kind_of(topic) else {
            return;
        };
        let inputs: Vec<_> = self.input(kind).collect();
        for (k, i) in inputs {
            let _ = self.kpis[k].1.take(i, partition);
        }
    }

    /// The chains of `topic`'s partitions.
    fn partitions_of(&self, topic: &str) -> Vec<(String, i32)> {
        self.chains
            .keys()
            .filter(|(t, _)| t == topic)
            .cloned()
            .collect()
    }

    fn kind_of(&self, topic: &str) -> Option<EventKind> {
        EventKind::ALL
            .into_iter()
            .find(|k| self.params.topic(*k) == topic)
    }

    /// The open panes of `partition`, as rows covering `[from, to)`.
    fn seal(
        &mut self,
        topic: &str,
        partition: i32,
        from: i64,
        to: i64,
    ) -> Result<Vec<PartRow>, Error> {
        let mut rows = vec![PartRow::mark(topic, partition, from, to)];
        let Some(kind) = self.kind_of(topic) else {
            return Ok(rows);
        };
        let inputs: Vec<_> = self.input(kind).collect();
        for (k, i) in inputs {
            let (kpi, parts) = &mut self.kpis[k];
            let panes = parts.take(i, partition).map_err(Error::Corrupt)?;
            rows.extend(
                panes
                    .into_iter()
                    .map(|o| o.row(kpi.name(), topic, partition, (from, to))),
            );
        }
        Ok(rows)
    }

    fn fold(&mut self, d: &Delivery) -> Handled {
        let mut from: BTreeMap<i32, i64> = BTreeMap::new();
        for (&p, &(start, end)) in &d.ranges {
            let key = (d.topic.clone(), p);
            match on_delivery(self.chains.get(&key), start, end) {
                Step::Skip => continue,
                Step::Begin => {
                    self.chains.insert(key.clone(), Chain::at(start));
                    from.insert(p, start);
                }
                Step::Extend { from: f } => {
                    from.insert(p, f);
                }
                Step::Seal { gap } => {
                    let open_from = self.chains.get(&key).map_or(gap.0, |c| c.open_from);
                    let mut sealed = if open_from < gap.0 {
                        self.seal(&d.topic, p, open_from, gap.0)?
                    } else {
                        Vec::new()
                    };
                    sealed.push(gap_mark(&d.topic, p, gap));
                    if let Some(c) = self.chains.get_mut(&key) {
                        c.sealed.extend(sealed);
                        c.open_from = start;
                    }
                    from.insert(p, start);
                }
            }
            if let Some(c) = self.chains.get_mut(&key) {
                c.end = c.end.max(end);
            }
        }
        if from.is_empty() {
            return Ok(());
        }
        let keep = |p: i32, o: i64| {
            from.get(&p).is_some_and(|f| o >= *f)
                && d.ranges.get(&p).is_some_and(|(_, end)| o < *end)
        };
        let inputs: Vec<_> = self.input(d.kind).collect();
        let first = inputs.first().map_or(0, |(k, _)| *k);
        for (k, i) in inputs {
            let stats = self.kpis[k].1.fold_rows(i, &d.rows, &keep);
            if k == first {
                self.params
                    .metrics
                    .partials_written
                    .with_label_values(&[&d.topic])
                    .inc_by(stats.folded + stats.skewed);
            }
            if stats.skewed > 0 && self.kpis[k].0.counts_late().contains(&d.kind) {
                self.params
                    .metrics
                    .clock_skew_events
                    .with_label_values(&[&d.topic])
                    .inc_by(stats.skewed);
            }
        }
        Ok(())
    }

    /// Deliveries were skipped (we were behind): what they carried is a gap up to what the
    /// raw table holds, for the owner to read from there.
    async fn mark_skipped(&mut self) -> Handled {
        if !self.slot.take_skipped() {
            return Ok(());
        }
        for kind in EventKind::ALL {
            let topic = self.params.topic(kind).to_string();
            let table = raw_table(&self.params.lake, kind).await?;
            let recorded = positions(&table, &topic)?;
            for key in self.partitions_of(&topic) {
                let Some(&raw) = recorded.get(&key.1) else {
                    continue;
                };
                let Some(c) = self.chains.get(&key) else {
                    continue;
                };
                let (open_from, end) = (c.open_from, c.end);
                if raw <= end {
                    continue;
                }
                let mut sealed = if open_from < end {
                    self.seal(&topic, key.1, open_from, end)?
                } else {
                    Vec::new()
                };
                sealed.push(gap_mark(&topic, key.1, (end, raw)));
                if let Some(c) = self.chains.get_mut(&key) {
                    c.sealed.extend(sealed);
                    c.open_from = raw;
                    c.end = raw;
                }
            }
        }
        Ok(())
    }

    fn committer(&mut self, kind: EventKind) -> Result<&mut TableCommitter, Error> {
        self.committers
            .get_mut(&kind)
            .ok_or_else(|| Error::Unrecoverable(format!("no partials committer for {kind:?}")))
    }

    /// Commit every chain, one catalog commit per topic (each to its topic's table).
    async fn commit(&mut self) -> Handled {
        self.last_commit = std::time::Instant::now();
        for kind in EventKind::ALL {
            let topic = self.params.topic(kind).to_string();
            let keys = self.partitions_of(&topic);
            if keys.is_empty() {
                continue;
            }
            let recorded = self.committer(kind)?.committed(&topic).await?.offsets;
            let mut rows = Vec::new();
            let mut ranges = Ranges::new();
            for key in keys {
                let p = key.1;
                let Some(c) = self.chains.get(&key) else {
                    continue;
                };
                match on_commit(c, recorded.get(&p).copied()) {
                    Plan::Idle => {}
                    Plan::Drop => {
                        debug!(%topic, partition = p, "partials covered by another writer; starting again");
                        self.chains.remove(&key);
                        self.discard(&topic, p);
                    }
                    Plan::Commit { from, gap } => {
                        let (open_from, end) = (c.open_from, c.end);
                        let mut sealed = self
                            .chains
                            .get_mut(&key)
                            .map(|c| std::mem::take(&mut c.sealed))
                            .unwrap_or_default();
                        if let Some(g) = gap {
                            sealed.insert(0, gap_mark(&topic, p, g));
                        }
                        if open_from < end {
                            sealed.extend(self.seal(&topic, p, open_from, end)?);
                        }
                        rows.extend(sealed);
                        ranges.insert(p, (from, end));
                        self.chains.insert(key, Chain::at(end));
                    }
                }
            }
            if ranges.is_empty() {
                continue;
            }
            let count = rows.len();
            let report = self
                .committer(kind)?
                .commit(TableBatch {
                    topic: topic.clone(),
                    ranges,
                    rows: Arc::new(Rows::Partials(kind, rows)),
                    dead_letters_from: Default::default(),
                })
                .await?;
            for p in report.fenced.keys() {
                // Another writer got there between our read and our commit: ours is dropped.
                warn!(%topic, partition = p, "partials fenced by another writer");
                self.chains.remove(&(topic.clone(), *p));
                self.discard(&topic, *p);
            }
            self.params.slots.commits.landed();
            debug!(%topic, rows = count, "partials committed");
        }
        Ok(())
    }
}

fn gap_mark(topic: &str, partition: i32, (from, to): (i64, i64)) -> PartRow {
    PartRow {
        events: GAP,
        ..PartRow::mark(topic, partition, from, to)
    }
}
