//! Window aggregator actor: one per KPI. Folds committed events into its KPI's engine, commits
//! closed windows exactly once (rows + checkpoint in one catalog commit), and tells the
//! detector. On start it rebuilds its open windows from the raw tables.

use std::collections::BTreeMap;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tracing::{debug, info, warn};

use super::checkpoint::first_checkpoint;
pub use super::checkpoint::AggCheckpoint;
use super::input::{
    advance, catch_up_rows, gap_rows, is_new, positions, raw_between, raw_table, split_partials,
    Folded,
};
use super::live::{fold_preview, Due, Previews, Provisional};
use super::messages::RollupMsg;
use super::RollupParams;
use crate::alerts::ClosedWindows;
use crate::error::{into_actor, Error, Handled};
use crate::events::{EventKind, Micros};
use crate::handoff::{Delivery, Preview, Slot};
use crate::kpis::{FoldStats, Kpi, KpiEngine, KpiRows};
use crate::lake::io::scan::{read_raw, resume_points};
use crate::lake::{Offsets, RollupCommitter};
use crate::schema::Rows;
use crate::supervision::Progress;
use crate::windows::EngineParams;

pub struct AggregatorActor;

pub struct AggregatorArgs {
    pub kpi: &'static dyn Kpi,
    pub engine: EngineParams,
    pub params: RollupParams,
    pub slot: Arc<Slot>,
    pub detector: Option<ActorRef<RollupMsg>>,
    pub progress: Arc<Progress>,
}

pub struct AggregatorState {
    kpi: &'static dyn Kpi,
    engine: Box<dyn KpiEngine>,
    committer: RollupCommitter,
    /// (kind, topic) per input, in the engine's topic order.
    inputs: Vec<(EventKind, String)>,
    /// Next offset per partition per input: everything before it has been folded.
    positions: Vec<Offsets>,
    params: RollupParams,
    slot: Arc<Slot>,
    detector: Option<ActorRef<RollupMsg>>,
    progress: Arc<Progress>,
    myself: ActorRef<RollupMsg>,
    previews: Previews,
    /// Per (input, partition): the next offset previewed, so a record is previewed once.
    previewed: BTreeMap<(usize, i32), i64>,
    /// When closed windows were last committed, and whether a tick is already set to emit the
    /// ones held back since (see [`emit_on_delivery`]).
    last_commit: Option<std::time::Instant>,
    flush_set: bool,
    /// The watermark and since when it has not moved; when it was last said what holds it.
    still: (Option<Micros>, std::time::Instant),
    held_said: Option<std::time::Instant>,
}

/// Whether a delivery should emit (and commit) the windows it closed now, or leave them to a
/// tick set `Err(wait)` from now. A catch-up closes windows with every batch, and each KPI
/// commit is a catalog commit; at most one per `gap` keeps a backlog from paying one per batch,
/// while steady traffic (a window closes once a minute) commits at once as before.
fn emit_on_delivery(
    last_commit: Option<std::time::Instant>,
    now: std::time::Instant,
    gap: std::time::Duration,
) -> Result<(), std::time::Duration> {
    match last_commit.map(|t| now.saturating_duration_since(t)) {
        Some(since) if since < gap => Err(gap - since),
        _ => Ok(()),
    }
}

fn now_micros() -> Micros {
    chrono::Utc::now().timestamp_micros()
}

impl Actor for AggregatorActor {
    type Msg = RollupMsg;
    type State = AggregatorState;
    type Arguments = AggregatorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<RollupMsg>,
        args: AggregatorArgs,
    ) -> Result<AggregatorState, ActorProcessingErr> {
        into_actor(start(myself, args).await)
    }

    async fn handle(
        &self,
        _myself: ActorRef<RollupMsg>,
        msg: RollupMsg,
        state: &mut AggregatorState,
    ) -> Result<(), ActorProcessingErr> {
        into_actor(state.handle(msg).await)
    }
}

