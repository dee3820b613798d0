//! Keeping tables small and fast while shopwatch commits every second: manifest compaction
//! inside chosen commits (`compact`), snapshot expiry and metadata-file deletion (`hygiene`),
//! and the orphan sweeper for data files a crash left behind (`orphans`). One schedule per
//! committer decides when each runs; none of them may ever fail ingestion.
//!
//! With several instances only one maintains (the [`Maintainer`], the rollup owner): data
//! compaction, hygiene and the sweep are separate catalog commits and deletes, and N instances
//! doing them would do the same work N times and conflict with each other. Manifest merging
//! stays with every writer: it rides inside that writer's own commit (no commit of its own),
//! and a table the maintainer never writes would otherwise keep every manifest. The maintainer
//! also maintains tables it does not write (a topic whose partitions are all elsewhere): its
//! committers run a round on their own when they have landed nothing for [`IDLE_ROUND`].

pub mod compact;
pub mod hygiene;
pub mod orphans;
pub mod rewrite;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use iceberg::TableIdent;

use crate::lake::catalog::Lake;
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
    /// Data-file compaction: merging small files, and how long replaced ones stay readable.
    pub data: rewrite::DataCompactionParams,
    /// Whether this instance maintains (always, unless several instances share the lake).
    pub maintainer: Maintainer,
}

/// Whether this instance may run the lake's maintenance now. With several instances the
/// election decides (the rollup owner maintains), asked at every round so it follows a move.
#[derive(Clone, Default)]
pub struct Maintainer(Option<Arc<dyn Fn() -> bool + Send + Sync>>);

impl Maintainer {
    /// This instance alone maintains its lake.
    pub fn always() -> Self {
        Maintainer(None)
    }

    /// Maintains while `holds` says so.
    pub fn when(holds: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        Maintainer(Some(Arc::new(holds)))
    }

    pub fn holds(&self) -> bool {
        self.0.as_ref().is_none_or(|holds| holds())
    }
}

impl fmt::Debug for Maintainer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("Maintainer::always"),
            Some(_) => f.write_str("Maintainer::when(..)"),
        }
    }
}

/// A committer that has landed nothing for this long runs a maintenance round on its own (if
/// this instance maintains): the maintainer may hold none of a topic's partitions.
pub const IDLE_ROUND: Duration = Duration::from_secs(30);

/// What a round does, from whether this instance maintains and how it came (pure, tabled).
#[derive(Debug, PartialEq, Eq)]
enum Round {
    /// Another instance maintains: drop any compaction being written (its inputs may be
    /// compacted by the maintainer meanwhile; its files are swept as orphans later).
    Abstain,
    /// The schedule after a landed commit.
    AfterCommit,
    /// A round of its own: nothing landed here for `IDLE_ROUND`.
    Idle,
    /// Nothing to do yet.
    Wait,
}

fn round(maintains: bool, committed: bool, since_last: Option<Duration>) -> Round {
    match (maintains, committed) {
        (false, _) => Round::Abstain,
        (true, true) => Round::AfterCommit,
        (true, false) if since_last.is_none_or(|d| d >= IDLE_ROUND) => Round::Idle,
        (true, false) => Round::Wait,
    }
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
            data: rewrite::DataCompactionParams::default(),
            maintainer: Maintainer::always(),
        }
    }
}

/// Whether a table's own metadata keeps its history, so that expiring snapshots, deleting old
/// metadata files and sweeping unreferenced data files are ours to do. Decided from the
/// metadata, never from the catalog kind: the SQL catalog and most REST catalogs (SeaweedFS,
/// Polaris, Lakekeeper) keep every snapshot until expired, and each one has a parent; Nessie
/// shows one snapshot without a parent, keeps older versions in its commit log, and leaves
/// their files to Nessie GC — deleting what its one visible snapshot does not name would
/// break those versions.
pub fn keeps_history(metadata: &iceberg::spec::TableMetadata) -> bool {
    history_kept(
        metadata.snapshots().count(),
        metadata
            .current_snapshot()
            .is_some_and(|s| s.parent_snapshot_id().is_some()),
    )
}

fn history_kept(snapshots: usize, current_has_parent: bool) -> bool {
    snapshots > 1 || current_has_parent
}

/// Whether every data file any version of the table ever named is named by what its metadata
/// shows: kept history, or a table whose only commit is its first (sequence number 1; in
/// Nessie too, no older version with data exists). Such a table's unreferenced data files are
/// crashed attempts' leftovers, safe for the orphan sweeper.
pub fn every_version_visible(metadata: &iceberg::spec::TableMetadata) -> bool {
    keeps_history(metadata)
        || first_commit_only(
            metadata.snapshots().count(),
            metadata.last_sequence_number(),
        )
}

