//! ORDERS_DROP: orders per window fall below their moving mean.

use super::{hm, Fired, Rule, Trigger, WindowCheck};
use crate::alerts::params::{Params, ANOMALY};
use crate::alerts::series::Direction;
use crate::kpis::{orders_revenue::OrdersRevenue, KpiDef};

pub const RULE: Rule = Rule {
    name: "ORDERS_DROP",
    key: "orders_drop",
    trigger: Trigger::Window {
        table: OrdersRevenue::TABLE,
        check: WindowCheck::Anomaly {
            metric: "orders_count",
            group_by: None,
            direction: Direction::Below,
            describe,
        },
    },
    defaults: Params::Anomaly(ANOMALY),
};

fn describe(f: &Fired<'_>) -> String {
    format!(
        "Orders dropped to {:.0} in window {} – {} (moving mean {:.1}, threshold {:.1})",
        f.value,
        hm(f.start),
        hm(f.end),
        f.mean,
        f.threshold
    )
}
