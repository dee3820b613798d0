//! ERROR_SPIKE: a service's errors per window rise above their moving mean (one series per
//! service; a service silent for a whole history is forgotten).

use super::{hm, Fired, Rule, Trigger, WindowCheck};
use crate::alerts::params::{AnomalyParams, Params, ANOMALY};
use crate::alerts::series::Direction;
use crate::kpis::{errors::Errors, KpiDef};

pub const RULE: Rule = Rule {
    name: "ERROR_SPIKE",
    key: "error_spike",
    trigger: Trigger::Window {
        table: Errors::TABLE,
        check: WindowCheck::Anomaly {
            metric: "error_count",
            group_by: Some("service_name"),
            direction: Direction::Above,
            describe,
        },
    },
    defaults: Params::Anomaly(AnomalyParams {
        min_value: 5.0,
        ..ANOMALY
    }),
};

fn describe(f: &Fired<'_>) -> String {
    format!(
        "Error spike in service {}: {:.0} errors in window {} – {} (moving mean {:.1}, threshold {:.1})",
        f.key,
        f.value,
        hm(f.start),
        hm(f.end),
        f.mean,
        f.threshold
    )
}
