//! Files of the lake: Parquet data files, the one way we append them, scans back into typed
//! rows, and object storage (local disk and S3 through one API).

pub mod append;
#[cfg(feature = "failpoints")]
pub mod faulty;
pub mod index;
pub mod scan;
pub mod store;
pub mod writer;
