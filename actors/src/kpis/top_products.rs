//! `top_products_per_minute` (ours): the 10 products with the most revenue per 1-minute
//! window sliding 30 s, and one more row for all the other products together (`product_id`
//! NULL, `products` how many). Exact: every product is counted per pane, so the top 10 of a
//! window are the top 10 of its events, not of per-pane tops. Ranked by revenue in whole cents,
//! then by `product_id`, so a recount ranks ties the same way.

use foldhash::{HashMap, HashMapExt};

use super::view::{Chart, ChartKind, Format, Read, Rows, View};
use super::{KpiDef, KpiRow, MINUTE};
use crate::events::{EventKind, Micros};
use crate::schema::columns::{col, Column, ColumnType::*, Value};
use crate::windows::{Acc, Fact};

/// Products named per window; the rest share the "other" row.
pub const TOP: usize = 10;

pub struct TopProducts;

pub const PRODUCT_RANK: Column = col("product_rank", Long);
pub const PRODUCT_ID: Column = col("product_id", Str);
pub const PRODUCTS: Column = col("products", Long);
pub const ORDERS_COUNT: Column = col("orders_count", Long);
pub const QUANTITY: Column = col("quantity", Long);
pub const REVENUE: Column = col("revenue", Double);

impl KpiDef for TopProducts {
    const NAME: &'static str = "top_products";
    const TABLE: &'static str = "top_products_per_minute";
    const INPUTS: &'static [EventKind] = &[EventKind::Orders];
    const WINDOW: super::WindowDefaults = MINUTE;
    const COLUMNS: &'static [Column] = &[
        PRODUCT_RANK,
        PRODUCT_ID,
        PRODUCTS,
        ORDERS_COUNT,
        QUANTITY,
        REVENUE,
    ];
    const VIEW: Option<View> = Some(View {
        read: Read::LatestWindow { minutes: 15 },
        cards: &[],
        charts: &[Chart {
            id: "top",
            title: "Top products by revenue",
            note: "the newest closed minute: top 10 by revenue, then the other products together",
            kind: ChartKind::Table,
            series: &[],
            split_by: None,
            columns: &[
                PRODUCT_RANK,
                PRODUCT_ID,
                PRODUCTS,
                ORDERS_COUNT,
                QUANTITY,
                REVENUE,
            ],
            format: Format::Money,
            rows: Some(Rows::Orders),
        }],
    });
    type Acc = ProductsAcc;
    fn row(r: &ProductRow) -> KpiRow {
        KpiRow {
            start: r.window_start,
            end: r.window_end,
            values: vec![
                Value::Long(r.rank),
                r.product_id.clone().map_or(Value::Null, Value::Str),
                Value::Long(r.products),
                Value::Long(r.orders),
                Value::Long(r.quantity),
                Value::Double(r.revenue),
            ],
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct Sold {
    orders: i64,
    quantity: i64,
    revenue: f64,
}

impl Sold {
    fn add(&mut self, o: &Sold) {
        self.orders += o.orders;
        self.quantity += o.quantity;
        self.revenue += o.revenue;
    }
}

#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct ProductsAcc {
    by_product: HashMap<Box<str>, Sold>,
    #[serde(skip)]
    budget: super::KeyBudget,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ProductRow {
    pub window_start: Micros,
    pub window_end: Micros,
    /// 1..=10, then 11 for the other products.
    pub rank: i64,
    /// `None` on the "other products" row.
    pub product_id: Option<String>,
    pub products: i64,
    pub orders: i64,
    pub quantity: i64,
    pub revenue: f64,
}

/// Revenue in whole cents: what ranks (sums in another order must rank the same).
fn cents(revenue: f64) -> i64 {
    (revenue * 100.0).round() as i64
}

impl Acc for ProductsAcc {
    type Row = ProductRow;
    fn add(&mut self, fact: &Fact<'_>) {
        if let Fact::Order(o) = fact {
            let sold = Sold {
                orders: 1,
                quantity: i64::from(o.quantity),
                revenue: f64::from(o.quantity) * o.price,
            };
            match self.by_product.get_mut(&*o.product_id) {
                Some(s) => s.add(&sold),
                None => {
                    if self.budget.admit(o.product_id.len()) {
                        self.by_product.insert((&*o.product_id).into(), sold);
                    }
                }
            }
        }
    }

    fn merge(&mut self, o: Self) {
        for (id, sold) in o.by_product {
            match self.by_product.get_mut(&id) {
                Some(s) => s.add(&sold),
                None => {
                    if self.budget.admit(id.len()) {
                        self.by_product.insert(id, sold);
                    }
                }
            }
        }
    }

    fn window_rows(panes: &[&Self], start: Micros, end: Micros) -> Vec<ProductRow> {
        let mut all: HashMap<&str, Sold> = HashMap::new();
        for p in panes {
            for (id, s) in &p.by_product {
                all.entry(&**id).or_default().add(s);
            }
        }
        let mut ranked: Vec<(&str, Sold)> = all.into_iter().collect();
        ranked.sort_by(|a, b| {
            cents(b.1.revenue)
                .cmp(&cents(a.1.revenue))
                .then_with(|| a.0.cmp(b.0))
        });
        let row = |rank: usize, product_id: Option<String>, products: usize, s: Sold| ProductRow {
            window_start: start,
            window_end: end,
            rank: rank as i64,
            product_id,
            products: products as i64,
            orders: s.orders,
            quantity: s.quantity,
            revenue: s.revenue,
        };
        let mut rows: Vec<ProductRow> = ranked
            .iter()
            .take(TOP)
            .enumerate()
            .map(|(i, (id, s))| row(i + 1, Some(id.to_string()), 1, *s))
            .collect();
        if ranked.len() > TOP {
            let mut other = Sold::default();
            for (_, s) in &ranked[TOP..] {
                other.add(s);
            }
            rows.push(row(TOP + 1, None, ranked.len() - TOP, other));
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kpis::fixtures::sale;

    fn rows(panes: &[&[(&str, i32, f64)]]) -> Vec<(i64, Option<String>, i64, i64, f64)> {
        let accs: Vec<ProductsAcc> = panes
            .iter()
            .map(|p| {
                let mut acc = ProductsAcc::default();
                for (id, q, price) in *p {
                    acc.add(&Fact::Order(&sale("u", id, *q, *price)));
                }
                acc
            })
            .collect();
        let refs: Vec<&ProductsAcc> = accs.iter().collect();
        ProductsAcc::window_rows(&refs, 0, 60)
            .into_iter()
            .map(|r| (r.rank, r.product_id, r.products, r.orders, r.revenue))
            .collect()
    }

    #[test]
    fn top_ten_and_the_rest() {
        assert!(rows(&[&[]]).is_empty());
        // Ties in revenue rank by product id; a product split across panes counts whole.
        assert_eq!(
            rows(&[
                &[("b", 1, 5.0), ("a", 2, 2.5)],
                &[("c", 1, 1.0), ("c", 1, 9.0)]
            ]),
            vec![
                (1, Some("c".into()), 1, 2, 10.0),
                (2, Some("a".into()), 1, 1, 5.0),
                (3, Some("b".into()), 1, 1, 5.0),
            ]
        );
        // 13 products: p12 (most revenue) first, then down to p3; p0..p2 are "other".
        let many: Vec<(String, i32, f64)> = (0..13)
            .map(|i| (format!("p{i:02}"), 1, 1.0 + i as f64))
            .collect();
        let many: Vec<(&str, i32, f64)> =
            many.iter().map(|(s, q, p)| (s.as_str(), *q, *p)).collect();
        let got = rows(&[&many]);
        assert_eq!(got.len(), TOP + 1);
        assert_eq!(got[0].1.as_deref(), Some("p12"));
        assert_eq!(got[9].1.as_deref(), Some("p03"));
        assert_eq!(got[10], (11, None, 3, 3, 1.0 + 2.0 + 3.0));
        let total: f64 = got.iter().map(|r| r.4).sum();
        assert_eq!(
            total,
            (1..=13).sum::<i32>() as f64,
            "top + other = all revenue"
        );
    }
}
