//! `conversion_per_minute` (ours): orders, clicks, distinct ordering and clicking users and
//! conversion = orders ÷ clicks per 1-minute window sliding 30 s; NULL without clicks.
//! Users are exact (a set per pane, like active users).

use foldhash::{HashSet, HashSetExt};

use super::view::{Chart, Format, Measure, Read, Series, View};
use super::{KpiDef, KpiRow, MINUTE};
use crate::events::{EventKind, Micros};
use crate::schema::columns::{col, Column, ColumnType::*, Value};
use crate::windows::{Acc, Fact};

pub struct Conversion;

pub const ORDERS_COUNT: Column = col("orders_count", Long);
pub const CLICKS_COUNT: Column = col("clicks_count", Long);
pub const ORDERING_USERS: Column = col("ordering_users", Long);
pub const CLICKING_USERS: Column = col("clicking_users", Long);
pub const CONVERSION_RATE: Column = col("conversion_rate", Double);

impl KpiDef for Conversion {
    const NAME: &'static str = "conversion";
    const TABLE: &'static str = "conversion_per_minute";
    const INPUTS: &'static [EventKind] = &[EventKind::Orders, EventKind::Clicks];
    const WINDOW: super::WindowDefaults = MINUTE;
    const COLUMNS: &'static [Column] = &[
        ORDERS_COUNT,
        CLICKS_COUNT,
        ORDERING_USERS,
        CLICKING_USERS,
        CONVERSION_RATE,
    ];
    const VIEW: Option<View> = Some(View {
        read: Read::Trend,
        cards: &[],
        charts: &[Chart::line(
            "conversion",
            "Conversion",
            "orders ÷ clicks, all devices",
            &[Series {
                label: "all",
                measure: Measure::Ratio(&[ORDERS_COUNT], &[CLICKS_COUNT]),
            }],
            Format::Percent,
            None,
        )],
    });
    type Acc = ConversionAcc;
    fn row(r: &ConversionRow) -> KpiRow {
        KpiRow {
            start: r.window_start,
            end: r.window_end,
            values: vec![
                Value::Long(r.orders),
                Value::Long(r.clicks),
                Value::Long(r.ordering_users),
                Value::Long(r.clicking_users),
                Value::opt_f64(r.conversion),
            ],
        }
    }
}

#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct ConversionAcc {
    orders: i64,
    clicks: i64,
    ordering: HashSet<Box<str>>,
    clicking: HashSet<Box<str>>,
    #[serde(skip)]
    budget: super::KeyBudget,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ConversionRow {
    pub window_start: Micros,
    pub window_end: Micros,
    pub orders: i64,
    pub clicks: i64,
    pub ordering_users: i64,
    pub clicking_users: i64,
    pub conversion: Option<f64>,
}

fn remember(set: &mut HashSet<Box<str>>, budget: &mut super::KeyBudget, user: &str) {
    if !set.contains(user) && budget.admit(user.len()) {
        set.insert(user.into());
    }
}

fn union_len<'a>(sets: impl Iterator<Item = &'a HashSet<Box<str>>>) -> i64 {
    let mut union: HashSet<&str> = HashSet::new();
    for s in sets {
        union.extend(s.iter().map(|u| &**u));
    }
    union.len() as i64
}

impl Acc for ConversionAcc {
    type Row = ConversionRow;
    fn add(&mut self, fact: &Fact<'_>) {
        match fact {
            Fact::Order(o) => {
                self.orders += 1;
                remember(&mut self.ordering, &mut self.budget, &o.user_id);
            }
            Fact::Click(c) => {
                self.clicks += 1;
                remember(&mut self.clicking, &mut self.budget, &c.user_id);
            }
            Fact::Error(_) => {}
        }
    }
    fn merge(&mut self, o: Self) {
        self.orders += o.orders;
        self.clicks += o.clicks;
        super::union_into(&mut self.ordering, &mut self.budget, o.ordering);
        super::union_into(&mut self.clicking, &mut self.budget, o.clicking);
    }
    fn window_rows(panes: &[&Self], start: Micros, end: Micros) -> Vec<ConversionRow> {
        let orders: i64 = panes.iter().map(|p| p.orders).sum();
        let clicks: i64 = panes.iter().map(|p| p.clicks).sum();
        if orders == 0 && clicks == 0 {
            return Vec::new();
        }
        vec![ConversionRow {
            window_start: start,
            window_end: end,
            orders,
            clicks,
            ordering_users: union_len(panes.iter().map(|p| &p.ordering)),
            clicking_users: union_len(panes.iter().map(|p| &p.clicking)),
            conversion: (clicks > 0).then(|| orders as f64 / clicks as f64),
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kpis::fixtures::{click, order};

    #[test]
    fn conversion_table() {
        // (orders by user, clicks by user per pane) → (orders, clicks, ordering, clicking, rate)
        let cases: &[(
            &[&[&str]],
            &[&[&str]],
            Option<(i64, i64, i64, i64, Option<f64>)>,
        )] = &[
            (&[&[]], &[&[]], None),
            (&[&["a"]], &[&[]], Some((1, 0, 1, 0, None))),
            (
                &[&["a", "a"]],
                &[&["a", "b", "b", "c"]],
                Some((2, 4, 1, 3, Some(0.5))),
            ),
            // Two panes: users are counted once over the window, events every time.
            (
                &[&["a"], &["a", "b"]],
                &[&["a"], &["a"]],
                Some((3, 2, 2, 1, Some(1.5))),
            ),
        ];
        for (orders, clicks, want) in cases {
            let panes: Vec<ConversionAcc> = orders
                .iter()
                .zip(clicks.iter())
                .map(|(o, c)| {
                    let mut acc = ConversionAcc::default();
                    for u in *o {
                        acc.add(&Fact::Order(&order(u)));
                    }
                    for u in *c {
                        acc.add(&Fact::Click(&click(u, "mobile")));
                    }
                    acc
                })
                .collect();
            let refs: Vec<&ConversionAcc> = panes.iter().collect();
            let got = ConversionAcc::window_rows(&refs, 0, 60).first().map(|r| {
                (
                    r.orders,
                    r.clicks,
                    r.ordering_users,
                    r.clicking_users,
                    r.conversion,
                )
            });
            assert_eq!(got, *want, "{orders:?} {clicks:?}");
        }
    }
}