fn first_commit_only(snapshots: usize, last_sequence_number: i64) -> bool {
    snapshots == 1 && last_sequence_number <= 1
}

/// Per-committer schedule of maintenance: when to compact manifests, when to run hygiene.
#[derive(Debug)]
pub struct Maintenance {
    pub params: HygieneParams,
    commits_since_hygiene: u32,
    commits_since_compaction: u32,
    commits_since_sweep: u32,
    /// When the last data compaction started (none yet: due at the first commit).
    last_data: Option<std::time::Instant>,
    /// The data compaction being written: its slow phase (reading and writing data files) runs
    /// beside the commits, so a long merge never stalls ingestion; its quick phase (manifests
    /// and the catalog commit) runs between two of this table's commits, so it never races
    /// them (other writers it still races, and decides again).
    data_task: Option<tokio::task::JoinHandle<iceberg::Result<Option<rewrite::Prepared>>>>,
    /// When this committer last landed a commit or ran an idle round.
    last_round: Option<Instant>,
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
            last_data: None,
            data_task: None,
            last_round: None,
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
        if compacted {
            self.commits_since_compaction = 0;
        } else {
            self.commits_since_compaction += 1;
        }
        // The catalog wrapper compacts inside a commit (a failed one fails that attempt, and the
        // retry goes without); it says how the last try went.
        if let Some(outcome) = lake.catalog.take_compaction(ident) {
            report(metrics, ident, "manifest_compaction", outcome);
        }
        self.run(lake, ident, metrics, true).await;
    }

    /// A round without a commit (the committer's timer): runs only on the maintainer, and only
    /// when this table has landed nothing here for [`IDLE_ROUND`].
    pub async fn idle(&mut self, lake: &Lake, ident: &TableIdent, metrics: Option<&Metrics>) {
        self.run(lake, ident, metrics, false).await;
    }

    async fn run(
        &mut self,
        lake: &Lake,
        ident: &TableIdent,
        metrics: Option<&Metrics>,
        committed: bool,
    ) {
        let maintains = self.params.maintainer.holds();
        if let Some(m) = metrics {
            m.set_maintainer(maintains);
        }
        match round(maintains, committed, self.last_round.map(|t| t.elapsed())) {
            Round::Abstain => {
                if let Some(task) = self.data_task.take() {
                    task.abort();
                }
                return;
            }
            Round::Wait => return,
            Round::AfterCommit => {}
            // The commits that would count toward the steps land elsewhere: hygiene is due at
            // every idle round, and one counts as ten commits toward the sweep.
            Round::Idle => {
                self.commits_since_hygiene = self.params.every_commits;
                self.commits_since_sweep = self.commits_since_sweep.saturating_add(9);
            }
        }
        self.last_round = Some(Instant::now());
        self.data_compaction(lake, ident, metrics).await;
        // Never while a compaction is writing its merged files: they are not referenced yet.
        if self.data_task.is_none() {
            self.sweep_if_due(lake, ident, metrics).await;
        }
        self.commits_since_hygiene += 1;
        if self.commits_since_hygiene < self.params.every_commits {
            return;
        }
        self.commits_since_hygiene = 0;
        // Retried at the next round either way.
        let outcome = hygiene::run(lake, ident, &self.params)
            .await
            .map(|_| ())
            .map_err(|e| format!("{e:#}"));
        report(metrics, ident, "hygiene", outcome);
    }
}

/// Count a step's outcome. A failure is a warning the first time and every 10th time in a row
/// after it (a step failing every round is broken: `/readyz` and the page show it, counted in
/// `shopwatch_maintenance_failures_total`), not a warning repeated forever.
fn report(metrics: Option<&Metrics>, ident: &TableIdent, step: &str, outcome: Result<(), String>) {
    let error = outcome.as_ref().err().cloned();
    let consecutive = match metrics {
        Some(m) => m.maintenance_outcome(ident.name(), step, outcome),
        None => u64::from(error.is_some()),
    };
    if let Some(e) = error {
        if consecutive == 1 || consecutive % 10 == 0 {
            tracing::warn!(table = %ident, step, consecutive, error = %e, "maintenance step failed");
        } else {
            tracing::debug!(table = %ident, step, consecutive, error = %e, "maintenance step failed again");
        }
    }
}

