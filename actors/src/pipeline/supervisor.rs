//! Pipeline supervisor: one per topic, one-for-all. On any child failure every child is
//! stopped and the set is rebuilt from the lake's offsets after a capped exponential backoff,
//! within a restart budget. Spawns bottom-up: committers first, consumer last.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tracing::{error, info, warn};

use super::committer::{CommitterActor, CommitterArgs};
use super::consumer::{ConsumerActor, ConsumerArgs};
use super::messages::SupervisorMsg;
use super::params::PipelineParams;
use super::progress::Progress;
use super::restart::{RestartBudget, Verdict};
use super::status::{PipelineState, StatusHandle};
use super::FatalError;
use crate::lake::OffsetRule;
use crate::schema::{dead_letters_spec, raw_table_spec};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    RawCommitter,
    DeadLetterCommitter,
    Consumer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::RawCommitter => "raw_committer",
            Role::DeadLetterCommitter => "dead_letter_committer",
            Role::Consumer => "consumer",
        }
    }
}

pub struct PipelineSupervisor;

pub struct SupervisorArgs {
    pub params: PipelineParams,
    pub status: StatusHandle,
}

struct Child {
    cell: ActorCell,
    role: Role,
    progress: Arc<Progress>,
}

pub struct SupervisorState {
    params: PipelineParams,
    status: StatusHandle,
    generation: u64,
    children: Vec<Child>,
    /// Cells the heartbeat killed, so their termination is reported as `stuck`.
    killed_stuck: HashSet<ActorCell>,
    budget: RestartBudget,
    record_failures: HashMap<(i32, i64), u32>,
    poison: HashSet<(i32, i64)>,
    drain_reply: Option<RpcReplyPort<()>>,
    failed: bool,
}

impl Actor for PipelineSupervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: SupervisorArgs,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let state = SupervisorState {
            params: args.params,
            status: args.status,
            generation: 0,
            children: Vec::new(),
            killed_stuck: HashSet::new(),
            budget: RestartBudget::default(),
            record_failures: HashMap::new(),
            poison: HashSet::new(),
            drain_reply: None,
            failed: false,
        };
        myself.send_interval(state.params.supervision.heartbeat, || SupervisorMsg::Tick);
        myself.send_message(SupervisorMsg::Restart { generation: 0 })?;
        state.status.set_state(PipelineState::Starting);
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::Restart { generation }
                if generation == state.generation && !state.failed =>
            {
                if state.params.shutdown.load(Ordering::Relaxed) {
                    return self.finish_drain(&myself, state);
                }
                if let Err(e) = spawn_children(&myself, state).await {
                    // A child that cannot even start is a failure like any other.
                    warn!(pipeline = state.params.kind.as_str(), error = %e, "spawning pipeline failed");
                    self.on_failure(
                        &myself,
                        state,
                        Role::Consumer,
                        "start",
                        e.to_string(),
                        false,
                    )?;
                } else {
                    state.status.set_state(PipelineState::Running);
                    state
                        .params
                        .metrics
                        .pipeline_up
                        .with_label_values(&[state.params.kind.as_str()])
                        .set(1);
                }
            }
            SupervisorMsg::Restart { .. } => {}
            SupervisorMsg::Tick => {
                let timeout = state.params.supervision.stuck_timeout;
                for child in &state.children {
                    if child.progress.is_stuck(timeout) && !state.killed_stuck.contains(&child.cell)
                    {
                        warn!(
                            pipeline = state.params.kind.as_str(),
                            actor = child.role.as_str(),
                            "no progress while busy, killing"
                        );
                        state.killed_stuck.insert(child.cell.clone());
                        child.cell.kill();
                    }
                }
            }
            SupervisorMsg::Drain(reply) => {
                state.params.shutdown.store(true, Ordering::Relaxed);
                state.drain_reply = Some(reply);
                let consumer_alive = state.children.iter().any(|c| c.role == Role::Consumer);
                if !consumer_alive {
                    self.finish_drain(&myself, state)?;
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        evt: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, failure) = match evt {
            SupervisionEvent::ActorFailed(cell, err) => {
                let fatal = err.downcast_ref::<FatalError>().is_some();
                let text = err.to_string();
                let reason = if text.contains("panic") {
                    "panic"
                } else {
                    "error"
                };
                (cell, Some((reason, text, fatal)))
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                if state.killed_stuck.remove(&cell) {
                    (
                        cell,
                        Some(("stuck", "no progress while busy".to_string(), false)),
                    )
                } else {
                    let clean_drain = state.params.shutdown.load(Ordering::Relaxed);
                    (
                        cell,
                        if clean_drain {
                            None
                        } else {
                            Some(("exit", reason.unwrap_or_default(), false))
                        },
                    )
                }
            }
            _ => return Ok(()),
        };
        // Events from an earlier generation (children we killed ourselves) are expected.
        let Some(index) = state
            .children
            .iter()
            .position(|c| c.cell.get_id() == cell.get_id())
        else {
            return Ok(());
        };
        let child = state.children.remove(index);
        match failure {
            None => {
                if child.role == Role::Consumer {
                    self.finish_drain(&myself, state)?;
                }
            }
            Some((reason, text, fatal)) => {
                if child.role == Role::Consumer {
                    if let Some(record) = child.progress.record() {
                        let n = state.record_failures.entry(record).or_insert(0);
                        *n += 1;
                        if *n >= 2 {
                            warn!(
                                pipeline = state.params.kind.as_str(),
                                partition = record.0,
                                offset = record.1,
                                "record failed a handler twice, dead-lettering it"
                            );
                            state.poison.insert(record);
                        }
                    }
                }
                // A child we killed for being stuck makes its callers fail too, and their
                // failure may reach us first: the restart is still the stuck child's.
                let stuck = state
                    .children
                    .iter()
                    .find(|c| state.killed_stuck.contains(&c.cell))
                    .map(|c| c.role);
                match stuck {
                    Some(role) => self.on_failure(
                        &myself,
                        state,
                        role,
                        "stuck",
                        "no progress while busy".into(),
                        false,
                    )?,
                    None => self.on_failure(&myself, state, child.role, reason, text, fatal)?,
                }
            }
        }
        Ok(())
    }
}

