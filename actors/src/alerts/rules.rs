//! Alert rules, pure: the detector actor feeds closed windows and events in, alerts come out.
//!
//! Anomaly rules compare a window's value with the mean and standard deviation of the same
//! series over the previous `history` windows, and fire on the transition into the anomalous
//! state (not on every window while it lasts). Alert ids are a hash of rule, key and window,
//! so a replay after a crash produces the same ids and never a second alert.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::events::Micros;

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnomalyRule {
    pub enabled: bool,
    /// Standard deviations away from the moving mean.
    pub k: f64,
    /// Windows in the moving mean.
    pub history: usize,
    /// Windows the series must have before the rule may fire.
    pub min_history: usize,
    /// Also required: the value differs from the mean by at least this fraction of it (a
    /// flat history has σ = 0 and would otherwise fire on any wobble).
    pub min_change: f64,
    /// Spikes only: the value must be at least this.
    pub min_value: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RateRule {
    pub enabled: bool,
    pub threshold: f64,
    /// Orders + clicks a window needs before its error rate means anything.
    pub min_traffic: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SilenceRule {
    pub enabled: bool,
    pub after: Micros,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertRules {
    pub fatal_error: bool,
    pub error_spike: AnomalyRule,
    pub orders_drop: AnomalyRule,
    pub revenue_drop: AnomalyRule,
    pub high_error_rate: RateRule,
    pub no_data: SilenceRule,
}

impl Default for AlertRules {
    fn default() -> Self {
        let anomaly = AnomalyRule {
            enabled: true,
            k: 3.0,
            history: 10,
            min_history: 6,
            min_change: 0.3,
            min_value: 0.0,
        };
        AlertRules {
            fatal_error: true,
            error_spike: AnomalyRule {
                min_value: 5.0,
                ..anomaly
            },
            orders_drop: anomaly,
            revenue_drop: anomaly,
            high_error_rate: RateRule {
                enabled: true,
                threshold: 0.10,
                min_traffic: 50,
            },
            no_data: SilenceRule {
                enabled: true,
                after: 120_000_000,
            },
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AlertType {
    FatalError,
    ErrorSpike,
    OrdersDrop,
    RevenueDrop,
    HighErrorRate,
    NoData,
}

impl AlertType {
    pub const ALL: [AlertType; 6] = [
        AlertType::FatalError,
        AlertType::ErrorSpike,
        AlertType::OrdersDrop,
        AlertType::RevenueDrop,
        AlertType::HighErrorRate,
        AlertType::NoData,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            AlertType::FatalError => "FATAL_ERROR",
            AlertType::ErrorSpike => "ERROR_SPIKE",
            AlertType::OrdersDrop => "ORDERS_DROP",
            AlertType::RevenueDrop => "REVENUE_DROP",
            AlertType::HighErrorRate => "HIGH_ERROR_RATE",
            AlertType::NoData => "NO_DATA",
        }
    }
}

/// One row of the `alerts` table (seed columns first).
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    pub alert_id: String,
    pub alert_type: AlertType,
    pub description: String,
    pub alert_timestamp: Micros,
    pub metric_value: f64,
    /// Service, topic or `all`: what the alert is about.
    pub alert_key: String,
    pub window_start: Option<Micros>,
    pub window_end: Option<Micros>,
    pub threshold: Option<f64>,
    pub source_topic: Option<String>,
    pub source_partition: Option<i32>,
    pub source_offset: Option<i64>,
}

/// Deterministic id: the same rule, key and window always give the same id.
pub fn alert_id(rule: AlertType, key: &str, mark: &str) -> String {
    let mut h = Sha256::new();
    h.update(rule.as_str().as_bytes());
    h.update([0]);
    h.update(key.as_bytes());
    h.update([0]);
    h.update(mark.as_bytes());
    let digest = h.finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

pub fn fatal_alert(
    topic: &str,
    partition: i32,
    offset: i64,
    service: &str,
    message: &str,
    error_ts: Micros,
) -> Alert {
    Alert {
        alert_id: alert_id(
            AlertType::FatalError,
            service,
            &format!("{topic}/{partition}/{offset}"),
        ),
        alert_type: AlertType::FatalError,
        // Exactly the seed's wording, so dashboards filtering on it keep working.
        description: format!("Fatal error in service: {service} - {message}"),
        alert_timestamp: error_ts,
        metric_value: 1.0,
        alert_key: service.to_string(),
        window_start: None,
        window_end: None,
        threshold: None,
        source_topic: Some(topic.to_string()),
        source_partition: Some(partition),
        source_offset: Some(offset),
    }
}

/// Direction of an anomaly rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Above,
    Below,
}

/// The outcome of one evaluation that crossed into the anomalous state.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Crossing {
    pub value: f64,
    pub mean: f64,
    pub sd: f64,
    pub threshold: f64,
}

/// Moving statistics of one series (one KPI for one key) plus the edge-trigger flag.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    values: VecDeque<f64>,
    firing: bool,
}

impl Series {
    pub fn firing(&self) -> bool {
        self.firing
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn values(&self) -> Vec<f64> {
        self.values.iter().copied().collect()
    }

    /// Restore from a checkpoint.
    pub fn set(&mut self, values: Vec<f64>, firing: bool) {
        self.values = values.into();
        self.firing = firing;
    }

    /// True once more windows would not change anything: full history of zeros, not firing.
    pub fn is_flat_zero(&self, rule: &AnomalyRule) -> bool {
        !self.firing && self.values.len() >= rule.history && self.values.iter().all(|v| *v == 0.0)
    }

    /// Evaluate `value` against the history, then push it. Returns a crossing when the rule
    /// fires (the previous window was not anomalous and this one is).
    pub fn push(&mut self, value: f64, rule: &AnomalyRule, dir: Direction) -> Option<Crossing> {
        let mut crossing = None;
        let anomalous = if rule.enabled && self.values.len() >= rule.min_history.max(2) {
            let n = self.values.len() as f64;
            let mean = self.values.iter().sum::<f64>() / n;
            let var = self.values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
            let sd = var.sqrt();
            let (threshold, hit) = match dir {
                Direction::Above => {
                    let t = (mean + rule.k * sd).max(mean * (1.0 + rule.min_change));
                    (t, value > t && value >= rule.min_value)
                }
                Direction::Below => {
                    let t = (mean - rule.k * sd).min(mean * (1.0 - rule.min_change));
                    (t, mean > 0.0 && value < t)
                }
            };
            if hit && !self.firing {
                crossing = Some(Crossing {
                    value,
                    mean,
                    sd,
                    threshold,
                });
            }
            hit
        } else {
            false
        };
        self.firing = anomalous;
        self.values.push_back(value);
        while self.values.len() > rule.history.max(1) {
            self.values.pop_front();
        }
        crossing
    }
}

/// Error-rate rule on one window: fires on the transition above the threshold.
pub fn rate_crossing(
    rule: &RateRule,
    rate: Option<f64>,
    traffic: i64,
    was_firing: bool,
) -> (bool, bool) {
    let hit =
        rule.enabled && traffic >= rule.min_traffic && rate.is_some_and(|r| r > rule.threshold);
    (hit, hit && !was_firing)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> AnomalyRule {
        AnomalyRule {
            enabled: true,
            k: 3.0,
            history: 5,
            min_history: 3,
            min_change: 0.3,
            min_value: 0.0,
        }
    }

    fn run(values: &[f64], dir: Direction) -> Vec<usize> {
        let mut s = Series::default();
        values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| s.push(*v, &rule(), dir).map(|_| i))
            .collect()
    }

    #[test]
    fn anomaly_table() {
        use Direction::*;
        let cases: &[(&str, &[f64], Direction, &[usize])] = &[
            (
                "steady: nothing",
                &[10., 11., 9., 10., 10., 11.],
                Below,
                &[],
            ),
            (
                "drop fires once, on entry",
                &[10., 11., 9., 10., 2., 1., 1.],
                Below,
                &[4],
            ),
            ("not before min history", &[10., 1.], Below, &[]),
            ("spike", &[2., 3., 2., 3., 40.], Above, &[4]),
            (
                "spike again after recovery",
                &[2., 3., 2., 3., 40., 3., 2., 3., 2., 3., 60.],
                Above,
                &[4, 10],
            ),
            (
                "flat history, small wobble: min_change guards",
                &[10., 10., 10., 10., 9.],
                Below,
                &[],
            ),
            (
                "flat history, real drop",
                &[10., 10., 10., 10., 5.],
                Below,
                &[4],
            ),
            (
                "zero history never drops",
                &[0., 0., 0., 0., 0.],
                Below,
                &[],
            ),
        ];
        for (name, values, dir, want) in cases {
            assert_eq!(run(values, *dir), *want, "{name}");
        }
    }

    #[test]
    fn spike_needs_min_value() {
        let r = AnomalyRule {
            min_value: 5.0,
            ..rule()
        };
        let mut s = Series::default();
        for v in [0., 0., 1., 0.] {
            assert!(s.push(v, &r, Direction::Above).is_none());
        }
        assert!(s.push(4.0, &r, Direction::Above).is_none());
    }

    #[test]
    fn rate_rule_edges() {
        let r = RateRule {
            enabled: true,
            threshold: 0.05,
            min_traffic: 10,
        };
        assert_eq!(rate_crossing(&r, Some(0.2), 100, false), (true, true));
        assert_eq!(rate_crossing(&r, Some(0.2), 100, true), (true, false));
        assert_eq!(rate_crossing(&r, Some(0.2), 5, false), (false, false));
        assert_eq!(rate_crossing(&r, None, 0, false), (false, false));
        assert_eq!(rate_crossing(&r, Some(0.01), 100, true), (false, false));
    }

    #[test]
    fn ids_are_deterministic_and_distinct() {
        let a = alert_id(AlertType::OrdersDrop, "all", "100");
        assert_eq!(a, alert_id(AlertType::OrdersDrop, "all", "100"));
        assert_ne!(a, alert_id(AlertType::RevenueDrop, "all", "100"));
        assert_ne!(a, alert_id(AlertType::OrdersDrop, "all", "130"));
        assert_eq!(a.len(), 32);
        let f = fatal_alert("errors_topic", 1, 7, "payment", "db down", 5);
        assert_eq!(f.description, "Fatal error in service: payment - db down");
    }
}
