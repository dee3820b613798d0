//! Tables described by a column list: the Iceberg schema, the Arrow encoding and the decoding
//! of scanned batches all derive from it, so a KPI or the alerts table states its columns once.

use std::sync::Arc;

use arrow_array::builder::{
    Float64Builder, Int32Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{
    Array, ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use iceberg::spec::PrimitiveType;

use super::{build_schema, day_partition, field, TableSpec};
use crate::events::Micros;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnType {
    Int,
    Long,
    Double,
    Str,
    Timestamp,
}

impl ColumnType {
    fn primitive(self) -> PrimitiveType {
        match self {
            ColumnType::Int => PrimitiveType::Int,
            ColumnType::Long => PrimitiveType::Long,
            ColumnType::Double => PrimitiveType::Double,
            ColumnType::Str => PrimitiveType::String,
            ColumnType::Timestamp => PrimitiveType::Timestamp,
        }
    }

    /// The name `shopwatch tables --json` gives it (Iceberg's).
    pub fn as_str(self) -> &'static str {
        match self {
            ColumnType::Int => "int",
            ColumnType::Long => "long",
            ColumnType::Double => "double",
            ColumnType::Str => "string",
            ColumnType::Timestamp => "timestamp",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    pub ty: ColumnType,
}

pub const fn col(name: &'static str, ty: ColumnType) -> Column {
    Column { name, ty }
}

/// One cell. `Null` is allowed in every column (they are all optional, like the seed's).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Int(i32),
    Long(i64),
    Double(f64),
    Str(String),
    Timestamp(Micros),
    Null,
}

impl Value {
    /// A number for rules and dashboards (timestamps and text are not numbers).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(v) => Some(f64::from(*v)),
            Value::Long(v) => Some(*v as f64),
            Value::Double(v) => Some(*v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn opt_f64(v: Option<f64>) -> Value {
        v.map_or(Value::Null, Value::Double)
    }
}

/// A table whose columns are all listed; field ids follow the list from 1.
/// The spec of a table of `columns`, the first `contract` of which an existing table must
/// have (see [`TableSpec::contract`]).
pub fn spec(
    name: &'static str,
    columns: &[Column],
    partition_by: &str,
    contract: usize,
) -> TableSpec {
    let fields = columns
        .iter()
        .enumerate()
        .map(|(i, c)| field(i as i32 + 1, c.name, c.ty.primitive()))
        .collect();
    let source = columns
        .iter()
        .position(|c| c.name == partition_by)
        .map_or(1, |i| i as i32 + 1);
    TableSpec {
        name,
        schema: build_schema(fields),
        partition: day_partition(source, &format!("{partition_by}_day")),
        contract: contract.min(columns.len()),
    }
}

enum Builder {
    Int(Int32Builder),
    Long(Int64Builder),
    Double(Float64Builder),
    Str(StringBuilder),
    Timestamp(TimestampMicrosecondBuilder),
}

impl Builder {
    fn new(ty: ColumnType, n: usize) -> Builder {
        match ty {
            ColumnType::Int => Builder::Int(Int32Builder::with_capacity(n)),
            ColumnType::Long => Builder::Long(Int64Builder::with_capacity(n)),
            ColumnType::Double => Builder::Double(Float64Builder::with_capacity(n)),
            ColumnType::Str => Builder::Str(StringBuilder::with_capacity(n, n * 16)),
            ColumnType::Timestamp => {
                Builder::Timestamp(TimestampMicrosecondBuilder::with_capacity(n))
            }
        }
    }

    fn push(&mut self, column: &str, v: &Value) -> Result<(), arrow_schema::ArrowError> {
        match (self, v) {
            (Builder::Int(b), Value::Int(x)) => b.append_value(*x),
            (Builder::Long(b), Value::Long(x)) => b.append_value(*x),
            (Builder::Double(b), Value::Double(x)) => b.append_value(*x),
            (Builder::Str(b), Value::Str(x)) => b.append_value(x),
            (Builder::Timestamp(b), Value::Timestamp(x)) => b.append_value(*x),
            (Builder::Int(b), Value::Null) => b.append_null(),
            (Builder::Long(b), Value::Null) => b.append_null(),
            (Builder::Double(b), Value::Null) => b.append_null(),
            (Builder::Str(b), Value::Null) => b.append_null(),
            (Builder::Timestamp(b), Value::Null) => b.append_null(),
            (_, v) => {
                return Err(arrow_schema::ArrowError::InvalidArgumentError(format!(
                    "column {column}: value {v:?} does not fit the column type"
                )))
            }
        }
        Ok(())
    }

    fn finish(self) -> ArrayRef {
        match self {
            Builder::Int(mut b) => Arc::new(b.finish()),
            Builder::Long(mut b) => Arc::new(b.finish()),
            Builder::Double(mut b) => Arc::new(b.finish()),
            Builder::Str(mut b) => Arc::new(b.finish()),
            Builder::Timestamp(mut b) => Arc::new(b.finish()),
        }
    }
}

/// Rows of values (in `columns` order) as a batch of the table's Arrow schema.
pub fn encode(
    schema: arrow_schema::SchemaRef,
    columns: &[Column],
    rows: &[Vec<Value>],
) -> Result<RecordBatch, arrow_schema::ArrowError> {
    let mut builders: Vec<Builder> = columns
        .iter()
        .map(|c| Builder::new(c.ty, rows.len()))
        .collect();
    for row in rows {
        if row.len() != columns.len() {
            return Err(arrow_schema::ArrowError::InvalidArgumentError(format!(
                "row has {} values for {} columns",
                row.len(),
                columns.len()
            )));
        }
        for ((b, c), v) in builders.iter_mut().zip(columns).zip(row) {
            b.push(c.name, v)?;
        }
    }
    RecordBatch::try_new(schema, builders.into_iter().map(Builder::finish).collect())
}

/// Rows of a scanned batch as values, in `columns` order (a missing column is an error: the
/// table is not the one we wrote).
pub fn decode(batch: &RecordBatch, columns: &[Column]) -> Result<Vec<Vec<Value>>, String> {
    let mut out: Vec<Vec<Value>> = (0..batch.num_rows())
        .map(|_| Vec::with_capacity(columns.len()))
        .collect();
    for c in columns {
        let a = batch
            .column_by_name(c.name)
            .ok_or_else(|| format!("column {} is missing", c.name))?;
        let wrong = || format!("column {}: unexpected type {}", c.name, a.data_type());
        macro_rules! read {
            ($ty:ty, $variant:expr) => {{
                let a = a.as_any().downcast_ref::<$ty>().ok_or_else(wrong)?;
                for (i, row) in out.iter_mut().enumerate() {
                    row.push(if a.is_null(i) {
                        Value::Null
                    } else {
                        $variant(a.value(i))
                    });
                }
            }};
        }
        match c.ty {
            ColumnType::Int => read!(Int32Array, Value::Int),
            ColumnType::Long => read!(Int64Array, Value::Long),
            ColumnType::Double => read!(Float64Array, Value::Double),
            ColumnType::Str => read!(StringArray, |s: &str| Value::Str(s.to_string())),
            ColumnType::Timestamp => read!(TimestampMicrosecondArray, Value::Timestamp),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ColumnType::*;

    const COLUMNS: [Column; 4] = [
        col("window_start", Timestamp),
        col("n", Long),
        col("rate", Double),
        col("key", Str),
    ];

    #[test]
    fn encode_then_decode_is_identity_and_types_are_checked() {
        let spec = spec("t", &COLUMNS, "window_start", COLUMNS.len());
        let arrow = Arc::new(iceberg::arrow::schema_to_arrow_schema(&spec.schema).unwrap());
        let rows = vec![
            vec![
                Value::Timestamp(5),
                Value::Long(3),
                Value::Double(0.5),
                Value::Str("a".into()),
            ],
            vec![
                Value::Timestamp(6),
                Value::Long(0),
                Value::Null,
                Value::Null,
            ],
        ];
        let batch = encode(arrow.clone(), &COLUMNS, &rows).unwrap();
        assert_eq!(decode(&batch, &COLUMNS).unwrap(), rows);
        let bad = vec![vec![
            Value::Str("x".into()),
            Value::Long(3),
            Value::Null,
            Value::Null,
        ]];
        let e = encode(arrow, &COLUMNS, &bad).unwrap_err().to_string();
        assert!(e.contains("window_start"), "{e}");
        let names: Vec<_> = spec
            .schema
            .as_struct()
            .fields()
            .iter()
            .map(|f| (f.id, f.name.clone()))
            .collect();
        assert_eq!(names[0], (1, "window_start".to_string()));
        assert_eq!(names[3], (4, "key".to_string()));
    }
}