async fn start(
    myself: ActorRef<RollupMsg>,
    args: AggregatorArgs,
) -> Result<AggregatorState, Error> {
    // First take the slot, then read the lake: a batch committed after our read is delivered
    // to us, one committed before it is in what we read.
    if args.params.live.is_some() {
        args.slot.set_previewing(myself.clone());
    } else {
        args.slot.set(myself.clone());
    }
    let p = &args.params;
    let table = args.kpi.table();
    let (committer, recorded) = RollupCommitter::open(
        p.lake.clone(),
        &args.kpi.spec(),
        p.hygiene.clone(),
        Some(p.metrics.clone()),
    )
    .await?;
    let checkpoint: AggCheckpoint = if recorded.state.is_null() {
        let table = committer.load().await?;
        let topics: Vec<String> = args
            .kpi
            .inputs()
            .iter()
            .map(|k| p.topic(*k).to_string())
            .collect();
        first_checkpoint(&table, &topics).await?
    } else {
        serde_json::from_value(recorded.state.clone())
            .map_err(|e| Error::Corrupt(format!("{table}: unreadable checkpoint: {e}")))?
    };
    let mut engine = args.kpi.engine(args.engine);
    engine.restore(checkpoint.emitted_until, checkpoint.watermark);
    let inputs: Vec<(EventKind, String)> = args
        .kpi
        .inputs()
        .iter()
        .map(|k| (*k, p.topic(*k).to_string()))
        .collect();
    let mut folded = Vec::new();
    let now = now_micros();
    let mut replayed = 0u64;
    for (i, (kind, topic)) in inputs.iter().enumerate() {
        let raw = raw_table(&p.lake, *kind).await?;
        let position = positions(&raw, topic)?;
        let from = checkpoint.replay.get(topic).cloned().unwrap_or_default();
        let rows = read_raw(&raw, *kind, &resume_points(&from, &position), false).await?;
        let stats = engine.fold_rows(i, &rows, now, &|_, _| true);
        replayed += stats.folded + stats.late + stats.skewed;
        p.slots.standing.set(topic, args.kpi.name(), &position);
        folded.push(position);
    }
    info!(
        table,
        replayed,
        emitted_until = ?checkpoint.emitted_until,
        "aggregator rebuilt its open windows from the raw tables"
    );
    myself.send_interval(p.tick, || RollupMsg::Tick);
    Ok(AggregatorState {
        kpi: args.kpi,
        engine,
        committer,
        inputs,
        positions: folded,
        params: args.params,
        slot: args.slot,
        detector: args.detector,
        progress: args.progress,
        myself,
        previews: Previews::default(),
        previewed: BTreeMap::new(),
        last_commit: None,
        flush_set: false,
        still: (None, std::time::Instant::now()),
        held_said: None,
    })
}

impl AggregatorState {
    async fn handle(&mut self, msg: RollupMsg) -> Handled {
        let progress = self.progress.clone();
        let _busy = progress.busy();
        self.params.faults.at_handler(self.kpi.name()).await?;
        match msg {
            RollupMsg::Ingest(delivery) => {
                self.slot.done();
                self.catch_up_if_skipped().await?;
                self.ingest(&delivery).await?;
                let gap = self.params.tick;
                match emit_on_delivery(self.last_commit, std::time::Instant::now(), gap) {
                    Ok(()) => self.emit(now_micros()).await?,
                    Err(wait) if !self.flush_set => {
                        self.flush_set = true;
                        self.myself.send_after(wait, || RollupMsg::Tick);
                    }
                    Err(_) => {}
                }
                self.forget_committed_previews();
                self.push_provisional();
            }
            RollupMsg::Preview(preview) => {
                self.slot.preview_done();
                self.preview(&preview);
                self.push_provisional();
            }
            RollupMsg::PushProvisional => {
                self.previews.timer_fired();
                self.push_provisional();
            }
            RollupMsg::Tick => {
                self.flush_set = false;
                self.catch_up_if_skipped().await?;
                self.emit(now_micros()).await?;
                if let Some(live) = &self.params.live {
                    self.slot.set_watched(live.sink.wanted());
                }
                self.push_provisional();
            }
            RollupMsg::Closed(_) => {}
            RollupMsg::Sync(reply) => {
                // Stopping: windows a delivery held back for the tick are committed now, as
                // they would have been without the pacing.
                if self.flush_set {
                    self.flush_set = false;
                    self.emit(now_micros()).await?;
                }
                let _ = reply.send(());
            }
        }
        Ok(())
    }

    /// Deliveries were skipped (we were behind): read what they carried from the raw tables
    /// before any window may close, or a topic would look idle while its events wait.
    async fn catch_up_if_skipped(&mut self) -> Handled {
        if !self.slot.take_skipped() {
            return Ok(());
        }
        let now = now_micros();
        for i in 0..self.inputs.len() {
            let (kind, topic) = self.inputs[i].clone();
            let (rows, recorded) =
                catch_up_rows(&self.params.lake, kind, &topic, &self.positions[i]).await?;
            let stats = self.engine.fold_rows(i, &rows, now, &|_, _| true);
            for (p, end) in recorded {
                let pos = self.positions[i].entry(p).or_insert(end);
                *pos = (*pos).max(end);
            }
            let standing = &self.params.slots.standing;
            standing.set(&topic, self.kpi.name(), &self.positions[i]);
            debug!(
                table = self.kpi.table(),
                topic,
                rows = stats.folded,
                "caught up after skipped deliveries"
            );
        }
        Ok(())
    }

