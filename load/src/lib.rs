//! Load generation and the local broker: the seed's payloads, an idempotent paced producer,
//! and Tansu run as a supervised child process.

pub mod bare;
pub mod broker;
pub mod drill;
pub mod generator;
pub mod produce;
pub mod seaweed;
pub mod soak;
pub mod stats;
