//! Time ranges: the page's 30 min / 6 h / 24 h (`?range=` in its URL). The 30-minute view is
//! live over the websocket; the longer ones are read on request (`GET /api/trends?range=6h`)
//! through the same Flight SQL path, from whole-minute windows (one row per minute and KPI: a
//! day is 1,440 rows, so no rollup table is needed, `bench day` measures it), summed into
//! buckets so a chart keeps about 100 points, and cached for a few seconds so many viewers
//! cost one read.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use shopwatch_actors::kpis::{Kpi, Read};
use shopwatch_actors::sql::table;

use crate::live::api::rows::PageQueries;
use crate::live::model::views::{self, Facts};

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

/// The view of one range: every declared card over the range against the range before, and
/// every chart in buckets (rates of sums). `results` follow [`range_queries`]'s order.
pub fn view(results: &[Vec<RecordBatch>], range: Range) -> Result<Value, String> {
    let mut f = Facts::default();
    for (kpi, batches) in ranged().zip(results) {
        f.0.insert(kpi.name(), views::read_rows(kpi, batches)?);
    }
    Ok(json!({
        "range": range.name(),
        "bucket_s": range.bucket_ms() / 1000,
        "kpis": views::cards(&f, range.ms()),
        "series": views::charts(&f, range.ms(), range.bucket_ms()),
    }))
}

/// The KPIs a range view reads: every viewed KPI read as whole-minute windows, and those
/// with a card on a longer window (active users).
fn ranged() -> impl Iterator<Item = &'static dyn Kpi> {
    views::viewed().filter(|k| {
        k.view()
            .is_some_and(|v| v.read == Read::Trend || !v.cards.is_empty())
    })
}

/// The queries of one range view as of `now_us`, in [`view`]'s order: whole-minute windows
/// of two ranges back (the cards compare the range with the one before it). Active users are
/// 5-minute windows sliding by whole minutes, so they are all read.
pub fn range_queries(source: &str, namespace: &str, range: Range, now_us: i64) -> Vec<String> {
    let from = now_us - 2 * range.ms() * 1000;
    ranged()
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
    State(api): State<Option<Arc<PageQueries>>>,
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
    if found.len() != sqls.len() {
        return refuse(StatusCode::BAD_GATEWAY, "query answers missing".into());
    }
    let mut v = match view(&found, range) {
        Ok(v) => v,
        Err(e) => return refuse(StatusCode::BAD_GATEWAY, e),
    };
    v["query_ms"] = json!(started.elapsed().as_secs_f64() * 1e3);
    cached.insert(range, (Instant::now(), v.clone()));
    Json(v).into_response()
}

#[cfg(test)]
mod tests {
    use shopwatch_actors::schema::columns::Value as Cell;

    use super::*;
    use crate::live::model::views::Row;

    const M: i64 = 60_000;
    const T0: i64 = 1_764_000_000_000 - 1_764_000_000_000 % (15 * M);

    /// `minutes` whole minutes of 2 orders (1.5 revenue) and 10 clicks with 1 error.
    fn facts(minutes: i64) -> Facts {
        let row = |i: i64, values: Vec<Cell>| Row {
            start_ms: T0 + i * M,
            end_ms: T0 + (i + 1) * M,
            values,
            provisional: false,
        };
        let orders = (0..minutes)
            .map(|i| row(i, vec![Cell::Long(2), Cell::Double(1.5)]))
            .collect();
        let traffic = (0..minutes)
            .map(|i| {
                row(
                    i,
                    vec![
                        Cell::Long(2),
                        Cell::Long(10),
                        Cell::Long(0),
                        Cell::Long(1),
                        Cell::Long(0),
                        Cell::Null,
                    ],
                )
            })
            .collect();
        let conversion = (0..minutes)
            .map(|i| {
                let (o, c) = if i % 2 == 0 { (1, 10) } else { (9, 30) };
                row(
                    i,
                    vec![
                        Cell::Long(o),
                        Cell::Long(c),
                        Cell::Long(1),
                        Cell::Long(1),
                        Cell::Null,
                    ],
                )
            })
            .collect();
        Facts(
            [
                ("orders_revenue", orders),
                ("traffic", traffic),
                ("conversion", conversion),
            ]
            .into_iter()
            .collect(),
        )
    }

    #[test]
    fn ranges_parse_and_bucket_to_about_a_hundred_points() {
        assert_eq!(Range::parse("6h"), Ok(Range::Hours6));
        assert!(Range::parse("7d").unwrap_err().starts_with("range"));
        // 48 hours of minutes: a 24-hour view keeps the newest 24 hours in 96 buckets of 15.
        let f = facts(48 * 60);
        let v = views::charts(&f, Range::Hours24.ms(), Range::Hours24.bucket_ms());
        let pts = v["charts"]["orders_revenue.orders"].as_array().unwrap();
        assert_eq!(pts.len(), 96);
        assert_eq!(pts[0][1], 30.0, "15 minutes × 2 orders");
        assert_eq!(v["charts"]["orders_revenue.revenue"][0][1], 22.5);
        let six = views::charts(&f, Range::Hours6.ms(), Range::Hours6.bucket_ms());
        assert_eq!(
            six["charts"]["orders_revenue.orders"]
                .as_array()
                .unwrap()
                .len(),
            72
        );
        // The cards of a range compare it with the range before it.
        let k = views::cards(&f, Range::Hours6.ms());
        assert_eq!(k["cards"]["orders"]["value"], 720.0);
        assert_eq!(k["cards"]["orders"]["previous"], 720.0);
        assert_eq!(k["period_s"], 6 * 3600);
        // The error rate of a bucket is its errors over its orders and clicks.
        let k = views::cards(&f, 15 * M);
        assert_eq!(k["cards"]["error_rate"]["value"], 15.0 / 180.0);
    }

    #[test]
    fn conversion_buckets_are_rates_of_sums() {
        // Alternating minutes of 1/10 and 9/30: a 5-minute bucket starting even is
        // (1+9+1+9+1) ÷ (10+30+10+30+10), not a mean of rates.
        let f = facts(10);
        let v = views::charts(&f, Range::Hours6.ms(), Range::Hours6.bucket_ms());
        let first = v["charts"]["conversion.conversion"][0][1].as_f64().unwrap();
        assert!((first - 21.0 / 90.0).abs() < 1e-6, "{first}");
    }
}
