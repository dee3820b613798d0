//! `traffic_per_minute` (ours): traffic and error rate per 1-minute window sliding 30 s across
//! the three topics. error_rate = (ERROR + FATAL) / (orders + clicks); NULL without traffic.

use super::view::{Card, Chart, Format, Measure, Read, Rows, Series, View};
use super::{KpiDef, KpiRow, MINUTE};
use crate::events::{EventKind, Micros};
use crate::schema::columns::{col, Column, ColumnType::*, Value};
use crate::windows::{Acc, Fact};

pub struct Traffic;

pub const ORDERS_COUNT: Column = col("orders_count", Long);
pub const CLICKS_COUNT: Column = col("clicks_count", Long);
pub const WARN_COUNT: Column = col("warn_count", Long);
pub const ERROR_COUNT: Column = col("error_count", Long);
pub const FATAL_COUNT: Column = col("fatal_count", Long);
pub const ERROR_RATE: Column = col("error_rate", Double);
/// What the error figures count, and what they are a rate of.
const SERIOUS: &[Column] = &[ERROR_COUNT, FATAL_COUNT];
const SEEN: &[Column] = &[ORDERS_COUNT, CLICKS_COUNT];

impl KpiDef for Traffic {
    const NAME: &'static str = "traffic";
    const TABLE: &'static str = "traffic_per_minute";
    const INPUTS: &'static [EventKind] = &[EventKind::Orders, EventKind::Clicks, EventKind::Errors];
    const WINDOW: super::WindowDefaults = MINUTE;
    const COLUMNS: &'static [Column] = &[
        ORDERS_COUNT,
        CLICKS_COUNT,
        WARN_COUNT,
        ERROR_COUNT,
        FATAL_COUNT,
        ERROR_RATE,
    ];
    const VIEW: Option<View> = Some(View {
        read: Read::Trend,
        cards: &[
            Card {
                id: "errors",
                title: "Errors",
                note: "ERROR + FATAL",
                measure: Measure::Sum(SERIOUS),
                format: Format::Count,
                inverse: true,
                rows: Some(Rows::SeriousErrors),
            },
            Card {
                id: "error_rate",
                title: "Error rate",
                note: "(ERROR + FATAL) ÷ (orders + clicks)",
                measure: Measure::Ratio(SERIOUS, SEEN),
                format: Format::Percent,
                inverse: true,
                rows: Some(Rows::SeriousErrors),
            },
        ],
        charts: &[Chart::line(
            "errors",
            "Errors",
            "ERROR + FATAL",
            &[Series {
                label: "errors",
                measure: Measure::Sum(SERIOUS),
            }],
            Format::Count,
            Some(Rows::SeriousErrors),
        )],
    });
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

#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
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
    fn merge(&mut self, o: Self) {
        self.orders += o.orders;
        self.clicks += o.clicks;
        self.warn += o.warn;
        self.error += o.error;
        self.fatal += o.fatal;
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
