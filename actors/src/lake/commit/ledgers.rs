//! The two kinds of bookkeeping a table has, as ledgers of the one commit loop, and the thin
//! committers the actors hold: raw tables record Kafka offsets per partition (`offsets`),
//! rollup tables a numbered chain of their owner's state (`chain`).

use std::collections::HashMap;
use std::sync::Arc;

use iceberg::table::Table;
use uuid::Uuid;

use super::chain::{
    decide_chain, recorded_chain, this_writer, ChainState, Decision, Mover, CHAIN_KEY,
};
use super::offsets::{self, is_committed, merge_forward, split_by_partition, LedgerError};
use super::{CommitError, CommitHook, CommitOutcome, CommitReport, Committer, Ledger, Plan};
use super::{Offsets, Ranges};
use crate::events::Micros;
use crate::lake::adopt;
use crate::lake::catalog::Lake;
use crate::lake::io::writer::arrow_schema;
use crate::lake::maintenance::HygieneParams;
use crate::schema::{Encode, Rows, TableSpec};
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
    /// Shared: after the raw commit the same rows go to the rollup actors.
    pub rows: Arc<Rows>,
    /// Raw tables: per partition, the lowest offset of a dead letter still buffered (not yet
    /// in the dead-letter table); a partition without one has none buffered. Recorded with
    /// the offsets, so whoever takes the partition next re-reads only from there.
    pub dead_letters_from: Offsets,
}

pub fn offsets_key(topic: &str) -> String {
    format!("shopwatch.offsets.{topic}")
}

pub fn dead_letters_from_key(topic: &str) -> String {
    format!("shopwatch.dead-letters-from.{topic}")
}

/// What a table recorded for one topic.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recorded {
    pub offsets: Offsets,
    /// Raw tables: per partition, the offset below which every dead letter was committed when
    /// the raw table last moved that partition (empty for tables written before it existed,
    /// and for other tables).
    pub dead_letters_from: Offsets,
}

/// Per partition committed now (`ranges`), where dead letters may still be missing: the
/// lowest buffered one, or the range's end when none is buffered. Other partitions keep what
/// the table recorded.
pub fn next_dead_letters_from(recorded: &Offsets, ranges: &Ranges, buffered: &Offsets) -> Offsets {
    let mut next = recorded.clone();
    for (&p, &(_, end)) in ranges {
        next.insert(p, buffered.get(&p).map_or(end, |&o| o.min(end)));
    }
    next
}

/// Offsets recorded for `topic` in the table property (the source of truth: unlike snapshot
/// summaries it survives snapshot expiry and other engines' compactions).
pub fn recorded_offsets(table: &Table, topic: &str) -> Result<Offsets, LedgerError> {
    offsets_property(table, &offsets_key(topic))
}

/// Everything a raw (or the dead-letter) table recorded for `topic`.
pub fn recorded(table: &Table, topic: &str) -> Result<Recorded, LedgerError> {
    Ok(Recorded {
        offsets: recorded_offsets(table, topic)?,
        dead_letters_from: offsets_property(table, &dead_letters_from_key(topic))?,
    })
}

fn offsets_property(table: &Table, key: &str) -> Result<Offsets, LedgerError> {
    match table.metadata().properties().get(key) {
        None => Ok(Offsets::new()),
        Some(text) => offsets::from_json(key, text),
    }
}

fn encode(
    table_name: &str,
    table: &Table,
    rows: &dyn Encode,
    now: Micros,
) -> Result<Option<arrow_array::RecordBatch>, CommitError> {
    if rows.is_empty() {
        return Ok(None);
    }
    let schema_err = |source| CommitError::Iceberg {
        table: table_name.to_string(),
        context: "building arrow schema",
        source,
    };
    let arrow = |source| CommitError::Arrow {
        table: table_name.to_string(),
        source,
    };
    let schema = arrow_schema(table).map_err(schema_err)?;
    let ours =
        Arc::new(iceberg::arrow::schema_to_arrow_schema(&rows.spec().schema).map_err(schema_err)?);
    if adopt::same_layout(&ours, &schema) {
        return rows.encode(schema, now).map(Some).map_err(arrow);
    }
    // An adopted table (columns in another order, timestamptz, extra columns).
    let batch = rows.encode(ours, now).map_err(arrow)?;
    adopt::fit(&batch, schema).map(Some).map_err(arrow)
}

