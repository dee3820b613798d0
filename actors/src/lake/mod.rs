//! The lake side: catalog, pinned commits, data files, offsets and metadata hygiene.

pub mod append;
pub mod catalog;
pub mod chain;
pub mod commit;
pub mod compact;
pub mod hygiene;
pub mod offsets;
pub mod orphans;
pub mod scan;
pub mod store;
pub mod writer;

pub use catalog::{CatalogKind, Lake, LakeParams, PinnedCatalog};
pub use commit::{
    CommitError, CommitOutcome, CommitReport, OffsetRule, TableBatch, TableCommitter,
};
pub use hygiene::HygieneParams;
pub use offsets::{Offsets, Ranges};
