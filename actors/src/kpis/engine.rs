//! A KPI's window engine behind one object-safe trait, so the aggregator actor holds any KPI
//! without a match over kinds.

use std::collections::BTreeMap;

use super::{KpiDef, KpiRow};
use crate::events::Micros;
use crate::schema::partials::PartRow;
use crate::schema::Rows;
use crate::windows::clock::{Drained, Holding};
use crate::windows::{Engine, EngineParams, Fact, Fold, Input, Part, Parts};

/// Counts from folding one batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FoldStats {
    pub folded: u64,
    pub late: u64,
    pub dropped: u64,
    /// Folded, but ahead of the ingestion clock by more than the tolerance.
    pub ahead: u64,
    pub skewed: u64,
}

impl FoldStats {
    pub fn add(&mut self, s: FoldStats) {
        self.folded += s.folded;
        self.late += s.late;
        self.dropped += s.dropped;
        self.ahead += s.ahead;
        self.skewed += s.skewed;
    }

    /// Count one event's outcome.
    pub fn count(&mut self, fold: Fold) {
        match fold {
            Fold::OnTime => self.folded += 1,
            Fold::Ahead => {
                self.folded += 1;
                self.ahead += 1
            }
            Fold::Late => {
                self.folded += 1;
                self.late += 1
            }
            Fold::Dropped => {
                self.late += 1;
                self.dropped += 1
            }
            Fold::Skewed => self.skewed += 1,
        }
    }
}

/// Windows one `advance` closed.
#[derive(Debug)]
pub struct Emitted {
    /// Every window ending at or before this is final.
    pub until: Micros,
    pub rows: Vec<KpiRow>,
}

pub trait KpiEngine: Send {
    fn restore(&mut self, emitted_until: Option<Micros>, watermark: Option<Micros>);
    fn emitted_until(&self) -> Option<Micros>;
    fn watermark(&self) -> Option<Micros>;
    fn params(&self) -> EngineParams;
    /// Per (input, partition): the smallest offset still needed to rebuild the open windows.
    fn replay_offsets(&self) -> BTreeMap<(usize, i32), i64>;
    /// Fold the rows of input `topic` whose (partition, offset) passes `keep`.
    fn fold_rows(
        &mut self,
        topic: usize,
        rows: &Rows,
        now: Micros,
        keep: &dyn Fn(i32, i64) -> bool,
    ) -> FoldStats;
    /// Merge the partials other instances committed (`rows` of input `topic`, this KPI's and
    /// passing `keep`); an accumulator that does not read back is an error, never skipped.
    fn fold_parts(
        &mut self,
        topic: usize,
        rows: &[PartRow],
        now: Micros,
        keep: &dyn Fn(i32, i64) -> bool,
    ) -> Result<FoldStats, String>;
    /// Fold rows read from Kafka but not yet committed into the preview panes (provisional
    /// values only: they close nothing and are forgotten by [`KpiEngine::clear_ahead`]).
    fn fold_ahead(&mut self, topic: usize, rows: &Rows, keep: &dyn Fn(i32, i64) -> bool);
    fn clear_ahead(&mut self);
    /// The newest event time folded, previews included.
    fn newest_event(&self) -> Option<Micros>;
    /// Close what the watermark passed.
    fn advance(&mut self, now: Micros, source: &dyn Drained) -> Option<Emitted>;
    /// What holds the watermark back (for the log when windows stop closing).
    fn holding(&self, now: Micros, source: &dyn Drained) -> Option<Holding>;
    /// Running values of the open windows (provisional).
    fn open_rows(&self) -> Vec<KpiRow>;
}

/// One pane of partial windows, serialized for the partials table.
#[derive(Clone, Debug, PartialEq)]
pub struct PartOut {
    pub pane: Micros,
    pub events: i64,
    pub ahead: i64,
    pub trusted: Micros,
    pub newest: Micros,
    pub acc: String,
}

