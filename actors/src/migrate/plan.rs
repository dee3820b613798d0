//! The exact handover decision for one raw table, pure: which epoch of the Spark query really
//! landed in the table (the table, not the checkpoint, says: the checkpoint can be a batch
//! ahead, its commit log a batch behind), that epoch's end offsets, and where shopwatch starts
//! on each partition the broker has, with what that skips or reads again (both 0 for a clean
//! handover; anything else is explained).

use std::collections::BTreeMap;

use serde::Serialize;

use super::checkpoint::Checkpoint;

/// One partition's handover.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PartitionPlan {
    pub partition: i32,
    /// Where Spark's last landed batch ended (exclusive), if Spark read this partition.
    pub spark_end: Option<i64>,
    /// Where shopwatch starts.
    pub start: i64,
    /// The broker's retained range when planned.
    pub low: i64,
    pub high: i64,
    /// Messages neither Spark stored nor shopwatch will read (deleted by retention).
    pub skipped: i64,
    /// Messages Spark stored that shopwatch reads again.
    pub reread: i64,
    pub note: String,
}

/// One raw table's handover.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TopicPlan {
    pub topic: String,
    pub table: String,
    pub query_id: String,
    /// The newest epoch of the query found in the table's snapshots.
    pub landed_epoch: Option<u64>,
    /// How the start was found, in a sentence.
    pub how: String,
    pub partitions: Vec<PartitionPlan>,
    /// What makes the handover unsafe; `migrate apply` refuses while there is any.
    pub problems: Vec<String>,
    /// The raw table already records shopwatch's offsets for the topic: handed over (or
    /// written by shopwatch from the start); the lake decides where reading continues.
    pub applied: bool,
}

impl TopicPlan {
    /// Nothing skipped, nothing read twice, nothing wrong.
    pub fn clean(&self) -> bool {
        self.problems.is_empty()
            && self
                .partitions
                .iter()
                .all(|p| p.skipped == 0 && p.reread == 0)
    }

    /// Start offset per partition.
    pub fn starts(&self) -> crate::lake::Offsets {
        self.partitions
            .iter()
            .map(|p| (p.partition, p.start))
            .collect()
    }
}

