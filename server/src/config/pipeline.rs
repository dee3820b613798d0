//! `[pipeline]`, `[supervision]` and `[maintenance]`: how batches are committed, how actors
//! are supervised, and how tables are kept small.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use shopwatch_actors::lake::{DataCompactionParams, HygieneParams};
use shopwatch_actors::pipeline::BatchParams;
use shopwatch_actors::supervision::SupervisionParams;

use super::ConfigError;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// A raw table commits at least this often while records arrive (the freshness of the lake).
    pub commit_interval_ms: u64,
    /// …or as soon as a batch holds this many records.
    pub max_batch_rows: usize,
    /// Larger record values go to dead letters as `payload_too_large`.
    pub max_event_bytes: usize,
    /// Longer ids (`order_id`, `user_id`, `product_id`, `click_id`, `error_id`) go to dead
    /// letters as `field_too_long`: every id ends up in some window's exact set.
    pub max_id_bytes: usize,
    /// Longer `service_name`s go to dead letters as `field_too_long`.
    pub max_name_bytes: usize,
    /// Longer `url`s go to dead letters as `field_too_long`.
    pub max_url_bytes: usize,
    /// Events stamped further ahead of their ingestion time go to dead letters as
    /// `invalid_timestamp` (each distinct day opens a partition of its own).
    pub max_future_s: u64,
    /// A batch spanning more day partitions is committed in parts of at most this many.
    pub max_days_per_batch: usize,
    /// Dead-letter payloads are truncated to this many bytes (`payload_bytes` keeps the size).
    pub dead_letter_payload_max_bytes: usize,
    /// Dead letters are committed in batches: at this many, or after this interval.
    pub dead_letter_flush_rows: usize,
    /// Buffered dead letters are committed at least this often. Whoever takes a partition
    /// next re-reads from the first one not committed, so this bounds what a crash or a
    /// rebalance reads again (at 10 s a rolling restart of 3 instances read 1.41× the events).
    pub dead_letter_flush_interval_ms: u64,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            commit_interval_ms: 1000,
            max_batch_rows: 50_000,
            max_event_bytes: 256 * 1024,
            max_id_bytes: 1024,
            max_name_bytes: 1024,
            max_url_bytes: 8 * 1024,
            max_future_s: 86_400,
            max_days_per_batch: 32,
            dead_letter_payload_max_bytes: 64 * 1024,
            dead_letter_flush_rows: 5_000,
            dead_letter_flush_interval_ms: 2_000,
        }
    }
}

