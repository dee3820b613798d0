//! The pure alert evaluator: rules in, alerts out. It owns what the detector records with every
//! commit of the alerts table (which windows it has evaluated, every series' history and
//! edge-trigger flag, which silences it has reported), so a restart resumes exactly where the
//! last commit left off. No actors, no Arrow: rows come in typed.

use std::collections::BTreeMap;

use super::alert::{alert_id, event_alert, Alert};
use super::params::{AnomalyParams, Params, SilenceParams, ThresholdParams};
use super::rules::{Fired, Rule, RuleSet, Trigger, WindowCheck};
use super::series::{rate_crossing, Direction, Series};
pub use super::state::{Activity, ClosedWindows, EvalState, SeriesKey, SeriesState};
use crate::events::{EventKind, Micros};
use crate::kpis::{Kpi, KpiRow};
use crate::schema::Rows;
use crate::windows::Fact;

pub struct Evaluator {
    rules: RuleSet,
    evaluated: BTreeMap<String, Micros>,
    series: BTreeMap<SeriesKey, Series>,
    no_data: BTreeMap<String, i64>,
}

impl Evaluator {
    pub fn new(rules: RuleSet, state: EvalState) -> Self {
        let mut series: BTreeMap<SeriesKey, Series> = state
            .series
            .into_iter()
            .map(|(k, s)| {
                let mut series = Series::default();
                series.set(s.values, s.firing);
                (k, series)
            })
            .collect();
        if state.rate_firing {
            let s = series
                .entry(SeriesKey::new(
                    super::rules::high_error_rate::RULE.name,
                    None,
                ))
                .or_default();
            s.set(s.values(), true);
        }
        Evaluator {
            rules,
            evaluated: state.evaluated,
            series,
            no_data: state.no_data,
        }
    }

    /// What to record with the next commit.
    pub fn state(&self) -> EvalState {
        EvalState {
            evaluated: self.evaluated.clone(),
            series: self
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
                .collect(),
            no_data: self.no_data.clone(),
            rate_firing: false,
        }
    }

    /// What the rules' triggers name, each once, in rule order.
    fn watched<T: PartialEq>(&self, of: impl Fn(&Trigger) -> Option<T>) -> Vec<T> {
        let mut out = Vec::new();
        for t in self.rules.iter().filter_map(|(rule, _)| of(&rule.trigger)) {
            if !out.contains(&t) {
                out.push(t);
            }
        }
        out
    }

