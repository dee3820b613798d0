//! Exactly-once for derived tables (KPIs, alerts). A derived table records, in the same commit
//! as its rows, a numbered state: what it has emitted and from which source offsets its open
//! state can be rebuilt. A commit lands only on top of the state it was computed from.

use std::collections::HashMap;
use std::time::Instant;

use iceberg::table::Table;
use iceberg::TableIdent;
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};
use uuid::Uuid;

use super::append::{append_pinned, Append, AppendError};
use super::catalog::{is_conflict, Lake};
use super::commit::{CommitError, CommitOutcome};
use super::hygiene::{HygieneParams, Maintenance};
use super::offsets::Decision;
use super::writer::arrow_schema;
use crate::schema::derived::DerivedRows;
use crate::schema::TableSpec;
use crate::telemetry::Metrics;

pub const CHAIN_KEY: &str = "shopwatch.derived-state";

/// What a derived table has recorded. `state` is the owner's (aggregator or detector) JSON.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChainState {
    pub seq: u64,
    pub commit_id: String,
    pub state: serde_json::Value,
}

pub fn recorded_chain(table: &Table) -> Result<ChainState, String> {
    match table.metadata().properties().get(CHAIN_KEY) {
        None => Ok(ChainState::default()),
        Some(text) => serde_json::from_str(text).map_err(|e| format!("{CHAIN_KEY}: {e}")),
    }
}

/// Commit when the table is still at the state we computed from; recognise our own landed
/// commit (an unknown outcome that succeeded); anything else means another writer moved it.
pub fn decide_chain(recorded: &ChainState, expected_seq: u64, commit_id: &str) -> Decision {
    if recorded.seq == expected_seq {
        Decision::Commit
    } else if recorded.seq == expected_seq + 1 && recorded.commit_id == commit_id {
        Decision::AlreadyCommitted
    } else {
        Decision::Fenced(format!(
            "derived state is at seq {} (commit {}), expected {expected_seq}",
            recorded.seq, recorded.commit_id
        ))
    }
}

pub struct DerivedCommitter {
    lake: Lake,
    ident: TableIdent,
    table_name: String,
    seq: u64,
    writer_id: String,
    maintenance: Maintenance,
    metrics: Option<Metrics>,
}

impl DerivedCommitter {
    /// Open (creating the table if needed) and return the recorded state to resume from.
    pub async fn open(
        lake: Lake,
        spec: &TableSpec,
        hygiene: HygieneParams,
        metrics: Option<Metrics>,
    ) -> Result<(Self, ChainState), CommitError> {
        let table_name = spec.name.to_string();
        let table = lake
            .ensure_table(spec)
            .await
            .map_err(|e| CommitError::CorruptOffsets {
                table: table_name.clone(),
                detail: format!("{e:#}"),
            })?;
        let recorded = recorded_chain(&table).map_err(|detail| CommitError::CorruptOffsets {
            table: table_name.clone(),
            detail,
        })?;
        Ok((
            DerivedCommitter {
                ident: lake.ident(spec.name),
                lake,
                table_name,
                seq: recorded.seq,
                writer_id: format!("{}-{}", std::process::id(), Uuid::now_v7()),
                maintenance: Maintenance::new(hygiene),
                metrics,
            },
            recorded,
        ))
    }

    pub fn table_name(&self) -> &str {
        &self.table_name
    }

    /// The table as last committed (for reading it back).
    pub async fn load(&self) -> Result<Table, CommitError> {
        self.lake
            .catalog
            .load_unpinned(&self.ident)
            .await
            .map_err(|source| CommitError::Iceberg {
                table: self.table_name.clone(),
                context: "loading table",
                source,
            })
    }

    fn count(&self, outcome: &str) {
        if let Some(m) = &self.metrics {
            m.commits
                .with_label_values(&[&self.table_name, outcome])
                .inc();
        }
    }

