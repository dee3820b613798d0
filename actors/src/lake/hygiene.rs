//! Metadata hygiene: iceberg-rust 0.10 never deletes metadata, and a streaming writer that
//! commits every second would otherwise grow each table's metadata quadratically (every
//! `metadata.json` holds every snapshot; every manifest list names every manifest).

use std::collections::HashSet;
use std::time::Duration;

use futures::TryStreamExt;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::TableIdent;
use object_store::ObjectStoreExt;
use tracing::debug;

use super::catalog::{CatalogKind, Lake};
use super::store;
use crate::telemetry::Metrics;

#[derive(Clone, Debug)]
pub struct HygieneParams {
    /// Run maintenance after this many successful commits.
    pub every_commits: u32,
    /// Expire snapshots older than this (the newest `keep_snapshots` always stay).
    pub snapshot_max_age: Duration,
    pub keep_snapshots: usize,
    /// Old `*.metadata.json` files kept besides the current one.
    pub keep_metadata_files: usize,
    /// Never delete a file younger than this: a concurrent reader or writer may be using it.
    pub min_file_age: Duration,
    /// Merge the table's manifests into one every this many commits (0: never).
    pub compact_every_commits: u32,
    /// Sweep the table's orphan data files every this many commits (0: never).
    pub orphan_every_commits: u32,
    /// Never delete an unreferenced data file younger than this (another writer's commit may
    /// still be on its way).
    pub orphan_min_age: Duration,
}

impl Default for HygieneParams {
    fn default() -> Self {
        HygieneParams {
            every_commits: 10,
            snapshot_max_age: Duration::from_secs(15),
            keep_snapshots: 5,
            keep_metadata_files: 5,
            // Readers load metadata.json and then the manifest list at once; 15 s is far
            // longer than that gap.
            min_file_age: Duration::from_secs(15),
            compact_every_commits: 20,
            orphan_every_commits: 100,
            orphan_min_age: Duration::from_secs(24 * 3600),
        }
    }
}

/// Per-committer schedule of maintenance: when to compact manifests, when to run hygiene.
#[derive(Debug)]
pub struct Maintenance {
    pub params: HygieneParams,
    commits_since_hygiene: u32,
    commits_since_compaction: u32,
    commits_since_sweep: u32,
}

impl Maintenance {
    pub fn new(params: HygieneParams) -> Self {
        // Due at the first commit: a process restarted more often than every N commits would
        // otherwise never compact, and every query would plan over all the manifests left
        // behind (seen: 161 on the alerts table after four short runs).
        Maintenance {
            commits_since_compaction: params.compact_every_commits,
            commits_since_hygiene: 0,
            // Due at the first commit too: crashes are what leave orphans, and a process that
            // keeps crashing must still clean up after itself.
            commits_since_sweep: params.orphan_every_commits,
            params,
        }
    }

    /// Compact in the first attempt of every `compact_every_commits`-th commit; a retry of the
    /// same batch goes without, so a compaction problem can never block ingestion.
    pub fn compact_now(&self, attempt: u32) -> bool {
        let every = self.params.compact_every_commits;
        attempt == 1 && every > 0 && self.commits_since_compaction >= every
    }

    /// Count a landed commit; run hygiene when it is due. Never fails ingestion.
    pub async fn after_commit(
        &mut self,
        lake: &Lake,
        ident: &TableIdent,
        compacted: bool,
        metrics: Option<&Metrics>,
    ) {
        self.sweep_if_due(lake, ident, metrics).await;
        if compacted {
            self.commits_since_compaction = 0;
        } else {
            self.commits_since_compaction += 1;
        }
        self.commits_since_hygiene += 1;
        if self.commits_since_hygiene < self.params.every_commits {
            return;
        }
        self.commits_since_hygiene = 0;
        if let Err(e) = run(lake, ident, &self.params).await {
            // Retried at the next round.
            tracing::warn!(table = %ident, error = %e, "metadata maintenance failed");
        }
    }
}

impl Maintenance {
    async fn sweep_if_due(&mut self, lake: &Lake, ident: &TableIdent, metrics: Option<&Metrics>) {
        let every = self.params.orphan_every_commits;
        if every == 0 {
            return;
        }
        self.commits_since_sweep += 1;
        if self.commits_since_sweep < every {
            return;
        }
        self.commits_since_sweep = 0;
        match super::orphans::sweep(lake, ident, self.params.orphan_min_age, false).await {
            Ok(report) => {
                if let Some(m) = metrics {
                    let table = ident.name();
                    m.orphan_files_deleted
                        .with_label_values(&[table])
                        .inc_by(report.deleted as u64);
                    m.orphan_bytes_reclaimed
                        .with_label_values(&[table])
                        .inc_by(report.bytes_deleted);
                    m.orphan_files_pending
                        .with_label_values(&[table])
                        .set(report.pending as i64);
                }
                if report.deleted > 0 {
                    tracing::info!(table = %ident, deleted = report.deleted, bytes = report.bytes_deleted, "orphan data files deleted");
                }
            }
            // Retried at the next round.
            Err(e) => tracing::warn!(table = %ident, error = %e, "orphan sweep failed"),
        }
    }
}

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
    if lake.params.catalog != CatalogKind::Sql {
        // A REST catalog (Nessie) keeps every table version reachable from its commit
        // history and shows one snapshot at a time; its files are for Nessie GC to collect.
        return Ok(report);
    }
    let table = lake.catalog.load_unpinned(ident).await?;
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
