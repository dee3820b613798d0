//! `shopwatch reference`: write or check the generated references (docs/reference/).

use std::path::PathBuf;

use clap::Args;

#[derive(Args)]
pub struct ReferenceArgs {
    /// Where the references live.
    #[arg(long, default_value = "docs/reference")]
    dir: PathBuf,
    /// Write them (otherwise only check, exit 1 when one is out of date).
    #[arg(long)]
    write: bool,
}

pub fn run(args: ReferenceArgs) -> anyhow::Result<i32> {
    if args.write {
        crate::reference::write(&args.dir)?;
        println!("wrote {}", args.dir.display());
        return Ok(crate::exit::OK);
    }
    let stale = crate::reference::stale(&args.dir);
    if stale.is_empty() {
        println!("{}: current", args.dir.display());
        Ok(crate::exit::OK)
    } else {
        eprintln!(
            "{}: out of date: {}; run `shopwatch reference --write`",
            args.dir.display(),
            stale.join(", ")
        );
        Ok(crate::exit::ERROR)
    }
}
