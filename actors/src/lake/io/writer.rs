//! Turning a batch of rows into Parquet data files under the table's location.

use std::sync::Arc;

use arrow_array::types::{Date32Type, Int32Type};
use arrow_array::{Array, ArrayRef, PrimitiveArray, RecordBatch, StructArray};
use iceberg::arrow::{PartitionValueCalculator, RecordBatchPartitionSplitter};
use iceberg::spec::{DataFile, DataFileFormat};
use iceberg::table::Table;
use iceberg::writer::base_writer::data_file_writer::DataFileWriterBuilder;
use iceberg::writer::file_writer::location_generator::{
    DefaultFileNameGenerator, DefaultLocationGenerator,
};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::partitioning::fanout_writer::FanoutWriter;
use iceberg::writer::partitioning::unpartitioned_writer::UnpartitionedWriter;
use iceberg::writer::partitioning::PartitioningWriter;
use iceberg::Result;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

/// Write `batch` as Parquet (ZSTD; iceberg-rust 0.10 ignores the table's codec property) split
/// by the table's partition spec. `file_prefix` must be unique per attempt: the default name
/// generator counts from zero and local writes truncate, so a reused prefix would overwrite
/// files an earlier commit references.
pub async fn write_data_files(
    table: &Table,
    batch: RecordBatch,
    file_prefix: String,
) -> Result<Vec<DataFile>> {
    let mut writer = DataWriter::open(table, file_prefix, None)?;
    writer.write(&batch).await?;
    writer.close().await
}

/// Rows streamed into Parquet files split by the table's partition spec, rolled over at
/// `target_bytes` (the library's default when `None`): a compaction merges many files without
/// holding their rows at once. The Parquet writer opens at the first batch, whose values
/// decide which columns get a dictionary ([`dictionary_pays`]).
pub struct DataWriter {
    table: Table,
    file_prefix: String,
    target_bytes: Option<usize>,
    /// `None` for an unpartitioned table (one adopted from the old stack's Spark job).
    splitter: Option<RecordBatchPartitionSplitter>,
    /// The partition values of a whole batch at once, to see whether it splits at all.
    calculator: Option<PartitionValueCalculator>,
    writer: Option<Inner>,
}

type Builder =
    DataFileWriterBuilder<ParquetWriterBuilder, DefaultLocationGenerator, DefaultFileNameGenerator>;
type Fanout = FanoutWriter<Builder>;

enum Inner {
    Fanout(Fanout),
    Plain(UnpartitionedWriter<Builder>),
}

impl DataWriter {
    pub fn open(table: &Table, file_prefix: String, target_bytes: Option<usize>) -> Result<Self> {
        let metadata = table.metadata();
        let schema = metadata.current_schema().clone();
        let spec = metadata.default_partition_spec().clone();
        let splitter = if spec.is_unpartitioned() {
            None
        } else {
            Some(RecordBatchPartitionSplitter::try_new_with_computed_values(
                schema.clone(),
                spec.clone(),
            )?)
        };
        Ok(DataWriter {
            table: table.clone(),
            file_prefix,
            target_bytes,
            calculator: PartitionValueCalculator::try_new(&spec, &schema).ok(),
            splitter,
            writer: None,
        })
    }

