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
    let metadata = table.metadata();
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap_or_default()))
        .build();
    let schema = metadata.current_schema().clone();
    let parquet = ParquetWriterBuilder::new(props, schema.clone());
    let location = DefaultLocationGenerator::new(metadata)?;
    let names = DefaultFileNameGenerator::new(file_prefix, None, DataFileFormat::Parquet);
    let rolling = RollingFileWriterBuilder::new_with_default_file_size(
        parquet,
        table.file_io().clone(),
        location,
        names,
    );
    let data_files = DataFileWriterBuilder::new(rolling);

    let spec = metadata.default_partition_spec().clone();
    let splitter = RecordBatchPartitionSplitter::try_new_with_computed_values(schema, spec)?;
    let mut writer = FanoutWriter::new(data_files);
    for (key, part) in splitter.split(&batch)? {
        writer.write(key, part).await?;
    }
    writer.close().await
}

/// The Arrow schema (with Iceberg field ids) our batches must use for `table`.
pub fn arrow_schema(table: &Table) -> Result<arrow_schema::SchemaRef> {
    Ok(Arc::new(iceberg::arrow::schema_to_arrow_schema(
        table.metadata().current_schema(),
    )?))
}
