//! Time ranges: the page's 30 min / 6 h / 24 h (`?range=` in its URL). The 30-minute view is
//! live over the websocket; the longer ones are read on request (`GET /api/trends?range=6h`)
//! through the same Flight SQL path, from whole-minute windows (one row per minute and KPI: a
//! day is 1,440 rows, so no rollup table is needed, `bench day` measures it), summed into
//! buckets so a chart keeps about 100 points, and cached for a few seconds so many viewers
//! cost one read.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use shopwatch_actors::kpis::by_name;
use shopwatch_actors::sql::table;

use super::dashboard::{self, Facts, Minute};
use super::drill::DrillApi;

/// A view stays this long before it is read again.
const FRESH_FOR: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Range {
    Minutes30,
    Hours6,
    Hours24,
}

impl Range {
    pub fn parse(s: &str) -> Result<Range, String> {
        match s {
            "30m" => Ok(Range::Minutes30),
            "6h" => Ok(Range::Hours6),
            "24h" => Ok(Range::Hours24),
            _ => Err(format!("range: {s:?} is not one of 30m, 6h, 24h")),
        }
    }
    pub fn ms(self) -> i64 {
        match self {
            Range::Minutes30 => 30 * 60_000,
            Range::Hours6 => 6 * 3_600_000,
            Range::Hours24 => 24 * 3_600_000,
        }
    }
    /// One chart point per bucket: 30, 72 and 96 points.
    pub fn bucket_ms(self) -> i64 {
        match self {
            Range::Minutes30 => 60_000,
            Range::Hours6 => 5 * 60_000,
            Range::Hours24 => 15 * 60_000,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Range::Minutes30 => "30m",
            Range::Hours6 => "6h",
            Range::Hours24 => "24h",
        }
    }
}

/// The minutes of the range ending at the newest one, summed into buckets aligned to the
/// bucket size: `[start_ms, orders, revenue]` and `[start_ms, errors, warnings, rate]`.
pub fn bucket(f: &Facts, range: Range) -> Value {
    let b = range.bucket_ms();
    let last = f.minutes.values().map(|m| m.end_ms).max().unwrap_or(0);
    let mut buckets: BTreeMap<i64, Minute> = BTreeMap::new();
    for m in f.minutes.values().filter(|m| m.end_ms > last - range.ms()) {
        let start = m.start_ms.div_euclid(b) * b;
        let s = buckets.entry(start).or_insert(Minute {
            start_ms: start,
            end_ms: start + b,
            ..Minute::default()
        });
        s.orders += m.orders;
        s.revenue += m.revenue;
        s.clicks += m.clicks;
        s.warn += m.warn;
        s.errors += m.errors;
        s.fatal += m.fatal;
        s.seen_orders += m.seen_orders;
    }
    let round2 = |v: f64| (v * 100.0).round() / 100.0;
    json!({
        "orders": buckets.values().map(|m| json!([m.start_ms, m.orders, round2(m.revenue)])).collect::<Vec<_>>(),
        "errors": buckets.values().map(|m| {
            let seen = m.seen_orders + m.clicks;
            json!([m.start_ms, m.errors, m.warn, (seen > 0).then(|| m.errors as f64 / seen as f64)])
        }).collect::<Vec<_>>(),
        "provisional_from": Value::Null,
    })
}

/// Conversion rows (`[start, orders, clicks, rate]` or, by device,
/// `[start, device, clicks, orders, rate]`) summed into buckets: rates of sums.
pub fn bucket_conversion(rows: &Value, by_device: bool, range: Range) -> Value {
    let b = range.bucket_ms();
    let rows = rows.as_array().cloned().unwrap_or_default();
    let last = rows.iter().filter_map(|r| r[0].as_i64()).max().unwrap_or(0);
    let mut sums: BTreeMap<(i64, String), (i64, i64)> = BTreeMap::new();
    for r in rows
        .iter()
        .filter(|r| r[0].as_i64().is_some_and(|s| s > last - range.ms()))
    {
        let start = r[0].as_i64().unwrap_or(0).div_euclid(b) * b;
        let (key, orders, clicks) = if by_device {
            (r[1].as_str().unwrap_or("").to_string(), &r[3], &r[2])
        } else {
            (String::new(), &r[1], &r[2])
        };
        let e = sums.entry((start, key)).or_default();
        e.0 += orders.as_i64().unwrap_or(0);
        e.1 += clicks.as_i64().unwrap_or(0);
    }
    let rate = |o: i64, c: i64| (c > 0).then(|| o as f64 / c as f64);
    Value::Array(
        sums.into_iter()
            .map(|((s, key), (o, c))| {
                if by_device {
                    json!([s, key, c, o, rate(o, c)])
                } else {
                    json!([s, o, c, rate(o, c)])
                }
            })
            .collect(),
    )
}

