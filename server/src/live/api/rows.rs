//! The rows behind a figure: from a card, a chart point, a funnel step, an alert group or a top
//! product to the raw rows (`GET /api/rows`), read through the same Flight SQL path as the
//! cards (the embedded server or Dremio, per `query.backend`). The request names what and
//! when; the SQL is built here from checked values only (literals quoted by
//! `shopwatch_actors::sql`).

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use shopwatch_actors::sql::{string_literal, table, timestamp_literal};
use tokio::sync::Mutex;

use crate::config::QueryTarget;
use crate::flight::client::FlightQueryClient;
use crate::live::model::results::{self, Kind};
use shopwatch_actors::kpis::funnel::STEP_PATTERNS;

/// Rows returned at most; the count says how many there are.
pub const MAX_ROWS: usize = 500;
/// The widest time range one request may ask for.
const MAX_SPAN_MS: i64 = 24 * 3600 * 1000;
/// Times a request may name: 2000-01-01 to 2200-01-01 (anything else is a mistake, and keeps
/// every sum and product below far from overflowing).
const TIMES_MS: std::ops::Range<i64> = 946_684_800_000..7_258_118_400_000;

#[derive(Debug, Default, Deserialize)]
pub struct RowsQuery {
    pub what: Option<String>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub service: Option<String>,
    /// `errors`: only ERROR and FATAL (what the errors card counts).
    pub serious: Option<bool>,
    pub product: Option<String>,
    /// `clicks`: only the pages of this funnel step (0 home, 1 product, 2 cart).
    pub step: Option<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum What {
    Orders,
    Errors,
    Clicks,
}

impl What {
    fn table(self) -> &'static str {
        match self {
            What::Orders => "orders_processed",
            What::Errors => "errors_processed",
            What::Clicks => "clicks_processed",
        }
    }
    fn ts(self) -> &'static str {
        match self {
            What::Orders => "order_ts",
            What::Errors => "error_ts",
            What::Clicks => "click_ts",
        }
    }
    fn columns(self) -> &'static [(&'static str, Kind)] {
        match self {
            What::Orders => &[
                ("order_ts", Kind::Ts),
                ("order_id", Kind::Text),
                ("user_id", Kind::Text),
                ("product_id", Kind::Text),
                ("quantity", Kind::Int),
                ("order_total", Kind::Float),
                ("status", Kind::Text),
                ("kafka_partition", Kind::Int),
                ("kafka_offset", Kind::Int),
            ],
            What::Errors => &[
                ("error_ts", Kind::Ts),
                ("service_name", Kind::Text),
                ("severity", Kind::Text),
                ("error_message", Kind::Text),
                ("error_id", Kind::Text),
                ("kafka_partition", Kind::Int),
                ("kafka_offset", Kind::Int),
            ],
            What::Clicks => &[
                ("click_ts", Kind::Ts),
                ("click_id", Kind::Text),
                ("user_id", Kind::Text),
                ("url", Kind::Text),
                ("device_type", Kind::Text),
                ("kafka_partition", Kind::Int),
                ("kafka_offset", Kind::Int),
            ],
        }
    }
}

/// A checked request.
#[derive(Debug, PartialEq)]
pub struct RowsRequest {
    what: What,
    from_ms: i64,
    to_ms: i64,
    service: Option<String>,
    serious: bool,
    product: Option<String>,
    step: Option<usize>,
}

impl RowsRequest {
    pub fn parse(q: &RowsQuery) -> Result<RowsRequest, String> {
        let what = match q.what.as_deref() {
            Some("orders") => What::Orders,
            Some("errors") => What::Errors,
            Some("clicks") => What::Clicks,
            _ => return Err("what: must be orders, errors or clicks".into()),
        };
        let (Some(from_ms), Some(to_ms)) = (q.from, q.to) else {
            return Err("from, to: both needed, in milliseconds since the epoch".into());
        };
        for (field, v) in [("from", from_ms), ("to", to_ms)] {
            if !TIMES_MS.contains(&v) {
                return Err(format!(
                    "{field}: must be milliseconds since the epoch between 2000 and 2200, got {v}"
                ));
            }
        }
        if to_ms <= from_ms || to_ms - from_ms > MAX_SPAN_MS {
            return Err("to: must be after from, and at most 24 hours later".into());
        }
        if what != What::Errors && (q.service.is_some() || q.serious.is_some()) {
            return Err("service, serious: only for what=errors".into());
        }
        if what != What::Orders && q.product.is_some() {
            return Err("product: only for what=orders".into());
        }
        if what != What::Clicks && q.step.is_some() {
            return Err("step: only for what=clicks".into());
        }
        if q.step.is_some_and(|s| s >= STEP_PATTERNS.len()) {
            return Err(format!(
                "step: 0 to {} (the funnel's pages)",
                STEP_PATTERNS.len() - 1
            ));
        }
        Ok(RowsRequest {
            what,
            from_ms,
            to_ms,
            service: q.service.clone(),
            serious: q.serious.unwrap_or(false),
            product: q.product.clone(),
            step: q.step,
        })
    }

