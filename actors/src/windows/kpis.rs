//! The KPIs: pane accumulators and the rows they produce (the seed's columns, then ours).

use std::collections::{BTreeMap, HashSet};

use super::engine::{Acc, Fact};
use crate::events::Micros;

/// `orders_revenue_per_minute`: orders and Σ quantity × price per window.
#[derive(Clone, Debug, Default)]
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
        if let Fact::Order { total } = fact {
            self.count += 1;
            self.revenue += total;
        }
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

/// `active_users_per_window`: exact distinct `user_id` over clicks (a set per pane; the
/// window's count is the size of the union, not an estimate).
#[derive(Clone, Debug, Default)]
pub struct UsersAcc {
    users: HashSet<Box<str>>,
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
        if let Fact::Click { user_id } = fact {
            if !self.users.contains(*user_id) {
                self.users.insert((*user_id).into());
            }
        }
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

/// `errors_per_minute`: one row per (service, severity) per window.
#[derive(Clone, Debug, Default)]
pub struct ErrorsAcc {
    counts: BTreeMap<(Box<str>, Box<str>), i64>,
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
        if let Fact::Error { service, severity } = fact {
            // Look up by borrowed key first: most events hit an existing (service, severity).
            if let Some(n) = self
                .counts
                .iter_mut()
                .find(|((s, v), _)| &**s == *service && &**v == *severity)
                .map(|(_, n)| n)
            {
                *n += 1;
            } else {
                self.counts
                    .insert(((*service).into(), (*severity).into()), 1);
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

/// `traffic_per_minute` (ours): traffic and error rate per window across the three topics.
/// error_rate = (ERROR + FATAL) / (orders + clicks); NULL when there was no traffic.
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
            Fact::Order { .. } => self.orders += 1,
            Fact::Click { .. } => self.clicks += 1,
            Fact::Error { severity, .. } => match *severity {
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
