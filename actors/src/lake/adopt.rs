//! Adopting a table someone else created (the old stack's Spark job, an older shopwatch):
//! before the first write its columns are checked against the table's definition, and a batch
//! is fitted to the columns the table really has.
//!
//! The rule, by column name (the table's own field ids are what its data files and partition
//! spec use, so ours need not match them):
//! - a contract column ([`TableSpec::contract`]) must be there, of the same type: a
//!   `timestamp` where we write one may be `timestamptz` (what Spark's TIMESTAMP becomes) and
//!   the other way round, an `int` we write may be a `long` in the table;
//! - a column shopwatch appended later is added (optional: older rows read null);
//! - a column we write must not be required in the table (we write null when an event lacks
//!   it), and a column only the table has must not be required either (we never fill it);
//!   extra optional columns stay null.

use std::sync::Arc;

use arrow_array::{new_null_array, Array, ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, DataType, SchemaRef};
use iceberg::spec::{NestedFieldRef, PrimitiveType, Schema, Type};

use anyhow::Context as _;
use iceberg::table::Table;
use iceberg::transaction::{AddColumn, ApplyTransactionAction, Transaction};
use iceberg::Catalog as _;

use super::Lake;
use crate::schema::TableSpec;

/// Why an existing table cannot be written, every column at once.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("table {table} cannot be adopted: {}. The table was left untouched: fix it (e.g. ALTER TABLE … ADD COLUMN / ALTER COLUMN) or point shopwatch at another namespace (lake.namespace)", .problems.join("; "))]
pub struct AdoptError {
    pub table: String,
    pub problems: Vec<String>,
}

fn type_name(t: &Type) -> String {
    match t {
        Type::Primitive(p) => p.to_string(),
        other => other.to_string(),
    }
}

/// Whether a column of type `found` holds what we write as `ours`.
fn compatible(found: &Type, ours: &Type) -> bool {
    use PrimitiveType as P;
    match (found, ours) {
        (Type::Primitive(f), Type::Primitive(o)) => {
            f == o
                || matches!(
                    (f, o),
                    (P::Timestamp | P::Timestamptz, P::Timestamp | P::Timestamptz)
                        | (P::Long, P::Int)
                )
        }
        _ => false,
    }
}

/// Check `found` (an existing table's current schema) against `spec`; the columns to add when
/// it passes.
pub fn check(spec: &TableSpec, found: &Schema) -> Result<Vec<NestedFieldRef>, AdoptError> {
    let mut problems = Vec::new();
    let mut add = Vec::new();
    let ours = spec.schema.as_struct().fields();
    for (i, f) in ours.iter().enumerate() {
        match found.field_by_name(&f.name) {
            Some(t) => {
                if !compatible(&t.field_type, &f.field_type) {
                    problems.push(format!(
                        "column {}: found {}, needed {}",
                        f.name,
                        type_name(&t.field_type),
                        type_name(&f.field_type)
                    ));
                } else if t.required && !f.required {
                    problems.push(format!(
                        "column {}: required in the table, but shopwatch writes null when an event lacks it (needed: optional)",
                        f.name
                    ));
                }
            }
            None if i < spec.contract => problems.push(format!(
                "column {}: missing (needed: {}, optional)",
                f.name,
                type_name(&f.field_type)
            )),
            None => add.push(f.clone()),
        }
    }
    for t in found.as_struct().fields() {
        if t.required && !ours.iter().any(|f| f.name == t.name) {
            problems.push(format!(
                "column {}: required in the table, but shopwatch does not write it (needed: optional or dropped)",
                t.name
            ));
        }
    }
    if problems.is_empty() {
        Ok(add)
    } else {
        Err(AdoptError {
            table: spec.name.to_string(),
            problems,
        })
    }
}

/// Whether a batch built for `ours` can be written as it is to a table of `table`.
pub fn same_layout(ours: &SchemaRef, table: &SchemaRef) -> bool {
    ours.fields().len() == table.fields().len()
        && ours
            .fields()
            .iter()
            .zip(table.fields())
            .all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type())
}

