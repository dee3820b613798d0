//! Alert detector actor: routes raw events, closed windows and silences into the pure
//! [`Evaluator`] and commits what comes out. Alerts, the evaluator's state and the open alert
//! groups land in one commit of the `alerts` table; after a restart the detector resumes from
//! that state and evaluates again only what came after it (from the raw and KPI tables), so no
//! alert is lost or repeated. Committed alerts join their groups ([`Grouper`]); groups page the
//! webhook unless the operators' actions ([`Mutes`], read back from `alert_actions`) say not.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use iceberg::expr::Reference;
use iceberg::spec::Datum;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use super::aggregator::AggCheckpoint;
use super::input::{advance, catch_up_rows, gap_rows, is_new, positions, raw_table};
use super::messages::RollupMsg;
use super::RollupParams;
use crate::alerts::actions::{self, Action, Mutes};
use crate::alerts::{
    Activity, Alert, Alerts, ClosedWindows, EvalState, Evaluator, GroupState, Grouper,
};
use crate::error::{into_actor, Error, Handled};
use crate::events::{EventKind, Micros};
use crate::handoff::{Delivery, Slot};
use crate::kpis::{self, KpiRows};
use crate::lake::commit::chain::recorded_chain;
use crate::lake::io::scan::{read_batches, read_raw, resume_points};
use crate::lake::{Offsets, RollupCommitter};
use crate::supervision::Progress;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DetectorCheckpoint {
    /// Per topic: offsets up to which event rules have run.
    #[serde(default)]
    pub event_from: BTreeMap<String, Offsets>,
    /// Earlier versions recorded the errors topic's offsets here.
    #[serde(default, skip_serializing)]
    pub fatal_from: Offsets,
    #[serde(flatten)]
    pub eval: EvalState,
    /// Open alert groups and what they paged.
    #[serde(default)]
    pub groups: GroupState,
}

pub struct DetectorActor;

pub struct DetectorArgs {
    pub params: RollupParams,
    pub slot: Arc<Slot>,
    pub progress: Arc<Progress>,
}

pub struct DetectorState {
    params: RollupParams,
    slot: Arc<Slot>,
    progress: Arc<Progress>,
    committer: RollupCommitter,
    evaluator: Evaluator,
    /// Per watched topic: positions read so far (ahead of the checkpoint between commits).
    event_positions: BTreeMap<String, Offsets>,
    /// Per topic: position total and when it last moved (processing time).
    /// Per topic: how far each partition has been delivered, and when any of them last moved.
    activity: BTreeMap<String, (Offsets, Micros)>,
    last_commit: Instant,
    dirty: bool,
    grouper: Grouper,
    mutes: Mutes,
    /// The `alert_actions` snapshot `mutes` was read from.
    mutes_snapshot: Option<i64>,
}

fn now_micros() -> Micros {
    chrono::Utc::now().timestamp_micros()
}

fn total(o: &Offsets) -> i64 {
    o.values().sum()
}

/// Raise each partition of `to` to `from`'s where that is further; true if any moved.
fn raise(to: &mut Offsets, from: &Offsets) -> bool {
    let mut moved = false;
    for (p, end) in from {
        let at = to.entry(*p).or_insert(0);
        if *end > *at {
            *at = *end;
            moved = true;
        }
    }
    moved
}

impl Actor for DetectorActor {
    type Msg = RollupMsg;
    type State = DetectorState;
    type Arguments = DetectorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<RollupMsg>,
        args: DetectorArgs,
    ) -> Result<DetectorState, ActorProcessingErr> {
        into_actor(start(myself, args).await)
    }

    async fn handle(
        &self,
        _myself: ActorRef<RollupMsg>,
        msg: RollupMsg,
        state: &mut DetectorState,
    ) -> Result<(), ActorProcessingErr> {
        into_actor(state.handle(msg).await)
    }
}

