//! The dashboard's KPI queries, written once in SQL that Dremio and the embedded server both
//! run: quoted identifiers from configuration only, timestamps as literals computed here.
//!
//! Definitions (each event counted once): sliding 1-minute windows overlap by half, so
//! "orders in the last 5 minutes" sums only the windows that start on a whole minute; the
//! seed's card summed every window and showed about twice the real number.

use super::client::{string_literal, timestamp_literal};

pub struct KpiQuery {
    pub name: &'static str,
    pub sql: String,
}

fn table(source: &str, namespace: &str, name: &str) -> String {
    let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    format!("{}.{}.{}", q(source), q(namespace), q(name))
}

/// Minutes of whole-minute windows fetched: the 30-minute trend plus room for the previous
/// 5-minute period when the newest window trails `now` (lateness, commit interval).
pub const TREND_MINUTES: i64 = 40;
/// The latest-orders/errors tables look this far back first (the scan prunes every older
/// data file by its statistics); a quiet shop falls back to `LATEST_FALLBACK_MINUTES`.
pub const LATEST_MINUTES: i64 = 10;
pub const LATEST_FALLBACK_MINUTES: i64 = 24 * 60;
pub const LATEST_ROWS: usize = 10;

const MIN: i64 = 60_000_000;

/// The dashboard's query set as of `now_micros`.
pub fn kpi_queries(source: &str, namespace: &str, now_micros: i64) -> Vec<KpiQuery> {
    let t = |n| table(source, namespace, n);
    let from = timestamp_literal(now_micros - TREND_MINUTES * MIN);
    let to = timestamp_literal(now_micros);
    vec![
        KpiQuery {
            name: "orders_revenue",
            sql: format!(
                "SELECT \"window_start\", \"window_end\", \"orders_count\", \"total_revenue\" FROM {} \
                 WHERE \"window_start\" >= {from} AND \"window_end\" <= {to} \
                 AND EXTRACT(SECOND FROM \"window_start\") = 0 ORDER BY \"window_start\"",
                t("orders_revenue_per_minute")
            ),
        },
        KpiQuery {
            name: "active_users",
            sql: format!(
                "SELECT \"window_start\", \"window_end\", \"active_users_approx\" FROM {} \
                 WHERE \"window_end\" > {} ORDER BY \"window_end\" DESC LIMIT 16",
                t("active_users_per_window"),
                timestamp_literal(now_micros - 15 * MIN)
            ),
        },
        KpiQuery {
            name: "traffic",
            sql: format!(
                "SELECT \"window_start\", \"window_end\", \"orders_count\", \"clicks_count\", \"warn_count\", \
                 \"error_count\", \"fatal_count\", \"error_rate\" FROM {} \
                 WHERE \"window_start\" >= {from} AND \"window_end\" <= {to} \
                 AND EXTRACT(SECOND FROM \"window_start\") = 0 ORDER BY \"window_start\"",
                t("traffic_per_minute")
            ),
        },
        KpiQuery {
            name: "recent_alerts",
            sql: format!(
                "SELECT \"alert_id\", \"alert_type\", \"description\", \"alert_timestamp\", \"metric_value\" FROM {} \
                 WHERE \"alert_timestamp\" > {} ORDER BY \"alert_timestamp\" DESC, \"alert_id\" LIMIT 10",
                t("alerts"),
                timestamp_literal(now_micros - 30 * MIN)
            ),
        },
        latest_orders(source, namespace, now_micros, LATEST_MINUTES),
        latest_errors(source, namespace, now_micros, LATEST_MINUTES),
    ]
}

/// The 10 newest orders with `order_ts` in the last `minutes`.
pub fn latest_orders(source: &str, namespace: &str, now_micros: i64, minutes: i64) -> KpiQuery {
    KpiQuery {
        name: "latest_orders",
        sql: format!(
            "SELECT \"order_id\", \"user_id\", \"order_total\", \"status\", \"order_ts\" FROM {} \
             WHERE \"order_ts\" > {} ORDER BY \"order_ts\" DESC, \"order_id\" LIMIT {LATEST_ROWS}",
            table(source, namespace, "orders_processed"),
            timestamp_literal(now_micros - minutes * MIN)
        ),
    }
}

/// The 10 newest WARN/ERROR/FATAL errors in the last `minutes`.
pub fn latest_errors(source: &str, namespace: &str, now_micros: i64, minutes: i64) -> KpiQuery {
    KpiQuery {
        name: "latest_errors",
        sql: format!(
            "SELECT \"service_name\", \"severity\", \"error_message\", \"error_ts\" FROM {} \
             WHERE \"error_ts\" > {} AND \"severity\" <> {} ORDER BY \"error_ts\" DESC, \"error_id\" LIMIT {LATEST_ROWS}",
            table(source, namespace, "errors_processed"),
            timestamp_literal(now_micros - minutes * MIN),
            string_literal("DEBUG")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_and_literals_computed() {
        let q = kpi_queries(
            "nessie_minio_catalog",
            "ecommerce_db",
            1_764_000_000_000_000,
        );
        assert_eq!(q.len(), 6);
        assert!(q[0]
            .sql
            .contains("\"nessie_minio_catalog\".\"ecommerce_db\".\"orders_revenue_per_minute\""));
        assert!(q[0]
            .sql
            .contains("CAST('2025-11-24 15:20:00.000' AS TIMESTAMP)"));
        let odd = table("a\"b", "ns", "t");
        assert_eq!(odd, "\"a\"\"b\".\"ns\".\"t\"");
    }
}