impl PartOut {
    /// Its row in the partials table: `kpi`'s pane of `partition` of `topic`, from the
    /// offsets `[range.0, range.1)`.
    pub fn row(self, kpi: &str, topic: &str, partition: i32, range: (i64, i64)) -> PartRow {
        PartRow {
            kpi: kpi.into(),
            topic: topic.into(),
            partition,
            offset: range.0,
            end_offset: range.1,
            pane_start: self.pane,
            events: self.events,
            ahead: self.ahead,
            trusted: self.trusted,
            newest: self.newest,
            acc: self.acc,
        }
    }
}

/// What an instance folds of the partitions it consumes, for one KPI (`windows::parts`).
pub trait KpiParts: Send {
    /// Fold the rows of input `topic` passing `keep` (folded, ahead and skewed counted).
    fn fold_rows(
        &mut self,
        topic: usize,
        rows: &Rows,
        keep: &dyn Fn(i32, i64) -> bool,
    ) -> FoldStats;
    /// The panes of one partition folded since the last take.
    fn take(&mut self, topic: usize, partition: i32) -> Result<Vec<PartOut>, String>;
}

pub(super) struct TypedParts<K: KpiDef> {
    parts: Parts<K::Acc>,
}

impl<K: KpiDef> TypedParts<K> {
    pub(super) fn new(params: EngineParams) -> Self {
        TypedParts {
            parts: Parts::new(params),
        }
    }
}

impl<K: KpiDef> KpiParts for TypedParts<K> {
    fn fold_rows(
        &mut self,
        topic: usize,
        rows: &Rows,
        keep: &dyn Fn(i32, i64) -> bool,
    ) -> FoldStats {
        let mut stats = FoldStats::default();
        let parts = &mut self.parts;
        each_input(topic, rows, keep, |input| stats.count(parts.fold(&input)));
        stats
    }

    fn take(&mut self, topic: usize, partition: i32) -> Result<Vec<PartOut>, String> {
        self.parts
            .take(topic, partition)
            .into_iter()
            .map(|(pane, p)| {
                let acc = serde_json::to_string(&p.acc)
                    .map_err(|e| format!("{}: encoding a partial: {e}", K::NAME))?;
                Ok(PartOut {
                    pane,
                    events: p.events,
                    ahead: p.ahead,
                    trusted: p.trusted,
                    newest: p.newest,
                    acc,
                })
            })
            .collect()
    }
}

pub(super) struct Typed<K: KpiDef> {
    engine: Engine<K::Acc>,
}

impl<K: KpiDef> Typed<K> {
    pub(super) fn new(params: EngineParams) -> Self {
        Typed {
            engine: Engine::new(params, K::INPUTS.len()),
        }
    }
}

fn rows_of<K: KpiDef>(
    windows: Vec<(Micros, Micros, Vec<<K::Acc as crate::windows::Acc>::Row>)>,
) -> Vec<KpiRow> {
    windows
        .into_iter()
        .flat_map(|(_, _, rows)| rows.iter().map(K::row).collect::<Vec<_>>())
        .collect()
}

/// Every row of input `topic` whose (partition, offset) passes `keep`, as an engine input.
fn each_input(
    topic: usize,
    rows: &Rows,
    keep: &dyn Fn(i32, i64) -> bool,
    mut f: impl FnMut(Input<'_>),
) {
    let mut one = |s: &crate::schema::Source, event_time: Micros, fact: Fact<'_>| {
        if keep(s.partition, s.offset) {
            f(Input {
                topic,
                partition: s.partition,
                offset: s.offset,
                event_time,
                ingested_at: s.ingested_at,
                fact,
            })
        }
    };
    match rows {
        Rows::Orders(v) => v
            .iter()
            .for_each(|(s, o)| one(&s, o.order_ts, Fact::Order(&o))),
        Rows::Clicks(v) => v
            .iter()
            .for_each(|(s, c)| one(&s, c.click_ts, Fact::Click(&c))),
        Rows::Errors(v) => v
            .iter()
            .for_each(|(s, e)| one(&s, e.error_ts, Fact::Error(&e))),
        // Dead letters carry no event a KPI could count.
        Rows::DeadLetters(_) | Rows::Partials(..) => {}
    }
}

