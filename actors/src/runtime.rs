//! The running pipelines of a process: one supervisor per topic plus the derived actors'
//! supervisor, started and drained in the order that keeps every batch accounted for.

use std::time::Duration;

use ractor::{Actor, ActorRef};
use tracing::warn;

use crate::derived::supervisor::DerivedSupervisor;
use crate::derived::DerivedParams;
use crate::pipeline::messages::SupervisorMsg;
use crate::pipeline::supervisor::{PipelineSupervisor, SupervisorArgs};
use crate::pipeline::{
    PipelineParams, PipelineState, PipelineStatus, StatusHandle, DERIVED_PIPELINE,
};

/// The running pipelines of this process.
pub struct Pipelines {
    supervisors: Vec<(ActorRef<SupervisorMsg>, ractor::concurrency::JoinHandle<()>)>,
    statuses: Vec<StatusHandle>,
}

impl Pipelines {
    /// Start the derived actors (if any) first, so their slots are taken before the first
    /// batch is committed, then one pipeline per topic.
    pub async fn start(
        all: Vec<PipelineParams>,
        derived: Option<DerivedParams>,
    ) -> anyhow::Result<Pipelines> {
        let mut supervisors = Vec::new();
        let mut statuses = Vec::new();
        if let Some(params) = derived {
            let status = StatusHandle::new(DERIVED_PIPELINE, "*");
            let (actor, handle) = Actor::spawn(None, DerivedSupervisor, (params, status.clone()))
                .await
                .map_err(|e| anyhow::anyhow!("starting derived supervisor: {e}"))?;
            supervisors.push((actor, handle));
            statuses.push(status);
        }
        for params in all {
            let status = StatusHandle::new(params.kind.as_str(), &params.topic);
            let (actor, handle) = Actor::spawn(
                None,
                PipelineSupervisor,
                SupervisorArgs {
                    params,
                    status: status.clone(),
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("starting pipeline supervisor: {e}"))?;
            supervisors.push((actor, handle));
            statuses.push(status);
        }
        Ok(Pipelines {
            supervisors,
            statuses,
        })
    }

    pub fn statuses(&self) -> Vec<PipelineStatus> {
        self.statuses
            .iter()
            .filter_map(StatusHandle::snapshot)
            .collect()
    }

    pub fn status_handles(&self) -> Vec<StatusHandle> {
        self.statuses.clone()
    }

    /// True once every pipeline has failed for good: nothing can run any more.
    pub fn all_failed(&self) -> bool {
        let s = self.statuses();
        !s.is_empty()
            && s.iter()
                .all(|p| matches!(p.state, PipelineState::Failed(_)))
    }

    /// Stop consuming, commit what is in flight, stop every actor; bounded by `timeout`.
    /// The topic pipelines first (their final batches reach the derived actors), then the
    /// derived actors once they have handled what was delivered.
    pub async fn drain(self, timeout: Duration) {
        let (derived, topics): (Vec<_>, Vec<_>) = self
            .supervisors
            .iter()
            .zip(&self.statuses)
            .map(|((sup, _), status)| (sup.clone(), status.is_derived()))
            .partition(|(_, d)| *d);
        let deadline = std::time::Instant::now() + timeout;
        for group in [topics, derived] {
            let left = deadline
                .saturating_duration_since(std::time::Instant::now())
                .max(Duration::from_secs(1));
            let drains = group.into_iter().map(|(sup, _)| async move {
                ractor::call_t!(sup, SupervisorMsg::Drain, left.as_millis() as u64)
            });
            for result in futures::future::join_all(drains).await {
                if let Err(e) = result {
                    warn!(error = %e, "pipeline did not drain in time");
                }
            }
        }
        for (sup, handle) in self.supervisors {
            sup.stop(None);
            let _ = tokio::time::timeout(Duration::from_secs(2), handle).await;
        }
    }
}
