//! Alert detector actor: FATAL errors from the errors topic, anomaly rules on closed windows,
//! silence on any topic. Alerts and the detector's checkpoint land in one commit of the
//! `alerts` table; after a restart the detector resumes from that checkpoint and evaluates
//! again, from the KPI tables, only what came after it, so no alert is lost or repeated.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use iceberg::expr::Reference;
use iceberg::spec::Datum;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde::{Deserialize, Serialize};
use tracing::info;

use super::input::{advance, gap_rows, is_new};
use super::messages::{Closed, Delivery, DerivedMsg};
use super::slots::Slot;
use super::DerivedParams;
use crate::alerts::{
    alert_id, fatal_alert, rate_crossing, Alert, AlertType, AnomalyRule, Crossing, Direction,
    Series,
};
use crate::events::{EventKind, Micros};
use crate::lake::chain::{recorded_chain, DerivedCommitter};
use crate::lake::commit::recorded_offsets;
use crate::lake::scan::{read_batches, read_raw, resume_points, Columns};
use crate::lake::Offsets;
use crate::schema::derived::{self, alerts_spec, DerivedRows};
use crate::schema::Rows;
use crate::windows::{ErrorsRow, OrdersRow, TrafficRow};

use super::aggregator::AggCheckpoint;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DetectorCheckpoint {
    /// Errors-topic offsets up to which FATAL errors have been alerted.
    pub fatal_from: Offsets,
    /// Per KPI table: windows ending at or before this have been evaluated.
    pub evaluated: BTreeMap<String, Micros>,
    pub series: BTreeMap<String, SeriesState>,
    pub rate_firing: bool,
    /// Per topic: the silence (identified by the topic's position) already alerted.
    pub no_data: BTreeMap<String, i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SeriesState {
    pub values: Vec<f64>,
    pub firing: bool,
}

pub struct DetectorActor;

pub struct DetectorArgs {
    pub params: DerivedParams,
    pub slot: Arc<Slot>,
}

pub struct DetectorState {
    params: DerivedParams,
    slot: Arc<Slot>,
    committer: DerivedCommitter,
    cp: DetectorCheckpoint,
    series: BTreeMap<String, Series>,
    /// Errors-topic positions read so far (ahead of `cp.fatal_from` between commits).
    errors_position: Offsets,
    /// Per topic: position total and when it last moved (processing time).
    activity: BTreeMap<String, (i64, Micros)>,
    last_commit: Instant,
    dirty: bool,
}

fn now_micros() -> Micros {
    chrono::Utc::now().timestamp_micros()
}

fn total(o: &Offsets) -> i64 {
    o.values().sum()
}

impl Actor for DetectorActor {
    type Msg = DerivedMsg;
    type State = DetectorState;
    type Arguments = DetectorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<DerivedMsg>,
        args: DetectorArgs,
    ) -> Result<DetectorState, ActorProcessingErr> {
        args.slot.set(myself.clone());
        let p = args.params.clone();
        let (committer, recorded) = DerivedCommitter::open(
            p.lake.clone(),
            &alerts_spec(),
            p.hygiene.clone(),
            Some(p.metrics.clone()),
        )
        .await?;
        let cp: DetectorCheckpoint = if recorded.state.is_null() {
            DetectorCheckpoint::default()
        } else {
            serde_json::from_value(recorded.state)
                .map_err(|e| format!("alerts: unreadable detector checkpoint: {e}"))?
        };
        let series = cp
            .series
            .iter()
            .map(|(k, s)| (k.clone(), Series::restore(s.values.clone(), s.firing)))
            .collect();
        let now = now_micros();
        let mut activity = BTreeMap::new();
        let mut errors_position = Offsets::new();
        let mut fatal_rows = Rows::empty_for(EventKind::Errors);
        for kind in [EventKind::Orders, EventKind::Clicks, EventKind::Errors] {
            let topic = p.topic(kind).to_string();
            let table = p
                .lake
                .catalog
                .load_unpinned(&p.lake.ident(kind.raw_table()))
                .await?;
            let position = recorded_offsets(&table, &topic)?;
            activity.insert(topic, (total(&position), now));
            if kind == EventKind::Errors {
                let from = resume_points(&cp.fatal_from, &position);
                fatal_rows = read_raw(&table, kind, &from, false).await?;
                errors_position = position;
            }
        }
        let mut state = DetectorState {
            params: args.params,
            slot: args.slot,
            committer,
            cp,
            series,
            errors_position,
            activity,
            last_commit: Instant::now(),
            dirty: false,
        };
        // Catch up on what happened after the checkpoint: FATAL errors, then closed windows.
        let mut alerts = state.fatal_alerts(&fatal_rows, |_, _| true);
        for table in [
            derived::ORDERS_REVENUE_TABLE,
            derived::ERRORS_TABLE,
            derived::TRAFFIC_TABLE,
        ] {
            if let Some(closed) = state.read_closed(table).await? {
                alerts.extend(state.evaluate(&closed));
            }
        }
        let caught_up = alerts.len();
        state.commit(alerts).await?;
        info!(caught_up, "detector resumed from its checkpoint");
        myself.send_interval(state.params.tick, || DerivedMsg::Tick);
        Ok(state)
    }

    async fn handle(
        &self,
        _myself: ActorRef<DerivedMsg>,
        msg: DerivedMsg,
        state: &mut DetectorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            DerivedMsg::Ingest(d) => {
                state.slot.done();
                state.ingest(&d).await?;
            }
            DerivedMsg::Closed(closed) => {
                let alerts = state.evaluate(&closed);
                state.commit(alerts).await?;
            }
            DerivedMsg::Sync(reply) => {
                let _ = reply.send(());
            }
            DerivedMsg::Tick => {
                if state.slot.take_skipped() {
                    // Deliveries were skipped: the topics were not silent. FATAL errors they
                    // carried are read from the raw table at the next delivery (gap fill).
                    let now = now_micros();
                    for a in state.activity.values_mut() {
                        a.1 = now;
                    }
                }
                let alerts = state.silences(now_micros());
                state.commit(alerts).await?;
                // Keep the replay after a restart short even when nothing fires.
                if state.dirty && state.last_commit.elapsed() > state.params.checkpoint_every {
                    state.commit_checkpoint().await?;
                }
            }
        }
        Ok(())
    }
}

