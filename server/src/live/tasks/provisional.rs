//! The board behind the cards and trends: the lake's exact windows (from the refresher) with
//! the aggregators' provisional open windows laid over them where the lake has nothing yet.
//! A window's provisional value stays shown after it closed until the lake's exact row for it
//! has been read, so a card never dips between the two. Provisional pushes are coalesced: the
//! hub gets at most one `kpis` frame per `every` and one `series` frame per second (sooner when
//! the lake's windows changed); the `provisional` rows are kept for snapshots and
//! `/api/dashboard`, not pushed (1,000 pages × 10 frames a second cost more than they show).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use shopwatch_actors::events::Micros;
use shopwatch_actors::kpis::{Kpi, KpiRow};
use shopwatch_actors::rollup::live::{LiveSink, Provisional};
use shopwatch_actors::schema::columns::Value as Cell;
use tracing::debug;

use crate::live::model::views::{self, Facts};
use crate::live::tasks::hub::{Hub, Message};

/// A provisional row older than this is dropped even if the lake never showed its window.
const KEEP_MS: i64 = 10 * 60_000;
/// Trends move with the open minute at most this often (the cards follow every push).
const SERIES_EVERY: Duration = Duration::from_secs(1);

/// The open (and just closed, not yet read back) windows of one KPI, by window start.
#[derive(Debug, Default)]
struct Open {
    rows: BTreeMap<Micros, Vec<KpiRow>>,
    at: Micros,
    newest_event: Option<Micros>,
}

#[derive(Default)]
struct Inner {
    /// The lake's newest rows of every viewed KPI, and the newest window end read per KPI.
    exact: Facts,
    exact_until_ms: BTreeMap<&'static str, i64>,
    open: BTreeMap<&'static str, (&'static dyn Kpi, Open)>,
    dirty: bool,
    /// The lake's windows changed since the trends were last sent.
    exact_changed: bool,
    series_sent: Option<Instant>,
}

#[derive(Clone)]
pub struct Board {
    hub: Hub,
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for Board {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Board")
    }
}

