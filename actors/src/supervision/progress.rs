//! Progress heartbeat shared between an actor and its supervisor.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Progress {
    origin: Instant,
    last_beat_ms: AtomicU64,
    busy: AtomicBool,
    /// (partition, offset) of the record being handled, for poison-record attribution;
    /// partition -1 = none. Two atomics, not a lock: it is set twice per record on the hot
    /// path (a mutex here cost 2 % of the pipeline's CPU) and read only after the consumer
    /// died, when nothing writes it any more.
    current_partition: AtomicI32,
    current_offset: AtomicI64,
}

impl Default for Progress {
    fn default() -> Self {
        Progress {
            origin: Instant::now(),
            last_beat_ms: AtomicU64::new(0),
            busy: AtomicBool::new(false),
            current_partition: AtomicI32::new(-1),
            current_offset: AtomicI64::new(0),
        }
    }
}

impl Progress {
    pub fn beat(&self) {
        self.beat_at(Instant::now());
    }
    /// A beat at `now`, for a loop that has just read the clock anyway.
    pub fn beat_at(&self, now: Instant) {
        self.last_beat_ms.store(
            now.saturating_duration_since(self.origin).as_millis() as u64,
            Ordering::Relaxed,
        );
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
        match record {
            Some((p, o)) => {
                self.current_offset.store(o, Ordering::Relaxed);
                self.current_partition.store(p, Ordering::Release);
            }
            None => self.current_partition.store(-1, Ordering::Release),
        }
    }
    pub fn record(&self) -> Option<(i32, i64)> {
        let p = self.current_partition.load(Ordering::Acquire);
        (p >= 0).then(|| (p, self.current_offset.load(Ordering::Relaxed)))
    }
}

/// Busy while alive: a handler that holds it and makes no progress for the stuck timeout is
/// killed by its supervisor.
pub struct Busy<'a>(&'a Progress);

impl Progress {
    pub fn busy(&self) -> Busy<'_> {
        self.set_busy(true);
        Busy(self)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.set_busy(false);
    }
}
