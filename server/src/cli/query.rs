//! `shopwatch query`: one SQL query (or the dashboard's KPI set) through Flight SQL.

use std::time::Duration;

use clap::Args;

use super::Ctx;
use crate::flight;

#[derive(Args)]
pub struct QueryArgs {
    /// The SQL, e.g. "SELECT * FROM nessie_minio_catalog.ecommerce_db.alerts LIMIT 5".
    #[arg(required_unless_present = "kpis")]
    sql: Option<String>,
    /// Run the dashboard's KPI query set instead (the same SQL for Dremio and the embedded server).
    #[arg(long)]
    kpis: bool,
    /// With --kpis: print the queries as JSON instead of running them.
    #[arg(long, requires = "kpis")]
    print_sql: bool,
    /// Flight SQL address (default: per config `query.backend`, the embedded server's `flight.listen`).
    #[arg(long)]
    flight: Option<String>,
    /// Time limit for connecting and for each call, in seconds.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
}

pub async fn run(args: QueryArgs, ctx: &Ctx) -> anyhow::Result<i32> {
    let cfg = ctx.config(Vec::new())?;
    let target = cfg.query_target();
    let now = chrono::Utc::now().timestamp_micros();
    if args.print_sql {
        let set: Vec<serde_json::Value> =
            flight::kpis::kpi_queries(&target.source, &target.namespace, now)
                .into_iter()
                .map(|q| serde_json::json!({"name": q.name, "sql": q.sql}))
                .collect();
        println!("{}", serde_json::Value::Array(set));
        return Ok(0);
    }
    let addr = args.flight.unwrap_or(target.addr.clone());
    let mut client = flight::client::FlightQueryClient::connect(
        &addr,
        &target.username,
        target.password.expose(),
        Duration::from_secs_f64(args.timeout.max(0.1)),
    )
    .await?;
    let queries = match args.sql {
        Some(sql) => vec![("query", sql)],
        None => flight::kpis::kpi_queries(&target.source, &target.namespace, now)
            .into_iter()
            .map(|q| (q.name, q.sql))
            .collect(),
    };
    for (name, sql) in queries {
        let batches = client.query(&sql).await?;
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        println!("{name}: {rows} row(s)");
        println!("{}", arrow::util::pretty::pretty_format_batches(&batches)?);
    }
    Ok(0)
}
