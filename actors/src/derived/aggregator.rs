//! Window aggregator actor: one per KPI table. Folds committed events into its engine,
//! commits closed windows exactly once (rows + checkpoint in one catalog commit), and tells
//! the detector. On start it rebuilds its open windows from the raw tables.

use std::collections::BTreeMap;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde::{Deserialize, Serialize};
use tracing::{debug, info};

use super::input::{advance, catch_up_rows, gap_rows, is_new};
use super::kpi::{AnyEngine, FoldStats, KpiKind};
use super::messages::{Closed, Delivery, DerivedMsg};
use super::slots::Slot;
use super::DerivedParams;
use crate::events::{EventKind, Micros};
use crate::lake::chain::DerivedCommitter;
use crate::lake::commit::recorded_offsets;
use crate::lake::scan::{read_raw, resume_points};
use crate::lake::Offsets;
use crate::windows::EngineParams;

/// What a KPI table records with each commit.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AggCheckpoint {
    pub emitted_until: Option<Micros>,
    pub watermark: Option<Micros>,
    /// Per topic: the offsets from which the open windows can be rebuilt.
    pub replay: BTreeMap<String, Offsets>,
}

pub struct AggregatorActor;

pub struct AggregatorArgs {
    pub kpi: KpiKind,
    pub engine: EngineParams,
    pub params: DerivedParams,
    pub slot: Arc<Slot>,
    pub detector: Option<ActorRef<DerivedMsg>>,
}

pub struct AggregatorState {
    kpi: KpiKind,
    engine: AnyEngine,
    committer: DerivedCommitter,
    /// (kind, topic) per input, in the engine's topic order.
    inputs: Vec<(EventKind, String)>,
    /// Next offset per partition per input: everything before it has been folded.
    positions: Vec<Offsets>,
    params: DerivedParams,
    slot: Arc<Slot>,
    detector: Option<ActorRef<DerivedMsg>>,
}

fn now_micros() -> Micros {
    chrono::Utc::now().timestamp_micros()
}

impl Actor for AggregatorActor {
    type Msg = DerivedMsg;
    type State = AggregatorState;
    type Arguments = AggregatorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<DerivedMsg>,
        args: AggregatorArgs,
    ) -> Result<AggregatorState, ActorProcessingErr> {
        // First take the slot, then read the lake: a batch committed after our read is
        // delivered to us, one committed before it is in what we read.
        args.slot.set(myself.clone());
        let p = &args.params;
        let (committer, recorded) = DerivedCommitter::open(
            p.lake.clone(),
            &args.kpi.spec(),
            p.hygiene.clone(),
            Some(p.metrics.clone()),
        )
        .await?;
        let checkpoint: AggCheckpoint = if recorded.state.is_null() {
            AggCheckpoint::default()
        } else {
            serde_json::from_value(recorded.state.clone())
                .map_err(|e| format!("{}: unreadable checkpoint: {e}", args.kpi.table()))?
        };
        let mut engine = AnyEngine::new(args.kpi, args.engine);
        engine.restore(checkpoint.emitted_until, checkpoint.watermark);
        let inputs: Vec<(EventKind, String)> = args
            .kpi
            .inputs()
            .iter()
            .map(|k| (*k, p.topic(*k).to_string()))
            .collect();
        let mut positions = Vec::new();
        let now = now_micros();
        let mut replayed = 0u64;
        for (i, (kind, topic)) in inputs.iter().enumerate() {
            let table = p
                .lake
                .catalog
                .load_unpinned(&p.lake.ident(kind.raw_table()))
                .await?;
            let position = recorded_offsets(&table, topic)?;
            let from = checkpoint.replay.get(topic).cloned().unwrap_or_default();
            let rows = read_raw(&table, *kind, &resume_points(&from, &position), false).await?;
            let stats = engine.fold_rows(i, &rows, now, |_, _| true);
            replayed += stats.folded + stats.late + stats.skewed;
            positions.push(position);
        }
        info!(
            table = args.kpi.table(),
            replayed,
            emitted_until = ?checkpoint.emitted_until,
            "aggregator rebuilt its open windows from the raw tables"
        );
        myself.send_interval(p.tick, || DerivedMsg::Tick);
        Ok(AggregatorState {
            kpi: args.kpi,
            engine,
            committer,
            inputs,
            positions,
            params: args.params,
            slot: args.slot,
            detector: args.detector,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<DerivedMsg>,
        msg: DerivedMsg,
        state: &mut AggregatorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            DerivedMsg::Ingest(delivery) => {
                state.slot.done();
                state.catch_up_if_skipped().await?;
                state.ingest(&delivery).await?;
                state.emit(now_micros()).await?;
            }
            DerivedMsg::Tick => {
                state.catch_up_if_skipped().await?;
                state.emit(now_micros()).await?
            }
            DerivedMsg::Closed(_) => {}
            DerivedMsg::Sync(reply) => {
                let _ = reply.send(());
            }
        }
        Ok(())
    }
}

