//! Handing a running lake over from the old stack's Spark job (`docs/migration.md`): read each
//! raw query's checkpoint and the epochs its Iceberg sink stamped on the table's snapshots,
//! decide where shopwatch starts ([`plan`]), and record that in the lake ([`apply`]) so that
//! `shopwatch run` continues exactly there. The KPI tables need nothing recorded: a KPI table
//! shopwatch has no state for is adopted at its newest window (`rollup::aggregator`).

pub mod checkpoint;
pub mod plan;

use std::collections::BTreeMap;
use std::path::Path;

use iceberg::table::Table;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::Catalog as _;

use crate::events::EventKind;
use crate::lake::commit::ledgers::{dead_letters_from_key, offsets_key, recorded_offsets};
use crate::lake::commit::offsets;
use crate::lake::Lake;
use checkpoint::Checkpoint;
pub use plan::{PartitionPlan, TopicPlan};

/// The summary keys Iceberg's Spark streaming sink stamps on every snapshot it commits.
pub const QUERY_ID: &str = "spark.sql.streaming.queryId";
pub const EPOCH_ID: &str = "spark.sql.streaming.epochId";

/// The old stack's raw queries: which table each feeds and its checkpoint's directory name
/// (`/tmp/spark_checkpoints_nessie/<name>`).
pub fn checkpoint_name(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Orders => "orders",
        EventKind::Clicks => "clicks",
        EventKind::Errors => "errors",
    }
}

/// Every epoch of `query_id` among the table's snapshots (the whole history, not only the
/// current one: a compaction or another writer may have committed since).
pub fn landed_epochs(table: &Table, query_id: &str) -> Vec<u64> {
    table
        .metadata()
        .snapshots()
        .filter_map(|s| {
            let props = &s.summary().additional_properties;
            (props.get(QUERY_ID).map(String::as_str) == Some(query_id))
                .then(|| props.get(EPOCH_ID)?.parse::<u64>().ok())
                .flatten()
        })
        .collect()
}

/// Plan the handover of one topic. `broker` is the retained range per partition, asked now.
/// Nothing is written; every problem found lands in the plan's `problems`.
pub async fn plan_topic(
    lake: &Lake,
    checkpoints: &Path,
    kind: EventKind,
    topic: &str,
    broker: Result<BTreeMap<i32, (i64, i64)>, String>,
) -> TopicPlan {
    let table_name = kind.raw_table();
    let dir = checkpoints.join(checkpoint_name(kind));
    let refused = |problem: String, query_id: String| TopicPlan {
        topic: topic.to_string(),
        table: table_name.to_string(),
        query_id,
        landed_epoch: None,
        how: String::new(),
        partitions: Vec::new(),
        problems: vec![problem],
        applied: false,
    };
    let checkpoint = match Checkpoint::read(&dir) {
        Ok(c) => c,
        Err(e) => return refused(format!("checkpoint: {e}"), String::new()),
    };
    let ident = lake.ident(table_name);
    let table = match lake.catalog.table_exists(&ident).await {
        Ok(true) => match lake.catalog.load_unpinned(&ident).await {
            Ok(t) => t,
            Err(e) => return refused(format!("loading {table_name}: {e}"), checkpoint.query_id),
        },
        Ok(false) => {
            return refused(
                format!("table {table_name} does not exist in the catalog: nothing to hand over (check lake.namespace)"),
                checkpoint.query_id,
            )
        }
        Err(e) => return refused(format!("asking the catalog for {table_name}: {e}"), checkpoint.query_id),
    };
    match recorded_offsets(&table, topic) {
        Ok(o) if !o.is_empty() => {
            let mut p = refused(
                format!(
                    "{table_name} already records shopwatch's offsets for {topic} ({}): the handover was applied; `shopwatch run` continues from the lake",
                    offsets::to_json(&o)
                ),
                checkpoint.query_id,
            );
            p.applied = true;
            return p;
        }
        Ok(_) => {}
        Err(e) => return refused(format!("{table_name}: {e}"), checkpoint.query_id),
    }
    let broker = match broker {
        Ok(b) => b,
        Err(e) => return refused(format!("broker: {e}"), checkpoint.query_id),
    };
    let landed = landed_epochs(&table, &checkpoint.query_id);
    let mut p = plan::plan(topic, table_name, &checkpoint, &landed, &broker);
    // Another query's epochs in the table: the checkpoint belongs to another table or job.
    let foreign: std::collections::BTreeSet<&str> = table
        .metadata()
        .snapshots()
        .filter_map(|s| {
            s.summary()
                .additional_properties
                .get(QUERY_ID)
                .map(String::as_str)
        })
        .filter(|q| *q != checkpoint.query_id)
        .collect();
    if landed.is_empty() && !foreign.is_empty() {
        p.problems.push(format!(
            "{table_name} was written by Spark query {}, but {} is query {}'s checkpoint",
            foreign.into_iter().collect::<Vec<_>>().join(", "),
            dir.display(),
            checkpoint.query_id
        ));
    }
    p
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{topic}: the plan is not clean ({}); nothing was recorded", .problems.join("; "))]
    NotClean {
        topic: String,
        problems: Vec<String>,
    },
    #[error("recording the start of {topic} in {table}: {source}")]
    Iceberg {
        topic: String,
        table: String,
        source: iceberg::Error,
    },
}

/// Refuse unless every plan is clean: a handover is all or nothing.
pub fn check_clean(plans: &[TopicPlan]) -> Result<(), ApplyError> {
    for p in plans {
        if !p.clean() {
            let mut problems = p.problems.clone();
            for part in &p.partitions {
                if part.skipped > 0 || part.reread > 0 {
                    problems.push(format!(
                        "partition {}: {} skipped, {} read again",
                        part.partition, part.skipped, part.reread
                    ));
                }
            }
            return Err(ApplyError::NotClean {
                topic: p.topic.clone(),
                problems,
            });
        }
    }
    Ok(())
}

/// Record each plan's start offsets in its raw table (the same properties a shopwatch commit
/// records: where the raw table continues, and that no dead letter below it is missing), so
/// `shopwatch run` continues exactly there. No snapshot, no data: one metadata change.
pub async fn apply(lake: &Lake, plans: &[TopicPlan]) -> Result<(), ApplyError> {
    check_clean(plans)?;
    for p in plans {
        let err = |source| ApplyError::Iceberg {
            topic: p.topic.clone(),
            table: p.table.clone(),
            source,
        };
        let table = lake
            .catalog
            .load_unpinned(&lake.ident(&p.table))
            .await
            .map_err(err)?;
        let json = offsets::to_json(&p.starts());
        let tx = Transaction::new(&table);
        let tx = tx
            .update_table_properties()
            .set(offsets_key(&p.topic), json.clone())
            .set(dead_letters_from_key(&p.topic), json.clone())
            .set(format!("shopwatch.handover.{}", p.topic), handover_note(p))
            .apply(tx)
            .map_err(err)?;
        tx.commit(lake.catalog.as_ref()).await.map_err(err)?;
        tracing::info!(topic = %p.topic, table = %p.table, starts = %json, "handover recorded");
    }
    Ok(())
}

/// What the table keeps about its handover (for whoever reads its properties later).
fn handover_note(p: &TopicPlan) -> String {
    serde_json::json!({
        "spark_query_id": p.query_id,
        "landed_epoch": p.landed_epoch,
        "at": chrono::Utc::now().to_rfc3339(),
    })
    .to_string()
}
