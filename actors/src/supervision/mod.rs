//! The one supervisor. Every long-lived actor runs under it: a group's [`ChildSpecs`] spawn
//! the children bottom-up, and on any failure the whole group is stopped and rebuilt (one for
//! all: the children's state is rebuilt together from the lake) after a capped exponential
//! backoff, within a restart budget. The error's [`Kind`](crate::error::Kind) decides: a
//! fatal failure stops the group with its reason (for `/readyz`), a bad record is dead-lettered
//! without charging the budget, anything else restarts. Each child beats a [`Progress`]
//! heartbeat; one that is busy without progress for `stuck_timeout` is killed and restarted.
//! A group that another instance runs now ([`ChildSpecs::standby`]) is drained and kept
//! stopped until this instance is elected again.

pub mod budget;
pub mod progress;
pub mod service;
pub mod spawner;
pub mod status;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tracing::{error, info, warn};

pub use budget::{RestartBudget, Verdict};
pub use progress::Progress;
pub use service::{Service, StartTask};
pub use spawner::{ChildInfo, ChildSpecs, Spawner};
pub use status::{PipelineState, PipelineStatus, StatusHandle};

use crate::error::{Failure, Kind};
use crate::telemetry::Metrics;

#[derive(Clone, Debug)]
pub struct SupervisionParams {
    pub max_restarts: usize,
    pub restart_window: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// How often the supervisor checks progress.
    pub heartbeat: Duration,
    /// An actor with pending work and no progress for this long is killed and restarted.
    pub stuck_timeout: Duration,
}

impl Default for SupervisionParams {
    fn default() -> Self {
        SupervisionParams {
            max_restarts: 5,
            restart_window: Duration::from_secs(60),
            backoff_min: Duration::from_millis(250),
            backoff_max: Duration::from_secs(10),
            heartbeat: Duration::from_secs(1),
            stuck_timeout: Duration::from_secs(60),
        }
    }
}

pub enum SupervisorMsg {
    /// Heartbeat check of the children.
    Tick,
    /// Respawn the children of this generation after a backoff.
    Restart { generation: u64 },
    /// Finish what is in flight, stop every child, then reply.
    Drain(RpcReplyPort<()>),
}

pub struct SupervisorArgs {
    /// The group's name in metrics and `/readyz` (`orders`, `rollup`, `refresher` …).
    pub name: String,
    pub specs: Arc<dyn ChildSpecs>,
    pub params: SupervisionParams,
    pub status: StatusHandle,
    pub metrics: Metrics,
}

struct Child {
    cell: ActorCell,
    role: &'static str,
    progress: Arc<Progress>,
}

pub struct Supervisor;

pub struct SupervisorState {
    args: SupervisorArgs,
    generation: u64,
    children: Vec<Child>,
    /// Cells the heartbeat killed, so their termination is reported as `stuck`.
    killed_stuck: HashSet<ActorCell>,
    budget: RestartBudget,
    record_failures: HashMap<(i32, i64), u32>,
    poison: HashSet<(i32, i64)>,
    failed: bool,
    draining: bool,
    standing_by: bool,
}

