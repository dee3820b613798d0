//! Provisional values: what an aggregator's still open windows hold, including batches read
//! from Kafka and not yet committed (previews), pushed straight to the live page instead of
//! through the lake. They are a foretaste, never a result: they count nothing, close nothing,
//! and the exact value from the lake replaces them when the window closes. The actors crate
//! knows only [`LiveSink`]; the server implements it on its websocket hub.

use std::sync::Arc;
use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use crate::events::Micros;
use crate::handoff::Delivery;
use crate::kpis::{Kpi, KpiEngine, KpiRow};
use crate::lake::Offsets;

/// Fold a preview's records that are neither committed (`positions`) nor previewed before.
pub(super) fn fold_preview(
    engine: &mut dyn KpiEngine,
    input: usize,
    d: &Delivery,
    positions: &Offsets,
    previewed: &mut BTreeMap<(usize, i32), i64>,
) {
    let seen = previewed.clone();
    engine.fold_ahead(input, &d.rows, &|p, o| {
        super::input::is_new(positions, p, o) && seen.get(&(input, p)).is_none_or(|next| o >= *next)
    });
    for (p, (_, end)) in &d.ranges {
        let next = previewed.entry((input, *p)).or_insert(*end);
        *next = (*next).max(*end);
    }
}

/// Where provisional values go.
pub trait LiveSink: Send + Sync + std::fmt::Debug {
    /// Whether anyone is watching; when no one is, nothing is computed.
    fn wanted(&self) -> bool;
    fn provisional(&self, update: Provisional);
}

/// The open windows of one KPI as of `at`.
#[derive(Clone, Debug)]
pub struct Provisional {
    pub kpi: &'static dyn Kpi,
    /// Windows ending at or before this are closed (exact, in the lake or about to be).
    pub emitted_until: Option<Micros>,
    pub rows: Vec<KpiRow>,
    pub at: Micros,
    /// The newest event time these values include (the freshness bench's stamp).
    pub newest_event: Option<Micros>,
}

#[derive(Clone, Debug)]
pub struct Live {
    pub sink: Arc<dyn LiveSink>,
    /// An aggregator pushes at most this often (`live.provisional_ms`).
    pub every: Duration,
}

/// A preview whose commit never reached us (its partitions went to another instance) is
/// forgotten after this long.
const MAX_AGE: Duration = Duration::from_secs(30);

/// When to push provisional values.
#[derive(Debug, PartialEq, Eq)]
pub enum Due {
    Now,
    /// Throttled: push after this long (schedule one timer).
    After(Duration),
    /// Nothing changed, or a timer is already set.
    No,
}

/// One aggregator's previews not yet committed, and its push throttle.
#[derive(Debug, Default)]
pub struct Previews {
    pending: Vec<(Instant, Arc<Delivery>)>,
    last_push: Option<Instant>,
    scheduled: bool,
    dirty: bool,
}

impl Previews {
    pub fn add(&mut self, now: Instant, d: Arc<Delivery>) {
        self.pending.push((now, d));
        self.dirty = true;
    }

    /// Something changed the open windows (a commit folded, windows closed).
    pub fn touch(&mut self) {
        self.dirty = true;
    }

    /// Drop previews whose every record is now at or behind `position(topic)` (committed and
    /// folded) or that are too old. True when any went: the preview panes must be rebuilt
    /// from [`Previews::pending`].
    pub fn prune<'a>(
        &mut self,
        now: Instant,
        position: impl Fn(&str) -> Option<&'a Offsets>,
    ) -> bool {
        let before = self.pending.len();
        self.pending.retain(|(at, d)| {
            let fresh = now.saturating_duration_since(*at) < MAX_AGE;
            let ahead = d.ranges.iter().any(|(p, (_, end))| {
                position(&d.topic).is_none_or(|pos| pos.get(p).is_none_or(|done| end > done))
            });
            fresh && ahead
        });
        before != self.pending.len()
    }

    pub fn pending(&self) -> impl Iterator<Item = &Delivery> {
        self.pending.iter().map(|(_, d)| &**d)
    }

    /// Whether to push now, later, or not at all.
    pub fn due(&mut self, now: Instant, every: Duration) -> Due {
        if !self.dirty || self.scheduled {
            return Due::No;
        }
        match self.last_push.map(|t| now.saturating_duration_since(t)) {
            Some(since) if since < every => {
                self.scheduled = true;
                Due::After(every - since)
            }
            _ => Due::Now,
        }
    }

    /// The throttle's timer fired.
    pub fn timer_fired(&mut self) {
        self.scheduled = false;
    }

    pub fn pushed(&mut self, now: Instant) {
        self.last_push = Some(now);
        self.dirty = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventKind;
    use crate::schema::Rows;

    fn preview(topic: &str, ranges: &[(i32, i64, i64)]) -> Arc<Delivery> {
        Arc::new(Delivery {
            topic: topic.into(),
            kind: EventKind::Orders,
            ranges: ranges.iter().map(|(p, s, e)| (*p, (*s, *e))).collect(),
            rows: Arc::new(Rows::empty_for(EventKind::Orders)),
        })
    }

    #[test]
    fn previews_go_once_committed_or_old() {
        let t0 = Instant::now();
        // (committed position of partition 0 and 1, previews kept)
        let cases: &[(&[(i32, i64)], usize)] = &[
            (&[], 3),
            (&[(0, 10)], 2),
            (&[(0, 20)], 1),
            // A preview spanning two partitions stays until both are committed.
            (&[(0, 30), (1, 4)], 1),
            (&[(0, 30), (1, 5)], 0),
        ];
        for (positions, kept) in cases {
            let mut p = Previews::default();
            p.add(t0, preview("o", &[(0, 0, 10)]));
            p.add(t0, preview("o", &[(0, 10, 20)]));
            p.add(t0, preview("o", &[(0, 20, 30), (1, 0, 5)]));
            let pos: Offsets = positions.iter().copied().collect();
            let changed = p.prune(t0, |t| (t == "o").then_some(&pos));
            assert_eq!(p.pending().count(), *kept, "{positions:?}");
            assert_eq!(changed, *kept != 3);
        }
        let mut p = Previews::default();
        p.add(t0, preview("o", &[(0, 0, 10)]));
        assert!(p.prune(t0 + MAX_AGE, |_| None), "too old: forgotten");
    }

    #[test]
    fn pushes_are_throttled_to_one_timer() {
        let every = Duration::from_millis(200);
        let t0 = Instant::now();
        let mut p = Previews::default();
        assert_eq!(p.due(t0, every), Due::No, "nothing changed");
        p.touch();
        assert_eq!(p.due(t0, every), Due::Now);
        p.pushed(t0);
        p.touch();
        let t1 = t0 + Duration::from_millis(50);
        assert_eq!(p.due(t1, every), Due::After(Duration::from_millis(150)));
        assert_eq!(p.due(t1, every), Due::No, "one timer at a time");
        p.timer_fired();
        assert_eq!(p.due(t0 + every, every), Due::Now);
    }
}