    /// The rows query (newest first, one more than shown to tell "more") and the count.
    pub fn sql(&self, source: &str, namespace: &str) -> [String; 2] {
        let t = table(source, namespace, self.what.table());
        let ts = self.what.ts();
        let mut filter = format!(
            "\"{ts}\" >= {} AND \"{ts}\" < {}",
            timestamp_literal(self.from_ms * 1000),
            timestamp_literal(self.to_ms * 1000)
        );
        if let Some(s) = &self.service {
            filter += &format!(" AND \"service_name\" = {}", string_literal(s));
        }
        if self.serious {
            filter += " AND \"severity\" IN ('ERROR', 'FATAL')";
        }
        if let Some(p) = &self.product {
            filter += &format!(" AND \"product_id\" = {}", string_literal(p));
        }
        if let Some(step) = self.step.and_then(|s| STEP_PATTERNS.get(s)) {
            filter += &format!(" AND regexp_like(\"url\", {})", string_literal(step));
        }
        let cols: Vec<String> = self
            .what
            .columns()
            .iter()
            .map(|(c, _)| format!("\"{c}\""))
            .collect();
        [
            format!(
                "SELECT {} FROM {t} WHERE {filter} ORDER BY \"{ts}\" DESC, \"kafka_partition\", \"kafka_offset\" LIMIT {}",
                cols.join(", "),
                MAX_ROWS + 1
            ),
            format!("SELECT COUNT(*) AS \"n\" FROM {t} WHERE {filter}"),
        ]
    }
}

/// The Flight SQL connection the page's requests share (rows, time ranges; opened on first use,
/// rebuilt after a failure).
pub struct PageQueries {
    pub target: QueryTarget,
    client: Mutex<Option<FlightQueryClient>>,
}

impl PageQueries {
    pub fn new(target: QueryTarget) -> PageQueries {
        PageQueries {
            target,
            client: Mutex::new(None),
        }
    }

    pub(crate) async fn run(
        &self,
        sqls: &[String],
    ) -> anyhow::Result<Vec<Vec<arrow_array::RecordBatch>>> {
        let mut guard = self.client.lock().await;
        if guard.is_none() {
            *guard = Some(self.target.connect().await?);
        }
        let client = guard
            .as_mut()
            .ok_or_else(|| anyhow::anyhow!("no Flight client"))?;
        let out = client.query_all(sqls).await;
        if out.is_err() {
            *guard = None;
        }
        out
    }
}

fn refuse(code: StatusCode, error: impl Into<String>) -> Response {
    (code, Json(json!({ "error": error.into() }))).into_response()
}

