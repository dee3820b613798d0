//! Alert rules as pure values, one file each. A rule says what it watches (raw events, the
//! closed windows of one KPI table, or a topic's silence), how it decides, how it words the
//! alert, and its default parameters (`[alerts.<key>]`). [`RULES`] is the only list.
//!
//! Adding a rule: one file here with a `pub const RULE: Rule`, and one line in [`RULES`].

pub mod error_spike;
pub mod fatal_error;
pub mod high_error_rate;
pub mod no_data;
pub mod orders_drop;
pub mod revenue_drop;

pub use super::alert::EventAlert;
use super::params::Params;
use super::series::Direction;
use crate::events::{EventKind, Micros};
use crate::windows::Fact;

/// Every rule, in the order they are evaluated.
pub static RULES: [&Rule; 6] = [
    &fatal_error::RULE,
    &error_spike::RULE,
    &orders_drop::RULE,
    &revenue_drop::RULE,
    &high_error_rate::RULE,
    &no_data::RULE,
];

pub fn by_key(key: &str) -> Option<&'static Rule> {
    RULES.iter().copied().find(|r| r.key == key)
}

#[derive(Debug)]
pub struct Rule {
    /// `alert_type` in the alerts table (the seed's name for the seed's rule).
    pub name: &'static str,
    /// `[alerts.<key>]` in the configuration.
    pub key: &'static str,
    pub trigger: Trigger,
    pub defaults: Params,
}

#[derive(Debug)]
pub enum Trigger {
    /// One alert per raw event of `topic` for which `fire` says so.
    Event {
        topic: EventKind,
        fire: fn(&Fact<'_>) -> Option<EventAlert>,
    },
    /// Every closed window of the KPI table `table`, in order (empty windows count as zero).
    Window {
        table: &'static str,
        check: WindowCheck,
    },
    /// A topic without new records for `after_s` (silence parameters).
    Silence,
}

#[derive(Debug)]
pub enum WindowCheck {
    /// `metric` (summed per `group_by` value, or over the window) leaves its moving mean in
    /// `direction` (anomaly parameters); one series per group.
    Anomaly {
        metric: &'static str,
        group_by: Option<&'static str>,
        direction: Direction,
        describe: fn(&Fired<'_>) -> String,
    },
    /// The ratio column `metric` rises above the threshold while the window's `volume` (the
    /// sum of those columns) is at least the minimum (threshold parameters).
    Above {
        metric: &'static str,
        volume: &'static [&'static str],
        describe: fn(&Fired<'_>) -> String,
    },
}

/// A window rule that fired, for its wording.
pub struct Fired<'a> {
    pub key: &'a str,
    pub value: f64,
    pub start: Micros,
    pub end: Micros,
    /// Moving mean (anomalies) or the window's volume (thresholds).
    pub mean: f64,
    pub threshold: f64,
    /// A number from the window's row (0 when the window had none).
    pub column: &'a dyn Fn(&str) -> f64,
}

/// Rules with the parameters the configuration gave them.
pub type RuleSet = Vec<(&'static Rule, Params)>;

/// Every rule with its defaults.
pub fn defaults() -> RuleSet {
    RULES.iter().map(|r| (*r, r.defaults)).collect()
}

/// `HH:MM:SS` of an event time, for descriptions.
pub fn hm(t: Micros) -> String {
    chrono::DateTime::from_timestamp_micros(t)
        .map(|d| d.format("%H:%M:%S").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn the_registry_is_consistent() {
        let names: HashSet<_> = RULES.iter().map(|r| r.name).collect();
        let keys: HashSet<_> = RULES.iter().map(|r| r.key).collect();
        assert_eq!(names.len(), RULES.len());
        assert_eq!(keys.len(), RULES.len());
        for r in RULES {
            assert!(r.defaults.check().is_ok(), "{}", r.name);
            if let Trigger::Window { table, check } = &r.trigger {
                let kpi = crate::kpis::by_table(table).expect("a rule watches a KPI table");
                let metric = match check {
                    WindowCheck::Anomaly { metric, .. } | WindowCheck::Above { metric, .. } => {
                        metric
                    }
                };
                assert!(kpi.column(metric).is_some(), "{}: {metric}", r.name);
            }
        }
    }
}
