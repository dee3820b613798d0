//! HIGH_ERROR_RATE: ERROR + FATAL over orders + clicks rises above a threshold in a window
//! with enough traffic.

use super::{hm, Fired, Rule, Trigger, WindowCheck};
use crate::alerts::params::{Params, ThresholdParams};
use crate::kpis::{traffic::Traffic, KpiDef};

pub const RULE: Rule = Rule {
    name: "HIGH_ERROR_RATE",
    key: "high_error_rate",
    trigger: Trigger::Window {
        table: Traffic::TABLE,
        check: WindowCheck::Above {
            metric: "error_rate",
            volume: &["orders_count", "clicks_count"],
            describe,
        },
    },
    defaults: Params::Threshold(ThresholdParams {
        enabled: true,
        threshold: 0.10,
        min_traffic: 50,
    }),
};

fn describe(f: &Fired<'_>) -> String {
    let errors = (f.column)("error_count") + (f.column)("fatal_count");
    format!(
        "Error rate {:.1}% in window {} – {} is above {:.1}% ({} ERROR/FATAL over {} orders and clicks)",
        f.value * 100.0,
        hm(f.start),
        hm(f.end),
        f.threshold * 100.0,
        errors as i64,
        f.mean as i64
    )
}
