//! The one exactly-once commit loop: reload the table, let the writer's [`Ledger`] decide on
//! exactly that snapshot (a pure decider: `offsets` for the raw tables, `chain` for the rollup
//! tables), append once pinned to it, and on a conflict or an unknown outcome go back to the
//! reload. Storage errors are retried with backoff; nothing we wrote is ever deleted after an
//! unknown outcome (the commit may have landed).

pub mod chain;
pub mod ledgers;
pub mod offsets;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use arrow_array::RecordBatch;
use iceberg::table::Table;
use iceberg::TableIdent;
use tracing::{debug, warn};
use uuid::Uuid;

pub use chain::ChainState;
pub use ledgers::{
    append_once, dead_letters_from_key, offsets_key, recorded, recorded_offsets, OffsetRule,
    Recorded, RollupCommitter, TableBatch, TableCommitter,
};
pub use offsets::{LedgerError, Offsets, Ranges};

use super::catalog::{is_conflict, Lake};
use super::io::append::{append_pinned, Append, AppendError, Backoff};
use super::maintenance::{HygieneParams, Maintenance};
use crate::events::Micros;
use crate::schema::TableSpec;
use crate::telemetry::Metrics;

/// Attempts before a commit gives up (storage errors and conflicts alike).
const MAX_ATTEMPTS: u32 = 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitOutcome {
    Committed,
    AlreadyCommitted,
    /// Every partition of the batch was already past its start (another instance's, or we
    /// are a zombie): nothing of it was written.
    Fenced,
}

#[derive(Clone, Debug)]
pub struct CommitReport {
    pub outcome: CommitOutcome,
    pub rows: usize,
    pub files: usize,
    pub attempts: u32,
    pub offsets: Offsets,
    /// Raw tables: partitions of the batch dropped because the lake was already past their
    /// start, with the lake's offset (where to read from again).
    pub fenced: Offsets,
}

#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// The lake's offsets (or a rollup table's chain) are where no writer could have put them
    /// (behind the batch), or another owner moved the chain. Retrying cannot help.
    #[error("table {table}: offsets fenced: {source}")]
    Fenced { table: String, source: LedgerError },
    /// A rollup table's chain moved under us: another instance owns the rollup tables now
    /// (or owned them while this one was frozen), or an earlier worker of this process landed
    /// a commit late (`by_this_process`). Our state is stale; a restart rebuilds it from the
    /// lake, or stands by if another instance owns.
    #[error("table {table}: {} moved the rollup state: {detail}", if *.by_this_process { "an earlier worker of this process" } else { "another owner" })]
    Deposed {
        table: String,
        detail: String,
        by_this_process: bool,
    },
    #[error("table {table}: recorded offsets are unreadable: {source}")]
    CorruptOffsets { table: String, source: LedgerError },
    #[error("table {table}: opening: {detail}")]
    Open { table: String, detail: String },
    #[error("table {table}: commit failed after {attempts} attempts: {source}")]
    GaveUp {
        table: String,
        attempts: u32,
        source: iceberg::Error,
    },
    #[error("table {table}: {context}: {source}")]
    Iceberg {
        table: String,
        context: &'static str,
        source: iceberg::Error,
    },
    #[error("table {table}: building arrow batch: {source}")]
    Arrow {
        table: String,
        source: arrow_schema::ArrowError,
    },
}

impl CommitError {
    /// Errors that a restart cannot fix: the pipeline must stop and say so.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            CommitError::Fenced { .. } | CommitError::CorruptOffsets { .. }
        )
    }
}

/// Hook called after the decision and before the catalog commit. Tests use it to slip a
/// concurrent writer in between; drills use it for failpoints.
#[async_trait::async_trait]
pub trait CommitHook: Send + Sync + std::fmt::Debug {
    async fn before_commit(&self, table: &TableIdent, attempt: u32);
}