/// `batch` (our columns) as a batch of `table`'s columns: by name, cast where the adopted type
/// differs ([`check`] allowed it), null where the table has a column we do not write.
pub fn fit(batch: &RecordBatch, table: SchemaRef) -> Result<RecordBatch, ArrowError> {
    let columns: Vec<ArrayRef> = table
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            None => Ok(new_null_array(f.data_type(), batch.num_rows())),
            Some(c) if c.data_type() == f.data_type() => Ok(c.clone()),
            Some(c) => cast(c, f.data_type(), f.name()),
        })
        .collect::<Result<_, _>>()?;
    RecordBatch::try_new(table, columns)
}

fn cast(c: &ArrayRef, to: &DataType, name: &str) -> Result<ArrayRef, ArrowError> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int32Type, TimestampMicrosecondType};
    use arrow_array::{Int64Array, TimestampMicrosecondArray};
    use arrow_schema::TimeUnit;
    match (c.data_type(), to) {
        (
            DataType::Timestamp(TimeUnit::Microsecond, _),
            DataType::Timestamp(TimeUnit::Microsecond, tz),
        ) => {
            let a: TimestampMicrosecondArray = c.as_primitive::<TimestampMicrosecondType>().clone();
            Ok(Arc::new(a.with_timezone_opt(tz.clone())))
        }
        (DataType::Int32, DataType::Int64) => {
            let a: Int64Array = c
                .as_primitive::<Int32Type>()
                .iter()
                .map(|v| v.map(i64::from))
                .collect();
            Ok(Arc::new(a))
        }
        (from, to) => Err(ArrowError::CastError(format!(
            "column {name}: cannot write {from} into {to}"
        ))),
    }
}

impl Lake {
    /// Check every existing table among `specs` (nothing is changed).
    pub async fn check_existing(&self, specs: &[TableSpec]) -> anyhow::Result<()> {
        for spec in specs {
            let ident = self.ident(spec.name);
            if self.catalog.table_exists(&ident).await? {
                let table = self.catalog.load_table(&ident).await?;
                check(spec, table.metadata().current_schema())?;
            }
        }
        Ok(())
    }