impl AggregatorState {
    /// Deliveries were skipped (we were behind): read what they carried from the raw tables
    /// before any window may close, or a topic would look idle while its events wait.
    async fn catch_up_if_skipped(&mut self) -> Result<(), ActorProcessingErr> {
        if !self.slot.take_skipped() {
            return Ok(());
        }
        let now = now_micros();
        for i in 0..self.inputs.len() {
            let (kind, topic) = self.inputs[i].clone();
            let (rows, recorded) =
                catch_up_rows(&self.params.lake, kind, &topic, &self.positions[i]).await?;
            let stats = self.engine.fold_rows(i, &rows, now, |_, _| true);
            for (p, end) in recorded {
                let pos = self.positions[i].entry(p).or_insert(end);
                *pos = (*pos).max(end);
            }
            debug!(
                table = self.kpi.table(),
                topic,
                rows = stats.folded,
                "caught up after skipped deliveries"
            );
        }
        Ok(())
    }

    async fn ingest(&mut self, d: &Delivery) -> Result<(), ActorProcessingErr> {
        let Some(i) = self.inputs.iter().position(|(_, t)| *t == d.topic) else {
            return Ok(());
        };
        let now = now_micros();
        let mut stats = FoldStats::default();
        // A gap means deliveries were skipped: read them back from the raw table first.
        let kind = self.inputs[i].0;
        if let Some(rows) = gap_rows(&self.params.lake, kind, &self.positions[i], &d.ranges).await?
        {
            let s = self.engine.fold_rows(i, &rows, now, |_, _| true);
            debug!(
                table = self.kpi.table(),
                rows = s.folded,
                "filled a delivery gap from the raw table"
            );
            add(&mut stats, s);
        }
        let positions = &self.positions[i];
        let s = self
            .engine
            .fold_rows(i, &d.rows, now, |p, o| is_new(positions, p, o));
        add(&mut stats, s);
        advance(&mut self.positions[i], &d.ranges);
        if KpiKind::primary_for(d.kind) == self.kpi {
            let m = &self.params.metrics;
            m.late_events
                .with_label_values(&[&d.topic])
                .inc_by(stats.late);
            m.clock_skew_events
                .with_label_values(&[&d.topic])
                .inc_by(stats.skewed);
        }
        Ok(())
    }

    async fn emit(&mut self, now: Micros) -> Result<(), ActorProcessingErr> {
        let source = super::source::Folded {
            topics: self.inputs.iter().map(|(_, t)| t.as_str()).collect(),
            positions: &self.positions,
            source: &self.params.slots.source,
            now,
        };
        let advanced = self.engine.advance(now, &source);
        self.report_watermark(now);
        let Some((until, rows)) = advanced else {
            return Ok(());
        };
        let table = self.kpi.table();
        if !rows.is_empty() {
            let checkpoint = self.checkpoint();
            self.committer
                .commit(&rows, serde_json::to_value(&checkpoint)?)
                .await?;
            let windows = window_count(&rows);
            self.params
                .metrics
                .windows_emitted
                .with_label_values(&[table])
                .inc_by(windows);
            debug!(table, windows, until, "windows emitted");
        }
        if let Some(detector) = &self.detector {
            let _ = detector.cast(DerivedMsg::Closed(Closed { table, until, rows }));
        }
        Ok(())
    }

    /// The primary KPI of a topic reports how far its watermark trails the clock.
    fn report_watermark(&self, now: Micros) {
        let Some(wm) = self.engine.watermark() else {
            return;
        };
        for (kind, topic) in &self.inputs {
            if KpiKind::primary_for(*kind) == self.kpi {
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

fn add(total: &mut FoldStats, s: FoldStats) {
    total.folded += s.folded;
    total.late += s.late;
    total.dropped += s.dropped;
    total.skewed += s.skewed;
}

fn window_count(rows: &crate::schema::derived::DerivedRows) -> u64 {
    use crate::schema::derived::DerivedRows::*;
    let mut starts: Vec<Micros> = match rows {
        Orders(v) => v.iter().map(|r| r.window_start).collect(),
        Users(v) => v.iter().map(|r| r.window_start).collect(),
        Errors(v) => v.iter().map(|r| r.window_start).collect(),
        Traffic(v) => v.iter().map(|r| r.window_start).collect(),
        Alerts(_) => Vec::new(),
    };
    starts.dedup();
    starts.len() as u64
}
