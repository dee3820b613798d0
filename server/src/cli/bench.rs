//! `shopwatch bench …`: benchmarks that print figures (see BENCHMARKS.md).

use super::Ctx;

pub async fn run(args: crate::bench::BenchArgs, ctx: &Ctx) -> anyhow::Result<i32> {
    let cfg = ctx.config(Vec::new())?;
    crate::bench::run(cfg, args).await
}
