//! The exactly-once commit decision, kept pure so it can be table-tested.
//!
//! Offsets are Kafka "next offset to read" positions (exclusive ends). A batch covers, per
//! partition, the half-open range `[start, end)`. The lake records, per partition, the end of
//! the last batch that landed.

use std::collections::BTreeMap;

/// Next offset per Kafka partition.
pub type Offsets = BTreeMap<i32, i64>;

/// What a batch covers per partition: `(start, end)`, start inclusive, end exclusive.
pub type Ranges = BTreeMap<i32, (i64, i64)>;

/// Outcome of comparing the lake's committed offsets with a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Every partition is at the batch start: append the batch.
    Commit,
    /// Every partition is already at the batch end: an earlier attempt landed.
    AlreadyCommitted,
    /// Anything else: another writer moved the offsets, or ours went backwards. Never retried.
    Fenced(String),
}

/// Strict chain rule for tables that own their topic's offsets (the raw tables): the lake must
/// be exactly at the batch start (commit) or exactly at its end (already landed).
pub fn decide_strict(committed: &Offsets, batch: &Ranges) -> Decision {
    let mut at_start = 0;
    let mut at_end = 0;
    for (&partition, &(start, end)) in batch {
        debug_assert!(start < end, "empty ranges are not part of a batch");
        match committed.get(&partition).copied() {
            // First ever commit for this partition: the consumer started at the broker's
            // earliest retained offset, there is nothing to compare with.
            None => at_start += 1,
            Some(c) if c == start => at_start += 1,
            Some(c) if c == end => at_end += 1,
            Some(c) => {
                return Decision::Fenced(format!(
                    "partition {partition}: lake is at offset {c}, batch covers [{start}, {end})"
                ))
            }
        }
    }
    match (at_start, at_end) {
        (_, 0) => Decision::Commit,
        (0, _) => Decision::AlreadyCommitted,
        _ => Decision::Fenced(format!(
            "batch is half committed ({at_end} partitions at end, {at_start} at start): lake {committed:?}, batch {batch:?}"
        )),
    }
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

pub fn from_json(text: &str) -> Result<Offsets, String> {
    let parsed: BTreeMap<String, i64> =
        serde_json::from_str(text).map_err(|e| format!("offsets are not a JSON map: {e}"))?;
    parsed
        .into_iter()
        .map(|(p, o)| {
            p.parse::<i32>()
                .map(|p| (p, o))
                .map_err(|_| format!("partition key {p:?} is not an integer"))
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
    fn decision_table() {
        use Decision::*;
        let fenced = |d: &Decision| matches!(d, Fenced(_));
        let cases: Vec<(Offsets, Ranges, fn(&Decision) -> bool, &str)> = vec![
            (
                offs(&[]),
                ranges(&[(0, 0, 10)]),
                |d| *d == Commit,
                "new table",
            ),
            (
                offs(&[(0, 10)]),
                ranges(&[(0, 10, 20)]),
                |d| *d == Commit,
                "chained",
            ),
            (
                offs(&[(0, 20)]),
                ranges(&[(0, 10, 20)]),
                |d| *d == AlreadyCommitted,
                "landed earlier (ambiguous outcome)",
            ),
            (
                offs(&[(0, 15)]),
                ranges(&[(0, 10, 20)]),
                fenced,
                "inside the range",
            ),
            (
                offs(&[(0, 5)]),
                ranges(&[(0, 10, 20)]),
                fenced,
                "lake behind the batch (gap)",
            ),
            (
                offs(&[(0, 30)]),
                ranges(&[(0, 10, 20)]),
                fenced,
                "lake ahead (another writer)",
            ),
            (
                offs(&[(0, 10), (1, 7)]),
                ranges(&[(0, 10, 20), (1, 7, 9)]),
                |d| *d == Commit,
                "two partitions",
            ),
            (
                offs(&[(0, 20), (1, 7)]),
                ranges(&[(0, 10, 20), (1, 7, 9)]),
                fenced,
                "half committed",
            ),
            (
                offs(&[(0, 20), (1, 9)]),
                ranges(&[(0, 10, 20), (1, 7, 9)]),
                |d| *d == AlreadyCommitted,
                "both landed",
            ),
            (
                offs(&[(0, 10), (2, 99)]),
                ranges(&[(0, 10, 20)]),
                |d| *d == Commit,
                "other partitions untouched",
            ),
            (
                offs(&[(0, 10)]),
                ranges(&[(0, 10, 20), (1, 0, 4)]),
                |d| *d == Commit,
                "new partition joins",
            ),
        ];
        for (committed, batch, ok, name) in cases {
            let d = decide_strict(&committed, &batch);
            assert!(ok(&d), "{name}: got {d:?}");
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
        assert_eq!(from_json(&to_json(&o)).unwrap(), o);
        assert!(from_json("{\"x\":1}").is_err());
        assert!(from_json("[]").is_err());
    }
}
