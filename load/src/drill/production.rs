//! The drill's producer, paused while the broker is down.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Context;

use crate::produce::{produce, ProduceParams, ProduceReport};

/// The drill's producer, in segments: it pauses (every send acknowledged or failed) while the
/// broker is down, and a fresh producer resumes afterwards. Tansu 0.6.0 on SQLite panics on an
/// idempotent producer's sequence after a restart ("more or less than one row",
/// tansu-storage lite.rs:503), so the producer must not live across one; the producer is the
/// drill's scaffolding, the consumer side is what the fault tests.
pub(crate) struct Production {
    pub(super) params: ProduceParams,
    pub(super) total: u64,
    pub(super) segment: u64,
    pub(super) task: Option<(
        tokio::task::JoinHandle<anyhow::Result<ProduceReport>>,
        Arc<AtomicBool>,
    )>,
    pub(super) done: ProduceReport,
}

impl Production {
    pub(super) fn start(&mut self) {
        let remaining = self.total.saturating_sub(self.done.sent);
        if remaining == 0 || self.task.is_some() {
            return;
        }
        let mut params = self.params.clone();
        params.count = Some(remaining);
        // A different stream per segment: ids stay unique across segments.
        params.seed = self
            .params
            .seed
            .wrapping_add(self.segment.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        self.segment += 1;
        let stop = Arc::new(AtomicBool::new(false));
        self.task = Some((tokio::spawn(produce(params, stop.clone())), stop));
    }

    async fn collect(&mut self, stop: bool) -> anyhow::Result<()> {
        if let Some((task, flag)) = self.task.take() {
            if stop {
                flag.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            let r = task.await.context("producer task")??;
            self.done.sent += r.sent;
            self.done.acked += r.acked;
            self.done.errors += r.errors;
            self.done.malformed_acked += r.malformed_acked;
        }
        Ok(())
    }

    pub async fn pause(&mut self) -> anyhow::Result<()> {
        self.collect(true).await
    }

    pub fn resume(&mut self) {
        self.start()
    }

    /// Every event has been sent and acknowledged (or failed).
    pub fn finished(&self) -> bool {
        match &self.task {
            Some((task, _)) => task.is_finished(),
            None => self.done.sent >= self.total,
        }
    }

    pub(super) async fn finish(&mut self) -> anyhow::Result<ProduceReport> {
        self.collect(false).await?;
        Ok(self.done.clone())
    }
}
