//! The alerts table and its rows: columns (the seed's first), the row type, deterministic ids,
//! and the constructors every rule's alerts go through.

use sha2::{Digest, Sha256};

use crate::events::Micros;
use crate::schema::columns::{self, col, Column, ColumnType::*, Value};
use crate::schema::{Encode, TableSpec};

pub const TABLE: &str = "alerts";

/// The alerts table: the seed's columns first, ours after them.
pub const COLUMNS: [Column; 13] = [
    col("alert_id", Str),
    col("alert_type", Str),
    col("description", Str),
    col("alert_timestamp", Timestamp),
    col("metric_value", Double),
    col("alert_key", Str),
    col("window_start", Timestamp),
    col("window_end", Timestamp),
    col("threshold", Double),
    col("source_topic", Str),
    col("source_partition", Int),
    col("source_offset", Long),
    // When shopwatch wrote the row.
    col("created_at", Timestamp),
];

pub fn spec() -> TableSpec {
    // The seed's five columns are the contract; the grouping and source columns are ours.
    let seed = COLUMNS
        .iter()
        .position(|c| c.name == "metric_value")
        .map_or(COLUMNS.len(), |i| i + 1);
    columns::spec(TABLE, &COLUMNS, "alert_timestamp", seed)
}

/// One row of the `alerts` table.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    pub alert_id: String,
    /// The rule's name (`FATAL_ERROR`, `ORDERS_DROP` …).
    pub alert_type: &'static str,
    pub description: String,
    pub alert_timestamp: Micros,
    pub metric_value: f64,
    /// Service, topic or `all`: what the alert is about.
    pub alert_key: String,
    pub window_start: Option<Micros>,
    pub window_end: Option<Micros>,
    pub threshold: Option<f64>,
    pub source_topic: Option<String>,
    pub source_partition: Option<i32>,
    pub source_offset: Option<i64>,
}

/// Deterministic id: the same rule, key and window always give the same id.
pub fn alert_id(rule: &str, key: &str, mark: &str) -> String {
    let mut h = Sha256::new();
    h.update(rule.as_bytes());
    h.update([0]);
    h.update(key.as_bytes());
    h.update([0]);
    h.update(mark.as_bytes());
    let digest = h.finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// What an event rule fires with.
#[derive(Clone, Debug, PartialEq)]
pub struct EventAlert {
    /// What the alert is about (a service).
    pub key: String,
    pub description: String,
    pub at: Micros,
}

/// Alerts to append to the alerts table.
#[derive(Clone, Debug, Default)]
pub struct Alerts(pub Vec<Alert>);

impl Encode for Alerts {
    fn spec(&self) -> TableSpec {
        spec()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn encode(
        &self,
        schema: arrow_schema::SchemaRef,
        now: Micros,
    ) -> Result<arrow_array::RecordBatch, arrow_schema::ArrowError> {
        let opt_ts = |t: Option<Micros>| t.map_or(Value::Null, Value::Timestamp);
        let rows: Vec<Vec<Value>> = self
            .0
            .iter()
            .map(|a| {
                vec![
                    Value::Str(a.alert_id.clone()),
                    Value::Str(a.alert_type.to_string()),
                    Value::Str(a.description.clone()),
                    Value::Timestamp(a.alert_timestamp),
                    Value::Double(a.metric_value),
                    Value::Str(a.alert_key.clone()),
                    opt_ts(a.window_start),
                    opt_ts(a.window_end),
                    Value::opt_f64(a.threshold),
                    a.source_topic.clone().map_or(Value::Null, Value::Str),
                    a.source_partition.map_or(Value::Null, Value::Int),
                    a.source_offset.map_or(Value::Null, Value::Long),
                    Value::Timestamp(now),
                ]
            })
            .collect();
        columns::encode(schema, &COLUMNS, &rows)
    }
}

/// Characters of an alert description kept (the rest of a producer's message stays in the
/// raw table): descriptions ride in the alert groups and the detector's checkpoint.
pub const DESCRIPTION_CHARS: usize = 1_000;

/// `text` cut at [`DESCRIPTION_CHARS`] characters, marked with `…` when cut.
pub fn bounded_description(text: String) -> String {
    match text.char_indices().nth(DESCRIPTION_CHARS) {
        None => text,
        Some((at, _)) => {
            let mut cut = text[..at].to_string();
            cut.push('…');
            cut
        }
    }
}

/// An alert about one source record (its position is the id's mark).
pub fn event_alert(
    name: &'static str,
    topic: &str,
    partition: i32,
    offset: i64,
    fired: EventAlert,
) -> Alert {
    Alert {
        alert_id: alert_id(name, &fired.key, &format!("{topic}/{partition}/{offset}")),
        alert_type: name,
        description: bounded_description(fired.description),
        alert_timestamp: fired.at,
        metric_value: 1.0,
        alert_key: fired.key,
        window_start: None,
        window_end: None,
        threshold: None,
        source_topic: Some(topic.to_string()),
        source_partition: Some(partition),
        source_offset: Some(offset),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic_and_distinct() {
        let a = alert_id("ORDERS_DROP", "all", "100");
        assert_eq!(a, alert_id("ORDERS_DROP", "all", "100"));
        assert_ne!(a, alert_id("REVENUE_DROP", "all", "100"));
        assert_ne!(a, alert_id("ORDERS_DROP", "all", "130"));
        assert_eq!(a.len(), 32);
    }

    #[test]
    fn seed_columns_first_and_batches_match_the_schema() {
        let names: Vec<_> = spec()
            .schema
            .as_struct()
            .fields()
            .iter()
            .map(|f| f.name.clone())
            .collect();
        assert_eq!(
            names[..5],
            [
                "alert_id",
                "alert_type",
                "description",
                "alert_timestamp",
                "metric_value"
            ]
        );
        let arrow =
            std::sync::Arc::new(iceberg::arrow::schema_to_arrow_schema(&spec().schema).unwrap());
        let alerts = Alerts(vec![crate::alerts::rules::fatal_error::alert(
            "t", 0, 1, "s", "m", 2,
        )]);
        assert_eq!(alerts.encode(arrow, 5).unwrap().num_rows(), 1);
    }
}
