//! Tables derived from the raw events: the seed's three KPI tables, our traffic table and the
//! alerts table. Seed columns first, ours appended.

use std::sync::Arc;

use arrow_array::builder::{
    Float64Builder, Int32Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use iceberg::spec::PrimitiveType;

use super::{build_schema, day_partition, field, TableSpec};
use crate::alerts::Alert;
use crate::events::Micros;
use crate::windows::{ErrorsRow, OrdersRow, TrafficRow, UsersRow};

pub const ORDERS_REVENUE_TABLE: &str = "orders_revenue_per_minute";
pub const ACTIVE_USERS_TABLE: &str = "active_users_per_window";
pub const ERRORS_TABLE: &str = "errors_per_minute";
pub const TRAFFIC_TABLE: &str = "traffic_per_minute";
pub const ALERTS_TABLE: &str = "alerts";

use PrimitiveType::{Double, Int, Long, String as Str, Timestamp};

fn window_table(name: &'static str, middle: &[(&str, PrimitiveType)]) -> TableSpec {
    let mut fields = vec![
        field(1, "window_start", Timestamp),
        field(2, "window_end", Timestamp),
    ];
    for (i, (n, t)) in middle.iter().enumerate() {
        fields.push(field(3 + i as i32, n, t.clone()));
    }
    // When shopwatch wrote the row: window_end → emitted_at is how late a KPI appears.
    fields.push(field(3 + middle.len() as i32, "emitted_at", Timestamp));
    TableSpec {
        name,
        schema: build_schema(fields),
        partition: day_partition(1, "window_start_day"),
    }
}

pub fn orders_revenue_spec() -> TableSpec {
    window_table(
        ORDERS_REVENUE_TABLE,
        &[("orders_count", Long), ("total_revenue", Double)],
    )
}

pub fn active_users_spec() -> TableSpec {
    window_table(ACTIVE_USERS_TABLE, &[("active_users_approx", Long)])
}

pub fn errors_spec() -> TableSpec {
    window_table(
        ERRORS_TABLE,
        &[
            ("service_name", Str),
            ("severity", Str),
            ("error_count", Long),
        ],
    )
}

pub fn traffic_spec() -> TableSpec {
    window_table(
        TRAFFIC_TABLE,
        &[
            ("orders_count", Long),
            ("clicks_count", Long),
            ("warn_count", Long),
            ("error_count", Long),
            ("fatal_count", Long),
            ("error_rate", Double),
        ],
    )
}

pub fn alerts_spec() -> TableSpec {
    let names: [(&str, PrimitiveType); 13] = [
        ("alert_id", Str),
        ("alert_type", Str),
        ("description", Str),
        ("alert_timestamp", Timestamp),
        ("metric_value", Double),
        ("alert_key", Str),
        ("window_start", Timestamp),
        ("window_end", Timestamp),
        ("threshold", Double),
        ("source_topic", Str),
        ("source_partition", Int),
        ("source_offset", Long),
        ("created_at", Timestamp),
    ];
    let fields = names
        .iter()
        .enumerate()
        .map(|(i, (n, t))| field(i as i32 + 1, n, t.clone()))
        .collect();
    TableSpec {
        name: ALERTS_TABLE,
        schema: build_schema(fields),
        partition: day_partition(4, "alert_timestamp_day"),
    }
}

/// Rows for one derived table.
#[derive(Clone, Debug)]
pub enum DerivedRows {
    Orders(Vec<OrdersRow>),
    Users(Vec<UsersRow>),
    Errors(Vec<ErrorsRow>),
    Traffic(Vec<TrafficRow>),
    Alerts(Vec<Alert>),
}

impl DerivedRows {
    pub fn len(&self) -> usize {
        match self {
            DerivedRows::Orders(v) => v.len(),
            DerivedRows::Users(v) => v.len(),
            DerivedRows::Errors(v) => v.len(),
            DerivedRows::Traffic(v) => v.len(),
            DerivedRows::Alerts(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Build the batch for the table's Arrow schema; `now` fills `emitted_at` / `created_at`.
    pub fn to_record_batch(
        &self,
        schema: arrow_schema::SchemaRef,
        now: Micros,
    ) -> Result<RecordBatch, arrow_schema::ArrowError> {
        let n = self.len();
        let ts = || TimestampMicrosecondBuilder::with_capacity(n);
        let long = || Int64Builder::with_capacity(n);
        let text = || StringBuilder::with_capacity(n, n * 16);
        let window = |start: &mut TimestampMicrosecondBuilder,
                      end: &mut TimestampMicrosecondBuilder,
                      s: Micros,
                      e: Micros| {
            start.append_value(s);
            end.append_value(e);
        };
        let mut emitted = ts();
        let mut columns: Vec<ArrayRef> = match self {
            DerivedRows::Orders(rows) => {
                let (mut s, mut e, mut c, mut r) =
                    (ts(), ts(), long(), Float64Builder::with_capacity(n));
                for row in rows {
                    window(&mut s, &mut e, row.window_start, row.window_end);
                    c.append_value(row.orders_count);
                    r.append_value(row.total_revenue);
                    emitted.append_value(now);
                }
                vec![
                    Arc::new(s.finish()),
                    Arc::new(e.finish()),
                    Arc::new(c.finish()),
                    Arc::new(r.finish()),
                ]
            }
            DerivedRows::Users(rows) => {
                let (mut s, mut e, mut c) = (ts(), ts(), long());
                for row in rows {
                    window(&mut s, &mut e, row.window_start, row.window_end);
                    c.append_value(row.active_users);
                    emitted.append_value(now);
                }
                vec![
                    Arc::new(s.finish()),
                    Arc::new(e.finish()),
                    Arc::new(c.finish()),
                ]
            }
            DerivedRows::Errors(rows) => {
                let (mut s, mut e, mut svc, mut sev, mut c) = (ts(), ts(), text(), text(), long());
                for row in rows {
                    window(&mut s, &mut e, row.window_start, row.window_end);
                    svc.append_value(&row.service_name);
                    sev.append_value(&row.severity);
                    c.append_value(row.error_count);
                    emitted.append_value(now);
                }
                vec![
                    Arc::new(s.finish()),
                    Arc::new(e.finish()),
                    Arc::new(svc.finish()),
                    Arc::new(sev.finish()),
                    Arc::new(c.finish()),
                ]
            }
            DerivedRows::Traffic(rows) => {
                let (mut s, mut e) = (ts(), ts());
                let (mut o, mut c, mut w, mut er, mut f) = (long(), long(), long(), long(), long());
                let mut rate = Float64Builder::with_capacity(n);
                for row in rows {
                    window(&mut s, &mut e, row.window_start, row.window_end);
                    o.append_value(row.orders_count);
                    c.append_value(row.clicks_count);
                    w.append_value(row.warn_count);
                    er.append_value(row.error_count);
                    f.append_value(row.fatal_count);
                    rate.append_option(row.error_rate);
                    emitted.append_value(now);
                }
                vec![
                    Arc::new(s.finish()),
                    Arc::new(e.finish()),
                    Arc::new(o.finish()),
                    Arc::new(c.finish()),
                    Arc::new(w.finish()),
                    Arc::new(er.finish()),
                    Arc::new(f.finish()),
                    Arc::new(rate.finish()),
                ]
            }
            DerivedRows::Alerts(rows) => {
                let (mut id, mut ty, mut desc, mut at, mut value) = (
                    text(),
                    text(),
                    text(),
                    ts(),
                    Float64Builder::with_capacity(n),
                );
                let (mut key, mut ws, mut we, mut thr) =
                    (text(), ts(), ts(), Float64Builder::with_capacity(n));
                let (mut topic, mut part, mut off) =
                    (text(), Int32Builder::with_capacity(n), long());
                for a in rows {
                    id.append_value(&a.alert_id);
                    ty.append_value(a.alert_type.as_str());
                    desc.append_value(&a.description);
                    at.append_value(a.alert_timestamp);
                    value.append_value(a.metric_value);
                    key.append_value(&a.alert_key);
                    ws.append_option(a.window_start);
                    we.append_option(a.window_end);
                    thr.append_option(a.threshold);
                    topic.append_option(a.source_topic.as_deref());
                    part.append_option(a.source_partition);
                    off.append_option(a.source_offset);
                    emitted.append_value(now);
                }
                vec![
                    Arc::new(id.finish()),
                    Arc::new(ty.finish()),
                    Arc::new(desc.finish()),
                    Arc::new(at.finish()),
                    Arc::new(value.finish()),
                    Arc::new(key.finish()),
                    Arc::new(ws.finish()),
                    Arc::new(we.finish()),
                    Arc::new(thr.finish()),
                    Arc::new(topic.finish()),
                    Arc::new(part.finish()),
                    Arc::new(off.finish()),
                ]
            }
        };
        columns.push(Arc::new(emitted.finish()));
        RecordBatch::try_new(schema, columns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_columns_first_and_batches_match_schemas() {
        let names = |spec: TableSpec| {
            spec.schema
                .as_struct()
                .fields()
                .iter()
                .map(|f| f.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(orders_revenue_spec())[..4],
            [
                "window_start",
                "window_end",
                "orders_count",
                "total_revenue"
            ]
        );
        assert_eq!(
            names(active_users_spec())[..3],
            ["window_start", "window_end", "active_users_approx"]
        );
        assert_eq!(
            names(errors_spec())[..5],
            [
                "window_start",
                "window_end",
                "service_name",
                "severity",
                "error_count"
            ]
        );
        assert_eq!(
            names(alerts_spec())[..5],
            [
                "alert_id",
                "alert_type",
                "description",
                "alert_timestamp",
                "metric_value"
            ]
        );
        let arrow = |spec: TableSpec| {
            Arc::new(iceberg::arrow::schema_to_arrow_schema(&spec.schema).unwrap())
        };
        let traffic = DerivedRows::Traffic(vec![TrafficRow {
            window_start: 0,
            window_end: 60,
            orders_count: 1,
            clicks_count: 0,
            warn_count: 0,
            error_count: 0,
            fatal_count: 0,
            error_rate: Some(0.0),
        }]);
        assert_eq!(
            traffic
                .to_record_batch(arrow(traffic_spec()), 5)
                .unwrap()
                .num_rows(),
            1
        );
        let alerts = DerivedRows::Alerts(vec![crate::alerts::fatal_alert("t", 0, 1, "s", "m", 2)]);
        assert_eq!(
            alerts
                .to_record_batch(arrow(alerts_spec()), 5)
                .unwrap()
                .num_rows(),
            1
        );
    }
}
