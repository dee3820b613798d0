//! Where a partition's partials stand, kept pure. An instance folds the batches it commits to
//! the raw tables into partials, partition by partition, and commits them with the same strict
//! offset ledger as the raw tables. What it did not fold (a delivery it missed, the span before
//! its first delivery, another writer's overlap) becomes a *gap* mark: the owner reads that
//! span from the raw table instead. So the partials table never claims more than it holds, and
//! no writer ever reads the raw tables back.

use crate::schema::partials::PartRow;

/// A partition's span since its last commit: `[start, end)`, folded from `open_from` on; the
/// sub-ranges before `open_from` are in `sealed` (partials and gap marks).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Chain {
    pub start: i64,
    pub end: i64,
    pub open_from: i64,
    pub sealed: Vec<PartRow>,
}

impl Chain {
    pub fn at(offset: i64) -> Self {
        Chain {
            start: offset,
            end: offset,
            open_from: offset,
            sealed: Vec::new(),
        }
    }
}

/// What a delivery of `[start, end)` does to a partition's chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing new (already folded).
    Skip,
    /// First sight: a chain begins at `start`.
    Begin,
    /// Fold the records from `from` (the chain's end) on.
    Extend { from: i64 },
    /// Records `[gap.0, gap.1)` never reached us: seal what is open, mark the gap, fold on.
    Seal { gap: (i64, i64) },
}

pub fn on_delivery(chain: Option<&Chain>, start: i64, end: i64) -> Step {
    match chain {
        None => Step::Begin,
        Some(c) if end <= c.end => Step::Skip,
        Some(c) if start <= c.end => Step::Extend { from: c.end },
        Some(c) => Step::Seal {
            gap: (c.end, start),
        },
    }
}

/// What a commit does with a chain, given the partials table's recorded offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Nothing folded since the last commit.
    Idle,
    /// Commit `[from, chain.end)`; `gap` is marked first when the table is behind the chain
    /// (a span this writer never folded: the owner reads it from the raw table).
    Commit { from: i64, gap: Option<(i64, i64)> },
    /// The table is past the chain's start (another writer covered it): drop the chain, the
    /// next delivery begins a new one.
    Drop,
}

pub fn on_commit(chain: &Chain, recorded: Option<i64>) -> Plan {
    if chain.end <= chain.start {
        return Plan::Idle;
    }
    match recorded {
        None => Plan::Commit {
            from: chain.start,
            gap: None,
        },
        Some(l) if l == chain.start => Plan::Commit { from: l, gap: None },
        Some(l) if l < chain.start => Plan::Commit {
            from: l,
            gap: Some((l, chain.start)),
        },
        Some(_) => Plan::Drop,
    }
}

/// How the owner reads one remote partition's partials, in order from where it stands.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Take {
    /// Partial ranges to merge, consecutive.
    pub ranges: Vec<(i64, i64)>,
    /// Where the merged ranges start: everything from the owner's position up to here is read
    /// from the raw table (gaps, or a range the position falls inside).
    pub from: i64,
    /// Where the delivery ends.
    pub to: i64,
}

/// From committed ranges `marks` (each `(start, end, gap)`) of one partition, what the owner
/// at `position` takes in one delivery: past any gap (and any range it stands inside), then
/// the consecutive partial ranges up to the next gap. `None` when nothing is beyond `position`.
pub fn take(marks: &[(i64, i64, bool)], position: i64) -> Option<Take> {
    let mut sorted: Vec<_> = marks.iter().filter(|m| m.1 > position).copied().collect();
    sorted.sort_unstable();
    let mut out = Take {
        ranges: Vec::new(),
        from: position,
        to: position,
    };
    for (start, end, gap) in sorted {
        let merging = !out.ranges.is_empty();
        if start == out.to && !gap {
            out.ranges.push((start, end));
            out.to = end;
            continue;
        }
        if merging {
            break; // the next gap: another delivery
        }
        // Before anything is merged, read from the raw table: a gap up to its end, a range the
        // position falls inside up to its end, a range not yet seen from its start (its
        // start is where the one the position falls inside ends).
        let raw_to = if !gap && start > out.to { start } else { end };
        out.from = raw_to;
        out.to = raw_to;
        if start > position && !gap && start == raw_to {
            out.ranges.push((start, end));
            out.to = end;
        }
    }
    (out.to > position).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(start: i64, end: i64) -> Chain {
        Chain {
            start,
            end,
            open_from: start,
            sealed: Vec::new(),
        }
    }

    #[test]
    fn deliveries_extend_skip_or_seal_a_gap() {
        let c = chain(10, 20);
        for (delivery, step) in [
            ((20, 30), Step::Extend { from: 20 }),
            ((15, 30), Step::Extend { from: 20 }), // overlap: only what is new
            ((12, 20), Step::Skip),
            ((25, 30), Step::Seal { gap: (20, 25) }),
        ] {
            assert_eq!(
                on_delivery(Some(&c), delivery.0, delivery.1),
                step,
                "{delivery:?}"
            );
        }
        assert_eq!(on_delivery(None, 40, 50), Step::Begin);
    }

    #[test]
    fn a_commit_follows_the_ledger_or_drops_what_another_writer_covered() {
        let c = chain(10, 20);
        for (recorded, plan) in [
            (
                None,
                Plan::Commit {
                    from: 10,
                    gap: None,
                },
            ),
            (
                Some(10),
                Plan::Commit {
                    from: 10,
                    gap: None,
                },
            ),
            (
                Some(4),
                Plan::Commit {
                    from: 4,
                    gap: Some((4, 10)),
                },
            ),
            (Some(15), Plan::Drop),
            (Some(20), Plan::Drop),
            (Some(30), Plan::Drop),
        ] {
            assert_eq!(on_commit(&c, recorded), plan, "{recorded:?}");
        }
        assert_eq!(on_commit(&chain(10, 10), Some(3)), Plan::Idle);
    }

    #[test]
    fn the_owner_takes_consecutive_partials_and_reads_gaps_from_raw() {
        let marks = [
            (0, 10, false),
            (10, 20, true),
            (20, 30, false),
            (30, 40, false),
            (40, 50, true),
            (50, 60, false),
        ];
        let t = |ranges: &[(i64, i64)], from, to| {
            Some(Take {
                ranges: ranges.to_vec(),
                from,
                to,
            })
        };
        for (position, want) in [
            (0, t(&[(0, 10)], 0, 10)),
            // Standing at a gap: raw up to 20, then two partial ranges.
            (10, t(&[(20, 30), (30, 40)], 20, 40)),
            // Inside a range: raw up to its end, then on.
            (25, t(&[(30, 40)], 30, 40)),
            (40, t(&[(50, 60)], 50, 60)),
            (55, t(&[], 60, 60)),
            (60, None),
        ] {
            assert_eq!(take(&marks, position), want, "at {position}");
        }
        // Only gaps beyond the position: raw up to their end.
        assert_eq!(take(&[(5, 9, true)], 2), t(&[], 9, 9));
        // The range the position falls inside was not read (the scan starts at the
        // position): raw up to the first range seen, then from it.
        assert_eq!(
            take(&[(30, 40, false), (40, 50, false)], 25),
            t(&[(30, 40), (40, 50)], 30, 50)
        );
        // A gap that ends the ledger, not adjacent to the position: raw through it.
        assert_eq!(take(&[(30, 40, true)], 25), t(&[], 40, 40));
    }
}
