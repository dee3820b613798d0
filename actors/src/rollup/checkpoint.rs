//! What a KPI table records with each commit, and where a KPI table starts that shopwatch has
//! not written yet (empty, or filled by another engine).

use std::collections::BTreeMap;

use iceberg::table::Table;
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::error::Error;
use crate::events::Micros;
use crate::lake::io::scan::{read_batches, Columns};
use crate::lake::Offsets;
use crate::schema::NO_SOURCE;

/// What a KPI table records with each commit.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AggCheckpoint {
    pub emitted_until: Option<Micros>,
    pub watermark: Option<Micros>,
    /// Per topic: the offsets from which the open windows can be rebuilt.
    pub replay: BTreeMap<String, Offsets>,
}

/// The state of a KPI table shopwatch has not written yet: an empty table starts from
/// nothing; a table another engine filled (the old stack's Spark job) is adopted at its newest
/// window, so no window it wrote is written again (`emitted_until` = the largest
/// `window_end` there). Either way the raw tables are read in full, rows without a Kafka
/// source included ([`NO_SOURCE`]): a window still open at the handover gets both engines'
/// events.
pub(super) async fn first_checkpoint(
    table: &Table,
    topics: &[String],
) -> Result<AggCheckpoint, Error> {
    let name = table.identifier().name().to_string();
    let batches = read_batches(table, Some(&["window_end"]), None).await?;
    let mut newest: Option<Micros> = None;
    for b in &batches {
        let ends = Columns::new(&name, b).ts("window_end")?;
        if let Some(m) = ends.iter().flatten().max() {
            newest = Some(newest.map_or(m, |n: Micros| n.max(m)));
        }
    }
    if let Some(until) = newest {
        info!(table = %name, until, "adopting a KPI table written by another engine: windows ending at or before `until` are not written again");
    }
    Ok(AggCheckpoint {
        emitted_until: newest,
        watermark: newest,
        replay: topics
            .iter()
            .map(|t| (t.clone(), [(NO_SOURCE, -1)].into()))
            .collect(),
    })
}
