//! The dashboard's long-lived parts, each run as a supervised service.

pub mod hub;
pub mod metrics;
pub mod pacing;
pub mod provisional;
pub mod refresher;
