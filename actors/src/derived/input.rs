//! Tracking what a derived actor has read from one topic, and filling gaps from the raw table.

use crate::events::EventKind;
use crate::lake::scan::read_raw;
use crate::lake::{Lake, Offsets, Ranges};
use crate::schema::Rows;

/// Rows of the raw table that precede `ranges` and were never delivered to us, with the
/// per-partition offsets they start from. `None` when there is no gap.
pub async fn gap_rows(
    lake: &Lake,
    kind: EventKind,
    positions: &Offsets,
    ranges: &Ranges,
) -> Result<Option<Rows>, ractor::ActorProcessingErr> {
    let gaps: Offsets = ranges
        .iter()
        .filter_map(|(p, (start, _))| {
            let pos = positions.get(p).copied().unwrap_or(0);
            (pos < *start).then_some((*p, pos))
        })
        .collect();
    if gaps.is_empty() {
        return Ok(None);
    }
    let table = lake
        .catalog
        .load_unpinned(&lake.ident(kind.raw_table()))
        .await?;
    let mut rows = read_raw(&table, kind, &gaps, false).await?;
    rows.retain(|p, o| {
        gaps.get(&p).is_some_and(|from| o >= *from)
            && ranges.get(&p).is_some_and(|(start, _)| o < *start)
    });
    Ok(Some(rows))
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
) -> Result<(Rows, Offsets), ractor::ActorProcessingErr> {
    let table = lake
        .catalog
        .load_unpinned(&lake.ident(kind.raw_table()))
        .await?;
    let recorded = crate::lake::commit::recorded_offsets(&table, topic)?;
    let from: Offsets = recorded
        .keys()
        .map(|p| (*p, positions.get(p).copied().unwrap_or(0)))
        .collect();
    let mut rows = read_raw(&table, kind, &from, false).await?;
    rows.retain(|p, o| recorded.get(&p).is_some_and(|end| o < *end) && is_new(positions, p, o));
    Ok((rows, recorded))
}
