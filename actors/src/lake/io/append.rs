//! The one way we change a table: write the batch's data files, then a single catalog commit
//! that appends them and sets our bookkeeping properties, pinned to the snapshot the caller
//! made its decision on.

use std::collections::HashMap;

use arrow_array::RecordBatch;
use iceberg::table::Table;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use uuid::Uuid;

use super::writer::write_data_files;
use crate::lake::catalog::Lake;

#[derive(Debug)]
pub enum AppendError {
    /// Storage refused the data files (read-only, full, unreachable); nothing reached the
    /// catalog, so writing them again is safe.
    Storage(iceberg::Error),
    /// Failed before anything was sent to the catalog, for another reason (the context says).
    Prepare(&'static str, iceberg::Error),
    /// The catalog commit failed: a conflict, or an unknown outcome (it may have landed).
    Commit(iceberg::Error),
}

/// Waits between commit attempts: 20 ms, doubling, capped at 2 s.
pub struct Backoff(std::time::Duration);

impl Backoff {
    pub fn new() -> Self {
        Backoff(std::time::Duration::from_millis(20))
    }

    pub async fn sleep(&mut self) {
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 2).min(std::time::Duration::from_secs(2));
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

pub struct Append {
    pub batch: Option<RecordBatch>,
    /// Unique per attempt (data file names derive from it).
    pub file_prefix: String,
    pub commit_id: Uuid,
    pub summary: HashMap<String, String>,
    pub properties: Vec<(String, String)>,
    /// Merge the table's earlier manifests into one in this commit.
    pub compact: bool,
}

/// Append on exactly `table` (the snapshot the decision was made on). Returns files written.
pub async fn append_pinned(
    lake: &Lake,
    table: &Table,
    append: Append,
) -> Result<usize, AppendError> {
    let data_files = match append.batch {
        Some(batch) if batch.num_rows() > 0 => write_data_files(table, batch, append.file_prefix)
            .await
            .map_err(AppendError::Storage)?,
        _ => Vec::new(),
    };
    let files = data_files.len();
    if files > 0 {
        crate::faults::hit(crate::faults::Point::AfterUpload)
            .await
            .map_err(|e| {
                AppendError::Prepare(
                    "failpoint",
                    iceberg::Error::new(iceberg::ErrorKind::Unexpected, e.to_string()),
                )
            })?;
    }
    let compact = append.compact;
    let tx = Transaction::new(table);
    let tx = tx
        .fast_append()
        // File names are unique per attempt, and the check reads every manifest.
        .with_check_duplicate(false)
        .set_commit_uuid(append.commit_id)
        .set_snapshot_properties(append.summary)
        .add_data_files(data_files)
        .apply(tx)
        .map_err(|e| AppendError::Prepare("building append", e))?;
    let mut update = tx.update_table_properties();
    for (k, v) in append.properties {
        update = update.set(k, v);
    }
    let tx = update
        .apply(tx)
        .map_err(|e| AppendError::Prepare("building property update", e))?;
    let commit_uuid = append.commit_id.to_string();
    let _pin = if compact {
        lake.catalog.pin_compacting(table, &commit_uuid).await
    } else {
        lake.catalog.pin(table).await
    }
    .map_err(|e| AppendError::Prepare("pinning table", e))?;
    tx.commit(lake.catalog.as_ref())
        .await
        .map(|_| files)
        .map_err(AppendError::Commit)
}
