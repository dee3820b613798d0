//! `[kafka]` and `[topics]`: where the events come from.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use shopwatch_actors::events::EventKind;
use shopwatch_actors::pipeline::{KafkaParams, StartAt, StartPolicy};

use super::ConfigError;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap servers, `HOST:PORT[,HOST:PORT]`.
    pub brokers: String,
    /// Consumer group prefix: every `shopwatch run` with the same one shares each topic's
    /// partitions (group `{group}-{topic}`) and takes part in electing the rollup tables'
    /// owner (topic and group `{group}-owner`). Positions still come from the lake.
    pub group: String,
    /// Partitions per topic when `shopwatch broker` creates the topics.
    pub partitions: i32,
    /// Extra librdkafka properties (e.g. `"security.protocol" = "SASL_SSL"`). Free-form, so
    /// `config check` redacts the values of keys that name a password, secret, token or key.
    pub extra: BTreeMap<String, String>,
    /// Where a partition starts when the lake has no offset for it (a new table, a table
    /// adopted from the old stack, a partition the broker added): `earliest`, `latest`, an
    /// RFC 3339 time, or `spark` (where the old stack's Spark query stopped, found from
    /// `spark_checkpoints`). Partitions with offsets in the lake always continue from there.
    pub start: String,
    /// Per-topic exceptions to `start`, e.g. `{ clicks_topic = "latest" }`.
    pub start_by_topic: BTreeMap<String, String>,
    /// The old stack's Spark checkpoint directory (`/tmp/spark_checkpoints_nessie`), read by
    /// `start = "spark"` and `shopwatch migrate`.
    pub spark_checkpoints: String,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:9092".into(),
            group: "shopwatch".into(),
            partitions: 3,
            extra: BTreeMap::new(),
            start: "earliest".into(),
            start_by_topic: BTreeMap::new(),
            spark_checkpoints: String::new(),
        }
    }
}

impl KafkaConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.brokers.trim().is_empty() {
            return Err(ConfigError::check(
                "kafka.brokers",
                "must not be empty; set it to HOST:PORT of a Kafka broker (flag --brokers)",
            ));
        }
        if self.group.trim().is_empty() {
            return Err(ConfigError::check(
                "kafka.group",
                "must not be empty; instances with the same group share the topics' partitions (default \"shopwatch\")",
            ));
        }
        if !(1..=10_000).contains(&self.partitions) {
            return Err(ConfigError::check(
                "kafka.partitions",
                "must be between 1 and 10000",
            ));
        }
        self.start_policy()?;
        Ok(())
    }

    /// `start` and `start_by_topic`, parsed.
    pub fn start_policy(&self) -> Result<StartPolicy, ConfigError> {
        let parse = |key: String, text: &str| {
            let at = StartAt::parse(text).map_err(|e| ConfigError::check(&key, &e))?;
            if at == StartAt::Spark && self.spark_checkpoints.trim().is_empty() {
                return Err(ConfigError::check(
                    &key,
                    "is \"spark\" but kafka.spark_checkpoints is not set; set it to the Spark job's checkpoint directory (e.g. /tmp/spark_checkpoints_nessie)",
                ));
            }
            Ok(at)
        };
        let mut topics = BTreeMap::new();
        for (topic, text) in &self.start_by_topic {
            topics.insert(
                topic.clone(),
                parse(format!("kafka.start_by_topic.{topic}"), text)?,
            );
        }
        Ok(StartPolicy {
            default: parse("kafka.start".into(), &self.start)?,
            topics,
            pins: Default::default(),
        })
    }

    pub fn params(&self) -> KafkaParams {
        KafkaParams {
            brokers: self.brokers.clone(),
            group: self.group.clone(),
            instance: instance_name(),
            extra: self.extra.clone(),
            // Checked by `validate` at load; a config that got here parses.
            start: self.start_policy().unwrap_or_default(),
        }
    }

    /// `extra` as `config check` shows it.
    pub(super) fn redact_extra(&mut self) {
        for (k, v) in self.extra.iter_mut() {
            let k = k.to_lowercase();
            if ["password", "secret", "token", "key"]
                .iter()
                .any(|s| k.contains(s))
            {
                *v = "<redacted>".into();
            }
        }
    }
}

/// This process in the groups' member lists (`client.id`; `kafka.extra` may set its own):
/// host and process id, so several instances on one machine stay apart.
fn instance_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let host = if host.is_empty() { "host".into() } else { host };
    format!("shopwatch-{host}-{}", std::process::id())
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopicsConfig {
    /// The orders topic (the old stack's name).
    pub orders: String,
    /// The clicks topic (the old stack's name).
    pub clicks: String,
    /// The errors topic (the old stack's name).
    pub errors: String,
}

impl Default for TopicsConfig {
    fn default() -> Self {
        TopicsConfig {
            orders: "orders_topic".into(),
            clicks: "clicks_topic".into(),
            errors: "errors_topic".into(),
        }
    }
}

impl TopicsConfig {
    pub fn of(&self, kind: EventKind) -> &str {
        match kind {
            EventKind::Orders => &self.orders,
            EventKind::Clicks => &self.clicks,
            EventKind::Errors => &self.errors,
        }
    }

    /// In `EventKind::ALL` order.
    pub fn names(&self) -> [String; 3] {
        EventKind::ALL.map(|k| self.of(k).to_string())
    }
}
