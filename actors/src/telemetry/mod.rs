//! Prometheus metrics of the pipeline. Names follow `shopwatch_<name>_<unit>[_total]`; label
//! values are bounded (topic, table, partition number, reason code, actor role).

mod catalog;

pub use catalog::{catalog, register, MetricDoc};
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

#[derive(Clone, Debug)]
pub struct Metrics {
    pub registry: Registry,
    pub consumed: IntCounterVec,
    pub dead_letters: IntCounterVec,
    pub committed_rows: IntCounterVec,
    pub commits: IntCounterVec,
    pub commit_seconds: HistogramVec,
    pub restarts: IntCounterVec,
    pub consumer_lag: IntGaugeVec,
    pub fenced_batches: IntCounterVec,
    pub records_reread: IntCounterVec,
    pub partials_written: IntCounterVec,
    pub partials_merged: IntCounterVec,
    pub partials_raw: IntCounterVec,
    pub recovery_seconds: prometheus::GaugeVec,
    pub rebalances: IntCounterVec,
    pub group_rejoins: IntCounterVec,
    pub watermark_lies: IntCounterVec,
    pub rollup_owner: IntGaugeVec,
    pub maintainer: IntGaugeVec,
    pub maintenance_runs: IntCounterVec,
    pub pipeline_up: IntGaugeVec,
    pub backpressure_seconds: prometheus::CounterVec,
    pub late_events: IntCounterVec,
    pub clock_skew_events: IntCounterVec,
    pub clock_ahead_events: IntCounterVec,
    pub kpi_keys_refused: IntCounterVec,
    pub watermark_lag: prometheus::GaugeVec,
    pub windows_emitted: IntCounterVec,
    pub alerts: IntCounterVec,
    pub webhook: IntCounterVec,
    pub last_commit: prometheus::GaugeVec,
    pub orphan_files_deleted: IntCounterVec,
    pub orphan_bytes_reclaimed: IntCounterVec,
    pub orphan_files_pending: IntGaugeVec,
    pub maintenance_failures: IntCounterVec,
    /// Data files replaced by compaction, and merged files written in their place.
    pub data_files_replaced: IntCounterVec,
    pub data_files_written: IntCounterVec,
    /// The state of every maintenance step per table, for `/readyz` and the page.
    pub maintenance: MaintenanceLog,
    /// What the consumer group gave this instance.
    pub group: GroupLog,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels)
                .expect("static metric definition");
            register(&registry, &c);
            c
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g =
                IntGaugeVec::new(Opts::new(name, help), labels).expect("static metric definition");
            register(&registry, &g);
            g
        };
        let consumed = counter(
            "shopwatch_events_consumed_total",
            "Kafka records read by the consumers.",
            &["topic"],
        );
        let dead_letters = counter(
            "shopwatch_dead_letters_total",
            "Records sent to the dead_letters table, by reason.",
            &["topic", "reason"],
        );
        let committed_rows = counter(
            "shopwatch_rows_committed_total",
            "Rows durably committed to Iceberg tables.",
            &["table"],
        );
        let commits = counter(
            "shopwatch_commits_total",
            "Iceberg commit attempts by outcome (ok, conflict, unknown, already_committed, fenced).",
            &["table", "outcome"],
        );
        let fenced_batches = counter(
            "shopwatch_fenced_batches_total",
            "Parts of raw batches dropped because the lake was already past their start (another instance, or this one as a zombie, got there first), per topic.",
            &["topic"],
        );
        let records_reread = counter(
            "shopwatch_records_reread_total",
            "Records read again below the raw table's position after taking a partition (start, crash, rebalance), only to rebuild dead letters that were buffered but not committed, per topic.",
            &["topic"],
        );
        let partials_written = counter(
            "shopwatch_partials_written_total",
            "Events this instance folded into partial windows and committed to the partials table for the rollup owner, per topic.",
            &["topic"],
        );
        let partials_merged = counter(
            "shopwatch_partials_merged_total",
            "Events of other instances' partitions the rollup owner merged as partial windows (not folded again), per topic and KPI.",
            &["topic", "kpi"],
        );
        let partials_raw = counter(
            "shopwatch_partials_raw_events_total",
            "Events of other instances' partitions the rollup owner read from the raw table instead of partials (a gap in them, a range it had partly folded, partials not moving), per topic and why: `gap` (the partials have a gap there, or a range begins before the owner's position), `stale` (the partials did not move for 6 s while the raw table did), `aggregator` (one aggregator out of step read it for itself).",
            &["topic", "reason"],
        );
        let recovery_seconds = prometheus::GaugeVec::new(
            Opts::new(
                "shopwatch_recovery_seconds",
                "The latest recovery per topic: from taking partitions until the lake held everything the broker had for them at that moment.",
            ),
            &["topic"],
        )
        .expect("static metric definition");
        register(&registry, &recovery_seconds);
        let rebalances = counter(
            "shopwatch_group_rebalances_total",
            "Partitions assigned to or revoked from this instance by the consumer group, per topic.",
            &["topic", "change"],
        );
        let group_rejoins = counter(
            "shopwatch_group_rejoins_total",
            "Times this instance left and rejoined a topic's group because a partition nobody here reads stopped moving in the lake while the broker had records for it.",
            &["topic"],
        );
        let watermark_lies = counter(
            "shopwatch_broker_watermark_lies_total",
            "Broker high-watermark answers not trusted because they were below what was already read or below an earlier answer (an under-reporting broker), per topic.",
            &["topic"],
        );
        let rollup_owner = gauge(
            "shopwatch_rollup_owner",
            "1 while this instance computes the KPI and alert tables (elected through Kafka when several instances run), else 0.",
            &[],
        );
        let maintainer = gauge(
            "shopwatch_maintainer",
            "1 while this instance runs the lake's maintenance (data compaction, snapshot expiry, orphan sweep), else 0; with several instances only the rollup owner does.",
            &[],
        );
        let maintenance_runs = counter(
            "shopwatch_maintenance_runs_total",
            "Maintenance steps (manifest_compaction, data_compaction, hygiene, orphan_sweep) this instance ran, per table; manifest merging rides in every writer's own commits.",
            &["table", "step"],
        );
        let restarts = counter(
            "shopwatch_actor_restarts_total",
            "Pipeline restarts by the actor that failed and why.",
            &["pipeline", "actor", "reason"],
        );
        let consumer_lag = gauge(
            "shopwatch_consumer_lag_records",
            "High watermark minus committed position.",
            &["topic", "partition"],
        );
        let pipeline_up = gauge(
            "shopwatch_pipeline_up",
            "1 while the pipeline runs, 0 while restarting or failed.",
            &["pipeline"],
        );
        let commit_seconds = HistogramVec::new(
            HistogramOpts::new(
                "shopwatch_commit_duration_seconds",
                "Time from first attempt to a landed Iceberg commit.",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["table"],
        )
        .expect("static metric definition");
        register(&registry, &commit_seconds);
        let backpressure_seconds = prometheus::CounterVec::new(
            Opts::new(
                "shopwatch_backpressure_seconds_total",
                "Time consumers waited for committers to accept a batch.",
            ),
            &["topic"],
        )
        .expect("static metric definition");
        register(&registry, &backpressure_seconds);
        let late_events = counter(
            "shopwatch_late_events_total",
            "Events behind the watermark: kept in the raw table, not folded into emitted windows.",
            &["topic"],
        );
        let clock_skew_events = counter(
            "shopwatch_clock_skew_events_total",
            "Events too far ahead of their ingestion time: kept in the raw table, out of windows.",
            &["topic"],
        );
        let clock_ahead_events = counter(
            "shopwatch_clock_ahead_events_total",
            "Events stamped ahead of their ingestion time by more than windows.clock_tolerance_ms: counted in their windows, but they move the watermark no further than ingestion time + tolerance.",
            &["topic"],
        );
        let kpi_keys_refused = counter(
            "shopwatch_kpi_keys_refused_total",
            "Distinct keys (users, products, services) a KPI pane did not keep because it reached windows.max_pane_key_bytes: its windows undercount.",
            &[],
        );
        let windows_emitted = counter(
            "shopwatch_windows_emitted_total",
            "Closed windows written to KPI tables.",
            &["table"],
        );
        let alerts = counter(
            "shopwatch_alerts_total",
            "Alerts written to the alerts table, by type.",
            &["alert_type"],
        );
        let webhook = counter(
            "shopwatch_webhook_deliveries_total",
            "Alert webhook deliveries by outcome (ok, failed after retries, dropped: queue full).",
            &["outcome"],
        );
        let watermark_lag = prometheus::GaugeVec::new(
            Opts::new(
                "shopwatch_watermark_lag_seconds",
                "Processing time minus the event-time watermark, per topic.",
            ),
            &["topic"],
        )
        .expect("static metric definition");
        register(&registry, &watermark_lag);
        let last_commit = prometheus::GaugeVec::new(
            Opts::new(
                "shopwatch_last_commit_timestamp_seconds",
                "Unix time of the last landed Iceberg commit, per table.",
            ),
            &["table"],
        )
        .expect("static metric definition");
        register(&registry, &last_commit);
        // process_resident_memory_bytes, process_cpu_seconds_total, open fds.
        #[cfg(target_os = "linux")]
        let _ = registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ));
        let orphan_files_deleted = counter(
            "shopwatch_orphan_files_deleted_total",
            "Data files no snapshot references (left by crashes), deleted past the safety age.",
            &["table"],
        );
        let orphan_bytes_reclaimed = counter(
            "shopwatch_orphan_bytes_reclaimed_total",
            "Bytes of orphan data files deleted by the sweeper.",
            &["table"],
        );
        let orphan_files_pending = gauge(
            "shopwatch_orphan_files_pending",
            "Unreferenced data files still younger than the safety age at the last sweep.",
            &["table"],
        );
        let maintenance_failures = counter(
            "shopwatch_maintenance_failures_total",
            "Maintenance steps (manifest_compaction, data_compaction, hygiene, orphan_sweep) that failed, per table.",
            &["table", "step"],
        );
        let data_files_replaced = counter(
            "shopwatch_data_files_replaced_total",
            "Small data files merged away by data-file compaction (replace snapshots), per table.",
            &["table"],
        );
        let data_files_written = counter(
            "shopwatch_data_files_compacted_written_total",
            "Merged data files written by data-file compaction, per table.",
            &["table"],
        );
        Metrics {
            registry,
            consumed,
            dead_letters,
            committed_rows,
            commits,
            commit_seconds,
            restarts,
            consumer_lag,
            fenced_batches,
            records_reread,
            partials_written,
            partials_merged,
            partials_raw,
            recovery_seconds,
            rebalances,
            group_rejoins,
            watermark_lies,
            rollup_owner,
            maintainer,
            maintenance_runs,
            pipeline_up,
            backpressure_seconds,
            late_events,
            clock_skew_events,
            clock_ahead_events,
            kpi_keys_refused,
            watermark_lag,
            windows_emitted,
            alerts,
            webhook,
            last_commit,
            orphan_files_deleted,
            orphan_bytes_reclaimed,
            orphan_files_pending,
            maintenance_failures,
            data_files_replaced,
            data_files_written,
            maintenance: MaintenanceLog::default(),
            group: GroupLog::default(),
        }
    }

    /// Show every alert type from the start (a count of 0 rather than no series).
    pub fn know_alert_types<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        for name in names {
            self.alerts.with_label_values(&[name]);
        }
    }

    pub fn set_maintainer(&self, maintains: bool) {
        self.maintainer
            .with_label_values(&[] as &[&str])
            .set(i64::from(maintains));
    }

    pub fn set_rollup_owner(&self, owner: bool) {
        self.rollup_owner
            .with_label_values(&[] as &[&str])
            .set(owner as i64);
    }

    /// Record a landed data compaction of `table`.
    pub fn data_compacted(&self, table: &str, replaced: usize, written: usize) {
        self.data_files_replaced
            .with_label_values(&[table])
            .inc_by(replaced as u64);
        self.data_files_written
            .with_label_values(&[table])
            .inc_by(written as u64);
    }

    /// Record a landed commit of `rows` rows to `table` that took `seconds`.
    pub fn commit_landed(&self, table: &str, rows: usize, seconds: f64) {
        self.commit_seconds
            .with_label_values(&[table])
            .observe(seconds);
        self.committed_rows
            .with_label_values(&[table])
            .inc_by(rows as u64);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        self.last_commit.with_label_values(&[table]).set(now);
    }

    /// A maintenance step's outcome; returns how many times in a row it has failed.
    pub fn maintenance_outcome(&self, table: &str, step: &str, outcome: Result<(), String>) -> u64 {
        self.maintenance_runs
            .with_label_values(&[table, step])
            .inc();
        if outcome.is_err() {
            self.maintenance_failures
                .with_label_values(&[table, step])
                .inc();
        }
        self.maintenance.record(table, step, outcome)
    }

    /// Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let encoder = prometheus::TextEncoder::new();
        encoder
            .encode_to_string(&self.registry.gather())
            .unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// A recovery that finished: from taking partitions until the lake held everything the