impl Series {
    fn restore(values: Vec<f64>, firing: bool) -> Series {
        let mut s = Series::default();
        s.set(values, firing);
        s
    }
}

impl DetectorState {
    async fn ingest(&mut self, d: &Delivery) -> Result<(), ActorProcessingErr> {
        let now = now_micros();
        if let Some(a) = self.activity.get_mut(&d.topic) {
            let end_total: i64 = d.ranges.values().map(|(_, e)| *e).sum();
            a.0 = a.0.max(end_total);
            a.1 = now;
        }
        if d.kind != EventKind::Errors || d.topic != self.params.topic(EventKind::Errors) {
            return Ok(());
        }
        let mut alerts = Vec::new();
        if let Some(rows) =
            gap_rows(&self.params.lake, d.kind, &self.errors_position, &d.ranges).await?
        {
            alerts.extend(self.fatal_alerts(&rows, |_, _| true));
        }
        let pos = self.errors_position.clone();
        alerts.extend(self.fatal_alerts(&d.rows, |p, o| is_new(&pos, p, o)));
        advance(&mut self.errors_position, &d.ranges);
        self.dirty = true;
        if !alerts.is_empty() {
            self.commit(alerts).await?;
        }
        Ok(())
    }

    fn fatal_alerts(&self, rows: &Rows, keep: impl Fn(i32, i64) -> bool) -> Vec<Alert> {
        let Rows::Errors(v) = rows else {
            return Vec::new();
        };
        if !self.params.rules.fatal_error {
            return Vec::new();
        }
        let topic = self.params.topic(EventKind::Errors);
        v.iter()
            .filter(|(s, e)| e.severity == "FATAL" && keep(s.partition, s.offset))
            .map(|(s, e)| {
                fatal_alert(
                    topic,
                    s.partition,
                    s.offset,
                    &e.service_name,
                    &e.error_message,
                    e.error_ts,
                )
            })
            .collect()
    }

