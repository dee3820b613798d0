//! `shopwatch tables [--json]`: every table shopwatch writes, with its columns and, for KPIs,
//! its inputs and effective windows. The independent checkers read their table list from here.

use clap::Args;
use serde_json::{json, Value};
use shopwatch_actors::tables::{self, Table};

use super::Ctx;

#[derive(Args)]
pub struct TablesArgs {
    /// One JSON document (for scripts and the Python checkers).
    #[arg(long)]
    json: bool,
}

fn describe(cfg: &crate::config::Config, t: &Table) -> Value {
    let spec = t.spec();
    let columns: Vec<Value> = spec
        .schema
        .as_struct()
        .fields()
        .iter()
        .map(|f| json!({"name": f.name, "type": f.field_type.to_string()}))
        .collect();
    let mut v = json!({"name": t.name(), "kind": t.kind(), "columns": columns});
    match t {
        Table::Raw(kind) => {
            v["topic"] = json!(cfg.topics.of(*kind));
        }
        Table::Kpi(kpi) => {
            let w = cfg.windows.of(*kpi);
            let lateness = if cfg.windows.seed_watermarks {
                kpi.window().seed_lateness_s
            } else {
                w.lateness_s
            };
            v["kpi"] = json!(kpi.name());
            v["inputs"] = json!(kpi
                .inputs()
                .iter()
                .map(|k| json!({"topic": cfg.topics.of(*k), "table": k.raw_table()}))
                .collect::<Vec<_>>());
            v["window"] = json!({"size_s": w.size_s, "slide_s": w.slide_s, "lateness_s": lateness});
        }
        Table::Alerts => {
            v["rules"] = json!(shopwatch_actors::alerts::RULES
                .iter()
                .map(|r| r.name)
                .collect::<Vec<_>>());
        }
        Table::DeadLetters | Table::AlertActions => {}
        Table::Partials(kind) => {
            v["topic"] = json!(cfg.topics.of(*kind));
        }
    }
    v
}

pub async fn run(args: TablesArgs, ctx: &Ctx) -> anyhow::Result<i32> {
    let cfg = ctx.config(Vec::new())?;
    let all: Vec<Value> = tables::all().iter().map(|t| describe(&cfg, t)).collect();
    if args.json {
        let doc = json!({
            "catalog": cfg.lake.catalog_name,
            "namespace": cfg.lake.namespace,
            "source": cfg.flight.source,
            "max_skew_s": cfg.windows.max_skew_s,
            "tables": all,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(0);
    }
    for t in &all {
        let cols: Vec<&str> = t["columns"]
            .as_array()
            .map(|c| c.iter().filter_map(|c| c["name"].as_str()).collect())
            .unwrap_or_default();
        println!(
            "{}.{:<28} {:<13} {}",
            cfg.lake.namespace,
            t["name"].as_str().unwrap_or_default(),
            t["kind"].as_str().unwrap_or_default(),
            cols.join(", ")
        );
    }
    Ok(0)
}