impl Board {
    pub fn new(hub: Hub) -> Board {
        Board {
            hub,
            inner: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The refresher read the lake: every viewed KPI's rows. Publishes at once.
    pub fn exact(&self, facts: Facts) {
        {
            let mut inner = self.lock();
            for (name, rows) in &facts.0 {
                if let Some(end) = rows.iter().map(|r| r.end_ms).max() {
                    inner.exact_until_ms.insert(name, end);
                }
            }
            inner.exact = facts;
            inner.dirty = true;
            inner.exact_changed = true;
        }
        self.publish();
    }

    /// Publish the merged cards, trends and open windows if anything changed.
    pub fn publish(&self) {
        let (kpis, series, open) = {
            let mut inner = self.lock();
            if !inner.dirty {
                return;
            }
            inner.dirty = false;
            inner.forget_read_back();
            let merged = inner.exact.with_open(&inner.open_facts());
            let series_due = inner.exact_changed
                || inner
                    .series_sent
                    .is_none_or(|t| t.elapsed() >= SERIES_EVERY);
            let series = series_due.then(|| {
                inner.exact_changed = false;
                inner.series_sent = Some(Instant::now());
                views::charts(&merged, views::TREND_MS, 60_000)
            });
            if !series_due {
                // The trends wait for their next turn; come back for them.
                inner.dirty = true;
            }
            let mut kpis = views::cards(&merged, views::PERIOD_MS);
            // How current the live values are: the newest event the cards' figures include.
            kpis["newest_event_ms"] = inner
                .open
                .values()
                .filter(|(k, _)| k.view().is_some_and(|v| !v.cards.is_empty()))
                .filter_map(|(_, o)| o.newest_event)
                .max()
                .map_or(Value::Null, |t| json!(t / 1000));
            (kpis, series, inner.open_json())
        };
        self.hub.publish_changed(Message::Kpis, kpis);
        if let Some(series) = series {
            self.hub.publish_changed(Message::Series, series);
        }
        self.hub.keep(Message::Provisional, open);
    }
}

impl Inner {
    /// Drop open windows the lake now holds (its newest read window ends at or after theirs),
    /// and any too old to matter.
    fn forget_read_back(&mut self) {
        let exact_until = &self.exact_until_ms;
        for (name, (_, open)) in self.open.iter_mut() {
            let until = exact_until.get(name).copied().unwrap_or(i64::MIN);
            let horizon = open.at / 1000 - KEEP_MS;
            open.rows.retain(|_, rows| {
                rows.first()
                    .is_none_or(|r| r.end / 1000 > until.max(horizon))
            });
        }
    }

    /// The open windows of every viewed KPI as facts.
    fn open_facts(&self) -> Facts {
        Facts(
            self.open
                .iter()
                .map(|(name, (_, open))| {
                    let rows: Vec<KpiRow> = open.rows.values().flatten().cloned().collect();
                    (*name, views::open_rows(&rows))
                })
                .collect(),
        )
    }

    /// Every KPI's open windows for the `provisional` frame: columns by name, times in ms.
    fn open_json(&self) -> Value {
        let mut kpis = serde_json::Map::new();
        let mut newest = serde_json::Map::new();
        let mut at = 0;
        for (name, (kpi, open)) in &self.open {
            at = at.max(open.at / 1000);
            newest.insert(name.to_string(), json!(open.newest_event.map(|t| t / 1000)));
            let cols = kpi.columns();
            let rows: Vec<Value> = open
                .rows
                .values()
                .flatten()
                .map(|r| {
                    let mut o = serde_json::Map::new();
                    o.insert("window_start".into(), json!(r.start / 1000));
                    o.insert("window_end".into(), json!(r.end / 1000));
                    for (c, v) in cols.iter().zip(&r.values) {
                        o.insert(c.name.into(), cell(v));
                    }
                    Value::Object(o)
                })
                .collect();
            kpis.insert(name.to_string(), Value::Array(rows));
        }
        json!({ "at_ms": at, "kpis": kpis, "newest_event_ms": newest })
    }
}

fn cell(v: &Cell) -> Value {
    match v {
        Cell::Int(i) => json!(i),
        Cell::Long(i) => json!(i),
        Cell::Double(d) => json!(d),
        Cell::Str(s) => json!(s),
        Cell::Timestamp(t) => json!(t / 1000),
        Cell::Null => Value::Null,
    }
}

impl LiveSink for Board {
    fn wanted(&self) -> bool {
        self.hub.clients() > 0
    }

    fn provisional(&self, update: Provisional) {
        let mut inner = self.lock();
        let name = update.kpi.name();
        let entry = inner
            .open
            .entry(name)
            .or_insert_with(|| (update.kpi, Open::default()));
        let open = &mut entry.1;
        // Windows still open are replaced by the update; closed ones of the page's KPIs keep
        // their last value until the lake's exact row has been read (the others go).
        let bridges = update.kpi.view().is_some();
        open.rows.retain(|_, rows| {
            bridges
                && rows
                    .first()
                    .is_some_and(|r| update.emitted_until.is_some_and(|b| r.end <= b))
        });
        for r in update.rows {
            open.rows.entry(r.start).or_default().push(r);
        }
        open.at = update.at;
        open.newest_event = update.newest_event;
        inner.dirty = true;
        debug!(kpi = name, "provisional values");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::tasks::hub::HubParams;
    use crate::live::tasks::metrics::LiveMetrics;
    use shopwatch_actors::kpis::by_name;

    const M: Micros = 60_000_000;
    const T0: Micros = 1_764_000_000_000_000;

    fn orders_row(start: Micros, n: i64) -> KpiRow {
        KpiRow {
            start,
            end: start + M,
            values: vec![Cell::Long(n), Cell::Double(n as f64 * 2.0)],
        }
    }

    fn board() -> Board {
        let registry = prometheus::Registry::new();
        Board::new(Hub::new(HubParams::default(), LiveMetrics::new(&registry)))
    }

    fn exact_orders(b: &Board, rows: Vec<KpiRow>) {
        let mut rows = views::open_rows(&rows);
        for r in &mut rows {
            r.provisional = false;
        }
        b.exact(Facts([("orders_revenue", rows)].into_iter().collect()));
    }

    fn card(b: &Board) -> (Option<f64>, bool) {
        let k = b.hub.latest(Message::Kpis).unwrap();
        (
            k["cards"]["orders"]["value"].as_f64(),
            k["cards"]["orders"]["provisional"].as_bool().unwrap(),
        )
    }

    #[test]
    fn open_windows_add_to_the_cards_until_the_lake_has_them() {
        let b = board();
        let kpi = by_name("orders_revenue").unwrap();
        exact_orders(&b, vec![orders_row(T0, 5), orders_row(T0 + M, 7)]);
        assert_eq!(card(&b), (Some(12.0), false));
        // The minute after is open: it joins the card, marked provisional.
        b.provisional(Provisional {
            kpi,
            emitted_until: Some(T0 + 2 * M),
            rows: vec![orders_row(T0 + 2 * M, 3)],
            at: T0 + 2 * M + 10,
            newest_event: Some(T0 + 2 * M + 5),
        });
        b.publish();
        assert_eq!(card(&b), (Some(15.0), true));
        let p = b.hub.latest(Message::Provisional).unwrap();
        assert_eq!(p["kpis"]["orders_revenue"][0]["orders_count"], 3);
        assert_eq!(
            p["newest_event_ms"]["orders_revenue"],
            (T0 + 2 * M + 5) / 1000
        );
        // It closes: the aggregator no longer lists it, but the card keeps its value...
        b.provisional(Provisional {
            kpi,
            emitted_until: Some(T0 + 3 * M),
            rows: vec![],
            at: T0 + 3 * M + 10,
            newest_event: Some(T0 + 2 * M + 5),
        });
        b.publish();
        assert_eq!(
            card(&b),
            (Some(15.0), true),
            "no dip before the lake has it"
        );
        // ...until the lake's exact row replaces it (the exact value wins where both exist).
        exact_orders(
            &b,
            vec![
                orders_row(T0, 5),
                orders_row(T0 + M, 7),
                orders_row(T0 + 2 * M, 4),
            ],
        );
        assert_eq!(card(&b), (Some(16.0), false));
        let p = b.hub.latest(Message::Provisional).unwrap();
        assert_eq!(p["kpis"]["orders_revenue"], json!([]));
    }
}