/// What went wrong, as the supervisor books it.
struct Incident {
    role: &'static str,
    reason: &'static str,
    text: String,
    kind: Option<Kind>,
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        args: SupervisorArgs,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        myself.send_interval(args.params.heartbeat, || SupervisorMsg::Tick);
        myself.send_message(SupervisorMsg::Restart { generation: 0 })?;
        args.status.set_state(PipelineState::Starting);
        Ok(SupervisorState {
            args,
            generation: 0,
            children: Vec::new(),
            killed_stuck: HashSet::new(),
            budget: RestartBudget::default(),
            record_failures: HashMap::new(),
            poison: HashSet::new(),
            failed: false,
            draining: false,
            standing_by: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<SupervisorMsg>,
        msg: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::Restart { generation }
                if generation == state.generation && !state.failed && !state.draining =>
            {
                if state.args.specs.winding_down() {
                    state.stop_children();
                    return Ok(());
                }
                if state.args.specs.standby() {
                    state.stand_by();
                    return Ok(());
                }
                state.spawn(&myself).await;
            }
            SupervisorMsg::Restart { .. } => {}
            SupervisorMsg::Tick => {
                state.check_heartbeats();
                state.follow_standby(&myself).await;
            }
            SupervisorMsg::Drain(reply) => {
                state.draining = true;
                let children = state.child_infos();
                state.args.specs.drain(&children).await;
                state.stop_children();
                if !state.failed {
                    state.args.status.set_state(PipelineState::Stopped);
                }
                let _ = reply.send(());
                myself.stop(Some("drained".into()));
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SupervisorMsg>,
        evt: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, ended) = match evt {
            SupervisionEvent::ActorFailed(cell, err) => {
                let failure = Failure::of(err.as_ref());
                (cell, Ended::Failed(failure))
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                if state.killed_stuck.contains(&cell) {
                    (cell, Ended::Stuck)
                } else if state.args.specs.winding_down() || state.draining {
                    // A child that finished its work on shutdown (the consumer's final commit).
                    state.children.retain(|c| c.cell.get_id() != cell.get_id());
                    return Ok(());
                } else {
                    (
                        cell,
                        Ended::Exited(reason.unwrap_or_else(|| "stopped".into())),
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
        if state.draining {
            return Ok(());
        }
        // A child we killed for being stuck makes its callers fail too, and their failure may
        // reach us first: the restart is still the stuck child's.
        let stuck = state
            .children
            .iter()
            .chain(std::iter::once(&child))
            .find(|c| state.killed_stuck.contains(&c.cell))
            .map(|c| c.role);
        let incident = match (stuck, ended) {
            (stuck, Ended::Stuck) | (stuck @ Some(_), _) => Incident {
                role: stuck.unwrap_or(child.role),
                reason: "stuck",
                text: "no progress while busy".into(),
                kind: None,
            },
            (None, Ended::Exited(text)) => Incident {
                role: child.role,
                reason: "exit",
                text,
                kind: None,
            },
            (None, Ended::Failed(f)) => {
                state.note_record(&child, &f);
                // A caller failing because the actor it called failed: blame the callee (its
                // own failure may reach us second).
                let blamed = match &f {
                    Failure::Error {
                        blame: Some(role), ..
                    } => state
                        .children
                        .iter()
                        .find(|c| c.role == *role)
                        .map(|c| c.role),
                    _ => None,
                };
                Incident {
                    role: blamed.unwrap_or(child.role),
                    reason: f.reason(),
                    text: f.text().to_string(),
                    kind: match &f {
                        Failure::Error { kind, .. } => Some(*kind),
                        Failure::Panic(_) => None,
                    },
                }
            }
        };
        state.on_failure(&myself, incident);
        Ok(())
    }
}

/// How a child ended.
enum Ended {
    Failed(Failure),
    /// It stopped by itself while it should be running.
    Exited(String),
    /// The heartbeat killed it.
    Stuck,
}

impl SupervisorState {
    fn name(&self) -> &str {
        &self.args.name
    }

    fn child_infos(&self) -> Vec<ChildInfo> {
        self.children
            .iter()
            .map(|c| ChildInfo {
                cell: c.cell.clone(),
                role: c.role,
            })
            .collect()
    }

    /// Keep no children while another instance runs the group.
    fn stand_by(&mut self) {
        if !self.standing_by {
            info!(
                group = self.name(),
                "standing by: another instance runs this group"
            );
        }
        self.standing_by = true;
        self.up(0);
        self.args.status.set_state(PipelineState::Standby);
    }

    /// Hand the group over when this instance stops being elected (finishing what is queued
    /// first), and start it when elected again.
    async fn follow_standby(&mut self, myself: &ActorRef<SupervisorMsg>) {
        if self.failed || self.draining || self.args.specs.winding_down() {
            return;
        }
        match (self.standing_by, self.args.specs.standby()) {
            (false, true) if !self.children.is_empty() => {
                let children = self.child_infos();
                self.args.specs.drain(&children).await;
                self.stop_children();
                self.killed_stuck.clear();
                self.stand_by();
            }
            (true, false) => {
                info!(group = self.name(), "elected: taking the group over");
                self.generation += 1;
                self.spawn(myself).await;
            }
            _ => {}
        }
    }

    async fn spawn(&mut self, myself: &ActorRef<SupervisorMsg>) {
        self.standing_by = false;
        let mut spawner = Spawner::new(myself.get_cell(), self.poison.clone(), self.generation);
        let result = self.args.specs.spawn(&mut spawner).await;
        let (children, failed_role) = spawner.finish();
        match result {
            Ok(()) => {
                self.children = children
                    .into_iter()
                    .map(|(cell, role, progress)| Child {
                        cell,
                        role,
                        progress,
                    })
                    .collect();
                self.args.status.set_state(PipelineState::Running);
                self.up(1);
                info!(
                    group = self.name(),
                    generation = self.generation,
                    "actors started"
                );
            }
            Err(e) => {
                // A child that cannot even start is a failure like any other.
                for (cell, _, _) in children {
                    cell.kill();
                }
                warn!(group = self.name(), error = %e, "starting actors failed");
                let kind = e.kind();
                self.on_failure(
                    myself,
                    Incident {
                        role: failed_role.unwrap_or("start"),
                        reason: if kind == Kind::Fatal {
                            "fatal"
                        } else {
                            "start"
                        },
                        text: e.to_string(),
                        kind: Some(kind),
                    },
                );
            }
        }
    }

    fn up(&self, v: i64) {
        self.args
            .metrics
            .pipeline_up
            .with_label_values(&[&self.args.name])
            .set(v);
    }

    fn check_heartbeats(&mut self) {
        let timeout = self.args.params.stuck_timeout;
        for child in &self.children {
            if child.progress.is_stuck(timeout) && !self.killed_stuck.contains(&child.cell) {
                warn!(
                    group = self.args.name,
                    actor = child.role,
                    "no progress while busy, killing"
                );
                self.killed_stuck.insert(child.cell.clone());
                child.cell.kill();
            }
        }
    }

    /// A record that made a handler fail twice (or was called bad outright) is poison: the next
    /// generation dead-letters it instead of handling it again.
    fn note_record(&mut self, child: &Child, failure: &Failure) {
        if let Failure::Error {
            kind: Kind::BadRecord,
            record: Some(record),
            ..
        } = failure
        {
            self.poison.insert(*record);
            return;
        }
        let Some(record) = child.progress.record() else {
            return;
        };
        let n = self.record_failures.entry(record).or_insert(0);
        *n += 1;
        if *n >= 2 {
            warn!(
                group = self.args.name,
                partition = record.0,
                offset = record.1,
                "record failed a handler twice, dead-lettering it"
            );
            self.poison.insert(record);
        }
    }

    fn stop_children(&mut self) {
        for child in self.children.drain(..) {
            // Kill, not stop: a frozen child would never process a stop.
            child.cell.kill();
        }
    }

    fn on_failure(&mut self, myself: &ActorRef<SupervisorMsg>, incident: Incident) {
        let Incident {
            role,
            reason,
            text,
            kind,
        } = incident;
        let group = self.args.name.clone();
        self.up(0);
        self.stop_children();
        // Every child is gone; their late events are ignored (they are no longer children).
        self.killed_stuck.clear();
        if self.args.specs.winding_down() {
            if !self.failed {
                self.args.status.set_state(PipelineState::Stopped);
            }
            return;
        }
        if kind == Some(Kind::Fatal) {
            error!(group, actor = role, error = %text, "stopped: unrecoverable");
            self.args.status.record_stop(role, &text);
            self.failed = true;
            self.args.specs.failed();
            self.args.status.set_state(PipelineState::Failed(text));
            return;
        }
        let stepped_down = kind == Some(Kind::Deposed) && self.args.specs.step_down();
        let backoff = if kind == Some(Kind::BadRecord) {
            // Bad input never burns the restart budget: the record is dead-lettered next time.
            self.args.params.backoff_min
        } else if stepped_down {
            // Two instances believed they owned, and the other committed first: not a fault of
            // this one. Charging the budget would fail the group for good after a few rounds.
            info!(group, actor = role, error = %text, "another instance owns the group's tables: stepping down and asking the election again");
            self.args.params.backoff_min
        } else {
            match self.budget.on_failure(Instant::now(), &self.args.params) {
                Verdict::RestartAfter(backoff) => backoff,
                Verdict::Exhausted(n) => {
                    let msg = format!(
                        "restart budget exhausted ({n} in {:?}); last failure of {role}: {text}",
                        self.args.params.restart_window
                    );
                    error!(group, "{msg}");
                    self.args.status.record_stop(role, &msg);
                    self.failed = true;
                    self.args.specs.failed();
                    self.args.status.set_state(PipelineState::Failed(msg));
                    return;
                }
            }
        };
        self.args
            .metrics
            .restarts
            .with_label_values(&[&group, role, reason])
            .inc();
        self.args.status.record_restart(role, &text);
        if !stepped_down {
            warn!(group, actor = role, reason, error = %text, ?backoff, "restarting");
        }
        self.args.status.set_state(PipelineState::Restarting);
        self.generation += 1;
        let generation = self.generation;
        myself.send_after(backoff, move || SupervisorMsg::Restart { generation });
    }
}
