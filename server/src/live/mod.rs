//! The live side of the dashboard, in three rooms (imports run model ← tasks ← api):
//! - `model/`: what the page shows, pure: each KPI's declared views and their maths, result
//!   rows, health, alert groups.
//! - `tasks/`: the long-lived parts, each a supervised service: the KPI refresher (reads the
//!   lake through Flight SQL), the websocket hub, the provisional board, their metrics.
//! - `api/`: the HTTP handlers: `/ws`, `/api/rows`, `/api/trends`, `/api/alerts/actions`.

pub mod api;
pub mod model;
pub mod tasks;