    /// KPI tables some rule watches.
    pub fn watched_tables(&self) -> Vec<&'static str> {
        self.watched(|t| match t {
            Trigger::Window { table, .. } => Some(*table),
            _ => None,
        })
    }

    /// Topics whose raw events some rule looks at.
    pub fn watched_topics(&self) -> Vec<EventKind> {
        self.watched(|t| match t {
            Trigger::Event { topic, .. } => Some(*topic),
            _ => None,
        })
    }

    /// Windows of `table` ending at or before this were evaluated.
    pub fn evaluated(&self, table: &str) -> Option<Micros> {
        self.evaluated.get(table).copied()
    }

    /// Event rules over the rows of `topic` that pass `keep`.
    pub fn on_events(
        &mut self,
        topic: &str,
        kind: EventKind,
        rows: &Rows,
        keep: &dyn Fn(i32, i64) -> bool,
    ) -> Vec<Alert> {
        let mut alerts = Vec::new();
        for (rule, params) in &self.rules {
            let Trigger::Event { topic: t, fire } = rule.trigger else {
                continue;
            };
            if t != kind || !params.enabled() {
                continue;
            }
            let mut one = |partition: i32, offset: i64, fact: Fact<'_>| {
                if keep(partition, offset) {
                    if let Some(fired) = fire(&fact) {
                        alerts.push(event_alert(rule.name, topic, partition, offset, fired));
                    }
                }
            };
            match rows {
                Rows::Orders(v) => v
                    .iter()
                    .for_each(|(s, o)| one(s.partition, s.offset, Fact::Order(&o))),
                Rows::Clicks(v) => v
                    .iter()
                    .for_each(|(s, c)| one(s.partition, s.offset, Fact::Click(&c))),
                Rows::Errors(v) => v
                    .iter()
                    .for_each(|(s, e)| one(s.partition, s.offset, Fact::Error(&e))),
                Rows::DeadLetters(_) | Rows::Partials(..) => {}
            }
        }
        alerts
    }

    /// Window rules over every window of `w.kpi`'s table ending in (evaluated, until], in
    /// order; windows without a row count as zero.
    pub fn on_windows(&mut self, w: &ClosedWindows) -> Vec<Alert> {
        let table = w.kpi.table();
        let rules: Vec<(&'static Rule, Params)> = self
            .rules
            .iter()
            .filter(|(r, _)| matches!(r.trigger, Trigger::Window { table: t, .. } if t == table))
            .cloned()
            .collect();
        if rules.is_empty() {
            return Vec::new();
        }
        let evaluated = self.evaluated.get(table).copied();
        if evaluated.is_some_and(|e| w.until <= e) {
            return Vec::new();
        }
        let mut by_end: BTreeMap<Micros, Vec<&KpiRow>> = BTreeMap::new();
        for r in &w.rows {
            by_end.entry(r.end).or_default().push(r);
        }
        let mut alerts = Vec::new();
        let first_row = by_end.keys().next().copied();
        for end in lattice(evaluated, w.until, w.slide, first_row) {
            let rows = by_end.get(&end).map(Vec::as_slice).unwrap_or(&[]);
            let at = At {
                kpi: w.kpi,
                rows,
                start: end - w.size,
                end,
            };
            for (rule, params) in &rules {
                let Trigger::Window { check, .. } = &rule.trigger else {
                    continue;
                };
                match (check, params) {
                    (
                        WindowCheck::Anomaly {
                            metric,
                            group_by,
                            direction,
                            describe,
                        },
                        Params::Anomaly(p),
                    ) => alerts.extend(
                        self.anomaly(rule, p, &at, metric, *group_by, *direction, *describe),
                    ),
                    (
                        WindowCheck::Above {
                            metric,
                            volume,
                            describe,
                        },
                        Params::Threshold(p),
                    ) => alerts.extend(self.above(rule, p, &at, metric, volume, *describe)),
                    // A rule whose parameters do not fit its check cannot be built from the
                    // configuration (it is read into the defaults' shape), so it never fires.
                    _ => {}
                }
            }
        }
        self.evaluated.insert(table.to_string(), w.until);
        alerts
    }

    #[allow(clippy::too_many_arguments)]
    fn anomaly(
        &mut self,
        rule: &Rule,
        p: &AnomalyParams,
        at: &At<'_>,
        metric: &str,
        group_by: Option<&str>,
        direction: Direction,
        describe: fn(&Fired<'_>) -> String,
    ) -> Vec<Alert> {
        let mut alerts = Vec::new();
        let Some(group_by) = group_by else {
            let value = at.sum(metric, None);
            let key = SeriesKey::new(rule.name, None);
            if let Some(c) = push(&mut self.series, key, value, p, direction) {
                let column = |name: &str| at.sum(name, None);
                let fired = Fired {
                    key: "all",
                    value,
                    start: at.start,
                    end: at.end,
                    mean: c.mean,
                    threshold: c.threshold,
                    column: &column,
                };
                alerts.push(window_alert(rule.name, &fired, c.value, describe));
            }
            return alerts;
        };
        let mut groups: Vec<String> = self
            .series
            .keys()
            .filter(|k| k.rule == rule.name)
            .filter_map(|k| k.group.clone())
            .collect();
        groups.extend(at.groups(group_by));
        groups.sort();
        groups.dedup();
        for group in groups {
            let value = at.sum(metric, Some((group_by, &group)));
            let key = SeriesKey::new(rule.name, Some(&group));
            if let Some(c) = push(&mut self.series, key.clone(), value, p, direction) {
                let column = |name: &str| at.sum(name, Some((group_by, &group)));
                let fired = Fired {
                    key: &group,
                    value,
                    start: at.start,
                    end: at.end,
                    mean: c.mean,
                    threshold: c.threshold,
                    column: &column,
                };
                alerts.push(window_alert(rule.name, &fired, c.value, describe));
            }
            // A group silent for a whole history is forgotten.
            if self.series.get(&key).is_some_and(|s| s.is_flat_zero(p)) {
                self.series.remove(&key);
            }
        }
        alerts
    }

    fn above(
        &mut self,
        rule: &Rule,
        p: &ThresholdParams,
        at: &At<'_>,
        metric: &str,
        volume: &[&str],
        describe: fn(&Fired<'_>) -> String,
    ) -> Vec<Alert> {
        let row = at.rows.first().copied();
        let traffic: f64 = volume.iter().map(|c| at.sum(c, None)).sum();
        let rate = row.and_then(|r| at.value(r, metric));
        let series = self
            .series
            .entry(SeriesKey::new(rule.name, None))
            .or_default();
        let (firing, fires) = rate_crossing(p, rate, traffic as i64, series.firing());
        series.set(series.values(), firing);
        match (fires, rate, row) {
            (true, Some(r), Some(_)) => {
                let column = |name: &str| at.sum(name, None);
                let fired = Fired {
                    key: "all",
                    value: r,
                    start: at.start,
                    end: at.end,
                    mean: traffic,
                    threshold: p.threshold,
                    column: &column,
                };
                vec![window_alert(rule.name, &fired, r, describe)]
            }
            _ => Vec::new(),
        }
    }

    /// The topics [`Self::on_silence`] would report now: the caller asks the lake about them
    /// first, since what it saw move may not be all that moved.
    pub fn silent_due(&self, topics: &[Activity], now: Micros) -> Vec<String> {
        let mut due: Vec<String> = self
            .silences(topics, now)
            .into_iter()
            .map(|a| a.alert_key)
            .collect();
        due.sort();
        due.dedup();
        due
    }

    fn silences(&self, topics: &[Activity], now: Micros) -> Vec<Alert> {
        let mut alerts = Vec::new();
        for (rule, params) in &self.rules {
            let (Trigger::Silence, Params::Silence(p)) = (&rule.trigger, params) else {
                continue;
            };
            if !p.enabled {
                continue;
            }
            for a in topics {
                if let Some(alert) = silence(rule.name, p, a, now, &self.no_data) {
                    alerts.push(alert);
                }
            }
        }
        alerts
    }

    /// Silence rules: topics whose position has not moved for the rule's time.
    pub fn on_silence(&mut self, topics: &[Activity], now: Micros) -> Vec<Alert> {
        let alerts = self.silences(topics, now);
        for a in &alerts {
            if let Some(t) = topics.iter().find(|t| t.topic == a.alert_key) {
                self.no_data.insert(t.topic.clone(), t.position);
            }
        }
        alerts
    }
}

/// The windows of one end, as rules read them.
struct At<'a> {
    kpi: &'static dyn Kpi,
    rows: &'a [&'a KpiRow],
    start: Micros,
    end: Micros,
}

