//! `traffic_per_minute` (ours): traffic and error rate per 1-minute window sliding 30 s across
//! the three topics. error_rate = (ERROR + FATAL) / (orders + clicks); NULL without traffic.

use super::{Dashboard, KpiDef, KpiRow, MINUTE};
use crate::events::{EventKind, Micros};
use crate::schema::columns::{col, Column, ColumnType::*, Value};
use crate::windows::{Acc, Fact};

pub struct Traffic;

impl KpiDef for Traffic {
    const NAME: &'static str = "traffic";
    const TABLE: &'static str = "traffic_per_minute";
    const INPUTS: &'static [EventKind] = &[EventKind::Orders, EventKind::Clicks, EventKind::Errors];
    const WINDOW: super::WindowDefaults = MINUTE;
    const COLUMNS: &'static [Column] = &[
        col("orders_count", Long),
        col("clicks_count", Long),
        col("warn_count", Long),
        col("error_count", Long),
        col("fatal_count", Long),
        col("error_rate", Double),
    ];
    const DASHBOARD: Option<Dashboard> = Some(Dashboard::Trend);
    type Acc = TrafficAcc;
    fn row(r: &TrafficRow) -> KpiRow {
        KpiRow {
            start: r.window_start,
            end: r.window_end,
            values: vec![
                Value::Long(r.orders_count),
                Value::Long(r.clicks_count),
                Value::Long(r.warn_count),
                Value::Long(r.error_count),
                Value::Long(r.fatal_count),
                Value::opt_f64(r.error_rate),
            ],
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct TrafficAcc {
    orders: i64,
    clicks: i64,
    warn: i64,
    error: i64,
    fatal: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TrafficRow {
    pub window_start: Micros,
    pub window_end: Micros,
    pub orders_count: i64,
    pub clicks_count: i64,
    pub warn_count: i64,
    pub error_count: i64,
    pub fatal_count: i64,
    pub error_rate: Option<f64>,
}

impl TrafficRow {
    pub fn events(&self) -> i64 {
        self.orders_count
            + self.clicks_count
            + self.warn_count
            + self.error_count
            + self.fatal_count
    }
}

impl Acc for TrafficAcc {
    type Row = TrafficRow;
    fn add(&mut self, fact: &Fact<'_>) {
        match fact {
            Fact::Order(_) => self.orders += 1,
            Fact::Click(_) => self.clicks += 1,
            Fact::Error(e) => match e.severity {
                "FATAL" => self.fatal += 1,
                "ERROR" => self.error += 1,
                _ => self.warn += 1,
            },
        }
    }
    fn window_rows(panes: &[&Self], start: Micros, end: Micros) -> Vec<TrafficRow> {
        let sum = |f: fn(&TrafficAcc) -> i64| panes.iter().map(|p| f(p)).sum::<i64>();
        let row = TrafficRow {
            window_start: start,
            window_end: end,
            orders_count: sum(|p| p.orders),
            clicks_count: sum(|p| p.clicks),
            warn_count: sum(|p| p.warn),
            error_count: sum(|p| p.error),
            fatal_count: sum(|p| p.fatal),
            error_rate: None,
        };
        if row.events() == 0 {
            return Vec::new();
        }
        let traffic = row.orders_count + row.clicks_count;
        let error_rate =
            (traffic > 0).then(|| (row.error_count + row.fatal_count) as f64 / traffic as f64);
        vec![TrafficRow { error_rate, ..row }]
    }
}
