//! The partials table: per pane, what one instance folded of one partition's range of
//! offsets for one KPI, for the rollup owner to merge (`windows::parts`). Written with the
//! same offset ledger as the raw tables (each range exactly once, fenced per partition), so
//! the lake stays the only truth the instances share.

use super::columns::{self, col, Column, ColumnType::*, Value};
use super::TableSpec;
use crate::events::{EventKind, Micros};

/// One partials table per topic kind: the writers commit each topic to its own table, so two
/// writers conflict only when they commit the same topic at once (one shared table took 24 of
/// the 40 catalog conflicts a minute of three instances, BENCHMARKS.md "Partial windows").
pub fn partials_table(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Orders => "shopwatch_partials_orders",
        EventKind::Clicks => "shopwatch_partials_clicks",
        EventKind::Errors => "shopwatch_partials_errors",
    }
}

/// The `kpi` of the row every committed range has, events or not: where ranges start and end
/// is what the owner chains on.
pub const RANGE_MARK: &str = "";

pub const COLUMNS: [Column; 11] = [
    col("kpi", Str),
    col("topic", Str),
    col("kafka_partition", Int),
    // The range's start: the same column name as the raw tables', so scans filter alike.
    col("kafka_offset", Long),
    col("end_offset", Long),
    col("pane_start", Timestamp),
    col("events", Long),
    col("ahead", Long),
    col("trusted_ts", Timestamp),
    col("newest_ts", Timestamp),
    // The pane's accumulator, as the KPI serializes it (JSON).
    col("acc", Str),
];

pub fn partials_spec(kind: EventKind) -> TableSpec {
    columns::spec(partials_table(kind), &COLUMNS, "pane_start", COLUMNS.len())
}

/// One row of the partials table.
#[derive(Clone, Debug, PartialEq)]
pub struct PartRow {
    pub kpi: Box<str>,
    pub topic: Box<str>,
    pub partition: i32,
    /// The range `[offset, end_offset)` this row's commit covered for the partition.
    pub offset: i64,
    pub end_offset: i64,
    pub pane_start: Micros,
    pub events: i64,
    pub ahead: i64,
    pub trusted: Micros,
    pub newest: Micros,
    pub acc: String,
}

impl PartRow {
    /// The row that marks a committed range.
    pub fn mark(topic: &str, partition: i32, offset: i64, end_offset: i64) -> Self {
        PartRow {
            kpi: RANGE_MARK.into(),
            topic: topic.into(),
            partition,
            offset,
            end_offset,
            pane_start: 0,
            events: 0,
            ahead: 0,
            trusted: 0,
            newest: 0,
            acc: String::new(),
        }
    }

    pub fn is_mark(&self) -> bool {
        &*self.kpi == RANGE_MARK
    }

    fn values(&self) -> Vec<Value> {
        vec![
            Value::Str(self.kpi.to_string()),
            Value::Str(self.topic.to_string()),
            Value::Int(self.partition),
            Value::Long(self.offset),
            Value::Long(self.end_offset),
            Value::Timestamp(self.pane_start),
            Value::Long(self.events),
            Value::Long(self.ahead),
            Value::Timestamp(self.trusted),
            Value::Timestamp(self.newest),
            Value::Str(self.acc.clone()),
        ]
    }
}

pub fn encode(
    schema: arrow_schema::SchemaRef,
    rows: &[PartRow],
) -> Result<arrow_array::RecordBatch, arrow_schema::ArrowError> {
    let values: Vec<Vec<Value>> = rows.iter().map(PartRow::values).collect();
    columns::encode(schema, &COLUMNS, &values)
}

/// Rows read back from a scanned batch.
pub fn decode(batch: &arrow_array::RecordBatch) -> Result<Vec<PartRow>, String> {
    let text = |v: &Value| match v {
        Value::Str(s) => s.clone(),
        _ => String::new(),
    };
    let long = |v: &Value| match v {
        Value::Long(x) | Value::Timestamp(x) => *x,
        Value::Int(x) => i64::from(*x),
        _ => 0,
    };
    columns::decode(batch, &COLUMNS).map(|rows| {
        rows.iter()
            .map(|v| PartRow {
                kpi: text(&v[0]).into(),
                topic: text(&v[1]).into(),
                partition: long(&v[2]) as i32,
                offset: long(&v[3]),
                end_offset: long(&v[4]),
                pane_start: long(&v[5]),
                events: long(&v[6]),
                ahead: long(&v[7]),
                trusted: long(&v[8]),
                newest: long(&v[9]),
                acc: text(&v[10]),
            })
            .collect()
    })
}
