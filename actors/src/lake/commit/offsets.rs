//! The exactly-once commit decision, kept pure so it can be table-tested.
//!
//! Offsets are Kafka "next offset to read" positions (exclusive ends). A batch covers, per
//! partition, the half-open range `[start, end)`. The lake records, per partition, the end of
//! the last batch that landed.

use std::collections::BTreeMap;

/// Next offset per Kafka partition.
pub type Offsets = BTreeMap<i32, i64>;

/// What a table's bookkeeping can say that no commit may go on from.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// The lake is behind a batch: records would be skipped (offsets only move forward).
    #[error("partition {partition}: lake is at offset {lake}, behind the batch [{start}, {end}): records {lake}..{start} would be skipped")]
    Behind {
        partition: i32,
        lake: i64,
        start: i64,
        end: i64,
    },
    /// A recorded property that does not read back.
    #[error("{key}: {detail}")]
    Unreadable { key: String, detail: String },
}

/// What a batch covers per partition: `(start, end)`, start inclusive, end exclusive.
pub type Ranges = BTreeMap<i32, (i64, i64)>;

/// What the lake says about a raw batch, partition by partition. Several instances share a
/// topic's partitions through the consumer group, so a partition can change hands (or a
/// stopped instance wake up as a zombie) between our read and our commit: each partition of
/// the batch is decided on its own.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartitionSplit {
    /// The lake is at the range's start (or has never seen the partition): ours to append.
    pub commit: Ranges,
    /// The lake is exactly at the range's end: it landed already (an earlier attempt of ours
    /// whose answer we lost, or the same range from another instance).
    pub landed: Ranges,
    /// The lake is past the range's start: another instance (or a zombie) got there first.
    /// Our part is dropped; the value is where the lake is, to re-read from.
    pub fenced: Offsets,
}

/// Strict rule for tables that own their topic's offsets (the raw tables), per partition:
/// at the start, commit; at the end, landed; past the start, fenced. A lake *behind* the
/// start is a gap no writer can explain (offsets only move forward): an error, never retried.
pub fn split_by_partition(
    committed: &Offsets,
    batch: &Ranges,
) -> Result<PartitionSplit, LedgerError> {
    let mut split = PartitionSplit::default();
    for (&partition, &(start, end)) in batch {
        debug_assert!(start < end, "empty ranges are not part of a batch");
        match committed.get(&partition).copied() {
            // First ever commit for this partition: the consumer started at the broker's
            // earliest retained offset, there is nothing to compare with.
            None => {
                split.commit.insert(partition, (start, end));
            }
            Some(c) if c == start => {
                split.commit.insert(partition, (start, end));
            }
            Some(c) if c == end => {
                split.landed.insert(partition, (start, end));
            }
            Some(c) if c > start => {
                split.fenced.insert(partition, c);
            }
            Some(c) => {
                return Err(LedgerError::Behind {
                    partition,
                    lake: c,
                    start,
                    end,
                })
            }
        }
    }
    Ok(split)
}

/// High-water merge: offsets only ever move forward.
pub fn merge_forward(committed: &Offsets, batch: &Ranges) -> Offsets {
    let mut merged = committed.clone();
    for (&partition, &(_, end)) in batch {
        let slot = merged.entry(partition).or_insert(end);
        *slot = (*slot).max(end);
    }
    merged
}

/// True when a record at `offset` is already covered by the lake (replay filter for the
/// shared dead-letter table, whose commits precede the raw table's).
pub fn is_committed(committed: &Offsets, partition: i32, offset: i64) -> bool {
    committed.get(&partition).is_some_and(|&c| offset < c)
}

pub fn to_json(offsets: &Offsets) -> String {
    let as_strings: BTreeMap<String, i64> =
        offsets.iter().map(|(p, o)| (p.to_string(), *o)).collect();
    serde_json::to_string(&as_strings).unwrap_or_else(|_| "{}".into())
}