    /// An existing table, checked against `spec` before anything is written to it; the
    /// columns shopwatch appended since are added (one schema change, no data touched).
    pub(super) async fn adopt(&self, spec: &TableSpec, table: Table) -> anyhow::Result<Table> {
        let add = check(spec, table.metadata().current_schema())?;
        if add.is_empty() {
            return Ok(table);
        }
        let names: Vec<String> = add.iter().map(|f| f.name.clone()).collect();
        let tx = Transaction::new(&table);
        let mut update = tx.update_schema();
        for f in &add {
            update = update.add_column(AddColumn::optional(&f.name, (*f.field_type).clone()));
        }
        let tx = update
            .apply(tx)
            .with_context(|| format!("adding columns {names:?} to {}", spec.name))?;
        let table = match tx.commit(self.catalog.as_ref()).await {
            Ok(t) => t,
            // Another instance adopted it first: what it added is what we need.
            Err(e) if super::catalog::is_conflict(&e) => {
                self.catalog.load_table(table.identifier()).await?
            }
            Err(e) => {
                return Err(anyhow::Error::new(e)
                    .context(format!("adding columns {names:?} to {}", spec.name)))
            }
        };
        tracing::info!(table = spec.name, added = ?names, "adopted an existing table: added shopwatch's own columns (older rows read null)");
        // Checked again: the table as it is now must pass with nothing left to add.
        let left = check(spec, table.metadata().current_schema())?;
        anyhow::ensure!(
            left.is_empty(),
            "{}: columns {left:?} still missing after adding them",
            spec.name
        );
        Ok(table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventKind;
    use crate::schema::raw_table_spec;
    use iceberg::spec::NestedField;

    /// The seed's `orders_processed` as Spark creates it: every column optional, TIMESTAMP as
    /// timestamptz, none of our source columns.
    fn spark_orders(change: impl Fn(&mut Vec<NestedFieldRef>)) -> Schema {
        let t = |p| Type::Primitive(p);
        let mut fields: Vec<NestedFieldRef> = [
            ("order_id", PrimitiveType::String),
            ("user_id", PrimitiveType::String),
            ("product_id", PrimitiveType::String),
            ("quantity", PrimitiveType::Int),
            ("price", PrimitiveType::Double),
            ("order_total", PrimitiveType::Double),
            ("status", PrimitiveType::String),
            ("order_ts", PrimitiveType::Timestamptz),
        ]
        .into_iter()
        .enumerate()
        .map(|(i, (n, p))| Arc::new(NestedField::optional(i as i32 + 1, n, t(p))))
        .collect();
        change(&mut fields);
        Schema::builder().with_fields(fields).build().unwrap()
    }

    #[test]
    fn what_an_existing_table_must_have() {
        let spec = raw_table_spec(EventKind::Orders);
        let added = |r: Result<Vec<NestedFieldRef>, AdoptError>| {
            r.map(|v| v.iter().map(|f| f.name.clone()).collect::<Vec<_>>())
        };
        // Spark's table: ours are added, timestamptz is fine.
        assert_eq!(
            added(check(&spec, &spark_orders(|_| {}))).unwrap(),
            ["kafka_partition", "kafka_offset", "ingested_at"]
        );
        // Our own table: nothing to add.
        assert!(check(&spec, &spec.schema).unwrap().is_empty());
        // (change, the problem named)
        type Change = Box<dyn Fn(&mut Vec<NestedFieldRef>)>;
        let cases: Vec<(Change, &str)> = vec![
            (
                Box::new(|f| f.retain(|x| x.name != "price")),
                "column price: missing (needed: double, optional)",
            ),
            (
                Box::new(|f| {
                    f[3] = Arc::new(NestedField::optional(
                        4,
                        "quantity",
                        Type::Primitive(PrimitiveType::String),
                    ))
                }),
                "column quantity: found string, needed int",
            ),
            (
                Box::new(|f| {
                    f[0] = Arc::new(NestedField::required(
                        1,
                        "order_id",
                        Type::Primitive(PrimitiveType::String),
                    ))
                }),
                "column order_id: required in the table",
            ),
            (
                Box::new(|f| {
                    f.push(Arc::new(NestedField::required(
                        20,
                        "tenant",
                        Type::Primitive(PrimitiveType::String),
                    )))
                }),
                "column tenant: required in the table, but shopwatch does not write it",
            ),
        ];
        for (change, want) in cases {
            let e = check(&spec, &spark_orders(change)).unwrap_err();
            assert_eq!(e.table, "orders_processed");
            assert!(e.to_string().contains(want), "{e}");
        }
        // An extra optional column and a long where we write an int are fine.
        let ok = check(
            &spec,
            &spark_orders(|f| {
                f[3] = Arc::new(NestedField::optional(
                    4,
                    "quantity",
                    Type::Primitive(PrimitiveType::Long),
                ));
                f.push(Arc::new(NestedField::optional(
                    20,
                    "tenant",
                    Type::Primitive(PrimitiveType::String),
                )));
            }),
        );
        assert!(ok.is_ok(), "{ok:?}");
    }

    #[test]
    fn a_batch_fits_the_adopted_columns() {
        use arrow_array::{Int32Array, StringArray, TimestampMicrosecondArray};
        use arrow_schema::{Field, Schema as ArrowSchema, TimeUnit};
        let ours = Arc::new(ArrowSchema::new(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("n", DataType::Int32, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        ]));
        let batch = RecordBatch::try_new(
            ours.clone(),
            vec![
                Arc::new(StringArray::from(vec!["a", "b"])),
                Arc::new(Int32Array::from(vec![1, 2])),
                Arc::new(TimestampMicrosecondArray::from(vec![10, 20])),
            ],
        )
        .unwrap();
        let utc = DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into()));
        let table = Arc::new(ArrowSchema::new(vec![
            Field::new("ts", utc.clone(), true),
            Field::new("extra", DataType::Utf8, true),
            Field::new("id", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
        ]));
        assert!(same_layout(&ours, &ours));
        assert!(!same_layout(&ours, &table));
        let fitted = fit(&batch, table).unwrap();
        assert_eq!(fitted.column(0).data_type(), &utc);
        assert_eq!(fitted.column(1).null_count(), 2);
        assert_eq!(fitted.column(3).data_type(), &DataType::Int64);
        assert_eq!(
            fitted
                .column(3)
                .as_any()
                .downcast_ref::<arrow_array::Int64Array>()
                .unwrap()
                .values(),
            &[1, 2]
        );
    }
}
