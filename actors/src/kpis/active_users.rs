//! `active_users_per_window` (seed): exact distinct `user_id` over clicks per 5-minute window
//! sliding 1 minute (a set per pane; the window's count is the size of the union, not an
//! estimate, whatever the seed's column name says).

use foldhash::{HashSet, HashSetExt};

use super::view::{Card, Format, Measure, Read, View};
use super::{KpiDef, KpiRow, WindowDefaults};
use crate::events::{EventKind, Micros};
use crate::schema::columns::{col, Column, ColumnType::*, Value};
use crate::windows::{Acc, Fact};

pub struct ActiveUsers;

/// The seed's name; the count is exact.
pub const ACTIVE_USERS: Column = col("active_users_approx", Long);

impl KpiDef for ActiveUsers {
    const NAME: &'static str = "active_users";
    const TABLE: &'static str = "active_users_per_window";
    const INPUTS: &'static [EventKind] = &[EventKind::Clicks];
    const COUNTS_LATE: &'static [EventKind] = &[EventKind::Clicks];
    const WINDOW: WindowDefaults = WindowDefaults {
        size_s: 300,
        slide_s: 60,
        lateness_s: 10,
        seed_lateness_s: 360,
    };
    const COLUMNS: &'static [Column] = &[ACTIVE_USERS];
    const VIEW: Option<View> = Some(View {
        read: Read::Newest {
            minutes: 15,
            limit: 16,
        },
        cards: &[Card {
            id: "active_users",
            title: "Active users",
            note: "distinct users who clicked, 5-min window",
            measure: Measure::Newest(ACTIVE_USERS),
            format: Format::Count,
            inverse: false,
            rows: None,
        }],
        charts: &[],
    });
    type Acc = UsersAcc;
    fn row(r: &UsersRow) -> KpiRow {
        KpiRow {
            start: r.window_start,
            end: r.window_end,
            values: vec![Value::Long(r.active_users)],
        }
    }
}

#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct UsersAcc {
    users: HashSet<Box<str>>,
    #[serde(skip)]
    budget: super::KeyBudget,
}

#[derive(Clone, Debug, PartialEq)]
pub struct UsersRow {
    pub window_start: Micros,
    pub window_end: Micros,
    pub active_users: i64,
}

impl Acc for UsersAcc {
    type Row = UsersRow;
    fn add(&mut self, fact: &Fact<'_>) {
        if let Fact::Click(c) = fact {
            if !self.users.contains(&*c.user_id) && self.budget.admit(c.user_id.len()) {
                self.users.insert((&*c.user_id).into());
            }
        }
    }
    fn merge(&mut self, other: Self) {
        super::union_into(&mut self.users, &mut self.budget, other.users);
    }
    fn window_rows(panes: &[&Self], start: Micros, end: Micros) -> Vec<UsersRow> {
        let biggest = panes.iter().map(|p| p.users.len()).max().unwrap_or(0);
        let mut union: HashSet<&str> = HashSet::with_capacity(biggest * 2);
        for p in panes {
            union.extend(p.users.iter().map(|u| &**u));
        }
        if union.is_empty() {
            return Vec::new();
        }
        vec![UsersRow {
            window_start: start,
            window_end: end,
            active_users: union.len() as i64,
        }]
    }
}
