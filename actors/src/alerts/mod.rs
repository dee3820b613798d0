//! Alerts, pure: the rules as values (`rules/`, one file each, listed once in
//! [`rules::RULES`]), their parameters (`params`), the moving statistics anomaly rules share
//! (`series`), the alerts table and its rows (`alert`), the evaluator that owns the
//! detector's checkpoint state (`evaluator`), how alerts group into pages (`grouping`), and
//! what operators said about them (`actions`: acknowledge, silence). The detector actor only
//! routes rows in and commits the alerts that come out.
//!
//! Alert ids are a hash of rule, key and window (or source record), so a replay after a crash
//! produces the same ids and never a second alert.

pub mod actions;
pub mod alert;
pub mod evaluator;
pub mod grouping;
pub mod params;
pub mod rules;
pub mod series;
mod state;

pub use alert::{alert_id, spec, Alert, Alerts, COLUMNS, TABLE};
pub use evaluator::{Activity, ClosedWindows, EvalState, Evaluator};
pub use grouping::{Group, GroupParams, GroupState, Grouper, Mute, Notification};
pub use params::{AnomalyParams, Params, SilenceParams, ThresholdParams};
pub use rules::{Rule, RuleSet, RULES};
pub use series::{rate_crossing, Crossing, Direction, Series};
