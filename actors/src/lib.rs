//! shopwatch's pipeline: typed events, the Iceberg lake with exactly-once commits, and the
//! supervised actors that move records from Kafka into it.

pub mod alerts;
pub mod derived;
pub mod events;
pub mod failpoint;
pub mod lake;
pub mod pipeline;
pub mod runtime;
pub mod schema;
pub mod telemetry;
pub mod windows;