/// A raw or dead-letter batch against the offsets the table records.
struct OffsetLedger<'a> {
    table_name: &'a str,
    rule: OffsetRule,
    batch: &'a TableBatch,
    /// Partitions another writer got to first (Strict only), from the last plan.
    fenced: Offsets,
}

impl Ledger for OffsetLedger<'_> {
    fn plan(&mut self, table: &Table, attempt_id: Uuid, now: Micros) -> Result<Plan, CommitError> {
        let batch = self.batch;
        let corrupt = |source| CommitError::CorruptOffsets {
            table: self.table_name.to_string(),
            source,
        };
        let Recorded {
            offsets: committed,
            dead_letters_from,
        } = recorded(table, &batch.topic).map_err(corrupt)?;
        // Only a partial batch or the replay filter needs its own copy of the rows.
        let filtered;
        let (rows, ranges): (&Rows, &Ranges) = match self.rule {
            OffsetRule::Strict => {
                let split = split_by_partition(&committed, &batch.ranges).map_err(|source| {
                    CommitError::Fenced {
                        table: self.table_name.to_string(),
                        source,
                    }
                })?;
                self.fenced = split.fenced;
                if split.commit.is_empty() {
                    return Ok(Plan::Landed { offsets: committed });
                }
                if split.commit.len() == batch.ranges.len() {
                    (&batch.rows, &batch.ranges)
                } else {
                    let mut rows = (*batch.rows).clone();
                    rows.retain(|p, _| split.commit.contains_key(&p));
                    filtered = (rows, split.commit);
                    (&filtered.0, &filtered.1)
                }
            }
            OffsetRule::Filter => {
                let mut rows = (*batch.rows).clone();
                rows.retain(|p, o| !is_committed(&committed, p, o));
                let advances = batch
                    .ranges
                    .iter()
                    .any(|(p, (_, end))| committed.get(p).is_none_or(|c| c < end));
                if rows.is_empty() && !advances {
                    return Ok(Plan::Landed { offsets: committed });
                }
                filtered = (rows, batch.ranges.clone());
                (&filtered.0, &filtered.1)
            }
        };
        let new_offsets = merge_forward(&committed, ranges);
        let key = offsets_key(&batch.topic);
        let json = offsets::to_json(&new_offsets);
        let mut summary = HashMap::from([
            (key.clone(), json.clone()),
            ("shopwatch.commit-id".to_string(), attempt_id.to_string()),
        ]);
        let mut properties = vec![(key, json)];
        if self.rule == OffsetRule::Strict {
            // Moves with the offsets, in the same commit: a new owner of a partition reads
            // again only what was buffered for the dead-letter table, not its whole history.
            let from = next_dead_letters_from(&dead_letters_from, ranges, &batch.dead_letters_from);
            let (key, json) = (dead_letters_from_key(&batch.topic), offsets::to_json(&from));
            summary.insert(key.clone(), json.clone());
            properties.push((key, json));
        }
        Ok(Plan::Append {
            batch: encode(self.table_name, table, rows, now)?,
            rows: rows.len(),
            summary,
            properties,
            offsets: new_offsets,
            file_prefix: format!("{}-{attempt_id}", batch.topic),
        })
    }
}

/// A raw table's (or the dead-letter table's) committer.
pub struct TableCommitter {
    committer: Committer,
    rule: OffsetRule,
}

