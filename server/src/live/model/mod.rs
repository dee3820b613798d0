//! What the page shows, pure: no actors, no sockets.

pub mod alert_groups;
pub mod health;
pub mod results;
pub mod views;