impl<K: KpiDef> KpiEngine for Typed<K> {
    fn restore(&mut self, emitted_until: Option<Micros>, watermark: Option<Micros>) {
        self.engine.restore(emitted_until, watermark)
    }
    fn emitted_until(&self) -> Option<Micros> {
        self.engine.emitted_until()
    }
    fn watermark(&self) -> Option<Micros> {
        self.engine.watermark()
    }
    fn holding(&self, now: Micros, source: &dyn Drained) -> Option<Holding> {
        self.engine.holding(now, source)
    }
    fn params(&self) -> EngineParams {
        self.engine.params()
    }
    fn replay_offsets(&self) -> BTreeMap<(usize, i32), i64> {
        self.engine.replay_offsets()
    }

    fn fold_rows(
        &mut self,
        topic: usize,
        rows: &Rows,
        now: Micros,
        keep: &dyn Fn(i32, i64) -> bool,
    ) -> FoldStats {
        let mut stats = FoldStats::default();
        let engine = &mut self.engine;
        each_input(topic, rows, keep, |input| {
            stats.count(engine.fold(&input, now))
        });
        stats
    }

    fn fold_parts(
        &mut self,
        topic: usize,
        rows: &[PartRow],
        now: Micros,
        keep: &dyn Fn(i32, i64) -> bool,
    ) -> Result<FoldStats, String> {
        let mut stats = FoldStats::default();
        for r in rows {
            if &*r.kpi != K::NAME || !keep(r.partition, r.offset) {
                continue;
            }
            let acc: K::Acc = serde_json::from_str(&r.acc).map_err(|e| {
                format!(
                    "{}: the partial of pane {} (partition {}, offsets {}..{}) does not read back: {e}",
                    K::NAME, r.pane_start, r.partition, r.offset, r.end_offset
                )
            })?;
            // Only the ledger's gap mark (a row of its own kind, skipped above) is negative.
            if r.events < 0 || r.ahead < 0 {
                return Err(format!(
                    "{}: the partial of pane {} (partition {}, offsets {}..{}) counts {} events, {} ahead: never negative",
                    K::NAME, r.pane_start, r.partition, r.offset, r.end_offset, r.events, r.ahead
                ));
            }
            let part = Part {
                acc,
                events: r.events,
                ahead: r.ahead,
                trusted: r.trusted,
                newest: r.newest,
            };
            let n = r.events as u64;
            match self
                .engine
                .fold_part(topic, r.partition, r.offset, r.pane_start, part, now)
            {
                Fold::Dropped => {
                    stats.late += n;
                    stats.dropped += n;
                }
                Fold::Late => {
                    stats.folded += n;
                    stats.late += n;
                    stats.ahead += r.ahead as u64;
                }
                _ => {
                    stats.folded += n;
                    stats.ahead += r.ahead as u64;
                }
            }
        }
        Ok(stats)
    }

    fn fold_ahead(&mut self, topic: usize, rows: &Rows, keep: &dyn Fn(i32, i64) -> bool) {
        let engine = &mut self.engine;
        each_input(topic, rows, keep, |input| engine.fold_ahead(&input));
    }

    fn clear_ahead(&mut self) {
        self.engine.clear_ahead()
    }

    fn newest_event(&self) -> Option<Micros> {
        self.engine.newest_event()
    }

    fn advance(&mut self, now: Micros, source: &dyn Drained) -> Option<Emitted> {
        let em = self.engine.advance_with(now, source)?;
        Some(Emitted {
            until: em.until,
            rows: rows_of::<K>(em.windows),
        })
    }

    fn open_rows(&self) -> Vec<KpiRow> {
        rows_of::<K>(self.engine.open_windows())
    }
}
