//! Metadata hygiene: iceberg-rust 0.10 never deletes metadata, and a streaming writer that
//! commits every second would otherwise grow each table's metadata quadratically (every
//! `metadata.json` holds every snapshot; every manifest list names every manifest).

use std::collections::HashSet;

use futures::TryStreamExt;
use iceberg::spec::Operation;
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
    /// Data files replaced by a compaction whose grace ended, deleted with its snapshots.
    pub replaced_files_deleted: usize,
    pub bytes_deleted: u64,
}

/// What expiry needs to know of a snapshot.
#[derive(Clone, Copy, Debug)]
pub struct SnapshotAge {
    pub id: i64,
    pub parent: Option<i64>,
    pub timestamp_ms: i64,
    pub replace: bool,
}

/// Which snapshots to expire: those older than `max_age`, except the current one, the `keep`
/// newest, and the parent of a compaction (`replace`) younger than `grace`. That parent is the
/// last snapshot naming the replaced files, so while it stays they are referenced, and the
/// orphan sweeper leaves them to readers that planned a scan before the compaction (the
/// compaction snapshot stays with it, since it is what marks the parent). Only those
/// parents are kept, not everything after them: a cutoff at the oldest would keep every
/// snapshot of the grace period and bloat each `metadata.json`.
pub fn to_expire(
    snapshots: &[SnapshotAge],
    current: Option<i64>,
    now_ms: i64,
    max_age: std::time::Duration,
    keep: usize,
    grace: std::time::Duration,
) -> Vec<i64> {
    let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    let mut newest: Vec<&SnapshotAge> = snapshots.iter().collect();
    newest.sort_by_key(|s| std::cmp::Reverse((s.timestamp_ms, s.id)));
    let mut kept: HashSet<i64> = newest.iter().take(keep).map(|s| s.id).collect();
    kept.extend(current);
    let grace_from = now_ms.saturating_sub(ms(grace));
    for s in snapshots
        .iter()
        .filter(|s| s.replace && s.timestamp_ms > grace_from)
    {
        // The compaction itself stays too: it is what marks its parent as protected.
        kept.insert(s.id);
        kept.extend(s.parent);
    }
    let cutoff = now_ms.saturating_sub(ms(max_age));
    let mut out: Vec<i64> = snapshots
        .iter()
        .filter(|s| s.timestamp_ms < cutoff && !kept.contains(&s.id))
        .map(|s| s.id)
        .collect();
    out.sort_unstable();
    out
}

/// (compaction snapshot id, data file path) of every file a compaction among `expiring`
/// replaced: the DELETED entries it wrote itself.
async fn replaced_by(
    table: &iceberg::table::Table,
    expiring: &[i64],
) -> anyhow::Result<Vec<(i64, String)>> {
    let mut out = Vec::new();
    for id in expiring {
        let Some(s) = table.metadata().snapshot_by_id(*id) else {
            continue;
        };
        if s.summary().operation != Operation::Replace {
            continue;
        }
        let list = super::compact::read_manifest_list(table, s.manifest_list()).await?;
        for m in list.entries().iter().filter(|m| m.added_snapshot_id == *id) {
            let manifest = m.load_manifest(table.file_io()).await?;
            for e in manifest.entries() {
                if e.status() == iceberg::spec::ManifestStatus::Deleted
                    && e.snapshot_id() == Some(*id)
                {
                    out.push((*id, e.file_path().to_string()));
                }
            }
        }
    }
    Ok(out)
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
    let snapshots: Vec<SnapshotAge> = table
        .metadata()
        .snapshots()
        .map(|s| SnapshotAge {
            id: s.snapshot_id(),
            parent: s.parent_snapshot_id(),
            timestamp_ms: s.timestamp_ms(),
            replace: s.summary().operation == Operation::Replace,
        })
        .collect();
    let expire = to_expire(
        &snapshots,
        table.metadata().current_snapshot_id(),
        chrono::Utc::now().timestamp_millis(),
        params.snapshot_max_age,
        params.keep_snapshots,
        params.data.replaced_grace,
    );
    let replaced = replaced_by(&table, &expire).await?;
    let table = if expire.is_empty() {
        table
    } else {
        let tx = Transaction::new(&table);
        // Exactly the chosen ids: age-based selection off (every snapshot is newer than 0).
        let tx = tx
            .expire_snapshots()
            .expire_snapshot_ids(expire)
            .expire_older_than_ms(0)
            .apply(tx)?;
        match tx.commit(lake.catalog.as_ref()).await {
            Ok(t) => t,
            Err(e) => {
                debug!(table = %ident, error = %e, "snapshot expiry skipped");
                lake.catalog.load_unpinned(ident).await?
            }
        }
    };
    report.snapshots_expired = before.saturating_sub(table.metadata().snapshots().count());
    // The replaced files' grace is over and their snapshots are gone: delete them now rather
    // than leave them a day to the orphan sweeper. Only if no remaining snapshot names them.
    let expired = replaced
        .iter()
        .all(|(id, _)| table.metadata().snapshot_by_id(*id).is_none());
    if expired && !replaced.is_empty() {
        let referenced = super::orphans::referenced_data_files(&table).await?;
        let props = table.file_io().config().props();
        for (_, path) in &replaced {
            let name = path.rsplit('/').next().unwrap_or(path);
            if !referenced.contains(name) && store::delete(path, props).await.is_ok() {
                report.replaced_files_deleted += 1;
            }
        }
    }

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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{to_expire, SnapshotAge};

    fn s(id: i64, parent: Option<i64>, t: i64, replace: bool) -> SnapshotAge {
        SnapshotAge {
            id,
            parent,
            timestamp_ms: t * 1000,
            replace,
        }
    }

    #[test]
    fn a_recent_compaction_keeps_only_its_parent() {
        let now = 10_000_000; // ms
        let age = Duration::from_secs(15);
        let grace = Duration::from_secs(600);
        let plain = vec![
            s(1, None, 9000, false),
            s(2, Some(1), 9100, false),
            s(3, Some(2), 9200, false),
            s(4, Some(3), 9995, false),
        ];
        let cases: Vec<(&str, Vec<SnapshotAge>, usize, Vec<i64>)> = vec![
            ("plain age, keep 1", plain.clone(), 1, vec![1, 2, 3]),
            ("keep the 2 newest", plain.clone(), 2, vec![1, 2]),
            (
                "a recent replace keeps itself and its parent, nothing else",
                vec![
                    s(1, None, 9000, false),
                    s(2, Some(1), 9100, false),
                    s(3, Some(2), 9500, true),
                    s(4, Some(3), 9600, false),
                    s(5, Some(4), 9995, false),
                ],
                1,
                vec![1, 4],
            ),
            (
                "a replace past the grace protects nothing",
                vec![
                    s(1, None, 9000, false),
                    s(2, Some(1), 9300, true),
                    s(3, Some(2), 9995, false),
                ],
                1,
                vec![1, 2],
            ),
            (
                "young snapshots stay",
                vec![s(1, None, 9990, false), s(2, Some(1), 9995, false)],
                1,
                vec![],
            ),
        ];
        for (name, snapshots, keep, want) in cases {
            let current = snapshots.last().map(|x| x.id);
            assert_eq!(
                to_expire(&snapshots, current, now, age, keep, grace),
                want,
                "{name}"
            );
        }
    }
}
