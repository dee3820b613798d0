//! What `/readyz` and the page show of the lake's maintenance: each step's outcomes per table.

/// How one maintenance step of one table is doing.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct StepState {
    pub table: String,
    pub step: String,
    pub failures: u64,
    /// Failures since the last success: a step failing every round is broken, not flaky.
    pub consecutive: u64,
    pub last_error: Option<String>,
    /// Unix ms of the last success.
    pub last_ok_ms: Option<i64>,
}

#[derive(Clone, Debug, Default)]
pub struct MaintenanceLog(
    std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<(String, String), StepState>>>,
);

impl MaintenanceLog {
    pub(super) fn record(&self, table: &str, step: &str, outcome: Result<(), String>) -> u64 {
        let Ok(mut steps) = self.0.lock() else {
            return 0;
        };
        let s = steps
            .entry((table.to_string(), step.to_string()))
            .or_insert_with(|| StepState {
                table: table.to_string(),
                step: step.to_string(),
                ..StepState::default()
            });
        match outcome {
            Ok(()) => {
                s.consecutive = 0;
                s.last_ok_ms = Some(chrono::Utc::now().timestamp_millis());
            }
            Err(e) => {
                s.failures += 1;
                s.consecutive += 1;
                // Errors name paths and statuses, never credentials (object_store, iceberg).
                s.last_error = Some(e.chars().take(300).collect());
            }
        }
        s.consecutive
    }

    /// Steps that failed at least once, worst first.
    pub fn failing(&self) -> Vec<StepState> {
        let mut out: Vec<StepState> = self
            .0
            .lock()
            .map(|s| s.values().filter(|s| s.failures > 0).cloned().collect())
            .unwrap_or_default();
        out.sort_by(|a, b| b.consecutive.cmp(&a.consecutive));
        out
    }
}
