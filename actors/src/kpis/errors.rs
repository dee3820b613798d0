//! `errors_per_minute` (seed): one row per (service, severity) per 1-minute window sliding 30 s.

use std::collections::BTreeMap;

use super::{KpiDef, KpiRow, MINUTE};
use crate::events::{EventKind, Micros};
use crate::schema::columns::{col, Column, ColumnType::*, Value};
use crate::windows::{Acc, Fact};

pub struct Errors;

impl KpiDef for Errors {
    const NAME: &'static str = "errors";
    const TABLE: &'static str = "errors_per_minute";
    const INPUTS: &'static [EventKind] = &[EventKind::Errors];
    const COUNTS_LATE: &'static [EventKind] = &[EventKind::Errors];
    const WINDOW: super::WindowDefaults = MINUTE;
    const COLUMNS: &'static [Column] = &[
        col("service_name", Str),
        col("severity", Str),
        col("error_count", Long),
    ];
    type Acc = ErrorsAcc;
    fn row(r: &ErrorsRow) -> KpiRow {
        KpiRow {
            start: r.window_start,
            end: r.window_end,
            values: vec![
                Value::Str(r.service_name.clone()),
                Value::Str(r.severity.clone()),
                Value::Long(r.error_count),
            ],
        }
    }
}

#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(into = "ErrorsParts", from = "ErrorsParts")]
pub struct ErrorsAcc {
    counts: BTreeMap<(Box<str>, Box<str>), i64>,
    budget: super::KeyBudget,
}

/// How a pane's counts travel (JSON maps take only string keys): (service, severity, count).
#[derive(serde::Serialize, serde::Deserialize)]
struct ErrorsParts(Vec<(Box<str>, Box<str>, i64)>);

impl From<ErrorsAcc> for ErrorsParts {
    fn from(a: ErrorsAcc) -> Self {
        ErrorsParts(a.counts.into_iter().map(|((s, v), n)| (s, v, n)).collect())
    }
}

impl From<ErrorsParts> for ErrorsAcc {
    fn from(p: ErrorsParts) -> Self {
        let mut acc = ErrorsAcc::default();
        for (s, v, n) in p.0 {
            *acc.counts.entry((s, v)).or_insert(0) += n;
        }
        acc
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ErrorsRow {
    pub window_start: Micros,
    pub window_end: Micros,
    pub service_name: String,
    pub severity: String,
    pub error_count: i64,
}

impl Acc for ErrorsAcc {
    type Row = ErrorsRow;
    fn add(&mut self, fact: &Fact<'_>) {
        if let Fact::Error(e) = fact {
            let (service, severity) = (&*e.service_name, e.severity);
            // Look up by borrowed key first: most events hit an existing (service, severity).
            if let Some(n) = self
                .counts
                .iter_mut()
                .find(|((s, v), _)| &**s == service && &**v == severity)
                .map(|(_, n)| n)
            {
                *n += 1;
            } else if self.budget.admit(service.len()) {
                self.counts.insert((service.into(), severity.into()), 1);
            }
        }
    }
    fn merge(&mut self, o: Self) {
        for (key, n) in o.counts {
            match self.counts.get_mut(&key) {
                Some(m) => *m += n,
                None => {
                    if self.budget.admit(key.0.len()) {
                        self.counts.insert(key, n);
                    }
                }
            }
        }
    }
    fn window_rows(panes: &[&Self], start: Micros, end: Micros) -> Vec<ErrorsRow> {
        let mut total: BTreeMap<(&str, &str), i64> = BTreeMap::new();
        for p in panes {
            for ((s, v), n) in &p.counts {
                *total.entry((s, v)).or_insert(0) += n;
            }
        }
        total
            .into_iter()
            .map(|((s, v), n)| ErrorsRow {
                window_start: start,
                window_end: end,
                service_name: s.to_string(),
                severity: v.to_string(),
                error_count: n,
            })
            .collect()
    }
}
