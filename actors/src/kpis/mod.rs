//! The KPI registry. One file per KPI holds everything that defines it: its accumulator and
//! row, its table name and columns (from which the Iceberg schema, the Arrow encoding and the
//! decoding derive), its input topics, its window defaults and config key, and its portable
//! dashboard query. [`REGISTRY`] is the only list of KPIs; every table list, config section,
//! query set, checker and report derives from it.
//!
//! Adding a KPI: one file here implementing [`KpiDef`], and one line in [`REGISTRY`].

pub mod active_users;
pub mod conversion;
pub mod device_conversion;
mod engine;
pub mod errors;
pub mod funnel;
pub mod orders_revenue;
#[cfg(test)]
mod parts_props;
#[cfg(test)]
mod props;

/// Events for the KPI files' table tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use crate::events::{Click, Order};

    pub fn sale<'a>(user: &'a str, product: &'a str, quantity: i32, price: f64) -> Order<'a> {
        Order {
            order_id: "o".into(),
            user_id: user.into(),
            product_id: product.into(),
            quantity,
            price,
            status: "CREATED",
            order_ts: 0,
        }
    }

    pub fn order(user: &str) -> Order<'_> {
        sale(user, "p", 1, 1.0)
    }

    pub fn click<'a>(user: &'a str, device: &'static str) -> Click<'a> {
        Click {
            click_id: "c".into(),
            user_id: user.into(),
            url: "/".into(),
            device_type: device,
            click_ts: 0,
        }
    }
}
pub mod top_products;
pub mod traffic;
pub mod view;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use serde::Serialize;

pub use engine::{Emitted, FoldStats, KpiEngine, KpiParts, PartOut};
pub use view::{Read, View};

/// Bytes of keys (users, products, services) one pane of one KPI may hold, set once at start
/// from `windows.max_pane_key_bytes`. The exact sets grow with distinct keys; past this a
/// pane keeps what it has, and the keys it refused are counted
/// (`shopwatch_kpi_keys_refused_total`) and logged: its windows then undercount, never
/// exhaust memory.
static PANE_KEY_BYTES: AtomicUsize = AtomicUsize::new(16 << 20);
static KEYS_REFUSED: AtomicU64 = AtomicU64::new(0);

pub fn set_pane_key_bytes(bytes: usize) {
    PANE_KEY_BYTES.store(bytes, Ordering::Relaxed);
}

/// Keys refused since the last call.
pub fn take_refused_keys() -> u64 {
    KEYS_REFUSED.swap(0, Ordering::Relaxed)
}

/// What a pane has spent on keys.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct KeyBudget(usize);

impl KeyBudget {
    /// Whether a new key of `len` bytes may be kept (refusals are counted).
    pub(crate) fn admit(&mut self, len: usize) -> bool {
        let ok = admit_within(&mut self.0, len, PANE_KEY_BYTES.load(Ordering::Relaxed));
        if !ok {
            KEYS_REFUSED.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }
}

/// Add `other`'s keys to `set`, each new one admitted by the pane's budget (merging partials).
pub(crate) fn union_into(
    set: &mut foldhash::HashSet<Box<str>>,
    budget: &mut KeyBudget,
    other: foldhash::HashSet<Box<str>>,
) {
    for key in other {
        if !set.contains(&key) && budget.admit(key.len()) {
            set.insert(key);
        }
    }
}

/// A key costs its bytes and about 48 more (the box, the hash table's slot).
fn admit_within(spent: &mut usize, len: usize, max: usize) -> bool {
    let cost = len + 48;
    if spent.saturating_add(cost) > max {
        return false;
    }
    *spent += cost;
    true
}

use crate::events::{EventKind, Micros};
use crate::schema::columns::{self, col, Column, ColumnType, Value};
use crate::schema::TableSpec;
use crate::windows::{Acc, EngineParams};

/// Every KPI, in the order their tables are created and reported.
pub static REGISTRY: [&dyn Kpi; 8] = [
    &Def(orders_revenue::OrdersRevenue),
    &Def(active_users::ActiveUsers),
    &Def(errors::Errors),
    &Def(traffic::Traffic),
    &Def(conversion::Conversion),
    &Def(top_products::TopProducts),
    &Def(device_conversion::DeviceConversion),
    &Def(funnel::Funnel),
];

/// The KPI writing `table`, if any.
pub fn by_table(table: &str) -> Option<&'static dyn Kpi> {
    REGISTRY.iter().copied().find(|k| k.table() == table)
}

