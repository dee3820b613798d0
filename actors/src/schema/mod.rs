//! Iceberg schemas of the tables we own and the conversion of typed rows into Arrow batches.
//!
//! Column order is the seed's; our own columns are only ever appended after it, so seed SQL
//! (and `SELECT *` consumers) keep working.

use std::sync::Arc;

use arrow_array::RecordBatch;
use iceberg::spec::{NestedField, PrimitiveType, Schema, Transform, Type, UnboundPartitionSpec};

use crate::events::{EventKind, Micros};

pub mod columns;
pub mod partials;
mod rows;

pub use rows::{ClickRows, ErrorRows, OrderRows, Rows};

pub const DEAD_LETTERS_TABLE: &str = "dead_letters";

pub(crate) fn field(id: i32, name: &str, ty: PrimitiveType) -> Arc<NestedField> {
    // Optional like the seed's Spark-created columns, so other engines may append nulls.
    Arc::new(NestedField::optional(id, name, Type::Primitive(ty)))
}

/// Columns appended to every raw table: where the row came from and when we read it.
fn source_fields(first_id: i32) -> Vec<Arc<NestedField>> {
    vec![
        field(first_id, "kafka_partition", PrimitiveType::Int),
        field(first_id + 1, "kafka_offset", PrimitiveType::Long),
        field(first_id + 2, "ingested_at", PrimitiveType::Timestamp),
    ]
}

/// Everything needed to create one of our tables.
#[derive(Clone, Debug)]
pub struct TableSpec {
    pub name: &'static str,
    pub schema: Schema,
    pub partition: UnboundPartitionSpec,
    /// How many leading columns are the contract (the old stack's, or for our own tables
    /// every column but those shopwatch appended later): an existing table must have them.
    /// The rest are added to an existing table that lacks them (`lake::adopt`).
    pub contract: usize,
}

pub fn raw_table_spec(kind: EventKind) -> TableSpec {
    let (mut fields, ts_id, ts_name) = match kind {
        EventKind::Orders => (
            vec![
                field(1, "order_id", PrimitiveType::String),
                field(2, "user_id", PrimitiveType::String),
                field(3, "product_id", PrimitiveType::String),
                field(4, "quantity", PrimitiveType::Int),
                field(5, "price", PrimitiveType::Double),
                field(6, "order_total", PrimitiveType::Double),
                field(7, "status", PrimitiveType::String),
                field(8, "order_ts", PrimitiveType::Timestamp),
            ],
            8,
            "order_ts",
        ),
        EventKind::Clicks => (
            vec![
                field(1, "click_id", PrimitiveType::String),
                field(2, "user_id", PrimitiveType::String),
                field(3, "url", PrimitiveType::String),
                field(4, "device_type", PrimitiveType::String),
                field(5, "click_ts", PrimitiveType::Timestamp),
            ],
            5,
            "click_ts",
        ),
        EventKind::Errors => (
            vec![
                field(1, "error_id", PrimitiveType::String),
                field(2, "service_name", PrimitiveType::String),
                field(3, "error_message", PrimitiveType::String),
                field(4, "severity", PrimitiveType::String),
                field(5, "error_ts", PrimitiveType::Timestamp),
            ],
            5,
            "error_ts",
        ),
    };
    let next_id = fields.len() as i32 + 1;
    let contract = fields.len();
    fields.extend(source_fields(next_id));
    TableSpec {
        name: kind.raw_table(),
        schema: build_schema(fields),
        partition: day_partition(ts_id, &format!("{ts_name}_day")),
        contract,
    }
}

pub fn dead_letters_spec() -> TableSpec {
    let fields = vec![
        field(1, "topic", PrimitiveType::String),
        field(2, "kafka_partition", PrimitiveType::Int),
        field(3, "kafka_offset", PrimitiveType::Long),
        field(4, "reason", PrimitiveType::String),
        field(5, "detail", PrimitiveType::String),
        field(6, "payload", PrimitiveType::String),
        field(7, "payload_bytes", PrimitiveType::Long),
        field(8, "received_at", PrimitiveType::Timestamp),
    ];
    TableSpec {
        name: DEAD_LETTERS_TABLE,
        schema: build_schema(fields),
        partition: day_partition(8, "received_at_day"),
        contract: 8,
    }
}

