//! Progress heartbeat shared between an actor and its supervisor.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Progress {
    origin: Instant,
    last_beat_ms: AtomicU64,
    busy: AtomicBool,
    /// (partition, offset) of the record being handled, for poison-record attribution.
    current_record: Mutex<Option<(i32, i64)>>,
}

impl Default for Progress {
    fn default() -> Self {
        Progress {
            origin: Instant::now(),
            last_beat_ms: AtomicU64::new(0),
            busy: AtomicBool::new(false),
            current_record: Mutex::new(None),
        }
    }
}

impl Progress {
    pub fn beat(&self) {
        self.last_beat_ms
            .store(self.origin.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
    pub fn set_busy(&self, busy: bool) {
        self.beat();
        self.busy.store(busy, Ordering::Relaxed);
    }
    /// Work is pending and nothing moved for longer than `timeout`.
    pub fn is_stuck(&self, timeout: Duration) -> bool {
        let idle =
            self.origin.elapsed().as_millis() as u64 - self.last_beat_ms.load(Ordering::Relaxed);
        self.busy.load(Ordering::Relaxed) && idle > timeout.as_millis() as u64
    }
    pub fn set_record(&self, record: Option<(i32, i64)>) {
        if let Ok(mut r) = self.current_record.lock() {
            *r = record;
        }
    }
    pub fn record(&self) -> Option<(i32, i64)> {
        self.current_record.lock().ok().and_then(|r| *r)
    }
}
