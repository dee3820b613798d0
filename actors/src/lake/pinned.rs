//! The pinning catalog wrapper.
//!
//! iceberg-rust's `Transaction::commit` reloads the table and re-applies its actions on whatever
//! is current, even with retries off, so a precondition we checked on one snapshot could land
//! on another. `PinnedCatalog` closes that gap: while a table is pinned, the reload inside the
//! transaction fails with `CatalogCommitConflicts` unless the table is still exactly the one we
//! checked. The catalog (SQL or REST) then enforces the snapshot requirement and its own
//! compare-and-swap on the metadata location, so the commit lands on the checked snapshot or
//! not at all.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use iceberg::table::Table;
use iceberg::{Catalog, Error, ErrorKind, Result as IcebergResult, TableCommit, TableIdent};

/// A catalog that refuses to let a transaction re-base onto a snapshot we did not check.
#[derive(Debug)]
pub struct PinnedCatalog {
    inner: Arc<dyn Catalog>,
    /// Table -> metadata location that the pending commit was decided on.
    pins: Mutex<HashMap<TableIdent, String>>,
    /// One pinned commit per table at a time: several committers write one table (the
    /// dead-letter table from every topic; a raw table from two instances in one process),
    /// and a pin is per table, so a second pin would let the first commit land unchecked.
    turns: Mutex<HashMap<TableIdent, Arc<tokio::sync::Mutex<()>>>>,
    /// Table -> commit uuid whose manifest list is to be compacted before it lands.
    compactions: Mutex<HashMap<TableIdent, String>>,
    /// Table -> how its last compaction went, until the committer takes it.
    compacted: Mutex<HashMap<TableIdent, Result<(), String>>>,
}

/// Holds a pin (and the table's turn) for the duration of one commit attempt; dropping it
/// unpins.
pub struct PinGuard<'a> {
    catalog: &'a PinnedCatalog,
    ident: TableIdent,
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

impl Drop for PinGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut pins) = self.catalog.pins.lock() {
            pins.remove(&self.ident);
        }
        if let Ok(mut c) = self.catalog.compactions.lock() {
            c.remove(&self.ident);
        }
    }
}

impl PinnedCatalog {
    pub fn new(inner: Arc<dyn Catalog>) -> Self {
        PinnedCatalog {
            inner,
            pins: Mutex::new(HashMap::new()),
            turns: Mutex::new(HashMap::new()),
            compactions: Mutex::new(HashMap::new()),
            compacted: Mutex::new(HashMap::new()),
        }
    }

    /// How the last compaction of `ident` went, once.
    pub fn take_compaction(&self, ident: &TableIdent) -> Option<Result<(), String>> {
        self.compacted.lock().ok()?.remove(ident)
    }

    fn compaction_outcome(&self, ident: &TableIdent, outcome: Result<(), String>) {
        if let Ok(mut c) = self.compacted.lock() {
            c.insert(ident.clone(), outcome);
        }
    }

    /// Pin `table` to its current metadata: until the guard drops, a reload that finds any
    /// other metadata fails as a commit conflict.
    pub async fn pin<'a>(&'a self, table: &Table) -> IcebergResult<PinGuard<'a>> {
        let location = table.metadata_location_result()?.to_string();
        let ident = table.identifier().clone();
        let turn = self
            .turns
            .lock()
            .map_err(|_| Error::new(ErrorKind::Unexpected, "pin turns poisoned"))?
            .entry(ident.clone())
            .or_default()
            .clone();
        let turn = turn.lock_owned().await;
        self.pins
            .lock()
            .map_err(|_| Error::new(ErrorKind::Unexpected, "pin table poisoned"))?
            .insert(ident.clone(), location);
        Ok(PinGuard {
            catalog: self,
            ident,
            _turn: turn,
        })
    }

    /// Pin, and also merge the table's earlier manifests into one inside this commit (the
    /// commit must use `commit_uuid`).
    pub async fn pin_compacting<'a>(
        &'a self,
        table: &Table,
        commit_uuid: &str,
    ) -> IcebergResult<PinGuard<'a>> {
        let guard = self.pin(table).await?;
        self.compactions
            .lock()
            .map_err(|_| Error::new(ErrorKind::Unexpected, "compactions poisoned"))?
            .insert(table.identifier().clone(), commit_uuid.to_string());
        Ok(guard)
    }

    /// Load without any pin check (for deciding).
    pub async fn load_unpinned(&self, ident: &TableIdent) -> IcebergResult<Table> {
        self.inner.load_table(ident).await
    }
}

