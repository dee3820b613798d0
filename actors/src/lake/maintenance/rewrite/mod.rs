//! Data-file compaction. Every commit adds one small Parquet file per table partition, so a
//! table committed every second gathers 86,400 files a day and every scan gets slower for as
//! long as shopwatch runs. iceberg-rust 0.10 has no rewrite action, so this is ours: per day
//! partition, small files older than the freshness guard are merged into files near the target
//! size and committed as one Iceberg `replace` snapshot (rows unchanged, so streaming readers
//! and our offset-based readers skip it; offsets and checkpoints live in table properties and
//! carry over untouched).
//!
//! Two phases, so that the slow one never blocks a commit: `prepare` reads the chosen files and
//! writes the merged ones (no catalog change); `CompactionPlan::commit` builds the manifests on
//! whatever the table is now and lands them only if `main` is still where it built them, and
//! decides again on a conflict (an ingest commit only adds files, so the rewrite still
//! applies; if any input is gone, someone else compacted it and ours is dropped).

use std::collections::{BTreeMap, HashMap, HashSet};

use iceberg::spec::{
    DataContentType, DataFile, FormatVersion, ManifestContentType, ManifestListWriter,
    ManifestStatus, ManifestWriterBuilder, Operation, Snapshot, SnapshotSummaryCollector, Summary,
};
use iceberg::table::Table;
use iceberg::{Error, ErrorKind, Result, TableIdent};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

mod plan;

pub use plan::{plan, DataCompactionParams, FileStat};

use super::compact::read_manifest_list;
use crate::lake::catalog::{is_conflict, Lake};
use crate::lake::io::writer::{arrow_schema, DataWriter};
use crate::lake::snapshot_commit::commit_snapshot;

/// A live entry of the current snapshot.
#[derive(Clone, Debug)]
struct Live {
    file: DataFile,
    snapshot_id: i64,
    sequence_number: i64,
    file_sequence_number: Option<i64>,
}

/// Every live data file of `table`'s current snapshot. Refuses tables with delete files (other
/// engines' row-level deletes): rewriting around them is not ours to do.
async fn live_files(table: &Table) -> Result<Vec<Live>> {
    let Some(snapshot) = table.metadata().current_snapshot() else {
        return Ok(Vec::new());
    };
    let list = read_manifest_list(table, snapshot.manifest_list()).await?;
    let mut live = Vec::new();
    for m in list.entries() {
        if m.content != ManifestContentType::Data {
            return Err(Error::new(
                ErrorKind::FeatureUnsupported,
                "table has delete files; data compaction skipped",
            ));
        }
        let manifest = m.load_manifest(table.file_io()).await?;
        for entry in manifest.entries() {
            if entry.status() == ManifestStatus::Deleted {
                continue;
            }
            let missing = || Error::new(ErrorKind::DataInvalid, "manifest entry without ids");
            live.push(Live {
                file: entry.data_file().clone(),
                snapshot_id: entry.snapshot_id().ok_or_else(missing)?,
                sequence_number: entry.sequence_number().ok_or_else(missing)?,
                file_sequence_number: entry.file_sequence_number,
            });
        }
    }
    Ok(live)
}

/// Live data files per partition of the current snapshot (for reports and benches).
pub async fn files_per_partition(table: &Table) -> Result<BTreeMap<String, usize>> {
    let mut out = BTreeMap::new();
    for l in live_files(table).await? {
        *out.entry(format!("{:?}", l.file.partition())).or_insert(0) += 1;
    }
    Ok(out)
}

/// Merged files written and not yet committed.
#[derive(Debug)]
pub struct CompactionPlan {
    ident: TableIdent,
    /// Paths of the files the merged ones replace.
    inputs: HashSet<String>,
    outputs: Vec<DataFile>,
    pub rows: u64,
}

/// Merged files written, with the live file count they were planned on.
pub type Prepared = (CompactionPlan, usize);

/// What one compaction did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DataCompactionReport {
    pub files_before: usize,
    pub files_replaced: usize,
    pub files_written: usize,
    pub rows: u64,
    pub attempts: u32,
}

