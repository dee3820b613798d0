//! The owner's read of the partials table: per remote partition, the committed ranges beyond
//! where it stands and the partial rows of those it can merge ([`super::chain::take`]).

use std::collections::{BTreeMap, BTreeSet};

use iceberg::expr::Reference;
use iceberg::spec::Datum;

use super::chain::{take, Take};
use super::GAP;
use crate::error::Error;
use crate::lake::io::scan::read_batches;
use crate::lake::{Lake, Offsets};
use crate::schema::partials::{self, PartRow, PARTIALS_TABLE};

pub async fn table(lake: &Lake) -> Result<iceberg::table::Table, Error> {
    lake.catalog
        .load_unpinned(&lake.ident(PARTIALS_TABLE))
        .await
        .map_err(Error::iceberg(format!("loading {PARTIALS_TABLE}")))
}

/// What the owner takes of `topic`'s partitions `from` (partition → where it stands).
#[derive(Debug, Default)]
pub struct Taken {
    pub takes: BTreeMap<i32, Take>,
    /// The KPI rows of the taken ranges.
    pub rows: Vec<PartRow>,
}

pub async fn read(
    table: &iceberg::table::Table,
    topic: &str,
    from: &Offsets,
) -> Result<Taken, Error> {
    let Some(floor) = from.values().min().copied() else {
        return Ok(Taken::default());
    };
    let filter = Reference::new("topic")
        .equal_to(Datum::string(topic))
        .and(Reference::new("end_offset").greater_than(Datum::long(floor)));
    let batches = read_batches(table, None, Some(filter)).await?;
    let mut rows = Vec::new();
    for b in &batches {
        rows.extend(
            partials::decode(b)
                .map_err(|e| Error::Corrupt(format!("{PARTIALS_TABLE}: {e}")))?
                .into_iter()
                .filter(|r| from.get(&r.partition).is_some_and(|f| r.end_offset > *f)),
        );
    }
    let mut marks: BTreeMap<i32, Vec<(i64, i64, bool)>> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.is_mark()) {
        marks
            .entry(r.partition)
            .or_default()
            .push((r.offset, r.end_offset, r.events == GAP));
    }
    let mut out = Taken::default();
    for (p, m) in marks {
        if let Some(t) = from.get(&p).and_then(|f| take(&m, *f)) {
            out.takes.insert(p, t);
        }
    }
    let merged: BTreeSet<(i32, i64, i64)> = out
        .takes
        .iter()
        .flat_map(|(p, t)| t.ranges.iter().map(move |(s, e)| (*p, *s, *e)))
        .collect();
    out.rows = rows
        .into_iter()
        .filter(|r| !r.is_mark() && merged.contains(&(r.partition, r.offset, r.end_offset)))
        .collect();
    Ok(out)
}