/// broker had for them at that moment.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Recovered {
    pub partitions: Vec<i32>,
    pub took_ms: u64,
    /// Records read below the raw position (to rebuild dead letters not yet committed).
    pub reread: u64,
    /// Records read in all meanwhile.
    pub read: u64,
}

/// One topic as the consumer group left it with this instance (for `/readyz`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TopicHold {
    pub partitions: std::collections::BTreeSet<i32>,
    /// Unix ms when the recovery in progress started (partitions taken, not caught up yet).
    pub recovering_since_ms: Option<i64>,
    pub last_recovery: Option<Recovered>,
}

/// The partitions the consumer group has given this instance now, per topic, and what taking
/// them cost (for `/readyz`).
#[derive(Clone, Debug, Default)]
pub struct GroupLog(
    std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, TopicHold>>>,
);

impl GroupLog {
    fn with(&self, topic: &str, f: impl FnOnce(&mut TopicHold)) {
        if let Ok(mut g) = self.0.lock() {
            f(g.entry(topic.to_string()).or_default());
        }
    }

    /// A new consumer holds nothing until the group assigns.
    pub fn reset(&self, topic: &str) {
        self.with(topic, |h| *h = TopicHold::default());
    }

    pub fn assigned(&self, topic: &str, partitions: impl IntoIterator<Item = i32>) {
        self.with(topic, |h| h.partitions.extend(partitions));
    }

    pub fn revoked(&self, topic: &str, partitions: &[i32]) {
        self.with(topic, |h| h.partitions.retain(|p| !partitions.contains(p)));
    }

    pub fn recovering(&self, topic: &str) {
        let now = chrono::Utc::now().timestamp_millis();
        self.with(topic, |h| {
            h.recovering_since_ms.get_or_insert(now);
        });
    }

    pub fn recovered(&self, topic: &str, done: Recovered) {
        self.with(topic, |h| {
            h.recovering_since_ms = None;
            h.last_recovery = Some(done);
        });
    }

    /// Topic → partitions held.
    pub fn snapshot(&self) -> std::collections::BTreeMap<String, Vec<i32>> {
        self.0
            .lock()
            .map(|g| {
                g.iter()
                    .map(|(t, h)| (t.clone(), h.partitions.iter().copied().collect()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Topic → what it holds and what taking it cost.
    pub fn holds(&self) -> std::collections::BTreeMap<String, TopicHold> {
        self.0.lock().map(|g| g.clone()).unwrap_or_default()
    }
}

mod maintenance;
pub use maintenance::{MaintenanceLog, StepState};

#[cfg(test)]
mod tests;