/// What a writer's bookkeeping decided on the table as it is now.
pub enum Plan {
    /// Append `batch` (nothing for a bookkeeping-only commit) and record what it says.
    Append {
        batch: Option<RecordBatch>,
        rows: usize,
        /// Snapshot summary entries and table properties written in the same commit.
        summary: HashMap<String, String>,
        properties: Vec<(String, String)>,
        /// Offsets the table records once this lands (empty for rollup tables).
        offsets: Offsets,
        file_prefix: String,
    },
    /// An earlier attempt already landed (we lost its answer): nothing to do.
    Landed { offsets: Offsets },
}

/// A writer's bookkeeping: decides on a freshly loaded table what to commit, pure apart from
/// encoding the rows. A refusal (fenced, unreadable) is an error; the loop does the rest.
pub trait Ledger: Send {
    /// `attempt_id` is unique per attempt (data file names and the commit uuid derive from
    /// it); `now` fills the rows' "written at" columns.
    fn plan(&mut self, table: &Table, attempt_id: Uuid, now: Micros) -> Result<Plan, CommitError>;
    /// The commit landed (now, or in an earlier attempt).
    fn landed(&mut self) {}
}

/// One table's committer: the loop, its maintenance schedule and its telemetry.
pub struct Committer {
    lake: Lake,
    ident: TableIdent,
    table_name: String,
    writer_id: String,
    maintenance: Maintenance,
    metrics: Option<Metrics>,
    hook: Option<Arc<dyn CommitHook>>,
}

impl Committer {
    /// Open (creating the table from `spec` if needed); returns the table as it is.
    pub async fn open(
        lake: Lake,
        spec: &TableSpec,
        hygiene: HygieneParams,
    ) -> Result<(Self, Table), CommitError> {
        let table = lake
            .ensure_table(spec)
            .await
            .map_err(|e| CommitError::Open {
                table: spec.name.to_string(),
                detail: format!("{e:#}"),
            })?;
        Ok((
            Committer {
                ident: lake.ident(spec.name),
                table_name: spec.name.to_string(),
                lake,
                writer_id: format!("{}-{}", std::process::id(), Uuid::now_v7()),
                maintenance: Maintenance::new(hygiene),
                metrics: None,
                hook: None,
            },
            table,
        ))
    }

    pub fn table_name(&self) -> &str {
        &self.table_name
    }

    pub fn set_metrics(&mut self, metrics: Metrics) {
        self.metrics = Some(metrics);
    }

    /// A maintenance round without a commit (see `maintenance::IDLE_ROUND`).
    pub async fn idle_maintenance(&mut self) {
        self.maintenance
            .idle(&self.lake, &self.ident, self.metrics.as_ref())
            .await;
    }

    pub fn set_hook(&mut self, hook: Arc<dyn CommitHook>) {
        self.hook = Some(hook);
    }

    pub async fn load(&self) -> Result<Table, CommitError> {
        self.lake
            .catalog
            .load_unpinned(&self.ident)
            .await
            .map_err(|source| self.iceberg("loading table", source))
    }

    fn iceberg(&self, context: &'static str, source: iceberg::Error) -> CommitError {
        CommitError::Iceberg {
            table: self.table_name.clone(),
            context,
            source,
        }
    }

    fn count(&self, outcome: &str) {
        if let Some(m) = &self.metrics {
            m.commits
                .with_label_values(&[&self.table_name, outcome])
                .inc();
        }
    }