    /// The Parquet writer, its properties chosen from `sample`.
    fn writer_for(&self, sample: &RecordBatch) -> Result<Inner> {
        let metadata = self.table.metadata();
        let mut props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap_or_default()));
        for (field, column) in sample.schema().fields().iter().zip(sample.columns()) {
            if !dictionary_pays(column) {
                props = props
                    .set_column_dictionary_enabled(ColumnPath::from(field.name().as_str()), false);
            }
        }
        let parquet = ParquetWriterBuilder::new(props.build(), metadata.current_schema().clone());
        let location = DefaultLocationGenerator::new(metadata)?;
        let names =
            DefaultFileNameGenerator::new(self.file_prefix.clone(), None, DataFileFormat::Parquet);
        let file_io = self.table.file_io().clone();
        let rolling = match self.target_bytes {
            Some(target) => {
                RollingFileWriterBuilder::new(parquet, target, file_io, location, names)
            }
            None => RollingFileWriterBuilder::new_with_default_file_size(
                parquet, file_io, location, names,
            ),
        };
        let builder = DataFileWriterBuilder::new(rolling);
        Ok(if self.splitter.is_some() {
            Inner::Fanout(FanoutWriter::new(builder))
        } else {
            Inner::Plain(UnpartitionedWriter::new(builder))
        })
    }

    pub async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let writer = match &mut self.writer {
            Some(w) => w,
            None => self.writer.insert(self.writer_for(batch)?),
        };
        let (writer, splitter) = match (writer, &self.splitter) {
            (Inner::Plain(w), _) => return w.write(batch.clone()).await,
            (Inner::Fanout(w), Some(s)) => (w, s),
            (Inner::Fanout(_), None) => {
                return Err(iceberg::Error::new(
                    iceberg::ErrorKind::Unexpected,
                    "a partitioned writer without a splitter",
                ))
            }
        };
        // Nearly every batch falls in one partition (one day). The splitter turns each row's
        // partition value into a literal and hashes it (4 % of the pipeline's CPU in the
        // ingest profile); one vectorised check and a one-row split give the same key.
        if batch.num_rows() > 1 {
            if let Some(calculator) = &self.calculator {
                if one_partition(&calculator.calculate(batch)?) {
                    if let Some((key, _)) = splitter.split(&batch.slice(0, 1))?.pop() {
                        return writer.write(key, batch.clone()).await;
                    }
                }
            }
        }
        for (key, part) in splitter.split(batch)? {
            writer.write(key, part).await?;
        }
        Ok(())
    }

    pub async fn close(self) -> Result<Vec<DataFile>> {
        match self.writer {
            Some(Inner::Fanout(w)) => w.close().await,
            Some(Inner::Plain(w)) => w.close().await,
            None => Ok(Vec::new()),
        }
    }
}

/// Values sampled from the head of a column before a dictionary is chosen for it.
const DICTIONARY_SAMPLE: usize = 4_096;

/// Whether a dictionary pays for `column`: at most half of its first values are distinct.
/// Ids, offsets and event times are nearly all distinct; interning them into a dictionary
/// the writer then abandons at 1 MiB cost 5 % of the pipeline's CPU in the ingest profile.
/// Enums, users, products and a batch's one ingestion time keep theirs. Types not sampled
/// keep the writer's default (dictionary on).
fn dictionary_pays(column: &ArrayRef) -> bool {
    use arrow_array::cast::AsArray;
    use arrow_schema::{DataType, TimeUnit};
    use std::collections::HashSet;
    let n = column.len().min(DICTIONARY_SAMPLE);
    if n < 2 {
        return true;
    }
    let head = column.slice(0, n);
    let distinct = match head.data_type() {
        DataType::Utf8 => {
            let a = head.as_string::<i32>();
            a.iter().collect::<HashSet<_>>().len()
        }
        DataType::Int64 => {
            let a = head.as_primitive::<arrow_array::types::Int64Type>();
            a.iter().collect::<HashSet<_>>().len()
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            let a = head.as_primitive::<arrow_array::types::TimestampMicrosecondType>();
            a.iter().collect::<HashSet<_>>().len()
        }
        _ => return true,
    };
    distinct * 2 <= n
}

/// Every row has the same partition values. Only 32-bit fields are compared: what day gives
/// (iceberg's Day transform answers Date32), and month, year, hour, bucket and identity of an
/// int (Int32); anything else says no and is split.
fn one_partition(values: &ArrayRef) -> bool {
    fn all_same<T: arrow_array::ArrowPrimitiveType>(c: &PrimitiveArray<T>) -> bool
    where
        T::Native: PartialEq,
    {
        let v = c.values();
        c.null_count() == 0 && v.iter().all(|x| Some(x) == v.first())
    }
    let Some(values) = values.as_any().downcast_ref::<StructArray>() else {
        return false;
    };
    values.null_count() == 0
        && values.columns().iter().all(|c| {
            let any = c.as_any();
            if let Some(days) = any.downcast_ref::<PrimitiveArray<Date32Type>>() {
                all_same(days)
            } else if let Some(ints) = any.downcast_ref::<PrimitiveArray<Int32Type>>() {
                all_same(ints)
            } else {
                false
            }
        })
}

