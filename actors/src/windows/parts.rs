//! Partial windows: what one instance folds of the partitions it consumes, pane by pane, for
//! the rollup owner to merge ([`super::Engine::fold_part`]) instead of folding every event
//! again. A pane's events share every window they fall in, so merging a pane's partial is the
//! same as folding its events one by one; what only the owner knows (which windows it already
//! emitted: late or dropped) it decides at the merge.

use std::collections::BTreeMap;

use super::engine::{Acc, EngineParams, Fold, Input};
use crate::events::Micros;

/// One pane of one partition's range of offsets.
#[derive(Debug, Default)]
pub struct Part<A> {
    pub acc: A,
    /// Events folded into it.
    pub events: i64,
    /// Of them, stamped ahead of their ingestion clock by more than the tolerance.
    pub ahead: i64,
    /// The largest event time the watermark may trust (stamps capped at ingestion time plus
    /// the tolerance, as [`super::Engine::fold`] caps them).
    pub trusted: Micros,
    /// The newest event time as stamped (how current the values are).
    pub newest: Micros,
}

/// Per (input topic, partition): the panes folded since they were last taken.
pub struct Parts<A> {
    params: EngineParams,
    open: BTreeMap<(usize, i32), BTreeMap<Micros, Part<A>>>,
}

impl<A: Acc> Parts<A> {
    pub fn new(params: EngineParams) -> Self {
        Parts {
            params,
            open: BTreeMap::new(),
        }
    }

    /// Fold one event: `Skewed` (kept out, as the engine would), `Ahead` or `OnTime`. Whether
    /// it is late is the owner's to say.
    pub fn fold(&mut self, input: &Input<'_>) -> Fold {
        let Some(trusted) = self.params.trusted(input) else {
            return Fold::Skewed;
        };
        let pane = self.params.windowing.pane_of(input.event_time);
        let part = self
            .open
            .entry((input.topic, input.partition))
            .or_default()
            .entry(pane)
            .or_insert_with(|| Part {
                acc: A::default(),
                events: 0,
                ahead: 0,
                trusted,
                newest: input.event_time,
            });
        part.acc.add(&input.fact);
        part.events += 1;
        part.trusted = part.trusted.max(trusted);
        part.newest = part.newest.max(input.event_time);
        if trusted < input.event_time {
            part.ahead += 1;
            Fold::Ahead
        } else {
            Fold::OnTime
        }
    }

    /// The panes of one partition folded since the last take, by pane start.
    pub fn take(&mut self, topic: usize, partition: i32) -> BTreeMap<Micros, Part<A>> {
        self.open.remove(&(topic, partition)).unwrap_or_default()
    }
}