    /// Commit what `ledger` decides, exactly once. Returns once it is durably in the table
    /// (now, or by an earlier attempt whose answer we lost).
    pub async fn commit(&mut self, ledger: &mut dyn Ledger) -> Result<CommitReport, CommitError> {
        let started = Instant::now();
        let mut backoff = Backoff::new();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let table = self.load().await?;
            let attempt_id = Uuid::now_v7();
            let now = chrono::Utc::now().timestamp_micros();
            let plan = match ledger.plan(&table, attempt_id, now) {
                Ok(plan) => plan,
                Err(e) => {
                    match e {
                        CommitError::Fenced { .. } => self.count("fenced"),
                        CommitError::Deposed { .. } => self.count("deposed"),
                        _ => {}
                    }
                    return Err(e);
                }
            };
            let (batch, rows, summary, properties, offsets, file_prefix) = match plan {
                Plan::Landed { offsets } => {
                    self.count("already_committed");
                    debug!(table = %self.table_name, attempt, "batch found already committed, skipping");
                    ledger.landed();
                    return Ok(CommitReport {
                        outcome: CommitOutcome::AlreadyCommitted,
                        rows: 0,
                        files: 0,
                        attempts: attempt,
                        offsets,
                        fenced: Offsets::new(),
                    });
                }
                Plan::Append {
                    batch,
                    rows,
                    summary,
                    properties,
                    offsets,
                    file_prefix,
                } => (batch, rows, summary, properties, offsets, file_prefix),
            };
            let mut summary = summary;
            summary.insert("shopwatch.writer".to_string(), self.writer_id.clone());
            let compact = self.maintenance.compact_now(attempt);
            let append = Append {
                batch,
                file_prefix,
                commit_id: attempt_id,
                summary,
                properties,
                compact,
            };
            if let Some(hook) = &self.hook {
                hook.before_commit(&self.ident, attempt).await;
            }
            match append_pinned(&self.lake, &table, append).await {
                Ok(files) => {
                    crate::faults::hit(crate::faults::Point::AfterCatalogCommit)
                        .await
                        .map_err(|e| {
                            self.iceberg(
                                "after the catalog commit",
                                iceberg::Error::new(iceberg::ErrorKind::Unexpected, e.to_string()),
                            )
                        })?;
                    self.count("ok");
                    if let Some(m) = &self.metrics {
                        m.commit_landed(&self.table_name, rows, started.elapsed().as_secs_f64());
                    }
                    debug!(table = %self.table_name, rows, files, attempt, "committed");
                    ledger.landed();
                    self.maintenance
                        .after_commit(&self.lake, &self.ident, compact, self.metrics.as_ref())
                        .await;
                    return Ok(CommitReport {
                        outcome: CommitOutcome::Committed,
                        rows,
                        files,
                        attempts: attempt,
                        offsets,
                        fenced: Offsets::new(),
                    });
                }
                Err(AppendError::Storage(source)) => {
                    // Storage refused the data files (read-only, full, unreachable); nothing
                    // reached the catalog. Wait and write them again: backpressure.
                    self.count("storage_error");
                    if attempt == MAX_ATTEMPTS {
                        return Err(self.gave_up(attempt, source));
                    }
                    warn!(table = %self.table_name, attempt, error = %source, "writing data files failed, retrying");
                }
                Err(AppendError::Prepare(context, source)) => {
                    return Err(self.iceberg(context, source))
                }
                Err(AppendError::Commit(e)) => {
                    // Conflict or unknown outcome: never delete what we wrote (the commit may
                    // have landed), reload and decide again.
                    self.count(if is_conflict(&e) {
                        "conflict"
                    } else {
                        "unknown"
                    });
                    if attempt == MAX_ATTEMPTS {
                        return Err(self.gave_up(attempt, e));
                    }
                    if is_conflict(&e) {
                        // Another writer (a compaction, a second pipeline) landed first: the
                        // ordinary optimistic-concurrency path, counted, not a warning.
                        debug!(table = %self.table_name, attempt, error = %e, "commit conflicted, reloading to decide again");
                    } else {
                        warn!(table = %self.table_name, attempt, error = %e, "commit did not land, reloading to decide again");
                    }
                }
            }
            backoff.sleep().await;
        }
    }

    fn gave_up(&self, attempts: u32, source: iceberg::Error) -> CommitError {
        CommitError::GaveUp {
            table: self.table_name.clone(),
            attempts,
            source,
        }
    }
}
