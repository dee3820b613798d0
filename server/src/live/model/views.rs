//! Every KPI's declared view (`kpis::View`, in the KPI's own file) computed the one way the
//! page shows it: cards over a period against the period before, charts per whole minute
//! (or per bucket of a longer range), the newest window's funnel or table. Pure, so the
//! definitions are tested here; nothing names a KPI.
//!
//! A period is the newest whole-minute windows the lake (or the open windows) has: sliding
//! windows start every 30 s, so only windows starting on a whole minute tile time and each
//! event is counted once.

use std::collections::BTreeMap;

use arrow_array::RecordBatch;
use serde_json::{json, Map, Value};
use shopwatch_actors::kpis::view::{ChartKind, Measure};
use shopwatch_actors::kpis::{Kpi, KpiRow, Read, REGISTRY};
use shopwatch_actors::schema::columns::{Column, ColumnType, Value as Cell};

use crate::live::model::results::Cols;

pub const PERIOD_MS: i64 = 5 * 60_000;
pub const TREND_MS: i64 = 30 * 60_000;
const MINUTE_MS: i64 = 60_000;

/// One row of a KPI table as the page reads it (times in ms).
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub start_ms: i64,
    pub end_ms: i64,
    /// In the order of the KPI's own columns.
    pub values: Vec<Cell>,
    /// A running value of a window still open, pushed by the aggregators.
    pub provisional: bool,
}

impl Row {
    fn whole_minute(&self) -> bool {
        self.start_ms % MINUTE_MS == 0
    }
}

/// The rows of every KPI with a view, by KPI name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Facts(pub BTreeMap<&'static str, Vec<Row>>);

/// The KPIs the page shows.
pub fn viewed() -> impl Iterator<Item = &'static dyn Kpi> {
    REGISTRY.iter().copied().filter(|k| k.view().is_some())
}

/// A KPI's rows from a Flight result. A column of the KPI missing from the result is an
/// error naming it (a renamed column must fail loudly, never blank a card).
pub fn read_rows(kpi: &dyn Kpi, batches: &[RecordBatch]) -> Result<Vec<Row>, String> {
    let c = Cols(batches);
    let n = c.rows();
    let need = |name: &str| -> Result<(), String> {
        if n > 0 && !batches.iter().all(|b| b.column_by_name(name).is_some()) {
            return Err(format!(
                "the result of KPI {} has no column {name:?}",
                kpi.name()
            ));
        }
        Ok(())
    };
    need("window_start")?;
    need("window_end")?;
    let (starts, ends) = (c.ts("window_start"), c.ts("window_end"));
    let mut columns: Vec<Vec<Cell>> = Vec::new();
    for col in kpi.columns() {
        need(col.name)?;
        columns.push(match col.ty {
            ColumnType::Int | ColumnType::Long => c
                .i64(col.name)
                .into_iter()
                .map(|v| v.map_or(Cell::Null, Cell::Long))
                .collect(),
            ColumnType::Double => c
                .f64(col.name)
                .into_iter()
                .map(|v| v.map_or(Cell::Null, Cell::Double))
                .collect(),
            ColumnType::Str => c
                .str(col.name)
                .into_iter()
                .map(|v| v.map_or(Cell::Null, Cell::Str))
                .collect(),
            ColumnType::Timestamp => c
                .ts(col.name)
                .into_iter()
                .map(|v| v.map_or(Cell::Null, |ms| Cell::Timestamp(ms * 1000)))
                .collect(),
        });
    }
    Ok((0..n)
        .filter_map(|i| {
            Some(Row {
                start_ms: starts[i]?,
                end_ms: ends[i]?,
                values: columns.iter().map(|c| c[i].clone()).collect(),
                provisional: false,
            })
        })
        .collect())
}

/// Open windows pushed by an aggregator, as rows.
pub fn open_rows(rows: &[KpiRow]) -> Vec<Row> {
    rows.iter()
        .map(|r| Row {
            start_ms: r.start / 1000,
            end_ms: r.end / 1000,
            values: r.values.clone(),
            provisional: true,
        })
        .collect()
}

impl Facts {
    /// These exact facts with `open` laid over them where the lake has nothing yet: a window
    /// the lake holds is always shown from the lake.
    pub fn with_open(&self, open: &Facts) -> Facts {
        let mut out = self.clone();
        for (kpi, rows) in &open.0 {
            let mine = out.0.entry(kpi).or_default();
            let known: std::collections::BTreeSet<i64> = mine.iter().map(|r| r.start_ms).collect();
            mine.extend(
                rows.iter()
                    .filter(|r| !known.contains(&r.start_ms))
                    .cloned(),
            );
            mine.sort_by_key(|r| r.start_ms);
        }
        out
    }

    fn rows(&self, kpi: &str) -> &[Row] {
        self.0.get(kpi).map(Vec::as_slice).unwrap_or(&[])
    }