/// The Arrow schema (with Iceberg field ids) our batches must use for `table`.
pub fn arrow_schema(table: &Table) -> Result<arrow_schema::SchemaRef> {
    Ok(Arc::new(iceberg::arrow::schema_to_arrow_schema(
        table.metadata().current_schema(),
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::{DataType, Field, Fields};

    fn values(days: Vec<Option<i32>>) -> ArrayRef {
        let fields = Fields::from(vec![Field::new("ts_day", DataType::Int32, true)]);
        Arc::new(StructArray::new(
            fields,
            vec![Arc::new(arrow_array::Int32Array::from(days)) as ArrayRef],
            None,
        ))
    }

    /// What the real Day transform makes of `micros` (Date32, not Int32: the fast path once
    /// never ran because it only knew Int32).
    fn days_of(micros: Vec<i64>) -> ArrayRef {
        use iceberg::transform::{create_transform_function, BoxedTransformFunction};
        let day: BoxedTransformFunction =
            create_transform_function(&iceberg::spec::Transform::Day).unwrap();
        let ts: ArrayRef = Arc::new(arrow_array::TimestampMicrosecondArray::from(micros));
        let days = day.transform(ts).unwrap();
        let fields = Fields::from(vec![Field::new("ts_day", days.data_type().clone(), true)]);
        Arc::new(StructArray::new(fields, vec![days], None))
    }

    #[test]
    fn a_dictionary_only_for_columns_that_repeat() {
        use arrow_array::{Int64Array, StringArray, TimestampMicrosecondArray};
        let n = 10_000;
        let ids: ArrayRef = Arc::new(StringArray::from_iter_values(
            (0..n).map(|i| format!("id-{i}")),
        ));
        let users: ArrayRef = Arc::new(StringArray::from_iter_values(
            (0..n).map(|i| format!("user-{}", i % 500)),
        ));
        let offsets: ArrayRef = Arc::new(Int64Array::from_iter_values(0..n as i64));
        let partitions: ArrayRef =
            Arc::new(Int64Array::from_iter_values((0..n as i64).map(|i| i % 3)));
        let times: ArrayRef = Arc::new(TimestampMicrosecondArray::from_iter_values(
            (0..n as i64).map(|i| 1_700_000_000_000_000 + i),
        ));
        let one_time: ArrayRef = Arc::new(TimestampMicrosecondArray::from(vec![7i64; n]));
        let prices: ArrayRef = Arc::new(arrow_array::Float64Array::from(vec![1.5; n]));
        let half: ArrayRef = Arc::new(StringArray::from_iter_values(
            (0..n).map(|i| format!("h-{}", i / 2)),
        ));
        let cases = [
            (&ids, false),
            (&users, true),
            (&offsets, false),
            (&partitions, true),
            (&times, false),
            (&one_time, true),
            (&prices, true),
            // Exactly half distinct still pays.
            (&half, true),
        ];
        for (i, (column, pays)) in cases.into_iter().enumerate() {
            assert_eq!(dictionary_pays(column), pays, "case {i}");
        }
        // Too short to judge: the writer's default.
        let single: ArrayRef = Arc::new(StringArray::from(vec!["x"]));
        assert!(dictionary_pays(&single));
    }

    #[test]
    fn one_partition_only_when_every_value_is_the_same() {
        assert!(one_partition(&values(vec![Some(20_000); 4])));
        assert!(!one_partition(&values(vec![Some(20_000), Some(20_001)])));
        assert!(!one_partition(&values(vec![Some(20_000), None])));
        // Not a struct of ints: split the slow way.
        let text: ArrayRef = Arc::new(arrow_array::StringArray::from(vec!["a", "a"]));
        assert!(!one_partition(&text));
        // The day transform's own output: one day, then two.
        let day = 86_400_000_000i64;
        assert!(one_partition(&days_of(vec![
            20_000 * day,
            20_000 * day + day - 1
        ])));
        assert!(!one_partition(&days_of(vec![20_000 * day, 20_001 * day])));
    }
}
