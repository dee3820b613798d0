//! The window engine of one KPI: folds events into panes, closes windows once the watermark
//! passes their end, and says from which source offsets its open state can be rebuilt.
//!
//! Replay rule: an event is folded into every window containing it that has not been emitted
//! yet (`end > emitted_until`). Emission moves `emitted_until` forward only. Folding therefore
//! depends on the emitted boundary and not on when the event arrived, which is what makes a
//! rebuild from `replay_offsets()` reproduce the open windows exactly.

use std::collections::{BTreeMap, BTreeSet};

use super::clock::{ClockParams, Drained, Holding, Watermark};
use super::lattice::Windowing;
use crate::events::{Click, ErrorEvent, Micros, Order};

/// The event a KPI folds, borrowed from the typed row: each accumulator takes what it needs.
#[derive(Clone, Copy, Debug)]
pub enum Fact<'a> {
    Order(&'a Order<'a>),
    Click(&'a Click<'a>),
    Error(&'a ErrorEvent<'a>),
}

/// One event as the engine sees it.
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    /// Index of the source topic among the KPI's inputs.
    pub topic: usize,
    pub partition: i32,
    pub offset: i64,
    pub event_time: Micros,
    /// Processing time when the record was read (stored in the raw table, so replays decide
    /// clock skew exactly as the first pass did).
    pub ingested_at: Micros,
    pub fact: Fact<'a>,
}