impl At<'_> {
    fn value(&self, row: &KpiRow, column: &str) -> Option<f64> {
        row.values.get(self.kpi.column(column)?)?.as_f64()
    }

    /// Sum of `column` over the rows (those of one group when given); 0 without rows.
    fn sum(&self, column: &str, group: Option<(&str, &str)>) -> f64 {
        let group = group.and_then(|(c, g)| Some((self.kpi.column(c)?, g)));
        self.rows
            .iter()
            .filter(|r| {
                group.is_none_or(|(i, g)| r.values.get(i).and_then(|v| v.as_str()) == Some(g))
            })
            .filter_map(|r| self.value(r, column))
            .sum()
    }

    fn groups(&self, column: &str) -> Vec<String> {
        let Some(i) = self.kpi.column(column) else {
            return Vec::new();
        };
        self.rows
            .iter()
            .filter_map(|r| r.values.get(i)?.as_str().map(str::to_string))
            .collect()
    }
}

/// A series starts with its first non-zero window: zeros before it mean nothing.
fn push(
    series: &mut BTreeMap<SeriesKey, Series>,
    key: SeriesKey,
    value: f64,
    p: &AnomalyParams,
    direction: Direction,
) -> Option<super::Crossing> {
    let series = series.entry(key).or_default();
    if series.is_empty() && value == 0.0 {
        return None;
    }
    series.push(value, p, direction)
}

fn silence(
    name: &str,
    p: &SilenceParams,
    a: &Activity,
    now: Micros,
    reported: &BTreeMap<String, i64>,
) -> Option<Alert> {
    let silent = now - a.last_moved;
    let after = p.after_s as i64 * 1_000_000;
    if silent < after || reported.get(&a.topic) == Some(&a.position) {
        return None;
    }
    Some(Alert {
        alert_id: alert_id(name, &a.topic, &a.position.to_string()),
        alert_type: static_name(name),
        description: format!("No data on topic {} for {} s", a.topic, silent / 1_000_000),
        alert_timestamp: now,
        metric_value: silent as f64 / 1e6,
        alert_key: a.topic.clone(),
        window_start: None,
        window_end: None,
        threshold: Some(after as f64 / 1e6),
        source_topic: Some(a.topic.clone()),
        source_partition: None,
        source_offset: None,
    })
}

/// Rule names are `&'static str` in the registry; alerts carry the registry's copy.
fn static_name(name: &str) -> &'static str {
    super::rules::RULES
        .iter()
        .map(|r| r.name)
        .find(|n| *n == name)
        .unwrap_or("UNKNOWN")
}

/// An alert about one window (its start is the id's mark).
fn window_alert(
    name: &str,
    fired: &Fired<'_>,
    value: f64,
    describe: fn(&Fired<'_>) -> String,
) -> Alert {
    Alert {
        alert_id: alert_id(name, fired.key, &fired.start.to_string()),
        alert_type: static_name(name),
        description: describe(fired),
        alert_timestamp: fired.end,
        metric_value: value,
        alert_key: fired.key.to_string(),
        window_start: Some(fired.start),
        window_end: Some(fired.end),
        threshold: Some(fired.threshold),
        source_topic: None,
        source_partition: None,
        source_offset: None,
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

#[cfg(test)]
#[path = "evaluator_tests.rs"]
mod tests;
