//! Turning a batch of rows into Parquet data files under the table's location.

use std::sync::Arc;

use arrow_array::RecordBatch;
use iceberg::arrow::RecordBatchPartitionSplitter;
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
            splitter: RecordBatchPartitionSplitter::try_new_with_computed_values(schema, spec)?,
            writer: FanoutWriter::new(DataFileWriterBuilder::new(rolling)),
        })
    }

    pub async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        for (key, part) in self.splitter.split(batch)? {
            self.writer.write(key, part).await?;
        }
        Ok(())
    }

    pub async fn close(self) -> Result<Vec<DataFile>> {
        self.writer.close().await
    }
}

/// The Arrow schema (with Iceberg field ids) our batches must use for `table`.
pub fn arrow_schema(table: &Table) -> Result<arrow_schema::SchemaRef> {
    Ok(Arc::new(iceberg::arrow::schema_to_arrow_schema(
        table.metadata().current_schema(),
    )?))
}
