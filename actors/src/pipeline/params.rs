//! Parameters of a pipeline (built from the configuration by the server).

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use crate::events::{EventKind, Limits};
use crate::faults::Faults;
use crate::handoff::Subscribers;
use crate::lake::{HygieneParams, Lake};
use crate::supervision::SupervisionParams;
use crate::telemetry::Metrics;

#[derive(Clone, Debug)]
pub struct KafkaParams {
    pub brokers: String,
    /// Consumer group prefix: instances with the same one share each topic's partitions
    /// (group `{group}-{topic}`); positions still come from the lake, never from the group.
    pub group: String,
    /// This instance's name in the groups (`client.id`), shown in the member lists.
    pub instance: String,
    /// Extra librdkafka properties (e.g. security settings).
    pub extra: BTreeMap<String, String>,
    /// Where partitions without an offset in the lake start.
    pub start: super::StartPolicy,
}

#[derive(Clone, Debug)]
pub struct BatchParams {
    pub commit_interval: Duration,
    pub max_batch_rows: usize,
    /// What one event may hold (sizes of the record, its ids and names; how far ahead).
    pub limits: Limits,
    /// A batch whose events span more day partitions than this is committed in parts, so a
    /// commit opens at most this many Parquet files.
    pub max_days_per_batch: usize,
    pub dead_letter_payload_max_bytes: usize,
    /// Dead letters are committed when this many are buffered...
    pub dead_letter_flush_rows: usize,
    /// ...or when the oldest has waited this long.
    pub dead_letter_flush_interval: Duration,
}

impl Default for BatchParams {
    fn default() -> Self {
        BatchParams {
            commit_interval: Duration::from_secs(1),
            max_batch_rows: 50_000,
            limits: Limits::default(),
            max_days_per_batch: 32,
            dead_letter_payload_max_bytes: 64 * 1024,
            dead_letter_flush_rows: 5_000,
            dead_letter_flush_interval: Duration::from_secs(2),
        }
    }
}

#[derive(Clone, Debug)]
pub struct PipelineParams {
    pub kind: EventKind,
    pub topic: String,
    pub kafka: KafkaParams,
    pub lake: Lake,
    pub batch: BatchParams,
    pub supervision: SupervisionParams,
    pub hygiene: HygieneParams,
    pub metrics: Metrics,
    pub faults: Arc<Faults>,
    /// Set on shutdown: consumers stop polling and commit what they hold.
    pub shutdown: Arc<AtomicBool>,
    /// Rollup actors that receive each batch once the raw table has committed it.
    pub subscribers: Subscribers,
}
