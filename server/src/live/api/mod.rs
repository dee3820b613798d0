//! The dashboard's HTTP handlers.

pub mod actions;
pub mod rows;
pub mod trends;
pub mod ws;