async fn start(myself: ActorRef<RollupMsg>, args: DetectorArgs) -> Result<DetectorState, Error> {
    args.slot.set(myself.clone());
    let p = args.params.clone();
    let (committer, recorded) = RollupCommitter::open(
        p.lake.clone(),
        &crate::alerts::spec(),
        p.hygiene.clone(),
        Some(p.metrics.clone()),
    )
    .await?;
    let mut cp: DetectorCheckpoint = if recorded.state.is_null() {
        DetectorCheckpoint::default()
    } else {
        serde_json::from_value(recorded.state)
            .map_err(|e| Error::Corrupt(format!("alerts: unreadable detector checkpoint: {e}")))?
    };
    let errors_topic = p.topic(EventKind::Errors).to_string();
    if !cp.fatal_from.is_empty() && !cp.event_from.contains_key(&errors_topic) {
        cp.event_from
            .insert(errors_topic, std::mem::take(&mut cp.fatal_from));
    }
    let mut evaluator = Evaluator::new(p.rules.clone(), cp.eval);
    let grouper = Grouper::new(p.grouping, cp.groups);
    let watched = evaluator.watched_topics();
    let now = now_micros();
    let mut activity = BTreeMap::new();
    let mut event_positions = BTreeMap::new();
    // Catch up on what happened after the checkpoint: events first, then closed windows.
    let mut alerts = Vec::new();
    for kind in EventKind::ALL {
        let topic = p.topic(kind).to_string();
        let table = raw_table(&p.lake, kind).await?;
        let position = positions(&table, &topic)?;
        activity.insert(topic.clone(), (position.clone(), now));
        if watched.contains(&kind) {
            let done = cp.event_from.get(&topic).cloned().unwrap_or_default();
            let rows = read_raw(&table, kind, &resume_points(&done, &position), false).await?;
            alerts.extend(evaluator.on_events(&topic, kind, &rows, &|_, _| true));
            event_positions.insert(topic, position);
        }
    }
    let mut state = DetectorState {
        params: args.params,
        slot: args.slot,
        progress: args.progress,
        committer,
        evaluator,
        event_positions,
        activity,
        last_commit: Instant::now(),
        dirty: false,
        grouper,
        mutes: Mutes::default(),
        mutes_snapshot: None,
    };
    state.read_mutes().await;
    for table in state.evaluator.watched_tables() {
        if let Some(closed) = state.read_closed(table).await? {
            alerts.extend(state.evaluator.on_windows(&closed));
        }
    }
    let caught_up = alerts.len();
    state.commit(alerts).await?;
    info!(caught_up, "detector resumed from its checkpoint");
    myself.send_interval(state.params.tick, || RollupMsg::Tick);
    Ok(state)
}

/// Every row of the operators' actions table.
async fn read_actions(table: &iceberg::table::Table) -> Result<Vec<Action>, String> {
    let mut all = Vec::new();
    for b in read_batches(table, None, None)
        .await
        .map_err(|e| e.to_string())?
    {
        all.extend(Action::decode(&b)?);
    }
    Ok(all)
}

impl DetectorState {
    async fn handle(&mut self, msg: RollupMsg) -> Handled {
        let progress = self.progress.clone();
        let _busy = progress.busy();
        self.params.faults.at_handler(super::DETECTOR).await?;
        match msg {
            RollupMsg::Ingest(d) => {
                self.slot.done();
                self.ingest(&d).await?;
            }
            RollupMsg::Closed(closed) => {
                let watched = self
                    .evaluator
                    .watched_tables()
                    .contains(&closed.kpi.table());
                let alerts = self.evaluator.on_windows(&closed);
                self.dirty |= watched;
                self.commit(alerts).await?;
            }
            RollupMsg::Sync(reply) => {
                let _ = reply.send(());
            }
            // Alerts are decided on committed windows only.
            RollupMsg::Preview(_) | RollupMsg::PushProvisional => {}
            RollupMsg::Tick => {
                if self.slot.take_skipped() {
                    // Deliveries were skipped: the topics were not silent, and the events they
                    // carried are read from the raw tables now — a partition whose last
                    // batches were skipped gets no later delivery to fill the gap from.
                    let now = now_micros();
                    for a in self.activity.values_mut() {
                        a.1 = now;
                    }
                    let all: Vec<String> = self.activity.keys().cloned().collect();
                    self.catch_up(&all).await?;
                }
                // A topic looks silent when nothing we were handed moved it; the lake has the
                // last word. Partitions other instances consume reach us through the feed, and
                // on a takeover the feed starts only after every aggregator rebuilt (a minute on
                // a loaded machine): a busy topic must not be reported silent meanwhile, nor
                // its events' alerts wait for the feed.
                let due = self.evaluator.silent_due(&self.activity(), now_micros());
                if !due.is_empty() {
                    self.catch_up(&due).await?;
                }
                let alerts = self.evaluator.on_silence(&self.activity(), now_micros());
                self.commit(alerts).await?;
                self.read_mutes().await;
                if self.page() {
                    // Record what paged now: a restart must not page it again.
                    self.commit_checkpoint().await?;
                }
                // Keep the replay after a restart short even when nothing fires.
                if self.dirty && self.last_commit.elapsed() > self.params.checkpoint_every {
                    self.commit_checkpoint().await?;
                }
            }
        }
        Ok(())
    }

