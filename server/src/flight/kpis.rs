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

/// The KPI set for the 5 minutes before `now` (and the 5 before that, for deltas).
pub fn kpi_queries(source: &str, namespace: &str, now_micros: i64) -> Vec<KpiQuery> {
    const MIN: i64 = 60_000_000;
    let t = |n| table(source, namespace, n);
    // Whole-minute windows fully inside (now - 10 min, now]; the page splits them in two.
    let from = timestamp_literal(now_micros - 10 * MIN);
    let to = timestamp_literal(now_micros);
    // Latest rows: bounded in time so the scan skips every older data file by its statistics.
    let recent = timestamp_literal(now_micros - 60 * MIN);
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
                 ORDER BY \"window_end\" DESC LIMIT 2",
                t("active_users_per_window")
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
                 WHERE \"alert_timestamp\" > {} ORDER BY \"alert_timestamp\" DESC LIMIT 5",
                t("alerts"),
                timestamp_literal(now_micros - 10 * MIN)
            ),
        },
        KpiQuery {
            name: "latest_orders",
            sql: format!(
                "SELECT \"order_id\", \"user_id\", \"order_total\", \"status\", \"order_ts\" FROM {} \
                 WHERE \"order_ts\" > {recent} ORDER BY \"order_ts\" DESC LIMIT 10",
                t("orders_processed")
            ),
        },
        KpiQuery {
            name: "latest_errors",
            sql: format!(
                "SELECT \"service_name\", \"severity\", \"error_message\", \"error_ts\" FROM {} \
                 WHERE \"error_ts\" > {recent} AND \"severity\" <> {} ORDER BY \"error_ts\" DESC LIMIT 10",
                t("errors_processed"),
                string_literal("DEBUG")
            ),
        },
    ]
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
            .contains("CAST('2025-11-24 15:50:00.000' AS TIMESTAMP)"));
        let odd = table("a\"b", "ns", "t");
        assert_eq!(odd, "\"a\"\"b\".\"ns\".\"t\"");
    }
}