/// Phase one: choose files and write their merged replacements (no catalog change). `None`
/// when nothing is worth merging.
pub async fn prepare(
    table: &Table,
    p: &DataCompactionParams,
    now_ms: i64,
) -> Result<Option<Prepared>> {
    if table.metadata().format_version() != FormatVersion::V2 {
        return Ok(None);
    }
    let live = live_files(table).await?;
    let added: HashMap<i64, i64> = table
        .metadata()
        .snapshots()
        .map(|s| (s.snapshot_id(), s.timestamp_ms()))
        .collect();
    let stats: Vec<FileStat> = live
        .iter()
        .map(|l| FileStat {
            partition: format!("{:?}", l.file.partition()),
            bytes: l.file.file_size_in_bytes(),
            added_ms: added.get(&l.snapshot_id).copied().unwrap_or(0),
        })
        .collect();
    let groups = plan(&stats, now_ms, p);
    if groups.is_empty() {
        return Ok(None);
    }
    let schema = arrow_schema(table)?;
    let target = usize::try_from(p.target_file_bytes).unwrap_or(usize::MAX);
    let mut writer = DataWriter::open(
        table,
        format!("compact-{}", uuid::Uuid::now_v7()),
        Some(target),
    )?;
    let mut inputs = HashSet::new();
    let mut rows_in = 0u64;
    for i in groups.into_iter().flatten() {
        let file = &live[i].file;
        let bytes = table.file_io().new_input(file.file_path())?.read().await?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .and_then(|b| b.with_batch_size(64 * 1024).build())
            .map_err(|e| parquet_error(file.file_path(), e))?;
        for batch in reader {
            let batch = batch.map_err(|e| {
                Error::new(ErrorKind::DataInvalid, format!("{}: {e}", file.file_path()))
            })?;
            // Our writer wants the table's own Arrow schema (field ids included).
            let batch = arrow_array::RecordBatch::try_new(schema.clone(), batch.columns().to_vec())
                .map_err(|e| {
                    Error::new(ErrorKind::DataInvalid, format!("{}: {e}", file.file_path()))
                })?;
            writer.write(&batch).await?;
        }
        rows_in += file.record_count();
        inputs.insert(file.file_path().to_string());
    }
    let outputs = writer.close().await?;
    let rows_out: u64 = outputs.iter().map(DataFile::record_count).sum();
    if rows_out != rows_in {
        return Err(Error::new(
            ErrorKind::DataInvalid,
            format!("merged files hold {rows_out} rows, their inputs {rows_in}; not committed"),
        ));
    }
    Ok(Some((
        CompactionPlan {
            ident: table.identifier().clone(),
            inputs,
            outputs,
            rows: rows_in,
        },
        live.len(),
    )))
}

fn parquet_error(path: &str, e: parquet::errors::ParquetError) -> Error {
    Error::new(ErrorKind::DataInvalid, format!("reading {path}: {e}"))
}

/// Whether an error means "decide again" (the table moved) rather than failure.
pub fn retry_after(e: &Error) -> bool {
    is_conflict(e)
}

impl CompactionPlan {
    pub fn inputs(&self) -> usize {
        self.inputs.len()
    }

