//! What the page shows, computed from the KPI query results: cards with the previous period,
//! the 30-minute trends, alerts and the latest rows. Pure, so the definitions are tested here.
//!
//! Definitions (README "Dashboard"): a period is the 5 newest whole-minute windows in the lake
//! (sliding windows start every 30 s, so only windows that start on a whole minute are summed:
//! each event counted once); the previous period is the 5 minutes before it.

use std::collections::BTreeMap;

use arrow_array::RecordBatch;
use serde::Serialize;
use serde_json::{json, Value};

use super::results::Cols;
pub use super::results::{
    conversion, device_conversion, rows, top_products, Kind, ALERT_COLUMNS, ERROR_COLUMNS,
    ORDER_COLUMNS,
};

pub const PERIOD_MS: i64 = 5 * 60_000;
pub const TREND_MS: i64 = 30 * 60_000;

/// One whole-minute window of the orders and traffic tables, joined on its start.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Minute {
    pub start_ms: i64,
    pub end_ms: i64,
    pub orders: i64,
    pub revenue: f64,
    pub clicks: i64,
    pub warn: i64,
    /// ERROR + FATAL.
    pub errors: i64,
    pub fatal: i64,
    /// Orders as the traffic table counted them (the error rate's denominator).
    pub seen_orders: i64,
    /// A running value of a window not closed yet (pushed by the aggregators), not the lake's.
    pub provisional: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Card {
    pub value: Option<f64>,
    pub previous: Option<f64>,
    /// value − previous.
    pub delta: Option<f64>,
    /// True when a rise is bad (errors): the page colours the delta the other way round.
    pub inverse: bool,
    /// The value includes a window that is still open (it will move, then turn exact).
    pub provisional: bool,
}

