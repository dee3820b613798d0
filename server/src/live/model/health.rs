//! The `health` message: pipelines and their restarts, consumer lag, last commit per table,
//! and how the KPI reads are doing. Read from the status handles and the metrics registry.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use shopwatch_actors::handoff::Ownership;
use shopwatch_actors::supervision::StatusHandle;
use shopwatch_actors::telemetry::Metrics;

/// Sum of a gauge family per value of one label (`topic`, `table`).
fn by_label(
    metrics: &Metrics,
    family: &str,
    label: &str,
    combine: fn(f64, f64) -> f64,
) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for f in metrics.registry.gather() {
        if f.name() != family {
            continue;
        }
        for m in f.get_metric() {
            let Some(key) = m.get_label().iter().find(|l| l.name() == label) else {
                continue;
            };
            let v = m.get_gauge().value();
            out.entry(key.value().to_string())
                .and_modify(|acc| *acc = combine(*acc, v))
                .or_insert(v);
        }
    }
    out
}

pub struct QueryHealth {
    pub backend: &'static str,
    pub last_ok_ms: Option<i64>,
    pub last_error: Option<String>,
    pub last_duration_ms: Option<f64>,
}

pub fn health(
    pipelines: &[StatusHandle],
    metrics: &Metrics,
    ownership: &Ownership,
    query: &QueryHealth,
) -> Value {
    let statuses: Vec<_> = pipelines
        .iter()
        .filter_map(StatusHandle::snapshot)
        .collect();
    let lag = by_label(
        metrics,
        "shopwatch_consumer_lag_records",
        "topic",
        |a, b| a + b,
    );
    let commits = by_label(
        metrics,
        "shopwatch_last_commit_timestamp_seconds",
        "table",
        f64::max,
    );
    let last_commit_ms = commits
        .values()
        .copied()
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    json!({
        "pipelines": statuses,
        "restarts": statuses.iter().map(|s| s.restarts).sum::<u64>(),
        "consumer_lag": lag.values().sum::<f64>() as i64,
        "lag_by_topic": lag.into_iter().map(|(k, v)| (k, v as i64)).collect::<BTreeMap<_, _>>(),
        "last_commit_ms": last_commit_ms.map(|s| (s * 1000.0) as i64),
        "last_commit_by_table": commits.into_iter().map(|(k, v)| (k, (v * 1000.0) as i64)).collect::<BTreeMap<_, _>>(),
        "maintenance_failing": metrics.maintenance.failing(),
        // This instance among several: what the groups gave it, and the election.
        "instance": {
            "assigned_partitions": metrics.group.snapshot(),
            "election": ownership.view(),
        },
        "query": {
            "backend": query.backend,
            "last_ok_ms": query.last_ok_ms,
            "last_error": query.last_error,
            "last_duration_ms": query.last_duration_ms,
        },
    })
}
