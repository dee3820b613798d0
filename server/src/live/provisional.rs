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

use arrow_array::RecordBatch;
use serde_json::{json, Value};
use shopwatch_actors::derived::live::{LiveSink, Provisional};
use shopwatch_actors::events::Micros;
use shopwatch_actors::kpis::{Kpi, KpiRow, KpiRows};
use shopwatch_actors::schema::columns::Value as Cell;
use shopwatch_actors::schema::Encode;
use tracing::debug;

use super::dashboard::{self, Facts};
use super::hub::Hub;

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
    /// The lake's newest results of the card KPIs, and the newest window end read per KPI.
    exact: Facts,
    exact_until_ms: BTreeMap<&'static str, i64>,
    /// Extra trend series the refresher read (conversion and the like), passed through.
    extra_series: serde_json::Map<String, Value>,
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

/// The KPIs the cards and trends read.
const CARD_KPIS: [&str; 3] = ["orders_revenue", "traffic", "active_users"];

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

    /// The refresher read the lake: `results` by KPI name (only the card KPIs and the named
    /// extra series are used). Publishes at once.
    pub fn exact(&self, results: &crate::flight::kpis::KpiResults, extra: Vec<(&str, Value)>) {
        let get = |n: &str| results.get(n).map(Vec::as_slice).unwrap_or(&[]);
        let facts = Facts::read(
            get("orders_revenue"),
            get("traffic"),
            get("active_users"),
            false,
        );
        {
            let mut inner = self.lock();
            inner.exact = facts;
            for name in CARD_KPIS {
                if let Some(end) = dashboard::newest_end(get(name)) {
                    inner.exact_until_ms.insert(name, end);
                }
            }
            for (k, v) in extra {
                inner.extra_series.insert(k.to_string(), v);
            }
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
                let mut series = dashboard::series_of(&merged);
                for (k, v) in &inner.extra_series {
                    series[k] = v.clone();
                }
                series
            });
            if !series_due {
                // The trends wait for their next turn; come back for them.
                inner.dirty = true;
            }
            let mut kpis = serde_json::to_value(dashboard::cards(&merged)).unwrap_or_default();
            // How current the live values are: the newest event the orders figures include.
            kpis["newest_event_ms"] = inner
                .open
                .get("orders_revenue")
                .and_then(|(_, o)| o.newest_event)
                .map_or(Value::Null, |t| json!(t / 1000));
            (kpis, series, inner.open_json())
        };
        self.hub.publish_changed("kpis", kpis);
        if let Some(series) = series {
            self.hub.publish_changed("series", series);
        }
        self.hub.keep("provisional", open);
    }

    /// Coalesce provisional pushes into at most one publish per `every`.
    pub fn spawn_publisher(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let board = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                board.publish();
            }
        })
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

    fn batch(kpi: &'static dyn Kpi, open: &Open) -> Option<RecordBatch> {
        let schema = iceberg::arrow::schema_to_arrow_schema(&kpi.spec().schema).ok()?;
        let rows = KpiRows {
            kpi,
            rows: open.rows.values().flatten().cloned().collect(),
        };
        rows.encode(Arc::new(schema), open.at).ok()
    }

    /// The card KPIs' open windows as facts.
    fn open_facts(&self) -> Facts {
        let get = |name: &str| -> Vec<RecordBatch> {
            self.open
                .get(name)
                .and_then(|(kpi, open)| Self::batch(*kpi, open))
                .into_iter()
                .collect()
        };
        Facts::read(
            &get("orders_revenue"),
            &get("traffic"),
            &get("active_users"),
            true,
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
        // Windows still open are replaced by the update; closed ones of the cards' KPIs keep
        // their last value until the lake's exact row has been read (the others go).
        let bridges = CARD_KPIS.contains(&name);
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
    use crate::live::hub::HubParams;
    use crate::live::metrics::LiveMetrics;
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
        let kpi = by_name("orders_revenue").unwrap();
        let batch = Inner::batch(
            kpi,
            &Open {
                rows: rows.into_iter().map(|r| (r.start, vec![r])).collect(),
                at: T0,
                newest_event: None,
            },
        )
        .unwrap();
        let mut results = BTreeMap::new();
        results.insert("orders_revenue", vec![batch]);
        b.exact(&results, vec![]);
    }

    fn card(b: &Board) -> (Option<f64>, bool) {
        let k = b.hub.latest("kpis").unwrap();
        (
            k["orders"]["value"].as_f64(),
            k["orders"]["provisional"].as_bool().unwrap(),
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
        let p = b.hub.latest("provisional").unwrap();
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
        let p = b.hub.latest("provisional").unwrap();
        assert_eq!(p["kpis"]["orders_revenue"], json!([]));
    }
}