    /// Rows of a KPI table after our checkpoint, up to what its aggregator has emitted.
    async fn read_closed(
        &self,
        table_name: &'static str,
    ) -> Result<Option<Closed>, ActorProcessingErr> {
        let lake = &self.params.lake;
        let table = lake.catalog.load_unpinned(&lake.ident(table_name)).await?;
        let chain = recorded_chain(&table)?;
        if chain.state.is_null() {
            return Ok(None);
        }
        let agg: AggCheckpoint = serde_json::from_value(chain.state)?;
        let Some(until) = agg.emitted_until else {
            return Ok(None);
        };
        let after = self.cp.evaluated.get(table_name).copied();
        let filter =
            after.map(|a| Reference::new("window_end").greater_than(Datum::timestamp_micros(a)));
        let batches = read_batches(&table, None, filter).await?;
        let rows = match table_name {
            derived::ORDERS_REVENUE_TABLE => {
                let mut v = Vec::new();
                for b in &batches {
                    let c = Columns::new(table_name, b);
                    let (s, e, n, r) = (
                        c.ts("window_start")?,
                        c.ts("window_end")?,
                        c.i64("orders_count")?,
                        c.f64("total_revenue")?,
                    );
                    for i in 0..b.num_rows() {
                        v.push(OrdersRow {
                            window_start: s.value(i),
                            window_end: e.value(i),
                            orders_count: n.value(i),
                            total_revenue: r.value(i),
                        });
                    }
                }
                DerivedRows::Orders(v)
            }
            derived::ERRORS_TABLE => {
                let mut v = Vec::new();
                for b in &batches {
                    let c = Columns::new(table_name, b);
                    let (s, e, svc, sev, n) = (
                        c.ts("window_start")?,
                        c.ts("window_end")?,
                        c.str("service_name")?,
                        c.str("severity")?,
                        c.i64("error_count")?,
                    );
                    for i in 0..b.num_rows() {
                        v.push(ErrorsRow {
                            window_start: s.value(i),
                            window_end: e.value(i),
                            service_name: svc.value(i).to_string(),
                            severity: sev.value(i).to_string(),
                            error_count: n.value(i),
                        });
                    }
                }
                DerivedRows::Errors(v)
            }
            _ => {
                let mut v = Vec::new();
                for b in &batches {
                    let c = Columns::new(table_name, b);
                    let (s, e) = (c.ts("window_start")?, c.ts("window_end")?);
                    let (o, k, w, er, f, rate) = (
                        c.i64("orders_count")?,
                        c.i64("clicks_count")?,
                        c.i64("warn_count")?,
                        c.i64("error_count")?,
                        c.i64("fatal_count")?,
                        c.f64("error_rate")?,
                    );
                    for i in 0..b.num_rows() {
                        use arrow_array::Array;
                        v.push(TrafficRow {
                            window_start: s.value(i),
                            window_end: e.value(i),
                            orders_count: o.value(i),
                            clicks_count: k.value(i),
                            warn_count: w.value(i),
                            error_count: er.value(i),
                            fatal_count: f.value(i),
                            error_rate: (!rate.is_null(i)).then(|| rate.value(i)),
                        });
                    }
                }
                DerivedRows::Traffic(v)
            }
        };
        Ok(Some(Closed {
            table: table_name,
            until,
            rows,
        }))
    }

