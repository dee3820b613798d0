//! `shopwatch run`: the pipeline, HTTP and the Flight SQL server against an existing Kafka.

use super::{Ctx, RunArgs};

pub async fn run(args: RunArgs, ctx: &Ctx) -> anyhow::Result<i32> {
    let cfg = ctx.config(args.overrides())?;
    crate::run::run_until(cfg, crate::run::shutdown_signal()).await
}
