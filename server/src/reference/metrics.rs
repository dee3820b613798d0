//! `metrics.md`: every metric the process registers, with its type, labels and help.

use shopwatch_actors::telemetry::{self, Metrics};

pub fn render() -> String {
    // Register everything one `shopwatch run` registers, on a registry of our own.
    let metrics = Metrics::new();
    crate::version::register_build_info(&metrics.registry);
    let _ = crate::live::tasks::metrics::LiveMetrics::new(&metrics.registry);
    let _ = crate::flight::limits::QueryMetrics::new(&metrics.registry);
    let mut out = String::from(
        "# Metrics\n\n\
         `GET /metrics` (Prometheus text format). Label values are bounded: topics, tables,\n\
         partitions, reason and outcome codes, actor roles, principal classes.\n\n\
         | metric | type | unit | labels | meaning |\n|---|---|---|---|---|\n",
    );
    for m in telemetry::catalog() {
        let labels = if m.labels.is_empty() {
            "—".to_string()
        } else {
            m.labels
                .iter()
                .map(|l| format!("`{l}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            m.name,
            m.kind,
            unit(&m.name),
            labels,
            super::cell(&m.help)
        ));
    }
    out.push_str(
        "\nAlso the standard process metrics on Linux: `process_cpu_seconds_total`,\n\
         `process_resident_memory_bytes`, `process_virtual_memory_bytes`, `process_open_fds`,\n\
         `process_max_fds`, `process_start_time_seconds`, `process_threads`.\n",
    );
    out
}

/// The unit, from the name (Prometheus' convention: the base unit is the name's last word
/// before `_total`).
fn unit(name: &str) -> &'static str {
    let base = name.trim_end_matches("_total");
    [
        ("_seconds", "seconds"),
        ("_bytes", "bytes"),
        ("_records", "records"),
        ("_timestamp_seconds", "Unix seconds"),
    ]
    .iter()
    .rev()
    .find(|(suffix, _)| base.ends_with(suffix))
    .map(|(_, u)| *u)
    .unwrap_or(if name.ends_with("_total") {
        "count"
    } else {
        "—"
    })
}

#[cfg(test)]
mod tests {
    /// Every metric a live registry exposes is in the reference (none bypasses `register`).
    #[test]
    fn every_exposed_metric_is_in_the_catalog() {
        let text = super::render();
        let metrics = shopwatch_actors::telemetry::Metrics::new();
        crate::version::register_build_info(&metrics.registry);
        metrics.consumed.with_label_values(&["t"]).inc();
        for family in metrics.registry.gather() {
            let name = family.name();
            assert!(
                name.starts_with("process_") || text.contains(&format!("`{name}`")),
                "{name} is exposed but not in the reference"
            );
        }
        assert!(
            text.contains("`shopwatch_ws_clients`")
                && text.contains("`shopwatch_query_served_rows_total`")
        );
    }
}
