//! `shopwatch config check`: the effective configuration (secrets redacted), or its error.

use clap::Subcommand;

use super::{Ctx, RunArgs};

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration (secrets redacted), or the error in it.
    Check(RunArgs),
}

pub async fn run(command: ConfigCommand, ctx: &Ctx) -> anyhow::Result<i32> {
    match command {
        ConfigCommand::Check(args) => {
            let cfg = ctx.config(args.overrides())?;
            print!("{}", cfg.redacted_toml());
            Ok(0)
        }
    }
}