    /// End of the newest whole-minute window of any KPI with cards.
    fn as_of(&self, exact_only: bool) -> Option<i64> {
        viewed()
            .filter(|k| {
                k.view()
                    .is_some_and(|v| !v.cards.is_empty() && v.read == Read::Trend)
            })
            .flat_map(|k| self.rows(k.name()).iter())
            .filter(|r| r.whole_minute() && !(exact_only && r.provisional))
            .map(|r| r.end_ms)
            .max()
    }
}

fn index(kpi: &dyn Kpi, c: &Column) -> Option<usize> {
    kpi.columns().iter().position(|own| own.name == c.name)
}

fn sum(kpi: &dyn Kpi, rows: &[&Row], cols: &[Column]) -> f64 {
    let idx: Vec<usize> = cols.iter().filter_map(|c| index(kpi, c)).collect();
    rows.iter()
        .flat_map(|r| idx.iter().filter_map(|&i| r.values.get(i)?.as_f64()))
        .sum()
}

/// A measure over `rows` (the whole minutes of a period or bucket, oldest first).
fn measure(kpi: &dyn Kpi, m: &Measure, rows: &[&Row]) -> Option<f64> {
    if rows.is_empty() {
        return None;
    }
    match m {
        // Sums of money add up float noise (525.0000000001): kept to a millionth.
        Measure::Sum(cols) => Some(round(sum(kpi, rows, cols))),
        Measure::Ratio(num, den) => {
            let d = sum(kpi, rows, den);
            (d > 0.0).then(|| sum(kpi, rows, num) / d)
        }
        Measure::Newest(c) => rows
            .last()
            .and_then(|r| r.values.get(index(kpi, c)?)?.as_f64()),
    }
}