    async fn ingest(&mut self, d: &Delivery) -> Handled {
        let now = now_micros();
        // Only records move a topic: deliveries that carry none (the rollup owner's feed
        // repeats where other instances' partitions stand) are no sign of life.
        if let Some((ends, last_moved)) = self.activity.get_mut(&d.topic) {
            let delivered: Offsets = d.ranges.iter().map(|(p, (_, end))| (*p, *end)).collect();
            if raise(ends, &delivered) {
                *last_moved = now;
            }
        }
        if d.topic != self.params.topic(d.kind) {
            return Ok(());
        }
        let Some(position) = self.event_positions.get(&d.topic).cloned() else {
            return Ok(());
        };
        let mut alerts = Vec::new();
        if let Some(rows) = gap_rows(&self.params.lake, d.kind, &position, &d.ranges).await? {
            alerts.extend(
                self.evaluator
                    .on_events(&d.topic, d.kind, &rows, &|_, _| true),
            );
        }
        alerts.extend(
            self.evaluator
                .on_events(&d.topic, d.kind, &d.rows, &|p, o| is_new(&position, p, o)),
        );
        if let Some(pos) = self.event_positions.get_mut(&d.topic) {
            advance(pos, &d.ranges);
        }
        self.dirty = true;
        self.commit(alerts).await
    }

    /// Each topic's position total and when it last moved, as silence rules read them.
    fn activity(&self) -> Vec<Activity> {
        self.activity
            .iter()
            .map(|(topic, (ends, last_moved))| Activity {
                topic: topic.clone(),
                position: total(ends),
                last_moved: *last_moved,
            })
            .collect()
    }

    /// Evaluate what the raw tables of `topics` committed beyond our positions (after skipped
    /// deliveries, or before a topic is reported silent); a topic the lake shows moved beyond
    /// what we saw is not silent.
    async fn catch_up(&mut self, topics: &[String]) -> Handled {
        let mut alerts = Vec::new();
        let now = now_micros();
        for kind in EventKind::ALL {
            let topic = self.params.topic(kind).to_string();
            if !topics.contains(&topic) {
                continue;
            }
            let recorded = match self.event_positions.get(&topic).cloned() {
                Some(position) => {
                    let (rows, recorded) =
                        catch_up_rows(&self.params.lake, kind, &topic, &position).await?;
                    alerts.extend(self.evaluator.on_events(&topic, kind, &rows, &|_, _| true));
                    let pos = self.event_positions.entry(topic.clone()).or_default();
                    if raise(pos, &recorded) {
                        self.dirty = true;
                    }
                    debug!(
                        topic,
                        rows = rows.len(),
                        "detector caught up from the raw table"
                    );
                    recorded
                }
                None => positions(&raw_table(&self.params.lake, kind).await?, &topic)?,
            };
            if let Some((ends, last_moved)) = self.activity.get_mut(&topic) {
                if raise(ends, &recorded) {
                    *last_moved = now;
                }
            }
        }
        self.commit(alerts).await
    }

