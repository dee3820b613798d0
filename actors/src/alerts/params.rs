//! A rule's parameters: what `[alerts.<rule>]` configures. Each rule kind has one shape; a
//! rule's defaults say which, and the configuration is read into that shape.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnomalyParams {
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

/// The anomaly defaults: 3 σ over the last 10 windows, after at least 6, and a 30 % change.
pub const ANOMALY: AnomalyParams = AnomalyParams {
    enabled: true,
    k: 3.0,
    history: 10,
    min_history: 6,
    min_change: 0.3,
    min_value: 0.0,
};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdParams {
    pub enabled: bool,
    /// A fraction: 0.10 = 10 %.
    pub threshold: f64,
    /// Volume a window needs before its ratio means anything.
    pub min_traffic: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SilenceParams {
    pub enabled: bool,
    /// Seconds without a new record before a topic counts as silent.
    pub after_s: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Params {
    /// On or off, nothing else (`fatal_error = true`).
    Flag(bool),
    Anomaly(AnomalyParams),
    Threshold(ThresholdParams),
    Silence(SilenceParams),
}

impl Params {
    pub fn enabled(&self) -> bool {
        match self {
            Params::Flag(on) => *on,
            Params::Anomaly(p) => p.enabled,
            Params::Threshold(p) => p.enabled,
            Params::Silence(p) => p.enabled,
        }
    }

    /// Read `value` (the configuration, already layered over the defaults) into the shape
    /// of `self`, the rule's defaults; then check it.
    pub fn parse(&self, value: serde_json::Value) -> Result<Params, String> {
        let parsed = match self {
            Params::Flag(_) => match value {
                serde_json::Value::Bool(on) => Params::Flag(on),
                other => return Err(format!("must be true or false (got {other})")),
            },
            Params::Anomaly(_) => {
                Params::Anomaly(serde_json::from_value(value).map_err(|e| e.to_string())?)
            }
            Params::Threshold(_) => {
                Params::Threshold(serde_json::from_value(value).map_err(|e| e.to_string())?)
            }
            Params::Silence(_) => {
                Params::Silence(serde_json::from_value(value).map_err(|e| e.to_string())?)
            }
        };
        parsed.check()?;
        Ok(parsed)
    }

    pub fn check(&self) -> Result<(), String> {
        match self {
            Params::Anomaly(r) if r.history < 2 || r.min_history > r.history || !(r.k >= 0.0) => {
                Err("needs history >= 2, min_history <= history and k >= 0".into())
            }
            Params::Threshold(r) if !(0.0..=1.0).contains(&r.threshold) => {
                Err("threshold must be between 0 and 1 (a fraction, 0.05 = 5 %)".into())
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn configuration_is_read_into_the_rules_shape_and_checked() {
        let anomaly = Params::Anomaly(ANOMALY);
        let mut v = serde_json::to_value(anomaly).unwrap();
        v["k"] = json!(2.5);
        assert_eq!(
            anomaly.parse(v.clone()),
            Ok(Params::Anomaly(AnomalyParams { k: 2.5, ..ANOMALY }))
        );
        v["history"] = json!(1);
        assert!(anomaly.parse(v).unwrap_err().contains("history"));
        assert!(anomaly
            .parse(json!({"enabled": true, "kk": 1}))
            .unwrap_err()
            .contains("kk"));
        let flag = Params::Flag(true);
        assert_eq!(flag.parse(json!(false)), Ok(Params::Flag(false)));
        assert!(flag.parse(json!({"enabled": false})).is_err());
        let t = Params::Threshold(ThresholdParams {
            enabled: true,
            threshold: 0.1,
            min_traffic: 50,
        });
        let e = t
            .parse(json!({"enabled": true, "threshold": 5.0, "min_traffic": 1}))
            .unwrap_err();
        assert!(e.contains("between 0 and 1"), "{e}");
        assert_eq!(serde_json::to_value(flag).unwrap(), json!(true));
    }
}