    /// Evaluate every window of `closed.table` ending in (evaluated, until], in order.
    fn evaluate(&mut self, closed: &Closed) -> Vec<Alert> {
        let Some(kpi) = self.params.kpi(closed.table) else {
            return Vec::new();
        };
        let slide = kpi.windowing.slide;
        let size = kpi.windowing.size;
        let evaluated = self.cp.evaluated.get(closed.table).copied();
        if evaluated.is_some_and(|e| closed.until <= e) {
            return Vec::new();
        }
        let rules = self.params.rules;
        let mut alerts = Vec::new();
        match &closed.rows {
            DerivedRows::Orders(rows) => {
                let by_end: BTreeMap<Micros, &OrdersRow> =
                    rows.iter().map(|r| (r.window_end, r)).collect();
                for end in lattice(
                    evaluated,
                    closed.until,
                    slide,
                    by_end.keys().next().copied(),
                ) {
                    let (n, revenue) = by_end
                        .get(&end)
                        .map_or((0.0, 0.0), |r| (r.orders_count as f64, r.total_revenue));
                    let start = end - size;
                    if let Some(c) =
                        self.push("ORDERS_DROP", n, &rules.orders_drop, Direction::Below)
                    {
                        alerts.push(window_alert(AlertType::OrdersDrop, "all", start, end, c,
                            format!("Orders dropped to {n:.0} in window {} – {} (moving mean {:.1}, threshold {:.1})", hm(start), hm(end), c.mean, c.threshold)));
                    }
                    if let Some(c) = self.push(
                        "REVENUE_DROP",
                        revenue,
                        &rules.revenue_drop,
                        Direction::Below,
                    ) {
                        alerts.push(window_alert(AlertType::RevenueDrop, "all", start, end, c,
                            format!("Revenue dropped to ${revenue:.2} in window {} – {} (moving mean ${:.2}, threshold ${:.2})", hm(start), hm(end), c.mean, c.threshold)));
                    }
                }
            }
            DerivedRows::Errors(rows) => {
                let mut by_end: BTreeMap<Micros, BTreeMap<&str, i64>> = BTreeMap::new();
                for r in rows {
                    *by_end
                        .entry(r.window_end)
                        .or_default()
                        .entry(&r.service_name)
                        .or_insert(0) += r.error_count;
                }
                for end in lattice(
                    evaluated,
                    closed.until,
                    slide,
                    by_end.keys().next().copied(),
                ) {
                    let counts = by_end.get(&end).cloned().unwrap_or_default();
                    let mut services: Vec<String> = self
                        .series
                        .keys()
                        .filter_map(|k| k.strip_prefix("ERROR_SPIKE|").map(str::to_string))
                        .collect();
                    services.extend(counts.keys().map(|s| s.to_string()));
                    services.sort();
                    services.dedup();
                    for svc in services {
                        let n = counts.get(svc.as_str()).copied().unwrap_or(0) as f64;
                        let key = format!("ERROR_SPIKE|{svc}");
                        if let Some(c) = self.push(&key, n, &rules.error_spike, Direction::Above) {
                            let start = end - size;
                            alerts.push(window_alert(AlertType::ErrorSpike, &svc, start, end, c,
                                format!("Error spike in service {svc}: {n:.0} errors in window {} – {} (moving mean {:.1}, threshold {:.1})", hm(start), hm(end), c.mean, c.threshold)));
                        }
                        // A service silent for a whole history is forgotten.
                        if self
                            .series
                            .get(&key)
                            .is_some_and(|s| s.is_flat_zero(&rules.error_spike))
                        {
                            self.series.remove(&key);
                        }
                    }
                }
            }
            DerivedRows::Traffic(rows) => {
                let by_end: BTreeMap<Micros, &TrafficRow> =
                    rows.iter().map(|r| (r.window_end, r)).collect();
                for end in lattice(
                    evaluated,
                    closed.until,
                    slide,
                    by_end.keys().next().copied(),
                ) {
                    let row = by_end.get(&end);
                    let traffic = row.map_or(0, |r| r.orders_count + r.clicks_count);
                    let rate = row.and_then(|r| r.error_rate);
                    let (firing, fires) =
                        rate_crossing(&rules.high_error_rate, rate, traffic, self.cp.rate_firing);
                    self.cp.rate_firing = firing;
                    if let (true, Some(r), Some(row)) = (fires, rate, row) {
                        let start = end - size;
                        let thr = rules.high_error_rate.threshold;
                        alerts.push(on_window(
                            AlertType::HighErrorRate,
                            "all",
                            start,
                            end,
                            r,
                            thr,
                            format!(
                                "Error rate {:.1}% in window {} – {} is above {:.1}% ({} ERROR/FATAL over {traffic} orders and clicks)",
                                r * 100.0, hm(start), hm(end), thr * 100.0, row.error_count + row.fatal_count
                            ),
                        ));
                    }
                }
            }
            _ => {}
        }
        self.cp
            .evaluated
            .insert(closed.table.to_string(), closed.until);
        self.dirty = true;
        alerts
    }

    fn push(
        &mut self,
        key: &str,
        value: f64,
        rule: &AnomalyRule,
        dir: Direction,
    ) -> Option<Crossing> {
        let series = self.series.entry(key.to_string()).or_default();
        // A series starts with its first non-zero window: zeros before it mean nothing.
        if series.is_empty() && value == 0.0 {
            return None;
        }
        series.push(value, rule, dir)
    }