impl TableCommitter {
    pub async fn open(
        lake: Lake,
        spec: &TableSpec,
        rule: OffsetRule,
        hygiene: HygieneParams,
    ) -> Result<Self, CommitError> {
        let (committer, _) = Committer::open(lake, spec, hygiene).await?;
        Ok(TableCommitter { committer, rule })
    }

    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.committer.set_metrics(metrics);
        self
    }

    pub fn with_hook(mut self, hook: Arc<dyn CommitHook>) -> Self {
        self.committer.set_hook(hook);
        self
    }

    pub fn table_name(&self) -> &str {
        self.committer.table_name()
    }

    /// A maintenance round without a commit (the committer's timer).
    pub async fn idle_maintenance(&mut self) {
        self.committer.idle_maintenance().await;
    }

    pub async fn committed(&self, topic: &str) -> Result<Recorded, CommitError> {
        let table = self.committer.load().await?;
        recorded(&table, topic).map_err(|source| CommitError::CorruptOffsets {
            table: self.table_name().to_string(),
            source,
        })
    }

    /// Commit `batch` exactly once.
    pub async fn commit(&mut self, batch: TableBatch) -> Result<CommitReport, CommitError> {
        let table_name = self.committer.table_name().to_string();
        let mut ledger = OffsetLedger {
            table_name: &table_name,
            rule: self.rule,
            batch: &batch,
            fenced: Offsets::new(),
        };
        let mut report = self.committer.commit(&mut ledger).await?;
        if !ledger.fenced.is_empty() {
            if report.outcome == CommitOutcome::AlreadyCommitted && report.rows == 0 {
                // Nothing of ours landed now; say why rather than "already committed".
                let none_landed = batch
                    .ranges
                    .iter()
                    .all(|(p, _)| ledger.fenced.contains_key(p));
                if none_landed {
                    report.outcome = CommitOutcome::Fenced;
                }
            }
            report.fenced = ledger.fenced;
        }
        Ok(report)
    }
}

/// Rows of a rollup table and the owner's state, as the next link of the table's chain.
struct ChainLedger<'a> {
    table_name: &'a str,
    seq: &'a mut u64,
    /// Fixed across attempts: it is how we recognise our own landed commit.
    commit_id: &'a str,
    state: &'a serde_json::Value,
    rows: &'a dyn Encode,
}

impl Ledger for ChainLedger<'_> {
    fn plan(&mut self, table: &Table, attempt_id: Uuid, now: Micros) -> Result<Plan, CommitError> {
        let recorded = recorded_chain(table).map_err(|source| CommitError::CorruptOffsets {
            table: self.table_name.to_string(),
            source,
        })?;
        match decide_chain(&recorded, *self.seq, self.commit_id, this_writer()) {
            Decision::Commit => {}
            Decision::AlreadyCommitted => {
                return Ok(Plan::Landed {
                    offsets: Offsets::new(),
                })
            }
            Decision::Fenced { detail, by } => {
                return Err(CommitError::Deposed {
                    table: self.table_name.to_string(),
                    detail,
                    by_this_process: by == Mover::ThisProcess,
                })
            }
        }
        let next = ChainState {
            seq: *self.seq + 1,
            commit_id: self.commit_id.to_string(),
            writer: this_writer().to_string(),
            state: self.state.clone(),
        };
        let json = serde_json::to_string(&next).map_err(|e| CommitError::CorruptOffsets {
            table: self.table_name.to_string(),
            source: LedgerError::Unreadable {
                key: CHAIN_KEY.to_string(),
                detail: format!("encoding the state: {e}"),
            },
        })?;
        Ok(Plan::Append {
            batch: encode(self.table_name, table, self.rows, now)?,
            rows: self.rows.len(),
            summary: HashMap::from([
                ("shopwatch.derived-seq".to_string(), next.seq.to_string()),
                (
                    "shopwatch.commit-id".to_string(),
                    self.commit_id.to_string(),
                ),
            ]),
            properties: vec![(CHAIN_KEY.to_string(), json)],
            offsets: Offsets::new(),
            file_prefix: format!("rollup-{attempt_id}"),
        })
    }

    fn landed(&mut self) {
        *self.seq += 1;
    }
}

/// A rollup table's committer (KPI tables, alerts).
pub struct RollupCommitter {
    committer: Committer,
    seq: u64,
}

impl RollupCommitter {
    /// Open (creating the table if needed) and return the recorded state to resume from.
    pub async fn open(
        lake: Lake,
        spec: &TableSpec,
        hygiene: HygieneParams,
        metrics: Option<Metrics>,
    ) -> Result<(Self, ChainState), CommitError> {
        let (mut committer, table) = Committer::open(lake, spec, hygiene).await?;
        if let Some(m) = metrics {
            committer.set_metrics(m);
        }
        let recorded = recorded_chain(&table).map_err(|source| CommitError::CorruptOffsets {
            table: spec.name.to_string(),
            source,
        })?;
        Ok((
            RollupCommitter {
                committer,
                seq: recorded.seq,
            },
            recorded,
        ))
    }

