//! Metadata hygiene: iceberg-rust 0.10 never deletes metadata, and a streaming writer that
//! commits every second would otherwise grow each table's metadata quadratically (every
//! `metadata.json` holds every snapshot; every manifest list names every manifest).

use std::collections::HashSet;

use futures::TryStreamExt;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::TableIdent;
use object_store::ObjectStoreExt;
use tracing::debug;

use super::HygieneParams;
use crate::lake::catalog::Lake;
use crate::lake::io::store;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct HygieneReport {
    pub snapshots_expired: usize,
    pub files_deleted: usize,
    pub bytes_deleted: u64,
}

/// Expire old snapshots, then delete metadata files no reader can need any more.
pub async fn run(
    lake: &Lake,
    ident: &TableIdent,
    params: &HygieneParams,
) -> anyhow::Result<HygieneReport> {
    let mut report = HygieneReport::default();
    let table = lake.catalog.load_unpinned(ident).await?;
    if !super::keeps_history(table.metadata()) {
        // Older versions live in the catalog's own history (Nessie); its GC owns their files.
        return Ok(report);
    }
    let before = table.metadata().snapshots().count();
    let older_than =
        chrono::Utc::now().timestamp_millis() - params.snapshot_max_age.as_millis() as i64;
    let tx = Transaction::new(&table);
    let tx = tx
        .expire_snapshots()
        .retain_last(params.keep_snapshots)
        .expire_older_than_ms(older_than)
        .apply(tx)?;
    // A conflict (another pipeline committed to a shared table) only postpones expiry.
    let table = match tx.commit(lake.catalog.as_ref()).await {
        Ok(t) => t,
        Err(e) => {
            debug!(table = %ident, error = %e, "snapshot expiry skipped");
            lake.catalog.load_unpinned(ident).await?
        }
    };
    report.snapshots_expired = before.saturating_sub(table.metadata().snapshots().count());

    let metadata_dir = format!(
        "{}/metadata",
        table.metadata().location().trim_end_matches('/')
    );
    let located = store::locate(&metadata_dir, table.file_io().config().props())?;
    let store = located.store;
    let prefix = located.key;
    let current = table.metadata_location().unwrap_or_default().to_string();
    let live_lists: HashSet<String> = table
        .metadata()
        .snapshots()
        .map(|s| {
            s.manifest_list()
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect();

    // Manifests any live snapshot still names (compaction leaves the old ones unreferenced
    // once the snapshots that named them expire).
    let mut live_manifests: HashSet<String> = HashSet::new();
    for snapshot in table.metadata().snapshots() {
        let list = super::compact::read_manifest_list(&table, snapshot.manifest_list()).await?;
        for m in list.entries() {
            live_manifests.insert(
                m.manifest_path
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            );
        }
    }

    let now = chrono::Utc::now();
    let min_age = chrono::Duration::from_std(params.min_file_age)?;
    let mut metadata_files = Vec::new();
    let mut doomed = Vec::new();
    let listing: Vec<_> = store.list(Some(&prefix)).try_collect().await?;
    for meta in listing {
        let name = meta.location.filename().unwrap_or_default().to_string();
        let old_enough = now - meta.last_modified > min_age;
        if name.ends_with(".metadata.json") {
            let version = name
                .split('-')
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(u64::MAX);
            if !current.ends_with(&name) {
                metadata_files.push((version, old_enough, meta));
            }
        } else if name.starts_with("snap-")
            && name.ends_with(".avro")
            && !live_lists.contains(&name)
            && old_enough
        {
            doomed.push(meta);
        } else if !name.starts_with("snap-")
            && name.ends_with(".avro")
            && !live_manifests.contains(&name)
            && old_enough
        {
            doomed.push(meta);
        }
    }
    // Keep the newest `keep_metadata_files` previous versions (readers that loaded just before
    // our commit); the rest go once they are old enough.
    metadata_files.sort_by(|a, b| b.0.cmp(&a.0));
    doomed.extend(
        metadata_files
            .into_iter()
            .skip(params.keep_metadata_files)
            .filter(|(_, old, _)| *old)
            .map(|(_, _, m)| m),
    );
    for meta in doomed {
        match store.delete(&meta.location).await {
            Ok(()) => {
                report.files_deleted += 1;
                report.bytes_deleted += meta.size;
            }
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    debug!(table = %ident, ?report, "metadata maintenance done");
    Ok(report)
}