    fn silences(&mut self, now: Micros) -> Vec<Alert> {
        let rule = self.params.rules.no_data;
        if !rule.enabled {
            return Vec::new();
        }
        let mut alerts = Vec::new();
        for (topic, (position, last)) in &self.activity {
            let silent = now - last;
            if silent < rule.after || self.cp.no_data.get(topic) == Some(position) {
                continue;
            }
            alerts.push(Alert {
                alert_id: alert_id(AlertType::NoData, topic, &position.to_string()),
                alert_type: AlertType::NoData,
                description: format!("No data on topic {topic} for {} s", silent / 1_000_000),
                alert_timestamp: now,
                metric_value: silent as f64 / 1e6,
                alert_key: topic.clone(),
                window_start: None,
                window_end: None,
                threshold: Some(rule.after as f64 / 1e6),
                source_topic: Some(topic.clone()),
                source_partition: None,
                source_offset: None,
            });
        }
        for a in &alerts {
            if let Some((position, _)) = self.activity.get(&a.alert_key) {
                self.cp.no_data.insert(a.alert_key.clone(), *position);
            }
        }
        alerts
    }

    fn snapshot_checkpoint(&mut self) {
        self.cp.fatal_from = self.errors_position.clone();
        self.cp.series = self
            .series
            .iter()
            .map(|(k, s)| {
                (
                    k.clone(),
                    SeriesState {
                        values: s.values(),
                        firing: s.firing(),
                    },
                )
            })
            .collect();
    }

    async fn commit(&mut self, alerts: Vec<Alert>) -> Result<(), ActorProcessingErr> {
        if alerts.is_empty() {
            return Ok(());
        }
        self.snapshot_checkpoint();
        let rows = DerivedRows::Alerts(alerts);
        self.committer
            .commit(&rows, serde_json::to_value(&self.cp)?)
            .await?;
        self.last_commit = Instant::now();
        self.dirty = false;
        if let DerivedRows::Alerts(v) = &rows {
            if let Some(hook) = &self.params.webhook {
                hook.offer(v);
            }
            for a in v {
                self.params
                    .metrics
                    .alerts
                    .with_label_values(&[a.alert_type.as_str()])
                    .inc();
                info!(alert_type = a.alert_type.as_str(), key = %a.alert_key, description = %a.description, "alert");
            }
        }
        Ok(())
    }

    async fn commit_checkpoint(&mut self) -> Result<(), ActorProcessingErr> {
        self.snapshot_checkpoint();
        self.committer
            .commit(
                &DerivedRows::Alerts(Vec::new()),
                serde_json::to_value(&self.cp)?,
            )
            .await?;
        self.last_commit = Instant::now();
        self.dirty = false;
        Ok(())
    }
}

/// Window ends to evaluate: after `evaluated` (or from the first row) up to `until`.
fn lattice(
    evaluated: Option<Micros>,
    until: Micros,
    slide: Micros,
    first_row: Option<Micros>,
) -> Vec<Micros> {
    let first = match (evaluated, first_row) {
        (Some(e), _) => e + slide,
        (None, Some(f)) => f,
        (None, None) => return Vec::new(),
    };
    // Bound the work after a long stop: beyond a few thousand windows nothing can fire that
    // the most recent ones would not show.
    let count = ((until - first) / slide + 1).clamp(0, 100_000);
    let skip = (count - 5_000).max(0);
    (skip..count).map(|k| first + k * slide).collect()
}

/// An alert about one window (its start is the id's mark).
fn on_window(
    ty: AlertType,
    key: &str,
    start: Micros,
    end: Micros,
    value: f64,
    threshold: f64,
    description: String,
) -> Alert {
    Alert {
        alert_id: alert_id(ty, key, &start.to_string()),
        alert_type: ty,
        description,
        alert_timestamp: end,
        metric_value: value,
        alert_key: key.to_string(),
        window_start: Some(start),
        window_end: Some(end),
        threshold: Some(threshold),
        source_topic: None,
        source_partition: None,
        source_offset: None,
    }
}

fn window_alert(
    ty: AlertType,
    key: &str,
    start: Micros,
    end: Micros,
    c: Crossing,
    description: String,
) -> Alert {
    on_window(ty, key, start, end, c.value, c.threshold, description)
}

fn hm(t: Micros) -> String {
    chrono::DateTime::from_timestamp_micros(t)
        .map(|d| d.format("%H:%M:%S").to_string())
        .unwrap_or_default()
}
