//! `funnel_per_minute` (ours): how far users get per 1-minute window sliding 30 s. The steps
//! are the pages the seed's clicks carry — home (`/page/home`, `/`), product
//! (`/page/product…`, `/product…`), cart (`/page/cart`, `/cart`) — then an order. A step
//! counts the distinct users who reached it **and every step before it** in the window, so
//! each step's rate (users at the step ÷ users at the step before) is never above 100 %. Exact:
//! a set of users per step per pane.

use foldhash::{HashSet, HashSetExt};

use super::view::{Chart, ChartKind, Format, Measure, Read, Rows, Series, View};
use super::{KpiDef, KpiRow, MINUTE};
use crate::events::{EventKind, Micros};
use crate::schema::columns::{col, Column, ColumnType::*, Value};
use crate::windows::{Acc, Fact};

pub struct Funnel;

pub const HOME_USERS: Column = col("home_users", Long);
pub const PRODUCT_USERS: Column = col("product_users", Long);
pub const CART_USERS: Column = col("cart_users", Long);
pub const ORDERED_USERS: Column = col("ordered_users", Long);
pub const PRODUCT_RATE: Column = col("product_rate", Double);
pub const CART_RATE: Column = col("cart_rate", Double);
pub const ORDER_RATE: Column = col("order_rate", Double);

impl KpiDef for Funnel {
    const NAME: &'static str = "funnel";
    const TABLE: &'static str = "funnel_per_minute";
    const INPUTS: &'static [EventKind] = &[EventKind::Clicks, EventKind::Orders];
    const WINDOW: super::WindowDefaults = MINUTE;
    const COLUMNS: &'static [Column] = &[
        HOME_USERS,
        PRODUCT_USERS,
        CART_USERS,
        ORDERED_USERS,
        PRODUCT_RATE,
        CART_RATE,
        ORDER_RATE,
    ];
    const VIEW: Option<View> = Some(View {
        read: Read::Trend,
        cards: &[],
        charts: &[Chart {
            id: "steps",
            title: "Funnel",
            note: "users of the newest closed minute at each step who also reached every step before it; each rate divides a step by the one before",
            kind: ChartKind::Funnel,
            series: &[
                Series {
                    label: "home",
                    measure: Measure::Sum(&[HOME_USERS]),
                },
                Series {
                    label: "product",
                    measure: Measure::Sum(&[PRODUCT_USERS]),
                },
                Series {
                    label: "cart",
                    measure: Measure::Sum(&[CART_USERS]),
                },
                Series {
                    label: "order",
                    measure: Measure::Sum(&[ORDERED_USERS]),
                },
            ],
            split_by: None,
            columns: &[],
            format: Format::Count,
            rows: Some(Rows::Clicks),
        }],
    });
    type Acc = FunnelAcc;
    fn row(r: &FunnelRow) -> KpiRow {
        let [home, product, cart, ordered] = r.users;
        let rate = |n: i64, of: i64| Value::opt_f64((of > 0).then(|| n as f64 / of as f64));
        KpiRow {
            start: r.window_start,
            end: r.window_end,
            values: vec![
                Value::Long(home),
                Value::Long(product),
                Value::Long(cart),
                Value::Long(ordered),
                rate(product, home),
                rate(cart, product),
                rate(ordered, cart),
            ],
        }
    }
}

/// Which step a page is, from its URL (query string and trailing slash aside).
pub fn step_of(url: &str) -> Option<usize> {
    let path = url.split(['?', '#']).next().unwrap_or("");
    let path = path.strip_prefix("/page").unwrap_or(path);
    let path = if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
    };
    match path {
        "/" | "" | "/home" => Some(0),
        p if p.starts_with("/product") => Some(1),
        "/cart" => Some(2),
        _ => None,
    }
}

/// The funnel's steps: the three pages, then an order.
pub const STEPS: [&str; 4] = ["home", "product", "cart", "order"];

/// The same pages as [`step_of`], as regular expressions over the whole URL for SQL
/// (`regexp_like`, in DataFusion and Dremio alike): the rows behind a step.
pub const STEP_PATTERNS: [&str; 3] = [
    "^(/page)?(/|/home/?)?([?#].*)?$",
    "^(/page)?/product.*$",
    "^(/page)?/cart/?([?#].*)?$",
];

#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct FunnelAcc {
    /// Per step, the users who reached it in this pane.
    users: [HashSet<Box<str>>; 4],
    /// Some click or order was folded (a window with events has a row, zeros or not).
    seen: bool,
    #[serde(skip)]
    budget: super::KeyBudget,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FunnelRow {
    pub window_start: Micros,
    pub window_end: Micros,
    /// Users at each step who also reached every step before it.
    pub users: [i64; 4],
}

impl FunnelAcc {
    fn reach(&mut self, step: usize, user: &str) {
        let set = &mut self.users[step];
        if !set.contains(user) && self.budget.admit(user.len()) {
            set.insert(user.into());
        }
    }
}

