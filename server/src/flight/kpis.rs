//! The dashboard's KPI queries, written once in SQL that Dremio and the embedded server both
//! run: quoted identifiers from configuration only, timestamps as literals computed here.
//!
//! Definitions (each event counted once): sliding 1-minute windows overlap by half, so
//! "orders in the last 5 minutes" sums only the windows that start on a whole minute; the
//! seed's card summed every window and showed about twice the real number.

use shopwatch_actors::kpis::REGISTRY;
use shopwatch_actors::sql::{string_literal, table, timestamp_literal};

pub struct KpiQuery {
    pub name: &'static str,
    pub sql: String,
}

/// "The 10 newest" rows look back this far first, so the scan prunes every older data file by
/// its column statistics; when that finds fewer than 10 the next, wider bound is tried. A busy
/// shop never needs the second step; a quiet one still sees its newest rows.
pub const LATEST_STEPS_S: [i64; 3] = [15, 10 * 60, 24 * 3600];
/// Alerts shown: the 10 newest of the last 30 minutes, looked for in the last minute first.
pub const ALERT_STEPS_S: [i64; 2] = [60, 30 * 60];
pub const LATEST_ROWS: usize = 10;

/// The dashboard's query set as of `now_micros`: each KPI's own query (from its definition in
/// the registry), then the newest rows.
pub fn kpi_queries(source: &str, namespace: &str, now_micros: i64) -> Vec<KpiQuery> {
    REGISTRY
        .iter()
        .filter_map(|k| {
            let sql = k.dashboard_sql(&table(source, namespace, k.table()), now_micros)?;
            Some(KpiQuery {
                name: k.name(),
                sql,
            })
        })
        .chain(
            NEWEST
                .iter()
                .map(|n| n.query(source, namespace, now_micros, n.steps_s[0])),
        )
        .collect()
}

/// A "10 newest rows" query: its table, columns, time column and order, and the look-backs
/// tried in turn.
struct Newest {
    name: &'static str,
    table: &'static str,
    columns: &'static [&'static str],
    ts: &'static str,
    tiebreak: &'static str,
    steps_s: &'static [i64],
}

const NEWEST: [Newest; 3] = [
    Newest {
        name: "recent_alerts",
        table: "alerts",
        columns: &[
            "alert_id",
            "alert_type",
            "description",
            "alert_timestamp",
            "metric_value",
        ],
        ts: "alert_timestamp",
        tiebreak: "alert_id",
        steps_s: &ALERT_STEPS_S,
    },
    Newest {
        name: "latest_orders",
        table: "orders_processed",
        columns: &["order_id", "user_id", "order_total", "status", "order_ts"],
        ts: "order_ts",
        tiebreak: "order_id",
        steps_s: &LATEST_STEPS_S,
    },
    Newest {
        name: "latest_errors",
        table: "errors_processed",
        columns: &["service_name", "severity", "error_message", "error_ts"],
        ts: "error_ts",
        tiebreak: "error_id",
        steps_s: &LATEST_STEPS_S,
    },
];

impl Newest {
    fn query(&self, source: &str, namespace: &str, now_micros: i64, seconds: i64) -> KpiQuery {
        let columns: Vec<String> = self.columns.iter().map(|c| format!("\"{c}\"")).collect();
        // DEBUG lines are noise on the dashboard.
        let extra = if self.table == "errors_processed" {
            format!(" AND \"severity\" <> {}", string_literal("DEBUG"))
        } else {
            String::new()
        };
        KpiQuery {
            name: self.name,
            sql: format!(
                "SELECT {} FROM {} WHERE \"{}\" > {}{extra} ORDER BY \"{}\" DESC, \"{}\" LIMIT {LATEST_ROWS}",
                columns.join(", "),
                table(source, namespace, self.table),
                self.ts,
                timestamp_literal(now_micros - seconds * 1_000_000),
                self.ts,
                self.tiebreak,
            ),
        }
    }
}

/// The wider retries of a "newest rows" query, in order (empty for the other queries).
pub fn widen(name: &str, source: &str, namespace: &str, now_micros: i64) -> Vec<KpiQuery> {
    NEWEST
        .iter()
        .filter(|n| n.name == name)
        .flat_map(|n| {
            n.steps_s[1..]
                .iter()
                .map(move |&s| n.query(source, namespace, now_micros, s))
        })
        .collect()
}

/// Alert groups shown: per rule and key over the last 30 minutes, the newest first.
pub const ALERT_GROUPS: usize = 20;
/// Operators' actions read back: longer than the longest silence.
pub const ACTIONS_LOOKBACK_S: i64 = 8 * 24 * 3600;

