//! Tracking what a rollup actor has read from one topic, and filling gaps from the raw table.

use crate::error::Error;
use crate::events::{EventKind, Micros};
use crate::handoff::source::{drained, SourceProgress};
use crate::lake::commit::recorded_offsets;
use crate::lake::io::scan::read_raw;
use crate::lake::{Lake, Offsets, Ranges};
use crate::schema::Rows;

/// Load a raw table without a pin (to read it).
pub async fn raw_table(lake: &Lake, kind: EventKind) -> Result<iceberg::table::Table, Error> {
    lake.catalog
        .load_unpinned(&lake.ident(kind.raw_table()))
        .await
        .map_err(Error::iceberg(format!("loading {}", kind.raw_table())))
}

/// The offsets a raw table has recorded for `topic`.
pub fn positions(table: &iceberg::table::Table, topic: &str) -> Result<Offsets, Error> {
    recorded_offsets(table, topic).map_err(|e| Error::Corrupt(format!("{topic}: {e}")))
}

/// Rows of the raw table that precede `ranges` and were never delivered to us, with the
/// per-partition offsets they start from. `None` when there is no gap.
pub async fn gap_rows(
    lake: &Lake,
    kind: EventKind,
    positions: &Offsets,
    ranges: &Ranges,
) -> Result<Option<Rows>, Error> {
    let gaps: Ranges = ranges
        .iter()
        .filter_map(|(p, (start, _))| {
            let pos = positions.get(p).copied().unwrap_or(0);
            (pos < *start).then_some((*p, (pos, *start)))
        })
        .collect();
    if gaps.is_empty() {
        return Ok(None);
    }
    raw_between(lake, kind, &gaps).await.map(Some)
}

/// Rows of the raw table in `spans` (per partition `[from, to)`).
pub async fn raw_between(lake: &Lake, kind: EventKind, spans: &Ranges) -> Result<Rows, Error> {
    let from: Offsets = spans.iter().map(|(p, (f, _))| (*p, *f)).collect();
    let table = raw_table(lake, kind).await?;
    let mut rows = read_raw(&table, kind, &from, false).await?;
    rows.retain(|p, o| spans.get(&p).is_some_and(|(f, t)| o >= *f && o < *t));
    Ok(rows)
}

/// How a delivery of merged partials meets an aggregator's positions, per partition: what it
/// reads from the raw table (`[position, start)` before a range, or `[position, end)` when it
/// already folded part of the range: a partial cannot be split), and whose partials it merges.
pub fn split_partials(positions: &Offsets, ranges: &Ranges) -> (Ranges, Vec<i32>) {
    let mut raw = Ranges::new();
    let mut merge = Vec::new();
    for (&p, &(start, end)) in ranges {
        let pos = positions.get(&p).copied().unwrap_or(0);
        if pos >= end {
            continue;
        }
        if pos <= start {
            if pos < start {
                raw.insert(p, (pos, start));
            }
            merge.push(p);
        } else {
            raw.insert(p, (pos, end));
        }
    }
    (raw, merge)
}

#[cfg(test)]
mod tests {
    #[test]
    fn merged_partials_meet_positions_table() {
        let positions = [(0, 10), (1, 20), (2, 25), (3, 40)].into();
        let ranges = [
            (0, (10, 20)),
            (1, (30, 40)),
            (2, (20, 30)),
            (3, (30, 40)),
            (4, (5, 9)),
        ]
        .into();
        let (raw, merge) = super::split_partials(&positions, &ranges);
        // 0: at the start, merged. 1: behind, raw up to the start, then merged. 2: inside, raw
        // to the end. 3: past it, nothing. 4: never seen, raw from the beginning.
        assert_eq!(merge, vec![0, 1, 4]);
        assert_eq!(raw, [(1, (20, 30)), (2, (25, 30)), (4, (0, 5))].into());
    }
}

/// True for records at or after our position (not seen yet).
pub fn is_new(positions: &Offsets, partition: i32, offset: i64) -> bool {
    positions.get(&partition).is_none_or(|pos| offset >= *pos)
}

pub fn advance(positions: &mut Offsets, ranges: &Ranges) {
    for (p, (_, end)) in ranges {
        let pos = positions.entry(*p).or_insert(*end);
        *pos = (*pos).max(*end);
    }
}

/// Rows the raw table has committed beyond `positions`, and the table's recorded offsets they
/// lead up to (for catching up after skipped deliveries).
pub async fn catch_up_rows(
    lake: &Lake,
    kind: EventKind,
    topic: &str,
    positions: &Offsets,
) -> Result<(Rows, Offsets), Error> {
    let table = raw_table(lake, kind).await?;
    let recorded = self::positions(&table, topic)?;
    let from: Offsets = recorded
        .keys()
        .map(|p| (*p, positions.get(p).copied().unwrap_or(0)))
        .collect();
    let mut rows = read_raw(&table, kind, &from, false).await?;
    rows.retain(|p, o| recorded.get(&p).is_some_and(|end| o < *end) && is_new(positions, p, o));
    Ok((rows, recorded))
}

/// An aggregator's view for the watermark: its inputs' topics (in the engine's order) and how
/// far it folded each; a silent partition is idle only when drained ([`drained`]).
pub struct Folded<'a> {
    pub topics: Vec<&'a str>,
    pub positions: &'a [Offsets],
    pub source: &'a SourceProgress,
    pub now: Micros,
}

impl crate::windows::clock::Drained for Folded<'_> {
    fn partitions(&self, topic: usize) -> Vec<i32> {
        self.topics
            .get(topic)
            .map(|name| self.source.partitions(name))
            .unwrap_or_default()
    }

    fn drained(&self, topic: usize, partition: Option<i32>) -> bool {
        let (Some(name), Some(folded)) = (self.topics.get(topic), self.positions.get(topic)) else {
            return true;
        };
        match partition {
            Some(p) => drained(folded.get(&p).copied(), self.source.get(name, p), self.now),
            None => {
                // Every partition the broker has, not only those someone confirmed.
                let known = self.source.partitions(name);
                !known.is_empty()
                    && known.iter().all(|p| {
                        drained(folded.get(p).copied(), self.source.get(name, *p), self.now)
                    })
            }
        }
    }
}
