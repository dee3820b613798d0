//! A supervised group's status, shared with the HTTP side (`/readyz`, the page's health).

use std::sync::{Arc, Mutex};

use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "state", content = "reason", rename_all = "snake_case")]
pub enum PipelineState {
    Starting,
    Running,
    Restarting,
    Failed(String),
    Stopped,
    /// Another instance runs this group now; this one takes over when elected.
    Standby,
}

impl PipelineState {
    /// Doing what it should: running, or standing by for another instance.
    pub fn is_ready(&self) -> bool {
        matches!(self, PipelineState::Running | PipelineState::Standby)
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct PipelineStatus {
    pub pipeline: String,
    pub topic: String,
    #[serde(flatten)]
    pub state: PipelineState,
    pub restarts: u64,
    pub last_restart_actor: Option<String>,
    pub last_error: Option<String>,
}

#[derive(Clone, Debug)]
pub struct StatusHandle(Arc<Mutex<PipelineStatus>>);

impl StatusHandle {
    pub fn new(pipeline: &str, topic: &str) -> Self {
        StatusHandle(Arc::new(Mutex::new(PipelineStatus {
            pipeline: pipeline.to_string(),
            topic: topic.to_string(),
            state: PipelineState::Starting,
            restarts: 0,
            last_restart_actor: None,
            last_error: None,
        })))
    }
    pub fn set_state(&self, state: PipelineState) {
        if let Ok(mut s) = self.0.lock() {
            s.state = state;
        }
    }
    pub fn record_restart(&self, actor: &str, error: &str) {
        if let Ok(mut s) = self.0.lock() {
            s.restarts += 1;
            s.last_restart_actor = Some(actor.to_string());
            s.last_error = Some(error.chars().take(500).collect());
        }
    }
    /// A failure that stopped the group: its reason is the group's last error too (the
    /// page's health panel shows it beside the state).
    pub fn record_stop(&self, actor: &str, error: &str) {
        if let Ok(mut s) = self.0.lock() {
            s.last_restart_actor = Some(actor.to_string());
            s.last_error = Some(error.chars().take(500).collect());
        }
    }

    pub fn snapshot(&self) -> Option<PipelineStatus> {
        self.0.lock().ok().map(|s| s.clone())
    }
}
