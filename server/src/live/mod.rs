//! The live side of the dashboard: the KPI refresher reads the lake through Flight SQL and a
//! hub pushes what it found to every websocket client.

pub mod alerts;
pub mod health;
pub mod hub;
pub mod metrics;
pub mod provisional;
pub mod refresher;
pub mod results;
pub mod rows;
pub mod trends;
pub mod views;
pub mod ws;