impl Card {
    fn new(value: Option<f64>, previous: Option<f64>, inverse: bool, provisional: bool) -> Card {
        Card {
            value,
            previous,
            delta: value.zip(previous).map(|(v, p)| v - p),
            inverse,
            provisional: provisional && value.is_some(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Kpis {
    /// End of the newest whole-minute window counted (ms, UTC); None on an empty lake.
    pub as_of_ms: Option<i64>,
    /// End of the newest closed (exact) whole-minute window counted.
    pub exact_as_of_ms: Option<i64>,
    pub period_s: i64,
    pub orders: Card,
    pub revenue: Card,
    pub active_users: Card,
    pub errors: Card,
    pub error_rate: Card,
}

/// The newest `window_end` in a KPI result.
pub fn newest_end(batches: &[RecordBatch]) -> Option<i64> {
    Cols(batches).ts("window_end").into_iter().flatten().max()
}

/// What the cards and trends are computed from: whole minutes by start, and the active-users
/// windows by end (count, provisional).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Facts {
    pub minutes: BTreeMap<i64, Minute>,
    pub users: BTreeMap<i64, (i64, bool)>,
}

impl Facts {
    /// Read the `orders_revenue`, `traffic` and `active_users` results (exact, from the lake,
    /// or provisional, from the aggregators).
    pub fn read(
        orders: &[RecordBatch],
        traffic: &[RecordBatch],
        users: &[RecordBatch],
        provisional: bool,
    ) -> Facts {
        let mut by_start: BTreeMap<i64, Minute> = BTreeMap::new();
        fn minute(
            by_start: &mut BTreeMap<i64, Minute>,
            s: i64,
            e: i64,
            provisional: bool,
        ) -> &mut Minute {
            by_start.entry(s).or_insert(Minute {
                start_ms: s,
                end_ms: e,
                provisional,
                ..Minute::default()
            })
        }
        let o = Cols(orders);
        let (starts, ends) = (o.ts("window_start"), o.ts("window_end"));
        let (counts, revenue) = (o.i64("orders_count"), o.f64("total_revenue"));
        for i in 0..starts.len() {
            // Windows slide by 30 s; only whole-minute ones tile time without overlap.
            let (Some(s), Some(e)) = (starts[i].filter(|s| s % 60_000 == 0), ends[i]) else {
                continue;
            };
            let m = minute(&mut by_start, s, e, provisional);
            m.orders = counts[i].unwrap_or(0);
            m.revenue = revenue[i].unwrap_or(0.0);
        }
        let t = Cols(traffic);
        let (starts, ends) = (t.ts("window_start"), t.ts("window_end"));
        let (seen, clicks, warn, error, fatal) = (
            t.i64("orders_count"),
            t.i64("clicks_count"),
            t.i64("warn_count"),
            t.i64("error_count"),
            t.i64("fatal_count"),
        );
        for i in 0..starts.len() {
            let (Some(s), Some(e)) = (starts[i].filter(|s| s % 60_000 == 0), ends[i]) else {
                continue;
            };
            let m = minute(&mut by_start, s, e, provisional);
            m.seen_orders = seen[i].unwrap_or(0);
            m.clicks = clicks[i].unwrap_or(0);
            m.warn = warn[i].unwrap_or(0);
            m.fatal = fatal[i].unwrap_or(0);
            m.errors = error[i].unwrap_or(0) + m.fatal;
        }
        let u = Cols(users);
        let users = u
            .ts("window_end")
            .into_iter()
            .zip(u.i64("active_users_approx"))
            .filter_map(|(e, n)| Some((e?, (n?, provisional))))
            .collect();
        Facts {
            minutes: by_start,
            users,
        }
    }

    /// These exact facts with `open` laid over them where the lake has nothing yet: a minute
    /// or window the lake holds is always shown from the lake.
    pub fn with_open(&self, open: &Facts) -> Facts {
        let mut out = self.clone();
        for (s, m) in &open.minutes {
            out.minutes.entry(*s).or_insert_with(|| m.clone());
        }
        for (e, n) in &open.users {
            out.users.entry(*e).or_insert(*n);
        }
        out
    }
}

/// The cards of exact lake results (the tables' tests read through this).
#[cfg(test)]
pub fn kpis(orders: &[RecordBatch], traffic: &[RecordBatch], users: &[RecordBatch]) -> Kpis {
    cards(&Facts::read(orders, traffic, users, false))
}

/// The cards: the 5 newest whole minutes and the 5 before them; active users from the newest
/// 5-minute window and the one that ended 5 minutes earlier.
pub fn cards(f: &Facts) -> Kpis {
    cards_over(f, PERIOD_MS)
}

/// The cards over any period (a time range of the page): its newest whole minutes, the same
/// span before them, and active users against the window one period earlier.
pub fn cards_over(f: &Facts, period_ms: i64) -> Kpis {
    let mins: Vec<&Minute> = f.minutes.values().collect();
    let as_of = mins.iter().map(|m| m.end_ms).max();
    let exact_as_of = mins
        .iter()
        .filter(|m| !m.provisional)
        .map(|m| m.end_ms)
        .max();
    struct Period {
        orders: i64,
        revenue: f64,
        errors: i64,
        seen: i64,
        provisional: bool,
    }
    let period = |from: i64, to: i64| -> Option<Period> {
        let inside: Vec<&&Minute> = mins
            .iter()
            .filter(|m| m.end_ms > from && m.end_ms <= to)
            .collect();
        if inside.is_empty() {
            return None;
        }
        Some(Period {
            orders: inside.iter().map(|m| m.orders).sum(),
            revenue: inside.iter().map(|m| m.revenue).sum(),
            errors: inside.iter().map(|m| m.errors).sum(),
            seen: inside.iter().map(|m| m.seen_orders + m.clicks).sum(),
            provisional: inside.iter().any(|m| m.provisional),
        })
    };
    let (now, before) = match as_of {
        Some(e) => (
            period(e - period_ms, e),
            period(e - 2 * period_ms, e - period_ms),
        ),
        None => (None, None),
    };
    let rate = |p: &Option<Period>| {
        p.as_ref()
            .and_then(|p| (p.seen > 0).then(|| p.errors as f64 / p.seen as f64))
    };
    let open = now.as_ref().is_some_and(|p| p.provisional);
    // Active users: the newest 5-minute window, and the one a period before it. An open window
    // ending after the newest minute counted has seen only its first minutes: left out.
    let latest_users = f
        .users
        .iter()
        .filter(|(e, (_, open))| !open || as_of.is_none_or(|a| **e <= a))
        .next_back()
        .map(|(e, n)| (*e, *n));
    let users_now = latest_users.map(|(_, (n, _))| n as f64);
    let users_open = latest_users.is_some_and(|(_, (_, p))| p);
    let users_before = latest_users
        .and_then(|(e, _)| f.users.get(&(e - period_ms)))
        .map(|(n, _)| *n as f64);
    let field = |p: &Option<Period>, get: fn(&Period) -> f64| p.as_ref().map(get);
    Kpis {
        as_of_ms: as_of,
        exact_as_of_ms: exact_as_of,
        period_s: period_ms / 1000,
        orders: Card::new(
            field(&now, |p| p.orders as f64),
            field(&before, |p| p.orders as f64),
            false,
            open,
        ),
        revenue: Card::new(
            field(&now, |p| round2(p.revenue)),
            field(&before, |p| round2(p.revenue)),
            false,
            open,
        ),
        active_users: Card::new(users_now, users_before, false, users_open),
        errors: Card::new(
            field(&now, |p| p.errors as f64),
            field(&before, |p| p.errors as f64),
            true,
            open,
        ),
        error_rate: Card::new(rate(&now), rate(&before), true, open),
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// The 30-minute trends, one point per whole minute: `[start_ms, orders, revenue]` and
/// `[start_ms, errors, warnings, error_rate]`.
#[cfg(test)]
pub fn series(orders: &[RecordBatch], traffic: &[RecordBatch]) -> Value {
    series_of(&Facts::read(orders, traffic, &[], false))
}

/// The trends of `facts`; `provisional_from` is the first point still open (null if none).
pub fn series_of(f: &Facts) -> Value {
    let last = f.minutes.values().map(|m| m.end_ms).max().unwrap_or(0);
    let recent: Vec<&Minute> = f
        .minutes
        .values()
        .filter(|m| m.end_ms > last - TREND_MS)
        .collect();
    json!({
        "orders": recent.iter().map(|m| json!([m.start_ms, m.orders, round2(m.revenue)])).collect::<Vec<_>>(),
        "errors": recent.iter().map(|m| {
            let seen = m.seen_orders + m.clicks;
            let rate = (seen > 0).then(|| m.errors as f64 / seen as f64);
            json!([m.start_ms, m.errors, m.warn, rate])
        }).collect::<Vec<_>>(),
        "provisional_from": recent.iter().find(|m| m.provisional).map(|m| m.start_ms),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Float64Array, Int64Array, StringArray, TimestampMillisecondArray};
    use arrow_schema::{DataType, Field, Schema, TimeUnit};

    use super::*;

    const M: i64 = 60_000;
    const T0: i64 = 1_764_000_000_000; // a whole minute

    fn ts(v: Vec<i64>) -> ArrayRef {
        Arc::new(TimestampMillisecondArray::from(v))
    }

    fn batch(cols: Vec<(&str, ArrayRef)>) -> RecordBatch {
        let fields: Vec<Field> = cols
            .iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
            .collect();
        RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            cols.into_iter().map(|(_, a)| a).collect(),
        )
        .unwrap()
    }

    /// `n` whole-minute windows from T0 with the given per-minute counts.
    fn orders(counts: &[i64]) -> RecordBatch {
        let n = counts.len() as i64;
        batch(vec![
            ("window_start", ts((0..n).map(|i| T0 + i * M).collect())),
            ("window_end", ts((0..n).map(|i| T0 + (i + 1) * M).collect())),
            ("orders_count", Arc::new(Int64Array::from(counts.to_vec()))),
            (
                "total_revenue",
                Arc::new(Float64Array::from(
                    counts.iter().map(|c| *c as f64 * 10.5).collect::<Vec<_>>(),
                )),
            ),
        ])
    }

    fn traffic(orders: &[i64], clicks: i64, errors: &[i64]) -> RecordBatch {
        let n = orders.len() as i64;
        batch(vec![
            ("window_start", ts((0..n).map(|i| T0 + i * M).collect())),
            ("window_end", ts((0..n).map(|i| T0 + (i + 1) * M).collect())),
            ("orders_count", Arc::new(Int64Array::from(orders.to_vec()))),
            (
                "clicks_count",
                Arc::new(Int64Array::from(vec![clicks; n as usize])),
            ),
            (
                "warn_count",
                Arc::new(Int64Array::from(vec![1; n as usize])),
            ),
            ("error_count", Arc::new(Int64Array::from(errors.to_vec()))),
            (
                "fatal_count",
                Arc::new(Int64Array::from(vec![0; n as usize])),
            ),
        ])
    }

    #[test]
    fn cards_sum_the_last_five_whole_minutes_and_the_five_before() {
        // 12 minutes: 1..=12 orders per minute.
        let counts: Vec<i64> = (1..=12).collect();
        let o = orders(&counts);
        let t = traffic(&counts, 90, &[0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 0]);
        let k = kpis(&[o], &[t], &[]);
        assert_eq!(k.as_of_ms, Some(T0 + 12 * M));
        // Current: minutes 8..=12 → 8+9+10+11+12 = 50; previous: 3..=7 → 25.
        assert_eq!(
            (k.orders.value, k.orders.previous, k.orders.delta),
            (Some(50.0), Some(25.0), Some(25.0))
        );
        assert_eq!(k.revenue.value, Some(525.0));
        assert_eq!((k.errors.value, k.errors.previous), (Some(10.0), Some(0.0)));
        assert!(k.errors.inverse && !k.orders.inverse);
        // Error rate: 10 errors / (50 orders + 5 × 90 clicks).
        assert_eq!(k.error_rate.value, Some(10.0 / 500.0));
    }

    #[test]
    fn sliding_windows_are_not_counted_twice() {
        // A half-minute-offset window in the result must not add to any card.
        let mut b = vec![orders(&[4, 4, 4, 4, 4])];
        b.push(batch(vec![
            ("window_start", ts(vec![T0 + 30_000])),
            ("window_end", ts(vec![T0 + 90_000])),
            ("orders_count", Arc::new(Int64Array::from(vec![4]))),
            ("total_revenue", Arc::new(Float64Array::from(vec![1.0]))),
        ]));
        let k = kpis(&b, &[], &[]);
        assert_eq!(k.orders.value, Some(20.0));
        assert_eq!(k.orders.previous, None);
        assert_eq!(k.error_rate.value, None);
    }

    #[test]
    fn active_users_compare_with_the_window_five_minutes_earlier() {
        let ends: Vec<i64> = (0..8).map(|i| T0 + i * M).collect();
        let users = batch(vec![
            ("window_start", ts(ends.iter().map(|e| e - 5 * M).collect())),
            ("window_end", ts(ends.clone())),
            (
                "active_users_approx",
                Arc::new(Int64Array::from(
                    (0..8).map(|i| 100 + i).collect::<Vec<i64>>(),
                )),
            ),
        ]);
        let k = kpis(&[], &[], &[users]);
        assert_eq!(
            (k.active_users.value, k.active_users.previous),
            (Some(107.0), Some(102.0))
        );
        assert_eq!(k.as_of_ms, None);
    }

    #[test]
    fn empty_lake_has_no_values() {
        let k = kpis(&[], &[], &[]);
        assert_eq!(
            (k.orders.value, k.orders.delta, k.as_of_ms),
            (None, None, None)
        );
        assert_eq!(series(&[], &[])["orders"], json!([]));
    }

    #[test]
    fn series_keeps_thirty_minutes_and_rows_read_text_verbatim() {
        let counts: Vec<i64> = (0..40).collect();
        let s = series(&[orders(&counts)], &[traffic(&counts, 10, &vec![1; 40])]);
        let pts = s["orders"].as_array().unwrap();
        assert_eq!(pts.len(), 30);
        assert_eq!(pts[0], json!([T0 + 10 * M, 10, 105.0]));
        assert_eq!(s["errors"][0], json!([T0 + 10 * M, 1, 1, 1.0 / 20.0]));
        let xss = "<img src=x onerror=alert(1)>";
        let b = batch(vec![
            (
                "order_id",
                Arc::new(StringArray::from(vec![xss])) as ArrayRef,
            ),
            (
                "order_ts",
                Arc::new(TimestampMillisecondArray::from(vec![T0])),
            ),
            ("order_total", Arc::new(Float64Array::from(vec![None]))),
        ]);
        let r = rows(&[b], &ORDER_COLUMNS);
        assert_eq!(r[0]["order_id"], json!(xss));
        assert_eq!(r[0]["order_ts"], json!(T0));
        assert_eq!(r[0]["order_total"], Value::Null);
        assert_eq!(r[0]["status"], Value::Null);
        let _ = DataType::Timestamp(TimeUnit::Millisecond, None);
    }
}