/// A pane accumulator; a window's rows are computed from its panes. Mergeable and
/// serializable: an instance folds the events it consumed into per-pane partials
/// ([`super::parts`]) and the rollup owner merges them (`merge(a, b)` must equal having added
/// `b`'s events to `a`).
pub trait Acc: Default + serde::Serialize + serde::de::DeserializeOwned {
    type Row;
    fn add(&mut self, fact: &Fact<'_>);
    fn merge(&mut self, other: Self);
    /// Rows of the window `[start, end)` made of `panes` (empty panes are not passed). Panes
    /// are a multiset: a provisional window passes a pane start's committed pane and its
    /// preview pane side by side, so rows must not depend on how events split across panes.
    fn window_rows(panes: &[&Self], start: Micros, end: Micros) -> Vec<Self::Row>;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EngineParams {
    pub windowing: Windowing,
    pub clock: ClockParams,
    /// Events further than this ahead of their ingestion time are kept out of windows.
    pub max_skew: Micros,
    /// The watermark never runs ahead of an event's ingestion time plus this: a producer
    /// with a fast clock cannot close anyone's window early.
    pub clock_tolerance: Micros,
}

impl EngineParams {
    /// How far an event may move the watermark: `None` when it is too far ahead of its
    /// ingestion clock to count at all (skewed); else its stamp, capped at the ingestion time
    /// plus the tolerance. A stamp ahead of the clock counts where it says, but may push the
    /// watermark no further than the clock: otherwise one fast producer closes every window
    /// and the on-time events after it are dropped as late. Rows another engine wrote before
    /// the handover (no Kafka source, no ingestion time) count where they fall.
    pub fn trusted(&self, input: &Input<'_>) -> Option<Micros> {
        if input.partition == crate::schema::NO_SOURCE {
            return Some(input.event_time);
        }
        if input.event_time > input.ingested_at.saturating_add(self.max_skew) {
            return None;
        }
        Some(
            input
                .event_time
                .min(input.ingested_at.saturating_add(self.clock_tolerance)),
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fold {
    /// Folded into every window containing it.
    OnTime,
    /// Missed at least one already emitted window; folded into the still open ones.
    Late,
    /// Every window containing it was already emitted: kept in the raw table only.
    Dropped,
    /// Ahead of its ingestion time by more than the clock tolerance: folded into its
    /// windows, but it moved the watermark only as far as ingestion time + tolerance.
    Ahead,
    /// Too far ahead of the clock: excluded from windows and from the watermark.
    Skewed,
}

impl Fold {
    pub fn is_late(self) -> bool {
        matches!(self, Fold::Late | Fold::Dropped)
    }
}

struct Pane<A> {
    acc: A,
    /// Smallest source offset folded into this pane, per (topic, partition).
    min_offset: BTreeMap<(usize, i32), i64>,
}

/// Windows closed by one `advance`.
#[derive(Debug)]
pub struct Emission<R> {
    /// Every window with `end <= until` is now final.
    pub until: Micros,
    /// Closed windows that had data, by start, with their rows.
    pub windows: Vec<(Micros, Micros, Vec<R>)>,
}

pub struct Engine<A: Acc> {
    params: EngineParams,
    watermark: Watermark,
    panes: BTreeMap<Micros, Pane<A>>,
    emitted_until: Option<Micros>,
    /// Preview panes: events read from Kafka but not committed to the raw table yet. They
    /// never close a window or move the watermark; they only make open windows look current.
    ahead: BTreeMap<Micros, A>,
    /// The newest event time folded (previews included): how current the values are.
    newest: Option<Micros>,
}

impl<A: Acc> Engine<A> {
    pub fn new(params: EngineParams, topics: usize) -> Self {
        Engine {
            params,
            watermark: Watermark::new(topics, params.clock),
            panes: BTreeMap::new(),
            emitted_until: None,
            ahead: BTreeMap::new(),
            newest: None,
        }
    }

    /// Resume after a restart: windows ending at or before `emitted_until` are final.
    pub fn restore(&mut self, emitted_until: Option<Micros>, watermark: Option<Micros>) {
        self.emitted_until = emitted_until;
        if let Some(w) = watermark {
            self.watermark.restore(w);
        }
    }

    pub fn params(&self) -> EngineParams {
        self.params
    }

    pub fn emitted_until(&self) -> Option<Micros> {
        self.emitted_until
    }

    pub fn watermark(&self) -> Option<Micros> {
        self.watermark.current()
    }

    pub fn holding(&self, now: Micros, source: &dyn Drained) -> Option<Holding> {
        self.watermark.holding(now, source)
    }

    pub fn open_panes(&self) -> usize {
        self.panes.len()
    }

    pub fn fold(&mut self, input: &Input<'_>, now: Micros) -> Fold {
        let history = input.partition == crate::schema::NO_SOURCE;
        let Some(trusted) = self.params.trusted(input) else {
            return Fold::Skewed;
        };
        if !history {
            self.watermark
                .observe(input.topic, input.partition, trusted, now);
        }
        self.saw(input.event_time);
        let w = &self.params.windowing;
        let pane_start = w.pane_of(input.event_time);
        let missed_one = self
            .emitted_until
            .is_some_and(|b| w.first_start(input.event_time) + w.size <= b);
        if self
            .emitted_until
            .is_some_and(|b| w.pane_needed_until(pane_start) <= b)
        {
            return Fold::Dropped;
        }
        let pane = self.panes.entry(pane_start).or_insert_with(|| Pane {
            acc: A::default(),
            min_offset: BTreeMap::new(),
        });
        pane.acc.add(&input.fact);
        pane.min_offset
            .entry((input.topic, input.partition))
            .and_modify(|o| *o = (*o).min(input.offset))
            .or_insert(input.offset);
        if missed_one {
            Fold::Late
        } else if trusted < input.event_time {
            Fold::Ahead
        } else {
            Fold::OnTime
        }
    }

    /// Merge the partial of one pane another instance folded from `partition` of input
    /// `topic`, its range starting at `offset` (rebuilding from there reproduces it). Decided
    /// as [`Engine::fold`] decides each of its events: they share the pane, hence the windows.
    pub fn fold_part(
        &mut self,
        topic: usize,
        partition: i32,
        offset: i64,
        pane: Micros,
        part: super::Part<A>,
        now: Micros,
    ) -> Fold {
        self.watermark.observe(topic, partition, part.trusted, now);
        self.saw(part.newest);
        let w = &self.params.windowing;
        let pane_start = w.pane_of(pane);
        let missed_one = self
            .emitted_until
            .is_some_and(|b| w.first_start(pane_start) + w.size <= b);
        if self
            .emitted_until
            .is_some_and(|b| w.pane_needed_until(pane_start) <= b)
        {
            return Fold::Dropped;
        }
        let p = self.panes.entry(pane_start).or_insert_with(|| Pane {
            acc: A::default(),
            min_offset: BTreeMap::new(),
        });
        p.acc.merge(part.acc);
        p.min_offset
            .entry((topic, partition))
            .and_modify(|o| *o = (*o).min(offset))
            .or_insert(offset);
        if missed_one {
            Fold::Late
        } else {
            Fold::OnTime
        }
    }

    /// Fold a not yet committed event into the preview panes (for provisional values only).
    pub fn fold_ahead(&mut self, input: &Input<'_>) {
        if input.event_time > input.ingested_at.saturating_add(self.params.max_skew) {
            return;
        }
        self.saw(input.event_time);
        let pane_start = self.params.windowing.pane_of(input.event_time);
        if self
            .emitted_until
            .is_some_and(|b| self.params.windowing.pane_needed_until(pane_start) <= b)
        {
            return;
        }
        self.ahead.entry(pane_start).or_default().add(&input.fact);
    }

    fn saw(&mut self, event_time: Micros) {
        self.newest = Some(self.newest.map_or(event_time, |n| n.max(event_time)));
    }

    /// The newest event time folded, previews included.
    pub fn newest_event(&self) -> Option<Micros> {
        self.newest
    }

    /// Forget the preview panes (their events were committed, or must be folded again).
    pub fn clear_ahead(&mut self) {
        self.ahead.clear();
    }

    /// Move the watermark to processing time `now` and close every window it passed.
    pub fn advance(&mut self, now: Micros) -> Option<Emission<A::Row>> {
        self.advance_with(now, &super::clock::AlwaysDrained)
    }

    /// `advance`, where silence is idleness only for what `source` says is drained.
    pub fn advance_with(
        &mut self,
        now: Micros,
        source: &dyn super::clock::Drained,
    ) -> Option<Emission<A::Row>> {
        let wm = self.watermark.advance_with(now, source)?;
        let w = self.params.windowing;
        let until = w.end_at_or_before(wm);
        if self.emitted_until.is_some_and(|b| until <= b) {
            return None;
        }
        let after = self.emitted_until;
        let mut starts = BTreeSet::new();
        for &pane in self.panes.keys() {
            for s in w.starts_containing(pane) {
                let end = s + w.size;
                if end <= until && after.is_none_or(|b| end > b) {
                    starts.insert(s);
                }
            }
        }
        let windows = self.rows_of(starts);
        self.emitted_until = Some(until);
        self.panes
            .retain(|&start, _| w.pane_needed_until(start) > until);
        self.ahead
            .retain(|&start, _| w.pane_needed_until(start) > until);
        Some(Emission { until, windows })
    }

    /// Per (topic, partition): the smallest offset still needed to rebuild the open panes.
    pub fn replay_offsets(&self) -> BTreeMap<(usize, i32), i64> {
        let mut out: BTreeMap<(usize, i32), i64> = BTreeMap::new();
        for pane in self.panes.values() {
            for (&k, &o) in &pane.min_offset {
                out.entry(k).and_modify(|m| *m = (*m).min(o)).or_insert(o);
            }
        }
        out
    }

    /// Running values of the still open windows, preview panes included (provisional, for
    /// the live page).
    pub fn open_windows(&self) -> Vec<(Micros, Micros, Vec<A::Row>)> {
        let w = self.params.windowing;
        let mut starts = BTreeSet::new();
        for &pane in self.panes.keys().chain(self.ahead.keys()) {
            for s in w.starts_containing(pane) {
                if self.emitted_until.is_none_or(|b| s + w.size > b) {
                    starts.insert(s);
                }
            }
        }
        let size = w.size;
        starts
            .into_iter()
            .filter_map(|s| {
                let panes: Vec<&A> = self
                    .panes
                    .range(s..s + size)
                    .map(|(_, p)| &p.acc)
                    .chain(self.ahead.range(s..s + size).map(|(_, a)| a))
                    .collect();
                let rows = A::window_rows(&panes, s, s + size);
                (!rows.is_empty()).then_some((s, s + size, rows))
            })
            .collect()
    }

    /// Rows of the windows starting at `starts` that have data.
    fn rows_of(&self, starts: BTreeSet<Micros>) -> Vec<(Micros, Micros, Vec<A::Row>)> {
        let size = self.params.windowing.size;
        starts
            .into_iter()
            .filter_map(|s| {
                let panes: Vec<&A> = self.panes.range(s..s + size).map(|(_, p)| &p.acc).collect();
                let rows = A::window_rows(&panes, s, s + size);
                (!rows.is_empty()).then_some((s, s + size, rows))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::windows::clock::ClockParams;
    use crate::windows::lattice::Windowing;

    const S: Micros = 1_000_000;

    #[derive(Default, serde::Serialize, serde::Deserialize)]
    struct Count(i64);

    impl Acc for Count {
        type Row = i64;
        fn add(&mut self, _: &Fact<'_>) {
            self.0 += 1;
        }
        fn merge(&mut self, other: Self) {
            self.0 += other.0;
        }
        fn window_rows(panes: &[&Self], _: Micros, _: Micros) -> Vec<i64> {
            vec![panes.iter().map(|p| p.0).sum()]
        }
    }

    fn fold_at(e: &mut Engine<Count>, partition: i32, event_time: Micros, now: Micros) -> Fold {
        let order = crate::kpis::fixtures::order("u");
        e.fold(
            &Input {
                topic: 0,
                partition,
                offset: 0,
                event_time,
                ingested_at: now,
                fact: Fact::Order(&order),
            },
            now,
        )
    }

    #[test]
    fn a_fast_clock_cannot_close_windows_early() {
        let params = EngineParams {
            windowing: Windowing::new(60 * S, 30 * S).unwrap(),
            clock: ClockParams {
                lateness: 10 * S,
                idle_timeout: 30 * S,
            },
            max_skew: 300 * S,
            clock_tolerance: 2 * S,
        };
        let t0 = 1_800_000_000 * S; // on a window boundary
        let mut e = Engine::<Count>::new(params, 1);
        // Every partition sends one event stamped four minutes ahead, amid on-time traffic.
        for p in 0..3 {
            assert_eq!(fold_at(&mut e, p, t0 + 240 * S, t0), Fold::Ahead);
        }
        // The watermark follows the clock (+ tolerance − lateness), not the stamps.
        let emitted = e.advance(t0 + S);
        assert!(
            e.watermark() <= Some(t0 + 2 * S - 10 * S),
            "{:?}",
            e.watermark()
        );
        assert!(emitted.is_none_or(|em| em.windows.is_empty()));
        // The on-time events that follow are on time, and counted in their windows.
        for (i, p) in (0..3).cycle().take(30).enumerate() {
            let at = t0 + i as Micros * S;
            assert_eq!(fold_at(&mut e, p, at, at), Fold::OnTime, "event {i}");
        }
        // Once real time passes a window's end (+ lateness), it closes with all of them.
        let em = e.advance(t0 + 100 * S).expect("advanced");
        let first = em
            .windows
            .iter()
            .find(|(s, _, _)| *s == t0)
            .expect("[t0, t0+60s) closed");
        assert_eq!(first.2, vec![30]);
        // The fast events still count, in their own (future) windows, once those close.
        let later = e.advance(t0 + 400 * S).expect("advanced");
        let ahead: i64 = later
            .windows
            .iter()
            .filter(|(s, end, _)| *s <= t0 + 240 * S && t0 + 240 * S < *end)
            .map(|(_, _, r)| r[0])
            .sum();
        assert_eq!(ahead, 2 * 3, "each of the 3 falls in 2 sliding windows");
    }
}
