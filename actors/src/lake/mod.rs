//! The lake side, by concern: the catalog (with the pinning wrapper), the one exactly-once
//! commit loop and its pure deciders (`commit/`), reading and writing files (`io/`), and
//! keeping tables small and fast (`maintenance/`).

pub mod adopt;
pub mod catalog;
pub mod commit;
pub mod io;
pub mod maintenance;
mod pinned;
pub mod props;
pub mod snapshot_commit;
mod wrap;

pub use catalog::{CatalogKind, Lake, LakeParams, PinnedCatalog};
pub use commit::offsets::{Offsets, Ranges};
pub use commit::{
    append_once, CommitError, CommitOutcome, CommitReport, OffsetRule, Recorded, RollupCommitter,
    TableBatch, TableCommitter,
};
pub use maintenance::rewrite::DataCompactionParams;
pub use maintenance::HygieneParams;
pub use props::Props;
