//! `shopwatch bootstrap dremio`: one-shot, idempotent set-up of the production-like stack.

use clap::Subcommand;

#[derive(Subcommand)]
pub enum BootstrapTarget {
    /// Wait for Dremio, create its first user if none, create the Nessie source if missing.
    Dremio(crate::bootstrap::DremioArgs),
}

pub async fn run(target: BootstrapTarget) -> anyhow::Result<i32> {
    match target {
        BootstrapTarget::Dremio(args) => crate::bootstrap::run(args).await?,
    }
    Ok(0)
}
