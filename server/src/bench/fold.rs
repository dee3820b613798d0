//! `shopwatch bench fold`: the KPI work per event, three ways, on one thread over the
//! generator's mix (an hour of event time, batches as a consumer commits them): folded by an
//! aggregator (what the rollup owner does for the partitions it reads itself), folded into
//! partial windows and serialized (what every other instance does for its own), and merged
//! from those partials (what the owner does for the other instances' partitions). The figures
//! the fleet projection in BENCHMARKS.md "Partial windows" is built from.

use clap::Args;
use shopwatch_actors::events::{decode, Event, EventKind};
use shopwatch_actors::kpis::KpiEngine;
use shopwatch_actors::schema::partials::PartRow;
use shopwatch_actors::schema::{ClickRows, ErrorRows, OrderRows, Rows, Source};
use shopwatch_load::generator::{EventClock, Generator, Stream};

use super::parse::thread_cpu_s;
use crate::config::Config;

#[derive(Args)]
pub struct FoldArgs {
    #[arg(long, default_value_t = 600_000)]
    pub events: u64,
    /// Events per committed batch (the writer commits partials per batch here).
    #[arg(long, default_value_t = 20_000)]
    pub batch: usize,
    #[arg(long, default_value_t = 3)]
    pub partitions: i32,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// Batches of rows per topic kind, with their offsets per partition.
fn batches(args: &FoldArgs) -> anyhow::Result<Vec<[Rows; 3]>> {
    let now = chrono::Utc::now().timestamp_micros();
    let start_us = now - 2 * 3_600_000_000;
    let step_us = (3_600_000_000 / args.events.max(1)) as i64;
    let mut generator = Generator::new(args.seed, 0.0).with_clock(EventClock { start_us, step_us });
    let limits = shopwatch_actors::events::Limits::default();
    let mut offsets = [[0i64; 64]; 3];
    let mut out = Vec::new();
    let mut left = args.events;
    while left > 0 {
        let n = left.min(args.batch as u64);
        left -= n;
        let (mut o, mut c, mut e) = (
            OrderRows::with_capacity(0),
            ClickRows::with_capacity(0),
            ErrorRows::with_capacity(0),
        );
        for _ in 0..n {
            let g = generator.next();
            let kind = match g.stream {
                Stream::Orders => EventKind::Orders,
                Stream::Clicks => EventKind::Clicks,
                Stream::Errors => EventKind::Errors,
            };
            let k = kind as usize;
            let partition = (offsets[k][0] % i64::from(args.partitions)) as i32;
            let offset = offsets[k][partition as usize + 1];
            offsets[k][partition as usize + 1] += 1;
            offsets[k][0] += 1;
            let source = Source {
                partition,
                offset,
                ingested_at: now,
            };
            match decode(kind, Some(&g.payload), &limits, now) {
                Ok(Event::Order(x)) => o.push(source, &x),
                Ok(Event::Click(x)) => c.push(source, &x),
                Ok(Event::Error(x)) => e.push(source, &x),
                Err(r) => anyhow::bail!("the generator's event was refused: {}", r.detail),
            }
        }
        out.push([Rows::Orders(o), Rows::Clicks(c), Rows::Errors(e)]);
    }
    Ok(out)
}

pub fn run(cfg: Config, args: FoldArgs) -> anyhow::Result<i32> {
    let kpis = cfg.windows.engines()?;
    let data = batches(&args)?;
    let now = chrono::Utc::now().timestamp_micros();
    let n = args.events as f64;
    let per = |cpu: f64| cpu * 1e6 / n;

    // The owner folding every event itself.
    let cpu0 = thread_cpu_s();
    let mut direct: Vec<Box<dyn KpiEngine>> = kpis.iter().map(|(k, e)| k.engine(*e)).collect();
    for batch in &data {
        for ((kpi, _), engine) in kpis.iter().zip(direct.iter_mut()) {
            for (i, kind) in kpi.inputs().iter().enumerate() {
                engine.fold_rows(i, &batch[*kind as usize], now, &|_, _| true);
            }
        }
    }
    let fold = thread_cpu_s() - cpu0;

    // Another instance folding into partials and serializing them, batch by batch.
    let cpu0 = thread_cpu_s();
    let mut rows: Vec<Vec<(usize, PartRow)>> = Vec::new();
    let mut parts: Vec<_> = kpis.iter().map(|(k, e)| k.parts(*e)).collect();
    for batch in &data {
        let mut out = Vec::new();
        for (k, (kpi, _)) in kpis.iter().enumerate() {
            for (i, kind) in kpi.inputs().iter().enumerate() {
                parts[k].fold_rows(i, &batch[*kind as usize], &|_, _| true);
                for p in 0..args.partitions {
                    for o in parts[k].take(i, p).map_err(anyhow::Error::msg)? {
                        out.push((k, o.row(kpi.name(), kind.as_str(), p, (0, 1))));
                    }
                }
            }
        }
        rows.push(out);
    }
    let write = thread_cpu_s() - cpu0;
    let panes: usize = rows.iter().map(Vec::len).sum();
    let json: usize = rows.iter().flatten().map(|(_, r)| r.acc.len()).sum();

    // The owner merging them.
    let cpu0 = thread_cpu_s();
    let mut merged: Vec<Box<dyn KpiEngine>> = kpis.iter().map(|(k, e)| k.engine(*e)).collect();
    for batch in &rows {
        for (k, (kpi, _)) in kpis.iter().enumerate() {
            for (i, kind) in kpi.inputs().iter().enumerate() {
                let mine: Vec<PartRow> = batch
                    .iter()
                    .filter(|(j, r)| *j == k && *r.topic == *kind.as_str())
                    .map(|(_, r)| r.clone())
                    .collect();
                merged[k]
                    .fold_parts(i, &mine, now, &|_, _| true)
                    .map_err(anyhow::Error::msg)?;
            }
        }
    }
    let merge = thread_cpu_s() - cpu0;

    println!(
        "fold: {} events in batches of {}, {} partitions per topic, {} KPIs, one thread",
        args.events,
        args.batch,
        args.partitions,
        kpis.len()
    );
    println!("{:<56} {:>12}", "figure", "value");
    let row = |k: &str, v: String| println!("{k:<56} {v:>12}");
    row(
        "folded by an aggregator, CPU µs per event (all KPIs)",
        format!("{:.2}", per(fold)),
    );
    row(
        "folded into partials + JSON, CPU µs per event",
        format!("{:.2}", per(write)),
    );
    row(
        "partials merged by the owner, CPU µs per event",
        format!("{:.2}", per(merge)),
    );
    row("  merge / fold", format!("{:.3}", merge / fold.max(1e-9)));
    row(
        "partial rows (pane × partition × KPI × batch)",
        panes.to_string(),
    );
    row("  JSON bytes per event", format!("{:.1}", json as f64 / n));
    Ok(0)
}
