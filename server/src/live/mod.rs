//! The live side of the dashboard: the KPI refresher reads the lake through Flight SQL and a
//! hub pushes what it found to every websocket client.

pub mod alerts;
pub mod dashboard;
pub mod drill;
pub mod health;
pub mod hub;
pub mod metrics;
pub mod provisional;
pub mod refresher;
pub mod results;
pub mod trends;
pub mod ws;

use std::time::Duration;

use serde_json::json;

/// Application-level heartbeat (browsers cannot send websocket pings; the page uses it to tell
/// a live socket from a dead one).
pub fn spawn_heartbeat(hub: hub::Hub, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            hub.publish("heartbeat", json!({ "clients": hub.clients() }));
        }
    })
}