    async fn ingest(&mut self, d: &Delivery) -> Handled {
        let Some(i) = self.inputs.iter().position(|(_, t)| *t == d.topic) else {
            return Ok(());
        };
        let now = now_micros();
        let mut stats = FoldStats::default();
        // A gap means deliveries were skipped: read them back from the raw table first.
        let kind = self.inputs[i].0;
        if let Rows::Partials(_, parts) = &*d.rows {
            // Other instances' partitions, folded there: merge their partials.
            let (raw, merge) = split_partials(&self.positions[i], &d.ranges);
            let m = &self.params.metrics;
            let labels = [d.topic.as_str(), self.kpi.name()];
            if !raw.is_empty() {
                let rows = raw_between(&self.params.lake, kind, &raw).await?;
                m.partials_raw
                    .with_label_values(&[d.topic.as_str(), "aggregator"])
                    .inc_by(rows.len() as u64);
                stats.add(self.engine.fold_rows(i, &rows, now, &|_, _| true));
            }
            let s = self
                .engine
                .fold_parts(i, parts, now, &|p, _| merge.contains(&p))
                .map_err(Error::Corrupt)?;
            m.partials_merged
                .with_label_values(&labels)
                .inc_by(s.folded + s.dropped);
            stats.add(s);
        } else if let Some(rows) =
            gap_rows(&self.params.lake, kind, &self.positions[i], &d.ranges).await?
        {
            let s = self.engine.fold_rows(i, &rows, now, &|_, _| true);
            debug!(
                table = self.kpi.table(),
                rows = s.folded,
                "filled a delivery gap from the raw table"
            );
            stats.add(s);
        }
        let positions = &self.positions[i];
        let s = self
            .engine
            .fold_rows(i, &d.rows, now, &|p, o| is_new(positions, p, o));
        stats.add(s);
        advance(&mut self.positions[i], &d.ranges);
        let standing = &self.params.slots.standing;
        standing.set(&d.topic, self.kpi.name(), &self.positions[i]);
        if self.kpi.counts_late().contains(&d.kind) {
            let m = &self.params.metrics;
            m.late_events
                .with_label_values(&[&d.topic])
                .inc_by(stats.late);
            m.clock_skew_events
                .with_label_values(&[&d.topic])
                .inc_by(stats.skewed);
            m.clock_ahead_events
                .with_label_values(&[&d.topic])
                .inc_by(stats.ahead);
        }
        let refused = crate::kpis::take_refused_keys();
        if refused > 0 {
            self.params
                .metrics
                .kpi_keys_refused
                .with_label_values(&[] as &[&str])
                .inc_by(refused);
            warn!(refused, "a KPI pane reached windows.max_pane_key_bytes: its windows undercount distinct keys");
        }
        Ok(())
    }

    /// Fold a batch that is about to be committed into the preview panes.
    fn preview(&mut self, preview: &Preview) {
        let d = &preview.0;
        let Some(live) = &self.params.live else {
            return;
        };
        let Some(i) = self.inputs.iter().position(|(_, t)| *t == d.topic) else {
            return;
        };
        if !live.sink.wanted() {
            return;
        }
        fold_preview(
            &mut *self.engine,
            i,
            d,
            &self.positions[i],
            &mut self.previewed,
        );
        self.previews.add(std::time::Instant::now(), d.clone());
    }

    /// Previews the last commit covered are now in the exact panes: rebuild the preview panes
    /// from the ones still ahead.
    fn forget_committed_previews(&mut self) {
        self.previews.touch();
        let inputs = &self.inputs;
        let positions = &self.positions;
        let at = |topic: &str| {
            let i = inputs.iter().position(|(_, t)| t == topic)?;
            positions.get(i)
        };
        if !self.previews.prune(std::time::Instant::now(), at) {
            return;
        }
        self.engine.clear_ahead();
        self.previewed.clear();
        for d in self.previews.pending() {
            if let Some(i) = inputs.iter().position(|(_, t)| *t == d.topic) {
                fold_preview(&mut *self.engine, i, d, &positions[i], &mut self.previewed);
            }
        }
    }

    /// Send the open windows' running values to the live page, at most every `live.every`.
    fn push_provisional(&mut self) {
        let Some(live) = &self.params.live else {
            return;
        };
        let now = std::time::Instant::now();
        match self.previews.due(now, live.every) {
            Due::No => {}
            Due::After(wait) => {
                self.myself.send_after(wait, || RollupMsg::PushProvisional);
            }
            Due::Now => {
                self.previews.pushed(now);
                let wanted = live.sink.wanted();
                self.slot.set_watched(wanted);
                if wanted {
                    live.sink.provisional(Provisional {
                        kpi: self.kpi,
                        emitted_until: self.engine.emitted_until(),
                        rows: self.engine.open_rows(),
                        at: now_micros(),
                        newest_event: self.engine.newest_event(),
                    });
                }
            }
        }
    }

