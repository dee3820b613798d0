//! `conversion_by_device_per_minute` (ours): conversion per device type per 1-minute window
//! sliding 30 s. Orders carry no device, so an order counts for every device its user clicked
//! from in the same window (a user on two devices counts for both): per device, the clicks on
//! it, the users who clicked on it, how many of them ordered, their orders, and
//! conversion = orders ÷ clicks. Orders of users without a click in the window count for no
//! device (they are in `conversion_per_minute`, the overall figure). Exact: sets per pane.

use std::collections::BTreeMap;

use foldhash::{HashMap, HashMapExt, HashSet};

use super::{Dashboard, KpiDef, KpiRow, MINUTE};
use crate::events::{EventKind, Micros};
use crate::schema::columns::{col, Column, ColumnType::*, Value};
use crate::windows::{Acc, Fact};

pub struct DeviceConversion;

impl KpiDef for DeviceConversion {
    const NAME: &'static str = "device_conversion";
    const TABLE: &'static str = "conversion_by_device_per_minute";
    const INPUTS: &'static [EventKind] = &[EventKind::Orders, EventKind::Clicks];
    const WINDOW: super::WindowDefaults = MINUTE;
    const COLUMNS: &'static [Column] = &[
        col("device_type", Str),
        col("clicks_count", Long),
        col("clicking_users", Long),
        col("converted_users", Long),
        col("orders_count", Long),
        col("conversion_rate", Double),
    ];
    const DASHBOARD: Option<Dashboard> = Some(Dashboard::Trend);
    type Acc = DeviceAcc;
    fn row(r: &DeviceRow) -> KpiRow {
        KpiRow {
            start: r.window_start,
            end: r.window_end,
            values: vec![
                Value::Str(r.device_type.clone()),
                Value::Long(r.clicks),
                Value::Long(r.clicking_users),
                Value::Long(r.converted_users),
                Value::Long(r.orders),
                Value::opt_f64(r.conversion),
            ],
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct DeviceAcc {
    /// Per device: clicks and the users who clicked.
    devices: HashMap<&'static str, (i64, HashSet<Box<str>>)>,
    /// Orders per user.
    orders: HashMap<Box<str>, i64>,
    budget: super::KeyBudget,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DeviceRow {
    pub window_start: Micros,
    pub window_end: Micros,
    pub device_type: String,
    pub clicks: i64,
    pub clicking_users: i64,
    pub converted_users: i64,
    pub orders: i64,
    pub conversion: Option<f64>,
}

impl Acc for DeviceAcc {
    type Row = DeviceRow;
    fn add(&mut self, fact: &Fact<'_>) {
        match fact {
            Fact::Order(o) => match self.orders.get_mut(&*o.user_id) {
                Some(n) => *n += 1,
                None => {
                    if self.budget.admit(o.user_id.len()) {
                        self.orders.insert((&*o.user_id).into(), 1);
                    }
                }
            },
            Fact::Click(c) => {
                let (clicks, users) = self.devices.entry(c.device_type).or_default();
                *clicks += 1;
                if !users.contains(&*c.user_id) && self.budget.admit(c.user_id.len()) {
                    users.insert((&*c.user_id).into());
                }
            }
            Fact::Error(_) => {}
        }
    }

    fn window_rows(panes: &[&Self], start: Micros, end: Micros) -> Vec<DeviceRow> {
        let mut orders: HashMap<&str, i64> = HashMap::new();
        for p in panes {
            for (u, n) in &p.orders {
                *orders.entry(&**u).or_default() += n;
            }
        }
        let mut devices: BTreeMap<&str, (i64, HashSet<&str>)> = BTreeMap::new();
        for p in panes {
            for (d, (clicks, users)) in &p.devices {
                let e = devices.entry(*d).or_default();
                e.0 += clicks;
                e.1.extend(users.iter().map(|u| &**u));
            }
        }
        devices
            .into_iter()
            .map(|(device, (clicks, users))| {
                let bought: Vec<i64> = users
                    .iter()
                    .filter_map(|u| orders.get(u))
                    .copied()
                    .collect();
                let n: i64 = bought.iter().sum();
                DeviceRow {
                    window_start: start,
                    window_end: end,
                    device_type: device.to_string(),
                    clicks,
                    clicking_users: users.len() as i64,
                    converted_users: bought.len() as i64,
                    orders: n,
                    conversion: (clicks > 0).then(|| n as f64 / clicks as f64),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kpis::fixtures::{click, order};

    #[test]
    fn orders_count_for_the_devices_their_users_clicked_from() {
        // Pane 1: a clicks on mobile twice, b on desktop; pane 2: a orders twice, c orders
        // (no click: no device), b clicks on mobile too.
        let mut p1 = DeviceAcc::default();
        p1.add(&Fact::Click(&click("a", "mobile")));
        p1.add(&Fact::Click(&click("a", "mobile")));
        p1.add(&Fact::Click(&click("b", "desktop")));
        let mut p2 = DeviceAcc::default();
        p2.add(&Fact::Order(&order("a")));
        p2.add(&Fact::Order(&order("a")));
        p2.add(&Fact::Order(&order("c")));
        p2.add(&Fact::Click(&click("b", "mobile")));
        p2.add(&Fact::Order(&order("b")));
        let rows = DeviceAcc::window_rows(&[&p1, &p2], 0, 60);
        let got: Vec<_> = rows
            .iter()
            .map(|r| {
                (
                    r.device_type.as_str(),
                    r.clicks,
                    r.clicking_users,
                    r.converted_users,
                    r.orders,
                    r.conversion,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("desktop", 1, 1, 1, 1, Some(1.0)),
                ("mobile", 3, 2, 2, 3, Some(1.0)),
            ]
        );
        assert!(DeviceAcc::window_rows(&[&DeviceAcc::default()], 0, 60).is_empty());
    }
}
