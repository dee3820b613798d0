//! Reading our tables back: the rollup actors rebuild their open state from the raw tables
//! (the durable log of every accepted event) and their history from the rollup tables.

use arrow_array::{
    Array, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use futures::TryStreamExt;
use iceberg::expr::{Predicate, Reference};
use iceberg::spec::Datum;
use iceberg::table::Table;

use super::index::{FileIndex, Need};
use crate::events::{
    Click, ErrorEvent, EventKind, Order, DEVICE_TYPES, ORDER_STATUSES, SEVERITIES,
};
use crate::lake::commit::offsets::Offsets;
use crate::schema::{Rows, Source, NO_SOURCE};

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("scanning {table}: {source}")]
    Iceberg {
        table: String,
        source: iceberg::Error,
    },
    #[error("scanning {table}: column {column}: {detail}")]
    Column {
        table: String,
        column: String,
        detail: String,
    },
}

/// Read every batch of `table` matching `filter` (all rows when `None`).
pub async fn read_batches(
    table: &Table,
    columns: Option<&[&str]>,
    filter: Option<Predicate>,
) -> Result<Vec<RecordBatch>, ScanError> {
    let name = table.identifier().name().to_string();
    if table.metadata().current_snapshot().is_none() {
        return Ok(Vec::new());
    }
    let err = |source| ScanError::Iceberg {
        table: name.clone(),
        source,
    };
    let mut builder = table.scan();
    builder = match columns {
        Some(cols) => builder.select(cols.iter().copied()),
        None => builder.select_all(),
    };
    if let Some(f) = filter {
        builder = builder.with_filter(f);
    }
    let scan = builder.build().map_err(err)?;
    let stream = scan.to_arrow().await.map_err(err)?;
    stream.try_collect().await.map_err(err)
}

/// Typed access to a column of a scanned batch.
pub struct Columns<'a> {
    table: &'a str,
    batch: &'a RecordBatch,
}

impl<'a> Columns<'a> {
    pub fn new(table: &'a str, batch: &'a RecordBatch) -> Self {
        Columns { table, batch }
    }

    fn get<T: Array + 'static>(&self, name: &str) -> Result<&'a T, ScanError> {
        let col = self
            .batch
            .column_by_name(name)
            .ok_or_else(|| ScanError::Column {
                table: self.table.to_string(),
                column: name.to_string(),
                detail: "missing".into(),
            })?;
        col.as_any()
            .downcast_ref::<T>()
            .ok_or_else(|| ScanError::Column {
                table: self.table.to_string(),
                column: name.to_string(),
                detail: format!("unexpected type {}", col.data_type()),
            })
    }
    pub fn str(&self, name: &str) -> Result<&'a StringArray, ScanError> {
        self.get(name)
    }
    pub fn i32(&self, name: &str) -> Result<&'a Int32Array, ScanError> {
        self.get(name)
    }
    pub fn i64(&self, name: &str) -> Result<&'a Int64Array, ScanError> {
        self.get(name)
    }
    pub fn f64(&self, name: &str) -> Result<&'a Float64Array, ScanError> {
        self.get(name)
    }
    pub fn ts(&self, name: &str) -> Result<&'a TimestampMicrosecondArray, ScanError> {
        self.get(name)
    }
}

fn opt_str(a: &StringArray, i: usize) -> &str {
    if a.is_null(i) {
        ""
    } else {
        a.value(i)
    }
}

