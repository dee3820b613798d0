//! Turning a batch of rows into Parquet data files under the table's location.

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Int32Array, RecordBatch, StructArray};
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
use iceberg::writer::partitioning::PartitioningWriter;
use iceberg::Result;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

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
/// holding their rows at once.
pub struct DataWriter {
    splitter: RecordBatchPartitionSplitter,
    /// The partition values of a whole batch at once, to see whether it splits at all.
    calculator: Option<PartitionValueCalculator>,
    writer: FanoutWriter<
        DataFileWriterBuilder<
            ParquetWriterBuilder,
            DefaultLocationGenerator,
            DefaultFileNameGenerator,
        >,
    >,
}

impl DataWriter {
    pub fn open(table: &Table, file_prefix: String, target_bytes: Option<usize>) -> Result<Self> {
        let metadata = table.metadata();
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap_or_default()))
            .build();
        let schema = metadata.current_schema().clone();
        let parquet = ParquetWriterBuilder::new(props, schema.clone());
        let location = DefaultLocationGenerator::new(metadata)?;
        let names = DefaultFileNameGenerator::new(file_prefix, None, DataFileFormat::Parquet);
        let rolling = match target_bytes {
            Some(target) => RollingFileWriterBuilder::new(
                parquet,
                target,
                table.file_io().clone(),
                location,
                names,
            ),
            None => RollingFileWriterBuilder::new_with_default_file_size(
                parquet,
                table.file_io().clone(),
                location,
                names,
            ),
        };
        let spec = metadata.default_partition_spec().clone();
        Ok(DataWriter {
            calculator: PartitionValueCalculator::try_new(&spec, &schema).ok(),
            splitter: RecordBatchPartitionSplitter::try_new_with_computed_values(schema, spec)?,
            writer: FanoutWriter::new(DataFileWriterBuilder::new(rolling)),
        })
    }

    pub async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        // Nearly every batch falls in one partition (one day). The splitter turns each row's
        // partition value into a literal and hashes it (4 % of the pipeline's CPU in the
        // ingest profile); one vectorised check and a one-row split give the same key.
        if batch.num_rows() > 1 {
            if let Some(calculator) = &self.calculator {
                if one_partition(&calculator.calculate(batch)?) {
                    if let Some((key, _)) = self.splitter.split(&batch.slice(0, 1))?.pop() {
                        return self.writer.write(key, batch.clone()).await;
                    }
                }
            }
        }
        for (key, part) in self.splitter.split(batch)? {
            self.writer.write(key, part).await?;
        }
        Ok(())
    }

    pub async fn close(self) -> Result<Vec<DataFile>> {
        self.writer.close().await
    }
}

/// Every row has the same partition values. Only integer fields (what day, month, year, hour
/// and bucket give, and identity of an int) are compared; anything else says no and is split.
fn one_partition(values: &ArrayRef) -> bool {
    let Some(values) = values.as_any().downcast_ref::<StructArray>() else {
        return false;
    };
    values.null_count() == 0
        && values.columns().iter().all(|c| {
            let Some(c) = c.as_any().downcast_ref::<Int32Array>() else {
                return false;
            };
            let v = c.values();
            c.null_count() == 0 && v.iter().all(|x| Some(x) == v.first())
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
            vec![Arc::new(Int32Array::from(days)) as ArrayRef],
            None,
        ))
    }

    #[test]
    fn one_partition_only_when_every_value_is_the_same() {
        assert!(one_partition(&values(vec![Some(20_000); 4])));
        assert!(!one_partition(&values(vec![Some(20_000), Some(20_001)])));
        assert!(!one_partition(&values(vec![Some(20_000), None])));
        // Not a struct of ints: split the slow way.
        let text: ArrayRef = Arc::new(arrow_array::StringArray::from(vec!["a", "a"]));
        assert!(!one_partition(&text));
    }
}