impl PipelineSupervisor {
    fn on_failure(
        &self,
        myself: &ActorRef<SupervisorMsg>,
        state: &mut SupervisorState,
        role: Role,
        reason: &str,
        text: String,
        fatal: bool,
    ) -> Result<(), ActorProcessingErr> {
        let pipeline = state.params.kind.as_str();
        state
            .params
            .metrics
            .pipeline_up
            .with_label_values(&[pipeline])
            .set(0);
        stop_children(state);
        if state.params.shutdown.load(Ordering::Relaxed) {
            return self.finish_drain(myself, state);
        }
        if fatal {
            error!(pipeline, actor = role.as_str(), error = %text, "pipeline stopped: unrecoverable");
            state.failed = true;
            state.status.set_state(PipelineState::Failed(text));
            return Ok(());
        }
        let backoff = match state
            .budget
            .on_failure(Instant::now(), &state.params.supervision)
        {
            Verdict::RestartAfter(backoff) => backoff,
            Verdict::Exhausted(n) => {
                let msg = format!(
                    "restart budget exhausted ({n} in {:?}); last failure of {}: {text}",
                    state.params.supervision.restart_window,
                    role.as_str()
                );
                error!(pipeline, "{msg}");
                state.failed = true;
                state.status.set_state(PipelineState::Failed(msg));
                return Ok(());
            }
        };
        state
            .params
            .metrics
            .restarts
            .with_label_values(&[pipeline, role.as_str(), reason])
            .inc();
        state.status.record_restart(role.as_str(), &text);
        warn!(pipeline, actor = role.as_str(), reason, error = %text, ?backoff, "restarting pipeline");
        state.status.set_state(PipelineState::Restarting);
        state.generation += 1;
        let generation = state.generation;
        myself.send_after(backoff, move || SupervisorMsg::Restart { generation });
        Ok(())
    }

    fn finish_drain(
        &self,
        myself: &ActorRef<SupervisorMsg>,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        stop_children(state);
        if !state.failed {
            state.status.set_state(PipelineState::Stopped);
        }
        if let Some(reply) = state.drain_reply.take() {
            let _ = reply.send(());
            myself.stop(Some("drained".into()));
        }
        Ok(())
    }
}

fn stop_children(state: &mut SupervisorState) {
    for child in state.children.drain(..) {
        // Kill, not stop: a frozen child would never process a stop.
        child.cell.kill();
    }
}

async fn spawn_children(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
) -> Result<(), ActorProcessingErr> {
    let p = &state.params;
    let mut spawned = Vec::new();
    let committer = |spec, rule, progress: Arc<Progress>| CommitterArgs {
        lake: p.lake.clone(),
        spec,
        rule,
        hygiene: p.hygiene.clone(),
        metrics: p.metrics.clone(),
        faults: p.faults.clone(),
        progress,
    };
    let result: Result<(), ActorProcessingErr> = async {
        let raw_progress = Arc::new(Progress::default());
        let (raw, _) = Actor::spawn_linked(
            None,
            CommitterActor,
            committer(
                raw_table_spec(p.kind),
                OffsetRule::Strict,
                raw_progress.clone(),
            ),
            myself.get_cell(),
        )
        .await?;
        spawned.push(Child {
            cell: raw.get_cell(),
            role: Role::RawCommitter,
            progress: raw_progress,
        });
        let dl_progress = Arc::new(Progress::default());
        let (dl, _) = Actor::spawn_linked(
            None,
            CommitterActor,
            committer(dead_letters_spec(), OffsetRule::Filter, dl_progress.clone()),
            myself.get_cell(),
        )
        .await?;
        spawned.push(Child {
            cell: dl.get_cell(),
            role: Role::DeadLetterCommitter,
            progress: dl_progress,
        });
        let consumer_progress = Arc::new(Progress::default());
        consumer_progress.set_busy(true); // a consumer always has work: polling
        let args = ConsumerArgs {
            params: p.clone(),
            raw,
            dead_letters: dl,
            progress: consumer_progress.clone(),
            poison: state.poison.clone(),
        };
        let (consumer, _) =
            Actor::spawn_linked(None, ConsumerActor, args, myself.get_cell()).await?;
        spawned.push(Child {
            cell: consumer.get_cell(),
            role: Role::Consumer,
            progress: consumer_progress,
        });
        Ok(())
    }
    .await;
    match result {
        Ok(()) => {
            state.children = spawned;
            info!(
                pipeline = p.kind.as_str(),
                generation = state.generation,
                "pipeline started"
            );
            Ok(())
        }
        Err(e) => {
            for child in spawned {
                child.cell.kill();
            }
            Err(e)
        }
    }
}