/// The page's alert groups (count, first and last time, newest description per rule and key)
/// and the operators' actions on them. Apart from the main set: a lake written by the seed has
/// no `alert_key` column and no actions table, and the cards must not fail with them.
pub fn alert_queries(source: &str, namespace: &str, now_micros: i64) -> [KpiQuery; 2] {
    let alerts = table(source, namespace, shopwatch_actors::alerts::TABLE);
    let by = "PARTITION BY \"alert_type\", \"alert_key\"";
    let since = timestamp_literal(now_micros - ALERT_STEPS_S[1] * 1_000_000);
    let groups = format!(
        "SELECT \"alert_type\", \"alert_key\", \"alert_count\", \"first_at\", \"last_at\", \"description\" FROM (\
         SELECT \"alert_type\", \"alert_key\", \"description\", \
         COUNT(*) OVER ({by}) AS \"alert_count\", \
         MIN(\"alert_timestamp\") OVER ({by}) AS \"first_at\", \
         MAX(\"alert_timestamp\") OVER ({by}) AS \"last_at\", \
         ROW_NUMBER() OVER ({by} ORDER BY \"alert_timestamp\" DESC, \"alert_id\" DESC) AS \"newest\" \
         FROM {alerts} WHERE \"alert_timestamp\" > {since}) AS \"g\" \
         WHERE \"newest\" = 1 ORDER BY \"last_at\" DESC, \"alert_type\", \"alert_key\" LIMIT {ALERT_GROUPS}"
    );
    let columns: Vec<String> = shopwatch_actors::alerts::actions::COLUMNS
        .iter()
        .map(|c| format!("\"{}\"", c.name))
        .collect();
    let actions = format!(
        "SELECT {} FROM {} WHERE \"at\" > {} ORDER BY \"at\", \"action_id\"",
        columns.join(", "),
        table(source, namespace, shopwatch_actors::alerts::actions::TABLE),
        timestamp_literal(now_micros - ACTIONS_LOOKBACK_S * 1_000_000),
    );
    [
        KpiQuery {
            name: "alert_groups",
            sql: groups,
        },
        KpiQuery {
            name: "alert_actions",
            sql: actions,
        },
    ]
}

/// Results of the set by query name.
pub type KpiResults = std::collections::BTreeMap<&'static str, Vec<arrow_array::RecordBatch>>;

/// Run the set as the dashboard does: every query at once, then the wider retries of any
/// "newest rows" query that found fewer than 10.
pub async fn fetch(
    client: &mut super::client::FlightQueryClient,
    source: &str,
    namespace: &str,
    now_micros: i64,
) -> anyhow::Result<KpiResults> {
    let queries = kpi_queries(source, namespace, now_micros);
    let names: Vec<&'static str> = queries.iter().map(|q| q.name).collect();
    let sqls: Vec<String> = queries.into_iter().map(|q| q.sql).collect();
    let mut out: KpiResults = names
        .into_iter()
        .zip(client.query_all(&sqls).await?)
        .collect();
    let rows = |b: &[arrow_array::RecordBatch]| b.iter().map(|b| b.num_rows()).sum::<usize>();
    for name in NEWEST.iter().map(|n| n.name) {
        for wider in widen(name, source, namespace, now_micros) {
            if out.get(name).is_some_and(|b| rows(b) >= LATEST_ROWS) {
                break;
            }
            let found = client.query(&wider.sql).await?;
            out.insert(name, found);
        }
    }
    Ok(out)
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
        // One query per KPI the page shows, by its name, and the three newest-rows queries.
        let viewed: Vec<&str> = REGISTRY
            .iter()
            .filter(|k| k.view().is_some())
            .map(|k| k.name())
            .collect();
        assert!(viewed.contains(&"funnel"), "{viewed:?}");
        assert_eq!(q.len(), viewed.len() + NEWEST.len());
        for name in viewed {
            assert!(q.iter().any(|x| x.name == name), "no query for {name}");
        }
        assert!(q[0]
            .sql
            .contains("\"nessie_minio_catalog\".\"ecommerce_db\".\"orders_revenue_per_minute\""));
        assert!(q[0]
            .sql
            .contains("CAST('2025-11-24 15:20:00.000' AS TIMESTAMP)"));
        let odd = table("a\"b", "ns", "t");
        assert_eq!(odd, "\"a\"\"b\".\"ns\".\"t\"");
    }

    #[test]
    fn newest_rows_widen_step_by_step() {
        let now = 1_764_000_000_000_000;
        let w = widen("latest_orders", "s", "ns", now);
        assert_eq!(w.len(), 2);
        assert!(
            w[0].sql
                .contains("CAST('2025-11-24 15:50:00.000' AS TIMESTAMP)"),
            "{}",
            w[0].sql
        );
        assert!(
            w[1].sql
                .contains("CAST('2025-11-23 16:00:00.000' AS TIMESTAMP)"),
            "{}",
            w[1].sql
        );
        assert_eq!(widen("recent_alerts", "s", "ns", now).len(), 1);
        assert!(widen("traffic", "s", "ns", now).is_empty());
        let first = kpi_queries("s", "ns", now);
        let errors = first.iter().find(|q| q.name == "latest_errors").unwrap();
        assert!(
            errors.sql.contains(
                "CAST('2025-11-24 15:59:45.000' AS TIMESTAMP) AND \"severity\" <> 'DEBUG'"
            ),
            "{}",
            errors.sql
        );
    }
}