/// Enum values are `&'static str` in our types; rows written by other engines may hold any
/// string, so unknown values map to a fixed placeholder instead of failing the rebuild.
fn intern(value: &str, known: &[&'static str]) -> &'static str {
    known
        .iter()
        .find(|k| **k == value)
        .copied()
        .unwrap_or("UNKNOWN")
}

/// Where to resume reading a raw table: `from` where known, and from the first row for any
/// partition the table has (its recorded `position`) that `from` does not mention.
pub fn resume_points(from: &Offsets, position: &Offsets) -> Offsets {
    let mut out = from.clone();
    for p in position.keys() {
        out.entry(*p).or_insert(0);
    }
    out
}

/// Rows of raw table `table` (of `kind`) at or after `from` per partition (partitions absent
/// from `from` are read from their first row only if `everything_for_unknown_partitions`),
/// in Kafka order per partition. Files whose offsets all lie below `from` are skipped.
pub async fn read_raw(
    table: &Table,
    kind: EventKind,
    from: &Offsets,
    everything_for_unknown_partitions: bool,
) -> Result<Rows, ScanError> {
    read_raw_with(table, kind, from, everything_for_unknown_partitions, None).await
}

/// [`read_raw`] of the partitions in `from` only, planned through `index` (a read repeated
/// every tick: each manifest parsed once).
pub async fn read_raw_indexed(
    table: &Table,
    kind: EventKind,
    from: &Offsets,
    index: &mut FileIndex,
) -> Result<Rows, ScanError> {
    read_raw_with(table, kind, from, false, Some(index)).await
}

async fn read_raw_with(
    table: &Table,
    kind: EventKind,
    from: &Offsets,
    everything_for_unknown_partitions: bool,
    index: Option<&mut FileIndex>,
) -> Result<Rows, ScanError> {
    let history = from.contains_key(&NO_SOURCE);
    let floor = if everything_for_unknown_partitions && from.is_empty() {
        0
    } else {
        from.iter()
            .filter(|(p, _)| **p != NO_SOURCE)
            .map(|(_, o)| *o)
            .min()
            .unwrap_or(0)
    };
    // A table adopted from another engine keeps that engine's schema on its snapshots until
    // shopwatch commits: a scan binds to it, so our columns cannot be filtered on yet.
    let ours_yet = table
        .metadata()
        .current_snapshot()
        .and_then(|s| s.schema(table.metadata()).ok())
        .is_none_or(|schema| schema.field_by_name("kafka_offset").is_some());
    if !ours_yet && !history {
        return Ok(Rows::empty_for(kind));
    }
    let filter = ours_yet.then(|| {
        let f = Reference::new("kafka_offset").greater_than_or_equal_to(Datum::long(floor));
        if history {
            f.or(Reference::new("kafka_offset").is_null())
        } else {
            f
        }
    });
    let indexed = match (index, &filter) {
        // History (rows without a Kafka source) needs the null check: the table scan does it.
        (Some(index), Some(f)) if !history => {
            let needs = [Need::AtLeast("kafka_offset", floor)];
            index
                .read(table, f.clone(), &needs)
                .await
                .map_err(|source| ScanError::Iceberg {
                    table: table.identifier().name().to_string(),
                    source,
                })?
        }
        _ => None,
    };
    let batches = match indexed {
        Some(b) => b,
        None => read_batches(table, None, filter).await?,
    };
    let name = kind.raw_table();
    let mut rows = Rows::empty_for(kind);
    for batch in &batches {
        let c = Columns::new(name, batch);
        // Absent from a batch read at another engine's schema: every row is that engine's.
        let (part, off, ing) = if batch.column_by_name("kafka_offset").is_some() {
            (
                Some(c.i32("kafka_partition")?),
                Some(c.i64("kafka_offset")?),
                Some(c.ts("ingested_at")?),
            )
        } else {
            (None, None, None)
        };
        let sources = (0..batch.num_rows())
            .map(|i| match (part, off, ing) {
                (Some(part), Some(off), Some(ing)) if !part.is_null(i) && !off.is_null(i) => {
                    Source {
                        partition: part.value(i),
                        offset: off.value(i),
                        ingested_at: ing.value(i),
                    }
                }
                _ => {
                    // Written by another engine (the old stack's Spark job): no Kafka source.
                    Source {
                        partition: NO_SOURCE,
                        offset: -1,
                        ingested_at: 0,
                    }
                }
            })
            .enumerate()
            .filter(|(_, s)| match from.get(&s.partition) {
                Some(&o) => s.offset >= o,
                None => everything_for_unknown_partitions && s.offset >= floor,
            });
        match &mut rows {
            Rows::Orders(v) => {
                let (id, user, product, status) = (
                    c.str("order_id")?,
                    c.str("user_id")?,
                    c.str("product_id")?,
                    c.str("status")?,
                );
                let (qty, price, ts) = (c.i32("quantity")?, c.f64("price")?, c.ts("order_ts")?);
                v.extend(sources.map(|(i, s)| {
                    (
                        s,
                        Order {
                            order_id: opt_str(id, i).into(),
                            user_id: opt_str(user, i).into(),
                            product_id: opt_str(product, i).into(),
                            quantity: qty.value(i),
                            price: price.value(i),
                            status: intern(opt_str(status, i), &ORDER_STATUSES),
                            order_ts: ts.value(i),
                        },
                    )
                }));
            }
            Rows::Clicks(v) => {
                let (id, user, url, device, ts) = (
                    c.str("click_id")?,
                    c.str("user_id")?,
                    c.str("url")?,
                    c.str("device_type")?,
                    c.ts("click_ts")?,
                );
                v.extend(sources.map(|(i, s)| {
                    (
                        s,
                        Click {
                            click_id: opt_str(id, i).into(),
                            user_id: opt_str(user, i).into(),
                            url: opt_str(url, i).into(),
                            device_type: intern(opt_str(device, i), &DEVICE_TYPES),
                            click_ts: ts.value(i),
                        },
                    )
                }));
            }
            Rows::Errors(v) => {
                let (id, service, message, severity, ts) = (
                    c.str("error_id")?,
                    c.str("service_name")?,
                    c.str("error_message")?,
                    c.str("severity")?,
                    c.ts("error_ts")?,
                );
                v.extend(sources.map(|(i, s)| {
                    (
                        s,
                        ErrorEvent {
                            error_id: opt_str(id, i).into(),
                            service_name: opt_str(service, i).into(),
                            error_message: opt_str(message, i).into(),
                            severity: intern(opt_str(severity, i), &SEVERITIES),
                            error_ts: ts.value(i),
                        },
                    )
                }));
            }
            Rows::DeadLetters(_) | Rows::Partials(..) => {}
        }
    }
    rows.sort_by_source();
    Ok(rows)
}
