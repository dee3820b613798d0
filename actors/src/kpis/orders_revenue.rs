//! `orders_revenue_per_minute` (seed): orders and revenue (Σ quantity × price) per 1-minute
//! window sliding 30 s.

use super::view::{Card, Chart, Format, Measure, Read, Rows, Series, View};
use super::{KpiDef, KpiRow, MINUTE};
use crate::events::{EventKind, Micros};
use crate::schema::columns::{col, Column, ColumnType::*, Value};
use crate::windows::{Acc, Fact};

pub struct OrdersRevenue;

pub const ORDERS_COUNT: Column = col("orders_count", Long);
pub const TOTAL_REVENUE: Column = col("total_revenue", Double);

impl KpiDef for OrdersRevenue {
    const NAME: &'static str = "orders_revenue";
    const TABLE: &'static str = "orders_revenue_per_minute";
    const INPUTS: &'static [EventKind] = &[EventKind::Orders];
    const COUNTS_LATE: &'static [EventKind] = &[EventKind::Orders];
    const WINDOW: super::WindowDefaults = MINUTE;
    const COLUMNS: &'static [Column] = &[ORDERS_COUNT, TOTAL_REVENUE];
    const VIEW: Option<View> = Some(View {
        read: Read::Trend,
        cards: &[
            Card {
                id: "orders",
                title: "Orders",
                note: "orders placed",
                measure: Measure::Sum(&[ORDERS_COUNT]),
                format: Format::Count,
                inverse: false,
                rows: Some(Rows::Orders),
            },
            Card {
                id: "revenue",
                title: "Revenue",
                note: "Σ quantity × price",
                measure: Measure::Sum(&[TOTAL_REVENUE]),
                format: Format::Money,
                inverse: false,
                rows: Some(Rows::Orders),
            },
        ],
        charts: &[
            Chart::line(
                "orders",
                "Orders",
                "orders placed",
                &[Series {
                    label: "orders",
                    measure: Measure::Sum(&[ORDERS_COUNT]),
                }],
                Format::Count,
                Some(Rows::Orders),
            ),
            Chart::line(
                "revenue",
                "Revenue",
                "Σ quantity × price",
                &[Series {
                    label: "revenue",
                    measure: Measure::Sum(&[TOTAL_REVENUE]),
                }],
                Format::Money,
                Some(Rows::Orders),
            ),
        ],
    });
    type Acc = OrdersAcc;
    fn row(r: &OrdersRow) -> KpiRow {
        KpiRow {
            start: r.window_start,
            end: r.window_end,
            values: vec![Value::Long(r.orders_count), Value::Double(r.total_revenue)],
        }
    }
}

#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct OrdersAcc {
    count: i64,
    revenue: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct OrdersRow {
    pub window_start: Micros,
    pub window_end: Micros,
    pub orders_count: i64,
    pub total_revenue: f64,
}

impl Acc for OrdersAcc {
    type Row = OrdersRow;
    fn add(&mut self, fact: &Fact<'_>) {
        if let Fact::Order(o) = fact {
            self.count += 1;
            self.revenue += f64::from(o.quantity) * o.price;
        }
    }
    fn merge(&mut self, other: Self) {
        self.count += other.count;
        self.revenue += other.revenue;
    }
    fn window_rows(panes: &[&Self], start: Micros, end: Micros) -> Vec<OrdersRow> {
        let count: i64 = panes.iter().map(|p| p.count).sum();
        if count == 0 {
            return Vec::new();
        }
        vec![OrdersRow {
            window_start: start,
            window_end: end,
            orders_count: count,
            total_revenue: panes.iter().map(|p| p.revenue).sum(),
        }]
    }
}
