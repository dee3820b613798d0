//! What the page shows of a KPI, declared in the KPI's own file: the query that reads it, its
//! cards and its charts. Measures name the KPI's columns through the same `Column` constants
//! its table is made of, so a column renamed in one place is renamed everywhere, and
//! [`View::check`] (run for every KPI by a test) refuses a view that names a column the KPI
//! does not have. The server computes every declared card and chart the same way and the
//! page draws them from the declaration: no KPI is wired by hand past its file.

use serde::Serialize;

use crate::schema::columns::Column;

/// What the dashboard's query reads of the KPI table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Read {
    /// Whole-minute windows of the last [`super::TREND_MINUTES`] (sliding windows overlap;
    /// only those starting on a whole minute tile time, so each event is counted once).
    Trend,
    /// The newest `limit` windows ending in the last `minutes`.
    Newest { minutes: i64, limit: usize },
    /// Every row of the newest whole-minute window ending in the last `minutes` (a KPI with
    /// several rows per window, such as a top list).
    LatestWindow { minutes: i64 },
}

/// A number per whole minute (or per period) computed from the KPI's rows.
#[derive(Clone, Copy, Debug)]
pub enum Measure {
    /// The sum of these columns.
    Sum(&'static [Column]),
    /// Σ first ÷ Σ second (none when the second sums to 0): rates of sums, never sums of rates.
    Ratio(&'static [Column], &'static [Column]),
    /// The newest window's value (a KPI whose window is as long as the period: active users).
    Newest(Column),
}

impl Measure {
    pub fn columns(&self) -> Vec<Column> {
        match self {
            Measure::Sum(c) => c.to_vec(),
            Measure::Ratio(a, b) => a.iter().chain(b.iter()).copied().collect(),
            Measure::Newest(c) => vec![*c],
        }
    }
}

/// How the page writes a number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Count,
    Money,
    Percent,
}

/// The raw rows behind a figure (the page's "rows" panel, `GET /api/rows`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rows {
    Orders,
    /// ERROR and FATAL errors (what the error figures count).
    SeriousErrors,
    Clicks,
}

/// A card: the measure over the page's period (its newest whole minutes), against the period
/// before.
#[derive(Clone, Copy, Debug)]
pub struct Card {
    /// The card's name on the page and in the `kpis` message (unique over the registry).
    pub id: &'static str,
    pub title: &'static str,
    /// What it counts, in a few words.
    pub note: &'static str,
    pub measure: Measure,
    pub format: Format,
    /// A rise is bad (errors): the page colours the change the other way round.
    pub inverse: bool,
    pub rows: Option<Rows>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChartKind {
    /// One line per series (per value of `split_by` when set), a point per whole minute.
    Line,
    /// Bars of the newest whole minute's steps, each with its rate to the step before.
    Funnel,
    /// The rows of the newest window, in their columns.
    Table,
}

#[derive(Clone, Copy, Debug)]
pub struct Series {
    pub label: &'static str,
    pub measure: Measure,
}

#[derive(Clone, Copy, Debug)]
pub struct Chart {
    /// Unique within the KPI; the page names it `<kpi>.<id>`.
    pub id: &'static str,
    pub title: &'static str,
    /// What each value divides or counts: said on the page.
    pub note: &'static str,
    pub kind: ChartKind,
    pub series: &'static [Series],
    /// One line per value of this column (a device type).
    pub split_by: Option<Column>,
    /// Table columns (kind `Table`).
    pub columns: &'static [Column],
    pub format: Format,
    pub rows: Option<Rows>,
}

impl Chart {
    /// A line chart of one measure.
    pub const fn line(
        id: &'static str,
        title: &'static str,
        note: &'static str,
        series: &'static [Series],
        format: Format,
        rows: Option<Rows>,
    ) -> Chart {
        Chart {
            id,
            title,
            note,
            kind: ChartKind::Line,
            series,
            split_by: None,
            columns: &[],
            format,
            rows,
        }
    }
}

/// Everything the page shows of one KPI.
#[derive(Clone, Copy, Debug)]
pub struct View {
    pub read: Read,
    pub cards: &'static [Card],
    pub charts: &'static [Chart],
}

impl View {
    /// Every column the view names is one of the KPI's own columns (by name and type).
    pub fn check(&self, kpi: &str, columns: &[Column]) -> Result<(), String> {
        let named = self
            .cards
            .iter()
            .flat_map(|c| c.measure.columns())
            .chain(
                self.charts
                    .iter()
                    .flat_map(|c| c.series.iter().flat_map(|s| s.measure.columns())),
            )
            .chain(self.charts.iter().flat_map(|c| c.split_by))
            .chain(self.charts.iter().flat_map(|c| c.columns.iter().copied()));
        for c in named {
            if !columns
                .iter()
                .any(|own| own.name == c.name && own.ty == c.ty)
            {
                return Err(format!(
                    "KPI {kpi}: its view names column {:?}, which its table does not have",
                    c.name
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::columns::{col, ColumnType::*};

    const ORDERS: Column = col("orders_count", Long);
    const RENAMED: Column = col("order_count", Long);

    #[test]
    fn a_view_naming_a_column_its_kpi_lacks_is_refused() {
        let cards = |c: &'static [Column]| {
            [Card {
                id: "orders",
                title: "Orders",
                note: "",
                measure: Measure::Sum(c),
                format: Format::Count,
                inverse: false,
                rows: None,
            }]
        };
        static GOOD: [Column; 1] = [ORDERS];
        static STALE: [Column; 1] = [RENAMED];
        let good = cards(&GOOD);
        let stale = cards(&STALE);
        let view = |cards: &'static [Card]| View {
            read: Read::Trend,
            cards,
            charts: &[],
        };
        let good: &'static [Card] = Box::leak(Box::new(good));
        let stale: &'static [Card] = Box::leak(Box::new(stale));
        assert!(view(good).check("k", &[ORDERS]).is_ok());
        // The column was renamed in the table but the view still names the old one.
        let e = view(stale).check("k", &[ORDERS]).unwrap_err();
        assert!(e.contains("order_count"), "{e}");
        // Same name, other type: refused too.
        assert!(view(good)
            .check("k", &[col("orders_count", Double)])
            .is_err());
    }
}
