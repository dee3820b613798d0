//! Event-time windows, kept pure (no actors, no Kafka, no Iceberg) so the rules can be
//! property-tested against a brute-force recount.

pub mod clock;
pub mod engine;
pub mod kpis;
pub mod lattice;
#[cfg(test)]
mod props;

pub use clock::{ClockParams, Watermark};
pub use engine::{Acc, Emission, Engine, EngineParams, Fact, Fold, Input};
pub use kpis::{
    ErrorsAcc, ErrorsRow, OrdersAcc, OrdersRow, TrafficAcc, TrafficRow, UsersAcc, UsersRow,
};
pub use lattice::Windowing;
