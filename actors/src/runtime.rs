//! The running groups of a process, each under the one supervisor: one topic pipeline per
//! topic, the rollup actors, and whatever else the binary adds (the KPI refresher). Started
//! and drained in the order that keeps every batch accounted for.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorRef};
use tracing::{info, warn};

use crate::pipeline::election::{ElectionGroup, ElectionParams, GROUP as ELECTION};
use crate::pipeline::kafka::session_timeout_of;
use crate::pipeline::{PipelineParams, TopicPipeline};
use crate::rollup::partials::{PartialsGroup, GROUP as PARTIALS};
use crate::rollup::{RollupGroup, RollupParams, GROUP as ROLLUP};
use crate::supervision::{
    ChildSpecs, PipelineState, PipelineStatus, StatusHandle, SupervisionParams, Supervisor,
    SupervisorArgs, SupervisorMsg,
};
use crate::telemetry::Metrics;

/// How long past a session the first start waits for the election (a dead earlier member
/// holds the partition until its session ends).
const VERDICT_GRACE: Duration = Duration::from_secs(2);

/// When a group drains: topics first (their final batches reach the rollup actors), then the
/// rollup actors once they have handled what was delivered, then readers of the lake and the
/// election (its leaving hands the rollup tables to another instance).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    Topics,
    Rollup,
    Readers,
}

struct Group {
    supervisor: ActorRef<SupervisorMsg>,
    handle: ractor::concurrency::JoinHandle<()>,
    status: StatusHandle,
    stage: Stage,
}

/// The running groups of this process.
pub struct Pipelines {
    groups: Vec<Group>,
}

impl Pipelines {
    /// Start the election (if any) and the rollup actors (if any) first, so their slots are
    /// taken before the first batch is committed, then one pipeline per topic.
    pub async fn start(
        all: Vec<PipelineParams>,
        rollup: Option<RollupParams>,
        election: Option<(ElectionParams, SupervisionParams)>,
    ) -> anyhow::Result<Pipelines> {
        let mut p = Pipelines { groups: Vec::new() };
        if let Some((params, supervision)) = election {
            let metrics = params.metrics.clone();
            let (ownership, wait) = (
                params.ownership.clone(),
                session_timeout_of(&params.kafka) + VERDICT_GRACE,
            );
            p.supervise(
                ELECTION,
                "-",
                Arc::new(ElectionGroup(params)),
                supervision,
                metrics,
                Stage::Readers,
            )
            .await?;
            // The rollup group starts only if elected; the consumers hand it their batches
            // only once it runs. Starting them before the verdict would leave a backlog's
            // batches undelivered, and the owner would rebuild them from the lake (measured:
            // 2M backlog events, 261,780 instead of 371,747 ev/CPU-s, BENCHMARKS.md).
            let started = Instant::now();
            while !ownership.settled() && started.elapsed() < wait {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            info!(
                owner = ownership.is_owner(),
                settled = ownership.settled(),
                waited_ms = started.elapsed().as_millis() as u64,
                "election verdict before the first poll"
            );
        }
        if let Some(params) = rollup {
            let (supervision, metrics) = (params.supervision.clone(), params.metrics.clone());
            // Where other instances may consume, every instance folds what it commits into
            // partials for whoever owns the rollup (itself included, after a handover).
            if params.broker.is_some() && !params.ownership.is_solo() {
                let slot = params.slots.partials.clone();
                p.supervise(
                    PARTIALS,
                    "*",
                    Arc::new(PartialsGroup(params.clone(), slot)),
                    supervision.clone(),
                    metrics.clone(),
                    Stage::Rollup,
                )
                .await?;
            }
            p.supervise(
                ROLLUP,
                "*",
                Arc::new(RollupGroup(params)),
                supervision,
                metrics,
                Stage::Rollup,
            )
            .await?;
        }
        for params in all {
            let (name, topic) = (params.kind.as_str(), params.topic.clone());
            let (supervision, metrics) = (params.supervision.clone(), params.metrics.clone());
            p.supervise(
                name,
                &topic,
                Arc::new(TopicPipeline(params)),
                supervision,
                metrics,
                Stage::Topics,
            )
            .await?;
        }
        Ok(p)
    }

    /// Run one more group under its own supervisor.
    pub async fn supervise(
        &mut self,
        name: &str,
        topic: &str,
        specs: Arc<dyn ChildSpecs>,
        params: SupervisionParams,
        metrics: Metrics,
        stage: Stage,
    ) -> anyhow::Result<()> {
        let status = StatusHandle::new(name, topic);
        let (supervisor, handle) = Actor::spawn(
            None,
            Supervisor,
            SupervisorArgs {
                name: name.to_string(),
                specs,
                params,
                status: status.clone(),
                metrics,
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("starting the {name} supervisor: {e}"))?;
        self.groups.push(Group {
            supervisor,
            handle,
            status,
            stage,
        });
        Ok(())
    }

    pub fn statuses(&self) -> Vec<PipelineStatus> {
        self.groups
            .iter()
            .filter_map(|g| g.status.snapshot())
            .collect()
    }

    pub fn status_handles(&self) -> Vec<StatusHandle> {
        self.groups.iter().map(|g| g.status.clone()).collect()
    }

    /// True once every group that moves data (topics, rollup) has failed for good: nothing
    /// can run any more.
    pub fn all_failed(&self) -> bool {
        let data: Vec<_> = self
            .groups
            .iter()
            .filter(|g| g.stage != Stage::Readers)
            .filter_map(|g| g.status.snapshot())
            .collect();
        !data.is_empty()
            && data
                .iter()
                .all(|p| matches!(p.state, PipelineState::Failed(_)))
    }

    /// Stop consuming, commit what is in flight, stop every actor; bounded by `timeout`.
    pub async fn drain(self, timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout;
        for stage in [Stage::Topics, Stage::Rollup, Stage::Readers] {
            let left = deadline
                .saturating_duration_since(std::time::Instant::now())
                .max(Duration::from_secs(1));
            let drains = self.groups.iter().filter(|g| g.stage == stage).map(|g| {
                let sup = g.supervisor.clone();
                async move { ractor::call_t!(sup, SupervisorMsg::Drain, left.as_millis() as u64) }
            });
            for result in futures::future::join_all(drains).await {
                if let Err(e) = result {
                    warn!(error = %e, "pipeline did not drain in time");
                }
            }
        }
        for g in self.groups {
            g.supervisor.stop(None);
            let _ = tokio::time::timeout(Duration::from_secs(2), g.handle).await;
        }
    }
}