/// The offsets recorded under `key`.
pub fn from_json(key: &str, text: &str) -> Result<Offsets, LedgerError> {
    let unreadable = |detail: String| LedgerError::Unreadable {
        key: key.to_string(),
        detail,
    };
    let parsed: BTreeMap<String, i64> = serde_json::from_str(text)
        .map_err(|e| unreadable(format!("offsets are not a JSON map: {e}")))?;
    parsed
        .into_iter()
        .map(|(p, o)| {
            p.parse::<i32>()
                .map(|p| (p, o))
                .map_err(|_| unreadable(format!("partition key {p:?} is not an integer")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offs(v: &[(i32, i64)]) -> Offsets {
        v.iter().copied().collect()
    }
    fn ranges(v: &[(i32, i64, i64)]) -> Ranges {
        v.iter().map(|&(p, s, e)| (p, (s, e))).collect()
    }

    #[test]
    fn partition_split_table() {
        struct Case {
            name: &'static str,
            lake: Offsets,
            batch: Ranges,
            commit: Vec<i32>,
            landed: Vec<i32>,
            fenced: Offsets,
        }
        let case = |name, lake, batch, commit: &[i32], landed: &[i32], fenced| Case {
            name,
            lake,
            batch,
            commit: commit.to_vec(),
            landed: landed.to_vec(),
            fenced,
        };
        let cases = vec![
            case(
                "new table",
                offs(&[]),
                ranges(&[(0, 0, 10)]),
                &[0],
                &[],
                offs(&[]),
            ),
            case(
                "chained",
                offs(&[(0, 10)]),
                ranges(&[(0, 10, 20)]),
                &[0],
                &[],
                offs(&[]),
            ),
            case(
                "landed earlier (ambiguous outcome)",
                offs(&[(0, 20)]),
                ranges(&[(0, 10, 20)]),
                &[],
                &[0],
                offs(&[]),
            ),
            case(
                "another instance got inside the range",
                offs(&[(0, 15)]),
                ranges(&[(0, 10, 20)]),
                &[],
                &[],
                offs(&[(0, 15)]),
            ),
            case(
                "another instance is past the range (we are the zombie)",
                offs(&[(0, 30)]),
                ranges(&[(0, 10, 20)]),
                &[],
                &[],
                offs(&[(0, 30)]),
            ),
            case(
                "two partitions",
                offs(&[(0, 10), (1, 7)]),
                ranges(&[(0, 10, 20), (1, 7, 9)]),
                &[0, 1],
                &[],
                offs(&[]),
            ),
            case(
                "one landed, one ours",
                offs(&[(0, 20), (1, 7)]),
                ranges(&[(0, 10, 20), (1, 7, 9)]),
                &[1],
                &[0],
                offs(&[]),
            ),
            case(
                "one fenced, one ours: only the fenced part is dropped",
                offs(&[(0, 12), (1, 7)]),
                ranges(&[(0, 10, 20), (1, 7, 9)]),
                &[1],
                &[],
                offs(&[(0, 12)]),
            ),
            case(
                "both landed",
                offs(&[(0, 20), (1, 9)]),
                ranges(&[(0, 10, 20), (1, 7, 9)]),
                &[],
                &[0, 1],
                offs(&[]),
            ),
            case(
                "other partitions untouched",
                offs(&[(0, 10), (2, 99)]),
                ranges(&[(0, 10, 20)]),
                &[0],
                &[],
                offs(&[]),
            ),
            case(
                "new partition joins",
                offs(&[(0, 10)]),
                ranges(&[(0, 10, 20), (1, 0, 4)]),
                &[0, 1],
                &[],
                offs(&[]),
            ),
        ];
        for c in cases {
            let split =
                split_by_partition(&c.lake, &c.batch).unwrap_or_else(|e| panic!("{}: {e}", c.name));
            let keys = |r: &Ranges| r.keys().copied().collect::<Vec<_>>();
            assert_eq!(keys(&split.commit), c.commit, "{}: commit", c.name);
            assert_eq!(keys(&split.landed), c.landed, "{}: landed", c.name);
            assert_eq!(split.fenced, c.fenced, "{}: fenced", c.name);
            for (p, r) in &split.commit {
                assert_eq!(
                    c.batch.get(p),
                    Some(r),
                    "{}: ranges kept as they were",
                    c.name
                );
            }
        }
        // A lake behind the batch is a gap: an error, whatever else the batch holds.
        for (lake, batch) in [
            (offs(&[(0, 5)]), ranges(&[(0, 10, 20)])),
            (offs(&[(0, 10), (1, 0)]), ranges(&[(0, 10, 20), (1, 3, 4)])),
        ] {
            let err = split_by_partition(&lake, &batch).unwrap_err();
            assert!(matches!(err, LedgerError::Behind { .. }), "{err}");
            assert!(err.to_string().contains("behind the batch"), "{err}");
        }
    }

    #[test]
    fn merge_never_moves_backwards() {
        let merged = merge_forward(
            &offs(&[(0, 50), (1, 3)]),
            &ranges(&[(0, 10, 20), (1, 3, 8), (2, 0, 1)]),
        );
        assert_eq!(merged, offs(&[(0, 50), (1, 8), (2, 1)]));
    }

    #[test]
    fn replay_filter() {
        let c = offs(&[(0, 10)]);
        assert!(is_committed(&c, 0, 9));
        assert!(!is_committed(&c, 0, 10));
        assert!(!is_committed(&c, 1, 0));
    }

    #[test]
    fn json_round_trip_and_errors() {
        let o = offs(&[(0, 1), (12, 99)]);
        assert_eq!(from_json("k", &to_json(&o)).unwrap(), o);
        assert!(matches!(
            from_json("k", "{\"x\":1}"),
            Err(LedgerError::Unreadable { .. })
        ));
        assert!(from_json("k", "[]").is_err());
    }
}