/// Decide the handover of `topic` (table `table`) from its Spark `checkpoint`, the epochs of
/// that query found in the table's snapshot summaries, and the broker's `[low, high)` per
/// partition.
pub fn plan(
    topic: &str,
    table: &str,
    checkpoint: &Checkpoint,
    landed: &[u64],
    broker: &BTreeMap<i32, (i64, i64)>,
) -> TopicPlan {
    let mut problems = Vec::new();
    let landed_epoch = landed.iter().copied().max();
    let newest_planned = checkpoint.planned.keys().next_back().copied();
    let newest_committed = checkpoint.committed.iter().next_back().copied();
    let (ends, how) = match landed_epoch {
        Some(e) => match checkpoint.planned.get(&e) {
            Some(o) => {
                let mut how = format!("epoch {e} is the newest of query {} in the table", checkpoint.query_id);
                if newest_planned.is_some_and(|n| n > e) {
                    how += &format!(
                        "; batch {} was planned but never landed: shopwatch reads it",
                        newest_planned.unwrap_or(e)
                    );
                }
                if newest_committed.is_none_or(|c| c < e) {
                    how += "; the commit log is behind the table (Spark stopped between the two)";
                }
                (Some(o.clone()), how)
            }
            None => {
                problems.push(format!(
                    "the table's newest epoch {e} has no offsets/{e} in {} (purged, or another query's checkpoint)",
                    checkpoint.dir.display()
                ));
                (None, String::new())
            }
        },
        // No snapshot of the query left: either Spark never landed a batch, or snapshot
        // expiry took them all. The checkpoint's own word is the fallback, said so.
        None => match newest_committed.and_then(|c| checkpoint.planned.get(&c).map(|o| (c, o))) {
            Some((c, o)) => (
                Some(o.clone()),
                format!(
                    "no snapshot of query {} is left in the table (expired?): using the checkpoint's newest finished batch {c}",
                    checkpoint.query_id
                ),
            ),
            None => match &checkpoint.initial {
                Some(o) => (
                    Some(o.clone()),
                    "Spark never finished a batch: starting where its first batch started".into(),
                ),
                None => {
                    problems.push(format!(
                        "no epoch of query {} landed in {table} and the checkpoint keeps no start",
                        checkpoint.query_id
                    ));
                    (None, String::new())
                }
            },
        },
    };
    let mut partitions = Vec::new();
    if let Some(ends) = ends {
        match ends.get(topic) {
            None => problems.push(format!(
                "the checkpoint reads {}, not {topic}",
                ends.keys().cloned().collect::<Vec<_>>().join(", ")
            )),
            Some(mine) => {
                for &p in mine.keys() {
                    if !broker.contains_key(&p) {
                        problems.push(format!(
                            "{topic}/{p}: Spark read it, the broker does not have it"
                        ));
                    }
                }
                for (&p, &(low, high)) in broker {
                    let spark_end = mine.get(&p).copied();
                    let (start, skipped, note) = match spark_end {
                        None => (
                            low,
                            0,
                            "Spark never read it: from the earliest retained".to_string(),
                        ),
                        Some(e) if e > high => {
                            problems.push(format!(
                                "{topic}/{p}: Spark ended at {e}, past the broker's newest offset {high} (another broker?)"
                            ));
                            (e, 0, "past the broker".into())
                        }
                        Some(e) if e < low => {
                            problems.push(format!(
                                "{topic}/{p}: records {e}..{low} were deleted by the broker before anyone stored them (Spark's failOnDataLoss=false hid it)"
                            ));
                            (e, low - e, "deleted by retention".into())
                        }
                        Some(e) => (e, 0, String::new()),
                    };
                    partitions.push(PartitionPlan {
                        partition: p,
                        spark_end,
                        start,
                        low,
                        high,
                        skipped,
                        reread: 0,
                        note,
                    });
                }
            }
        }
    }
    TopicPlan {
        topic: topic.into(),
        table: table.into(),
        query_id: checkpoint.query_id.clone(),
        landed_epoch,
        how,
        partitions,
        problems,
        applied: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::checkpoint::TopicOffsets;

    fn ends(v: &[(i32, i64)]) -> TopicOffsets {
        [("orders_topic".to_string(), v.iter().copied().collect())].into()
    }

    fn checkpoint(batches: &[(u64, &[(i32, i64)])], committed: &[u64]) -> Checkpoint {
        Checkpoint {
            dir: "/ck/orders".into(),
            query_id: "q".into(),
            planned: batches.iter().map(|(n, e)| (*n, ends(e))).collect(),
            committed: committed.iter().copied().collect(),
            initial: Some(ends(&[(0, 0), (1, 0)])),
        }
    }

    fn broker(v: &[(i32, i64, i64)]) -> BTreeMap<i32, (i64, i64)> {
        v.iter().map(|&(p, l, h)| (p, (l, h))).collect()
    }

    #[test]
    fn the_table_not_the_checkpoint_says_where_spark_stopped() {
        let b = broker(&[(0, 0, 100), (1, 0, 100)]);
        // (checkpoint batches, committed, epochs in the table) → starts, clean
        type Case<'a> = (
            &'a [(u64, &'a [(i32, i64)])],
            &'a [u64],
            &'a [u64],
            Option<Vec<i64>>,
            bool,
        );
        let cases: Vec<Case> = vec![
            // Batch 3 planned, not landed: start at epoch 2's end.
            (
                &[(2, &[(0, 40), (1, 30)]), (3, &[(0, 60), (1, 50)])],
                &[2],
                &[0, 1, 2],
                Some(vec![40, 30]),
                true,
            ),
            // The table has epoch 3, the commit log only 2: epoch 3 landed.
            (
                &[(2, &[(0, 40), (1, 30)]), (3, &[(0, 60), (1, 50)])],
                &[2],
                &[3],
                Some(vec![60, 50]),
                true,
            ),
            // Nothing of the query left in the table: the newest finished batch.
            (
                &[(2, &[(0, 40), (1, 30)]), (3, &[(0, 60), (1, 50)])],
                &[2],
                &[],
                Some(vec![40, 30]),
                true,
            ),
            // Spark never finished a batch: where the first one started.
            (&[(0, &[(0, 5), (1, 5)])], &[], &[], Some(vec![0, 0]), true),
            // The table's epoch has no offsets file any more: refused.
            (&[(7, &[(0, 40), (1, 30)])], &[7], &[5], None, false),
        ];
        for (batches, committed, landed, want, clean) in cases {
            let p = plan(
                "orders_topic",
                "orders_processed",
                &checkpoint(batches, committed),
                landed,
                &b,
            );
            let starts: Vec<i64> = p.partitions.iter().map(|x| x.start).collect();
            match &want {
                Some(w) => assert_eq!(&starts, w, "{landed:?}: {p:?}"),
                None => assert!(starts.is_empty(), "{p:?}"),
            }
            assert_eq!(p.clean(), clean, "{landed:?}: {p:?}");
            assert!(p.partitions.iter().all(|x| x.reread == 0));
        }
    }

    #[test]
    fn retention_gaps_foreign_topics_and_other_brokers_are_reported() {
        let c = checkpoint(&[(1, &[(0, 40), (1, 30)])], &[1]);
        // Partition 1's records 30..35 were deleted before anyone stored them.
        let p = plan(
            "orders_topic",
            "t",
            &c,
            &[1],
            &broker(&[(0, 0, 100), (1, 35, 100)]),
        );
        assert!(!p.clean());
        assert_eq!(p.partitions[1].skipped, 5);
        assert!(p.problems[0].contains("30..35"), "{:?}", p.problems);
        // Offsets past the broker's end: another broker.
        let p = plan(
            "orders_topic",
            "t",
            &c,
            &[1],
            &broker(&[(0, 0, 10), (1, 0, 100)]),
        );
        assert!(
            p.problems[0].contains("past the broker"),
            "{:?}",
            p.problems
        );
        // The checkpoint of another topic.
        let p = plan("clicks_topic", "t", &c, &[1], &broker(&[(0, 0, 100)]));
        assert!(
            p.problems[0].contains("reads orders_topic, not clicks_topic"),
            "{:?}",
            p.problems
        );
        assert!(p.partitions.is_empty());
        // A partition the broker added after Spark stopped: from its start, and clean.
        let p = plan(
            "orders_topic",
            "t",
            &c,
            &[1],
            &broker(&[(0, 0, 100), (1, 0, 100), (2, 0, 9)]),
        );
        assert!(p.clean(), "{p:?}");
        assert_eq!(p.partitions[2].start, 0);
        assert!(p.partitions[2].note.contains("never read"));
    }
}
