//! `conversion_by_device_per_minute` (ours): conversion per device type per 1-minute window
//! sliding 30 s, with the funnel's meaning: of the users who clicked on that device, the share
//! who ordered in the same window (`conversion_rate = converted_users ÷ clicking_users`, so it
//! never exceeds 100 %). Orders carry no device, so a user who clicked on two devices counts
//! for both; per device also the clicks on it and the orders of its converted users. Orders of
//! users without a click in the window count for no device (they are in
//! `conversion_per_minute`, the overall figure). Exact: sets per pane.

use std::collections::BTreeMap;

use foldhash::{HashMap, HashMapExt, HashSet};

use super::view::{Chart, ChartKind, Format, Measure, Read, Series, View};
use super::{KpiDef, KpiRow, MINUTE};
use crate::events::{EventKind, Micros};
use crate::schema::columns::{col, Column, ColumnType::*, Value};
use crate::windows::{Acc, Fact};

pub struct DeviceConversion;

pub const DEVICE_TYPE: Column = col("device_type", Str);
pub const CLICKS_COUNT: Column = col("clicks_count", Long);
pub const CLICKING_USERS: Column = col("clicking_users", Long);
pub const CONVERTED_USERS: Column = col("converted_users", Long);
pub const ORDERS_COUNT: Column = col("orders_count", Long);
pub const CONVERSION_RATE: Column = col("conversion_rate", Double);

impl KpiDef for DeviceConversion {
    const NAME: &'static str = "device_conversion";
    const TABLE: &'static str = "conversion_by_device_per_minute";
    const INPUTS: &'static [EventKind] = &[EventKind::Orders, EventKind::Clicks];
    const WINDOW: super::WindowDefaults = MINUTE;
    const COLUMNS: &'static [Column] = &[
        DEVICE_TYPE,
        CLICKS_COUNT,
        CLICKING_USERS,
        CONVERTED_USERS,
        ORDERS_COUNT,
        CONVERSION_RATE,
    ];
    const VIEW: Option<View> = Some(View {
        read: Read::Trend,
        cards: &[],
        charts: &[Chart {
            id: "by_device",
            title: "Conversion by device",
            note: "users of the device who ordered ÷ users of the device who clicked",
            kind: ChartKind::Line,
            series: &[Series {
                label: "conversion",
                measure: Measure::Ratio(&[CONVERTED_USERS], &[CLICKING_USERS]),
            }],
            split_by: Some(DEVICE_TYPE),
            columns: &[],
            format: Format::Percent,
            rows: None,
        }],
    });
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

#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(into = "DeviceParts", try_from = "DeviceParts")]
pub struct DeviceAcc {
    /// Per device: clicks and the users who clicked.
    devices: HashMap<&'static str, (i64, HashSet<Box<str>>)>,
    /// Orders per user.
    orders: HashMap<Box<str>, i64>,
    budget: super::KeyBudget,
}

/// How a pane travels: per device (clicks, users), and orders per user.
#[derive(serde::Serialize, serde::Deserialize)]
struct DeviceParts {
    devices: Vec<(Box<str>, i64, Vec<Box<str>>)>,
    orders: Vec<(Box<str>, i64)>,
}

impl From<DeviceAcc> for DeviceParts {
    fn from(a: DeviceAcc) -> Self {
        DeviceParts {
            devices: a
                .devices
                .into_iter()
                .map(|(d, (n, users))| (d.into(), n, users.into_iter().collect()))
                .collect(),
            orders: a.orders.into_iter().collect(),
        }
    }
}

impl TryFrom<DeviceParts> for DeviceAcc {
    type Error = String;
    fn try_from(p: DeviceParts) -> Result<Self, String> {
        let mut acc = DeviceAcc::default();
        for (device, n, users) in p.devices {
            // Devices are one of a fixed list: the decoder refused any other.
            let Some(known) = crate::events::DEVICE_TYPES.iter().find(|d| **d == &*device) else {
                return Err(format!("unknown device type {device:?}"));
            };
            let e = acc.devices.entry(*known).or_default();
            e.0 += n;
            e.1.extend(users);
        }
        acc.orders.extend(p.orders);
        Ok(acc)
    }
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

    fn merge(&mut self, o: Self) {
        for (user, n) in o.orders {
            match self.orders.get_mut(&user) {
                Some(m) => *m += n,
                None => {
                    if self.budget.admit(user.len()) {
                        self.orders.insert(user, n);
                    }
                }
            }
        }
        for (device, (n, users)) in o.devices {
            let (clicks, mine) = self.devices.entry(device).or_default();
            *clicks += n;
            super::union_into(mine, &mut self.budget, users);
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
                    conversion: (!users.is_empty())
                        .then(|| bought.len() as f64 / users.len() as f64),
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
        // d clicks on tablet three times and never orders.
        for _ in 0..3 {
            p2.add(&Fact::Click(&click("d", "tablet")));
        }
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
                ("tablet", 3, 1, 0, 0, Some(0.0)),
            ]
        );
        // A user who orders three times after one click is one converted user: 100 %, not 300 %.
        let mut p = DeviceAcc::default();
        p.add(&Fact::Click(&click("e", "mobile")));
        for _ in 0..3 {
            p.add(&Fact::Order(&order("e")));
        }
        assert_eq!(
            DeviceAcc::window_rows(&[&p], 0, 60)[0].conversion,
            Some(1.0)
        );
        assert!(DeviceAcc::window_rows(&[&DeviceAcc::default()], 0, 60).is_empty());
    }
}
