//! Committer actor: owns one table's `TableCommitter` for one pipeline.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tracing::error;

use super::faults::{self, FaultPoint, Faults};
use super::messages::CommitterMsg;
use super::progress::Progress;
use super::FatalError;
use crate::lake::{HygieneParams, Lake};
use crate::lake::{OffsetRule, TableCommitter};
use crate::schema::TableSpec;
use crate::telemetry::Metrics;

pub struct CommitterActor;

pub struct CommitterArgs {
    pub lake: Lake,
    pub spec: TableSpec,
    pub rule: OffsetRule,
    pub hygiene: HygieneParams,
    pub metrics: Metrics,
    pub faults: Arc<Faults>,
    pub progress: Arc<Progress>,
}

pub struct CommitterState {
    committer: TableCommitter,
    faults: Arc<Faults>,
    progress: Arc<Progress>,
}

impl Actor for CommitterActor {
    type Msg = CommitterMsg;
    type State = CommitterState;
    type Arguments = CommitterArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: CommitterArgs,
    ) -> Result<CommitterState, ActorProcessingErr> {
        let committer = TableCommitter::open(args.lake, &args.spec, args.rule, args.hygiene)
            .await?
            .with_metrics(args.metrics);
        Ok(CommitterState {
            committer,
            faults: args.faults,
            progress: args.progress,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: CommitterMsg,
        state: &mut CommitterState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            CommitterMsg::Offsets(topic, reply) => {
                let result = state.committer.committed_offsets(&topic).await;
                let _ = reply.send(
                    result
                        .as_ref()
                        .map(|o| o.clone())
                        .map_err(|e| e.to_string()),
                );
                if let Err(e) = result {
                    return Err(classify(e));
                }
            }
            CommitterMsg::Commit(batch, reply) => {
                state.progress.set_busy(true);
                if let Some(action) = state.faults.check(
                    FaultPoint::CommitterBatch,
                    None,
                    Some(state.committer.table_name()),
                ) {
                    faults::apply(action, "committer").await?;
                }
                let result = state.committer.commit(batch).await;
                state.progress.set_busy(false);
                let _ = reply.send(
                    result
                        .as_ref()
                        .map(|r| r.clone())
                        .map_err(|e| e.to_string()),
                );
                if let Err(e) = result {
                    error!(table = state.committer.table_name(), error = %e, "commit failed");
                    return Err(classify(e));
                }
            }
        }
        Ok(())
    }
}

fn classify(e: crate::lake::CommitError) -> ActorProcessingErr {
    if e.is_fatal() {
        Box::new(FatalError(e.to_string()))
    } else {
        Box::new(e)
    }
}