/// The KPI configured as `[windows.<name>]`, if any.
pub fn by_name(name: &str) -> Option<&'static dyn Kpi> {
    REGISTRY.iter().copied().find(|k| k.name() == name)
}

/// A KPI's window geometry and lateness when the configuration says nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct WindowDefaults {
    pub size_s: u64,
    pub slide_s: u64,
    pub lateness_s: u64,
    /// The seed's watermark delay (`windows.seed_watermarks = true`).
    pub seed_lateness_s: u64,
}

/// The seed's 1-minute windows sliding every 30 s with its 2-minute watermark.
pub const MINUTE: WindowDefaults = WindowDefaults {
    size_s: 60,
    slide_s: 30,
    lateness_s: 10,
    seed_lateness_s: 120,
};

/// Minutes of whole-minute windows a trend fetches: the 30-minute chart plus room for the
/// previous 5-minute period when the newest window trails `now` (lateness, commit interval).
pub const TREND_MINUTES: i64 = 40;
const MIN: Micros = 60_000_000;

/// What a KPI file defines. Implemented by a unit struct; the registry wraps it in [`Def`].
pub trait KpiDef: Send + Sync + 'static {
    /// Config key (`[windows.<NAME>]`) and the name of its dashboard query.
    const NAME: &'static str;
    /// The Iceberg table it writes.
    const TABLE: &'static str;
    /// Topics it folds, in the engine's input order.
    const INPUTS: &'static [EventKind];
    /// Topics whose late and skewed events this KPI counts (each topic by exactly one KPI).
    const COUNTS_LATE: &'static [EventKind] = &[];
    const WINDOW: WindowDefaults;
    /// Columns after `window_start` and `window_end`; `emitted_at` follows them.
    const COLUMNS: &'static [Column];
    /// What the page shows of it (none: the table is only in the lake and over Flight).
    const VIEW: Option<View> = None;
    type Acc: Acc + Send + 'static;
    /// A row's window and its values in [`Self::COLUMNS`] order.
    fn row(row: &<Self::Acc as Acc>::Row) -> KpiRow;
}

/// One row of a KPI table: its window and the KPI's own columns.
#[derive(Clone, Debug, PartialEq)]
pub struct KpiRow {
    pub start: Micros,
    pub end: Micros,
    pub values: Vec<Value>,
}

/// A KPI as the rest of the code sees it (object safe; one per registry entry).
pub trait Kpi: Send + Sync + std::fmt::Debug {
    fn name(&self) -> &'static str;
    fn table(&self) -> &'static str;
    fn inputs(&self) -> &'static [EventKind];
    fn counts_late(&self) -> &'static [EventKind];
    fn window(&self) -> WindowDefaults;
    /// The KPI's own columns (after window_start, window_end).
    fn columns(&self) -> &'static [Column];
    fn view(&self) -> Option<View>;
    fn engine(&self, params: EngineParams) -> Box<dyn KpiEngine>;
    /// What an instance folds of its own partitions for the owner to merge.
    fn parts(&self, params: EngineParams) -> Box<dyn KpiParts>;

    /// Every column of the table, in order.
    fn all_columns(&self) -> Vec<Column> {
        let mut all = vec![
            col("window_start", ColumnType::Timestamp),
            col("window_end", ColumnType::Timestamp),
        ];
        all.extend_from_slice(self.columns());
        // When shopwatch wrote the row: window_end → emitted_at is how late a KPI appears.
        all.push(col("emitted_at", ColumnType::Timestamp));
        all
    }

    fn spec(&self) -> TableSpec {
        // `emitted_at` came later than the seed's columns and the KPI's own.
        let all = self.all_columns();
        columns::spec(self.table(), &all, "window_start", all.len() - 1)
    }

    /// Index of one of the KPI's own columns in [`KpiRow::values`].
    fn column(&self, name: &str) -> Option<usize> {
        self.columns().iter().position(|c| c.name == name)
    }

    /// The columns a dashboard query selects (all but `emitted_at`), quoted.
    fn select_list(&self) -> Vec<String> {
        self.all_columns()
            .iter()
            .filter(|c| c.name != "emitted_at")
            .map(|c| crate::sql::ident(c.name))
            .collect()
    }

    /// Whole-minute windows starting at or after `from` and ending by `to` (sliding windows
    /// overlap; only those starting on a whole minute tile time): a trend over any range.
    fn minutes_sql(&self, table: &str, from: Micros, to: Micros) -> String {
        format!(
            "SELECT {} FROM {table} \
             WHERE \"window_start\" >= {} AND \"window_end\" <= {} \
             AND EXTRACT(SECOND FROM \"window_start\") = 0 ORDER BY \"window_start\"",
            self.select_list().join(", "),
            crate::sql::timestamp_literal(from),
            crate::sql::timestamp_literal(to),
        )
    }

