//! The supervised pipeline: per topic a supervisor with a consumer and two committers.

pub mod committer;
pub mod consumer;
pub mod faults;
pub mod messages;
pub mod params;
pub mod progress;
pub mod restart;
pub mod status;
pub mod supervisor;

pub use params::{BatchParams, KafkaParams, PipelineParams, SupervisionParams};
pub use status::{PipelineState, PipelineStatus, StatusHandle, DERIVED_PIPELINE};

/// An error no restart can fix (offsets fenced, broker behind the lake): the pipeline stops.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FatalError(pub String);
