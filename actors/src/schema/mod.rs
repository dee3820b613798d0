//! Iceberg schemas of the tables we own and the conversion of typed rows into Arrow batches.
//!
//! Column order is the seed's; our own columns are only ever appended after it, so seed SQL
//! (and `SELECT *` consumers) keep working.

use std::sync::Arc;

use arrow_array::builder::{
    Float64Builder, Int32Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use iceberg::spec::{NestedField, PrimitiveType, Schema, Transform, Type, UnboundPartitionSpec};

use crate::events::{Click, ErrorEvent, EventKind, Micros, Order};

pub mod columns;

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
    fields.extend(source_fields(next_id));
    TableSpec {
        name: kind.raw_table(),
        schema: build_schema(fields),
        partition: day_partition(ts_id, &format!("{ts_name}_day")),
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

/// Typed rows of one table, in Kafka order.
#[derive(Clone, Debug)]
pub enum Rows {
    Orders(Vec<(Source, Order)>),
    Clicks(Vec<(Source, Click)>),
    Errors(Vec<(Source, ErrorEvent)>),
    DeadLetters(Vec<DeadLetter>),
}

impl Rows {
    pub fn empty_for(kind: EventKind) -> Rows {
        Rows::with_capacity(kind, 0)
    }

    /// Room for `n` rows: a batch of 50,000 is not grown by doubling.
    pub fn with_capacity(kind: EventKind, n: usize) -> Rows {
        match kind {
            EventKind::Orders => Rows::Orders(Vec::with_capacity(n)),
            EventKind::Clicks => Rows::Clicks(Vec::with_capacity(n)),
            EventKind::Errors => Rows::Errors(Vec::with_capacity(n)),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Rows::Orders(v) => v.len(),
            Rows::Clicks(v) => v.len(),
            Rows::Errors(v) => v.len(),
            Rows::DeadLetters(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Order rows by (partition, offset), the order Kafka delivered them in.
    pub fn sort_by_source(&mut self) {
        match self {
            Rows::Orders(v) => v.sort_by_key(|(s, _)| (s.partition, s.offset)),
            Rows::Clicks(v) => v.sort_by_key(|(s, _)| (s.partition, s.offset)),
            Rows::Errors(v) => v.sort_by_key(|(s, _)| (s.partition, s.offset)),
            Rows::DeadLetters(v) => v.sort_by_key(|d| (d.source.partition, d.source.offset)),
        }
    }

    /// Keep only rows for which `keep(partition, offset)` holds (replay filtering).
    pub fn retain(&mut self, keep: impl Fn(i32, i64) -> bool) {
        match self {
            Rows::Orders(v) => v.retain(|(s, _)| keep(s.partition, s.offset)),
            Rows::Clicks(v) => v.retain(|(s, _)| keep(s.partition, s.offset)),
            Rows::Errors(v) => v.retain(|(s, _)| keep(s.partition, s.offset)),
            Rows::DeadLetters(v) => v.retain(|d| keep(d.source.partition, d.source.offset)),
        }
    }

    /// Build an Arrow batch with exactly `arrow_schema` (the table's, with field ids).
    pub fn to_record_batch(
        &self,
        arrow_schema: arrow_schema::SchemaRef,
    ) -> Result<RecordBatch, arrow_schema::ArrowError> {
        let columns = match self {
            Rows::Orders(rows) => {
                let mut c = Cols::new(rows.len());
                let mut quantity = Int32Builder::with_capacity(rows.len());
                let mut price = Float64Builder::with_capacity(rows.len());
                let mut total = Float64Builder::with_capacity(rows.len());
                let (mut id, mut user, mut product, mut status) =
                    (c.string(), c.string(), c.string(), c.string());
                let mut ts = TimestampMicrosecondBuilder::with_capacity(rows.len());
                for (s, o) in rows {
                    id.append_value(&o.order_id);
                    user.append_value(&o.user_id);
                    product.append_value(&o.product_id);
                    quantity.append_value(o.quantity);
                    price.append_value(o.price);
                    total.append_value(f64::from(o.quantity) * o.price);
                    status.append_value(o.status);
                    ts.append_value(o.order_ts);
                    c.source(s);
                }
                let mut out: Vec<ArrayRef> = vec![
                    Arc::new(id.finish()),
                    Arc::new(user.finish()),
                    Arc::new(product.finish()),
                    Arc::new(quantity.finish()),
                    Arc::new(price.finish()),
                    Arc::new(total.finish()),
                    Arc::new(status.finish()),
                    Arc::new(ts.finish()),
                ];
                out.extend(c.finish());
                out
            }
            Rows::Clicks(rows) => {
                let mut c = Cols::new(rows.len());
                let (mut id, mut user, mut url, mut device) =
                    (c.string(), c.string(), c.string(), c.string());
                let mut ts = TimestampMicrosecondBuilder::with_capacity(rows.len());
                for (s, e) in rows {
                    id.append_value(&e.click_id);
                    user.append_value(&e.user_id);
                    url.append_value(&e.url);
                    device.append_value(e.device_type);
                    ts.append_value(e.click_ts);
                    c.source(s);
                }
                let mut out: Vec<ArrayRef> = vec![
                    Arc::new(id.finish()),
                    Arc::new(user.finish()),
                    Arc::new(url.finish()),
                    Arc::new(device.finish()),
                    Arc::new(ts.finish()),
                ];
                out.extend(c.finish());
                out
            }
            Rows::Errors(rows) => {
                let mut c = Cols::new(rows.len());
                let (mut id, mut service, mut message, mut severity) =
                    (c.string(), c.string(), c.string(), c.string());
                let mut ts = TimestampMicrosecondBuilder::with_capacity(rows.len());
                for (s, e) in rows {
                    id.append_value(&e.error_id);
                    service.append_value(&e.service_name);
                    message.append_value(&e.error_message);
                    severity.append_value(e.severity);
                    ts.append_value(e.error_ts);
                    c.source(s);
                }
                let mut out: Vec<ArrayRef> = vec![
                    Arc::new(id.finish()),
                    Arc::new(service.finish()),
                    Arc::new(message.finish()),
                    Arc::new(severity.finish()),
                    Arc::new(ts.finish()),
                ];
                out.extend(c.finish());
                out
            }
            Rows::DeadLetters(rows) => {
                let n = rows.len();
                let (mut topic, mut reason, mut detail, mut payload) = (
                    StringBuilder::with_capacity(n, n * 16),
                    StringBuilder::with_capacity(n, n * 16),
                    StringBuilder::with_capacity(n, n * 64),
                    StringBuilder::with_capacity(n, n * 256),
                );
                let mut partition = Int32Builder::with_capacity(n);
                let mut offset = Int64Builder::with_capacity(n);
                let mut bytes = Int64Builder::with_capacity(n);
                let mut received = TimestampMicrosecondBuilder::with_capacity(n);
                for d in rows {
                    topic.append_value(&d.topic);
                    partition.append_value(d.source.partition);
                    offset.append_value(d.source.offset);
                    reason.append_value(d.reason);
                    detail.append_value(&d.detail);
                    payload.append_value(&d.payload);
                    bytes.append_value(d.payload_bytes);
                    received.append_value(d.source.ingested_at);
                }
                let out: Vec<ArrayRef> = vec![
                    Arc::new(topic.finish()),
                    Arc::new(partition.finish()),
                    Arc::new(offset.finish()),
                    Arc::new(reason.finish()),
                    Arc::new(detail.finish()),
                    Arc::new(payload.finish()),
                    Arc::new(bytes.finish()),
                    Arc::new(received.finish()),
                ];
                out
            }
        };
        RecordBatch::try_new(arrow_schema, columns)
    }
}

/// Builders for the appended source columns shared by the raw tables.
struct Cols {
    n: usize,
    partition: Int32Builder,
    offset: Int64Builder,
    ingested: TimestampMicrosecondBuilder,
}

impl Cols {
    fn new(n: usize) -> Self {
        Cols {
            n,
            partition: Int32Builder::with_capacity(n),
            offset: Int64Builder::with_capacity(n),
            ingested: TimestampMicrosecondBuilder::with_capacity(n),
        }
    }
    fn string(&self) -> StringBuilder {
        StringBuilder::with_capacity(self.n, self.n * 24)
    }
    fn source(&mut self, s: &Source) {
        self.partition.append_value(s.partition);
        self.offset.append_value(s.offset);
        self.ingested.append_value(s.ingested_at);
    }
    fn finish(mut self) -> Vec<ArrayRef> {
        vec![
            Arc::new(self.partition.finish()),
            Arc::new(self.offset.finish()),
            Arc::new(self.ingested.finish()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let rows = Rows::Orders(vec![(
            Source {
                partition: 1,
                offset: 7,
                ingested_at: 2,
            },
            order,
        )]);
        let batch = rows.to_record_batch(arrow).unwrap();
        let total = batch
            .column(5)
            .as_any()
            .downcast_ref::<arrow_array::Float64Array>()
            .unwrap();
        assert_eq!(total.value(0), 7.5);
    }
}
