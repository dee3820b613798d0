//! Committer actor: owns one table's `TableCommitter` for one pipeline.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tracing::error;

use super::messages::{CommitterMsg, Reply};
use crate::error::{into_actor, Error, Handled};
use crate::faults::{Faults, Point};
use crate::lake::maintenance::IDLE_ROUND;
use crate::lake::{HygieneParams, Lake};
use crate::lake::{OffsetRule, TableCommitter};
use crate::schema::TableSpec;
use crate::supervision::Progress;
use crate::telemetry::Metrics;

pub struct CommitterActor;

pub struct CommitterArgs {
    /// Which committer this is (`raw_committer`, `dead_letter_committer`).
    pub role: &'static str,
    pub lake: Lake,
    pub spec: TableSpec,
    pub rule: OffsetRule,
    pub hygiene: HygieneParams,
    pub metrics: Metrics,
    pub faults: Arc<Faults>,
    pub progress: Arc<Progress>,
}

pub struct CommitterState {
    role: &'static str,
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
        myself: ActorRef<Self::Msg>,
        args: CommitterArgs,
    ) -> Result<CommitterState, ActorProcessingErr> {
        // The maintainer may hold none of this topic's partitions: then only this timer
        // maintains its tables.
        myself.send_interval(IDLE_ROUND, || CommitterMsg::Maintain);
        let committer = into_actor(
            TableCommitter::open(args.lake, &args.spec, args.rule, args.hygiene)
                .await
                .map_err(Error::from),
        )?
        .with_metrics(args.metrics);
        Ok(CommitterState {
            role: args.role,
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
        into_actor(state.handle(msg).await)
    }
}

/// Answer the caller, then fail with the same error: the caller and the supervisor see one
/// typed failure, whose kind decides what happens.
fn answer<T>(
    role: &'static str,
    reply: ractor::RpcReplyPort<Reply<T>>,
    result: Result<T, Error>,
) -> Handled {
    match result {
        Ok(v) => {
            let _ = reply.send(Ok(v));
            Ok(())
        }
        Err(e) => {
            let shared = Arc::new(e);
            let _ = reply.send(Err(shared.clone()));
            Err(Error::Downstream {
                actor: role,
                source: shared,
            })
        }
    }
}

impl CommitterState {
    async fn handle(&mut self, msg: CommitterMsg) -> Handled {
        match msg {
            CommitterMsg::Recorded(topic, reply) => {
                let result = self.committer.committed(&topic).await;
                answer(self.role, reply, result.map_err(Error::from))
            }
            CommitterMsg::Maintain => {
                self.progress.set_busy(true);
                self.committer.idle_maintenance().await;
                self.progress.set_busy(false);
                Ok(())
            }
            CommitterMsg::Commit(batch, reply) => {
                self.progress.set_busy(true);
                let table = Some(self.committer.table_name());
                let result = match self.faults.hit(Point::CommitterBatch, None, table).await {
                    Ok(()) => self.committer.commit(batch).await.map_err(Error::from),
                    Err(e) => Err(Error::from(e)),
                };
                self.progress.set_busy(false);
                if let Err(e) = &result {
                    error!(table = self.committer.table_name(), error = %e, "commit failed");
                }
                answer(self.role, reply, result)
            }
        }
    }
}