pub fn is_conflict(e: &Error) -> bool {
    e.kind() == ErrorKind::CatalogCommitConflicts
}

crate::wrap_catalog!(PinnedCatalog {
    async fn load_table(&self, ident: &TableIdent) -> IcebergResult<Table> {
        let table = self.inner.load_table(ident).await?;
        let pinned = self
            .pins
            .lock()
            .map_err(|_| Error::new(ErrorKind::Unexpected, "pin table poisoned"))?
            .get(ident)
            .cloned();
        if let Some(expected) = pinned {
            let current = table.metadata_location().unwrap_or_default();
            if current != expected {
                // Not retryable inside iceberg-rust: our own loop reloads and decides again.
                return Err(Error::new(
                    ErrorKind::CatalogCommitConflicts,
                    format!("table {ident} changed after our offsets check (now {current})"),
                )
                .with_retryable(false));
            }
        }
        Ok(table)
    }
    async fn drop_table(&self, ident: &TableIdent) -> IcebergResult<()> {
        self.inner.drop_table(ident).await
    }
    async fn purge_table(&self, ident: &TableIdent) -> IcebergResult<()> {
        self.inner.purge_table(ident).await
    }
    async fn rename_table(&self, src: &TableIdent, dest: &TableIdent) -> IcebergResult<()> {
        self.inner.rename_table(src, dest).await
    }
    async fn register_table(
        &self,
        ident: &TableIdent,
        metadata_location: String,
    ) -> IcebergResult<Table> {
        self.inner.register_table(ident, metadata_location).await
    }
    async fn update_table(&self, commit: TableCommit) -> IcebergResult<Table> {
        let ident = commit.identifier().clone();
        let compaction = self
            .compactions
            .lock()
            .ok()
            .and_then(|c| c.get(&ident).cloned());
        if let Some(uuid) = compaction {
            // The pinned base (load_table already refused anything else).
            let base = self.inner.load_table(&ident).await?;
            let list = super::maintenance::compact::find_manifest_list(&base, &uuid).await;
            let snapshot_id = list.as_deref().and_then(|l| {
                l.rsplit('/')
                    .next()?
                    .strip_prefix("snap-")?
                    .split('-')
                    .next()?
                    .parse::<i64>()
                    .ok()
            });
            match (list, snapshot_id) {
                // Any failure here fails the commit: the list may be half rewritten, and a
                // commit must never land on it. The caller decides again, without compaction.
                (Some(list), Some(id)) => {
                    match super::maintenance::compact::compact_list(&base, &list, id).await {
                        Ok((before, after)) => {
                            self.compaction_outcome(&ident, Ok(()));
                            tracing::info!(table = %ident, before, after, "manifests compacted in this commit");
                        }
                        Err(e) => {
                            self.compaction_outcome(&ident, Err(e.to_string()));
                            return Err(Error::new(
                                ErrorKind::Unexpected,
                                format!("manifest compaction failed: {e}"),
                            ));
                        }
                    }
                }
                // Nothing to rewrite: the commit lands uncompacted; say so.
                _ => self.compaction_outcome(
                    &ident,
                    Err(format!("the manifest list of commit {uuid} was not found")),
                ),
            }
        }
        let table = self.inner.update_table(commit).await?;
        // The commit is in the catalog; an error here is the ambiguous outcome a lost answer
        // gives, and a pause lets a drill kill the process before it learns of the commit.
        crate::faults::hit(crate::faults::Point::CatalogAfterCommitWrite)
            .await
            .map_err(|e| {
                Error::new(
                    ErrorKind::Unexpected,
                    format!("{e}: commit outcome unknown"),
                )
            })?;
        Ok(table)
    }
});