    /// Phase two: land the replacement on the table as it is now; on a conflict reload and
    /// decide again (up to `attempts` times). `Ok((false, _))`: an input is no longer live, so
    /// another writer compacted it; nothing was committed.
    pub async fn commit(&self, lake: &Lake, attempts: u32) -> Result<(bool, u32)> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let base = lake.catalog.load_unpinned(&self.ident).await?;
            crate::faults::hit(crate::faults::Point::CompactionBeforeCommit)
                .await
                .map_err(|e| Error::new(ErrorKind::Unexpected, e.to_string()))?;
            match self.attempt(lake, &base).await {
                Ok(landed) => return Ok((landed, attempt)),
                Err(e) if retry_after(&e) && attempt < attempts => {
                    tracing::debug!(table = %self.ident, attempt, error = %e, "compaction conflicted, deciding again");
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One attempt on `base`: check every input is still live there, build on it, and land
    /// only if the table is still at `base` (else a `CatalogCommitConflicts` error).
    pub async fn attempt(&self, lake: &Lake, base: &Table) -> Result<bool> {
        let live = live_files(base).await?;
        let present = live
            .iter()
            .filter(|l| self.inputs.contains(l.file.file_path()))
            .count();
        if present != self.inputs.len() {
            return Ok(false);
        }
        let snapshot = self.build(base, &live).await?;
        commit_snapshot(lake, base, snapshot).await?;
        Ok(true)
    }

    /// Manifests and snapshot of the replacement on `base`: one manifest adding the merged
    /// files, one carrying every other live file as EXISTING and the inputs as DELETED (which
    /// also merges the manifests), and a `replace` summary whose totals are unchanged rows.
    async fn build(&self, base: &Table, live: &[Live]) -> Result<Snapshot> {
        let meta = base.metadata();
        let io = base.file_io();
        let location = meta.location().trim_end_matches('/');
        let schema = meta.current_schema().clone();
        let spec = meta.default_partition_spec().clone();
        let parent = meta.current_snapshot_id();
        let sequence = meta.next_sequence_number();
        let snapshot_id = new_snapshot_id(base);
        let tag = uuid::Uuid::now_v7();

        let added_path = format!("{location}/metadata/{tag}-m0.avro");
        let mut added = ManifestWriterBuilder::new(
            io.new_output(&added_path)?,
            Some(snapshot_id),
            schema.clone(),
            spec.as_ref().clone(),
        )
        .build_v2_data();
        let mut summary = SnapshotSummaryCollector::default();
        for f in &self.outputs {
            added.add_file(f.clone(), sequence)?;
            summary.add_file(f, schema.clone(), spec.clone());
        }
        let carry_path = format!("{location}/metadata/{tag}-m1.avro");
        let mut carry = ManifestWriterBuilder::new(
            io.new_output(&carry_path)?,
            Some(snapshot_id),
            schema.clone(),
            spec.as_ref().clone(),
        )
        .build_v2_data();
        for l in live {
            if l.file.content_type() != DataContentType::Data {
                return Err(Error::new(
                    ErrorKind::FeatureUnsupported,
                    "delete file found",
                ));
            }
            if self.inputs.contains(l.file.file_path()) {
                carry.add_delete_file(l.file.clone(), l.sequence_number, l.file_sequence_number)?;
                summary.remove_file(&l.file, schema.clone(), spec.clone());
            } else {
                carry.add_existing_file(
                    l.file.clone(),
                    l.snapshot_id,
                    l.sequence_number,
                    l.file_sequence_number,
                )?;
            }
        }
        let manifests = vec![
            added.write_manifest_file().await?,
            carry.write_manifest_file().await?,
        ];
        let list_path = format!("{location}/metadata/snap-{snapshot_id}-0-{tag}.avro");
        let mut list = ManifestListWriter::v2(
            io.new_output(&list_path)?.writer().await?,
            snapshot_id,
            parent,
            sequence,
        );
        list.add_manifests(manifests.into_iter())?;
        list.close().await?;

        let mut properties = summary.build();
        let previous = meta
            .current_snapshot()
            .map(|s| s.summary().additional_properties.clone())
            .unwrap_or_default();
        let total = |key: &str| previous.get(key).and_then(|v| v.parse::<i64>().ok());
        let written: i64 = self
            .outputs
            .iter()
            .map(|f| f.file_size_in_bytes() as i64)
            .sum();
        let removed: Vec<&Live> = live
            .iter()
            .filter(|l| self.inputs.contains(l.file.file_path()))
            .collect();
        let removed_bytes: i64 = removed
            .iter()
            .map(|l| l.file.file_size_in_bytes() as i64)
            .sum();
        let data_files = total("total-data-files")
            .unwrap_or(live.len() as i64)
            .saturating_sub(removed.len() as i64)
            + self.outputs.len() as i64;
        properties.insert("total-data-files".into(), data_files.to_string());
        if let Some(size) = total("total-files-size") {
            properties.insert(
                "total-files-size".into(),
                (size - removed_bytes + written).to_string(),
            );
        }
        for key in [
            "total-records",
            "total-delete-files",
            "total-position-deletes",
            "total-equality-deletes",
        ] {
            if let Some(v) = previous.get(key) {
                properties.insert(key.to_string(), v.clone());
            }
        }
        properties.insert("shopwatch.compaction".into(), "data-files".into());
        Ok(Snapshot::builder()
            .with_snapshot_id(snapshot_id)
            .with_parent_snapshot_id(parent)
            .with_sequence_number(sequence)
            .with_timestamp_ms(chrono::Utc::now().timestamp_millis())
            .with_manifest_list(list_path)
            .with_summary(Summary {
                operation: Operation::Replace,
                additional_properties: properties,
            })
            .with_schema_id(meta.current_schema_id())
            .build())
    }
}

/// A positive snapshot id no snapshot of `table` has (as iceberg-rust draws them).
fn new_snapshot_id(table: &Table) -> i64 {
    loop {
        let (hi, lo) = uuid::Uuid::new_v4().as_u64_pair();
        let id = ((hi ^ lo) & (i64::MAX as u64)) as i64;
        if id != 0 && table.metadata().snapshot_by_id(id).is_none() {
            return id;
        }
    }
}

/// Prepare and commit in one go (what the schedule runs).
pub async fn compact(
    lake: &Lake,
    ident: &TableIdent,
    p: &DataCompactionParams,
) -> Result<DataCompactionReport> {
    match prepare_current(lake, ident, p).await? {
        Some(prepared) => land(lake, ident, prepared).await,
        None => Ok(DataCompactionReport::default()),
    }
}

/// Phase one on the table as it is now (what the schedule runs in the background).
pub async fn prepare_current(
    lake: &Lake,
    ident: &TableIdent,
    p: &DataCompactionParams,
) -> Result<Option<Prepared>> {
    let table = lake.catalog.load_unpinned(ident).await?;
    prepare(&table, p, chrono::Utc::now().timestamp_millis()).await
}

/// Phase two, with a report (what the schedule runs between two of the table's commits).
pub async fn land(
    lake: &Lake,
    ident: &TableIdent,
    (plan, before): Prepared,
) -> Result<DataCompactionReport> {
    let (landed, attempts) = plan.commit(lake, 5).await?;
    if !landed {
        tracing::info!(table = %ident, "data compaction dropped: its inputs were compacted by another writer");
        return Ok(DataCompactionReport {
            files_before: before,
            attempts,
            ..DataCompactionReport::default()
        });
    }
    Ok(DataCompactionReport {
        files_before: before,
        files_replaced: plan.inputs.len(),
        files_written: plan.outputs.len(),
        rows: plan.rows,
        attempts,
    })
}