    /// Rows of a KPI table after what was evaluated, up to what its aggregator has emitted.
    async fn read_closed(&self, table_name: &'static str) -> Result<Option<ClosedWindows>, Error> {
        let Some(kpi) = kpis::by_table(table_name) else {
            return Ok(None);
        };
        let Some(engine) = self.params.kpi(table_name) else {
            return Ok(None);
        };
        let lake = &self.params.lake;
        let table = lake
            .catalog
            .load_unpinned(&lake.ident(table_name))
            .await
            .map_err(Error::iceberg(format!("loading {table_name}")))?;
        let chain = recorded_chain(&table).map_err(|e| Error::Corrupt(e.to_string()))?;
        if chain.state.is_null() {
            return Ok(None);
        }
        let agg: AggCheckpoint = serde_json::from_value(chain.state)
            .map_err(|e| Error::Corrupt(format!("{table_name}: unreadable checkpoint: {e}")))?;
        let Some(until) = agg.emitted_until else {
            return Ok(None);
        };
        let after = self.evaluator.evaluated(table_name);
        let filter =
            after.map(|a| Reference::new("window_end").greater_than(Datum::timestamp_micros(a)));
        let mut rows = Vec::new();
        for batch in read_batches(&table, None, filter).await? {
            rows.extend(KpiRows::decode(kpi, &batch).map_err(|e| {
                Error::Corrupt(format!("{table_name}: reading closed windows: {e}"))
            })?);
        }
        Ok(Some(ClosedWindows {
            kpi,
            until,
            size: engine.windowing.size,
            slide: engine.windowing.slide,
            rows,
        }))
    }

    /// Read the operators' actions again if the table moved. A failed read keeps the last
    /// word (the next tick tries again): pages must not stop because the audit is slow.
    async fn read_mutes(&mut self) {
        let lake = &self.params.lake;
        let table = match lake
            .catalog
            .load_unpinned(&lake.ident(actions::TABLE))
            .await
        {
            Ok(t) => t,
            Err(e) => {
                warn!(error = %e, "reading alert actions: loading the table failed; keeping the last");
                return;
            }
        };
        let snapshot = table.metadata().current_snapshot_id();
        if snapshot == self.mutes_snapshot {
            return;
        }
        let all = match read_actions(&table).await {
            Ok(all) => all,
            Err(e) => {
                warn!(error = %e, "reading alert actions failed; keeping the last");
                return;
            }
        };
        self.mutes = Mutes::new(&all);
        self.mutes_snapshot = snapshot;
    }

    /// Hand the groups' due pages to the webhook; true if the groups' state changed.
    fn page(&mut self) -> bool {
        let now = now_micros();
        let mutes = &self.mutes;
        let (pages, changed) = self.grouper.due(now, &|g| mutes.mute(g, now));
        if let Some(hook) = &self.params.webhook {
            hook.offer(&pages);
        }
        for n in &pages {
            info!(alert_type = %n.group.rule, key = %n.group.key, count = n.group.count, new = n.new_alerts, "alert group paged");
        }
        changed
    }

    fn checkpoint(&self) -> Result<serde_json::Value, Error> {
        let cp = DetectorCheckpoint {
            event_from: self.event_positions.clone(),
            fatal_from: Offsets::new(),
            eval: self.evaluator.state(),
            groups: self.grouper.state(),
        };
        serde_json::to_value(&cp)
            .map_err(|e| Error::Corrupt(format!("alerts: encoding the checkpoint: {e}")))
    }

    async fn commit(&mut self, alerts: Vec<Alert>) -> Handled {
        if alerts.is_empty() {
            return Ok(());
        }
        self.grouper.add(&alerts, now_micros());
        let state = self.checkpoint()?;
        let alerts = Alerts(alerts);
        self.committer.commit(&alerts, state).await?;
        self.params.slots.commits.landed();
        self.last_commit = Instant::now();
        self.dirty = false;
        for a in &alerts.0 {
            self.params
                .metrics
                .alerts
                .with_label_values(&[a.alert_type])
                .inc();
            info!(alert_type = a.alert_type, key = %a.alert_key, description = %a.description, "alert");
        }
        Ok(())
    }

    async fn commit_checkpoint(&mut self) -> Handled {
        let state = self.checkpoint()?;
        self.committer.commit(&Alerts::default(), state).await?;
        self.last_commit = Instant::now();
        self.dirty = false;
        Ok(())
    }
}