pub async fn get_rows(
    State(api): State<Option<Arc<PageQueries>>>,
    Query(q): Query<RowsQuery>,
) -> Response {
    let Some(api) = api else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "no query server configured",
        );
    };
    let request = match RowsRequest::parse(&q) {
        Ok(d) => d,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e),
    };
    let sqls = request.sql(&api.target.source, &api.target.namespace);
    let found = match api.run(&sqls).await {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "rows query failed");
            return refuse(StatusCode::BAD_GATEWAY, format!("query failed: {e:#}"));
        }
    };
    let (Some(found_rows), Some(found_count)) = (found.first(), found.get(1)) else {
        return refuse(
            StatusCode::BAD_GATEWAY,
            "the query server answered too little",
        );
    };
    let mut rows = results::rows(found_rows, request.what.columns());
    let more = rows.len() > MAX_ROWS;
    rows.truncate(MAX_ROWS);
    let count = results::rows(found_count, &[("n", Kind::Int)])
        .first()
        .and_then(|r| r["n"].as_i64())
        .unwrap_or(rows.len() as i64);
    Json(json!({
        "what": request.what.table(),
        "from": request.from_ms,
        "to": request.to_ms,
        "count": count,
        "more": more,
        "columns": request.what.columns().iter().map(|(c, _)| *c).collect::<Vec<_>>(),
        "rows": rows,
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A time in the test's day (2026-11-18), plus `ms`.
    const T: i64 = 1_795_000_000_000;

    fn q(what: &str, from: i64, to: i64) -> RowsQuery {
        RowsQuery {
            what: Some(what.into()),
            from: Some(T + from),
            to: Some(T + to),
            ..RowsQuery::default()
        }
    }

    #[test]
    fn requests_are_checked_and_name_the_field() {
        let raw = |from: i64, to: i64| RowsQuery {
            from: Some(from),
            to: Some(to),
            ..q("orders", 0, 1)
        };
        let cases: Vec<(RowsQuery, Option<&str>)> = vec![
            (q("orders", 0, 60_000), None),
            (q("visits", 0, 60_000), Some("what")),
            (
                RowsQuery {
                    step: Some(1),
                    ..q("clicks", 0, 60_000)
                },
                None,
            ),
            (
                RowsQuery {
                    step: Some(3),
                    ..q("clicks", 0, 60_000)
                },
                Some("step"),
            ),
            (
                RowsQuery {
                    step: Some(0),
                    ..q("orders", 0, 60_000)
                },
                Some("step"),
            ),
            (q("orders", 60_000, 60_000), Some("to")),
            (q("orders", 0, MAX_SPAN_MS + 1), Some("to")),
            // Numbers that would overflow the arithmetic below: refused, named.
            (raw(i64::MIN, T), Some("from")),
            (raw(T, i64::MAX), Some("to")),
            (raw(0, 60_000), Some("from")),
            (
                RowsQuery {
                    from: None,
                    ..q("errors", 0, 1)
                },
                Some("from"),
            ),
            (
                RowsQuery {
                    service: Some("x".into()),
                    ..q("orders", 0, 1)
                },
                Some("service"),
            ),
            (
                RowsQuery {
                    product: Some("x".into()),
                    ..q("errors", 0, 1)
                },
                Some("product"),
            ),
        ];
        for (req, field) in cases {
            match (RowsRequest::parse(&req), field) {
                (Ok(_), None) => {}
                (Err(e), Some(f)) => assert!(e.starts_with(f), "{e}"),
                (got, want) => panic!("{req:?}: {got:?}, wanted an error on {want:?}"),
            }
        }
    }

    #[test]
    fn sql_filters_quote_what_the_caller_sent() {
        let d = RowsRequest::parse(&RowsQuery {
            service: Some("pay'ment".into()),
            serious: Some(true),
            from: Some(1_764_000_000_000),
            to: Some(1_764_000_060_000),
            ..q("errors", 0, 1)
        })
        .unwrap();
        let [rows, count] = d.sql("s", "ns");
        assert!(
            rows.contains("FROM \"s\".\"ns\".\"errors_processed\""),
            "{rows}"
        );
        assert!(rows.contains("\"service_name\" = 'pay''ment'"), "{rows}");
        assert!(
            rows.contains("\"severity\" IN ('ERROR', 'FATAL')"),
            "{rows}"
        );
        assert!(rows.contains("\"error_ts\" >= CAST('2025-11-24 16:00:00.000' AS TIMESTAMP)"));
        assert!(rows.ends_with(&format!("LIMIT {}", MAX_ROWS + 1)));
        assert!(count.starts_with("SELECT COUNT(*)"), "{count}");
        assert!(count.contains("'pay''ment'"));
        let clicks = RowsRequest::parse(&RowsQuery {
            step: Some(2),
            ..q("clicks", 0, 60_000)
        })
        .unwrap();
        let [rows, _] = clicks.sql("s", "ns");
        assert!(
            rows.contains("regexp_like(\"url\", '^(/page)?/cart/?([?#].*)?$')"),
            "{rows}"
        );
    }
}