pub(crate) fn build_schema(fields: Vec<Arc<NestedField>>) -> Schema {
    // Field ids are fixed and unique above, so this cannot fail at run time.
    Schema::builder()
        .with_fields(fields)
        .build()
        .expect("static schema is valid")
}

pub(crate) fn day_partition(source_id: i32, name: &str) -> UnboundPartitionSpec {
    UnboundPartitionSpec::builder()
        .add_partition_field(source_id, name, Transform::Day)
        .expect("static partition field is valid")
        .build()
}

/// The partition of rows another engine wrote into a raw table (the old stack's Spark job):
/// they carry no Kafka partition or offset. Asking for it in a raw read's `from` (any offset)
/// reads them; they fold into the windows they fall in but never move a watermark.
pub const NO_SOURCE: i32 = -1;

/// Where a row came from in Kafka.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Source {
    pub partition: i32,
    pub offset: i64,
    pub ingested_at: Micros,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DeadLetter {
    pub topic: String,
    pub source: Source,
    pub reason: &'static str,
    pub detail: String,
    pub payload: String,
    pub payload_bytes: i64,
}

/// Rows the commit loop can turn into a batch of a table's Arrow schema. `now` fills the
/// columns that say when shopwatch wrote a row (`emitted_at`, `created_at`).
pub trait Encode: Send + Sync {
    /// The table these rows are for, as shopwatch defines it (an adopted table may differ:
    /// the batch is fitted to it, `lake::adopt::fit`).
    fn spec(&self) -> TableSpec;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn encode(
        &self,
        schema: arrow_schema::SchemaRef,
        now: Micros,
    ) -> Result<RecordBatch, arrow_schema::ArrowError>;
}

impl Encode for Rows {
    fn spec(&self) -> TableSpec {
        match self {
            Rows::Orders(_) => raw_table_spec(EventKind::Orders),
            Rows::Clicks(_) => raw_table_spec(EventKind::Clicks),
            Rows::Errors(_) => raw_table_spec(EventKind::Errors),
            Rows::DeadLetters(_) => dead_letters_spec(),
            Rows::Partials(kind, _) => partials::partials_spec(*kind),
        }
    }
    fn len(&self) -> usize {
        Rows::len(self)
    }
    fn encode(
        &self,
        schema: arrow_schema::SchemaRef,
        _now: Micros,
    ) -> Result<RecordBatch, arrow_schema::ArrowError> {
        self.to_record_batch(schema)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Order;

    #[test]
    fn seed_columns_come_first_in_seed_order() {
        let names = |k| {
            raw_table_spec(k)
                .schema
                .as_struct()
                .fields()
                .iter()
                .map(|f| f.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(EventKind::Orders),
            [
                "order_id",
                "user_id",
                "product_id",
                "quantity",
                "price",
                "order_total",
                "status",
                "order_ts",
                "kafka_partition",
                "kafka_offset",
                "ingested_at"
            ]
        );
        assert_eq!(
            names(EventKind::Clicks)[..5],
            ["click_id", "user_id", "url", "device_type", "click_ts"]
        );
        assert_eq!(
            names(EventKind::Errors)[..5],
            [
                "error_id",
                "service_name",
                "error_message",
                "severity",
                "error_ts"
            ]
        );
    }

    #[test]
    fn orders_batch_matches_iceberg_arrow_schema_and_computes_total() {
        let spec = raw_table_spec(EventKind::Orders);
        let arrow = Arc::new(iceberg::arrow::schema_to_arrow_schema(&spec.schema).unwrap());
        let order = Order {
            order_id: "o".into(),
            user_id: "u".into(),
            product_id: "p".into(),
            quantity: 3,
            price: 2.5,
            status: "CREATED",
            order_ts: 1,
        };
        let rows = Rows::Orders(
            [(
                Source {
                    partition: 1,
                    offset: 7,
                    ingested_at: 2,
                },
                order,
            )]
            .into_iter()
            .collect(),
        );
        let batch = rows.to_record_batch(arrow).unwrap();
        let total = batch
            .column(5)
            .as_any()
            .downcast_ref::<arrow_array::Float64Array>()
            .unwrap();
        assert_eq!(total.value(0), 7.5);
    }
}
