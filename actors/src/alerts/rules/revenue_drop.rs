//! REVENUE_DROP: revenue per window falls below its moving mean.

use super::{hm, Fired, Rule, Trigger, WindowCheck};
use crate::alerts::params::{Params, ANOMALY};
use crate::alerts::series::Direction;
use crate::kpis::{orders_revenue::OrdersRevenue, KpiDef};

pub const RULE: Rule = Rule {
    name: "REVENUE_DROP",
    key: "revenue_drop",
    trigger: Trigger::Window {
        table: OrdersRevenue::TABLE,
        check: WindowCheck::Anomaly {
            metric: "total_revenue",
            group_by: None,
            direction: Direction::Below,
            describe,
        },
    },
    defaults: Params::Anomaly(ANOMALY),
};

fn describe(f: &Fired<'_>) -> String {
    format!(
        "Revenue dropped to ${:.2} in window {} – {} (moving mean ${:.2}, threshold ${:.2})",
        f.value,
        hm(f.start),
        hm(f.end),
        f.mean,
        f.threshold
    )
}