impl Maintenance {
    /// Collect a finished data compaction; start one when due and none is running.
    async fn data_compaction(
        &mut self,
        lake: &Lake,
        ident: &TableIdent,
        metrics: Option<&Metrics>,
    ) {
        if let Some(task) = self.data_task.take_if(|t| t.is_finished()) {
            let landed = match task.await {
                Ok(Ok(Some(prepared))) => rewrite::land(lake, ident, prepared).await.map(Some),
                Ok(Ok(None)) => Ok(None),
                Ok(Err(e)) => Err(e),
                Err(e) => Err(iceberg::Error::new(
                    iceberg::ErrorKind::Unexpected,
                    format!("compaction task: {e}"),
                )),
            };
            let outcome = match landed {
                Ok(None) => Ok(()),
                Ok(Some(done)) => {
                    if let Some(m) = metrics {
                        m.data_compacted(ident.name(), done.files_replaced, done.files_written);
                    }
                    if done.files_replaced > 0 {
                        tracing::info!(table = %ident, replaced = done.files_replaced, written = done.files_written, rows = done.rows, files_before = done.files_before, attempts = done.attempts, "data files compacted");
                    }
                    // Files arrive faster than the schedule merges them (a catch-up, a burst):
                    // the next round starts now rather than after `every`, so a partition
                    // stays under its file cap.
                    if done.files_replaced >= self.params.data.max_files_per_partition / 2 {
                        self.last_data = None;
                    }
                    Ok(())
                }
                Err(e) => Err(e.to_string()),
            };
            report(metrics, ident, "data_compaction", outcome);
        }
        let every = self.params.data.every;
        if every.is_zero() || self.data_task.is_some() {
            return;
        }
        if self.last_data.is_some_and(|t| t.elapsed() < every) {
            return;
        }
        self.last_data = Some(std::time::Instant::now());
        let (lake, ident, params) = (lake.clone(), ident.clone(), self.params.data.clone());
        self.data_task = Some(tokio::spawn(async move {
            rewrite::prepare_current(&lake, &ident, &params).await
        }));
    }

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
        match orphans::sweep(lake, ident, self.params.orphan_min_age, false).await {
            Ok(swept) => {
                if let Some(m) = metrics {
                    let table = ident.name();
                    m.orphan_files_deleted
                        .with_label_values(&[table])
                        .inc_by(swept.deleted as u64);
                    m.orphan_bytes_reclaimed
                        .with_label_values(&[table])
                        .inc_by(swept.bytes_deleted);
                    m.orphan_files_pending
                        .with_label_values(&[table])
                        .set(swept.pending as i64);
                }
                if swept.deleted > 0 {
                    tracing::info!(table = %ident, deleted = swept.deleted, bytes = swept.bytes_deleted, "orphan data files deleted");
                }
                report(metrics, ident, "orphan_sweep", Ok(()));
            }
            // Retried at the next round.
            Err(e) => report(metrics, ident, "orphan_sweep", Err(format!("{e:#}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{first_commit_only, history_kept, round, Round, IDLE_ROUND};
    use std::time::Duration;

    #[test]
    fn only_the_maintainer_maintains_and_an_idle_table_gets_rounds_of_its_own() {
        let soon = Some(Duration::from_secs(3));
        let later = Some(IDLE_ROUND);
        // (maintains, a commit landed, since the last round) -> round
        let cases = [
            ((false, true, soon), Round::Abstain),
            ((false, false, None), Round::Abstain),
            ((false, false, later), Round::Abstain),
            ((true, true, soon), Round::AfterCommit),
            ((true, true, None), Round::AfterCommit),
            ((true, false, soon), Round::Wait),
            ((true, false, later), Round::Idle),
            ((true, false, None), Round::Idle),
        ];
        for ((maintains, committed, since), want) in cases {
            assert_eq!(
                round(maintains, committed, since),
                want,
                "{maintains} {committed} {since:?}"
            );
        }
    }

    #[test]
    fn a_first_commit_is_all_the_history_there_is() {
        // (snapshots, last sequence number) -> the orphan sweeper may decide from it
        let cases = [
            ((0, 0), false), // empty: nothing to sweep against
            ((1, 1), true),  // the first commit (an earlier attempt crashed: its files go)
            ((1, 5), false), // Nessie's one-snapshot view after five commits
            ((2, 2), false), // decided by history_kept instead
        ];
        for ((snapshots, seq), want) in cases {
            assert_eq!(first_commit_only(snapshots, seq), want, "{snapshots} {seq}");
        }
    }

    #[test]
    fn history_is_read_from_the_metadata() {
        // (snapshots, current snapshot has a parent) -> ours to clean up
        let cases = [
            ((0, false), false), // empty table: nothing to clean
            ((1, false), false), // first commit, or Nessie's one-snapshot view at any commit
            ((1, true), true),   // history expired down to one snapshot: its parent was ours
            ((2, true), true),   // SQL / SeaweedFS / Polaris after two commits
            ((7, true), true),
            ((3, false), true), // a rolled-back or replaced main branch still keeps snapshots
        ];
        for ((snapshots, parent), want) in cases {
            assert_eq!(
                history_kept(snapshots, parent),
                want,
                "{snapshots} snapshots, parent {parent}"
            );
        }
    }
}