    /// Append `rows` and record `state` as the next link of the chain, exactly once.
    pub async fn commit(
        &mut self,
        rows: &DerivedRows,
        state: serde_json::Value,
    ) -> Result<CommitOutcome, CommitError> {
        let started = Instant::now();
        let commit_id = Uuid::now_v7().to_string();
        let mut backoff = super::append::Backoff::new();
        for attempt in 1..=20u32 {
            let table = self.load().await?;
            let recorded =
                recorded_chain(&table).map_err(|detail| CommitError::CorruptOffsets {
                    table: self.table_name.clone(),
                    detail,
                })?;
            match decide_chain(&recorded, self.seq, &commit_id) {
                Decision::Commit => {}
                Decision::AlreadyCommitted => {
                    self.count("already_committed");
                    self.seq += 1;
                    return Ok(CommitOutcome::AlreadyCommitted);
                }
                Decision::Fenced(detail) => {
                    self.count("fenced");
                    return Err(CommitError::Fenced {
                        table: self.table_name.clone(),
                        detail,
                    });
                }
            }
            let now = chrono::Utc::now().timestamp_micros();
            let batch = if rows.is_empty() {
                None
            } else {
                let schema = arrow_schema(&table).map_err(|source| CommitError::Iceberg {
                    table: self.table_name.clone(),
                    context: "building arrow schema",
                    source,
                })?;
                Some(
                    rows.to_record_batch(schema, now)
                        .map_err(|source| CommitError::Arrow {
                            table: self.table_name.clone(),
                            source,
                        })?,
                )
            };
            let next = ChainState {
                seq: self.seq + 1,
                commit_id: commit_id.clone(),
                state: state.clone(),
            };
            let json = serde_json::to_string(&next).unwrap_or_default();
            let uuid = Uuid::now_v7();
            let append = Append {
                batch,
                file_prefix: format!("derived-{uuid}"),
                commit_id: uuid,
                summary: HashMap::from([
                    ("shopwatch.derived-seq".to_string(), next.seq.to_string()),
                    ("shopwatch.commit-id".to_string(), commit_id.clone()),
                    ("shopwatch.writer".to_string(), self.writer_id.clone()),
                ]),
                properties: vec![(CHAIN_KEY.to_string(), json)],
                compact: self.maintenance.compact_now(attempt),
            };
            let compacting = append.compact;
            match append_pinned(&self.lake, &table, append).await {
                Ok(files) => {
                    crate::failpoint::hit("committer.after_catalog_commit")
                        .await
                        .map_err(|e| CommitError::Iceberg {
                            table: self.table_name.clone(),
                            context: "after the catalog commit",
                            source: iceberg::Error::new(iceberg::ErrorKind::Unexpected, e),
                        })?;
                    self.count("ok");
                    self.seq += 1;
                    if let Some(m) = &self.metrics {
                        m.commit_landed(
                            &self.table_name,
                            rows.len(),
                            started.elapsed().as_secs_f64(),
                        );
                    }
                    debug!(table = %self.table_name, rows = rows.len(), files, seq = self.seq, "derived commit");
                    self.maintenance
                        .after_commit(&self.lake, &self.ident, compacting, self.metrics.as_ref())
                        .await;
                    return Ok(CommitOutcome::Committed);
                }
                Err(AppendError::Prepare(super::append::WRITING_DATA_FILES, source)) => {
                    self.count("storage_error");
                    super::commit::storage_retry(
                        &self.table_name,
                        attempt,
                        20,
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
                Err(AppendError::Commit(e)) => {
                    // Conflict or unknown outcome: reload and decide again (our commit id tells
                    // us whether it landed). Never delete the files: they may be referenced.
                    self.count(if is_conflict(&e) {
                        "conflict"
                    } else {
                        "unknown"
                    });
                    if attempt == 20 {
                        return Err(CommitError::GaveUp {
                            table: self.table_name.clone(),
                            attempts: attempt,
                            source: e,
                        });
                    }
                    warn!(table = %self.table_name, attempt, error = %e, "derived commit did not land, deciding again");
                    backoff.sleep().await;
                }
            }
        }
        unreachable!("the loop returns on its last attempt")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_decision_table() {
        let at = |seq, id: &str| ChainState {
            seq,
            commit_id: id.into(),
            state: serde_json::Value::Null,
        };
        assert_eq!(decide_chain(&at(0, ""), 0, "a"), Decision::Commit);
        assert_eq!(decide_chain(&at(4, "x"), 4, "a"), Decision::Commit);
        assert_eq!(
            decide_chain(&at(5, "a"), 4, "a"),
            Decision::AlreadyCommitted
        );
        assert!(matches!(
            decide_chain(&at(5, "b"), 4, "a"),
            Decision::Fenced(_)
        ));
        assert!(matches!(
            decide_chain(&at(3, "a"), 4, "a"),
            Decision::Fenced(_)
        ));
        assert!(matches!(
            decide_chain(&at(7, "a"), 4, "a"),
            Decision::Fenced(_)
        ));
    }
}
