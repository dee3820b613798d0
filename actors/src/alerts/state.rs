//! What the alert evaluator reads and records: series keys, each series' state, the state
//! committed with the alerts table, closed KPI windows, topic activity. Types only.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::events::Micros;
use crate::kpis::{Kpi, KpiRow};

/// One series: a rule, and the group it is about (a service) for grouped rules.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", from = "String")]
pub struct SeriesKey {
    pub rule: String,
    pub group: Option<String>,
}

impl SeriesKey {
    pub fn new(rule: &str, group: Option<&str>) -> Self {
        SeriesKey {
            rule: rule.to_string(),
            group: group.map(str::to_string),
        }
    }
}

// Checkpoints spell a key `RULE` or `RULE|group`, as earlier versions did.
impl From<SeriesKey> for String {
    fn from(k: SeriesKey) -> String {
        match k.group {
            Some(g) => format!("{}|{g}", k.rule),
            None => k.rule,
        }
    }
}

impl From<String> for SeriesKey {
    fn from(s: String) -> SeriesKey {
        match s.split_once('|') {
            Some((rule, group)) => SeriesKey::new(rule, Some(group)),
            None => SeriesKey::new(&s, None),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SeriesState {
    pub values: Vec<f64>,
    pub firing: bool,
}

/// What the evaluator records with each commit.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EvalState {
    /// Per KPI table: windows ending at or before this have been evaluated.
    #[serde(default)]
    pub evaluated: BTreeMap<String, Micros>,
    #[serde(default)]
    pub series: BTreeMap<SeriesKey, SeriesState>,
    /// Per topic: the silence (identified by the topic's position) already alerted.
    #[serde(default)]
    pub no_data: BTreeMap<String, i64>,
    /// Earlier versions kept the error-rate rule's flag here; read once into its series.
    #[serde(default, skip_serializing)]
    pub(super) rate_firing: bool,
}

/// Closed windows of one KPI table, up to `until` (every window ending at or before it is
/// final; the ones without a row had no events).
#[derive(Clone, Debug)]
pub struct ClosedWindows {
    pub kpi: &'static dyn Kpi,
    pub until: Micros,
    pub size: Micros,
    pub slide: Micros,
    pub rows: Vec<KpiRow>,
}

/// A topic's position (the sum of its partitions' next offsets) and when it last moved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Activity {
    pub topic: String,
    pub position: i64,
    pub last_moved: Micros,
}
