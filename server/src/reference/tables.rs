//! `tables.md`: every table shopwatch writes, from the table definitions (`shopwatch tables`).

use shopwatch_actors::tables;

pub fn render() -> String {
    let cfg = crate::config::Config::default();
    let mut out = format!(
        "# Tables\n\n\
         Namespace `{}` (catalog `{}`; over Flight SQL also as `{}.{}.<table>`). The old\n\
         stack's columns come first, in its order; shopwatch's own are appended. Timestamps are\n\
         Iceberg `timestamp` (no zone) holding UTC wall time, microseconds.\n",
        cfg.lake.namespace, cfg.lake.catalog_name, cfg.flight.source, cfg.lake.namespace
    );
    for t in tables::all() {
        let spec = t.spec();
        out.push_str(&format!("\n## `{}` ({})\n\n", t.name(), t.kind()));
        match t {
            tables::Table::Raw(kind) => {
                out.push_str(&format!("From topic `{}`. ", cfg.topics.of(kind)))
            }
            tables::Table::Kpi(kpi) => {
                let w = kpi.window();
                let inputs: Vec<String> = kpi
                    .inputs()
                    .iter()
                    .map(|k| format!("`{}`", cfg.topics.of(*k)))
                    .collect();
                out.push_str(&format!(
                    "KPI `{}` from {}; windows of {} s sliding {} s, {} s lateness by default. ",
                    kpi.name(),
                    inputs.join(", "),
                    w.size_s,
                    w.slide_s,
                    w.lateness_s
                ));
            }
            tables::Table::Alerts => {
                let rules: Vec<String> = shopwatch_actors::alerts::RULES
                    .iter()
                    .map(|r| format!("`{}`", r.name))
                    .collect();
                out.push_str(&format!("Alert rules: {}. ", rules.join(", ")));
            }
            _ => {}
        }
        let parts: Vec<String> = spec
            .partition
            .fields()
            .iter()
            .map(|f| {
                format!(
                    "{}({})",
                    f.transform,
                    spec.schema
                        .field_by_id(f.source_id)
                        .map(|c| c.name.as_str())
                        .unwrap_or("?")
                )
            })
            .collect();
        out.push_str(&format!(
            "Partitioned by {}.\n\n| column | type | required |\n|---|---|---|\n",
            if parts.is_empty() {
                "nothing".to_string()
            } else {
                parts.join(", ")
            }
        ));
        for f in spec.schema.as_struct().fields() {
            out.push_str(&format!(
                "| `{}` | {} | {} |\n",
                f.name,
                f.field_type,
                if f.required { "yes" } else { "no" }
            ));
        }
    }
    out
}
