//! shopwatch's pipeline: typed events, the KPI and alert-rule registries, the Iceberg lake with
//! its one exactly-once commit loop, and the supervised actors that move records from Kafka
//! into it.
//!
//! Layers, top to bottom (a module imports only from below it):
//! `runtime` → `pipeline`, `rollup` → `handoff`, `supervision`, `error` → `alerts`, `kpis`,
//! `lake` → `windows`, `schema`, `events`, `sql`, `telemetry`, `faults`.

pub mod alerts;
pub mod error;
pub mod events;
pub mod faults;
pub mod handoff;
pub mod kpis;
pub mod lake;
pub mod migrate;
pub mod pipeline;
pub mod rollup;
pub mod runtime;
pub mod schema;
pub mod sql;
pub mod supervision;
pub mod tables;
pub mod telemetry;
pub mod windows;

pub use error::{Error, Kind};
