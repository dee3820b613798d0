//! `[windows]` and `[alerts]`: one section per registered KPI (`[windows.<kpi>]`) and per
//! registered alert rule (`[alerts.<rule>]`), with their defaults taken from the registries.
//! No list of KPIs or rules is kept here.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shopwatch_actors::alerts::{GroupParams, RuleSet, RULES};
use shopwatch_actors::kpis::{Kpi, REGISTRY};
use shopwatch_actors::windows::clock::ClockParams;
use shopwatch_actors::windows::{EngineParams, Windowing};

use super::secret::Secret;
use super::ConfigError;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WindowConfig {
    /// Window length (windows are aligned to the Unix epoch, like Spark's `window()`); default per KPI, above.
    pub size_s: u64,
    /// A new window starts every this many seconds; default per KPI, above.
    pub slide_s: u64,
    /// Allowed lateness: watermark = max event time − this.
    pub lateness_s: u64,
}

impl Default for WindowConfig {
    fn default() -> Self {
        let d = shopwatch_actors::kpis::MINUTE;
        WindowConfig {
            size_s: d.size_s,
            slide_s: d.slide_s,
            lateness_s: d.lateness_s,
        }
    }
}

// Unknown keys are caught against the defaults, which hold every registered KPI (serde's own
// check cannot be combined with the flattened map).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct WindowsConfig {
    /// A partition silent this long stops holding the watermark back; a topic silent this
    /// long advances with the processing clock.
    pub idle_timeout_s: u64,
    /// Events further ahead of their ingestion time are kept out of windows.
    pub max_skew_s: u64,
    /// The watermark never runs ahead of an event's ingestion time by more than this: an
    /// event stamped further ahead still counts in its window, but cannot close any window
    /// early (a producer with a fast or mis-zoned clock).
    pub clock_tolerance_ms: u64,
    /// Bytes of distinct keys (users, products, services) one pane of one KPI may hold;
    /// past it the pane keeps what it has, its windows undercount, and the refusals are
    /// counted (`shopwatch_kpi_keys_refused_total`) and logged. About 48 bytes a key plus
    /// the key: 16 MiB holds ~190,000 UUID user ids per pane.
    pub max_pane_key_bytes: usize,
    /// The seed's watermarks (2 min; 6 min for active users) instead of each `lateness_s`.
    pub seed_watermarks: bool,
    /// The watermark tick: how often open windows are checked for closing; also the least time between two commits of one KPI table.
    pub tick_ms: u64,
    /// `[windows.<kpi>]` for every KPI of the registry.
    #[serde(flatten)]
    pub kpis: BTreeMap<String, WindowConfig>,
}

impl Default for WindowsConfig {
    fn default() -> Self {
        WindowsConfig {
            idle_timeout_s: 30,
            max_skew_s: 300,
            clock_tolerance_ms: 2_000,
            max_pane_key_bytes: 16 << 20,
            seed_watermarks: false,
            tick_ms: 1000,
            kpis: REGISTRY
                .iter()
                .map(|k| {
                    let d = k.window();
                    (
                        k.name().to_string(),
                        WindowConfig {
                            size_s: d.size_s,
                            slide_s: d.slide_s,
                            lateness_s: d.lateness_s,
                        },
                    )
                })
                .collect(),
        }
    }
}

fn secs(s: u64) -> i64 {
    s as i64 * 1_000_000
}

impl WindowsConfig {
    /// The window of one KPI (its defaults when the map lacks it).
    pub fn of(&self, kpi: &dyn Kpi) -> WindowConfig {
        self.kpis.get(kpi.name()).cloned().unwrap_or_else(|| {
            let d = kpi.window();
            WindowConfig {
                size_s: d.size_s,
                slide_s: d.slide_s,
                lateness_s: d.lateness_s,
            }
        })
    }

    /// Every registered KPI with its engine parameters.
    pub fn engines(&self) -> Result<Vec<(&'static dyn Kpi, EngineParams)>, ConfigError> {
        REGISTRY
            .iter()
            .map(|kpi| {
                let w = self.of(*kpi);
                let windowing = Windowing::new(secs(w.size_s), secs(w.slide_s)).map_err(|_| {
                    ConfigError::check(
                        format!("windows.{}.slide_s", kpi.name()),
                        format!(
                            "size_s and slide_s must be positive with slide_s <= size_s (got size_s {}, slide_s {})",
                            w.size_s, w.slide_s
                        ),
                    )
                })?;
                let lateness = if self.seed_watermarks {
                    kpi.window().seed_lateness_s
                } else {
                    w.lateness_s
                };
                Ok((
                    *kpi,
                    EngineParams {
                        windowing,
                        clock: ClockParams {
                            lateness: secs(lateness),
                            idle_timeout: secs(self.idle_timeout_s),
                        },
                        max_skew: secs(self.max_skew_s),
                        clock_tolerance: self.clock_tolerance_ms as i64 * 1_000,
                    },
                ))
            })
            .collect()
    }

