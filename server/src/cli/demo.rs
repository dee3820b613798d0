//! `shopwatch demo`: local broker, pipeline, lake, Flight and the dashboard in one command.

use clap::Args;
use toml::Value;

use super::{Ctx, RunArgs};

#[derive(Args)]
pub struct DemoArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Generator rate, events per second (config `demo.rate`).
    #[arg(long)]
    rate: Option<f64>,
    /// Generator seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

pub async fn run(args: DemoArgs, ctx: &Ctx) -> anyhow::Result<i32> {
    let mut overrides = args.run.overrides();
    if let Some(rate) = args.rate {
        overrides.push(("demo.rate", Value::Float(rate)));
    }
    let cfg = ctx.config(overrides)?;
    crate::demo::demo(cfg, args.seed).await
}
