//! What the drill's faults act on: the processes, the positions watched, the counters.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::sync::watch as tokio_watch;

use super::procs::{BrokerProc, PipelineProc};
use super::production::Production;
use super::report;
use super::watch::{self, Positions};
use crate::seaweed::Seaweed;

/// Everything the faults act on.
pub(crate) struct Ctx {
    pub production: Production,
    pub broker: BrokerProc,
    /// The (first) instance; the single-instance faults act on it.
    pub pipeline: PipelineProc,
    /// The other instances of the group lane.
    pub more: Vec<PipelineProc>,
    /// The pipelines' group session timeout (a frozen instance must outlast it).
    pub session: Duration,
    pub group: report::GroupLog,
    /// Counters of every process, restarts included.
    pub counters: report::PerProcess,
    /// The lake's server on the SeaweedFS lane.
    pub seaweed: Option<Seaweed>,
    pub http: reqwest::Client,
    pub token: String,
    pub positions: tokio_watch::Receiver<Positions>,
    pub warehouse: PathBuf,
    pub stuck_timeout: Duration,
    pub brokers: String,
    pub topics: Vec<String>,
    pub partitions: i32,
    pub raw: Vec<(String, String)>,
    /// Times the pipeline exited by itself (meltdown, fatal error): each is a finding.
    pub unplanned_exits: Vec<String>,
    /// Instances started so far besides the first (names new ones uniquely).
    pub added: usize,
    /// The drill's network namespaces (`--netns`); dropped last, after the processes.
    pub net: Option<super::net::Net>,
}

impl Ctx {
    /// The metrics of the instance that owns the rollup tables (the first one alone).
    pub async fn metrics_body(&self) -> String {
        let http = match self.owner().await {
            Some(i) if i > 0 => self.more[i - 1].http.clone(),
            _ => self.pipeline.http.clone(),
        };
        let url = format!("http://{http}/metrics");
        match self.http.get(url).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    pub fn raw_total(&self) -> i64 {
        watch::raw_total(&self.positions.borrow())
    }

    /// Restart the pipeline if it exited by itself, and remember that it did.
    pub async fn revive(&mut self) {
        let mut exits = Vec::new();
        for p in self.instances() {
            if let Some(status) = p.exited() {
                tracing::warn!(%status, "pipeline exited on its own; restarting it");
                exits.push(format!("{status}"));
                if let Err(e) = p.start().await {
                    tracing::warn!(error = %e, "restart after an unplanned exit failed");
                }
            }
        }
        self.unplanned_exits.extend(exits);
    }

    fn caught_up(&self) -> bool {
        watch::high_watermarks(&self.brokers, &self.topics, self.partitions)
            .is_ok_and(|high| watch::caught_up(&self.positions.borrow(), &self.raw, &high))
    }

    /// Time until a raw commit lands (the lake positions grow), or, once production is over,
    /// until the lake has everything; `None` after `limit`.
    pub async fn next_commit(&mut self, limit: Duration) -> Option<Duration> {
        let began = Instant::now();
        let from = self.raw_total();
        while began.elapsed() < limit {
            if self.raw_total() > from || (self.production.finished() && self.caught_up()) {
                return Some(began.elapsed());
            }
            self.revive().await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }
}
