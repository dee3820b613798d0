//! One table's exactly-once commit loop: reload, check offsets, commit once on that snapshot.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use iceberg::table::Table;
use iceberg::TableIdent;
use tracing::{debug, info, warn};
use uuid::Uuid;

use super::append::{append_pinned, Append, AppendError};
use super::catalog::{is_conflict, Lake};
use super::hygiene::{HygieneParams, Maintenance};
use super::offsets::{self, decide_strict, is_committed, merge_forward, Decision, Offsets, Ranges};
use super::writer::arrow_schema;
use crate::schema::{Rows, TableSpec};
use crate::telemetry::Metrics;

/// How a table relates to the offsets it records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetRule {
    /// The table owns its topic's position (raw tables): batches must chain exactly.
    Strict,
    /// The table trails or leads the owner (dead letters, committed first): rows already
    /// covered by the recorded offsets are dropped, the rest appended.
    Filter,
}

/// Rows of one table from one topic, with the Kafka range they cover.
#[derive(Clone, Debug)]
pub struct TableBatch {
    pub topic: String,
    pub ranges: Ranges,
    /// Shared: after the raw commit the same rows go to the derived actors.
    pub rows: std::sync::Arc<Rows>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitOutcome {
    Committed,
    AlreadyCommitted,
}

#[derive(Clone, Debug)]
pub struct CommitReport {
    pub outcome: CommitOutcome,
    pub rows: usize,
    pub files: usize,
    pub attempts: u32,
    pub offsets: Offsets,
}

#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// The lake's offsets are not where this batch says they should be. Retrying cannot help.
    #[error("table {table}: offsets fenced: {detail}")]
    Fenced { table: String, detail: String },
    #[error("table {table}: recorded offsets are unreadable: {detail}")]
    CorruptOffsets { table: String, detail: String },
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

/// Storage refused a batch's data files (read-only, full, unreachable); nothing reached the
/// catalog. Wait and let the caller write them again, as backpressure on the consumer, or
/// give up after `max_attempts`.
pub(super) async fn storage_retry(
    table: &str,
    attempt: u32,
    max_attempts: u32,
    source: iceberg::Error,
    backoff: &mut super::append::Backoff,
) -> Result<(), CommitError> {
    if attempt >= max_attempts {
        return Err(CommitError::GaveUp {
            table: table.to_string(),
            attempts: attempt,
            source,
        });
    }
    warn!(table, attempt, error = %source, "writing data files failed, retrying");
    backoff.sleep().await;
    Ok(())
}

pub fn offsets_key(topic: &str) -> String {
    format!("shopwatch.offsets.{topic}")
}

/// Offsets recorded for `topic` in the table property (the source of truth: unlike snapshot
/// summaries it survives snapshot expiry and other engines' compactions).
pub fn recorded_offsets(table: &Table, topic: &str) -> Result<Offsets, String> {
    match table.metadata().properties().get(&offsets_key(topic)) {
        None => Ok(Offsets::new()),
        Some(text) => offsets::from_json(text),
    }
}

pub struct TableCommitter {
    lake: Lake,
    ident: TableIdent,
    table_name: String,
    rule: OffsetRule,
    writer_id: String,
    maintenance: Maintenance,
    max_attempts: u32,
    metrics: Option<Metrics>,
    hook: Option<Arc<dyn CommitHook>>,
}

impl TableCommitter {
    pub async fn open(
        lake: Lake,
        spec: &TableSpec,
        rule: OffsetRule,
        hygiene: HygieneParams,
    ) -> anyhow::Result<Self> {
        lake.ensure_table(spec).await?;
        Ok(TableCommitter {
            ident: lake.ident(spec.name),
            table_name: spec.name.to_string(),
            lake,
            rule,
            writer_id: format!("{}-{}", std::process::id(), Uuid::now_v7()),
            maintenance: Maintenance::new(hygiene),
            max_attempts: 20,
            metrics: None,
            hook: None,
        })
    }

    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    pub fn with_hook(mut self, hook: Arc<dyn CommitHook>) -> Self {
        self.hook = Some(hook);
        self
    }

    pub fn table_name(&self) -> &str {
        &self.table_name
    }

    fn iceberg_err(
        &self,
        context: &'static str,
    ) -> impl FnOnce(iceberg::Error) -> CommitError + '_ {
        move |source| CommitError::Iceberg {
            table: self.table_name.clone(),
            context,
            source,
        }
    }

    pub async fn committed_offsets(&self, topic: &str) -> Result<Offsets, CommitError> {
        let table = self
            .lake
            .catalog
            .load_unpinned(&self.ident)
            .await
            .map_err(self.iceberg_err("loading table"))?;
        recorded_offsets(&table, topic).map_err(|detail| CommitError::CorruptOffsets {
            table: self.table_name.clone(),
            detail,
        })
    }

    fn count(&self, outcome: &str) {
        if let Some(m) = &self.metrics {
            m.commits
                .with_label_values(&[&self.table_name, outcome])
                .inc();
        }
    }