/// The view of one range: cards over the range against the range before, and bucketed trends.
pub fn view(results: &[Vec<RecordBatch>; 5], range: Range) -> Value {
    let f = Facts::read(&results[0], &results[1], &results[2], false);
    let mut series = bucket(&f, range);
    series["conversion"] = bucket_conversion(&dashboard::conversion(&results[3]), false, range);
    series["conversion_by_device"] =
        bucket_conversion(&dashboard::device_conversion(&results[4]), true, range);
    json!({
        "range": range.name(),
        "bucket_s": range.bucket_ms() / 1000,
        "kpis": dashboard::cards_over(&f, range.ms()),
        "series": series,
    })
}

/// The KPIs a range view reads, in [`view`]'s order.
const VIEW_KPIS: [&str; 5] = [
    "orders_revenue",
    "traffic",
    "active_users",
    "conversion",
    "device_conversion",
];

/// The queries of one range view as of `now_us`, in [`view`]'s order: whole-minute windows
/// of two ranges back (the cards compare the range with the one before it). Active users are
/// 5-minute windows sliding by whole minutes, so they are all read.
pub fn range_queries(source: &str, namespace: &str, range: Range, now_us: i64) -> Vec<String> {
    let from = now_us - 2 * range.ms() * 1000;
    VIEW_KPIS
        .iter()
        .filter_map(|name| by_name(name))
        .map(|k| k.minutes_sql(&table(source, namespace, k.table()), from, now_us))
        .collect()
}

#[derive(Debug, Default, Deserialize)]
pub struct TrendsQuery {
    pub range: Option<String>,
}

/// Range views read lately, shared by every viewer.
#[derive(Default)]
pub struct TrendsCache(tokio::sync::Mutex<HashMap<Range, (Instant, Value)>>);

pub async fn get_trends(
    State(api): State<Option<Arc<DrillApi>>>,
    State(cache): State<Arc<TrendsCache>>,
    Query(q): Query<TrendsQuery>,
) -> Response {
    let refuse = |code: StatusCode, e: String| (code, Json(json!({ "error": e }))).into_response();
    let range = match Range::parse(q.range.as_deref().unwrap_or("30m")) {
        Ok(r) => r,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e),
    };
    let Some(api) = api else {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "no query server".into());
    };
    let mut cached = cache.0.lock().await;
    if let Some((at, v)) = cached.get(&range) {
        if at.elapsed() < FRESH_FOR {
            return Json(v.clone()).into_response();
        }
    }
    let now = chrono::Utc::now().timestamp_micros();
    let t = &api.target;
    let sqls = range_queries(&t.source, &t.namespace, range, now);
    let started = Instant::now();
    let found = match api.run(&sqls).await {
        Ok(f) => f,
        Err(e) => return refuse(StatusCode::BAD_GATEWAY, format!("query failed: {e:#}")),
    };
    let Ok(results) = <[Vec<RecordBatch>; 5]>::try_from(found) else {
        return refuse(StatusCode::BAD_GATEWAY, "query answers missing".into());
    };
    let mut v = view(&results, range);
    v["query_ms"] = json!(started.elapsed().as_secs_f64() * 1e3);
    cached.insert(range, (Instant::now(), v.clone()));
    Json(v).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: i64 = 60_000;
    const T0: i64 = 1_764_000_000_000 - 1_764_000_000_000 % (15 * M);

    fn facts(minutes: i64) -> Facts {
        let mut f = Facts::default();
        for i in 0..minutes {
            let s = T0 + i * M;
            f.minutes.insert(
                s,
                Minute {
                    start_ms: s,
                    end_ms: s + M,
                    orders: 2,
                    revenue: 1.5,
                    clicks: 10,
                    errors: 1,
                    ..Minute::default()
                },
            );
        }
        f
    }

    #[test]
    fn ranges_parse_and_bucket_to_about_a_hundred_points() {
        assert_eq!(Range::parse("6h"), Ok(Range::Hours6));
        assert!(Range::parse("7d").unwrap_err().starts_with("range"));
        // 48 hours of minutes: a 24-hour view keeps the newest 24 hours in 96 buckets of 15.
        let f = facts(48 * 60);
        let v = bucket(&f, Range::Hours24);
        let pts = v["orders"].as_array().unwrap();
        assert_eq!(pts.len(), 96);
        assert_eq!(pts[0][1], 30, "15 minutes × 2 orders");
        assert_eq!(pts[0][2], 22.5);
        assert_eq!(v["errors"][0][3], json!(15.0 / 150.0));
        let six = bucket(&f, Range::Hours6);
        assert_eq!(six["orders"].as_array().unwrap().len(), 72);
        // The cards of a range compare it with the range before it.
        let k = dashboard::cards_over(&f, Range::Hours6.ms());
        assert_eq!(
            (k.orders.value, k.orders.previous),
            (Some(720.0), Some(720.0))
        );
        assert_eq!(k.period_s, 6 * 3600);
    }

    #[test]
    fn conversion_buckets_are_rates_of_sums() {
        let rows = json!([
            [T0, "mobile", 10, 1, 0.1],
            [T0 + M, "mobile", 30, 9, 0.3],
            [T0, "desktop", 0, 0, null]
        ]);
        let v = bucket_conversion(&rows, true, Range::Hours6);
        assert_eq!(
            v,
            json!([[T0, "desktop", 0, 0, null], [T0, "mobile", 40, 10, 0.25]])
        );
    }
}