    pub fn tick(&self) -> Duration {
        Duration::from_millis(self.tick_ms)
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if let Some(name) = self
            .kpis
            .keys()
            .find(|n| shopwatch_actors::kpis::by_name(n).is_none())
        {
            return Err(unknown_kpi(name));
        }
        self.engines()?;
        if self.idle_timeout_s == 0 {
            return Err(ConfigError::check(
                "windows.idle_timeout_s",
                "must be at least 1 (seconds)",
            ));
        }
        if self.tick_ms < 10 {
            return Err(ConfigError::check(
                "windows.tick_ms",
                "must be at least 10 (milliseconds)",
            ));
        }
        Ok(())
    }
}

pub(super) fn unknown_kpi(name: &str) -> ConfigError {
    let known: Vec<&str> = REGISTRY.iter().map(|k| k.name()).collect();
    ConfigError::check(
        format!("windows.{name}"),
        format!("{name:?} is not a KPI; known KPIs: {}", known.join(", ")),
    )
}

pub(super) fn unknown_rule(name: &str) -> ConfigError {
    let known: Vec<&str> = RULES.iter().map(|r| r.key).collect();
    ConfigError::check(
        format!("alerts.{name}"),
        format!(
            "{name:?} is not an alert rule; known rules: {}",
            known.join(", ")
        ),
    )
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct AlertsConfig {
    /// The detector records its state at least this often while it changes.
    pub checkpoint_every_s: u64,
    /// Slack-compatible webhook for alerts; empty = off.
    pub webhook_url: Secret,
    /// One webhook delivery attempt may take this long.
    pub webhook_timeout_ms: u64,
    /// Attempts after the first before a page counts as failed.
    pub webhook_retries: u32,
    /// Alerts of one rule about one key group while they come within this many seconds of
    /// each other; a group nothing joined for this long closes.
    pub group_interval_s: u64,
    /// A new group pages this long after its first alert (collects the burst).
    pub group_wait_s: u64,
    /// An open group pages again no sooner than this, and only with new alerts.
    pub repeat_interval_s: u64,
    /// `[alerts.<rule>]` for every rule of the registry, in the shape of its defaults.
    #[serde(flatten)]
    pub rules: BTreeMap<String, serde_json::Value>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            checkpoint_every_s: 60,
            webhook_url: Secret::default(),
            webhook_timeout_ms: 5_000,
            webhook_retries: 3,
            group_interval_s: (GroupParams::default().group_interval / 1_000_000) as u64,
            group_wait_s: (GroupParams::default().group_wait / 1_000_000) as u64,
            repeat_interval_s: (GroupParams::default().repeat_interval / 1_000_000) as u64,
            rules: RULES
                .iter()
                .map(|r| {
                    (
                        r.key.to_string(),
                        serde_json::to_value(r.defaults).unwrap_or_default(),
                    )
                })
                .collect(),
        }
    }
}

impl AlertsConfig {
    /// How alerts group into pages.
    pub fn grouping(&self) -> GroupParams {
        let s = |v: u64| {
            i64::try_from(v)
                .unwrap_or(i64::MAX)
                .saturating_mul(1_000_000)
        };
        GroupParams {
            group_wait: s(self.group_wait_s),
            group_interval: s(self.group_interval_s),
            repeat_interval: s(self.repeat_interval_s),
        }
    }

    /// Every registered rule with its configured parameters.
    pub fn rule_set(&self) -> Result<RuleSet, ConfigError> {
        RULES
            .iter()
            .map(|rule| {
                let params = match self.rules.get(rule.key) {
                    Some(v) => rule
                        .defaults
                        .parse(v.clone())
                        .map_err(|m| ConfigError::check(format!("alerts.{}", rule.key), m))?,
                    None => rule.defaults,
                };
                Ok((*rule, params))
            })
            .collect()
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if let Some(name) = self
            .rules
            .keys()
            .find(|n| shopwatch_actors::alerts::rules::by_key(n).is_none())
        {
            return Err(unknown_rule(name));
        }
        self.rule_set()?;
        if self.group_interval_s == 0 {
            return Err(ConfigError::check(
                "alerts.group_interval_s",
                "must be at least 1 (seconds between alerts that still group)",
            ));
        }
        if self.group_wait_s >= self.group_interval_s {
            return Err(ConfigError::check(
                "alerts.group_wait_s",
                format!(
                    "must be below alerts.group_interval_s ({}): a group must page before it closes",
                    self.group_interval_s
                ),
            ));
        }
        if self.repeat_interval_s < self.group_wait_s {
            return Err(ConfigError::check(
                "alerts.repeat_interval_s",
                "must be at least alerts.group_wait_s",
            ));
        }
        let url = self.webhook_url.expose();
        if !url.is_empty() && !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(ConfigError::check(
                "alerts.webhook_url",
                "must be an http:// or https:// URL (or empty to turn the webhook off)",
            ));
        }
        Ok(())
    }
}
