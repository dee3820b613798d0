//! Event-time windows, kept pure (no actors, no Kafka, no Iceberg) so the rules can be
//! property-tested against a brute-force recount.

pub mod clock;
pub mod engine;
pub mod lattice;
pub mod parts;

pub use clock::{ClockParams, Watermark};
pub use engine::{Acc, Emission, Engine, EngineParams, Fact, Fold, Input};
pub use lattice::Windowing;
pub use parts::{Part, Parts};