    async fn emit(&mut self, now: Micros) -> Handled {
        let source = Folded {
            topics: self.inputs.iter().map(|(_, t)| t.as_str()).collect(),
            positions: &self.positions,
            source: &self.params.slots.source,
            now,
        };
        let advanced = self.engine.advance(now, &source);
        self.report_watermark(now);
        self.say_what_holds(now);
        let Some(emitted) = advanced else {
            return Ok(());
        };
        self.previews.touch();
        let table = self.kpi.table();
        let rows = KpiRows {
            kpi: self.kpi,
            rows: emitted.rows,
        };
        if !rows.rows.is_empty() {
            let checkpoint = serde_json::to_value(self.checkpoint())
                .map_err(|e| Error::Corrupt(format!("{table}: encoding the checkpoint: {e}")))?;
            self.committer.commit(&rows, checkpoint).await?;
            self.params.slots.commits.landed();
            self.last_commit = Some(std::time::Instant::now());
            let windows = rows.windows();
            self.params
                .metrics
                .windows_emitted
                .with_label_values(&[table])
                .inc_by(windows);
            debug!(table, windows, until = emitted.until, "windows emitted");
        }
        if let Some(detector) = &self.detector {
            let geometry = self.engine.params().windowing;
            let _ = detector.cast(RollupMsg::Closed(ClosedWindows {
                kpi: self.kpi,
                until: emitted.until,
                size: geometry.size,
                slide: geometry.slide,
                rows: rows.rows,
            }));
        }
        Ok(())
    }

    /// Windows that stop closing while events arrive are the first thing an operator sees
    /// of a stuck partition: once a minute, say which partition holds the watermark and what
    /// this instance knows of it.
    fn say_what_holds(&mut self, now: Micros) {
        const QUIET: std::time::Duration = std::time::Duration::from_secs(60);
        let wm = self.engine.watermark();
        if wm != self.still.0 {
            self.still = (wm, std::time::Instant::now());
            return;
        }
        if wm.is_none()
            || self.still.1.elapsed() < QUIET
            || self.held_said.is_some_and(|t| t.elapsed() < QUIET)
        {
            return;
        }
        self.held_said = Some(std::time::Instant::now());
        let source = Folded {
            topics: self.inputs.iter().map(|(_, t)| t.as_str()).collect(),
            positions: &self.positions,
            source: &self.params.slots.source,
            now,
        };
        let Some(h) = self.engine.holding(now, &source) else {
            return;
        };
        let topic = self.inputs.get(h.topic).map_or("?", |(_, t)| t.as_str());
        let position = h
            .partition
            .and_then(|p| self.positions.get(h.topic)?.get(&p).copied());
        let confirmed = h
            .partition
            .and_then(|p| self.params.slots.source.get(topic, p));
        info!(
            table = self.kpi.table(),
            topic,
            partition = ?h.partition,
            still_for_s = self.still.1.elapsed().as_secs(),
            newest_event_behind_s = h.max_event.map(|e| (now - e) / 1_000_000),
            silent_for_s = h.silent_for / 1_000_000,
            folded_to = ?position,
            source = ?confirmed,
            "windows held back: the watermark waits for this partition"
        );
    }

    /// The KPI that counts a topic's late events also reports how far its watermark trails
    /// the clock.
    fn report_watermark(&self, now: Micros) {
        let Some(wm) = self.engine.watermark() else {
            return;
        };
        for (kind, topic) in &self.inputs {
            if self.kpi.counts_late().contains(kind) {
                self.params
                    .metrics
                    .watermark_lag
                    .with_label_values(&[topic])
                    .set((now - wm) as f64 / 1e6);
            }
        }
    }

    fn checkpoint(&self) -> AggCheckpoint {
        let mut replay: BTreeMap<String, Offsets> = BTreeMap::new();
        for (i, (_, topic)) in self.inputs.iter().enumerate() {
            replay.insert(topic.clone(), self.positions[i].clone());
        }
        for ((i, p), o) in self.engine.replay_offsets() {
            if let Some((_, topic)) = self.inputs.get(i) {
                let e = replay
                    .entry(topic.clone())
                    .or_default()
                    .entry(p)
                    .or_insert(o);
                *e = (*e).min(o);
            }
        }
        AggCheckpoint {
            emitted_until: self.engine.emitted_until(),
            watermark: self.engine.watermark(),
            replay,
        }
    }
}

#[cfg(test)]
mod tests;