impl Acc for FunnelAcc {
    type Row = FunnelRow;
    fn add(&mut self, fact: &Fact<'_>) {
        self.seen |= !matches!(fact, Fact::Error(_));
        match fact {
            Fact::Click(c) => {
                if let Some(step) = step_of(&c.url) {
                    self.reach(step, &c.user_id);
                }
            }
            Fact::Order(o) => self.reach(3, &o.user_id),
            Fact::Error(_) => {}
        }
    }
    fn merge(&mut self, o: Self) {
        self.seen |= o.seen;
        for (mine, theirs) in self.users.iter_mut().zip(o.users) {
            super::union_into(mine, &mut self.budget, theirs);
        }
    }

    fn window_rows(panes: &[&Self], start: Micros, end: Micros) -> Vec<FunnelRow> {
        let reached: Vec<HashSet<&str>> = (0..4)
            .map(|step| {
                let mut all = HashSet::new();
                for p in panes {
                    all.extend(p.users[step].iter().map(|u| &**u));
                }
                all
            })
            .collect();
        if !panes.iter().any(|p| p.seen) {
            return Vec::new();
        }
        // Users through step k: at step k and through every step before it.
        let mut through: HashSet<&str> = reached[0].clone();
        let mut users = [0i64; 4];
        for (step, at) in reached.iter().enumerate() {
            if step > 0 {
                through.retain(|u| at.contains(u));
            }
            users[step] = through.len() as i64;
        }
        vec![FunnelRow {
            window_start: start,
            window_end: end,
            users,
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Click;
    use crate::kpis::fixtures::order;

    fn visit<'a>(user: &'a str, url: &'a str) -> Click<'a> {
        Click {
            click_id: "c".into(),
            user_id: user.into(),
            url: url.into(),
            device_type: "mobile",
            click_ts: 0,
        }
    }

    #[test]
    fn pages_map_to_steps() {
        let cases = [
            ("/page/home", Some(0)),
            ("/", Some(0)),
            ("/page/product", Some(1)),
            ("/page/product/42?ref=x", Some(1)),
            ("/products", Some(1)),
            ("/page/cart/", Some(2)),
            ("/cart", Some(2)),
            ("/page/profile", None),
            ("/checkout", None),
            ("/search?q=shoes", None),
        ];
        for (url, want) in cases {
            assert_eq!(step_of(url), want, "{url}");
        }
    }

    #[test]
    fn the_sql_patterns_pick_the_same_pages() {
        let urls = [
            "/page/home",
            "/",
            "/home",
            "/page",
            "/page/home/?x=1",
            "/page/product",
            "/page/product/42?ref=x",
            "/products",
            "/page/cart/",
            "/cart",
            "/cart?y",
            "/page/profile",
            "/checkout",
            "/search?q=shoes",
            "/page/homes",
            "/carts",
        ];
        for url in urls {
            let by_sql = STEP_PATTERNS
                .iter()
                .position(|p| regex::Regex::new(p).unwrap().is_match(url));
            assert_eq!(by_sql, step_of(url), "{url}");
        }
    }

    #[test]
    fn a_step_counts_users_through_every_step_before_it() {
        // (clicks per pane as (user, url), orders per pane) → users per step
        type Pane<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);
        let cases: &[(&[Pane], Option<[i64; 4]>)] = &[
            (&[(&[], &[])], None),
            // a: the whole way; b: home and product; c: straight to the cart, then orders
            // (never at home: in no step); d: home only.
            (
                &[(
                    &[
                        ("a", "/page/home"),
                        ("a", "/page/product"),
                        ("a", "/page/cart"),
                        ("b", "/page/home"),
                        ("b", "/page/product"),
                        ("c", "/page/cart"),
                        ("d", "/"),
                    ],
                    &["a", "c"],
                )],
                Some([3, 2, 1, 1]),
            ),
            // Steps across panes of one window still join up; repeats count once.
            (
                &[
                    (&[("a", "/page/home"), ("a", "/page/home")], &[]),
                    (&[("a", "/page/product"), ("a", "/page/cart")], &["a", "a"]),
                ],
                Some([1, 1, 1, 1]),
            ),
            // Orders without any page, or pages outside the funnel: nobody in it, but a row.
            (&[(&[], &["x"])], Some([0, 0, 0, 0])),
            (&[(&[("x", "/page/profile")], &[])], Some([0, 0, 0, 0])),
        ];
        for (panes, want) in cases {
            let accs: Vec<FunnelAcc> = panes
                .iter()
                .map(|(clicks, orders)| {
                    let mut acc = FunnelAcc::default();
                    for (u, url) in *clicks {
                        acc.add(&Fact::Click(&visit(u, url)));
                    }
                    for u in *orders {
                        acc.add(&Fact::Order(&order(u)));
                    }
                    acc
                })
                .collect();
            let refs: Vec<&FunnelAcc> = accs.iter().collect();
            let got = FunnelAcc::window_rows(&refs, 0, 60)
                .first()
                .map(|r| r.users);
            assert_eq!(got, *want, "{panes:?}");
        }
        let row = Funnel::row(&FunnelRow {
            window_start: 0,
            window_end: 60,
            users: [4, 2, 0, 0],
        });
        assert_eq!(
            row.values[4..],
            [Value::Double(0.5), Value::Double(0.0), Value::Null]
        );
    }
}