    /// Commit `batch` exactly once. Returns once the batch is durably in the table (now or by
    /// an earlier attempt whose answer we lost).
    pub async fn commit(&mut self, batch: TableBatch) -> Result<CommitReport, CommitError> {
        let started = Instant::now();
        let mut backoff = super::append::Backoff::new();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let table = self
                .lake
                .catalog
                .load_unpinned(&self.ident)
                .await
                .map_err(self.iceberg_err("loading table"))?;
            let committed = recorded_offsets(&table, &batch.topic).map_err(|detail| {
                CommitError::CorruptOffsets {
                    table: self.table_name.clone(),
                    detail,
                }
            })?;

            // Only the replay filter needs its own copy of the rows.
            let filtered;
            let rows: &Rows = match self.rule {
                OffsetRule::Strict => match decide_strict(&committed, &batch.ranges) {
                    Decision::Commit => &batch.rows,
                    Decision::AlreadyCommitted => {
                        self.count("already_committed");
                        info!(table = %self.table_name, attempt, "batch found already committed, skipping");
                        return Ok(CommitReport {
                            outcome: CommitOutcome::AlreadyCommitted,
                            rows: 0,
                            files: 0,
                            attempts: attempt,
                            offsets: committed,
                        });
                    }
                    Decision::Fenced(detail) => {
                        self.count("fenced");
                        return Err(CommitError::Fenced {
                            table: self.table_name.clone(),
                            detail,
                        });
                    }
                },
                OffsetRule::Filter => {
                    let mut rows = (*batch.rows).clone();
                    rows.retain(|p, o| !is_committed(&committed, p, o));
                    let advances = batch
                        .ranges
                        .iter()
                        .any(|(p, (_, end))| committed.get(p).is_none_or(|c| c < end));
                    if rows.is_empty() && !advances {
                        self.count("already_committed");
                        return Ok(CommitReport {
                            outcome: CommitOutcome::AlreadyCommitted,
                            rows: 0,
                            files: 0,
                            attempts: attempt,
                            offsets: committed,
                        });
                    }
                    filtered = rows;
                    &filtered
                }
            };

            let new_offsets = merge_forward(&committed, &batch.ranges);
            let commit_id = Uuid::now_v7();
            let record_batch = if rows.is_empty() {
                None
            } else {
                let schema =
                    arrow_schema(&table).map_err(self.iceberg_err("building arrow schema"))?;
                Some(
                    rows.to_record_batch(schema)
                        .map_err(|source| CommitError::Arrow {
                            table: self.table_name.clone(),
                            source,
                        })?,
                )
            };
            let key = offsets_key(&batch.topic);
            let json = offsets::to_json(&new_offsets);
            let append = Append {
                batch: record_batch,
                file_prefix: format!("{}-{}", batch.topic, commit_id),
                commit_id,
                summary: HashMap::from([
                    (key.clone(), json.clone()),
                    ("shopwatch.commit-id".to_string(), commit_id.to_string()),
                    ("shopwatch.writer".to_string(), self.writer_id.clone()),
                ]),
                properties: vec![(key, json)],
                compact: self.maintenance.compact_now(attempt),
            };
            let compacting = append.compact;
            if let Some(hook) = &self.hook {
                hook.before_commit(&self.ident, attempt).await;
            }
            let result = match append_pinned(&self.lake, &table, append).await {
                Ok(files) => Ok(files),
                Err(AppendError::Prepare(super::append::WRITING_DATA_FILES, source)) => {
                    self.count("storage_error");
                    storage_retry(
                        &self.table_name,
                        attempt,
                        self.max_attempts,
                        source,
                        &mut backoff,
                    )
                    .await?;
                    continue;
                }
                Err(AppendError::Prepare(context, source)) => {
                    return Err(CommitError::Iceberg {
                        table: self.table_name.clone(),
                        context,
                        source,
                    })
                }
                Err(AppendError::Commit(e)) => Err(e),
            };
            match result {
                Ok(num_files) => {
                    crate::failpoint::hit("committer.after_catalog_commit")
                        .await
                        .map_err(|e| CommitError::Iceberg {
                            table: self.table_name.clone(),
                            context: "after the catalog commit",
                            source: iceberg::Error::new(iceberg::ErrorKind::Unexpected, e),
                        })?;
                    self.count("ok");
                    if let Some(m) = &self.metrics {
                        m.commit_landed(
                            &self.table_name,
                            rows.len(),
                            started.elapsed().as_secs_f64(),
                        );
                    }
                    debug!(table = %self.table_name, rows = rows.len(), files = num_files, attempt, "committed");
                    self.maintenance
                        .after_commit(&self.lake, &self.ident, compacting, self.metrics.as_ref())
                        .await;
                    return Ok(CommitReport {
                        outcome: CommitOutcome::Committed,
                        rows: rows.len(),
                        files: num_files,
                        attempts: attempt,
                        offsets: new_offsets,
                    });
                }
                Err(e) => {
                    // Conflict or unknown outcome: never delete what we wrote (the commit may
                    // have landed), reload and decide again.
                    self.count(if is_conflict(&e) {
                        "conflict"
                    } else {
                        "unknown"
                    });
                    if attempt >= self.max_attempts {
                        return Err(CommitError::GaveUp {
                            table: self.table_name.clone(),
                            attempts: attempt,
                            source: e,
                        });
                    }
                    warn!(table = %self.table_name, attempt, error = %e, "commit did not land, reloading to decide again");
                    backoff.sleep().await;
                }
            }
        }
    }
}
