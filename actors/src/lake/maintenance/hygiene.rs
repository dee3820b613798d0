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
    pub bytes_deleted: u64,
}

/// Expire old snapshots, then delete metadata files no reader can need any more.
/// What expiry needs to know of a snapshot.
#[derive(Clone, Copy, Debug)]
pub struct SnapshotAge {
    pub id: i64,
    pub parent: Option<i64>,
    pub timestamp_ms: i64,
    pub replace: bool,
}

/// Snapshots strictly older than the returned time may expire: those older than `max_age`,
/// except the parent of a compaction (`replace`) younger than `grace`. That parent is the last
/// snapshot naming the replaced files, so while it stays they are referenced, and the orphan
/// sweeper leaves them to the readers that planned a scan before the compaction.
pub fn expiry_cutoff(
    snapshots: &[SnapshotAge],
    now_ms: i64,
    max_age: std::time::Duration,
    grace: std::time::Duration,
) -> i64 {
    let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    let mut cutoff = now_ms.saturating_sub(ms(max_age));
    for s in snapshots {
        if !s.replace || s.timestamp_ms <= now_ms.saturating_sub(ms(grace)) {
            continue;
        }
        if let Some(parent) = s.parent.and_then(|p| snapshots.iter().find(|x| x.id == p)) {
            cutoff = cutoff.min(parent.timestamp_ms);
        }
    }
    cutoff
}

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
    let older_than = expiry_cutoff(
        &snapshots,
        chrono::Utc::now().timestamp_millis(),
        params.snapshot_max_age,
        params.data.replaced_grace,
    );
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{expiry_cutoff, SnapshotAge};

    fn s(id: i64, parent: Option<i64>, t: i64, replace: bool) -> SnapshotAge {
        SnapshotAge {
            id,
            parent,
            timestamp_ms: t * 1000,
            replace,
        }
    }

    #[test]
    fn a_recent_compaction_keeps_its_parent() {
        let now = 10_000_000; // ms
        let age = Duration::from_secs(15);
        let grace = Duration::from_secs(600);
        let cases = [
            (
                "no compaction: plain age",
                vec![s(1, None, 9000, false), s(2, Some(1), 9990, false)],
                now - 15_000,
            ),
            (
                "recent replace keeps its parent",
                vec![s(1, None, 9000, false), s(2, Some(1), 9990, true)],
                9_000_000,
            ),
            (
                "a replace past the grace protects nothing",
                vec![s(1, None, 9000, false), s(2, Some(1), 9300, true)],
                now - 15_000,
            ),
            (
                "parent already expired: plain age",
                vec![s(2, Some(1), 9990, true)],
                now - 15_000,
            ),
            (
                "the oldest protected parent wins",
                vec![
                    s(1, None, 9500, false),
                    s(2, Some(1), 9600, true),
                    s(3, Some(2), 9700, false),
                    s(4, Some(3), 9990, true),
                ],
                9_500_000,
            ),
        ];
        for (name, snapshots, want) in cases {
            assert_eq!(expiry_cutoff(&snapshots, now, age, grace), want, "{name}");
        }
    }
}
