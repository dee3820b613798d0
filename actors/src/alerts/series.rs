//! Moving statistics of one series (one rule for one key) with its edge-trigger flag, and the
//! two pure decisions rules are made of: leaving the moving mean by k standard deviations, and
//! a ratio crossing a threshold. Both fire on the transition into the anomalous state, not on
//! every window while it lasts.

use std::collections::VecDeque;

use super::params::{AnomalyParams, ThresholdParams};

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
    pub fn is_flat_zero(&self, rule: &AnomalyParams) -> bool {
        !self.firing && self.values.len() >= rule.history && self.values.iter().all(|v| *v == 0.0)
    }

    /// Evaluate `value` against the history, then push it. Returns a crossing when the rule
    /// fires (the previous window was not anomalous and this one is).
    pub fn push(&mut self, value: f64, rule: &AnomalyParams, dir: Direction) -> Option<Crossing> {
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
    rule: &ThresholdParams,
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

    fn rule() -> AnomalyParams {
        AnomalyParams {
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
        let r = AnomalyParams {
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
        let r = ThresholdParams {
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
}