    pub fn table_name(&self) -> &str {
        self.committer.table_name()
    }

    /// The table as last committed (for reading it back).
    pub async fn load(&self) -> Result<Table, CommitError> {
        self.committer.load().await
    }

    /// Append `rows` and record `state` as the next link of the chain, exactly once.
    pub async fn commit(
        &mut self,
        rows: &dyn Encode,
        state: serde_json::Value,
    ) -> Result<CommitOutcome, CommitError> {
        let table_name = self.committer.table_name().to_string();
        let commit_id = Uuid::now_v7().to_string();
        let mut ledger = ChainLedger {
            table_name: &table_name,
            seq: &mut self.seq,
            commit_id: &commit_id,
            state: &state,
            rows,
        };
        Ok(self.committer.commit(&mut ledger).await?.outcome)
    }
}

/// Rows of a shared append-only table (the operators' actions), identified by `append_id`:
/// any instance may append, and an attempt whose answer was lost is found by its id in the
/// snapshot summaries instead of being appended twice.
struct OnceLedger<'a> {
    table_name: &'a str,
    append_id: &'a str,
    rows: &'a dyn Encode,
}

const APPEND_ID: &str = "shopwatch.append-id";

impl Ledger for OnceLedger<'_> {
    fn plan(&mut self, table: &Table, attempt_id: Uuid, now: Micros) -> Result<Plan, CommitError> {
        let landed = table.metadata().snapshots().any(|s| {
            s.summary()
                .additional_properties
                .get(APPEND_ID)
                .map(String::as_str)
                == Some(self.append_id)
        });
        if landed {
            return Ok(Plan::Landed {
                offsets: Offsets::new(),
            });
        }
        Ok(Plan::Append {
            batch: encode(self.table_name, table, self.rows, now)?,
            rows: self.rows.len(),
            summary: HashMap::from([(APPEND_ID.to_string(), self.append_id.to_string())]),
            properties: Vec::new(),
            offsets: Offsets::new(),
            file_prefix: format!("append-{attempt_id}"),
        })
    }
}

/// Append `rows` to the table of `spec` (created if missing) exactly once.
pub async fn append_once(
    lake: Lake,
    spec: &TableSpec,
    hygiene: HygieneParams,
    append_id: &str,
    rows: &dyn Encode,
) -> Result<CommitOutcome, CommitError> {
    let (mut committer, _) = Committer::open(lake, spec, hygiene).await?;
    let mut ledger = OnceLedger {
        table_name: spec.name,
        append_id,
        rows,
    };
    Ok(committer.commit(&mut ledger).await?.outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letters_from_moves_with_the_committed_partitions_only() {
        let offs = |v: &[(i32, i64)]| -> Offsets { v.iter().copied().collect() };
        let ranges: Ranges = [(0, (10, 20)), (1, (5, 9))].into();
        // (recorded, buffered) → next
        let cases = [
            // Nothing buffered: the dead-letter side is done up to the new raw position.
            (offs(&[]), offs(&[]), offs(&[(0, 20), (1, 9)])),
            // A dead letter at 12 is buffered for partition 0: from there.
            (offs(&[(0, 3)]), offs(&[(0, 12)]), offs(&[(0, 12), (1, 9)])),
            // One buffered from before this batch (a re-read after a restart).
            (offs(&[(0, 8)]), offs(&[(0, 8)]), offs(&[(0, 8), (1, 9)])),
            // Partition 2 is not in this commit (another instance's, or idle): kept as is.
            (
                offs(&[(2, 40)]),
                offs(&[(2, 41)]),
                offs(&[(0, 20), (1, 9), (2, 40)]),
            ),
        ];
        for (recorded, buffered, want) in cases {
            assert_eq!(
                next_dead_letters_from(&recorded, &ranges, &buffered),
                want,
                "{recorded:?} {buffered:?}"
            );
        }
    }
}