impl PipelineConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.commit_interval_ms < 10 {
            return Err(ConfigError::check(
                "pipeline.commit_interval_ms",
                "must be at least 10 (milliseconds)",
            ));
        }
        if self.dead_letter_flush_interval_ms < 100 {
            // Lower, every tick with a dead letter (and the idle ledger move) would be a
            // catalog commit of the dead-letter table.
            return Err(ConfigError::check(
                "pipeline.dead_letter_flush_interval_ms",
                "must be at least 100 (milliseconds); 2000 is the default",
            ));
        }
        if self.max_batch_rows == 0 {
            return Err(ConfigError::check(
                "pipeline.max_batch_rows",
                "must be at least 1",
            ));
        }
        for (key, v) in [
            ("pipeline.max_id_bytes", self.max_id_bytes),
            ("pipeline.max_name_bytes", self.max_name_bytes),
            ("pipeline.max_url_bytes", self.max_url_bytes),
            ("pipeline.max_days_per_batch", self.max_days_per_batch),
        ] {
            if v == 0 {
                return Err(ConfigError::check(key, "must be at least 1"));
            }
        }
        Ok(())
    }

    pub fn batch(&self) -> BatchParams {
        BatchParams {
            commit_interval: Duration::from_millis(self.commit_interval_ms),
            max_batch_rows: self.max_batch_rows,
            limits: shopwatch_actors::events::Limits {
                max_event_bytes: self.max_event_bytes,
                max_id_bytes: self.max_id_bytes,
                max_name_bytes: self.max_name_bytes,
                max_url_bytes: self.max_url_bytes,
                max_future: (self.max_future_s as i64).saturating_mul(1_000_000),
            },
            max_days_per_batch: self.max_days_per_batch,
            dead_letter_payload_max_bytes: self.dead_letter_payload_max_bytes,
            dead_letter_flush_rows: self.dead_letter_flush_rows,
            dead_letter_flush_interval: Duration::from_millis(self.dead_letter_flush_interval_ms),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SupervisionConfig {
    /// Restarts a group may use within `restart_window_s`; one more and it stops (the process exits 3 when every pipeline has).
    pub max_restarts: usize,
    /// The window the restart budget counts in.
    pub restart_window_s: u64,
    /// The first restart's delay; doubles per restart up to `backoff_max_ms`.
    pub backoff_min_ms: u64,
    /// The longest delay between restarts.
    pub backoff_max_ms: u64,
    /// How often each actor reports progress to its supervisor.
    pub heartbeat_ms: u64,
    /// An actor silent this long is treated as stuck and restarted.
    pub stuck_timeout_s: u64,
}

impl Default for SupervisionConfig {
    fn default() -> Self {
        SupervisionConfig {
            max_restarts: 5,
            restart_window_s: 60,
            backoff_min_ms: 250,
            backoff_max_ms: 10_000,
            heartbeat_ms: 1000,
            stuck_timeout_s: 60,
        }
    }
}

impl SupervisionConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.max_restarts == 0 {
            return Err(ConfigError::check(
                "supervision.max_restarts",
                "must be at least 1",
            ));
        }
        Ok(())
    }

    pub fn params(&self) -> SupervisionParams {
        SupervisionParams {
            max_restarts: self.max_restarts,
            restart_window: Duration::from_secs(self.restart_window_s),
            backoff_min: Duration::from_millis(self.backoff_min_ms),
            backoff_max: Duration::from_millis(self.backoff_max_ms),
            heartbeat: Duration::from_millis(self.heartbeat_ms),
            stuck_timeout: Duration::from_secs(self.stuck_timeout_s),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaintenanceConfig {
    /// Metadata hygiene (snapshot expiry, old metadata files) runs every this many commits per table.
    pub every_commits: u32,
    /// Snapshots older than this are expired (at least `keep_snapshots` stay); readers need a snapshot for as long as their query runs.
    pub snapshot_max_age_s: u64,
    /// Snapshots always kept, however old.
    pub keep_snapshots: usize,
    /// Previous `metadata.json` files kept.
    pub keep_metadata_files: usize,
    /// Merge a table's manifests into one every this many commits (0: never).
    pub compact_every_commits: u32,
    /// Look for orphan data files (left by crashes) every this many commits (0: never).
    pub orphan_sweep_every_commits: u32,
    /// Delete an orphan data file only once it is this old: another writer's commit may
    /// still be on its way. Default 24 h; drills use seconds.
    pub orphan_min_age_s: u64,
    /// Look for small data files to merge at most this often per table, seconds (0: never).
    pub data_compact_every_s: u64,
    /// Merged data files are cut near this size (MiB).
    pub data_target_file_mb: u64,
    /// A day partition with more live data files than this is merged regardless of size tiers.
    pub data_max_files_per_partition: usize,
    /// Data files younger than this are never merged (freshness first).
    pub data_fresh_for_s: u64,
    /// Files a compaction replaced stay readable at least this long (for scans planned before).
    pub replaced_file_grace_s: u64,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        MaintenanceConfig {
            every_commits: 10,
            snapshot_max_age_s: 15,
            keep_snapshots: 5,
            keep_metadata_files: 5,
            compact_every_commits: 20,
            orphan_sweep_every_commits: 100,
            orphan_min_age_s: 24 * 3600,
            data_compact_every_s: 60,
            data_target_file_mb: 128,
            data_max_files_per_partition: 100,
            data_fresh_for_s: 30,
            replaced_file_grace_s: 600,
        }
    }
}

impl MaintenanceConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.data_target_file_mb == 0 || self.data_target_file_mb > 4096 {
            return Err(ConfigError::check(
                "maintenance.data_target_file_mb",
                "must be between 1 and 4096 (MiB); the default is 128",
            ));
        }
        if self.data_max_files_per_partition < 2 {
            return Err(ConfigError::check(
                "maintenance.data_max_files_per_partition",
                "must be at least 2; the default is 100",
            ));
        }
        Ok(())
    }

    pub fn hygiene(&self) -> HygieneParams {
        HygieneParams {
            every_commits: self.every_commits,
            snapshot_max_age: Duration::from_secs(self.snapshot_max_age_s),
            keep_snapshots: self.keep_snapshots,
            keep_metadata_files: self.keep_metadata_files,
            compact_every_commits: self.compact_every_commits,
            orphan_every_commits: self.orphan_sweep_every_commits,
            orphan_min_age: Duration::from_secs(self.orphan_min_age_s),
            data: DataCompactionParams {
                every: Duration::from_secs(self.data_compact_every_s),
                target_file_bytes: self.data_target_file_mb * 1024 * 1024,
                max_files_per_partition: self.data_max_files_per_partition,
                fresh_for: Duration::from_secs(self.data_fresh_for_s),
                replaced_grace: Duration::from_secs(self.replaced_file_grace_s),
            },
            ..HygieneParams::default()
        }
    }
}