fn round(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

/// The cards over `period_ms`: each card's measure over the newest whole minutes ending at
/// `as_of`, against the same span before. A `Newest` measure reads the window ending at
/// `as_of` (an open one ending later has seen only part of its span: left out) and the one a
/// period before.
pub fn cards(f: &Facts, period_ms: i64) -> Value {
    let as_of = f.as_of(false);
    let mut cards = Map::new();
    for kpi in viewed() {
        let Some(view) = kpi.view() else { continue };
        let rows = f.rows(kpi.name());
        for card in view.cards {
            let (now, before, open) = match (card.measure, as_of) {
                (_, None) => (None, None, false),
                (Measure::Newest(_), Some(a)) => {
                    let newest = rows
                        .iter()
                        .filter(|r| !r.provisional || r.end_ms <= a)
                        .max_by_key(|r| r.end_ms);
                    let earlier = newest.and_then(|n| {
                        rows.iter()
                            .filter(|r| r.end_ms == n.end_ms - period_ms)
                            .max_by_key(|r| !r.provisional)
                    });
                    (
                        newest.and_then(|r| measure(kpi, &card.measure, &[r])),
                        earlier.and_then(|r| measure(kpi, &card.measure, &[r])),
                        newest.is_some_and(|r| r.provisional),
                    )
                }
                (m, Some(a)) => {
                    let span = |from: i64, to: i64| -> Vec<&Row> {
                        rows.iter()
                            .filter(|r| r.whole_minute() && r.end_ms > from && r.end_ms <= to)
                            .collect()
                    };
                    let (n, b) = (
                        span(a - period_ms, a),
                        span(a - 2 * period_ms, a - period_ms),
                    );
                    (
                        measure(kpi, &m, &n),
                        measure(kpi, &m, &b),
                        n.iter().any(|r| r.provisional),
                    )
                }
            };
            cards.insert(
                card.id.to_string(),
                json!({
                    "value": now,
                    "previous": before,
                    "delta": now.zip(before).map(|(v, p)| v - p),
                    "inverse": card.inverse,
                    "provisional": open && now.is_some(),
                }),
            );
        }
    }
    json!({
        "as_of_ms": as_of,
        "exact_as_of_ms": f.as_of(true),
        "period_s": period_ms / 1000,
        "cards": cards,
    })
}

/// Every chart of every view over the `range_ms` ending at the newest window, a point per
/// `bucket_ms` (whole minutes summed into it; rates of sums). Keyed `<kpi>.<chart>`.
pub fn charts(f: &Facts, range_ms: i64, bucket_ms: i64) -> Value {
    let mut out = Map::new();
    let mut provisional_from: Option<i64> = None;
    for kpi in viewed() {
        let Some(view) = kpi.view() else { continue };
        let rows = f.rows(kpi.name());
        for chart in view.charts {
            let key = format!("{}.{}", kpi.name(), chart.id);
            let value = match chart.kind {
                ChartKind::Line => {
                    let last = rows.iter().map(|r| r.end_ms).max().unwrap_or(0);
                    let recent: Vec<&Row> = rows
                        .iter()
                        .filter(|r| r.whole_minute() && r.end_ms > last - range_ms)
                        .collect();
                    if let Some(p) = recent
                        .iter()
                        .filter(|r| r.provisional)
                        .map(|r| r.start_ms)
                        .min()
                    {
                        provisional_from = Some(provisional_from.map_or(p, |q| q.min(p)));
                    }
                    line(kpi, chart.series, chart.split_by, &recent, bucket_ms)
                }
                ChartKind::Funnel => {
                    let newest = newest_window(rows);
                    let steps: Vec<Value> = chart
                        .series
                        .iter()
                        .map(|s| json!({"label": s.label, "value": measure(kpi, &s.measure, &newest)}))
                        .collect();
                    json!({
                        "window_start": newest.first().map(|r| r.start_ms),
                        "window_end": newest.first().map(|r| r.end_ms),
                        "provisional": newest.iter().any(|r| r.provisional),
                        "steps": steps,
                    })
                }
                ChartKind::Table => {
                    let newest = newest_window(rows);
                    let idx: Vec<Option<usize>> =
                        chart.columns.iter().map(|c| index(kpi, c)).collect();
                    let table: Vec<Value> = newest
                        .iter()
                        .map(|r| {
                            Value::Array(
                                idx.iter()
                                    .map(|i| {
                                        i.and_then(|i| r.values.get(i)).map_or(Value::Null, cell)
                                    })
                                    .collect(),
                            )
                        })
                        .collect();
                    json!({
                        "window_start": newest.first().map(|r| r.start_ms),
                        "window_end": newest.first().map(|r| r.end_ms),
                        "rows": table,
                    })
                }
            };
            out.insert(key, value);
        }
    }
    json!({ "provisional_from": provisional_from, "charts": out })
}

/// The rows of the newest whole-minute window (a closed one before an open one).
fn newest_window(rows: &[Row]) -> Vec<&Row> {
    let whole: Vec<&Row> = rows.iter().filter(|r| r.whole_minute()).collect();
    let pick = whole
        .iter()
        .filter(|r| !r.provisional)
        .map(|r| r.start_ms)
        .max()
        .or_else(|| whole.iter().map(|r| r.start_ms).max());
    whole
        .into_iter()
        .filter(|r| Some(r.start_ms) == pick)
        .collect()
}

/// Points `[start_ms, series…]` per bucket; split by a column: `{values, points}` with one
/// value per split value of the first series.
fn line(
    kpi: &dyn Kpi,
    series: &[shopwatch_actors::kpis::view::Series],
    split_by: Option<Column>,
    rows: &[&Row],
    bucket_ms: i64,
) -> Value {
    let mut buckets: BTreeMap<i64, Vec<&Row>> = BTreeMap::new();
    for r in rows {
        buckets
            .entry(r.start_ms.div_euclid(bucket_ms) * bucket_ms)
            .or_default()
            .push(r);
    }
    match split_by.and_then(|c| index(kpi, &c)) {
        None => Value::Array(
            buckets
                .iter()
                .map(|(start, rs)| {
                    let mut p = vec![json!(start)];
                    p.extend(series.iter().map(|s| json!(measure(kpi, &s.measure, rs))));
                    Value::Array(p)
                })
                .collect(),
        ),
        Some(i) => {
            let key = |r: &Row| r.values.get(i).and_then(|v| v.as_str().map(str::to_string));
            let mut values: Vec<String> = rows.iter().filter_map(|r| key(r)).collect();
            values.sort();
            values.dedup();
            let Some(s) = series.first() else {
                return json!({"values": values, "points": []});
            };
            let points: Vec<Value> = buckets
                .iter()
                .map(|(start, rs)| {
                    let mut p = vec![json!(start)];
                    for v in &values {
                        let of: Vec<&Row> = rs
                            .iter()
                            .copied()
                            .filter(|r| key(r).as_deref() == Some(v.as_str()))
                            .collect();
                        p.push(json!(measure(kpi, &s.measure, &of)));
                    }
                    Value::Array(p)
                })
                .collect();
            json!({ "values": values, "points": points })
        }
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

/// What the page draws, from the declarations: the `views` message.
/// `numbers`: how the page writes amounts (`http.currency`, `http.locale`).
pub fn layout(currency: &str, locale: &str) -> Value {
    let mut cards = Vec::new();
    let mut charts = Vec::new();
    for kpi in viewed() {
        let Some(view) = kpi.view() else { continue };
        for c in view.cards {
            cards.push(json!({
                "id": c.id, "kpi": kpi.name(), "title": c.title, "note": c.note,
                "format": c.format, "inverse": c.inverse, "rows": c.rows,
            }));
        }
        for c in view.charts {
            charts.push(json!({
                "key": format!("{}.{}", kpi.name(), c.id), "kpi": kpi.name(), "title": c.title,
                "note": c.note, "kind": c.kind, "format": c.format, "rows": c.rows,
                "series": c.series.iter().map(|s| s.label).collect::<Vec<_>>(),
                "split": c.split_by.map(|c| c.name),
                "columns": c.columns.iter().map(|c| c.name).collect::<Vec<_>>(),
            }));
        }
    }
    json!({
        "cards": cards, "charts": charts,
        "numbers": { "currency": currency, "locale": locale },
    })
}

#[cfg(test)]
mod tests;
