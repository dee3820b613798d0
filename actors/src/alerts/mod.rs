//! Alerts: the rules (pure) and what the detector needs to evaluate them.

pub mod rules;

pub use rules::{
    alert_id, fatal_alert, rate_crossing, Alert, AlertRules, AlertType, AnomalyRule, Crossing,
    Direction, RateRule, Series, SilenceRule,
};