    /// The dashboard's portable query, as of `now`, over the three-part `table` name.
    fn dashboard_sql(&self, table: &str, now: Micros) -> Option<String> {
        let names = self.select_list();
        let select = names.join(", ");
        Some(match self.view()?.read {
            Read::Trend => self.minutes_sql(table, now - TREND_MINUTES * MIN, now),
            Read::Newest { minutes, limit } => format!(
                "SELECT {select} FROM {table} \
                 WHERE \"window_end\" > {} ORDER BY \"window_end\" DESC LIMIT {limit}",
                crate::sql::timestamp_literal(now - minutes * MIN),
            ),
            Read::LatestWindow { minutes } => {
                let since = crate::sql::timestamp_literal(now - minutes * MIN);
                format!(
                    "SELECT {select} FROM {table} WHERE \"window_start\" = \
                     (SELECT MAX(\"window_start\") FROM {table} WHERE \"window_end\" > {since} \
                     AND EXTRACT(SECOND FROM \"window_start\") = 0) \
                     ORDER BY {}",
                    names.get(2).map_or("1", String::as_str)
                )
            }
        })
    }
}

/// The registry's wrapper that turns a [`KpiDef`] into a [`Kpi`].
pub struct Def<K>(pub K);

impl<K: KpiDef> std::fmt::Debug for Def<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Kpi({})", K::NAME)
    }
}

impl<K: KpiDef> Kpi for Def<K> {
    fn name(&self) -> &'static str {
        K::NAME
    }
    fn table(&self) -> &'static str {
        K::TABLE
    }
    fn inputs(&self) -> &'static [EventKind] {
        K::INPUTS
    }
    fn counts_late(&self) -> &'static [EventKind] {
        K::COUNTS_LATE
    }
    fn window(&self) -> WindowDefaults {
        K::WINDOW
    }
    fn columns(&self) -> &'static [Column] {
        K::COLUMNS
    }
    fn view(&self) -> Option<View> {
        K::VIEW
    }
    fn engine(&self, params: EngineParams) -> Box<dyn KpiEngine> {
        Box::new(engine::Typed::<K>::new(params))
    }
    fn parts(&self, params: EngineParams) -> Box<dyn KpiParts> {
        Box::new(engine::TypedParts::<K>::new(params))
    }
}

/// Closed or open windows of one KPI, ready to be written (or pushed, or evaluated).
#[derive(Clone, Debug)]
pub struct KpiRows {
    pub kpi: &'static dyn Kpi,
    pub rows: Vec<KpiRow>,
}

impl KpiRows {
    /// Read rows of `kpi`'s table back from a scanned batch.
    pub fn decode(
        kpi: &'static dyn Kpi,
        batch: &arrow_array::RecordBatch,
    ) -> Result<Vec<KpiRow>, String> {
        let all = kpi.all_columns();
        let own = &all[..all.len() - 1];
        columns::decode(batch, own).map(|rows| {
            rows.into_iter()
                .map(|mut v| {
                    let rest = v.split_off(2);
                    let ts = |x: &Value| match x {
                        Value::Timestamp(t) => *t,
                        _ => 0,
                    };
                    KpiRow {
                        start: ts(&v[0]),
                        end: ts(&v[1]),
                        values: rest,
                    }
                })
                .collect()
        })
    }

    /// Distinct windows among the rows.
    pub fn windows(&self) -> u64 {
        let mut starts: Vec<Micros> = self.rows.iter().map(|r| r.start).collect();
        starts.dedup();
        starts.len() as u64
    }
}

impl crate::schema::Encode for KpiRows {
    fn spec(&self) -> TableSpec {
        self.kpi.spec()
    }
    fn len(&self) -> usize {
        self.rows.len()
    }
    fn encode(
        &self,
        schema: arrow_schema::SchemaRef,
        now: Micros,
    ) -> Result<arrow_array::RecordBatch, arrow_schema::ArrowError> {
        let rows: Vec<Vec<Value>> = self
            .rows
            .iter()
            .map(|r| {
                let mut v = Vec::with_capacity(r.values.len() + 3);
                v.push(Value::Timestamp(r.start));
                v.push(Value::Timestamp(r.end));
                v.extend(r.values.iter().cloned());
                v.push(Value::Timestamp(now));
                v
            })
            .collect();
        columns::encode(schema, &self.kpi.all_columns(), &rows)
    }
}

#[cfg(test)]
mod tests;
